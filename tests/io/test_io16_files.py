"""safetensors files with the narrow float dtypes (F4, F6, F8_E8M0, FNUZ), torchao-style MX pairs,
and the warning when a layout conversion changes what a scale byte means."""

from __future__ import annotations

import json
import struct
import warnings

import numpy as np
import pytest

import mxarray
from mxarray.cli import main
from mxarray.io import load, save
from mxarray.io.checkpoints import LayoutWarning, from_gpt_oss, load_torchao, to_gguf_mxfp4

ml_dtypes = pytest.importorskip("ml_dtypes", reason="the io extra (ml_dtypes) is not installed")
pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")

X = np.random.default_rng(4).standard_normal((4, 64)).astype(np.float32)


def _raw_file(path, dtype: str, shape: list[int], data: bytes) -> None:
    """A safetensors file of one tensor ``t`` written byte by byte."""
    header = json.dumps({"t": {"dtype": dtype, "shape": shape,
                               "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def test_torch_written_mx_pairs_are_read_inspected_and_loaded(tmp_path, capsys):
    pytest.importorskip("torch", reason="torch is not installed")
    from safetensors.torch import save_file

    from mxarray.interop import to_torch

    a = mxarray.quantize(X, "mxfp4_e2m1")
    data, scale = to_torch(a)
    save_file({"w": data, "w_scale": scale}, str(tmp_path / "ao.safetensors"))
    assert main(["inspect", str(tmp_path / "ao.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "torchao" in out and "mxfp4_e2m1" in out and "w + w_scale" in out
    raw = load(tmp_path / "ao.safetensors")  # F4 and F8_E8M0 tensors as ml_dtypes arrays
    assert raw["w"].dtype == ml_dtypes.float4_e2m1fn and raw["w"].shape == (4, 64)
    np.testing.assert_array_equal(raw["w"].view(np.uint8), a.codes())
    assert raw["w_scale"].dtype == ml_dtypes.float8_e8m0fnu
    back = load_torchao(tmp_path / "ao.safetensors")["w"]
    np.testing.assert_array_equal(back.packed, a.packed)
    np.testing.assert_array_equal(back.scales, a.scales)


@pytest.mark.parametrize("dtype, code", [("float8_e8m0fnu", "F8_E8M0"),
                                         ("float8_e4m3fnuz", "F8_E4M3FNUZ"),
                                         ("float8_e5m2fnuz", "F8_E5M2FNUZ")])
def test_one_byte_floats_round_trip(tmp_path, dtype, code):
    x = np.arange(1, 9, dtype=np.float32).reshape(2, 4).astype(getattr(ml_dtypes, dtype))
    save(tmp_path / "f.safetensors", {"t": x})
    head = (tmp_path / "f.safetensors").read_bytes()
    assert f'"dtype":"{code}"'.encode() in head
    back = load(tmp_path / "f.safetensors")["t"]
    assert back.dtype == x.dtype and back.tobytes() == x.tobytes()


def test_f4_nibbles_and_f6_headers(tmp_path, capsys):
    _raw_file(tmp_path / "f4.safetensors", "F4", [2, 2], bytes([0x21, 0xF3]))
    np.testing.assert_array_equal(load(tmp_path / "f4.safetensors")["t"].view(np.uint8),
                                  [[1, 2], [3, 15]])  # the low nibble first
    _raw_file(tmp_path / "odd.safetensors", "F4", [3], bytes([0x21, 0x03]))
    with pytest.raises(ValueError, match="byte boundary"):
        load(tmp_path / "odd.safetensors")
    _raw_file(tmp_path / "f6.safetensors", "F6_E2M3", [4], bytes(3))
    assert main(["inspect", str(tmp_path / "f6.safetensors")]) == 0
    assert "float6_e2m3fn" in capsys.readouterr().out
    with pytest.raises(ValueError, match="bit packing"):
        load(tmp_path / "f6.safetensors")


def test_nan_blocks_warn_when_they_change_meaning():
    x = X.copy()
    x[0, 0] = np.nan
    with pytest.warns(LayoutWarning, match="1 block.*0xFF"):
        to_gguf_mxfp4(mxarray.quantize(x, "mxfp4_e2m1"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_gguf_mxfp4(mxarray.quantize(X, "mxfp4_e2m1"))
    with pytest.warns(LayoutWarning, match="read as NaN here"):
        from_gpt_oss(np.zeros((1, 1, 16), np.uint8), np.full((1, 1), 0xFF, np.uint8))
