"""gpt-oss / Hugging Face and GGUF MXFP4 layouts: decoded by their own definitions, bytes kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mxarray
from mxarray.io.checkpoints import (
    from_gguf_mxfp4,
    from_gpt_oss,
    gguf_to_gpt_oss,
    gpt_oss_to_gguf,
    load_gpt_oss,
    save_gpt_oss,
    to_gguf_mxfp4,
    to_gpt_oss,
)
from mxarray.io.describe import describe_file

ml_dtypes = pytest.importorskip("ml_dtypes", reason="the E2M1 oracle needs ml_dtypes")

# E2M1 values of the 16 codes, decoded by ml_dtypes (independent of mxarray's tables).
E2M1 = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float64)
# ggml's kvalues_mxfp4: twice the E2M1 values, as int8, paired with 2**(e - 128).
GGML_KVALUES = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], np.float64)


def random_pair(rng, lead, n_blocks, nan_scales=False):
    blocks = rng.integers(0, 256, lead + (n_blocks, 16), dtype=np.uint8)
    scales = rng.integers(0, 256 if nan_scales else 255, lead + (n_blocks,), dtype=np.uint8)
    return blocks, scales


def gpt_oss_decode(blocks, scales):
    """The gpt-oss / transformers reading: low nibble -> even element, ldexp(scale - 127)."""
    out = np.empty(blocks.shape[:-1] + (32,))
    out[..., 0::2] = E2M1[blocks & 0x0F]
    out[..., 1::2] = E2M1[blocks >> 4]
    out = np.ldexp(out, scales.astype(np.int64)[..., None] - 127)
    return out.reshape(blocks.shape[:-2] + (-1,))


def ggml_decode(rows):
    """ggml's dequantize_row_mxfp4: y[j] = kv[qs[j] & 15] * d, y[j+16] = kv[qs[j] >> 4] * d."""
    blocks = rows.reshape(rows.shape[:-1] + (-1, 17))
    d = np.ldexp(1.0, blocks[..., 0].astype(np.int64) - 128)[..., None]
    qs = blocks[..., 1:]
    y = np.concatenate([GGML_KVALUES[qs & 0x0F] * d, GGML_KVALUES[qs >> 4] * d], axis=-1)
    return y.reshape(rows.shape[:-1] + (-1,))


@given(seed=st.integers(0, 2**32 - 1), lead=st.lists(st.integers(1, 3), max_size=2).map(tuple),
       n_blocks=st.integers(1, 4))
def test_gpt_oss_bytes_decode_as_gpt_oss_decodes_them(seed, lead, n_blocks):
    blocks, scales = random_pair(np.random.default_rng(seed), lead, n_blocks)
    a = from_gpt_oss(blocks, scales)
    assert a.format is mxarray.mxfp4_e2m1 and a.shape == lead + (32 * n_blocks,)
    np.testing.assert_array_equal(a.dequantize(np.float64), gpt_oss_decode(blocks, scales))


@given(seed=st.integers(0, 2**32 - 1), lead=st.lists(st.integers(1, 3), max_size=2).map(tuple),
       n_blocks=st.integers(1, 4))
def test_gguf_bytes_decode_as_ggml_decodes_them(seed, lead, n_blocks):
    blocks, scales = random_pair(np.random.default_rng(seed), lead, n_blocks)
    rows = gpt_oss_to_gguf(blocks, scales)
    assert rows.shape == lead + (17 * n_blocks,)
    np.testing.assert_array_equal(ggml_decode(rows), gpt_oss_decode(blocks, scales))
    np.testing.assert_array_equal(from_gguf_mxfp4(rows).dequantize(np.float64), ggml_decode(rows))


@pytest.mark.filterwarnings("ignore::mxarray.io.checkpoints.LayoutWarning")  # 0xFF scales
@given(seed=st.integers(0, 2**32 - 1), lead=st.lists(st.integers(1, 3), max_size=2).map(tuple),
       n_blocks=st.integers(1, 4))
