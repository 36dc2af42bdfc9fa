"""Differential conformance: every backend gives the NumPy reference's bits.

Tests taking ``backend`` run for every registered backend, the NumPy reference included:
besides agreeing with the reference they check the independent exact model
(``tests/support/oracle.py``), so they are meaningful for NumPy too.  Tests taking ``fast_backend``
are purely differential (large inputs) and run only for the other backends; they skip
while none is usable here.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mxarray
from support import oracle
from support import strategies as mxst
from mxarray.core import matmul

BLOCK = mxarray.BLOCK_SIZE
NAMES = mxst.FORMAT_NAMES

# The ``backend`` fixture is a plain string, so sharing it across Hypothesis examples is safe.
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow, HealthCheck.data_too_large])


def host(a) -> np.ndarray:
    """A NumPy copy of a NumPy or device (CuPy) array."""
    return np.asarray(a.get() if hasattr(a, "get") else a)


def assert_same_quantization(x, name: str, backend: str, **kw) -> mxarray.MXArray:
    """Quantize ``x`` on ``backend`` and on NumPy; assert identical bytes; return NumPy's."""
    ref = mxarray.quantize(x, name, backend="numpy", **kw)
    got = mxarray.quantize(x, name, backend=backend, **kw)
    assert got.shape == ref.shape and got.block_axis == ref.block_axis
    assert np.array_equal(host(got.scales), ref.scales), "scale bytes differ"
    assert np.array_equal(host(got.packed), ref.packed), "element bytes differ"
    return ref


def assert_bitwise_equal(a, b) -> None:
    a, b = host(a), host(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8)) or (
        np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))
    )


# --- quantize -----------------------------------------------------------------------------


@fixture_ok
@given(data=st.data(), name=st.sampled_from(NAMES), scale_mode=st.sampled_from(mxst.SCALE_MODES),
       rounding=st.sampled_from(mxst.ROUNDINGS), dtype=st.sampled_from(mxst.INPUT_DTYPES),
       seed=mxst.seeds)
def test_adversarial_blocks(backend, data, name, scale_mode, rounding, dtype, seed) -> None:
    rows = data.draw(mxst.blocks(name, n_blocks=4))
    with np.errstate(over="ignore"):
        rows = rows.astype(dtype)
    ref = assert_same_quantization(rows, name, backend, rounding=rounding,
                                   scale_mode=scale_mode, seed=seed)
    for b in (0, 3):  # and the reference against the exact model
        s, c = oracle.quantize_block(rows[b].astype(np.float64).tolist(), name, rounding,
                                     scale_mode, seed, b * BLOCK)
        assert int(ref.scales[b, 0]) == s and ref.codes()[b].tolist() == c


@fixture_ok
@given(data=st.data(), name=st.sampled_from(NAMES), sa=mxst.shapes_and_axes(4, 40),
       scale_mode=st.sampled_from(mxst.SCALE_MODES), rounding=st.sampled_from(mxst.ROUNDINGS),
       dtype=st.sampled_from(mxst.INPUT_DTYPES))
def test_shapes_axes_and_partial_blocks(backend, data, name, sa, scale_mode, rounding,
                                        dtype) -> None:
    shape, axis = sa
    x = data.draw(mxst.arrays(name, shape, dtype))
    assert_same_quantization(x, name, backend, axis=axis, rounding=rounding,
                             scale_mode=scale_mode, seed=123456789)


@pytest.mark.parametrize("name", NAMES)
def test_strided_and_negative_stride_inputs(backend, name) -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal((9, 100, 4)).astype(np.float32) * 8
    for view, axis in [(base[:, ::3], 1), (base[::-1, ::-1], -2), (np.asfortranarray(base), 0),
                       (base.transpose(2, 0, 1), -1), (base[..., 2], 0)]:
        for rounding in ("even", "stochastic"):
            assert_same_quantization(view, name, backend, axis=axis, rounding=rounding, seed=4)


def _big_input(shape: tuple[int, int], dtype) -> np.ndarray:
    """A large array whose rows span many magnitudes, with ties, specials and zeros."""
    rng = np.random.default_rng(2026)
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-30, 30, size=(shape[0], 1)))
    x[::7, ::5] = 0.0
    x[1::11, ::3] = -0.0
    x[3, 17] = np.nan
    x[5, 100] = np.inf
    x[6, :] = np.round(x[6] * 4) / 8  # many exact ties on the fine grids
    with np.errstate(over="ignore"):
        return x.astype(dtype)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", mxst.INPUT_DTYPES)
def test_large_odd_shapes(fast_backend, name, dtype) -> None:
    x = _big_input((131, 32 * 31 + 13), dtype)
    for rounding in mxst.ROUNDINGS:
        assert_same_quantization(x, name, fast_backend, rounding=rounding, seed=99)
    for scale_mode in mxst.SCALE_MODES:
        assert_same_quantization(x, name, fast_backend, scale_mode=scale_mode, axis=0)


