"""Quantize every floating tensor of a file, one tensor at a time: the engine of
``mxarray quantize``.

The output's layout is planned from the input's header alone (shapes of the packed
bytes and scales follow from each tensor's shape, the format and the block axis), so
the output is streamed: one input tensor is read, quantized, written and dropped before
the next, and memory stays bounded by a small multiple of the largest tensor.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

from .._random import check_seed
from ..core import quantize
from ..formats import check_rounding, check_scale_mode, get_format
from ..report import qsnr_db
from ._container import TensorInfo, TensorReader, TensorWriter
from ._files import mx_records, open_reader, open_writer, read_mx, storage_of
from ._metadata import METADATA_KEY, MXRecord, encode

__all__ = ["TensorSummary", "quantize_file", "QUANTIZABLE_DTYPES"]

QUANTIZABLE_DTYPES = ("float16", "bfloat16", "float32", "float64")
"""Input dtypes that are quantized (bfloat16 is widened to float32 exactly first)."""


@dataclasses.dataclass(frozen=True)
class TensorSummary:
    """What happened to one input tensor."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    format: str | None
    """The MX format of its output, or None for a dense tensor copied unchanged."""
    qsnr_db: float | None
    bytes_before: int
    bytes_after: int
    note: str = ""


def _plan(info: TensorInfo, axis: int) -> tuple[int | None, str]:
    """The block axis to quantize a tensor along, or None and why it is kept."""
    if info.dtype not in QUANTIZABLE_DTYPES:
        return None, "not floating"
    if not info.shape:
        return None, "0-d"
    if not -len(info.shape) <= axis < len(info.shape):
        return None, f"no axis {axis}"
    if 0 in info.shape:
        return None, "empty"
    return axis % len(info.shape), ""


def quantize_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    fmt: str,
    *,
    axis: int = -1,
    rounding: str = "even",
    scale_mode: str = "floor",
    seed: int = 0,
    backend: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[TensorSummary]:
    """Quantize every floating tensor of ``src`` into ``fmt`` and save the result as ``dst``.

    ``src`` is a ``.safetensors``, ``.npz`` or ``.npy`` file; ``dst`` a ``.safetensors``
    or ``.npz`` file readable with :func:`mxarray.io.load`, not ``src`` itself.  Tensors
    that are not float16/bfloat16/float32/float64, are 0-d or empty, or have no axis
    ``axis`` are copied unchanged; MX arrays already in ``src`` are copied with their
    metadata.  A tensor's QSNR is measured over the blocks that hold no inf or NaN (such a
    block dequantizes to NaN in full; the summary's note counts them), and is NaN when
    every block does.

    Parameters
    ----------
    seed : int, optional
        With ``rounding="stochastic"``, tensor ``i`` (in file order) uses seed ``seed + i``.
    progress : callable, optional
        Called as ``progress(i, n, name)`` before tensor ``i`` of ``n`` is processed.

    Returns
    -------
    list of TensorSummary
        One per input tensor (MX arrays of ``src`` count as one), in file order.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer.
    ValueError
        If ``seed`` is outside ``[0, 2**64)``, ``dst`` is ``src``, a suffix is unsupported,
        a file is malformed (MX arrays already in ``src`` are validated as
        :func:`~mxarray.io.load` validates them before they are copied), or the format does
        not take the rounding or scale mode.  ``dst`` is then left as it was.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from mxarray.io import load
    >>> from mxarray.io.quantize_file import quantize_file
    >>> d = tempfile.mkdtemp()
    >>> np.savez(os.path.join(d, "in.npz"), w=np.ones((4, 64), np.float32), step=np.int64(3))
    >>> rows = quantize_file(os.path.join(d, "in.npz"), os.path.join(d, "out.npz"), "mxint8")
    >>> [(r.name, r.format, r.bytes_before, r.bytes_after) for r in rows]
    [('w', 'mxint8', 1024, 264), ('step', None, 8, 8)]
    >>> sorted(load(os.path.join(d, "out.npz")))
    ['step', 'w']
    """
    fmt_obj = get_format(fmt)
    check_rounding(rounding)
    check_scale_mode(scale_mode)
    seed = check_seed(seed)
    if os.path.exists(dst) and os.path.samefile(src, dst):
        raise ValueError(f"the output {os.fspath(dst)} is the input file; write the quantized "
                         "tensors to another path (the input would be replaced)")
    with open_reader(src) as reader:
        carried = mx_records(reader)
        storage = {t for r in carried for t, _, _ in r.storage}
        carried_by_packed = {r.packed: r for r in carried}
        records, entries = list(carried), []
        jobs: list[tuple[str, str, MXRecord | None]] = []  # (action, name, record)
        for i, (name, info) in enumerate(reader.entries.items()):
            if name in storage:  # storage of an MX array of the input: declared as a pair
                if name in carried_by_packed:
                    rec = carried_by_packed[name]
                    entries += rec.storage
                    jobs.append(("carry", name, rec))
                continue
            ax, note = _plan(info, axis)
            if ax is None:
                entries.append((name, np.dtype(info.dtype), info.shape))
                jobs.append((note, name, None))
                continue
            rec = MXRecord.for_array(name, fmt_obj, info.shape, ax, scale_mode, rounding,
                                     (seed + i) % 2**64 if rounding == "stochastic" else None)
            records.append(rec)
            entries += rec.storage
            jobs.append(("quantize", name, rec))
        summaries = []
        with open_writer(dst, entries, {METADATA_KEY: encode(records)}) as writer:
            for i, (action, name, rec) in enumerate(jobs):
                if progress is not None:
                    progress(i, len(jobs), name)
                if rec is None:
                    summaries.append(_copy(reader, writer, name, action))
                elif action == "carry":
                    summaries.append(_carry(reader, writer, rec))
                else:
                    summaries.append(_quantize_one(reader, writer, rec, backend))
    return summaries


