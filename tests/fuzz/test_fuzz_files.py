"""Fuzzing the file entry points: load / save, describe_file, quantize_file, the checkpoint
layouts and the interop conversions.

The contract: every input either works (a file loads and holds exactly what was saved;
a conversion round-trips bit for bit) or raises the documented exception (ValueError or
OSError for files; TypeError or ValueError for arguments) with a message, and reading a
small file never allocates much more than the file (a deflated .npz member at most its
deflate ratio).  ``test_corruption`` in test_io_corruption.py flips random bytes; this
file aims at the structure: every boundary, every header field, every metadata field.
"""

from __future__ import annotations

import io
import json
import random
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import atheris_load  # beside this file, like hardening
import numpy as np
import pytest
from support.hardening import fuzz_settings, is_long
from hypothesis import event, given
from hypothesis import strategies as st

import mxarray
from mxarray.interop import dlpack_parts, from_ml_dtypes, from_torch, to_ml_dtypes, to_torch
from mxarray.io import describe_file, load, save
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
from mxarray.io.quantizing import quantize_file

pytest.importorskip("safetensors", reason="the io extra (safetensors) is not installed")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="the io extra (ml_dtypes) is not installed")


FILE_ERRORS = (ValueError, OSError)
SUFFIXES = (".safetensors", ".npz")
X = np.linspace(-4, 4, 3 * 40, dtype=np.float32).reshape(3, 40)
ARRAYS = {"w4": mxarray.quantize(X, "mxfp4_e2m1"), "w8": mxarray.quantize(X, "mxint8", axis=0),
          "nv": mxarray.quantize(X, "nvfp4"), "bias": np.arange(5, dtype=np.float16)}


def _same(a, b) -> bool:
    return atheris_load._same(a, b)


def _valid(tmp_path: Path, suffix: str) -> bytes:
    path = tmp_path / f"valid{suffix}"
    save(path, ARRAYS)
    return path.read_bytes()


def _read_or_refuse(path: Path) -> dict | None:
    """load, describe_file and load_gpt_oss: each works or raises ValueError / OSError."""
    for reader in (describe_file, load_gpt_oss):
        try:
            reader(path)
        except FILE_ERRORS:
            pass
    try:
        return load(path)
    except FILE_ERRORS as exc:
        assert str(exc), "an error without a message"
        return None


