"""``mxarray.io.save`` and ``load``: MX arrays and dense arrays in self-describing files."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..array import MXArray
from ._container import TensorReader, TensorWriter, corrupt
from ._metadata import METADATA_KEY, MXRecord, decode, encode
from ._npz import NpyReader, NpzReader, NpzWriter
from ._safetensors import SafetensorsReader, SafetensorsWriter

__all__ = ["save", "load", "open_reader", "open_writer", "mx_records", "read_mx", "storage_of",
           "named_items", "SUFFIXES"]

_READERS = {".safetensors": SafetensorsReader, ".npz": NpzReader, ".npy": NpyReader}
_WRITERS = {".safetensors": SafetensorsWriter, ".npz": NpzWriter}
SUFFIXES = tuple(_READERS)
"""File name suffixes mxarray reads (it writes ``.safetensors`` and ``.npz``)."""

# The MXArray state a file records.  An attribute added to MXArray later (a per-tensor
# scale, say) makes save() refuse the array rather than silently drop it.
_RECORDED_SLOTS = frozenset({"_packed", "_scales", "_format", "_shape", "_axis",
                             "_rounding", "_scale_mode", "_seed", "_tensor_scale"})


def open_reader(path: str | os.PathLike[str]) -> TensorReader:
    """Open a ``.safetensors``, ``.npz`` or ``.npy`` file for reading, chosen by suffix.

    Raises
    ------
    ValueError
        If the suffix is not one of these or the header is malformed.
    OSError
        If the file cannot be read.
    """
    suffix = Path(path).suffix
    if suffix not in _READERS:
        raise ValueError(f"{os.fspath(path)}: unsupported file type {suffix!r}; mxarray "
                         f"reads {', '.join(_READERS)}")
    return _READERS[suffix](path)


def open_writer(path: str | os.PathLike[str], entries: list[tuple[str, Any, tuple]],
                metadata: dict[str, str]) -> TensorWriter:
    """Open a ``.safetensors`` or ``.npz`` writer for the declared ``entries``."""
    suffix = Path(path).suffix
    if suffix not in _WRITERS:
        raise ValueError(f"{os.fspath(path)}: unsupported file type {suffix!r}; mxarray "
                         f"writes {', '.join(_WRITERS)}")
    return _WRITERS[suffix](path, entries, metadata)


def named_items(arrays: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The ``(name, value)`` pairs of a mapping to save, names checked.

    Raises
    ------
    TypeError
        If ``arrays`` is not a mapping.
    ValueError
        If a name is not a non-empty string.
    """
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays must be a mapping of names to arrays (a dict), not "
                        f"{type(arrays).__name__}")
    items = list(arrays.items())
    for name, _ in items:
        if not isinstance(name, str) or not name:
            raise ValueError(f"tensor names must be non-empty strings, got {name!r}")
    return items


def _record_of(name: str, a: MXArray) -> MXRecord:
    unknown = [s for s in type(a).__slots__ if s not in _RECORDED_SLOTS
               and getattr(a, s, None) is not None]
    if unknown:
        raise NotImplementedError(f"array {name!r} has attributes this file format does not "
                                  f"record yet: {unknown}")
    return MXRecord.for_array(name, a.format, a.shape, a.block_axis, a.scale_mode,
                              a.rounding, a.seed)


def storage_of(a: MXArray) -> list[np.ndarray]:
    """The arrays holding ``a``, in the order of :attr:`MXRecord.storage`."""
    parts = [np.asarray(a.packed), np.asarray(a.scales)]
    if a.tensor_scale is not None:
        parts.append(np.asarray(a.tensor_scale, dtype=np.float32))
    return parts


