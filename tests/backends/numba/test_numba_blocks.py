"""The Numba kernels of the general block formats (MX9/MX6/MX4, NVFP4, registered ones)
against the NumPy reference, bit for bit, on inputs built to hit their edge cases.

The shared conformance suite runs the interface on these formats too; this file adds
what is specific to the Numba kernels: every code decoded, adversarial blocks at the
exact places where the integer paths branch (grid ties, microexponent boundaries,
saturation, subnormal inputs, UE4M3 ties and saturation, extreme tensor scales),
formats registered at run time, the ``block_ids`` numbering, and the matmul panels
(float32 or float64, operands of different block sizes, tensor scales).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np
from support import oracle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mxarray
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.core import _quantize_with_ids, matmul
from mxarray.formats import BLOCK_FORMATS, get_format, register

pytest.importorskip("numba", reason="needs the optional numba package (numba extra)")
from mxarray.backends.numba import NumbaBackend  # noqa: E402
from mxarray.backends.numba import matmul as numba_matmul  # noqa: E402
from mxarray.backends.numba.params import general_matmul_dtype  # noqa: E402
from support.backend_calls import dopts, qopts

REF = NumpyBackend()
FAST = NumbaBackend()
SPEC_NAMES = ("mx9", "mx6", "mx4", "nvfp4")
DTYPES = (np.float16, np.float32, np.float64)
SCALE_MODES = ("floor", "ceil", "rceil", "even")
ROUNDINGS = ("even", "nearest", "toward_zero", "stochastic")
slow_ok = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Formats registered here exercise every field the generic kernels take: element kinds,
# microexponent widths, "promote", d-bit exponent scales and UE4M3 without a tensor scale.
_REGISTERED = {
    "nbt_float_promote": {"element": {"kind": "float", "bits": 6, "exponent_bits": 3,
                                      "mantissa_bits": 2, "bias": 3}, "block_size": 8,
                          "scale": "e8m0", "sub_block_size": 4, "sub_block_bits": 2,
                          "magnitude_overflow": "promote"},
    "nbt_signmag_promote": {"element": {"kind": "signmag", "bits": 4, "mantissa_bits": 2},
                            "block_size": 16, "scale": "e8m0", "sub_block_size": 2,
                            "sub_block_bits": 4, "magnitude_overflow": "promote"},
    "nbt_int_exp5": {"element": {"kind": "int", "bits": 7, "mantissa_bits": 5},
                     "block_size": 8, "scale": "exponent", "scale_bits": 5},
    "nbt_e4m3_nan": {"element": {"kind": "float", "bits": 8, "exponent_bits": 4,
                                 "mantissa_bits": 3, "bias": 7, "nan_codes": [0x7F, 0xFF]},
                     "block_size": 24, "scale": "e8m0", "sub_block_size": 8,
                     "sub_block_bits": 1},
    "nbt_int_ue4m3": {"element": {"kind": "int", "bits": 4, "mantissa_bits": 1},
                      "block_size": 8, "scale": "ue4m3"},
}


def _registered(name: str) -> mxarray.Format:
    if name not in BLOCK_FORMATS:
        register({"name": name, **_REGISTERED[name]})
    return get_format(name)


ALL_NAMES = SPEC_NAMES + tuple(_REGISTERED)


def _scale_kind(name: str) -> str:
    """The scale kind of a format, without registering it (this runs at collection)."""
    return _REGISTERED[name]["scale"] if name in _REGISTERED else get_format(name).scale.kind


def _fmt(name: str) -> mxarray.Format:
    return _registered(name) if name in _REGISTERED else get_format(name)


def _kw(fmt: mxarray.Format, tensor_scale: float | None) -> dict:
    return {"tensor_scale": np.float32(tensor_scale)} if fmt.tensor_scale != "none" else {}


def assert_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


# --- every code decoded --------------------------------------------------------------------


def _every_code_blocks(fmt: mxarray.Format) -> np.ndarray:
    """Blocks holding every element code under every microexponent (one D per sub-block,
    as the packed layout stores it)."""
    rows = []
    size = fmt.block_size
    for d in range(1 << fmt.sub_block_bits):
        codes = np.arange(fmt.n_codes, dtype=np.int64)
        codes = np.resize(codes, -(-codes.size // size) * size)  # wrap to whole blocks
        rows.append((codes | (d << fmt.bits)).reshape(-1, size))
    return np.concatenate(rows).astype(fmt.code_dtype)


_DECODE_CASES = [(name, 1.0) for name in ALL_NAMES] + [
    ("nvfp4", s) for s in (2.0**-149, 3.0 * 2**-140, 2.0**100, 0.3)]


@pytest.mark.parametrize("name, tensor_scale", _DECODE_CASES)
def test_every_code_and_scale_decodes_like_the_reference(name, tensor_scale) -> None:
    fmt = _fmt(name)
    kw = _kw(fmt, tensor_scale)
    block = _every_code_blocks(fmt)
    codes = np.tile(block, (256, 1))
    scales = np.repeat(np.arange(256, dtype=np.uint8), block.shape[0])
    packed = REF.pack(codes, fmt)
    for dt in (np.float32, np.float64):
        want = REF.dequantize_blocks(codes, scales, dopts(fmt, dt, **kw))
        out = np.full(want.shape, 7.0, dtype=dt)
        assert_bits(FAST.dequantize_blocks(codes, scales, dopts(fmt, dt, **kw)), want)
        assert_bits(FAST.dequantize(packed, scales, dopts(fmt, dt, **kw)), want)
        assert FAST.dequantize(packed, scales, dopts(fmt, dt, **kw), out=out) is out
        assert_bits(out, want)
    assert_bits(FAST.pack(codes, fmt), packed)
    assert_bits(FAST.unpack(packed, fmt), codes)


# --- adversarial quantization ------------------------------------------------------------


@st.composite
def pow2_rows(draw, fmt: mxarray.Format, dtype, n_blocks: int) -> np.ndarray:
    """Blocks at the branch points of power-of-two scaled formats, in ``dtype``.

    Each block has a top exponent E; each sub-block's maximum is exactly ``2**(E - j)``
    or the ``dtype`` value just below it (the microexponent boundary), and its elements
    are grid values, grid midpoints (ties), values beyond the top (saturation),
    subnormals of ``dtype``, signed zeros, or rarely NaN/Inf.
    """
    info = np.finfo(dtype)
    low, high = int(np.log2(info.smallest_subnormal)), int(info.maxexp) - 1
    size = fmt.block_size
    sub = fmt.sub_block_size or size
    rows = []
    for _ in range(n_blocks):
        top = draw(st.one_of(st.integers(max(low + 10, -30), min(high, 30)),
                             st.sampled_from([low + 2, low + 12, -127, -126, 127, 128, high])))
        row = []
        for _ in range(size // sub):
            level = top - draw(st.integers(0, 4))
            peak = math.ldexp(1.0, level)
            with np.errstate(over="ignore"):  # beyond the dtype: an Inf (non-finite block)
                below = float(np.nextafter(dtype(peak), dtype(0)))
            for _ in range(sub):
                kind = draw(st.integers(0, 9))
                quantum = math.ldexp(1.0, level - fmt.mantissa_bits - draw(st.integers(0, 3)))
                k = draw(st.integers(0, 2 ** (fmt.mantissa_bits + 2)))
                value = [peak, below, k * quantum, (k + 0.5) * quantum,
                         peak * draw(st.sampled_from([1.5, 1.99, 3.0, 1e6])),
                         float(info.smallest_subnormal) * draw(st.integers(0, 9)),
                         0.0, k * quantum * 0.75, (k + 0.25) * quantum, peak][kind]
                row.append(draw(st.sampled_from([1.0, -1.0])) * value)
        if draw(st.integers(0, 9)) == 0:
            row[draw(st.integers(0, size - 1))] = draw(st.sampled_from([math.nan, -math.inf]))
        rows.append(row)
    with np.errstate(over="ignore"):
        return np.array(rows, dtype=np.float64).astype(dtype)


@slow_ok
@given(data=st.data(), name=st.sampled_from([n for n in ALL_NAMES
                                             if _scale_kind(n) != "ue4m3"]),
       dtype=st.sampled_from(DTYPES), scale_mode=st.sampled_from(SCALE_MODES),
       rounding=st.sampled_from(ROUNDINGS), seed=st.integers(0, 2**64 - 1))
def test_power_of_two_blocks_match_the_reference(data, name, dtype, scale_mode, rounding,
                                                  seed) -> None:
    fmt = _fmt(name)
    rows = data.draw(pow2_rows(fmt, dtype, 4))
    args = (fmt, rounding, scale_mode, seed if rounding == "stochastic" else None)
    codes, scales = REF.quantize_blocks(rows, qopts(*args))
    got_codes, got_scales = FAST.quantize_blocks(rows, qopts(*args))
    assert_bits(got_scales, scales)
    assert_bits(got_codes, codes)
    packed, packed_scales = FAST.quantize(rows, qopts(*args))
    assert_bits(packed_scales, scales)
    assert_bits(packed, REF.pack(codes, fmt))


def test_power_of_two_formats_without_sub_blocks_read_no_stale_memory() -> None:
    """The per-format kernel's microexponents stay 0 without sub-blocks, whatever memory
    the kernel's scratch buffers reuse (threads racing on the allocator included)."""
    fmt = _fmt("nbt_int_exp5")
    rows = np.random.default_rng(8).standard_normal((300, fmt.block_size)).astype(np.float32)
    codes, scales = REF.quantize_blocks(rows, qopts(fmt))
    want = REF.pack(codes, fmt)

    def run(_: int) -> np.ndarray:
        junk = [np.full(k, 0xFF, np.uint8) for k in range(1, 64)]  # freed: reused memory
        del junk
        return FAST.quantize(rows, qopts(fmt))[0]

    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(run, range(32)):
            assert_bits(got, want)


