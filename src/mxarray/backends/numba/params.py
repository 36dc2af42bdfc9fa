"""Kernel parameters as named records, derived from a :class:`~mxarray.formats.Format`.

The Numba kernels know no format: every fact about the input dtype, the element grid,
the scale, the byte layout and the element decode arrives as one of the records below
(NamedTuples, which Numba passes as typed tuples of run-time values).  The kernels
that must know a fact at compile time (the per-format kernels of
:mod:`mxarray.backends.numba.pow2_kernels`) are generated from the same records
with their fields bound as constants.  This module also decides whether an MX matmul
of two operands may run on float32 panels (:func:`general_matmul_dtype`).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from ..._kernel_codes import ELEMENT_KIND_CODES, ROUNDING_CODES, SCALE_MODE_CODES
from ...formats import SCALE, Format
from ..base import QuantizeOptions

__all__ = [
    "InputBits", "ElementGrid", "ScaleRange", "Modes", "PackLayout", "ElementDecode",
    "SubBlocks", "Ue4m3Grid", "input_bits", "element_grid", "scale_range", "modes",
    "pack_layout", "element_decode", "sub_blocks", "ue4m3_grid", "unpack_lanes",
    "e8m0_values", "scale_values", "tensor_value", "general_matmul_dtype",
]

_FLOAT32 = np.finfo(np.float32)


class InputBits(NamedTuple):
    """Bit fields of an IEEE input dtype (from ``numpy.finfo``)."""

    mant: int                 # stored mantissa bits
    bias: int                 # exponent bias
    mant_mask: np.uint64      # the mantissa field
    exp_mask: np.uint64       # the exponent field, shifted down
    abs_mask: np.uint64       # every bit but the sign
    inf_bits: np.uint64       # the bits of +Inf (magnitudes at or above are not finite)
    sign_shift: np.uint64     # position of the sign bit


class ElementGrid(NamedTuple):
    """What quantize needs of an element format."""

    kind: int                 # ELEMENT_KIND_CODES: float, int (two's complement), signmag
    bits: int                 # code width
    m: int                    # mantissa bits
    emax: int
    emin: int
    max_code: int             # largest finite magnitude code
    sign_bit: int
    code_mask: int            # n_codes - 1
    rceil_emax: int           # floor(log2(max_normal)), for scale mode rceil
    rceil_sig53: int          # max_normal's significand on 53 bits


class ScaleRange(NamedTuple):
    """A power-of-two block scale: the exponents it holds, its bias and NaN byte."""

    min_x: int
    max_x: int
    bias: int
    nan_code: int


class Modes(NamedTuple):
    """The scale mode and rounding mode numbers (:mod:`mxarray._kernel_codes`) and seed."""

    scale_mode: int
    rounding: int
    seed: np.uint64


class PackLayout(NamedTuple):
    """``per_group`` codes of ``code_bits`` bits in ``group_bytes`` bytes, little-endian
    (``(1, 1, 8)``: one code per byte)."""

    per_group: int
    group_bytes: int
    code_bits: int


class ElementDecode(NamedTuple):
    """The bit-level element decode of the OCP kernels (see :func:`element_decode`)."""

    is_float: bool
    field_scale: np.uint32
    sign_bit: np.uint32
    n_codes: np.int32
    mag_mask: np.uint32
    special_min: np.uint32
    inf_mag: np.uint32
    normal_mag: np.uint32
    exp_offset: np.uint32
    unit: np.float32


class SubBlocks(NamedTuple):
    """Sub-blocks of a block: size, microexponent bits (0: none), the "promote" rule, and
    the byte where the microexponents start in a packed block."""

    size: int
    bits: int
    promote: bool
    element_bytes: int


class Ue4m3Grid(NamedTuple):
    """UE4M3 block scales: the scale unit (element max times tensor scale), the tensor
    scale, the scale grid and its midpoints, and the element bounds of the rounding."""

    scale_unit: float
    tensor_scale: float
    grid: np.ndarray
    grid_mid: np.ndarray
    element_bounds: np.ndarray


@functools.cache
def input_bits(dtype: np.dtype) -> InputBits:
    """Bit-field parameters of an IEEE input dtype, read from ``numpy.finfo``."""
    info = np.finfo(dtype)
    mant, width = int(info.nmant), 8 * dtype.itemsize
    exp_ones = (1 << int(info.nexp)) - 1
    return InputBits(mant, exp_ones >> 1, np.uint64((1 << mant) - 1), np.uint64(exp_ones),
                     np.uint64((1 << (width - 1)) - 1), np.uint64(exp_ones << mant),
                     np.uint64(width - 1))


@functools.cache
def element_grid(fmt: Format) -> ElementGrid:
    """The element facts quantize needs (:class:`ElementGrid`)."""
    mant, expo = np.frexp(fmt.max_normal)
    return ElementGrid(ELEMENT_KIND_CODES[fmt.kind], fmt.bits, fmt.mantissa_bits, fmt.emax,
                       fmt.emin, fmt.max_code, fmt.sign_bit, fmt.n_codes - 1, int(expo) - 1,
                       int(np.ldexp(mant, 53)))


@functools.cache
def scale_range(fmt: Format) -> ScaleRange:
    """The power-of-two scale of ``fmt`` (E8M0 or a d-bit exponent)."""
    s = fmt.scale
    return ScaleRange(s.min_exponent, s.max_exponent, s.bias, s.nan_code)


def modes(options: QuantizeOptions) -> Modes:
    """The mode numbers and seed (0 when not stochastic) of ``options``; the same record
    for the same options (see :func:`_modes`)."""
    return _modes(options.scale_mode, options.rounding, options.seed or 0)


@functools.lru_cache(maxsize=256)
def _modes(scale_mode: str, rounding: str, seed: int) -> Modes:
    """Cached: a kernel call passes the same record objects, which the launch keys by
    identity (:mod:`.threads`); bounded, as each stochastic call may bring a new seed."""
    return Modes(SCALE_MODE_CODES[scale_mode], ROUNDING_CODES[rounding], np.uint64(seed))


@functools.cache
def pack_layout(fmt: Format, packed: bool) -> PackLayout:
    """The OCP byte layout of packed codes, or one code per byte."""
    if packed:
        return PackLayout(fmt.layout.elements, fmt.layout.bytes, fmt.bits)
    return PackLayout(1, 1, 8)


@functools.cache
def element_decode(fmt: Format) -> ElementDecode:
    """Parameters of the bit-level element decode of the OCP kernels.

    Float codes: the magnitude field shifted to float32's field positions, rebiased by
    ``127 - bias`` in the exponent field; subnormal codes (magnitude below the first
    normal one) less the smallest normal value; magnitudes from the first non-finite
    one on are specials (Inf at the infinite magnitude, NaN otherwise).  Integer codes:
    two's complement times the value of code 1.  Every (code, scale) pair is checked
    against the reference in the tests.
    """
    table = fmt.decode_table
    magnitudes = np.arange(fmt.sign_bit)
    special = magnitudes[~np.isfinite(table[: fmt.sign_bit])]
    infinite = magnitudes[np.isinf(table[: fmt.sign_bit])]
    is_float = fmt.kind == "float"
    mant = int(_FLOAT32.nmant)
    return ElementDecode(
        is_float,
        np.uint32(1 << (mant - fmt.mantissa_bits)),
        np.uint32(fmt.sign_bit),
        np.int32(fmt.n_codes),
        np.uint32(fmt.sign_bit - 1),
        np.uint32(special.min() if special.size else fmt.n_codes),
        np.uint32(infinite[0] if infinite.size else fmt.n_codes),
        np.uint32(1 << fmt.mantissa_bits),
        np.uint32((_FLOAT32.maxexp - 1 - fmt.bias) << mant),
        np.float32(fmt.min_normal if is_float else table[1]),
    )


@functools.cache
def sub_blocks(fmt: Format) -> SubBlocks:
    """A format without sub-blocks is one sub-block of the whole block, 0-bit
    microexponents."""
    return SubBlocks(fmt.sub_block_size or fmt.block_size, fmt.sub_block_bits,
                     fmt.magnitude_overflow == "promote", fmt.element_bytes)


@functools.cache
def e8m0_values(dtype: np.dtype) -> np.ndarray:
    """The 256 E8M0 scale values (NaN for the NaN byte) in ``dtype``, exact (float32
    holds every 2**X down to 2**-127 as a subnormal)."""
    values = SCALE.decode(np.arange(256, dtype=np.uint8)).astype(dtype)
    values.flags.writeable = False
    return values


def tensor_value(tensor_scale: np.float32 | None) -> float:
    """The tensor scale as a float (1.0 for formats without one: the core sets it
    exactly for formats that have one)."""
    return 1.0 if tensor_scale is None else float(tensor_scale)


@functools.cache
def unpack_lanes(fmt: Format) -> np.ndarray:
    """Where each element's bits lie in a packed block, for the kernels' unpacking.

    Rows (int64, ``(7, max(block_size, 3))``): the byte holding the element's low bits, the next
    byte (or the same one, masked out, where the field fits one byte), that mask (0xFF
    or 0), the bit shift, the byte and shift of its sub-block's microexponent; the last
    row starts with the element mask, the microexponent mask and the element bits.
    """
    bits, (sub_size, sub_bits, _, element_bytes) = fmt.bits, sub_blocks(fmt)
    i = np.arange(fmt.block_size)
    pos = i * bits
    lo = pos >> 3
    spans = (pos & 7) + bits > 8
    hi = np.where(spans, lo + 1, lo)
    d_pos = (i // sub_size) * sub_bits
    d_byte = np.where(sub_bits > 0, element_bytes + (d_pos >> 3), 0)
    width = max(fmt.block_size, 3)  # room for the three masks
    lanes = np.zeros((7, width), dtype=np.int64)
    lanes[:6, : fmt.block_size] = (lo, hi, np.where(spans, 0xFF, 0), pos & 7, d_byte, d_pos & 7)
    lanes[6, :3] = ((1 << bits) - 1, (1 << sub_bits) - 1, bits)
    lanes.flags.writeable = False
    return lanes


def _midpoints(grid: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((grid[:-1] + grid[1:]) / 2)  # exact: dyadic, few bits


@functools.cache
def _ue4m3_tables(fmt: Format) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    grid = np.ascontiguousarray(fmt.scale.finite_grid)
    elements = fmt.decode_table[: fmt.max_code + 1]
    return grid, _midpoints(grid), _midpoints(elements), np.ascontiguousarray(elements[1:])


def ue4m3_grid(fmt: Format, rounding: str, tensor_scale: np.float32 | None) -> Ue4m3Grid:
    """The UE4M3 scale grid record of ``quantize_ue4m3_rows`` for a rounding mode; the
    same record for the same tensor scale (keyed by its exact value, sign of zero
    included)."""
    s_t = tensor_value(tensor_scale)
    return _ue4m3_grid(fmt, rounding, s_t.hex())


@functools.lru_cache(maxsize=256)
def _ue4m3_grid(fmt: Format, rounding: str, tensor_hex: str) -> Ue4m3Grid:
    s_t = float.fromhex(tensor_hex)
    grid, grid_mid, element_mid, element_top = _ue4m3_tables(fmt)
    bounds = element_top if rounding == "toward_zero" else element_mid
    return Ue4m3Grid(float(fmt.max_normal) * s_t, s_t, grid, grid_mid, bounds)


def scale_values(fmt: Format, tensor_scale: np.float32 | None) -> np.ndarray:
    """The float64 value of every scale byte times the tensor scale (None: none; exact,
    at most 4 + 24 significant bits); NaN for NaN and invalid bytes."""
    return np.ascontiguousarray(fmt.scale.values * tensor_value(tensor_scale), dtype=np.float64)


def _bit_span(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exponents of the lowest and highest set bits of positive finite dyadic values."""
    mant, expo = np.frexp(values)
    sig = np.ldexp(mant, 53).astype(np.int64)
    low = np.frexp((sig & -sig).astype(np.float64))[1] - 1 + expo - 53
    return low, expo - 1


