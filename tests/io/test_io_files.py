"""mxarray.io.save / load: self-describing files that round-trip MX arrays exactly."""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import mxarray
from mxarray.formats import BLOCK_FORMATS
from mxarray.io import load, save

pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")
pytest.importorskip("ml_dtypes", reason="the io extra (ml_dtypes) is not installed")

SUFFIXES = (".safetensors", ".npz")


def _same(a: mxarray.MXArray, b: mxarray.MXArray) -> None:
    assert isinstance(b, mxarray.MXArray)
    assert (b.format, b.shape, b.block_axis) == (a.format, a.shape, a.block_axis)
    assert (b.rounding, b.scale_mode, b.seed) == (a.rounding, a.scale_mode, a.seed)
    assert b.tensor_scale == a.tensor_scale
    np.testing.assert_array_equal(b.packed, a.packed)
    np.testing.assert_array_equal(b.scales, a.scales)


@given(
    fmt=st.sampled_from(list(BLOCK_FORMATS)),
    shape=st.lists(st.integers(1, 70), min_size=1, max_size=3).map(tuple),
    axis_choice=st.integers(0, 2),
    rounding=st.sampled_from(mxarray.ROUNDING_MODES),
    scale_mode=st.sampled_from(mxarray.SCALE_MODES),
    suffix=st.sampled_from(SUFFIXES),
)
def test_save_load_round_trips_every_byte_and_attribute(tmp_path_factory, fmt, shape,
                                                       axis_choice, rounding, scale_mode,
                                                       suffix):
    axis = axis_choice % len(shape)
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32) * 10
    try:
        a = mxarray.quantize(x, fmt, axis=axis, rounding=rounding, scale_mode=scale_mode,
                             seed=12345 if rounding == "stochastic" else None)
    except ValueError:
        assume(False)  # a mode this format does not take (NVFP4 has one scale rule)
    path = tmp_path_factory.mktemp("rt") / f"f{suffix}"
    save(path, {"a": a, "dense": x})
    back = load(path)
    assert list(back) == ["a", "dense"]
    _same(a, back["a"])
    np.testing.assert_array_equal(back["a"].dequantize(), a.dequantize())
    np.testing.assert_array_equal(back["dense"], x)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_unknown_modes_are_recorded_as_unknown(tmp_path, suffix):
    codes = np.array([2, 3, 4, 5], dtype=np.uint8)
    a = mxarray.MXArray.from_parts(codes, np.array([127], np.uint8), "mxfp4_e2m1", (4,))
    save(tmp_path / f"p{suffix}", {"p": a})
    b = load(tmp_path / f"p{suffix}")["p"]
    assert b.rounding is None and b.scale_mode is None
    assert b.dequantize().tolist() == [1.0, 1.5, 2.0, 3.0]


def _header(path) -> dict:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n])


def test_the_metadata_describes_the_array(tmp_path):
    a = mxarray.quantize(np.ones((3, 40), np.float32), "mxfp6_e3m2", axis=1,
                         rounding="nearest", scale_mode="ceil")
    save(tmp_path / "m.safetensors", {"w": a})
    header = _header(tmp_path / "m.safetensors")
    doc = json.loads(header["__metadata__"]["mxarray"])
    assert doc["spec_version"] == mxarray.SPEC_VERSION and doc["version"] == 1
    assert doc["tensors"]["w"] == {
        "format": "mxfp6_e3m2", "shape": [3, 40], "block_axis": 1, "block_size": 32,
        "element_bits": 6, "packing": "fp6_3byte", "scale_mode": "ceil",
        "rounding": "nearest", "seed": None, "packed": "w.mx_packed", "scales": "w.mx_scales",
        "tensor_scale": None,
    }
    # the format's definition travels with the file
    definition = doc["formats"]["mxfp6_e3m2"]
    assert (definition["element"], definition["bits"], definition["bias"]) == ("E3M2", 6, 3)
    assert list(doc["formats"]) == ["mxfp6_e3m2"]
    # two blocks of 32 six-bit codes = 2 * 24 bytes per row, one scale per block
    assert header["w.mx_packed"]["shape"] == [3, 48] and header["w.mx_packed"]["dtype"] == "U8"
    assert header["w.mx_scales"]["shape"] == [3, 2]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_per_tensor_scale_is_stored_as_a_float32_tensor(tmp_path, suffix):
    x = np.random.default_rng(5).standard_normal((2, 48)).astype(np.float32) * 1e4
    a = mxarray.quantize(x, "nvfp4")
    path = tmp_path / f"t{suffix}"
    save(path, {"t": a})
    raw = np.load(path)["t.mx_tensor_scale"] if suffix == ".npz" else None
    if raw is not None:
        assert raw.dtype == np.float32 and raw.shape == () and raw == a.tensor_scale
    b = load(path)["t"]
    _same(a, b)
    np.testing.assert_array_equal(b.dequantize(), a.dequantize())


