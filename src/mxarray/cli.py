"""The ``mxarray`` command line: ``report``, ``quantize`` and ``inspect``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from . import __version__
from .backends import get_backend
from .datasets import DATASETS, SEED, make_dataset
from .formats import BLOCK_FORMATS, ROUNDING_MODES, SCALE_MODES, get_format
from ._random import check_seed
from .io import describe_file
from .io._files import open_reader
from .io.quantizing import Settings, TensorSummary, quantize_one_file
from .io.selection import Selection, format_rules
from .io.sharded import INDEX_NAME, quantize_checkpoint
from .report import evaluate, format_table, table

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mxarray", description="Microscaling (MX) block formats: inspect what they do."
    )
    parser.add_argument("--version", action="version", version=f"mxarray {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "report",
        help="quantize data into every MX format and print accuracy and speed",
        description="Quantize built-in data (or a .npy file) into every MX format and print "
        "bits per element, compression, QSNR, max relative error, saturation and throughput.",
    )
    rep.add_argument("--input", type=Path, help="a .npy file of float16/32/64 values")
    rep.add_argument(
        "--data", choices=list(DATASETS), action="append",
        help="built-in dataset(s) (default: all); ignored with --input",
    )
    rep.add_argument("--format", dest="formats", type=_format_name, action="append",
                     metavar="FORMAT", help="format(s) to evaluate, any case (default: all; "
                     f"{', '.join(BLOCK_FORMATS)})")
    rep.add_argument("--backend", help="backend name (default: the best available)")
    rep.add_argument("--axis", type=int, default=-1, help="block axis (default: -1)")
    rep.add_argument("--rounding", choices=ROUNDING_MODES, default="even")
    rep.add_argument("--scale-mode", choices=SCALE_MODES, default="floor")
    rep.add_argument("--size", type=int, default=1 << 20,
                     help="elements per built-in dataset (default: 1048576)")
    rep.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    rep.add_argument("--json", type=Path, help="also write the results as JSON to this path")

    qua = sub.add_parser(
        "quantize",
        help="quantize the floating tensors of a .safetensors, .npz or .npy file",
        description="Quantize the float16/bfloat16/float32/float64 tensors of IN into MX "
        "formats, tensor by tensor in bounded pieces, and write a self-describing "
        ".safetensors or .npz file (read it back with mxarray.io.load).  By default 1-D "
        "tensors, tensors whose block axis is shorter than one block and norm / bias / "
        "embedding / lm_head names stay in their input precision (--all quantizes them "
        "too); other tensors are copied unchanged.",
    )
    qua.add_argument("input", type=Path, metavar="IN",
                     help="a .safetensors, .npz or .npy file, or a sharded checkpoint: a "
                     f"directory holding {INDEX_NAME} and its shards")
    qua.add_argument("-f", "--format", dest="formats", required=True, action="append",
                     type=_format_rule, metavar="[PATTERN=]FORMAT",
                     help="the MX format (any case), or PATTERN=FORMAT for the tensors whose "
                     "names match the glob PATTERN; repeat it, the first match wins "
                     f"(formats: {', '.join(BLOCK_FORMATS)})")
    qua.add_argument("-o", "--output", required=True, type=Path,
                     help="the output file (.safetensors or .npz), or directory for a "
                     "sharded checkpoint")
    qua.add_argument("--include", action="append", default=[], metavar="PATTERN",
                     help="quantize only tensors whose names match this glob (repeatable)")
    qua.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                     help="never quantize tensors whose names match this glob (repeatable; "
                     "wins over --include)")
    qua.add_argument("--all", dest="policy", action="store_false",
                     help="quantize every selected floating tensor: no default policy")
    qua.add_argument("--axis", type=int, default=-1,
                     help="block axis of every tensor (default: -1); tensors without it "
                     "are copied")
    qua.add_argument("--rounding", choices=ROUNDING_MODES, default="even")
    qua.add_argument("--scale-mode", choices=SCALE_MODES, default="floor")
    qua.add_argument("--seed", type=int, default=0,
                     help="stochastic rounding: tensor i of the file uses seed + i (default: 0)")
    qua.add_argument("--no-stats", dest="statistics", action="store_false",
                     help="skip the QSNR statistics (no dequantization: faster)")
    qua.add_argument("--backend", help="backend name (default: the best available)")
    qua.add_argument("--workers", type=int,
                     help="sharded checkpoints: local worker processes (default: one per "
                     "shard, at most the CPU count; 1: in this process)")
    qua.add_argument("--scheduler", metavar="ADDRESS",
                     help="sharded checkpoints: quantize the shards on the Dask cluster of "
                     "this scheduler (tcp://host:port); its workers must see IN and -o")

    ins = sub.add_parser("inspect", help="print what a file holds",
                         description="List the tensors of a .safetensors, .npz or .npy file: "
                         "MX arrays (mxarray metadata or gpt-oss _blocks/_scales pairs) and "
                         "dense tensors, from the header alone.")
    ins.add_argument("file", type=Path, metavar="FILE")
    return parser


def _format_name(text: str) -> str:
    """A format name as given on the command line (any case), checked."""
    try:
        return get_format(text.strip()).name
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown format {text!r}; choose from {', '.join(BLOCK_FORMATS)}") from None


def _format_rule(text: str) -> tuple[str, str]:
    """``--format`` as a ``(pattern, format name)`` rule: ``FORMAT`` alone is ``*=FORMAT``."""
    pattern, _, name = text.rpartition("=")
    return pattern or "*", _format_name(name)


def _load_input(path: Path) -> np.ndarray:
    """The array of a ``.npy`` file, its header checked against the file's size first."""
    if path.suffix != ".npy":
        raise ValueError(f"--input must be a .npy file, got {path}")
    with open_reader(path) as reader:
        [name] = reader.entries
        return reader.read(name)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file."""
    return a.exists() and b.exists() and a.samefile(b)


def _shown(text: object) -> str:
    """``text`` for a terminal: control and other unprintable characters escaped, so a
    name read from a file cannot move the cursor, retitle the window or break a line."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


