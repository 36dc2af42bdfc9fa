"""mxarray.interop for the block formats beyond OCP: MX9/MX6/MX4 (microexponents, uint16
codes for MX9) and NVFP4 (UE4M3 block scales and a float32 tensor scale)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import mxarray
from mxarray.formats import BLOCK_FORMATS
from mxarray.interop import from_ml_dtypes, from_torch, to_ml_dtypes, to_torch

# (shape, axis): ragged block axes (odd lengths split a microexponent pair), axis not last
CASES = [((70,), 0), ((3, 64), -1), ((5, 45), 1), ((41, 3), 0), ((2, 3, 33), -1)]
SUB_BLOCK = ("mx9", "mx6", "mx4")


def _data(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-8, 8, size=shape))
    x.flat[0] = np.nan  # the first block becomes a NaN block
    return x.astype(np.float32)


def _expand(per_block: np.ndarray, q: mxarray.MXArray) -> np.ndarray:
    rep = np.repeat(per_block, q.format.block_size, axis=q.block_axis)
    return np.take(rep, np.arange(q.shape[q.block_axis]), axis=q.block_axis)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="torch is not installed")


@pytest.mark.parametrize("name", list(BLOCK_FORMATS))
@pytest.mark.parametrize("shape,axis", CASES)
def test_torch_round_trip_of_every_block_format(torch, name, shape, axis) -> None:
    q = mxarray.quantize(_data(shape, 2), name, axis=axis)
    data, scales = to_torch(q)
    back = from_torch(data, scales, name, shape=q.shape, axis=q.block_axis,
                      tensor_scale=q.tensor_scale)
    np.testing.assert_array_equal(back.packed, q.packed)
    np.testing.assert_array_equal(back.scales, q.scales)
    assert back.tensor_scale == q.tensor_scale


@pytest.mark.parametrize("name", SUB_BLOCK)
def test_torch_holds_one_code_per_element_for_microexponent_formats(torch, name) -> None:
    q = mxarray.quantize(_data((3, 40), 3), name)
    data, scales = to_torch(q)
    fmt = q.format
    assert data.dtype == (torch.uint16 if fmt.code_bits > 8 else torch.uint8)
    codes = data.numpy().astype(np.int64)
    assert codes.shape == (3, 48)  # padded to whole blocks of 16
    np.testing.assert_array_equal(codes[:, :40], q.codes())
    # the value of each code: magnitude bits / 2**f, shifted down by its microexponent D
    magnitude = (codes & (fmt.sign_bit - 1)) * 2.0 ** -fmt.mantissa_bits
    sign = np.where(codes & fmt.sign_bit, -1.0, 1.0)
    value = sign * magnitude * 2.0 ** -(codes >> fmt.bits)
    block = np.repeat(scales.view(torch.uint8).numpy().astype(np.int64) - 127, 16, axis=1)
    decoded = np.ldexp(value, block)[:, :40]
    finite = ~np.isnan(q.dequantize(np.float64))
    np.testing.assert_array_equal(decoded[finite], q.dequantize(np.float64)[finite])


def test_from_torch_checks_microexponent_codes(torch) -> None:
    q = mxarray.quantize(_data((2, 32), 4), "mx6")
    data, scales = to_torch(q)
    bad = data.clone()
    bad[1, 0] ^= 1 << 5  # element 0 and 1 of a pair now disagree on their microexponent
    with pytest.raises(ValueError, match="same microexponent"):
        from_torch(bad, scales, "mx6")
    bad = data.clone()
    bad[1, 3] = 64  # beyond the 6 bits of an MX6 code
    with pytest.raises(ValueError, match="out of range"):
        from_torch(bad, scales, "mx6")
    mx9 = mxarray.quantize(_data((2, 32), 4), "mx9")
    data, scales = to_torch(mx9)
    with pytest.raises(TypeError, match="torch.uint16"):
        from_torch(data.to(torch.uint8), scales, "mx9")
    with pytest.raises(ValueError, match="padded length"):
        from_torch(data, scales, "mx9", shape=(2, 10))


def test_nvfp4_scales_are_ue4m3_and_the_tensor_scale_is_kept(torch) -> None:
    q = mxarray.quantize(_data((4, 40), 5), "nvfp4")
    data, scales = to_torch(q)
    assert scales.dtype == torch.float8_e4m3fn  # UE4M3 codes read as E4M3, not E8M0
    np.testing.assert_array_equal(scales.float().numpy(),
                                  mxarray.formats.get_format("nvfp4").scale.decode(
                                      np.moveaxis(q.scales, q.block_axis, -1)))
    with pytest.raises(ValueError, match="tensor_scale"):
        from_torch(data, scales, "nvfp4", shape=q.shape)
    with pytest.raises(TypeError, match="float8_e4m3fn"):
        from_torch(data, scales.view(torch.uint8).view(torch.float8_e8m0fnu), "nvfp4")


@pytest.mark.parametrize("shape,axis", CASES)
def test_nvfp4_ml_dtypes_views_multiply_to_the_dequantized_values(shape, axis) -> None:
    q = mxarray.quantize(_data(shape, 6), "nvfp4", axis=axis)
    elements, scales = to_ml_dtypes(q)
    assert elements.dtype == np.dtype(ml_dtypes.float4_e2m1fn)
    assert scales.dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    # NVFP4 dequantizes as fl32((element * block scale) * tensor scale)
    values = (elements.astype(np.float32) * _expand(scales.astype(np.float32), q)) \
        * np.float32(q.tensor_scale)
    np.testing.assert_array_equal(values, q.dequantize())
    back = from_ml_dtypes(elements, scales, "nvfp4", axis=axis, tensor_scale=q.tensor_scale)
    np.testing.assert_array_equal(back.packed, q.packed)
    np.testing.assert_array_equal(back.scales, q.scales)


@pytest.mark.parametrize("name", SUB_BLOCK)
def test_formats_without_an_ml_dtype_say_what_their_codes_are(name) -> None:
    q = mxarray.quantize(np.ones(16, np.float32), name)
    with pytest.raises(ValueError, match="microexponents") as info:
        to_ml_dtypes(q)
    assert "two's-complement" not in str(info.value)  # they are sign-magnitude


def test_scales_without_a_float8_type_travel_as_uint8(torch) -> None:
    # a registered format with a 5-bit exponent scale: no torch / ml_dtypes type, but the
    # raw bytes still go both ways
    name = "interop_fp4_exp5"
    fmt = BLOCK_FORMATS.get(name) or mxarray.formats.register(
        {"name": name, "block_size": 8, "scale": "exponent", "scale_bits": 5,
         "element": "mxfp4_e2m1"})
    q = mxarray.quantize(_data((3, 20), 7), fmt)
    with pytest.raises(ValueError, match="exp5 scales"):
        to_torch(q)
    data, scales = to_torch(q, scale_dtype="uint8")
    back = from_torch(data, scales, fmt, shape=q.shape)
    np.testing.assert_array_equal(back.packed, q.packed)
    np.testing.assert_array_equal(back.scales, q.scales)
    elements = q.codes().view(ml_dtypes.float4_e2m1fn)
    back = from_ml_dtypes(elements, np.asarray(q.scales), fmt)
    np.testing.assert_array_equal(back.scales, q.scales)
