"""Adversarial MX inputs shared by the CUDA tests and benchmarks/gpu_check.py.

Blocks are built around a per-block exponent so that elements land on the element grid,
exactly halfway between grid points (ties), one unit in the last place either side of a
tie, at powers of two, at the saturation limit, in the input type's subnormal range, and
at signed zeros; some blocks hold a NaN or an infinity.  :func:`emulated_matmul` repeats
the simple matmul kernel's order of operations in NumPy, for bitwise comparisons, and
:func:`emulated_mma_matmul` the tensor-core kernel's (for data whose scaled terms stay
float32 normals).
"""

from __future__ import annotations

import numpy as np

from mxarray.backends.cupy_backend import spec_bound_violations
from mxarray.formats import SCALE, Format

__all__ = [
    "EXPONENT_RANGE", "TENSOR_SCALES", "adversarial_blocks", "assert_within_spec_bound",
    "emulated_matmul", "emulated_mma_matmul", "grid_points", "scale_grid_points",
    "two_level_blocks",
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


def emulated_mma_matmul(
    a_codes: np.ndarray, a_scales: np.ndarray, fa: Format,
    b_codes: np.ndarray, b_scales: np.ndarray, fb: Format, shift: np.ndarray,
) -> np.ndarray:
    """The mma kernel's order of operations, given each output's shift ``S`` (M, N).

    Block sums in float32 in K order; each scaled by ``2**(x + S)`` (exact: the caller's
    data keep the scaled terms float32 normals) and added in float32; the sum times
    ``2**-S`` rounded once to float32; NaN in rows and columns with a NaN scale.
    """
    va = fa.decode(a_codes).astype(np.float32)  # (M, KB, 32), exact
    vb = fb.decode(b_codes).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        block = np.cumsum(va[:, None] * vb[None, :], axis=-1, dtype=np.float32)[..., -1]
    sa = np.where(a_scales == SCALE.nan_code, 0, a_scales.astype(np.int64))  # as the kernel:
    sb = np.where(b_scales == SCALE.nan_code, 0, b_scales.astype(np.int64))  # NaN rows are set last
    x = sa[:, None, :] + sb[None, :, :] - 2 * SCALE.bias + shift[..., None]
    factor = np.where(x >= -126, np.ldexp(np.float32(1.0), np.maximum(x, -126)), 0.0)
    terms = block * factor.astype(np.float32)  # (M, N, KB)
    assert np.all((terms == 0) | (np.abs(terms) >= 2.0**-126)), "a scaled term is subnormal"
    acc = np.zeros(shift.shape, np.float32)
    for kb in range(terms.shape[-1]):
        acc = acc + terms[..., kb]
    out = np.ldexp(acc.astype(np.float64), -shift).astype(np.float32)
    bad = (a_scales == SCALE.nan_code).any(axis=1)[:, None] | \
        (b_scales == SCALE.nan_code).any(axis=1)[None, :]
    out[bad] = np.nan
    return out


def assert_within_spec_bound(
    got: np.ndarray, a_codes: np.ndarray, a_scales: np.ndarray, fa: Format,
    b_codes: np.ndarray, b_scales: np.ndarray, fb: Format, **tensor_scales: float | None,
) -> None:
    """Assert that a float32 matmul result ``(M, N)`` of ``(M|N, KB, block size)`` operands
    meets spec/mx.toml [dot] (see :func:`mxarray.backends.cupy_backend.spec_bound_violations`;
    ``a_tensor_scale=`` / ``b_tensor_scale=`` for formats with a tensor scale)."""
    problems = spec_bound_violations(got, a_codes[None], a_scales[None], fa, b_codes[None],
                                     b_scales[None], fb, **tensor_scales)
    assert not problems, problems
