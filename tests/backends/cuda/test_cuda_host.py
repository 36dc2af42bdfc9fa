"""The CUDA kernels' __host__ __device__ arithmetic, host-compiled, against the NumPy reference.

backends/cuda/host/mx_host_api.cpp includes the same headers as the kernels; it is built
once per session with g++ (multiply-add contraction on, FMA where the CPU has it) and called
through ctypes.  Every comparison runs with the x86 flush-to-zero and denormals-are-zero
bits both clear and set, and must give the same bits as the reference either way.

The tensor-core matmul (mx_matmul_mma.cu) is replayed on the host thread block by thread
block, lane by lane, through the header functions the kernel calls, with the mma
instruction replaced by a model built from the PTX ISA's fragment tables; its fragment
layout is checked against those tables here as well.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from support.cuda_adversarial import (
    EXPONENT_RANGE, TENSOR_SCALES, adversarial_blocks, assert_within_spec_bound,
    emulated_matmul, emulated_mma_matmul, grid_points, scale_grid_points, two_level_blocks,
)
from mxarray import _cuda_sources
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import BLOCK_FORMATS, FORMATS, ROUNDING_MODES, SCALE, SCALE_MODES, Format
from support.backend_calls import dopts, matmul_codes, qopts

NO_HOST_BUILD = platform.machine() not in ("x86_64", "AMD64") or shutil.which("g++") is None
HOST_BUILD_REASON = "needs g++ on x86-64 (the test sets the SSE MXCSR flush-to-zero bits)"
pytestmark = pytest.mark.skipif(NO_HOST_BUILD, reason=HOST_BUILD_REASON)

REF = NumpyBackend()
FTZ = [pytest.param(0, id="ftz-off"), pytest.param(1, id="ftz-on")]
BITS_DTYPE = {16: np.uint16, 32: np.uint32, 64: np.uint64}
_p = ctypes.c_void_p


class _MxFormat(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64 if name == "max_normal_sig" else ctypes.c_int)
        for name in _cuda_sources.format_fields(FORMATS["mxfp4_e2m1"])
    ]


class _MxBlockFormat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in _cuda_sources.block_fields(FORMATS["mxint8"])]


def _struct(fmt: Format) -> _MxFormat:
    return _MxFormat(**_cuda_sources.format_fields(fmt))


def _block_struct(fmt: Format) -> _MxBlockFormat:
    return _MxBlockFormat(**_cuda_sources.block_fields(fmt))


def _ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous
    return a.ctypes.data


@functools.cache
def host_library() -> ctypes.CDLL:
    """Build the host library once per process into a temporary directory (removed at
    exit); the CUDA host tests of every file share it through their ``lib`` fixtures."""
    build_dir = tempfile.mkdtemp(prefix="mxhost")
    atexit.register(shutil.rmtree, build_dir, ignore_errors=True)
    out = Path(build_dir) / "libmxhost.so"
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
    bp, u32 = ctypes.POINTER(_MxBlockFormat), ctypes.c_uint32
    so.mx_host_quantize.argtypes = [_p, i32, i64, fp, i32, i32, u64, _p, _p, _p, i32]
    so.mx_host_block_quantize.argtypes = [_p, i32, i64, fp, bp, i32, i32, u64, _p, u32, _p, _p,
                                          i32]
    so.mx_host_block_dequantize.argtypes = [_p, _p, i64, fp, bp, u32, i32, _p, i32]
    so.mx_host_block_pack.argtypes = [_p, _p, i64, fp, bp]
    so.mx_host_block_unpack.argtypes = [_p, _p, i64, fp, bp]
    so.mx_host_block_matmul.argtypes = [_p, _p, fp, bp, u32, _p, _p, fp, bp, u32, i64, i64, i64,
                                        i64, i64, _p, i32]
    so.mx_host_dequantize.argtypes = [_p, _p, i64, fp, i32, _p, i32]
    so.mx_host_pack.argtypes = [_p, _p, i64, fp]
    so.mx_host_unpack.argtypes = [_p, _p, i64, fp]
    so.mx_host_matmul.argtypes = [_p, _p, fp, _p, _p, fp, i64, i64, i64, _p, i32]
    so.mx_host_f64_to_f32.argtypes = [_p, _p, i64, i32]
    so.mx_host_mma_fragment.argtypes = [i32, i32, i32, i32, _p]
    so.mx_host_decode_f16.argtypes = [fp, _p]
    so.mx_host_scale_down.argtypes = [_p, _p, _p, i64, i32]
    so.mx_host_tile_shift.argtypes = [i32, i32, i64, fp, fp]
    so.mx_host_tile_shift.restype = i32
    so.mx_host_mma_matmul.argtypes = [_p, _p, fp, _p, _p, fp, i64, i64, i64, i64, _p, i32]
    so.mx_host_fold.argtypes = [fp, bp, i32, _p, _p, _p, i64, i64, i64, i64, i32, i32, i32]
    so.mx_host_fold.restype = i32
    so.mx_host_two_pass_epilogue.argtypes = [_p, i64, i32, u32, u32, i32]
    so.mx_host_quantize_packed.argtypes = [_p, i32, i64, fp, i32, i32, u64, _p, _p, _p, i32]
    so.mx_host_dequantize_packed.argtypes = [_p, _p, i64, fp, i32, _p, i32]
    so.mx_host_block_dequantize_packed.argtypes = [_p, _p, i64, fp, bp, i32, u32, _p, i32]
    so.mx_host_block_quantize_packed.argtypes = [_p, i32, i64, fp, bp, i32, i32, u64, _p, u32,
                                                 _p, _p, i32]
    return so


@pytest.fixture(scope="session")
def lib() -> ctypes.CDLL:
    return host_library()


def _ids_ptr(block_ids: np.ndarray | None) -> int | None:
    return None if block_ids is None else _ptr(block_ids)


def host_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz, block_ids=None):
    blocks = np.ascontiguousarray(blocks)
    n = blocks.shape[0]
    codes = np.zeros((n, fmt.block_size), np.uint8)
    scales = np.zeros(n, np.uint8)
    lib.mx_host_quantize(
        _ptr(blocks), blocks.dtype.itemsize * 8, n, ctypes.byref(_struct(fmt)),
        ROUNDING_MODES.index(rounding), SCALE_MODES.index(scale_mode), seed or 0,
        _ids_ptr(block_ids), _ptr(codes), _ptr(scales), ftz,
    )
    return codes, scales


def check_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz):
    seed = seed if rounding == "stochastic" else None
    want_codes, want_scales = REF.quantize_blocks(blocks, qopts(fmt, rounding, scale_mode, seed))
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
    want = REF.dequantize_blocks(codes, scales, dopts(fmt, np.dtype(dtype)))
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
    ac, as_ = REF.quantize_blocks(a, qopts(fa, "even", "floor", None))
    bc, bs = REF.quantize_blocks(b, qopts(fb, "even", "floor", None))
    ac, as_ = ac.reshape(m, kb, 32), as_.reshape(m, kb)
    bc, bs = bc.reshape(n, kb, 32), bs.reshape(n, kb)
    as_[0, 0] = bs[0, 0] = 0  # the smallest scales, whose products underflow float32
    got = host_matmul(lib, ac, as_, fa, bc, bs, fb, ftz)
    np.testing.assert_array_equal(got, emulated_matmul(ac, as_, fa, bc, bs, fb))
    assert_within_spec_bound(got, ac, as_, fa, bc, bs, fb)


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


# --- the tensor-core matmul: fragment layout, staging, scaling, the whole kernel --------

TILE_M = TILE_N = 128  # MX_MMA_BM, MX_MMA_BN of mx_mma_tile.cuh
SLOW = -1  # MX_MMA_SLOW


def _ptx_fragment_table() -> dict[str, dict[tuple[int, int, int], tuple[int, int]]]:
    """(lane, register, half) -> (row, col), as the PTX ISA tables for m16n8k16 state them.

    A: a0,a1 (register 0) row groupID, a2,a3 row groupID+8, a4..a7 the same 8 columns on;
    columns threadID_in_group*2 + (i & 1).  B: b0,b1 rows (K) threadID_in_group*2 + (i & 1),
    b2,b3 8 rows on, column groupID.  C: c0,c1 row groupID, c2,c3 row groupID+8, columns
    threadID_in_group*2 + (i & 1).
    """
    table: dict[str, dict[tuple[int, int, int], tuple[int, int]]] = {"a": {}, "b": {}, "c": {}}
    for lane in range(32):
        group, tig = divmod(lane, 4)
        for i in range(8):
            row = group + (8 if i in (2, 3, 6, 7) else 0)
            table["a"][lane, i // 2, i % 2] = (row, tig * 2 + (i & 1) + (8 if i >= 4 else 0))
        for i in range(4):
            table["b"][lane, i // 2, i % 2] = (tig * 2 + (i & 1) + (8 if i >= 2 else 0), group)
            table["c"][lane, i, 0] = (group + (8 if i >= 2 else 0), tig * 2 + (i & 1))
    return table


def test_mma_fragment_layout_matches_the_ptx_tables(lib):
    expected = _ptx_fragment_table()
    rc = np.zeros(2, np.int32)
    for kind, name, shape in ((0, "a", (16, 16)), (1, "b", (16, 8)), (2, "c", (16, 8))):
        seen = np.zeros(shape, int)
        for (lane, reg, h), want in expected[name].items():
            lib.mx_host_mma_fragment(kind, lane, reg, h, _ptr(rc))
            assert tuple(rc) == want, (name, lane, reg, h)
            seen[want] += 1
        assert np.all(seen == 1), f"{name}: the table does not cover the tile exactly once"


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_mma_decode_to_float16_is_exact(lib, fmt):
    out = np.zeros(256, np.uint16)
    lib.mx_host_decode_f16(ctypes.byref(_struct(fmt)), _ptr(out))
    got = out[: fmt.n_codes].view(np.float16).astype(np.float64)
    want = fmt.decode_table
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok], want[ok])
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))  # -0.0 kept


def _scale_down(lib, bits, shifts, ftz):
    bits = np.ascontiguousarray(bits, np.uint32)
    shifts = np.ascontiguousarray(shifts, np.int32)
    out = np.zeros(bits.size, np.uint32)
    lib.mx_host_scale_down(_ptr(bits), _ptr(shifts), _ptr(out), bits.size, ftz)
    return out


def _check_scale_down(lib, bits, shifts, ftz):
    got = _scale_down(lib, bits, shifts, ftz).view(np.float32)
    with np.errstate(invalid="ignore"):  # signalling NaNs become quiet
        x = np.asarray(bits, np.uint32).view(np.float32).astype(np.float64)
    want = np.ldexp(x, -np.asarray(shifts)).astype(np.float32)  # exact, then one rounding
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok].view(np.uint32), want[ok].view(np.uint32))


@pytest.mark.parametrize("ftz", FTZ)
def test_mma_scale_down_rounds_like_numpy(lib, ftz):
    rng = np.random.default_rng(8)
    rand = rng.integers(0, 2**32, size=20000, dtype=np.uint64).astype(np.uint32)
    ties = (np.arange(1, 64, dtype=np.uint32) * 2 + 1) | np.uint32(0x3F800000)  # odd low bits
    special = np.array([0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F800000,
                        0xFF800000, 0x7FC00000], np.uint32)
    bits = np.concatenate([rand, ties, special])
    for shifts in (rng.integers(0, 300, size=bits.size), np.full(bits.size, 149),
                   np.full(bits.size, 150), np.zeros(bits.size, int)):
        _check_scale_down(lib, bits, shifts, ftz)


@pytest.mark.parametrize("ftz", FTZ)
@given(bits=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=50),
       shift=st.integers(0, 400))
def test_mma_scale_down_hypothesis(lib, ftz, bits, shift):
    _check_scale_down(lib, np.array(bits, np.uint32), np.full(len(bits), shift), ftz)


def _max_exp(fmt: Format) -> int:
    return _cuda_sources.format_fields(fmt)["max_normal_exp"]


def _exact_max_block_sum(fa: Format, fb: Format) -> float:
    ta, tb = fa.decode_table, fb.decode_table
    return 32 * np.abs(ta[np.isfinite(ta)]).max() * np.abs(tb[np.isfinite(tb)]).max()


@given(max_a=st.integers(0, 254), max_b=st.integers(0, 254), n_kb=st.integers(1, 2**40),
       fa=st.sampled_from(list(FORMATS.values())), fb=st.sampled_from(list(FORMATS.values())))
def test_mma_tile_shift_keeps_the_scaled_sum_in_float32(lib, max_a, max_b, n_kb, fa, fb):
    """The shift's promises, checked in exact arithmetic: no overflow of the scaled running
    sum, and whatever a flush or a dropped factor removes is below 2^-147 per K block."""
    shift = lib.mx_host_tile_shift(max_a, max_b, n_kb, ctypes.byref(_struct(fa)),
                                   ctypes.byref(_struct(fb)))
    xmax = max_a + max_b - 2 * SCALE.bias
    if shift == SLOW:
        # only for scales far from ordinary data's: the block count times the largest
        # element product exceeds 2^20
        largest = 2.0 ** (xmax + _max_exp(fa) + _max_exp(fb))
        assert n_kb * largest > 2.0**20
        return
    from fractions import Fraction

    top = Fraction(_exact_max_block_sum(fa, fb)) * n_kb * Fraction(2) ** (xmax + shift)
    assert top <= Fraction(2) ** 127
    assert xmax + shift + 127 <= 254  # the largest factor is a normal float32
    dropped = Fraction(_exact_max_block_sum(fa, fb)) * Fraction(2) ** (-127 - shift)
    assert dropped <= Fraction(2) ** -147
    assert Fraction(2) ** (-126 - shift) <= Fraction(2) ** -147


def test_mma_tile_shift_fast_for_ordinary_scales(lib):
    """Data within 2^+-20 of one, K up to 2^20: every format pair takes the mma path."""
    for fa in FORMATS.values():
        for fb in FORMATS.values():
            for n_kb in (1, 2**15):
                big = SCALE.bias + 20 - min(fa.emax, fb.emax)
                s = lib.mx_host_tile_shift(big, big, n_kb, ctypes.byref(_struct(fa)),
                                           ctypes.byref(_struct(fb)))
                assert s != SLOW, (fa, fb, n_kb)


def host_mma_matmul(lib, ac, as_, fa, bc, bs, fb, ftz):
    batch, m, n_kb = as_.shape
    n = bs.shape[1]
    out = np.zeros((batch, m, n), np.uint32)
    lib.mx_host_mma_matmul(_ptr(ac), _ptr(as_), ctypes.byref(_struct(fa)), _ptr(bc), _ptr(bs),
                           ctypes.byref(_struct(fb)), batch, m, n, n_kb, _ptr(out), ftz)
    return out.view(np.float32)


def _tile_shifts(lib, as_, fa, bs, fb):
    """Each output's shift S: the shift of its thread block's tile (NumPy tiling)."""
    m, n_kb = as_.shape
    n = bs.shape[0]
    valid_a = np.where(as_ == SCALE.nan_code, 0, as_).max(axis=1, initial=0)
    valid_b = np.where(bs == SCALE.nan_code, 0, bs).max(axis=1, initial=0)
    shift = np.zeros((m, n), np.int64)
    for r0 in range(0, m, TILE_M):
        for c0 in range(0, n, TILE_N):
            shift[r0:r0 + TILE_M, c0:c0 + TILE_N] = lib.mx_host_tile_shift(
                int(valid_a[r0:r0 + TILE_M].max()), int(valid_b[c0:c0 + TILE_N].max()), n_kb,
                ctypes.byref(_struct(fa)), ctypes.byref(_struct(fb)))
    return shift


def _quantized(rng, rows, kb, fmt, spread):
    """Quantized Gaussian rows whose blocks' scales spread over 2^+-spread."""
    x = rng.standard_normal((rows * kb, 32)) * np.ldexp(1.0, rng.integers(-spread, spread + 1,
                                                                          (rows * kb, 1)))
    c, s = REF.quantize_blocks(x.astype(np.float32), qopts(fmt, "even", "floor", None))
    return np.ascontiguousarray(c.reshape(rows, kb, 32)), np.ascontiguousarray(s.reshape(rows, kb))


