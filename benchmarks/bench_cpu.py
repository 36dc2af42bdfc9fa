"""CPU benchmark: quantize, dequantize and MX matmul against same-run baselines.

Measures, in one run: ``np.copyto`` of a float32 array (the memory-bandwidth
baseline), ml_dtypes' ``astype`` to float8_e4m3fn, torchao's MX quantize when torchao is
importable, and for every backend and format the quantize and dequantize element rates
(through the public API and, for backends that offer them, the fused packed kernels on
canonical rows; dequantize both into a fresh array and, like ``np.copyto``, into an
existing one with ``out=``); then float32 BLAS matmul against MX matmul per format with the peak
extra memory (tracemalloc).  Writes ``benchmarks/results/cpu.json`` and ``cpu.md``.

Run ``python benchmarks/bench_cpu.py`` (``--quick`` for a smoke test with small sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

import mxarray
from mxarray.backends.base import (DequantizeOptions, MatmulOperand, MatmulOptions,
                                   QuantizeOptions)
from mxarray.formats import BLOCK_FORMATS

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"quantize": 0.60, "dequantize": 1.20, "matmul_time": 1.10, "matmul_memory": 0.10}


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def peak_extra_bytes(fn: Callable[[], Any], result_bytes: int) -> int:
    """Peak memory traced during ``fn`` beyond its returned result."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
    return max(0, peak - result_bytes)


def blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed"}]
    return [
        {k: v for k, v in info.items() if k in ("internal_api", "version", "architecture",
                                                 "num_threads", "filepath")}
        for info in threadpool_info()
    ]


def bench_elementwise(n: int, repeats: int) -> dict[str, Any]:
    x = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    dst = np.empty_like(x)
    base = best_time(lambda: np.copyto(dst, x), repeats)
    rows: list[dict[str, Any]] = []

    def add(kind: str, backend: str, fmt: str, path: str, seconds: float) -> None:
        rows.append({"op": kind, "backend": backend, "format": fmt, "path": path,
                     "seconds": seconds, "gelem_per_s": x.size / seconds / 1e9,
                     "ratio_vs_copyto": base / seconds})

    try:
        import ml_dtypes

        add("baseline", "ml_dtypes", "float8_e4m3fn", "astype",
            best_time(lambda: x.astype(ml_dtypes.float8_e4m3fn), repeats))
    except ImportError:
        print("ml_dtypes not installed: its astype baseline is skipped")
    try:
        from torchao.prototype.mx_formats.mx_tensor import to_mx  # type: ignore
        import torch

        t = torch.from_numpy(x)
        add("quantize", "torchao", "mxfp8_e4m3", "to_mx",
            best_time(lambda: to_mx(t, torch.float8_e4m3fn, 32), repeats))
    except Exception as exc:  # noqa: BLE001 - any failure means "not measurable here"
        print(f"torchao MX quantize not measured ({type(exc).__name__}: {exc})")

    usable = [b.name for b in mxarray.list_backends() if b.available]
    for name in usable:
        be = mxarray.get_backend(name)
        for fmt in BLOCK_FORMATS.values():  # the OCP formats, then MX9/MX6/MX4 and NVFP4
            if not be.supports(fmt):
                continue
            reps = repeats if name != "numpy" else 1
            add("quantize", name, fmt.name, "api",
                best_time(lambda: mxarray.quantize(x, fmt, backend=name), reps))
            a = mxarray.quantize(x, fmt, backend=name)
            add("dequantize", name, fmt.name, "api",
                best_time(lambda: mxarray.dequantize(a, backend=name), reps))
            add("dequantize", name, fmt.name, "api out=",
                best_time(lambda: mxarray.dequantize(a, out=dst, backend=name), reps))
            if name != "numpy":  # the backend's own methods on canonical rows
                blocks = x.reshape(-1, fmt.block_size)
                q_opts = QuantizeOptions(fmt, "even", "floor", None, a.tensor_scale)
                d_opts = DequantizeOptions(fmt, np.dtype(np.float32), a.tensor_scale)
                add("quantize", name, fmt.name, "kernel",
                    best_time(lambda: be.quantize(blocks, q_opts), repeats))
                packed, scales = be.quantize(blocks, q_opts)
                rows_out = dst.reshape(-1, fmt.block_size)
                add("dequantize", name, fmt.name, "kernel out=",
                    best_time(lambda: be.dequantize(packed, scales, d_opts, out=rows_out),
                              repeats))
    return {"shape": [n, n], "copyto_seconds": base,
            "copyto_gb_per_s": x.nbytes / base / 1e9, "rows": rows}


