"""The NumPy reference backend: readable, vectorised and exact by construction.

Every other backend is tested bit for bit against this one.  It sees only contiguous
``(n_blocks, block_size)`` arrays; shapes, axes and padding are handled in
:mod:`mxarray.core`.  The arithmetic is exact: inputs are widened to float64 (exact for
float16/32/64), exponents come from ``frexp``, scaling uses ``ldexp`` by powers of two,
and rounding compares the exact fractional part with one half.
"""

from __future__ import annotations

import numpy as np

from .._random import random_u32
from ..formats import SCALE, Format

__all__ = ["NumpyBackend"]

# Scaled magnitudes below this are far under half the smallest grid step: every rounding
# mode treats them alike, so they are lifted here to keep float64 from underflowing.
_TINY = 2.0**-40
# Scaled magnitudes above this saturate in every format (keeps the int64 cast safe).
_HUGE = 2.0**40


def shared_exponents(amax: np.ndarray, fmt: Format, scale_mode: str) -> np.ndarray:
    """Return the unclamped-then-clamped shared exponents X (int32) for block maxima.

    ``amax`` is float64, finite and non-negative; zero blocks get ``SCALE.min_exponent``.
    """
    positive = amax > 0
    safe = np.where(positive, amax, 1.0)
    mant, exp = np.frexp(safe)
    e = np.maximum(exp.astype(np.int64) - 1, -300)  # floor(log2(amax)), exact
    if scale_mode == "floor":
        x = e - fmt.emax
    elif scale_mode == "ceil":
        x = e - fmt.emax + (mant != 0.5)
    elif scale_mode == "rceil":
        e_max = int(np.frexp(fmt.max_normal)[1]) - 1
        x = e - e_max
        x = x + (safe > np.ldexp(fmt.max_normal, x))
    elif scale_mode == "even":
        m = fmt.mantissa_bits
        rounded = np.rint(np.ldexp(safe, m - e))  # amax on m mantissa bits, ties to even
        x = e + (rounded == 2 ** (m + 1)) - fmt.emax
    else:
        raise ValueError(f"unknown scale mode {scale_mode!r}")
    x = np.clip(x, SCALE.min_exponent, SCALE.max_exponent)
    return np.where(positive, x, SCALE.min_exponent).astype(np.int32)


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


def encode(
    v: np.ndarray,
    x: np.ndarray,
    fmt: Format,
    rounding: str,
    seed: int | None = None,
    index: np.ndarray | None = None,
) -> np.ndarray:
    """Encode finite float64 ``v`` divided by ``2**x`` (broadcast) as element codes (uint8)."""
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
        magnitude_code = np.where(nonzero, (e_elem - fmt.emin) * (1 << m) + n, 0)
        magnitude_code = np.minimum(magnitude_code, fmt.max_code)
        return (magnitude_code | np.where(np.signbit(v), fmt.sign_bit, 0)).astype(np.uint8)
    k = np.minimum(n, fmt.max_code)
    return (np.where(np.signbit(v), -k, k) & (fmt.n_codes - 1)).astype(np.uint8)


