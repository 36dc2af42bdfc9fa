"""Sharded checkpoints: a directory of ``.safetensors`` shards and the index that maps each
tensor to its shard (``model.safetensors.index.json``, as Hugging Face ships every large
model), quantized shard by shard into a new directory with its own index.

The index is JSON ``{"metadata": {...}, "weight_map": {TENSOR: SHARD FILE}}``.  Each
shard is quantized on its own by :func:`mxarray.io.quantizing.quantize_one_file`, so
memory per process stays bounded as for one file, and the shards run in parallel: in
local worker processes, or as tasks on a Dask cluster given its scheduler address.  A
tensor's stochastic-rounding seed is ``seed`` plus its position in the index's
``weight_map``, so the bytes do not depend on how the work is spread.  The output index
maps every output tensor (an MX array's ``NAME.mx_packed`` and ``NAME.mx_scales``
included) to its shard; its ``metadata`` keeps the input's and sets ``total_size`` to
the bytes of tensor data written.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ._container import make_partial, remove_stale_partials, strict_json_object
from ._files import open_reader
from .quantizing import Settings, TensorSummary, plan_file, quantize_one_file
from .selection import Selection, nothing_quantized

__all__ = ["INDEX_NAME", "read_index", "quantize_checkpoint"]

INDEX_NAME = "model.safetensors.index.json"
"""The index file of a sharded checkpoint directory."""

ShardProgress = Callable[[int, int, str], None]


def read_index(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a sharded checkpoint's index: its ``metadata`` and ``weight_map``.

    ``path`` is the index file or the directory holding :data:`INDEX_NAME`.

    Raises
    ------
    ValueError
        If the index is not JSON of that shape, or a shard name is not a plain
        ``.safetensors`` file name in the index's directory.
    OSError
        If it cannot be read.
    """
    path = Path(path)
    index = path / INDEX_NAME if path.is_dir() else path
    try:
        doc = json.loads(index.read_text(encoding="utf-8"), object_pairs_hook=strict_json_object)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{index}: not a valid checkpoint index: {exc}") from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    metadata = doc.get("metadata", {}) if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not isinstance(metadata, dict):
        raise ValueError(f"{index}: not a valid checkpoint index: it needs a non-empty "
                         "'weight_map' object (and optionally a 'metadata' object)")
    for name, shard in weight_map.items():
        if (not isinstance(shard, str) or Path(shard).name != shard
                or not shard.endswith(".safetensors")):
            raise ValueError(f"{index}: tensor {name!r} maps to {shard!r}, not a .safetensors "
                             "file beside the index")
    return metadata, weight_map


def _shard_job(src: str, dst: str, rules: list[tuple[str, str]], include: tuple[str, ...],
               exclude: tuple[str, ...], policy: bool, settings: Settings,
               positions: dict[str, int]) -> list[TensorSummary]:
    """Quantize one shard (run in a worker: every argument pickles, formats by name)."""
    from .selection import format_rules

    selection = Selection(format_rules(None, rules), include, exclude, policy)
    return quantize_one_file(src, dst, selection, settings, positions, require=False)