def bench_matmul(n: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    operands = a.nbytes + b.nbytes
    result = n * n * 4
    base = best_time(lambda: a @ b, repeats)
    rows = [{"backend": "blas", "format": "float32", "path": "numpy.matmul", "seconds": base,
             "ratio_vs_blas": 1.0,
             "extra_fraction": peak_extra_bytes(lambda: a @ b, result) / operands}]
    for name in [b_.name for b_ in mxarray.list_backends() if b_.available and b_.name != "numpy"]:
        be = mxarray.get_backend(name)
        for fmt in ("mxfp8_e4m3", "mxfp4_e2m1", "mxfp6_e2m3", "mxint8", "mx9", "mx6", "mx4",
                    "nvfp4"):
            if not be.supports(BLOCK_FORMATS[fmt]):
                continue
            qa = mxarray.quantize(a, fmt, backend=name)
            qb = mxarray.quantize(b, fmt, axis=0, backend=name)
            left = MatmulOperand(qa.packed[None], qa.scales[None], qa.format, qa.tensor_scale)
            right = MatmulOperand(qb.packed[None], np.ascontiguousarray(qb.scales.T)[None],
                                  qb.format, qb.tensor_scale)
            calls = {"api": lambda: mxarray.matmul(qa, qb, backend=name),
                     "kernel": lambda: be.matmul(left, right, MatmulOptions())}
            for path, fn in calls.items():
                seconds = best_time(fn, repeats)
                rows.append({"backend": name, "format": fmt, "path": path, "seconds": seconds,
                             "ratio_vs_blas": seconds / base,
                             "extra_fraction": peak_extra_bytes(fn, result) / operands})
    return {"shape": [n, n, n], "blas_seconds": base, "rows": rows}


def markdown(report: dict[str, Any]) -> str:
    ew, mm = report["elementwise"], report["matmul"]
    lines = [
        f"# CPU benchmark ({report['machine']['cpus']} CPUs, {report['machine']['processor']})",
        "",
        f"Elementwise input: float32 {ew['shape'][0]}x{ew['shape'][1]}; np.copyto baseline "
        f"{ew['copyto_gb_per_s']:.1f} GB/s. Targets: quantize >= {TARGETS['quantize']}x, "
        f"dequantize >= {TARGETS['dequantize']}x copyto's element rate (the `api out=` rows: "
        "like np.copyto, they write into an existing array; `api` rows allocate a new one).",
        "",
        "| op | backend | format | path | Gelem/s | x copyto |",
        "|---|---|---|---|---:|---:|",
    ]
    for r in ew["rows"]:
        lines.append(f"| {r['op']} | {r['backend']} | {r['format']} | {r['path']} | "
                     f"{r['gelem_per_s']:.3f} | {r['ratio_vs_copyto']:.2f} |")
    lines += [
        "",
        f"Matmul {mm['shape'][0]}^3: float32 BLAS {mm['blas_seconds'] * 1e3:.1f} ms. Targets: "
        f"time <= {TARGETS['matmul_time']}x BLAS, extra memory <= "
        f"{TARGETS['matmul_memory']:.0%} of the float32 operands.",
        "",
        "| backend | format | path | ms | x BLAS time | extra memory / fp32 operands |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in mm["rows"]:
        lines.append(f"| {r['backend']} | {r['format']} | {r['path']} | {r['seconds'] * 1e3:.1f} "
                     f"| {r['ratio_vs_blas']:.2f} | {r['extra_fraction']:.1%} |")
    lines += ["", "BLAS (threadpoolctl):", ""]
    for info in report["blas"]:
        lines.append("- " + ", ".join(f"{k}={v}" for k, v in info.items() if k != "filepath"))
    lines.append("")
    for fmt, seconds in report["first_call_seconds"].items():
        lines.append(f"First call in a new process (warm cache), {fmt}: {seconds:.2f} s")
    lines.append("")
    return "\n".join(lines)


def first_call_seconds(fmt: str) -> float:
    """Wall time of a fresh interpreter importing mxarray and quantizing once."""
    import subprocess
    import sys

    code = ("import time; t = time.perf_counter(); import numpy as np, mxarray; "
            f"mxarray.dequantize(mxarray.quantize(np.ones((4, 64), np.float32), {fmt!r})); "
            "print(time.perf_counter() - t)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # warm cache
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output directory")
    args = parser.parse_args()
    n_ew, n_mm, repeats = (256, 128, 2) if args.quick else (4096, 2048, 5)
    report = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                            "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}},
        "backends": [vars(b) for b in mxarray.list_backends()],
        "blas": blas_info(),
        "quick": args.quick,
        "first_call_seconds": {f: first_call_seconds(f) for f in ("mxfp8_e4m3", "mx9")},
        "elementwise": bench_elementwise(n_ew, repeats),
        "matmul": bench_matmul(n_mm, repeats),
    }
    for info in report["blas"]:
        print("BLAS:", info)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / "cpu.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
