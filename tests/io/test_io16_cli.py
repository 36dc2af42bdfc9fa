"""``mxarray quantize``: exit status, format names, Ctrl-C, selection and per-pattern formats."""

from __future__ import annotations

import numpy as np
import pytest

import mxarray
from mxarray import cli
from mxarray.cli import main
from mxarray.io import load, quantize_file

pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="the io extra (ml_dtypes) is not installed")

RNG = np.random.default_rng(2)
TENSORS = {
    "model.embed_tokens.weight": RNG.standard_normal((40, 64)).astype(np.float32),
    "model.layers.0.input_layernorm.weight": np.ones(64, np.float32),
    "model.layers.0.mlp.up_proj.weight": RNG.standard_normal((96, 64)).astype(np.float32),
    "model.layers.0.mlp.up_proj.bias": RNG.standard_normal((1, 96)).astype(np.float32),
    "model.layers.0.self_attn.q_proj.weight": RNG.standard_normal((64, 64)).astype(np.float32),
    "model.layers.0.self_attn.k_proj.weight": RNG.standard_normal((64, 16)).astype(np.float32),
    "lm_head.weight": RNG.standard_normal((40, 64)).astype(np.float32),
    "step": np.array([7], np.int64),
}


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, **TENSORS)
    return path


def _formats(path) -> dict[str, str | None]:
    return {k: v.format.name if isinstance(v, mxarray.MXArray) else None
            for k, v in load(path).items()}


def test_nothing_quantized_is_an_error_and_writes_nothing(model, tmp_path, capsys):
    assert main(["quantize", str(model), "-f", "mxint8", "-o", str(tmp_path / "o.npz"),
                 "--axis", "2"]) == 1
    err = capsys.readouterr().err
    assert "nothing to quantize" in err and "7 no axis 2" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    with pytest.raises(ValueError, match="nothing to quantize.*7 not included, 1 not floating"):
        quantize_file(model, tmp_path / "o.npz", "mxint8", include=["step"])


@pytest.mark.parametrize("name", ["MXFP8_E4M3", "MxFp8_e4m3", "*=MXFP8_E4M3"])
def test_format_names_ignore_case(model, tmp_path, name):
    assert main(["quantize", str(model), "-f", name, "-o", str(tmp_path / "o.npz")]) == 0
    assert _formats(tmp_path / "o.npz")["model.layers.0.mlp.up_proj.weight"] == "mxfp8_e4m3"


def test_an_unknown_format_is_a_usage_error(model, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["quantize", str(model), "-f", "mlp.*=mxfp5", "-o", str(tmp_path / "o.npz")])
    assert exit_.value.code == 2 and "unknown format 'mxfp5'" in capsys.readouterr().err


def test_ctrl_c_ends_with_one_line_and_no_file(model, tmp_path, monkeypatch, capsys):
    def interrupt(i, n, name):
        if i == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_progress", interrupt)
    assert main(["quantize", str(model), "-f", "mxint8", "-o", str(tmp_path / "o.npz")]) == 130
    captured = capsys.readouterr()
    assert captured.err == "mxarray quantize: interrupted (no output written)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_default_policy_keeps_norms_biases_embeddings_and_lm_head(model, tmp_path, capsys):
    assert main(["quantize", str(model), "-f", "mxfp4_e2m1", "-o", str(tmp_path / "o.npz")]) == 0
    out = capsys.readouterr().out
    assert _formats(tmp_path / "o.npz") == {
        "model.embed_tokens.weight": None,
        "model.layers.0.input_layernorm.weight": None,
        "model.layers.0.mlp.up_proj.weight": "mxfp4_e2m1",
        "model.layers.0.mlp.up_proj.bias": None,
        "model.layers.0.self_attn.q_proj.weight": "mxfp4_e2m1",
        "model.layers.0.self_attn.k_proj.weight": None,  # 16 < one block of 32
        "lm_head.weight": None,
        "step": None,
    }
    for note in ("policy: *embed*", "1-D (policy)", "policy: *bias", "axis < 32 (policy)",
                 "policy: *lm_head*", "not floating"):
        assert note in out
    assert "2 of 8 tensors quantized" in out
    assert "selection: formats mxfp4_e2m1; default policy: 1-D tensors" in out
    np.testing.assert_array_equal(load(tmp_path / "o.npz")["lm_head.weight"],
                                  TENSORS["lm_head.weight"])