PAIRS = [(f, g) for f in FORMATS for g in FORMATS]


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("fa,fb", PAIRS)
def test_mma_replay_bitwise_against_its_emulation(lib, fa, fb, ftz):
    """Ordinary data, edge tiles in M and N: the replayed kernel gives exactly the bits of
    the NumPy emulation of its order of operations, so every fragment, staging and scaling
    index lands where the plain matmul puts it."""
    fa, fb = FORMATS[fa], FORMATS[fb]
    rng = np.random.default_rng(fa.bits * 31 + fb.bits + len(fa.name))
    m, n, kb = 131, 9, 3
    ac, as_ = _quantized(rng, m, kb, fa, 6)
    bc, bs = _quantized(rng, n, kb, fb, 6)
    as_[5, 1] = SCALE.nan_code  # a NaN row of the output
    got = host_mma_matmul(lib, ac[None], as_[None], fa, bc[None], bs[None], fb, ftz)[0]
    shift = _tile_shifts(lib, as_, fa, bs, fb)
    assert np.all(shift != SLOW)
    want = emulated_mma_matmul(ac, as_, fa, bc, bs, fb, shift)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert_within_spec_bound(got, ac, as_, fa, bc, bs, fb)


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("fa,fb", [(f, f) for f in FORMATS] + [("mxfp4_e2m1", "mxfp8_e5m2"),
                                                                ("mxint8", "mxfp6_e3m2")])
