"""``matmul`` of a dense array and an MX matrix blocked along K, decoded tile by tile.

The result must be the dense product of the dequantized values (within float32 GEMM
rounding: only the split of the GEMM differs), every MX element decoded once, no tile
larger than the budget, and every other pairing must keep the general path's rules.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mxarray as mx
from mxarray import core
from mxarray._namespace import _mixed_product

FORMATS = sorted(mx.FORMATS)
# The tile_bytes fixture sets a constant for the whole test: sharing it between the
# generated inputs is what is wanted.
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _assert_gemm_close(got, x, w):
    """``got == x @ w`` within the rounding of a float dot product of length K."""
    exact = np.matmul(x.astype(np.float64), w.astype(np.float64))
    bound = np.matmul(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64))
    eps = np.finfo(got.dtype).eps
    assert got.dtype == np.result_type(x.dtype, w.dtype)
    assert got.shape == exact.shape
    assert np.all(np.abs(got - exact) <= (x.shape[-1] + 2) * eps * bound)


def _values(rng, shape):
    return (rng.standard_normal(shape) * 2.0 ** rng.integers(-6, 6, shape)).astype(np.float32)


@pytest.fixture(params=[64, _mixed_product.TILE_BYTES], ids=["row-tiles", "default-tiles"])
def tile_bytes(request, monkeypatch):
    monkeypatch.setattr(_mixed_product, "TILE_BYTES", request.param)
    return request.param


@SETTINGS
@given(fmt=st.sampled_from(FORMATS), k=st.sampled_from([1, 31, 32, 40, 64, 100]),
       n=st.integers(1, 40), lead=st.lists(st.integers(1, 3), max_size=2),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_dense_times_mx_weights_is_the_dense_product(tile_bytes, fmt, k, n, lead, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _values(rng, tuple(lead) + (k,)).astype(dtype)
    w = mx.asarray(_values(rng, (k, n)), dtype=fmt, block_axis=0)
    got = np.asarray(mx.matmul(mx.asarray(x), w))
    _assert_gemm_close(got, x, w.dequantize())
    np.testing.assert_array_equal(np.asarray(mx.asarray(x) @ w), got)


@SETTINGS
@given(fmt=st.sampled_from(FORMATS), k=st.sampled_from([1, 33, 64]), m=st.integers(1, 40),
       n=st.sampled_from([None, 1, 7]), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1))
def test_mx_times_dense_is_the_dense_product(tile_bytes, fmt, k, m, n, dtype, seed):
    rng = np.random.default_rng(seed)
    a = mx.asarray(_values(rng, (m, k)), dtype=fmt)
    y = _values(rng, (k,) if n is None else (k, n)).astype(dtype)
    got = np.asarray(mx.matmul(a, mx.asarray(y)))
    _assert_gemm_close(got, a.dequantize(), y)


def test_each_element_is_decoded_once_within_the_tile_budget(monkeypatch):
    """A (K, N) weight is decoded as runs of its canonical rows (W.T's rows): together
    every row once, each run within TILE_BYTES."""
    monkeypatch.setattr(_mixed_product, "TILE_BYTES", 3 * 64 * 4)  # three rows of K = 64
    decoded = []
    real = core.dequantize_rows

    def spy(a, first, count, dtype=np.float32, **kwargs):
        assert kwargs.get("calling_thread") is True  # decodes alternate with GEMMs
        decoded.append((first, count))
        return real(a, first, count, dtype, **kwargs)

    monkeypatch.setattr(core, "dequantize_rows", spy)
    rng = np.random.default_rng(0)
    w = mx.asarray(_values(rng, (64, 10)), dtype="mxfp4_e2m1", block_axis=0)
    mx.matmul(mx.asarray(_values(rng, (5, 64))), w)
    blocks_per_row = 2
    assert [count for _, count in decoded] == [3 * blocks_per_row] * 3 + [blocks_per_row]
    assert [first for first, _ in decoded] == [0, 6, 12, 18]


@pytest.mark.parametrize("dense_dtype", [np.int32, np.complex64, np.bool_])
def test_other_dtypes_keep_the_general_rules(dense_dtype):
    """Integer, complex and boolean operands take the general path: the same result or
    error as with the MX operand dequantized first."""
    rng = np.random.default_rng(1)
    w = mx.asarray(_values(rng, (32, 4)), dtype="mxfp8_e4m3", block_axis=0)
    x = mx.asarray(np.ones((2, 32), dtype=dense_dtype))
    try:
        want = np.asarray(mx.matmul(x, mx.asarray(w.dequantize())))
    except TypeError:
        with pytest.raises(TypeError):
            mx.matmul(x, w)
    else:
        np.testing.assert_array_equal(np.asarray(mx.matmul(x, w)), want)


def test_shape_mismatch_raises_as_for_dense_operands():
    w = mx.asarray(np.ones((32, 4), np.float32), dtype="mxfp8_e4m3", block_axis=0)
    with pytest.raises(ValueError):
        mx.matmul(mx.asarray(np.ones((2, 31), np.float32)), w)


def test_weights_blocked_along_n_take_the_dense_path(monkeypatch):
    """Blocked along the free axis, the tiles would not be runs of canonical rows: the
    weight is dequantized whole (no tile decode) and the product is unchanged."""
    monkeypatch.setattr(core, "dequantize_rows", None)  # would fail if the tile path ran
    rng = np.random.default_rng(2)
    w = mx.asarray(_values(rng, (32, 40)), dtype="mxfp6_e2m3", block_axis=1)
    x = _values(rng, (3, 32))
    got = np.asarray(mx.matmul(mx.asarray(x), w))
    _assert_gemm_close(got, x, w.dequantize())


@SETTINGS
@given(fmt=st.sampled_from(FORMATS), k=st.sampled_from([1, 40, 64]), seed=st.integers(0, 2**32 - 1),
       dense_axis=st.integers(0, 2), mx_first=st.booleans())
def test_tensordot_with_one_mx_matrix_is_the_dense_product(tile_bytes, fmt, k, seed, dense_axis,
                                                           mx_first):
    """tensordot over the MX matrix's block axis takes the tile path (no whole decode) and
    gives the dense tensordot of the dequantized values."""
    rng = np.random.default_rng(seed)
    shape = [2, 3, 4]
    shape[dense_axis] = k
    y = _values(rng, tuple(shape))
    if mx_first:
        a = mx.asarray(_values(rng, (5, k)), dtype=fmt)
        got = np.asarray(mx.tensordot(a, mx.asarray(y), axes=([1], [dense_axis])))
        want = np.tensordot(a.dequantize(), y, axes=([1], [dense_axis]))
    else:
        a = mx.asarray(_values(rng, (k, 5)), dtype=fmt, block_axis=0)
        got = np.asarray(mx.tensordot(mx.asarray(y), a, axes=([dense_axis], [0])))
        want = np.tensordot(y, a.dequantize(), axes=([dense_axis], [0]))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max(initial=1))


def test_tensordot_takes_the_tile_path(monkeypatch):
    monkeypatch.setattr(mx.MXArray, "dequantize", None)  # the whole-array decode would fail
    a = mx.asarray(np.ones((64, 3), np.float32), dtype="mx6", block_axis=0)
    got = np.asarray(mx.tensordot(mx.asarray(np.ones((2, 64), np.float32)), a, axes=1))
    np.testing.assert_array_equal(got, np.full((2, 3), 64.0, np.float32))
