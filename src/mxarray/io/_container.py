"""What every tensor container (safetensors, .npz, .npy) offers: a uniform reader and writer.

A reader lists its tensors (dtype, shape) from the file's header alone, after checking
that the sizes the header declares fit in the file, and reads one tensor at a time.  A
writer is told every tensor it will hold up front, takes them one at a time and writes
to a temporary file that replaces the target only when complete, so memory stays
bounded by the largest tensor and a failed write leaves no half-written file.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import math
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["TensorInfo", "TensorReader", "TensorWriter", "corrupt", "nbytes_of",
           "strict_json_object"]


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """A tensor as a file's header declares it: a NumPy dtype name and a shape."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int


def nbytes_of(shape: tuple[int, ...], itemsize: int) -> int:
    """Bytes of a C-contiguous tensor (exact Python integers, no overflow)."""
    return math.prod(shape) * itemsize


def strict_json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook that rejects duplicate keys (ValueError)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def corrupt(path: str | os.PathLike[str], detail: str) -> ValueError:
    """The error for a file whose content does not describe itself consistently."""
    return ValueError(f"{os.fspath(path)}: not a valid file: {detail}")


class TensorReader(abc.ABC):
    """Tensors of one file, listed from its validated header and read one at a time."""

    path: Path
    metadata: dict[str, str]
    entries: dict[str, TensorInfo]

    @abc.abstractmethod
    def read(self, name: str) -> np.ndarray:
        """Return tensor ``name`` as a NumPy array."""

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class TensorWriter(abc.ABC):
    """Write declared tensors one at a time; the file appears when :meth:`close` succeeds."""

    def __init__(self, path: str | os.PathLike[str], entries: list[tuple[str, np.dtype, tuple]],
                 metadata: dict[str, str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a directory; name the file to write")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path}: the directory {self.path.parent} does not "
                                    "exist")
        self._tmp: Path | None = None  # set by _create_tmp
        self._pending = [(name, np.dtype(dtype).newbyteorder("<"), tuple(shape))
                         for name, dtype, shape in entries]
        names = [name for name, _, _ in self._pending]
        for name in names:
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"tensor name {name!r} is not valid Unicode (a lone "
                                 "surrogate): files store names as UTF-8") from None
        repeated = sorted(n for n, k in collections.Counter(names).items() if k > 1)
        if repeated:
            raise ValueError(f"tensor names must be unique; {repeated} would be written twice "
                             "(a dense tensor may take the name of an MX array's storage, "
                             "NAME.mx_packed or NAME.mx_scales: rename it)")
        self._next = 0
        self._metadata = metadata

    def _create_tmp(self) -> Path:
        """Create the temporary file beside the target under a name no file has yet
        (``NAME.partial``, else ``NAME.1.partial`` ...), so no other file is replaced."""
        i = 0
        while True:
            tmp = self.path.with_name(f"{self.path.name}{f'.{i}' if i else ''}.partial")
            try:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            except FileExistsError:
                i += 1
                continue
            self._tmp = tmp
            return tmp

    def write(self, name: str, array: Any) -> None:
        """Write the next declared tensor (in the declared order)."""
        if self._next >= len(self._pending):
            raise ValueError(f"tensor {name!r} was not declared")
        want_name, dtype, shape = self._pending[self._next]
        arr = np.asarray(array)
        arr = arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)
        if (name, arr.dtype, arr.shape) != (want_name, dtype, shape):
            raise ValueError(f"expected tensor {want_name!r} {dtype} {shape}, got {name!r} "
                             f"{arr.dtype} {arr.shape}")
        self._write(name, arr)
        self._next += 1

    @abc.abstractmethod
    def _write(self, name: str, array: np.ndarray) -> None:
        """Append one little-endian, C-contiguous tensor."""

    @abc.abstractmethod
    def _finish(self) -> None:
        """Flush and close the temporary file."""

    def close(self) -> None:
        """Finish the file and move it into place (all declared tensors must be written).

        If that fails, the temporary file is removed and the target is left as it was.
        """
        try:
            if self._next != len(self._pending):
                raise ValueError(f"{len(self._pending) - self._next} declared tensor(s) not "
                                 "written")
            self._finish()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the temporary file after a failure."""
        try:
            self._finish()
        finally:
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TensorWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
