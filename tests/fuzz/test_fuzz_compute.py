"""Fuzz the computational entry points: quantize, dequantize, matmul, MXArray.from_parts.

Each test draws a call whose arguments are valid or deliberately broken (dtypes, shapes,
strides, axes, formats, modes, seeds, tensor scales, stored bytes), predicts from the
documented rules alone which arguments are bad, and then checks the contract:

* a call with a bad argument raises TypeError, ValueError or NotImplementedError (the
  documented types) whose message names one of the bad arguments;
* a valid call gives the NumPy reference's bits on every backend, and the reference
  agrees with the exact model of ``tests/support/oracle.py``.

Any other exception type (IndexError, OverflowError, numba errors ...) fails the test.
Example counts come from :func:`hardening.fuzz_settings` (``pytest --long`` draws more).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import event, given, strategies as st

import mxarray
from support import oracle
from support import strategies as mxst
from support.hardening import fuzz_settings
from mxarray import MXArray
from mxarray.core import matmul as core_matmul

DOCUMENTED = (TypeError, ValueError, NotImplementedError)
NAMES = tuple(mxarray.BLOCK_FORMATS)
TWO_LEVEL = {n for n in NAMES if mxarray.get_format(n).tensor_scale != "none"}


def host(a) -> np.ndarray:
    return np.asarray(a.get() if hasattr(a, "get") else a)


def outcome(call, bad: dict[str, str]):
    """Run ``call``; return its result, or None after checking a documented refusal.

    ``bad`` maps each argument the test broke to a regular expression its error message
    must match (one of them).  A call with nothing broken must not raise.
    """
    try:
        result = call()
    except DOCUMENTED as e:
        assert bad, f"valid call refused: {type(e).__name__}: {e}"
        message = str(e)
        assert any(re.search(p, message, re.IGNORECASE) for p in bad.values()), (
            f"message {message!r} names none of the bad arguments {sorted(bad)}")
        event(f"refused ({type(e).__name__})")
        return None
    assert not bad, f"bad arguments {sorted(bad)} accepted"
    event("computed and compared")
    return result


def assert_same_bits(got, want) -> None:
    got, want = host(got), host(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8))


# --- the drawn arguments -----------------------------------------------------------------

GOOD_DTYPES = ["<f2", "<f4", "<f8", ">f2", ">f4", ">f8"]
BAD_DTYPES = ["i1", "i4", "u8", "?", "c8", "c16", "O", "U1", "V2", "M8[s]", [("a", "<f4")]]
if np.dtype(np.longdouble) != np.dtype(np.float64):
    BAD_DTYPES.append(np.longdouble)


@st.composite
def shapes(draw) -> tuple[int, ...]:
    """1..5 dimensions of 0..40 (0-size and 1-element included), or many small ones."""
    if draw(st.integers(0, 9)) == 0:
        return tuple(draw(st.lists(st.integers(1, 2), min_size=6, max_size=14)))
    dims = draw(st.lists(st.integers(0, 40), min_size=1, max_size=5))
    while math.prod(dims) > 4000:
        dims[dims.index(max(dims))] //= 2
    return tuple(dims)


@st.composite
def laid_out(draw, values: np.ndarray) -> np.ndarray:
    """``values`` in a random memory layout with the same logical contents."""
    kind = draw(st.sampled_from(["c", "fortran", "reversed", "strided", "broadcast"]))
    if kind == "fortran":
        return np.asfortranarray(values)
    if kind == "reversed" and values.ndim:
        ax = draw(st.integers(0, values.ndim - 1))
        return np.flip(np.flip(values, ax).copy(), ax)  # negative stride, same contents
    if kind == "strided" and values.ndim:
        ax = draw(st.integers(0, values.ndim - 1))
        big = np.repeat(values, 2, axis=ax)
        return big[(slice(None),) * ax + (slice(None, None, 2),)]
    if kind == "broadcast" and values.ndim and values.shape[0] > 1:
        return np.broadcast_to(values[:1], values.shape)  # zero stride on axis 0
    return np.ascontiguousarray(values)


def logical(x: np.ndarray) -> np.ndarray:
    """What ``x`` holds, as native float64 (the layout forgotten)."""
    return np.ascontiguousarray(x).astype(np.float64)


def axis_arg(draw, ndim: int, broken: bool):
    """``(axis, error pattern or None)``: valid (ints, NumPy ints), or broken."""
    if not broken:
        if draw(st.booleans()):
            return draw(st.integers(-ndim, ndim - 1)), None
        t = draw(st.sampled_from([np.int8, np.int64, np.uint16, np.intp]))
        return t(draw(st.integers(0, ndim - 1))), None
    kind = draw(st.sampled_from(["range", "range", "float", "bool", "none", "str"]))
    if kind == "range":
        return draw(st.sampled_from([ndim, ndim + 3, -ndim - 1, 2**63, np.int64(ndim)])), r"axis"
    return {"float": 1.0, "bool": True, "none": None, "str": "0"}[kind], r"axis.*integer"


def fmt_arg(draw, broken: bool):
    """``(fmt argument, format name or None, error pattern or None)``."""
    name = draw(st.sampled_from(NAMES))
    if broken:
        if draw(st.booleans()):
            return draw(st.sampled_from(["mxfp5", "", "fp8", "mxfp4_e2m1 "])), None, r"format"
        return draw(st.sampled_from([None, 4, b"mxint8"])), None, r"fmt|format"
    kind = draw(st.sampled_from(["name", "name", "upper", "object"]))
    if kind == "upper":
        return name.upper(), name, None
    if kind == "object":
        return mxarray.get_format(name), name, None
    return name, name, None


SEED_BAD = [-1, 2**64, np.int16(-3), True, 1.5, "7"]


def seed_arg(draw, broken: bool):
    if broken:
        return draw(st.sampled_from(SEED_BAD)), r"seed"
    return draw(st.one_of(st.none(), mxst.seeds, st.integers(0, 2**64 - 1).map(np.uint64),
                          st.integers(0, 127).map(np.int8))), None


TENSOR_SCALES_BAD = [math.nan, math.inf, -math.inf, 0.0, -1.0, -0.0, 1e39, 10**400, "1",
                     True, np.complex64(1)]
TENSOR_SCALES_OK = [1.0, 2.0**-149, 1e-40, 3e38, np.float64(0.75), np.float32(448), 3,
                    np.float16(0.5)]


def tensor_scale_arg(draw, name: str | None, broken: bool):
    """A tensor scale argument: None or a good value for formats that have one, else
    (broken) a bad value, or any value for a format without one."""
    two_level = name in TWO_LEVEL
    if not broken:
        return (draw(st.sampled_from([None] + TENSOR_SCALES_OK)) if two_level else None), None
    pool = TENSOR_SCALES_BAD if two_level else TENSOR_SCALES_OK + TENSOR_SCALES_BAD
    return draw(st.sampled_from(pool)), r"tensor_scale|tensor scale"


def values_for(draw, name: str | None, shape: tuple[int, ...]) -> np.ndarray:
    """Adversarial float64 values (NaN and Inf sometimes) for ``shape``."""
    grid = name if name in mxst.FORMAT_NAMES else "mxfp8_e4m3"
    x = draw(mxst.arrays(grid, shape))
    if x.size and draw(st.integers(0, 5)) == 0:
        flat = x.reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf]))
    return x


# --- quantize ------------------------------------------------------------------------------


def check_against_model(ref: MXArray, x64: np.ndarray, rounding: str, scale_mode: str) -> None:
    """The first block of the reference's canonical layout against the exact model."""
    fmt, ax = ref.format, ref.block_axis
    moved = np.moveaxis(x64, ax, -1).reshape(-1, x64.shape[ax])
    if moved.shape[0] == 0:
        return
    size = fmt.block_size
    values = moved[0, :size].tolist()
    codes = np.moveaxis(ref.codes(), ax, -1).reshape(moved.shape)[0, :size].tolist()
    scale = int(np.moveaxis(ref.scales, ax, -1).reshape(moved.shape[0], -1)[0, 0])
    if fmt.name in mxst.FORMAT_NAMES:
        want = oracle.quantize_block(values, fmt.name, rounding, scale_mode, ref.seed, 0)
    else:
        s_t = None if ref.tensor_scale is None else Fraction(float(ref.tensor_scale))
        want = oracle.quantize_block_format(values, fmt.name, rounding, scale_mode, ref.seed,
                                            0, s_t)
    assert (scale, codes) == want


