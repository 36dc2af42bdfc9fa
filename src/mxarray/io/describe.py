"""What a file holds, from its header alone: the engine of ``mxarray inspect``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ._files import mx_records, open_reader
from ._metadata import METADATA_KEY
from .checkpoints import FORMAT as MXFP4
from .checkpoints import gpt_oss_pairs, torchao_pairs

__all__ = ["TensorDescription", "FileDescription", "describe_file"]


@dataclasses.dataclass(frozen=True)
class TensorDescription:
    """One logical tensor of a file."""

    name: str
    kind: str
    """``"mx"`` (mxarray metadata), ``"gpt-oss"`` (a ``_blocks``/``_scales`` pair),
    ``"torchao"`` (element data and an E8M0 scale tensor) or ``"dense"``."""
    type: str
    """The MX format name, or the NumPy dtype name of a dense tensor."""
    shape: tuple[int, ...]
    block_axis: int | None
    nbytes: int
    details: str = ""


@dataclasses.dataclass(frozen=True)
class FileDescription:
    """A file's container, size, metadata and logical tensors."""

    path: Path
    container: str
    file_bytes: int
    metadata: dict[str, str]
    """The file's metadata other than mxarray's own document."""
    tensors: list[TensorDescription]


def describe_file(path: str | os.PathLike[str]) -> FileDescription:
    """Describe a ``.safetensors``, ``.npz`` or ``.npy`` file without reading its tensors.

    The header and mxarray metadata are validated as :func:`mxarray.io.load` does.

    Examples
    --------
    >>> import numpy as np, mxarray, os, tempfile
    >>> from mxarray.io import save
    >>> from mxarray.io.describe import describe_file
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> save(path, {"w": mxarray.quantize(np.ones((2, 40), np.float32), "mxfp8_e4m3")})
    >>> [(t.name, t.kind, t.type, t.shape, t.nbytes) for t in describe_file(path).tensors]
    [('w', 'mx', 'mxfp8_e4m3', (2, 40), 132)]
    """
    with open_reader(path) as reader:
        records = {r.packed: r for r in mx_records(reader)}
        claimed = {t for r in records.values() for t, _, _ in r.storage}
        pairs = {b: (base, s) for base, (b, s) in gpt_oss_pairs(reader.entries).items()
                 if b not in claimed and s not in claimed}
        claimed |= {s for _, s in pairs.values()}
        ao = {d: (base, s, f) for base, (d, s, f) in torchao_pairs(reader.entries).items()
              if d not in claimed and s not in claimed}
        claimed |= {s for _, s, _ in ao.values()}
        tensors = []
        for name, info in reader.entries.items():
            if name in records:
                r = records[name]
                size = sum(reader.entries[t].nbytes for t, _, _ in r.storage)
                tensors.append(TensorDescription(
                    r.name, "mx", r.format.name, r.shape, r.block_axis, size,
                    f"rounding={r.rounding} scale_mode={r.scale_mode}"))
            elif name in pairs:
                base, scales = pairs[name]
                shape = info.shape[:-2] + (info.shape[-2] * MXFP4.block_size,)
                tensors.append(TensorDescription(
                    base, "gpt-oss", MXFP4.name, shape, len(shape) - 1,
                    info.nbytes + reader.entries[scales].nbytes,
                    f"NAME{name[len(base):]} + NAME{scales[len(base):]}"))
            elif name in ao:
                base, scales, fmt = ao[name]
                tensors.append(TensorDescription(
                    base, "torchao", fmt, info.shape, len(info.shape) - 1,
                    info.nbytes + reader.entries[scales].nbytes,
                    f"{name} + {scales}"))
            elif name not in claimed:
                tensors.append(TensorDescription(name, "dense", info.dtype, info.shape, None,
                                                 info.nbytes))
        metadata = {k: v for k, v in reader.metadata.items() if k != METADATA_KEY}
        return FileDescription(reader.path, reader.path.suffix.lstrip("."),
                               os.path.getsize(reader.path), metadata, tensors)