def _report(args: argparse.Namespace) -> int:
    if args.size < 1:
        raise ValueError("--size must be positive")
    if args.repeats < 1:
        raise ValueError("--repeats must be positive")
    if args.input is not None and args.json is not None and _same_file(args.input, args.json):
        raise ValueError(f"--json {args.json} is the input file; write the results to "
                         "another path (the input would be replaced)")
    backend = get_backend(args.backend)
    if args.input is not None:
        inputs = {str(args.input): _load_input(args.input)}
    else:
        names = args.data or list(DATASETS)
        inputs = {name: make_dataset(name, (args.size,)) for name in names}
    results = {}
    for name, x in inputs.items():
        rows = evaluate(
            x, args.formats, axis=args.axis, rounding=args.rounding,
            scale_mode=args.scale_mode, backend=backend.name, repeats=args.repeats,
        )
        label = DATASETS[name][0] if name in DATASETS else _shown(name)
        print(f"\n{label}: {x.size} values, {x.dtype}, shape {x.shape}, backend {backend.name}, "
              f"rounding {args.rounding}, scale mode {args.scale_mode}")
        print(format_table(rows))
        skipped = [f for f in list(BLOCK_FORMATS) if args.formats is None
                   and f not in {r.format for r in rows}]
        if skipped:
            print(f"not shown: {', '.join(skipped)} (no rounding {args.rounding!r} or scale "
                  f"mode {args.scale_mode!r})")
        results[name] = [dataclasses.asdict(r) for r in rows]
    if args.json is not None:
        payload = {
            "mxarray_version": __version__,
            "backend": backend.name,
            "rounding": args.rounding,
            "scale_mode": args.scale_mode,
            "seed": SEED,
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {_shown(args.json)}")
    return 0


def _progress(i: int, n: int, name: str) -> None:
    """A one-line progress indicator on stderr, drawn only on a terminal."""
    if sys.stderr.isatty():
        line = f"[{i + 1}/{n}] {_shown(name)}"
        sys.stderr.write("\r" + line[:78].ljust(78) + ("\n" if i + 1 == n else ""))
        sys.stderr.flush()


def _summary(rows: list[TensorSummary]) -> str:
    body = [[_shown(r.name), r.dtype, str(r.shape), r.format or "kept",
             "" if r.qsnr_db is None else f"{r.qsnr_db:.2f}", f"{r.bytes_before:,}",
             f"{r.bytes_after:,}", r.note] for r in rows]
    before = sum(r.bytes_before for r in rows)
    after = sum(r.bytes_after for r in rows)
    ratio = ("" if not (before and after) else f"{before / after:.2f}x smaller"
             if after <= before else f"{after / before:.2f}x larger")
    body.append(["total", "", "", "", "", f"{before:,}", f"{after:,}", ratio])
    headers = ["tensor", "dtype", "shape", "format", "QSNR dB", "bytes before", "bytes after",
               "note"]
    return table(headers, body, right=("QSNR dB", "bytes before", "bytes after"))


def _quantize(args: argparse.Namespace) -> int:
    selection = Selection(format_rules(None, args.formats), tuple(args.include),
                          tuple(args.exclude), args.policy)
    settings = Settings(args.axis, args.rounding, args.scale_mode, check_seed(args.seed),
                        args.statistics, args.backend)
    sharded = args.input.is_dir() or args.input.name.endswith(".index.json")
    if sharded:
        rows = quantize_checkpoint(args.input, args.output, selection, settings,
                                   workers=args.workers, scheduler=args.scheduler,
                                   progress=_progress)
    else:
        rows = quantize_one_file(args.input, args.output, selection, settings,
                                 progress=_progress)
    print(_summary(rows))
    done = sum(r.quantized for r in rows)
    print(f"\nwrote {_shown(args.output)}: {done} of {len(rows)} tensors quantized "
          f"(rounding {args.rounding}, scale mode {args.scale_mode}, block axis {args.axis})")
    print(f"selection: {_shown(selection.describe())}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    d = describe_file(args.file)
    print(f"{_shown(d.path)}: {d.container}, {d.file_bytes:,} bytes, {len(d.tensors)} tensor(s)")
    for key, value in d.metadata.items():
        print(f"metadata {_shown(key)}: {_shown(value)}")
    rows = [[_shown(t.name), t.kind, t.type, str(t.shape),
             "" if t.block_axis is None else str(t.block_axis), f"{t.nbytes:,}", t.details]
            for t in d.tensors]
    print(table(["tensor", "kind", "type", "shape", "block axis", "bytes", "details"], rows,
                 right=("block axis", "bytes")))
    return 0


_COMMANDS = {"report": _report, "quantize": _quantize, "inspect": _inspect}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status.

    0 on success; 2 for a usage error (argparse prints it); 1 when the command fails on
    its input (a missing or malformed file, an unknown backend, too little memory, no
    tensor to quantize): one line on stderr naming the command and the cause, and no
    output file left behind; 130 after Ctrl-C, with one line and no output file.
    """
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"mxarray {args.command}: interrupted (no output written)", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError, ImportError, MemoryError) as exc:
        why = str(exc) or type(exc).__name__
        print(f"mxarray {args.command}: error: {_shown(' '.join(why.split()))}",
              file=sys.stderr)
        return 1
