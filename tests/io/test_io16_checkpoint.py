"""A transformer-shaped checkpoint generated at test time, end to end: ``mxarray quantize`` with
the default policy, sharded checkpoints serially, in local processes and on a 2-worker Dask
LocalCluster (byte-identical), and stochastic seeds that sharding does not change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mxarray
from mxarray.cli import main
from mxarray.io import load
from mxarray.io.quantizing import Settings
from mxarray.io.selection import Selection, format_rules
from mxarray.io.sharded import INDEX_NAME, quantize_checkpoint

ml_dtypes = pytest.importorskip("ml_dtypes", reason="the io extra (ml_dtypes) is not installed")
pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")

LAYER_TENSORS = ("input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
                 "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                 "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                 "mlp.down_proj.weight")


def transformer_tensors(layers: int = 12, hidden: int = 64, intermediate: int = 128,
                        vocab: int = 96, seed: int = 0) -> dict[str, np.ndarray]:
    """A Llama-shaped state dict: bfloat16 projections and embeddings, float32 norms, bf16
    biases, and ``lm_head`` tied to the embedding (the same values); 3 + 10 * layers
    tensors (123 for 12 layers)."""
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(ml_dtypes.bfloat16)

    embed = weight(vocab, hidden)
    out = {"model.embed_tokens.weight": embed}
    shapes = {"self_attn.q_proj.weight": (hidden, hidden), "self_attn.k_proj.weight":
              (hidden // 2, hidden), "self_attn.v_proj.weight": (hidden // 2, hidden),
              "self_attn.o_proj.weight": (hidden, hidden), "mlp.gate_proj.weight":
              (intermediate, hidden), "mlp.up_proj.weight": (intermediate, hidden),
              "mlp.down_proj.weight": (hidden, intermediate)}
    for i in range(layers):
        for name in LAYER_TENSORS:
            key = f"model.layers.{i}.{name}"
            if name.endswith("layernorm.weight"):
                out[key] = (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32)
            elif name.endswith("bias"):
                out[key] = (0.02 * rng.standard_normal(hidden)).astype(ml_dtypes.bfloat16)
            else:
                out[key] = weight(*shapes[name])
    out["model.norm.weight"] = np.ones(hidden, np.float32)
    out["lm_head.weight"] = embed.copy()  # tied to the embedding
    return out


def write_checkpoint(directory: Path, tensors: dict[str, np.ndarray], shards: int) -> Path:
    """Write ``tensors`` as ``shards`` safetensors files and a Hugging Face index."""
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    names = list(tensors)
    cuts = np.array_split(np.arange(len(names)), shards)
    weight_map = {}
    for k, cut in enumerate(cuts):
        shard = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        save_file({names[i]: tensors[names[i]] for i in cut}, str(directory / shard),
                  metadata={"format": "pt"})
        weight_map.update({names[i]: shard for i in cut})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
             "weight_map": dict(sorted(weight_map.items()))}
    (directory / INDEX_NAME).write_text(json.dumps(index))
    return directory


@pytest.fixture(scope="module")
def tensors():
    return transformer_tensors()


def test_the_fixture_is_transformer_shaped(tensors):
    assert len(tensors) == 123
    assert {str(t.dtype) for t in tensors.values()} == {"bfloat16", "float32"}
    assert np.array_equal(tensors["lm_head.weight"], tensors["model.embed_tokens.weight"])


def test_cli_default_policy_then_load_then_torch(tensors, tmp_path, capsys):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from mxarray.interop import to_torch

    from safetensors.numpy import save_file

    save_file(tensors, str(tmp_path / "model.safetensors"))
    assert main(["quantize", str(tmp_path / "model.safetensors"), "-f", "mxfp4_e2m1",
                 "-o", str(tmp_path / "q.safetensors")]) == 0
    printed = capsys.readouterr().out
    assert "84 of 123 tensors quantized" in printed  # 7 projections x 12 layers
    back = load(tmp_path / "q.safetensors")
    for name, x in tensors.items():
        kept = any(p in name for p in ("norm", "bias", "embed", "lm_head"))
        assert isinstance(back[name], mxarray.MXArray) != kept, name
        if kept:
            assert back[name].dtype == x.dtype and back[name].tobytes() == x.tobytes()
    w = back["model.layers.3.mlp.down_proj.weight"]
    ref = mxarray.quantize(tensors["model.layers.3.mlp.down_proj.weight"].astype(np.float32),
                           "mxfp4_e2m1")
    np.testing.assert_array_equal(w.packed, ref.packed)
    data, scales = to_torch(w)
    assert data.dtype == torch.float4_e2m1fn_x2 and scales.dtype == torch.float8_e8m0fnu


def _bytes_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def sharded(tensors, tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("in") / "model", tensors, shards=3)


SELECTION = Selection(format_rules("mxfp8_e4m3", {"*.mlp.*": "mxfp4_e2m1"}))
SETTINGS = Settings(rounding="stochastic", seed=9)


def test_sharded_checkpoint_serial_and_in_processes(sharded, tensors, tmp_path):
    rows = quantize_checkpoint(sharded, tmp_path / "serial", SELECTION, SETTINGS, workers=1)
    assert sorted(r.name for r in rows) == sorted(tensors)
    index = json.loads((tmp_path / "serial" / INDEX_NAME).read_text())
    assert sorted(set(index["weight_map"].values())) == sorted(
        p.name for p in sharded.glob("*.safetensors"))
    assert index["weight_map"]["model.layers.0.mlp.up_proj.weight.mx_packed"].endswith(
        ".safetensors")
    assert index["metadata"]["total_size"] == sum(
        p.stat().st_size for p in (tmp_path / "serial").glob("*.safetensors")) - sum(
        8 + int.from_bytes(p.read_bytes()[:8], "little")
        for p in (tmp_path / "serial").glob("*.safetensors"))
    quantize_checkpoint(sharded, tmp_path / "procs", SELECTION, SETTINGS, workers=2)
    assert _bytes_of(tmp_path / "procs") == _bytes_of(tmp_path / "serial")


def test_stochastic_seeds_do_not_depend_on_the_sharding(sharded, tensors, tmp_path):
    one = write_checkpoint(tmp_path / "one", tensors, shards=1)
    quantize_checkpoint(one, tmp_path / "q1", SELECTION, SETTINGS, workers=1)
    quantize_checkpoint(sharded, tmp_path / "q3", SELECTION, SETTINGS, workers=1)
    single = load(next((tmp_path / "q1").glob("*.safetensors")))
    many = {}
    for shard in (tmp_path / "q3").glob("*.safetensors"):
        many.update(load(shard))
    assert single.keys() == many.keys()
    name = "model.layers.5.mlp.up_proj.weight"
    assert many[name].seed == 9 + sorted(tensors).index(name)
    for key, a in single.items():
        if isinstance(a, mxarray.MXArray):
            np.testing.assert_array_equal(a.packed, many[key].packed)


def test_sharded_checkpoint_on_a_local_dask_cluster_is_byte_identical(sharded, tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    quantize_checkpoint(sharded, tmp_path / "serial", SELECTION, SETTINGS, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        assert main(["quantize", str(sharded), "-f", "*.mlp.*=mxfp4_e2m1", "-f",
                     "mxfp8_e4m3", "--rounding", "stochastic", "--seed", "9", "-o",
                     str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address]) == 0
    assert _bytes_of(tmp_path / "dask") == _bytes_of(tmp_path / "serial")


def test_sharded_errors_leave_nothing(sharded, tmp_path, capsys):
    assert main(["quantize", str(sharded), "-f", "mxint8", "--axis", "3", "-o",
                 str(tmp_path / "o")]) == 1
    assert "nothing to quantize" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / INDEX_NAME).write_text(json.dumps({"weight_map": {"w": "../x.safetensors"}}))
    assert main(["quantize", str(bad), "-f", "mxint8", "-o", str(tmp_path / "o")]) == 1
    assert "not a .safetensors file beside the index" in capsys.readouterr().err
