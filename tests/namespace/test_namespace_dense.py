"""Standard dtypes: mxarray against array_api_strict (the oracle), on the same inputs.

Each test builds the same NumPy data into both namespaces, runs the same call, and asserts
that both raise the same exception class or both give equal dtype, shape and values (NaN
in the same places, signed zeros with the same sign).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mxarray as mx

xps = pytest.importorskip("array_api_strict", reason="needs the optional array_api_strict")
xps.set_array_api_strict_flags(api_version="2024.12")

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64", "complex64", "complex128"]
SETTINGS = settings(max_examples=40, deadline=None)


def _strict_values(r):
    return np.asarray(r._array)


def _check_close_complex(ours, want):
    """Complex products and quotients are not correctly rounded, and NumPy's result depends on
    its inner loop (a broadcast 0-d operand may take a fused multiply-add path, while
    array_api_strict lifts 0-d operands to 1-d): allow a few ulp of the largest magnitude.
    Non-finite values must still match exactly."""
    assert ours.dtype == want.dtype
    finite = np.isfinite(want)
    np.testing.assert_array_equal(ours[~finite], want[~finite])
    scale = float(np.max(np.abs(want[finite]), initial=0.0))
    np.testing.assert_allclose(ours[finite], want[finite], rtol=0,
                               atol=4 * np.finfo(want.dtype).eps * scale)


def _check_same(r_ours, r_strict):
    if isinstance(r_strict, (tuple, list)):
        assert isinstance(r_ours, (tuple, list)) and len(r_ours) == len(r_strict)
        for a, b in zip(r_ours, r_strict):
            _check_same(a, b)
        return
    if isinstance(r_strict, str):
        assert r_ours == r_strict.removeprefix("array_api_strict.")
        return
    if not isinstance(r_strict, xps._array_object.Array):
        assert r_ours == r_strict
        return
    assert isinstance(r_ours, mx.Array), type(r_ours)
    assert str(r_ours.dtype) == str(r_strict.dtype).removeprefix("array_api_strict.")
    assert r_ours.shape == r_strict.shape
    ours, want = np.asarray(r_ours), _strict_values(r_strict)
    if ours.dtype.kind == "c" and not np.array_equal(ours, want, equal_nan=True):
        _check_close_complex(ours, want)
        return
    np.testing.assert_array_equal(ours, want, strict=True)
    if ours.dtype.kind == "f":  # signed zeros (the sign of a NaN means nothing)
        real = ~np.isnan(want)
        np.testing.assert_array_equal(np.signbit(ours[real]), np.signbit(want[real]))


def compare(call, *arrays, **kwargs):
    """Run ``call(namespace, *arrays_in_that_namespace, **kwargs)`` in both and compare."""
    def convert(ns, a):
        return ns.asarray(a) if isinstance(a, np.ndarray) else a
    try:
        want = call(xps, *(convert(xps, a) for a in arrays), **kwargs)
    except Exception as exc:  # the oracle refused: we must refuse the same way
        with pytest.raises(type(exc)):
            call(mx, *(convert(mx, a) for a in arrays), **kwargs)
        return
    got = call(mx, *(convert(mx, a) for a in arrays), **kwargs)
    _check_same(got, want)


def arrays(dtype, shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)):
    return hnp.arrays(np.dtype(dtype), shape)


UNARY = ["abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "bitwise_invert", "ceil",
         "conj", "cos", "cosh", "exp", "expm1", "floor", "imag", "isfinite", "isinf", "isnan",
         "log", "log10", "log1p", "log2", "logical_not", "negative", "positive", "real",
         "reciprocal", "round", "sign", "signbit", "sin", "sinh", "sqrt", "square", "tan",
         "tanh", "trunc"]
BINARY = ["add", "atan2", "bitwise_and", "bitwise_left_shift", "bitwise_or",
          "bitwise_right_shift", "bitwise_xor", "copysign", "divide", "equal", "floor_divide",
          "greater", "greater_equal", "hypot", "less", "less_equal", "logaddexp", "logical_and",
          "logical_or", "logical_xor", "maximum", "minimum", "multiply", "nextafter",
          "not_equal", "pow", "remainder", "subtract"]


# Where NumPy (and so array_api_strict) differs from the standard's special cases, which
# mxarray follows: those inputs (infinities, NaN, -0) are checked against the standard's
# tables in tests/namespace/test_ns18_special_cases.py; here they become +0.
_NUMPY_SPECIAL_CASES_DIFFER = {"floor_divide", "pow", "expm1", "tanh"}


def _ordinary(name, x):
    """``x`` without the special values where the oracle is wrong for ``name``."""
    if name not in _NUMPY_SPECIAL_CASES_DIFFER or x.dtype.kind not in "fc":
        return x
    if x.dtype.kind == "c":
        return np.asarray(_ordinary(name, x.real) + 1j * _ordinary(name, x.imag), dtype=x.dtype)
    return np.where(np.isfinite(x) & (x != 0), x, 0).astype(x.dtype)


@pytest.mark.parametrize("name", UNARY)
@SETTINGS
@given(data=st.data())
def test_unary(name, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    x = _ordinary(name, data.draw(arrays(dtype)))
    compare(lambda ns, a: getattr(ns, name)(a), x)


@pytest.mark.parametrize("name", BINARY)
@SETTINGS
@given(data=st.data())
def test_binary_with_broadcasting_and_promotion(name, data):
    d1 = data.draw(st.sampled_from(DTYPES))
    d2 = data.draw(st.sampled_from([d1, *DTYPES]))
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                         max_side=3)).input_shapes
    x1 = _ordinary(name, data.draw(arrays(d1, shapes[0])))
    x2 = _ordinary(name, data.draw(arrays(d2, shapes[1])))
    if "shift" in name and x2.dtype.kind in "iu":
        # negative shifts raise in both; keep counts small (an array: a 0-d NumPy result
        # would be a NumPy scalar, which mxarray takes as a Python int and the oracle refuses)
        x2 = np.asarray(np.abs(x2) % 8, dtype=d2)
    compare(lambda ns, a, b: getattr(ns, name)(a, b), x1, x2)


SCALARS = [0, 1, -1, 127, 128, 300, -129, 2**63, 1.5, -0.0, math.inf, math.nan, True, 1j]


@pytest.mark.parametrize("op", ["add", "multiply", "subtract", "less", "equal", "divide"])
@SETTINGS
@given(data=st.data())
def test_python_scalars(op, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    x = data.draw(arrays(dtype))
    s = data.draw(st.sampled_from(SCALARS))
    compare(lambda ns, a: getattr(ns, op)(a, s), x)
    compare(lambda ns, a: getattr(ns, op)(s, a), x)


@pytest.mark.parametrize("op", ["__add__", "__sub__", "__mul__", "__truediv__", "__floordiv__",
                                "__mod__", "__pow__", "__and__", "__or__", "__xor__",
                                "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"])
@SETTINGS
@given(data=st.data())
def test_operators_and_inplace(op, data):
    d1 = data.draw(st.sampled_from(DTYPES))
    d2 = data.draw(st.sampled_from([d1, *DTYPES]))
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2,
                                                         max_side=3)).input_shapes
    name = {"__floordiv__": "floor_divide", "__pow__": "pow"}.get(op, op)
    x1 = _ordinary(name, data.draw(arrays(d1, shapes[0])))
    x2 = _ordinary(name, data.draw(arrays(d2, shapes[1])))
    compare(lambda ns, a, b: getattr(a, op)(b), x1, x2)
    iop = "__i" + op[2:]
    if op not in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
        def inplace(ns, a, b):
            getattr(a, iop)(b)
            return a
        compare(inplace, x1, x2)


REDUCTIONS = ["sum", "prod", "max", "min", "mean", "std", "var", "all", "any", "count_nonzero"]


@pytest.mark.parametrize("name", REDUCTIONS)
@SETTINGS
@given(data=st.data())
def test_reductions(name, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    x = data.draw(arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0,
                                                 max_side=4)))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    keepdims = data.draw(st.booleans())
    compare(lambda ns, a: getattr(ns, name)(a, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("name", ["cumulative_sum", "cumulative_prod"])
@SETTINGS
@given(data=st.data())
def test_cumulative(name, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    x = data.draw(arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    incl = data.draw(st.booleans())
    compare(lambda ns, a: getattr(ns, name)(a, axis=axis, include_initial=incl), x)


def _zeros_unsigned(ns, u):
    """Which signed zero ``unique_*`` keeps of -0.0 and 0.0 is unspecified."""
    zero = ns.zeros_like(u)
    return ns.where(u == zero, zero, u)


MANIPULATIONS = {
    "flip": lambda ns, a: ns.flip(a, axis=0),
    "flip_all": lambda ns, a: ns.flip(a),
    "permute": lambda ns, a: ns.permute_dims(a, tuple(reversed(range(a.ndim)))),
    "reshape": lambda ns, a: ns.reshape(a, (-1,)),
    "expand": lambda ns, a: ns.expand_dims(a, axis=-1),
    "squeeze": lambda ns, a: ns.squeeze(a, axis=0),
    "concat": lambda ns, a: ns.concat([a, a], axis=0),
    "concat_none": lambda ns, a: ns.concat([a, a], axis=None),
    "stack": lambda ns, a: ns.stack([a, a], axis=-1),
    "broadcast_to": lambda ns, a: ns.broadcast_to(a, (2,) + a.shape),
    "moveaxis": lambda ns, a: ns.moveaxis(a, 0, -1),
    "roll": lambda ns, a: ns.roll(a, 1, axis=0),
    "repeat": lambda ns, a: ns.repeat(a, 2, axis=0),
    "tile": lambda ns, a: ns.tile(a, (2,)),
    "unstack": lambda ns, a: ns.unstack(a, axis=0),
    "sort": lambda ns, a: ns.sort(a, axis=0),
    "sort_desc": lambda ns, a: ns.sort(a, axis=0, descending=True),
    "argsort": lambda ns, a: ns.argsort(a, axis=0),
    "argsort_desc": lambda ns, a: ns.argsort(a, axis=0, descending=True),
    "argmax": lambda ns, a: ns.argmax(a, axis=0),
    "argmin": lambda ns, a: ns.argmin(a),
    "nonzero": lambda ns, a: ns.nonzero(a),
    "unique_values": lambda ns, a: _zeros_unsigned(ns, ns.sort(ns.unique_values(a))),
    "unique_counts": lambda ns, a: [_zeros_unsigned(ns, r) if i == 0 else r
                                    for i, r in enumerate(ns.unique_counts(a))],
    "diff": lambda ns, a: ns.diff(a, axis=0),
    "getitem_step": lambda ns, a: a[::-2, ...],
    "getitem_ellipsis": lambda ns, a: a[..., None, :1],
    "getitem_int": lambda ns, a: a[-1, ...],
    "getitem_out_of_range": lambda ns, a: a[a.shape[0], ...],
    "astype_f32": lambda ns, a: ns.astype(a, ns.float32),
    "astype_i8": lambda ns, a: ns.astype(a, ns.int8) if a.dtype != ns.float64 else a,
    "matrix_transpose": lambda ns, a: ns.matrix_transpose(a),
    "tril": lambda ns, a: ns.tril(a, k=-1),
    "triu": lambda ns, a: ns.triu(a, k=1),
    "where": lambda ns, a: ns.where(a == a, a, a),
    "clip": lambda ns, a: ns.clip(a, 0, 1),
    "zeros_like": lambda ns, a: ns.zeros_like(a),
    "full_like": lambda ns, a: ns.full_like(a, 1),
    "vecdot": lambda ns, a: ns.vecdot(a, a),
    "matmul": lambda ns, a: ns.matmul(a, a.mT),
    "tensordot": lambda ns, a: ns.tensordot(a, a, axes=1),
    "take": lambda ns, a: ns.take(a, ns.asarray([0, 0]), axis=0),
}


@pytest.mark.parametrize("name", sorted(MANIPULATIONS))
@SETTINGS
@given(data=st.data())
def test_manipulation_search_and_structure(name, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    x = data.draw(arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1,
                                                 max_side=4)))
    compare(MANIPULATIONS[name], x)


CREATION = {
    "arange": lambda ns: ns.arange(1, 10, 3),
    "arange_float": lambda ns: ns.arange(0.5, 2.0, 0.25),
    "arange_dtype": lambda ns: ns.arange(5, dtype=ns.float32),
    "linspace": lambda ns: ns.linspace(0, 1, 7),
    "linspace_noend": lambda ns: ns.linspace(-1, 1, 4, endpoint=False, dtype=ns.float32),
    "eye": lambda ns: ns.eye(3, 4, k=1, dtype=ns.int16),
    "zeros": lambda ns: ns.zeros((2, 0)),
    "ones": lambda ns: ns.ones(3, dtype=ns.bool),
    "full": lambda ns: ns.full((2,), 3),
    "full_complex": lambda ns: ns.full((), 1j),
    "empty_shape": lambda ns: ns.empty((3,)).shape,
    "asarray_nested": lambda ns: ns.asarray([[1, 2], [3, 4]]),
    "asarray_bool": lambda ns: ns.asarray([True, False]),
    "asarray_float_dtype": lambda ns: ns.asarray([1, 2], dtype=ns.float32),
    "asarray_overflow": lambda ns: ns.asarray(2**63),
    "asarray_scalar": lambda ns: ns.asarray(-0.0),
    "meshgrid": lambda ns: ns.meshgrid(ns.asarray([1, 2]), ns.asarray([3, 4, 5])),
    "meshgrid_ij": lambda ns: ns.meshgrid(ns.asarray([1.0]), ns.asarray([3.0, 4.0]),
                                          indexing="ij"),
    "broadcast_arrays": lambda ns: ns.broadcast_arrays(ns.ones((2, 1)), ns.zeros((3,))),
    "result_type": lambda ns: str(ns.result_type(ns.uint8, ns.int8)),
    "result_type_bad": lambda ns: ns.result_type(ns.uint64, ns.int8),
    "can_cast": lambda ns: ns.can_cast(ns.int8, ns.int16),
    "can_cast_no": lambda ns: ns.can_cast(ns.float64, ns.float32),
    "isdtype": lambda ns: ns.isdtype(ns.int8, ("real floating", "signed integer")),
    "finfo": lambda ns: float(ns.finfo(ns.float32).eps),
    "iinfo": lambda ns: int(ns.iinfo(ns.uint16).max),
    "searchsorted": lambda ns: ns.searchsorted(ns.asarray([1, 3, 5]), ns.asarray([0, 3, 6]),
                                               side="right"),
    "take_along_axis": lambda ns: ns.take_along_axis(ns.asarray([[3, 1], [2, 4]]),
                                                     ns.asarray([[1], [0]]), axis=1),
    "linalg_inv": lambda ns: ns.linalg.inv(ns.asarray([[2.0, 1.0], [1.0, 3.0]])),
    "linalg_solve": lambda ns: ns.linalg.solve(ns.asarray([[2.0, 1.0], [1.0, 3.0]]),
                                               ns.asarray([[1.0], [2.0]])),
    "linalg_det": lambda ns: ns.linalg.det(ns.asarray([[2.0, 1.0], [1.0, 3.0]])),
    "linalg_vector_norm": lambda ns: ns.linalg.vector_norm(ns.asarray([3.0, -4.0]), ord=1),
    "linalg_matrix_norm": lambda ns: ns.linalg.matrix_norm(ns.asarray([[3.0, -4.0]])),
    "linalg_outer": lambda ns: ns.linalg.outer(ns.asarray([1, 2]), ns.asarray([3, 4])),
    "linalg_cross": lambda ns: ns.linalg.cross(ns.asarray([1.0, 0, 0]),
                                               ns.asarray([0.0, 1, 0])),
    "linalg_trace": lambda ns: ns.linalg.trace(ns.asarray([[1, 2], [3, 4]], dtype=ns.int8)),
    "linalg_diagonal": lambda ns: ns.linalg.diagonal(ns.asarray([[1, 2], [3, 4]]), offset=1),
    "linalg_matrix_power": lambda ns: ns.linalg.matrix_power(ns.asarray([[1, 1], [0, 1]]), 3),
    "linalg_eigvalsh": lambda ns: ns.linalg.eigvalsh(ns.asarray([[2.0, 0.0], [0.0, 1.0]])),
    "linalg_inv_int": lambda ns: ns.linalg.inv(ns.asarray([[1, 0], [0, 1]])),
    "int_overflow_wraps": lambda ns: ns.asarray([127], dtype=ns.int8) + 1,
    "uint_underflow_wraps": lambda ns: ns.asarray([0], dtype=ns.uint8) - 1,
    "float_to_int_index": lambda ns: ns.ones(3)[ns.asarray([0.0])],
    "bool_mask": lambda ns: ns.arange(4)[ns.asarray([True, False, True, False])],
    "setitem_bad_kind": lambda ns: ns.zeros(3, dtype=ns.int8).__setitem__(0, 1.5),
    "astype_complex_to_real": lambda ns: ns.astype(ns.asarray([1j]), ns.float64),
    "zero_d_bool": lambda ns: bool(ns.asarray(0.0)),
    "nd_bool": lambda ns: bool(ns.asarray([1.0, 2.0])),
    "int_of_nan": lambda ns: int(ns.asarray(math.nan)),
    "T_3d": lambda ns: ns.ones((2, 2, 2)).T,
}


@pytest.mark.parametrize("name", sorted(CREATION))
def test_creation_dtypes_and_edge_cases(name):
    compare(CREATION[name])


def test_copy_semantics():
    base = mx.asarray([1.0, 2.0])
    alias = mx.asarray(base)
    copied = mx.asarray(base, copy=True)
    base[0] = 5.0
    assert float(alias[0]) == 5.0 and float(copied[0]) == 1.0
    with pytest.raises(ValueError):
        mx.asarray(base, dtype=mx.float32, copy=False)
    not_copied = mx.astype(base, mx.float64, copy=False)
    assert not_copied is base


def test_dlpack_round_trip():
    x = mx.asarray([1.5, -2.0], dtype=mx.float32)
    y = mx.from_dlpack(x)
    assert y.dtype == mx.float32 and np.array_equal(np.asarray(y), np.asarray(x))
    z = np.from_dlpack(x)
    assert z.dtype == np.float32
    assert x.to_device(mx.__array_namespace_info__().default_device()) is x
    with pytest.raises(ValueError, match="unsupported device"):
        x.to_device("tpu:0")


def test_foreign_arrays_are_refused():
    x = mx.asarray([1.0, 2.0])
    with pytest.raises(TypeError):
        mx.add(x, np.asarray([1.0, 2.0]))
    with pytest.raises(TypeError):
        np.asarray([1.0, 2.0]) + x
    with pytest.raises(TypeError):
        mx.add(x, xps.asarray([1.0, 2.0]))
    with pytest.raises(IndexError):
        x[[0, 1]]
