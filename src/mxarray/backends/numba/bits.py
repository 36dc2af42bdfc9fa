"""Exact integer arithmetic on IEEE bit patterns, shared by every Numba kernel family.

Quantization never rounds in floating point.  An input value is split into its sign,
an integer significand ``sig`` and a power of two (``|v| = sig * 2**p``) straight from
its IEEE bits (:func:`split_bits`); a scaled element ``|v| / 2**step`` is then ``sig``
shifted right by ``step - p`` bits, and every rounding mode is a decision on the bits
shifted out (:func:`round_shift`).  This reproduces the NumPy reference bit for bit,
subnormal inputs included.  The shared exponent of a block comes from the bits of its
largest magnitude (:func:`exponent_of`).  Mode numbers are those of
:mod:`mxarray._kernel_codes`; the stochastic draws are :mod:`mxarray._random`'s
SplitMix64.  The intrinsics at the end (bit casts, 32-bit shifts, prefetch, unaligned
64-bit stores) let the element loops keep to 32-bit vector lanes and the packing to
whole words.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._kernel_codes import ROUNDING_CODES, SCALE_MODE_CODES
from ..._random import _MIX1, _MIX2, GAMMA

__all__ = [
    "WIDE", "FLOOR", "EVEN", "NEAREST", "TOWARD_ZERO", "STOCHASTIC",
    "random_u32", "block_number", "round_shift", "split_bits", "shared_exponent",
    "exponent_of", "float32_from_bits", "float32_bits", "prefetch", "store64", "shl32",
    "shr32",
]

# rounding and scale mode numbers (global ints: compile-time constants in the kernels)
EVEN, NEAREST = ROUNDING_CODES["even"], ROUNDING_CODES["nearest"]
TOWARD_ZERO, STOCHASTIC = ROUNDING_CODES["toward_zero"], ROUNDING_CODES["stochastic"]
FLOOR, _CEIL = SCALE_MODE_CODES["floor"], SCALE_MODE_CODES["ceil"]
_RCEIL = SCALE_MODE_CODES["rceil"]

_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_ONE = np.uint64(1)

# Shifts at or beyond this many bits leave nothing of a (<= 53-bit) significand and
# would overflow int64 masks; they are handled as "everything shifted out".
WIDE = 60

@nb.njit(cache=True, inline="always")
def random_u32(seed, index):
    """SplitMix64 draw of :mod:`mxarray._random`, upper 32 bits, as int64."""
    z = seed + (np.uint64(index) + _ONE) * GAMMA
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return np.int64(z >> _S32)


@nb.njit(cache=True, inline="always")
def block_number(block_ids, b):
    """The global block number (uint64) of row ``b``: ``block_ids[b]``, or ``b`` when
    ``block_ids`` is empty (the default numbering)."""
    return np.uint64(block_ids[b]) if block_ids.shape[0] else np.uint64(b)


@nb.njit(cache=True, inline="always")
def round_shift(sig, sh, rounding, seed, index):
    """Round ``sig / 2**sh`` (sig >= 0, < 2**53) to an integer in the given mode."""
    if sh <= 0:
        return sig << (-sh)  # exact: nothing is shifted out
    if sh >= WIDE:
        whole = np.int64(0)
        rem = sig
    else:
        whole = sig >> sh
        rem = sig & ((np.int64(1) << sh) - 1)
    if rounding == EVEN:  # ties to even
        if sh >= WIDE:
            return whole
        half = np.int64(1) << (sh - 1)
        if rem > half or (rem == half and (whole & 1) == 1):
            return whole + 1
        return whole
    if rounding == NEAREST:  # ties away from zero
        if sh >= WIDE:
            return whole
        if rem >= (np.int64(1) << (sh - 1)):
            return whole + 1
        return whole
    if rounding == TOWARD_ZERO:  # toward zero
        return whole
    # stochastic: up iff frac * 2**32 > R, frac = rem / 2**sh, compared exactly
    r = random_u32(seed, index)
    if sh <= 32:
        return whole + ((rem << (32 - sh)) > r)
    d = sh - 32
    if d >= WIDE:
        q = np.int64(0)
        tail = rem != 0
    else:
        q = rem >> d
        tail = (rem & ((np.int64(1) << d) - 1)) != 0
    return whole + (q > r or (q == r and tail))


@nb.njit(cache=True, inline="always")
def split_bits(a, in_mant, in_bias, mant_mask, exp_shift_mask):
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
def shared_exponent(amax, in_mant, in_bias, mant_mask, exp_shift_mask, scale_mode,
                    m, emax, rceil_emax, rceil_sig53, min_x, max_x):
    """Shared exponent X of a block from the bits of its largest magnitude (clamped)."""
    if amax == 0:
        return min_x
    x = exponent_of(amax, in_mant, in_bias, mant_mask, exp_shift_mask, scale_mode, m, emax,
                    rceil_emax, rceil_sig53)
    return min(max(x, min_x), max_x)


@nb.njit(cache=True, inline="always")
def exponent_of(amax, in_mant, in_bias, mant_mask, exp_shift_mask, scale_mode,
                m, emax, rceil_emax, rceil_sig53):
    """Unclamped exponent of the scale mode for the bits of a positive magnitude."""
    sig, p, e = split_bits(amax, in_mant, in_bias, mant_mask, exp_shift_mask)
    # the significand normalised to 53 bits: 2**52 <= sig53 < 2**53
    sig53 = sig << (52 - (e - p))
    if scale_mode == FLOOR:
        x = e - emax
    elif scale_mode == _CEIL:
        x = e - emax + (sig53 != (np.int64(1) << 52))
    elif scale_mode == _RCEIL:
        x = e - rceil_emax + (sig53 > rceil_sig53)
    else:
        sh = 52 - m
        whole = sig53 >> sh
        rem = sig53 & ((np.int64(1) << sh) - 1)
        half = np.int64(1) << (sh - 1)
        if rem > half or (rem == half and (whole & 1) == 1):
            whole += 1
        x = e + (whole == (np.int64(1) << (m + 1))) - emax
    return x


@intrinsic
def float32_from_bits(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (a bitcast, no conversion)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        word = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(word, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def float32_bits(typingctx, value):
    """The bits of a float32 as a uint32 (a bitcast, no conversion)."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(value), codegen


