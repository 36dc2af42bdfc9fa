"""The two-pass MX matmul without a GPU: its plan, its device arithmetic built for the host,
and the CuPy backend's launch code run end to end on host replays of its kernels.

The fold (backends/cuda/mx_fold.cuh: decode to bfloat16 with the block scale and the
operand's shift folded in) and the epilogue are built with g++ from the same header as the
kernels (tests/backends/cuda/test_cuda_host.py's library) and compared bit for bit with the NumPy
reference.  The GEMM in the end-to-end test is a stand-in (float64 products and sums,
one rounding to float32 per K tile): it checks the launch code's operands, leading
dimensions, tiles, shifts and fallbacks; the tensor-core accumulation itself is modelled in
tests/backends/cuda/test_cuda_twopass_bound.py and must be measured on a GPU (benchmarks/gpu_check.py).
"""

from __future__ import annotations

import ctypes

import ml_dtypes
import numpy as np
import pytest

from support.backend_calls import dopts, matmul_bytes, qopts
from mxarray.backends import _cuda_two_pass as tp
from mxarray.backends import cupy_backend
from mxarray.backends.base import MatmulOperand
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import BLOCK_FORMATS, FORMATS, SCALE
from test_cuda_host import (FTZ, HOST_BUILD_REASON, NO_HOST_BUILD, _block_struct, _ptr, _struct,
                            host_library)

REF = NumpyBackend()


@pytest.fixture(scope="module")
def lib():
    """The host build of the CUDA headers (tests/backends/cuda/test_cuda_host.py builds it once)."""
    if NO_HOST_BUILD:
        pytest.skip(reason=HOST_BUILD_REASON)
    return host_library()
GPU_FORMATS = [*FORMATS, *cupy_backend.BLOCK_KERNEL_FORMATS]


def _bf16_exact(values: np.ndarray) -> bool:
    """Whether every float64 value is a finite bfloat16 exactly (subnormals included)."""
    with np.errstate(over="ignore"):
        as_bf16 = values.astype(ml_dtypes.bfloat16)
    return bool(np.all(np.isfinite(as_bf16)) and np.array_equal(as_bf16.astype(np.float64), values))


@pytest.mark.parametrize("name", GPU_FORMATS)
def test_bf16_window_is_where_every_folded_value_is_a_bfloat16(name):
    fmt = BLOCK_FORMATS[name]
    values = tp._values(fmt)
    if fmt.sub_block_size:  # every microexponent lowers the value
        values = np.concatenate([np.ldexp(values, -d) for d in range(1 << fmt.sub_block_bits)])
    exact = [s for s in range(-160, 160) if _bf16_exact(np.ldexp(values, s))]
    assert exact == list(range(exact[0], exact[-1] + 1))  # one interval
    if fmt.scale is SCALE:
        assert tp.bf16_window(fmt) == (exact[0], exact[-1])


def test_bf16_window_of_e4m3_is_the_issues_example():
    assert tp.bf16_window(FORMATS["mxfp8_e4m3"]) == (-124, 119)


@pytest.mark.parametrize("name", GPU_FORMATS)
def test_every_folded_value_has_at_most_8_significant_bits(name):
    fmt = BLOCK_FORMATS[name]
    assert tp.fold_is_exact(fmt)
    # the same by brute force on the values times every scale value (the mantissa bits)
    scales = [1.0] if fmt.scale is SCALE else [float(v) for v in fmt.scale.finite_grid if v > 0]
    for s in scales:
        mant = np.frexp(tp._values(fmt) * s)[0] * 2.0**8
        assert np.array_equal(mant, np.round(mant))


def test_scale_tables_bound_every_scale_value():
    for name in ("mxfp8_e4m3", "nvfp4"):
        fmt = BLOCK_FORMATS[name]
        lo, hi, min_byte = tp.scale_tables(fmt)
        table = fmt.scale.finite_grid if fmt.scale is not SCALE else \
            np.ldexp(1.0, np.arange(SCALE.nan_code) - SCALE.bias)
        for byte, value in enumerate(table):
            if byte < min_byte or value == 0:
                assert lo[byte] > 1000 and hi[byte] < -1000
                continue
            assert value % 2.0 ** int(lo[byte]) == 0 and value % 2.0 ** (int(lo[byte]) + 1) != 0
            assert 2.0 ** (int(hi[byte]) - 1) < value <= 2.0 ** int(hi[byte])


