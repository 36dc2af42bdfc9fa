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
import glob
import math
import os
import socket
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["TensorInfo", "TensorReader", "TensorWriter", "corrupt", "nbytes_of",
           "strict_json_object", "numpy_dtype", "PARTIAL_SUFFIX", "partial_prefix",
           "make_partial", "remove_stale_partials"]

PARTIAL_SUFFIX = ".partial"
"""How the name of a file being written ends (it replaces its target once complete)."""


def _host() -> str:
    """This machine's name as it goes into a file name (no dots, separators or spaces)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())


def partial_prefix(target: Path, pid: int | None = None) -> str:
    """How the temporary files of a writer of ``target`` begin: ``.NAME.HOST.PID.``, hidden,
    and naming the host and process that own them."""
    return f".{target.name}.{_host()}.{os.getpid() if pid is None else pid}."


def make_partial(target: Path) -> Path:
    """Create an empty temporary file for ``target`` beside it (:func:`partial_prefix`),
    with the permissions a new file gets (``tempfile`` makes it private)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=partial_prefix(target),
                               suffix=PARTIAL_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(tmp)


def _umask() -> int:
    """The process's file-creation mask (read by setting it, so under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_partials(target: Path) -> list[Path]:
    """Remove the temporary files that killed writers of ``target`` on this host left.

    A temporary file records its host and process (:func:`partial_prefix`); one whose
    process no longer runs on this host is stale.  Files of other hosts (a shared disk)
    and of running processes are left alone.  Returns the removed paths.
    """
    head = f".{target.name}.{_host()}."
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*{PARTIAL_SUFFIX}"):
        pid = path.name[len(head):].split(".", 1)[0]
        if path.name.startswith(head) and pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype of a :class:`TensorInfo` dtype name (ml_dtypes' types included)."""
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes  # bfloat16, float8_*: the readers that report them require it

        return np.dtype(getattr(ml_dtypes, name))


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

    def can_map(self, name: str) -> bool:
        """Whether :meth:`mapped` maps tensor ``name`` rather than reading it."""
        return False

    def mapped(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a read-only memory map of the file where :meth:`can_map`:
        only the slices copied out of it are read, and its pages leave the process's
        memory when the map is dropped.  Otherwise the tensor is read."""
        return self.read(name)

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
        self._open: tuple[str, np.dtype, int, int] | None = None  # name, dtype, bytes, done
        self._metadata = metadata

    def _create_tmp(self) -> Path:
        """Create the temporary file beside the target, under a fresh name that records
        this host and process (see :func:`partial_name`), after removing what a killed
        run of this host left behind for the same target (:func:`remove_stale_partials`)."""
        remove_stale_partials(self.path)
        self._tmp = make_partial(self.path)
        return self._tmp

    def write(self, name: str, array: Any) -> None:
        """Write the next declared tensor (in the declared order)."""
        arr = self._checked(np.asarray(array))
        if self._open is None and self._next < len(self._pending):
            want = self._pending[self._next]
            if (name, arr.dtype, arr.shape) != want:
                raise ValueError(f"expected tensor {want[0]!r} {want[1]} {want[2]}, got "
                                 f"{name!r} {arr.dtype} {arr.shape}")
        self.start(name)
        self.append(arr)
        self.end()

    def start(self, name: str) -> None:
        """Begin the next declared tensor; its data follow in :meth:`append` calls."""
        if self._open is not None:
            raise ValueError(f"tensor {self._open[0]!r} is still being written")
        if self._next >= len(self._pending):
            raise ValueError(f"tensor {name!r} was not declared")
        want, dtype, shape = self._pending[self._next]
        if name != want:
            raise ValueError(f"expected tensor {want!r} next, got {name!r}")
        self._start(name, dtype, shape)
        self._open = (name, dtype, nbytes_of(shape, dtype.itemsize), 0)

    def append(self, part: Any) -> None:
        """Append the next elements (in C order) of the tensor begun by :meth:`start`."""
        if self._open is None:
            raise ValueError("no tensor is being written; call start first")
        name, dtype, total, done = self._open
        arr = self._checked(np.asarray(part))
        if arr.dtype != dtype or done + arr.nbytes > total:
            raise ValueError(f"tensor {name!r}: {arr.dtype} data of {arr.nbytes} bytes do not "
                             f"fit the {total - done} bytes of {dtype} left")
        self._append(arr.reshape(-1).view(np.uint8).data)
        self._open = (name, dtype, total, done + arr.nbytes)

    def end(self) -> None:
        """Finish the tensor begun by :meth:`start` (all its bytes must have come)."""
        if self._open is None:
            raise ValueError("no tensor is being written")
        name, _, total, done = self._open
        if done != total:
            raise ValueError(f"tensor {name!r}: {done} of its {total} bytes were written")
        self._end()
        self._open = None
        self._next += 1

    @staticmethod
    def _checked(arr: np.ndarray) -> np.ndarray:
        """``arr`` little-endian and C-contiguous, as files store it."""
        return arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)

    @abc.abstractmethod
    def _start(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        """Begin a tensor in the file."""

    @abc.abstractmethod
    def _append(self, data: memoryview) -> None:
        """Append raw bytes of the current tensor."""

    def _end(self) -> None:
        """Close the current tensor in the file."""

    @abc.abstractmethod
    def _finish(self) -> None:
        """Flush and close the temporary file."""

    def close(self) -> None:
        """Finish the file and move it into place (all declared tensors must be written).

        If that fails, the temporary file is removed and the target is left as it was.
        """
        try:
            if self._open is not None or self._next != len(self._pending):
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