def test_mma_replay_adversarial_within_bound(lib, fa, fb, ftz):
    """Adversarial blocks (tiny and huge scales, NaN blocks) on several batched shapes:
    within the spec bound of the exact result, NaN where the reference has NaN."""
    fa, fb = FORMATS[fa], FORMATS[fb]
    rng = np.random.default_rng(23)
    for batch, m, n, kb in ((2, 130, 9, 3), (1, 17, 140, 1), (1, 5, 3, 4)):
        a = adversarial_blocks(rng, batch * m * kb, np.float32, fa)
        b = adversarial_blocks(rng, batch * n * kb, np.float32, fb)
        a[np.isinf(a)] = 1.0
        b[np.isinf(b)] = 2.0
        ac, as_ = REF.quantize_blocks(a, qopts(fa, "even", "floor", None))
        bc, bs = REF.quantize_blocks(b, qopts(fb, "even", "floor", None))
        ac, as_ = ac.reshape(batch, m, kb, 32), as_.reshape(batch, m, kb)
        bc, bs = bc.reshape(batch, n, kb, 32), bs.reshape(batch, n, kb)
        as_[0, 0, 0] = bs[0, 0, 0] = 0
        got = host_mma_matmul(lib, ac, as_, fa, bc, bs, fb, ftz)
        for i in range(batch):
            assert_within_spec_bound(got[i], ac[i], as_[i], fa, bc[i], bs[i], fb)


