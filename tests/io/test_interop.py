"""mxarray.interop: ml_dtypes views, DLPack export and torch tensors, byte for byte."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import mxarray
from mxarray.interop import dlpack_parts, from_ml_dtypes, from_torch, to_ml_dtypes, to_torch

ALL = tuple(mxarray.FORMATS)
WITH_ML_DTYPE = tuple(n for n in ALL if mxarray.FORMATS[n].ml_dtypes)
WITHOUT_ML_DTYPE = tuple(n for n in ALL if not mxarray.FORMATS[n].ml_dtypes)
# (shape, axis): ragged block axes, block axis not last, 1-D and 3-D
CASES = [((70,), 0), ((3, 64), -1), ((5, 45), 1), ((40, 3), 0), ((2, 3, 33), -1), ((2, 37, 3), 1)]


def _data(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-30, 30, size=shape))
    x.flat[0] = np.nan  # the first block becomes a NaN block
    x.flat[-1] = 0.0
    return x.astype(np.float32)


def _expand(scales: np.ndarray, q: mxarray.MXArray) -> np.ndarray:
    """Repeat per-block values along the block axis to the logical shape."""
    rep = np.repeat(scales, q.format.block_size, axis=q.block_axis)
    return np.take(rep, np.arange(q.shape[q.block_axis]), axis=q.block_axis)


@pytest.mark.parametrize("name", WITH_ML_DTYPE)
@pytest.mark.parametrize("shape,axis", CASES)
def test_ml_dtypes_views_multiply_to_the_dequantized_values(name, shape, axis) -> None:
    q = mxarray.quantize(_data(shape, 1), name, axis=axis)
    elements, scales = to_ml_dtypes(q)
    assert elements.dtype == np.dtype(getattr(ml_dtypes, mxarray.FORMATS[name].ml_dtypes))
    assert scales.dtype == np.dtype(ml_dtypes.float8_e8m0fnu)
    assert elements.shape == q.shape and scales.shape == q.scales.shape
    theirs = elements.astype(np.float64) * _expand(scales.astype(np.float64), q)
    np.testing.assert_array_equal(theirs, q.dequantize(np.float64))


@pytest.mark.parametrize("name", WITH_ML_DTYPE)
@pytest.mark.parametrize("shape,axis", CASES)
def test_from_ml_dtypes_round_trips_the_bytes(name, shape, axis) -> None:
    q = mxarray.quantize(_data(shape, 2), name, axis=axis)
    back = from_ml_dtypes(*to_ml_dtypes(q), name, axis=axis)
    np.testing.assert_array_equal(back.packed, q.packed)
    np.testing.assert_array_equal(back.scales, q.scales)
    assert back.shape == q.shape and back.block_axis == q.block_axis


@pytest.mark.parametrize("name", WITHOUT_ML_DTYPE)
def test_formats_without_an_ml_dtype_are_refused_clearly(name) -> None:
    q = mxarray.quantize(np.ones(32), name)
    with pytest.raises(ValueError, match="no ml_dtypes element type.*int8"):
        to_ml_dtypes(q)


def test_from_ml_dtypes_checks_dtypes() -> None:
    e = np.zeros(32, dtype=ml_dtypes.float8_e5m2)
    s = np.zeros(1, dtype=ml_dtypes.float8_e8m0fnu)
    with pytest.raises(TypeError, match="float8_e4m3fn"):
        from_ml_dtypes(e, s, "mxfp8_e4m3")
    with pytest.raises(TypeError, match="scales"):
        from_ml_dtypes(e, s.astype(np.float32), "mxfp8_e5m2")
    with pytest.raises(TypeError, match="MXArray"):
        to_ml_dtypes(np.zeros(32))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape,axis", CASES[:3])
def test_dlpack_parts_export_the_storage_without_copying(name, shape, axis) -> None:
    q = mxarray.quantize(_data(shape, 3), name, axis=axis)
    packed, scales = dlpack_parts(q)
    got_packed, got_scales = np.from_dlpack(packed), np.from_dlpack(scales)
    assert got_packed.dtype == np.uint8 and got_scales.dtype == np.uint8
    np.testing.assert_array_equal(got_packed, q.packed)
    np.testing.assert_array_equal(got_scales, q.scales)
    assert np.shares_memory(got_packed, q.packed)


# -- torch -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="torch not installed: interop tests need it")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape,axis", CASES)
def test_torch_round_trip_is_byte_exact(torch, name, shape, axis) -> None:
    q = mxarray.quantize(_data(shape, 4), name, axis=axis, scale_mode="rceil")
    data, scales = to_torch(q)
    back = from_torch(data, scales, name, shape=q.shape, axis=axis, rounding=q.rounding,
                      scale_mode=q.scale_mode)
    np.testing.assert_array_equal(back.packed, q.packed)
    np.testing.assert_array_equal(back.scales, q.scales)
    assert (back.shape, back.block_axis, back.scale_mode) == (q.shape, q.block_axis, "rceil")


@pytest.mark.parametrize("name", ALL)
def test_torch_layout_block_axis_innermost(torch, name) -> None:
    q = mxarray.quantize(_data((6, 40), 5), name, axis=0)  # lead (40,), 1 padded block
    fmt = q.format
    data, scales = to_torch(q, scale_dtype="uint8")
    per_byte = 2 if fmt.layout.name == "fp4_nibble" else 1
    assert tuple(data.shape) == (40, fmt.block_size // per_byte)
    assert tuple(scales.shape) == (40, 1) and scales.dtype == torch.uint8
    np.testing.assert_array_equal(scales.numpy(), np.moveaxis(q.scales, 0, -1))


@pytest.mark.parametrize("name", [n for n in ALL if mxarray.FORMATS[n].kind == "float"
                                  and mxarray.FORMATS[n].bits == 8])
def test_torch_decodes_fp8_tensors_to_our_values(torch, name) -> None:
    """torch's own float8 and e8m0 casts give the values mxarray dequantizes to."""
    bs = mxarray.FORMATS[name].block_size
    q = mxarray.quantize(_data((4, 3 * bs), 6), name)
    data, scales = to_torch(q)
    assert data.dtype == getattr(torch, mxarray.FORMATS[name].ml_dtypes)
    assert scales.dtype == torch.float8_e8m0fnu
    values = data.double().reshape(4, 3, bs) * scales.double()[..., None]
    ours = q.dequantize(np.float64).reshape(4, 3, bs)
    np.testing.assert_array_equal(values.numpy(), ours)