def _plan_holds(a, b, k, shifts) -> bool:
    la, ha = a[0] + shifts[0], a[1] + shifts[0]
    lb, hb = b[0] + shifts[1], b[1] + shifts[1]
    c = (k - 1).bit_length()
    return (la >= -126 and lb >= -126 and ha <= 128 and hb <= 128 and la + lb >= -126
            and ha + hb + c <= 127)


def test_plan_shifts_meet_their_conditions_and_fail_only_when_none_exist():
    rng = np.random.default_rng(7)
    for _ in range(300):
        k = int(rng.integers(1, 1 << 17))
        a = (int(rng.integers(-300, 200)),)
        a = (a[0], a[0] + int(rng.integers(0, 200)))
        b = (int(rng.integers(-300, 200)),)
        b = (b[0], b[0] + int(rng.integers(0, 200)))
        shifts = tp.plan_shifts(a, b, k)
        if shifts is not None:
            assert _plan_holds(a, b, k, shifts), (a, b, k, shifts)
        else:  # no pair of shifts works (LA + LB from -126 up only makes it harder)
            assert not any(_plan_holds(a, b, k, (la - a[0], -126 - la - b[0]))
                           for la in range(-400, 400)), (a, b, k)


def test_k_tiles_cover_k_on_block_boundaries_within_the_budget():
    for k, a_block, b_block, rows, budget in [(160, 32, 16, 300, 1 << 28),
                                              (1000, 16, 32, 64, 64 * 2 * 96),
                                              (4096, 32, 32, 10, 1)]:
        tiles = tp.k_tiles(k, a_block, b_block, rows, budget)
        assert tiles[0][0] == 0 and tiles[-1][1] == k
        assert all(t[1] == u[0] for t, u in zip(tiles, tiles[1:]))
        assert all(k0 % 32 == 0 for k0, _ in tiles)
        widths = [k1 - k0 for k0, k1 in tiles]
        assert max(widths) * 2 * rows <= max(budget, 32 * 2 * rows)


# --- the fold and the epilogue, host-built, bit for bit ----------------------------------


def _random_operand(rng, fmt, rows, kb, scale_lo=100, scale_hi=150):
    """Codes ``(rows, kb, block)`` and scales ``(rows, kb)`` of ``fmt`` from the reference."""
    x = rng.standard_normal((rows * kb, fmt.block_size))
    x *= np.ldexp(1.0, rng.integers(-8, 9, (rows * kb, 1)))
    ts = np.float32(0.75) if fmt.tensor_scale != "none" else None
    codes, scales = REF.quantize_blocks(x, qopts(fmt, tensor_scale=ts))
    if fmt.scale is SCALE:
        scales = rng.integers(scale_lo, scale_hi, scales.shape).astype(np.uint8)
    return codes.reshape(rows, kb, fmt.block_size), scales.reshape(rows, kb)


def _host_fold(lib, fmt, codes, scales, shift, kb0=0, tile_kb=None, ftz=0):
    """The fold kernel replayed: bfloat16 bits (rows, tile_kb * block) and the flag."""
    rows, n_kb = scales.shape
    tile_kb = n_kb - kb0 if tile_kb is None else tile_kb
    if fmt.is_ocp:
        src = np.ascontiguousarray(REF.pack(codes.reshape(rows, -1), fmt))
    else:
        src = np.ascontiguousarray(codes.reshape(rows, -1)).view(np.uint8)
    out = np.zeros((rows, tile_kb * fmt.block_size), np.uint16)
    flag = lib.mx_host_fold(ctypes.byref(_struct(fmt)), ctypes.byref(_block_struct(fmt)),
                            int(fmt.is_ocp), _ptr(src), _ptr(np.ascontiguousarray(scales)),
                            _ptr(out), rows, n_kb, kb0, tile_kb, shift,
                            tp.scale_tables(fmt)[2], ftz)
    return out, flag


