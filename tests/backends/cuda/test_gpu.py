"""The CuPy backend on a real GPU, bit for bit against the NumPy reference.

Marked ``gpu``: skipped with a reason unless CuPy finds a CUDA driver and device.  The
CPU-only parts (detection never fails, the reason is reported, the matmul kernel option
is validated) run everywhere.  The tensor-core matmul is checked against the simple
kernel and the reference under the spec's error bound (not bitwise: the order and
rounding of the additions inside an mma instruction are the hardware's).  The general
block formats (MX9/6/4, NVFP4) are checked bitwise for quantize (with ``block_ids``),
dequantize and pack, and their matmul kernel under [dot_block_formats].  The two-pass
path (bf16 fold + cuBLAS) is checked under its own bound ([dot_paths.two_pass]), bitwise
where every sum is exact, on data that tells a truncating accumulator from a rounding
one, and for its fallbacks to the exact path.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from support.cuda_adversarial import (
    TENSOR_SCALES, adversarial_blocks, assert_within_spec_bound, emulated_matmul,
    two_level_blocks,
)
from mxarray.backends import cupy_backend
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import BLOCK_FORMATS, FORMATS, ROUNDING_MODES, SCALE_MODES, register
from support.backend_calls import dopts, matmul_codes, qopts

REF = NumpyBackend()
ALL_FORMATS = pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
GPU_OK, GPU_REASON = cupy_backend.probe()
needs_gpu = pytest.mark.skipif(not GPU_OK, reason=f"needs a CUDA GPU and CuPy: {GPU_REASON}")


def test_detection_reports_a_reason_and_is_cached():
    ok, reason = cupy_backend.CupyBackend.available()
    assert isinstance(ok, bool) and reason
    assert cupy_backend.probe() is cupy_backend.probe()  # probed once, the same answer
    if "cupy" not in sys.modules:
        assert not ok and "CuPy" in reason


def test_matmul_kernel_option_is_validated(monkeypatch):
    assert cupy_backend.CupyBackend(matmul_kernel="mma").matmul_kernel == "mma"
    monkeypatch.setenv("MXARRAY_CUDA_MATMUL", "simple")
    assert cupy_backend.CupyBackend().matmul_kernel == "simple"
    assert cupy_backend.CupyBackend(matmul_kernel="auto").matmul_kernel == "auto"
    with pytest.raises(ValueError, match="matmul_kernel"):
        cupy_backend.CupyBackend(matmul_kernel="fast")
    monkeypatch.setenv("MXARRAY_CUDA_MATMUL", "tensor")
    with pytest.raises(ValueError, match="MXARRAY_CUDA_MATMUL"):
        cupy_backend.CupyBackend()


@pytest.fixture(scope="module")
def gpu():
    return cupy_backend.CupyBackend(matmul_kernel="simple")


@pytest.fixture(scope="module")
def gpu_mma():
    return cupy_backend.CupyBackend(matmul_kernel="mma")


def _host(a):
    import cupy

    return cupy.asnumpy(a)


@pytest.mark.gpu
@needs_gpu
@ALL_FORMATS
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_quantize_bitwise(gpu, fmt, dtype):
    rng = np.random.default_rng(99)
    blocks = np.concatenate([adversarial_blocks(rng, 2000, dtype, fmt),
                             rng.standard_normal((2000, 32)).astype(dtype)])[:-1]  # 3 blocks
    for scale_mode in SCALE_MODES:  # in the last warp (4 blocks of 8 lanes per warp)
        for rounding in ROUNDING_MODES:
            seed = 2**63 + 12345 if rounding == "stochastic" else None
            want_c, want_s = REF.quantize_blocks(blocks, qopts(fmt, rounding, scale_mode, seed))
            got_c, got_s = gpu.quantize_blocks(blocks, qopts(fmt, rounding, scale_mode, seed))
            np.testing.assert_array_equal(_host(got_s), want_s)
            np.testing.assert_array_equal(_host(got_c), want_c)


@pytest.mark.gpu
@needs_gpu
@ALL_FORMATS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dequantize_bitwise(gpu, fmt, dtype):
    per_scale = -(-fmt.n_codes // 32)
    codes = np.resize(np.arange(fmt.n_codes, dtype=np.uint8), (256 * per_scale, 32))
    scales = np.repeat(np.arange(256, dtype=np.uint8), per_scale)
    want = REF.dequantize_blocks(codes, scales, dopts(fmt, np.dtype(dtype)))
    got = _host(gpu.dequantize_blocks(codes, scales, dopts(fmt, dtype)))
    bits = np.uint32 if dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.gpu
@needs_gpu
@ALL_FORMATS
def test_pack_unpack_bitwise(gpu, fmt):
    codes = np.random.default_rng(5).integers(0, fmt.n_codes, (3, 40, 64), dtype=np.uint8)
    packed = gpu.pack(codes, fmt)
    np.testing.assert_array_equal(_host(packed), REF.pack(codes, fmt))
    np.testing.assert_array_equal(_host(gpu.unpack(packed, fmt)), codes)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize(
    "fa,fb", [(f, f) for f in FORMATS] + [("mxfp4_e2m1", "mxfp8_e4m3"), ("mxint8", "mxfp6_e2m3")]
)
def test_matmul_simple_kernel(gpu, fa, fb):
    fa, fb = FORMATS[fa], FORMATS[fb]
    rng = np.random.default_rng(17)
    m, n, kb = 33, 19, 7
    a = adversarial_blocks(rng, m * kb, np.float32, fa)
    b = adversarial_blocks(rng, n * kb, np.float32, fb)
    ac, as_ = REF.quantize_blocks(a, qopts(fa, "even", "floor", None))
    bc, bs = REF.quantize_blocks(b, qopts(fb, "even", "floor", None))
    ac, as_ = ac.reshape(1, m, kb, 32), as_.reshape(1, m, kb)
    bc, bs = bc.reshape(1, n, kb, 32), bs.reshape(1, n, kb)
    got = _host(matmul_codes(gpu, ac, as_, fa, bc, bs, fb))[0]
    np.testing.assert_array_equal(got, emulated_matmul(ac[0], as_[0], fa, bc[0], bs[0], fb))
    assert_within_spec_bound(got, ac[0], as_[0], fa, bc[0], bs[0], fb)


def _operands(rng, batch, rows, kb, fmt, adversarial):
    if adversarial:
        x = adversarial_blocks(rng, batch * rows * kb, np.float32, fmt)
        x[np.isinf(x)] = 1.0
    else:
        x = rng.standard_normal((batch * rows * kb, 32)).astype(np.float32)
    c, s = REF.quantize_blocks(x, qopts(fmt, "even", "floor", None))
    return c.reshape(batch, rows, kb, 32), s.reshape(batch, rows, kb)


MMA_SHAPES = [  # (batch, M, N, KB): edge tiles, K of one block, several tiles, a batch
    (1, 33, 19, 7), (2, 130, 129, 1), (1, 257, 300, 9), (3, 128, 128, 2), (1, 1, 1, 1),
]


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("fa,fb", [(f, g) for f in FORMATS for g in FORMATS])
@pytest.mark.parametrize("adversarial", [False, True], ids=["gaussian", "adversarial"])
def test_matmul_mma_kernel(gpu, gpu_mma, fa, fb, adversarial):
    """The tensor-core kernel against the reference (spec bound, NaNs, infinities) and the
    simple kernel, on every format pair; adversarial data hold tiny and huge scales and
    NaN blocks."""
    fa, fb = FORMATS[fa], FORMATS[fb]
    rng = np.random.default_rng(fa.bits * 7 + fb.bits + adversarial)
    for batch, m, n, kb in MMA_SHAPES:
        ac, as_ = _operands(rng, batch, m, kb, fa, adversarial)
        bc, bs = _operands(rng, batch, n, kb, fb, adversarial)
        as_[0, 0, 0] = 0
        bs[0, -1, -1] = 254
        got = _host(matmul_codes(gpu_mma, ac, as_, fa, bc, bs, fb))
        simple = _host(matmul_codes(gpu, ac, as_, fa, bc, bs, fb))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(simple))
        for i in range(batch):
            assert_within_spec_bound(got[i], ac[i], as_[i], fa, bc[i], bs[i], fb)


@pytest.mark.gpu
@needs_gpu
def test_matmul_mma_large_k_and_exact_data(gpu_mma):
    """K = 8192 on Gaussian data within the bound; small integers (exact sums) bitwise."""
    fmt = FORMATS["mxfp8_e4m3"]
    rng = np.random.default_rng(3)
    ac, as_ = _operands(rng, 1, 200, 256, fmt, False)
    bc, bs = _operands(rng, 1, 136, 256, fmt, False)
    got = _host(matmul_codes(gpu_mma, ac, as_, fmt, bc, bs, fmt))[0]
    assert_within_spec_bound(got, ac[0], as_[0], fmt, bc[0], bs[0], fmt)
    x = rng.integers(-8, 9, (1 * 150 * 4, 32)).astype(np.float32)
    y = rng.integers(-8, 9, (1 * 140 * 4, 32)).astype(np.float32)
    ic, is_ = (a.reshape(1, 150, 4, *a.shape[1:]) for a in
               REF.quantize_blocks(x, qopts(FORMATS["mxint8"], "even", "floor", None)))
    jc, js = (a.reshape(1, 140, 4, *a.shape[1:]) for a in
              REF.quantize_blocks(y, qopts(FORMATS["mxint8"], "even", "floor", None)))
    got = _host(matmul_codes(gpu_mma, ic, is_, FORMATS["mxint8"], jc, js, FORMATS["mxint8"]))
    want = matmul_codes(REF, ic, is_, FORMATS["mxint8"], jc, js, FORMATS["mxint8"])
    np.testing.assert_array_equal(got, want)


@pytest.mark.gpu
@needs_gpu
def test_self_check_passes_once_per_device_and_pair():
    """On a working GPU the first-use check accepts the mma kernel, without a warning, and
    its answer is cached."""
    import warnings

    import cupy

    fmt = FORMATS["mxfp4_e2m1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cupy_backend._mma_verified(cupy.cuda.Device().id, fmt, fmt)
    before = cupy_backend._mma_check.cache_info().hits
    cupy_backend._mma_verified(cupy.cuda.Device().id, fmt, fmt)
    assert cupy_backend._mma_check.cache_info().hits == before + 1


# --- the general block formats (MX9, MX6, MX4, NVFP4) and block_ids ----------------------

BLOCK_KERNEL_FORMATS = [BLOCK_FORMATS[n] for n in cupy_backend.BLOCK_KERNEL_FORMATS]
ALL_BLOCK_FORMATS = pytest.mark.parametrize("fmt", BLOCK_KERNEL_FORMATS, ids=str)


def test_supports_names_the_formats_with_kernels():
    assert all(cupy_backend.CupyBackend().supports(f) for f in FORMATS.values())
    assert all(cupy_backend.CupyBackend().supports(f) for f in BLOCK_KERNEL_FORMATS)
    other = BLOCK_FORMATS.get("gpu_test_bfp") or register(
        {"name": "gpu_test_bfp", "block_size": 16, "scale": "e8m0",
         "element": {"kind": "signmag", "bits": 8, "mantissa_bits": 6}})
    assert not cupy_backend.CupyBackend().supports(other)


def _block_data(rng, fmt, dtype, n, tensor_scale):
    if fmt.tensor_scale != "none":
        return two_level_blocks(rng, n, dtype, fmt, tensor_scale)
    return np.concatenate([adversarial_blocks(rng, n, dtype, fmt),
                           rng.standard_normal((n, fmt.block_size)).astype(dtype)])


@pytest.mark.gpu
@needs_gpu
@ALL_BLOCK_FORMATS
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_block_quantize_bitwise(gpu, fmt, dtype):
    rng = np.random.default_rng(1234)
    two_level = fmt.tensor_scale != "none"
    roundings = [r for r in ROUNDING_MODES if not (two_level and r == "stochastic")]
    for tensor_scale in (TENSOR_SCALES if two_level else (None,)):
        blocks = _block_data(rng, fmt, dtype, 1500, tensor_scale)[:-1]  # half a warp left over
        kw = {} if tensor_scale is None else {"tensor_scale": tensor_scale}
        ids = rng.integers(0, 2**64, size=len(blocks), dtype=np.uint64)
        for scale_mode in (("floor",) if two_level else SCALE_MODES):
            for rounding in roundings:
                seed = 2**63 + 777 if rounding == "stochastic" else None
                for block_ids in ((None, ids) if rounding == "stochastic" else (None,)):
                    want = REF.quantize_blocks(blocks, qopts(fmt, rounding, scale_mode, seed, block_ids=block_ids, **kw))
                    got = gpu.quantize_blocks(blocks, qopts(fmt, rounding, scale_mode, seed, block_ids=block_ids, **kw))
                    np.testing.assert_array_equal(_host(got[1]), want[1])
                    np.testing.assert_array_equal(_host(got[0]), want[0])
                    assert _host(got[0]).dtype == fmt.code_dtype


@pytest.mark.gpu
@needs_gpu
@ALL_FORMATS
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_block_ids_bitwise_ocp(gpu, fmt, dtype):
    rng = np.random.default_rng(4321)
    blocks = adversarial_blocks(rng, 999, dtype, fmt)  # not a whole number of warps
    ids = rng.integers(0, 2**64, size=999, dtype=np.uint64)
    want = REF.quantize_blocks(blocks, qopts(fmt, "stochastic", "floor", 5, block_ids=ids))
    got = gpu.quantize_blocks(blocks, qopts(fmt, "stochastic", "floor", 5, block_ids=ids))
    np.testing.assert_array_equal(_host(got[0]), want[0])


@pytest.mark.gpu
@needs_gpu
@ALL_FORMATS
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_misaligned_views_bitwise_ocp(gpu, fmt, dtype):
    """Inputs and codes that start one element past an allocation (too far from a 16-byte
    boundary for the kernels' vector loads) give the reference's bits."""
    import cupy as cp

    rng = np.random.default_rng(77)
    flat = adversarial_blocks(rng, 301, dtype, fmt).reshape(-1)
    view = cp.asarray(flat)[1:1 + 300 * 32].reshape(300, 32)
    want_c, want_s = REF.quantize_blocks(_host(view), qopts(fmt, "stochastic", "rceil", 9))
    got_c, got_s = gpu.quantize_blocks(view, qopts(fmt, "stochastic", "rceil", 9))
    np.testing.assert_array_equal(_host(got_s), want_s)
    np.testing.assert_array_equal(_host(got_c), want_c)
    codes = cp.asarray(np.concatenate([[0], want_c.reshape(-1)]).astype(np.uint8))[1:]
    out = np.float32 if dtype == np.float16 else dtype
    want = REF.dequantize_blocks(want_c, want_s, dopts(fmt, np.dtype(out)))
    got = _host(gpu.dequantize_blocks(codes.reshape(300, 32), cp.asarray(want_s), dopts(fmt, out)))
    bits = np.uint32 if out == np.float32 else np.uint64
    np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.gpu
@needs_gpu
@ALL_BLOCK_FORMATS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_dequantize_bitwise(gpu, fmt, dtype):
    n_codes = 1 << fmt.code_bits
    per_scale = -(-n_codes // fmt.block_size)
    codes = np.resize(np.arange(n_codes, dtype=fmt.code_dtype), (256 * per_scale, fmt.block_size))
    scales = np.repeat(np.arange(256, dtype=np.uint8), per_scale)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for tensor_scale in (TENSOR_SCALES if fmt.tensor_scale != "none" else (None,)):
        kw = {} if tensor_scale is None else {"tensor_scale": tensor_scale}
        want = REF.dequantize_blocks(codes, scales, dopts(fmt, np.dtype(dtype), **kw))
        got = _host(gpu.dequantize_blocks(codes, scales, dopts(fmt, dtype, **kw)))
        np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.gpu
@needs_gpu
@ALL_BLOCK_FORMATS
def test_block_pack_unpack_bitwise(gpu, fmt):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3 * 40 * 4, fmt.block_size)) * np.ldexp(1.0, rng.integers(
        -8, 8, (3 * 40 * 4, fmt.block_size)))
    kw = {"tensor_scale": 1.0} if fmt.tensor_scale != "none" else {}
    codes, _ = REF.quantize_blocks(x, qopts(fmt, "even", "floor", None, **kw))
    codes = codes.reshape(3, 40, 4 * fmt.block_size)
    packed = gpu.pack(codes, fmt)
    np.testing.assert_array_equal(_host(packed), REF.pack(codes, fmt))
    np.testing.assert_array_equal(_host(gpu.unpack(packed, fmt)), codes)


BLOCK_MATMUL_PAIRS = [("mx9", "mx9"), ("mx6", "mx6"), ("mx4", "mx4"), ("nvfp4", "nvfp4"),
                      ("nvfp4", "mx9"), ("mx4", "mxfp8_e4m3"), ("mxfp8_e5m2", "nvfp4")]


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("fa,fb", BLOCK_MATMUL_PAIRS)
def test_block_matmul_kernel(gpu, fa, fb):
    """Adversarial operands (NVFP4 under a tiny and a huge tensor scale), K a multiple of
    neither block size: within [dot_block_formats] of the reference; small integers
    (exact sums): bitwise."""
    fa, fb = BLOCK_FORMATS[fa], BLOCK_FORMATS[fb]
    rng = np.random.default_rng(fa.bits * 5 + fb.bits)
    for ts, integers in ((2.0**-140, False), (TENSOR_SCALES[-2], False), (0.5, True)):
        ta = ts if fa.tensor_scale != "none" else None
        tb = ts if fb.tensor_scale != "none" else None
        ops = []
        for fmt, rows, t in ((fa, 37, ta), (fb, 21, tb)):
            kb = -(-75 // fmt.block_size)
            if integers:
                x = np.zeros((rows, kb * fmt.block_size))
                x[:, :75] = rng.integers(-3, 4, (rows, 75))
                x = x.reshape(-1, fmt.block_size)
            else:
                x = _block_data(rng, fmt, np.float32, rows * kb, t)[: rows * kb]
                x[np.isinf(x)] = 1.0
            kw = {} if t is None else {"tensor_scale": t}
            c, s = REF.quantize_blocks(x.astype(np.float32), qopts(fmt, "even", "floor", None, **kw))
            ops.append((c.reshape(1, rows, kb, fmt.block_size), s.reshape(1, rows, kb)))
        (ac, as_), (bc, bs) = ops
        scales = {k: v for k, v in (("a_tensor_scale", ta), ("b_tensor_scale", tb))
                  if v is not None}
        got = _host(matmul_codes(gpu, ac, as_, fa, bc, bs, fb, **scales))[0]
        assert_within_spec_bound(got, ac[0], as_[0], fa, bc[0], bs[0], fb, **scales)
        if integers:
            want = matmul_codes(REF, ac, as_, fa, bc, bs, fb, **scales)[0]
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


# --- the two-pass path (bf16 fold + cuBLAS GEMM): its own bound, spec [dot_paths.two_pass]

TWO_PASS_PAIRS = [(f, f) for f in FORMATS] + BLOCK_MATMUL_PAIRS + [("mxfp4_e2m1", "mxfp8_e4m3")]


def _on_device(op):
    import cupy as cp

    return cupy_backend.MatmulOperand(cp.asarray(op.packed), cp.asarray(op.scales), op.fmt,
                                      op.tensor_scale)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("fa,fb", TWO_PASS_PAIRS)
def test_two_pass_within_its_bound(monkeypatch, fa, fb):
    """The self-check problem on the two-pass path, with K tiles forced (three GEMMs that
    accumulate), within the two-pass bound; and the first-use self-check passes."""
    import cupy as cp

    gpu = cupy_backend.CupyBackend(matmul_kernel="two-pass")
    a, b = cupy_backend.two_pass_check_problem(BLOCK_FORMATS[fa], BLOCK_FORMATS[fb])
    monkeypatch.setattr(cupy_backend, "TWO_PASS_TILE_BYTES", 64 * 2 * (150 + 140))
    got = _host(gpu.matmul(_on_device(a), _on_device(b), cupy_backend.MatmulOptions()))[0]
    assert cupy_backend.matmul_violations(got, a, b, "two-pass") == []
    assert cupy_backend._two_pass_verified(cp, a.fmt, b.fmt)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("fa,fb", [("mxfp8_e4m3", "mxfp8_e4m3"), ("nvfp4", "mx9")])
def test_two_pass_is_exact_on_small_integers(fa, fb):
    """Integer operands whose every partial sum is exact: bitwise the reference."""
    fa, fb = BLOCK_FORMATS[fa], BLOCK_FORMATS[fb]
    rng = np.random.default_rng(21)
    ops = []
    for fmt, rows in ((fa, 40), (fb, 24)):
        kb = 96 // fmt.block_size
        x = rng.integers(-3, 4, (rows * kb, fmt.block_size)).astype(np.float32)
        kw = {"tensor_scale": 0.5} if fmt.tensor_scale != "none" else {}
        ops.append(REF.quantize(x, qopts(fmt, **kw)) + (fmt, rows, kb, kw.get("tensor_scale")))
    a, b = (cupy_backend.MatmulOperand(p.reshape(1, rows, -1), s.reshape(1, rows, kb), fmt,
                                       None if t is None else np.float32(t))
            for p, s, fmt, rows, kb, t in ops)
    gpu = cupy_backend.CupyBackend(matmul_kernel="two-pass")
    got = _host(gpu.matmul(_on_device(a), _on_device(b), cupy_backend.MatmulOptions()))
    want = REF.matmul(a, b, cupy_backend.MatmulOptions())
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.gpu
@needs_gpu
def test_two_pass_accumulation_model_holds_on_this_gpu():
    """Data a truncating accumulator gets wrong by more than the [dot] bound: within the
    two-pass bound here (the check of the accumulation model on this GPU)."""
    from cuda_adversarial import truncation_adversary

    fmt = FORMATS["mxfp8_e4m3"]
    ops = []
    for vals in truncation_adversary(np.random.default_rng(22), 32, 4096):
        packed, scales = REF.quantize(vals.reshape(-1, 32), qopts(fmt))
        ops.append(cupy_backend.MatmulOperand(packed.reshape(1, 32, -1),
                                              scales.reshape(1, 32, -1), fmt, None))
    gpu = cupy_backend.CupyBackend(matmul_kernel="two-pass")
    got = _host(gpu.matmul(*map(_on_device, ops), cupy_backend.MatmulOptions()))[0]
    assert cupy_backend.matmul_violations(got, *ops, "two-pass") == []


@pytest.mark.gpu
@needs_gpu
def test_two_pass_falls_back_on_nan_scales_and_wide_scales():
    """A NaN scale and scales no shift covers: the exact path's answer (within [dot])."""
    gpu = cupy_backend.CupyBackend(matmul_kernel="two-pass")
    a, b = cupy_backend.two_pass_check_problem(FORMATS["mxfp8_e5m2"], FORMATS["mxfp8_e5m2"])
    for row, byte in ((3, 255), (4, 1)):
        a.scales[0, row, 0] = byte
    a.scales[0, 5, 1] = 254
    got = _host(gpu.matmul(_on_device(a), _on_device(b), cupy_backend.MatmulOptions()))[0]
    assert cupy_backend.matmul_violations(got, a, b, "simple") == []
    assert np.all(np.isnan(got[3]))


@pytest.mark.gpu
@needs_gpu
def test_core_matmul_paths_are_forceable():
    import cupy as cp
    import mxarray

    x = cp.asarray(np.random.default_rng(23).standard_normal((64, 96)), dtype=cp.float32)
    a = mxarray.quantize(x, "mxfp8_e4m3")
    b = mxarray.quantize(x.T.copy(), "mxfp8_e4m3", axis=0)
    results = {p: _host(mxarray.core.matmul(a, b, path=p))
               for p in cupy_backend.CupyBackend.matmul_paths}
    exact = _host(mxarray.core.matmul(a, b, path="simple"))
    for path, got in results.items():
        assert np.allclose(got, exact, rtol=1e-4, atol=1e-6), path
    with pytest.raises(ValueError, match="no matmul path"):
        mxarray.core.matmul(a, b, path="fast")


@pytest.mark.gpu
@needs_gpu
@ALL_FORMATS
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_fused_packed_quantize_and_dequantize_bitwise(gpu, fmt, dtype):
    """The one-thread-per-block kernels (mx_packed.cu) behind quantize/dequantize, every
    mode, from a view one element off the 16-byte loads (copied first)."""
    import cupy as cp

    rng = np.random.default_rng(31)
    with np.errstate(over="ignore"):
        x = np.concatenate([adversarial_blocks(rng, 300, dtype, fmt),
                            (rng.standard_normal((257, 32)) * 10).astype(dtype)])
    flat = cp.empty(x.size + 1, dtype=dtype)
    view = flat[1:].reshape(x.shape)
    view[...] = cp.asarray(x)
    for scale_mode in SCALE_MODES:
        for rounding in ROUNDING_MODES:
            seed = 99 if rounding == "stochastic" else None
            want = REF.quantize(x, qopts(fmt, rounding, scale_mode, seed))
            got = gpu.quantize(view, qopts(fmt, rounding, scale_mode, seed))
            np.testing.assert_array_equal(_host(got[1]), want[1])
            np.testing.assert_array_equal(_host(got[0]), want[0])
    packed, scales = REF.quantize(x, qopts(fmt))
    for out, bits in ((np.float32, np.uint32), (np.float64, np.uint64)):
        want = REF.dequantize(packed, scales, dopts(fmt, out))
        got = _host(gpu.dequantize(cp.asarray(packed), cp.asarray(scales), dopts(fmt, out)))
        np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.gpu
@needs_gpu
@ALL_BLOCK_FORMATS
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_block_fused_packed_quantize_and_dequantize_bitwise(gpu, fmt, dtype):
    """The one-thread-per-block kernels (mx_block_packed.cu) behind quantize/dequantize of
    MX9/MX6/MX4/NVFP4, against the reference's packed bytes and values."""
    import cupy as cp

    rng = np.random.default_rng(32)
    for ts in ((None,) if fmt.tensor_scale == "none" else (0.5, 2.0**-140)):
        x = _block_data(rng, fmt, dtype, 400, ts)
        roundings = [r for r in ROUNDING_MODES if ts is None or r != "stochastic"]
        for rounding in roundings:
            seed = 5 if rounding == "stochastic" else None
            options = qopts(fmt, rounding, "floor", seed, tensor_scale=ts)
            want = REF.quantize(x, options)
            got = gpu.quantize(cp.asarray(x), options)
            np.testing.assert_array_equal(_host(got[1]), want[1])
            np.testing.assert_array_equal(_host(got[0]), want[0])
        for out, bits in ((np.float32, np.uint32), (np.float64, np.uint64)):
            d_opts = dopts(fmt, out, tensor_scale=ts)
            want_v = REF.dequantize(*want, d_opts)
            got_v = _host(gpu.dequantize(cp.asarray(want[0]), cp.asarray(want[1]), d_opts))
            np.testing.assert_array_equal(got_v.view(bits), want_v.view(bits))