@functools.cache
def _table_span(fmt: Format) -> tuple[int, int, int]:
    """(lowest set bit, highest set bit, most significant bits) over the finite non-zero
    values of ``fmt``'s decode table."""
    t = np.abs(fmt.decode_table)
    t = t[np.isfinite(t) & (t > 0)]
    low, high = _bit_span(t)
    return int(low.min()), int(high.max()), int((high - low).max()) + 1


def _value_span(fmt: Format, scales: np.ndarray) -> tuple[int, int, int] | None:
    """Bit span of the decoded values (tensor scale left out) over the scale bytes used,
    or None if no block has a finite scale."""
    used = np.bincount(scales.reshape(-1), minlength=256) > 0
    s = fmt.scale.values[used]
    s = s[np.isfinite(s) & (s > 0)]
    if s.size == 0:
        return None
    t_low, t_high, t_bits = _table_span(fmt)
    s_low, s_high = _bit_span(s)
    s_bits = int((s_high - s_low).max()) + 1
    return t_low + int(s_low.min()), t_high + int(s_high.max()), t_bits + s_bits


def general_matmul_dtype(a_fmt: Format, a_scales: np.ndarray, b_fmt: Format,
                         b_scales: np.ndarray, k: int) -> np.dtype:
    """float32 when every decoded value, every product of two and every partial sum of
    ``k`` products is exact or in range in float32 (tensor scales left out), else float64.

    Decoded values and products of every registrable format are exact in float64.
    """
    a, b = _value_span(a_fmt, a_scales), _value_span(b_fmt, b_scales)
    top = _FLOAT32.maxexp - 1  # highest bit a finite float32 may set
    if a is None or b is None:  # every product is NaN or zero, unless a value overflows
        fits = all(span[1] <= top for span in (a, b) if span is not None)
        return np.dtype(np.float32 if fits else np.float64)
    terms = math.ceil(math.log2(max(k, 1)))
    exact = (
        min(a[0], b[0], a[0] + b[0]) >= int(np.log2(_FLOAT32.smallest_subnormal))
        and max(a[1], b[1], a[1] + b[1] + 1 + terms) <= top
        and a[2] + b[2] <= _FLOAT32.nmant + 1
    )
    return np.dtype(np.float32 if exact else np.float64)