def _reference_fold(fmt, codes, scales, shift):
    """decode(code) * scale * 2^shift from the reference, as bfloat16 bits (exact)."""
    ts = np.float32(1.0) if fmt.tensor_scale != "none" else None
    rows, kb = scales.shape
    values = REF.dequantize_blocks(codes.reshape(rows * kb, -1), scales.reshape(-1),
                                   dopts(fmt, np.float64, tensor_scale=ts))
    values = np.ldexp(values, shift).reshape(rows, -1)
    assert _bf16_exact(values)
    return values.astype(ml_dtypes.bfloat16).view(np.uint16)


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("name", GPU_FORMATS)
def test_fold_is_bit_exact(lib, name, ftz):
    fmt = BLOCK_FORMATS[name]
    rng = np.random.default_rng(11)
    codes, scales = _random_operand(rng, fmt, 7, 6)
    lo, hi, _ = tp.scale_tables(fmt)
    exps = tp.operand_exponents(fmt, int(lo[scales].min()), int(hi[scales].max()))
    for shift in (tp.plan_shifts(exps, exps, 192)[0], tp.plan_shifts(exps, exps, 192)[1]):
        want = _reference_fold(fmt, codes, scales, shift)
        got, flag = _host_fold(lib, fmt, codes, scales, shift, ftz=ftz)
        assert flag == 0
        np.testing.assert_array_equal(got, want)
        # a K tile: blocks 2..4 of every row
        got, flag = _host_fold(lib, fmt, codes, scales, shift, kb0=2, tile_kb=3, ftz=ftz)
        size = fmt.block_size
        np.testing.assert_array_equal(got, want[:, 2 * size:5 * size])


@pytest.mark.parametrize("name", ["mxfp8_e5m2", "mxfp8_e4m3", "mxfp4_e2m1", "mx9", "nvfp4"])
def test_fold_flags_what_the_plan_does_not_cover(lib, name):
    fmt = BLOCK_FORMATS[name]
    rng = np.random.default_rng(12)
    codes, scales = _random_operand(rng, fmt, 3, 2)
    codes[:, :, 0] = codes[:, :, 1] = 0 if fmt.is_ocp else codes[:, :, 0] & 0
    codes[:, :, 2] = 1  # a non-zero element in every block
    assert _host_fold(lib, fmt, codes, scales, 0)[1] == 0
    nan = scales.copy()
    nan[1, 1] = fmt.scale.nan_code
    assert _host_fold(lib, fmt, codes, nan, 0)[1] == 1
    if fmt.scale is SCALE:  # byte 0: left out of the plan, flagged when it holds a value
        low = scales.copy()
        low[2, 0] = 0
        assert _host_fold(lib, fmt, codes, low, 0)[1] == 1
        zeros = codes.copy()
        zeros[2, 0] = 0
        assert _host_fold(lib, fmt, zeros, low, 0)[1] == 0
        assert _host_fold(lib, fmt, codes, scales, 200)[1] == 1  # out of range: Inf
        assert _host_fold(lib, fmt, codes, scales, -300)[1] == 1  # underflow to zero
    if np.any(~np.isfinite(fmt.decode_table)):  # a NaN or Inf element
        special = int(np.flatnonzero(~np.isfinite(fmt.decode_table))[0])
        bad = codes.copy()
        bad[0, 0, 5] = special
        assert _host_fold(lib, fmt, bad, scales, 0)[1] == 1


