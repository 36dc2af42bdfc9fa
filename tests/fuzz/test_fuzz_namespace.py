"""Fuzz the array API namespace on MX arrays: indexing, assignment, manipulation,
reductions, element-wise functions, creation and casting.

The reference is NumPy on the dequantized float32 values (what the namespace documents
for MX input: structural operations keep the bytes, everything else computes in
float32).  Each drawn call either gives the reference's shape and bits, or raises one
of the types the namespace documents (TypeError, ValueError, IndexError, as the array
API standard specifies for indices) with a message, exactly when NumPy refuses the same
call or the standard forbids it.  An MX result must also be well-formed storage:
:meth:`MXArray.from_parts` accepts its bytes back.
"""

from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import event, given, strategies as st

import mxarray as mx
from support.hardening import fuzz_settings
from mxarray import MXArray

NAMES = tuple(mx.BLOCK_FORMATS)
REFUSALS = (TypeError, ValueError, IndexError)


@st.composite
def mx_arrays(draw, max_dims: int = 3) -> MXArray:
    """A small MX array: any format, 1..max_dims dims (a 0-size lead dim sometimes),
    any block axis, values spanning several binades with zeros and the odd NaN."""
    name = draw(st.sampled_from(NAMES))
    shape = tuple(draw(st.lists(st.integers(1, 40), min_size=1, max_size=max_dims)))
    axis = draw(st.integers(0, len(shape) - 1))
    if len(shape) > 1 and draw(st.integers(0, 9)) == 0:
        lead = (axis + 1) % len(shape)
        shape = shape[:lead] + (0,) + shape[lead + 1:]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-8, 8, size=shape))
    x[rng.random(shape) < 0.1] = 0.0
    if x.size and draw(st.integers(0, 7)) == 0:
        x.reshape(-1)[rng.integers(x.size)] = np.nan
    rounding = draw(st.sampled_from(["even", "nearest", "stochastic"]))
    if name == "nvfp4":
        rounding = "even"
    return mx.quantize(x, name, axis=axis, rounding=rounding, seed=7, backend="numpy")


def values(a) -> np.ndarray:
    """The float32 values of an MX array, or the data of a dense one."""
    return mx.dequantize(a) if isinstance(a, MXArray) else np.asarray(a)


def check_storage(a: MXArray) -> None:
    """The bytes of an MX result are canonical: from_parts takes them back unchanged."""
    b = MXArray.from_parts(np.ascontiguousarray(a.packed), np.ascontiguousarray(a.scales),
                           a.format, a.shape, axis=a.block_axis, layout="packed",
                           tensor_scale=a.tensor_scale)
    assert np.array_equal(values(b), values(a), equal_nan=True)


def same(got, want: np.ndarray) -> None:
    """``got`` (Array, MXArray or tuple) has the reference's shape, dtype and bits."""
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            same(g, w)
        return
    if isinstance(got, MXArray):
        check_storage(got)
        event("kept MX storage")
    want = np.asarray(want)
    g = values(got)
    assert g.shape == want.shape, (g.shape, want.shape)
    assert g.dtype == want.dtype, (g.dtype, want.dtype)
    assert np.array_equal(g, want, equal_nan=want.dtype.kind in "fc")


def compare(call, reference, *, refuse: type | tuple | None = None) -> None:
    """Run ``call`` and ``reference`` (NumPy); both succeed with equal results, or both
    refuse (``call`` with one of REFUSALS, or ``refuse`` when the standard is stricter)."""
    want, why = None, "the standard's stricter rule"
    if refuse is None:
        try:
            want = reference()
        except (TypeError, ValueError, IndexError) as e:
            want, why = None, e
    try:
        got = call()
    except REFUSALS as e:
        assert want is None, f"refused ({type(e).__name__}: {e}) what NumPy computes"
        assert str(e), "an error without a message"
        if refuse is not None:
            assert isinstance(e, refuse), e
        event(f"refused ({type(e).__name__})")
        return
    assert want is not None, f"accepted what NumPy refuses ({why!r})"
    same(got, want)
    event("computed and compared")


