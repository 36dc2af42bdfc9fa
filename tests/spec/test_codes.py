"""Every code of every format: decoding against ml_dtypes, encoding against the rounding rules.

Expected codes are built here from the grid and the rule (ties to the even code, away from
zero, or toward zero), never from the package's encoder.  Blocks hold ``max_normal * 2**X``
in lane 0 so that the "floor" scale mode picks exactly ``X`` (``floor(log2(max_normal))``
equals ``emax`` in every format), which each test also asserts.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import mxarray
from support import oracle
from mxarray.formats import SCALE

FORMAT_NAMES = list(mxarray.FORMATS)
FLOAT_NAMES = [n for n in FORMAT_NAMES if mxarray.FORMATS[n].kind == "float"]
BLOCK = mxarray.BLOCK_SIZE


def _all_codes(fmt) -> np.ndarray:
    return np.arange(fmt.n_codes, dtype=np.uint8)


@pytest.mark.parametrize("name", FLOAT_NAMES)
def test_decode_table_equals_ml_dtypes(name: str) -> None:
    fmt = mxarray.get_format(name)
    codes = _all_codes(fmt)
    ours = fmt.decode(codes)
    theirs = codes.view(getattr(ml_dtypes, fmt.ml_dtypes)).astype(np.float64)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    assert set(np.flatnonzero(np.isnan(ours)).tolist()) == set(fmt.nan_codes)
    assert set(np.flatnonzero(np.isinf(ours)).tolist()) == set(fmt.inf_codes)
    finite = ~np.isnan(ours)
    assert np.array_equal(ours[finite], theirs[finite])
    assert np.array_equal(np.signbit(ours[finite]), np.signbit(theirs[finite]))  # -0.0 too


def test_mxint8_decodes_as_int8_over_64() -> None:
    fmt = mxarray.get_format("mxint8")
    codes = _all_codes(fmt)
    assert np.array_equal(fmt.decode(codes), codes.view(np.int8).astype(np.float64) / 64)
    assert fmt.decode(np.uint8(0x80)) == -2.0


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_decode_table_equals_the_exact_model(name: str) -> None:
    fmt = mxarray.get_format(name)
    for code in range(fmt.n_codes):
        want = oracle.decode(code, name)
        got = float(fmt.decode_table[code])
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(got), code
        else:
            assert got == want, code


def test_scale_bytes_equal_ml_dtypes_e8m0() -> None:
    b = np.arange(256, dtype=np.uint8)
    ours = SCALE.decode(b)
    theirs = b.view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    assert np.isnan(ours[255]) and np.isnan(theirs[255])
    assert np.array_equal(ours[:255], theirs[:255])
    assert np.array_equal(ours[:255], [math.ldexp(1.0, int(i) - 127) for i in range(255)])


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_dequantize_every_code_at_every_scale(name: str) -> None:
    """decode(code) * 2**(b - 127), exactly, for all codes and all 256 scale bytes."""
    fmt = mxarray.get_format(name)
    n_codes = fmt.n_codes
    reps = -(-n_codes // BLOCK) * BLOCK
    codes = np.resize(_all_codes(fmt), reps)
    data = np.tile(codes, (256, 1))  # one row per scale byte
    scales = np.arange(256, dtype=np.uint8).reshape(256, 1).repeat(reps // BLOCK, axis=1)
    a = mxarray.MXArray.from_parts(data, scales, fmt, data.shape, layout="codes")
    got = mxarray.dequantize(a, np.float64)
    table = fmt.decode(codes)
    for b in (0, 1, 100, 127, 200, 254):
        want = np.array([math.ldexp(v, b - 127) if math.isfinite(v) else v for v in table])
        assert np.array_equal(got[b], want, equal_nan=True), b
        assert np.array_equal(np.signbit(got[b]), np.signbit(want))
    assert np.isnan(got[255]).all()
    # float32 output: the same values, exactly, wherever float32 can hold them.
    got32 = mxarray.dequantize(a, np.float32)
    with np.errstate(over="ignore"):
        assert np.array_equal(got32, got.astype(np.float32), equal_nan=True)


# --- encoding -------------------------------------------------------------------------

_DIRECTED = ("even", "nearest", "toward_zero")


def _cases(name: str, x: int, dtype) -> list[tuple[float, dict[str, int]]]:
    """(positive input, {rounding: expected magnitude code}) at block exponent ``x``.

    Representable values, midpoints (ties), and one ``dtype`` ulp either side of them.
    """
    values = [float(v) for v in oracle.grid(name).values]
    ftype = np.dtype(dtype).type

    def step(v: float, toward: float) -> float:
        return float(np.nextafter(ftype(v), ftype(toward)))

    out = []
    for c, v in enumerate(values):
        out.append((math.ldexp(v, x), {r: c for r in _DIRECTED}))
    for c in range(len(values) - 1):
        mid = math.ldexp((values[c] + values[c + 1]) / 2, x)
        even = c if c % 2 == 0 else c + 1
        out.append((mid, {"even": even, "nearest": c + 1, "toward_zero": c}))
        out.append((step(mid, math.inf), {"even": c + 1, "nearest": c + 1, "toward_zero": c}))
        out.append((step(mid, 0.0), {"even": c, "nearest": c, "toward_zero": c}))
    return out


def _signed(fmt, magnitude_code: int, negative: bool) -> int:
    if not negative:
        return magnitude_code
    if fmt.kind == "int":
        return (-magnitude_code) % 256
    return magnitude_code | fmt.sign_bit


def _blocks_with_scale(fmt, values: list[float], x: int, dtype) -> np.ndarray:
    """Rows of 32: lane 0 pins the scale at ``x``, lanes 1..31 carry ``values``."""
    per_row = BLOCK - 1
    n_rows = -(-len(values) // per_row)
    rows = np.zeros((n_rows, BLOCK), dtype=np.float64)
    rows[:, 0] = math.ldexp(fmt.max_normal, x)
    padded = np.zeros(n_rows * per_row)
    padded[: len(values)] = values
    rows[:, 1:] = padded.reshape(n_rows, per_row)
    cast = rows.astype(dtype)
    assert np.array_equal(cast.astype(np.float64), rows), "inputs must be exact in dtype"
    return cast


_SCALES = [(np.float64, 0), (np.float64, -20), (np.float64, 31), (np.float64, -127),
           (np.float64, 127), (np.float32, 0), (np.float32, -9), (np.float32, 12)]


@pytest.mark.parametrize("name", FORMAT_NAMES)
@pytest.mark.parametrize("dtype, x", _SCALES, ids=[f"{d.__name__}-X{x}" for d, x in _SCALES])
@pytest.mark.parametrize("rounding", _DIRECTED)
def test_encode_values_midpoints_and_neighbours(name: str, dtype, x: int, rounding: str) -> None:
    fmt = mxarray.get_format(name)
    cases = _cases(name, x, dtype)
    values, expected = [], []
    for v, rule in cases:
        for negative in (False, True):
            values.append(-v if negative else v)
            expected.append(_signed(fmt, rule[rounding], negative))
    rows = _blocks_with_scale(fmt, values, x, dtype)
    q = mxarray.quantize(rows, fmt, rounding=rounding, backend="numpy")
    assert (q.scales == 127 + x).all()
    got = q.codes()[:, 1:].reshape(-1)[: len(values)]
    bad = np.flatnonzero(got != np.array(expected, dtype=np.uint8))
    assert bad.size == 0, [(values[i].hex(), int(got[i]), expected[i]) for i in bad[:5]]
    assert q.codes()[0, 0] == fmt.max_code


@pytest.mark.parametrize("name", FORMAT_NAMES)
@pytest.mark.parametrize("rounding", ["even", "nearest", "toward_zero", "stochastic"])
def test_beyond_max_normal_saturates_with_sign(name: str, rounding: str) -> None:
    fmt = mxarray.get_format(name)
    top = 2.0 ** (fmt.emax + 1)  # still in the block's binade: the scale stays X = 0
    beyond = [math.nextafter(fmt.max_normal, math.inf), (fmt.max_normal + top) / 2,
              math.nextafter(top, 0.0)]
    values = beyond + [-v for v in beyond]
    rows = _blocks_with_scale(fmt, values, 0, np.float64)
    q = mxarray.quantize(rows, fmt, rounding=rounding, seed=7, backend="numpy")
    assert (q.scales == 127).all()
    got = q.codes()[0, 1 : 1 + len(values)].tolist()
    assert got == [fmt.max_code] * 3 + [_signed(fmt, fmt.max_code, True)] * 3
    assert fmt.max_code not in fmt.nan_codes + fmt.inf_codes


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_stochastic_picks_a_neighbour_and_is_exact_on_the_grid(name: str) -> None:
    fmt = mxarray.get_format(name)
    cases = _cases(name, 0, np.float64)
    values = [v for v, _ in cases]
    rows = _blocks_with_scale(fmt, values, 0, np.float64)
    q = mxarray.quantize(rows, fmt, rounding="stochastic", seed=2024, backend="numpy")
    got = q.codes()[:, 1:].reshape(-1)[: len(values)]
    for (v, rule), code in zip(cases, got.tolist()):
        if rule["toward_zero"] == rule["nearest"]:  # on the grid or just below a tie
            allowed = {rule["toward_zero"], rule["toward_zero"] + 1}
            if float(oracle.grid(name).values[rule["toward_zero"]]) == v:
                allowed = {rule["toward_zero"]}
        else:
            allowed = {rule["toward_zero"], rule["nearest"]}
        assert code in allowed, (v.hex(), code, allowed)


@pytest.mark.parametrize("name", FLOAT_NAMES)
def test_even_rounding_agrees_with_ml_dtypes_casts_from_float32(name: str) -> None:
    """ml_dtypes rounds float32 to nearest even; compare below the saturation range.

    (ml_dtypes converts float64 through float32, which double-rounds, so the inputs are
    float32 here.)
    """
    fmt = mxarray.get_format(name)
    values = [v for v, _ in _cases(name, 0, np.float32)]
    values += [-v for v in values]
    rows = _blocks_with_scale(fmt, values, 0, np.float32)
    q = mxarray.quantize(rows, fmt, backend="numpy")
    want = rows.astype(getattr(ml_dtypes, fmt.ml_dtypes)).view(np.uint8)
    assert np.array_equal(q.codes(), want)


def test_mxint8_even_rounding_agrees_with_rint() -> None:
    fmt = mxarray.get_format("mxint8")
    values = [v for v, _ in _cases("mxint8", 0, np.float32)]
    values += [-v for v in values]
    rows = _blocks_with_scale(fmt, values, 0, np.float32)
    q = mxarray.quantize(rows, fmt, backend="numpy")
    want = np.clip(np.rint(rows.astype(np.float64) * 64), -127, 127).astype(np.int8)
    assert np.array_equal(q.codes().view(np.int8), want)
