"""Kernel arguments of the general block formats, derived from a :class:`Format`.

The Numba kernels of :mod:`mxarray.backends._numba_block_kernels` know no format; this
module turns a format into their integer and table arguments (cached per format), and
decides whether an MX matmul of two operands may run on float32 panels.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ..formats import Format
from .numpy_backend import _tensor_scale  # the reference's reading of the keyword

__all__ = ["KIND_CODES", "layout_params", "unpack_lanes", "pow2_params", "ue4m3_params",
           "scale_values", "general_matmul_dtype", "tensor_factor"]

KIND_CODES = {"float": 0, "int": 1, "signmag": 2}
_FLOAT32 = np.finfo(np.float32)


def layout_params(fmt: Format) -> tuple[int, int, int, int]:
    """(element bits, sub-block size, microexponent bits, element bytes) of a block.

    A format without sub-blocks is one sub-block of the whole block with 0-bit
    microexponents.
    """
    sub_size = fmt.sub_block_size or fmt.block_size
    return fmt.bits, sub_size, fmt.sub_block_bits, fmt.element_bytes


@functools.cache
def unpack_lanes(fmt: Format) -> np.ndarray:
    """Where each element's bits lie in a packed block, for the kernels' unpacking.

    Rows (int64, ``(7, max(block_size, 3))``): the byte holding the element's low bits, the next
    byte (or the same one, masked out, where the field fits one byte), that mask (0xFF
    or 0), the bit shift, the byte and shift of its sub-block's microexponent; the last
    row starts with the element mask, the microexponent mask and the element bits.
    """
    bits, sub_size, sub_bits, element_bytes = layout_params(fmt)
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


@functools.cache
def pow2_params(fmt: Format) -> tuple[Any, ...]:
    """Element, scale and sub-block arguments of ``quantize_pow2_rows``."""
    mant, expo = np.frexp(fmt.max_normal)
    _, sub_size, sub_bits, _ = layout_params(fmt)
    scale = fmt.scale
    return (
        KIND_CODES[fmt.kind], fmt.bits, fmt.mantissa_bits, fmt.emax, fmt.emin, fmt.max_code,
        fmt.sign_bit, fmt.n_codes - 1,
        int(expo) - 1,  # rceil: floor(log2(max_normal))
        int(np.ldexp(mant, 53)),  # and max_normal's significand on 53 bits
        scale.min_exponent, scale.max_exponent, scale.bias, scale.nan_code,
        sub_size, sub_bits, fmt.magnitude_overflow == "promote",
    )


def _midpoints(grid: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((grid[:-1] + grid[1:]) / 2)  # exact: dyadic, few bits


@functools.cache
def _ue4m3_tables(fmt: Format) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    grid = np.ascontiguousarray(fmt.scale.finite_grid)
    elements = fmt.decode_table[: fmt.max_code + 1]
    return grid, _midpoints(grid), _midpoints(elements), np.ascontiguousarray(elements[1:])


def ue4m3_params(fmt: Format, rounding: str, tensor_scale: float | None) -> tuple[Any, ...]:
    """Leading arguments of ``quantize_ue4m3_rows`` (up to the element rounding code)."""
    s_t = float(_tensor_scale(fmt, tensor_scale))
    grid, grid_mid, element_mid, element_top = _ue4m3_tables(fmt)
    bounds = element_top if rounding == "toward_zero" else element_mid
    return float(fmt.max_normal) * s_t, s_t, grid, grid_mid, bounds


def scale_values(fmt: Format, tensor_scale: float | None, with_tensor: bool = True
                 ) -> np.ndarray:
    """The float64 value of every scale byte, times the tensor scale when ``with_tensor``
    (exact: at most 4 + 24 significant bits); NaN for NaN and invalid bytes."""
    values = fmt.scale.values
    if with_tensor and fmt.tensor_scale != "none":
        values = values * float(_tensor_scale(fmt, tensor_scale))
    return np.ascontiguousarray(values, dtype=np.float64)


def tensor_factor(fmt: Format, tensor_scale: float | None) -> float:
    """What matmul panels leave out of ``fmt``'s values: its tensor scale (or 1.0)."""
    return float(_tensor_scale(fmt, tensor_scale))


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