_E4M3 = [float(v) for v in get_format("nvfp4").scale.finite_grid]
# block scales: UE4M3 values, ties between neighbours, values rounding to 0, beyond 448
_BLOCK_SCALES = _E4M3 + [(a + b) / 2 for a, b in pairwise(_E4M3)] + [
    2.0**-11, 2.0**-10, 3 * 2.0**-12, 464.0, 480.0, 1e4]


@st.composite
def ue4m3_case(draw, fmt: mxarray.Format, dtype, n_blocks: int):
    """Blocks around a block scale ``s`` times a tensor scale ``S`` (tiny to huge), with
    element grid values, element ties and saturating values; and the ``S`` to pass
    (None: the core's amax rule)."""
    s_t = draw(st.sampled_from([None, 1.0, 2.0**-149, 2.0**-126, 3 * 2.0**-140, 2.0**-60,
                                2.0**60, 2.0**100, 0.1]) | st.floats(2.0**-149, 2.0**110,
                                                                     width=32))
    grid = [float(v) for v in fmt.decode_table[: fmt.max_code + 1]]
    points = grid + [(a + b) / 2 for a, b in pairwise(grid)] + [grid[-1] * 1.25]
    base = 1.0 if s_t is None else s_t
    rows = []
    for _ in range(n_blocks):
        s = draw(st.sampled_from(_BLOCK_SCALES))
        row = [draw(st.sampled_from([1.0, -1.0])) * draw(st.sampled_from(points + [0.0]))
               * s * base for _ in range(fmt.block_size)]
        if draw(st.booleans()):  # the block's maximum sets its scale exactly
            row[draw(st.integers(0, fmt.block_size - 1))] = grid[-1] * s * base
        if draw(st.integers(0, 9)) == 0:
            row[draw(st.integers(0, fmt.block_size - 1))] = draw(st.sampled_from(
                [math.nan, math.inf]))
        rows.append(row)
    with np.errstate(over="ignore"):
        return np.array(rows, dtype=np.float64).astype(dtype), s_t