def test_the_safetensors_package_reads_our_files_and_we_read_its(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    a = mxarray.quantize(np.linspace(-3, 3, 96, dtype=np.float32).reshape(3, 32), "mxfp8_e5m2")
    bias = np.arange(5, dtype=np.float16)
    save(tmp_path / "ours.safetensors", {"a": a, "bias": bias})
    with safe_open(str(tmp_path / "ours.safetensors"), framework="numpy") as f:
        assert set(f.keys()) == {"a.mx_packed", "a.mx_scales", "bias"}
        np.testing.assert_array_equal(f.get_tensor("a.mx_packed"), a.packed)
        np.testing.assert_array_equal(f.get_tensor("bias"), bias)
        meta = f.metadata()
    # The package writes the same tensors and metadata; mxarray.load reads that file.
    save_file({"a.mx_packed": np.array(a.packed), "a.mx_scales": np.array(a.scales),
               "bias": bias}, str(tmp_path / "theirs.safetensors"), metadata=meta)
    back = load(tmp_path / "theirs.safetensors")
    _same(a, back["a"])
    np.testing.assert_array_equal(back["bias"], bias)


def test_bfloat16_dense_tensors_survive(tmp_path):
    import ml_dtypes

    x = np.array([1.5, -2.25, 3e38], dtype=ml_dtypes.bfloat16)
    save(tmp_path / "b.safetensors", {"x": x})
    y = load(tmp_path / "b.safetensors")["x"]
    assert y.dtype == x.dtype and y.tobytes() == x.tobytes()
    with pytest.raises(ValueError, match="npz cannot record"):
        save(tmp_path / "b.npz", {"x": x})


def test_save_rejects_bad_input(tmp_path):
    a = mxarray.quantize(np.ones(32, np.float32), "mxint8")
    with pytest.raises(ValueError, match="unsupported file type"):
        save(tmp_path / "x.pt", {"a": a})
    with pytest.raises(ValueError, match="collide"):
        save(tmp_path / "x.npz", {"a": a, "a.mx_packed": np.zeros(1)})
    with pytest.raises(ValueError, match="non-empty"):
        save(tmp_path / "x.npz", {"": a})
    with pytest.raises(ValueError, match="object dtype"):
        save(tmp_path / "x.npz", {"o": np.array([{}], dtype=object)})
    assert not list(tmp_path.iterdir())  # nothing half-written was left behind


def test_save_refuses_state_it_cannot_record(tmp_path):
    class Extended(mxarray.MXArray):
        __slots__ = ("_future_state",)

    base = mxarray.quantize(np.ones(32, np.float32), "mxint8")
    a = object.__new__(Extended)
    for slot in mxarray.MXArray.__slots__:
        object.__setattr__(a, slot, getattr(base, slot))
    a._future_state = 0.5
    with pytest.raises(NotImplementedError, match="_future_state"):
        save(tmp_path / "x.npz", {"a": a})


def _rewrite_metadata(path, change) -> None:
    """Rewrite the mxarray document of a safetensors file (keeping sizes consistent)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    doc = json.loads(header["__metadata__"]["mxarray"])
    change(doc)
    header["__metadata__"]["mxarray"] = json.dumps(doc)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(doc):
        target = doc
        for k in keys[:-1]:
            target = target[k]
        if value is KeyError:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set("version", 2), "unsupported mxarray file version 2"),
    (_set("spec_version", "2.0.0"), "another major version"),
    (_set("spec_version", "one"), "MAJOR.MINOR.PATCH"),
    (_set("tensors", "w", "format", "mxfp3"), "'mxfp3' is not defined in 'formats'"),
    (_set("formats", "mxfp4_e2m1", "bits", 3), "defines format 'mxfp4_e2m1' differently"),
    (_set("formats", "mxfp3", {}), "format 'mxfp3', which this mxarray does not know"),
    (_set("formats", "mxint8", {}), "differently"),
    (_set("tensors", "w", "tensor_scale", "w.t"), "tensor_scale"),
    (_set("tensors", "w", "block_size", 16), "block_size is 16"),
    (_set("tensors", "w", "packing", "byte"), "packing is 'byte'"),
    (_set("tensors", "w", "element_bits", 8), "element_bits is 8"),
    (_set("tensors", "w", "shape", [2, 65]), "expected uint8"),
    (_set("tensors", "w", "shape", []), "at least one dimension"),
    (_set("tensors", "w", "block_axis", 2), "block_axis 2"),
    (_set("tensors", "w", "rounding", "up"), "rounding must be"),
    (_set("tensors", "w", "scale_mode", 3), "scale_mode must be"),
    (_set("tensors", "w", "seed", -1), "seed must be"),
    (_set("tensors", "w", "scales", "w.mx_packed"), "must name different tensors"),
    (_set("tensors", "w", "packed", "nope"), "lacks"),
    (_set("tensors", "w", "microexponents", 1), "unexpected fields"),
    (_set("tensors", "w", "rounding", KeyError), "missing fields"),
])
def test_load_validates_every_field(tmp_path, change, message):
    path = tmp_path / "w.safetensors"
    save(path, {"w": mxarray.quantize(np.ones((2, 64), np.float32), "mxfp4_e2m1")})
    _rewrite_metadata(path, lambda doc: change(doc))
    with pytest.raises(ValueError, match=message):
        load(path)


def test_load_refuses_definitions_it_does_not_use(tmp_path):
    path = tmp_path / "w.safetensors"
    save(path, {"w": mxarray.quantize(np.ones((2, 64), np.float32), "mxfp4_e2m1"),
                "v": mxarray.quantize(np.ones(32, np.float32), "mxint8")})
    _rewrite_metadata(path, lambda doc: doc["tensors"].pop("v"))
    with pytest.raises(ValueError, match=r"unused formats \['mxint8'\]"):
        load(path)


def test_load_checks_the_tensor_scale(tmp_path):
    from safetensors.numpy import save_file

    a = mxarray.quantize(np.ones(32, np.float32), "nvfp4")
    save(tmp_path / "ok.safetensors", {"a": a})
    meta = {"mxarray": _header(tmp_path / "ok.safetensors")["__metadata__"]["mxarray"]}
    tensors = {"a.mx_packed": np.array(a.packed), "a.mx_scales": np.array(a.scales),
               "a.mx_tensor_scale": np.array(np.nan, np.float32)}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="tensor_scale"):
        load(tmp_path / "bad.safetensors")
    del tensors["a.mx_tensor_scale"]
    save_file(tensors, str(tmp_path / "gone.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="lacks"):
        load(tmp_path / "gone.safetensors")


def test_load_checks_codes_and_padding(tmp_path):
    # 40 elements: the second block holds 8 elements and 24 zero-padded codes.
    a = mxarray.quantize(np.ones(40, np.float32), "mxfp4_e2m1")
    tensors = {"a.mx_packed": np.array(a.packed), "a.mx_scales": np.array(a.scales)}
    tensors["a.mx_packed"][-1] = 0x11  # codes in the padding
    from safetensors.numpy import save_file

    save(tmp_path / "ok.safetensors", {"a": a})
    meta = {"mxarray": _header(tmp_path / "ok.safetensors")["__metadata__"]["mxarray"]}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="padding"):
        load(tmp_path / "bad.safetensors")


def test_a_header_claiming_huge_tensors_is_refused_before_allocating(tmp_path):
    header = json.dumps({"x": {"dtype": "F32", "shape": [1 << 20, 1 << 20],
                               "data_offsets": [0, 4 << 40]}}).encode()
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(ValueError, match="file holds"):
        load(path)
    npz = tmp_path / "huge.npz"
    with zipfile.ZipFile(npz, "w") as z:
        head = {"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 1 << 20)}
        with z.open("x.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, head)
            f.write(b"\0" * 16)
    with pytest.raises(ValueError, match="declares"):
        load(npz)


class _Boom:
    """Unpickling this calls ``_Boom.trigger``: the test checks it never runs."""

    ran = False

    def __reduce__(self):
        return (_Boom.trigger, ())

    @staticmethod
    def trigger():
        _Boom.ran = True


def test_npz_with_pickled_objects_is_refused_without_running_them(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, payload=np.array([_Boom()], dtype=object), allow_pickle=True)
    assert pickle.loads(pickle.dumps(_Boom())) is None and _Boom.ran  # the payload is live
    _Boom.ran = False
    with pytest.raises(ValueError, match="pickle"):
        load(path)
    assert not _Boom.ran


def test_importing_mxarray_does_not_import_safetensors():
    code = ("import sys, mxarray, mxarray.io, mxarray.cli; "
            "print('safetensors' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_missing_io_extra_names_the_install_command(tmp_path, monkeypatch):
    save(tmp_path / "x.safetensors", {"x": np.zeros(3, np.float32)})
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match=r"pip install 'mxarray\[io\]'"):
        load(tmp_path / "x.safetensors")


def test_npz_files_from_numpy_load_as_dense(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", a=np.arange(6.0).reshape(2, 3), b=np.int8(-3))
    back = load(tmp_path / "c.npz")
    np.testing.assert_array_equal(back["a"], np.arange(6.0).reshape(2, 3))
    assert back["b"] == -3 and back["b"].shape == ()
