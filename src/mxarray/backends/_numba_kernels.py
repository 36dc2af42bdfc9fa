"""Numba kernels of the Numba backend: exact integer arithmetic on float bit patterns.

Every kernel is generic over the format: the element format, the scale and the byte
layout arrive as integer arguments built from :class:`mxarray.formats.Format` by
:mod:`mxarray.backends.numba_backend`, so no numeric format fact is written here.

Quantization never rounds in floating point.  An input value is split into its sign,
an integer significand ``sig`` and a power of two (``|v| = sig * 2**p``) straight from
its IEEE bits; a scaled element ``|v| / 2**step`` is then ``sig`` shifted right by
``step - p`` bits, and every rounding mode is a decision on the bits shifted out.
This reproduces the NumPy reference bit for bit, including subnormal inputs.

Mode codes (small ints) are shared with the backend through :data:`SCALE_MODE_CODES`
and :data:`ROUNDING_CODES`.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import prange

from .._random import _MIX1, _MIX2, GAMMA

__all__ = [
    "SCALE_MODE_CODES",
    "ROUNDING_CODES",
    "quantize_rows",
    "dequantize_rows",
    "regroup_rows",
    "decode_tile",
]

SCALE_MODE_CODES = {"floor": 0, "ceil": 1, "rceil": 2, "even": 3}
ROUNDING_CODES = {"even": 0, "nearest": 1, "toward_zero": 2, "stochastic": 3}

_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_ONE = np.uint64(1)

# Shifts at or beyond this many bits leave nothing of a (<= 53-bit) significand and
# would overflow int64 masks; they are handled as "everything shifted out".
_WIDE = 60
_CHUNK = 256  # blocks per parallel work item (one scratch buffer each)


@nb.njit(cache=True, inline="always")
def _random_u32(seed, index):
    """SplitMix64 draw of :mod:`mxarray._random`, upper 32 bits, as int64."""
    z = seed + (np.uint64(index) + _ONE) * GAMMA
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return np.int64(z >> _S32)


@nb.njit(cache=True, inline="always")
def _round_shift(sig, sh, rounding, seed, index):
    """Round ``sig / 2**sh`` (sig >= 0, < 2**53) to an integer in the given mode."""
    if sh <= 0:
        return sig << (-sh)  # exact: nothing is shifted out
    if sh >= _WIDE:
        whole = np.int64(0)
        rem = sig
    else:
        whole = sig >> sh
        rem = sig & ((np.int64(1) << sh) - 1)
    if rounding == 0:  # ties to even
        if sh >= _WIDE:
            return whole
        half = np.int64(1) << (sh - 1)
        if rem > half or (rem == half and (whole & 1) == 1):
            return whole + 1
        return whole
    if rounding == 1:  # ties away from zero
        if sh >= _WIDE:
            return whole
        if rem >= (np.int64(1) << (sh - 1)):
            return whole + 1
        return whole
    if rounding == 2:  # toward zero
        return whole
    # stochastic: up iff frac * 2**32 > R, frac = rem / 2**sh, compared exactly
    r = _random_u32(seed, index)
    if sh <= 32:
        return whole + ((rem << (32 - sh)) > r)
    d = sh - 32
    if d >= _WIDE:
        q = np.int64(0)
        tail = rem != 0
    else:
        q = rem >> d
        tail = (rem & ((np.int64(1) << d) - 1)) != 0
    return whole + (q > r or (q == r and tail))


@nb.njit(cache=True, inline="always")
def _split(a, in_mant, in_bias, mant_mask, exp_shift_mask):
    """Split non-negative finite float bits ``a`` into (sig, p, e).

    ``|v| = sig * 2**p`` with ``sig`` an integer, and ``e = floor(log2 |v|)``;
    ``sig == 0`` for zero.
    """
    ef = np.int64((a >> np.uint64(in_mant)) & exp_shift_mask)
    mf = np.int64(a & mant_mask)
    if ef == 0:
        p = 1 - in_bias - in_mant
        if mf == 0:
            return mf, p, p
        _, ex = math.frexp(float(mf))  # exact: mf < 2**53
        return mf, p, p + ex - 1
    return mf | (np.int64(1) << in_mant), ef - in_bias - in_mant, ef - in_bias


@nb.njit(cache=True, inline="always")
def _shared_exponent(amax, in_mant, in_bias, mant_mask, exp_shift_mask, scale_mode,
                     m, emax, rceil_emax, rceil_sig53, min_x, max_x):
    """Shared exponent X of a block from the bits of its largest magnitude."""
    if amax == 0:
        return min_x
    sig, p, e = _split(amax, in_mant, in_bias, mant_mask, exp_shift_mask)
    # the significand normalised to 53 bits: 2**52 <= sig53 < 2**53
    sig53 = sig << (52 - (e - p))
    if scale_mode == 0:
        x = e - emax
    elif scale_mode == 1:
        x = e - emax + (sig53 != (np.int64(1) << 52))
    elif scale_mode == 2:
        x = e - rceil_emax + (sig53 > rceil_sig53)
    else:
        sh = 52 - m
        whole = sig53 >> sh
        rem = sig53 & ((np.int64(1) << sh) - 1)
        half = np.int64(1) << (sh - 1)
        if rem > half or (rem == half and (whole & 1) == 1):
            whole += 1
        x = e + (whole == (np.int64(1) << (m + 1))) - emax
    return min(max(x, min_x), max_x)


@nb.njit(cache=True, parallel=True)
def dequantize_rows(packed, scales, table, pow2, per_group, group_bytes, code_bits, out):
    """``out[b, i] = table[code] * pow2[scales[b]]`` from packed ``(n, row_bytes)`` codes.

    ``table`` is the decode table and ``pow2`` the 256 scale values (NaN at the NaN
    byte) in the output dtype; both products are exact by construction (see the backend).
    Each layout (one code per byte, two per byte, ``per_group`` codes in ``group_bytes``
    bytes) has its own loop, so the inner loops have fixed strides.
    """
    n, row_bytes = packed.shape
    mask = (1 << code_bits) - 1
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        for b in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            s = pow2[scales[b]]
            if per_group == 1:
                for i in range(row_bytes):
                    out[b, i] = table[packed[b, i]] * s
            elif group_bytes == 1:
                for g in range(row_bytes):
                    byte = np.int64(packed[b, g])
                    for i in range(per_group):
                        out[b, g * per_group + i] = table[(byte >> (code_bits * i)) & mask] * s
            else:
                for g in range(row_bytes // group_bytes):
                    word = np.int64(0)
                    for j in range(group_bytes):
                        word |= np.int64(packed[b, g * group_bytes + j]) << (8 * j)
                    for i in range(per_group):
                        out[b, g * per_group + i] = table[(word >> (code_bits * i)) & mask] * s


@nb.njit(cache=True, parallel=True)
def regroup_rows(src, in_count, in_bits, out_count, out_bits, out):
    """Re-cut little-endian bit fields: each group of ``in_count`` fields of ``in_bits``
    bits in a row of ``src`` becomes ``out_count`` fields of ``out_bits`` bits in ``out``.

    Packing is ``(elements, code bits) -> (bytes, 8)``; unpacking is the reverse.
    """
    n = src.shape[0]
    in_mask = (1 << in_bits) - 1
    out_mask = (1 << out_bits) - 1
    n_groups = src.shape[1] // in_count
    for r in prange(n):
        for g in range(n_groups):
            word = 0
            for i in range(in_count):
                word |= (np.int64(src[r, g * in_count + i]) & in_mask) << (in_bits * i)
            for j in range(out_count):
                out[r, g * out_count + j] = (word >> (out_bits * j)) & out_mask


@nb.njit(cache=True, parallel=True)
def decode_tile(packed, scales, row0, table, pow2, per_group, group_bytes, code_bits, out):
    """Decode rows ``row0 .. row0 + len(out)`` of a packed operand into ``out``.

    ``packed`` is ``(R, KB * row_bytes_per_block)``, ``scales`` is ``(R, KB)``; ``out``
    receives ``(rows, KB * bs)`` values ``table[code] * pow2[scale]``.
    """
    rows = out.shape[0]
    kb = scales.shape[1]
    block_bytes = packed.shape[1] // kb
    mask = (1 << code_bits) - 1
    for r in prange(rows):
        lane = 0
        for blk in range(kb):
            s = pow2[scales[row0 + r, blk]]
            base = blk * block_bytes
            for g in range(0, block_bytes, group_bytes):
                word = 0
                for j in range(group_bytes):
                    word |= np.int64(packed[row0 + r, base + g + j]) << (8 * j)
                for i in range(per_group):
                    out[r, lane] = table[(word >> (code_bits * i)) & mask] * s
                    lane += 1


@nb.njit(cache=True, inline="always")
def _generic_codes(row, x, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, sign_shift,
                   is_float, m, emax, emin, max_code, sign_bit, code_mask, rounding, seed,
                   first_index, codes):
    """Codes of one finite block with shared exponent ``x``, element by element.

    Handles every rounding mode and any input width; ``first_index`` is the flat index
    of the block's first element (the stochastic draws' counter).
    """
    for i in range(row.shape[0]):
        u = np.uint64(row[i])
        negative = (u >> sign_shift) != 0
        sig, p, e = _split(u & abs_mask, in_mant, in_bias, mant_mask, exp_shift_mask)
        index = first_index + i
        if is_float:
            if sig == 0:
                code = np.int64(0)
            else:
                e_elem = e - x
                if e_elem > emax:
                    code = np.int64(max_code)
                else:
                    e_elem = max(e_elem, emin)
                    k = _round_shift(sig, x + e_elem - m - p, rounding, seed, index)
                    code = min(((e_elem - emin) << m) + k, max_code)
            if negative:
                code |= sign_bit
        else:
            step = x - m
            if sig == 0:
                k = np.int64(0)
            elif e - step >= _WIDE:
                k = np.int64(max_code)
            else:
                k = min(_round_shift(sig, step - p, rounding, seed, index), max_code)
            code = (-k if negative else k) & code_mask
        codes[i] = code


@nb.njit(cache=True, inline="always")
def _pack_block(codes, per_group, group_bytes, code_bits, out, b):
    """Pack one block's codes into row ``b`` of ``out`` (fixed-stride loop per layout)."""
    if per_group == 1:
        for i in range(codes.shape[0]):
            out[b, i] = codes[i]
    elif group_bytes == 1:
        for g in range(codes.shape[0] // per_group):
            word = np.int64(0)
            for i in range(per_group):
                word |= codes[g * per_group + i] << (code_bits * i)
            out[b, g] = word
    else:
        for g in range(codes.shape[0] // per_group):
            word = np.int64(0)
            for i in range(per_group):
                word |= codes[g * per_group + i] << (code_bits * i)
            for j in range(group_bytes):
                out[b, g * group_bytes + j] = (word >> (8 * j)) & 0xFF


@nb.njit(cache=True, parallel=True)
def quantize_rows(
    bits, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, inf_bits, sign_shift,
    is_float, m, emax, emin, max_code, sign_bit, code_mask,
    rceil_emax, rceil_sig53, min_x, max_x, scale_bias, nan_code,
    scale_mode, rounding, seed,
    per_group, group_bytes, code_bits,
    out, scales,
):
    """Quantize ``(n, bs)`` float bit patterns into packed codes ``out`` and ``scales``.

    ``bits`` holds the raw IEEE bits (uint32 or uint64) of float32 or float64 inputs.
    ``out`` is ``(n, bs // per_group * group_bytes)`` uint8: ``per_group`` codes of ``code_bits``
    bits each are packed little-endian into ``group_bytes`` bytes (1, 1, 8 for one
    code per byte).  Every rounding mode, stochastic included.
    """
    n, bs = bits.shape
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        codes = np.empty(bs, dtype=np.int64)
        for b in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            amax = np.uint64(0)
            for i in range(bs):
                amax = max(amax, np.uint64(bits[b, i]) & abs_mask)
            if amax >= inf_bits:
                scales[b] = nan_code
                for j in range(out.shape[1]):
                    out[b, j] = 0
                continue
            x = _shared_exponent(amax, in_mant, in_bias, mant_mask, exp_shift_mask, scale_mode,
                                 m, emax, rceil_emax, rceil_sig53, min_x, max_x)
            scales[b] = x + scale_bias
            _generic_codes(bits[b], x, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask,
                           sign_shift, is_float, m, emax, emin, max_code, sign_bit, code_mask,
                           rounding, seed, b * bs, codes)
            _pack_block(codes, per_group, group_bytes, code_bits, out, b)


@nb.njit(cache=True, parallel=True)
def quantize_rows_nearest(
    bits, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, inf_bits, sign_shift,
    is_float, m, emax, emin, max_code, sign_bit, code_mask,
    rceil_emax, rceil_sig53, min_x, max_x, scale_bias, nan_code,
    scale_mode, rounding, per_group, group_bytes, code_bits, out, scales,
):
    """Deterministic rounding modes (even, nearest, toward_zero), branch-free per element.

    Same contract as :func:`quantize_rows` (float32 or float64 bits).  With ``a`` the
    magnitude bits, ``ef`` the exponent field and ``sig`` the integer significand, the
    element's grid step is ``2**(x + e_elem - m)`` with ``e_elem = max(e - x, emin)``;
    ``k = round(sig >> sh)`` for ``sh`` the step's exponent less that of sig's lsb, and
    the code is ``((e_elem - emin) << m) + k`` capped at ``max_code`` (a carry into the
    next binade and saturation both fall out of the sum).  Reading ``e`` as the exponent
    field is exact except for subnormal inputs, whose binade matters only when the
    element grid reaches below the input's normal range (``x + emin < 1 - in_bias``);
    such tiny blocks take the element-by-element path.  Shifts are capped where they
    leave nothing above half a step.
    """
    n, bs = bits.shape
    lsb_bias = in_bias + in_mant  # lsb exponent of sig is max(ef, 1) - lsb_bias
    implicit = np.int64(1) << in_mant
    mant = np.int64(mant_mask)
    sh_cap = in_mant + 2
    even = rounding == 0
    up_half = rounding != 2  # even and nearest add half a step (even: less one, plus lsb)
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        mags = np.empty(bs, dtype=np.int64)
        codes = np.empty(bs, dtype=np.int64)
        for b in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            amax = np.int64(0)
            for i in range(bs):
                a = np.int64(np.uint64(bits[b, i]) & abs_mask)
                mags[i] = a
                amax = max(amax, a)
            if amax >= np.int64(inf_bits):
                scales[b] = nan_code
                for j in range(out.shape[1]):
                    out[b, j] = 0
                continue
            x = _shared_exponent(np.uint64(amax), in_mant, in_bias, mant_mask, exp_shift_mask,
                                 scale_mode, m, emax, rceil_emax, rceil_sig53, min_x, max_x)
            scales[b] = x + scale_bias
            if is_float and x + emin < 1 - in_bias:
                _generic_codes(bits[b], x, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask,
                               sign_shift, is_float, m, emax, emin, max_code, sign_bit,
                               code_mask, rounding, np.uint64(0), 0, codes)
            else:
                for i in range(bs):
                    a = mags[i]
                    ef = a >> in_mant
                    efe = max(ef, 1)
                    sig = (a & mant) | (min(ef, 1) * implicit)
                    over = False
                    if is_float:
                        e_elem = max(efe - in_bias - x, emin)
                        sh = min(x + e_elem - m - efe + lsb_bias, sh_cap)
                    else:
                        e_elem = emin
                        sh = x - m - efe + lsb_bias
                        # below 1 only for float64 values far beyond 2**(x + 1): saturate
                        over = sh < 1
                        sh = min(max(sh, 1), sh_cap)
                    half = (np.int64(1) << (sh - 1)) * up_half
                    k = (sig + half - even + (((sig >> sh) & 1) * even)) >> sh
                    negative = np.int64(np.uint64(bits[b, i]) >> sign_shift)
                    if is_float:
                        code = min(((e_elem - emin) << m) + k, max_code) | (negative * sign_bit)
                    else:
                        k = min(k + over * max_code, max_code)
                        code = ((k ^ -negative) + negative) & code_mask
                    codes[i] = code
            _pack_block(codes, per_group, group_bytes, code_bits, out, b)