@slow_ok
@given(data=st.data(), name=st.sampled_from(["nvfp4", "nbt_int_ue4m3"]),
       dtype=st.sampled_from(DTYPES), rounding=st.sampled_from(ROUNDINGS[:3]))
def test_ue4m3_blocks_match_the_reference(data, name, dtype, rounding) -> None:
    fmt = _fmt(name)
    rows, s_t = data.draw(ue4m3_case(fmt, dtype, 4))
    if fmt.tensor_scale == "none":
        kw = {}
    elif s_t is None:
        finite = np.abs(rows[np.isfinite(rows)].astype(np.float64))
        kw = {"tensor_scale": fmt.tensor_scale_for(float(finite.max()) if finite.size else 0.0)}
    else:
        kw = {"tensor_scale": np.float32(s_t)}
    codes, scales = REF.quantize_blocks(rows, qopts(fmt, rounding, "floor", None, **kw))
    got_codes, got_scales = FAST.quantize_blocks(rows, qopts(fmt, rounding, "floor", None, **kw))
    assert_bits(got_scales, scales)
    assert_bits(got_codes, codes)
    packed, _ = FAST.quantize(rows, qopts(fmt, rounding, "floor", None, **kw))
    assert_bits(packed, REF.pack(codes, fmt))
    for dt in (np.float32, np.float64):
        assert_bits(FAST.dequantize(packed, scales, dopts(fmt, dt, **kw)),
                    REF.dequantize_blocks(codes, scales, dopts(fmt, dt, **kw)))


