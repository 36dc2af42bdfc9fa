"""Reading and writing parts of an MXArray in time proportional to the blocks touched.

``read(a, key)`` decodes only the blocks that hold an element of ``a[key]``;
``write(a, key, value)`` decodes, updates and requantizes only the blocks that hold a
written element, on the active backend, and stores them into ``a``'s storage in place
(copying the storage first, once, when a view or another array shares it: see
:meth:`mxarray.MXArray._write_blocks`).  Nothing is cached: an MXArray's memory stays
its packed bytes and scales.

A *basic* key (integers, slices, ``None``, ``Ellipsis``) selects a box of the logical
array; the blocks under that box are the *window*.  Integer and slice components of
axes other than the block axis select storage rows directly (a strided view), and on the
block axis they select a run of whole blocks (or, for a step longer than a block, just
the blocks holding a selected element).  The key is then rewritten relative to the
window, so ``window_values[local_key]`` is exactly ``values[key]``.  Any other key
(integer or boolean arrays) works on a window of every block.  A write whose window
holds more than ``core._PIECE_ELEMENTS`` elements goes in pieces along its outermost
sliced axis, so its memory is bounded as quantize's is.

The backend calls live in :func:`_decode` and :func:`_encode`: the backend that
:func:`mxarray.core.backend_for` picks for the format (the active one, unless it lacks
the format and the user named none), with the option records of
:mod:`mxarray.backends.base`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import core
from ._random import new_seed
from .array import MXArray
from .backends.base import DequantizeOptions
from .layout import lead_shape

__all__ = ["expand_key", "read", "write"]


def expand_key(key: Any, ndim: int) -> list[Any]:
    """The index as a list: one component per logical axis, plus its ``None`` entries
    (an ``Ellipsis`` is replaced by full slices; missing trailing axes get full slices).

    Raises
    ------
    IndexError
        If the key indexes more axes than ``ndim``.
    """
    parts = list(key) if isinstance(key, tuple) else [key]
    consuming = sum(p is not None and p is not Ellipsis for p in parts)
    if consuming > ndim:
        raise IndexError(f"too many indices for an array of {ndim} dimension(s)")
    ellipses = [i for i, p in enumerate(parts) if p is Ellipsis]
    if ellipses:
        i = ellipses[0]
        parts[i:i + 1] = [slice(None)] * (ndim - consuming)
    else:
        parts += [slice(None)] * (ndim - consuming)
    return parts


_EVERY = slice(None)
"""The block-axis part of the window of every block (used for keys that are not basic)."""


@dataclass(frozen=True)
class _Window:
    """The blocks under a key, and the key relative to them.

    ``lead`` holds one storage index (a slice) per non-block axis; ``blocks`` the blocks
    along the block axis, a slice (a run) or an array of block numbers; ``positions``
    None, or (with an array of blocks) where the selected elements sit along the
    window's block axis, in key order; ``local_key`` is the key relative to the window
    (relative to ``take(window, positions)`` when ``positions`` is set); ``outputs``
    holds, per ``lead`` entry, the dimension of the selection it gives (None for an
    integer).
    """

    lead: tuple[Any, ...]
    blocks: Any
    positions: Any
    local_key: tuple[Any, ...]
    outputs: tuple[int | None, ...] = ()

    @property
    def grid(self) -> tuple[Any, ...]:
        """The window as an index into the canonical block grid ``lead + (n_blocks,)``."""
        return self.lead + (self.blocks,)


def _block_axis_part(p: Any, span: range, size: int) -> tuple[Any, Any, Any]:
    """Blocks, positions and local component of block-axis component ``p`` (``span``:
    the element indices it selects)."""
    if not len(span):
        return slice(0, 0), None, slice(0, 0)
    if isinstance(p, slice) and abs(span.step) > size:  # blocks in between: skip
        elements = np.arange(span.start, span.stop, span.step)
        return elements // size, np.arange(len(span)) * size + elements % size, slice(None)
    low, high = min(span[0], span[-1]), max(span[0], span[-1])
    offset = low // size * size
    if not isinstance(p, slice):
        return slice(low // size, high // size + 1), None, span.start - offset
    end = span.stop - offset
    local = slice(span.start - offset, end if end >= 0 else None, span.step)
    return slice(low // size, high // size + 1), None, local


def _window(a: MXArray, key: Any) -> _Window:
    """The window of ``key`` (every block if the key is not basic).

    Raises
    ------
    IndexError
        If an integer is out of range or there are too many indices.
    """
    parts = expand_key(key, a.ndim)
    if any(not (p is None or isinstance(p, slice) or
                (isinstance(p, int) and not isinstance(p, bool))) for p in parts):
        return _Window((slice(None),) * (a.ndim - 1), _EVERY, None, key)
    axis, out, lead, local, outputs = 0, 0, [], [], []
    blocks = positions = None
    for p in parts:
        if p is None:
            local.append(None)
            out += 1
            continue
        n = a.shape[axis]
        if isinstance(p, slice):
            span = range(*p.indices(n))
        else:
            if not -n <= p < n:
                raise IndexError(f"index {p} is out of bounds for axis {axis} with size {n}")
            span = range(p % n, p % n + 1)
        if axis == a.block_axis:
            blocks, positions, part = _block_axis_part(p, span, a.format.block_size)
            local.append(part)
        else:
            lead.append(p if isinstance(p, slice) else slice(span.start, span.stop))
            local.append(slice(None) if isinstance(p, slice) else 0)
            outputs.append(out if isinstance(p, slice) else None)
        out += isinstance(p, slice)
        axis += 1
    return _Window(tuple(lead), blocks, positions, tuple(local), tuple(outputs))


def _window_blocks(a: MXArray, w: _Window, dtype: Any) -> Any:
    """Values of the window's blocks, canonical: ``lead' + (blocks, block_size)``, the
    padding zeroed.  Every view of ``a``'s storage taken here dies on return."""
    fmt = a.format
    n_blocks = a.canonical_scales.shape[-1]
    packed = a.packed.reshape(a.packed.shape[:-1] + (n_blocks, fmt.bytes_per_block))[w.grid]
    scales = a.canonical_scales[w.grid]
    values = _decode(a, packed.reshape(-1, fmt.bytes_per_block), scales.reshape(-1), dtype)
    rows = values.reshape(scales.shape + (fmt.block_size,))
    tail = a.shape[a.block_axis] - (n_blocks - 1) * fmt.block_size
    if tail < fmt.block_size:
        last = np.arange(n_blocks)[w.blocks] == n_blocks - 1
        rows[..., last, tail:] = 0  # the padding, as quantize adds it (NaN blocks: NaN)
    return rows


