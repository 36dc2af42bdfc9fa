"""The CuPy backend on a real GPU, bit for bit against the NumPy reference.

Marked ``gpu``: skipped with a reason unless CuPy finds a CUDA driver and device.  The
CPU-only parts (detection never fails, the reason is reported) run everywhere.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cuda_adversarial import adversarial_blocks, emulated_matmul
from mxarray.backends import cupy_backend
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import FORMATS, ROUNDING_MODES, SCALE_MODES

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


@pytest.fixture(scope="module")
def gpu():
    return cupy_backend.CupyBackend()


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
                             rng.standard_normal((2000, 32)).astype(dtype)])
    for scale_mode in SCALE_MODES:
        for rounding in ROUNDING_MODES:
            seed = 2**63 + 12345 if rounding == "stochastic" else None
            want_c, want_s = REF.quantize_blocks(blocks, fmt, rounding, scale_mode, seed)
            got_c, got_s = gpu.quantize_blocks(blocks, fmt, rounding, scale_mode, seed)
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
    want = REF.dequantize_blocks(codes, scales, fmt, np.dtype(dtype))
    got = _host(gpu.dequantize_blocks(codes, scales, fmt, dtype))
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
    ac, as_ = REF.quantize_blocks(a, fa, "even", "floor", None)
    bc, bs = REF.quantize_blocks(b, fb, "even", "floor", None)
    ac, as_ = ac.reshape(1, m, kb, 32), as_.reshape(1, m, kb)
    bc, bs = bc.reshape(1, n, kb, 32), bs.reshape(1, n, kb)
    got = _host(gpu.matmul_blocks(ac, as_, fa, bc, bs, fb))[0]
    np.testing.assert_array_equal(got, emulated_matmul(ac[0], as_[0], fa, bc[0], bs[0], fb))
    da, db = REF._decode_rows(ac[0], as_[0], fa), REF._decode_rows(bc[0], bs[0], fb)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = da @ db.T
        bound = (kb * 32 + 2) * 2.0**-24 * (np.abs(da) @ np.abs(db).T)
    finite = np.isfinite(exact) & np.isfinite(got)
    assert np.all(np.abs(got[finite] - exact[finite]) <= bound[finite] + 2.0**-149)