# -- the atheris harness without atheris ------------------------------------------------------


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One of libFuzzer's mutations, roughly: flip, set, insert, erase, splice an integer."""
    d = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op, i = rng.randrange(6), rng.randrange(1, max(len(d), 2))
        if op == 0 and i < len(d):
            d[i] ^= 1 << rng.randrange(8)
        elif op == 1 and i < len(d):
            d[i] = rng.choice([0, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:
            d[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            del d[i:i + rng.randint(1, 64)]
        elif op == 4:
            d[i:i + 8] = rng.choice([2**63 - 1, 2**40, 2**32, 2**31, 0xFFFF]).to_bytes(8, "little")
        else:
            d = d[:i]
    return bytes(d)


def test_the_atheris_harness_over_its_seeds_and_mutations():
    seeds = atheris_load.seed_corpus()
    assert len(seeds) >= 10 and {s[0] % 3 for s in seeds} == {0, 1, 2}
    for seed in seeds:  # every seed loads, and round-trips (the harness asserts it)
        atheris_load.test_one_input(seed)
        path = atheris_load._WORKDIR / f"input{atheris_load.KINDS[seed[0] % 3]}"
        assert load(path)
    rng = random.Random(9)
    for _ in range(400 * (50 if is_long() else 1)):
        atheris_load.test_one_input(_mutate(rng.choice(seeds), rng))


# -- truncation at every structural boundary --------------------------------------------------


def _safetensors_boundaries(data: bytes) -> set[int]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    cuts = set(range(9)) | {8 + n}
    for name, entry in header.items():
        if name != "__metadata__":
            cuts |= {8 + n + o for o in entry["data_offsets"]}
    return cuts


def _zip_boundaries(data: bytes) -> set[int]:
    cuts = set()
    for sig in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x06\x06", b"PK\x06\x07", b"PK\x05\x06"):
        at = data.find(sig)
        while at >= 0:
            cuts.add(at)
            at = data.find(sig, at + 1)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            cuts.add(info.header_offset + 30 + len(info.filename))
    return cuts


def test_truncation_at_every_structural_boundary_is_refused(tmp_path):
    cases = 0
    for suffix, boundaries in ((".safetensors", _safetensors_boundaries),
                               (".npz", _zip_boundaries)):
        data = _valid(tmp_path, suffix)
        cuts = {c + d for c in boundaries(data) for d in (-1, 0, 1)}
        for cut in sorted(c for c in cuts if 0 <= c < len(data)):
            path = tmp_path / f"cut{suffix}"
            path.write_bytes(data[:cut])
            with pytest.raises(FILE_ERRORS):
                load(path)
            with pytest.raises(FILE_ERRORS):
                describe_file(path)
            cases += 1
    buf = io.BytesIO()
    np.save(buf, np.arange(12, dtype=np.float32).reshape(3, 4))
    data = buf.getvalue()
    header_end = 10 + int.from_bytes(data[8:10], "little")
    for cut in (*range(11), header_end - 1, header_end, header_end + 1, len(data) - 1):
        (tmp_path / "cut.npy").write_bytes(data[:cut])
        with pytest.raises(FILE_ERRORS):
            load(tmp_path / "cut.npy")
        cases += 1
    assert cases > 60


# -- safetensors headers that lie -------------------------------------------------------------


def _split(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(header: dict | bytes, body: bytes) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


_LIES = st.sampled_from([
    -1, 0, 1, 2**31, 2**32 + 1, 2**40, 2**63, 2**64, 2**70, 1.5, "8", None, True, [], {},
])


@given(pick=st.integers(0, 10**6), field=st.sampled_from(["dtype", "shape", "data_offsets"]),
       how=st.sampled_from(["set", "item", "append", "swap", "overlap", "past_eof"]),
       lie=_LIES)
@fuzz_settings(150)
def test_safetensors_header_fields_that_lie(tmp_path_factory, pick, field, how, lie):
    tmp = tmp_path_factory.mktemp("st")
    header, body = _split(_valid(tmp, ".safetensors"))
    names = sorted(k for k in header if k != "__metadata__")
    name, other = names[pick % len(names)], names[(pick + 1) % len(names)]
    entry = header[name]
    if how == "set":
        entry[field] = lie
    elif how == "item" and isinstance(entry[field], list) and entry[field]:
        entry[field][pick % len(entry[field])] = lie
    elif how == "append" and isinstance(entry[field], list):
        entry[field].append(lie)
    elif how == "swap":
        entry[field], header[other][field] = header[other][field], entry[field]
    elif how == "overlap":
        entry["data_offsets"] = list(header[other]["data_offsets"])
    elif how == "past_eof":
        size = entry["data_offsets"][1] - entry["data_offsets"][0]
        entry["data_offsets"] = [len(body) + 8, len(body) + 8 + size]
    path = tmp / "lie.safetensors"
    path.write_bytes(_join(header, body))
    back = _read_or_refuse(path)
    if back is not None and how != "swap":  # a swap of equal-sized fields can be consistent
        # MX arrays come back exactly (their metadata pins their tensors); a dense tensor
        # holds the same bytes, though a shape of the same size ([5] -> [5, 1]) can pass
        assert all(_same(ARRAYS[k], back[k]) for k in ARRAYS if k != "bias"), (field, how)
        assert back["bias"].tobytes() == ARRAYS["bias"].tobytes(), (field, how, lie)


@pytest.mark.parametrize("text", [
    (b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
     b'"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}'),  # a duplicated key
    (b'{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, '
     b'"b": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}'),  # overlapping tensors
    b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}',  # a gap
    b'{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2], "x": 1}}',
    b'{"\xff\xfe": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}',  # not UTF-8
    b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",                 # deep nesting
    b'{"a": {"dtype": "U8", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 2]}}',
    b'{"__metadata__": {"mxarray": 3}}',
    b'{"__metadata__": {"mxarray": "' + b"[" * 10_000 + b'"}}',
    b"[]", b"", b"{", b"null",
])
def test_malformed_safetensors_headers_are_refused_with_a_message(tmp_path, text):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_join(text, b"\0\0"))
    with pytest.raises(ValueError, match="not a valid file|mxarray metadata"):
        load(path)
    with pytest.raises(ValueError):
        describe_file(path)


# -- mxarray metadata that lies ---------------------------------------------------------------


def _other_definition(name: str) -> dict:
    doc = json.loads(_split(_valid_bytes_of({"a": mxarray.quantize(X, name)}))[0]
                     ["__metadata__"]["mxarray"])
    return doc["formats"][name]


def _valid_bytes_of(arrays: dict) -> bytes:
    buf = Path(atheris_load._WORKDIR) / "doc.safetensors"
    save(buf, arrays)
    return buf.read_bytes()


_RECORD_LIES = {
    "format": ["mxfp8_e5m2", "MXFP4_E2M1", "mxfp3", "", 4, None],
    "shape": [[3, 41], [3, 39], [40, 3], [3, 40, 1], [0, 40], [2**63, 40], [3, -40], [3.0, 40],
              [True, 40], "3x40", []],
    "block_axis": [0, 2, -1, 2**63, True, 1.0, None],
    "block_size": [16, 64, 0, -32, 32.0, "32", None],
    "element_bits": [8, 6, 0, 4.0, None],
    "packing": ["byte", "fp6_triplet", "", None],
    "scale_mode": ["ceil", "up", 1, ""],
    "rounding": ["nearest", "stochastic", "round", 0],
    "seed": [-1, 2**64, 2**64 - 1, 0, 1.5, "1", True],
    "packed": ["w4.mx_scales", "bias", "nope", "", None, 1],
    "scales": ["w4.mx_packed", "bias", None],
    "tensor_scale": ["w4.mx_packed", "nv.mx_tensor_scale", "bias", None],
}


@given(target=st.sampled_from(["w4", "w8", "nv"]), field=st.sampled_from(sorted(_RECORD_LIES)),
       pick=st.integers(0, 100), also_definition=st.booleans())
@fuzz_settings(150)
def test_mxarray_metadata_that_lies_is_refused(tmp_path_factory, target, field, pick,
                                               also_definition):
    tmp = tmp_path_factory.mktemp("md")
    header, body = _split(_valid(tmp, ".safetensors"))
    doc = json.loads(header["__metadata__"]["mxarray"])
    lie = _RECORD_LIES[field][pick % len(_RECORD_LIES[field])]
    record = doc["tensors"][target]
    truth = record[field]
    record[field] = lie
    if field == "format" and also_definition and lie in mxarray.FORMATS:
        doc["formats"][lie] = _other_definition(lie)  # the lie made self-consistent
    header["__metadata__"]["mxarray"] = json.dumps(doc)
    path = tmp / "lie.safetensors"
    path.write_bytes(_join(header, body))
    back = _read_or_refuse(path)
    if back is None:
        return
    # What still loads holds the saved bytes; the lie is a reading the bytes cannot rule
    # out: a mode or seed (a record of how the codes were made), or a shape that ends in
    # the zero padding of the last block.
    assert field in {"scale_mode", "rounding", "seed", "shape"} or lie == truth, (field, lie)
    assert np.array_equal(back[target].packed, ARRAYS[target].packed)
    assert np.array_equal(back[target].scales, ARRAYS[target].scales)


@pytest.mark.parametrize("change", [
    lambda d: d["formats"]["mxfp4_e2m1"].update(block_size=16),
    lambda d: d["formats"]["mxfp4_e2m1"].update(bits=5),
    lambda d: d["formats"]["mxfp4_e2m1"].clear(),
    lambda d: d["formats"].update(mxfp9={"bits": 9}),
    lambda d: d.update(formats=[]),
    lambda d: d.update(version=True),
    lambda d: d.update(spec_version="1.0"),
    lambda d: d.update(spec_version="01.٣.0"),
    lambda d: d.update(extra=1),
    lambda d: d["tensors"].update(ghost=d["tensors"]["w4"]),
])
def test_spec_entries_for_unknown_or_altered_formats_are_refused(tmp_path, change):
    header, body = _split(_valid(tmp_path, ".safetensors"))
    doc = json.loads(header["__metadata__"]["mxarray"])
    change(doc)
    header["__metadata__"]["mxarray"] = json.dumps(doc)
    path = tmp_path / "lie.safetensors"
    path.write_bytes(_join(header, body))
    with pytest.raises(ValueError, match="mxarray metadata|format|version|claimed twice"):
        load(path)


# -- huge declared sizes: refused before allocating -------------------------------------------


def _npy_header(descr: str, shape: tuple, version: tuple[int, int] = (1, 0)) -> bytes:
    buf = io.BytesIO()
    head = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, head)
    else:
        np.lib.format.write_array_header_2_0(buf, head)
    return buf.getvalue()


def _zip(members: list[tuple[str, bytes, int]]) -> bytes:
    """A zip archive of (name, member bytes, compression)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, method in members:
            z.writestr(name, data, compress_type=method)
    return buf.getvalue()


def _set_declared_size(data: bytes, size: int) -> bytes:
    """Make every record of a one-member archive declare ``size`` uncompressed bytes."""
    d = bytearray(data)
    local, central = d.find(b"PK\x03\x04"), d.find(b"PK\x01\x02")
    d[local + 22:local + 26] = size.to_bytes(4, "little")
    d[central + 24:central + 28] = size.to_bytes(4, "little")
    return bytes(d)


def _peak_of(path: Path) -> tuple[int, type | None]:
    tracemalloc.start()
    try:
        load(path)
        raised = None
    except FILE_ERRORS as exc:
        raised = type(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


HUGE = (1 << 20, 1 << 20)  # 2**40 elements


def _huge_files() -> dict[str, bytes]:
    pad = b"\0" * 1000
    st_header = json.dumps({"x": {"dtype": "F32", "shape": list(HUGE),
                                  "data_offsets": [0, 4 << 40]}}).encode()
    npy = _npy_header("<f4", HUGE) + pad
    zeros = _npy_header("|u1", (1 << 20,)) + bytes(1 << 20)  # deflates about 1000:1
    deflated = _zip([("z.npy", zeros, zipfile.ZIP_DEFLATED)])
    return {
        "huge.safetensors": _join(st_header, pad),
        "huge.npy": npy,
        "huge2.npy": _npy_header("<f8", HUGE, (2, 0)) + pad,
        "stored.npz": _zip([("x.npy", npy, zipfile.ZIP_STORED)]),
        "deflated.npz": _zip([("x.npy", npy, zipfile.ZIP_DEFLATED)]),
        "lying_zip_size.npz": _set_declared_size(_zip([("x.npy", npy, zipfile.ZIP_STORED)]),
                                                 2**32 - 1),
        "bomb.npz": _set_declared_size(deflated, 2**32 - 1),
    }


@pytest.mark.parametrize("name", sorted(_huge_files()))
def test_a_small_file_declaring_2_to_the_40_elements_allocates_little(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(_huge_files()[name])
    assert path.stat().st_size < 4096
    peak, raised = _peak_of(path)
    assert raised is ValueError
    assert peak < 256 * 1024, f"{name}: {peak} bytes allocated for a {path.stat().st_size} file"


def test_a_deflated_member_allocates_at_most_its_deflate_ratio(tmp_path):
    zeros = _npy_header("|u1", (1 << 20,)) + bytes(1 << 20)
    path = tmp_path / "zeros.npz"
    path.write_bytes(_zip([("z.npy", zeros, zipfile.ZIP_DEFLATED)]))
    size = path.stat().st_size
    peak, raised = _peak_of(path)
    assert raised is None and size < 4096  # a legitimate 1 MiB of zeros in ~1 KiB
    assert peak < 1100 * size + (1 << 20)


def _stored(name: str, data: bytes, method: int = 0, comp: bytes | None = None,
            offset: int | None = None) -> tuple[bytes, bytes]:
    """The local record (header + data) and central directory entry of one member."""
    comp = data if comp is None else comp
    raw = name.encode()
    fields = (20, 0, method, 0, 0x21, zlib.crc32(data), len(comp), len(data), len(raw))
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields, 0) + raw + comp
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, 0o644 << 16,
                          offset or 0) + raw
    return local, central


def test_overlapping_zip_members_are_refused(tmp_path):
    # A non-recursive zip bomb: member b's record lies inside member a's data, so the
    # archive's bytes are counted twice.  b deflates 1 KiB into 1 MiB.
    inner = _npy_header("|u1", (1 << 20,)) + bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    b_local, _ = _stored("b.npy", inner, 8, packer.compress(inner) + packer.flush())
    outer = _npy_header("|u1", (len(b_local),)) + b_local
    a_local, a_central = _stored("a.npy", outer)
    b_at = len(a_local) - len(b_local)
    _, b_central = _stored("b.npy", inner, 8, b_local[30 + 5:], offset=b_at)
    cd = a_central + b_central
    path = tmp_path / "overlap.npz"
    path.write_bytes(a_local + cd + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, len(cd),
                                                len(a_local), 0))
    with zipfile.ZipFile(path) as z:  # Python's zipfile reads both members
        assert len(z.read("b.npy")) == len(inner) and len(z.read("a.npy")) == len(outer)
    peak, raised = _peak_of(path)
    assert raised is ValueError and peak < 256 * 1024
    with pytest.raises(ValueError, match="overlap"):
        load(path)


def test_encrypted_zip_members_are_refused(tmp_path):
    # zipfile raised RuntimeError ("password required") for a member whose flag says
    # encrypted, which escaped as neither ValueError nor OSError.
    data = bytearray(_zip([("x.npy", _npy_header("<f4", (2,)) + bytes(8), zipfile.ZIP_STORED)]))
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        data[data.find(sig) + at] |= 1
    (tmp_path / "enc.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="encrypted"):
        load(tmp_path / "enc.npz")


@pytest.mark.parametrize("shape", [(-1, -1), (-2, -2), (2**62, 4), (-1,), (2**63,)])
def test_npy_headers_with_impossible_shapes_are_refused_clearly(tmp_path, shape):
    # (-1, -1) declares 4 bytes and passed the size check; NumPy then failed to reshape.
    for dtype in ("<f4", "S0"):
        data = _npy_header(dtype, shape) + bytes(4)
        (tmp_path / "x.npy").write_bytes(data)
        with pytest.raises(ValueError, match="impossible shape"):
            load(tmp_path / "x.npy")
        (tmp_path / "x.npz").write_bytes(_zip([("x.npy", data, zipfile.ZIP_STORED)]))
        with pytest.raises(ValueError, match="impossible shape"):
            load(tmp_path / "x.npz")


def test_an_unterminated_npy_header_is_a_value_error(tmp_path):
    # NumPy retries a header it cannot parse as a Python 2 one; its tokenizer then raised
    # tokenize.TokenError, which is not a ValueError.
    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,"
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
    (tmp_path / "x.npy").write_bytes(data)
    with pytest.raises(ValueError, match="bad .npy header"):
        load(tmp_path / "x.npy")


# -- names and dense tensors: what save accepts, load gives back --------------------------------


_names = st.text(st.characters(codec=None, exclude_categories=()), min_size=1, max_size=6)


@given(names=st.lists(_names, min_size=1, max_size=4, unique=True),
       suffix=st.sampled_from(SUFFIXES))
@fuzz_settings(150)
def test_any_tensor_name_round_trips_or_is_refused_before_writing(tmp_path_factory, names,
                                                                   suffix):
    tmp = tmp_path_factory.mktemp("names")
    arrays = {n: np.full(2, i, np.int16) for i, n in enumerate(names)}
    try:
        save(tmp / f"f{suffix}", arrays)
    except ValueError as exc:
        assert str(exc)
        assert not list(tmp.iterdir()), "a refused save left a file behind"
        return
    back = load(tmp / f"f{suffix}")
    assert list(back) == names
    assert all(np.array_equal(back[n], arrays[n]) for n in names)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("name", ["a\0b", "\ud800", "x\udcff"])
def test_names_a_file_cannot_hold_are_refused(tmp_path, suffix, name):
    # "a\0b" was written to .npz as member "a" (zipfile cuts names at NUL), and a lone
    # surrogate was written to .safetensors as an escape its reader rejects: both saves
    # "worked" and the files did not load.
    if suffix == ".safetensors" and "\0" in name:
        save(tmp_path / f"f{suffix}", {name: np.ones(2)})
        assert list(load(tmp_path / f"f{suffix}")) == [name]
        return
    with pytest.raises(ValueError, match="NUL|surrogate"):
        save(tmp_path / f"f{suffix}", {name: np.ones(2)})
    assert not list(tmp_path.iterdir())


_DENSE = ["bool", "<i1", "<u1", ">i2", "<u2", "<i4", ">u4", "<i8", "<u8", "<f2", ">f4", "<f8",
          "<c8", "<U3", "|S2", "<M8[s]", "bfloat16", "float8_e4m3fn"]


@given(dtype=st.sampled_from(_DENSE),
       shape=st.lists(st.integers(0, 5), max_size=3).map(tuple),
       order=st.sampled_from("CF"), suffix=st.sampled_from(SUFFIXES), seed=st.integers(0, 99))
@fuzz_settings(150)
def test_dense_tensors_round_trip_or_are_refused(tmp_path_factory, dtype, shape, order,
                                                 suffix, seed):
    dt = np.dtype(getattr(ml_dtypes, dtype, dtype))
    raw = np.random.default_rng(seed).integers(0, 256, (*shape, dt.itemsize), np.uint8)
    x = np.asarray(raw.view(dt).reshape(shape), order=order)
    tmp = tmp_path_factory.mktemp("dense")
    try:
        save(tmp / f"d{suffix}", {"x": x})
    except ValueError as exc:
        assert "dtype" in str(exc)
        assert not list(tmp.iterdir())
        return
    back = load(tmp / f"d{suffix}")["x"]
    assert _same(x, back)


def test_a_file_named_like_the_temporary_file_is_not_replaced(tmp_path):
    # save wrote to NAME.partial and deleted it: a user's file of that name was lost.
    (tmp_path / "w.npz.partial").write_bytes(b"mine")
    save(tmp_path / "w.npz", {"x": np.ones(3)})
    assert (tmp_path / "w.npz.partial").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz", "w.npz.partial"]


# -- quantize_file on corrupted inputs --------------------------------------------------------


@given(suffix=st.sampled_from((*SUFFIXES, ".npy")), seed=st.integers(0, 2**32 - 1),
       out=st.sampled_from(SUFFIXES))
@fuzz_settings(60)
def test_quantize_file_on_corrupted_input_writes_all_or_nothing(tmp_path_factory, suffix, seed,
                                                                out):
    tmp = tmp_path_factory.mktemp("qf")
    if suffix == ".npy":
        np.save(tmp / "src.npy", X)
        data = (tmp / "src.npy").read_bytes()
    else:
        data = _valid(tmp, suffix)
    data = _mutate(data, random.Random(seed))
    src = tmp / f"src{suffix}"
    src.write_bytes(data)
    try:
        rows = quantize_file(src, tmp / f"out{out}", "mxfp8_e4m3")
    except FILE_ERRORS as exc:
        assert str(exc)
        assert sorted(p.name for p in tmp.iterdir()) == sorted({f"src{suffix}", f"valid{suffix}"}
                                                              - {"valid.npy"})
    else:
        assert len(load(tmp / f"out{out}")) == len(rows)
    assert src.read_bytes() == data


# -- checkpoint layouts -----------------------------------------------------------------------


_uint8_arrays = st.tuples(st.lists(st.integers(0, 4), max_size=3), st.integers(0, 40),
                          st.integers(0, 2**32 - 1))


@pytest.mark.filterwarnings("ignore::mxarray.io.checkpoints.LayoutWarning")  # 0xFF scales
@given(lead=st.lists(st.integers(0, 3), max_size=2), last=st.integers(0, 40),
       extra=st.integers(0, 2), dtype=st.sampled_from(["uint8", "int8", "uint16", "float32"]),
       axis=st.integers(-4, 3), seed=st.integers(0, 2**32 - 1))
@fuzz_settings(150)
def test_checkpoint_layouts_with_random_arrays(lead, last, extra, dtype, axis, seed):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (*lead, last, 16 + extra - 1 if extra else 16)).astype(dtype)
    scales = rng.integers(0, 256, (*lead, last)).astype(dtype)
    try:
        a = from_gpt_oss(blocks, scales, axis=axis)
    except (TypeError, ValueError) as exc:
        assert str(exc)
    else:
        b, s = to_gpt_oss(a)
        assert np.array_equal(b, blocks) and np.array_equal(s, scales)
        assert np.array_equal(from_gguf_mxfp4(to_gguf_mxfp4(a), axis=axis).packed, a.packed)
    rows = rng.integers(0, 256, (*lead, last * 17 + extra)).astype(dtype)
    try:
        b, s = gguf_to_gpt_oss(rows)
    except (TypeError, ValueError) as exc:
        assert str(exc)
    else:
        assert np.array_equal(gpt_oss_to_gguf(b, s), rows)
        from_gguf_mxfp4(rows, axis=-1)


def test_checkpoint_files_with_corrupted_pairs(tmp_path):
    pair = {"mlp": mxarray.quantize(np.ones((2, 64), np.float32), "mxfp4_e2m1")}
    rng = random.Random(4)
    cases = 0
    for suffix in SUFFIXES:
        save_gpt_oss(tmp_path / f"p{suffix}", pair)
        data = (tmp_path / f"p{suffix}").read_bytes()
        for _ in range(60 * (50 if is_long() else 1)):
            path = tmp_path / f"m{suffix}"
            path.write_bytes(_mutate(data, rng))
            try:
                back = load_gpt_oss(path)
            except FILE_ERRORS:
                continue
            finally:
                cases += 1
            for value in back.values():
                assert isinstance(value, (mxarray.MXArray, np.ndarray))
    assert cases >= 120


# -- interop with random inputs ---------------------------------------------------------------


def _random_mx(data) -> mxarray.MXArray:
    fmt = data.draw(st.sampled_from(sorted(mxarray.FORMATS)), label="fmt")
    shape = data.draw(st.lists(st.integers(1, 40), min_size=1, max_size=3).map(tuple))
    axis = data.draw(st.integers(0, len(shape) - 1), label="axis")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * np.exp2(rng.integers(-20, 20, shape))).astype(np.float32)
    return mxarray.quantize(x, fmt, axis=axis)


@given(data=st.data())
@fuzz_settings(100)
def test_interop_round_trips_random_arrays_bit_for_bit(data):
    torch = pytest.importorskip(
        "torch", reason="torch is optional (not a dependency): the torch interop waits for it")

    a = _random_mx(data)
    packed, scales = dlpack_parts(a)
    assert np.array_equal(np.from_dlpack(packed), a.packed)
    assert np.array_equal(np.from_dlpack(scales), a.scales)
    try:
        elements, s = to_ml_dtypes(a)
    except ValueError as exc:
        assert "no ml_dtypes element type" in str(exc)
    else:
        back = from_ml_dtypes(elements, s, a.format, axis=a.block_axis,
                              tensor_scale=a.tensor_scale)
        assert _same(a, back) or (a.rounding, a.scale_mode) != (back.rounding, back.scale_mode)
        assert np.array_equal(back.packed, a.packed) and np.array_equal(back.scales, a.scales)
    scale_dtype = data.draw(st.sampled_from(["float8", "uint8"]))
    try:
        t, ts = to_torch(a, scale_dtype=scale_dtype)
    except ValueError as exc:
        assert "no ml_dtypes or torch type" in str(exc)
        return
    assert isinstance(t, torch.Tensor)
    back = from_torch(t, ts, a.format, shape=a.shape, axis=a.block_axis,
                      tensor_scale=a.tensor_scale)
    assert np.array_equal(back.packed, a.packed) and np.array_equal(back.scales, a.scales)


_CORRUPTIONS = ["none", "flip", "dtype", "drop_dim", "add_dim", "slice", "shape", "axis"]


@given(data=st.data(), how=st.sampled_from(_CORRUPTIONS), which=st.sampled_from([0, 1]))
@fuzz_settings(150)
def test_from_torch_with_damaged_tensors_builds_the_bytes_or_refuses(data, how, which):
    torch = pytest.importorskip(
        "torch", reason="torch is optional (not a dependency): the torch interop waits for it")

    a = _random_mx(data)
    try:
        parts = list(to_torch(a, scale_dtype="uint8"))
    except ValueError:
        return
    shape, axis = a.shape, a.block_axis
    t = parts[which]
    if how == "flip" and t.numel():
        raw = t.view(torch.uint8).flatten().clone()
        raw[data.draw(st.integers(0, raw.numel() - 1))] ^= data.draw(st.integers(1, 255))
        t = raw.view(t.dtype).reshape(t.shape) if t.element_size() == 1 else t
    elif how == "dtype":
        t = t.view(torch.uint8).to(data.draw(st.sampled_from([torch.int8, torch.int32,
                                                              torch.float32, torch.bool])))
    elif how == "drop_dim" and t.ndim > 1:
        t = t[0]
    elif how == "add_dim":
        t = t[None]
    elif how == "slice":
        t = t[..., : data.draw(st.integers(0, max(t.shape[-1] - 1, 0)))]
    elif how == "shape":
        shape = tuple(data.draw(st.lists(st.integers(-1, 80), max_size=3)))
    elif how == "axis":
        axis = data.draw(st.integers(-5, 5))
    parts[which] = t
    try:
        b = from_torch(*parts, a.format, shape=shape, axis=axis, tensor_scale=a.tensor_scale)
    except (TypeError, ValueError) as exc:
        assert str(exc)
        event(f"{how}: refused")
        return
    event(f"{how}: built")
    t2, s2 = to_torch(b, scale_dtype="uint8")  # the bytes it was given, unchanged
    for mine, given_ in ((t2, parts[0]), (s2, parts[1])):
        assert mine.shape == given_.shape
        assert torch.equal(mine.view(torch.uint8), given_.contiguous().view(torch.uint8))


@given(data=st.data(), how=st.sampled_from(_CORRUPTIONS), which=st.sampled_from([0, 1]))
@fuzz_settings(150)
def test_from_ml_dtypes_with_damaged_arrays_builds_the_bytes_or_refuses(data, how, which):
    a = _random_mx(data)
    try:
        parts = list(to_ml_dtypes(a))
    except ValueError:
        return
    axis = a.block_axis
    x = parts[which]
    if how == "flip" and x.size:
        x = x.copy()
        raw = x.reshape(-1).view(np.uint8)
        raw[data.draw(st.integers(0, raw.size - 1))] ^= data.draw(st.integers(1, 255))
    elif how == "dtype":
        x = x.view(np.uint8).astype(data.draw(st.sampled_from(["int8", "float32", "bool"])))
    elif how == "drop_dim" and x.ndim > 1:
        x = x[0]
    elif how in ("add_dim", "shape"):
        x = x[None]
    elif how == "slice":
        x = x[..., : data.draw(st.integers(0, max(x.shape[-1] - 1, 0)))]
    elif how == "axis":
        axis = data.draw(st.integers(-5, 5))
    parts[which] = x
    try:
        b = from_ml_dtypes(*parts, a.format, axis=axis, tensor_scale=a.tensor_scale)
    except (TypeError, ValueError) as exc:
        assert str(exc)
        event(f"{how}: refused")
        return
    event(f"{how}: built")
    elements, scales = to_ml_dtypes(b)
    assert np.array_equal(elements.view(np.uint8), parts[0].view(np.uint8))
    assert np.array_equal(scales.view(np.uint8), parts[1].view(np.uint8))


@pytest.mark.parametrize("bad", [None, 3, np.ones(4), "mxfp4_e2m1", object()])
def test_interop_refuses_what_is_not_an_mxarray(bad):
    for convert in (to_ml_dtypes, dlpack_parts, to_torch):
        with pytest.raises(TypeError, match="MXArray"):
            convert(bad)


def test_quantize_file_does_not_carry_a_corrupt_mx_array(tmp_path):
    # An MX array already in the input was copied without validation, so quantize_file
    # "succeeded" and wrote a file that load refuses (non-zero codes in the padding).
    from safetensors.numpy import save_file

    a = mxarray.quantize(np.ones(40, np.float32), "mxfp4_e2m1")
    save(tmp_path / "ok.safetensors", {"a": a})
    meta = _split((tmp_path / "ok.safetensors").read_bytes())[0]["__metadata__"]
    packed = np.array(a.packed)
    packed[-1] = 0x11
    save_file({"a.mx_packed": packed, "a.mx_scales": np.array(a.scales)},
              str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="padding"):
        quantize_file(tmp_path / "bad.safetensors", tmp_path / "out.npz", "mxint8")
    assert not (tmp_path / "out.npz").exists()


def test_gguf_rows_with_an_empty_leading_axis():
    # reshape(..., -1, 17) of zero rows is ambiguous: NumPy raised "cannot reshape".
    blocks, scales = gguf_to_gpt_oss(np.zeros((0, 34), np.uint8))
    assert blocks.shape == (0, 2, 16) and scales.shape == (0, 2)
    assert gpt_oss_to_gguf(blocks, scales).shape == (0, 34)
    assert from_gguf_mxfp4(np.zeros((0, 17), np.uint8)).shape == (0, 32)
