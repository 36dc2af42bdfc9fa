"""The self-description of an mxarray file: one JSON document, validated on load.

Both file kinds carry a ``str -> str`` metadata dict (safetensors natively in its
header, ``.npz`` as a uint8 member); mxarray's description sits under the key
``"mxarray"``::

    {"version": 1, "spec_version": "1.0.0",
     "formats": {FORMAT: {... the format's spec entry ...}},
     "tensors": {NAME: {"format": ..., "shape": [...], "block_axis": ...,
                        "block_size": ..., "element_bits": ..., "packing": ...,
                        "scale_mode": ..., "rounding": ..., "seed": ...,
                        "packed": TENSOR, "scales": TENSOR, "tensor_scale": TENSOR}}}

``packed``, ``scales`` and ``tensor_scale`` name the tensors that hold the storage of
the MX array ``NAME``: the packed bytes (block axis innermost, zero-padded), the block
scale bytes (shaped like the logical array with the block axis replaced by its block
count) and, for formats with a per-tensor scale, a 0-d float32 tensor (else null).

Everything about a format is written from its :class:`~mxarray.formats.Format`: the
spec entry it was built from under ``formats`` and, per tensor, its block size, element
bits and packing.  A reader accepts a file only if its own format of that name has the
same entry and facts, so a file never decodes under a different definition, and new
block formats need no change here.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from typing import Any, Mapping

import numpy as np

from .. import layout
from ..formats import ROUNDING_MODES, SCALE_MODES, SPEC_VERSION, Format, get_format
from ._container import strict_json_object

__all__ = ["FILE_VERSION", "METADATA_KEY", "MXRecord", "encode", "decode"]

FILE_VERSION = 1
"""Version of the layout of the ``"mxarray"`` metadata document."""

METADATA_KEY = "mxarray"
"""Key of mxarray's document in a file's ``str -> str`` metadata."""

_SUFFIXES = {"packed": ".mx_packed", "scales": ".mx_scales", "tensor_scale": ".mx_tensor_scale"}
_RECORD_KEYS = frozenset({"format", "shape", "block_axis", "block_size", "element_bits",
                          "packing", "scale_mode", "rounding", "seed", *_SUFFIXES})


def _plain(value: Any) -> Any:
    """A spec entry as plain JSON types (mappings to dicts, tuples to lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _definition(fmt: Format) -> Any:
    """The format's spec entry as it reads back from JSON."""
    return json.loads(json.dumps(_plain(fmt.spec)))


def _facts(fmt: Format) -> dict[str, Any]:
    """The per-tensor format facts a file records and a reader checks."""
    return {"block_size": fmt.block_size, "element_bits": fmt.bits,
            "packing": fmt.layout.name}


@dataclasses.dataclass(frozen=True)
class MXRecord:
    """One MX array of a file: its format, geometry, modes, and the tensors holding it."""

    name: str
    format: Format
    shape: tuple[int, ...]
    block_axis: int
    scale_mode: str | None
    rounding: str | None
    seed: int | None
    packed: str
    scales: str
    tensor_scale: str | None

    @classmethod
    def for_array(
        cls, name: str, fmt: Format, shape: tuple[int, ...], block_axis: int,
        scale_mode: str | None, rounding: str | None, seed: int | None,
    ) -> MXRecord:
        """The record of an MX array ``name``, its tensors named by convention."""
        tensor_scale = None if fmt.tensor_scale == "none" else name + _SUFFIXES["tensor_scale"]
        return cls(name, fmt, shape, block_axis, scale_mode, rounding, seed,
                   name + _SUFFIXES["packed"], name + _SUFFIXES["scales"], tensor_scale)

    @property
    def storage(self) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
        """The tensors that hold the array: ``(name, dtype, shape)`` in writing order."""
        out = [
            (self.packed, np.dtype(np.uint8),
             layout.packed_shape(self.shape, self.block_axis, self.format)),
            (self.scales, np.dtype(np.uint8),
             layout.scales_shape(self.shape, self.block_axis, self.format.block_size)),
        ]
        if self.tensor_scale is not None:
            out.append((self.tensor_scale, np.dtype(np.float32), ()))
        return out

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return {
            "format": self.format.name, "shape": list(self.shape),
            "block_axis": self.block_axis, **_facts(self.format),
            "scale_mode": self.scale_mode, "rounding": self.rounding, "seed": self.seed,
            "packed": self.packed, "scales": self.scales, "tensor_scale": self.tensor_scale,
        }


def encode(records: list[MXRecord]) -> str:
    """The ``"mxarray"`` metadata document describing ``records``."""
    return json.dumps({
        "version": FILE_VERSION,
        "spec_version": SPEC_VERSION,
        "formats": {r.format.name: _definition(r.format) for r in records},
        "tensors": {r.name: r.to_json() for r in records},
    }, sort_keys=True)


def decode(text: str) -> list[MXRecord]:
    """Parse and validate an ``"mxarray"`` metadata document.

    Raises
    ------
    ValueError
        If the document is not valid JSON, comes from another file version or a spec
        with another major version, names a format this mxarray does not know or
        defines differently, or any field is missing, unexpected, of the wrong type or
        inconsistent with the format.
    """
    try:
        doc = json.loads(text, object_pairs_hook=strict_json_object)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the mxarray metadata is not valid JSON: {exc}") from None
    keys = {"version", "spec_version", "formats", "tensors"}
    if not isinstance(doc, dict) or set(doc) != keys:
        raise ValueError(f"the mxarray metadata must be an object with the keys {sorted(keys)}")
    version = doc["version"]
    if version != FILE_VERSION or isinstance(version, bool):
        raise ValueError(f"unsupported mxarray file version {version!r}: this mxarray reads "
                         f"version {FILE_VERSION}; upgrade mxarray to read this file")
    _check_spec_version(doc["spec_version"])
    formats, tensors = doc["formats"], doc["tensors"]
    if not isinstance(formats, dict) or not isinstance(tensors, dict):
        raise ValueError("the mxarray metadata fields 'formats' and 'tensors' must be objects")
    known = {name: _format(name, entry) for name, entry in formats.items()}
    records = [_record(name, entry, known) for name, entry in tensors.items()]
    unused = set(known) - {r.format.name for r in records}
    if unused:
        raise ValueError(f"the mxarray metadata defines unused formats {sorted(unused)}")
    return records


def _check_spec_version(value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"spec_version must be a string, got {value!r}")
    parts = value.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"spec_version must look like 'MAJOR.MINOR.PATCH', got {value!r}")
    if parts[0] != SPEC_VERSION.split(".")[0]:
        raise ValueError(f"the file was written for MX spec version {value}; this mxarray "
                         f"implements spec version {SPEC_VERSION} (another major version)")