# --- indexing ---------------------------------------------------------------------------------


@st.composite
def index_keys(draw, shape: tuple[int, ...]):
    """``(key for mxarray, key for NumPy, stricter)``: a random basic/advanced index;
    ``stricter`` when the standard forbids what NumPy allows (lists, floats)."""
    n = draw(st.integers(0, len(shape) + 1))
    parts, np_parts, stricter = [], [], False
    dim = 0
    for _ in range(n):
        size = shape[dim] if dim < len(shape) else 1
        kind = draw(st.sampled_from(["int", "int", "slice", "slice", "slice", "none",
                                     "ellipsis", "array", "npint", "oob", "float", "list"]))
        if kind in ("int", "npint"):
            k = draw(st.integers(-size, max(size - 1, -size))) if size else 0
            k = np.int32(k) if kind == "npint" else k
            parts.append(k), np_parts.append(k)
        elif kind == "oob":
            k = draw(st.sampled_from([size, -size - 1, 10**6]))
            parts.append(k), np_parts.append(k)
        elif kind == "slice":
            bound = st.none() | st.integers(-size - 3, size + 3)
            step = draw(st.none() | st.sampled_from([1, 1, 2, 3, -1, -2, 32, 0]))
            s = slice(draw(bound), draw(bound), step)
            parts.append(s), np_parts.append(s)
        elif kind == "none":
            parts.append(None), np_parts.append(None)
            continue
        elif kind == "ellipsis":
            parts.append(Ellipsis), np_parts.append(Ellipsis)
        elif kind == "array":
            idx = np.asarray(draw(st.lists(st.integers(-max(size, 1), max(size, 1) - 1),
                                           min_size=0, max_size=4)), dtype=np.int64)
            parts.append(mx.asarray(idx)), np_parts.append(idx)
        elif kind == "float":
            parts.append(1.0), np_parts.append(1.0)
            stricter = True
        else:
            parts.append([0]), np_parts.append([0])
            stricter = True
        dim += 1
    single = n == 1 and draw(st.booleans())
    key = parts[0] if single else tuple(parts)
    np_key = np_parts[0] if single else tuple(np_parts)
    return key, np_key, stricter


@fuzz_settings(200)
@given(a=mx_arrays(), data=st.data())
def test_getitem_fuzz(a, data) -> None:
    key, np_key, stricter = data.draw(index_keys(a.shape))
    compare(lambda: a[key], lambda: values(a)[np_key], refuse=IndexError if stricter else None)


@fuzz_settings(150)
@given(a=mx_arrays(), data=st.data())
def test_setitem_fuzz(a, data) -> None:
    """Only blocks holding a written element change, and they hold the requantized
    updated values (the rounding and scale mode recorded on the array)."""
    key, np_key, stricter = data.draw(index_keys(a.shape))
    value = data.draw(st.sampled_from([0.0, -1.5, 3e38, float("nan"), 2, 1e-30, True, "x"]))
    before = mx.dequantize(a, np.float64)  # exact: the values setitem requantizes from
    expect = before.copy()
    refused = stricter or isinstance(value, (bool, str))
    try:
        expect[np_key] = value
    except (TypeError, ValueError, IndexError):
        refused = True
    old_packed, old_scales = a.packed.copy(), a.scales.copy()
    a_before = mx.asarray(a, copy=True)
    try:
        a[key] = value
    except REFUSALS as e:
        assert refused, f"refused a valid assignment: {type(e).__name__}: {e}"
        assert np.array_equal(a.packed, old_packed) and np.array_equal(a.scales, old_scales)
        event(f"refused ({type(e).__name__})")
        return
    assert not refused, "accepted an assignment NumPy or the standard refuses"
    check_storage(a)
    mask = np.zeros(a.shape, bool)
    mask[np_key] = True
    fmt, ax = a.format, a.block_axis
    touched = _blocks(mask, ax, fmt.block_size).any(axis=-1)
    kw = {"tensor_scale": a.tensor_scale} if a.tensor_scale is not None else {}
    fresh = mx.quantize(expect, fmt, axis=ax, rounding=a.rounding, scale_mode=a.scale_mode,
                        seed=a.seed, backend="numpy", **kw)
    got_v = _blocks(values(a), ax, fmt.block_size)
    want_v = np.where(touched[..., None], _blocks(values(fresh), ax, fmt.block_size),
                      _blocks(values(a_before), ax, fmt.block_size))
    assert np.array_equal(got_v, want_v, equal_nan=True)
    event("computed and compared")