# --- dequantize, pack, unpack --------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@fixture_ok
@given(data=st.data(), n_blocks=st.integers(1, 6))
def test_dequantize_every_code_and_scale(backend, name, data, n_blocks) -> None:
    fmt = mxarray.get_format(name)
    codes = np.array(data.draw(st.lists(st.integers(0, fmt.n_codes - 1),
                                        min_size=n_blocks * BLOCK, max_size=n_blocks * BLOCK)),
                     dtype=np.uint8).reshape(n_blocks, BLOCK)
    scales = np.array(data.draw(st.lists(st.one_of(st.integers(0, 255),
                                                   st.sampled_from([0, 1, 127, 254, 255])),
                                         min_size=n_blocks, max_size=n_blocks)),
                      dtype=np.uint8).reshape(n_blocks, 1)
    a = mxarray.MXArray.from_parts(codes, scales, fmt, codes.shape, layout="codes")
    for dtype in (np.float32, np.float64):
        got = mxarray.dequantize(a, dtype, backend=backend)
        assert_bitwise_equal(got, mxarray.dequantize(a, dtype, backend="numpy"))
    got64 = host(mxarray.dequantize(a, np.float64, backend=backend))
    want = [[oracle.dequantize_value(int(c), int(scales[b, 0]), name) for c in codes[b]]
            for b in range(n_blocks)]
    assert np.array_equal(got64, np.array(want), equal_nan=True)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape, axis", [((3, 64), -1), ((3, 70), -1), ((64, 3), 0),
                                         ((2, 5, 96), 1)])
def test_dequantize_into_out(backend, name, shape, axis) -> None:
    """``out=`` gives the same bits as a fresh result, on the fused and the copying path."""
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32) * 100
    a = mxarray.quantize(x, name, axis=axis, backend="numpy")
    xp = mxarray.get_backend(backend).xp
    for dtype in (np.float32, np.float64):
        out = xp.full(shape, np.nan, dtype=dtype)
        got = mxarray.dequantize(a, out=out, backend=backend)
        assert got is out
        assert_bitwise_equal(out, mxarray.dequantize(a, dtype, backend="numpy"))


@pytest.mark.parametrize("name", NAMES)
@fixture_ok
@given(data=st.data())
def test_pack_and_unpack(backend, name, data) -> None:
    fmt = mxarray.get_format(name)
    be, ref = mxarray.get_backend(backend), mxarray.get_backend("numpy")
    lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2)))
    n = data.draw(st.integers(1, 3)) * BLOCK
    codes = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(
        0, fmt.n_codes, size=lead + (n,), dtype=np.uint8)
    packed = ref.pack(codes, fmt)
    assert_bitwise_equal(be.pack(be.xp.asarray(codes), fmt), packed)
    assert_bitwise_equal(be.unpack(be.xp.asarray(packed), fmt), codes)


# --- matmul --------------------------------------------------------------------------------


@fixture_ok
@given(data=st.data(), fa=st.sampled_from(NAMES), fb=st.sampled_from(NAMES),
       m=st.integers(1, 3), n=st.integers(1, 3), k=st.integers(1, 130))
def test_matmul_within_the_bound(backend_path, data, fa, fb, m, n, k) -> None:
    backend, path = backend_path
    a = mxarray.quantize(data.draw(mxst.arrays(fa, (m, k))), fa, backend="numpy")
    b = mxarray.quantize(data.draw(mxst.arrays(fb, (k, n))), fb, axis=0, backend="numpy")
    c = host(matmul(a, b, backend=backend, path=path))
    oracle.check_dot_bound(c, mxarray.dequantize(a, np.float64),
                           mxarray.dequantize(b, np.float64), exact=False)


def test_matmul_batched_and_nan_blocks(backend_path) -> None:
    backend, path = backend_path
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 1, 3, 70))
    x[1, 0, 2, 33] = np.nan
    a = mxarray.quantize(x, "mxfp8_e4m3", backend="numpy")
    b = mxarray.quantize(rng.standard_normal((4, 70, 2)), "mxfp4_e2m1", axis=-2,
                         backend="numpy")
    c = host(matmul(a, b, backend=backend, path=path))
    ref = matmul(a, b, backend="numpy")
    assert c.shape == ref.shape == (2, 4, 3, 2) and c.dtype == np.float32
    assert np.array_equal(np.isnan(c), np.isnan(ref)) and np.isnan(c[1, :, 2]).all()
    av, bv = mxarray.dequantize(a, np.float64), mxarray.dequantize(b, np.float64)
    for i, j in [(0, 0), (0, 3), (1, 2)]:
        rows = [0, 1] if i == 1 else [0, 1, 2]
        oracle.check_dot_bound(c[i, j][rows], av[i, 0][rows], bv[j], exact=False)


