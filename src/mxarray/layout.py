"""Block layout: the one place that moves the block axis, pads and restores shapes.

The canonical layout moves the block axis last and pads it with zeros to a multiple of
the block size, giving ``lead + (n_blocks * block_size,)``; ``lead`` is the logical
shape without the block axis.  Backends see this layout flattened to
``(n, block_size)`` rows and never an axis or a padding rule.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .formats import Format

__all__ = [
    "normalize_axis",
    "normalize_shape",
    "n_blocks",
    "lead_shape",
    "packed_shape",
    "scales_shape",
    "to_blocks",
    "from_blocks",
]


def normalize_axis(axis: object, ndim: int, name: str = "axis") -> int:
    """Return ``axis`` as a non-negative int for an array of ``ndim`` dimensions.

    Raises
    ------
    TypeError
        If ``axis`` is not an integer.
    ValueError
        If ``axis`` is outside ``[-ndim, ndim)``.
    """
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        ax = operator.index(axis)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(axis).__name__}") from None
    if not -ndim <= ax < ndim:
        raise ValueError(f"{name}={ax} is out of range for an array of {ndim} dimension(s)")
    return ax % ndim


def normalize_shape(shape: object) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of non-negative ints (TypeError/ValueError otherwise)."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        dims = tuple(operator.index(d) for d in shape)  # type: ignore[union-attr]
    except TypeError:
        raise TypeError(f"shape must be a tuple of integers, got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"shape must not have negative dimensions, got {dims}")
    return dims


def n_blocks(length: int, block_size: int) -> int:
    """Number of blocks that cover ``length`` elements (the last one padded)."""
    return -(-length // block_size)


def lead_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """The logical shape without the block axis."""
    return shape[:axis] + shape[axis + 1 :]


def packed_shape(shape: tuple[int, ...], axis: int, fmt: Format) -> tuple[int, ...]:
    """Shape of the packed bytes: the block axis innermost, padded and packed (each block's
    element bytes followed by its microexponent bytes, if the format has sub-blocks)."""
    return lead_shape(shape, axis) + (n_blocks(shape[axis], fmt.block_size) * fmt.bytes_per_block,)


def scales_shape(shape: tuple[int, ...], axis: int, block_size: int) -> tuple[int, ...]:
    """Shape of the scales: the logical shape with the block axis replaced by its block count."""
    return shape[:axis] + (n_blocks(shape[axis], block_size),) + shape[axis + 1 :]


def to_blocks(x: Any, axis: int, block_size: int, xp: Any = np) -> Any:
    """Return ``x`` in the canonical layout as C-contiguous ``(n, block_size)`` rows.

    The block axis is moved last and zero-padded to a multiple of ``block_size``.  When
    the block axis is already last and needs no padding, a C-contiguous ``x`` is
    returned as a view, without a copy.
    """
    moved = xp.moveaxis(x, axis, -1)
    length = moved.shape[-1]
    if length % block_size == 0:
        return xp.ascontiguousarray(moved).reshape(-1, block_size)
    padded = n_blocks(length, block_size) * block_size
    out = xp.zeros(moved.shape[:-1] + (padded,), dtype=x.dtype)
    out[..., :length] = moved
    return out.reshape(-1, block_size)


def from_blocks(rows: Any, shape: tuple[int, ...], axis: int, xp: Any = np) -> Any:
    """Inverse of :func:`to_blocks`: drop the padding and put the block axis back."""
    padded = n_blocks(shape[axis], rows.shape[-1]) * rows.shape[-1]
    canonical = rows.reshape(lead_shape(shape, axis) + (padded,))[..., : shape[axis]]
    return xp.ascontiguousarray(xp.moveaxis(canonical, -1, axis))
