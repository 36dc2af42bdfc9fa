"""Every bad input gives a TypeError or ValueError whose message names the argument."""

from __future__ import annotations

import numpy as np
import pytest

import mxarray
from mxarray import MXArray
from mxarray.core import matmul

X = np.linspace(-1, 1, 4 * 64).reshape(4, 64)
Q = mxarray.quantize(X, "mxint8", backend="numpy")
QB = mxarray.quantize(np.ones((64, 3)), "mxint8", axis=0, backend="numpy")
Q4 = mxarray.quantize(X, "mxfp4_e2m1", backend="numpy")


def quantize(x=X, fmt="mxfp8_e4m3", **kw):
    return mxarray.quantize(x, fmt, **kw)


def from_parts(data=Q.packed, scales=Q.scales, fmt="mxint8", shape=(4, 64), **kw):
    return MXArray.from_parts(data, scales, fmt, shape, **kw)


CASES = [
    # quantize: the input array
    ("int input", lambda: quantize(np.arange(64, dtype=np.int32)), TypeError, r"\bx\b.*int32"),
    ("python ints", lambda: quantize([1, 2, 3]), TypeError, r"\bx\b.*int"),
    ("bool input", lambda: quantize(np.ones(8, bool)), TypeError, r"\bx\b.*bool"),
    ("complex input", lambda: quantize(np.ones(8, complex)), TypeError, r"\bx\b.*complex"),
    ("object input", lambda: quantize(np.array([1.0, None])), TypeError, r"\bx\b.*object"),
    ("string input", lambda: quantize(np.array(["a"])), TypeError, r"\bx\b"),
    ("0-d input", lambda: quantize(np.float32(1.0)), ValueError, r"\bx\b.*dimension"),
    ("MXArray input", lambda: quantize(Q), TypeError, r"\bx\b.*MXArray"),
    ("empty block axis", lambda: quantize(np.ones((3, 0))), ValueError, r"block axis.*empty"),
    ("empty 1-d", lambda: quantize(np.ones(0)), ValueError, r"block axis.*empty"),
    # quantize: the options
    ("axis too big", lambda: quantize(axis=2), ValueError, r"axis.*range"),
    ("axis too small", lambda: quantize(axis=-3), ValueError, r"axis.*range"),
    ("float axis", lambda: quantize(axis=1.0), TypeError, r"axis.*integer"),
    ("None axis", lambda: quantize(axis=None), TypeError, r"axis.*integer"),
    ("bool axis", lambda: quantize(axis=True), TypeError, r"axis.*integer"),
    ("unknown format", lambda: quantize(fmt="mxfp5"), ValueError, r"format.*mxfp5"),
    ("format type", lambda: quantize(fmt=None), TypeError, r"fmt"),
    ("unknown rounding", lambda: quantize(rounding="up"), ValueError, r"rounding.*'up'"),
    ("rounding type", lambda: quantize(rounding=None), (TypeError, ValueError), r"rounding"),
    ("unknown scale mode", lambda: quantize(scale_mode="round"), ValueError,
     r"scale.mode.*'round'"),
    ("negative seed", lambda: quantize(rounding="stochastic", seed=-1), ValueError, r"seed"),
    ("seed too big", lambda: quantize(rounding="stochastic", seed=2**64), ValueError, r"seed"),
    ("float seed", lambda: quantize(rounding="stochastic", seed=1.5), TypeError, r"seed"),
    ("bool seed", lambda: quantize(rounding="stochastic", seed=True), TypeError, r"seed"),
    ("unknown backend", lambda: quantize(backend="nope"), ValueError, r"backend.*nope"),
    # dequantize
    ("dequantize ndarray", lambda: mxarray.dequantize(X), TypeError, r"\ba\b.*MXArray"),
    ("dequantize float16", lambda: mxarray.dequantize(Q, np.float16), TypeError, r"dtype"),
    ("dequantize int", lambda: mxarray.dequantize(Q, np.int32), TypeError, r"dtype"),
    ("dequantize bogus dtype", lambda: mxarray.dequantize(Q, "bogus"), TypeError, r"dtype"),
    # from_parts
    ("direct construction", lambda: MXArray(), TypeError, r"quantize|from_parts"),
    ("wrong data shape", lambda: from_parts(shape=(4, 65)), ValueError, r"data.*shape"),
    ("data dtype", lambda: from_parts(data=Q.packed.astype(np.int8)), TypeError,
     r"data.*uint8"),
    ("scales dtype", lambda: from_parts(scales=Q.scales.astype(np.int16)), TypeError,
     r"scales.*uint8"),
    ("scales shape", lambda: from_parts(scales=Q.scales[:, :1]), ValueError, r"scales.*shape"),
    ("codes out of range", lambda: from_parts(np.full((4, 64), 16, np.uint8), Q4.scales,
                                              "mxfp4_e2m1", layout="codes"), ValueError,
     r"code.*range"),
    ("nonzero padding", lambda: from_parts(np.full((4, 32), 255, np.uint8), Q4.scales[:, :1],
                                           "mxfp4_e2m1", (4, 40), layout="packed"), ValueError,
     r"padding"),
    ("ambiguous layout", lambda: from_parts(np.zeros((32, 32), np.uint8),
                                            np.zeros((1, 32), np.uint8), "mxint8", (32, 32),
                                            axis=0), ValueError, r"layout"),
    ("unknown layout", lambda: from_parts(layout="bytes"), ValueError, r"layout.*bytes"),
    ("packed of wrong shape", lambda: from_parts(Q.codes()[:, :40], Q.scales, shape=(4, 64),
                                                 layout="packed"), ValueError,
     r"packed.*shape|data.*shape"),
    ("codes of wrong shape", lambda: from_parts(Q.packed[:, :40], layout="codes"), ValueError,
     r"codes.*shape|data.*shape"),
    ("0-d shape", lambda: from_parts(shape=()), ValueError, r"dimension|shape"),
    ("negative shape", lambda: from_parts(shape=(4, -64)), ValueError, r"shape"),
    ("shape type", lambda: from_parts(shape="4x64"), TypeError, r"shape"),
    ("from_parts axis", lambda: from_parts(axis=3), ValueError, r"axis.*range"),
    ("from_parts format", lambda: from_parts(fmt="fp8"), ValueError, r"format"),
    ("from_parts rounding", lambda: from_parts(rounding="up"), ValueError, r"rounding"),
    # matmul
    ("matmul a not MX", lambda: matmul(X, QB), TypeError, r"\ba\b.*MXArray"),
    ("matmul b not MX", lambda: matmul(Q, np.ones((64, 3))), TypeError, r"\bb\b.*MXArray"),
    ("matmul a axis", lambda: matmul(mxarray.quantize(X, "mxint8", axis=0), QB), ValueError,
     r"\ba\b.*block.*axis"),
    ("matmul b axis", lambda: matmul(Q, Q), ValueError, r"\bb\b.*block.*axis"),
    ("matmul K mismatch", lambda: matmul(Q, mxarray.quantize(np.ones((65, 3)), "mxint8",
                                                             axis=0)), ValueError,
     r"64.*65"),
]