def _logical(a: MXArray, w: _Window, rows: Any) -> Any:
    """The logical view of canonical window blocks: the block axis back in its place (and,
    for the window of every block, cut to the logical length: the key is not relative)."""
    flat = rows.reshape(rows.shape[:-2] + (rows.shape[-2] * rows.shape[-1],))
    if w.blocks is _EVERY:
        flat = flat[..., :a.shape[a.block_axis]]
    return flat if a.block_axis == a.ndim - 1 else a._xp().moveaxis(flat, -1, a.block_axis)


def _selection_key(a: MXArray, w: _Window) -> tuple[Any, ...]:
    """The index of ``w.positions`` along the block axis of the window's values."""
    return (slice(None),) * a.block_axis + (w.positions,)


def read(a: MXArray, key: Any) -> Any:
    """``a[key]`` as float32 values, decoding only the blocks that hold them.

    ``key`` is a backend key: integers, slices, ``None``, ``Ellipsis``, integer or
    boolean arrays of the storage's array module.  The result is an array of that
    module (a NumPy array for host storage).

    Raises
    ------
    IndexError
        If an index is out of range.
    """
    w = _window(a, key)
    values = _logical(a, w, _window_blocks(a, w, np.float32))
    if w.positions is not None:
        values = values[_selection_key(a, w)]
    return a._xp().asarray(values[w.local_key])


def write(a: MXArray, key: Any, value: Any) -> None:
    """``a[key] = value``: requantize only the blocks that hold a written element.

    The touched blocks are decoded (float64), updated, and quantized on the active
    backend with ``a``'s recorded rounding and scale mode ("even"/"floor" when unknown)
    and its tensor scale.  With stochastic rounding they draw, under ``a``'s seed (a
    fresh one, then recorded, if none is), the random bits a quantization of the whole
    updated array would give them (their canonical block numbers are the block ids), so
    the result equals requantizing the whole array.  Other blocks keep their bytes.

    ``value`` is a Python scalar or an array of the storage's module that broadcasts to
    ``a[key]``'s shape.

    Raises
    ------
    IndexError
        If an index is out of range.
    ValueError
        If ``value`` does not broadcast to the selection.
    """
    w = _window(a, key)
    for piece, part in _pieces(a, w, value):
        _write_window(a, piece, part)