@slow_ok
@given(data=st.data(), name=st.sampled_from(SPEC_NAMES), dtype=st.sampled_from(DTYPES),
       shape=st.lists(st.integers(1, 37), min_size=1, max_size=3),
       rounding=st.sampled_from(ROUNDINGS))
def test_every_axis_and_padded_blocks_through_the_api(data, name, dtype, shape, rounding):
    """Whole arrays on each axis (lengths not a multiple of the block size: padding)."""
    fmt = get_format(name)
    if fmt.tensor_scale != "none" and rounding == "stochastic":
        rounding = "even"
    size = int(np.prod(shape))
    flat = data.draw(pow2_rows(get_format("mx9"), np.float64, -(-size // 16)))
    x = flat.reshape(-1)[:size].reshape(shape)
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    kw = {"axis": axis, "rounding": rounding, "seed": 77}
    want = mxarray.quantize(x, name, backend="numpy", **kw)
    got = mxarray.quantize(x, name, backend="numba", **kw)
    assert got.tensor_scale == want.tensor_scale
    assert_bits(got.scales, want.scales)
    assert_bits(got.packed, want.packed)
    for dt in (np.float32, np.float64):
        assert_bits(mxarray.dequantize(want, dt, backend="numba"),
                    mxarray.dequantize(want, dt, backend="numpy"))


# --- block_ids ------------------------------------------------------------------------------


@slow_ok
@given(data=st.data(), name=st.sampled_from(("mx9", "mx4", "mxfp4_e2m1", "mxint8",
                                             "nbt_signmag_promote")),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**64 - 1))
def test_block_ids_draw_the_bits_of_the_rows_they_name(data, name, dtype, seed) -> None:
    """Row b with ``block_ids[b] = j`` quantizes as row j of a larger array does."""
    fmt = _fmt(name)
    n = data.draw(st.integers(1, 5))
    total = n + data.draw(st.integers(0, 6))
    ids = np.array(data.draw(st.lists(st.integers(0, total - 1), min_size=n, max_size=n,
                                      unique=True)), dtype=np.uint64)
    rows = data.draw(pow2_rows(fmt, dtype, n))
    whole = np.zeros((total, fmt.block_size), dtype=dtype)
    whole[ids.astype(np.int64)] = rows
    codes, scales = REF.quantize_blocks(whole, qopts(fmt, "stochastic", "floor", seed))
    want_codes, want_scales = codes[ids.astype(np.int64)], scales[ids.astype(np.int64)]
    got_codes, got_scales = FAST.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", seed, block_ids=ids))
    assert_bits(got_scales, want_scales)
    assert_bits(got_codes, want_codes)
    packed, _ = FAST.quantize(rows, qopts(fmt, "stochastic", "floor", seed, block_ids=ids))
    assert_bits(packed, REF.pack(want_codes, fmt))


@pytest.mark.parametrize("name", ["mx6", "mxfp8_e4m3"])
def test_block_ids_wrap_in_uint64_like_the_reference(name) -> None:
    fmt = get_format(name)
    rows = np.random.default_rng(3).standard_normal((4, fmt.block_size))
    ids = np.array([2**64 - 1, 2**63, 12345, 0], dtype=np.uint64)
    got = FAST.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", 99, block_ids=ids))
    want = REF.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", 99, block_ids=ids))
    assert_bits(got[0], want[0])
    default = FAST.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", 99))
    assert not np.array_equal(default[0], got[0])  # the ids change the draws


def test_block_ids_are_ignored_without_stochastic_rounding() -> None:
    """(The core checks block_ids once: see tests of core._quantize_with_ids.)"""
    fmt = get_format("mx9")
    rows = np.random.default_rng(4).standard_normal((3, 16))
    for bad in (np.zeros(2, np.uint64), np.zeros(3, np.float64)):  # the core checks them
        with pytest.raises(ValueError, match="integers"):
            _quantize_with_ids(rows, fmt, bad, rounding="stochastic", seed=1, backend="numba")
    ids = np.array([9, 8, 7], dtype=np.uint64)
    assert_bits(FAST.quantize_blocks(rows, qopts(fmt, "even", "floor", None, block_ids=ids))[0],
                REF.quantize_blocks(rows, qopts(fmt, "even", "floor", None))[0])


# --- matmul ---------------------------------------------------------------------------------


def _operands(rng, fa: str, fb: str, m: int, n: int, k: int, spread: int = 8, **kw):
    x = rng.standard_normal((m, k)) * np.exp2(rng.integers(-spread, spread, (m, 1)))
    y = rng.standard_normal((k, n)) * np.exp2(rng.integers(-spread, spread, (1, n)))
    a = mxarray.quantize(x, fa, backend="numpy", **kw.get("a", {}))
    b = mxarray.quantize(y, fb, axis=0, backend="numpy", **kw.get("b", {}))
    return a, b


@settings(max_examples=40, deadline=None)
@given(fa=st.sampled_from(ALL_NAMES), fb=st.sampled_from(ALL_NAMES + ("mxfp8_e5m2",)),
       m=st.integers(1, 4), n=st.integers(1, 4), k=st.integers(1, 100),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_of_any_two_formats_is_within_the_bound(fa, fb, m, n, k, seed) -> None:
    a, b = _operands(np.random.default_rng(seed), _fmt(fa).name, _fmt(fb).name, m, n, k)
    c = matmul(a, b, backend="numba")
    oracle.check_dot_bound(c, mxarray.dequantize(a, np.float64),
                           mxarray.dequantize(b, np.float64), exact=False)


@pytest.mark.parametrize("s_a, s_b", [(2.0**-149, 2.0**-149), (2.0**100, 2.0**20),
                                      (2.0**-120, 2.0**110), (0.3, 3.0)])
def test_nvfp4_tensor_scales_multiply_the_result_once(s_a, s_b) -> None:
    """Panels leave the tensor scales out; the result is scaled once (no under- or
    overflow on the way, tiny and huge scales alike)."""
    kw = {"a": {"tensor_scale": s_a}, "b": {"tensor_scale": s_b}}
    a, b = _operands(np.random.default_rng(8), "nvfp4", "nvfp4", 5, 4, 77, spread=4, **kw)
    assert (a.tensor_scale, b.tensor_scale) == (np.float32(s_a), np.float32(s_b))
    c = matmul(a, b, backend="numba")
    oracle.check_dot_bound(c, mxarray.dequantize(a, np.float64),
                           mxarray.dequantize(b, np.float64), exact=False)


def test_extreme_scales_take_float64_panels_within_the_bound() -> None:
    """MX9 values near 2**-127 give products below float32's range: float64 tiles."""
    rng = np.random.default_rng(12)
    a = mxarray.quantize(rng.standard_normal((3, 40)) * 2.0**-126, "mx9", backend="numpy")
    b = mxarray.quantize(rng.standard_normal((40, 2)) * 2.0**-20, "mx6", axis=0,
                         backend="numpy")
    scales = (a.scales.reshape(1, 3, -1), b.scales.T.reshape(1, 2, -1))
    assert general_matmul_dtype(a.format, scales[0], b.format, scales[1], 48) == np.float64
    c = matmul(a, b, backend="numba")
    av, bv = mxarray.dequantize(a, np.float64), mxarray.dequantize(b, np.float64)
    assert np.any(c != 0)  # float32 products would all have flushed to zero
    oracle.check_dot_bound(c, av, bv, exact=True)


def _assert_like_the_reference(c: np.ndarray, a: mxarray.MXArray, b: mxarray.MXArray) -> None:
    """NaN and infinities (with their signs) where the NumPy reference has them; every
    other entry finite and within the spec's bound of the exact dot product."""
    want = matmul(a, b, backend="numpy")
    np.testing.assert_array_equal(np.isnan(c), np.isnan(want))
    infinite = np.isinf(want)
    np.testing.assert_array_equal(c[infinite], want[infinite])
    av, bv = mxarray.dequantize(a, np.float64), mxarray.dequantize(b, np.float64)
    for i, j in zip(*np.nonzero(np.isfinite(want)), strict=True):
        assert np.isfinite(c[i, j]), (i, j, c[i, j], want[i, j])
        oracle.check_dot_bound(c[i : i + 1, j : j + 1], av[i : i + 1], bv[:, j : j + 1],
                               exact=True)


def test_nvfp4_tensor_scale_does_not_let_a_large_operand_overflow() -> None:
    """A value near 2**120 times an NVFP4 value whose tensor scale is near 2**-74: the
    product without the tensor scale (~2**131) is beyond float32, the result is not."""
    rng = np.random.default_rng(0)
    a = mxarray.quantize(rng.standard_normal((1, 1)) * 2.0**120, "mx9", backend="numpy")
    b = mxarray.quantize(rng.standard_normal((1, 1)) * 2.0**-60, "nvfp4", axis=0,
                         backend="numpy")
    c = matmul(a, b, backend="numba")
    assert np.isfinite(c).all()
    _assert_like_the_reference(c, a, b)


def test_nvfp4_tensor_scale_does_not_let_a_tiny_operand_underflow() -> None:
    """The mirror: products near 2**-150 without the tensor scale 2**100, which lifts
    the result far into float32's normal range."""
    rng = np.random.default_rng(0)
    a = mxarray.quantize(rng.standard_normal((1, 16)) * 2.0**-140, "mxfp8_e5m2",
                         backend="numpy")
    b = mxarray.quantize(rng.standard_normal((16, 1)) * 2.0**94, "nvfp4", axis=0,
                         tensor_scale=2.0**100, backend="numpy")
    assert int(b.scales.max()) < 8  # a subnormal UE4M3 block scale: panel values < 2**-5
    c = matmul(a, b, backend="numba")
    assert np.all(np.abs(c) > 2.0**-60)
    _assert_like_the_reference(c, a, b)


def test_an_all_zero_operand_times_values_beyond_float32_gives_zeros() -> None:
    """Zero NVFP4 blocks times MXFP8 (E5M2) values above float32's maximum (finite,
    exact in float64): zero products, not ``0 * inf``."""
    a = mxarray.quantize(np.zeros((2, 32)), "nvfp4", tensor_scale=1.0, backend="numpy")
    b = mxarray.quantize(np.full((32, 3), 2.0**140), "mxfp8_e5m2", axis=0, backend="numpy")
    assert np.isinf(mxarray.dequantize(b, np.float32)).all()  # beyond float32
    c = matmul(a, b, backend="numba")
    assert np.array_equal(c, np.zeros((2, 3), dtype=np.float32))
    _assert_like_the_reference(c, a, b)


_EVERY_FORMAT = tuple(dict.fromkeys((*BLOCK_FORMATS, *ALL_NAMES)))


def _rows_along_k(draw, rng, fmt: mxarray.Format, rows: int, k: int,
                  tensor_scale: float | None) -> mxarray.MXArray:
    """``(rows, k)`` values of ``fmt`` blocked along K; NVFP4 blocks relative to the tensor
    scale from below UE4M3's range to past its saturation, other rows anywhere in
    float32's range; now and then an infinity."""
    x = rng.standard_normal((rows, k))
    if tensor_scale is not None:
        shifts = np.repeat(rng.integers(-20, 14, (rows, -(-k // 16))), 16, axis=1)[:, :k]
        x *= np.exp2(shifts) * tensor_scale
    else:
        x *= np.exp2(rng.integers(-150, 131, (rows, 1)) + rng.integers(-6, 6, (rows, k)))
    if draw(st.booleans()):
        x[0, 0] = -np.inf
    kw = _kw(fmt, tensor_scale) if tensor_scale is not None else {}  # else from amax
    return mxarray.quantize(x, fmt.name, backend="numpy", **kw)


@st.composite
def nvfp4_and_other(draw, m: int, n: int, k: int):
    """An NVFP4 operand with a tensor scale anywhere in float32 (2**-149 .. 2**127) and
    an operand of any format, in either order: ``(a, b)`` for ``a @ b``."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mant = draw(st.sampled_from([1.0, 1.5, 1.999]))
    tensor_scale = float(np.float32(np.ldexp(mant, draw(st.integers(-149, 127)))))
    nvfp4, other = get_format("nvfp4"), _fmt(draw(st.sampled_from(_EVERY_FORMAT)))
    if draw(st.booleans()):
        a_fmt, a_ts, b_fmt, b_ts = nvfp4, tensor_scale, other, None
    else:
        a_fmt, a_ts, b_fmt, b_ts = other, None, nvfp4, tensor_scale
    a = _rows_along_k(draw, rng, a_fmt, m, k, a_ts)
    b = _rows_along_k(draw, rng, b_fmt, n, k, b_ts)
    return a, b.T


@slow_ok
@given(data=st.data(), m=st.integers(1, 3), n=st.integers(1, 3), k=st.integers(1, 40))
def test_nvfp4_times_any_format_at_extreme_scales_is_within_the_bound(data, m, n, k) -> None:
    a, b = data.draw(nvfp4_and_other(m, n, k))
    _assert_like_the_reference(matmul(a, b, backend="numba"), a, b)


@pytest.mark.parametrize("path", ["panels", "tiles"])
def test_mixed_block_sizes_over_ragged_panels_and_tiles(monkeypatch, path) -> None:
    """MX9 (16) times MXFP4 (32) over K = 200: panels and tiles end inside blocks."""
    if path == "panels" and numba_matmul.sgemm_acc is None:
        pytest.skip("needs NumPy's bundled OpenBLAS with CBLAS sgemm")
    if path == "panels":
        monkeypatch.setattr(numba_matmul, "_panel_blocks", lambda m, n, kb, bs: 1)
    else:
        monkeypatch.setattr(numba_matmul, "sgemm_acc", None)
        monkeypatch.setattr(numba_matmul, "_tile_shape", lambda m, n, k, size: (3, 2))
    rng = np.random.default_rng(21)
    a = mxarray.quantize(rng.standard_normal((2, 7, 200)), "mx9", backend="numpy")
    b = mxarray.quantize(rng.standard_normal((200, 5)), "mxfp4_e2m1", axis=0, backend="numpy")
    c = matmul(a, b, backend="numba")
    assert c.shape == (2, 7, 5)
    bv = mxarray.dequantize(b, np.float64)
    for p in range(2):
        oracle.check_dot_bound(c[p], mxarray.dequantize(a, np.float64)[p], bv, exact=False)


def test_matmul_nan_blocks_and_packed_windows() -> None:
    """A NaN block poisons exactly its rows; windows starting inside blocks decode
    exactly the reference's values."""
    rng = np.random.default_rng(30)
    x = rng.standard_normal((4, 50))
    x[2, 20] = np.inf
    a = mxarray.quantize(x, "mx4", backend="numpy")
    b = mxarray.quantize(rng.standard_normal((50, 3)), "nvfp4", axis=0, backend="numpy")
    c = matmul(a, b, backend="numba")
    assert np.isnan(c[2]).all() and not np.isnan(c[[0, 1, 3]]).any()
    fmt = a.format
    codes = REF.unpack(a.packed, fmt).reshape(-1, 16)
    want = REF.dequantize_blocks(codes, a.scales.reshape(-1), dopts(fmt, np.float32)).reshape(4, -1)
    operand = numba_matmul.PanelOperand(a.packed.reshape(1, 4, -1), a.scales.reshape(1, 4, -1),
                                        fmt, 1.0)
    decode = FAST._family(fmt).decoder(operand, np.dtype(np.float32))
    for row0, rows, e0, width in [(0, 4, 0, 64), (1, 2, 5, 40), (3, 1, 17, 1), (0, 4, 31, 33)]:
        out = np.full((rows, width), 7.0, dtype=np.float32)
        decode(0, row0, e0, out)
        assert_bits(out, np.ascontiguousarray(want[row0 : row0 + rows, e0 : e0 + width]))


def test_block_kernels_load_from_disk_cache_in_fresh_process(tmp_path) -> None:
    """A second new process finds the block-format kernels it runs in the disk cache."""
    script = textwrap.dedent(
        """
        import json, numpy as np, mxarray
        from mxarray.backends.numba import pow2_kernels as k
        x = np.linspace(-5, 5, 96, dtype=np.float32).reshape(3, 32)
        for name in ("mx9", "nvfp4"):
            mxarray.dequantize(mxarray.quantize(x, name, backend="numba"), backend="numba")
        from mxarray.backends.numba import params as P
        mx9, nv = mxarray.get_format("mx9"), mxarray.get_format("nvfp4")
        used = [k.quantize_pow2(P.element_grid(mx9), P.scale_range(mx9), P.sub_blocks(mx9), 16),
                k.dequantize_table(16, mx9.bits, 2, 1, mx9.element_bytes),
                k.dequantize_table(16, nv.bits, 16, 0, nv.element_bytes)]
        print(json.dumps([[f.stats.cache_hits.total(), f.stats.cache_misses.total()]
                          for f in used]))
        """
    )
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True,
                                      text=True, check=True, cwd=tmp_path).stdout)
            for _ in range(2)]
    for hits, misses in runs[1]:
        assert hits >= 1 and misses == 0, runs
