"""The CUDA kernels' __host__ __device__ arithmetic, host-compiled, against the NumPy reference.

backends/cuda/host/mx_host_api.cpp includes the same headers as the kernels; it is built
once per session with g++ (multiply-add contraction on, FMA where the CPU has it) and called
through ctypes.  Every comparison runs with the x86 flush-to-zero and denormals-are-zero
bits both clear and set, and must give the same bits as the reference either way.
"""

from __future__ import annotations

import ctypes
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cuda_adversarial import EXPONENT_RANGE, adversarial_blocks, emulated_matmul, grid_points
from mxarray import _cuda_sources
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import FORMATS, ROUNDING_MODES, SCALE_MODES, Format

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which("g++") is None,
    reason="needs g++ on x86-64 (the test sets the SSE MXCSR flush-to-zero bits)",
)

REF = NumpyBackend()
FTZ = [pytest.param(0, id="ftz-off"), pytest.param(1, id="ftz-on")]
BITS_DTYPE = {16: np.uint16, 32: np.uint32, 64: np.uint64}
_p = ctypes.c_void_p


class _MxFormat(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64 if name == "max_normal_sig" else ctypes.c_int)
        for name in _cuda_sources.format_fields(FORMATS["mxfp4_e2m1"])
    ]


def _struct(fmt: Format) -> _MxFormat:
    return _MxFormat(**_cuda_sources.format_fields(fmt))


def _ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous
    return a.ctypes.data


@pytest.fixture(scope="session")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """Build the host library once per session into a temporary directory."""
    out = tmp_path_factory.mktemp("mxhost") / "libmxhost.so"
    src = _cuda_sources.cuda_dir() / "host" / "mx_host_api.cpp"
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fma = ["-mfma"] if " fma " in cpu_flags else []
    cmd = ["g++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=fast",
           *fma, "-shared", "-fPIC", "-o", str(out), str(src),
           *_cuda_sources.compile_definitions({})]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    so = ctypes.CDLL(str(out))
    i64, i32, u64 = ctypes.c_longlong, ctypes.c_int, ctypes.c_uint64
    fp = ctypes.POINTER(_MxFormat)
    so.mx_host_ftz_flags.argtypes = [i32]
    so.mx_host_ftz_flags.restype = ctypes.c_uint
    so.mx_host_quantize.argtypes = [_p, i32, i64, fp, i32, i32, u64, _p, _p, i32]
    so.mx_host_dequantize.argtypes = [_p, _p, i64, fp, i32, _p, i32]
    so.mx_host_pack.argtypes = [_p, _p, i64, fp]
    so.mx_host_unpack.argtypes = [_p, _p, i64, fp]
    so.mx_host_matmul.argtypes = [_p, _p, fp, _p, _p, fp, i64, i64, i64, _p, i32]
    so.mx_host_f64_to_f32.argtypes = [_p, _p, i64, i32]
    return so


def host_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz):
    blocks = np.ascontiguousarray(blocks)
    n = blocks.shape[0]
    codes = np.zeros((n, fmt.block_size), np.uint8)
    scales = np.zeros(n, np.uint8)
    lib.mx_host_quantize(
        _ptr(blocks), blocks.dtype.itemsize * 8, n, ctypes.byref(_struct(fmt)),
        ROUNDING_MODES.index(rounding), SCALE_MODES.index(scale_mode), seed or 0,
        _ptr(codes), _ptr(scales), ftz,
    )
    return codes, scales


def check_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz):
    seed = seed if rounding == "stochastic" else None
    want_codes, want_scales = REF.quantize_blocks(blocks, fmt, rounding, scale_mode, seed)
    codes, scales = host_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz)
    np.testing.assert_array_equal(scales, want_scales)
    np.testing.assert_array_equal(codes, want_codes)


@pytest.mark.parametrize("ftz", FTZ)
def test_flush_to_zero_bits_are_really_set(lib, ftz):
    assert lib.mx_host_ftz_flags(ftz) == (0x8040 if ftz else 0)