# --- general block formats (MX9/MX6/MX4, NVFP4) ----------------------------------------------

BLOCK_NAMES = mxst.BLOCK_FORMAT_NAMES


def needs_kernel(backend: str, name: str) -> mxarray.Format:
    """The format, or a skip naming what the backend still lacks."""
    fmt = mxarray.get_format(name)
    if not mxarray.get_backend(backend).supports(fmt):
        pytest.skip(reason=f"backend {backend} has no kernel for {name} yet")
    return fmt


def block_format_input(data, name: str) -> tuple[np.ndarray, dict]:
    """Adversarial blocks for ``name`` and the keyword arguments (tensor scale) to use."""
    if name in mxst.TWO_LEVEL_NAMES:
        rows, s_t = data.draw(mxst.two_level_case(name, n_blocks=3))
        return rows, {"tensor_scale": s_t}
    return data.draw(mxst.sub_block_rows(name, n_blocks=3)), {}


@pytest.mark.parametrize("name", BLOCK_NAMES)
@fixture_ok
@given(data=st.data(), dtype=st.sampled_from(mxst.INPUT_DTYPES), seed=mxst.seeds)
def test_block_format_quantize(backend, name, data, dtype, seed) -> None:
    needs_kernel(backend, name)
    rows, kw = block_format_input(data, name)
    roundings = mxst.DETERMINISTIC_ROUNDINGS if kw else mxst.ROUNDINGS
    rounding = data.draw(st.sampled_from(roundings))
    scale_mode = "floor" if kw else data.draw(st.sampled_from(mxst.SCALE_MODES))
    with np.errstate(over="ignore"):
        rows = rows.astype(dtype)
    ref = assert_same_quantization(rows, name, backend, rounding=rounding,
                                   scale_mode=scale_mode, seed=seed, **kw)
    got = mxarray.quantize(rows, name, backend=backend, rounding=rounding,
                           scale_mode=scale_mode, seed=seed, **kw)
    assert got.tensor_scale == ref.tensor_scale
    size = ref.format.block_size
    s_t = None if ref.tensor_scale is None else Fraction(float(ref.tensor_scale))
    first = rows[0, :size].astype(np.float64).tolist()  # and the reference against the model
    s, c = oracle.quantize_block_format(first, name, rounding, scale_mode, seed, 0, s_t)
    assert int(ref.scales[0, 0]) == s and ref.codes()[0, :size].tolist() == c


@pytest.mark.parametrize("name", BLOCK_NAMES)
@fixture_ok
@given(data=st.data(), n_blocks=st.integers(1, 5))
def test_block_format_dequantize_pack_and_unpack(backend, name, data, n_blocks) -> None:
    fmt = needs_kernel(backend, name)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    size = fmt.block_size
    codes = rng.integers(0, fmt.n_codes, size=n_blocks * size)
    if fmt.sub_block_size:
        d = rng.integers(0, 1 << fmt.sub_block_bits, size=n_blocks * fmt.n_sub_blocks)
        codes = codes | (np.repeat(d, fmt.sub_block_size) << fmt.bits)
    codes = codes.astype(fmt.code_dtype)
    top = fmt.scale.nan_code + 1
    scales = rng.integers(0, top, size=n_blocks, dtype=np.uint8)
    s_t = np.float32(rng.uniform(1e-3, 1e3)) if fmt.tensor_scale != "none" else None
    a = mxarray.MXArray.from_parts(codes, scales, name, codes.shape, tensor_scale=s_t)
    for dtype in (np.float32, np.float64):
        assert_bitwise_equal(mxarray.dequantize(a, dtype, backend=backend),
                             mxarray.dequantize(a, dtype, backend="numpy"))
    be, ref = mxarray.get_backend(backend), mxarray.get_backend("numpy")
    packed = ref.pack(codes[None], fmt)
    assert_bitwise_equal(be.pack(be.xp.asarray(codes[None]), fmt), packed)
    assert_bitwise_equal(be.unpack(be.xp.asarray(packed), fmt), codes[None])


@fixture_ok
@given(data=st.data(), fa=st.sampled_from(BLOCK_NAMES), fb=st.sampled_from(BLOCK_NAMES + NAMES),
       m=st.integers(1, 3), n=st.integers(1, 3), k=st.integers(1, 70))
def test_block_format_matmul_within_the_bound(backend_path, data, fa, fb, m, n, k) -> None:
    backend, path = backend_path
    needs_kernel(backend, fa)
    needs_kernel(backend, fb)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a = mxarray.quantize(rng.standard_normal((m, k)), fa, backend="numpy")
    b = mxarray.quantize(rng.standard_normal((k, n)), fb, axis=0, backend="numpy")
    c = host(matmul(a, b, backend=backend, path=path))
    oracle.check_dot_bound(c, mxarray.dequantize(a, np.float64),
                           mxarray.dequantize(b, np.float64), exact=False)
