"""MX matmul on the bfloat16 path against float32 BLAS and the bare bfloat16 GEMM.

One run, interleaved: for each repetition every case runs once, in turn, so a change in
the machine's load falls on all of them alike.  Cases at M = N = K = 2048 (``--size``):

- ``sgemm``: ``numpy.matmul`` of float32 operands into a preallocated result (NumPy's
  BLAS), the baseline;
- ``bf16 GEMM``: :func:`mxarray.backends.numba.bf16.gemm_bf16` on operands already in
  bfloat16 (its panel copy included), the ceiling of the MX path;
- per format pair, the Numba backend's float32-panel MX matmul and the bfloat16 path
  (:func:`~mxarray.backends.numba.bf16.matmul_bf16`: decode + GEMM).

Prints medians of the wall time and of the process CPU time (less sensitive to other
processes on a shared machine) and their ratios to ``sgemm`` and to ``bf16 GEMM``.

Run ``python benchmarks/bench_bf16.py`` (``--repeats 9`` by default; ``--quick`` for a
smoke test at 256).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np

import mxarray
from mxarray.backends.numba import bf16 as bf
from mxarray.backends.base import MatmulOperand, MatmulOptions

PAIRS = [("mxfp8_e4m3", "mxfp8_e4m3"), ("mxfp8_e5m2", "mxfp8_e5m2"),
         ("mxfp6_e3m2", "mxfp6_e3m2"), ("mxfp6_e2m3", "mxfp6_e2m3"),
         ("mxfp4_e2m1", "mxfp4_e2m1"), ("mxint8", "mxint8"), ("mx9", "mxfp8_e4m3"),
         ("mx6", "mx6"), ("mx4", "mx4"), ("nvfp4", "nvfp4")]


def operand(x: np.ndarray, fmt: str) -> MatmulOperand:
    """``x`` (rows, K) quantized along K, as the batch-1 operand the backends receive."""
    q = mxarray.quantize(x, fmt, backend="numba")
    rows = x.shape[0]
    return MatmulOperand(np.asarray(q.packed).reshape(1, rows, -1),
                         np.asarray(q.scales).reshape(1, rows, -1), q.format, q.tensor_scale)


def cases(size: int, pairs: list[tuple[str, str]]) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((size, size), dtype=np.float32)
    y = rng.standard_normal((size, size), dtype=np.float32)  # rows of B.T
    y_t = np.ascontiguousarray(y.T)
    out = np.empty((size, size), dtype=np.float32)
    xb, yb = bf._bits(x), bf._bits(y)
    numba = mxarray.get_backend("numba")
    run = {"sgemm": lambda: np.matmul(x, y_t, out=out),
           "bf16 GEMM": lambda: bf.gemm_bf16(xb, yb)}
    for fa, fb in pairs:
        a, b = operand(x, fa), operand(y, fb)
        if not bf.bf16_fits(a, b):
            print(f"{fa} x {fb}: outside the bf16 window, skipped")
            continue
        run[f"{fa} x {fb} float32-panels"] = (
            lambda a=a, b=b: numba.matmul(a, b, MatmulOptions()))
        run[f"{fa} x {fb} bf16"] = lambda a=a, b=b: bf.matmul_bf16(a, b)
    return run


def measure(run: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each case over ``repeats`` interleaved rounds."""
    for fn in run.values():  # warm-up: compile, fault in the pages
        fn()
    wall: dict[str, list[float]] = {name: [] for name in run}
    cpu: dict[str, list[float]] = {name: [] for name in run}
    for _ in range(repeats):
        for name, fn in run.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    return {name: (float(np.median(wall[name])), float(np.median(cpu[name]))) for name in run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="size 256, 3 repeats")
    args = parser.parse_args()
    size, repeats = (256, 3) if args.quick else (args.size, args.repeats)
    ok, why = bf.bf16_gemm_available()
    print(f"bf16 GEMM available: {ok} ({why}); M = N = K = {size}, median of {repeats}")
    if not ok:
        return
    times = measure(cases(size, PAIRS), repeats)
    (s_wall, s_cpu), (g_wall, g_cpu) = times["sgemm"], times["bf16 GEMM"]
    print("| case | wall ms | CPU ms | wall / sgemm | CPU / sgemm "
          "| bf16 GEMM speed ratio (wall, CPU) |")
    print("|---|---|---|---|---|---|")
    for name, (w, c) in times.items():
        print(f"| {name} | {w * 1e3:.1f} | {c * 1e3:.1f} | {w / s_wall:.2f} | {c / s_cpu:.2f} "
              f"| {g_wall / w:.2f}, {g_cpu / c:.2f} |")


if __name__ == "__main__":
    main()
