"""The per-format quantize kernels of the general block formats over many blocks.

``quantize_pow2`` and ``quantize_ue4m3`` (:mod:`mxarray.backends.numba.pow2_kernels`)
work on batches of ``_ROWS`` blocks inside work items of ``_CHUNK`` blocks: flat
phases over a batch, then per block only what they do not cover (non-finite blocks,
subnormal block or sub-block maxima, other scale modes, grids below float32's normal
range), and codes stored as whole words that run past a block into the next one.
These tests put such blocks at and around the batch and work-item edges, among
ordinary ones, and check every byte against the NumPy reference.  The UE4M3 block
scale comes from a float32 estimate corrected by exact comparisons with the grid's
midpoints; blocks whose maximum lies at, or one float32 step beside, a scale grid
value or midpoint check that correction.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mxarray
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import BLOCK_FORMATS, get_format, register

pytest.importorskip("numba", reason="needs the optional numba package (numba extra)")
from mxarray.backends.numba import NumbaBackend  # noqa: E402
from mxarray.backends.numba import pow2_kernels  # noqa: E402
from support.backend_calls import qopts  # noqa: E402

REF = NumpyBackend()
FAST = NumbaBackend()
ROWS, CHUNK = pow2_kernels._ROWS, pow2_kernels._CHUNK
few = settings(max_examples=12, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# a 3-bit float element with 2-bit microexponents per 8 (whole-word packing of
# elements and microexponents) and one without sub-blocks whose block is not a
# multiple of 8 elements (field-by-field packing)
_REGISTERED = {
    "gbt_fp3_sub8": {"element": {"kind": "float", "bits": 3, "exponent_bits": 1,
                                 "mantissa_bits": 1, "bias": 0}, "block_size": 64,
                     "scale": "e8m0", "sub_block_size": 8, "sub_block_bits": 2},
    "gbt_int6_bs12": {"element": {"kind": "int", "bits": 6, "mantissa_bits": 4},
                      "block_size": 12, "scale": "exponent", "scale_bits": 6},
}
POW2_NAMES = ("mx9", "mx6", "mx4") + tuple(_REGISTERED)


def _fmt(name: str) -> mxarray.Format:
    if name in _REGISTERED and name not in BLOCK_FORMATS:
        register({"name": name, **_REGISTERED[name]})
    return get_format(name)


def _edge_indices(n: int) -> list[int]:
    """Block indices at and beside every batch and work-item edge below ``n``."""
    edges = {e + d for step in (ROWS, CHUNK) for e in range(0, n + 1, step) for d in (-1, 0, 1)}
    return sorted(i for i in edges if 0 <= i < n)


def _assert_quantize_matches(rows: np.ndarray, options) -> None:
    codes, scales = REF.quantize_blocks(rows, options)
    packed, got_scales = FAST.quantize(rows, options)
    np.testing.assert_array_equal(got_scales, scales)
    want = REF.pack(codes, options.fmt)
    bad = np.flatnonzero((packed != want).any(axis=1))
    assert bad.size == 0, (bad[:8], rows[bad[0]], packed[bad[0]], want[bad[0]])


_SPECIAL = ("nan", "inf", "zero", "tiny", "subnormal_sub", "huge", "sub_zero")


def _special(block: np.ndarray, kind: str, sub: int, rng: np.random.Generator) -> None:
    """Make ``block`` (float64, in place) one of the blocks the flat phases leave out."""
    if kind == "nan":
        block[rng.integers(block.size)] = np.nan
    elif kind == "inf":
        block[rng.integers(block.size)] = -np.inf
    elif kind == "zero":
        block[:] = 0.0
    elif kind == "tiny":  # every element a float32 subnormal: the exact element path
        block[:] = rng.integers(-40, 40, block.size) * 2.0**-149
    elif kind == "subnormal_sub":  # one sub-block's maximum a float32 subnormal
        j = rng.integers(block.size // sub)
        block[j * sub:(j + 1) * sub] = rng.integers(-9, 9, sub) * 2.0**-149
    elif kind == "huge":
        block *= 2.0**120
    else:  # one all-zero sub-block
        j = rng.integers(block.size // sub)
        block[j * sub:(j + 1) * sub] = 0.0


@few
@given(name=st.sampled_from(POW2_NAMES), seed=st.integers(0, 2**32 - 1),
       n=st.sampled_from([ROWS - 1, ROWS + 1, 2 * ROWS, CHUNK + ROWS + 3]),
       rounding=st.sampled_from(["even", "nearest", "toward_zero"]),
       scale_mode=st.sampled_from(["floor", "floor", "ceil", "rceil", "even"]),
       dtype=st.sampled_from([np.float32, np.float16]),
       specials=st.lists(st.sampled_from(_SPECIAL), min_size=1, max_size=12))
def test_power_of_two_batches_match_the_reference(name, seed, n, rounding, scale_mode, dtype,
                                                  specials) -> None:
    fmt = _fmt(name)
    rng = np.random.default_rng(seed)
    bs, sub = fmt.block_size, fmt.sub_block_size or fmt.block_size
    # elements spread over a few binades per sub-block, blocks over many exponents
    rows = rng.standard_normal((n, bs)) * np.exp2(rng.integers(-6, 1, (n, bs // sub))
                                                  ).repeat(sub, axis=1)
    rows *= np.exp2(rng.integers(-30, 30, (n, 1)))
    edges = _edge_indices(n)
    for k, kind in enumerate(specials):
        _special(rows[edges[(k * 7 + seed) % len(edges)]], kind, sub, rng)
    with np.errstate(over="ignore"):
        rows = rows.astype(dtype)
    _assert_quantize_matches(rows, qopts(fmt, rounding, scale_mode))


def _ue4m3_points(fmt: mxarray.Format) -> np.ndarray:
    """Quotients ``amax / scale_unit`` at every scale grid value and midpoint, and one
    float32 step beside each (as float64)."""
    grid = fmt.scale.finite_grid.astype(np.float64)
    points = np.concatenate([grid, (grid[:-1] + grid[1:]) / 2, [480.0, 1e4, 2.0**-11]])
    return points[points > 0]


@few
@given(seed=st.integers(0, 2**32 - 1), rounding=st.sampled_from(["even", "nearest",
                                                                  "toward_zero"]),
       tensor_scale=st.sampled_from([1.0, 2.0**-100, 3.0 * 2**-130, 0.3, 2.0**90]),
       step=st.sampled_from([-1, 0, 1]))
def test_ue4m3_block_scales_at_grid_points_and_midpoints(seed, rounding, tensor_scale,
                                                          step) -> None:
    fmt = get_format("nvfp4")
    rng = np.random.default_rng(seed)
    points = _ue4m3_points(fmt)
    scale_unit = float(fmt.max_normal) * float(np.float32(tensor_scale))
    peaks = (points * scale_unit).astype(np.float32)  # a float32 at or near each target
    peaks = np.nextafter(peaks, np.float32(np.inf if step > 0 else 0)) if step else peaks
    n = peaks.size
    rows = rng.uniform(-1.0, 1.0, (n, fmt.block_size)) * peaks[:, None].astype(np.float64)
    rows[np.arange(n), rng.integers(0, fmt.block_size, n)] = peaks * rng.choice([-1, 1], n)
    with np.errstate(over="ignore"):
        rows = rows.astype(np.float32)
    _assert_quantize_matches(rows, qopts(fmt, rounding, tensor_scale=tensor_scale))


@few
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([ROWS + 1, CHUNK + 2 * ROWS - 1]),
       rounding=st.sampled_from(["even", "nearest", "toward_zero"]),
       specials=st.lists(st.sampled_from(["nan", "inf", "zero", "tiny"]), min_size=1,
                         max_size=10))
def test_ue4m3_batches_match_the_reference(seed, n, rounding, specials) -> None:
    fmt = get_format("nvfp4")
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n, fmt.block_size)) * np.exp2(rng.integers(-12, 4, (n, 1)))
    edges = _edge_indices(n)
    for k, kind in enumerate(specials):
        _special(rows[edges[(k * 5 + seed) % len(edges)]], kind, fmt.block_size, rng)
    rows = rows.astype(np.float32)
    finite = np.abs(rows[np.isfinite(rows)])
    s_t = fmt.tensor_scale_for(float(finite.max()) if finite.size else 0.0)
    _assert_quantize_matches(rows, qopts(fmt, rounding, tensor_scale=s_t))