def save(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> None:
    """Save MX arrays (and dense arrays) to a self-describing ``.safetensors`` or ``.npz`` file.

    Each :class:`~mxarray.MXArray` ``NAME`` is stored as two uint8 tensors,
    ``NAME.mx_packed`` (the packed bytes) and ``NAME.mx_scales`` (the block scales),
    plus a 0-d float32 ``NAME.mx_tensor_scale`` for formats with a per-tensor scale.
    The file's metadata records its format (with the format's definition), logical
    shape, block axis, scale mode, rounding, packing layout and the spec version.
    Other values are stored as dense tensors.  The file appears only once it is
    completely written.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.safetensors`` or ``.npz``.
    arrays : mapping of str to MXArray or array_like
        The tensors, by name.

    Raises
    ------
    TypeError
        If ``arrays`` is not a mapping.
    ValueError
        If the suffix is unsupported, a name is empty, not a string, reserved
        (``__metadata__``), collides with the storage of an MX array or cannot be stored
        (a lone surrogate; a NUL character in ``.npz``), or a dense array has an object
        dtype or one the file kind cannot hold.  No file is written then.
    NotImplementedError
        If an MXArray carries state the file format does not record.

    Examples
    --------
    >>> import numpy as np, mxarray, tempfile, os
    >>> from mxarray.io import save, load
    >>> w = mxarray.quantize(np.linspace(-1, 1, 64, dtype=np.float32), "mxfp4_e2m1")
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> save(path, {"w": w, "bias": np.zeros(4, np.float32)})
    >>> back = load(path)
    >>> back["w"].format.name, back["w"].shape, back["bias"].dtype
    ('mxfp4_e2m1', (64,), dtype('float32'))
    >>> bool(np.array_equal(back["w"].packed, w.packed))
    True
    """
    records, tensors = [], []
    for name, value in named_items(arrays):
        if isinstance(value, MXArray):
            value = value.to_device("cpu")
            record = _record_of(name, value)
            records.append(record)
            tensors += zip([t for t, _, _ in record.storage], storage_of(value), strict=True)
        else:
            value = np.asarray(value)
            if value.dtype.hasobject:
                raise ValueError(f"array {name!r} has an object dtype; files never hold pickles")
            tensors.append((name, value))
    counts = collections.Counter(n for n, _ in tensors)
    clashes = sorted(n for n, k in counts.items() if k > 1)
    if clashes:
        raise ValueError(f"tensor name(s) {clashes} collide with the storage of an MX array")
    entries = [(n, t.dtype, t.shape) for n, t in tensors]
    with open_writer(path, entries, {METADATA_KEY: encode(records)}) as writer:
        for n, t in tensors:
            writer.write(n, t)


def mx_records(reader: TensorReader) -> list[MXRecord]:
    """The validated MX records of an open file (empty if it has no mxarray metadata).

    Raises
    ------
    ValueError
        If the metadata is invalid or disagrees with the tensors the file holds.
    """
    if METADATA_KEY not in reader.metadata:
        return []
    records = decode(reader.metadata[METADATA_KEY])
    claimed: set[str] = set()
    for r in records:
        for tensor, dtype, shape in r.storage:
            info = reader.entries.get(tensor)
            if info is None:
                raise corrupt(reader.path, f"MX array {r.name!r} needs tensor {tensor!r}, "
                                           "which the file lacks")
            if info.dtype != dtype.name or info.shape != shape:
                raise corrupt(reader.path, f"tensor {tensor!r} of MX array {r.name!r} is "
                                           f"{info.dtype} {info.shape}, expected {dtype} {shape}")
            if tensor in claimed:
                raise corrupt(reader.path, f"tensor {tensor!r} is claimed twice")
            claimed.add(tensor)
    names = {r.name for r in records}
    dense = set(reader.entries) - claimed
    if names & dense:
        raise corrupt(reader.path, f"names {sorted(names & dense)} are both MX and dense")
    return records


def read_mx(reader: TensorReader, record: MXRecord) -> MXArray:
    """Read and validate one MX array of an open file."""
    tensor_scale = None if record.tensor_scale is None else reader.read(record.tensor_scale)
    return MXArray.from_parts(
        reader.read(record.packed), reader.read(record.scales), record.format, record.shape,
        axis=record.block_axis, layout="packed", rounding=record.rounding,
        scale_mode=record.scale_mode, seed=record.seed,
        tensor_scale=None if tensor_scale is None else float(tensor_scale),
    )


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a ``.safetensors``, ``.npz`` or ``.npy`` file; MX arrays come back as MXArrays.

    Everything the file declares is validated before its data are read: header sizes
    against the file size, the mxarray metadata (file version, spec version, known
    format and its block size, element bits and packing, shapes, modes) against the
    tensors, then every code and the zero padding.  No pickle is ever loaded.

    Returns
    -------
    dict of str to MXArray or numpy.ndarray
        By name, in file order.

    Raises
    ------
    ValueError
        If the file is malformed, truncated or inconsistent.
    OSError
        If it cannot be read.
    ImportError
        For ``.safetensors`` files when the ``io`` extra is not installed.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from mxarray.io import load
    >>> path = os.path.join(tempfile.mkdtemp(), "plain.npz")
    >>> np.savez(path, x=np.arange(3.0))
    >>> load(path)
    {'x': array([0., 1., 2.])}
    """
    with open_reader(path) as reader:
        records = {r.packed: r for r in mx_records(reader)}
        storage = {t for r in records.values() for t, _, _ in r.storage}
        out: dict[str, Any] = {}
        for name in reader.entries:
            if name in records:
                out[records[name].name] = read_mx(reader, records[name])
            elif name not in storage:
                out[name] = reader.read(name)
        return out
