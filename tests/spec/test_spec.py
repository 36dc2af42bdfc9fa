"""The machine-readable spec: schema, the package's constants, derived limits, SplitMix64."""

from __future__ import annotations

import copy
import json
import math

import jsonschema
import numpy as np
import pytest

import mxarray
from support import oracle
from mxarray import _random
from mxarray.formats import SCALE

SPEC = oracle.spec()
SCHEMA_PATH = oracle.SPEC_PATH.parent / "mx.schema.json"
FORMAT_NAMES = list(SPEC["formats"])


@pytest.fixture(scope="module")
def schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def test_spec_validates_against_schema(schema: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(SPEC, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    "path, bad",
    [
        (("block_size",), "32"),
        (("formats", "mxfp4_e2m1", "bits"), "four"),
        (("formats", "mxfp4_e2m1", "kind"), "fixed"),
        (("scale", "nan_code"), 256),
        (("spec_version",), "one"),
    ],
)
def test_schema_rejects_a_broken_spec(schema: dict, path: tuple[str, ...], bad: object) -> None:
    broken = copy.deepcopy(SPEC)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_package_exposes_every_spec_format_and_mode() -> None:
    assert list(mxarray.FORMATS) == FORMAT_NAMES
    assert mxarray.BLOCK_SIZE == SPEC["block_size"] == 32
    assert mxarray.SPEC_VERSION == SPEC["spec_version"]
    assert set(mxarray.ROUNDING_MODES) == set(SPEC["rounding_modes"])
    assert set(mxarray.SCALE_MODES) == set(SPEC["scale_modes"])
    assert {"even", "nearest", "toward_zero", "stochastic"} == set(mxarray.ROUNDING_MODES)
    assert {"floor", "ceil", "rceil", "even"} == set(mxarray.SCALE_MODES)
    defaults = [m for m, e in SPEC["rounding_modes"].items() if e["default"]]
    assert defaults == ["even"]
    defaults = [m for m, e in SPEC["scale_modes"].items() if e["default"]]
    assert defaults == ["floor"]


def test_scale_constants_equal_spec() -> None:
    s = SPEC["scale"]
    assert (SCALE.name, SCALE.bits, SCALE.bias, SCALE.nan_code) == (
        s["name"], s["bits"], s["bias"], s["nan_code"])
    assert (SCALE.min_exponent, SCALE.max_exponent) == (s["min_exponent"], s["max_exponent"])
    # E8M0: 254 finite bytes 2^-127 .. 2^127 plus the NaN byte.
    assert s["bias"] == 127 and s["nan_code"] == 255
    assert s["min_exponent"] == 0 - s["bias"] and s["max_exponent"] == 254 - s["bias"]


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_format_fields_equal_spec(name: str) -> None:
    fmt = mxarray.get_format(name)
    entry = SPEC["formats"][name]
    assert fmt is mxarray.FORMATS[name] is getattr(mxarray, name)
    for key in ("element", "kind", "bits", "exponent_bits", "mantissa_bits", "bias", "emax",
                "max_normal", "min_normal", "min_subnormal", "has_inf", "max_code",
                "ml_dtypes"):
        assert getattr(fmt, key) == entry[key], key
    assert fmt.inf_codes == tuple(entry["inf_codes"])
    assert fmt.nan_codes == tuple(entry["nan_codes"])
    assert fmt.layout.name == entry["packing"]
    layout = SPEC["layouts"][entry["packing"]]
    assert (fmt.layout.elements, fmt.layout.bytes) == (layout["elements"], layout["bytes"])
    assert fmt.layout.elements * fmt.bits == fmt.layout.bytes * 8
    assert fmt.block_size == SPEC["block_size"]
    assert fmt.bits_per_element == entry["bits"] + 8 / 32


def _float_limits(ebits: int, mbits: int, bias: int, has_inf: bool, nan_all_ones: bool):
    """Limits of a small float format derived from its fields alone (IEEE-style subnormals).

    The top exponent field is reserved for Inf/NaN when ``has_inf``; when only the
    all-ones code is NaN (``nan_all_ones``), the top binade loses its last mantissa step.
    """
    top_field = (1 << ebits) - 1 - (1 if has_inf else 0)
    emax = top_field - bias
    top_mantissa = (1 << mbits) - 1 - (1 if nan_all_ones else 0)
    max_normal = math.ldexp(1 + top_mantissa / (1 << mbits), emax)
    return {
        "emax": emax,
        "max_normal": max_normal,
        "min_normal": math.ldexp(1.0, 1 - bias),
        "min_subnormal": math.ldexp(1.0, 1 - bias - mbits),
    }


# Which formats reserve what, from the OCP MX v1.0 element tables.
_RESERVED = {
    "mxfp8_e5m2": (True, False),
    "mxfp8_e4m3": (False, True),
    "mxfp6_e3m2": (False, False),
    "mxfp6_e2m3": (False, False),
    "mxfp4_e2m1": (False, False),
}


@pytest.mark.parametrize("name", list(_RESERVED))
def test_float_limits_follow_from_field_widths(name: str) -> None:
    entry = SPEC["formats"][name]
    assert 1 + entry["exponent_bits"] + entry["mantissa_bits"] == entry["bits"]
    assert entry["bias"] == (1 << (entry["exponent_bits"] - 1)) - 1
    derived = _float_limits(entry["exponent_bits"], entry["mantissa_bits"], entry["bias"],
                            *_RESERVED[name])
    for key, value in derived.items():
        assert entry[key] == value, key
    fmt = mxarray.get_format(name)
    assert fmt.decode_table[entry["max_code"]] == derived["max_normal"]
    assert fmt.emin == 1 - entry["bias"]


def test_mxint8_limits() -> None:
    entry = SPEC["formats"]["mxint8"]
    assert entry["max_normal"] == 127 / 64 and entry["min_subnormal"] == 1 / 64
    assert entry["emax"] == math.frexp(entry["max_normal"])[1] - 1 == 0
    assert SPEC["policy"]["int_unused_code"] == 0x80


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp8_e5m2"])
def test_special_codes_are_the_ieee_like_ones(name: str) -> None:
    entry = SPEC["formats"][name]
    m, e = entry["mantissa_bits"], entry["exponent_bits"]
    all_ones_exp = ((1 << e) - 1) << m
    specials = set(entry["nan_codes"]) | set(entry["inf_codes"])
    if entry["has_inf"]:
        assert set(entry["inf_codes"]) == {all_ones_exp, all_ones_exp | 0x80}
        assert specials == {c | s for c in range(all_ones_exp, all_ones_exp + (1 << m))
                            for s in (0, 0x80)}
    else:
        assert set(entry["nan_codes"]) == {0x7F, 0xFF}


# --- SplitMix64 -----------------------------------------------------------------------

# The first outputs of Vigna's splitmix64.c started from state 1234567, as published with
# the reference implementation (and reproduced by the big-int model below).
_PUBLISHED_1234567 = [
    6457827717110365317,
    3203168211198807973,
    9817491932198370423,
    4593380528125082431,
    16408922859458223821,
]


def _splitmix64_sequence(state: int, n: int) -> list[int]:
    """Plain big-int SplitMix64: advance the state by gamma, then mix."""
    mask = (1 << 64) - 1
    out = []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


def test_big_int_model_reproduces_the_published_sequence() -> None:
    assert _splitmix64_sequence(1234567, 5) == _PUBLISHED_1234567
    assert SPEC["rounding_modes"]["stochastic"]["gamma"] == 0x9E3779B97F4A7C15


@pytest.mark.parametrize("seed", [0, 1, 1234567, 2**63, 2**64 - 1, 0x0123456789ABCDEF])
def test_random_u32_is_the_upper_half_of_splitmix64(seed: int) -> None:
    n = 300
    expected = [z >> 32 for z in _splitmix64_sequence(seed, n)]
    got = _random.random_u32(seed, np.arange(n, dtype=np.uint64))
    assert got.dtype == np.uint64
    assert got.tolist() == expected


def test_random_u32_is_counter_based() -> None:
    index = np.array([5, 1000, 7, 2**40], dtype=np.uint64)
    seq = _random.random_u32(99, index)
    for i, value in zip(index.tolist(), seq.tolist()):
        assert value == _random.random_u32(99, np.array([i], dtype=np.uint64))[0]
        assert value == _splitmix64_sequence(99 + i * 0x9E3779B97F4A7C15, 1)[0] >> 32


# --- general block formats -------------------------------------------------------------------


def test_package_exposes_every_block_format() -> None:
    from mxarray.formats import BLOCK_FORMATS

    names = list(BLOCK_FORMATS)  # after these come formats that tests register
    assert names[: len(FORMAT_NAMES)] == FORMAT_NAMES
    assert names[len(FORMAT_NAMES): len(FORMAT_NAMES) + len(SPEC["block_formats"])] == list(
        SPEC["block_formats"])
    assert all(mxarray.get_format(n) is BLOCK_FORMATS[n] for n in BLOCK_FORMATS)
    assert all(BLOCK_FORMATS[n].is_ocp for n in FORMAT_NAMES)
    assert not any(BLOCK_FORMATS[n].is_ocp for n in SPEC["block_formats"])


@pytest.mark.parametrize("name", list(SPEC["block_formats"]))
def test_block_format_fields_equal_spec(name: str) -> None:
    fmt = mxarray.get_format(name)
    entry = SPEC["block_formats"][name]
    assert fmt.block_size == entry["block_size"] == 16
    assert fmt.scale.kind == ("ue4m3" if entry["scale"] == "ue4m3" else "exponent")
    assert fmt.sub_block_size == entry.get("sub_block_size", 0)
    assert fmt.sub_block_bits == entry.get("sub_block_bits", 0)
    assert fmt.magnitude_overflow == entry["magnitude_overflow"]
    assert fmt.tensor_scale == entry["tensor_scale"]
    element = entry["element"]
    if isinstance(element, str):
        assert fmt.decode_table.tolist()[:16] == mxarray.get_format(element).decode_table.tolist()
    else:  # sign-magnitude: largest magnitude (2**(bits-1) - 1) / 2**mantissa_bits
        assert fmt.kind == element["kind"] == "signmag"
        top = ((1 << (element["bits"] - 1)) - 1) / 2 ** element["mantissa_bits"]
        assert fmt.max_normal == top and fmt.emax == math.floor(math.log2(top))


def test_ue4m3_is_the_positive_half_of_e4m3() -> None:
    from mxarray.formats import UE4M3

    u = SPEC["scale_formats"]["ue4m3"]
    e4m3 = np.arange(128, dtype=np.uint8)
    assert UE4M3.nan_code == u["nan_code"] == 0x7F
    assert float(UE4M3.finite_grid[-1]) == u["max_value"] == 448.0
    assert np.isnan(UE4M3.decode(np.arange(0x7F, 256))).all()
    want = mxarray.mxfp8_e4m3.decode(e4m3)[:0x7F]
    assert np.array_equal(UE4M3.decode(e4m3)[:0x7F], want)
    assert not UE4M3.valid(np.array([0x80], np.uint8))[0] and UE4M3.valid(np.uint8(0x7F))


def test_block_formats_validate_against_the_schema_definition(schema: dict) -> None:
    defs = {"$defs": schema["$defs"]}
    for entry in SPEC["block_formats"].values():
        jsonschema.validate(entry, schema["$defs"]["block_format"] | defs)
