"""Tiled copies between views whose contiguous axes differ (the block axis moved last).

Moving the block axis last is a transpose when the block axis is not the input's last
axis: NumPy's copy of such a view walks one side with a large stride and is about twenty
times slower than a plain copy.  :func:`copy_tiles` copies 64 x 64 tiles in 8 x 8 blocks:
each block reads eight short contiguous runs and writes eight.  Every array reaches the
kernel as a flat run of its memory (unsigned integers of its item size, so float16 and
bfloat16 copy as bits) with element steps, so one compiled kernel per item size serves
every layout: batch dimensions, reversed axes, zero and non-unit strides.

Where both sides step by one item (the source along its rows, the destination along its
columns: the block axis moved last, or back), a block moves as eight vector loads, one
shuffle and eight vector stores.  Measured on one Zen 4 core, 4096 x 4096: that is 1.6x
faster than item by item for 2-byte items and 1.1x for 8-byte ones; 4-byte items gain
nothing, their copy is bound by memory traffic (12 ms against 5 ms for a plain copy).
Unit steps passed as arguments run as fast as steps fixed at compile time, and 16- to
256-wide tiles or 4- to 16-wide blocks are no faster.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from numpy.lib.stride_tricks import as_strided

__all__ = ["copy_tiles", "flat_view", "tileable"]

_TILE = 64
_BLOCK = 8  # divides _TILE
_U = np.uint64


@intrinsic
def _swap_block(typingctx, src, s0, s_row, dst, d0, d_col):
    """``dst[d0 + i + j*d_col] = src[s0 + i*s_row + j]`` for ``i, j < 8`` (LLVM IR): eight
    vector loads, one 8 x 8 shuffle, eight vector stores."""
    sig = types.void(src, types.uint64, types.uint64, dst, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        src_v, s0, s_row, dst_v, d0, d_col = args
        width = signature.args[0].dtype.bitwidth
        vec = ir.VectorType(ir.IntType(width), _BLOCK)
        base = [context.make_array(signature.args[k])(context, builder, v).data
                for k, v in ((0, src_v), (3, dst_v))]

        def at(ptr, first, step, k):
            offset = builder.add(first, builder.mul(step, ir.Constant(step.type, k)))
            return builder.bitcast(builder.gep(ptr, [offset]), vec.as_pointer())

        def join(a, b):
            n = a.type.count
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 2 * n),
                                                            list(range(2 * n))))

        parts = [builder.load(at(base[0], s0, s_row, i), align=width // 8) for i in range(_BLOCK)]
        while len(parts) > 1:  # all 64 items in one vector, row after row
            parts = [join(parts[k], parts[k + 1]) for k in range(0, len(parts), 2)]
        for j in range(_BLOCK):
            column = builder.shuffle_vector(parts[0], parts[0], ir.Constant(
                ir.VectorType(ir.IntType(32), _BLOCK), [_BLOCK * i + j for i in range(_BLOCK)]))
            builder.store(column, at(base[1], d0, d_col, j), align=width // 8)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(parallel=True, cache=True, nogil=True)
def copy_tiles(src, s_off, s_row, s_col, dst, d_off, d_row, d_col,
               rows, cols):  # pragma: no cover - compiled
    """``dst[d_off[b] + i*d_row + j*d_col] = src[s_off[b] + i*s_row + j*s_col]`` for
    every ``b``, ``i < rows``, ``j < cols``, tile by tile, in parallel.

    Fastest when ``src`` is contiguous along ``j`` and ``dst`` along ``i``.  Offsets are
    computed as uint64: wrapping arithmetic gives the same index for negative steps, and
    unsigned indices spare Numba's negative-index test (measured 1.5x to 2.5x faster).
    """
    tiles_c = (cols + _TILE - 1) // _TILE
    per_batch = tiles_c * ((rows + _TILE - 1) // _TILE)
    sr, sc, dr, dc = _U(s_row), _U(s_col), _U(d_row), _U(d_col)
    shuffle = s_col == 1 and d_row == 1  # the transpose of the block axis: vector blocks
    for t in nb.prange(s_off.shape[0] * per_batch):
        b = t // per_batch
        r = t % per_batch
        i0 = (r // tiles_c) * _TILE
        j0 = (r % tiles_c) * _TILE  # consecutive tiles run along j (src's contiguous axis)
        i1 = min(i0 + _TILE, rows)
        j1 = min(j0 + _TILE, cols)
        so = _U(s_off[b])
        do = _U(d_off[b])
        if i1 - i0 == _TILE and j1 - j0 == _TILE:
            for jb in range(j0, j1, _BLOCK):  # blocks, then their items, along dst's rows
                for ib in range(i0, i1, _BLOCK):
                    s0 = so + _U(ib) * sr + _U(jb) * sc
                    d0 = do + _U(ib) * dr + _U(jb) * dc
                    if shuffle:
                        _swap_block(src, s0, sr, dst, d0, dc)
                        continue
                    for j in range(_BLOCK):
                        for i in range(_BLOCK):
                            dst[d0 + _U(i) * dr + _U(j) * dc] = src[s0 + _U(i) * sr + _U(j) * sc]
        else:
            for i in range(i0, i1):
                for j in range(j0, j1):
                    dst[do + _U(i) * dr + _U(j) * dc] = src[so + _U(i) * sr + _U(j) * sc]


def tileable(a: np.ndarray) -> bool:
    """Whether :func:`flat_view` can describe ``a``: 2-D or more, aligned, an item size of
    2, 4 or 8 bytes and strides that are whole elements (on axes longer than one)."""
    return a.ndim >= 2 and a.itemsize in (2, 4, 8) and a.flags.aligned and all(
        s % a.itemsize == 0 for n, s in zip(a.shape, a.strides) if n > 1)


def flat_view(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``a`` (:func:`tileable`) as ``(memory, offsets, row, col)`` for :func:`copy_tiles`.

    ``memory`` is a 1-D view of the unsigned integers ``a`` spans, from its lowest
    address to its highest, writeable when ``a`` is; element ``[k..., i, j]`` of ``a`` is
    ``memory[offsets[k] + i * row + j * col]``, with ``k`` the flat (C order) index of
    the leading dimensions.  Steps may be negative (a reversed view).
    """
    steps = [s // a.itemsize for s in a.strides]
    low = a[tuple(slice(n - 1, n) if s < 0 else slice(0, 1) for n, s in zip(a.shape, steps))]
    span = 1 + sum((n - 1) * abs(s) for n, s in zip(a.shape, steps))
    memory = as_strided(low.view(f"u{a.itemsize}"), shape=(span,), strides=(a.itemsize,))
    offsets = np.full(a.shape[:-2], sum((n - 1) * -s for n, s in zip(a.shape, steps) if s < 0),
                      dtype=np.int64)
    for axis, (n, s) in enumerate(zip(a.shape[:-2], steps[:-2])):
        offsets += (np.arange(n, dtype=np.int64) * s).reshape((n,) + (1,) * (a.ndim - 3 - axis))
    return memory, offsets.reshape(-1), steps[-2], steps[-1]
