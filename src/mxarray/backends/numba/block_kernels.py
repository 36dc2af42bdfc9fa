"""Kernels of the block formats in general (MX9/MX6/MX4, NVFP4, registered formats).

Generic over everything :func:`mxarray.formats.register` allows: any element kind
(float, two's-complement int, sign-magnitude), block and sub-block size, microexponent
width, power-of-two (E8M0 or d-bit exponent) or UE4M3 block scale, "saturate" or
"promote" overflow; every format fact arrives as a record of
:mod:`mxarray.backends.numba.params`.  These kernels cover every input and rounding
(float64 values, stochastic rounding, "promote"); the per-format kernels of
:mod:`mxarray.backends.numba.pow2_kernels` take the common cases faster.

Power-of-two scales work on float64 bit patterns with the exact integer helpers of
:mod:`mxarray.backends.numba.bits`, so the shared exponent, each sub-block's
microexponent and every rounding mode (stochastic with the SplitMix64 index included)
follow the reference bit for bit.  UE4M3 scales (not powers of two) round by exact
float64 comparisons with the scaled grid's bounds: a bound times a divisor has at most
8 + 28 significant bits and never leaves float64's range.

Codes are *unpacked codes* (element bits, the sub-block's microexponent above them) in
uint16 rows, or packed rows in the spec's block layout: the elements' LSB-first bit
stream, then the block's microexponents (:func:`_pack_row`, :func:`_unpack_row`).
Dequantization and matmul panels look each unpacked code up in the format's exact
decode table and multiply by the block's scale value: one rounding to the output type.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

from ..._kernel_codes import ELEMENT_KIND_CODES
from .bits import (EVEN, NEAREST, STOCHASTIC, TOWARD_ZERO, WIDE, block_number, exponent_of,
                   round_shift, split_bits)

__all__ = [
    "quantize_pow2_rows",
    "quantize_ue4m3_rows",
    "dequantize_table_rows",
    "decode_panel_table",
    "pack_rows",
    "unpack_rows",
    "magnitude",
    "signed_code",
]

_FLOAT, _INT = ELEMENT_KIND_CODES["float"], ELEMENT_KIND_CODES["int"]
_CHUNK = 256  # blocks per parallel work item
_ROW_CHUNK = 16  # operand rows per parallel work item of decode_panel_table
_LINEAR = 16  # grids with at most this many bounds are counted, larger ones bisected


@nb.njit(cache=True, inline="always")
def _pack_row(codes, bits, sub_size, sub_bits, element_bytes, dst):
    """Pack one block of unpacked ``codes`` into the bytes ``dst`` (spec block layout)."""
    for j in range(dst.shape[0]):
        dst[j] = 0
    emask = (np.int64(1) << bits) - 1
    for i in range(codes.shape[0]):
        pos = i * bits
        field = (np.int64(codes[i]) & emask) << (pos & 7)
        dst[pos >> 3] |= np.uint8(field & 0xFF)
        if (pos & 7) + bits > 8:
            dst[(pos >> 3) + 1] |= np.uint8(field >> 8)
    if sub_bits:
        for j in range(codes.shape[0] // sub_size):
            pos = j * sub_bits  # sub_bits divides 8: a field never straddles bytes
            d = np.int64(codes[j * sub_size]) >> bits
            dst[element_bytes + (pos >> 3)] |= np.uint8(d << (pos & 7))


@nb.njit(cache=True, inline="always")
def _unpack_row(src, lanes, codes):
    """Inverse of :func:`_pack_row`: one block's bytes ``src`` into unpacked ``codes``.

    ``lanes`` (:func:`mxarray.backends.numba.params.unpack_lanes`) holds, per
    element, where its bits lie: the element field is ``(src[lo] | (src[hi] & hi_mask)
    << 8) >> shift`` under ``element_mask``, the microexponent ``src[d_byte] >> d_shift``
    under ``d_mask``; every index lies inside the block, and the loop has no branch.
    """
    lo, hi, hi_mask, shift = lanes[0], lanes[1], lanes[2], lanes[3]
    d_byte, d_shift, masks = lanes[4], lanes[5], lanes[6]
    element_mask, d_mask, bits = masks[0], masks[1], masks[2]
    for i in range(codes.shape[0]):
        word = np.int64(src[lo[i]]) | ((np.int64(src[hi[i]]) & hi_mask[i]) << 8)
        d = (np.int64(src[d_byte[i]]) >> d_shift[i]) & d_mask
        codes[i] = ((word >> shift[i]) & element_mask) | (d << bits)


@nb.njit(cache=True, inline="always")
def _round(sig, sh, rounding, seed, index):
    """:func:`round_shift` with the deterministic modes branch-free: ``sig / 2**sh``
    (``0 <= sig < 2**53``) plus half a step (less one, plus the kept lsb, for ties to
    even; nothing toward zero), shifted right.  Shifts are capped at 62, where
    nothing of ``sig`` or of half a step is left (no int64 overflow)."""
    if rounding == STOCHASTIC:
        return round_shift(sig, sh, rounding, seed, index)
    if sh <= 0:
        return sig << (-sh)  # exact: nothing is shifted out
    sh = min(sh, 62)
    half = (np.int64(1) << (sh - 1)) if rounding != TOWARD_ZERO else np.int64(0)
    tie = ((sig >> sh) & 1) - 1 if rounding == EVEN else np.int64(0)
    return (sig + half + tie) >> sh


@nb.njit(cache=True, inline="always")
def magnitude(u, x, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, kind, m, emax,
              emin, max_code, rounding, seed, index):
    """Magnitude code of the float64 bits ``u`` against exponent ``x``.

    Exact, in any rounding mode; a result above ``max_code`` means the rounded
    magnitude exceeds the largest one (the caller saturates or promotes).
    """
    sig, p, e = split_bits(u & abs_mask, in_mant, in_bias, mant_mask, exp_shift_mask)
    if sig == 0:
        return np.int64(0)
    if kind == _FLOAT:  # float: the element's binade sets the grid step
        e_elem = e - x
        if e_elem > emax:
            return np.int64(max_code + 1)
        e_elem = max(e_elem, emin)
        k = _round(sig, x + e_elem - m - p, rounding, seed, index)
        return ((e_elem - emin) << m) + k
    step = x - m  # integers: one uniform grid
    if e - step >= WIDE:
        return np.int64(max_code + 1)
    return _round(sig, step - p, rounding, seed, index)


@nb.njit(cache=True, inline="always")
def signed_code(k, negative, kind, max_code, sign_bit, code_mask):
    """Saturated magnitude ``k`` with its sign: a sign bit (float, sign-magnitude; -0
    kept) or two's complement (int)."""
    k = min(k, np.int64(max_code))
    if kind == _INT:
        return (-k if negative else k) & code_mask
    return k | (sign_bit if negative else 0)