def _format(name: str, entry: object) -> Format:
    try:
        fmt = get_format(name)
    except (ValueError, KeyError):
        raise ValueError(f"the file uses format {name!r}, which this mxarray does not know "
                         "(register it first, or upgrade mxarray)") from None
    if entry != _definition(fmt):
        raise ValueError(f"the file defines format {name!r} differently from this mxarray; "
                         f"file: {entry!r}, here: {_definition(fmt)!r}")
    return fmt


def _record(name: str, entry: object, formats: dict[str, Format]) -> MXRecord:
    where = f"mxarray metadata for tensor {name!r}"
    if not name:
        raise ValueError(f"{where}: tensor names must be non-empty")
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be an object")
    missing, extra = _RECORD_KEYS - set(entry), set(entry) - _RECORD_KEYS
    if missing or extra:
        raise ValueError(f"{where}: missing fields {sorted(missing)}, unexpected fields "
                         f"{sorted(extra)}")
    fmt = formats.get(entry["format"]) if isinstance(entry["format"], str) else None
    if fmt is None:
        raise ValueError(f"{where}: format {entry['format']!r} is not defined in 'formats'")
    for key, want in _facts(fmt).items():
        if entry[key] != want or type(entry[key]) is not type(want):
            raise ValueError(f"{where}: {key} is {entry[key]!r} but {fmt.name} has {want!r}")
    shape = _int_list(entry["shape"], f"{where}: shape")
    if not shape:
        raise ValueError(f"{where}: shape must have at least one dimension")
    axis = _int(entry["block_axis"], f"{where}: block_axis")
    if not axis < len(shape) or shape[axis] == 0:
        raise ValueError(f"{where}: block_axis {axis} does not name a non-empty axis of "
                         f"shape {shape}")
    scale_mode = _choice(entry["scale_mode"], SCALE_MODES, f"{where}: scale_mode")
    rounding = _choice(entry["rounding"], ROUNDING_MODES, f"{where}: rounding")
    seed = entry["seed"]
    if seed is not None and not (_is_int(seed) and 0 <= seed < 2**64):
        raise ValueError(f"{where}: seed must be null or an integer in [0, 2**64)")
    names = [entry["packed"], entry["scales"], entry["tensor_scale"]]
    wants_tensor_scale = fmt.tensor_scale != "none"
    if (not all(isinstance(n, str) for n in names[:2])
            or not (isinstance(names[2], str) if wants_tensor_scale else names[2] is None)
            or len(set(names)) != 3):
        raise ValueError(f"{where}: 'packed', 'scales' and, exactly for formats with a "
                         "tensor scale, 'tensor_scale' must name different tensors")
    return MXRecord(name, fmt, tuple(shape), axis, scale_mode, rounding, seed, *names)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: object, where: str) -> int:
    if not _is_int(value) or not 0 <= value < 2**63:  # type: ignore[operator]
        raise ValueError(f"{where} must be an integer in [0, 2**63), got {value!r}")
    return operator.index(value)  # type: ignore[arg-type]


def _int_list(value: object, where: str) -> list[int]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of non-negative integers, got {value!r}")
    return [_int(v, where) for v in value]


def _choice(value: object, choices: tuple[str, ...], where: str) -> Any:
    if value is not None and (not isinstance(value, str) or value not in choices):
        raise ValueError(f"{where} must be null or one of {', '.join(choices)}; got {value!r}")
    return value
