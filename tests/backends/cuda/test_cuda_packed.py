"""The fused packed quantize and dequantize kernels (backends/cuda/mx_packed.cu: one thread
per 32-element block, 16-byte loads and stores, 32-bit rounding arithmetic; and
mx_block_packed.cu, the general block formats' dequantize), replayed block by block from
the host build of their header, bit for bit against the NumPy reference with MXCSR
flush-to-zero off and on; and the CuPy backend's launches of them.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from support.backend_calls import dopts, qopts
from support.cuda_adversarial import TENSOR_SCALES, adversarial_blocks, two_level_blocks
from mxarray.backends import cupy_backend
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import BLOCK_FORMATS, FORMATS, ROUNDING_MODES, SCALE_MODES
from test_cuda_host import (FTZ, HOST_BUILD_REASON, NO_HOST_BUILD, _block_struct, _ptr, _struct,
                            host_library)

REF = NumpyBackend()


@pytest.fixture(scope="module")
def lib():
    """The host build of the CUDA headers (tests/backends/cuda/test_cuda_host.py builds it once)."""
    if NO_HOST_BUILD:
        pytest.skip(reason=HOST_BUILD_REASON)
    return host_library()


def host_quantize_packed(lib, blocks, fmt, options, ftz):
    blocks = np.ascontiguousarray(blocks)
    n = blocks.shape[0]
    packed = np.zeros((n, fmt.bytes_per_block), np.uint8)
    scales = np.zeros(n, np.uint8)
    ids = options.block_ids
    lib.mx_host_quantize_packed(
        _ptr(blocks), blocks.dtype.itemsize * 8, n, ctypes.byref(_struct(fmt)),
        ROUNDING_MODES.index(options.rounding), SCALE_MODES.index(options.scale_mode),
        options.seed or 0, None if ids is None else _ptr(ids), _ptr(packed), _ptr(scales), ftz)
    return packed, scales


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_packed_quantize_is_bit_exact(lib, fmt, dtype, ftz):
    rng = np.random.default_rng(fmt.bits * 10 + np.dtype(dtype).itemsize)
    with np.errstate(over="ignore"):
        blocks = np.concatenate([adversarial_blocks(rng, 400, dtype, fmt),
                                 (rng.standard_normal((100, 32)) * 10).astype(dtype)])
    ids = rng.integers(0, 2**64, size=len(blocks), dtype=np.uint64)
    for scale_mode in SCALE_MODES:
        for rounding in ROUNDING_MODES:
            seed = 12345 if rounding == "stochastic" else None
            for block_ids in ((None, ids) if seed is not None else (None,)):
                options = qopts(fmt, rounding, scale_mode, seed, block_ids=block_ids)
                want = REF.quantize(blocks, options)
                got = host_quantize_packed(lib, blocks, fmt, options, ftz)
                np.testing.assert_array_equal(got[1], want[1], err_msg=(scale_mode, rounding))
                np.testing.assert_array_equal(got[0], want[0], err_msg=(scale_mode, rounding))


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_packed_dequantize_is_bit_exact_for_every_code_and_scale(lib, fmt, ftz):
    codes = np.resize(np.arange(1 << fmt.bits, dtype=np.uint8), (256 * 8, 32))
    scales = np.repeat(np.arange(256, dtype=np.uint8), 8)[: codes.shape[0]]
    packed = REF.pack(codes, fmt)
    for dtype, bits in ((np.float32, np.uint32), (np.float64, np.uint64)):
        want = REF.dequantize_blocks(codes, scales, dopts(fmt, dtype))
        got = np.zeros(codes.shape, dtype)
        lib.mx_host_dequantize_packed(_ptr(packed), _ptr(scales), codes.shape[0],
                                      ctypes.byref(_struct(fmt)), 8 * np.dtype(dtype).itemsize,
                                      _ptr(got), ftz)
        np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("name", cupy_backend.BLOCK_KERNEL_FORMATS)
def test_block_packed_dequantize_is_bit_exact_for_every_code_and_scale(lib, name, ftz):
    fmt = BLOCK_FORMATS[name]
    n_codes = 1 << fmt.code_bits
    per_scale = -(-n_codes // fmt.block_size)
    codes = np.resize(np.arange(n_codes, dtype=fmt.code_dtype), (256 * per_scale, fmt.block_size))
    scales = np.repeat(np.arange(256, dtype=np.uint8), per_scale)
    packed = REF.pack(codes, fmt)
    for ts in (TENSOR_SCALES if fmt.tensor_scale != "none" else (None,)):
        ts_bits = int(np.float32(1.0 if ts is None else ts).view(np.uint32))
        for dtype, bits in ((np.float32, np.uint32), (np.float64, np.uint64)):
            want = REF.dequantize_blocks(codes, scales, dopts(fmt, dtype, tensor_scale=ts))
            got = np.zeros(codes.shape, dtype)
            lib.mx_host_block_dequantize_packed(
                _ptr(packed), _ptr(scales), codes.shape[0], ctypes.byref(_struct(fmt)),
                ctypes.byref(_block_struct(fmt)), 8 * np.dtype(dtype).itemsize, ts_bits,
                _ptr(got), ftz)
            np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.parametrize("ftz", FTZ)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name", cupy_backend.BLOCK_KERNEL_FORMATS)
def test_block_packed_quantize_is_bit_exact(lib, name, dtype, ftz):
    fmt = BLOCK_FORMATS[name]
    rng = np.random.default_rng(len(name) * 100 + np.dtype(dtype).itemsize + ftz)
    if fmt.tensor_scale != "none":
        cases = []
        for ts in (1.0, 2.0**-140, 3.0, 2.0**120):
            with np.errstate(over="ignore", invalid="ignore"):
                blocks = two_level_blocks(rng, 300, dtype, fmt, ts)
            cases += [(blocks, qopts(fmt, r, "floor", None, tensor_scale=ts))
                      for r in ROUNDING_MODES if r != "stochastic"]
    else:
        with np.errstate(over="ignore"):
            gauss = rng.standard_normal((99, fmt.block_size)) * 10
            blocks = np.concatenate([adversarial_blocks(rng, 300, dtype, fmt),
                                     gauss.astype(dtype)])
        ids = rng.integers(0, 2**64, size=len(blocks), dtype=np.uint64)
        cases = [(blocks, qopts(fmt, r, m, 7 if r == "stochastic" else None,
                                block_ids=ids if r == "stochastic" else None))
                 for m in SCALE_MODES for r in ROUNDING_MODES]
    for blocks, options in cases:
        want = REF.quantize(blocks, options)
        packed = np.zeros((len(blocks), fmt.bytes_per_block), np.uint8)
        scales = np.zeros(len(blocks), np.uint8)
        ts = options.tensor_scale if options.tensor_scale is not None else np.float32(1.0)
        ids = options.block_ids
        lib.mx_host_block_quantize_packed(
            _ptr(blocks), 8 * blocks.dtype.itemsize, len(blocks), ctypes.byref(_struct(fmt)),
            ctypes.byref(_block_struct(fmt)), ROUNDING_MODES.index(options.rounding),
            SCALE_MODES.index(options.scale_mode), options.seed or 0,
            None if ids is None else _ptr(ids), int(np.float32(ts).view(np.uint32)),
            _ptr(packed), _ptr(scales), ftz)
        np.testing.assert_array_equal(scales, want[1], err_msg=str(options))
        np.testing.assert_array_equal(packed, want[0], err_msg=str(options))


def test_backend_launches_the_packed_kernels(monkeypatch):
    """quantize (float16/32 input, OCP) and dequantize (OCP) launch the packed kernels with
    aligned arrays; float64 input and block formats keep the two-step defaults."""
    launches = []

    class Module:
        def __init__(self, source, formats):
            self.source = source

        def get_function(self, name):
            return lambda grid, block, args: launches.append((self.source, name, grid, args))

    monkeypatch.setattr(cupy_backend, "_module", Module)
    monkeypatch.setattr(cupy_backend.CupyBackend, "xp", property(lambda self: np))
    gpu = cupy_backend.CupyBackend()
    fmt = FORMATS["mxfp6_e3m2"]
    buffer = np.zeros(4 * 32 * 4 + 16, np.uint8)
    start = -buffer.ctypes.data % 16 + 4
    x = buffer[start:start + 4 * 32 * 4].view(np.float32).reshape(4, 32)
    packed, scales = gpu.quantize(x, qopts(fmt, "stochastic", "floor", 3))
    source, name, grid, args = launches[-1]
    assert (source, name) == ("mx_packed.cu", "mx_quantize_packed_f32")
    assert args[0].ctypes.data % 16 == 0 and args[3] == 4 and grid[0] >= 1
    assert packed.shape == (4, fmt.bytes_per_block) and scales.shape == (4,)
    out = gpu.dequantize(packed, scales, dopts(fmt, np.float64))
    assert launches[-1][1] == "mx_dequantize_packed_f64" and out.shape == (4, 32)
    nvfp4 = BLOCK_FORMATS["nvfp4"]
    gpu.quantize(np.ones((3, 16), np.float64), qopts(nvfp4, tensor_scale=0.5))
    assert launches[-1][:2] == ("mx_block_packed.cu", "mx_block_quantize_packed_f64")
    assert launches[-1][3][8] == np.float32(0.5).view(np.uint32)
    out = gpu.dequantize(np.zeros((3, 8), np.uint8), np.zeros(3, np.uint8),
                         dopts(nvfp4, np.float32, tensor_scale=0.5))
    assert launches[-1][:2] == ("mx_block_packed.cu", "mx_block_dequantize_packed_f32")
    assert out.shape == (3, 16) and launches[-1][3][4] == np.float32(0.5).view(np.uint32)
    del launches[:]
    gpu.quantize(x.astype(np.float64), qopts(fmt))  # float64: the codes kernel, then pack
    assert [s for s, *_ in launches] == ["mx_quantize.cu", "mx_pack.cu"]
    # an out= whose packed rows are off the 16-byte stores is filled through a copy
    out = (buffer[start:start + 4 * fmt.bytes_per_block].reshape(4, -1), np.zeros(4, np.uint8))
    got = gpu.quantize(x, qopts(fmt), out=out)
    assert got is out and launches[-1][3][1] is not out[0]