@fuzz_settings(250)
@given(data=st.data())
def test_quantize_fuzz(backend, data) -> None:
    # Half the examples are valid calls; the others break one argument (or two: a 0-size
    # block axis, and the UE4M3 formats' own rules, come on top).
    broken = data.draw(st.sampled_from([None] * 8 + ["fmt", "dtype", "axis", "rounding",
                                                      "scale_mode", "seed", "tensor_scale"]))
    bad: dict[str, str] = {}
    fmt, name, err = fmt_arg(data.draw, broken == "fmt")
    if err:
        bad["fmt"] = err
    shape = data.draw(shapes())
    refused = broken == "dtype"
    dtype = data.draw(st.sampled_from(BAD_DTYPES if refused else GOOD_DTYPES))
    x64 = values_for(data.draw, name, shape)
    if not refused:
        with np.errstate(over="ignore"):
            x = data.draw(laid_out(x64.astype(dtype)))
    else:
        bad["dtype"] = r"\bx\b|dtype"
        try:
            x = np.zeros(shape, dtype=dtype)
        except (TypeError, ValueError):
            x = np.zeros(shape, dtype="O")
    axis, err = axis_arg(data.draw, len(shape), broken == "axis")
    if err:
        bad["axis"] = err
    elif shape[int(axis)] == 0:
        bad["empty"] = r"empty"
    rounding = data.draw(st.sampled_from(("up", "EVEN", None) if broken == "rounding"
                                         else mxst.ROUNDINGS))
    if broken == "rounding":
        bad["rounding"] = r"rounding"
    scale_mode = data.draw(st.sampled_from(("round", 0, "Floor") if broken == "scale_mode"
                                           else mxst.SCALE_MODES))
    if broken == "scale_mode":
        bad["scale_mode"] = r"scale mode"
    seed, err = seed_arg(data.draw, broken == "seed")
    if err:
        bad["seed"] = err
    tensor_scale, err = tensor_scale_arg(data.draw, name, broken == "tensor_scale")
    if err:
        bad["tensor_scale"] = err
    if name in TWO_LEVEL and scale_mode in mxst.SCALE_MODES and scale_mode != "floor":
        bad["scale_kind"] = r"scale_mode"
    if name in TWO_LEVEL and rounding == "stochastic":
        bad["stochastic"] = r"stochastic"
    kw = dict(axis=axis, rounding=rounding, scale_mode=scale_mode, seed=seed,
              tensor_scale=tensor_scale)
    got = outcome(lambda: mxarray.quantize(x, fmt, backend=backend, **kw), bad)
    if got is None:
        return
    ref = mxarray.quantize(logical(x).astype(np.dtype(dtype).newbyteorder("=")), name,
                           backend="numpy", **dict(kw, seed=got.seed))
    assert got.shape == shape and got.block_axis == int(axis) % len(shape)
    assert got.format is mxarray.get_format(name)
    assert_same_bits(got.packed, ref.packed)
    assert_same_bits(got.scales, ref.scales)
    assert got.tensor_scale == ref.tensor_scale and got.seed == ref.seed
    assert (got.seed is not None) == (rounding == "stochastic")
    if seed is not None and rounding == "stochastic":
        assert got.seed == int(seed)
    check_against_model(ref, logical(x), rounding, scale_mode)


