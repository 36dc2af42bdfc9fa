"""Adversarial MX inputs for the CUDA checks: the GPU tests and benchmarks/gpu_check.py.

Blocks are built around a per-block exponent so that elements land on the element grid,
exactly halfway between grid points (ties), one unit in the last place either side of a
tie, at powers of two, at the saturation limit, in the input type's subnormal range, and
at signed zeros; some blocks hold a NaN or an infinity.  :func:`truncation_adversary`
builds matmul operands whose products the tensor cores' aligned truncation loses (the
two-pass path's bound, spec/mx.toml ``[dot_paths.two_pass]``).
"""

from __future__ import annotations

import numpy as np

from ..formats import Format

__all__ = [
    "EXPONENT_RANGE", "TENSOR_SCALES", "adversarial_blocks", "grid_points",
    "scale_grid_points", "truncation_adversary", "two_level_blocks",
]

TENSOR_SCALES = tuple(float(np.float32(s)) for s in (  # float32 tensor scales for NVFP4
    2.0**-149, 3 * 2.0**-148, 2.0**-130 * 1.75, 2.0**-126, 1.0, 0.1, 3.0, 1 / 2688,
    np.finfo(np.float32).max / 2688, 2.0**127, np.finfo(np.float32).max))
"""Tiny (subnormal), ordinary, non-dyadic and huge per-tensor scales."""

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


def scale_grid_points(fmt: Format) -> np.ndarray:
    """The finite block-scale values of a UE4M3 format and the midpoints between them."""
    values = fmt.scale.finite_grid
    return np.concatenate([values, (values[:-1] + values[1:]) / 2])


def two_level_blocks(
    rng: np.random.Generator, n_blocks: int, dtype: np.dtype, fmt: Format, tensor_scale: float
) -> np.ndarray:
    """Adversarial blocks for a UE4M3-scaled format (NVFP4) under ``tensor_scale``.

    Each block picks a scale code s; its elements sit on the element grid, on element
    ties, or one ulp either side, times ``E4M3(s) * tensor_scale``; the first element is
    a block maximum on a UE4M3 value or a UE4M3 tie times ``max_normal * tensor_scale``
    (the block-scale rounding boundaries), nudged like the rest.  Some blocks are plain
    Gaussian data at a random scale; some hold NaN or an infinity.
    """
    dtype = np.dtype(dtype)
    bs = fmt.block_size
    s_t = float(np.float32(tensor_scale))
    grid = fmt.scale.finite_grid
    divisor = grid[rng.integers(0, grid.size, size=(n_blocks, 1))] * s_t
    points = grid_points(fmt)
    values = points[rng.integers(0, points.size, size=(n_blocks, bs))] * divisor
    tops = scale_grid_points(fmt)
    values[:, 0] = tops[rng.integers(0, tops.size, size=n_blocks)] * fmt.max_normal * s_t
    nudge = rng.choice([-1, 0, 0, 1], size=values.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.where(nudge == 0, values, np.nextafter(values, np.inf * nudge))
        gauss = rng.standard_normal((n_blocks, bs)) * np.ldexp(
            s_t, rng.integers(-12, 14, size=(n_blocks, 1)))
        values = np.where(rng.random((n_blocks, 1)) < 0.2, gauss, values)
        values *= rng.choice([-1.0, 1.0], size=values.shape)
        values[rng.random(values.shape) < 0.05] = -0.0
        out = values.astype(dtype)
    special = rng.random(n_blocks) < 0.1
    lanes = rng.integers(0, bs, size=n_blocks)
    out[special, lanes[special]] = rng.choice([np.nan, np.inf, -np.inf], size=int(special.sum()))
    return out


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


def truncation_adversary(rng: np.random.Generator, rows: int, k: int) -> tuple[np.ndarray, ...]:
    """Float32 matrices ``A (rows, k)`` and ``B^T (rows, k)`` (B's columns as rows) whose
    dot products lead with one product of 1 followed by products just below 2^-23 (row 0
    positive; random signs in about half of the others): a float32 accumulator that aligns each
    group of products to the running sum and truncates loses every small product, an
    error near ``0.875 K 2^-23``, 1.75 times the [dot] bound's ``K 2^-24``.  Every value is exact
    in mxfp8_e4m3 with power-of-two block scales (at most 4 significant bits).
    """
    a = np.full((rows, k), 0.875 * 2.0**-11)  # 7/8: exact in E4M3 at any block's scale
    b = np.full((rows, k), 2.0**-12)  # products 7/8 * 2^-23, below 2^-23
    a[:, 0] = 1.0
    b[:, 0] = 1.0
    mixed = rng.random(rows) < 0.5
    mixed[0] = False  # row 0: every small product positive
    signs = rng.choice([-1.0, 1.0], size=(rows, k))
    a[mixed] *= signs[mixed]
    a[mixed, 0] = 1.0
    return a.astype(np.float32), b.astype(np.float32)
