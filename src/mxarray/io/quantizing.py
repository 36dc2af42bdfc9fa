"""Quantize the tensors of a file, each in bounded pieces: the engine of ``mxarray quantize``.

The output's layout is planned from the input's header alone (shapes of the packed
bytes and scales follow from each tensor's shape, the format and the block axis), so
the output is streamed.  Each tensor is walked in pieces of its canonical layout (block
axis last, consecutive blocks, :func:`mxarray.layout.pieces`): a piece is copied out of a
memory map of the input (``.safetensors`` and ``.npy``; an ``.npz`` member is read
whole), quantized, its packed bytes appended to the output, its error added to float64
sums, and dropped.  Memory therefore stays within the largest tensor's scales plus a
few pieces, whatever the tensor's size.  Stochastic rounding numbers each piece's blocks
as in the whole tensor, and a per-tensor scale (NVFP4) comes from a first pass over the
pieces, so the bytes are those of :func:`mxarray.quantize` on the whole tensor.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .. import layout
from .._random import check_seed
from ..backends import get_backend
from ..array import MXArray
from ..core import _check_scale_kind, _finite_amax, _quantize_with_ids
from ..formats import Format, check_rounding, check_scale_mode
from ..report import qsnr_of_sums
from ._container import TensorReader, TensorWriter, numpy_dtype
from ._files import mx_records, open_reader, open_writer, read_mx, storage_of
from ._metadata import METADATA_KEY, MXRecord, encode
from .selection import QUANTIZABLE_DTYPES, Selection, format_rules, nothing_quantized

__all__ = ["TensorSummary", "Settings", "quantize_file", "quantize_one_file", "plan_file",
           "QUANTIZABLE_DTYPES", "PIECE_ELEMENTS"]

PIECE_ELEMENTS = 1 << 20
"""Elements of one piece (4 MiB of float32); quantizing and measuring a piece takes about
20 bytes per element."""

Progress = Callable[[int, int, str], None]


@dataclasses.dataclass(frozen=True)
class TensorSummary:
    """What happened to one input tensor."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    format: str | None
    """The MX format of its output, or None for a dense tensor copied unchanged."""
    qsnr_db: float | None
    """None when the tensor was not quantized here or statistics were skipped."""
    bytes_before: int
    bytes_after: int
    note: str = ""
    quantized: bool = False
    """Whether this run quantized it (MX arrays of the input are carried, not quantized)."""


@dataclasses.dataclass(frozen=True)
class _Job:
    """One planned input tensor: ``record`` is None for a dense copy."""

    name: str
    action: str  # "quantize", "carry" or the reason it is copied
    record: MXRecord | None


def quantize_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    fmt: str | Format | None = None,
    *,
    formats: Mapping[str, str | Format] | Sequence[tuple[str, str | Format]] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    policy: bool = True,
    axis: int = -1,
    rounding: str = "even",
    scale_mode: str = "floor",
    seed: int = 0,
    positions: Mapping[str, int] | None = None,
    statistics: bool = True,
    backend: str | None = None,
    progress: Progress | None = None,
) -> list[TensorSummary]:
    """Quantize the selected floating tensors of ``src`` and save the result as ``dst``.

    ``src`` is a ``.safetensors``, ``.npz`` or ``.npy`` file; ``dst`` a ``.safetensors``
    or ``.npz`` file readable with :func:`mxarray.io.load`, not ``src`` itself.  Which
    tensors are quantized, and into which format, is decided as
    :mod:`mxarray.io.selection` describes; the others are copied unchanged, MX arrays
    already in ``src`` with their metadata, and ``src``'s other metadata is kept.  A
    tensor's QSNR is measured over the blocks that hold no inf or NaN (such a block
    dequantizes to NaN in full; the summary's note counts them), and is NaN when every
    block does.  Memory stays bounded by a few pieces of :data:`PIECE_ELEMENTS`
    elements plus the largest tensor's scales (an ``.npz`` member: plus that member).

    Parameters
    ----------
    fmt : str or Format, optional
        The format of every selected tensor that no pattern of ``formats`` names.
    formats : mapping or sequence of (pattern, format), optional
        Formats by glob pattern on tensor names; the first matching pattern wins.
    include, exclude : sequence of str, optional
        Glob patterns: only names matching an ``include`` pattern (if any is given) are
        quantized, and never a name matching an ``exclude`` pattern.
    policy : bool, optional
        Keep 1-D tensors, tensors whose block axis is shorter than one block and norm /
        bias / embedding / ``lm_head`` names in their input precision (default True;
        False quantizes every selected floating tensor).
    seed : int, optional
        With ``rounding="stochastic"``, tensor ``i`` uses seed ``seed + i``, where ``i``
        is its position in the file or, for a shard, ``positions[name]``.
    positions : mapping of str to int, optional
        Each tensor's position in the whole checkpoint (for a shard of one).
    statistics : bool, optional
        Measure each tensor's QSNR (default True); False skips the dequantization.
    progress : callable, optional
        Called as ``progress(i, n, name)`` before tensor ``i`` of ``n`` is processed.

    Returns
    -------
    list of TensorSummary
        One per input tensor (MX arrays of ``src`` count as one), in file order.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer or a pattern list is a string.
    ValueError
        If no tensor is selected for quantization (nor an MX array carried),
        ``seed`` is outside ``[0, 2**64)``,
        ``dst`` is ``src``, a suffix is unsupported, a file is malformed (MX arrays
        already in ``src`` are validated as :func:`~mxarray.io.load` validates them
        before they are copied), or a format does not take the rounding or scale mode.
        ``dst`` is then left as it was.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from mxarray.io import load, quantize_file
    >>> d = tempfile.mkdtemp()
    >>> np.savez(os.path.join(d, "in.npz"), w=np.ones((4, 64), np.float32),
    ...          norm=np.ones(64, np.float32), step=np.int64(3))
    >>> rows = quantize_file(os.path.join(d, "in.npz"), os.path.join(d, "out.npz"), "MXINT8")
    >>> [(r.name, r.format, r.bytes_before, r.bytes_after) for r in rows]
    [('w', 'mxint8', 1024, 264), ('norm', None, 256, 256), ('step', None, 8, 8)]
    >>> [r.note for r in rows]
    ['', '1-D (policy)', 'not floating']
    >>> sorted(load(os.path.join(d, "out.npz")))
    ['norm', 'step', 'w']
    """
    selection = Selection(format_rules(fmt, formats), include, exclude, policy)
    settings = Settings(axis, check_rounding(rounding), check_scale_mode(scale_mode),
                        check_seed(seed), statistics, backend)
    return quantize_one_file(src, dst, selection, settings, positions, progress)