def quantize_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    selection: Selection,
    settings: Settings,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ShardProgress | None = None,
) -> list[TensorSummary]:
    """Quantize a sharded checkpoint directory into ``dst``, shard by shard.

    Parameters
    ----------
    src : str or path
        A directory holding :data:`INDEX_NAME` and its shards (or the index file).
    dst : str or path
        The output directory (created if missing; not ``src``).  Its shards take the
        input shards' names, beside a new :data:`INDEX_NAME`.
    selection, settings
        What to quantize and how, as for :func:`mxarray.io.quantize_file`.
    workers : int, optional
        Local worker processes (default: one per shard, at most the CPU count); 0 or 1
        quantizes in this process.  Ignored with ``scheduler``.
    scheduler : str, optional
        The address of a running Dask scheduler (``tcp://host:8786``): each shard is a
        task on its workers, which must see ``src`` and ``dst`` at the same paths
        (needs the ``dask`` extra).
    progress : callable, optional
        Called as ``progress(i, n, shard)`` when shard ``i`` of ``n`` is done.

    Returns
    -------
    list of TensorSummary
        Per input tensor, in the order of the index's ``weight_map``.

    Raises
    ------
    ValueError
        If the index is malformed, names a tensor its shard lacks, no tensor is selected,
        ``workers`` is negative, or ``dst`` is ``src``; nothing is left in ``dst`` then.
    """
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    src_dir = Path(src) if Path(src).is_dir() else Path(src).parent
    out = Path(dst)
    metadata, weight_map = read_index(src)
    if out.exists() and out.resolve() == src_dir.resolve():
        raise ValueError(f"the output {out} is the input directory; write the quantized "
                         "checkpoint to another directory (its shards would be replaced)")
    shards = list(dict.fromkeys(weight_map.values()))
    positions = {name: i for i, name in enumerate(weight_map)}
    actions = []
    for shard in shards:
        with open_reader(src_dir / shard) as reader:
            missing = [n for n, s in weight_map.items() if s == shard and n not in reader.entries]
            if missing:
                raise ValueError(f"{src_dir / shard}: the index places tensor(s) {missing[:3]} "
                                 "here, but the shard lacks them")
            unknown = sorted(set(reader.entries) - set(positions))
            if unknown:
                raise ValueError(f"{src_dir / shard}: tensor(s) {unknown[:3]} are not in the "
                                 "index")
        actions += plan_file(src_dir / shard, selection, settings, positions)
    if not any(a in ("quantize", "carry") for a in actions):
        raise ValueError(nothing_quantized(actions))
    out.mkdir(parents=True, exist_ok=True)
    rules = [(p, f.name) for p, f in selection.rules]
    args = [(os.fspath(src_dir / shard), os.fspath(out / shard), rules, selection.include,
             selection.exclude, selection.policy, settings,
             {n: positions[n] for n, s in weight_map.items() if s == shard})
            for shard in shards]
    written: list[Path] = []
    try:
        results = _run(args, workers, scheduler, progress, written)
        _write_index(out, metadata, shards)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    rows = [row for shard_rows in results for row in shard_rows]
    return sorted(rows, key=lambda r: positions.get(r.name, len(positions)))  # index order


def _run(args: list[tuple], workers: int | None, scheduler: str | None,
         progress: ShardProgress | None, written: list[Path]) -> list[list[TensorSummary]]:
    """Run the shard jobs; ``written`` collects the shards done (removed on failure)."""
    results: list[list[TensorSummary] | None] = [None] * len(args)

    def done(i: int, rows: list[TensorSummary]) -> None:
        results[i] = rows
        written.append(Path(args[i][1]))
        if progress is not None:
            progress(sum(r is not None for r in results) - 1, len(args), Path(args[i][0]).name)

    if scheduler is not None:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise ImportError("--scheduler needs dask.distributed: pip install "
                              "'mxarray[dask]'") from None
        with Client(scheduler) as client:
            futures = [client.submit(_shard_job, *a, pure=False) for a in args]
            order = {f.key: i for i, f in enumerate(futures)}
            for future in as_completed(futures):
                done(order[future.key], future.result())
    elif len(args) == 1 or (workers is not None and workers <= 1):
        for i, a in enumerate(args):
            done(i, _shard_job(*a))
    else:
        count = workers if workers is not None else min(len(args), os.cpu_count() or 1)
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        threads = max(1, (os.cpu_count() or 1) // count)
        with concurrent.futures.ProcessPoolExecutor(count, mp_context=context,
                                                    initializer=_share_cores,
                                                    initargs=(threads,)) as pool:
            futures = {pool.submit(_shard_job, *a): i for i, a in enumerate(args)}
            try:
                for future in concurrent.futures.as_completed(futures):
                    done(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return [r for r in results if r is not None]


def _share_cores(threads: int) -> None:
    """Let a worker process's Numba kernels use ``threads`` threads, so that the workers
    together do not run more threads than the machine has cores."""
    try:
        import numba
    except ImportError:  # the NumPy backend runs single-threaded anyway
        return
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _write_index(out: Path, metadata: Mapping[str, Any], shards: Sequence[str]) -> None:
    """Write the output index (atomically): every output tensor mapped to its shard."""
    weight_map: dict[str, str] = {}
    total = 0
    for shard in shards:
        with open_reader(out / shard) as reader:
            for name, info in reader.entries.items():
                weight_map[name] = shard
                total += info.nbytes
    doc = {"metadata": {**metadata, "total_size": total}, "weight_map": weight_map}
    remove_stale_partials(out / INDEX_NAME)
    tmp = make_partial(out / INDEX_NAME)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, out / INDEX_NAME)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

