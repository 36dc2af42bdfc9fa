"""The documentation: its generated format tables, and the full Sphinx build.

The table data are checked against ``spec/mx.toml`` read here with :mod:`tomllib` and
against values derived here from the bit fields, independently of :mod:`mxarray.formats`.
The build tests run ``sphinx-build -W`` (warnings are errors) for the HTML and doctest
builders; they need the ``docs`` extra and skip, naming the missing package, without it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import mxarray

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import spec_tables  # noqa: E402 - the data of the docs' format tables, in docs/_ext

SPEC = tomllib.loads((ROOT / "spec" / "mx.toml").read_text())
DOCS_PACKAGES = ("sphinx", "pydata_sphinx_theme", "numpydoc", "myst_parser", "matplotlib")


def _row(fmt_name: str, label: str) -> tuple[object, str]:
    rows = {lab: (value, text) for lab, value, text in
            spec_tables.format_rows(mxarray.get_format(fmt_name))}
    return rows[label]


def test_e4m3_limits_match_the_spec_file() -> None:
    entry = SPEC["formats"]["mxfp8_e4m3"]
    for label, key in (("max normal", "max_normal"), ("min normal", "min_normal"),
                       ("min subnormal", "min_subnormal")):
        value, text = _row("mxfp8_e4m3", label)
        assert value == entry[key]
        assert text.startswith(f"{entry[key]:.17g}")
    assert _row("mxfp8_e4m3", "max normal")[0] == 448.0
    assert _row("mxfp8_e4m3", "exponent bias")[0] == entry["bias"] == 7
    assert _row("mxfp8_e4m3", "NaN codes") == (tuple(entry["nan_codes"]), "0x7F, 0xFF")
    assert _row("mxfp8_e5m2", "Inf codes")[1] == "0x7C, 0xFC"


def test_bits_per_element_include_the_scale() -> None:
    scale_bits = SPEC["scale"]["bits"]
    for name, entry in SPEC["formats"].items():
        value, _ = _row(name, "bits per element (with scale)")
        assert value == entry["bits"] + scale_bits / SPEC["block_size"]
    assert _row("mxfp4_e2m1", "bits per element (with scale)")[1] == "4.25"


def _values_from_bit_fields(e_bits: int, m_bits: int, bias: int) -> list[float]:
    """Non-negative values of an IEEE-style format without Inf/NaN, in code order."""
    values = []
    for code in range(1 << (e_bits + m_bits)):
        e, m = code >> m_bits, code & ((1 << m_bits) - 1)
        if e == 0:
            values.append(m / (1 << m_bits) * 2.0 ** (1 - bias))
        else:
            values.append((1 + m / (1 << m_bits)) * 2.0 ** (e - bias))
    return values


def test_e2m1_value_list_is_the_eight_values_of_its_bit_fields() -> None:
    fmt = mxarray.get_format("mxfp4_e2m1")
    assert spec_tables.non_negative_values(fmt) == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    rows, cols, cells = spec_tables.value_grid(fmt)
    assert rows == ["00", "01", "10", "11"] and cols == ["0", "1"]
    assert [float(c) for row in cells for c in row] == _values_from_bit_fields(2, 1, 1)


@pytest.mark.parametrize("name", ["mxfp6_e3m2", "mxfp6_e2m3"])
def test_fp6_value_grids_follow_the_bit_fields(name: str) -> None:
    entry = SPEC["formats"][name]
    fmt = mxarray.get_format(name)
    _, _, cells = spec_tables.value_grid(fmt)
    expected = _values_from_bit_fields(entry["exponent_bits"], entry["mantissa_bits"],
                                       entry["bias"])
    assert len(expected) == 32
    assert [float(c) for row in cells for c in row] == expected
    assert max(expected) == entry["max_normal"]


def test_wide_and_integer_formats_have_no_value_grid() -> None:
    assert spec_tables.value_grid(mxarray.get_format("mxfp8_e4m3")) is None
    assert spec_tables.value_grid(mxarray.get_format("mxint8")) is None


def test_rows_leave_out_fields_a_format_lacks() -> None:
    partial = SimpleNamespace(element="S1M2", kind="signmag", bits=3, mantissa_bits=1,
                              max_normal=1.5)
    rows = {label: text for label, _, text in spec_tables.format_rows(partial)}
    assert rows["element type"] == "S1M2"
    assert rows["bit layout"].startswith("S MM ")
    assert rows["max normal"] == "1.5 = 3 × 2⁻¹"
    assert "exponent bias" not in rows and "min normal" not in rows
    assert spec_tables.value_grid(partial) is None


def test_every_spec_format_is_tabulated() -> None:
    names = [row[0] for row in spec_tables.summary_rows()]
    assert set(SPEC["formats"]) <= set(names)
    assert set(SPEC.get("block_formats", {})) <= set(names)
    assert len(names) == len(set(names))


def test_scale_and_mode_tables_match_the_spec_file() -> None:
    scale = {label: value for label, value, _ in spec_tables.scale_rows()}
    assert scale["bits"] == SPEC["scale"]["bits"] == 8
    assert scale["NaN code"] == SPEC["scale"]["nan_code"] == 0xFF
    for kind in ("scale_modes", "rounding_modes"):
        rows = spec_tables.mode_rows(kind)
        assert [r[0] for r in rows] == list(SPEC[kind])
        assert [r[2] for r in rows] == [e["definition"] for e in SPEC[kind].values()]
        assert [r[0] for r in rows if r[1]] == [n for n, e in SPEC[kind].items() if e["default"]]
    with pytest.raises(ValueError, match="scale_modes"):
        spec_tables.mode_rows("layouts")


def test_number_text_names_the_power_of_two() -> None:
    assert spec_tables.number_text(2.0**-9) == "0.001953125 = 2⁻⁹"
    assert spec_tables.number_text(57344.0) == "57344 = 7 × 2¹³"
    assert spec_tables.number_text(7.5) == "7.5 = 15 × 2⁻¹"


def _block_figures():
    """The QSNR data of docs/block_formats.md (``mx_block_figures`` needs docutils)."""
    pytest.importorskip("docutils", reason="needs the docs extra (pip install -e '.[docs]')")
    import mx_block_figures

    return mx_block_figures


def test_block_qsnr_table_covers_every_spec_format_and_distribution() -> None:
    figures = _block_figures()
    names = [*SPEC["formats"], *SPEC["block_formats"]]
    rows = figures.table_rows()
    assert [r[0] for r in rows] == names
    assert set(figures.qsnr_rows()) == {"gaussian", "laplace", "student_t"}
    for d in figures.DISTRIBUTIONS:
        assert list(figures.qsnr_rows()[d]) == names
    bits = {r[0]: r[1] for r in rows}
    # MX4: 3 + 1/2 + 8/16; MXFP4: 4 + 8/32; NVFP4: 4 + 8/16; MX9: 8 + 1/2 + 8/16
    assert [bits[n] for n in ("mx4", "mxfp4_e2m1", "nvfp4", "mx9")] == ["4", "4.25", "4.5", "9"]
    assert figures.QSNR_SIZE == 2**16  # the page says so


def test_block_qsnr_table_data_equal_report_evaluate_on_the_same_data() -> None:
    from mxarray.datasets import make_dataset
    from mxarray.report import evaluate

    figures = _block_figures()
    x = make_dataset("laplace", (figures.QSNR_SIZE,))
    want = evaluate(x, ["mx6"], backend="numpy", repeats=1)[0]
    got = figures.qsnr_rows()["laplace"]["mx6"]
    assert got.qsnr_db == want.qsnr_db and got.bits_per_element == want.bits_per_element
    # the same QSNR from its definition, on the dequantized values
    y = mxarray.quantize(x, "mx6", backend="numpy").dequantize(np.float64)
    x64 = x.astype(np.float64)
    direct = 10 * np.log10(np.sum(x64**2) / np.sum((x64 - y) ** 2))
    assert abs(got.qsnr_db - direct) < 1e-9
    cells = {r[0]: r for r in figures.table_rows()}["mx6"]
    laplace_column = 2 + figures.DISTRIBUTIONS.index("laplace")
    assert cells[laplace_column] == f"{direct:.2f}"


def _inventory_names(path: Path) -> set[str]:
    """Object names in a Sphinx ``objects.inv`` (version 2: four header lines, then zlib)."""
    raw = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    assert raw.startswith(b"# Sphinx inventory version 2")
    lines = zlib.decompress(raw[header_end:]).decode().splitlines()
    return {line.split(" ", 1)[0] for line in lines if line}


def _missing_docs_package() -> str | None:
    for name in DOCS_PACKAGES:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def _sphinx(builder: str, out: Path) -> subprocess.CompletedProcess[str]:
    missing = _missing_docs_package()
    if missing is not None:
        pytest.skip(reason=f"needs the docs extra (pip install -e '.[docs]'): {missing} is missing")
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
         "-d", str(out / "doctrees"), str(DOCS), str(out / builder)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )


@pytest.mark.slow
def test_html_build_has_no_warnings_and_documents_every_public_name(tmp_path: Path) -> None:
    done = _sphinx("html", tmp_path)
    assert done.returncode == 0, done.stderr[-6000:]
    html = tmp_path / "html"
    formats_page = (html / "formats.html").read_text()
    assert "448 = 7 × 2⁶" in formats_page  # E4M3 max normal, rendered from the spec
    for image in ("value_grids.png", "qsnr_vs_bits.png", "block_before_after.png"):
        assert (html / "_images" / image).stat().st_size > 10_000
    documented = _inventory_names(html / "objects.inv")
    missing = sorted(n for n in mxarray.__all__ if f"mxarray.{n}" not in documented)
    assert not missing, f"docs/api/*.rst lacks these public names: {missing}"


@pytest.mark.slow
def test_doctest_build_passes(tmp_path: Path) -> None:
    done = _sphinx("doctest", tmp_path)
    report = (tmp_path / "doctest" / "output.txt")
    detail = report.read_text()[-6000:] if report.exists() else done.stderr[-6000:]
    assert done.returncode == 0, detail