@pytest.mark.parametrize("ftz", FTZ)
def test_mma_replay_slow_tiles_equal_the_simple_kernel(lib, ftz):
    """Scales too far apart for one float32 range send a tile to the exact path: its bits
    are the simple kernel's; the other tile of the same launch stays on the mma path."""
    fa = fb = FORMATS["mxfp8_e5m2"]
    rng = np.random.default_rng(4)
    m, n, kb = 140, 6, 2
    ac, as_ = _quantized(rng, m, kb, fa, 3)
    bc, bs = _quantized(rng, n, kb, fb, 3)
    as_[3, 1] = 254  # huge scale in the first tile row only
    shift = _tile_shifts(lib, as_, fa, bs, fb)
    assert shift[0, 0] == SLOW and shift[-1, 0] != SLOW
    got = host_mma_matmul(lib, ac[None], as_[None], fa, bc[None], bs[None], fb, ftz)[0]
    simple = host_matmul(lib, ac, as_, fa, bc, bs, fb, ftz)
    np.testing.assert_array_equal(got[:TILE_M].view(np.uint32), simple[:TILE_M].view(np.uint32))
    assert_within_spec_bound(got, ac, as_, fa, bc, bs, fb)


@pytest.mark.parametrize("ftz", FTZ)
@given(data=st.data())
def test_mma_replay_hypothesis(lib, ftz, data):
    """Any codes (infinities and NaN codes included) under any scale bytes."""
    fa = data.draw(st.sampled_from(list(FORMATS.values())), label="fa")
    fb = data.draw(st.sampled_from(list(FORMATS.values())), label="fb")
    m = data.draw(st.integers(1, 20))
    n = data.draw(st.integers(1, 20))
    kb = data.draw(st.integers(1, 3))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lo = data.draw(st.integers(0, 254), label="lowest scale byte")
    hi = data.draw(st.integers(lo, 255), label="highest scale byte")
    ac = rng.integers(0, fa.n_codes, (m, kb, 32), dtype=np.uint8)
    bc = rng.integers(0, fb.n_codes, (n, kb, 32), dtype=np.uint8)
    as_ = rng.integers(lo, hi + 1, (m, kb), dtype=np.uint8)
    bs = rng.integers(lo, hi + 1, (n, kb), dtype=np.uint8)
    got = host_mma_matmul(lib, ac[None], as_[None], fa, bc[None], bs[None], fb, ftz)[0]
    assert_within_spec_bound(got, ac, as_, fa, bc, bs, fb)


