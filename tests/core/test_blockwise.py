"""Block-wise element access (mxarray.blockwise, through ``q[key]`` and ``q[key] = v``).

* A read gives exactly the dequantized values NumPy indexing selects, and decodes only
  the blocks that hold them.
* A write gives exactly what requantizing the whole updated array gives in the blocks
  it touches (every rounding, stochastic included, and scale mode; NVFP4 with its
  tensor scale kept) and leaves every other block's bytes alone; it decodes and
  encodes only the touched blocks.
* Storage is written in place when the array alone holds it, and copied first when a
  view, another array or a caller holds it: no one else ever sees a write.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxarray as mx
from mxarray import blockwise, core, layout

FORMATS = sorted(mx.FORMATS)
SETTINGS = settings(max_examples=60, deadline=None)


def _values(shape, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 2.0 ** rng.integers(-6, 6, shape)).astype(np.float32)


@st.composite
def arrays(draw):
    """An MX array of 1 to 3 dimensions, random format, block axis and modes."""
    fmt = mx.get_format(draw(st.sampled_from(FORMATS)))
    ndim = draw(st.integers(1, 3))
    axis = draw(st.integers(0, ndim - 1))
    shape = [draw(st.integers(1, 4)) for _ in range(ndim)]
    shape[axis] = draw(st.sampled_from([1, 31, 32, 70, 2 * fmt.block_size + 5]))
    x = _values(tuple(shape), draw(st.integers(0, 2**16)))
    if draw(st.booleans()):
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf]))
    if fmt.scale.kind == "ue4m3":
        rounding, scale_mode = draw(st.sampled_from(["even", "nearest"])), "floor"
    else:
        rounding = draw(st.sampled_from(["even", "nearest", "toward_zero", "stochastic"]))
        scale_mode = draw(st.sampled_from(["floor", "ceil", "even"]))
    return mx.quantize(x, fmt, axis=axis, rounding=rounding, scale_mode=scale_mode,
                       seed=draw(st.integers(0, 2**64 - 1)) if rounding == "stochastic"
                       else None)


@st.composite
def basic_keys(draw, shape):
    """Integers, slices (any step, negative too), None and at most one Ellipsis."""
    parts = []
    for n in shape:
        if draw(st.booleans()):
            parts.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.none() | st.integers(-n - 2, n + 2)
            step = draw(st.none() | st.sampled_from([1, 2, 3, 33, -1, -2, -40]))
            parts.append(slice(draw(bound), draw(bound), step))
        if draw(st.integers(0, 5)) == 0:
            parts.append(None)
    if draw(st.booleans()):
        start = draw(st.integers(0, len(parts)))
        stop = draw(st.integers(start, len(parts)))
        parts[start:stop] = [Ellipsis]
    return tuple(parts)


class _Counting:
    """Counts the blocks blockwise decodes and encodes."""

    def __init__(self, monkeypatch):
        self.decoded = self.encoded = 0
        decode, encode = blockwise._decode, blockwise._encode

        def counting_decode(a, packed, scales, dtype):
            self.decoded += scales.shape[0]
            return decode(a, packed, scales, dtype)

        def counting_encode(a, rows, *args):
            self.encoded += rows.shape[0]
            return encode(a, rows, *args)

        monkeypatch.setattr(blockwise, "_decode", counting_decode)
        monkeypatch.setattr(blockwise, "_encode", counting_encode)


def _blocks_holding(shape, axis, block_size, key):
    """How many canonical blocks hold an element that ``key`` selects."""
    mask = np.zeros(shape, dtype=bool)
    mask[key] = True
    return int(layout.to_blocks(mask, axis, block_size).any(axis=1).sum())


# -- reading ------------------------------------------------------------------------------------

@SETTINGS
@given(a=arrays(), data=st.data())
def test_read_is_numpy_indexing_of_the_values(a, data):
    key = data.draw(basic_keys(a.shape))
    want = a.dequantize(np.float32)[key]
    got = blockwise.read(a, key)
    assert got.dtype == np.float32 and got.shape == np.shape(want)
    np.testing.assert_array_equal(got, want)
    through_namespace = a[key]
    np.testing.assert_array_equal(np.asarray(through_namespace), want)


@pytest.mark.parametrize("key", [(5, 7), (5, slice(40, 100)), (slice(None), 3),
                                 (slice(2, 9, 3), slice(None, None, -70)), (-1, -1)])
def test_read_decodes_only_the_blocks_that_hold_the_selection(monkeypatch, key):
    a = mx.quantize(_values((16, 256), 1), "mxfp4_e2m1")
    count = _Counting(monkeypatch)
    np.testing.assert_array_equal(a[key], a.dequantize()[key])
    assert count.decoded == _blocks_holding(a.shape, 1, 32, key)


# -- writing ------------------------------------------------------------------------------------

def _expected_after_write(a, key, value):
    """Codes and scales (canonical) of the old whole-array path: requantize the updated
    values, take the touched blocks from it and every other block from ``a``."""
    fmt, axis = a.format, a.block_axis
    values = a.dequantize(np.float64)
    values[key] = value
    mask = np.zeros(a.shape, dtype=bool)
    mask[key] = True
    touched = layout.to_blocks(mask, axis, fmt.block_size).any(axis=1)
    whole = mx.quantize(values, fmt, axis=axis, rounding=a.rounding, scale_mode=a.scale_mode,
                        seed=a.seed, tensor_scale=a.tensor_scale, backend="numpy")
    rows = layout.to_blocks(a.codes(), axis, fmt.block_size)
    scales = a.canonical_scales.reshape(-1).copy()
    rows[touched] = layout.to_blocks(whole.codes(), axis, fmt.block_size)[touched]
    scales[touched] = whole.canonical_scales.reshape(-1)[touched]
    return rows, scales, touched


@SETTINGS
@given(a=arrays(), data=st.data())
def test_write_equals_whole_array_requantization_in_the_touched_blocks(a, data):
    key = data.draw(basic_keys(a.shape))
    shape = np.empty(a.shape)[key].shape
    if data.draw(st.booleans()):
        value = data.draw(st.sampled_from([0.0, -0.0, 3.0, -1e6, 1e-6, 7, np.nan]))
    else:
        value = _values(shape, data.draw(st.integers(0, 2**16)))
    want_rows, want_scales, _ = _expected_after_write(a, key, value)
    a[key] = value if isinstance(value, (int, float)) else mx.asarray(np.asarray(value))
    got_rows = layout.to_blocks(a.codes(), a.block_axis, a.format.block_size)
    np.testing.assert_array_equal(got_rows, want_rows)
    np.testing.assert_array_equal(a.canonical_scales.reshape(-1), want_scales)


@SETTINGS
@given(a=arrays(), data=st.data())
def test_large_writes_go_in_pieces_with_the_same_result(a, data):
    """With the piece budget lowered to two blocks, writes split along a sliced axis
    (value arrays split with them) and give the same bytes as the whole-array path."""
    key = data.draw(basic_keys(a.shape))
    shape = np.empty(a.shape)[key].shape
    value = _values(shape, data.draw(st.integers(0, 2**16))) if data.draw(st.booleans()) \
        else -3.5
    want_rows, want_scales, _ = _expected_after_write(a, key, value)
    with mock.patch.object(core, "_PIECE_ELEMENTS", 2 * a.format.block_size):
        blockwise.write(a, key, value)
    np.testing.assert_array_equal(layout.to_blocks(a.codes(), a.block_axis, a.format.block_size),
                                  want_rows)
    np.testing.assert_array_equal(a.canonical_scales.reshape(-1), want_scales)


@pytest.mark.parametrize("key, value", [(Ellipsis, 0.5), ((slice(None), slice(0, 100)), None),
                                        ((slice(None, None, -1), 3), None)])
def test_a_large_write_decodes_one_piece_at_a_time(monkeypatch, key, value):
    """Budget 256 elements (8 blocks): a write to a (64, 256) mxfp4 array goes in pieces
    of whole rows of at most 8 blocks, each block decoded once."""
    a = mx.quantize(_values((64, 256), 10), "mxfp4_e2m1")
    if value is None:
        value = _values(a.dequantize()[key].shape, 11)
    want_rows, want_scales, touched = _expected_after_write(a, key, value)
    sizes = []
    decode = blockwise._decode

    def recording(a, packed, scales, dtype):
        sizes.append(scales.shape[0])
        return decode(a, packed, scales, dtype)

    monkeypatch.setattr(core, "_PIECE_ELEMENTS", 256)
    monkeypatch.setattr(blockwise, "_decode", recording)
    blockwise.write(a, key, value)
    assert len(sizes) > 1 and max(sizes) <= 256 // 32
    assert sum(sizes) == _blocks_holding(a.shape, 1, 32, key)
    np.testing.assert_array_equal(layout.to_blocks(a.codes(), 1, 32), want_rows)
    np.testing.assert_array_equal(a.canonical_scales.reshape(-1), want_scales)


@pytest.mark.parametrize("key", [(5, 7), (slice(None), 70), (3, slice(None, None, 64)),
                                 (Ellipsis, slice(200, None))])
def test_write_decodes_and_encodes_only_the_touched_blocks(monkeypatch, key):
    a = mx.quantize(_values((16, 256), 2), "mxfp8_e4m3", rounding="stochastic", seed=4)
    want_rows, want_scales, touched = _expected_after_write(a, key, 1.25)
    count = _Counting(monkeypatch)
    a[key] = 1.25
    assert count.encoded == int(touched.sum())
    assert count.decoded == _blocks_holding(a.shape, 1, 32, key)
    np.testing.assert_array_equal(layout.to_blocks(a.codes(), 1, 32), want_rows)
    np.testing.assert_array_equal(a.canonical_scales.reshape(-1), want_scales)


def test_write_with_an_index_array_requantizes_only_the_touched_blocks():
    a = mx.quantize(_values((6, 96), 3), "mxfp6_e2m3")
    rows = np.array([4, 1])
    want_rows, want_scales, touched = _expected_after_write(a, (rows, 40), 2.0)
    a[mx.asarray(rows), 40] = 2.0
    assert touched.sum() == 2
    np.testing.assert_array_equal(layout.to_blocks(a.codes(), 1, 32), want_rows)
    np.testing.assert_array_equal(a.canonical_scales.reshape(-1), want_scales)


@pytest.mark.parametrize("key", [(np.array([-1, 0]), -1), (np.array([], dtype=int), 0),
                                 (slice(None), np.array([69, -70, 3])),
                                 (np.array([[True] * 70, [False] * 70]),)])
def test_index_arrays_and_masks_read_and_write_the_logical_elements(key):
    """Keys that are not basic use the window of every block, cut to the logical length:
    a negative index counts from the last element, not from the padding."""
    a = mx.quantize(_values((2, 70), 9), "mxfp8_e4m3")
    np.testing.assert_array_equal(blockwise.read(a, key), a.dequantize()[key])
    want_rows, want_scales, _ = _expected_after_write(a, key, -2.5)
    blockwise.write(a, key, -2.5)
    np.testing.assert_array_equal(layout.to_blocks(a.codes(), 1, 32), want_rows)
    np.testing.assert_array_equal(a.canonical_scales.reshape(-1), want_scales)


# -- storage: in place when private, copied when shared ------------------------------------

def _address(a):
    return a.packed.__array_interface__["data"][0]


def test_writes_are_in_place_when_the_array_alone_holds_its_storage():
    a = mx.quantize(_values((8, 64), 5), "mxfp4_e2m1")
    where = _address(a)
    a[1, 2] = 3.0
    a[7, 63] = -1.0
    assert _address(a) == where
    assert not a.packed.flags.writeable and not a.canonical_scales.flags.writeable


def test_views_other_arrays_and_held_storage_never_see_a_write():
    a = mx.quantize(_values((8, 64), 6), "mxfp8_e5m2")
    view = a[2:4]                     # keeps MX storage: shares a's bytes
    assert isinstance(view, mx.MXArray)
    held = a.packed
    before_view, before_held = view.dequantize(), held.copy()
    a[2, 0] = 100.0
    np.testing.assert_array_equal(view.dequantize(), before_view)
    np.testing.assert_array_equal(held, before_held)
    assert float(np.asarray(a[2, 0])) == 96.0  # mxfp8_e5m2 near 100
    before_a = a.dequantize()
    view[0, 1] = -7.0
    np.testing.assert_array_equal(a.dequantize(), before_a)
    assert float(np.asarray(view[0, 1])) == -7.0


def test_storage_in_read_only_memory_is_copied_on_the_first_write():
    a = mx.quantize(_values((4, 64), 7), "mxint8")
    frozen = np.frombuffer(a.packed.tobytes(), dtype=np.uint8).reshape(a.packed.shape)
    b = mx.MXArray._wrap(frozen, a.canonical_scales, a.format, a.shape, 1, "even", "floor",
                         None)
    b[0, 0] = 1.0
    assert float(np.asarray(b[0, 0])) == 1.0
    np.testing.assert_array_equal(frozen, a.packed)
