"""Adversarial MX inputs shared by the CUDA tests and benchmarks/gpu_check.py.

Blocks are built around a per-block exponent so that elements land on the element grid,
exactly halfway between grid points (ties), one unit in the last place either side of a
tie, at powers of two, at the saturation limit, in the input type's subnormal range, and
at signed zeros; some blocks hold a NaN or an infinity.  :func:`emulated_matmul` repeats
the simple matmul kernel's order of operations in NumPy, for bitwise comparisons.
"""

from __future__ import annotations

import numpy as np

from mxarray.formats import SCALE, Format

__all__ = ["EXPONENT_RANGE", "adversarial_blocks", "emulated_matmul", "grid_points"]

EXPONENT_RANGE = {  # exponents whose powers of two the input type holds (subnormals included)
    np.dtype(np.float16): (-24, 15),
    np.dtype(np.float32): (-149, 127),
    np.dtype(np.float64): (-1074, 1023),
}


def grid_points(fmt: Format) -> np.ndarray:
    """Finite non-negative element values of ``fmt`` and the midpoints between neighbours."""
    table = fmt.decode_table
    values = np.unique(np.abs(table[np.isfinite(table)]))
    return np.concatenate([values, (values[:-1] + values[1:]) / 2])


def adversarial_blocks(
    rng: np.random.Generator, n_blocks: int, dtype: np.dtype, fmt: Format
) -> np.ndarray:
    """Return ``(n_blocks, block_size)`` adversarial values of ``dtype`` for ``fmt``."""
    dtype = np.dtype(dtype)
    lo, hi = EXPONENT_RANGE[dtype]
    with np.errstate(over="ignore", invalid="ignore"):
        return _build(rng, n_blocks, dtype, fmt, lo, hi)


def _build(
    rng: np.random.Generator, n_blocks: int, dtype: np.dtype, fmt: Format, lo: int, hi: int
) -> np.ndarray:
    """The body of :func:`adversarial_blocks` (run with overflow warnings silenced)."""
    bs = fmt.block_size
    points = grid_points(fmt)
    x0 = rng.integers(lo + 8, hi - 6, size=(n_blocks, 1))
    picks = points[rng.integers(0, points.size, size=(n_blocks, bs))]
    nudge = rng.choice([-1, 0, 0, 0, 1], size=(n_blocks, bs))
    grid = np.ldexp(picks, x0)
    grid = np.where(nudge == 0, grid, np.nextafter(grid, np.inf * nudge))
    grid[:, 0] = np.ldexp(fmt.max_normal, x0[:, 0]) * rng.choice([1.0, 0.75, 1.5], size=n_blocks)
    wild = np.ldexp(rng.standard_normal((n_blocks, bs)), rng.integers(lo, hi, size=(n_blocks, bs)))
    powers = np.ldexp(1.0, rng.integers(lo, hi, size=(n_blocks, bs)))
    powers = np.nextafter(powers, powers * rng.choice([0.0, 1.0, 2.0], size=(n_blocks, bs)))
    style = rng.integers(0, 3, size=(n_blocks, 1))
    values = np.select([style == 0, style == 1], [grid, wild], powers)
    values *= rng.choice([-1.0, 1.0], size=values.shape)
    values[rng.random(values.shape) < 0.05] = -0.0
    out = values.astype(dtype)
    special = rng.random(n_blocks) < 0.1
    lanes = rng.integers(0, bs, size=n_blocks)
    out[special, lanes[special]] = rng.choice([np.nan, np.inf, -np.inf], size=int(special.sum()))
    return out


def emulated_matmul(
    a_codes: np.ndarray, a_scales: np.ndarray, fa: Format,
    b_codes: np.ndarray, b_scales: np.ndarray, fb: Format,
) -> np.ndarray:
    """The kernel's order of operations in NumPy: float32 block sums, float64 accumulation."""
    va = fa.decode(a_codes).astype(np.float32)  # (M, KB, 32), exact
    vb = fb.decode(b_codes).astype(np.float32)
    prods = va[:, None] * vb[None, :]  # (M, N, KB, 32), exact products
    with np.errstate(invalid="ignore", over="ignore"):
        block = np.cumsum(prods, axis=-1, dtype=np.float32)[..., -1]
        x = a_scales.astype(np.int64)[:, None, :] + b_scales.astype(np.int64)[None, :, :]
        x -= 2 * SCALE.bias
        terms = np.ldexp(block.astype(np.float64), x)
        bad = (a_scales[:, None, :] == SCALE.nan_code) | (b_scales[None, :, :] == SCALE.nan_code)
        terms[bad] = np.nan
        return np.cumsum(terms, axis=-1)[..., -1].astype(np.float32)
