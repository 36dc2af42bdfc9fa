"""Storage: byte packing, block axes, padding, shapes, from_parts and nbytes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import mxarray
from support import oracle
from support import strategies as mxst

BLOCK = mxarray.BLOCK_SIZE
NAMES = mxst.FORMAT_NAMES
REF = mxarray.get_backend("numpy")


def q_numpy(x, name, **kw) -> mxarray.MXArray:
    return mxarray.quantize(x, name, backend="numpy", **kw)


# --- byte layouts -------------------------------------------------------------------------


def _hand_pack(codes: list[int], bits: int) -> list[int]:
    """The spec's layouts, written out with Python integers."""
    if bits == 8:
        return list(codes)
    if bits == 4:  # element 2i in the low nibble, 2i+1 in the high nibble
        return [codes[i] | (codes[i + 1] << 4) for i in range(0, len(codes), 2)]
    assert bits == 6  # four elements in a 24-bit little-endian word, element i at bits 6i..
    out = []
    for i in range(0, len(codes), 4):
        word = sum(c << (6 * j) for j, c in enumerate(codes[i : i + 4]))
        out += [word & 0xFF, (word >> 8) & 0xFF, word >> 16]
    return out


def test_hand_packing_examples() -> None:
    assert _hand_pack([0x1, 0x2], 4) == [0x21]
    assert _hand_pack([0x3F, 0, 0, 0], 6) == [0x3F, 0, 0]
    assert _hand_pack([0, 0x3F, 0, 0], 6) == [0xC0, 0x0F, 0]
    assert _hand_pack([0, 0, 0, 0x3F], 6) == [0, 0, 0xFC]


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_packing_matches_the_spec_layout_and_is_a_bijection(name, data) -> None:
    fmt = mxarray.get_format(name)
    n_rows = data.draw(st.integers(1, 3))
    codes = data.draw(st.lists(st.integers(0, fmt.n_codes - 1), min_size=n_rows * 2 * BLOCK,
                               max_size=n_rows * 2 * BLOCK))
    arr = np.array(codes, dtype=np.uint8).reshape(n_rows, 2 * BLOCK)
    packed = REF.pack(arr, fmt)
    want = np.array([_hand_pack(row, fmt.bits) for row in arr.tolist()], dtype=np.uint8)
    assert packed.dtype == np.uint8 and np.array_equal(packed, want)
    assert np.array_equal(REF.unpack(packed, fmt), arr)
    raw = np.array(data.draw(st.lists(st.integers(0, 255), min_size=want.size,
                                      max_size=want.size)), dtype=np.uint8).reshape(want.shape)
    assert np.array_equal(REF.pack(REF.unpack(raw, fmt), fmt), raw)  # every byte pattern


@pytest.mark.parametrize("name", NAMES)
def test_quantized_packed_bytes_follow_the_layout(name) -> None:
    x = np.linspace(-5, 5, 3 * 2 * BLOCK).reshape(3, 2 * BLOCK)
    q = q_numpy(x, name)
    bits = mxarray.get_format(name).bits
    want = [_hand_pack(row, bits) for row in q.codes().tolist()]
    assert q.packed.tolist() == want


# --- shapes, axes, strides ----------------------------------------------------------------


