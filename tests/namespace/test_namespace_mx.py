"""MX dtypes in the array API namespace.

* Every structure-preserving operation returns an MXArray whose codes and scales are
  bitwise those of quantizing its dequantized result afresh (default modes), with the
  block axis where the operation moved it.
* Every fallback returns float32 equal to the same NumPy operation on the dequantized
  float32 values.
* __setitem__ requantizes only the touched blocks.
* Bad input raises the standard's exceptions.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxarray as mx
from mxarray import core

FORMATS = sorted(mx.FORMATS)
SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def mx_inputs(draw, ndim=3):
    """Values of shape (2..3, 3, n) in a random format, blocked along a random axis."""
    fmt = mx.FORMATS[draw(st.sampled_from(FORMATS))]
    axis = draw(st.integers(0, ndim - 1))
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    shape[axis] = draw(st.sampled_from([32, 64, 40, 1]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(shape) * 2.0 ** rng.integers(-8, 8, shape)).astype(np.float32)
    special = draw(st.sampled_from([None, np.nan, np.inf, -0.0, 0.0]))
    if special is not None:
        values.flat[draw(st.integers(0, values.size - 1))] = special
    return mx.asarray(values, dtype=fmt, block_axis=axis)


def deq(a):
    return a.dequantize(np.float32)


def assert_keeps_storage(out, expected_values):
    """``out`` is MX and bitwise equal to quantizing ``expected_values`` afresh."""
    assert isinstance(out, mx.MXArray), f"fell back to {type(out).__name__}"
    fresh = mx.quantize(expected_values, out.format, axis=out.block_axis)
    assert out.shape == fresh.shape
    np.testing.assert_array_equal(out.codes(), fresh.codes())
    np.testing.assert_array_equal(out.scales, fresh.scales)


def assert_fallback(out, expected_values):
    """``out`` is a dense Array equal to ``expected_values`` (float32, or bool for
    comparisons; NaN-aware, bitwise)."""
    assert isinstance(out, mx.Array), type(out)
    want = np.asarray(expected_values)
    assert want.dtype in (np.float32, np.bool_)
    assert out.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(out), want, strict=True)


def test_quantize_round_trip_is_idempotent_for_default_modes():
    # The premise of the structural checks: requantizing dequantized values is exact.
    rng = np.random.default_rng(1)
    for fmt in FORMATS:
        a = mx.asarray(rng.standard_normal((4, 70)).astype(np.float32), dtype=mx.FORMATS[fmt])
        assert_keeps_storage(a, deq(a))


# -- structure-preserving operations -------------------------------------------------------

STRUCTURAL = {
    "permute": (lambda a: mx.permute_dims(a, (2, 0, 1)),
                lambda v: np.transpose(v, (2, 0, 1))),
    "mT": (lambda a: a.mT, lambda v: np.swapaxes(v, -1, -2)),
    "matrix_transpose": (lambda a: mx.matrix_transpose(a), lambda v: np.swapaxes(v, -1, -2)),
    "moveaxis": (lambda a: mx.moveaxis(a, 0, -1), lambda v: np.moveaxis(v, 0, -1)),
    "expand_dims": (lambda a: mx.expand_dims(a, axis=1), lambda v: np.expand_dims(v, 1)),
    "broadcast_to": (lambda a: mx.broadcast_to(a, (2,) + a.shape),
                     lambda v: np.broadcast_to(v, (2,) + v.shape)),
    "astype_same": (lambda a: mx.astype(a, a.dtype), lambda v: v),
    "asarray_same": (lambda a: mx.asarray(a), lambda v: v),
    "stack": (lambda a: mx.stack([a, a], axis=1), lambda v: np.stack([v, v], axis=1)),
}


@pytest.mark.parametrize("name", sorted(STRUCTURAL))
@SETTINGS
@given(a=mx_inputs())
def test_structural_ops_keep_storage(name, a):
    op, reference = STRUCTURAL[name]
    assert_keeps_storage(op(a), reference(deq(a)))


def _other_axis(a):
    return next(i for i in range(a.ndim) if i != a.block_axis)


@SETTINGS
@given(a=mx_inputs(), data=st.data())
def test_indexing_other_axes_keeps_storage(a, data):
    ax = _other_axis(a)
    n = a.shape[ax]
    pre = (slice(None),) * ax
    keys = [
        pre + (slice(None, None, -1),),
        pre + (data.draw(st.integers(-n, n - 1)),),
        pre + (slice(data.draw(st.integers(-n, n)), None, data.draw(st.sampled_from([1, 2, -1]))),),
        (None,) + pre + (slice(0, 1),),
        (Ellipsis, None) if a.block_axis != a.ndim - 1 else (None, Ellipsis),
    ]
    for key in keys:
        out = a[key]
        want = deq(a)[key]
        if out.shape[out.block_axis if isinstance(out, mx.MXArray) else 0] == 0 or not want.size:
            continue
        assert_keeps_storage(out, want)
    idx = mx.asarray([n - 1, 0, n - 1])
    assert_keeps_storage(a[pre + (idx,)], deq(a)[pre + (np.asarray([n - 1, 0, n - 1]),)])
    assert_keeps_storage(mx.take(a, idx, axis=ax), np.take(deq(a), [n - 1, 0, n - 1], axis=ax))
    pieces = mx.unstack(a, axis=ax)
    for i, piece in enumerate(pieces):
        assert_keeps_storage(piece, np.take(deq(a), i, axis=ax))


@SETTINGS
@given(a=mx_inputs())
def test_block_aligned_slices_keep_storage(a):
    ax, n = a.block_axis, a.shape[a.block_axis]
    pre = (slice(None),) * ax
    for s in [slice(None), slice(32, None), slice(0, 32), slice(-(n % 32 or 32), None)]:
        start, stop, _ = s.indices(n)
        if stop <= start or start % 32 or (stop != n and stop % 32):
            continue
        assert_keeps_storage(a[pre + (s,)], deq(a)[pre + (s,)])


@SETTINGS
@given(a=mx_inputs())
def test_flip_reshape_squeeze_concat_on_other_axes_keep_storage(a):
    ax = _other_axis(a)
    v = deq(a)
    assert_keeps_storage(mx.flip(a, axis=ax), np.flip(v, ax))
    assert_keeps_storage(mx.concat([a, a], axis=ax), np.concatenate([v, v], axis=ax))
    if a.block_axis == a.ndim - 1:  # merge the two leading axes
        shape = (a.shape[0] * a.shape[1], a.shape[2])
        assert_keeps_storage(mx.reshape(a, shape), v.reshape(shape))
    e = mx.expand_dims(a, axis=0)
    assert_keeps_storage(mx.squeeze(e, axis=0), v)
    if a.shape[a.block_axis] % 32 == 0:
        assert_keeps_storage(mx.concat([a, a], axis=a.block_axis),
                             np.concatenate([v, v], axis=a.block_axis))


def test_block_axis_is_tracked():
    a = mx.asarray(np.ones((2, 3, 64), np.float32), dtype=mx.mxfp8_e4m3)
    assert a.block_axis == 2
    assert mx.permute_dims(a, (2, 0, 1)).block_axis == 0
    assert a.mT.block_axis == 1
    assert mx.expand_dims(a, axis=0).block_axis == 3
    assert mx.stack([a, a], axis=-1).block_axis == 2
    assert a[0].block_axis == 1
    assert "block_axis=0" in repr(mx.permute_dims(a, (2, 0, 1)))


# -- fallbacks ------------------------------------------------------------------------------

FALLBACKS = {
    "flip_block_axis": (lambda a: mx.flip(a, axis=a.block_axis),
                        lambda a, v: np.flip(v, a.block_axis)),
    "flip_all": (lambda a: mx.flip(a), lambda a, v: np.flip(v)),
    "index_block_axis": (lambda a: a[(slice(None),) * a.block_axis + (0,)],
                         lambda a, v: v[(slice(None),) * a.block_axis + (0,)]),
    "unaligned_slice": (lambda a: a[(slice(None),) * a.block_axis + (slice(1, None),)],
                        lambda a, v: v[(slice(None),) * a.block_axis + (slice(1, None),)]),
    "reversed_block_axis": (lambda a: a[(slice(None),) * a.block_axis + (slice(None, None, -1),)],
                            lambda a, v: v[(slice(None),) * a.block_axis
                                           + (slice(None, None, -1),)]),
    "flatten": (lambda a: mx.reshape(mx.concat([a, a], axis=_other_axis(a)), (-1,)),
                lambda a, v: np.concatenate([v, v], axis=_other_axis(a)).reshape(-1)),
    "roll": (lambda a: mx.roll(a, 1, axis=0), lambda a, v: np.roll(v, 1, axis=0)),
    "repeat": (lambda a: mx.repeat(a, 2, axis=0), lambda a, v: np.repeat(v, 2, axis=0)),
    "sin": (lambda a: mx.sin(a), lambda a, v: np.sin(v)),
    "abs": (lambda a: abs(a), lambda a, v: np.abs(v)),
    "neg": (lambda a: -a, lambda a, v: -v),
    "add_scalar": (lambda a: a + 1.5, lambda a, v: v + np.float32(1.5)),
    "rsub_int": (lambda a: 2 - a, lambda a, v: np.float32(2) - v),
    "mul_mx": (lambda a: a * a, lambda a, v: v * v),
    "divide": (lambda a: mx.divide(a, 3), lambda a, v: v / np.float32(3)),
    "less": (lambda a: a < 0.5, lambda a, v: v < np.float32(0.5)),
    "equal_mx": (lambda a: a == a, lambda a, v: v == v),
    "sum": (lambda a: mx.sum(a, axis=0), lambda a, v: np.sum(v, axis=0)),
    "mean": (lambda a: mx.mean(a, axis=-1), lambda a, v: np.mean(v, axis=-1)),
    "max": (lambda a: mx.max(a), lambda a, v: np.max(v)),
    "std": (lambda a: mx.std(a, axis=1), lambda a, v: np.std(v, axis=1)),
    "cumulative_sum": (lambda a: mx.cumulative_sum(a, axis=0),
                       lambda a, v: np.cumsum(v, axis=0)),
    "sort": (lambda a: mx.sort(a, axis=0), lambda a, v: np.sort(v, axis=0)),
    "where": (lambda a: mx.where(a > 0, a, 0.0),
              lambda a, v: np.where(v > 0, v, np.float32(0))),
    "clip": (lambda a: mx.clip(a, -1.0, 1.0), lambda a, v: np.clip(v, -1, 1)),
    "astype_f32": (lambda a: mx.astype(a, mx.float32), lambda a, v: v),
    "asarray_f32": (lambda a: mx.asarray(a, dtype=mx.float32), lambda a, v: v),
    "matmul_unblocked": (lambda a: mx.matmul(mx.astype(a, a.dtype, block_axis=0), a.mT),
                         lambda a, v: np.matmul(
                             deq(mx.astype(a, a.dtype, block_axis=0)), np.swapaxes(v, -1, -2))),
    "concat_mixed": (lambda a: mx.concat([a, mx.asarray(deq(a))], axis=0),
                     lambda a, v: np.concatenate([v, v], axis=0)),
}


@pytest.mark.parametrize("name", sorted(FALLBACKS))
@SETTINGS
@given(a=mx_inputs())
def test_fallbacks_equal_the_float32_operation(name, a):
    op, reference = FALLBACKS[name]
    with np.errstate(all="ignore"):
        want = reference(a, deq(a))
    assert_fallback(op(a), want)


def test_numpy_asarray_gives_dequantized_float32():
    a = mx.asarray(np.linspace(-3, 3, 40, dtype=np.float32), dtype=mx.mxfp6_e2m3)
    np.testing.assert_array_equal(np.asarray(a), a.dequantize())
    assert np.asarray(a).dtype == np.float32


def test_promotion_table():
    a = mx.asarray(np.ones((2, 32), np.float32), dtype=mx.mxfp4_e2m1)
    b = mx.asarray(np.ones((2, 32), np.float32), dtype=mx.mxint8)
    assert (a + b).dtype == mx.float32
    assert (a + mx.ones((2, 32), dtype=mx.float32)).dtype == mx.float32
    assert (a + mx.ones((2, 32), dtype=mx.float64)).dtype == mx.float64
    assert (a * 2).dtype == mx.float32 and (a * 0.5).dtype == mx.float32
    assert (a + 1j).dtype == mx.complex64
    for bad in (mx.ones((2, 32), dtype=mx.int32), mx.ones((2, 32), dtype=mx.bool), True):
        with pytest.raises(TypeError):
            a + bad
    assert mx.astype(a, mx.float64).dtype == mx.float64


# -- linear algebra ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp4_e2m1", "mxint8"])
def test_mx_matmul_vecdot_tensordot_use_the_mx_dot_product(fmt):
    rng = np.random.default_rng(7)
    f = mx.FORMATS[fmt]
    a = mx.asarray(rng.standard_normal((3, 70)).astype(np.float32), dtype=f)
    b = mx.asarray(rng.standard_normal((70, 4)).astype(np.float32), dtype=f, block_axis=0)
    want = core.matmul(a, b)
    np.testing.assert_array_equal(np.asarray(mx.matmul(a, b)), want)
    np.testing.assert_array_equal(np.asarray(a @ b), want)
    np.testing.assert_array_equal(np.asarray(mx.tensordot(a, b, axes=1)), want)
    exact = deq(a).astype(np.float64) @ deq(b).astype(np.float64)
    np.testing.assert_allclose(np.asarray(mx.matmul(a, b)), exact, rtol=1e-5, atol=1e-5)
    c = mx.asarray(rng.standard_normal((3, 70)).astype(np.float32), dtype=f)
    dots = mx.vecdot(a, c)
    assert isinstance(dots, mx.Array) and dots.dtype == mx.float32
    np.testing.assert_array_equal(np.asarray(dots),
                                  np.diagonal(core.matmul(a, c.mT)))


# -- __setitem__ ------------------------------------------------------------------------------

@SETTINGS
@given(a=mx_inputs(), data=st.data())
def test_setitem_requantizes_only_touched_blocks(a, data):
    ax = a.block_axis
    n = a.shape[ax]
    before_scales = a.scales.copy()
    i = data.draw(st.integers(0, n - 1))
    value = data.draw(st.sampled_from([0.0, 3.0, -1e6, 1e-6]))
    key = (slice(None),) * ax + (i,)
    expected = deq(a)
    expected[key] = value
    a[key] = value
    assert_keeps_storage(a, expected)
    block = i // 32
    untouched = [b for b in range(a.scales.shape[ax]) if b != block]
    np.testing.assert_array_equal(np.take(a.scales, untouched, axis=ax),
                                  np.take(before_scales, untouched, axis=ax))


def test_setitem_with_arrays_and_inplace_operators():
    v = np.arange(64, dtype=np.float32).reshape(2, 32) / 8
    a = mx.asarray(v, dtype=mx.mxfp8_e4m3)
    a[1, ...] = mx.zeros((32,), dtype=mx.float32)
    expected = deq(mx.asarray(v, dtype=mx.mxfp8_e4m3))
    expected[1] = 0
    assert_keeps_storage(a, expected)
    a += 1
    assert isinstance(a, mx.MXArray)
    assert_keeps_storage(a, expected + 1)


# -- NumPy habits ---------------------------------------------------------------------------

def test_numpy_style_methods_call_the_namespace_functions():
    v = np.random.default_rng(11).standard_normal((2, 3, 64)).astype(np.float32)
    q = mx.asarray(v, dtype=mx.mxfp8_e4m3)
    for name in ["sum", "mean", "max", "min", "prod", "std", "var", "any", "all"]:
        got, want = getattr(q, name)(axis=-1), getattr(mx, name)(q, axis=-1)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert float(q.sum()) == float(mx.sum(q))
    kept = q.reshape(6, 64)                    # the block axis stays whole: MX storage
    assert isinstance(kept, mx.MXArray) and kept.shape == (6, 64)
    assert q.reshape((2, 192)).shape == (2, 192)
    dense = q.astype(mx.float32)
    assert isinstance(dense, mx.Array)
    np.testing.assert_array_equal(np.asarray(dense), deq(q))
    assert q.tolist() == deq(q).tolist()
    c = q.copy()
    assert isinstance(c, mx.MXArray) and not np.shares_memory(c.packed, q.packed)
    np.testing.assert_array_equal(c.packed, q.packed)
    c[0, 0, 0] = 100.0
    np.testing.assert_array_equal(deq(q), deq(mx.asarray(v, dtype=mx.mxfp8_e4m3)))


@pytest.mark.parametrize("call", [np.sum, np.mean, np.max, np.std, np.shape, np.ravel,
                                  lambda q: np.concatenate([q, q]),
                                  lambda q: np.where(q > 0, q, 0)],
                         ids=["sum", "mean", "max", "std", "shape", "ravel", "concatenate",
                              "where"])
def test_numpy_functions_all_refuse_mx_arrays_naming_the_conversion(call):
    q = mx.asarray(np.ones((2, 64), np.float32), dtype=mx.mxfp4_e2m1)
    with pytest.raises(TypeError, match=r"numpy\.asarray\(q\)"):
        call(q)
    np.testing.assert_array_equal(np.asarray(q), deq(q))  # the conversion they name
    with pytest.raises(TypeError):
        np.exp(q)                                          # ufuncs refuse too


# -- creation with MX dtypes ---------------------------------------------------------------

def test_creation_functions_with_mx_dtype():
    z = mx.zeros((2, 40), dtype=mx.mxfp4_e2m1)
    assert isinstance(z, mx.MXArray) and z.shape == (2, 40) and not np.any(deq(z))
    o = mx.ones_like(z)
    assert isinstance(o, mx.MXArray) and np.all(deq(o) == 1)
    r = mx.arange(40, dtype=mx.mxfp8_e5m2)
    assert_keeps_storage(r, np.arange(40, dtype=np.float32))
    q = mx.asarray([[1, 2, 3]], dtype="mxint8", rounding="nearest", scale_mode="ceil")
    assert (q.rounding, q.scale_mode) == ("nearest", "ceil")
    t = mx.astype(mx.asarray(np.ones((64, 2), np.float32)), mx.mxfp6_e3m2, block_axis=0)
    assert t.block_axis == 0


# -- bad input ------------------------------------------------------------------------------

def test_bad_input_raises_like_the_standard():
    a = mx.asarray(np.ones((2, 64), np.float32), dtype=mx.mxfp8_e4m3)
    for call in (lambda: mx.bitwise_and(a, 1), lambda: mx.logical_not(a),
                 lambda: a & a, lambda: ~a,
                 lambda: a.__setitem__((0, 0), 1j), lambda: a + np.ones(64),
                 lambda: mx.from_dlpack(a), lambda: bool(a),
                 lambda: mx.asarray([True, False], dtype=mx.mxfp4_e2m1),
                 lambda: a.__setitem__((0, 0), mx.asarray([1], dtype=mx.int32)),
                 lambda: mx.finfo(mx.mxfp4_e2m1), lambda: mx.iinfo(mx.mxint8)):
        with pytest.raises(TypeError):
            call()
    for call in (lambda: a[2], lambda: a[0, 64], lambda: mx.arange(3)[a],
                 lambda: a.__setitem__((5, 0), 1.0),
                 lambda: mx.take(a, mx.asarray([3]), axis=0)):
        with pytest.raises(IndexError):
            call()
    for call in (lambda: mx.asarray(np.ones(4), dtype=mx.mxint8, copy=False),
                 lambda: a.to_device("tpu:0"), lambda: mx.reshape(a, (-1,), copy=False),
                 lambda: a.T.T.mT[None].T):
        with pytest.raises(ValueError):
            call()


def test_docs_example_runs_unchanged_on_three_kinds_of_array():
    def rms_normalize(x):
        xp = x.__array_namespace__()
        return x / xp.sqrt(xp.mean(x * x, axis=-1, keepdims=True))

    values = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    q = mx.asarray(values, dtype=mx.mxfp8_e4m3)
    on_numpy = rms_normalize(deq(q))
    on_dense = rms_normalize(mx.asarray(deq(q)))
    on_mx = rms_normalize(q)
    np.testing.assert_array_equal(np.asarray(on_dense), on_numpy)
    np.testing.assert_array_equal(np.asarray(on_mx), on_numpy)