def test_all_quantizes_every_floating_tensor_with_the_axis(model, tmp_path, capsys):
    assert main(["quantize", str(model), "-f", "mxfp4_e2m1", "-o", str(tmp_path / "o.npz"),
                 "--all"]) == 0
    got = _formats(tmp_path / "o.npz")
    assert [k for k, v in got.items() if v is None] == ["step"]
    assert "every floating tensor (--all)" in capsys.readouterr().out


def test_include_exclude_and_first_matching_format(model, tmp_path):
    assert main(["quantize", str(model), "-o", str(tmp_path / "o.npz"),
                 "-f", "*.mlp.*=mxfp4_e2m1", "-f", "*=MXFP8_E4M3",
                 "--include", "model.layers.*", "--include", "lm_head.*",
                 "--exclude", "*.k_proj.*", "--exclude", "*up_proj.bias", "--all"]) == 0
    got = _formats(tmp_path / "o.npz")
    assert got["model.layers.0.mlp.up_proj.weight"] == "mxfp4_e2m1"
    assert got["model.layers.0.self_attn.q_proj.weight"] == "mxfp8_e4m3"
    assert got["lm_head.weight"] == "mxfp8_e4m3"
    assert got["model.layers.0.self_attn.k_proj.weight"] is None  # exclude wins
    assert got["model.layers.0.mlp.up_proj.bias"] is None
    assert got["model.embed_tokens.weight"] is None  # not included
    rows = {r.name: r.note for r in quantize_file(
        model, tmp_path / "p.npz", formats={"*.mlp.*": "mxfp4_e2m1"}, include=["model.*"],
        exclude=["*k_proj*"], policy=False)}
    assert rows["lm_head.weight"] == "not included"
    assert rows["model.layers.0.self_attn.k_proj.weight"] == "excluded: *k_proj*"
    assert rows["model.layers.0.self_attn.q_proj.weight"] == "no format pattern"
    with pytest.raises(TypeError, match="list of glob patterns"):
        quantize_file(model, tmp_path / "q.npz", "mxint8", include="model.*")


def test_stochastic_seeds_follow_the_position_in_the_file(model, tmp_path):
    quantize_file(model, tmp_path / "o.npz", "mxfp4_e2m1", rounding="stochastic", seed=100)
    back = load(tmp_path / "o.npz")
    names = list(TENSORS)
    for name in ("model.layers.0.mlp.up_proj.weight", "model.layers.0.self_attn.q_proj.weight"):
        assert back[name].seed == 100 + names.index(name)
    quantize_file(model, tmp_path / "p.npz", "mxfp4_e2m1", rounding="stochastic", seed=100,
                  positions={n: 10 * i for i, n in enumerate(names)})
    again = load(tmp_path / "p.npz")["model.layers.0.mlp.up_proj.weight"]
    assert again.seed == 100 + 10 * names.index("model.layers.0.mlp.up_proj.weight")


def test_the_inputs_metadata_is_kept(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones((2, 64), np.float32)}, str(tmp_path / "in.safetensors"),
              metadata={"format": "pt", "note": "kept"})
    quantize_file(tmp_path / "in.safetensors", tmp_path / "o.safetensors", "mxint8")
    from mxarray.io.describe import describe_file

    assert describe_file(tmp_path / "o.safetensors").metadata == {"format": "pt",
                                                                  "note": "kept"}


def test_report_format_names_ignore_case(capsys):
    assert main(["report", "--format", "MXFP8_E4M3", "--data", "gaussian", "--size", "256",
                 "--repeats", "1"]) == 0
    assert "mxfp8_e4m3" in capsys.readouterr().out


def test_every_io_module_is_importable_under_its_own_name():
    import importlib
    import pkgutil

    import mxarray.io

    for module in pkgutil.iter_modules(mxarray.io.__path__):
        imported = importlib.import_module(f"mxarray.io.{module.name}")
        assert imported.__name__ == f"mxarray.io.{module.name}"
        assert getattr(mxarray.io, module.name, imported) is imported  # not hidden
    assert mxarray.io.quantize_file is importlib.import_module(
        "mxarray.io.quantizing").quantize_file
