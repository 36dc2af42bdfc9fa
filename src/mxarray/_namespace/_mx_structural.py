"""Structural operations that keep MX storage: they move bytes and scales, never requantize.

An MX array stores ``packed`` as ``lead + (bytes,)`` and ``canonical_scales`` as
``lead + (nb,)``, ``lead`` being the logical shape without the block axis.  An operation that only
rearranges the ``lead`` axes (indexing, permuting, reshaping, flipping, concatenating
or broadcasting them) applies to both arrays alike and leaves every block intact; one
that cuts the block axis at block boundaries slices the bytes and scales by whole
blocks.  Each function returns the new MXArray, or ``None`` when the block structure
does not allow keeping storage (the caller then dequantizes and works in float32).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Sequence

import numpy as np

from ..array import MXArray
from ..blockwise import expand_key

__all__ = [
    "rebuild", "getitem", "permute_dims", "reshape", "flip", "concat", "stack",
    "broadcast_to",
]


def rebuild(x: MXArray, packed: np.ndarray, scales: np.ndarray, shape: tuple[int, ...],
            axis: int, sources: Sequence[MXArray] = ()) -> MXArray | None:
    """A new MXArray of ``x``'s format with the given storage; metadata kept when shared.

    ``None`` when the sources hold different per-tensor scales (NVFP4): their codes mean
    different values, so the storage cannot be joined without requantizing.
    """
    group = list(sources) or [x]
    if any(s.tensor_scale != x.tensor_scale for s in group):
        return None
    same = all(s.rounding == x.rounding and s.scale_mode == x.scale_mode for s in group)
    return MXArray._wrap(packed, scales, x.format, tuple(shape), axis,
                         x.rounding if same else None, x.scale_mode if same else None,
                         x.seed if len(group) == 1 else None, x.tensor_scale)


def _lead_axis(axis: int, block_axis: int) -> int:
    """Position in ``lead`` of logical axis ``axis`` (which is not the block axis)."""
    return axis if axis < block_axis else axis - 1


def _block_slice(s: slice, length: int, block: int) -> slice | None:
    """The block range a slice of the block axis keeps, or None if it cuts a block."""
    start, stop, step = s.indices(length)
    if step != 1 or stop <= start or start % block:
        return None
    if stop != length and stop % block:
        return None
    return slice(start // block, -(-stop // block))


def getitem(x: MXArray, key: Any) -> MXArray | None:
    """``x[key]`` keeping storage: basic indexing of any non-block axis, at most one
    integer-array index (on a non-block axis), and block-aligned slices of the block axis."""
    from ._array import Array

    parts = expand_key(key, x.ndim)
    advanced = [p for p in parts if isinstance(p, Array)]
    if len(advanced) > 1 or any(a.dtype.kind == "b" or a.ndim != 1 for a in advanced):
        return None
    if advanced and any(not isinstance(p, (slice, Array)) and p is not None for p in parts):
        return None  # integers next to an array index reorder dimensions
    lead_key: list[Any] = []
    out_axis, axis, block_range = 0, 0, None
    for p in parts:
        if p is None:
            lead_key.append(None)
            out_axis += axis <= x.block_axis and block_range is None
            continue
        if axis == x.block_axis:
            if not isinstance(p, slice):
                return None
            block_range = _block_slice(p, x.shape[axis], x.format.block_size)
            if block_range is None:
                return None
        else:
            if isinstance(p, Array):
                lead_key.append(p._x)
            else:
                lead_key.append(p if isinstance(p, slice) else operator.index(p))
            if axis < x.block_axis and not isinstance(lead_key[-1], int):
                out_axis += 1
        axis += 1
    bytes_per_block = x.format.bytes_per_block
    byte_range = slice(block_range.start * bytes_per_block, block_range.stop * bytes_per_block)
    packed = x.packed[tuple(lead_key) + (byte_range,)]
    scales = x.canonical_scales[tuple(lead_key) + (block_range,)]
    length = min(block_range.stop * x.format.block_size, x.shape[x.block_axis]) - \
        block_range.start * x.format.block_size
    lead = packed.shape[:-1]
    shape = lead[:out_axis] + (length,) + lead[out_axis:]
    return rebuild(x, packed, scales, shape, out_axis)


def permute_dims(x: MXArray, axes: Sequence[int]) -> MXArray:
    """Permute the logical axes; the block axis moves with them (storage is permuted)."""
    order = list(axes)
    new_axis = order.index(x.block_axis)
    lead_order = [_lead_axis(a, x.block_axis) for a in order if a != x.block_axis]
    last = len(lead_order)
    packed = np.transpose(x.packed, lead_order + [last])
    scales = np.transpose(x.canonical_scales, lead_order + [last])
    return rebuild(x, packed, scales, tuple(x.shape[a] for a in order), new_axis)


def _split_fits(old: tuple[int, ...], axis: int, new: tuple[int, ...], k: int) -> bool:
    return (new[k] == old[axis] and math.prod(new[:k]) == math.prod(old[:axis])
            and math.prod(new[k + 1:]) == math.prod(old[axis + 1:]))


def reshape(x: MXArray, shape: tuple[int, ...], new_axis: int | None = None) -> MXArray | None:
    """Reshape keeping storage when the block axis survives as one whole axis with the
    same elements before and after it (``new_axis`` pins where, else the first fit)."""
    candidates = [new_axis] if new_axis is not None else range(len(shape))
    for k in candidates:
        if _split_fits(x.shape, x.block_axis, shape, k):
            lead = shape[:k] + shape[k + 1:]
            packed = x.packed.reshape(lead + x.packed.shape[-1:])
            scales = x.canonical_scales.reshape(lead + x.canonical_scales.shape[-1:])
            return rebuild(x, packed, scales, shape, k)
    return None


def flip(x: MXArray, axes: Sequence[int]) -> MXArray | None:
    """Reverse non-block axes (None if the block axis is among ``axes``)."""
    if x.block_axis in axes:
        return None
    lead = tuple(_lead_axis(a, x.block_axis) for a in axes)
    return rebuild(x, np.flip(x.packed, lead), np.flip(x.canonical_scales, lead), x.shape,
                   x.block_axis)


def concat(arrays: Sequence[MXArray], axis: int) -> MXArray | None:
    """Join same-format MX arrays blocked along the same axis, along a non-block axis, or
    along the block axis when every piece but the last fills whole blocks."""
    first = arrays[0]
    if any(a.format is not first.format or a.block_axis != first.block_axis
           or a.ndim != first.ndim for a in arrays):
        return None
    ax = first.block_axis
    shape = list(first.shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    if axis == ax:
        if any(a.shape[ax] % first.format.block_size for a in arrays[:-1]):
            return None
        lead_axis = first.packed.ndim - 1
    else:
        lead_axis = _lead_axis(axis, ax)
    packed = np.concatenate([a.packed for a in arrays], axis=lead_axis)
    scales = np.concatenate([a.canonical_scales for a in arrays], axis=lead_axis)
    return rebuild(first, packed, scales, tuple(shape), ax, arrays)


def stack(arrays: Sequence[MXArray], axis: int) -> MXArray | None:
    """Stack same-format, same-shape MX arrays blocked along the same axis on a new axis."""
    first = arrays[0]
    if any(a.format is not first.format or a.block_axis != first.block_axis
           or a.shape != first.shape for a in arrays):
        return None
    ax = first.block_axis + (axis <= first.block_axis)
    lead_axis = axis if axis < ax else axis - 1
    packed = np.stack([a.packed for a in arrays], axis=lead_axis)
    scales = np.stack([a.canonical_scales for a in arrays], axis=lead_axis)
    shape = first.shape[:axis] + (len(arrays),) + first.shape[axis:]
    return rebuild(first, packed, scales, shape, ax, arrays)


def broadcast_to(x: MXArray, shape: tuple[int, ...]) -> MXArray | None:
    """Broadcast along new leading axes and size-1 non-block axes (None if the block
    axis itself would have to grow)."""
    ax = x.block_axis + len(shape) - x.ndim
    if ax < 0 or shape[ax] != x.shape[x.block_axis]:
        return None
    lead = shape[:ax] + shape[ax + 1:]
    packed = np.broadcast_to(x.packed, lead + x.packed.shape[-1:])
    scales = np.broadcast_to(x.canonical_scales, lead + x.canonical_scales.shape[-1:])
    return rebuild(x, packed, scales, shape, ax)
