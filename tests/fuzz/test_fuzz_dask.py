"""Fuzz ``mxarray.dask``: quantize, dequantize, store and quantize_npy.

Random small arrays with random chunkings (uneven, 1-element and empty chunks), axes,
formats, rounding and scale modes and seeds: the lazy result must be bit-identical to
:func:`mxarray.quantize` / :func:`mxarray.dequantize` in memory.  Bad arguments must
raise TypeError/ValueError naming the problem.  The synchronous scheduler keeps it fast.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

da = pytest.importorskip("dask.array", reason="mxarray.dask needs the optional dask extra")
dask = pytest.importorskip("dask")

import mxarray  # noqa: E402
import mxarray.dask as mxdask  # noqa: E402
from support.hardening import fuzz_settings  # noqa: E402

DOCUMENTED = (TypeError, ValueError)
NAMES = ("mxfp8_e5m2", "mxfp8_e4m3", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8",
         "mx9", "mx6", "mx4", "nvfp4")
ROUNDINGS = ("even", "nearest", "toward_zero", "stochastic")
SCALE_MODES = ("floor", "ceil", "rceil", "even")


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def chunking(draw, n: int) -> tuple[int, ...]:
    """Chunk lengths summing to ``n``: random cuts, with empty chunks now and then."""
    if n == 0:
        return (0,)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = [0] + cuts + [n]
    return tuple(b - a for a, b in itertools.pairwise(bounds))


@st.composite
def cases(draw):
    ndim = draw(st.integers(1, 3))
    shape = [0 if draw(st.integers(0, 14)) == 0 else draw(st.integers(1, 70))
             for _ in range(ndim)]  # an empty axis now and then
    while math.prod(shape) > 900:
        shape[shape.index(max(shape))] //= 2
    dtype = draw(st.sampled_from(["<f2", "<f4", "<f8", ">f2", ">f4", ">f8"]))
    n = math.prod(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(n) * 2.0 ** draw(st.integers(-20, 20))
    if n and draw(st.booleans()):
        x[rng.integers(0, n, size=2)] = draw(st.sampled_from([np.nan, np.inf, 0.0, 1e30]))
    with np.errstate(over="ignore"):
        x = x.astype(dtype).reshape(shape)
    chunks = tuple(chunking(draw, d) for d in shape)
    return x, chunks


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        a.view(np.uint8), b.view(np.uint8))


@fuzz_settings(120)
@given(case=cases(), name=st.sampled_from(NAMES), data=st.data())
def test_dask_quantize_equals_in_memory(case, name, data) -> None:
    x, chunks = case
    ax = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    rounding = data.draw(st.sampled_from(ROUNDINGS), label="rounding")
    mode = data.draw(st.sampled_from(SCALE_MODES), label="scale_mode")
    seed = data.draw(st.integers(0, 2**64 - 1), label="seed")
    kwargs = {"axis": ax, "rounding": rounding, "scale_mode": mode, "seed": seed}
    try:
        want = mxarray.quantize(x, name, backend="numpy", **kwargs)
    except DOCUMENTED as err:  # the in-memory refusal must be the lazy one too
        with pytest.raises(type(err)):
            mxdask.quantize(da.from_array(x, chunks=chunks), name, **kwargs)
        event(f"refused in memory and lazily ({type(err).__name__})")
        return
    lazy = da.from_array(x, chunks=chunks)
    if mxarray.get_format(name).tensor_scale != "none":
        with pytest.raises(ValueError, match="per-tensor scale"):
            mxdask.quantize(lazy, name, **kwargs)
        event("per-tensor scale refused")
        return
    q = mxdask.quantize(lazy, name, **kwargs)
    got = q.compute()
    assert same_bits(got.packed, want.packed) and same_bits(got.scales, want.scales)
    assert got.shape == want.shape and got.block_axis == want.block_axis
    assert got.seed == (seed if rounding == "stochastic" else None)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    assert same_bits(mxdask.dequantize(q, dtype).compute(),
                     mxarray.dequantize(want, dtype, backend="numpy"))
    packed = np.full(q.packed.shape, 0xAB, np.uint8)
    scales = np.full(q.canonical_scales.shape, 0xAB, np.uint8)
    mxdask.store(q, packed, scales)
    assert same_bits(packed, q.packed.compute()) and same_bits(scales, q.canonical_scales.compute())
    event("bit-identical")


@fuzz_settings(30)
@given(case=cases(), name=st.sampled_from(NAMES[:9]), data=st.data())
def test_quantize_npy_equals_in_memory(case, name, data, tmp_path) -> None:
    x, _ = case
    ax = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    chunk_bytes = data.draw(st.sampled_from([1, 7, 64, 512, 4096, 2**26]), label="chunk_bytes")
    src, p, s = tmp_path / "x.npy", tmp_path / "p.npy", tmp_path / "s.npy"
    np.save(src, x)
    if x.shape[ax] == 0:
        with pytest.raises(ValueError, match="empty"):
            mxdask.quantize_npy(src, p, s, name, axis=ax, chunk_bytes=chunk_bytes)
        return
    q = mxdask.quantize_npy(src, p, s, name, axis=ax, chunk_bytes=chunk_bytes, seed=5,
                            rounding="stochastic")
    want = mxarray.quantize(x, name, axis=ax, backend="numpy", rounding="stochastic", seed=5)
    got = q.compute()
    assert same_bits(got.packed, want.packed) and same_bits(got.scales, want.scales)
    assert same_bits(np.load(p), q.packed.compute()) and same_bits(np.load(s), q.canonical_scales.compute())
    event("bit-identical")


def test_empty_chunks_along_the_block_axis() -> None:
    # regression: a chunking with an empty chunk along the block axis, e.g. (32, 0, 8),
    # was kept as it is and its empty chunk quantized on its own, which raised
    # "the block axis ... is empty" for a valid array
    x = np.linspace(-2, 2, 40, dtype=np.float32)
    q = mxdask.quantize(da.from_array(x, chunks=((32, 0, 8),)), "mxfp8_e4m3")
    want = mxarray.quantize(x, "mxfp8_e4m3")
    got = q.compute()
    assert same_bits(got.packed, want.packed) and same_bits(got.scales, want.scales)
    assert same_bits(mxdask.dequantize(q).compute(), want.dequantize())


def test_big_endian_input_is_accepted(tmp_path) -> None:
    # regression: mxarray.dask refused ">f4" data (a big-endian .npy file, say) with
    # TypeError, where mxarray.quantize accepts it
    x = np.linspace(-3, 3, 64).astype(">f4")
    want = mxarray.quantize(x, "mxfp8_e4m3")
    q = mxdask.quantize(da.from_array(x, chunks=32), "mxfp8_e4m3")
    assert same_bits(q.compute().packed, want.packed)
    np.save(tmp_path / "x.npy", x)
    q = mxdask.quantize_npy(tmp_path / "x.npy", tmp_path / "p.npy", tmp_path / "s.npy",
                            "mxfp8_e4m3")
    assert same_bits(q.compute().packed, want.packed)


def test_quantize_npy_names_a_source_that_is_not_npy(tmp_path) -> None:
    # regression: a text file was reported by np.load as "pickled (object) data"
    (tmp_path / "x.npy").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"x\.npy is not a \.npy file"):
        mxdask.quantize_npy(tmp_path / "x.npy", tmp_path / "p.npy", tmp_path / "s.npy", "mxint8")


def test_quantize_npy_of_an_empty_file(tmp_path) -> None:
    # regression: a source with no elements (shape (0, 40)) made dask's "auto" chunking
    # divide by zero (ZeroDivisionError)
    np.save(tmp_path / "x.npy", np.zeros((0, 40), np.float32))
    q = mxdask.quantize_npy(tmp_path / "x.npy", tmp_path / "p.npy", tmp_path / "s.npy",
                            "mxfp4_e2m1", chunk_bytes=64)
    got, want = q.compute(), mxarray.quantize(np.zeros((0, 40), np.float32), "mxfp4_e2m1")
    assert same_bits(got.packed, want.packed) and same_bits(got.scales, want.scales)


def bad_calls(tmp_path):
    x = da.from_array(np.ones((2, 40), np.float32), chunks=(1, 32))
    q = mxdask.quantize(x, "mxint8")
    good = tmp_path / "good.npy"
    np.save(good, np.ones((2, 40), np.float32))
    ints = tmp_path / "ints.npy"
    np.save(ints, np.ones((2, 40), np.int32))
    text = tmp_path / "text.npy"
    text.write_text("not an npy file")
    out = (tmp_path / "p.npy", tmp_path / "s.npy")
    return [
        (lambda: mxdask.quantize(np.ones(4), "mxint8"), TypeError, r"dask array"),
        (lambda: mxdask.quantize(x.astype(np.int32), "mxint8"), TypeError, r"dtype"),
        (lambda: mxdask.quantize(x.astype(np.complex64), "mxint8"), TypeError, r"dtype"),
        (lambda: mxdask.quantize(da.ones((), dtype=np.float32), "mxint8"), ValueError, r"0-d"),
        (lambda: mxdask.quantize(da.ones((3, 0)), "mxint8"), ValueError, r"empty"),
        (lambda: mxdask.quantize(x, "mxint9"), ValueError, r"unknown MX format"),
        (lambda: mxdask.quantize(x, None), TypeError, r"fmt"),
        (lambda: mxdask.quantize(x, "nvfp4"), ValueError, r"per-tensor scale"),
        (lambda: mxdask.quantize(x, "mxint8", axis=2), ValueError, r"axis"),
        (lambda: mxdask.quantize(x, "mxint8", axis=1.0), TypeError, r"axis"),
        (lambda: mxdask.quantize(x, "mxint8", axis=True), TypeError, r"axis"),
        (lambda: mxdask.quantize(x, "mxint8", rounding="up"), ValueError, r"rounding"),
        (lambda: mxdask.quantize(x, "mxint8", scale_mode="max"), ValueError, r"scale mode"),
        (lambda: mxdask.quantize(x, "mxint8", rounding="stochastic", seed=-1), ValueError,
         r"seed"),
        (lambda: mxdask.quantize(x, "mxint8", rounding="stochastic", seed=1.5), TypeError,
         r"seed"),
        (lambda: mxdask.quantize(x, "mxint8", backend="nope"), ValueError, r"backend"),
        (lambda: mxdask.dequantize(q, backend="nope"), ValueError, r"backend"),
        (lambda: mxdask.dequantize(q.compute()), TypeError, r"DaskMXArray"),
        (lambda: mxdask.dequantize(q, np.int8), TypeError, r"dtype"),
        (lambda: mxdask.dequantize(q, None), TypeError, r"dtype"),
        (lambda: mxdask.dequantize(q, "nonsense"), TypeError, r"dtype|data type"),
        (lambda: mxdask.store(q.compute(), np.empty(1), np.empty(1)), TypeError, r"DaskMXArray"),
        (lambda: mxdask.DaskMXArray(q.packed, q.canonical_scales, "mxint8", (2, 65), 1), ValueError,
         r"shape"),
        (lambda: mxdask.DaskMXArray(q.packed.compute(), q.canonical_scales, "mxint8", (2, 40), 1),
         TypeError, r"dask array"),
        (lambda: mxdask.DaskMXArray(q.packed, q.canonical_scales, "nvfp4", (2, 40), 1), ValueError,
         r"per-tensor scale"),
        (lambda: mxdask.quantize_npy(good, *out, "mxint8", chunk_bytes=0), ValueError,
         r"chunk_bytes"),
        (lambda: mxdask.quantize_npy(good, *out, "mxint8", chunk_bytes=1.5), ValueError,
         r"chunk_bytes"),
        (lambda: mxdask.quantize_npy(good, *out, "mxint8", chunk_bytes=True), ValueError,
         r"chunk_bytes"),
        (lambda: mxdask.quantize_npy(ints, *out, "mxint8"), TypeError, r"dtype"),
        (lambda: mxdask.quantize_npy(text, *out, "mxint8"), ValueError, r"text.npy is not a .npy"),
        (lambda: mxdask.quantize_npy(tmp_path / "missing.npy", *out, "mxint8"),
         FileNotFoundError, r"missing"),
        (lambda: mxdask.quantize_npy(good, *out, "nvfp4"), ValueError, r"per-tensor scale"),
    ]


def test_bad_arguments(tmp_path) -> None:
    for i, (call, kind, pattern) in enumerate(bad_calls(tmp_path)):
        with pytest.raises(kind) as info:
            call()
        assert re.search(pattern, str(info.value)), (i, pattern, str(info.value))


def test_bad_backends_and_dtypes_fail_at_the_call() -> None:
    # regressions: backend="nope" was accepted and failed only inside compute(), and
    # dequantize(q, None) silently gave float64 (np.dtype(None)), where the in-memory
    # functions refuse both at once
    q = mxdask.quantize(da.ones((2, 40), chunks=(1, 32)), "mxint8")
    with pytest.raises(ValueError, match="unknown backend"):
        mxdask.quantize(da.ones((2, 40), chunks=(1, 32)), "mxint8", backend="nope")
    with pytest.raises(ValueError, match="unknown backend"):
        mxdask.dequantize(q, backend="nope")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        mxdask.dequantize(q, None)