class NumpyBackend:
    """The exact reference implementation of the backend interface on NumPy arrays."""

    name = "numpy"
    xp = np

    @staticmethod
    def available() -> tuple[bool, str]:
        """NumPy is a hard dependency: always available."""
        return True, "reference backend, always available"

    def quantize_blocks(
        self,
        blocks: np.ndarray,
        fmt: Format,
        rounding: str,
        scale_mode: str,
        seed: int | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Quantize ``(n, block_size)`` floats; return ``(codes, scale_bytes)``."""
        v = np.asarray(blocks, dtype=np.float64)
        finite = np.isfinite(v)
        block_finite = finite.all(axis=1)
        v = np.where(finite, v, 0.0)
        amax = np.max(np.abs(v), axis=1, initial=0.0)
        x = shared_exponents(amax, fmt, scale_mode)
        index = None
        if rounding == "stochastic":
            index = np.arange(v.size, dtype=np.uint64).reshape(v.shape)
        codes = encode(v, x[:, None].astype(np.int64), fmt, rounding, seed, index)
        codes[~block_finite] = 0
        scales = np.where(block_finite, x + SCALE.bias, SCALE.nan_code).astype(np.uint8)
        return codes, scales

    def dequantize_blocks(
        self, codes: np.ndarray, scales: np.ndarray, fmt: Format, dtype: np.dtype
    ) -> np.ndarray:
        """Return ``decode(codes) * 2**(scale - bias)`` for ``(n, block_size)`` codes."""
        x = scales.astype(np.int32) - SCALE.bias
        values = np.ldexp(fmt.decode(codes), x[:, None])
        values[scales == SCALE.nan_code] = np.nan
        with np.errstate(over="ignore"):  # beyond float32's range is +-inf, as a cast gives
            return values.astype(dtype)

    def pack(self, codes: np.ndarray, fmt: Format) -> np.ndarray:
        """Pack uint8 codes along the last axis into the format's byte layout."""
        layout = fmt.layout
        if layout.elements == 1:
            return np.array(codes, dtype=np.uint8, copy=True)
        n_groups = codes.shape[-1] // layout.elements
        groups = codes.reshape(codes.shape[:-1] + (n_groups, layout.elements)).astype(np.uint32)
        word = np.zeros(groups.shape[:-1], dtype=np.uint32)
        for i in range(layout.elements):
            word |= groups[..., i] << np.uint32(fmt.bits * i)
        out = np.stack([(word >> np.uint32(8 * j)) & 0xFF for j in range(layout.bytes)], axis=-1)
        return out.astype(np.uint8).reshape(codes.shape[:-1] + (n_groups * layout.bytes,))

    def unpack(self, packed: np.ndarray, fmt: Format) -> np.ndarray:
        """Inverse of :meth:`pack`: one uint8 code per element along the last axis."""
        layout = fmt.layout
        if layout.elements == 1:
            return np.array(packed, dtype=np.uint8, copy=True)
        n_groups = packed.shape[-1] // layout.bytes
        groups = packed.reshape(packed.shape[:-1] + (n_groups, layout.bytes)).astype(np.uint32)
        word = np.zeros(groups.shape[:-1], dtype=np.uint32)
        for j in range(layout.bytes):
            word |= groups[..., j] << np.uint32(8 * j)
        mask = np.uint32(fmt.n_codes - 1)
        out = np.stack(
            [(word >> np.uint32(fmt.bits * i)) & mask for i in range(layout.elements)], axis=-1
        )
        return out.astype(np.uint8).reshape(packed.shape[:-1] + (n_groups * layout.elements,))

    def matmul_blocks(
        self,
        a_codes: np.ndarray,
        a_scales: np.ndarray,
        a_fmt: Format,
        b_codes: np.ndarray,
        b_scales: np.ndarray,
        b_fmt: Format,
    ) -> np.ndarray:
        """MX matmul of canonical operands.

        ``a_codes`` is ``(batch, M, KB, block_size)`` with scales ``(batch, M, KB)``;
        ``b_codes`` is ``(batch, N, KB, block_size)`` with scales ``(batch, N, KB)``.
        Returns ``(batch, M, N)`` float32.  The reference decodes both operands exactly
        to float64 and multiplies them in float64, then rounds once to float32.
        """
        a = self._decode_rows(a_codes, a_scales, a_fmt)
        b = self._decode_rows(b_codes, b_scales, b_fmt)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.matmul(a, np.swapaxes(b, -1, -2)).astype(np.float32)

    def _decode_rows(self, codes: np.ndarray, scales: np.ndarray, fmt: Format) -> np.ndarray:
        lead = codes.shape[:-2]
        flat = self.dequantize_blocks(
            codes.reshape(-1, codes.shape[-1]), scales.reshape(-1), fmt, np.float64
        )
        return flat.reshape(lead + (codes.shape[-2] * codes.shape[-1],))