@nb.njit(cache=True, parallel=True)
def quantize_pow2_rows(bits, inp, el, sc, subs, mode, block_ids, packed, out, scales):
    """Quantize ``(n, bs)`` float64 bit patterns with a power-of-two block scale.

    Per block: scale byte ``nan_code`` and zero codes if any element is NaN or Inf;
    else the shared exponent X of the scale mode, clamped to ``[min_x, max_x]``; per
    sub-block of ``sub_size`` elements the microexponent ``D = clamp(X - X_j, 0,
    2**sub_bits - 1)`` (``X_j`` the unclamped exponent of its maximum, 0 for an all-zero
    sub-block); each element rounded against ``X - D``, and with ``promote`` D lowered
    while the sub-block overflows.  Without sub-blocks pass ``sub_size = bs`` and
    ``sub_bits = 0``.  Writes unpacked codes ``element | D << elem_bits`` (``packed``
    False; ``out`` uint16 ``(n, bs)``) or packed block rows (``out`` uint8).
    Stochastic draws use the index ``block_number(b) * bs + i``.  Records: ``inp``
    :class:`~.params.InputBits` (float64), ``el`` :class:`~.params.ElementGrid`, ``sc``
    :class:`~.params.ScaleRange`, ``subs`` :class:`~.params.SubBlocks`, ``mode``
    :class:`~.params.Modes`.
    """
    in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, inf_bits, _ = inp
    kind, elem_bits, m, emax, emin, max_code, sign_bit, code_mask, rceil_emax, rceil_sig53 = el
    min_x, max_x, scale_bias, nan_code = sc
    sub_size, sub_bits, promote, element_bytes = subs
    scale_mode, rounding, seed = mode
    n, bs = bits.shape
    d_max = (1 << sub_bits) - 1
    sign_shift = np.uint64(63)
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        mags = np.empty(bs, dtype=np.int64)
        codes = np.empty(bs, dtype=np.int64)
        for b in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            row = bits[b]
            amax = np.uint64(0)
            for i in range(bs):
                amax = max(amax, row[i] & abs_mask)
            if amax >= inf_bits:
                scales[b] = nan_code
                for j in range(out.shape[1]):
                    out[b, j] = 0
                continue
            x = np.int64(min_x)
            if amax != 0:
                x = min(max(exponent_of(amax, in_mant, in_bias, mant_mask, exp_shift_mask,
                                        scale_mode, m, emax, rceil_emax, rceil_sig53),
                            min_x), max_x)
            scales[b] = x + scale_bias
            first = block_number(block_ids, b) * np.uint64(bs)
            for j0 in range(0, bs, sub_size):
                d = np.int64(0)
                if d_max:
                    sub_max = np.uint64(0)
                    for i in range(j0, j0 + sub_size):
                        sub_max = max(sub_max, row[i] & abs_mask)
                    if sub_max != 0:
                        xj = exponent_of(sub_max, in_mant, in_bias, mant_mask, exp_shift_mask,
                                         scale_mode, m, emax, rceil_emax, rceil_sig53)
                        d = min(max(x - xj, 0), d_max)
                while True:
                    over = False
                    for i in range(j0, j0 + sub_size):
                        k = magnitude(row[i], x - d, in_mant, in_bias, mant_mask,
                                      exp_shift_mask, abs_mask, kind, m, emax, emin, max_code,
                                      rounding, seed, first + np.uint64(i))
                        mags[i] = k
                        over = over or k > max_code
                    if not (promote and over and d > 0):
                        break
                    d -= 1  # a coarser exponent for the whole sub-block
                for i in range(j0, j0 + sub_size):
                    negative = (row[i] >> sign_shift) != 0
                    codes[i] = (signed_code(mags[i], negative, kind, max_code, sign_bit, code_mask)
                                | (d << elem_bits))
            _store_block(codes, packed, elem_bits, sub_size, sub_bits, element_bytes, out, b)