def _pieces(a: MXArray, w: _Window, value: Any) -> Any:
    """``(window, value)`` pairs that split a write into windows of at most
    ``core._PIECE_ELEMENTS`` elements, along the outermost sliced axis other than the
    block axis, so that a large write's memory is bounded as quantize's is.  A window of
    every block, or one without such an axis, goes whole."""
    if w.blocks is _EVERY:
        yield w, value
        return
    lengths, along = _extent(a, w)
    elements = math.prod(lengths) * along
    k = next((i for i, o in enumerate(w.outputs) if o is not None and lengths[i] > 1), None)
    if k is None or elements <= core._PIECE_ELEMENTS:
        yield w, value
        return
    step = max(1, core._PIECE_ELEMENTS // (elements // lengths[k]))
    if not isinstance(value, (int, float)):
        value = a._xp().broadcast_to(value, _selection_shape(a, w))
    rows = range(*w.lead[k].indices(a.shape[_logical_axis(a, k)]))
    for first in range(0, len(rows), step):
        run = rows[first:first + step]
        lead = w.lead[:k] + (slice(run.start, run.stop if run.stop >= 0 else None,
                                   run.step),) + w.lead[k + 1:]
        part = value if isinstance(value, (int, float)) else \
            value[(slice(None),) * w.outputs[k] + (slice(first, first + step),)]
        yield dataclasses.replace(w, lead=lead), part


def _logical_axis(a: MXArray, k: int) -> int:
    """The logical axis of ``lead`` entry ``k``."""
    return k if k < a.block_axis else k + 1


def _extent(a: MXArray, w: _Window) -> tuple[list[int], int]:
    """The window's length along each ``lead`` entry, and along the block axis."""
    lead = [len(range(*s.indices(n))) for s, n in
            zip(w.lead, lead_shape(a.shape, a.block_axis))]
    return lead, len(np.arange(a.canonical_scales.shape[-1])[w.blocks]) * a.format.block_size


def _selection_shape(a: MXArray, w: _Window) -> tuple[int, ...]:
    """The shape of the selection a basic window's local key makes (nothing allocated)."""
    lead, along = _extent(a, w)
    window = np.broadcast_to(np.empty((), dtype=bool),
                             tuple(lead[:a.block_axis]) + (along,) + tuple(lead[a.block_axis:]))
    if w.positions is not None:
        window = window[_selection_key(a, w)]
    return window[w.local_key].shape


def _write_window(a: MXArray, w: _Window, value: Any) -> None:
    """:func:`write` for one window."""
    rows = _window_blocks(a, w, np.float64)
    xp = a._xp()
    written = xp.zeros(rows.shape, dtype=bool)
    values, mask = _logical(a, w, rows), _logical(a, w, written)  # views
    if w.positions is None:
        values[w.local_key] = value
        mask[w.local_key] = True
    else:  # write into the selected positions, then put them back
        where = _selection_key(a, w)
        chosen, picked = values[where], mask[where]
        chosen[w.local_key] = value
        picked[w.local_key] = True
        values[where], mask[where] = chosen, picked
    touched = written.any(axis=-1)
    rows = rows[touched]
    if not rows.shape[0]:
        return
    rounding = a.rounding or "even"
    seed = ids = None
    if rounding == "stochastic":
        seed = a.seed if a.seed is not None else new_seed()
        ids = _block_ids(a, w, touched.shape)[touched]
    packed, scales = _encode(a, rows, ids, rounding, a.scale_mode or "floor", seed)
    a._write_blocks(w.grid, touched, packed, scales, seed)


def _block_ids(a: MXArray, w: _Window, shape: tuple[int, ...]) -> np.ndarray:
    """The canonical block numbers of the window's blocks, as a uint64 array of ``shape``."""
    grid_shape = a.canonical_scales.shape
    axes = [np.arange(n, dtype=np.uint64)[s] for n, s in zip(grid_shape, w.grid)]
    ids = np.zeros(shape, dtype=np.uint64)
    stride = 1
    for k in range(len(axes) - 1, -1, -1):
        view = [1] * len(axes)
        view[k] = -1
        ids += axes[k].reshape(view) * np.uint64(stride)
        stride *= grid_shape[k]
    return ids


# -- the backend calls ------------------------------------------------------------------

def _decode(a: MXArray, packed: Any, scales: Any, dtype: Any) -> Any:
    """``(n, block_size)`` values of ``n`` blocks of ``a``: packed ``(n, bytes_per_block)``
    bytes and their ``(n,)`` scales, on the backend that dequantizes ``a``."""
    be = core.backend_for(a.format, None, packed)
    options = DequantizeOptions(a.format, np.dtype(dtype), a.tensor_scale)
    return be.dequantize(be.xp.ascontiguousarray(packed), be.xp.ascontiguousarray(scales),
                         options)


def _encode(a: MXArray, rows: Any, ids: np.ndarray | None, rounding: str, scale_mode: str,
            seed: int | None) -> tuple[Any, Any]:
    """Packed ``(n, bytes_per_block)`` bytes and ``(n,)`` scales of ``(n, block_size)``
    float64 rows in ``a``'s format and tensor scale; ``ids`` numbers the blocks in ``a``
    for stochastic rounding (None otherwise)."""
    be = core.backend_for(a.format, None, rows)
    options = core.quantize_options(a.format, rounding=rounding, scale_mode=scale_mode,
                                    seed=seed, tensor_scale=a.tensor_scale)
    if rounding == "stochastic":
        options = options.with_block_ids(be.xp.asarray(ids))
    return be.quantize(be.xp.ascontiguousarray(rows), options)
