"""Built-in sample data for ``mxarray report``: fixed-seed draws of three distributions.

All three have unit variance, so their QSNR figures are comparable across formats.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["DATASETS", "SEED", "make_dataset"]

SEED = 20231024
"""The fixed seed of every built-in dataset."""

_STUDENT_T_DF = 5.0


def _gaussian(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def _laplace(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.laplace(0.0, 1.0 / np.sqrt(2.0), n)  # variance 2 b^2 = 1


def _student_t(rng: np.random.Generator, n: int) -> np.ndarray:
    scale = np.sqrt((_STUDENT_T_DF - 2.0) / _STUDENT_T_DF)  # variance df/(df-2) -> 1
    return rng.standard_t(_STUDENT_T_DF, n) * scale


DATASETS: dict[str, tuple[str, Callable[[np.random.Generator, int], np.ndarray]]] = {
    "gaussian": ("N(0, 1)", _gaussian),
    "laplace": ("Laplace, variance 1", _laplace),
    "student_t": (f"Student-t, {_STUDENT_T_DF:g} d.o.f., variance 1", _student_t),
}
"""Name -> (description, generator) of every built-in dataset."""


def make_dataset(name: str, shape: tuple[int, ...] = (1024, 1024)) -> np.ndarray:
    """Return the float32 dataset ``name`` of the given shape, drawn with :data:`SEED`.

    Raises
    ------
    ValueError
        If ``name`` is not a built-in dataset, or a length in ``shape`` is negative or
        beyond what an array index holds.
    TypeError
        If ``shape`` is not an integer or a tuple of integers.

    Examples
    --------
    >>> from mxarray.datasets import make_dataset
    >>> x = make_dataset("laplace", (2, 3))
    >>> x.shape, x.dtype.name
    ((2, 3), 'float32')
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    dims = _shape(shape)
    rng = np.random.default_rng(SEED)
    n = math.prod(dims)  # Python ints: np.prod would wrap around past 2**63
    return DATASETS[name][1](rng, n).astype(np.float32).reshape(dims)


def _shape(shape: object) -> tuple[int, ...]:
    items = shape if isinstance(shape, tuple) else (shape,)
    dims = []
    for d in items:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"shape must be an integer or a tuple of integers, got {shape!r}")
        if not 0 <= d <= np.iinfo(np.intp).max:
            raise ValueError(f"shape lengths must be in [0, {np.iinfo(np.intp).max}] "
                             f"(none negative), got {shape!r}")
        dims.append(int(d))
    return tuple(dims)