def test_the_backends_self_check_accepts_the_kernel_and_rejects_a_wrong_result(lib):
    """CupyBackend's first-use check of the mma kernel, fed the host replay of the kernel:
    its problem reaches both the mma path and the exact path, it accepts the replay, and it
    rejects a result one unit off in one output or with a NaN lost."""
    from mxarray.backends import cupy_backend

    for fa, fb in (("mxfp4_e2m1", "mxfp4_e2m1"), ("mxfp8_e5m2", "mxint8")):
        fa, fb = FORMATS[fa], FORMATS[fb]
        ac, as_, bc, bs = cupy_backend._self_check_problem(fa, fb)
        shift = _tile_shifts(lib, as_[0], fa, bs[0], fb)
        assert (shift == SLOW).any() and (shift != SLOW).any()
        got = host_mma_matmul(lib, ac, as_, fa, bc, bs, fb, 1)[0]
        assert cupy_backend._agrees_with_exact(got, ac, as_, fa, bc, bs, fb)
        finite = np.flatnonzero(np.isfinite(got) & (got != 0))
        off = got.copy()
        off.flat[finite[0]] = np.nextafter(off.flat[finite[0]], np.inf) * 2
        assert not cupy_backend._agrees_with_exact(off, ac, as_, fa, bc, bs, fb)
        lost = got.copy()
        lost[np.isnan(lost)] = 0.0
        assert not cupy_backend._agrees_with_exact(lost, ac, as_, fa, bc, bs, fb)


# --- block_ids: the random index of element (b, i) is block_ids[b] * block_size + i ------


def _placed_reference(blocks, fmt, rounding, scale_mode, seed, block_ids, **kw):
    """The reference's codes for rows quantized at positions ``block_ids`` of a larger
    array (block_ids None there): the index rule without the block_ids keyword."""
    rows = np.zeros((int(block_ids.max()) + 1, blocks.shape[1]), blocks.dtype)
    rows[block_ids.astype(np.int64)] = blocks
    codes, scales = REF.quantize_blocks(rows, qopts(fmt, rounding, scale_mode, seed, **kw))
    return codes[block_ids.astype(np.int64)], scales[block_ids.astype(np.int64)]


@pytest.mark.parametrize("ftz", FTZ)
def test_block_ids_index_rule_ocp(lib, ftz):
    fmt = FORMATS["mxfp6_e2m3"]
    rng = np.random.default_rng(31)
    blocks = adversarial_blocks(rng, 40, np.float32, fmt)
    seed = 0xDEAD_BEEF_0123_4567
    ids = rng.permutation(300)[:40].astype(np.uint64)
    got = host_quantize(lib, blocks, fmt, "stochastic", "floor", seed, ftz, ids)
    for g, w in zip(got, _placed_reference(blocks, fmt, "stochastic", "floor", seed, ids)):
        np.testing.assert_array_equal(g, w)
    default = host_quantize(lib, blocks, fmt, "stochastic", "floor", seed, ftz)
    counted = host_quantize(lib, blocks, fmt, "stochastic", "floor", seed, ftz,
                            np.arange(40, dtype=np.uint64))
    for d, c in zip(default, counted):
        np.testing.assert_array_equal(d, c)
    huge = np.array([2**64 - 1, 2**59 + 3, 2**63], np.uint64)  # wrapping uint64 products
    got = host_quantize(lib, blocks[:3], fmt, "stochastic", "floor", seed, ftz, huge)
    want = REF.quantize_blocks(blocks[:3], qopts(fmt, "stochastic", "floor", seed, block_ids=huge))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert not np.array_equal(got[0], default[0][:3])  # the ids really moved the stream


# --- the general block formats: MX9/MX6/MX4 (microexponents) and NVFP4 (UE4M3) --------

SUB_BLOCK_FORMATS = [BLOCK_FORMATS[n] for n in ("mx9", "mx6", "mx4")]
NVFP4 = BLOCK_FORMATS["nvfp4"]
TWO_LEVEL_ROUNDINGS = [r for r in ROUNDING_MODES if r != "stochastic"]  # NVFP4 has no stochastic


def host_block_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz, block_ids=None,
                        tensor_scale=1.0):
    blocks = np.ascontiguousarray(blocks)
    n = blocks.shape[0]
    codes = np.zeros((n, fmt.block_size), np.uint16)
    scales = np.zeros(n, np.uint8)
    ts_bits = int(np.float32(tensor_scale).view(np.uint32))
    lib.mx_host_block_quantize(
        _ptr(blocks), blocks.dtype.itemsize * 8, n, ctypes.byref(_struct(fmt)),
        ctypes.byref(_block_struct(fmt)), ROUNDING_MODES.index(rounding),
        SCALE_MODES.index(scale_mode), seed or 0, _ids_ptr(block_ids), ts_bits, _ptr(codes),
        _ptr(scales), ftz,
    )
    assert codes.max(initial=0) < 1 << fmt.code_bits
    return codes.astype(fmt.code_dtype), scales


