"""Reproduce the MX papers' model-level claims on a small MLP and scikit-learn's digits.

Trains a 64-128-128-10 MLP with FP32 and with MX GEMMs (forward, grad-input and
grad-weight, every operand blocked along its reduction axis, float32 master weights),
casts the FP32 models directly to every built-in block format, and sets each result
beside the papers' qualitative claims.  Writes ``results.json``, ``direct_cast.png``,
``training.png`` and the tables as Markdown text (``*.txt``) into ``--out``::

    python examples/mx_papers.py --out docs/_static/papers

Needs scikit-learn (the data set) and matplotlib (the figures).  See
docs/tutorial_papers.md.
"""

# ruff: noqa: E402 - the imports below come after the BLAS thread setting

from __future__ import annotations

import os

# The network's matrices are tiny: one BLAS thread is fastest, and several threads on a
# busy machine slow every float32 GEMM down many times (set before NumPy loads BLAS).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from array_api_compat import array_namespace

import mxarray as mx
from papers import claims, figures
from papers.data import load_digits_split
from papers.experiments import (DIRECT_CAST_FORMATS, Setup, direct_cast, same_code_three_inputs,
                                train, training_recipes)
from papers.mlp import FP32, Recipe


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/_static/papers"),
                   help="folder for results.json, the figures and the tables")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of the training runs (initial weights, batch order)")
    p.add_argument("--epochs", type=int, default=Setup.epochs)
    p.add_argument("--backend", default=None,
                   help="mxarray backend for the MX GEMMs (default: mxarray's default)")
    p.add_argument("--namespace", choices=("mxarray", "numpy"), default="mxarray",
                   help="array namespace the network's arrays live in")
    p.add_argument("--device", default=None,
                   help="device of the arrays for --namespace mxarray, e.g. cuda:0")
    return p.parse_args(argv)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("mxarray", "numpy", "numba", "scikit-learn", "array-api-compat",
                 "matplotlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _tables(cast: dict[str, Any], trained: dict[str, Any], rows: list[dict[str, str]],
            formats: dict[str, dict[str, str]]) -> dict[str, str]:
    """The Markdown tables the tutorial page includes."""
    cast_md = _markdown(
        ["format", "bits per element", "test accuracy (%)", "change (pp)", "logit QSNR (dB)"],
        [[n, "32" if n == "FP32" else f"{mx.get_format(n).bits_per_element:g}",
          f"{100 * c['accuracy']:.2f}", f"{0.0 - c['drop_pp']:+.2f}",
          "—" if n == "FP32" else f"{c['qsnr_db']:.1f}"] for n, c in cast.items()])
    train_md = _markdown(
        ["recipe", "W / A / G formats", "final test accuracy (%)", "spread (pp)",
         "final training loss", "seconds per run", "CPU seconds per run"],
        [[n, " / ".join(formats[n].values()), f"{t['final_accuracy_pct']:.2f}",
          f"{t['accuracy_std_pp']:.2f}", f"{t['final_train_loss']:.4f}",
          f"{t['seconds_per_run']:.1f}", f"{t['cpu_seconds_per_run']:.1f}"]
         for n, t in trained.items()])
    claims_md = _markdown(["paper", "claim", "result here", "verdict"],
                          [[r["paper"], r["claim"], r["result"], r["verdict"]] for r in rows])
    return {"direct_cast.txt": cast_md, "training.txt": train_md, "claims.txt": claims_md}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every experiment; returns the results that ``results.json`` holds."""
    xp = mx if args.namespace == "mxarray" else array_namespace(np.zeros(1))
    setup = Setup(epochs=args.epochs)
    split = load_digits_split()
    kw = {} if args.device is None else {"device": args.device}
    runs, casts, formats, same_code = [], [], {}, None
    for recipe in training_recipes():
        formats[recipe.name] = recipe.formats()
        for seed in args.seeds:
            result = train(split, recipe, seed, setup, xp, args.device)
            print(f"{recipe.name:26s} seed {seed}: test accuracy "
                  f"{100 * result.test_accuracy[-1]:.2f} %, {result.seconds:.1f} s", flush=True)
            runs.append(result.record())
            if recipe is FP32:
                casts.append(direct_cast(result.state, xp.asarray(split.x_test, **kw),
                                         xp.asarray(split.y_test, **kw), DIRECT_CAST_FORMATS))
                if same_code is None and args.device is None and args.namespace == "mxarray":
                    same_code = [same_code_three_inputs(result.state, split, r)
                                 for r in (FP32, Recipe.uniform("MXFP8 E4M3", "mxfp8_e4m3"))]
    cast = claims.summarize_cast(casts)
    trained = claims.summarize_training(runs)
    return {"setup": {**setup.__dict__, "seeds": args.seeds, "namespace": args.namespace,
                      "device": args.device or "cpu", "backend": mx.get_backend().name,
                      "data": f"sklearn.datasets.load_digits, {len(split.y_train)} train / "
                              f"{len(split.y_test)} test, seed 0"},
            "environment": {**_versions(), "cpus": os.cpu_count(),
                            "machine": platform.machine()},
            "direct_cast": {"per_seed": casts, "mean": cast},
            "training": {"runs": runs, "summary": trained, "formats": formats},
            "same_code_three_inputs": same_code,
            "claims": claims.verdicts(cast, trained)}


def main(argv: list[str] | None = None) -> int:
    """Run everything and write the results, figures and tables into ``--out``."""
    args = _parse(argv)
    load_at_start = round(os.getloadavg()[0], 2)  # other work on the machine slows the runs
    start = time.perf_counter()
    if args.backend is not None:
        mx.set_backend(args.backend)
    results = run(args)
    results["environment"]["load_average_1min_at_start"] = load_at_start
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    results["environment"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    figures.plot_direct_cast(results["direct_cast"]["mean"], args.out / "direct_cast.png")
    figures.plot_training(results["training"]["runs"], args.out / "training.png")
    tables = _tables(results["direct_cast"]["mean"], results["training"]["summary"],
                     results["claims"], results["training"]["formats"])
    for name, text in tables.items():
        (args.out / name).write_text(text)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(tables["claims.txt"])
    print(f"total {results['total_seconds']} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
