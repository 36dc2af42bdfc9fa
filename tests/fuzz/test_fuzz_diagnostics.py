"""Fuzz :func:`mxarray.explain` and :func:`mxarray.block_stats` (``mxarray.diagnostics``).

Random arrays (every format, 0-size ones included), random block indices (in and out of
range, negative, NumPy integers, bools, floats, tuples of any length) and random MXArrays
built from arbitrary bytes (NaN scale bytes included).  A supported call must give what
the quantized or dequantized values say, checked exactly; an unsupported or broken one
must raise TypeError/ValueError whose message names the problem.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
from support import oracle
import pytest
from support.hardening import fuzz_settings
from hypothesis import event, given
from hypothesis import strategies as st

import mxarray
from mxarray import MXArray
from mxarray.diagnostics import block_stats, explain

DOCUMENTED = (TypeError, ValueError)
NAMES = ("mxfp8_e5m2", "mxfp8_e4m3", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8",
         "mx9", "mx6", "mx4", "nvfp4")
EXPLAINED = {n for n in NAMES if not mxarray.get_format(n).sub_block_size
             and mxarray.get_format(n).scale.kind == "exponent"
             and mxarray.get_format(n).tensor_scale == "none"}
DETERMINISTIC = ("even", "nearest", "toward_zero")
SCALE_MODES = ("floor", "ceil", "rceil", "even")


@st.composite
def float_arrays(draw, max_dims: int = 3, allow_empty: bool = True) -> np.ndarray:
    ndim = draw(st.integers(1, max_dims))
    shape = tuple(0 if allow_empty and draw(st.integers(0, 14)) == 0
                  else draw(st.integers(1, 40)) for _ in range(ndim))  # now and then empty
    while math.prod(shape) > 600:
        shape = tuple(max(1, d // 2) for d in shape)
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    n = math.prod(shape)
    k = draw(st.integers(-40, 40))
    values = draw(st.lists(st.one_of(
        st.floats(-8, 8, allow_nan=False, width=16).map(lambda v: v * 2.0**k),
        st.sampled_from([0.0, -0.0, 0.25, -6.0, 448.0, 1e-40, 3e38]),
        st.just(math.nan) | st.just(math.inf), st.floats(width=32)),
        min_size=n, max_size=n))
    with np.errstate(over="ignore"):
        return np.array(values, dtype=np.float64).astype(dtype).reshape(shape)


# --- explain -------------------------------------------------------------------------------


def block_arg(draw, shape: tuple[int, ...], ax: int, bs: int):
    """``(block argument, canonical block number or None, error pattern or None)``."""
    nb = -(-shape[ax] // bs)
    scales_shape = shape[:ax] + (nb,) + shape[ax + 1:]
    total = math.prod(scales_shape)
    kind = draw(st.sampled_from(["int"] * 4 + ["np"] * 2 + ["tuple"] * 4 + [
        "bad-int", "bool", "float", "none", "str", "bad-tuple"]))
    if kind in ("int", "np") and total:
        b = draw(st.integers(-total, total - 1))
        arg = b if kind == "int" else draw(st.sampled_from([np.int8, np.int64, np.uint32]))(
            b % total if kind == "np" else b)
        return arg, int(arg) % total, None
    if kind == "tuple" and total:
        idx = tuple(draw(st.integers(-n, n - 1)) for n in scales_shape)
        pos = tuple(i % n for i, n in zip(idx, scales_shape))
        canonical = pos[:ax] + pos[ax + 1:] + (pos[ax],)
        dims = shape[:ax] + shape[ax + 1:] + (nb,)
        return idx, int(np.ravel_multi_index(canonical, dims)), None
    if kind == "bool":
        return draw(st.booleans()) if draw(st.booleans()) else np.True_, None, r"block.*bool"
    if kind == "float":
        return draw(st.sampled_from([0.0, 1.5, math.nan])), None, r"block"
    if kind == "none":
        return None, None, r"block"
    if kind == "str":
        return "0", None, r"block"
    if kind == "bad-tuple":
        t = draw(st.sampled_from(["short", "long", "range", "float", "bool", "huge", "nested"]))
        base = [0] * len(shape)
        if t == "short":
            return tuple(base[:-1]), None, r"block.*entries"
        if t == "long":
            return tuple(base + [0]), None, r"block.*entries"
        i = draw(st.integers(0, len(shape) - 1))
        base[i] = {"range": draw(st.sampled_from([scales_shape[i], -scales_shape[i] - 1])),
                   "float": 0.0, "bool": True, "huge": 2**70, "nested": (0,)}[t]
        return tuple(base), None, r"block"
    return draw(st.sampled_from([total, -total - 1, 2**64, -2**70])), None, r"block.*range"


@fuzz_settings(300)
@given(x=float_arrays(), name=st.sampled_from(sorted(EXPLAINED)) | st.sampled_from(NAMES),
       data=st.data())
def test_explain_agrees_with_quantize(x, name, data) -> None:
    ax = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    rounding = data.draw(st.sampled_from(DETERMINISTIC * 3 + ("stochastic",)), label="rnd")
    mode = data.draw(st.sampled_from(SCALE_MODES), label="scale_mode")
    fmt = mxarray.get_format(name)
    block, number, bad = block_arg(data.draw, x.shape, ax % x.ndim, fmt.block_size)
    problems = []
    if name not in EXPLAINED:
        problems.append(r"explain walks formats")
    if rounding == "stochastic":
        problems.append(r"stochastic")
    if x.shape[ax] == 0:
        problems.append(r"empty")
    if bad:
        problems.append(bad)
    if x.size == 0 and not problems:  # every block index is out of range
        number, problems = None, [r"block.*range"]
    try:
        e = explain(x, name, block, axis=ax, rounding=rounding, scale_mode=mode)
    except DOCUMENTED as err:
        assert problems, f"valid call refused: {type(err).__name__}: {err}"
        assert any(re.search(p, str(err)) for p in problems), (problems, str(err))
        event(f"refused ({type(err).__name__})")
        return
    assert not problems, f"accepted despite {problems}"
    event("explained and compared")
    q = mxarray.quantize(x, name, axis=ax, rounding=rounding, scale_mode=mode, backend="numpy")
    assert e.block == number
    canonical_scales = np.moveaxis(q.scales, ax, -1).reshape(-1)
    canonical_codes = np.moveaxis(q.codes(), ax, -1)
    nb = canonical_scales.size // max(1, math.prod(canonical_codes.shape[:-1]))
    row, col = divmod(number, nb)
    assert e.scale_byte == canonical_scales[number]
    bs = fmt.block_size
    want = canonical_codes.reshape(-1, x.shape[ax])[row, col * bs:(col + 1) * bs]
    assert e.codes.tolist() == want.tolist()
    values = np.moveaxis(x, ax, -1).reshape(-1, x.shape[ax])[row, col * bs:(col + 1) * bs]
    assert [el.value for el in e.elements] == [float(v) for v in values] or np.isnan(
        [el.value for el in e.elements]).any()
    if e.shared_exponent is not None:
        assert e.scale_byte == e.shared_exponent + fmt.scale.bias
        for el in e.elements:  # the grid neighbours bracket the scaled input
            assert el.scaled == Fraction(el.value) / Fraction(2) ** e.shared_exponent
            if el.lower is not None and el.upper is not None:
                assert abs(el.lower) <= abs(el.scaled) <= abs(el.upper)
            assert el.element == float(oracle.decode(el.code, name))
    str(e)  # renders


def test_bool_block_indices_are_refused() -> None:
    # regression: block=True was taken as block 1 (bool is an int subclass)
    x = np.arange(64, dtype=np.float32)
    for block in (True, np.True_, (False,)):
        with pytest.raises(TypeError, match="bool"):
            explain(x, "mxfp8_e4m3", block)


def test_tuple_block_indices_count_from_the_end_like_numpy() -> None:
    # regression: negative tuple entries were refused, although q.scales[-1, -1] works
    x = np.arange(3 * 64, dtype=np.float32).reshape(3, 64)
    q = mxarray.quantize(x, "mxfp8_e4m3")
    e = explain(x, "mxfp8_e4m3", (-1, -1))
    assert e.block == 5 and e.scale_byte == q.scales[-1, -1]
    with pytest.raises(ValueError, match="out of range"):
        explain(x, "mxfp8_e4m3", (0, 2**70))


# --- block_stats ---------------------------------------------------------------------------


def scale_value(fmt: mxarray.Format, byte: int) -> Fraction | None:
    """The value of a scale byte (None: NaN or undefined), from the spec tables."""
    if fmt.scale.kind == "ue4m3":
        return oracle.grid("mxfp8_e4m3").values[byte] if byte < 0x7F else None
    return None if byte == 0xFF else Fraction(2) ** (byte - 127)


def element_is_zero(fmt: mxarray.Format, code: int) -> bool:
    element = code & ((1 << fmt.bits) - 1)
    if fmt.kind == "int":
        return element == 0
    return element & (fmt.sign_bit - 1) == 0 and element not in fmt.nan_codes


def check_stats(s, x: np.ndarray, q: MXArray) -> None:
    """Every count of ``s`` recomputed element by element with exact arithmetic."""
    fmt, ax, bs = q.format, q.block_axis, q.format.block_size
    scales = np.asarray(q.scales)
    assert s.scale_histogram.tolist() == np.bincount(scales.ravel(), minlength=256).tolist()
    assert np.array_equal(s.nan_blocks, scales == fmt.scale.nan_code)
    sat = np.zeros(scales.shape, np.int64)
    under = np.zeros(scales.shape, np.int64)
    codes = q.codes()
    t = Fraction(float(q.tensor_scale)) if q.tensor_scale is not None else Fraction(1)
    for idx in np.ndindex(x.shape):
        bidx = idx[:ax] + (idx[ax] // bs,) + idx[ax + 1:]
        byte, v, code = int(scales[bidx]), float(x[idx]), int(codes[idx])
        if byte == fmt.scale.nan_code or not math.isfinite(v):
            continue
        if v != 0 and element_is_zero(fmt, code):
            under[bidx] += 1
        s_v = scale_value(fmt, byte)
        if s_v:
            limit = Fraction(fmt.max_normal) * s_v * t / 2 ** (code >> fmt.bits)
            sat[bidx] += abs(Fraction(v)) > limit
    assert s.saturated.tolist() == sat.tolist()
    assert s.underflow.tolist() == under.tolist()
    assert s.n_blocks == scales.size
    str(s)


@fuzz_settings(200)
@given(x=float_arrays(max_dims=2), name=st.sampled_from(NAMES), data=st.data())
def test_block_stats_counts_are_exact(x, name, data) -> None:
    ax = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    fmt = mxarray.get_format(name)
    rounding = data.draw(st.sampled_from(DETERMINISTIC if fmt.scale.kind == "ue4m3"
                                         else DETERMINISTIC + ("stochastic",)), label="rnd")
    if x.shape[ax] == 0:
        with pytest.raises(ValueError, match="empty"):
            block_stats(x, name, axis=ax)
        return
    s = block_stats(x, name, axis=ax, rounding=rounding, seed=3)
    q = mxarray.quantize(x, name, axis=ax, rounding=rounding, seed=3, backend="numpy")
    assert s.format is fmt and s.block_axis == ax % x.ndim
    check_stats(s, x, q)
    event("counted and compared")


@fuzz_settings(150)
@given(x=float_arrays(max_dims=2, allow_empty=False), name=st.sampled_from(NAMES),
       data=st.data())
def test_block_stats_of_arbitrary_bytes(x, name, data) -> None:
    """Any codes and scale bytes (NaN and undefined scale bytes included)."""
    fmt = mxarray.get_format(name)
    ax = data.draw(st.integers(0, x.ndim - 1), label="axis")
    nb = -(-x.shape[ax] // fmt.block_size)
    sshape = x.shape[:ax] + (nb,) + x.shape[ax + 1:]
    special = [fmt.scale.nan_code, 0, 0x7E, 0x80, 0xFE, 127]
    scales = np.array(data.draw(st.lists(st.one_of(st.sampled_from(special),
                                                   st.integers(0, 255)),
                                         min_size=math.prod(sshape),
                                         max_size=math.prod(sshape))), np.uint8).reshape(sshape)
    top = (1 << fmt.code_bits) - 1
    codes = np.array(data.draw(st.lists(st.integers(0, top), min_size=x.size, max_size=x.size)),
                     fmt.code_dtype).reshape(x.shape)
    if fmt.sub_block_size:  # a sub-block shares one microexponent
        moved = np.moveaxis(codes, ax, -1)
        d = moved >> fmt.bits
        lanes = np.arange(moved.shape[-1]) // fmt.sub_block_size * fmt.sub_block_size
        moved[...] = (moved & ((1 << fmt.bits) - 1)) | (d[..., lanes] << fmt.bits)
    kwargs = {"tensor_scale": data.draw(st.sampled_from([1.0, 0.5, 2.0**-140, 3e38]))} \
        if fmt.tensor_scale != "none" else {}
    try:
        q = MXArray.from_parts(codes, scales, name, x.shape, axis=ax, layout="codes", **kwargs)
    except ValueError as err:  # codes the format does not allow (e.g. unused code bits)
        event("from_parts refused")
        assert re.search(r"code|scale", str(err)), str(err)
        return
    s = block_stats(x, q=q)
    check_stats(s, x, q)
    event("counted and compared")


def test_block_stats_of_an_array_with_an_empty_other_axis() -> None:
    # regression: the per-block counts were reshaped with -1, which fails for 0 elements
    s = block_stats(np.zeros((40, 0), np.float32), "mxfp8_e4m3", axis=0)
    assert s.saturated.shape == s.underflow.shape == s.nan_blocks.shape == (2, 0)
    assert s.n_blocks == 0 and not s.scale_histogram.any()


BAD_CALLS = [
    (lambda x, q: block_stats(x), ValueError, r"exactly one of fmt"),
    (lambda x, q: block_stats(x, "mxfp8_e4m3", q=q), ValueError, r"exactly one of fmt"),
    (lambda x, q: block_stats(x, q=x), TypeError, r"q must be an MXArray"),
    (lambda x, q: block_stats(x[:, :3], q=q), ValueError, r"shape"),
    (lambda x, q: block_stats(x.astype(np.int32), "mxfp8_e4m3"), TypeError, r"dtype"),
    (lambda x, q: block_stats(q, "mxfp8_e4m3"), TypeError, r"not an MXArray"),
    (lambda x, q: block_stats(np.float32(1), "mxfp8_e4m3"), ValueError, r"0-d"),
    (lambda x, q: block_stats(x, "nope"), ValueError, r"unknown MX format"),
    (lambda x, q: block_stats(x, "mxfp8_e4m3", axis=2), ValueError, r"axis"),
    (lambda x, q: explain(x, "mxfp8_e4m3", axis=1.0), TypeError, r"axis"),
    (lambda x, q: explain(x, "mxfp8_e4m3", rounding="up"), ValueError, r"rounding"),
    (lambda x, q: explain(x, "mxfp8_e4m3", scale_mode="max"), ValueError, r"scale mode"),
    (lambda x, q: explain(x.astype(np.complex64), "mxfp8_e4m3"), TypeError, r"dtype"),
    (lambda x, q: explain(x, "nvfp4"), ValueError, r"per-tensor scale"),
    (lambda x, q: explain(x, "mx6"), ValueError, r"microexponents"),
]


@pytest.mark.parametrize("call, kind, pattern", BAD_CALLS)
def test_bad_arguments(call, kind, pattern) -> None:
    x = np.linspace(-4, 4, 2 * 40, dtype=np.float32).reshape(2, 40)
    q = mxarray.quantize(x, "mxfp8_e4m3")
    with pytest.raises(kind, match=pattern):
        call(x, q)


# --- mxarray.report.evaluate and mxarray.datasets (the engine of ``mxarray report``) --------


@fuzz_settings(100)
@given(shape=st.one_of(
    st.integers(-3, 50),
    st.lists(st.integers(-2, 12), max_size=3).map(tuple),
    st.sampled_from([(2**40, 2**40), (2**63, 2**63, 0), (True, 2), (2.0,), "4", None,
                     (np.int64(3), np.uint8(2)), [2, 3]])),
    name=st.sampled_from(["gaussian", "laplace", "student_t", "normal", "", 3, None]))
def test_make_dataset(shape, name) -> None:
    from mxarray.datasets import DATASETS, make_dataset

    dims = shape if isinstance(shape, tuple) else (shape,)
    bad_name = not isinstance(name, str) or name not in DATASETS
    bad_type = not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                       for d in dims)
    bad_value = not bad_type and any(not 0 <= d < 2**63 for d in dims)
    if not (bad_name or bad_type or bad_value) and math.prod(int(d) for d in dims) > 10**6:
        return  # valid, but too big for this test (those sizes are the CLI's to refuse)
    try:
        x = make_dataset(name, shape)
    except ValueError as err:
        assert bad_name or bad_value, str(err)
        assert re.search("dataset" if bad_name else "shape", str(err)), str(err)
        event("ValueError")
        return
    except TypeError as err:
        assert bad_type and not bad_name, str(err)
        assert "shape" in str(err)
        event("TypeError")
        return
    assert not (bad_name or bad_type or bad_value)
    assert x.dtype == np.float32 and x.shape == tuple(int(d) for d in dims)
    again = make_dataset(name, shape)  # a fixed seed: the same values each time
    assert np.array_equal(x, again)
    flat = make_dataset(name, (x.size,))  # the same draws, whatever the shape
    assert np.array_equal(x.reshape(-1), flat)
    event("made")


def test_make_dataset_regressions() -> None:
    from mxarray.datasets import make_dataset

    # (-2, -2) made 4 draws, then numpy's reshape error; (True, 3) was taken as (1, 3);
    # a list as the name raised "unhashable type"
    with pytest.raises(ValueError, match="negative"):
        make_dataset("gaussian", (-2, -2))
    with pytest.raises(TypeError, match="shape"):
        make_dataset("gaussian", (True, 3))
    with pytest.raises(TypeError, match="shape"):
        make_dataset("gaussian", (2.0, 3))
    with pytest.raises(ValueError, match="unknown dataset"):
        make_dataset(["gaussian"])  # was TypeError: unhashable type: 'list'


REPORT_BAD = [
    ({"formats": "mxfp8_e4m3"}, TypeError, r"formats must be a list"),
    ({"formats": ["mxfp8_e4m3"], "repeats": 0}, ValueError, r"repeats must be at least 1"),
    ({"formats": ["mxfp8_e4m3"], "repeats": -2}, ValueError, r"repeats must be at least 1"),
    ({"formats": ["mxfp8_e4m3"], "repeats": 1.0}, TypeError, r"repeats must be an integer"),
    ({"formats": ["mxfp8_e4m3"], "repeats": True}, TypeError, r"repeats must be an integer"),
    ({"formats": ["nope"]}, ValueError, r"unknown MX format"),
    ({"formats": [3]}, TypeError, r"fmt"),
    ({"formats": ["mxfp8_e4m3"], "axis": 3}, ValueError, r"axis"),
    ({"formats": ["mxfp8_e4m3"], "rounding": "up"}, ValueError, r"rounding"),
    ({"formats": ["nvfp4"], "scale_mode": "ceil"}, ValueError, r"scale_mode"),
    ({"formats": ["mxfp8_e4m3"], "backend": "nope"}, ValueError, r"backend"),
]


@pytest.mark.parametrize("kwargs, kind, pattern", REPORT_BAD)
def test_evaluate_bad_arguments(kwargs, kind, pattern) -> None:
    from mxarray.report import evaluate

    x = np.linspace(-3, 3, 64, dtype=np.float32)
    with pytest.raises(kind, match=pattern):
        evaluate(x, **kwargs)


@pytest.mark.parametrize("x, pattern", [
    (np.arange(8), r"dtype"), (np.float32(1.0), r"0-d|dimension"), (np.zeros((4, 0)), r"empty"),
    ("abc", r"dtype"), (None, r"dtype")])
def test_evaluate_bad_inputs(x, pattern) -> None:
    from mxarray.report import evaluate

    with pytest.raises((TypeError, ValueError), match=pattern):
        evaluate(x, ["mxint8"], repeats=1)


def test_evaluate_takes_a_list_and_checks_repeats() -> None:
    # regressions: evaluate([...]) raised AttributeError ('list' has no 'size'), repeats=0
    # raised AttributeError (no quantization ran), and formats="mxint8" was read as the
    # formats "m", "x", ...
    from mxarray.report import evaluate

    values = [0.5, -1.25, 3.0, 0.0]
    row = evaluate(values, ["mxint8"], repeats=1)[0]
    want = evaluate(np.asarray(values), ["mxint8"], repeats=1)[0]
    assert (row.qsnr_db, row.max_relative_error) == (want.qsnr_db, want.max_relative_error)
    with pytest.raises(ValueError, match="repeats"):
        evaluate(np.asarray(values), ["mxint8"], repeats=0)
    with pytest.raises(TypeError, match="formats must be a list"):
        evaluate(np.asarray(values), "mxint8")