def check_block_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz, block_ids=None,
                         tensor_scale=None):
    seed = seed if rounding == "stochastic" else None
    kw = {} if tensor_scale is None else {"tensor_scale": tensor_scale}
    want_codes, want_scales = REF.quantize_blocks(blocks, qopts(fmt, rounding, scale_mode, seed, block_ids=block_ids, **kw))
    codes, scales = host_block_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz,
                                        block_ids, 1.0 if tensor_scale is None else tensor_scale)
    np.testing.assert_array_equal(scales, want_scales)
    np.testing.assert_array_equal(codes, want_codes)
    assert codes.dtype == want_codes.dtype


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("fmt", SUB_BLOCK_FORMATS, ids=str)
def test_sub_block_quantize_all_modes_adversarial(lib, fmt, dtype, ftz):
    rng = np.random.default_rng(20261129 + fmt.bits + np.dtype(dtype).itemsize)
    blocks = adversarial_blocks(rng, 400, dtype, fmt)
    ids = rng.integers(0, 2**64, size=400, dtype=np.uint64)
    for scale_mode in SCALE_MODES:
        for rounding in ROUNDING_MODES:
            check_block_quantize(lib, blocks, fmt, rounding, scale_mode, 0x0F1E_2D3C_4B5A_6978,
                                 ftz)
    check_block_quantize(lib, blocks, fmt, "stochastic", "floor", 99, ftz, block_ids=ids)


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_two_level_quantize_adversarial(lib, dtype, ftz):
    rng = np.random.default_rng(4444 + np.dtype(dtype).itemsize)
    for tensor_scale in TENSOR_SCALES:
        blocks = two_level_blocks(rng, 300, dtype, NVFP4, tensor_scale)
        for rounding in TWO_LEVEL_ROUNDINGS:
            check_block_quantize(lib, blocks, NVFP4, rounding, "floor", None, ftz,
                                 tensor_scale=tensor_scale)


def test_two_level_blocks_hit_the_rounding_boundaries():
    """The NVFP4 data really contain exact E4M3 ties and element ties (else the tests
    above would not test tie-breaking)."""
    s_t = 1.0
    blocks = two_level_blocks(np.random.default_rng(1), 400, np.float64, NVFP4, s_t)
    amax = np.abs(np.where(np.isfinite(blocks), blocks, 0)).max(axis=1)
    grid = NVFP4.scale.finite_grid
    mids = (grid[:-1] + grid[1:]) / 2 * NVFP4.max_normal * s_t
    assert np.isin(amax, mids).sum() > 10
    _, scales = REF.quantize_blocks(blocks, qopts(NVFP4, "even", "floor", None, tensor_scale=s_t))
    ok = (scales > 0) & (scales < NVFP4.scale.nan_code)
    ratio = np.abs(blocks[ok]) / (grid[scales[ok]] * s_t)[:, None]
    element = NVFP4.decode_table[: NVFP4.max_code + 1]
    assert np.isin(ratio, (element[:-1] + element[1:]) / 2).sum() > 10


@st.composite
def sub_blocks(draw, fmt: Format, dtype: np.dtype) -> np.ndarray:
    """Blocks whose pairs sit at microexponent boundaries: each pair's maximum is a power
    of two relative to the block's, or one ulp below, or a grid value or tie."""
    lo, hi = EXPONENT_RANGE[np.dtype(dtype)]
    points = grid_points(fmt)
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        x0 = draw(st.integers(lo + 2, hi))
        row = []
        for _ in range(fmt.block_size // 2):
            shift = draw(st.integers(-3, 1))
            boundary = st.builds(_grid_value, st.just(1.0), st.just(x0 + shift),
                                 st.sampled_from([-1.0, 1.0]), st.booleans())
            near = st.builds(lambda v: float(np.nextafter(v, 0)), boundary)
            on_grid = st.builds(_grid_value, st.sampled_from(list(points)), st.just(x0),
                                st.sampled_from([-1.0, 1.0]), st.booleans())
            anything = st.floats(allow_nan=False, allow_infinity=False,
                                 width=8 * np.dtype(dtype).itemsize)
            pick = st.one_of(boundary, near, on_grid, anything, st.sampled_from([0.0, -0.0]))
            row += [draw(pick), draw(pick)]
        bad = draw(st.one_of(st.none(), st.tuples(st.integers(0, fmt.block_size - 1),
                                                  st.sampled_from([np.nan, np.inf, -np.inf]))))
        if bad is not None:
            row[bad[0]] = bad[1]
        rows.append(row)
    with np.errstate(over="ignore"):
        return np.array(rows, dtype=np.float64).astype(dtype)


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("fmt", SUB_BLOCK_FORMATS, ids=str)
@given(data=st.data())
def test_sub_block_quantize_hypothesis(lib, fmt, ftz, data):
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]))
    blocks = data.draw(sub_blocks(fmt, dtype))
    rounding = data.draw(st.sampled_from(ROUNDING_MODES))
    scale_mode = data.draw(st.sampled_from(SCALE_MODES))
    seed = data.draw(st.integers(0, 2**64 - 1))
    ids = data.draw(st.one_of(st.none(), st.lists(st.integers(0, 2**64 - 1), min_size=len(blocks),
                                                  max_size=len(blocks))))
    ids = None if ids is None else np.array(ids, np.uint64)
    check_block_quantize(lib, blocks, fmt, rounding, scale_mode, seed, ftz, block_ids=ids)