# --- quantize: every format x scale mode x rounding mode on a fixed adversarial set ------


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_quantize_all_modes_adversarial(lib, fmt, dtype, ftz):
    rng = np.random.default_rng(20240601 + fmt.bits + np.dtype(dtype).itemsize)
    blocks = adversarial_blocks(rng, 400, dtype, fmt)
    for scale_mode in SCALE_MODES:
        for rounding in ROUNDING_MODES:
            check_quantize(lib, blocks, fmt, rounding, scale_mode, 0x1234_5678_9ABC_DEF0, ftz)


# --- quantize: Hypothesis-generated blocks ---------------------------------------------


def _grid_value(point: float, x0: int, sign: float, nudge: bool) -> float:
    """``sign * point * 2**x0``, or its neighbour away from zero (overflow gives Inf)."""
    with np.errstate(over="ignore"):
        v = sign * np.ldexp(point, x0)
        return float(np.nextafter(v, sign * np.inf) if nudge else v)


@st.composite
def mx_blocks(draw, fmt: Format, dtype: np.dtype) -> np.ndarray:
    lo, hi = EXPONENT_RANGE[np.dtype(dtype)]
    points = grid_points(fmt)
    n_blocks = draw(st.integers(1, 3))
    rows = []
    for _ in range(n_blocks):
        x0 = draw(st.integers(lo, hi))
        on_grid = st.builds(
            _grid_value, st.sampled_from(list(points)), st.just(x0),
            st.sampled_from([-1.0, 1.0]), st.booleans(),
        )
        width = 8 * np.dtype(dtype).itemsize
        anything = st.floats(allow_nan=False, allow_infinity=False, width=width)
        special = st.sampled_from([0.0, -0.0, 2.0**lo, -(2.0**lo), 2.0**hi])
        row = draw(st.lists(st.one_of(on_grid, anything, special), min_size=32, max_size=32))
        bad = draw(st.one_of(st.none(), st.tuples(st.integers(0, 31),
                                                  st.sampled_from([np.nan, np.inf, -np.inf]))))
        if bad is not None:
            row[bad[0]] = bad[1]
        rows.append(row)
    with np.errstate(over="ignore"):
        return np.array(rows, dtype=np.float64).astype(dtype)


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
@given(data=st.data())
def test_quantize_hypothesis(lib, fmt, ftz, data):
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]))
    blocks = data.draw(mx_blocks(fmt, dtype))
    rounding = data.draw(st.sampled_from(ROUNDING_MODES))
    scale_mode = data.draw(st.sampled_from(SCALE_MODES))
    seed = data.draw(st.integers(0, 2**64 - 1))
    check_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz)


