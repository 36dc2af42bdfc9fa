"""The parts of the 2024.12 standard added for issue 18, against array_api_strict and the
standard's text: the fft extension, the linalg keywords, cross broadcasting, finfo/iinfo
fields, can_cast and promotion, NumPy scalars as Python scalars, and the warning for MX
products that miss the MX dot product."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import test_namespace_dense as suite
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mxarray as mx
from mxarray import core

xps = suite.xps
compare = suite.compare
FLOATS = ["float32", "float64", "complex64", "complex128"]


def _finite(dtype, shape):
    """Arrays of ``dtype`` with moderate finite values (no overflow in transforms)."""
    kind = np.dtype(dtype).kind
    if kind == "b":
        return hnp.arrays(np.bool_, shape)
    width = 32 if dtype in ("float32", "complex64") else 64
    if kind in "iu":
        return hnp.arrays(np.dtype(dtype), shape, elements=st.integers(0, 100))
    real = st.floats(-1e3, 1e3, width=width)
    elements = st.complex_numbers(max_magnitude=1e3, width=2 * width) if kind == "c" else real
    return hnp.arrays(np.dtype(dtype), shape, elements=elements)


# -- fft -------------------------------------------------------------------------------

ONE_AXIS = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"]
MANY_AXES = ["fftn", "ifftn", "rfftn", "irfftn"]


@pytest.mark.parametrize("name", ONE_AXIS)
@suite.SETTINGS
@given(data=st.data())
def test_fft_one_axis(name, data):
    dtype = data.draw(st.sampled_from(suite.DTYPES))
    x = data.draw(_finite(dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0,
                                                  max_side=6)))
    x_ndim = x.ndim
    axis = data.draw(st.integers(-x_ndim, x_ndim - 1))
    n = data.draw(st.one_of(st.none(), st.integers(0, 8)))
    norm = data.draw(st.sampled_from(["backward", "ortho", "forward"]))
    compare(lambda ns, a: getattr(ns.fft, name)(a, n=n, axis=axis, norm=norm), x)


@pytest.mark.parametrize("name", MANY_AXES)
@suite.SETTINGS
@given(data=st.data())
def test_fft_many_axes(name, data):
    dtype = data.draw(st.sampled_from(FLOATS))
    x = data.draw(_finite(dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1,
                                                  max_side=5)))
    axes = data.draw(st.one_of(st.none(), st.permutations(range(x.ndim)).map(
        lambda p: p[:max(1, len(p) - 1)])))
    s = None if axes is None else data.draw(st.one_of(
        st.none(), st.lists(st.integers(1, 6), min_size=len(axes), max_size=len(axes))))
    norm = data.draw(st.sampled_from(["backward", "ortho", "forward"]))
    compare(lambda ns, a: getattr(ns.fft, name)(a, s=s, axes=axes, norm=norm), x)


@pytest.mark.parametrize("name", ["fftshift", "ifftshift"])
@suite.SETTINGS
@given(data=st.data())
def test_fft_shifts(name, data):
    dtype = data.draw(st.sampled_from(suite.DTYPES))
    x = data.draw(suite.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)))
    axes = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1),
                               st.lists(st.integers(0, x.ndim - 1), min_size=1,
                                        max_size=x.ndim, unique=True)))
    compare(lambda ns, a: getattr(ns.fft, name)(a, axes=axes), x)


@pytest.mark.parametrize("name", ["fftfreq", "rfftfreq"])
@pytest.mark.parametrize("n", [1, 2, 7, 8])
@pytest.mark.parametrize("dtype", [None, "float32", "float64"])
def test_fft_frequencies(name, n, dtype):
    compare(lambda ns: getattr(ns.fft, name)(
        n, d=0.25, dtype=None if dtype is None else getattr(ns, dtype)))


def test_fft_bad_arguments_raise():
    x = mx.asarray([1.0, 2.0, 3.0], dtype=mx.complex64)
    with pytest.raises(ValueError, match="norm"):
        mx.fft.fft(x, norm="both")
    with pytest.raises(ValueError, match="n must be"):
        mx.fft.fft(x, n=0)
    with pytest.raises(TypeError, match="complex"):
        mx.fft.fft(mx.asarray([1.0]))
    with pytest.raises(ValueError, match="dtype"):
        mx.fft.fftfreq(4, dtype=mx.int32)
    with pytest.raises(ValueError, match="at least one dimension"):
        mx.fft.rfft(mx.asarray(1.0))  # NumPy (and array_api_strict): IndexError


def test_fft_of_mx_arrays_uses_the_dequantized_values():
    values = np.random.default_rng(5).standard_normal((3, 64)).astype(np.float32)
    q = mx.asarray(values, dtype=mx.mxfp6_e3m2)
    want = mx.fft.rfft(mx.asarray(np.asarray(q)), axis=0)
    got = mx.fft.rfft(q, axis=0)
    assert got.dtype == mx.complex64
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    with pytest.raises(TypeError):
        mx.fft.fft(q)  # complex input only, as for float32


# -- linalg keywords and cross ---------------------------------------------------------

def _well_conditioned(rng, shape, dtype):
    a = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def _spd(rng, n, dtype):
    a = _well_conditioned(rng, (2, n, n), dtype)
    return (a @ np.conj(np.swapaxes(a, -1, -2)) + n * np.eye(n)).astype(dtype)


LINALG_CALLS = {
    "cholesky_lower": lambda ns, a: ns.linalg.cholesky(a),
    "cholesky_upper": lambda ns, a: ns.linalg.cholesky(a, upper=True),
    "qr_reduced": lambda ns, a: ns.linalg.qr(a),
    "qr_complete": lambda ns, a: ns.linalg.qr(a, mode="complete"),
    "svd_full": lambda ns, a: ns.linalg.svd(a),
    "svd_thin": lambda ns, a: ns.linalg.svd(a, full_matrices=False),
    "pinv": lambda ns, a: ns.linalg.pinv(a),
    "pinv_rtol": lambda ns, a: ns.linalg.pinv(a, rtol=0.5),
    "pinv_rtol_array": lambda ns, a: ns.linalg.pinv(a, rtol=ns.asarray([0.1, 0.9])),
    "matrix_rank": lambda ns, a: ns.linalg.matrix_rank(a),
    "matrix_rank_rtol": lambda ns, a: ns.linalg.matrix_rank(a, rtol=0.5),
    "matrix_norm_fro": lambda ns, a: ns.linalg.matrix_norm(a),
    "matrix_norm_keep": lambda ns, a: ns.linalg.matrix_norm(a, keepdims=True, ord=1),
    "matrix_norm_inf": lambda ns, a: ns.linalg.matrix_norm(a, ord=float("inf")),
    "matrix_norm_nuc": lambda ns, a: ns.linalg.matrix_norm(a, ord="nuc"),
    "matrix_norm_2": lambda ns, a: ns.linalg.matrix_norm(a, ord=-2),
    "det": lambda ns, a: ns.linalg.det(a),
    "slogdet": lambda ns, a: ns.linalg.slogdet(a),
    "inv": lambda ns, a: ns.linalg.inv(a),
    "eigh_values": lambda ns, a: ns.linalg.eigh(a)[0],
    "svdvals": lambda ns, a: ns.linalg.svdvals(a),
    "solve": lambda ns, a: ns.linalg.solve(a, a),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(LINALG_CALLS))
def test_linalg_keywords_match_the_reference(name, dtype):
    rng = np.random.default_rng(sorted(LINALG_CALLS).index(name))
    a = _spd(rng, 3, dtype)
    compare(LINALG_CALLS[name], a)


def test_linalg_keywords_are_checked():
    a = mx.eye(3)
    with pytest.raises(ValueError, match="mode"):
        mx.linalg.qr(a, mode="r")
    with pytest.raises(TypeError):
        mx.linalg.pinv(a, rtol="big")
    with pytest.raises(TypeError):
        mx.linalg.svd(a, compute_uv=False)  # a NumPy keyword, not the standard's


@pytest.mark.parametrize("shapes", [((2, 1, 3), (4, 3)), ((3,), (5, 3)), ((4, 3), (3,)),
                                    ((2, 3, 4), (3, 4)), ((1, 3), (2, 1, 3))])
def test_cross_broadcasts_operands_of_different_ranks(shapes):
    rng = np.random.default_rng(len(shapes[0]))
    a, b = (rng.standard_normal(s) for s in shapes)
    axis = -2 if shapes[0][-1] == 4 else -1
    compare(lambda ns, x, y: ns.linalg.cross(x, y, axis=axis), a, b)


def test_cross_rejects_bad_axes():
    a = mx.ones((3, 3))
    for axis in (0, 1, -3):
        with pytest.raises(ValueError, match="axis"):
            mx.linalg.cross(a, mx.ones((3,)), axis=axis)
    with pytest.raises(ValueError):
        mx.linalg.cross(mx.ones((2, 3)), mx.ones((4, 3)))


# -- finfo, iinfo, can_cast, promotion -------------------------------------------------

@pytest.mark.parametrize("name", FLOATS)
def test_finfo_fields_are_python_numbers(name):
    ours, theirs = mx.finfo(getattr(mx, name)), xps.finfo(getattr(xps, name))
    assert type(ours.bits) is int and ours.bits == theirs.bits
    for field in ("eps", "max", "min", "smallest_normal"):
        value = getattr(ours, field)
        assert type(value) is float and value == getattr(theirs, field)
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("array_api_strict.")
    assert mx.finfo(mx.ones(2, dtype=getattr(mx, name))) == ours


@pytest.mark.parametrize("name", ["int8", "int16", "int32", "int64", "uint8", "uint16",
                                  "uint32", "uint64"])
def test_iinfo_fields_are_python_ints(name):
    ours, theirs = mx.iinfo(getattr(mx, name)), xps.iinfo(getattr(xps, name))
    for field in ("bits", "max", "min"):
        value = getattr(ours, field)
        assert type(value) is int and value == getattr(theirs, field)
    assert ours.dtype == getattr(mx, name)


@pytest.mark.parametrize("pair", list(itertools.product(suite.DTYPES, repeat=2)))
def test_can_cast_and_promotion_match_the_standard(pair):
    ours = [getattr(mx, n) for n in pair]
    theirs = [getattr(xps, n) for n in pair]
    assert mx.can_cast(*ours) == xps.can_cast(*theirs)
    _same_result_type(ours, theirs)


def _same_result_type(ours, theirs):
    """result_type of both namespaces: the same dtype name, or the same exception."""
    try:
        want = str(xps.result_type(*theirs)).removeprefix("array_api_strict.")
    except Exception as exc:
        with pytest.raises(type(exc)):
            mx.result_type(*ours)
        return
    assert str(mx.result_type(*ours)) == want


@pytest.mark.parametrize("name", suite.DTYPES)
@pytest.mark.parametrize("scalar", [True, 1, -1, 2**40, 1.5, 1j])
def test_result_type_with_python_scalars(name, scalar):
    _same_result_type([getattr(mx, name), scalar], [getattr(xps, name), scalar])


# -- NumPy scalars stand for Python scalars --------------------------------------------

NUMPY_SCALARS = [np.bool_(True), np.int8(3), np.int64(-2), np.uint64(7), np.float32(2.5),
                 np.float64(-0.5), np.complex64(1 + 2j), np.uint8(255)]


@pytest.mark.parametrize("op", ["add", "multiply", "subtract", "divide", "less", "equal",
                                "maximum", "pow", "floor_divide", "logical_and"])
@pytest.mark.parametrize("scalar", NUMPY_SCALARS, ids=repr)
@suite.SETTINGS
@given(data=st.data())
def test_numpy_scalars_act_as_the_python_scalars_they_hold(op, scalar, data):
    dtype = data.draw(st.sampled_from(suite.DTYPES))
    x = mx.asarray(data.draw(suite.arrays(dtype)))
    for args in ((x, scalar), (scalar, x)):
        plain = tuple(a.item() if isinstance(a, np.generic) else a for a in args)
        try:
            want = getattr(mx, op)(*plain)
        except Exception as exc:
            with pytest.raises(type(exc)):
                getattr(mx, op)(*args)
            continue
        got = getattr(mx, op)(*args)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_numpy_scalars_in_operators_where_clip_and_full():
    x = mx.asarray([1.0, 4.0], dtype=mx.float32)
    assert (x * np.float32(2)).dtype == mx.float32  # a float32 NumPy scalar stays weak
    assert (np.float32(2) * x).dtype == mx.float32
    assert (x / np.float64(2)).dtype == mx.float32
    x += np.float32(1)
    np.testing.assert_array_equal(np.asarray(x), [2.0, 5.0])
    np.testing.assert_array_equal(np.asarray(mx.where(x > 3, np.float32(0), x)), [2.0, 0.0])
    np.testing.assert_array_equal(np.asarray(mx.clip(x, np.float32(3), None)), [3.0, 5.0])
    assert mx.full((2,), np.int64(3)).dtype == mx.int64
    assert mx.result_type(x, np.float32(1)) == mx.float32
    q = mx.asarray(np.ones((2, 32), np.float32), dtype=mx.mxfp8_e4m3)
    assert (q * np.float32(2)).dtype == mx.float32
    with pytest.raises(TypeError, match="float16"):
        x + np.float16(1)
    with pytest.raises(TypeError):
        mx.asarray([1, 2], dtype=mx.int8) + np.float32(1)  # a float with integers


# -- BlockAxisWarning -------------------------------------------------------------------

def _mx_pair(w_axis):
    rng = np.random.default_rng(9)
    x = mx.asarray(rng.standard_normal((4, 64)).astype(np.float32), dtype=mx.mxfp8_e4m3)
    w = mx.asarray(rng.standard_normal((64, 32)).astype(np.float32), dtype=mx.mxfp8_e4m3,
                   block_axis=w_axis)
    return x, w


def test_matmul_warns_when_the_weights_are_blocked_along_n():
    x, w = _mx_pair(-1)
    with pytest.warns(mx.BlockAxisWarning, match="block_axis=0") as record:
        y = x @ w
    assert record[0].filename == __file__  # attributed to the user's line
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x) @ np.asarray(w))
    with warnings.catch_warnings():
        warnings.simplefilter("error", mx.BlockAxisWarning)
        with pytest.raises(mx.BlockAxisWarning):
            mx.matmul(x, w)
    assert issubclass(mx.BlockAxisWarning, UserWarning)


def test_no_warning_when_blocked_along_k():
    x, w = _mx_pair(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mx.BlockAxisWarning)
        y = x @ w
        mx.vecdot(x, x)
        mx.tensordot(x, w, axes=([1], [0]))
        mx.matmul(mx.asarray(np.asarray(x)), w)  # one MX operand: float32, as documented
    np.testing.assert_array_equal(np.asarray(y), core.matmul(x, w))


def test_vecdot_and_tensordot_warn_too():
    x, w = _mx_pair(-1)
    with pytest.warns(mx.BlockAxisWarning, match="vecdot"):
        mx.vecdot(x, mx.astype(x, x.dtype, block_axis=0), axis=0)
    with pytest.warns(mx.BlockAxisWarning, match="tensordot"):
        mx.tensordot(x, w, axes=([1], [0]))


# -- on a device: no NumPy call on device data ------------------------------------------

DEVICE_CALLS = {
    "rfft": lambda ns, a: ns.fft.rfft(ns.real(a), n=6, norm="ortho"),
    "fftn": lambda ns, a: ns.fft.fftn(a, axes=(0,)),
    "irfftn": lambda ns, a: ns.fft.irfftn(a),
    "hfft": lambda ns, a: ns.fft.hfft(a),
    "fftshift": lambda ns, a: ns.fft.fftshift(a),
    "fftfreq": lambda ns, a: ns.fft.fftfreq(5, d=0.5, device=a.device),
    "floor_divide": lambda ns, a: ns.floor_divide(ns.real(a), ns.imag(a)),
    "pow": lambda ns, a: ns.pow(ns.real(a), 0.5),
    "expm1": lambda ns, a: ns.expm1(a),
    "tanh": lambda ns, a: ns.tanh(a),
    "cross": lambda ns, a: ns.linalg.cross(ns.real(a)[:, :3], ns.imag(a)[:1, :3]),
    "pinv_rtol": lambda ns, a: ns.linalg.pinv(ns.real(a), rtol=ns.asarray(0.5)),
}


@pytest.mark.parametrize("name", sorted(DEVICE_CALLS))
def test_new_functions_compute_on_the_device(name):
    import test_namespace_device as device_suite
    from support.device_stand_in import stand_in

    inf, nan = np.inf, np.nan
    values = np.array([[inf + 2j, -inf + 0j, nan + 0j, 1.0 - 0j],
                       [-0.0 + 3j, inf + nan * 1j, 2.5 - inf * 1j, -inf - 2j]])
    with stand_in() as device:
        device_suite.same_as_host(DEVICE_CALLS[name], values, device=device)