@dataclasses.dataclass(frozen=True)
class Settings:
    """How :func:`quantize_one_file` quantizes the selected tensors (checked values)."""

    axis: int = -1
    rounding: str = "even"
    scale_mode: str = "floor"
    seed: int = 0
    statistics: bool = True
    backend: str | None = None


def plan_file(src: str | os.PathLike[str], selection: Selection, settings: Settings,
              positions: Mapping[str, int] | None = None) -> list[str]:
    """What :func:`quantize_one_file` would do with each tensor of ``src``, from its header
    alone: ``"quantize"``, ``"carry"`` (an MX array of the input) or why it is kept."""
    with open_reader(src) as reader:
        return [job.action for job in _plan(reader, selection, settings, positions)[0]]


def quantize_one_file(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                      selection: Selection, settings: Settings,
                      positions: Mapping[str, int] | None = None,
                      progress: Progress | None = None, *, require: bool = True
                      ) -> list[TensorSummary]:
    """:func:`quantize_file` with its arguments checked and gathered; ``require=False``
    (a shard of a checkpoint) writes ``dst`` even when no tensor of ``src`` is quantized."""
    if os.path.exists(dst) and os.path.samefile(src, dst):
        raise ValueError(f"the output {os.fspath(dst)} is the input file; write the quantized "
                         "tensors to another path (the input would be replaced)")
    with open_reader(src) as reader:
        jobs, records, entries = _plan(reader, selection, settings, positions)
        if require and not any(j.action in ("quantize", "carry") for j in jobs):
            raise ValueError(nothing_quantized(j.action for j in jobs))
        metadata = {**reader.metadata, METADATA_KEY: encode(records)}
        summaries = []
        with open_writer(dst, entries, metadata) as writer:
            for i, job in enumerate(jobs):
                if progress is not None:
                    progress(i, len(jobs), job.name)
                if job.record is None:
                    summaries.append(_copy(reader, writer, job.name, job.action))
                elif job.action == "carry":
                    summaries.append(_carry(reader, writer, job.record))
                else:
                    summaries.append(_quantize_one(reader, writer, job.record,
                                                   settings.backend, settings.statistics))
    return summaries


Entries = list[tuple[str, np.dtype, tuple[int, ...]]]


def _plan(reader: TensorReader, selection: Selection, settings: Settings,
          positions: Mapping[str, int] | None) -> tuple[list[_Job], list[MXRecord], Entries]:
    """What to do with each tensor, the MX records and the output's declared tensors."""
    carried = mx_records(reader)
    storage = {t for r in carried for t, _, _ in r.storage}
    carried_by_packed = {r.packed: r for r in carried}
    records, entries, jobs = list(carried), [], []
    for i, (name, info) in enumerate(reader.entries.items()):
        if name in storage:  # storage of an MX array of the input: declared as a pair
            if name in carried_by_packed:
                rec = carried_by_packed[name]
                entries += rec.storage
                jobs.append(_Job(rec.name, "carry", rec))
            continue
        fmt, ax, why = selection.choose(name, info, settings.axis)
        if fmt is None or ax is None:
            entries.append((name, numpy_dtype(info.dtype), info.shape))
            jobs.append(_Job(name, why, None))
            continue
        _check_scale_kind(fmt, settings.rounding, settings.scale_mode)
        position = i if positions is None else positions[name]
        seed = ((settings.seed + position) % 2**64 if settings.rounding == "stochastic"
                else None)
        rec = MXRecord.for_array(name, fmt, info.shape, ax, settings.scale_mode,
                                 settings.rounding, seed)
        records.append(rec)
        entries += rec.storage
        jobs.append(_Job(name, "quantize", rec))
    return jobs, records, entries


