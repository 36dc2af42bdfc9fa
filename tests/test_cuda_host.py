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

import ctypes
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cuda_adversarial import (
    EXPONENT_RANGE, adversarial_blocks, assert_within_spec_bound, emulated_matmul,
    emulated_mma_matmul, grid_points,
)
from mxarray import _cuda_sources
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import FORMATS, ROUNDING_MODES, SCALE, SCALE_MODES, Format

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
    so.mx_host_mma_fragment.argtypes = [i32, i32, i32, i32, _p]
    so.mx_host_decode_f16.argtypes = [fp, _p]
    so.mx_host_scale_down.argtypes = [_p, _p, _p, i64, i32]
    so.mx_host_tile_shift.argtypes = [i32, i32, i64, fp, fp]
    so.mx_host_tile_shift.restype = i32
    so.mx_host_mma_matmul.argtypes = [_p, _p, fp, _p, _p, fp, i64, i64, i64, i64, _p, i32]
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
    c, s = REF.quantize_blocks(x.astype(np.float32), fmt, "even", "floor", None)
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
        ac, as_ = REF.quantize_blocks(a, fa, "even", "floor", None)
        bc, bs = REF.quantize_blocks(b, fb, "even", "floor", None)
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