# --- dequantize: every code under every scale byte ---------------------------------------


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("out_bits", [32, 64])
@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_dequantize_exhaustive(lib, fmt, out_bits, ftz):
    per_scale = -(-fmt.n_codes // fmt.block_size)
    codes = np.resize(np.arange(fmt.n_codes, dtype=np.uint8), (256 * per_scale, fmt.block_size))
    scales = np.repeat(np.arange(256, dtype=np.uint8), per_scale)
    dtype = np.float32 if out_bits == 32 else np.float64
    want = REF.dequantize_blocks(codes, scales, fmt, np.dtype(dtype))
    out = np.zeros(codes.shape, BITS_DTYPE[out_bits])
    lib.mx_host_dequantize(_ptr(codes), _ptr(scales), codes.size, ctypes.byref(_struct(fmt)),
                           out_bits, _ptr(out), ftz)
    assert np.count_nonzero(want.view(BITS_DTYPE[out_bits]) != out) == 0


# --- pack / unpack -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_pack_unpack_match_reference(lib, fmt):
    rng = np.random.default_rng(7)
    codes = rng.integers(0, fmt.n_codes, size=(64, fmt.block_size), dtype=np.uint8)
    layout = fmt.layout
    n_groups = codes.size // layout.elements
    packed = np.zeros(n_groups * layout.bytes, np.uint8)
    lib.mx_host_pack(_ptr(codes), _ptr(packed), n_groups, ctypes.byref(_struct(fmt)))
    np.testing.assert_array_equal(packed, REF.pack(codes, fmt).reshape(-1))
    back = np.zeros(codes.size, np.uint8)
    lib.mx_host_unpack(_ptr(packed), _ptr(back), n_groups, ctypes.byref(_struct(fmt)))
    np.testing.assert_array_equal(back, codes.reshape(-1))


# --- matmul arithmetic -------------------------------------------------------------------


def host_matmul(lib, a_codes, a_scales, fa, b_codes, b_scales, fb, ftz):
    m, n_kb = a_scales.shape
    n = b_scales.shape[0]
    out = np.zeros((m, n), np.uint32)
    lib.mx_host_matmul(_ptr(a_codes), _ptr(a_scales), ctypes.byref(_struct(fa)), _ptr(b_codes),
                       _ptr(b_scales), ctypes.byref(_struct(fb)), m, n, n_kb, _ptr(out), ftz)
    return out.view(np.float32)


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize(
    "fa,fb", [(f, f) for f in FORMATS] + [("mxfp4_e2m1", "mxfp8_e5m2"), ("mxint8", "mxfp6_e3m2")]
)
def test_matmul_arithmetic(lib, fa, fb, ftz):
    fa, fb = FORMATS[fa], FORMATS[fb]
    rng = np.random.default_rng(11)
    m, n, kb = 7, 5, 6
    a = adversarial_blocks(rng, m * kb, np.float32, fa)
    b = adversarial_blocks(rng, n * kb, np.float32, fb)
    a[np.isinf(a)] = 1.0  # keep a few NaN blocks, drop infinities (Inf * 0 is tested by NaN)
    b[np.isinf(b)] = 2.0
    ac, as_ = REF.quantize_blocks(a, fa, "even", "floor", None)
    bc, bs = REF.quantize_blocks(b, fb, "even", "floor", None)
    ac, as_ = ac.reshape(m, kb, 32), as_.reshape(m, kb)
    bc, bs = bc.reshape(n, kb, 32), bs.reshape(n, kb)
    as_[0, 0] = bs[0, 0] = 0  # the smallest scales, whose products underflow float32
    got = host_matmul(lib, ac, as_, fa, bc, bs, fb, ftz)
    np.testing.assert_array_equal(got, emulated_matmul(ac, as_, fa, bc, bs, fb))
    want = REF.matmul_blocks(ac[None], as_[None], fa, bc[None], bs[None], fb)[0]
    da = REF._decode_rows(ac, as_, fa)
    db = REF._decode_rows(bc, bs, fb)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = da @ db.T
        bound = (kb * 32 + 2) * 2.0**-24 * (np.abs(da) @ np.abs(db).T)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(exact) & np.isfinite(got)
    assert np.all(np.abs(got[finite] - exact[finite]) <= bound[finite] + 2.0**-149)


@pytest.mark.parametrize("ftz", FTZ)
def test_float64_to_float32_rounding(lib, ftz):
    rng = np.random.default_rng(3)
    edges = np.ldexp(1.0, np.arange(-155, 130))
    near = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf)])
    ties = np.ldexp(np.arange(1, 200, dtype=np.float64) + 0.5, -149)  # subnormal ties
    rand = rng.integers(0, 2**63, size=4000, dtype=np.uint64).view(np.float64)
    x = np.concatenate([near, -near, ties, -ties, rand, -rand, [0.0, -0.0, np.inf, -np.inf]])
    out = np.zeros(x.size, np.uint32)
    lib.mx_host_f64_to_f32(_ptr(x), _ptr(out), x.size, ftz)
    with np.errstate(over="ignore"):
        want = x.astype(np.float32)
    np.testing.assert_array_equal(out.view(np.float32), want)