def test_layout_conversions_preserve_every_byte(seed, lead, n_blocks):
    rng = np.random.default_rng(seed)
    blocks, scales = random_pair(rng, lead, n_blocks, nan_scales=True)  # 0xFF scales too
    rows = gpt_oss_to_gguf(blocks, scales)
    back_blocks, back_scales = gguf_to_gpt_oss(rows)
    np.testing.assert_array_equal(back_blocks, blocks)
    np.testing.assert_array_equal(back_scales, scales)
    other = rng.integers(0, 256, lead + (17 * n_blocks,), dtype=np.uint8)
    np.testing.assert_array_equal(gpt_oss_to_gguf(*gguf_to_gpt_oss(other)), other)
    a = from_gpt_oss(blocks, scales)
    for out, want in zip(to_gpt_oss(a), (blocks, scales), strict=True):
        np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(to_gguf_mxfp4(from_gguf_mxfp4(rows)), rows)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mxarrays_on_any_axis_round_trip(axis):
    x = np.random.default_rng(axis).standard_normal((64, 32, 96)).astype(np.float32)
    a = mxarray.quantize(x, "mxfp4_e2m1", axis=axis)
    blocks, scales = to_gpt_oss(a)
    lead = tuple(n for i, n in enumerate(x.shape) if i != axis)
    assert blocks.shape == lead + (x.shape[axis] // 32, 16) and scales.shape == blocks.shape[:-1]
    b = from_gpt_oss(blocks, scales, axis=axis)
    assert (b.shape, b.block_axis) == (a.shape, a.block_axis)
    np.testing.assert_array_equal(b.packed, a.packed)
    np.testing.assert_array_equal(b.scales, a.scales)
    c = from_gguf_mxfp4(to_gguf_mxfp4(a), axis=axis)
    np.testing.assert_array_equal(c.dequantize(), a.dequantize())


def test_checkpoint_files_in_the_gpt_oss_layout(tmp_path):
    pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")
    from safetensors import safe_open
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    experts, rows, hidden = 2, 6, 64
    blocks, scales = random_pair(rng, (experts, rows), hidden // 32)
    bias = rng.standard_normal((experts, rows)).astype(np.float32)
    name = "model.layers.0.mlp.experts.gate_up_proj"
    save_file({name + "_blocks": blocks, name + "_scales": scales, name + "_bias": bias},
              str(tmp_path / "hf.safetensors"))

    # gpt-oss decodes to (experts, rows, hidden) and then transposes the last two axes;
    # the blocked axis placed at 1 gives that logical tensor with the same bytes.
    loaded = load_gpt_oss(tmp_path / "hf.safetensors", axis=1)
    w = loaded[name]
    assert w.shape == (experts, hidden, rows) and w.block_axis == 1
    want = gpt_oss_decode(blocks, scales).transpose(0, 2, 1)
    np.testing.assert_array_equal(w.dequantize(np.float64), want)
    np.testing.assert_array_equal(loaded[name + "_bias"], bias)

    save_gpt_oss(tmp_path / "out.safetensors", loaded)
    with safe_open(str(tmp_path / "out.safetensors"), framework="numpy") as f:
        assert set(f.keys()) == {name + "_blocks", name + "_scales", name + "_bias"}
        np.testing.assert_array_equal(f.get_tensor(name + "_blocks"), blocks)
        np.testing.assert_array_equal(f.get_tensor(name + "_scales"), scales)

    described = {t.name: t for t in describe_file(tmp_path / "hf.safetensors").tensors}
    assert described[name].kind == "gpt-oss"
    assert described[name].shape == (experts, rows, hidden)
    assert described[name].nbytes == blocks.nbytes + scales.nbytes
    assert described[name + "_bias"].kind == "dense"


def test_layout_errors_are_clear():
    a8 = mxarray.quantize(np.ones(64, np.float32), "mxint8")
    with pytest.raises(ValueError, match="mxfp4_e2m1 arrays only"):
        to_gpt_oss(a8)
    with pytest.raises(ValueError, match="multiple of 32"):
        to_gguf_mxfp4(mxarray.quantize(np.ones(40, np.float32), "mxfp4_e2m1"))
    with pytest.raises(ValueError, match=r"\(\.\.\., n_blocks, 16\)"):
        from_gpt_oss(np.zeros((2, 8), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="scales must have shape"):
        from_gpt_oss(np.zeros((2, 16), np.uint8), np.zeros(3, np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        from_gpt_oss(np.zeros((2, 16), np.int8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="multiple of 17"):
        gguf_to_gpt_oss(np.zeros(18, np.uint8))