@st.composite
def two_level_data(draw, dtype: np.dtype) -> tuple[np.ndarray, float]:
    """NVFP4 blocks and a tensor scale: elements on the grid, on ties or one ulp away,
    times a drawn block scale; block maxima on UE4M3 values or ties; any float32 scale."""
    tensor_scale = draw(st.one_of(
        st.sampled_from(TENSOR_SCALES),
        st.floats(min_value=2.0**-149, max_value=float(np.finfo(np.float32).max), width=32)))
    s_t = float(np.float32(tensor_scale))
    grid = NVFP4.scale.finite_grid
    width = 8 * np.dtype(dtype).itemsize
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        divisor = float(grid[draw(st.integers(0, grid.size - 1))]) * s_t
        on_grid = st.builds(lambda p, sign, nudge, d=divisor: _nudged(sign * p * d, nudge),
                            st.sampled_from(list(grid_points(NVFP4))),
                            st.sampled_from([-1.0, 1.0]), st.booleans())
        top = st.builds(lambda p, nudge: _nudged(p * NVFP4.max_normal * s_t, nudge),
                        st.sampled_from(list(scale_grid_points(NVFP4))), st.booleans())
        anything = st.floats(allow_nan=False, allow_infinity=False, width=width)
        row = draw(st.lists(st.one_of(on_grid, top, anything, st.sampled_from([0.0, -0.0])),
                            min_size=16, max_size=16))
        if draw(st.booleans()):
            row[draw(st.integers(0, 15))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        rows.append(row)
    with np.errstate(over="ignore"):
        return np.array(rows, dtype=np.float64).astype(dtype), tensor_scale


def _nudged(v: float, nudge: bool) -> float:
    with np.errstate(over="ignore"):
        return float(np.nextafter(v, np.copysign(np.inf, v))) if nudge else v


@pytest.mark.parametrize("ftz", FTZ)
@given(data=st.data())
def test_two_level_quantize_hypothesis(lib, ftz, data):
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]))
    blocks, tensor_scale = data.draw(two_level_data(dtype))
    rounding = data.draw(st.sampled_from(TWO_LEVEL_ROUNDINGS))
    check_block_quantize(lib, blocks, NVFP4, rounding, "floor", None, ftz,
                         tensor_scale=tensor_scale)