def test_torch_fp4_is_x2_with_element_2i_in_the_low_nibble(torch) -> None:
    q = mxarray.quantize(_data((3, 64), 7), "mxfp4_e2m1")
    data, _ = to_torch(q)
    assert data.dtype == torch.float4_e2m1fn_x2
    raw = data.view(torch.uint8)
    codes = q.codes()
    np.testing.assert_array_equal((raw & 0xF).numpy(), codes[:, 0::2])
    np.testing.assert_array_equal((raw >> 4).numpy(), codes[:, 1::2])


@pytest.mark.parametrize("name", [n for n in ALL if mxarray.FORMATS[n].layout.name == "fp6_3byte"])
def test_torch_fp6_is_one_code_per_byte(torch, name) -> None:
    q = mxarray.quantize(_data((2, 64), 8), name)
    data, _ = to_torch(q)
    assert data.dtype == torch.uint8
    np.testing.assert_array_equal(data.numpy(), q.codes())


def test_torch_mxint8_is_int8(torch) -> None:
    q = mxarray.quantize(np.array([-1.0, 0.5, 1.0, -2.0]), "mxint8")
    data, scales = to_torch(q)
    assert data.dtype == torch.int8
    values = data[:4].double() / 64 * scales.double()
    np.testing.assert_array_equal(values.numpy(), q.dequantize(np.float64))


def test_from_torch_default_shape_is_the_padded_canonical_one(torch) -> None:
    q = mxarray.quantize(_data((2, 64), 9), "mxfp8_e4m3")
    back = from_torch(*to_torch(q), "mxfp8_e4m3", axis=0)
    assert back.shape == (64, 2) and back.block_axis == 0
    np.testing.assert_array_equal(back.codes(), q.codes().T)


def test_from_torch_accepts_raw_uint8_bytes(torch) -> None:
    q = mxarray.quantize(_data((2, 50), 10), "mxfp4_e2m1")
    data, scales = to_torch(q, scale_dtype="uint8")
    back = from_torch(data.view(torch.uint8), scales, "mxfp4_e2m1", shape=q.shape)
    np.testing.assert_array_equal(back.packed, q.packed)


def test_from_torch_refuses_bad_input(torch) -> None:
    q = mxarray.quantize(_data((2, 50), 11), "mxfp8_e4m3")
    data, scales = to_torch(q)
    with pytest.raises(TypeError, match="float8_e5m2"):
        from_torch(data, scales, "mxfp8_e5m2")
    with pytest.raises(TypeError, match="scales must have dtype"):
        from_torch(data, scales.view(torch.uint8).float(), "mxfp8_e4m3")
    with pytest.raises(TypeError, match="torch tensors"):
        from_torch(np.zeros((2, 64), dtype=np.uint8), scales, "mxfp8_e4m3")
    with pytest.raises(ValueError, match="padding"):
        from_torch(torch.ones((2, 64), dtype=torch.uint8), scales, "mxfp8_e4m3", shape=(2, 50))
    with pytest.raises(ValueError, match="out of range"):
        from_torch(torch.full((2, 64), 0x40, dtype=torch.uint8), scales, "mxfp6_e3m2")
    with pytest.raises(ValueError, match="scale_dtype"):
        to_torch(q, scale_dtype="float32")