def _blocks(v: np.ndarray, ax: int, size: int) -> np.ndarray:
    """``v`` as lead + (n_blocks, size), zero-padded along the block axis."""
    moved = np.moveaxis(v, ax, -1)
    pad = -moved.shape[-1] % size
    moved = np.concatenate([moved, np.zeros(moved.shape[:-1] + (pad,), moved.dtype)], -1)
    return moved.reshape(moved.shape[:-1] + (moved.shape[-1] // size, size))


# --- manipulation -------------------------------------------------------------------------------


def axis_values(ndim: int):
    """Axes the standard allows, and ones it does not (out of range, float, bool)."""
    return st.one_of(st.integers(-ndim - 1, ndim), st.sampled_from([1.0, True, np.int64(0)]))


@st.composite
def manipulation(draw, a: MXArray):
    """``(name, mxarray call, NumPy reference, refuse)`` for one manipulation."""
    v, nd = values(a), a.ndim
    ax = draw(axis_values(nd))
    strict = isinstance(ax, (bool, float))  # NumPy may accept what the standard refuses
    refuse = TypeError if strict else None
    op = draw(st.sampled_from(["permute", "reshape", "flip", "squeeze", "expand", "concat",
                               "stack", "broadcast", "moveaxis", "unstack", "roll", "repeat",
                               "tile", "take", "mT", "T"]))
    if op == "permute":
        perm = tuple(draw(st.permutations(range(nd))))
        if draw(st.integers(0, 4)) == 0:
            perm = perm[:-1] + (nd,)
        return op, lambda: mx.permute_dims(a, perm), lambda: np.transpose(v, perm), None
    if op == "reshape":
        shape = tuple(draw(st.permutations(v.shape)))
        if draw(st.booleans()):
            shape = (v.size,) if draw(st.booleans()) else (-1,) + shape[1:]
        if draw(st.integers(0, 5)) == 0:
            shape = shape + (2,)
        return op, lambda: mx.reshape(a, shape), lambda: np.reshape(v, shape), None
    if op == "flip":
        return op, lambda: mx.flip(a, axis=ax), lambda: np.flip(v, operator.index(ax)), refuse
    if op == "squeeze":
        return op, lambda: mx.squeeze(a, axis=ax), lambda: np.squeeze(v, ax), refuse
    if op == "expand":
        return op, lambda: mx.expand_dims(a, axis=ax), lambda: np.expand_dims(v, ax), refuse
    if op == "concat":
        other = draw(st.sampled_from(["self", "sliced", "dense"]))
        b = a if other == "self" else a[..., :1] if other == "sliced" else mx.asarray(v)
        return op, lambda: mx.concat([a, b], axis=ax), \
            lambda: np.concatenate([v, values(b)], axis=ax), refuse
    if op == "stack":
        return op, lambda: mx.stack([a, a], axis=ax), lambda: np.stack([v, v], ax), refuse
    if op == "broadcast":
        shape = (draw(st.integers(0, 3)),) + tuple(v.shape)
        if draw(st.booleans()):
            shape = shape[:-1] + (shape[-1] + 1,)
        return op, lambda: mx.broadcast_to(a, shape), lambda: np.broadcast_to(v, shape), None
    if op == "moveaxis":
        dst = draw(axis_values(nd))
        return op, lambda: mx.moveaxis(a, ax, dst), lambda: np.moveaxis(v, ax, dst), \
            REFUSALS if strict or isinstance(dst, (bool, float)) else None
    if op == "unstack":
        return op, lambda: mx.unstack(a, axis=ax), \
            lambda: tuple(np.moveaxis(v, ax, 0)), refuse
    if op == "roll":
        shift = draw(st.integers(-50, 50))
        return op, lambda: mx.roll(a, shift, axis=ax), lambda: np.roll(v, shift, ax), refuse
    if op == "repeat":
        r = draw(st.integers(0, 3))
        return op, lambda: mx.repeat(a, r, axis=ax), lambda: np.repeat(v, r, ax), refuse
    if op == "tile":
        reps = tuple(draw(st.lists(st.integers(0, 2), min_size=1, max_size=3)))
        return op, lambda: mx.tile(a, reps), lambda: np.tile(v, reps), None
    if op == "take":
        size = v.shape[operator.index(ax) % nd] if not strict and -nd <= ax < nd else 1
        idx = np.asarray(draw(st.lists(st.integers(-size - 1, size), max_size=4)), np.int64)
        if np.any((idx < -size) | (idx >= size)):  # refused even where NumPy, having no
            refuse = REFUSALS                       # element to take, ignores the index
        return op, lambda: mx.take(a, mx.asarray(idx), axis=ax), \
            lambda: np.take(v, idx, axis=ax, mode="raise"), refuse
    if op == "mT":
        return op, lambda: a.mT, lambda: np.swapaxes(v, -1, -2) if nd >= 2 else v[1.0], None
    return op, lambda: a.T, lambda: v.T if nd == 2 else v[1.0], None


@fuzz_settings(300)
@given(a=mx_arrays(), data=st.data())
def test_manipulation_fuzz(a, data) -> None:
    op, call, reference, refuse = data.draw(manipulation(a))
    event(op)
    compare(call, reference, refuse=refuse)


# --- reductions, searching ----------------------------------------------------------------------

REDUCTIONS = {
    "sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "mean": np.mean,
    "std": np.std, "var": np.var, "all": np.all, "any": np.any,
    "count_nonzero": np.count_nonzero,
}


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning")  # std/var, n <= ddof
@fuzz_settings(200)
@given(a=mx_arrays(), name=st.sampled_from(sorted(REDUCTIONS) + ["argmax", "argmin",
                                                                    "cumulative_sum"]),
       data=st.data())
def test_reduction_fuzz(a, name, data) -> None:
    v, nd = values(a), a.ndim
    axis = data.draw(st.one_of(st.none(), axis_values(nd),
                               st.tuples(st.integers(-nd, nd - 1), st.integers(-nd, nd - 1))))
    keepdims = data.draw(st.booleans())
    strict = isinstance(axis, (bool, float))
    func = getattr(mx, name)
    if name in ("argmax", "argmin", "cumulative_sum"):
        strict |= isinstance(axis, tuple)
        kw = {"axis": axis} if name == "cumulative_sum" else {"axis": axis, "keepdims": keepdims}
        ref = getattr(np, name.replace("cumulative_", "cum"))
        if name == "cumulative_sum":
            strict |= axis is None and nd > 1
            reference = lambda: ref(v, axis=axis)  # noqa: E731
        else:
            reference = lambda: ref(v, axis=axis, keepdims=keepdims)  # noqa: E731
        if name != "cumulative_sum" and (v.size == 0 or (
                axis is not None and not strict and -nd <= axis < nd and v.shape[axis] == 0)):
            strict = True  # argmax of nothing: NumPy raises too, the namespace ValueError
    else:
        kw = {"axis": axis, "keepdims": keepdims}
        reference = lambda: REDUCTIONS[name](v, axis=axis, keepdims=keepdims)  # noqa: E731
        if name in ("max", "min"):
            empty = v.size == 0 if axis is None else not strict and any(
                v.shape[x] == 0 for x in (axis if isinstance(axis, tuple) else (axis,))
                if -nd <= x < nd)
            strict |= empty
    with np.errstate(all="ignore"):
        compare(lambda: func(a, **kw), lambda: np.asarray(reference()),
                refuse=REFUSALS if strict else None)


# --- element-wise --------------------------------------------------------------------------------

UNARY = ["abs", "negative", "positive", "sqrt", "exp", "floor", "round", "sign", "square",
         "isnan", "isfinite", "signbit", "trunc", "tanh", "log1p"]
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "pow", "less",
          "equal", "floor_divide", "remainder", "copysign", "atan2", "hypot"]
NUMPY_NAMES = {"pow": "power", "atan2": "arctan2"}


@fuzz_settings(200)
@given(a=mx_arrays(max_dims=2), data=st.data())
def test_elementwise_fuzz(a, data) -> None:
    v = values(a)
    if data.draw(st.booleans()):
        name = data.draw(st.sampled_from(UNARY))
        call = lambda: getattr(mx, name)(a)  # noqa: E731
        reference = lambda: getattr(np, NUMPY_NAMES.get(name, name))(v)  # noqa: E731
        refuse = None
    else:
        name = data.draw(st.sampled_from(BINARY))
        kind = data.draw(st.sampled_from(["self", "float", "int", "bool", "int8 array",
                                          "float64 array", "transposed"]))
        other, other_np, refuse = {
            "self": (a, v, None),
            "float": (0.75, np.float32(0.75), None),
            "int": (3, np.float32(3), None),
            "bool": (True, None, TypeError),
            "int8 array": (mx.asarray(np.ones(v.shape[-1:], np.int8)), None, TypeError),
            "float64 array": (mx.asarray(np.full(v.shape[-1:], 0.5)),
                              np.full(v.shape[-1:], 0.5), None),
            "transposed": (a.mT if a.ndim == 2 else a, v.swapaxes(-1, -2) if a.ndim == 2
                           else v, None),
        }[kind]
        reflected = data.draw(st.booleans())
        f, g = getattr(mx, name), getattr(np, NUMPY_NAMES.get(name, name))
        call = (lambda: f(other, a)) if reflected else (lambda: f(a, other))
        reference = (lambda: g(other_np, v)) if reflected else (lambda: g(v, other_np))
    with np.errstate(all="ignore"):
        compare(call, lambda: np.asarray(reference()), refuse=refuse)


# --- creation and casting ------------------------------------------------------------------------


@fuzz_settings(150)
@given(a=mx_arrays(), data=st.data())
def test_asarray_and_astype_fuzz(a, data) -> None:
    """Into an MX dtype: the bits of ``quantize`` of the float values; out of one: the
    float32 values cast by NumPy; bad dtypes and options refused with a named reason."""
    v = values(a)
    target = data.draw(st.sampled_from(
        [mx.get_format(n) for n in NAMES] + [mx.float32, mx.float64, mx.int32, mx.bool,
                                             np.float16, "float32", "float16", None, 3]))
    block_axis = data.draw(st.one_of(st.none(), axis_values(a.ndim), st.just("0")))
    rounding = data.draw(st.sampled_from(["even", "nearest", "toward_zero", "up"]))
    func = data.draw(st.sampled_from(["asarray", "astype"]))
    source = a if data.draw(st.booleans()) else mx.asarray(v)
    mx_target = isinstance(target, mx.Format)
    bad = any(target is t for t in (np.float16, "float16", 3)) or (
        target is None and func == "astype")
    kw = {}
    if mx_target:
        kw = {"block_axis": block_axis, "rounding": rounding}
        bad |= rounding == "up" or isinstance(block_axis, (bool, float, str)) or (
            block_axis is not None and not -a.ndim <= block_axis < a.ndim)
        bad |= target.tensor_scale != "none" and rounding == "stochastic"
    call = (lambda: mx.asarray(source, dtype=target, **kw)) if func == "asarray" else (
        lambda: mx.astype(source, target, **kw))
    try:
        got = call()
    except REFUSALS as e:
        assert bad or v.size == 0 or (mx_target and v.shape[_axis(block_axis, a, source)] == 0), \
            f"refused: {type(e).__name__}: {e}"
        event(f"refused ({type(e).__name__})")
        return
    assert not bad, "accepted a bad dtype or option"
    event("computed and compared")
    if mx_target:
        ax = _axis(block_axis, a, source)
        want = mx.quantize(v, target, axis=ax, rounding=rounding, backend="numpy")
        keep = isinstance(source, MXArray) and source.format is target and \
            source.block_axis == ax
        same(got, values(a if keep else want))
        if not keep:
            assert np.array_equal(got.packed, want.packed)
            assert np.array_equal(got.scales, want.scales)
    else:
        want_dtype = v.dtype if target is None else np.dtype(target)
        with np.errstate(all="ignore"):
            same(got, v.astype(want_dtype))


def _axis(block_axis, a: MXArray, source) -> int:
    """The block axis a cast into an MX dtype uses (documented default)."""
    if block_axis is None:
        return source.block_axis if isinstance(source, MXArray) else a.ndim - 1
    return operator.index(block_axis) % a.ndim


STANDARD = [mx.bool, mx.int8, mx.uint8, mx.int64, mx.uint64, mx.float32, mx.float64,
            mx.complex64]
KINDS = ["bool", "signed integer", "unsigned integer", "integral", "real floating",
         "complex floating", "numeric"]


@fuzz_settings(100)
@given(name=st.sampled_from(NAMES), others=st.lists(st.one_of(
    st.sampled_from(STANDARD), st.sampled_from([True, 3, 0.5, 1j, 2**70])), max_size=3),
    kind=st.sampled_from(KINDS + ["floating", "mxfp4"]))
def test_dtype_functions_fuzz(name, others, kind) -> None:
    """An MX dtype promotes and casts exactly like float32 (the documented rule) and is of
    no standard kind; the functions refuse what they refuse for float32, with the type."""
    fmt = mx.get_format(name)

    def run(dtype):
        try:
            return mx.result_type(dtype, *others)
        except (TypeError, OverflowError) as e:
            return type(e)

    want = run(mx.float32)
    got = run(fmt)
    assert got == want
    for d in STANDARD:
        assert mx.can_cast(fmt, d) == mx.can_cast(mx.float32, d)
        assert mx.can_cast(d, fmt) == mx.can_cast(d, mx.float32)
    assert mx.isdtype(fmt, fmt) and not mx.isdtype(fmt, mx.float32)
    if kind in KINDS:
        assert mx.isdtype(fmt, kind) is False
    else:
        with pytest.raises((ValueError, TypeError), match="kind|dtype"):
            mx.isdtype(fmt, kind)
    with pytest.raises(TypeError, match="finfo"):
        mx.finfo(fmt)


@fuzz_settings(30)
@given(a=mx_arrays(max_dims=2), device=st.sampled_from(
    ["cpu", "CPU", "tpu", 0, None, "cuda:x", "cuda:-1"]))
def test_to_device_fuzz(a, device) -> None:
    """The CPU (or None) is accepted (the same array back); anything else that is not a device is a
    ValueError naming it ("cuda" itself needs a GPU: RuntimeError, not tested here)."""
    ok = device in ("cpu", None)  # None: the host, as documented
    try:
        b = a.to_device(device)
    except (ValueError, TypeError) as e:
        assert not ok and "device" in str(e), e
        return
    assert ok and b is a and b.device == mx.Device("cpu")


# --- regressions found by the fuzzing -----------------------------------------------------------


@pytest.mark.parametrize("axes, error", [(([5], [0]), ValueError), (([1], []), ValueError),
                                         (True, TypeError), (([0], [0, 0]), ValueError)])
@pytest.mark.parametrize("kind", ["dense", "mx"])
def test_tensordot_checks_its_axes(axes, error, kind) -> None:
    # Out-of-range axes used to wrap around (axis 5 of a 2-D array meant axis 1: a silently
    # wrong contraction), one-sided axes raised IndexError and 0-d operands
    # ZeroDivisionError.
    x = np.linspace(-1, 1, 128).reshape(2, 64)
    y = np.ones((64, 3))
    if kind == "mx":
        a, b = mx.quantize(x, "mxfp8_e4m3"), mx.quantize(y, "mxfp8_e4m3", axis=0)
    else:
        a, b = mx.asarray(x), mx.asarray(y)
    with pytest.raises(error, match="axes"):
        mx.tensordot(a, b, axes=axes)
    with pytest.raises(ValueError, match="axes"):
        mx.tensordot(mx.asarray(1.0), mx.asarray(2.0), axes=([0], [0]))


def test_block_axis_is_validated_even_when_nothing_changes() -> None:
    # asarray/astype of an MX array into its own format compared ``block_axis % ndim`` with
    # its block axis: block_axis=1.0 or 9 (9 % 2 == 1) was silently accepted, and a string
    # gave "not all arguments converted during string formatting".
    q = mx.quantize(np.ones((2, 64)), "mxfp8_e4m3")
    for bad, error in [(1.0, TypeError), (9, ValueError), ("a", TypeError)]:
        with pytest.raises(error, match="block_axis"):
            mx.asarray(q, block_axis=bad)
        with pytest.raises(error, match="block_axis"):
            mx.astype(q, mx.mxfp8_e4m3, block_axis=bad)
    with pytest.raises(ValueError, match="rounding"):
        mx.astype(q, mx.mxfp8_e4m3, rounding="up")
    with pytest.raises(ValueError, match="rounding"):
        mx.asarray(q, dtype=mx.mxfp8_e4m3, rounding="up")
    with pytest.raises(ValueError, match="scale mode"):
        mx.asarray(q, scale_mode="round")
    with pytest.raises(ValueError, match="seed"):
        mx.asarray(q, seed=-1)


@pytest.mark.parametrize("call", [
    lambda q: mx.sum(q, axis=1.0), lambda q: mx.argmax(q, axis=1.0),
    lambda q: mx.expand_dims(q, axis=1.0), lambda q: mx.take(q, mx.asarray([0]), axis=1.0),
    lambda q: mx.concat([q, q], axis=1.0), lambda q: mx.roll(q, 1.0, axis=0),
    lambda q: mx.stack([q, q], axis=np.True_), lambda q: mx.flip(q, axis=np.True_),
], ids=["sum", "argmax", "expand_dims", "take", "concat", "roll-shift", "stack", "flip"])
def test_non_integer_axes_name_the_argument(call) -> None:
    # They raised operator.index's "'float' object cannot be interpreted as an integer",
    # naming no argument; roll(shift=1.0) was accepted.
    q = mx.quantize(np.ones((2, 64)), "mxint8")
    with pytest.raises(TypeError, match=r"(axis|shift) must be an integer"):
        call(q)


def test_setitem_on_an_array_without_blocks() -> None:
    # Regression: assigning into an MX array with a 0-size dimension raised NumPy's
    # "cannot reshape array of size 0 into shape (0,newaxis)".
    a = mx.quantize(np.ones((0, 40)), "mxfp4_e2m1")
    a[...] = 1.0
    assert a.shape == (0, 40) and a.packed.shape == (0, 32)  # 64 padded FP4 codes


@pytest.mark.parametrize("func", ["argmax", "argmin", "cumulative_sum", "sort", "argsort",
                                  "diff", "unstack"])
def test_single_axis_functions_refuse_a_tuple(func) -> None:
    # Regression: these took ``normalize_axes(axis)[0]``, so axis=(0, 1) silently meant
    # axis 0: a wrong answer instead of an error.
    q = mx.quantize(np.arange(128.0).reshape(2, 64), "mxfp8_e4m3")
    with pytest.raises(TypeError, match="axis must be one integer"):
        getattr(mx, func)(q, axis=(0, 1))