@pytest.mark.parametrize("ftz", FTZ)
def test_epilogue_is_bit_exact(lib, ftz):
    rng = np.random.default_rng(13)
    c = (rng.standard_normal(4000) * np.ldexp(1.0, rng.integers(-126, 120, 4000))
         ).astype(np.float32)
    c[:3] = [0.0, -0.0, np.inf]
    for shift, ts_a, ts_b in [(0, 1.0, 1.0), (30, 1.0, 1.0), (-100, 1.0, 1.0),
                              (120, 1.0, 1.0), (-3, 0.75, 1.0), (17, 0.1, 3.3e-3)]:
        got = c.view(np.uint32).copy()
        lib.mx_host_two_pass_epilogue(_ptr(got), got.size, shift,
                                      int(np.float32(ts_a).view(np.uint32)),
                                      int(np.float32(ts_b).view(np.uint32)), ftz)
        want = np.ldexp(c.astype(np.float64), -shift)
        if ts_a != 1.0:
            want = want * np.float64(np.float32(ts_a))
        if ts_b != 1.0:
            want = want * np.float64(np.float32(ts_b))
        with np.errstate(over="ignore"):
            want = want.astype(np.float32)
        np.testing.assert_array_equal(got.view(np.float32), want)


# --- the backend's two-pass launches, end to end on host replays --------------------------


class _HostModule:
    """Stands in for a compiled mx_fold_bf16.cu: each kernel runs its host replay."""

    def __init__(self, lib, source, formats):
        assert source == "mx_fold_bf16.cu"
        self.lib, self.fmt = lib, formats[0]

    def get_function(self, name):
        lib, fmt = self.lib, self.fmt

        def launch(grid, block, args):
            if name == "mx_two_pass_epilogue":
                c, n, shift, ts_a, ts_b = args
                assert grid[0] * block[0] >= n
                lib.mx_host_two_pass_epilogue(_ptr(c), int(n), int(shift), int(ts_a), int(ts_b), 1)
                return
            src, scales, out, rows, n_kb, kb0, tile_kb, shift, min_byte, flag = args
            assert grid[0] * block[0] >= rows * tile_kb and src.ctypes.data % 8 == 0
            assert name == ("mx_fold_bf16_packed" if fmt.is_ocp else "mx_fold_bf16_codes")
            flag[0] |= lib.mx_host_fold(
                ctypes.byref(_struct(fmt)), ctypes.byref(_block_struct(fmt)), int(fmt.is_ocp),
                _ptr(src), _ptr(scales), _ptr(out), int(rows), int(n_kb), int(kb0),
                int(tile_kb), int(shift), int(min_byte), 1)

        return launch


def _gemm_stand_in(calls):
    def gemm(a, b, out, k, accumulate):
        av = a[:, :k].view(ml_dtypes.bfloat16).astype(np.float64)
        bv = b[:, :k].view(ml_dtypes.bfloat16).astype(np.float64)
        tile = av @ bv.T
        out[...] = ((out.astype(np.float64) + tile) if accumulate else tile).astype(np.float32)
        calls.append((a.shape, b.shape, k, accumulate))

    return gemm


@pytest.fixture
def host_gpu(lib, monkeypatch):
    """A CupyBackend on NumPy arrays whose fold kernels and GEMM run on the host."""
    calls = []
    monkeypatch.setattr(cupy_backend, "_module", lambda source, formats: _HostModule(
        lib, source, formats))
    monkeypatch.setattr(cupy_backend, "_gemm_bf16", _gemm_stand_in(calls))
    monkeypatch.setattr(cupy_backend.CupyBackend, "xp", property(lambda self: np))
    monkeypatch.setattr(cupy_backend.CupyBackend, "pack",
                        lambda self, codes, fmt: REF.pack(codes, fmt))
    monkeypatch.setattr(cupy_backend.CupyBackend, "unpack",
                        lambda self, packed, fmt: REF.unpack(packed, fmt))
    exact = []
    monkeypatch.setattr(cupy_backend.CupyBackend, "_exact_matmul",
                        lambda self, a, b, kind: exact.append(kind) or REF.matmul(a, b, None))
    return cupy_backend.CupyBackend(matmul_kernel="two-pass"), calls, exact


PAIRS = [(f, f) for f in GPU_FORMATS] + [("mxfp4_e2m1", "mxfp8_e4m3"), ("nvfp4", "mx9"),
                                         ("mx6", "mxint8"), ("mxfp8_e5m2", "nvfp4")]


