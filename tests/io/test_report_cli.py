"""The report engine and the ``mxarray`` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import mxarray
from mxarray.cli import main
from mxarray.datasets import DATASETS, make_dataset
from mxarray.report import evaluate, format_table, qsnr_db


def test_qsnr_matches_its_definition():
    x = np.array([3.0, -4.0])
    y = np.array([3.0, -3.0])
    assert qsnr_db(x, y) == pytest.approx(10 * np.log10(25.0 / 1.0))
    assert qsnr_db(x, x) == float("inf")


@pytest.mark.parametrize("name", list(DATASETS))
def test_datasets_are_reproducible_with_unit_variance(name):
    a = make_dataset(name, (1 << 16,))
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, make_dataset(name, (1 << 16,)))
    assert abs(float(np.var(a.astype(np.float64))) - 1.0) < 0.05


def test_unknown_dataset_is_a_value_error():
    with pytest.raises(ValueError, match="unknown dataset"):
        make_dataset("uniform")


def test_evaluate_rows_agree_with_direct_computation():
    x = make_dataset("gaussian", (4096,))
    rows = evaluate(x, ["mxfp4_e2m1", "mxint8"], repeats=1)
    assert [r.format for r in rows] == ["mxfp4_e2m1", "mxint8"]
    for row in rows:
        fmt = mxarray.get_format(row.format)
        y = mxarray.quantize(x, fmt).dequantize()
        assert row.qsnr_db == pytest.approx(qsnr_db(x, y))
        assert row.bits_per_element == fmt.bits + 8 / 32
        assert row.compression == pytest.approx(32 / row.bits_per_element)
        assert 0 <= row.saturated_fraction < 0.1
        assert row.quantize_gbps > 0 and row.dequantize_gbps > 0
    # More bits, less noise: MXINT8 beats MXFP4 on Gaussian data by a wide margin.
    assert rows[1].qsnr_db > rows[0].qsnr_db + 15


def test_saturated_fraction_counts_clamped_elements():
    # FP4 with floor scaling: amax 7.5 -> X = 0, so 7.5 and 7.0 exceed max_normal 6.
    x = np.array([7.5, 7.0, 6.0, 1.0] + [0.0] * 28, dtype=np.float32)
    row = evaluate(x, ["mxfp4_e2m1"], repeats=1)[0]
    assert row.saturated_fraction == pytest.approx(2 / 32)


def test_format_table_has_a_row_per_format():
    rows = evaluate(make_dataset("laplace", (2048,)), ["mxfp8_e4m3", "mxfp6_e2m3"], repeats=1)
    text = format_table(rows)
    lines = text.splitlines()
    assert len(lines) == 2 + len(rows)
    assert "QSNR dB" in lines[0] and lines[2].startswith("mxfp8_e4m3")


def test_cli_report_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    status = main(["report", "--data", "gaussian", "--size", "4096", "--repeats", "1",
                   "--format", "mxfp4_e2m1", "--json", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "mxfp4_e2m1" in printed and "N(0, 1)" in printed
    payload = json.loads(out.read_text())
    row = payload["results"]["gaussian"][0]
    assert row["format"] == "mxfp4_e2m1" and row["qsnr_db"] > 15


def test_cli_report_on_user_file(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.linspace(-3, 3, 300).reshape(3, 100))
    assert main(["report", "--input", str(path), "--repeats", "1", "--axis", "0"]) == 0
    assert str(path) in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["report", "--input", "missing.npy"], "No such file"),
        (["report", "--input", "x.txt"], "must be a .npy file"),
        (["report", "--size", "0"], "--size must be positive"),
        (["report", "--backend", "nope", "--size", "64"], "unknown backend"),
    ],
)
def test_cli_errors_are_clear(argv, message, capsys):
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_cli_rejects_integer_input_file(tmp_path, capsys):
    path = tmp_path / "ints.npy"
    np.save(path, np.arange(64))
    assert main(["report", "--input", str(path), "--repeats", "1"]) == 1
    assert "float16, float32 or float64" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "mxarray", "report", "--data", "student_t", "--size", "2048",
         "--repeats", "1", "--format", "mxint8"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "mxint8" in done.stdout
