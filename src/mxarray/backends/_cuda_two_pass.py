"""Planning of the CuPy backend's two-pass MX matmul (no GPU needed: NumPy only).

The two-pass path decodes each operand to bfloat16 with its block scales folded in
(``backends/cuda/mx_fold_bf16.cu``) and multiplies the folded operands in one cuBLAS
bf16 x bf16 -> float32 GEMM.  It is exact up to the GEMM's accumulation when

* every element value times its block scale has at most 8 significant bits
  (:func:`fold_is_exact`), so a folded value is a bfloat16 while it is in range;
* one power-of-two shift per operand (:func:`plan_shifts`) puts every folded value, and
  every product of two, in float32's normal range, and no partial sum can overflow.

The host reads the operands' scale bytes (:func:`scale_tables` turns each byte into the
exponents of its scale value), plans the shifts and the K tiles (:func:`k_tiles`), and
falls back to the exact path when no shift fits.  The bound the path guarantees is
:func:`two_pass_error_bound` (spec/mx.toml, ``[dot_paths.two_pass]``).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from ..formats import SCALE, UE4M3, Format

__all__ = [
    "BF16_SIGNIFICANT_BITS",
    "bf16_window",
    "element_exponents",
    "fold_is_exact",
    "k_tiles",
    "plan_shifts",
    "scale_tables",
    "two_pass_error_bound",
    "two_pass_gamma",
]

BF16_SIGNIFICANT_BITS = 8
"""Significant bits of a bfloat16 (7 stored fraction bits and the implicit one)."""
_MIN_NORMAL_EXP = -126  # bfloat16 and float32: the smallest normal is 2^-126
_MIN_SUBNORMAL_EXP = -133  # bfloat16's smallest subnormal: 2^(-126 - 7)
_OVERFLOW_EXP = 128  # a value of at most 8 significant bits below 2^128 is a bfloat16
_NONE = 1 << 20  # "no value": lo of a byte whose scale value is zero or NaN (hi: -_NONE)


def _odd_part(v: Fraction) -> int:
    """The odd integer ``o`` with ``v = o * 2^e`` (``v`` a non-zero dyadic rational)."""
    n, d = abs(v.numerator), v.denominator
    return n >> ((n & -n).bit_length() - 1) if d & (d - 1) == 0 else 0


def _lowest_bit(v: float) -> int:
    """The exponent of the lowest set bit of the non-zero dyadic ``v``."""
    f = Fraction(v)
    low_numerator = (abs(f.numerator) & -abs(f.numerator)).bit_length() - 1
    return low_numerator - (f.denominator.bit_length() - 1)


def _ceil_log2(v: float) -> int:
    """The least ``e`` with ``|v| <= 2^e``."""
    mant, exp = math.frexp(abs(v))
    return exp - 1 if mant == 0.5 else exp


def _values(fmt: Format) -> np.ndarray:
    table = np.abs(fmt.decode_table[np.isfinite(fmt.decode_table)])
    return np.unique(table[table > 0])


@functools.cache
def element_exponents(fmt: Format) -> tuple[int, int]:
    """``(lo, hi)``: every non-zero finite element value ``v`` of ``fmt`` at block scale 1
    (microexponents included) is a multiple of ``2^lo`` and ``|v| < 2^hi``.

    Examples
    --------
    >>> import mxarray
    >>> element_exponents(mxarray.get_format("mxfp8_e4m3"))   # 2^-9 .. 448
    (-9, 9)
    """
    values = _values(fmt)
    lo = min(_lowest_bit(float(v)) for v in values)
    if fmt.sub_block_size:
        lo -= (1 << fmt.sub_block_bits) - 1
    return lo, math.frexp(float(values.max()))[1]


@functools.cache
def scale_tables(fmt: Format) -> tuple[np.ndarray, np.ndarray, int]:
    """Per scale byte: ``lo[b]``, ``hi[b]`` (int32) and the plan's ``min_byte``.

    A positive finite scale value of byte ``b`` is a multiple of ``2^lo[b]`` and at most
    ``2^hi[b]``; bytes whose value is zero or NaN get ``lo = 2^20``, ``hi = -2^20`` (they
    add nothing to the plan).  E8M0 byte 0 (2^-127) is also left out (``min_byte = 1``):
    it is the scale of all-zero blocks, and the fold flags a non-zero element under it,
    sending the product to the exact path.

    Raises
    ------
    ValueError
        For a scale kind other than E8M0 and UE4M3.
    """
    lo = np.full(256, _NONE, np.int32)
    hi = np.full(256, -_NONE, np.int32)
    if fmt.scale is SCALE:
        exponents = np.arange(SCALE.nan_code) - SCALE.bias
        lo[1:SCALE.nan_code] = exponents[1:]
        hi[1:SCALE.nan_code] = exponents[1:]
        return lo, hi, 1
    if fmt.scale is UE4M3:
        for byte, value in enumerate(UE4M3.finite_grid):
            if value > 0:
                lo[byte], hi[byte] = _lowest_bit(float(value)), _ceil_log2(float(value))
        return lo, hi, 0
    raise ValueError(f"{fmt.name}: the two-pass matmul has no {fmt.scale.name} scale path")


@functools.cache
def fold_is_exact(fmt: Format) -> bool:
    """Whether every element value times every block scale value of ``fmt`` has at most
    8 significant bits (so it is a bfloat16 wherever it is in bfloat16's normal range).

    Examples
    --------
    >>> import mxarray
    >>> fold_is_exact(mxarray.get_format("nvfp4"))   # E2M1 x UE4M3: at most 6 bits
    True
    """
    odd = {_odd_part(Fraction(float(v))) for v in _values(fmt)}
    if fmt.scale is UE4M3:
        scales = {_odd_part(Fraction(float(s))) for s in UE4M3.finite_grid if s > 0}
        odd = {a * b for a in odd for b in scales}
    return max(o.bit_length() for o in odd) <= BF16_SIGNIFICANT_BITS


@functools.cache
def bf16_window(fmt: Format) -> tuple[int, int]:
    """The unbiased E8M0 scale exponents ``s`` for which every element value of ``fmt``
    times ``2^s`` is a bfloat16 (subnormals included) with no shift: ``[s_min, s_max]``.

    Examples
    --------
    >>> import mxarray
    >>> bf16_window(mxarray.get_format("mxfp8_e4m3"))
    (-124, 119)
    """
    lo, hi = element_exponents(fmt)
    return _MIN_SUBNORMAL_EXP - lo, _OVERFLOW_EXP - hi


def operand_exponents(fmt: Format, lo_min: int, hi_max: int) -> tuple[int, int] | None:
    """``(low, high)`` of an operand at shift 0 from the least ``lo`` and greatest ``hi``
    of :func:`scale_tables` over its blocks: every covered folded value is a multiple of
    ``2^low`` and below ``2^high`` in magnitude; None when no block is covered."""
    if lo_min >= _NONE:
        return None
    e_lo, e_hi = element_exponents(fmt)
    return lo_min + e_lo, hi_max + e_hi


def plan_shifts(a: tuple[int, int] | None, b: tuple[int, int] | None, k: int
                ) -> tuple[int, int] | None:
    """Shifts ``(sigma_a, sigma_b)`` for operands with exponents ``a`` and ``b`` (see
    :func:`operand_exponents`) and contracted length ``k``, or None if none exist.

    With ``L = low + sigma`` and ``H = high + sigma`` per operand, the shifts satisfy:
    ``L >= -126`` (every folded value a normal bfloat16), ``H <= 128`` (finite),
    ``L_a + L_b >= -126`` (every product a normal float32) and ``H_a + H_b +
    ceil(log2 k) <= 127`` (no partial sum reaches 2^127).  ``L_a + L_b = -126`` is
    chosen: it leaves the most room below the overflow limit.

    Examples
    --------
    >>> plan_shifts((-9, 9), (-9, 9), 4096)   # two E4M3 operands at unit scales
    (-117, 9)
    """
    a = a if a is not None else (0, 0)  # an operand of zeros: any shift
    b = b if b is not None else (0, 0)
    wa, wb = a[1] - a[0], b[1] - b[0]
    c = (k - 1).bit_length() if k > 1 else 0
    if _MIN_NORMAL_EXP + wa + wb + c > _OVERFLOW_EXP - 1:
        return None
    la = max(_MIN_NORMAL_EXP, wb - _OVERFLOW_EXP + _MIN_NORMAL_EXP)
    if la > min(_OVERFLOW_EXP - wa, 0):
        return None
    lb = _MIN_NORMAL_EXP - la
    return la - a[0], lb - b[0]


def k_tiles(k: int, a_block: int, b_block: int, rows: int, budget_bytes: int
            ) -> list[tuple[int, int]]:
    """Split ``[0, k)`` into K tiles whose folded operands (``rows`` = M + N rows of
    bfloat16) take at most ``budget_bytes`` (at least one block of each operand): tiles
    start on multiples of both block sizes."""
    step = math.lcm(a_block, b_block)
    width = max(step, budget_bytes // max(1, 2 * rows) // step * step)
    return [(k0, min(k, k0 + width)) for k0 in range(0, k, width)]


def two_pass_gamma(k: int) -> Fraction:
    """The two-pass path's relative constant ``gamma = nu / (1 - nu)``, exactly.

    ``nu = 2^-23 (K + ceil(K/4) + 2 ceil(K/16) + 2)``: the tensor cores align each group
    of at least 4 products with the running sum and truncate to float32 (every product but
    the largest, and the normalised sum, lose less than one unit in the 24th bit: at most
    ``m + 1`` units of 2^-23 for a group of ``m``), and partial sums of K parts of at least
    16 products (the decode tiles, cuBLAS's split-K) are added in float32 with one
    rounding each.  See spec/mx.toml ``[dot_paths.two_pass]``.
    """
    nu = Fraction(k + -(-k // 4) + 2 * -(-k // 16) + 2, 1 << 23)
    return nu / (1 - nu)


def two_pass_error_bound(k: int, abs_dot: np.ndarray, tensor_scaled: bool) -> np.ndarray:
    """``gamma * sum |A||B| + 2^-150`` (plus ``2^-23 (1 + gamma) sum |A||B|`` with a tensor
    scale: its float64 products and the one float32 rounding of the epilogue)."""
    gamma = float(two_pass_gamma(k))
    factor = gamma + (2.0**-23 * (1.0 + gamma) if tensor_scaled else 0.0)
    return factor * abs_dot + 2.0**-150
