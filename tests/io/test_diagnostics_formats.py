"""mxarray.diagnostics on the block formats beyond OCP: block_stats counts what NVFP4 and
the microexponent formats do, and explain walks what it can or refuses clearly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import mxarray
from mxarray.diagnostics import block_stats, explain
from mxarray.formats import BLOCK_FORMATS, get_format, register

# Registered when first used (registration lasts the session): a sign-magnitude element
# without microexponents, and MXFP4 elements under a 5-bit exponent scale (bias 15).
REGISTERED = {
    "diag_signmag8": {"block_size": 8, "scale": "e8m0",
                      "element": {"kind": "signmag", "bits": 8, "mantissa_bits": 6}},
    "diag_fp4_exp5": {"block_size": 8, "scale": "exponent", "scale_bits": 5,
                      "element": "mxfp4_e2m1"},
}
BUILT_IN = list(BLOCK_FORMATS)


@pytest.mark.parametrize("name", ["mx9", "mx6", "mx4", "nvfp4"])
def test_explain_refuses_formats_whose_rules_it_does_not_walk(name) -> None:
    # It used to explain them as if they were OCP formats: wrong codes and scale bytes.
    with pytest.raises(ValueError, match="microexponents" if name != "nvfp4" else "ue4m3"):
        explain(np.linspace(-1, 1, 32), name)


@pytest.mark.parametrize("name", list(REGISTERED))
def test_explain_matches_quantize_for_registered_formats(name) -> None:
    fmt = BLOCK_FORMATS.get(name) or register(dict(REGISTERED[name], name=name))
    rng = np.random.default_rng(8)
    scales = (1.0, 2.0**-140, 2.0**40)  # the 5-bit scale clamps at 2**-15 and 2**15
    for scale, rounding, scale_mode in itertools.product(
            scales, ("even", "nearest", "toward_zero"), mxarray.SCALE_MODES):
        x = rng.standard_normal(24) * scale
        x[3], x[5] = -0.0, -abs(x[5]) * 1e-6  # negative zero, a negative that underflows
        q = mxarray.quantize(x, fmt, rounding=rounding, scale_mode=scale_mode)
        for b in range(3):
            e = explain(x, fmt, b, rounding=rounding, scale_mode=scale_mode)
            np.testing.assert_array_equal(e.codes, q.codes()[8 * b: 8 * b + 8])
            assert e.scale_byte == int(q.scales[b])


def test_block_stats_of_nvfp4_use_its_scales() -> None:
    x = np.zeros(48, np.float32)
    x[:4] = [10.0, -7.5, 3.2, 1.0]
    x[16:18] = [0.3, 1e-3]   # 0.3 / (6 S_t) = 13.44 rounds to the block scale 13: 0.3 > 13*6*S_t
    x[40] = np.inf            # the third block is a NaN block (UE4M3 NaN code 0x7F)
    s = block_stats(x, "nvfp4")
    t = np.float64(np.float32(10.0) / np.float32(2688.0))  # the tensor scale, fl32(amax/2688)
    assert s.nan_blocks.tolist() == [False, False, True]
    assert s.saturated.tolist() == [int(10.0 > 448 * 6 * t), int(0.3 > 13 * 6 * t), 0]
    assert s.saturated[1] == 1
    # 1e-3 / (13 t) = 0.0206 < 0.25 (half the smallest E2M1 step): underflow
    assert s.underflow.tolist() == [0, 1, 0]
    assert s.scale_histogram[0x7F] == 1
    assert "block scales:         13..448" in str(s)
    assert "block scales:         none" in str(block_stats(np.full(16, np.nan), "nvfp4"))


def test_block_stats_count_microexponent_saturation() -> None:
    # MX4, X = 0: 0.95 and 0.9 share D = 1 (step 1/4), round to 4 and 3.6 > 3 = the largest
    # magnitude, so both are clamped to 0.75 (docs/block_formats.md, "Magnitude overflow")
    x = np.zeros(16)
    x[:4] = [1.0, 0.5, 0.95, 0.9]
    s = block_stats(x, "mx4")
    assert s.saturated.tolist() == [2]
    assert mxarray.quantize(x, "mx4").dequantize()[2:4].tolist() == [0.75, 0.75]


@pytest.mark.parametrize("name", [n for n in BUILT_IN if n != "nvfp4"])
def test_block_stats_flag_exactly_the_clamped_elements(name) -> None:
    # With power-of-two scales, an element was clamped iff it is stored as the largest
    # magnitude of its grid (max_normal * 2**(X - D)) and its input lies beyond that.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 64)) * np.exp2(rng.integers(-4, 4, (6, 64)))
    q = mxarray.quantize(x, name)
    fmt = get_format(name)
    codes, y = q.codes(), q.dequantize(np.float64)
    shift = (codes >> fmt.bits).astype(np.int64)  # the microexponent D (0 without one)
    at_top = np.abs(fmt.decode(codes)) == fmt.max_normal * np.exp2(-shift)
    clamped = at_top & (np.abs(x) > np.abs(y))
    per_block = clamped.reshape(6, -1, fmt.block_size).sum(axis=2)
    s = block_stats(x, q=q)
    np.testing.assert_array_equal(s.saturated, per_block)


def test_big_endian_input_is_read_in_native_order() -> None:
    x = np.linspace(-3, 3, 32)
    s = block_stats(x.astype(">f4"), "mxfp4_e2m1")
    np.testing.assert_array_equal(s.scale_histogram, block_stats(x, "mxfp4_e2m1").scale_histogram)
    np.testing.assert_array_equal(explain(x.astype(">f8"), "mxint8").codes,
                                  mxarray.quantize(x, "mxint8").codes())