def _copy(reader: TensorReader, writer: TensorWriter, name: str, why: str) -> TensorSummary:
    """Copy a tensor that is not quantized."""
    info = reader.entries[name]
    writer.write(name, reader.read(name))
    return TensorSummary(name, info.dtype, info.shape, None, None, info.nbytes, info.nbytes,
                         why)


def _carry(reader: TensorReader, writer: TensorWriter, rec: MXRecord) -> TensorSummary:
    """Copy an MX array that the input already holds, validated as load validates it."""
    parts = storage_of(read_mx(reader, rec))
    size = 0
    for (n, _, _), part in zip(rec.storage, parts, strict=True):
        writer.write(n, part)
        size += part.nbytes
    return TensorSummary(rec.name, "uint8", rec.shape, rec.format.name, None, size, size,
                         "already MX")


def _quantize_one(reader: TensorReader, writer: TensorWriter, rec: MXRecord,
                  backend: str | None) -> TensorSummary:
    """Quantize one tensor, write its two storage tensors, measure its QSNR."""
    x = reader.read(rec.name)
    dtype = x.dtype.name
    before = x.nbytes
    if dtype == "bfloat16":
        x = x.astype(np.float32)  # exact: bfloat16 is the top half of a float32
    x = x.astype(x.dtype.newbyteorder("="), copy=False)  # .npy files may be big-endian
    q = quantize(x, rec.format, axis=rec.block_axis, rounding=rec.rounding,
                 scale_mode=rec.scale_mode, seed=rec.seed, backend=backend).to_device("cpu")
    parts = storage_of(q)
    for (n, _, _), part in zip(rec.storage, parts, strict=True):
        writer.write(n, part)
    y = q.dequantize(np.float64 if dtype == "float64" else np.float32)
    nan_blocks = int(np.count_nonzero(np.asarray(q.scales) == q.format.scale.nan_code))
    note = f"{nan_blocks} NaN block(s) (inf/nan input)" if nan_blocks else ""
    kept = ~np.isnan(y)  # a block with an inf/nan input decodes to NaN in full
    qsnr = qsnr_db(x[kept], y[kept]) if kept.any() else float("nan")
    return TensorSummary(rec.name, dtype, rec.shape, rec.format.name, qsnr, before,
                         sum(p.nbytes for p in parts), note)
