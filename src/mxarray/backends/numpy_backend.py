"""The NumPy reference backend: readable, vectorised and exact by construction.

Every other backend is tested bit for bit against this one.  It sees only contiguous
``(n_blocks, block_size)`` arrays (and, for matmul, rows of packed bytes); shapes, axes
and padding are handled in :mod:`mxarray.core`.  The arithmetic is exact: inputs are widened to float64 (exact for
float16/32/64), exponents come from ``frexp``, scaling uses ``ldexp`` by powers of two,
and rounding compares the exact fractional part with one half.  Scales that are not
powers of two (NVFP4's UE4M3 times its float32 tensor scale) are handled by exact
comparisons with the scaled grid (:func:`round_ratio`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._random import random_u32
from ..formats import Format
from .base import Backend, DequantizeOptions, QuantizeOptions

__all__ = ["NumpyBackend"]

# Scaled magnitudes below this are far under half the smallest grid step: every rounding
# mode treats them alike, so they are lifted here to keep float64 from underflowing.
_TINY = 2.0**-40
# Scaled magnitudes above this saturate in every format (keeps the int64 cast safe).
_HUGE = 2.0**40


def _exponents(positive_amax: np.ndarray, fmt: Format, scale_mode: str) -> np.ndarray:
    """Unclamped exponents X (int64) of positive float64 maxima under ``scale_mode``."""
    mant, exp = np.frexp(positive_amax)
    e = np.maximum(exp.astype(np.int64) - 1, -1100)  # floor(log2(amax)), exact
    if scale_mode == "floor":
        return e - fmt.emax
    if scale_mode == "ceil":
        return e - fmt.emax + (mant != 0.5)
    if scale_mode == "rceil":
        e_max = int(np.frexp(fmt.max_normal)[1]) - 1
        x = e - e_max
        return x + (positive_amax > np.ldexp(fmt.max_normal, x))
    if scale_mode == "even":
        m = fmt.mantissa_bits
        rounded = np.rint(np.ldexp(positive_amax, m - e))  # amax on m mantissa bits, ties to even
        return e + (rounded == 2 ** (m + 1)) - fmt.emax
    raise ValueError(f"unknown scale mode {scale_mode!r}")


def shared_exponents(amax: np.ndarray, fmt: Format, scale_mode: str) -> np.ndarray:
    """Return the clamped shared exponents X (int32) for block maxima.

    ``amax`` is float64, finite and non-negative; zero blocks get the scale's
    ``min_exponent``.  X is clamped to the exponent range of ``fmt.scale``.
    """
    positive = amax > 0
    x = _exponents(np.where(positive, amax, 1.0), fmt, scale_mode)
    x = np.clip(x, fmt.scale.min_exponent, fmt.scale.max_exponent)
    return np.where(positive, x, fmt.scale.min_exponent).astype(np.int32)


def microexponents(
    v: np.ndarray, x: np.ndarray, fmt: Format, scale_mode: str
) -> np.ndarray:
    """Microexponents D (int64, ``(n, n_sub_blocks)``) of ``(n, block_size)`` finite ``v``.

    ``D_j = clamp(X - X_j, 0, 2**sub_block_bits - 1)`` with ``X_j`` the scale mode's
    (unclamped) exponent of sub-block ``j``'s maximum; all-zero sub-blocks get 0.
    """
    sub = np.abs(v).reshape(v.shape[0], fmt.n_sub_blocks, fmt.sub_block_size)
    samax = sub.max(axis=2)
    positive = samax > 0
    xs = _exponents(np.where(positive, samax, 1.0), fmt, scale_mode)
    d = np.clip(x[:, None].astype(np.int64) - xs, 0, (1 << fmt.sub_block_bits) - 1)
    return np.where(positive, d, 0)


def round_magnitudes(
    t: np.ndarray, rounding: str, seed: int | None, index: np.ndarray | None
) -> np.ndarray:
    """Round exact non-negative float64 ``t`` to integers (int64) in the given mode."""
    whole = np.floor(t)
    frac = t - whole  # exact: whole <= t < whole + 1
    if rounding == "even":
        up = (frac > 0.5) | ((frac == 0.5) & (np.fmod(whole, 2.0) == 1.0))
    elif rounding == "nearest":
        up = frac >= 0.5
    elif rounding == "toward_zero":
        up = np.zeros(t.shape, dtype=bool)
    elif rounding == "stochastic":
        if seed is None or index is None:
            raise ValueError("stochastic rounding needs a seed")
        up = np.ldexp(frac, 32) > random_u32(seed, index).astype(np.float64)
    else:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    return whole.astype(np.int64) + up


def magnitude_codes(
    v: np.ndarray,
    x: np.ndarray,
    fmt: Format,
    rounding: str,
    seed: int | None = None,
    index: np.ndarray | None = None,
) -> np.ndarray:
    """Unclamped magnitude codes (int64) of finite float64 ``v`` divided by ``2**x``.

    A result above ``fmt.max_code`` means the rounded magnitude exceeds the largest one.
    """
    mag = np.abs(v)
    nonzero = mag > 0
    m = fmt.mantissa_bits
    if fmt.kind == "float":
        _, exp = np.frexp(np.where(nonzero, mag, 1.0))
        e_elem = np.where(nonzero, exp.astype(np.int64) - 1 - x, fmt.emin)
        e_elem = np.maximum(e_elem, fmt.emin)  # subnormal range shares emin's quantum
        step = x + e_elem - m  # log2 of the grid step at each element
    else:
        step = x - m + np.zeros(mag.shape, dtype=np.int64)  # a uniform grid
    t = np.ldexp(mag, -step)  # in grid steps; exact unless far below one step
    t = np.where(nonzero & (t < _TINY), _TINY, t)
    t = np.minimum(t, _HUGE)  # only integers can exceed their grid, and they saturate
    n = round_magnitudes(t, rounding, seed, index)
    if fmt.kind == "float":
        return np.where(nonzero, (e_elem - fmt.emin) * (1 << m) + n, 0)
    return n


def signed_codes(magnitude: np.ndarray, negative: np.ndarray, fmt: Format) -> np.ndarray:
    """Clamp magnitude codes to ``max_code`` and attach the sign (int64 element codes).

    Float and sign-magnitude elements set the sign bit (so negative zero is kept);
    two's-complement integers negate.
    """
    k = np.minimum(magnitude, fmt.max_code)
    if fmt.kind == "int":
        return np.where(negative, -k, k) & (fmt.n_codes - 1)
    return k | np.where(negative, fmt.sign_bit, 0)


def encode(
    v: np.ndarray,
    x: np.ndarray,
    fmt: Format,
    rounding: str,
    seed: int | None = None,
    index: np.ndarray | None = None,
) -> np.ndarray:
    """Encode finite float64 ``v`` divided by ``2**x`` (broadcast) as element codes (uint8)."""
    magnitude = magnitude_codes(v, x, fmt, rounding, seed, index)
    return signed_codes(magnitude, np.signbit(v), fmt).astype(np.uint8)


def round_ratio(a: np.ndarray, d: np.ndarray, grid: np.ndarray, rounding: str) -> np.ndarray:
    """Index (int64) of ``a / d`` rounded onto ``grid``, exactly, saturating at its top.

    ``a >= 0`` and ``d > 0`` are float64 arrays (broadcast); ``grid`` is ascending and
    starts at 0.  Every product of ``d`` with a grid value or a midpoint is exact in
    float64 (short significands), so comparing ``a`` with them decides the rounding
    exactly: a float64 quotient picks the candidate, one exact step either way fixes it.
    """
    if rounding == "toward_zero":
        bounds = grid[1:]  # index = number of grid values (after 0) at or below a / d
        below = lambda k: a >= bounds[k] * d  # noqa: E731
    elif rounding in ("even", "nearest"):
        bounds = (grid[:-1] + grid[1:]) / 2  # index = number of midpoints below a / d
        below = lambda k: a > bounds[k] * d  # noqa: E731
    else:
        raise ValueError(f"rounding {rounding!r} is not defined for this scale")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.where(d > 0, a / d, 0.0)  # an overflow to inf saturates below, as it should
    k = np.searchsorted(bounds, q, side="left" if rounding != "toward_zero" else "right")
    last = len(bounds)
    k = np.clip(k, 0, last)
    k = np.where((k > 0) & ~below(np.maximum(k - 1, 0)), k - 1, k)  # one exact step down
    k = np.where((k < last) & below(np.minimum(k, last - 1)), k + 1, k)  # or up
    if rounding == "toward_zero":
        return k
    tie = (k < last) & (a == bounds[np.minimum(k, last - 1)] * d)
    if rounding == "nearest":
        return k + tie
    return k + (tie & (k % 2 == 1))


def _pack_bits(values: np.ndarray, width: int) -> np.ndarray:
    """Pack ``width``-bit integers along the last axis LSB-first into bytes (uint8)."""
    group = 8 // math.gcd(8, width)  # values per whole number of bytes
    n_bytes = width * group // 8
    n_groups = values.shape[-1] // group
    groups = values.reshape(values.shape[:-1] + (n_groups, group)).astype(np.uint64)
    word = np.zeros(groups.shape[:-1], dtype=np.uint64)
    for i in range(group):
        word |= groups[..., i] << np.uint64(width * i)
    out = np.stack([(word >> np.uint64(8 * j)) & np.uint64(0xFF) for j in range(n_bytes)], -1)
    return out.astype(np.uint8).reshape(values.shape[:-1] + (n_groups * n_bytes,))


def _unpack_bits(packed: np.ndarray, width: int) -> np.ndarray:
    """Inverse of :func:`_pack_bits`: one integer (uint16) per ``width``-bit field."""
    group = 8 // math.gcd(8, width)
    n_bytes = width * group // 8
    n_groups = packed.shape[-1] // n_bytes
    groups = packed.reshape(packed.shape[:-1] + (n_groups, n_bytes)).astype(np.uint64)
    word = np.zeros(groups.shape[:-1], dtype=np.uint64)
    for j in range(n_bytes):
        word |= groups[..., j] << np.uint64(8 * j)
    mask = np.uint64((1 << width) - 1)
    out = np.stack([(word >> np.uint64(width * i)) & mask for i in range(group)], -1)
    return out.astype(np.uint16).reshape(packed.shape[:-1] + (n_groups * group,))


class NumpyBackend(Backend):
    """The exact reference implementation of the backend contract on NumPy arrays.

    It writes the four primitives and inherits the fused operations of
    :class:`~mxarray.backends.base.Backend`, its exact tiled float64 matmul included.
    """

    name = "numpy"
    xp = np
    all_formats = True

    def available(self) -> tuple[bool, str]:
        """NumPy is a hard dependency: always available."""
        return True, "reference backend, always available"

    def quantize_blocks(
        self, blocks: np.ndarray, options: QuantizeOptions
    ) -> tuple[np.ndarray, np.ndarray]:
        """Quantize ``(n, block_size)`` floats; return ``(codes, scale_bytes)``.

        ``codes`` are unpacked codes (``fmt.code_dtype``): element bits, plus each
        sub-block's microexponent shifted above them.
        """
        fmt, rounding, seed = options.fmt, options.rounding, options.seed
        v = np.asarray(blocks, dtype=np.float64)
        finite = np.isfinite(v)
        block_finite = finite.all(axis=1)
        v = np.where(finite, v, 0.0)
        index = None
        if rounding == "stochastic":
            index = _random_indices(v.shape, options.block_ids)
        if fmt.scale.kind == "ue4m3":
            codes, scale_bytes = self._quantize_ue4m3(v, fmt, rounding, options.tensor_scale)
        else:
            amax = np.max(np.abs(v), axis=1, initial=0.0)
            x = shared_exponents(amax, fmt, options.scale_mode)
            codes = self._encode_sub_blocks(v, x, fmt, rounding, options.scale_mode, seed, index)
            scale_bytes = x + fmt.scale.bias
        codes = codes.astype(fmt.code_dtype)
        codes[~block_finite] = 0
        scales = np.where(block_finite, scale_bytes, fmt.scale.nan_code).astype(np.uint8)
        return codes, scales

    @staticmethod
    def _encode_sub_blocks(
        v: np.ndarray,
        x: np.ndarray,
        fmt: Format,
        rounding: str,
        scale_mode: str,
        seed: int | None,
        index: np.ndarray | None,
    ) -> np.ndarray:
        """Element codes against exponent ``X - D_j``, with ``D_j << bits`` attached."""
        if not fmt.sub_block_size:
            return encode(v, x[:, None].astype(np.int64), fmt, rounding, seed, index)
        d = microexponents(v, x, fmt, scale_mode)
        while True:
            d_elem = np.repeat(d, fmt.sub_block_size, axis=1)
            x_elem = x[:, None].astype(np.int64) - d_elem
            magnitude = magnitude_codes(v, x_elem, fmt, rounding, seed, index)
            if fmt.magnitude_overflow != "promote":
                break
            over = (magnitude > fmt.max_code).reshape(d.shape + (fmt.sub_block_size,)).any(axis=2)
            lower = over & (d > 0)
            if not lower.any():
                break
            d = d - lower  # use a coarser exponent for sub-blocks that overflowed
        codes = signed_codes(magnitude, np.signbit(v), fmt)
        return codes | (d_elem << fmt.bits)

    @staticmethod
    def _quantize_ue4m3(
        v: np.ndarray, fmt: Format, rounding: str, tensor_scale: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Two-level scaling (NVFP4): UE4M3 block scales, elements against ``s_b * S_t``."""
        s_t = _tensor_scale(fmt, tensor_scale)
        amax = np.max(np.abs(v), axis=1, initial=0.0)
        grid = fmt.scale.finite_grid
        scale_bytes = round_ratio(amax, np.float64(fmt.max_normal) * s_t, grid, "even")
        divisor = grid[scale_bytes] * s_t  # exact: 4 x 24 significant bits
        element_grid = fmt.decode_table[: fmt.max_code + 1]
        magnitude = round_ratio(np.abs(v), divisor[:, None], element_grid, rounding)
        magnitude = np.where(divisor[:, None] > 0, magnitude, 0)  # scale 0: signed zeros
        return signed_codes(magnitude, np.signbit(v), fmt), scale_bytes

    def dequantize_blocks(
        self, codes: np.ndarray, scales: np.ndarray, options: DequantizeOptions
    ) -> np.ndarray:
        """Return ``decode(codes) * scale value (* tensor scale)`` for ``(n, block_size)`` codes.

        Computed exactly in float64, then rounded once to ``options.dtype``; NaN for NaN
        scales.
        """
        fmt, tensor_scale, dtype = options.fmt, options.tensor_scale, options.dtype
        block = fmt.scale.decode(scales)
        if fmt.tensor_scale != "none":
            block = block * _tensor_scale(fmt, tensor_scale)
        values = fmt.decode(codes) * block[:, None]
        values[np.isnan(block)] = np.nan
        with np.errstate(over="ignore"):  # beyond float32's range is +-inf, as a cast gives
            return values.astype(dtype)

    def pack(self, codes: np.ndarray, fmt: Format) -> np.ndarray:
        """Pack unpacked codes along the last axis into the format's byte layout.

        Elements go into a little-endian bit stream; for formats with sub-blocks the
        length is whole blocks and each block's microexponents follow its element bytes.
        """
        codes = np.asarray(codes)
        elements = _pack_bits(codes & (fmt.n_codes - 1), fmt.bits)
        if not fmt.sub_block_size:
            return elements
        lead = codes.shape[:-1]
        nb = codes.shape[-1] // fmt.block_size
        d = (codes[..., :: fmt.sub_block_size] >> fmt.bits).reshape(lead + (nb, fmt.n_sub_blocks))
        fields = fmt.sub_block_bytes * 8 // fmt.sub_block_bits
        d = np.concatenate(
            [d, np.zeros(lead + (nb, fields - fmt.n_sub_blocks), dtype=d.dtype)], axis=-1
        )
        rows = np.concatenate(
            [elements.reshape(lead + (nb, fmt.element_bytes)), _pack_bits(d, fmt.sub_block_bits)],
            axis=-1,
        )
        return rows.reshape(lead + (nb * fmt.bytes_per_block,))

    def unpack(self, packed: np.ndarray, fmt: Format) -> np.ndarray:
        """Inverse of :meth:`pack`: one unpacked code (``fmt.code_dtype``) per element."""
        packed = np.asarray(packed, dtype=np.uint8)
        if not fmt.sub_block_size:
            return _unpack_bits(packed, fmt.bits).astype(fmt.code_dtype)
        lead = packed.shape[:-1]
        nb = packed.shape[-1] // fmt.bytes_per_block
        rows = packed.reshape(lead + (nb, fmt.bytes_per_block))
        elements = _unpack_bits(rows[..., : fmt.element_bytes], fmt.bits)
        d = _unpack_bits(rows[..., fmt.element_bytes :], fmt.sub_block_bits)
        d = np.repeat(d[..., : fmt.n_sub_blocks], fmt.sub_block_size, axis=-1)
        codes = elements | (d << np.uint16(fmt.bits))
        return codes.astype(fmt.code_dtype).reshape(lead + (nb * fmt.block_size,))


def _random_indices(shape: tuple[int, int], block_ids: np.ndarray | None) -> np.ndarray:
    """Random-stream index (uint64) of each element of ``(n, block_size)`` rows:
    ``block_ids[b] * block_size + i``, with ``block_ids`` defaulting to ``0 .. n-1``."""
    n, size = shape
    ids = np.arange(n, dtype=np.uint64) if block_ids is None else block_ids
    return ids[:, None] * np.uint64(size) + np.arange(size, dtype=np.uint64)


def _tensor_scale(fmt: Format, tensor_scale: float | None) -> np.float64:
    """The tensor scale as float64 (1.0 for formats without one)."""
    if fmt.tensor_scale == "none":
        return np.float64(1.0)
    return np.float64(np.float32(tensor_scale))
