"""safetensors files: header validation, reading through the ``safetensors`` package, and a
streaming writer.

The format: 8 bytes (little-endian u64) giving the header length N, N bytes of UTF-8
JSON mapping each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets into the data that follows the header) plus an optional ``"__metadata__"``
``str -> str`` dict, then the tensor bytes, little-endian and C-ordered.

The header is parsed and checked here before anything is read: the offsets must tile
the data region exactly and each tensor's byte count must equal its shape times its
item size, so a corrupt header cannot make the reader allocate more than the file
holds.  Tensors are then read with ``safetensors.safe_open`` (memory-mapped, one at a
time), except float8 tensors, which the package's NumPy reader cannot build: their
bytes are read from the validated offsets.  The package has no incremental writer, so
the writer here streams tensors one at a time, which bounds the memory of ``mxarray
quantize`` by the largest tensor; the tests check that the package reads every file it
writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._container import (
    TensorInfo,
    TensorReader,
    TensorWriter,
    corrupt,
    nbytes_of,
    numpy_dtype,
    strict_json_object,
)

__all__ = ["SafetensorsReader", "SafetensorsWriter"]

METADATA_ENTRY = "__metadata__"
"""Header key of the ``str -> str`` metadata dict (no tensor may take this name)."""
MAX_HEADER_BYTES = 100_000_000
"""Largest header accepted (the limit the ``safetensors`` package applies too)."""

# safetensors dtype code -> (NumPy dtype name, bits per element): every dtype of the
# safetensors package 0.8.0.  ml_dtypes (0.7.0) names the narrow floats; NumPy holds an F4
# or F6 element in one byte, the file packs them (F4: two per byte, the first in the low
# nibble, as torch's float4_e2m1fn_x2).
_DTYPES: dict[str, tuple[str, int]] = {
    "BOOL": ("bool", 8),
    "F4": ("float4_e2m1fn", 4),
    "F6_E2M3": ("float6_e2m3fn", 6),
    "F6_E3M2": ("float6_e3m2fn", 6),
    "U8": ("uint8", 8),
    "I8": ("int8", 8),
    "F8_E4M3": ("float8_e4m3fn", 8),
    "F8_E5M2": ("float8_e5m2", 8),
    "F8_E4M3FNUZ": ("float8_e4m3fnuz", 8),
    "F8_E5M2FNUZ": ("float8_e5m2fnuz", 8),
    "F8_E8M0": ("float8_e8m0fnu", 8),
    "U16": ("uint16", 16),
    "I16": ("int16", 16),
    "F16": ("float16", 16),
    "BF16": ("bfloat16", 16),
    "U32": ("uint32", 32),
    "I32": ("int32", 32),
    "F32": ("float32", 32),
    "C64": ("complex64", 64),
    "U64": ("uint64", 64),
    "I64": ("int64", 64),
    "F64": ("float64", 64),
}
# what the writer writes: every whole-byte dtype
_CODES = {name: code for code, (name, bits) in _DTYPES.items() if bits % 8 == 0}
# dtypes the package's NumPy reader cannot build (it looks them up on numpy itself); their
# bytes are read here from the validated offsets instead.
_READ_RAW = frozenset(name for name, _ in _DTYPES.values() if name.startswith("float")
                      and name not in ("float16", "float32", "float64"))
_SUB_BYTE = frozenset(name for name, bits in _DTYPES.values() if bits % 8)


def require_package() -> Any:
    """Import ``safetensors.safe_open`` (and ``ml_dtypes``, which gives NumPy bfloat16)."""
    try:
        import ml_dtypes  # noqa: F401 - registers bfloat16 and float8 with NumPy
        from safetensors import safe_open
    except ImportError as exc:
        raise ImportError(
            f"reading .safetensors files needs the safetensors and ml_dtypes packages "
            f"({exc.name} is missing): pip install 'mxarray[io]'"
        ) from None
    return safe_open


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_header(path: str | os.PathLike[str], head: bytes, file_size: int
                 ) -> tuple[dict[str, TensorInfo], dict[str, str], int, dict[str, int]]:
    """Validate a header; return the tensors, the metadata, the header length and each
    tensor's first byte in the file.

    ``head`` holds the first bytes of the file (at least the whole header).

    Raises
    ------
    ValueError
        If the header is malformed or its offsets and sizes disagree with the file.
    """
    if file_size < 8 or len(head) < 8:
        raise corrupt(path, f"{file_size} bytes is too short for a safetensors header")
    n = int.from_bytes(head[:8], "little")
    if n > min(file_size - 8, MAX_HEADER_BYTES) or len(head) < 8 + n:
        raise corrupt(path, f"the header claims {n} bytes but the file has {file_size}")
    try:
        header = json.loads(head[8:8 + n].decode("utf-8"), object_pairs_hook=strict_json_object)
    except (ValueError, RecursionError) as exc:
        raise corrupt(path, f"the header is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise corrupt(path, "the header must be a JSON object")
    metadata = header.pop(METADATA_ENTRY, {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise corrupt(path, "__metadata__ must map strings to strings")
    entries: dict[str, TensorInfo] = {}
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise corrupt(path, f"tensor {name!r} must have exactly dtype, shape, data_offsets")
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(code, str) or code not in _DTYPES:
            raise corrupt(path, f"tensor {name!r} has an unsupported dtype {code!r}")
        if not isinstance(shape, list) or not all(_is_index(d) for d in shape):
            raise corrupt(path, f"tensor {name!r}: shape must be a list of non-negative ints")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_index(o) for o in offsets) or offsets[0] > offsets[1]):
            raise corrupt(path, f"tensor {name!r}: data_offsets must be [begin, end]")
        dtype, bits = _DTYPES[code]
        size, rest = divmod(nbytes_of(tuple(shape), bits), 8)
        if rest:
            raise corrupt(path, f"tensor {name!r}: {code} {shape} does not end at a byte "
                                "boundary")
        if offsets[1] - offsets[0] != size:
            raise corrupt(path, f"tensor {name!r}: {code} {shape} needs {size} bytes, "
                                f"data_offsets give {offsets[1] - offsets[0]}")
        entries[name] = TensorInfo(dtype, tuple(shape), size)
        spans.append((offsets[0], offsets[1], name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise corrupt(path, f"tensor {name!r} starts at {begin}, expected {position} "
                                "(tensor data must not overlap or leave gaps)")
        position = end
    if position != file_size - 8 - n:
        raise corrupt(path, f"the tensors cover {position} bytes but the file holds "
                            f"{file_size - 8 - n} after the header")
    return entries, metadata, n, {name: 8 + n + begin for begin, _, name in spans}


class SafetensorsReader(TensorReader):
    """Read a ``.safetensors`` file after validating its header."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        safe_open = require_package()
        self.path = Path(path)
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) == 8:
                n = int.from_bytes(head, "little")
                head += f.read(min(n, MAX_HEADER_BYTES, size))
        self.entries, self.metadata, _, self._starts = parse_header(self.path, head, size)
        try:
            self._file = safe_open(os.fspath(self.path), framework="numpy")
        except Exception as exc:  # the package's SafetensorError derives from Exception
            raise corrupt(self.path, str(exc)) from None

    def read(self, name: str) -> np.ndarray:
        """Return tensor ``name`` (memory-mapped read of its bytes)."""
        if name not in self.entries:
            raise KeyError(name)
        info = self.entries[name]
        if info.dtype in _READ_RAW:
            return self._read_raw(name, info)
        try:
            return self._file.get_tensor(name)
        except Exception as exc:
            raise corrupt(self.path, f"tensor {name!r}: {exc}") from None

    def can_map(self, name: str) -> bool:
        """Whether :meth:`mapped` maps tensor ``name`` (not a packed F4 or F6 tensor)."""
        return self.entries[name].dtype not in _SUB_BYTE

    def mapped(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a read-only memory map of its validated bytes (F4 and F6
        tensors, packed in the file: read)."""
        info = self.entries[name]
        if not self.can_map(name):
            return self.read(name)
        dtype = numpy_dtype(info.dtype).newbyteorder("<")
        if info.nbytes == 0:
            return np.empty(info.shape, dtype)
        return np.memmap(self.path, dtype=dtype, mode="r", offset=self._starts[name],
                         shape=info.shape)

    def _read_raw(self, name: str, info: TensorInfo) -> np.ndarray:
        """Read a tensor's bytes at its validated offset (the header tiles the file)."""
        with open(self.path, "rb") as f:
            f.seek(self._starts[name])
            raw = f.read(info.nbytes)
        if len(raw) != info.nbytes:
            raise corrupt(self.path, f"tensor {name!r}: the file ended early")
        dtype = numpy_dtype(info.dtype)
        data = np.frombuffer(raw, dtype=np.uint8)
        if info.dtype == "float4_e2m1fn":  # two codes a byte, the first in the low nibble
            data = np.stack([data & 0x0F, data >> 4], axis=-1)
        elif info.dtype in _SUB_BYTE:
            raise ValueError(f"{self.path}: tensor {name!r} is {info.dtype}, whose bit packing "
                             "the safetensors format (package 0.8.0) does not define; mxarray "
                             "lists it (mxarray inspect) but cannot read its values")
        return data.reshape(-1).view(dtype).reshape(info.shape).copy()

    def close(self) -> None:
        """Release the memory map."""
        self._file = None


class SafetensorsWriter(TensorWriter):
    """Stream declared tensors into a ``.safetensors`` file."""

    def __init__(self, path: str | os.PathLike[str], entries: list[tuple[str, Any, tuple]],
                 metadata: dict[str, str]) -> None:
        if any(name == METADATA_ENTRY for name, _, _ in entries):
            raise ValueError(f"{METADATA_ENTRY!r} is reserved for the file's metadata in "
                             "safetensors files; rename that tensor")
        super().__init__(path, entries, metadata)
        header: dict[str, Any] = {METADATA_ENTRY: dict(metadata)} if metadata else {}
        offset = 0
        for name, dtype, shape in self._pending:
            if dtype.name not in _CODES:
                raise ValueError(f"tensor {name!r}: safetensors cannot hold dtype {dtype}")
            size = nbytes_of(shape, dtype.itemsize)
            header[name] = {"dtype": _CODES[dtype.name], "shape": list(shape),
                            "data_offsets": [offset, offset + size]}
            offset += size
        text = json.dumps(header, separators=(",", ":")).encode("utf-8")
        text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
        self._file = open(self._create_tmp(), "wb")
        self._file.write(len(text).to_bytes(8, "little") + text)

    def _start(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        """Nothing to do: the header placed every tensor already."""

    def _append(self, data: memoryview) -> None:
        self._file.write(data)

    def _finish(self) -> None:
        self._file.close()
