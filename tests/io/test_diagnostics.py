"""mxarray.diagnostics: explain() agrees with quantize(), block_stats() with explain()."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mxarray
from support import strategies
from mxarray.diagnostics import block_stats, explain

DETERMINISTIC = strategies.DETERMINISTIC_ROUNDINGS


def _block_codes(q: mxarray.MXArray, b: int) -> tuple[np.ndarray, int]:
    """Codes and scale byte of canonical block ``b`` of a 1-D MXArray."""
    bs = q.format.block_size
    codes = q.codes()[b * bs : (b + 1) * bs]
    return codes, int(q.scales[b])


@given(data=st.data())
def test_explained_codes_and_scales_equal_quantize(data) -> None:
    name = data.draw(st.sampled_from(strategies.FORMAT_NAMES))
    rounding = data.draw(st.sampled_from(DETERMINISTIC))
    scale_mode = data.draw(st.sampled_from(strategies.SCALE_MODES))
    x = data.draw(strategies.blocks(name, n_blocks=2)).ravel()
    x = x[: data.draw(st.integers(1, x.size))]  # a partial last block too
    q = mxarray.quantize(x, name, rounding=rounding, scale_mode=scale_mode, backend="numpy")
    for b in range(q.scales.shape[0]):
        e = explain(x, name, b, rounding=rounding, scale_mode=scale_mode)
        codes, scale = _block_codes(q, b)
        assert e.scale_byte == scale
        np.testing.assert_array_equal(e.codes, codes)
        _check_reasons(e)


def _check_reasons(e) -> None:
    """Each reason is consistent with the numbers reported beside it."""
    f = e.format
    for el in e.elements:
        if e.scale_byte == 0xFF:
            assert el.reason.startswith("NaN block") and el.code == 0
            continue
        mag = abs(el.scaled)
        assert el.element == f.decode_table[el.code]
        if el.reason == "saturated":
            assert mag > f.max_normal and abs(el.element) == f.max_normal
            continue
        assert abs(el.lower) <= mag <= abs(el.upper)
        chosen = abs(el.element)
        assert chosen in (abs(el.lower), abs(el.upper))
        if el.reason in ("exact", "zero"):
            assert chosen == mag
        elif el.reason == "underflow to zero":
            assert el.value != 0 and chosen == 0
        elif el.reason.startswith("rounded"):
            nearer = abs(el.lower) if "down" in el.reason else abs(el.upper)
            other = abs(el.upper) if "down" in el.reason else abs(el.lower)
            assert chosen == nearer and abs(mag - nearer) < abs(mag - other)
        elif el.reason.startswith("tie"):
            assert mag - abs(el.lower) == abs(el.upper) - mag
        else:
            assert el.reason == "truncated toward zero" and chosen == abs(el.lower)
        if el.value != 0 and chosen != 0 and f.kind == "float":
            assert math.copysign(1, el.element) == math.copysign(1, el.value)


@pytest.mark.parametrize("name", strategies.FORMAT_NAMES)
@pytest.mark.parametrize("axis,block", [(0, (1, 2)), (1, (2, 0)), (0, 5), (-1, -1)])
def test_explain_on_a_block_of_a_2d_array(name, axis, block) -> None:
    bs = mxarray.FORMATS[name].block_size
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2 * bs + 3, 3 * bs - 1)) * 8).astype(np.float32)
    q = mxarray.quantize(x, name, axis=axis, backend="numpy")
    e = explain(x, name, block, axis=axis)
    ax = axis % 2
    lead, nb = x.shape[1 - ax], q.scales.shape[ax]
    flat = (block[1 - ax] * nb + block[ax]) if isinstance(block, tuple) else block % (lead * nb)
    row, j = divmod(flat, nb)
    index = (slice(None), row) if ax == 0 else (row, slice(None))
    codes = q.codes()[index][j * bs : (j + 1) * bs]
    np.testing.assert_array_equal(e.codes, codes)
    assert e.scale_byte == int(q.scales[(j, row) if ax == 0 else (row, j)])
    assert e.start == j * bs and len(e.elements) == len(codes)


def test_explain_table_names_the_rule_and_every_element() -> None:
    x = np.array([0.3, -1.7, 5.0, 100.0, 0.0, -0.0, 12.0, 80.0, 112.0])
    e = explain(x, "mxfp4_e2m1", scale_mode="ceil")
    text = str(e)
    # amax 100 -> ceil(log2 100) = 7, X = 7 - 2 = 5, byte 132
    assert e.shared_exponent == 5 and e.scale_byte == 132
    assert "ceil(log2(amax))" in text and "132 (0x84)" in text
    for el in e.elements:
        assert f"0x{el.code:02X}" in text and el.reason in text
    assert len(text.splitlines()) == 6 + len(x)
    reasons = [el.reason for el in e.elements]
    assert reasons[4] == "zero" and reasons[5] == "zero"
    assert e.elements[5].code == 0x8  # -0.0 keeps its sign
    # on the grid 0, 0.5, 1, 1.5, 2, 3, 4, 6 (codes 0..7), after dividing by 2**5 = 32:
    assert reasons[1] == "underflow to zero"      # -0.053 < 0.25
    assert reasons[3] == "rounded down (nearer)"  # 3.125 -> 3
    assert reasons[6] == "rounded up (nearer)"    # 0.375 -> 0.5
    assert reasons[7] == "tie: to even (down)"    # 2.5 -> 2 (code 4)
    assert reasons[8] == "tie: to even (up)"      # 3.5 -> 4 (code 6)
    assert [el.code for el in e.elements][6:] == [1, 4, 6]


def test_nan_blocks_and_clamped_exponents_are_explained() -> None:
    e = explain(np.array([1.0, np.nan, 2.0]), "mxfp8_e4m3")
    assert e.scale_byte == 0xFF and e.shared_exponent is None
    assert [el.reason for el in e.elements][1] == "NaN block (this input is not finite)"
    assert "NaN" in str(e)
    tiny = explain(np.array([2.0**-140]), "mxfp8_e5m2")
    assert tiny.shared_exponent == -127 and "clamped" in tiny.scale_rule
    zero = explain(np.zeros(3), "mxint8")
    assert zero.scale_byte == 0 and "all-zero" in zero.scale_rule


def test_explain_refuses_bad_arguments() -> None:
    x = np.ones(40)
    with pytest.raises(ValueError, match="stochastic"):
        explain(x, "mxfp4_e2m1", rounding="stochastic")
    with pytest.raises(ValueError, match="out of range"):
        explain(x, "mxfp4_e2m1", 2)
    with pytest.raises(ValueError, match="out of range"):
        explain(np.ones((2, 40)), "mxfp4_e2m1", (2, 0))
    with pytest.raises(TypeError, match="block must be"):
        explain(x, "mxfp4_e2m1", 0.5)
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        explain(np.ones(4, dtype=np.int64), "mxfp4_e2m1")


# -- block_stats ---------------------------------------------------------------------


@given(data=st.data())
def test_block_stats_agree_with_the_per_element_explanation(data) -> None:
    name = data.draw(st.sampled_from(strategies.FORMAT_NAMES))
    rounding = data.draw(st.sampled_from(DETERMINISTIC))
    scale_mode = data.draw(st.sampled_from(strategies.SCALE_MODES))
    x = data.draw(strategies.blocks(name, n_blocks=3)).ravel()
    stats = block_stats(x, name, rounding=rounding, scale_mode=scale_mode)
    n = stats.n_blocks
    assert stats.saturated.shape == stats.underflow.shape == (n,)
    for b in range(n):
        reasons = [el.reason for el in
                   explain(x, name, b, rounding=rounding, scale_mode=scale_mode).elements]
        assert stats.saturated[b] == reasons.count("saturated")
        assert stats.underflow[b] == reasons.count("underflow to zero")
        assert stats.nan_blocks[b] == reasons[0].startswith("NaN block")
    assert stats.scale_histogram.sum() == n


def test_block_stats_by_hand() -> None:
    # mxfp4_e2m1, amax 7: X = floor(log2 7) - 2 = 0.  7 > 6 saturates; 0.1 and -0.2 are
    # below 0.25 (half the smallest step 0.5) and become zero.  amax 1000: X = 9 - 2 = 7,
    # 1000 / 128 > 6 saturates, 1e-30 and 3 / 128 become zero.  Zero blocks get byte 0.
    x = np.zeros((2, 96))
    x[0, :4] = [7.0, 0.1, -0.2, 1.0]
    x[1, 64] = np.nan
    x[1, :3] = [1000.0, 1e-30, 3.0]
    s = block_stats(x, "mxfp4_e2m1")
    np.testing.assert_array_equal(s.saturated, [[1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(s.underflow, [[2, 0, 0], [2, 0, 0]])
    np.testing.assert_array_equal(s.nan_blocks, [[False, False, False], [False, False, True]])
    assert s.scale_histogram[127] == 1 and s.scale_histogram[134] == 1
    assert s.scale_histogram[0] == 3
    assert s.scale_histogram[255] == 1 and s.scale_histogram.sum() == 6
    text = str(s)
    assert "saturated elements:   2 in 2 block(s)" in text
    assert "underflow to zero:    4 in 2 block(s)" in text


def test_block_stats_of_an_existing_mxarray_along_axis_0() -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((70, 3)) * 100).astype(np.float32)
    q = mxarray.quantize(x, "mxint8", axis=0, scale_mode="ceil")
    s = block_stats(x, q=q)
    assert s.block_axis == 0 and s.saturated.shape == q.scales.shape
    assert not s.saturated.any()  # ceil: |v| / 2**X <= 1 < 127/64
    again = block_stats(x, "mxint8", axis=0, scale_mode="ceil")
    np.testing.assert_array_equal(again.underflow, s.underflow)


def test_block_stats_refuses_bad_arguments() -> None:
    x = np.ones(40)
    q = mxarray.quantize(x, "mxfp8_e4m3")
    with pytest.raises(ValueError, match="exactly one"):
        block_stats(x)
    with pytest.raises(ValueError, match="exactly one"):
        block_stats(x, "mxfp8_e4m3", q=q)
    with pytest.raises(ValueError, match="shape"):
        block_stats(np.ones(41), q=q)
    with pytest.raises(TypeError, match="MXArray"):
        block_stats(x, q=x)
    with pytest.raises(TypeError, match="not an MXArray"):
        block_stats(q, "mxfp8_e4m3")