def _oracle_codes(x: np.ndarray, name: str, axis: int, rounding: str, seed) -> tuple:
    """Codes and scales of ``x`` block by block from the exact model, canonical indexing."""
    moved = np.moveaxis(x.astype(np.float64), axis, -1)
    lead, length = moved.shape[:-1], moved.shape[-1]
    nb = -(-length // BLOCK)
    codes = np.zeros(moved.shape, dtype=np.uint8)
    scales = np.zeros(lead + (nb,), dtype=np.uint8)
    for r, idx in enumerate(np.ndindex(*lead)):
        row = moved[idx].tolist()
        for j in range(nb):
            s, c = oracle.quantize_block(row[j * BLOCK : (j + 1) * BLOCK], name, rounding,
                                         "floor", seed, (r * nb + j) * BLOCK)
            scales[idx + (j,)] = s
            codes[idx + (slice(j * BLOCK, j * BLOCK + len(c)),)] = c
    return np.moveaxis(codes, -1, axis), np.moveaxis(scales, -1, axis)


@given(data=st.data(), name=st.sampled_from(NAMES),
       rounding=st.sampled_from(["even", "stochastic"]), sa=mxst.shapes_and_axes(3, 40))
def test_every_shape_and_axis_matches_the_blockwise_model(data, name, rounding, sa) -> None:
    shape, axis = sa
    x = data.draw(mxst.arrays(name, shape))
    q = q_numpy(x, name, axis=axis, rounding=rounding, seed=77)
    ax = axis % len(shape)
    assert q.shape == shape and q.ndim == len(shape) and q.block_axis == ax
    want_scales_shape = shape[:ax] + (math.ceil(shape[ax] / BLOCK),) + shape[ax + 1 :]
    assert q.scales.shape == want_scales_shape and q.scales.dtype == np.uint8
    assert q.codes().shape == shape and q.codes().dtype == np.uint8
    lead = shape[:ax] + shape[ax + 1 :]
    fmt = q.format
    padded = math.ceil(shape[ax] / BLOCK) * BLOCK
    assert q.packed.shape == lead + (padded * fmt.bits // 8,)
    if x.size <= 1500:
        codes, scales = _oracle_codes(x, name, ax, rounding, 77)
        assert np.array_equal(q.codes(), codes) and np.array_equal(q.scales, scales)
    d = mxarray.dequantize(q, np.float64)
    assert d.shape == shape and d.flags.c_contiguous


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data(), rounding=st.sampled_from(mxst.ROUNDINGS))
def test_strided_and_reversed_inputs_equal_their_contiguous_copy(name, data, rounding) -> None:
    base = data.draw(mxst.arrays(name, (6, 2 * BLOCK + 7, 3)))
    views = [base[:, ::2], base[::-1, ::-3], np.asfortranarray(base), base.transpose(2, 0, 1),
             base[..., 1]]
    for view in views:
        for axis in range(-view.ndim, view.ndim):
            q = q_numpy(view, name, axis=axis, rounding=rounding, seed=5)
            ref = q_numpy(np.ascontiguousarray(view), name, axis=axis, rounding=rounding, seed=5)
            assert np.array_equal(q.packed, ref.packed) and np.array_equal(q.scales, ref.scales)


@given(data=st.data(), name=st.sampled_from(NAMES), sa=mxst.shapes_and_axes(3, 40),
       rounding=st.sampled_from(mxst.ROUNDINGS), scale_mode=st.sampled_from(mxst.SCALE_MODES))
def test_zero_padding_never_changes_a_result(data, name, sa, rounding, scale_mode) -> None:
    shape, axis = sa
    x = data.draw(mxst.arrays(name, shape))
    ax = axis % len(shape)
    extra = (-shape[ax]) % BLOCK
    if rounding != "stochastic":  # whole extra blocks shift the stochastic element indices
        extra += data.draw(st.sampled_from([0, 0, BLOCK]))
    widths = [(0, 0)] * len(shape)
    widths[ax] = (0, extra)
    padded = np.pad(x, widths)
    q = q_numpy(x, name, axis=axis, rounding=rounding, scale_mode=scale_mode, seed=8)
    p = q_numpy(padded, name, axis=axis, rounding=rounding, scale_mode=scale_mode, seed=8)
    real = tuple(slice(0, n) for n in shape)
    nb = q.scales.shape[ax]
    assert np.array_equal(p.codes()[real], q.codes())
    assert np.array_equal(np.take(p.scales, range(nb), axis=ax), q.scales)
    if extra >= BLOCK:  # whole padding blocks are zero blocks: scale byte 0
        assert (np.take(p.scales, range(nb, p.scales.shape[ax]), axis=ax) == 0).all()


@pytest.mark.parametrize("shape, axis", [((1,), 0), ((5, 1), -1), ((1, 1, 1), 1), ((33,), -1),
                                         ((2, 31), 0), ((3, 65), -2), ((2, 3, 4), -3)])
def test_small_and_unit_lengths(shape, axis) -> None:
    x = (np.arange(np.prod(shape), dtype=np.float64).reshape(shape) - 7) / 3
    for name in NAMES:
        q = q_numpy(x, name, axis=axis)
        codes, scales = _oracle_codes(x, name, axis % len(shape), "even", None)
        assert np.array_equal(q.codes(), codes) and np.array_equal(q.scales, scales)


@pytest.mark.parametrize("shape, axis", [((0, 40), -1), ((3, 0, 5), 2), ((0,) * 2 + (7,), -1),
                                         ((4, 0), 0)])
def test_empty_non_block_axes(shape, axis) -> None:
    x = np.zeros(shape)
    ax = axis % len(shape)
    for name in NAMES:
        q = q_numpy(x, name, axis=axis)
        assert q.shape == shape and q.codes().shape == shape
        assert q.scales.shape == shape[:ax] + (math.ceil(shape[ax] / BLOCK),) + shape[ax + 1 :]
        assert mxarray.dequantize(q).shape == shape


# --- from_parts and nbytes ----------------------------------------------------------------


@given(data=st.data(), name=st.sampled_from(NAMES), sa=mxst.shapes_and_axes(3, 40))
def test_from_parts_round_trips_both_layouts(data, name, sa) -> None:
    shape, axis = sa
    q = q_numpy(data.draw(mxst.arrays(name, shape)), name, axis=axis)
    for layout, payload in (("packed", q.packed), ("codes", q.codes())):
        r = mxarray.MXArray.from_parts(payload, q.scales, name, shape, axis=axis, layout=layout)
        assert r.format is q.format and r.shape == shape and r.block_axis == q.block_axis
        assert np.array_equal(r.packed, q.packed) and np.array_equal(r.scales, q.scales)
        assert np.array_equal(r.codes(), q.codes())
        assert np.array_equal(mxarray.dequantize(r), mxarray.dequantize(q), equal_nan=True)
    assert not q.packed.flags.writeable and not q.scales.flags.writeable


def test_from_parts_infers_an_unambiguous_layout() -> None:
    q = q_numpy(np.linspace(-1, 1, 3 * 70).reshape(3, 70), "mxfp4_e2m1")
    r = mxarray.MXArray.from_parts(q.packed, q.scales, "mxfp4_e2m1", (3, 70))
    s = mxarray.MXArray.from_parts(q.codes(), q.scales, "mxfp4_e2m1", (3, 70))
    assert np.array_equal(r.packed, q.packed) and np.array_equal(s.packed, q.packed)


@pytest.mark.parametrize("name", NAMES)
def test_nbytes_is_packed_plus_scales(name) -> None:
    fmt = mxarray.get_format(name)
    big = q_numpy(np.ones((64, 1024), dtype=np.float32), name)
    assert big.nbytes == big.packed.nbytes + big.scales.nbytes
    assert big.nbytes * 8 / big.size == fmt.bits + 8 / BLOCK
    odd = q_numpy(np.ones((3, 33)), name)
    assert odd.nbytes == 3 * 64 * fmt.bits // 8 + 3 * 2


def test_mxfp4_costs_4_25_bits_per_element() -> None:
    q = q_numpy(np.random.default_rng(0).standard_normal((256, 4096)), "mxfp4_e2m1")
    assert q.nbytes * 8 / q.size == 4.25


@pytest.mark.parametrize("shape, axis", [((0, 40), -1), ((3, 0, 65), 0)])
def test_from_parts_with_empty_non_block_axes(shape, axis) -> None:
    q = q_numpy(np.zeros(shape), "mxfp6_e3m2", axis=axis)
    for layout, payload in (("packed", q.packed), ("codes", q.codes())):
        r = mxarray.MXArray.from_parts(payload, q.scales, "mxfp6_e3m2", shape, axis=axis,
                                       layout=layout)
        assert r.shape == shape and r.codes().shape == shape
