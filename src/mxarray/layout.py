"""Block layout: the one place that moves the block axis, pads and restores shapes.

The canonical layout moves the block axis last and pads it with zeros to a multiple of
the block size, giving ``lead + (n_blocks * block_size,)``; ``lead`` is the logical
shape without the block axis.  Backends see this layout flattened to
``(n, block_size)`` rows and never an axis or a padding rule.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import numpy as np

from .formats import Format

__all__ = [
    "integer",
    "normalize_axis",
    "normalize_shape",
    "n_blocks",
    "lead_shape",
    "packed_shape",
    "scales_shape",
    "to_blocks",
    "from_blocks",
    "pieces",
]


def integer(value: object, name: str) -> int:
    """``value`` as a Python int: a Python or NumPy integer, never a bool.

    Raises
    ------
    TypeError
        If ``value`` is a bool or not an integer; the message names ``name``.

    Examples
    --------
    >>> import numpy as np
    >>> from mxarray.layout import integer
    >>> integer(np.int8(-3), "axis")
    -3
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None


def normalize_axis(axis: object, ndim: int, name: str = "axis") -> int:
    """Return ``axis`` as a non-negative int for an array of ``ndim`` dimensions.

    Raises
    ------
    TypeError
        If ``axis`` is not an integer.
    ValueError
        If ``axis`` is outside ``[-ndim, ndim)``.
    """
    ax = integer(axis, name)
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
    moved = x if axis in (-1, x.ndim - 1) else xp.moveaxis(x, axis, -1)
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


def pieces(shape: tuple[int, ...], block_size: int, budget: int
           ) -> Iterator[tuple[tuple[Any, ...], int, int]]:
    """Split the canonical layout of an array into pieces of at most ``budget`` elements.

    ``shape`` is the array's shape with the block axis already moved last,
    ``lead + (length,)``.  Its canonical layout holds ``lead + (n_blocks,)`` blocks in C
    order; each piece is a run of consecutive blocks that is also a box of the array
    (whole trailing dimensions, a range of one dimension, single indices before it), so
    it can be cut out with basic indexing, without copying anything else.  A piece holds
    at most ``max(budget, block_size)`` elements (padding included); pieces are cut
    along the outermost dimension that allows it, so all but the last of each run along
    that dimension hold more than half of that.

    Yields
    ------
    index : tuple
        Integers, then one slice: the piece is ``moved[index]`` (its block axis last;
        only its last block may be partial: a slice of the block axis may run past its
        end, which indexing clips).
    first : int
        The canonical number of the piece's first block in the whole array.
    count : int
        The number of blocks in the piece.

    Examples
    --------
    >>> from mxarray.layout import pieces
    >>> list(pieces((3, 70), 32, 200))    # 3 rows of 3 blocks; 6 blocks fit the budget
    [((slice(0, 2, None),), 0, 6), ((slice(2, 3, None),), 6, 3)]
    >>> list(pieces((70,), 32, 64))       # a long row: split along the block axis
    [((slice(0, 64, None),), 0, 2), ((slice(64, 96, None),), 2, 1)]
    """
    lead, length = shape[:-1], shape[-1]
    dims = lead + (n_blocks(length, block_size),)
    strides = [1] * len(dims)  # blocks per step of each dimension, C order
    for i in range(len(dims) - 2, -1, -1):
        strides[i] = strides[i + 1] * dims[i + 1]
    if strides[0] * dims[0] == 0:
        return
    blocks_per_piece = max(1, budget // block_size)
    split = next(i for i, s in enumerate(strides) if s <= blocks_per_piece)
    step = blocks_per_piece // strides[split]
    last = split == len(dims) - 1
    for outer in np.ndindex(*dims[:split]):
        base = sum(i * s for i, s in zip(outer, strides))
        for start in range(0, dims[split], step):
            stop = min(start + step, dims[split])
            cut = slice(start * block_size, stop * block_size) if last else slice(start, stop)
            yield outer + (cut,), base + start * strides[split], (stop - start) * strides[split]
