"""The ``mxarray`` command line: ``mxarray report`` (more subcommands come later)."""

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
from .formats import FORMATS, ROUNDING_MODES, SCALE_MODES
from .report import evaluate, format_table

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
    rep.add_argument("--format", dest="formats", choices=list(FORMATS), action="append",
                     help="format(s) to evaluate (default: all)")
    rep.add_argument("--backend", help="backend name (default: the best available)")
    rep.add_argument("--axis", type=int, default=-1, help="block axis (default: -1)")
    rep.add_argument("--rounding", choices=ROUNDING_MODES, default="even")
    rep.add_argument("--scale-mode", choices=SCALE_MODES, default="floor")
    rep.add_argument("--size", type=int, default=1 << 20,
                     help="elements per built-in dataset (default: 1048576)")
    rep.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    rep.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    return parser


def _load_input(path: Path) -> np.ndarray:
    if path.suffix != ".npy":
        raise ValueError(f"--input must be a .npy file, got {path}")
    return np.load(path, allow_pickle=False)


def _report(args: argparse.Namespace) -> int:
    if args.size < 1:
        raise ValueError("--size must be positive")
    if args.repeats < 1:
        raise ValueError("--repeats must be positive")
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
        label = DATASETS[name][0] if name in DATASETS else name
        print(f"\n{label}: {x.size} values, {x.dtype}, shape {x.shape}, backend {backend.name}, "
              f"rounding {args.rounding}, scale mode {args.scale_mode}")
        print(format_table(rows))
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
        print(f"\nwrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        return _report(args)
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        print(f"mxarray {args.command}: error: {exc}", file=sys.stderr)
        return 2
