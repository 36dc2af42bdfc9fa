"""Files, checkpoints and ``mxarray quantize`` / ``inspect`` on the inputs a user meets:
float8 tensors, reserved names, Fortran-ordered arrays, failed writes, the output path
equal to the input, empty and non-finite tensors, and original gpt-oss checkpoints."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import mxarray
from mxarray.cli import main
from mxarray.io import load, save
from mxarray.io._files import open_writer
from mxarray.io.checkpoints import load_gpt_oss, save_gpt_oss, to_gpt_oss
from mxarray.io.describe import describe_file
from mxarray.io.quantizing import quantize_file
from mxarray.report import qsnr_db

pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="the io extra (ml_dtypes) is not installed")

SUFFIXES = (".safetensors", ".npz")


# -- reading what other tools write ------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_float8_tensors_read_back_from_safetensors(tmp_path, dtype):
    # FP8 checkpoints hold F8_E4M3 / F8_E5M2 tensors; the safetensors package's NumPy
    # reader cannot build them, so they were written but could not be read back.
    x = np.arange(-40, 40, dtype=np.float32).reshape(2, 40).astype(getattr(ml_dtypes, dtype))
    save(tmp_path / "f8.safetensors", {"w": x, "s": np.float32(0.5)})
    back = load(tmp_path / "f8.safetensors")
    assert back["w"].dtype == x.dtype and back["w"].tobytes() == x.tobytes()
    assert back["s"] == np.float32(0.5)
    # and they are copied unchanged by mxarray quantize (they are not float16/32/64)
    with pytest.raises(ValueError, match="nothing to quantize.*1 float8"):
        quantize_file(tmp_path / "f8.safetensors", tmp_path / "q.safetensors", "mxint8")
    save(tmp_path / "f8.safetensors", {"w": x, "s": np.float32(0.5),
                                       "d": np.ones((2, 32), np.float32)})
    rows = quantize_file(tmp_path / "f8.safetensors", tmp_path / "q.safetensors", "mxint8")
    assert [(r.name, r.format) for r in rows] == [("w", None), ("s", None), ("d", "mxint8")]
    assert load(tmp_path / "q.safetensors")["w"].tobytes() == x.tobytes()
    # .npz has no portable name for them (float8_e5m2's header used to read back as
    # '<f1', which NumPy refuses): refused when writing, not when reading
    with pytest.raises(ValueError, match=".npz cannot record"):
        save(tmp_path / "f8.npz", {"w": x})
    assert not (tmp_path / "f8.npz").exists()


def test_float8_tensors_written_by_torch_are_read(tmp_path):
    torch = pytest.importorskip("torch", reason="needs torch to write a torch float8 file")
    from safetensors.torch import save_file

    codes = np.arange(256, dtype=np.uint8).reshape(4, 64)
    codes[codes == 0x7F] = 0  # keep NaN codes out so the comparison is by value too
    codes[codes == 0xFF] = 0
    t = torch.from_numpy(codes.copy()).view(torch.float8_e4m3fn)
    save_file({"w": t, "bias": torch.ones(4)}, str(tmp_path / "torch.safetensors"))
    back = load(tmp_path / "torch.safetensors")
    assert back["w"].dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    np.testing.assert_array_equal(back["w"].view(np.uint8), codes)
    np.testing.assert_array_equal(back["w"].astype(np.float32), t.float().numpy())


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_tensor_named_like_the_metadata_entry_is_refused(tmp_path, suffix):
    # safetensors keeps its metadata under "__metadata__" and .npz under a member of
    # that name: such a tensor made save() write a file load() refused.
    path = tmp_path / f"m{suffix}"
    with pytest.raises(ValueError, match="'__metadata__' is reserved"):
        save(path, {"__metadata__": np.zeros(3, np.float32)})
    assert not list(tmp_path.iterdir())


def test_fortran_ordered_npy_and_npz_files_load(tmp_path):
    x = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    np.save(tmp_path / "f.npy", x)
    np.savez(tmp_path / "f.npz", x=x, y=np.arange(3))
    np.testing.assert_array_equal(load(tmp_path / "f.npy")["f"], x)
    np.testing.assert_array_equal(load(tmp_path / "f.npz")["x"], x)
    rows = quantize_file(tmp_path / "f.npz", tmp_path / "q.safetensors", "mxfp8_e4m3", axis=0,
                         policy=False)
    assert rows[0].format == "mxfp8_e4m3" and rows[0].qsnr_db == np.inf  # small integers
    np.testing.assert_array_equal(load(tmp_path / "q.safetensors")["x"].dequantize(), x)


# -- writing -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_writer_that_fails_to_finish_leaves_nothing_behind(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    entries = [("a", np.dtype(np.float32), (2,)), ("b", np.dtype(np.float32), (2,))]
    with pytest.raises(ValueError, match="1 declared tensor"), \
            open_writer(path, entries, {}) as writer:
        writer.write("a", np.zeros(2, np.float32))
    assert not list(tmp_path.iterdir())


def test_writing_to_a_directory_or_a_missing_directory_is_refused_cleanly(tmp_path):
    x = np.zeros(4, np.float32)
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        save(tmp_path / "d.npz", {"x": x})
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        save(tmp_path / "nowhere" / "x.safetensors", {"x": x})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]  # no .partial file


def test_names_written_twice_are_named(tmp_path):
    np.savez(tmp_path / "in.npz", w=np.ones((2, 32), np.float32),
             **{"w.mx_scales": np.ones(3, np.int32)})
    with pytest.raises(ValueError, match=r"\['w.mx_scales'\] would be written twice"):
        quantize_file(tmp_path / "in.npz", tmp_path / "out.npz", "mxint8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]


# -- mxarray quantize ----------------------------------------------------------------------


def test_quantize_refuses_to_overwrite_its_input(tmp_path, capsys):
    src = tmp_path / "in.npz"
    np.savez(src, w=np.linspace(-1, 1, 64, dtype=np.float32))
    before = src.read_bytes()
    os.symlink(src, tmp_path / "link.npz")
    for out in (src, tmp_path / "link.npz"):
        assert main(["quantize", str(src), "-f", "mxfp4_e2m1", "-o", str(out)]) == 1
        assert "is the input file" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_quantize_refuses_a_seed_outside_64_bits(tmp_path, capsys):
    # --seed -1 used to wrap round to 2**64 - 1 without a word.
    src = tmp_path / "in.npz"
    np.savez(src, w=np.linspace(-1, 1, 64, dtype=np.float32))
    for seed in ("-1", str(2**64)):
        assert main(["quantize", str(src), "-f", "mxfp4_e2m1", "-o", str(tmp_path / "o.npz"),
                     "--rounding", "stochastic", "--seed", seed]) == 1
        assert "seed must be in [0, 2**64)" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("fmt", list(mxarray.formats.BLOCK_FORMATS))
def test_empty_tensors_are_copied_for_every_format(tmp_path, fmt):
    # (0, 4) blocked along its last axis used to be "quantized" (QSNR inf) and crashed
    # the whole run for nvfp4, whose tensor scale needs a maximum.
    shapes = {"a": (0, 4), "b": (4, 0), "c": (0,)}
    np.savez(tmp_path / "in.npz", w=np.ones((2, 40), np.float32),
             **{k: np.zeros(s, np.float32) for k, s in shapes.items()})
    rows = {r.name: r for r in quantize_file(tmp_path / "in.npz", tmp_path / "o.npz", fmt)}
    assert rows["w"].format == fmt
    back = load(tmp_path / "o.npz")
    for name, shape in shapes.items():
        assert (rows[name].format, rows[name].qsnr_db, rows[name].note) == (None, None, "empty")
        assert back[name].shape == shape and back[name].dtype == np.float32


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mx6", "nvfp4"])
def test_qsnr_of_a_tensor_with_inf_or_nan_covers_its_other_blocks(tmp_path, fmt):
    block = mxarray.formats.get_format(fmt).block_size
    x = np.random.default_rng(4).standard_normal((3, 2 * block)).astype(np.float32)
    x[0, 1], x[2, block + 3] = np.inf, np.nan  # two blocks hold a non-finite value
    np.savez(tmp_path / "in.npz", x=x)
    (row,) = quantize_file(tmp_path / "in.npz", tmp_path / "o.npz", fmt)
    assert row.note == "2 NaN block(s) (inf/nan input)"
    y = load(tmp_path / "o.npz")["x"].dequantize()
    assert np.isnan(y[0, :block]).all() and np.isnan(y[2, block:]).all()
    clean = np.ones(x.shape, bool)
    clean[0, :block] = clean[2, block:] = False
    assert np.isfinite(row.qsnr_db)
    assert row.qsnr_db == pytest.approx(qsnr_db(x[clean], y[clean]), rel=1e-12)


# -- gpt-oss checkpoints -------------------------------------------------------------------


def _experts() -> mxarray.MXArray:
    x = np.random.default_rng(7).standard_normal((2, 3, 64)).astype(np.float32)
    return mxarray.quantize(x, "mxfp4_e2m1")


def test_original_gpt_oss_names_are_recognised(tmp_path, capsys):
    # The original gpt-oss checkpoints name the pair NAME.blocks / NAME.scales (Hugging
    # Face's conversion uses NAME_blocks / NAME_scales).
    from safetensors.numpy import save_file

    w = _experts()
    blocks, scales = to_gpt_oss(w)
    path = tmp_path / "original.safetensors"
    save_file({"block.0.mlp.mlp1_weight.blocks": blocks,
               "block.0.mlp.mlp1_weight.scales": scales,
               "block.0.mlp.mlp1_bias": np.zeros(3, np.float32)}, str(path))
    back = load_gpt_oss(path)
    assert sorted(back) == ["block.0.mlp.mlp1_bias", "block.0.mlp.mlp1_weight"]
    got = back["block.0.mlp.mlp1_weight"]
    np.testing.assert_array_equal(got.packed, w.packed)
    np.testing.assert_array_equal(got.scales, w.scales)
    (t,) = [t for t in describe_file(path).tensors if t.kind == "gpt-oss"]
    assert (t.name, t.shape, t.details) == ("block.0.mlp.mlp1_weight", (2, 3, 64),
                                            "NAME.blocks + NAME.scales")
    assert main(["inspect", str(path)]) == 0
    assert re.search(r"block\.0\.mlp\.mlp1_weight\s+gpt-oss\s+mxfp4_e2m1\s+\(2, 3, 64\)",
                     capsys.readouterr().out)


def test_a_tensor_named_like_a_pair_is_not_silently_dropped(tmp_path):
    from safetensors.numpy import save_file

    blocks, scales = to_gpt_oss(_experts())
    path = tmp_path / "clash.safetensors"
    save_file({"w_blocks": blocks, "w_scales": scales, "w": np.ones(2, np.float32)},
              str(path))
    with pytest.raises(ValueError, match=r"\['w'\] share their names"):
        load_gpt_oss(path)
    assert sorted(load(path)) == ["w", "w_blocks", "w_scales"]  # still readable as is



def test_a_tensor_of_nan_blocks_only_has_no_qsnr(tmp_path):
    np.savez(tmp_path / "in.npz", x=np.full((2, 32), np.nan, np.float32))
    (row,) = quantize_file(tmp_path / "in.npz", tmp_path / "o.npz", "mxfp4_e2m1")
    assert np.isnan(row.qsnr_db) and row.note == "2 NaN block(s) (inf/nan input)"


def test_the_summary_says_when_the_output_is_larger(tmp_path, capsys):
    # rows of 2 float16 values padded to MX9 blocks of 16 grow 4.5 times: the total used
    # to read "0.22x smaller"
    np.savez(tmp_path / "in.npz", x=np.ones((4, 2), np.float16))
    assert main(["quantize", str(tmp_path / "in.npz"), "-f", "mx9", "-o",
                 str(tmp_path / "o.npz"), "--all"]) == 0
    total = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("total")]
    assert total and total[0].split()[1:] == ["16", "72", "4.50x", "larger"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_big_endian_npz_tensors_are_quantized(tmp_path, suffix):
    x = np.linspace(-3, 3, 64).reshape(2, 32)
    np.savez(tmp_path / "be.npz", f4=x.astype(">f4"), f8=x.astype(">f8"), f2=x.astype(">f2"),
             i4=np.arange(3, dtype=">i4"))
    rows = quantize_file(tmp_path / "be.npz", tmp_path / f"o{suffix}", "mxfp8_e4m3")
    assert [r.format for r in rows] == ["mxfp8_e4m3"] * 3 + [None]
    back = load(tmp_path / f"o{suffix}")
    for name in ("f4", "f8", "f2"):
        want = mxarray.quantize(x.astype(name.replace("f", "<f")), "mxfp8_e4m3")
        np.testing.assert_array_equal(back[name].packed, want.packed)
        np.testing.assert_array_equal(back[name].scales, want.scales)
    assert back["i4"].dtype == np.dtype("<i4") and back["i4"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("writer", [save, save_gpt_oss])
def test_save_checks_what_it_is_given(tmp_path, writer):
    with pytest.raises(TypeError, match="mapping of names"):
        writer(tmp_path / "x.npz", [np.zeros(3)])
    with pytest.raises(ValueError, match="non-empty strings, got 1"):
        writer(tmp_path / "x.npz", {1: np.zeros(3)})
    assert not list(tmp_path.iterdir())


def test_report_names_the_formats_a_mode_leaves_out(tmp_path, capsys):
    # NVFP4 has no stochastic rounding: the default table used to drop it silently
    np.save(tmp_path / "x.npy", np.linspace(-1, 1, 64, dtype=np.float32))
    argv = ["report", "--input", str(tmp_path / "x.npy"), "--repeats", "1"]
    assert main(argv + ["--rounding", "stochastic"]) == 0
    out = capsys.readouterr().out
    # other tests may have registered formats that join nvfp4 in the list
    assert re.search(r"not shown: (\S+, )*nvfp4(, \S+)* \(no rounding 'stochastic' or scale "
                     r"mode 'floor'\)", out)
    assert main(argv) == 0
    assert "not shown" not in capsys.readouterr().out