@pytest.mark.parametrize("fa,fb", PAIRS)
def test_two_pass_launches_within_the_bound(host_gpu, monkeypatch, fa, fb):
    gpu, calls, exact = host_gpu
    a, b = cupy_backend.two_pass_check_problem(BLOCK_FORMATS[fa], BLOCK_FORMATS[fb])
    monkeypatch.setattr(cupy_backend, "TWO_PASS_TILE_BYTES", 64 * 2 * (150 + 140))
    got = gpu.matmul(a, b, cupy_backend.MatmulOptions())
    assert not exact and len(calls) == 3  # K = 160 in tiles of 64, 64 and 32
    assert [c[3] for c in calls] == [False, True, True]
    assert cupy_backend.matmul_violations(got[0], a, b, "two-pass") == []


def test_two_pass_batches_and_mixed_block_sizes(host_gpu):
    gpu, calls, exact = host_gpu
    rng = np.random.default_rng(14)
    ops = []
    for fmt, rows, kb in ((BLOCK_FORMATS["mxfp6_e3m2"], 5, 3), (BLOCK_FORMATS["mx9"], 4, 5)):
        codes, scales = _random_operand(rng, fmt, 2 * rows, kb, 120, 134)
        packed = REF.pack(codes.reshape(2 * rows, -1), fmt).reshape(2, rows, -1)
        ops.append(MatmulOperand(packed, scales.reshape(2, rows, kb), fmt, None))
    got = matmul_bytes(gpu, ops[0].packed, ops[0].scales, ops[0].fmt, ops[1].packed,
                       ops[1].scales, ops[1].fmt)
    want = REF.matmul(ops[0], ops[1], None)
    assert not exact and got.shape == want.shape == (2, 5, 4)
    assert [c[2] for c in calls] == [80, 80]  # K = min(96, 80), one tile per batch item
    gamma = float(tp.two_pass_gamma(80))
    assert np.all(np.abs(got - want) <= 2 * gamma * np.abs(want) + 1e-30)


def test_two_pass_falls_back_to_the_exact_path(host_gpu):
    gpu, calls, exact = host_gpu
    a, b = cupy_backend.two_pass_check_problem(FORMATS["mxfp8_e4m3"], FORMATS["mxfp8_e4m3"])
    nan = MatmulOperand(a.packed, a.scales.copy(), a.fmt, None)
    nan.scales[0, 3, 1] = SCALE.nan_code
    gpu.matmul(nan, b, cupy_backend.MatmulOptions())
    assert exact == ["auto"]  # the fold flagged it after the GEMM
    wide = MatmulOperand(a.packed, a.scales.copy(), a.fmt, None)
    wide.scales[0, 0, 0], wide.scales[0, 1, 0] = 1, 254  # no shift covers both ends
    calls.clear()
    gpu.matmul(wide, b, cupy_backend.MatmulOptions())
    assert exact == ["auto", "auto"] and not calls  # planned out before any fold


def test_mma_path_refuses_block_formats(host_gpu):
    gpu, _, _ = host_gpu
    a, b = cupy_backend.two_pass_check_problem(BLOCK_FORMATS["nvfp4"], BLOCK_FORMATS["mx9"])
    with pytest.raises(ValueError, match="OCP"):
        gpu.matmul(a, b, cupy_backend.MatmulOptions("mma"))


def test_auto_takes_two_pass_from_its_size_up(host_gpu, monkeypatch):
    gpu, calls, exact = host_gpu
    auto = cupy_backend.CupyBackend(matmul_kernel="auto")
    a, b = cupy_backend.two_pass_check_problem(FORMATS["mxint8"], FORMATS["mxint8"])
    monkeypatch.setattr(cupy_backend, "_two_pass_verified", lambda xp, fa, fb: True)
    auto.matmul(a, b, cupy_backend.MatmulOptions())  # 150 x 140 x 160 < 2^24: exact
    assert exact == ["auto"] and not calls
    monkeypatch.setattr(cupy_backend, "TWO_PASS_MIN_MACS", 150 * 140 * 160)
    auto.matmul(a, b, cupy_backend.MatmulOptions())
    assert exact == ["auto"] and calls