@nb.njit(cache=True, inline="always")
def _store_block(codes, packed, elem_bits, sub_size, sub_bits, element_bytes, out, b):
    """Row ``b`` of ``out``: the block's packed bytes, or its unpacked codes."""
    if packed:
        _pack_row(codes, elem_bits, sub_size, sub_bits, element_bytes, out[b])
    else:
        for i in range(codes.shape[0]):
            out[b, i] = codes[i]


@nb.njit(cache=True, inline="always")
def _grid_index(a, d, bounds, rounding):
    """Index of ``a / d`` rounded onto a grid starting at 0, exactly, saturating.

    ``bounds`` are the grid's midpoints (``rounding`` 0 even, 1 nearest) or its values
    after 0 (2 toward zero), ascending; ``a >= 0``, ``d > 0`` and every ``bounds[k] * d``
    is exact in float64.  The index is the number of bounds below ``a / d`` (at or
    below for toward zero): counted for small grids, bisected otherwise.  A tie with a
    midpoint goes up for nearest and to the even index for even.
    """
    lo, hi = 0, bounds.shape[0]
    if hi <= _LINEAR:  # small grids: a branch-free count
        for j in range(hi):
            t = bounds[j] * d
            lo += np.int64(a > t) | np.int64(rounding == TOWARD_ZERO and a == t)
        hi = lo
    while lo < hi:
        mid = (lo + hi) >> 1
        t = bounds[mid] * d
        if a > t or (rounding == TOWARD_ZERO and a == t):
            lo = mid + 1
        else:
            hi = mid
    tie = rounding != TOWARD_ZERO and lo < bounds.shape[0] and a == bounds[lo] * d
    if tie and (rounding == NEAREST or (lo & 1) == 1):
        lo += 1
    return np.int64(lo)


@nb.njit(cache=True, parallel=True)
def quantize_ue4m3_rows(v, grid, el, rounding, nan_code, packed, element_bytes, out, scales):
    """Quantize ``(n, bs)`` float64 values with UE4M3 block scales (two-level, NVFP4).

    Per block: scale byte ``nan_code`` and zero codes if any element is NaN or Inf;
    else the scale code is ``amax / scale_unit`` (``scale_unit`` = element max times
    the tensor scale) rounded to nearest-even on ``scale_grid`` (``scale_bounds`` its
    midpoints), saturating; each element magnitude is rounded onto the element grid
    (``element_bounds``, see :func:`_grid_index`) against the divisor
    ``scale_grid[code] * tensor_scale``; a zero divisor keeps only the signs.  Output
    as in :func:`quantize_pow2_rows` (no sub-blocks).
    """
    scale_unit, tensor_scale, scale_grid, scale_bounds, element_bounds = grid
    kind, elem_bits, _, _, _, max_code, sign_bit, code_mask, _, _ = el
    n, bs = v.shape
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        codes = np.empty(bs, dtype=np.int64)
        for b in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            row = v[b]
            amax = 0.0
            finite = True
            for i in range(bs):
                a = abs(row[i])
                finite = finite and a < np.inf  # False for Inf and NaN
                amax = max(amax, a)
            if not finite:
                scales[b] = nan_code
                for j in range(out.shape[1]):
                    out[b, j] = 0
                continue
            s = _grid_index(amax, scale_unit, scale_bounds, EVEN)
            scales[b] = s
            divisor = scale_grid[s] * tensor_scale  # exact
            for i in range(bs):
                k = np.int64(0)
                if divisor > 0:
                    k = _grid_index(abs(row[i]), divisor, element_bounds, rounding)
                codes[i] = signed_code(k, np.signbit(row[i]), kind, max_code, sign_bit, code_mask)
            _store_block(codes, packed, elem_bits, bs, 0, element_bytes, out, b)