# --- dequantize and from_parts --------------------------------------------------------------


def random_codes(rng: np.random.Generator, fmt, shape: tuple[int, ...], ax: int) -> np.ndarray:
    """Valid unpacked codes of ``shape`` (NaN and Inf codes included), one microexponent
    per sub-block for MX9/MX6/MX4."""
    codes = rng.integers(0, fmt.n_codes, size=shape).astype(fmt.code_dtype)
    if fmt.sub_block_size:
        moved = np.moveaxis(codes, ax, -1)
        sub = np.arange(moved.shape[-1]) // fmt.sub_block_size
        d = rng.integers(0, 1 << fmt.sub_block_bits, size=moved.shape[:-1] + (sub.max() + 1,))
        moved = moved | (d[..., sub] << fmt.bits).astype(fmt.code_dtype)
        codes = np.ascontiguousarray(np.moveaxis(moved, -1, ax))
    return codes


def expected_values(a: MXArray) -> np.ndarray:
    """Float64 values of ``a`` from the exact model, element by element."""
    fmt, ax = a.format, a.block_axis
    codes = np.moveaxis(a.codes(), ax, -1)
    scales = np.moveaxis(a.scales, ax, -1)
    out = np.empty(codes.shape, dtype=np.float64)
    s_t = None if a.tensor_scale is None else Fraction(float(a.tensor_scale))
    for idx in np.ndindex(codes.shape):
        c, s = int(codes[idx]), int(scales[idx[:-1] + (idx[-1] // fmt.block_size,)])
        if fmt.name in mxst.FORMAT_NAMES:
            out[idx] = oracle.dequantize_value(c, s, fmt.name)
        else:
            out[idx] = oracle.dequantize_block_format(c, s, fmt.name, s_t)
    return np.moveaxis(out, -1, ax)


def same_values(got: np.ndarray, want64: np.ndarray) -> None:
    """``got`` (float32 or float64) equals the exact values rounded to its dtype."""
    with np.errstate(over="ignore"):
        want = want64.astype(got.dtype)
    assert got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(np.signbit(got[~np.isnan(got)]), np.signbit(want[~np.isnan(want)]))


MUTATIONS = ["none", "none", "none", "data_dtype", "scales_dtype", "data_shape", "scales_shape",
             "code_range", "padding", "axis", "nan_scale", "scale_range", "tensor_scale",
             "layout", "shape_type", "seed"]


@fuzz_settings(200)
@given(data=st.data())
def test_from_parts_and_dequantize_fuzz(backend, data) -> None:
    name = data.draw(st.sampled_from(NAMES))
    fmt = mxarray.get_format(name)
    shape = tuple(data.draw(st.lists(st.integers(1, 40), min_size=1, max_size=3)))
    if len(shape) > 1 and data.draw(st.booleans()):
        shape = (0,) + shape[1:]  # an empty lead dimension
    ax = data.draw(st.integers(0, len(shape) - 1))
    shape = shape[:ax] + (max(shape[ax], 1),) + shape[ax + 1:]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    codes = random_codes(rng, fmt, shape, ax)
    sshape = shape[:ax] + (-(-shape[ax] // fmt.block_size),) + shape[ax + 1:]
    top = fmt.scale.nan_code  # E8M0: 0xFF is NaN and valid; UE4M3: 0x7F is NaN
    scales = rng.integers(0, top + 1, size=sshape).astype(np.uint8)
    layout = data.draw(st.sampled_from(["codes", "packed"]))
    if layout == "packed":
        ref_packed = mxarray.get_backend("numpy").pack(
            _pad(np.moveaxis(codes, ax, -1), fmt), fmt)
        payload = ref_packed
    else:
        payload = codes
    kw = {"axis": ax - len(shape) * data.draw(st.booleans()), "layout": layout}
    if fmt.tensor_scale != "none":
        kw["tensor_scale"] = np.float32(rng.uniform(1e-3, 1e3))
    bad: dict[str, str] = {}
    mutation = data.draw(st.sampled_from(MUTATIONS))
    if mutation == "data_dtype":
        payload = payload.astype(data.draw(st.sampled_from([np.int8, np.int32, np.float32])))
        bad[mutation] = r"data"
    elif mutation == "scales_dtype":
        scales = scales.astype(data.draw(st.sampled_from([np.int8, np.uint16, np.float64])))
        bad[mutation] = r"scales"
    elif mutation == "data_shape":
        payload = payload[..., :-1] if payload.shape[-1] > 1 else np.concatenate(
            [payload, payload], axis=-1)
        bad[mutation] = r"data|shape|codes|packed"
    elif mutation == "scales_shape":
        scales = np.concatenate([scales, scales], axis=ax)
        bad[mutation] = r"scales"
    elif mutation == "code_range" and layout == "codes" and fmt.code_bits < 8 * np.dtype(
            fmt.code_dtype).itemsize and payload.size:
        payload = payload.copy()
        payload.reshape(-1)[rng.integers(payload.size)] = (1 << fmt.code_bits) + 1
        bad[mutation] = r"code"
    elif mutation == "padding" and layout == "packed" and shape[ax] % fmt.block_size and \
            payload.size and not fmt.sub_block_size:
        payload = payload.copy()
        payload[..., -1] = 0xFF
        bad[mutation] = r"padding"
    elif mutation == "axis":
        kw["axis"] = data.draw(st.sampled_from([len(shape), -len(shape) - 1, 1.0, None]))
        bad[mutation] = r"axis"
    elif mutation == "nan_scale" and scales.size:
        scales = scales.copy()
        scales.reshape(-1)[rng.integers(scales.size)] = fmt.scale.nan_code
    elif mutation == "scale_range" and fmt.scale.nan_code < 255 and scales.size:
        scales = scales.copy()
        scales.reshape(-1)[rng.integers(scales.size)] = rng.integers(fmt.scale.nan_code + 1, 256)
        bad[mutation] = r"scale"
    elif mutation == "tensor_scale":
        value = data.draw(st.sampled_from(TENSOR_SCALES_BAD + [None, 1.0]))
        kw["tensor_scale"] = value
        if (fmt.tensor_scale == "none") != (value is None) or any(
                value is v for v in TENSOR_SCALES_BAD):
            bad[mutation] = r"tensor_scale|tensor scale"
    elif mutation == "layout":
        kw["layout"] = data.draw(st.sampled_from(["bytes", 1, "Packed"]))
        bad[mutation] = r"layout"
    elif mutation == "shape_type":
        shape = data.draw(st.sampled_from([(1.0,) + shape[1:], "4x64", None]))
        bad[mutation] = r"shape"
    elif mutation == "seed":
        kw["seed"] = data.draw(st.sampled_from([3, -1]))
        bad[mutation] = r"seed"
    a = outcome(lambda: MXArray.from_parts(payload, scales, name, shape, **kw), bad)
    if a is None:
        return
    assert a.shape == shape and a.block_axis == ax and a.format is fmt
    assert_same_bits(a.codes(), codes)
    want = expected_values(a)
    for dtype in (np.float32, np.float64, "float32", np.dtype(">f8").newbyteorder("=")):
        got = mxarray.dequantize(a, dtype, backend=backend)
        same_values(host(got), want)
    out_kind = data.draw(st.sampled_from(["c", "fortran", "strided", "readonly", "f16",
                                          "shape", "list"]))
    out, err = _out_array(out_kind, shape)
    got = outcome(lambda: mxarray.dequantize(a, out=out, backend=backend),
                  {} if err is None else {"out": err})
    if got is not None:
        assert got is out
        same_values(out, want)


def _pad(moved_codes: np.ndarray, fmt) -> np.ndarray:
    padded = -(-moved_codes.shape[-1] // fmt.block_size) * fmt.block_size
    out = np.zeros(moved_codes.shape[:-1] + (padded,), dtype=moved_codes.dtype)
    out[..., : moved_codes.shape[-1]] = moved_codes
    return out


def _out_array(kind: str, shape: tuple[int, ...]):
    if kind == "c":
        return np.full(shape, np.nan, np.float32), None
    if kind == "fortran":
        return np.asfortranarray(np.full(shape, np.nan, np.float64)), None
    if kind == "strided":
        return np.full(shape[:-1] + (2 * shape[-1],), np.nan, np.float32)[..., ::2], None
    if kind == "readonly":
        out = np.zeros(shape, np.float32)
        out.flags.writeable = False
        return out, r"writeable"
    if kind == "f16":
        return np.zeros(shape, np.float16), r"out.*dtype|float32 or float64"
    if kind == "shape":
        return np.zeros(shape + (1,), np.float32), r"out.*shape"
    return np.zeros(shape, np.float32).tolist(), r"out.*ndarray"


@fuzz_settings(30)
@given(dtype=st.sampled_from([None, np.float16, np.int32, "bogus", [], np.complex64, "f4",
                              np.float64, ">f4", object]))
def test_dequantize_dtype_argument(backend, dtype) -> None:
    a = mxarray.quantize(np.linspace(-3, 3, 70), "mxfp6_e3m2", backend="numpy")
    valid = dtype in (np.float64, "f4")
    got = outcome(lambda: mxarray.dequantize(a, dtype, backend=backend),
                  {} if valid else {"dtype": r"dtype"})
    if got is not None:
        assert_same_bits(got, mxarray.dequantize(a, dtype, backend="numpy"))


# --- matmul ----------------------------------------------------------------------------------


@st.composite
def matmul_case(draw):
    """Two MX operands (valid or broken) and the bad-argument map."""
    fa, fb = draw(st.sampled_from(NAMES)), draw(st.sampled_from(NAMES))
    mutation = draw(st.sampled_from(["none"] * 5 + ["a_axis", "b_axis", "k", "not_mx"]))
    k = draw(st.integers(1, 70))
    low = 1 if mutation in ("a_axis", "b_axis") else 0  # the new block axis must not be empty
    m, n = draw(st.integers(low, 3)), draw(st.integers(low, 3))
    batch_a = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    batch_b = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    a_shape = (k,) if draw(st.integers(0, 4)) == 0 else batch_a + (m, k)
    b_shape = (k,) if draw(st.integers(0, 4)) == 0 else batch_b + (k, n)
    a_axis, b_axis = len(a_shape) - 1, max(len(b_shape) - 2, 0)
    bad: dict[str, str] = {}
    if mutation == "a_axis" and len(a_shape) > 1:
        a_axis = 0
        bad["a_axis"] = r"\ba\b.*block axis"
    elif mutation == "b_axis" and len(b_shape) > 1:
        b_axis = len(b_shape) - 1
        bad["b_axis"] = r"\bb\b.*block axis"
    elif mutation == "k":
        b_shape = b_shape[:b_axis] + (k + draw(st.integers(1, 40)),) + b_shape[b_axis + 1:]
        bad["k"] = r"columns.*rows|contract|mismatch|differ"
    a_batch, b_batch = a_shape[:-2], b_shape[:-2]
    try:
        np.broadcast_shapes(a_batch, b_batch)
    except ValueError:
        bad["batch"] = r"matmul.*batch"
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = mxarray.quantize(rng.standard_normal(a_shape) * 4.0, fa, axis=a_axis, backend="numpy")
    b = mxarray.quantize(rng.standard_normal(b_shape), fb, axis=b_axis, backend="numpy")
    if mutation == "not_mx":
        if draw(st.booleans()):
            a, bad["not_mx"] = mxarray.dequantize(a), r"\ba\b.*MXArray"
        else:
            b, bad["not_mx"] = mxarray.dequantize(b), r"\bb\b.*MXArray"
    return a, b, bad


def check_product(c, a: MXArray, b: MXArray) -> None:
    """Shape of numpy.matmul, float32, and every matrix within the spec's bound."""
    av, bv = mxarray.dequantize(a, np.float64), mxarray.dequantize(b, np.float64)
    want_shape = np.matmul(av, bv).shape
    c = host(c)
    assert c.dtype == np.float32 and c.shape == want_shape
    a2 = av[..., None, :] if av.ndim == 1 else av
    b2 = bv[..., :, None] if bv.ndim == 1 else bv
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    a2 = np.broadcast_to(a2, batch + a2.shape[-2:])
    b2 = np.broadcast_to(b2, batch + b2.shape[-2:])
    c2 = c.reshape(batch + (a2.shape[-2], b2.shape[-1]))
    for idx in np.ndindex(batch):
        oracle.check_dot_bound(c2[idx], a2[idx], b2[idx], exact=False)


@fuzz_settings(150)
@given(case=matmul_case(), entry=st.sampled_from(["core", "namespace", "operator"]))
def test_matmul_fuzz(backend, case, entry) -> None:
    a, b, bad = case
    if entry == "core":
        call = lambda: core_matmul(a, b, backend=backend)  # noqa: E731
    elif entry == "namespace":
        call = lambda: mxarray.matmul(a, b, backend=backend)  # noqa: E731
    else:
        def call():
            with mxarray.use_backend(backend):
                return a @ b
    if entry != "core" and "not_mx" in bad:  # the namespace refuses raw NumPy operands
        bad["not_mx"] = r"x[12] must be an mxarray array"
    if entry != "core" and "batch" in bad:  # its float32 fallback: NumPy's message
        bad["batch"] = r"matmul.*batch|could not be broadcast"
    if entry != "core" and ("a_axis" in bad or "b_axis" in bad) and "k" not in bad and \
            "batch" not in bad and "not_mx" not in bad:
        # The namespace falls back to float32 for other block axes (documented).
        bad = {}
    got = outcome(call, bad)
    if got is None:
        return
    if entry != "core" and isinstance(got, mxarray.Array):
        got = np.asarray(got)
    if a.block_axis == a.ndim - 1 and b.block_axis == max(b.ndim - 2, 0):
        check_product(got, a, b)
        if entry == "core" and backend != "numpy":  # and the reference's NaN pattern
            ref = core_matmul(a, b, backend="numpy")
            assert np.array_equal(np.isnan(host(got)), np.isnan(ref))
    else:  # the float32 fallback: NumPy's product of the float32 values
        want = np.matmul(mxarray.dequantize(a), mxarray.dequantize(b))
        assert np.array_equal(host(got), want)


@pytest.mark.parametrize("value", [10**400, np.complex64(1 + 1j), np.complex128(2)],
                         ids=["int-beyond-float64", "complex64", "complex128"])
def test_tensor_scale_of_the_wrong_kind_is_a_clear_error(value) -> None:
    # Regression: 10**400 raised OverflowError from np.float32(); complex values were
    # accepted with a ComplexWarning, silently dropping the imaginary part.
    x = np.ones(16)
    with pytest.raises((TypeError, ValueError), match="tensor_scale"):
        mxarray.quantize(x, "nvfp4", tensor_scale=value)
    with pytest.raises((TypeError, ValueError), match="tensor_scale"):
        MXArray.from_parts(np.zeros(16, np.uint8), np.zeros(1, np.uint8), "nvfp4", (16,),
                           tensor_scale=value)


def test_codes_of_an_array_without_blocks() -> None:
    # The 0-size case of setitem's reshape defect, checked for codes() and dequantize.
    a = mxarray.quantize(np.ones((0, 3, 40)), "mxfp6_e3m2", axis=2)
    assert a.codes().shape == (0, 3, 40) and a.codes().dtype == np.uint8
    assert mxarray.dequantize(a).shape == (0, 3, 40)


def test_matmul_batch_mismatch_names_matmul() -> None:
    # NumPy's "shape mismatch: objects cannot be broadcast to a single shape" named
    # neither matmul nor the operands.
    a = mxarray.quantize(np.ones((2, 3, 64)), "mxint8")
    b = mxarray.quantize(np.ones((3, 64, 2)), "mxint8", axis=1)
    with pytest.raises(ValueError, match=r"matmul.*batch.*\(2, 3, 64\).*\(3, 64, 2\)"):
        core_matmul(a, b)


def test_dequantize_dtype_none_is_refused() -> None:
    # numpy.dtype(None) is float64: dequantize(a, None) silently gave float64 where the
    # documented choices are float32 (the default) and float64.
    a = mxarray.quantize(np.ones(4), "mxint8")
    with pytest.raises(TypeError, match="dtype"):
        mxarray.dequantize(a, None)


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp4_e2m1", "mx6", "nvfp4"])
@pytest.mark.parametrize("axis", [0, 1])
def test_from_parts_keeps_no_reference_to_the_callers_arrays(fmt, axis) -> None:
    # Regression: from_parts kept a view of the caller's scales (packed bytes were
    # repacked, so only the scales aliased): writing into that array afterwards changed
    # the MXArray's values behind its back, without any validation.
    x = np.linspace(-3, 3, 2 * 48, dtype=np.float32).reshape(2, 48)
    x = x if axis == 1 else x.T.copy()
    a = mxarray.quantize(x, fmt, axis=axis)
    packed, scales = np.array(a.packed), np.array(a.scales)
    extra = {} if a.tensor_scale is None else {"tensor_scale": a.tensor_scale}
    b = MXArray.from_parts(packed, scales, fmt, x.shape, axis=axis, **extra)
    before = mxarray.dequantize(b)
    packed[...] = 0
    scales[...] = 0
    assert np.array_equal(mxarray.dequantize(b), before, equal_nan=True)
    assert packed.flags.writeable and scales.flags.writeable


@pytest.mark.parametrize("fmt", ["mxfp6_e3m2", "mx9", "mx4"])
def test_from_parts_refuses_nonzero_padding_in_the_last_block_only(fmt) -> None:
    # from_parts now unpacks only each row's last block to check the padding (it used to
    # unpack and repack the whole array: 8 bytes of temporaries per packed byte).
    a = mxarray.quantize(np.linspace(-1, 1, 3 * 40).reshape(3, 40), fmt)
    packed = np.array(a.packed)
    MXArray.from_parts(packed, np.array(a.scales), fmt, a.shape)  # the original is fine
    full = np.array(a.packed)
    full[1, : a.format.bytes_per_block] = 0xFF  # a full first block: codes, not padding
    MXArray.from_parts(full, np.array(a.scales), fmt, a.shape)
    packed[1, -a.format.bytes_per_block:] = 0xFF  # the last block, padding included
    with pytest.raises(ValueError, match="padding|sub-block"):
        MXArray.from_parts(packed, np.array(a.scales), fmt, a.shape)
