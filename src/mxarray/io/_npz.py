"""``.npz`` and ``.npy`` files, read without pickle and with sizes checked first.

An ``.npz`` file is a zip archive of ``.npy`` members.  Before a member is read, its
``.npy`` header (dtype, shape) is parsed and the bytes it declares are compared with
the member's size in the archive, and the member's size with the archive's size, so a
corrupt header cannot make the reader allocate more than the file holds (a deflated
member: at most deflate's ratio, about 1032:1, times its stored size).  Members must not
overlap one another, so no stored byte counts twice; encrypted members are refused.
Object dtypes (which ``.npy`` stores as pickles) are refused and every read passes
``allow_pickle=False``.  The metadata dict rides in a member named ``__metadata__``:
a uint8 array of the UTF-8 JSON text.
"""

from __future__ import annotations

import json
import math
import os
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy

from ._container import (
    TensorInfo,
    TensorReader,
    TensorWriter,
    corrupt,
    nbytes_of,
    strict_json_object,
)

__all__ = ["NpzReader", "NpzWriter", "NpyReader", "METADATA_MEMBER"]

METADATA_MEMBER = "__metadata__"
_MAX_DEFLATE_RATIO = 1100  # deflate expands at most about 1032:1
_ENCRYPTED, _UTF8_NAME = 0x1, 0x800  # zip entry flags: encrypted, name in UTF-8 (else cp437)
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)


def _read_npy_header(fp: IO[bytes], where: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Parse a ``.npy`` header; return the dtype, the shape and the header's length."""
    try:
        version = npy.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = npy.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, SyntaxError, TypeError, EOFError, tokenize.TokenError,
            RecursionError) as exc:
        raise corrupt(where, f"bad .npy header ({exc})") from None
    if dtype.hasobject:
        raise corrupt(where, "it holds Python objects (a pickle); mxarray never loads pickles")
    if dtype.kind == "V" or dtype.fields is not None:
        raise corrupt(where, f"unsupported dtype {dtype}")
    if any(d < 0 for d in shape) or math.prod(shape) >= 2**63:
        raise corrupt(where, f"impossible shape {shape} in the .npy header")
    return dtype, tuple(shape), fp.tell()


class NpyReader(TensorReader):
    """One ``.npy`` file as a container of one tensor named after the file's stem."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.metadata = {}
        with open(self.path, "rb") as f:
            dtype, shape, start = _read_npy_header(f, str(self.path))
            size = os.fstat(f.fileno()).st_size
        nbytes = nbytes_of(shape, dtype.itemsize)
        if start + nbytes != size:
            raise corrupt(self.path, f"the header declares {nbytes} bytes of data, the file "
                                     f"has {size - start}")
        self.entries = {self.path.stem: TensorInfo(dtype.name, shape, nbytes)}

    def read(self, name: str) -> np.ndarray:
        """Return the tensor (its size was checked against the file)."""
        if name not in self.entries:
            raise KeyError(name)
        return np.load(self.path, allow_pickle=False)

    def can_map(self, name: str) -> bool:
        """A ``.npy`` file's tensor is always mapped."""
        return True

    def mapped(self, name: str) -> np.ndarray:
        """The tensor as a read-only memory map (its size was checked against the file)."""
        if name not in self.entries:
            raise KeyError(name)
        if self.entries[name].nbytes == 0:
            return self.read(name)
        return np.load(self.path, mmap_mode="r", allow_pickle=False)


