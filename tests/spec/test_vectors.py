"""The committed golden vectors (spec/vectors/*.json): fresh, and independently right."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import mxarray
from support import oracle

VECTORS = oracle.SPEC_PATH.parent / "vectors"
BLOCK = mxarray.BLOCK_SIZE


def _load_generator():
    spec = importlib.util.spec_from_file_location("mx_vectors_generate", VECTORS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


@pytest.fixture(scope="module")
def committed() -> dict[str, dict]:
    return {name: json.loads((VECTORS / name).read_text()) for name in generate.FILES}


def test_committed_files_equal_a_fresh_generation(committed) -> None:
    fresh = generate.documents()
    assert set(fresh) == set(committed)
    for name, doc in fresh.items():
        assert doc == committed[name], f"{name} is stale: run python spec/vectors/generate.py"
        assert (VECTORS / name).read_text() == generate.render(doc)


def test_check_mode_passes_and_detects_drift(tmp_path) -> None:
    script = str(VECTORS / "generate.py")
    ok = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    for name in generate.FILES:
        (tmp_path / name).write_text((VECTORS / name).read_text().replace("0x1", "0x3", 1))
    stale = subprocess.run([sys.executable, script, "--check", "--out", str(tmp_path)],
                           capture_output=True, text=True)
    assert stale.returncode == 1 and "stale" in stale.stderr


def test_vectors_are_small() -> None:
    assert sum((VECTORS / name).stat().st_size for name in generate.FILES) < 400_000


def test_exact_strings_round_trip() -> None:
    for v in (0.0, -0.0, 1.5, -(2.0**-1074), 2.0**127, math.inf, -math.inf):
        s = generate.exact_string(v)
        assert generate.parse_exact(s) == v
        assert math.copysign(1, generate.parse_exact(s)) == math.copysign(1, v)
    assert math.isnan(generate.parse_exact(generate.exact_string(math.nan)))


def test_codes_json_against_the_model_and_ml_dtypes(committed) -> None:
    doc = committed["codes.json"]
    assert list(doc["formats"]) == list(oracle.spec()["formats"])
    for name, entry in doc["formats"].items():
        values = [generate.parse_exact(s) for s in entry["values"]]
        assert len(values) == 2 ** entry["bits"] == 2 ** oracle.spec()["formats"][name]["bits"]
        for code, v in enumerate(values):
            want = oracle.decode(code, name)
            if isinstance(want, float) and math.isnan(want):
                assert math.isnan(v)
            else:
                assert v == want
                negative = want < 0 or (want == 0 and code == 1 << (entry["bits"] - 1))
                assert (math.copysign(1, v) < 0) == negative, (name, code)
        dtype_name = oracle.spec()["formats"][name]["ml_dtypes"]
        if dtype_name:
            theirs = np.arange(len(values), dtype=np.uint8).view(getattr(ml_dtypes, dtype_name))
            assert np.array_equal(np.array(values), theirs.astype(np.float64), equal_nan=True)
    scale = [generate.parse_exact(s) for s in doc["scale_e8m0"]]
    theirs = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    assert np.array_equal(np.array(scale), theirs, equal_nan=True)


def test_quantize_json_covers_every_format_and_mode_pair(committed) -> None:
    doc = committed["quantize.json"]
    assert list(doc["formats"]) == list(mxarray.FORMATS)
    modes = oracle.spec()
    pairs = {f"{s}/{r}" for s in modes["scale_modes"] for r in modes["rounding_modes"]}
    for entry in doc["formats"].values():
        assert set(entry["results"]) == pairs
        n = len(entry["blocks"])
        assert len(entry["inputs"]) == n and all(len(row) == BLOCK for row in entry["inputs"])
        for result in entry["results"].values():
            assert len(result["scales"]) == n and len(result["codes"]) == n


def test_quantize_json_against_the_exact_model(committed) -> None:
    """Every block of every mode pair, recomputed by the model in tests/support/oracle.py."""
    doc = committed["quantize.json"]
    seed = doc["stochastic_seed"]
    for name, entry in doc["formats"].items():
        inputs = [[generate.parse_exact(s) for s in row] for row in entry["inputs"]]
        for pair, result in entry["results"].items():
            scale_mode, rounding = pair.split("/")
            for b, row in enumerate(inputs):
                s, codes = oracle.quantize_block(row, name, rounding, scale_mode,
                                                 seed if rounding == "stochastic" else None,
                                                 b * BLOCK)
                assert result["scales"][b] == s, (name, pair, entry["blocks"][b])
                assert result["codes"][b] == "".join(f"{c:02x}" for c in codes), (
                    name, pair, entry["blocks"][b])


def test_quantize_json_replays_through_the_public_api(committed) -> None:
    """What another implementation would do: parse the file, quantize, compare."""
    doc = committed["quantize.json"]
    for name, entry in doc["formats"].items():
        x = np.array([[generate.parse_exact(s) for s in row] for row in entry["inputs"]])
        result = entry["results"]["floor/even"]
        q = mxarray.quantize(x, name)
        assert q.scales[:, 0].tolist() == result["scales"]
        assert q.codes().tolist() == [list(bytes.fromhex(h)) for h in result["codes"]]


def _block_format_inputs(entry: dict) -> list[list[float]]:
    return [[generate.parse_exact(s) for s in row] for row in entry["inputs"]]


def test_block_formats_json_values_against_the_model(committed) -> None:
    doc = committed["block_formats.json"]
    assert list(doc["formats"]) == list(oracle.spec()["block_formats"])
    for name, entry in doc["formats"].items():
        values = [generate.parse_exact(s) for s in entry["values"]]
        assert len(values) == 2 ** entry["code_bits"]
        for code, v in enumerate(values):  # block scale 1: E8M0 byte 127, UE4M3 byte 0x38
            byte = 0x38 if "scale_values" in entry else 127
            want = oracle.dequantize_block_format(code, byte, name, oracle.Fraction(1))
            assert v == want and math.copysign(1, v) == math.copysign(1, want), (name, code)
        if "scale_values" in entry:
            scale = [generate.parse_exact(s) for s in entry["scale_values"]]
            theirs = np.arange(128, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn)
            assert np.array_equal(np.array(scale), theirs.astype(np.float64), equal_nan=True)


def test_block_formats_json_against_the_exact_model(committed) -> None:
    doc = committed["block_formats.json"]
    seed = doc["stochastic_seed"]
    for name, entry in doc["formats"].items():
        inputs = _block_format_inputs(entry)
        size = oracle.entry(name)["block_size"]
        width = 2 if entry["code_bits"] <= 8 else 4
        for key, result in entry["results"].items():
            scale_mode, rounding = key.split("/")[:2]
            s_t = None
            if "tensor_scale" in result:
                s_t = oracle.Fraction(generate.parse_exact(result["tensor_scale"]))
                if key.endswith("/s1"):
                    assert s_t == 1
                else:
                    finite = [abs(v) for row in inputs for v in row if math.isfinite(v)]
                    assert s_t == oracle.tensor_scale(oracle.Fraction(max(finite)), name)
            for b, row in enumerate(inputs):
                s, codes = oracle.quantize_block_format(
                    row, name, rounding, scale_mode,
                    seed if rounding == "stochastic" else None, b * size, s_t)
                assert result["scales"][b] == s, (name, key, entry["blocks"][b])
                assert result["codes"][b] == "".join(f"{c:0{width}x}" for c in codes), (
                    name, key, entry["blocks"][b])


def test_block_formats_json_replays_through_the_public_api(committed) -> None:
    for name, entry in committed["block_formats.json"]["formats"].items():
        x = np.array(_block_format_inputs(entry))
        key = "floor/even/s1" if "scale_values" in entry else "floor/even"
        result = entry["results"][key]
        q = mxarray.quantize(x, name, tensor_scale=1.0 if key.endswith("s1") else None)
        assert q.scales[:, 0].tolist() == result["scales"]
        assert [bytes(row).hex() for row in q.packed.tolist()] == result["packed"]