@pytest.mark.parametrize("call, exc, pattern", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, exc, pattern) -> None:
    with pytest.raises(exc, match=pattern):
        call()


def test_valid_edge_inputs_are_accepted() -> None:
    """The counterparts of the error cases that must work."""
    assert quantize(axis=-2).block_axis == 0
    assert quantize(axis=np.int64(1)).block_axis == 1
    assert quantize(fmt=mxarray.mxint8).format is mxarray.mxint8
    assert quantize(fmt="MXFP4_E2M1").format is mxarray.mxfp4_e2m1
    assert quantize(rounding="stochastic", seed=np.uint64(2**64 - 1)).seed == 2**64 - 1
    assert quantize([0.5, 1.5]).shape == (2,)
    assert mxarray.dequantize(Q, "float64").dtype == np.float64
    assert from_parts(np.zeros((32, 32), np.uint8), np.zeros((1, 32), np.uint8), "mxint8",
                      (32, 32), axis=0, layout="codes").shape == (32, 32)


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
def test_big_endian_input_gives_the_native_bits(dtype, backend) -> None:
    # Big-endian arrays (from files) used to be refused as "got dtype >f4".
    x = X.astype(dtype)
    got = mxarray.quantize(x, "mxfp6_e2m3", backend=backend)
    want = mxarray.quantize(x.astype(x.dtype.newbyteorder("=")), "mxfp6_e2m3", backend="numpy")
    np.testing.assert_array_equal(got.packed, want.packed)
    np.testing.assert_array_equal(got.scales, want.scales)


# --- dequantize(out=...) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "out, error, message",
    [
        (np.zeros((4, 64), np.float16), TypeError, "float32 or float64"),
        (np.zeros((4, 32), np.float32), ValueError, "shape"),
        ([[0.0] * 64] * 4, TypeError, "ndarray"),
    ],
)
def test_dequantize_out_is_validated(out, error, message) -> None:
    q = mxarray.quantize(np.ones((4, 64), np.float32), "mxfp8_e4m3", backend="numpy")
    with pytest.raises(error, match=message):
        mxarray.dequantize(q, out=out, backend="numpy")


def test_dequantize_out_must_be_writeable() -> None:
    q = mxarray.quantize(np.ones((4, 64), np.float32), "mxfp8_e4m3", backend="numpy")
    out = np.zeros((4, 64), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        mxarray.dequantize(q, out=out)


def test_from_parts_says_what_wide_codes_for_a_narrow_format_look_like() -> None:
    """One-byte FP8 codes passed as FP4 codes: the message counts them against the
    total and names the likely mix-up (issue 16: "536826305 code(s) out of range")."""
    codes = mxarray.quantize(np.linspace(-1, 1, 64), "mxfp8_e4m3").codes()
    scales = np.full(2, 127, np.uint8)
    with pytest.raises(ValueError, match=r"of 64 code\(s\) out of range for mxfp4_e2m1.*"
                                         r"layout='packed'"):
        mxarray.MXArray.from_parts(codes, scales, "mxfp4_e2m1", shape=(64,), layout="codes")
