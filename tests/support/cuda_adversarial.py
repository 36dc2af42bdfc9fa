"""Adversarial MX inputs and emulated kernels shared by the CUDA tests.

The input generators live in :mod:`mxarray.backends._cuda_adversarial` (benchmarks/
gpu_check.py uses them too) and are re-exported here.  :func:`emulated_matmul` repeats
the simple matmul kernel's order of operations in NumPy, for bitwise comparisons, and
:func:`emulated_mma_matmul` the tensor-core kernel's (for data whose scaled terms stay
float32 normals).
"""

from __future__ import annotations

import numpy as np

from mxarray.backends._cuda_adversarial import (  # noqa: F401  (re-exported)
    EXPONENT_RANGE, TENSOR_SCALES, adversarial_blocks, grid_points, scale_grid_points,
    truncation_adversary, two_level_blocks,
)
from mxarray.backends.cupy_backend import spec_bound_violations
from mxarray.formats import SCALE, Format

__all__ = [
    "EXPONENT_RANGE", "TENSOR_SCALES", "adversarial_blocks", "assert_within_spec_bound",
    "emulated_matmul", "emulated_mma_matmul", "grid_points", "scale_grid_points",
    "truncation_adversary", "two_level_blocks",
]


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
