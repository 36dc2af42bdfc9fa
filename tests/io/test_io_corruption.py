"""Corrupted, truncated and made-up files: reading fails with ValueError or OSError only."""

from __future__ import annotations

import functools
import json
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mxarray
from mxarray.io import describe_file, load, save

pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")
pytest.importorskip("ml_dtypes", reason="the io extra (ml_dtypes) is not installed")

SUFFIXES = (".safetensors", ".npz")
_DIR = Path(tempfile.mkdtemp(prefix="mxarray-corrupt-"))


@functools.cache
def valid_file(suffix: str) -> bytes:
    """Bytes of a small valid file: MXFP4 with padding, MXINT8 on axis 0, MX6 (sub-blocks),
    NVFP4 (a tensor scale) and a dense array."""
    x = np.linspace(-5, 5, 3 * 40, dtype=np.float32).reshape(3, 40)
    path = _DIR / f"valid{suffix}"
    save(path, {"w4": mxarray.quantize(x, "mxfp4_e2m1"),
                "w8": mxarray.quantize(x, "mxint8", axis=0),
                "m6": mxarray.quantize(x, "mx6"),
                "nv": mxarray.quantize(x, "nvfp4"),
                "bias": np.arange(7, dtype=np.float16)})
    return path.read_bytes()


def _read(data: bytes, suffix: str) -> None:
    """Write ``data`` and read it both ways; only ValueError / OSError may escape."""
    path = _DIR / f"case{suffix}"
    path.write_bytes(data)
    for reader in (load, describe_file):
        try:
            reader(path)
        except (ValueError, OSError):
            pass


def test_the_valid_files_load():
    for suffix in SUFFIXES:
        path = _DIR / f"check{suffix}"
        path.write_bytes(valid_file(suffix))
        assert sorted(load(path)) == ["bias", "m6", "nv", "w4", "w8"]


@given(suffix=st.sampled_from(SUFFIXES),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      min_size=1, max_size=4))
def test_flipped_bytes_never_escape_as_other_errors(suffix, flips):
    data = bytearray(valid_file(suffix))
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    _read(bytes(data), suffix)


@given(suffix=st.sampled_from(SUFFIXES), keep=st.floats(0, 1, exclude_max=True))
def test_truncated_files_are_refused(suffix, keep):
    data = valid_file(suffix)
    path = _DIR / f"trunc{suffix}"
    path.write_bytes(data[: int(keep * len(data))])
    with pytest.raises((ValueError, OSError)):
        load(path)
    with pytest.raises((ValueError, OSError)):
        describe_file(path)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)
_entry = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "U8", "BF16", "F16", "I64", "X9"]) | st.text(max_size=4),
    "shape": st.lists(st.integers(-1, 2**40), max_size=3) | _json,
    "data_offsets": st.lists(st.integers(-1, 2**40), min_size=0, max_size=3) | _json,
})


@given(header=st.dictionaries(st.text(max_size=10), _entry | _json, max_size=4),
       data=st.binary(max_size=64))
def test_made_up_safetensors_headers_are_refused_or_read(header, data):
    text = json.dumps(header).encode()
    _read(struct.pack("<Q", len(text)) + text + data, ".safetensors")


@given(length=st.integers(0, 2**64 - 1), rest=st.binary(max_size=40))
def test_any_header_length_is_refused_or_read(length, rest):
    _read(struct.pack("<Q", length) + rest, ".safetensors")


def _document() -> dict:
    data = valid_file(".safetensors")
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n])


_record = st.fixed_dictionaries({
    "format": st.sampled_from(list(mxarray.FORMATS)) | _json,
    "shape": st.lists(st.integers(0, 80), max_size=3) | _json,
    "block_axis": st.integers(-1, 3) | _json,
    "block_size": st.sampled_from([16, 32]) | _json,
    "element_bits": st.sampled_from([4, 8]),
    "packing": st.sampled_from(["fp4_nibble", "byte"]),
    "scale_mode": st.sampled_from([None, "floor"]) | _json,
    "rounding": st.sampled_from([None, "even"]),
    "seed": st.none() | st.integers(-1, 2**65),
    "packed": st.sampled_from(["w4.mx_packed", "w8.mx_packed", "nv.mx_packed", "bias", "x"]),
    "scales": st.sampled_from(["w4.mx_scales", "w8.mx_scales", "nv.mx_scales", "bias"]),
    "tensor_scale": st.sampled_from([None, "nv.mx_tensor_scale", "bias"]),
})


@given(doc=st.fixed_dictionaries({
    "version": st.just(1) | _json,
    "spec_version": st.just(mxarray.SPEC_VERSION) | st.text(max_size=8),
    "formats": st.just(json.loads(_document()["__metadata__"]["mxarray"])["formats"]) | _json,
    "tensors": st.dictionaries(st.sampled_from(["w4", "w8", "nv", "bias", "z"]),
                               _record | _json, max_size=3) | _json,
}) | _json)
def test_made_up_mxarray_metadata_is_refused_or_read(doc):
    data = valid_file(".safetensors")
    n = int.from_bytes(data[:8], "little")
    header = _document()
    header["__metadata__"]["mxarray"] = json.dumps(doc)
    text = json.dumps(header).encode()
    _read(struct.pack("<Q", len(text)) + text + data[8 + n:], ".safetensors")
