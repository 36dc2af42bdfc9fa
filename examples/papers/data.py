"""The data set: scikit-learn's bundled handwritten digits, split once with a seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """A train/test split as NumPy arrays: float32 features in [0, 1], int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        """The number of classes (labels run from 0)."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_digits_split(test_fraction: float = 0.3, seed: int = 0) -> Split:
    """The 1,797 8x8 digit images of ``sklearn.datasets.load_digits`` (no download),
    pixels scaled from 0..16 to [0, 1], split by a seeded permutation.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (``pip install scikit-learn``).
    ValueError
        If ``test_fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("the example's data set needs scikit-learn: "
                          "pip install scikit-learn") from err
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test], order[n_test:]
    return Split(x[train], y[train], x[test], y[test])