class NpzReader(TensorReader):
    """Read an ``.npz`` archive member by member."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        size = os.path.getsize(self.path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except _ZIP_ERRORS as exc:
            raise corrupt(self.path, f"broken zip archive ({exc})") from None
        try:
            self._members = self._scan(size)
            raw = self._read_member(METADATA_MEMBER) if METADATA_MEMBER in self._members \
                else None
            self.metadata = self._decode_metadata(raw) if raw is not None else {}
        except _ZIP_ERRORS as exc:
            self._zip.close()
            raise corrupt(self.path, f"broken zip archive ({exc})") from None
        except BaseException:
            self._zip.close()
            raise
        self.entries = {k: v for k, (_, v) in self._members.items() if k != METADATA_MEMBER}

    def _check_disjoint(self) -> None:
        """Refuse members whose stored bytes overlap (each at least its 30-byte local
        header, its name and its compressed data): overlapping members let a small archive
        declare many times its size (a non-recursive zip bomb), and the zipfile module of
        Python 3.11.7 reads such members without complaint."""
        end, previous = 0, None
        for info in sorted(self._zip.infolist(), key=lambda i: i.header_offset):
            if info.header_offset < end:
                raise corrupt(self.path, f"members {previous!r} and {info.filename!r} overlap")
            name = info.orig_filename.encode("utf-8" if info.flag_bits & _UTF8_NAME else "cp437")
            end = info.header_offset + 30 + len(name) + info.compress_size
            previous = info.filename
        if end > self._zip.start_dir:
            raise corrupt(self.path, f"member {previous!r} overlaps the central directory")

    def _scan(self, archive_size: int) -> dict[str, tuple[zipfile.ZipInfo, TensorInfo]]:
        self._check_disjoint()
        members = {}
        for info in self._zip.infolist():
            where = f"{self.path} member {info.filename!r}"
            if not info.filename.endswith(".npy"):
                raise corrupt(self.path, f"member {info.filename!r} is not a .npy file")
            if info.flag_bits & _ENCRYPTED:
                raise corrupt(self.path, f"member {info.filename!r} is encrypted")
            if info.compress_size > archive_size:
                raise corrupt(self.path, f"member {info.filename!r} claims more bytes than "
                                         "the archive holds")
            if info.compress_type == zipfile.ZIP_STORED:
                limit = info.compress_size
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                limit = info.compress_size * _MAX_DEFLATE_RATIO
            else:
                raise corrupt(self.path, f"member {info.filename!r} uses an unsupported "
                                         "compression")
            if info.file_size > limit:
                raise corrupt(self.path, f"member {info.filename!r} claims {info.file_size} "
                                         f"bytes from {info.compress_size} stored")
            with self._zip.open(info) as fp:
                dtype, shape, start = _read_npy_header(fp, where)
            nbytes = nbytes_of(shape, dtype.itemsize)
            if start + nbytes != info.file_size:
                raise corrupt(where, f"the header declares {nbytes} bytes of data, the member "
                                     f"has {info.file_size - start}")
            name = info.filename[: -len(".npy")]
            if name in members:
                raise corrupt(self.path, f"member {info.filename!r} appears twice")
            members[name] = (info, TensorInfo(dtype.name, shape, nbytes))
        return members

    def _read_member(self, name: str) -> np.ndarray:
        info, _ = self._members[name]
        with self._zip.open(info) as fp:
            return npy.read_array(fp, allow_pickle=False)

    def _decode_metadata(self, raw: np.ndarray) -> dict[str, str]:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise corrupt(self.path, f"{METADATA_MEMBER} must be a 1-D uint8 array")
        try:
            metadata = json.loads(raw.tobytes().decode("utf-8"),
                                  object_pairs_hook=strict_json_object)
        except (ValueError, RecursionError) as exc:
            raise corrupt(self.path, f"{METADATA_MEMBER} is not UTF-8 JSON ({exc})") from None
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise corrupt(self.path, f"{METADATA_MEMBER} must map strings to strings")
        return metadata

    def read(self, name: str) -> np.ndarray:
        """Return member ``name`` (its size was checked against the archive)."""
        if name not in self.entries:
            raise KeyError(name)
        try:
            return self._read_member(name)
        except (*_ZIP_ERRORS, ValueError) as exc:
            raise corrupt(self.path, f"member {name!r}: {exc}") from None

    def close(self) -> None:
        """Close the archive."""
        self._zip.close()


def _portable(dtype: np.dtype) -> bool:
    """Whether a ``.npy`` header names ``dtype`` so that NumPy reads it back as ``dtype``
    (ml_dtypes' float8_e5m2, say, claims kind "f" but its header reads ``<f1``)."""
    try:
        return npy.descr_to_dtype(npy.dtype_to_descr(dtype)) == dtype
    except (TypeError, ValueError):
        return False


class NpzWriter(TensorWriter):
    """Stream declared tensors into an uncompressed ``.npz`` archive."""

    def __init__(self, path: str | os.PathLike[str], entries: list[tuple[str, Any, tuple]],
                 metadata: dict[str, str]) -> None:
        if any(name == METADATA_MEMBER for name, _, _ in entries):
            raise ValueError(f"{METADATA_MEMBER!r} is reserved for the file's metadata in "
                             ".npz files; rename that tensor")
        if metadata:
            raw = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)
            entries = [(METADATA_MEMBER, raw.dtype, raw.shape), *entries]
        nul = [name for name, _, _ in entries if "\0" in name]
        if nul:
            raise ValueError(f"tensor names {nul} hold a NUL character, which .npz member "
                             "names cannot; use a .safetensors file")
        super().__init__(path, entries, metadata)
        self._member: IO[bytes] | None = None
        for name, dtype, _ in self._pending:
            if dtype.kind not in "biuf" or not _portable(dtype):
                raise ValueError(f"tensor {name!r}: .npz cannot record dtype {dtype} "
                                 "portably; use a .safetensors file")
        self._zip = zipfile.ZipFile(self._create_tmp(), "w", compression=zipfile.ZIP_STORED,
                                    allowZip64=True)
        if metadata:
            self.write(METADATA_MEMBER, raw)

    def _start(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self._member = self._zip.open(name + ".npy", "w", force_zip64=True)
        header = {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        try:
            npy.write_array_header_1_0(self._member, header)
        except ValueError:  # too long for version 1.0 (as numpy.save falls back)
            npy.write_array_header_2_0(self._member, header)

    def _append(self, data: memoryview) -> None:
        self._member.write(data)

    def _end(self) -> None:
        self._member.close()
        self._member = None

    def _finish(self) -> None:
        if self._member is not None:  # a failure in the middle of a tensor
            self._member.close()
            self._member = None
        self._zip.close()