def host_block_dequantize(lib, codes, scales, fmt, out_bits, ftz, tensor_scale=1.0):
    codes = np.ascontiguousarray(codes, np.uint16)
    scales = np.ascontiguousarray(scales, np.uint8)
    out = np.zeros(codes.shape, BITS_DTYPE[out_bits])
    ts_bits = int(np.float32(tensor_scale).view(np.uint32))
    lib.mx_host_block_dequantize(_ptr(codes), _ptr(scales), codes.size,
                                 ctypes.byref(_struct(fmt)), ctypes.byref(_block_struct(fmt)),
                                 ts_bits, out_bits, _ptr(out), ftz)
    return out


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("out_bits", [32, 64])
@pytest.mark.parametrize("fmt", [*SUB_BLOCK_FORMATS, NVFP4], ids=str)
def test_block_dequantize_exhaustive(lib, fmt, out_bits, ftz):
    """Every unpacked code (microexponents included) under every scale byte (NaN and
    invalid UE4M3 bytes included), and for NVFP4 under tiny, ordinary and huge tensor
    scales (float32 results from subnormal to overflow)."""
    n_codes = 1 << fmt.code_bits
    per_scale = -(-n_codes // fmt.block_size)
    codes = np.resize(np.arange(n_codes, dtype=fmt.code_dtype), (256 * per_scale, fmt.block_size))
    scales = np.repeat(np.arange(256, dtype=np.uint8), per_scale)
    dtype = np.dtype(np.float32 if out_bits == 32 else np.float64)
    for tensor_scale in (TENSOR_SCALES if fmt.tensor_scale != "none" else (None,)):
        kw = {} if tensor_scale is None else {"tensor_scale": tensor_scale}
        want = REF.dequantize_blocks(codes, scales, dopts(fmt, dtype, **kw))
        got = host_block_dequantize(lib, codes, scales, fmt, out_bits, ftz,
                                    1.0 if tensor_scale is None else tensor_scale)
        assert np.count_nonzero(want.view(BITS_DTYPE[out_bits]) != got) == 0, tensor_scale


@pytest.mark.parametrize("fmt", [*SUB_BLOCK_FORMATS, NVFP4], ids=str)
def test_block_pack_unpack_match_reference(lib, fmt):
    """Codes with one microexponent per sub-block (as quantization makes them) pack to the
    reference's bytes and unpack back; NVFP4 packs as nibbles."""
    rng = np.random.default_rng(77)
    n_blocks = 64
    codes = rng.integers(0, fmt.n_codes, size=(n_blocks, fmt.block_size)).astype(np.uint16)
    if fmt.sub_block_size:
        d = rng.integers(0, 1 << fmt.sub_block_bits, size=(n_blocks, fmt.n_sub_blocks))
        codes |= np.repeat(d, fmt.sub_block_size, axis=1).astype(np.uint16) << fmt.bits
    codes = codes.astype(fmt.code_dtype)
    packed = np.zeros(n_blocks * fmt.bytes_per_block, np.uint8)
    wide = np.ascontiguousarray(codes, np.uint16)
    lib.mx_host_block_pack(_ptr(wide), _ptr(packed), n_blocks, ctypes.byref(_struct(fmt)),
                           ctypes.byref(_block_struct(fmt)))
    np.testing.assert_array_equal(packed, REF.pack(codes, fmt).reshape(-1))
    back = np.zeros(codes.size, np.uint16)
    lib.mx_host_block_unpack(_ptr(packed), _ptr(back), n_blocks, ctypes.byref(_struct(fmt)),
                             ctypes.byref(_block_struct(fmt)))
    np.testing.assert_array_equal(back, codes.reshape(-1))


def test_block_kernels_reject_what_they_do_not_implement():
    """The block layout check names the reason for formats the kernels cannot run."""
    from mxarray.formats import register

    promote = BLOCK_FORMATS.get("cuda_test_promote") or register(
        {"name": "cuda_test_promote", "block_size": 16, "scale": "e8m0", "sub_block_size": 2,
         "sub_block_bits": 1, "magnitude_overflow": "promote",
         "element": {"kind": "signmag", "bits": 8, "mantissa_bits": 6}})
    with pytest.raises(ValueError, match="saturating"):
        _cuda_sources.block_fields(promote)
    wide = BLOCK_FORMATS.get("cuda_test_block64") or register(
        {"name": "cuda_test_block64", "block_size": 64, "scale": "e8m0", "element": "mxfp8_e4m3"})
    with pytest.raises(ValueError, match="warp"):
        _cuda_sources.block_fields(wide)


# --- the simple matmul for the general block formats ------------------------------------


def _f32_bits(tensor_scale: float | None) -> int:
    return int(np.float32(1.0 if tensor_scale is None else tensor_scale).view(np.uint32))


def host_block_matmul(lib, ac, as_, fa, ta, bc, bs, fb, tb, ftz):
    """(M, KB, bs) and (N, KB', bs') operands; the first min(K, K') elements meet."""
    m, n = as_.shape[0], bs.shape[0]
    a_len, b_len = ac.shape[1] * ac.shape[2], bc.shape[1] * bc.shape[2]
    a16 = np.ascontiguousarray(ac, np.uint16)
    b16 = np.ascontiguousarray(bc, np.uint16)
    as_, bs = np.ascontiguousarray(as_), np.ascontiguousarray(bs)
    out = np.zeros((m, n), np.uint32)
    lib.mx_host_block_matmul(_ptr(a16), _ptr(as_), ctypes.byref(_struct(fa)),
                             ctypes.byref(_block_struct(fa)), _f32_bits(ta), _ptr(b16), _ptr(bs),
                             ctypes.byref(_struct(fb)), ctypes.byref(_block_struct(fb)),
                             _f32_bits(tb), m, n, a_len, b_len, min(a_len, b_len), _ptr(out), ftz)
    return out.view(np.float32)


def _block_operand(rng, rows, k, fmt, tensor_scale=None, integers=False):
    """Quantized (rows, KB, block size) codes and (rows, KB) scales of K = k values per
    row, zero-padded to whole blocks; adversarial data unless ``integers``."""
    kb = -(-k // fmt.block_size)
    if integers:
        x = np.zeros((rows, kb * fmt.block_size))
        x[:, :k] = rng.integers(-3, 4, (rows, k))
        x = x.reshape(-1, fmt.block_size)
    elif fmt.tensor_scale != "none":
        x = two_level_blocks(rng, rows * kb, np.float32, fmt, tensor_scale)
    else:
        x = adversarial_blocks(rng, rows * kb, np.float32, fmt)
    x[np.isinf(x)] = 1.0  # NaN blocks stay; Inf * 0 is covered by NaN
    kw = {} if fmt.tensor_scale == "none" else {"tensor_scale": tensor_scale}
    c, s = REF.quantize_blocks(x.astype(np.float32), qopts(fmt, "even", "floor", None, **kw))
    return c.reshape(rows, kb, fmt.block_size), s.reshape(rows, kb)


BLOCK_PAIRS = [("mx9", "mx9"), ("mx6", "mx4"), ("nvfp4", "nvfp4"), ("nvfp4", "mx9"),
               ("mx4", "mxfp8_e4m3"), ("mxfp8_e5m2", "nvfp4"), ("mxint8", "mx6")]


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("fa,fb", BLOCK_PAIRS)
def test_block_matmul_within_spec_bound(lib, fa, fb, ftz):
    """Adversarial operands (tiny and huge scales, NaN blocks, NVFP4 under tiny, ordinary and
    huge tensor scales), K not a multiple of either block size: within [dot_block_formats]."""
    fa, fb = BLOCK_FORMATS[fa], BLOCK_FORMATS[fb]
    rng = np.random.default_rng(fa.bits * 13 + fb.bits)
    for ta, tb in ((1.0, 1.0), (2.0**-140, 1.0), (TENSOR_SCALES[-2], 0.1)):
        ta = ta if fa.tensor_scale != "none" else None
        tb = tb if fb.tensor_scale != "none" else None
        ac, as_ = _block_operand(rng, 9, 70, fa, ta)
        bc, bs = _block_operand(rng, 6, 70, fb, tb)
        got = host_block_matmul(lib, ac, as_, fa, ta, bc, bs, fb, tb, ftz)
        assert_within_spec_bound(got, ac, as_, fa, bc, bs, fb, a_tensor_scale=ta,
                                 b_tensor_scale=tb)


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("fa,fb", BLOCK_PAIRS)
def test_block_matmul_exact_sums_are_bitwise(lib, fa, fb, ftz):
    """Small integers: every partial sum is exact, so the bits are the reference's."""
    fa, fb = BLOCK_FORMATS[fa], BLOCK_FORMATS[fb]
    rng = np.random.default_rng(5)
    ta = 0.5 if fa.tensor_scale != "none" else None
    tb = 0.25 if fb.tensor_scale != "none" else None
    ac, as_ = _block_operand(rng, 5, 40, fa, ta, integers=True)
    bc, bs = _block_operand(rng, 4, 40, fb, tb, integers=True)
    got = host_block_matmul(lib, ac, as_, fa, ta, bc, bs, fb, tb, ftz)
    scales = {k: v for k, v in (("a_tensor_scale", ta), ("b_tensor_scale", tb)) if v is not None}
    want = matmul_codes(REF, ac[None], as_[None], fa, bc[None], bs[None], fb, **scales)[0]
    assert np.any(want != 0)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
