"""Kernels generated per format for the general block formats (MX9/MX6/MX4, NVFP4, ...).

Each factory below takes a format's records (:mod:`mxarray.backends.numba.params`) and
returns a kernel in which every format fact (block and sub-block size, element width
and kind, microexponent width, byte layout, grid sizes) is a compile-time constant: the
facts are bound as closure variables, which Numba folds like literals, so the element
loops have constant trip counts and shifts, unroll, and run on vector lanes with no
branch per element.  Numba's disk cache keys a closure's compiled code on the values
of its closure variables, so each format compiles once per machine, on first use.

* :func:`quantize_pow2` -- float32 bits, deterministic rounding, power-of-two scales,
  sub-block microexponents, "saturate": the arithmetic of the OCP float32 kernel per
  lane, each lane at its sub-block's exponent ``X - D``, in flat phases over batches
  of blocks, packed eight codes to a word.
* :func:`quantize_ue4m3` -- float32 values, UE4M3 block scales and a tensor scale:
  each block's scaled grid bounds become exact float32 thresholds, and each element's
  code counts the thresholds at or below its magnitude bits.
* :func:`dequantize_table` -- packed blocks of any general format: unpacking with
  constant shifts and the exact decode table times the block's scale value.

Anything else (float64 inputs, stochastic rounding, "promote", unpacked codes) takes
the generic kernels of :mod:`mxarray.backends.numba.block_kernels`.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Callable

import numba as nb
import numpy as np
from numba import prange

from ..._kernel_codes import ELEMENT_KIND_CODES
from .bits import (EVEN, FLOOR, NEAREST, TOWARD_ZERO, exponent_of, float32_bits,
                   float32_from_bits, lane_code, shr32, store64)
from .block_kernels import magnitude
from .params import ElementGrid, ScaleRange, SubBlocks

__all__ = ["quantize_pow2", "quantize_ue4m3", "dequantize_table"]

_FLOAT, _INT = ELEMENT_KIND_CODES["float"], ELEMENT_KIND_CODES["int"]
_CHUNK = 1024  # blocks per parallel work item (one set of scratch buffers each)
_ROWS = 128  # blocks per batch of the quantize kernels' phases (their scratch stays in L1)
# float32's fields, as the kernels read the input bits
_MANT, _BIAS = 23, 127
_MANT_MASK, _EXP_MASK = np.uint64((1 << 23) - 1), np.uint64(0xFF)
_ABS, _INF = np.uint32(0x7FFFFFFF), np.uint32(0x7F800000)


@nb.njit(cache=True, inline="always")
def _pack_fields(src, s0, count, bits, per, out, b, d0):
    """``src[s0 : s0 + count]`` (``bits`` wide each, at most 8) as an LSB-first bit stream
    into row ``b`` of ``out`` from byte ``d0``; a last partial byte is zero-filled.

    Fields go in groups of ``per`` (:func:`_group`), which fill whole bytes, each
    gathered into one word with fixed shifts and stored byte by byte: ``count``,
    ``bits`` and ``per`` are constants of the calling kernel, so every loop unrolls.
    """
    nbytes = bits * per // 8
    for q in range(count // per):
        word = np.uint64(0)
        for t in range(per):
            word |= np.uint64(src[s0 + q * per + t]) << np.uint64(t * bits)
        for y in range(nbytes):
            out[b, d0 + q * nbytes + y] = np.uint8(word >> np.uint64(8 * y))
    tail = count % per
    if tail:
        q0 = count - tail
        word = np.uint64(0)
        for t in range(tail):
            word |= np.uint64(src[s0 + q0 + t]) << np.uint64(t * bits)
        for y in range((tail * bits + 7) // 8):
            out[b, d0 + q0 * bits // 8 + y] = np.uint8(word >> np.uint64(8 * y))


@nb.njit(cache=True, inline="always")
def _squeeze(word, bits):
    """The eight bytes of ``word`` (each below ``2**bits``, ``bits <= 8``) as eight
    ``bits``-wide fields, LSB-first, in its low ``8 * bits`` bits: pairs, then quads,
    then the two halves closed up with fixed shifts (``bits`` is a constant)."""
    w = np.uint64(word)
    w = (w & np.uint64(0x00FF00FF00FF00FF)) \
        | ((w >> np.uint64(8)) & np.uint64(0x00FF00FF00FF00FF)) << np.uint64(bits)
    w = (w & np.uint64(0x0000FFFF0000FFFF)) \
        | ((w >> np.uint64(16)) & np.uint64(0x0000FFFF0000FFFF)) << np.uint64(2 * bits)
    return (w & np.uint64(0xFFFFFFFF)) | (w >> np.uint64(32)) << np.uint64(4 * bits)


@nb.njit(cache=True, inline="always")
def _pack_words(codes, ds, j, bs, bits, n_sub, sub_bits, element_bytes, out, pos):
    """Block ``j``'s codes and microexponents (one byte each in ``codes`` and ``ds``,
    read eight at a time through their uint64 views) squeezed and stored as whole
    words at byte ``pos`` of the flat ``out``.  Each store writes up to 8 - ``bits``
    bytes past its fields, which the next store (or the next block's) overwrites; the
    caller keeps 8 bytes of room after the block."""
    for q in range(bs // 8):
        store64(out, pos + q * bits, _squeeze(codes[j * (bs // 8) + q], bits))
    for q in range(n_sub // 8):
        store64(out, pos + element_bytes + q * sub_bits,
                _squeeze(ds[j * (n_sub // 8) + q], sub_bits))


def _group(bits: int) -> int:
    """Fields of ``bits`` bits (at most 8) in the fewest whole bytes: 8 / gcd(bits, 8)."""
    return 8 // math.gcd(bits, 8)


@nb.njit(cache=True, inline="always")
def _get_bits(src, i, bits, start):
    """Field ``i`` (``bits`` wide) of the LSB-first bit stream in ``src`` from byte ``start``."""
    pos = i * bits
    byte = start + (pos >> 3)
    sh = pos & 7
    word = np.uint32(src[byte])
    if sh + bits > 8:
        word |= np.uint32(src[byte + 1]) << np.uint32(8)
    return (word >> np.uint32(sh)) & np.uint32((1 << bits) - 1)


@nb.njit(cache=True, inline="always")
def _microexponents(row, x, scale_mode, sub, d_max, el, ds):
    """Each sub-block's microexponent ``D = clamp(X - X_j, 0, d_max)`` into ``ds``, exactly
    (``el`` an :class:`~.params.ElementGrid`; an all-zero sub-block has D = 0)."""
    _, _, m, emax, _, _, _, _, rceil_emax, rceil_sig53 = el
    for j in range(ds.shape[0]):
        sub_max = np.uint32(0)
        for i in range(j * sub, (j + 1) * sub):
            sub_max = max(sub_max, np.uint32(row[i] & _ABS))
        d = np.int64(0)
        if sub_max != 0:
            xj = exponent_of(np.uint64(sub_max), _MANT, _BIAS, _MANT_MASK, _EXP_MASK,
                             scale_mode, m, emax, rceil_emax, rceil_sig53)
            d = min(max(np.int64(x) - xj, 0), d_max)
        ds[j] = np.uint8(d)


@nb.njit(cache=True, inline="always")
def _exact_codes(row, x, ds, sub, el, rounding, codes):
    """Element codes one by one with the exact integer path (blocks whose grid reaches
    below float32's normal range)."""
    kind, _, m, emax, emin, max_code, sign_bit, code_mask, _, _ = el
    for i in range(codes.shape[0]):
        k = magnitude(np.uint64(row[i]), x - np.int64(ds[i // sub]), _MANT, _BIAS,
                      _MANT_MASK, _EXP_MASK, np.uint64(_ABS), kind, m, emax, emin,
                      max_code, rounding, np.uint64(0), np.uint64(0))
        k = min(k, max_code)
        negative = (row[i] >> np.uint32(31)) != 0
        if kind == _INT:
            codes[i] = np.uint8((-k if negative else k) & code_mask)
        else:
            codes[i] = np.uint8(k | (sign_bit if negative else 0))


@functools.cache
def quantize_pow2(el: ElementGrid, sc: ScaleRange, subs: SubBlocks, bs: int
                  ) -> Callable[..., None]:
    """``kernel(bits, scale_mode, rounding, out, scales)``: ``(n, bs)`` C-contiguous
    float32 bits into packed rows ``out`` and scale bytes, rounding even, nearest or
    toward zero.

    Per block as :func:`~mxarray.backends.numba.block_kernels.quantize_pow2_rows`
    ("saturate" only): shared exponent X, each sub-block's microexponent D, and each
    element rounded at ``X - D`` with the per-lane arithmetic of the OCP float32 kernel.
    Each work item takes ``_ROWS`` blocks at a time in phases, each one loop over the batch
    (32-bit lanes, no branch per element): sub-block maxima; per block X and its scale
    byte; per sub-block D from the exponent fields (exact for scale mode floor and a
    normal sub-block maximum) and the lanes' shift base; the element codes, one byte
    each; the packing.  What the flat phases do not cover is redone block by block:
    D in other scale modes or of a subnormal sub-block maximum (exactly), non-finite
    blocks (all-zero bytes) and blocks whose grid reaches below float32's normal range
    (the exact element path).
    """
    kind, bits_, m, emax, emin, max_code, sign_bit, code_mask, rceil_emax, rceil_sig53 = el
    min_x, max_x, scale_bias, nan_code = sc
    sub, sub_bits, _, element_bytes = subs
    n_sub, d_max = bs // sub, (1 << sub_bits) - 1
    is_float, is_int = kind == _FLOAT, kind == _INT
    lsb_bias, sh_cap = _BIAS + _MANT, _MANT + 2
    x_bias = _BIAS + emax  # X_j = exponent field - x_bias for a normal maximum (floor)
    # below this effective exponent a lane may meet a subnormal input's own binade
    lowest_x = (-126 - emin) if is_float else (m - 148)
    per, d_per = _group(bits_), _group(max(sub_bits, 1))
    row_bytes = element_bytes + (n_sub * sub_bits + 7) // 8
    # the packing by whole words: eight fields at a time, little-endian stores
    words = bs % 8 == 0 and (n_sub % 8 == 0 or not d_max) and sys.byteorder == "little"
    word_subs = n_sub if d_max else 0

    @nb.njit(cache=True, parallel=True)
    def kernel(bits, scale_mode, rounding, out, scales):
        n = bits.shape[0]
        even = np.uint32(rounding == EVEN)
        up_half = np.uint32(rounding != TOWARD_ZERO)
        floor = scale_mode == FLOOR
        flat = bits.reshape(-1)
        flat_out = out.reshape(-1)
        for c in prange((n + _CHUNK - 1) // _CHUNK):
            sub_max = np.empty(_ROWS * n_sub, dtype=np.uint32)
            ds_words = np.empty((_ROWS * n_sub + 7) // 8, dtype=np.uint64)
            ds = ds_words.view(np.uint8)
            xs = np.empty(_ROWS * n_sub, dtype=np.int32)  # X of each sub-block's block
            sh_base = np.empty(_ROWS * bs, dtype=np.int32)
            code_words = np.empty((_ROWS * bs + 7) // 8, dtype=np.uint64)
            codes = code_words.view(np.uint8)
            redo = np.empty(_ROWS, dtype=np.int32)  # 2 * block + 1 if non-finite, + 0 if tiny
            for b0 in range(c * _CHUNK, min(n, (c + 1) * _CHUNK), _ROWS):
                rows = min(n, b0 + _ROWS) - b0
                src = flat[b0 * bs:(b0 + rows) * bs]
                n_redo = 0
                for s in range(rows * n_sub):
                    top = np.uint32(0)
                    for t in range(sub):
                        top = max(top, np.uint32(src[s * sub + t] & _ABS))
                    sub_max[s] = top
                odd = np.int32(0)  # blocks whose X the exponent field does not give
                for j in range(rows):
                    amax = np.uint32(0)
                    for t in range(n_sub):
                        amax = max(amax, sub_max[j * n_sub + t])
                    ef = np.int32(shr32(amax, _MANT))
                    x = min(max(ef - np.int32(x_bias), np.int32(min_x)), np.int32(max_x))
                    odd += np.int32(ef == 0 and amax != 0 or ef == 0xFF or not floor
                                    or x - d_max < lowest_x)
                    scales[b0 + j] = np.uint8(x + scale_bias)
                    for t in range(n_sub):
                        xs[j * n_sub + t] = x
                for j in range(rows if odd else 0):
                    amax = np.uint32(0)
                    for t in range(n_sub):
                        amax = max(amax, sub_max[j * n_sub + t])
                    x = np.int64(xs[j * n_sub])
                    if amax != 0 and (shr32(amax, _MANT) == 0 or not floor):
                        x = min(max(exponent_of(np.uint64(amax), _MANT, _BIAS, _MANT_MASK,
                                                _EXP_MASK, scale_mode, m, emax, rceil_emax,
                                                rceil_sig53), min_x), max_x)
                        scales[b0 + j] = x + scale_bias
                    if amax >= _INF:
                        scales[b0 + j] = nan_code
                        x = np.int64(0)
                    if amax >= _INF or x - d_max < lowest_x:
                        redo[n_redo] = 2 * j + np.int32(amax >= _INF)
                        n_redo += 1
                    for t in range(n_sub):
                        xs[j * n_sub + t] = np.int32(x)
                tiny = np.int32(0)  # subnormal sub-block maxima: their D needs the exact exponent
                for s in range(rows * n_sub):
                    top = sub_max[s]
                    ef = np.int32(shr32(top, _MANT))
                    live = np.int32(top != 0)
                    tiny += live & np.int32(ef == 0)
                    d = min(max(xs[s] - (ef - np.int32(x_bias)), np.int32(0)),
                            np.int32(d_max)) * live
                    ds[s] = np.uint8(d)
                    for t in range(sub):
                        sh_base[s * sub + t] = np.int32(xs[s] - d + np.int32(lsb_bias - m))
                if d_max and (tiny or not floor):
                    for j in range(rows):
                        row = src[j * bs:(j + 1) * bs]
                        _microexponents(row, xs[j * n_sub], scale_mode, sub, d_max, el,
                                        ds[j * n_sub:(j + 1) * n_sub])
                        for i in range(bs):
                            sh_base[j * bs + i] = np.int32(xs[j * n_sub] - ds[j * n_sub + i // sub]
                                                           + np.int32(lsb_bias - m))
                for i in range(rows * bs):
                    top = np.int32(sh_base[i] - lsb_bias + m + _BIAS)  # BIAS + X - D
                    codes[i] = lane_code(np.uint32(src[i]), top, sh_base[i], is_float, is_int, m,
                                         emin, max_code, sign_bit, code_mask, sh_cap, up_half,
                                         even)
                for r in range(n_redo):
                    j = redo[r] >> 1
                    block = codes[j * bs:(j + 1) * bs]
                    if redo[r] & 1:
                        block[:] = 0
                        ds[j * n_sub:(j + 1) * n_sub] = 0
                    else:
                        _exact_codes(src[j * bs:(j + 1) * bs], xs[j * n_sub],
                                     ds[j * n_sub:(j + 1) * n_sub], sub, el, rounding, block)
                # whole words but into the last block (their excess would leave the batch)
                for j in range(rows - 1 if words else 0):
                    _pack_words(code_words, ds_words, j, bs, bits_, word_subs,
                                sub_bits, element_bytes, flat_out, (b0 + j) * row_bytes)
                for j in range(rows - 1 if words else 0, rows):
                    _pack_fields(codes, j * bs, bs, bits_, per, out, b0 + j, 0)
                    if d_max:
                        _pack_fields(ds, j * n_sub, n_sub, sub_bits, d_per, out, b0 + j,
                                     element_bytes)

    return kernel


@functools.cache
def quantize_ue4m3(el: ElementGrid, nan_code: int, bs: int, n_scale_bounds: int,
                   n_bounds: int) -> Callable[..., None]:
    """``kernel(bits, grid, rounding, out, scales)``: ``(n, bs)`` C-contiguous float32
    bits into packed rows and UE4M3 scale bytes (``grid`` a :class:`~.params.Ue4m3Grid`
    whose element bounds number ``n_bounds``).

    As :func:`~mxarray.backends.numba.block_kernels.quantize_ue4m3_rows`: the scale code
    is ``amax / scale_unit`` rounded to nearest-even on the grid (found exactly from an
    estimate, :func:`_ue4m3_below`, and at most two midpoints), each magnitude's index
    is the number of bounds below ``|v| / divisor`` (at or below toward zero), counted
    over all bounds, and a tie with a midpoint goes up (nearest) or to the even index
    (even).  Every ``bound * divisor`` is exact in float64.  Per block each bound
    becomes a float32 threshold on magnitude bits (:func:`_threshold`), so each element
    is counted on 32-bit integer lanes.  Work items take ``_ROWS`` blocks at a time in
    phases, as :func:`quantize_pow2`'s.
    """
    kind, bits_, _, _, _, max_code, sign_bit, code_mask, _, _ = el
    is_int = kind == _INT
    per = _group(bits_)
    words = bs % 8 == 0 and sys.byteorder == "little"  # see quantize_pow2

    @nb.njit(cache=True, parallel=True)
    def kernel(bits, grid, rounding, out, scales):
        scale_unit, tensor_scale, scale_grid, scale_mid, bounds = grid
        n = bits.shape[0]
        # a tie with bound j counts as above it: toward zero, nearest, or even for odd j
        tie_up = rounding == TOWARD_ZERO or rounding == NEAREST
        flat_out = out.reshape(-1)
        for c in prange((n + _CHUNK - 1) // _CHUNK):
            code_words = np.empty((_ROWS * bs + 7) // 8, dtype=np.uint64)
            codes = code_words.view(np.uint8)
            a_max = np.empty(_ROWS, dtype=np.uint32)
            divisor = np.empty(_ROWS, dtype=np.float64)
            th = np.empty((n_bounds, _ROWS), dtype=np.uint32)
            for b0 in range(c * _CHUNK, min(n, (c + 1) * _CHUNK), _ROWS):
                rows = min(n, b0 + _ROWS) - b0
                for j in range(rows):
                    top = np.uint32(0)
                    for i in range(bs):
                        top = max(top, np.uint32(bits[b0 + j, i] & _ABS))
                    a_max[j] = top
                for j in range(rows):
                    peak = np.float64(float32_from_bits(a_max[j]))
                    # the code is _ue4m3_below's or the next: from one below, step up past
                    # each midpoint below peak (a tie: to the even code), as the bisection of
                    # quantize_ue4m3_rows
                    lo = _ue4m3_below(peak / scale_unit) - 1
                    for _ in range(2):
                        mid = scale_mid[min(max(lo, 0), n_scale_bounds - 1)] * scale_unit
                        lo += np.int64(lo < 0 or lo < n_scale_bounds
                                       and (peak > mid or peak == mid and lo & 1))
                    finite = a_max[j] < _INF
                    scales[b0 + j] = lo if finite else nan_code
                    # 0 for non-finite blocks: every code is 0
                    divisor[j] = scale_grid[lo] * tensor_scale if finite else 0.0
                for t in range(n_bounds):
                    for j in range(rows):
                        th[t, j] = _threshold(bounds[t] * divisor[j], tie_up or t & 1)
                for j in range(rows):
                    live = np.uint32(divisor[j] > 0)
                    signed = np.uint32(a_max[j] < _INF)
                    for i in range(bs):
                        u = np.uint32(bits[b0 + j, i])
                        a = np.uint32(u & _ABS)
                        k = np.uint32(0)
                        for t in range(n_bounds):
                            k += np.uint32(a >= th[t, j])
                        k = min(np.uint32(k * live), np.uint32(max_code))
                        negative = np.uint32(shr32(u, np.uint32(31)) * signed)
                        if is_int:
                            codes[j * bs + i] = np.uint8(
                                np.uint32((k ^ np.uint32(0 - negative)) + negative)
                                & np.uint32(code_mask))
                        else:
                            codes[j * bs + i] = np.uint8(k | np.uint32(negative * sign_bit))
                for j in range(rows - 1 if words else 0):
                    _pack_words(code_words, code_words, j, bs, bits_, 0, 0, 0, flat_out,
                                (b0 + j) * (bs * bits_ // 8))
                for j in range(rows - 1 if words else 0, rows):
                    _pack_fields(codes, j * bs, bs, bits_, per, out, b0 + j, 0)

    return kernel


@nb.njit(cache=True, inline="always")
def _ue4m3_below(q):
    """The UE4M3 code (0 .. 0x7E, the grid's indices) of the largest grid value at or
    below the float64 ``q >= 0``, read from the bits of ``q`` rounded to float32 (0x7E
    beyond 448).  For ``q`` within 2**-23 relative of a quotient, that quotient's
    rounded code is this one or the next: the grid steps by at least 2**-4 relative."""
    q = min(q, 512.0)
    qb = float32_bits(np.float32(q))
    e = np.int64(qb >> np.uint32(23)) - 127
    normal = ((e + 7) << 3) | np.int64((qb >> np.uint32(20)) & np.uint32(7))
    return min(normal if e >= -6 else np.int64(q * 512.0), 0x7E)


@nb.njit(cache=True, inline="always")
def _threshold(t, tie_counts):
    """The smallest float32 magnitude bits ``a`` counted above the bound ``t`` (a
    non-negative float64): ``a > t``, or ``a == t`` where ``tie_counts``.

    ``lo``, the largest float32 at or below ``t`` (its round to nearest, less one ulp
    where that rounded up; the float32 maximum for ``t`` beyond it), decides exactly:
    ``a > t`` iff ``a > lo``, and ``a == t`` iff ``a == lo == t``; float32 magnitudes
    order like their bits.
    """
    near = np.float32(t)
    lo = np.uint32(float32_bits(near) - np.uint32(np.float64(near) > t))
    tie = np.uint32(tie_counts and np.float64(float32_from_bits(lo)) == t)
    return np.uint32(lo + np.uint32(1) - tie)


@functools.cache
def dequantize_table(bs: int, bits: int, sub: int, sub_bits: int, element_bytes: int
                     ) -> Callable[..., None]:
    """``kernel(packed, scales, table, scale_values, out)``: ``out[b, i] =
    table[code] * scale_values[scales[b]]`` from packed ``(n, bytes_per_block)`` rows.

    ``table`` (float64) holds the exact value of every unpacked code (element bits, the
    sub-block's microexponent above them) and ``scale_values`` (float64) that of every
    scale byte, tensor scale included; their product is exact and the store into
    ``out`` (float32 or float64) rounds it once, as the reference does.
    """

    @nb.njit(cache=True, parallel=True)
    def kernel(packed, scales, table, scale_values, out):
        n = out.shape[0]
        for c in prange((n + _CHUNK - 1) // _CHUNK):
            for b in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
                s = scale_values[scales[b]]
                src = packed[b]
                dst = out[b]
                for i in range(bs):
                    code = _get_bits(src, i, bits, 0)
                    if sub_bits:
                        code |= _get_bits(src, i // sub, sub_bits, element_bytes) \
                            << np.uint32(bits)
                    dst[i] = table[code] * s

    return kernel