def _pieces_of(shape: tuple[int, ...], block_size: int
               ) -> Iterator[tuple[tuple[Any, ...], int, int]]:
    """The pieces of a canonical layout of ``shape`` (block axis last)."""
    return layout.pieces(shape, block_size, PIECE_ELEMENTS)


def _copy(reader: TensorReader, writer: TensorWriter, name: str, why: str) -> TensorSummary:
    """Copy a tensor that is not quantized, piece by piece."""
    info = reader.entries[name]
    source = None if reader.can_map(name) else reader.read(name)
    writer.start(name)
    for index, _, _ in _pieces_of(info.shape or (1,), 1):
        whole = reader.mapped(name) if source is None else source
        writer.append(np.array(whole.reshape(info.shape or (1,))[index]))
        del whole
    writer.end()
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


class _Error:
    """The float64 sums of a tensor's QSNR, accumulated piece by piece."""

    def __init__(self) -> None:
        self.signal = self.noise = 0.0
        self.counted = 0

    def add(self, x: np.ndarray, q: MXArray) -> None:
        """Add a piece ``x`` and its quantization ``q`` (an MXArray of the same shape)."""
        y = q.dequantize(np.float64 if x.dtype == np.float64 else np.float32)
        x64 = x.astype(np.float64)
        dropped = np.isnan(y)  # a block with an inf/nan input decodes to NaN in full
        self.counted += dropped.size - int(np.count_nonzero(dropped))
        dropped |= ~np.isfinite(x64)
        x64[dropped] = 0.0  # in place: no copy of the kept values
        y[dropped] = 0.0
        self.signal += float(np.dot(x64.reshape(-1), x64.reshape(-1)))
        x64 -= y
        self.noise += float(np.dot(x64.reshape(-1), x64.reshape(-1)))

    def qsnr(self) -> float:
        return qsnr_of_sums(self.signal, self.noise) if self.counted else float("nan")


def _quantize_one(reader: TensorReader, writer: TensorWriter, rec: MXRecord,
                  backend: str | None, statistics: bool) -> TensorSummary:
    """Quantize one tensor piece by piece, write its storage tensors, measure its QSNR."""
    info = reader.entries[rec.name]
    fmt, ax = rec.format, rec.block_axis
    moved_shape = layout.lead_shape(rec.shape, ax) + (rec.shape[ax],)
    source = None if reader.can_map(rec.name) else reader.read(rec.name)

    def piece(index: tuple) -> np.ndarray:
        whole = reader.mapped(rec.name) if source is None else source
        x = np.array(np.moveaxis(whole, ax, -1)[index])  # a copy: the map is dropped
        if x.dtype.name == "bfloat16":
            return x.astype(np.float32)  # exact: bfloat16 is the top half of a float32
        return x.astype(x.dtype.newbyteorder("="), copy=False)  # .npy may be big-endian

    cuts = list(_pieces_of(moved_shape, fmt.block_size))
    tensor_scale = None
    if fmt.tensor_scale != "none":  # the whole tensor's amax, as quantize finds it
        numpy_backend = get_backend("numpy")
        tensor_scale = float(fmt.tensor_scale_for(
            max(_finite_amax(piece(index), numpy_backend) for index, _, _ in cuts)))
    n_total = math.prod(layout.lead_shape(rec.shape, ax)) * layout.n_blocks(rec.shape[ax],
                                                                           fmt.block_size)
    scales = np.empty(n_total, np.uint8)
    error = _Error()
    writer.start(rec.packed)
    for index, first, count in cuts:
        x = piece(index)
        ids = np.arange(first, first + count, dtype=np.uint64) if rec.seed is not None else None
        q = _quantize_with_ids(x, fmt, ids, axis=-1, rounding=rec.rounding,
                               scale_mode=rec.scale_mode, seed=rec.seed, backend=backend,
                               tensor_scale=tensor_scale).to_device("cpu")
        writer.append(q.packed)
        scales[first:first + count] = np.asarray(q.scales).reshape(-1)
        if statistics:
            error.add(x, q)
        del x, q
    writer.end()
    lead = layout.lead_shape(rec.shape, ax)
    writer.write(rec.scales, np.moveaxis(scales.reshape(lead + (-1,)), -1, ax))
    if rec.tensor_scale is not None:
        writer.write(rec.tensor_scale, np.asarray(tensor_scale, dtype=np.float32))
    after = sum(math.prod(shape) * dtype.itemsize for _, dtype, shape in rec.storage)
    nan_blocks = int(np.count_nonzero(scales == fmt.scale.nan_code))
    note = f"{nan_blocks} NaN block(s) (inf/nan input)" if nan_blocks else ""
    return TensorSummary(rec.name, info.dtype, rec.shape, fmt.name,
                         error.qsnr() if statistics else None, info.nbytes, after, note, True)
