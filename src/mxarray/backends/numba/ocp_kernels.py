"""Kernels of the OCP formats (MXFP8/6/4, MXINT8): exact, fused, lane-parallel.

Quantize is one pass per block (largest magnitude, shared exponent, every element
rounded and packed) in the exact integer arithmetic of
:mod:`mxarray.backends.numba.bits`; float32 inputs with a deterministic rounding take a
kernel on 32-bit lanes.  Dequantize and the matmul panels build each element's value
from its code's bits (no table lookups).  Every format fact arrives as a record of
:mod:`mxarray.backends.numba.params` (:class:`~.params.InputBits`,
:class:`~.params.ElementGrid`, :class:`~.params.ScaleRange`, :class:`~.params.Modes`,
:class:`~.params.PackLayout`, :class:`~.params.ElementDecode`).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

from ..._kernel_codes import ELEMENT_KIND_CODES
from .bits import (EVEN, FLOOR, TOWARD_ZERO, WIDE, block_number, float32_bits, lane_code,
                   float32_from_bits, prefetch, round_shift, shared_exponent, shr32, split_bits)

__all__ = ["quantize_rows", "quantize_rows_nearest", "quantize_rows_f32", "dequantize_rows",
           "decode_panel", "regroup_rows"]

FLOAT_KIND = ELEMENT_KIND_CODES["float"]
_CHUNK = 256  # blocks per parallel work item (one scratch buffer each)
_ROW_CHUNK = 16  # operand rows per parallel work item of decode_panel
_PACK_ROWS = 128  # blocks whose codes (a byte each) quantize_rows_f32 keeps in L1 to pack
_F32_ONE_EXP = np.uint32(1 << 23)  # one in float32's exponent field
_F32_SIGN = np.uint32(1 << 31)  # float32's sign bit
_F32_INF = np.uint32(0x7F800000)  # float32 bits of +Inf and of a quiet NaN
_F32_NAN = np.uint32(0x7FC00000)


@nb.njit(cache=True, inline="always")
def _element_value(code, is_float, field_scale, sign_bit, n_codes, mag_mask, special_min, inf_mag,
                   normal_mag, exp_offset, unit):
    """Exact float32 value of one element code (``code`` a uint32), branch-free.

    Float codes: the magnitude's exponent and mantissa fields move to float32's field
    positions (times ``field_scale``, a power of two) and ``exp_offset`` rebiases the
    exponent, which gives the exact value of a normal code; a subnormal code (magnitude
    below ``normal_mag``) gets the smallest normal exponent, reads as ``unit * (1 + f)``
    and ``unit`` (the smallest normal) is subtracted exactly.  No float32 subnormal is
    ever formed (it would cost a slow microcode assist).  Magnitudes from
    ``special_min`` on are Inf (``inf_mag``) or NaN (always the positive quiet NaN, as
    the reference's); the sign bit is set on the magnitude's bits.  Integer codes are
    sign-extended and times ``unit``.  Every intermediate is kept to 32 bits and no
    shift is variable (Numba widens integer arithmetic to 64 bits), so loops over
    elements run on 32-bit vector lanes.
    """
    if is_float:
        mag = np.uint32(code & mag_mask)
        subnormal = mag < normal_mag
        bits = np.uint32(np.uint32(mag * field_scale) + exp_offset)
        bits = np.uint32(bits + _F32_ONE_EXP) if subnormal else bits
        nan = mag >= special_min and mag != inf_mag
        special = _F32_NAN if nan else _F32_INF
        bits = special if mag >= special_min else bits
        value = float32_from_bits(bits) - (unit if subnormal else np.float32(0.0))
        sign = _F32_SIGN if code >= sign_bit and not nan else np.uint32(0)
        return float32_from_bits(np.uint32(float32_bits(value) | sign))
    k = np.int32(code)
    k = np.int32(k - n_codes) if code >= sign_bit else k
    return np.float32(k) * unit


@nb.njit(cache=True, inline="always")
def _decode_codes(codes, b0, b1, is_float, field_scale, sign_bit, n_codes, mag_mask, special_min,
                  inf_mag, normal_mag, exp_offset, unit, scales, pow2, out, out_row0):
    """``out[out_row0 + b - b0] = value(codes[b - b0]) * pow2[scales[b]]``, ``b0 <= b < b1``.

    The element values are exact (:func:`_element_value`); the product with the scale
    is one rounding of the exact value, as the reference's cast of its exact float64
    value.
    """
    for b in range(b0, b1):
        s = pow2[scales[b]]
        row = codes[b - b0]
        dst = out[out_row0 + b - b0]
        for i in range(row.shape[0]):
            dst[i] = _element_value(np.uint32(row[i]), is_float, field_scale, sign_bit, n_codes,
                                    mag_mask, special_min, inf_mag, normal_mag, exp_offset,
                                    unit) * s


@nb.njit(cache=True, inline="always")
def _unpack_chunk(packed, per_group, group_bytes, code_bits, codes):
    """One code per byte in ``codes`` (rows of ``block_size``) from packed rows.

    The two packed layouts of the spec get loops over groups (two codes from one byte,
    four codes from three bytes) with constant shifts on bytes (the layout fixes the
    code width: ``8 * group_bytes / per_group`` bits), which vectorise as interleaved
    loads and stores; any other layout takes the general field-by-field loop.
    """
    src = packed.reshape(-1)
    flat = codes.reshape(-1)
    mask = np.uint32((1 << code_bits) - 1)
    if per_group == 2 and group_bytes == 1:  # 4-bit codes
        for g in range(src.shape[0]):
            byte = src[g]
            flat[2 * g] = np.uint8(byte & np.uint8(0x0F))
            flat[2 * g + 1] = np.uint8(byte >> np.uint8(4))
    elif per_group == 4 and group_bytes == 3:  # 6-bit codes
        for g in range(src.shape[0] // 3):
            b0, b1, b2 = src[3 * g], src[3 * g + 1], src[3 * g + 2]
            flat[4 * g] = np.uint8(b0 & np.uint8(0x3F))
            flat[4 * g + 1] = np.uint8(np.uint8(b0 >> np.uint8(6))
                                       | np.uint8(np.uint8(b1 & np.uint8(0x0F)) << np.uint8(2)))
            flat[4 * g + 2] = np.uint8(np.uint8(b1 >> np.uint8(4))
                                       | np.uint8(np.uint8(b2 & np.uint8(0x03)) << np.uint8(4)))
            flat[4 * g + 3] = np.uint8(b2 >> np.uint8(2))
    else:
        for g in range(src.shape[0] // group_bytes):
            word = np.int64(0)
            for j in range(group_bytes):
                word |= np.int64(src[g * group_bytes + j]) << (8 * j)
            for i in range(per_group):
                flat[g * per_group + i] = (word >> (code_bits * i)) & mask


@nb.njit(cache=True, inline="always")
def _dequantize_range(packed, scales, b0, b1, per_group, group_bytes, code_bits, is_float,
                      field_scale, sign_bit, n_codes, mag_mask, special_min, inf_mag, normal_mag,
                      exp_offset, unit, pow2, out, out_row0, scratch):
    """Blocks ``b0 .. b1`` of packed rows into ``out`` from row ``out_row0`` on.

    Packed codes are first unpacked into ``scratch`` (at least ``b1 - b0`` rows).
    """
    if per_group == 1:
        _decode_codes(packed[b0:b1], b0, b1, is_float, field_scale, sign_bit, n_codes, mag_mask,
                      special_min, inf_mag, normal_mag, exp_offset, unit, scales, pow2, out,
                      out_row0)
        return
    codes = scratch[: b1 - b0]
    _unpack_chunk(packed[b0:b1], per_group, group_bytes, code_bits, codes)
    _decode_codes(codes, b0, b1, is_float, field_scale, sign_bit, n_codes, mag_mask, special_min,
                  inf_mag, normal_mag, exp_offset, unit, scales, pow2, out, out_row0)


@nb.njit(cache=True, parallel=True)
def dequantize_rows(packed, scales, layout, dec, pow2, out):
    """``out[b, i] = value(code) * pow2[scales[b]]`` from packed ``(n, row_bytes)`` codes.

    ``pow2`` holds the 256 scale values (NaN at the NaN byte) in the output dtype; the
    element values come from the codes' bits (see :func:`_decode_codes`).  Chunks of
    blocks run in parallel; packed chunks are first unpacked to one code per byte in a
    small scratch buffer, so both loops vectorise.  ``layout`` is a
    :class:`~.params.PackLayout`, ``dec`` an :class:`~.params.ElementDecode`.
    """
    per_group, group_bytes, code_bits = layout
    (is_float, field_scale, sign_bit, n_codes, mag_mask, special_min, inf_mag, normal_mag,
     exp_offset, unit) = dec
    n, bs = out.shape
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        scratch = np.empty((_CHUNK, bs), dtype=np.uint8)
        b0 = c * _CHUNK
        _dequantize_range(packed, scales, b0, min(n, b0 + _CHUNK), per_group, group_bytes,
                          code_bits, is_float, field_scale, sign_bit, n_codes, mag_mask,
                          special_min, inf_mag, normal_mag, exp_offset, unit, pow2, out, b0,
                          scratch)


@nb.njit(cache=True, inline="always")
def _prefetch_rows(src, src_scales, b_first, b_stride, n_rows, n_blocks):
    """Prefetch the packed bytes and scales of ``n_blocks`` blocks from block ``b_first
    + j * b_stride`` on, for ``j < n_rows``: rows of an operand lie far apart, so
    fetching them together overlaps their memory latencies."""
    row_bytes = src.shape[1]
    for j in range(n_rows):
        b0 = b_first + j * b_stride
        for byte in range(b0 * row_bytes, (b0 + n_blocks) * row_bytes, 64):
            prefetch(src, byte)
        prefetch(src_scales, b0)


@nb.njit(cache=True, parallel=True)
def decode_panel(packed, scales, row0, kb0, bs, layout, dec, pow2, out):
    """Decode blocks ``kb0 .. kb0 + out.shape[1] // bs`` of rows ``row0 ..`` into ``out``
    (``bs`` is the block size).

    ``packed`` is a C-contiguous ``(R, KB * bytes_per_block)`` and ``scales`` ``(R, KB)``;
    ``out`` is a C-contiguous ``(rows, n_blocks * bs)`` panel (a K-panel or a row tile of
    an MX matmul operand), with the element decode of :func:`dequantize_rows`.  All
    arrays are seen as rows of one block, so each operand row is one contiguous run of
    blocks (a K-panel row holds only a few blocks: per-row costs must stay small).
    A K-panel reads a few bytes from each of many far-apart operand rows, which after
    a GEMM are no longer cached: each work item prefetches its rows and the next
    item's together, so their memory latencies overlap (measured: decoding a 2048-row
    panel between GEMMs took 4x its time alone without this, 1.5x with it).
    """
    per_group, group_bytes, code_bits = layout
    (is_float, field_scale, sign_bit, n_codes, mag_mask, special_min, inf_mag, normal_mag,
     exp_offset, unit) = dec
    rows, width = out.shape
    kb = scales.shape[1]
    n_blocks = width // bs
    src = packed.reshape(-1, packed.shape[1] // kb)
    src_scales = scales.reshape(-1)
    dst = out.reshape(-1, bs)
    for c in prange((rows + _ROW_CHUNK - 1) // _ROW_CHUNK):
        scratch = np.empty((n_blocks, bs), dtype=np.uint8)
        r_end = min(rows, (c + 1) * _ROW_CHUNK)
        # this work item's rows and the next one's (in flight while these decode)
        _prefetch_rows(src, src_scales, (row0 + c * _ROW_CHUNK) * kb + kb0, kb,
                       min(rows, (c + 2) * _ROW_CHUNK) - c * _ROW_CHUNK, n_blocks)
        for r in range(c * _ROW_CHUNK, r_end):
            b0 = (row0 + r) * kb + kb0
            _dequantize_range(src, src_scales, b0, b0 + n_blocks, per_group, group_bytes,
                              code_bits, is_float, field_scale, sign_bit, n_codes, mag_mask,
                              special_min, inf_mag, normal_mag, exp_offset, unit, pow2, dst,
                              r * n_blocks, scratch)


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


@nb.njit(cache=True, inline="always")
def _generic_codes(row, x, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, sign_shift,
                   is_float, m, emax, emin, max_code, sign_bit, code_mask, rounding, seed,
                   first_index, codes):
    """Codes of one finite block with shared exponent ``x``, element by element.

    Handles every rounding mode and any input width; ``first_index`` (uint64) is the
    random index of the block's first element (the stochastic draws' counter).
    """
    for i in range(row.shape[0]):
        u = np.uint64(row[i])
        negative = (u >> sign_shift) != 0
        sig, p, e = split_bits(u & abs_mask, in_mant, in_bias, mant_mask, exp_shift_mask)
        index = first_index + np.uint64(i)
        if is_float:
            if sig == 0:
                code = np.int64(0)
            else:
                e_elem = e - x
                if e_elem > emax:
                    code = np.int64(max_code)
                else:
                    e_elem = max(e_elem, emin)
                    k = round_shift(sig, x + e_elem - m - p, rounding, seed, index)
                    code = min(((e_elem - emin) << m) + k, max_code)
            if negative:
                code |= sign_bit
        else:
            step = x - m
            if sig == 0:
                k = np.int64(0)
            elif e - step >= WIDE:
                k = np.int64(max_code)
            else:
                k = min(round_shift(sig, step - p, rounding, seed, index), max_code)
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
def quantize_rows(bits, inp, el, sc, mode, block_ids, layout, out, scales):
    """Quantize ``(n, bs)`` float bit patterns into packed codes ``out`` and ``scales``.

    ``bits`` holds the raw IEEE bits (uint32 or uint64) of float32 or float64 inputs.
    ``out`` is ``(n, bs // per_group * group_bytes)`` uint8: ``per_group`` codes of ``code_bits``
    bits each are packed little-endian into ``group_bytes`` bytes (1, 1, 8 for one
    code per byte).  Every rounding mode, stochastic included: element ``(b, i)`` draws
    with index ``block_number(b) * bs + i`` (:func:`block_number`).  The records:
    ``inp`` :class:`~.params.InputBits`, ``el`` :class:`~.params.ElementGrid`, ``sc``
    :class:`~.params.ScaleRange`, ``mode`` :class:`~.params.Modes`, ``layout``
    :class:`~.params.PackLayout`.
    """
    in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, inf_bits, sign_shift = inp
    kind, _, m, emax, emin, max_code, sign_bit, code_mask, rceil_emax, rceil_sig53 = el
    is_float = kind == FLOAT_KIND
    min_x, max_x, scale_bias, nan_code = sc
    scale_mode, rounding, seed = mode
    per_group, group_bytes, code_bits = layout
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
            x = shared_exponent(amax, in_mant, in_bias, mant_mask, exp_shift_mask, scale_mode,
                                m, emax, rceil_emax, rceil_sig53, min_x, max_x)
            scales[b] = x + scale_bias
            _generic_codes(bits[b], x, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask,
                           sign_shift, is_float, m, emax, emin, max_code, sign_bit, code_mask,
                           rounding, seed, block_number(block_ids, b) * np.uint64(bs), codes)
            _pack_block(codes, per_group, group_bytes, code_bits, out, b)


@nb.njit(cache=True, parallel=True)
def quantize_rows_nearest(bits, inp, el, sc, mode, layout, out, scales):
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
    in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, inf_bits, sign_shift = inp
    kind, _, m, emax, emin, max_code, sign_bit, code_mask, rceil_emax, rceil_sig53 = el
    is_float = kind == FLOAT_KIND
    min_x, max_x, scale_bias, nan_code = sc
    scale_mode, rounding, _ = mode
    per_group, group_bytes, code_bits = layout
    n, bs = bits.shape
    lsb_bias = in_bias + in_mant  # lsb exponent of sig is max(ef, 1) - lsb_bias
    implicit = np.int64(1) << in_mant
    mant = np.int64(mant_mask)
    sh_cap = in_mant + 2
    even = rounding == EVEN
    up_half = rounding != TOWARD_ZERO  # even and nearest add half a step (even: less one, plus lsb)
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
            x = shared_exponent(np.uint64(amax), in_mant, in_bias, mant_mask, exp_shift_mask,
                                scale_mode, m, emax, rceil_emax, rceil_sig53, min_x, max_x)
            scales[b] = x + scale_bias
            if is_float and x + emin < 1 - in_bias:
                _generic_codes(bits[b], x, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask,
                               sign_shift, is_float, m, emax, emin, max_code, sign_bit,
                               code_mask, rounding, np.uint64(0), np.uint64(0), codes)
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




@nb.njit(cache=True, inline="always")
def _pack_chunk8(codes, n_rows, per_group, group_bytes, code_bits, out):
    """Pack the first ``n_rows`` rows of uint8 ``codes`` into the C-contiguous rows
    ``out``, as one flat loop over the chunk so it vectorises.  The spec's two packed
    layouts use constant shifts on bytes (the layout fixes the code width, ``8 *
    group_bytes / per_group`` bits), which vectorise as interleaved loads and stores;
    any other layout takes a general loop.  One code per byte needs no packing (the
    caller writes such codes straight into ``out``)."""
    src = codes[:n_rows].reshape(-1)
    dst = out.reshape(-1)
    if per_group == 2 and group_bytes == 1:  # 4-bit codes
        for g in range(src.shape[0] // 2):
            dst[g] = np.uint8(src[2 * g] | np.uint8(src[2 * g + 1] << 4))
    elif per_group == 4 and group_bytes == 3:  # 6-bit codes: four codes in three bytes
        for g in range(src.shape[0] // 4):
            c1, c2 = src[4 * g + 1], src[4 * g + 2]
            dst[3 * g] = np.uint8(src[4 * g] | np.uint8(c1 << 6))
            dst[3 * g + 1] = np.uint8(np.uint8(c1 >> 2) | np.uint8(c2 << 4))
            dst[3 * g + 2] = np.uint8(np.uint8(c2 >> 4) | np.uint8(src[4 * g + 3] << 2))
    else:
        for g in range(src.shape[0] // per_group):
            word = np.int64(0)
            for i in range(per_group):
                word |= np.int64(src[g * per_group + i]) << (code_bits * i)
            for j in range(group_bytes):
                dst[g * group_bytes + j] = (word >> (8 * j)) & 0xFF


@nb.njit(cache=True, parallel=True)
def quantize_rows_f32(bits, inp, el, sc, mode, layout, out, scales):
    """:func:`quantize_rows_nearest` for float32 bits, on 32-bit lanes.

    Same contract and arithmetic; for float32 inputs every intermediate (the 24-bit
    significand plus half a step, shifts below 26) fits 32 bits, so the per-element
    loop keeps to uint32 values and 32-bit variable shifts (:func:`shl32`,
    :func:`shr32`), which vectorise 16 lanes wide.  Blocks whose element grid reaches
    below float32's normal range take the element-by-element path.  Codes are packed
    every ``_PACK_ROWS`` blocks, from a small buffer of one code per byte, in one
    vectorised loop (one-byte codes are written straight into ``out``).
    """
    in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, inf_bits, sign_shift = inp
    kind, _, m, emax, emin, max_code, sign_bit, code_mask, rceil_emax, rceil_sig53 = el
    is_float = kind == FLOAT_KIND
    min_x, max_x, scale_bias, nan_code = sc
    scale_mode, rounding, _ = mode
    per_group, group_bytes, code_bits = layout
    n, bs = bits.shape
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        chunk = np.empty((_PACK_ROWS, bs), dtype=np.uint8)
        wide = np.empty(bs, dtype=np.int64)
        for p0 in range(c * _CHUNK, min(n, (c + 1) * _CHUNK), _PACK_ROWS):
            p1 = min(n, p0 + _PACK_ROWS)
            direct = per_group == 1  # one code per byte: the codes are the output rows
            dest = out[p0:p1] if direct else chunk
            _quantize_f32_rows(bits, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask,
                               inf_bits, sign_shift, is_float, m, emax, emin, max_code, sign_bit,
                               code_mask, rceil_emax, rceil_sig53, min_x, max_x, scale_bias,
                               nan_code, scale_mode, rounding, p0, p1, dest, wide, scales)
            if not direct:
                _pack_chunk8(chunk, p1 - p0, per_group, group_bytes, code_bits, out[p0:p1])


@nb.njit(cache=True, inline="always")
def _quantize_f32_rows(
    bits, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask, inf_bits, sign_shift,
    is_float, m, emax, emin, max_code, sign_bit, code_mask,
    rceil_emax, rceil_sig53, min_x, max_x, scale_bias, nan_code,
    scale_mode, rounding, b0, b1, chunk, wide, scales,
):
    """Scales of blocks ``b0 .. b1`` and their codes (one uint8 each) in ``chunk[: b1 - b0]``."""
    bs = bits.shape[1]
    lsb_bias = in_bias + in_mant
    sh_cap = in_mant + 2
    even = np.uint32(rounding == EVEN)
    up_half = np.uint32(rounding != TOWARD_ZERO)
    absm = np.uint32(abs_mask)
    for b in range(b0, b1):
        row = bits[b]
        codes = chunk[b - b0]
        amax = np.uint32(0)
        for i in range(bs):
            amax = max(amax, np.uint32(row[i] & absm))
        if amax >= np.uint32(inf_bits):
            scales[b] = nan_code
            for i in range(bs):
                codes[i] = 0
            continue
        ef_max = np.int32(shr32(amax, in_mant))
        if scale_mode == FLOOR and ef_max > 0:  # floor of a normal amax: its exponent field
            x = min(max(np.int64(ef_max) - in_bias - emax, min_x), max_x)
        else:
            x = shared_exponent(np.uint64(amax), in_mant, in_bias, mant_mask,
                                exp_shift_mask, scale_mode, m, emax, rceil_emax,
                                rceil_sig53, min_x, max_x)
        scales[b] = x + scale_bias
        if is_float and x + emin < 1 - in_bias:
            _generic_codes(row, x, in_mant, in_bias, mant_mask, exp_shift_mask, abs_mask,
                           sign_shift, is_float, m, emax, emin, max_code, sign_bit,
                           code_mask, rounding, np.uint64(0), np.uint64(0), wide)
            for i in range(bs):
                codes[i] = np.uint8(wide[i])
        else:
            # per-block constants: e_elem = max(ef - (in_bias + x), emin) and
            # sh = x + e_elem - m - max(ef, 1) + lsb_bias, in int32
            top = np.int32(in_bias + x)
            sh_base = np.int32(x - m + lsb_bias)
            for i in range(bs):
                codes[i] = lane_code(np.uint32(row[i]), top, sh_base, is_float, not is_float,
                                     m, emin, max_code, sign_bit, code_mask, sh_cap, up_half,
                                     even)
