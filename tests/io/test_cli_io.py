"""``mxarray quantize`` and ``mxarray inspect``: files in, self-describing MX files out."""

from __future__ import annotations

import io
import re
import tracemalloc

import numpy as np
import pytest

import mxarray
from mxarray.cli import main
from mxarray.io import load, save
from mxarray.io.quantizing import quantize_file
from mxarray.report import qsnr_db

pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="the io extra (ml_dtypes) is not installed")


@pytest.fixture
def checkpoint(tmp_path):
    """A small checkpoint-like safetensors file: bf16, f32 and f16 weights plus an int."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(3)
    tensors = {
        "embed.weight": rng.standard_normal((50, 64)).astype(ml_dtypes.bfloat16),
        "layers.0.mlp.weight": rng.standard_normal((64, 80)).astype(np.float32),
        "layers.0.mlp.bias": rng.standard_normal(80).astype(np.float16),
        "step": np.array([1000], np.int64),
    }
    path = tmp_path / "ckpt.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def _rows(text: str) -> dict[str, list[str]]:
    """The summary table's rows by tensor name (columns split on runs of 2+ spaces)."""
    lines = text.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    out = {}
    for line in lines[2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        out[cells[0]] = cells
    assert header[:7] == ["tensor", "dtype", "shape", "format", "QSNR dB", "bytes before",
                          "bytes after"]
    return out


def test_quantize_every_floating_tensor_and_report_it(checkpoint, tmp_path, capsys):
    src, tensors = checkpoint
    out = tmp_path / "q.safetensors"
    assert main(["quantize", str(src), "-f", "mxfp6_e2m3", "-o", str(out), "--all"]) == 0
    printed = capsys.readouterr().out
    rows = _rows(printed)
    back = load(out)
    assert set(back) == set(tensors)
    for name, x in tensors.items():
        if name == "step":
            np.testing.assert_array_equal(back[name], x)
            assert rows[name][3] == "kept" and rows[name][-1] == "not floating"
            continue
        q = back[name]
        assert (q.format, q.shape, q.block_axis) == (mxarray.mxfp6_e2m3, x.shape, x.ndim - 1)
        direct = mxarray.quantize(x.astype(np.float32), "mxfp6_e2m3")
        np.testing.assert_array_equal(q.packed, direct.packed)
        np.testing.assert_array_equal(q.scales, direct.scales)
        assert (q.rounding, q.scale_mode) == ("even", "floor")
        qsnr = qsnr_db(x.astype(np.float32), q.dequantize())
        assert rows[name][4] == f"{qsnr:.2f}"
        assert rows[name][5] == f"{x.nbytes:,}"
        assert rows[name][6] == f"{q.packed.nbytes + q.scales.nbytes:,}"
    before = sum(x.nbytes for x in tensors.values())
    assert rows["total"][1] == f"{before:,}"
    assert "wrote" in printed and "3 of 4 tensors quantized" in printed


def test_modes_axis_and_npz_output(checkpoint, tmp_path, capsys):
    src, tensors = checkpoint
    out = tmp_path / "q.npz"
    assert main(["quantize", str(src), "-f", "mxfp8_e4m3", "-o", str(out), "--axis", "1", "--all",
                 "--rounding", "nearest", "--scale-mode", "ceil"]) == 0
    rows = _rows(capsys.readouterr().out)
    back = load(out)
    w = tensors["layers.0.mlp.weight"]
    direct = mxarray.quantize(w, "mxfp8_e4m3", axis=1, rounding="nearest", scale_mode="ceil")
    np.testing.assert_array_equal(back["layers.0.mlp.weight"].packed, direct.packed)
    assert back["layers.0.mlp.weight"].rounding == "nearest"
    # the 1-D bias has no axis 1: it is copied, and the table says why
    np.testing.assert_array_equal(back["layers.0.mlp.bias"], tensors["layers.0.mlp.bias"])
    assert rows["layers.0.mlp.bias"][-1] == "no axis 1"


def test_stochastic_rounding_is_seeded_per_tensor_and_reproducible(tmp_path):
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    np.savez(tmp_path / "in.npz", a=x, b=x)
    for name in ("o1.npz", "o2.npz"):
        quantize_file(tmp_path / "in.npz", tmp_path / name, "mxfp4_e2m1",
                      rounding="stochastic", seed=41)
    one, two = load(tmp_path / "o1.npz"), load(tmp_path / "o2.npz")
    assert (one["a"].seed, one["b"].seed) == (41, 42)
    np.testing.assert_array_equal(one["b"].packed, two["b"].packed)
    direct = mxarray.quantize(x, "mxfp4_e2m1", rounding="stochastic", seed=42)
    np.testing.assert_array_equal(one["b"].packed, direct.packed)
    assert not np.array_equal(one["a"].packed, one["b"].packed)


def test_npy_input_and_mx_arrays_already_in_the_input(tmp_path, capsys):
    x = np.linspace(-1, 1, 3 * 33, dtype=np.float64).reshape(3, 33)
    np.save(tmp_path / "x.npy", x)
    assert main(["quantize", str(tmp_path / "x.npy"), "-f", "mxint8",
                 "-o", str(tmp_path / "x.safetensors")]) == 0
    first = load(tmp_path / "x.safetensors")["x"]
    np.testing.assert_array_equal(first.packed, mxarray.quantize(x, "mxint8").packed)
    capsys.readouterr()
    # quantizing a file that already holds MX arrays carries them over unchanged
    assert main(["quantize", str(tmp_path / "x.safetensors"), "-f", "mxfp4_e2m1",
                 "-o", str(tmp_path / "again.npz")]) == 0
    assert _rows(capsys.readouterr().out)["x"][-1] == "already MX"
    again = load(tmp_path / "again.npz")["x"]
    assert again.format is mxarray.mxint8
    np.testing.assert_array_equal(again.packed, first.packed)


@pytest.mark.parametrize("fmt", ["nvfp4", "mx9", "mx4"])
def test_block_formats_beyond_ocp(tmp_path, fmt):
    x = np.random.default_rng(2).standard_normal((8, 40)).astype(np.float32) * 300
    np.savez(tmp_path / "in.npz", w=x)
    [row] = quantize_file(tmp_path / "in.npz", tmp_path / "out.safetensors", fmt)
    q = load(tmp_path / "out.safetensors")["w"]
    direct = mxarray.quantize(x, fmt)
    np.testing.assert_array_equal(q.packed, direct.packed)
    np.testing.assert_array_equal(q.scales, direct.scales)
    assert q.tensor_scale == direct.tensor_scale
    extra = 0 if direct.tensor_scale is None else 4  # the float32 tensor scale
    assert row.bytes_after == direct.packed.nbytes + direct.scales.nbytes + extra
    assert row.qsnr_db == pytest.approx(qsnr_db(x, direct.dequantize()))


def _peak(src, dst) -> int:
    tracemalloc.start()
    try:
        quantize_file(src, dst, "mxfp8_e4m3")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_by_the_largest_tensor_not_the_file(tmp_path):
    x = np.random.default_rng(1).standard_normal((256, 512)).astype(np.float32)  # 512 KiB
    np.savez(tmp_path / "one.npz", t0=x)
    np.savez(tmp_path / "many.npz", **{f"t{i}": x for i in range(16)})  # 8 MiB
    one = _peak(tmp_path / "one.npz", tmp_path / "one_out.npz")
    many = _peak(tmp_path / "many.npz", tmp_path / "many_out.npz")
    assert many < 1.5 * one, (one, many)  # does not grow with the number of tensors
    assert many < 16 * x.nbytes  # less than the file: it was never held whole


def test_progress_is_drawn_only_on_a_terminal(checkpoint, tmp_path, monkeypatch, capsys):
    src, _ = checkpoint
    assert main(["quantize", str(src), "-f", "mxint8", "-o", str(tmp_path / "a.npz"),
                 "--all"]) == 0
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    assert main(["quantize", str(src), "-f", "mxint8", "-o", str(tmp_path / "b.npz"),
                 "--all"]) == 0
    drawn = term.getvalue()
    assert "[1/4]" in drawn and "[4/4]" in drawn and drawn.endswith("\n")


def test_inspect_lists_what_a_file_holds(checkpoint, tmp_path, capsys):
    src, tensors = checkpoint
    assert main(["inspect", str(src)]) == 0
    text = capsys.readouterr().out
    assert f"{len(tensors)} tensor(s)" in text.splitlines()[0]
    assert re.search(r"embed\.weight\s+dense\s+bfloat16\s+\(50, 64\)", text)
    out = tmp_path / "q.safetensors"
    save(out, {"w": mxarray.quantize(tensors["layers.0.mlp.weight"], "mxfp4_e2m1", axis=0),
               "step": tensors["step"]})
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    # 64 x 80 blocked along axis 0: 2 blocks x 80 columns, 16 bytes + 1 scale per block
    assert re.search(r"w\s+mx\s+mxfp4_e2m1\s+\(64, 80\)\s+0\s+2,720\s+rounding=even", text)
    assert re.search(r"step\s+dense\s+int64\s+\(1,\)\s+8", text)


@pytest.mark.parametrize("argv, message", [
    (["quantize", "missing.npz", "-f", "mxint8", "-o", "o.npz"], "No such file"),
    (["quantize", "in.npz", "-f", "mxint8", "-o", "o.pt"], "unsupported file type '.pt'"),
    (["quantize", "bad.safetensors", "-f", "mxint8", "-o", "o.npz"], "not a valid file"),
    (["inspect", "bad.safetensors"], "not a valid file"),
    (["inspect", "in.txt"], "unsupported file type '.txt'"),
])
def test_cli_errors_are_clear_and_leave_no_output(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    np.savez("in.npz", a=np.ones((2, 32), np.float32))
    (tmp_path / "bad.safetensors").write_bytes(b"\x10" + b"\0" * 7 + b"{}")
    (tmp_path / "in.txt").write_text("x")
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not any(p.name.startswith("o.") for p in tmp_path.iterdir())
