"""Decoding MX tensors in torch (``dequantize_torch``, ``to_torch(dtype=...)``) equals
``mxarray.dequantize`` bit for bit; torch bfloat16 tensors reach NumPy exactly."""

from __future__ import annotations

import numpy as np
import pytest

import mxarray
from mxarray.formats import BLOCK_FORMATS

torch = pytest.importorskip("torch", reason="torch is not installed")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
from mxarray.interop import dequantize_torch, to_torch, torch_to_numpy  # noqa: E402


def _data(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * 8.0
    x.reshape(-1)[3] = np.nan
    x.reshape(-1)[-1] = 1e-30  # far below the block's maximum
    return x.astype(np.float32)


@pytest.mark.parametrize("fmt", list(BLOCK_FORMATS))
@pytest.mark.parametrize("shape, axis", [((3, 70), -1), ((40, 2, 5), 0)])
def test_dequantize_torch_equals_mxarray(fmt, shape, axis):
    a = mxarray.quantize(_data(shape), fmt, axis=axis)
    data, scales = to_torch(a)
    for np_dtype, torch_dtype in [(np.float32, torch.float32), (np.float64, torch.float64)]:
        got = dequantize_torch(data, scales, fmt, dtype=torch_dtype,
                               tensor_scale=a.tensor_scale, length=a.shape[a.block_axis])
        want = np.moveaxis(a.dequantize(np_dtype), a.block_axis, -1)
        np.testing.assert_array_equal(got.numpy(), want)
    raw = dequantize_torch(data, scales.view(torch.uint8), fmt, tensor_scale=a.tensor_scale)
    assert raw.shape[-1] % a.format.block_size == 0  # the padded length by default


@pytest.mark.parametrize("fmt", ["mxfp4_e2m1", "mxfp8_e4m3", "nvfp4", "mx6"])
def test_to_torch_with_a_dtype_is_the_dequantized_tensor(fmt):
    a = mxarray.quantize(_data((5, 3, 40)), fmt, axis=1)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        got = to_torch(a, dtype=dtype)
        want = torch.from_numpy(a.dequantize(np.float64)).to(dtype)  # rounded once
        assert got.dtype == dtype and tuple(got.shape) == a.shape
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


def test_dequantize_torch_checks_its_inputs():
    a = mxarray.quantize(_data((2, 64)), "nvfp4")
    data, scales = to_torch(a)
    with pytest.raises(ValueError, match="per-tensor scale"):
        dequantize_torch(data, scales, "nvfp4")
    with pytest.raises(TypeError, match="floating dtype"):
        dequantize_torch(data, scales, "nvfp4", tensor_scale=a.tensor_scale, dtype=torch.int32)
    with pytest.raises(TypeError, match="data must have dtype"):
        dequantize_torch(data.view(torch.uint8).to(torch.int16), scales, "nvfp4",
                         tensor_scale=1.0)
    with pytest.raises(ValueError, match="do not fit"):
        dequantize_torch(data[:, :3], scales, "nvfp4", tensor_scale=a.tensor_scale)


def test_torch_bfloat16_reaches_numpy_exactly():
    t = torch.randn(4, 64).to(torch.bfloat16)
    x = torch_to_numpy(t)
    assert x.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(x.view(np.int16), t.view(torch.int16).numpy())
    a = mxarray.quantize(x.astype(np.float32), "mxfp8_e4m3")
    b = mxarray.quantize(t.float().numpy(), "mxfp8_e4m3")
    np.testing.assert_array_equal(a.packed, b.packed)


def test_from_torch_refuses_high_bits_in_the_padding():
    # found by test_fuzz_files: a byte 64 after the last mxfp6 element was dropped silently
    from mxarray.interop import from_torch

    a = mxarray.quantize(np.array([1.0], np.float32), "mxfp6_e2m3")
    data, scales = to_torch(a, scale_dtype="uint8")
    data = data.clone()
    data[1] = 64
    with pytest.raises(ValueError, match="padding"):
        from_torch(data, scales, "mxfp6_e2m3", shape=(1,))