@intrinsic
def prefetch(typingctx, array, index):
    """Hint the CPU to fetch the cache line of ``array.reshape(-1)[index]`` (no effect
    on results; ``index`` must lie inside the C-contiguous ``array``)."""
    if not (isinstance(array, types.Array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.gep(data, [args[1]])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
        prefetch = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read access, keep in all cache levels, data cache
        builder.call(prefetch, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@intrinsic
def store64(typingctx, array, index, value):
    """Store the 8 bytes of the uint64 ``value``, in the machine's byte order, at byte
    ``index`` of the C-contiguous uint8 ``array``, unaligned; the caller keeps
    ``index + 8`` within the array."""
    if not (isinstance(array, types.Array) and isinstance(index, types.Integer)
            and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i64 = ir.IntType(64)
        address = builder.bitcast(builder.gep(data, [args[1]]), i64.as_pointer())
        word = args[2]
        if signature.args[2].bitwidth < 64:
            word = builder.zext(word, i64)
        builder.store(word, address, align=1)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


def _shift32(op_name):
    """An intrinsic ``(a, s) -> a op s`` on uint32 lanes; callers keep ``s`` below 32."""

    @intrinsic
    def shift(typingctx, a, s):
        if not (isinstance(a, types.Integer) and isinstance(s, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            i32 = ir.IntType(32)
            x, n = (builder.trunc(v, i32) if t.bitwidth > 32 else builder.zext(v, i32)
                    if t.bitwidth < 32 else v for v, t in zip(args, (a, s)))
            return getattr(builder, op_name)(x, n)

        return types.uint32(a, s), codegen

    return shift


shl32 = _shift32("shl")
shr32 = _shift32("lshr")

@nb.njit(cache=True, inline="always")
def lane_code(u, top, sh_base, is_float, twos_complement, m, emin, max_code, sign_bit,
              code_mask, sh_cap, up_half, even):
    """The element code (one byte) of the float32 bit pattern ``u`` in a block, on 32-bit
    lanes: the quantize kernels' shared element step (OCP and power-of-two formats).

    ``top`` is ``BIAS + X`` (``X`` the element's scale exponent, sub-block
    microexponent included) and ``sh_base`` is ``X - m + BIAS + 23``: with ``ef`` the
    input's exponent field, the element exponent is ``max(ef - top, emin)`` (``emin``
    for integer grids) and the significand is shifted right by ``sh_base + e_elem -
    max(ef, 1)``, at most ``sh_cap``, rounding as ``up_half`` (not toward zero) and
    ``even`` (ties to even) say.  Floats saturate to ``max_code`` and carry ``sign_bit``;
    integers saturate too (shifts below one overflow) and are two's complement codes
    (``twos_complement``) or sign-magnitude ones, masked by ``code_mask``.
    """
    a = np.uint32(u & np.uint32(0x7FFFFFFF))
    ef = np.int32(shr32(a, np.uint32(23)))
    efe = max(ef, np.int32(1))
    sig = np.uint32(np.uint32(a & np.uint32(0x7FFFFF))
                    | (np.uint32(1 << 23) if ef > 0 else np.uint32(0)))
    if is_float:
        e_elem = max(np.int32(ef - top), np.int32(emin))
        sh = min(np.int32(np.int32(sh_base + e_elem) - efe), np.int32(sh_cap))
        over = np.uint32(0)
    else:
        e_elem = np.int32(emin)
        sh = np.int32(sh_base - efe)
        over = np.uint32(sh < 1)
        sh = min(max(sh, np.int32(1)), np.int32(sh_cap))
    half = np.uint32(shl32(np.uint32(1), sh - 1) * up_half)
    odd = np.uint32(shr32(sig, sh) & np.uint32(1))
    k = shr32(np.uint32(np.uint32(sig + half) - even + np.uint32(odd * even)), sh)
    negative = np.uint32(shr32(u, np.uint32(31)))
    if is_float:
        k = min(np.uint32(shl32(np.uint32(e_elem - emin), np.uint32(m)) + k),
                np.uint32(max_code))
    else:
        k = min(np.uint32(k + np.uint32(over * max_code)), np.uint32(max_code))
    if twos_complement:
        return np.uint8(np.uint32((k ^ np.uint32(0 - negative)) + negative)
                        & np.uint32(code_mask))
    return np.uint8(k | np.uint32(negative * sign_bit))