@nb.njit(cache=True, inline="always")
def _decode_block(src, packed, lanes, table, scale, codes, dst):
    """``dst[i] = table[code_i] * scale`` for one block (packed bytes or unpacked codes)."""
    if packed:
        _unpack_row(src, lanes, codes)
        for i in range(dst.shape[0]):
            dst[i] = table[codes[i]] * scale
    else:
        for i in range(dst.shape[0]):
            dst[i] = table[src[i]] * scale


@nb.njit(cache=True, parallel=True)
def dequantize_table_rows(src, scales, packed, lanes, table, scale_values, out):
    """``out[b, i] = table[code] * scale_values[scales[b]]`` for ``(n, bs)`` blocks.

    ``table`` (float64) holds the exact value of every unpacked code, ``scale_values``
    (float64) the exact value of every scale byte (tensor scale included, NaN for NaN
    and invalid bytes); their product is exact in float64 and the store into ``out``
    (float32 or float64) rounds it once.  ``src`` holds packed block rows (``packed``)
    or unpacked codes; ``lanes`` locates each element's bits (:func:`_unpack_row`).
    """
    n, bs = out.shape
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        codes = np.empty(bs, dtype=np.int64)
        for b in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            _decode_block(src[b], packed, lanes, table, scale_values[scales[b]], codes, out[b])


@nb.njit(cache=True, parallel=True)
def decode_panel_table(packed, scales, row0, e0, bs, lanes, table, scale_values, out):
    """Elements ``e0 .. e0 + out.shape[1]`` of rows ``row0 ..`` of a packed matmul operand.

    ``packed`` is ``(R, KB * bytes_per_block)`` uint8 and ``scales`` ``(R, KB)`` (block
    size ``bs``); each element is ``table[code] * scale_values[scale]`` in ``out``'s
    dtype (the caller makes sure that is exact).  The window may start and end inside
    blocks, so operands of different block sizes share panels.
    """
    rows, width = out.shape
    if width == 0:
        return
    bytes_per_block = packed.shape[1] // scales.shape[1]
    first, last = e0 // bs, (e0 + width - 1) // bs
    for c in prange((rows + _ROW_CHUNK - 1) // _ROW_CHUNK):
        codes = np.empty(bs, dtype=np.int64)
        for r in range(c * _ROW_CHUNK, min(rows, (c + 1) * _ROW_CHUNK)):
            src = packed[row0 + r]
            dst = out[r]
            for blk in range(first, last + 1):
                base = blk * bytes_per_block
                _unpack_row(src[base: base + bytes_per_block], lanes, codes)
                s = scale_values[scales[row0 + r, blk]]
                for e in range(max(blk * bs, e0), min((blk + 1) * bs, e0 + width)):
                    dst[e - e0] = table[codes[e - blk * bs]] * s


@nb.njit(cache=True, parallel=True)
def pack_rows(codes, elem_bits, sub_size, sub_bits, element_bytes, out):
    """Pack ``(n, bs)`` unpacked codes into ``(n, bytes_per_block)`` block rows."""
    for b in prange(codes.shape[0]):
        _pack_row(codes[b], elem_bits, sub_size, sub_bits, element_bytes, out[b])


@nb.njit(cache=True, parallel=True)
def unpack_rows(packed, lanes, out):
    """Inverse of :func:`pack_rows`: ``(n, bytes_per_block)`` rows into ``(n, bs)`` codes."""
    for b in prange(packed.shape[0]):
        _unpack_row(packed[b], lanes, out[b])


_AMAX_CHUNK = 1 << 16  # elements per parallel work item of finite_magnitude_max


@nb.njit(cache=True, parallel=True)
def finite_magnitude_max(bits, mask, nonfinite):  # pragma: no cover - compiled
    """Largest ``b & mask`` below ``nonfinite`` over the 1-D unsigned ``bits`` (0 if none):
    one read of the input, no temporary (see ``Backend.finite_magnitude_max``)."""
    n = bits.size
    chunks = (n + _AMAX_CHUNK - 1) // _AMAX_CHUNK
    tops = np.zeros(max(chunks, 1), dtype=bits.dtype)
    zero = mask - mask
    for c in prange(chunks):
        # a slice and a compare-and-keep vectorise; indexing bits with a loop bound
        # from min() and max(top, ...) did not (5x slower, measured)
        piece = bits[c * _AMAX_CHUNK : min(n, (c + 1) * _AMAX_CHUNK)]
        top = zero
        for i in range(piece.size):
            v = piece[i] & mask
            v = v if v < nonfinite else zero
            if v > top:
                top = v
        tops[c] = top
    return tops.max()
