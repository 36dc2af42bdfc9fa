"""CPU benchmark of the Numba backend against same-run baselines.

For every format (the six OCP formats, MX9/MX6/MX4, NVFP4): quantize, dequantize into an
existing array (``out=``, like ``np.copyto``) and into a new one, the first call in a
new process with a warm and (one format per kernel family) a cold Numba cache, and MX
matmul 2048^3; against ``np.copyto`` of the same float32 array into a preallocated
destination and float32 BLAS (``a @ b``) measured in the same run, each pair as medians
of interleaved repetitions.  Writes ``benchmarks/results/cpu.json`` and ``cpu.md``
(the table docs/benchmarks.md includes).

Also: quantize and dequantize with the block axis first (``axis=0``), MX matmul once per
matmul path of the backend, one-element reads and writes on a small and a large array,
an MLP forward pass through the array API namespace with MX weights against NumPy,
throughput from 2^22 to 2^28 elements, and torchao's CPU MX cast (``to_mx``) beside
mxarray's quantize when torchao is importable.

Run ``python benchmarks/bench_cpu.py`` (about 6 minutes on 2 cores; ``--quick`` for a
smoke test with small sizes).  Other rows add a function to ``SECTIONS``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

import mxarray
from mxarray.formats import BLOCK_FORMATS

RESULTS = Path(__file__).resolve().parent / "results"
BACKEND = "numba"
COLD_FORMATS = ("mxfp8_e4m3", "mx9", "nvfp4")  # one per kernel family


def interleaved(base: Callable[[], Any], fn: Callable[[], Any], repeats: int
                ) -> tuple[float, float]:
    """Median wall times of ``base`` and ``fn``, run alternately ``repeats`` times each
    after one warm-up call of both (so both see the same machine state)."""
    base(), fn()
    tb, tf = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        base()
        tb.append(time.perf_counter() - t)
        t = time.perf_counter()
        fn()
        tf.append(time.perf_counter() - t)
    return float(np.median(tb)), float(np.median(tf))


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
    """Quantize and dequantize of an ``(n, n)`` float32 array, each against np.copyto."""
    x = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    dst, out = np.empty_like(x), np.empty_like(x)
    copy = lambda: np.copyto(dst, x)  # noqa: E731
    rows: list[dict[str, Any]] = []
    for fmt in BLOCK_FORMATS.values():
        a = mxarray.quantize(x, fmt, backend=BACKEND)
        a0 = mxarray.quantize(x, fmt, axis=0, backend=BACKEND)
        ops = {"quantize": lambda: mxarray.quantize(x, fmt, backend=BACKEND),
               "dequantize out=": lambda: mxarray.dequantize(a, out=out, backend=BACKEND),
               "dequantize (new array)": lambda: mxarray.dequantize(a, backend=BACKEND),
               "quantize axis=0": lambda: mxarray.quantize(x, fmt, axis=0, backend=BACKEND),
               "dequantize out= axis=0": lambda: mxarray.dequantize(a0, out=out,
                                                                    backend=BACKEND)}
        for op, fn in ops.items():
            base, seconds = interleaved(copy, fn, repeats)
            rows.append({"op": op, "format": fmt.name, "seconds": seconds,
                         "copyto_seconds": base, "gelem_per_s": x.size / seconds / 1e9,
                         "ratio_vs_copyto": base / seconds})
    return {"shape": [n, n], "rows": rows}


def bench_matmul(n: int, repeats: int) -> dict[str, Any]:
    """MX matmul ``(n, n) @ (n, n)`` per format against float32 BLAS (``a @ b``)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    operands, result = a.nbytes + b.nbytes, n * n * 4
    blas = lambda: a @ b  # noqa: E731
    rows = []
    paths = type(mxarray.get_backend(BACKEND)).matmul_paths
    for fmt in BLOCK_FORMATS:
        qa = mxarray.quantize(a, fmt, backend=BACKEND)
        qb = mxarray.quantize(b, fmt, axis=0, backend=BACKEND)
        for path in paths:
            fn = lambda: mxarray.core.matmul(qa, qb, backend=BACKEND, path=path)  # noqa: E731
            base, seconds = interleaved(blas, fn, repeats)
            rows.append({"format": fmt, "path": path, "seconds": seconds, "blas_seconds": base,
                         "ratio_vs_blas": seconds / base,
                         "extra_fraction": peak_extra_bytes(fn, result) / operands})
    return {"shape": [n, n, n], "rows": rows}


def bench_sizes(exponents: range, repeats: int) -> dict[str, Any]:
    """Quantize and dequantize ``out=`` of ``2**e`` float32 elements (rows of 4096) for
    each ``e``, against np.copyto of the same array: throughput across sizes."""
    rows = []
    for e in exponents:
        x = np.random.default_rng(e).standard_normal((2 ** e // 4096, 4096)).astype(np.float32)
        dst = np.empty_like(x)
        copy = lambda: np.copyto(dst, x)  # noqa: E731
        for fmt in ("mxfp8_e4m3", "mx6"):
            a = mxarray.quantize(x, fmt, backend=BACKEND)
            ops = {"quantize": lambda: mxarray.quantize(x, fmt, backend=BACKEND),
                   "dequantize out=": lambda: mxarray.dequantize(a, out=dst, backend=BACKEND)}
            for op, fn in ops.items():
                base, seconds = interleaved(copy, fn, repeats)
                rows.append({"elements_log2": e, "format": fmt, "op": op,
                             "gelem_per_s": x.size / seconds / 1e9,
                             "ratio_vs_copyto": base / seconds})
            del a
        del x, dst
    return {"rows": rows}


def bench_torchao(n: int, repeats: int) -> dict[str, Any]:
    """torchao's CPU MX cast (``to_mx``, FLOOR scales) of float32 ``(n, n)`` against
    mxarray's quantize of the same array, both against np.copyto, in one run; whether the
    two give the same element codes and scales.  Empty when torchao is not importable."""
    try:
        import torch
        import torchao
        from torchao.prototype.mx_formats.mx_tensor import to_mx
    except Exception as exc:  # an optional peer: the row says why it is missing
        return {"rows": [], "missing": f"{type(exc).__name__}: {exc}"}
    x = np.random.default_rng(5).standard_normal((n, n)).astype(np.float32)
    xt, dst = torch.from_numpy(x), np.empty_like(x)
    copy = lambda: np.copyto(dst, x)  # noqa: E731
    rows = []
    for fmt, elem in (("mxfp8_e4m3", torch.float8_e4m3fn), ("mxfp4_e2m1", torch.float4_e2m1fn_x2)):
        ours = lambda: mxarray.quantize(x, fmt, backend=BACKEND)  # noqa: E731
        theirs = lambda: to_mx(xt, elem, 32)  # noqa: E731
        base, ours_s = interleaved(copy, ours, repeats)
        base_t, theirs_s = interleaved(copy, theirs, repeats)
        scale, data = theirs()
        q = ours()
        same = (np.array_equal(scale.view(torch.uint8).numpy().reshape(-1),
                               np.asarray(q.scales).reshape(-1))
                and np.array_equal(data.view(torch.uint8).numpy().reshape(-1),
                                   np.asarray(q.packed).reshape(-1)))
        rows.append({"format": fmt, "torchao": torchao.__version__, "torch": torch.__version__,
                     "torchao_gelem_per_s": x.size / theirs_s / 1e9,
                     "torchao_ratio_vs_copyto": base_t / theirs_s,
                     "mxarray_gelem_per_s": x.size / ours_s / 1e9,
                     "mxarray_ratio_vs_copyto": base / ours_s,
                     "speedup": theirs_s / ours_s, "same_bits": bool(same)})
    return {"shape": [n, n], "rows": rows}


def bench_element_access(repeats: int) -> dict[str, Any]:
    """``q[5, 7]`` and ``r[5, 7] = 1.0`` on 256x256 and 4096x4096 arrays, per format."""
    rows = []
    for fmt in BLOCK_FORMATS:
        for n in (256, 4096):
            x = np.random.default_rng(2).standard_normal((n, n)).astype(np.float32)
            q = mxarray.quantize(x, fmt, backend=BACKEND)
            read = lambda: q[5, 7]  # noqa: E731

            def write() -> None:
                q[5, 7] = 1.0

            with mxarray.use_backend(BACKEND):
                t_read = float(np.median([_seconds(read) for _ in range(repeats * 10)]))
                t_write = float(np.median([_seconds(write) for _ in range(repeats * 10)]))
            rows.append({"format": fmt, "n": n, "read_us": t_read * 1e6,
                         "write_us": t_write * 1e6})
    return {"rows": rows}


def _seconds(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_mlp(repeats: int) -> dict[str, Any]:
    """A 2-layer MLP forward pass (batch 256, 1024 -> 1024 -> 1024, relu) written against
    the array API namespace, with MX weights blocked along K (axis 0), against the same
    code on NumPy float32."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    w1, w2 = (rng.standard_normal((1024, 1024)).astype(np.float32) / 32 for _ in range(2))

    def forward(xp: Any, h: Any, v1: Any, v2: Any) -> Any:
        return xp.matmul(xp.maximum(xp.matmul(h, v1), 0.0), v2)

    baseline = lambda: forward(np, x, w1, w2)  # noqa: E731
    rows = []
    with mxarray.use_backend(BACKEND):
        xd = mxarray.asarray(x)
        for fmt in ("mxfp8_e4m3", "mxfp4_e2m1", "mx6"):
            v1, v2 = (mxarray.asarray(w, dtype=fmt, block_axis=0) for w in (w1, w2))
            fn = lambda: forward(mxarray, xd, v1, v2)  # noqa: E731
            base, seconds = interleaved(baseline, fn, repeats)
            rows.append({"format": fmt, "ms": seconds * 1e3, "numpy_ms": base * 1e3,
                         "ratio_vs_numpy": seconds / base})
    return {"rows": rows}


_FIRST_CALL = """
import time
t = time.perf_counter()
import numpy as np, mxarray
x = np.linspace(-1, 1, 4096, dtype=np.float32).reshape(64, 64)
mxarray.dequantize(mxarray.quantize(x, {fmt!r}, backend={backend!r}), backend={backend!r})
print(time.perf_counter() - t)
"""


def first_call(fmt: str, cache_dir: str) -> float:
    """Wall time of a new interpreter importing mxarray, quantizing and dequantizing once,
    with Numba's disk cache in ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    code = _FIRST_CALL.format(fmt=fmt, backend=BACKEND)
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, env=env)
    return float(done.stdout)


def bench_first_call(quick: bool) -> dict[str, Any]:
    """First call in a new process: warm (the cache the run has filled) for every format,
    cold (an empty cache directory) for one format of each kernel family."""
    import numba

    warm_dir = numba.config.CACHE_DIR or ""
    rows = []
    for fmt in BLOCK_FORMATS:
        cold = None
        if fmt in COLD_FORMATS and not quick:
            with tempfile.TemporaryDirectory() as empty:
                cold = first_call(fmt, empty)
        first_call(fmt, warm_dir)  # make sure the warm cache holds this format
        rows.append({"format": fmt, "warm_seconds": first_call(fmt, warm_dir),
                     "cold_seconds": cold})
    return {"rows": rows}


SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "elementwise": lambda args: bench_elementwise(256 if args.quick else 4096, args.repeats),
    "matmul": lambda args: bench_matmul(128 if args.quick else 2048, args.repeats),
    "element_access": lambda args: bench_element_access(args.repeats),
    "mlp": lambda args: bench_mlp(args.repeats),
    "first_call": lambda args: bench_first_call(args.quick),
    "sizes": lambda args: bench_sizes(range(16, 21, 2) if args.quick else range(22, 29, 2),
                                      args.repeats),
    "torchao": lambda args: bench_torchao(256 if args.quick else 4096, args.repeats),
}
"""Each section of the report: a function of the parsed arguments, run in this order."""


def markdown(report: dict[str, Any]) -> str:
    """The report as the Markdown tables docs/benchmarks.md includes."""
    m = report["machine"]
    lines = [f"Backend `{BACKEND}` on {m['cpus']} CPUs ({m['processor']}), numpy {m['numpy']}, "
             f"numba {m['numba']}; medians of {report['repeats']} interleaved repetitions.", ""]
    ew = report.get("elementwise")
    if ew:
        lines += [f"Quantize and dequantize of float32 {ew['shape'][0]}x{ew['shape'][1]}, as a "
                  "ratio to np.copyto of the same array into a preallocated one (higher is "
                  "faster):", "",
                  "| format | op | Gelem/s | x np.copyto |", "|---|---|---:|---:|"]
        lines += [f"| {r['format']} | {r['op']} | {r['gelem_per_s']:.2f} | "
                  f"{r['ratio_vs_copyto']:.2f} |" for r in ew["rows"]]
    mm = report.get("matmul")
    if mm:
        lines += ["", f"MX matmul {mm['shape'][0]}^3 (both operands in the format) against "
                  "float32 BLAS `a @ b` (lower is faster):", "",
                  "| format | path | ms | x BLAS time | extra memory / fp32 operands |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {r['format']} | {r['path']} | {r['seconds'] * 1e3:.1f} | "
                  f"{r['ratio_vs_blas']:.2f} | {r['extra_fraction']:.1%} |" for r in mm["rows"]]
    ea = report.get("element_access")
    if ea:
        lines += ["", "One element: `q[5, 7]` and `r[5, 7] = 1.0` (microseconds, medians):", "",
                  "| format | n x n | read us | write us |", "|---|---:|---:|---:|"]
        lines += [f"| {r['format']} | {r['n']} | {r['read_us']:.0f} | {r['write_us']:.0f} |"
                  for r in ea["rows"]]
    mlp = report.get("mlp")
    if mlp:
        lines += ["", "MLP forward pass through the namespace (batch 256, 1024 -> 1024 -> 1024, "
                  "relu), MX weights blocked along K, against the same code on NumPy float32:",
                  "", "| weights | ms | NumPy ms | x NumPy time |", "|---|---:|---:|---:|"]
        lines += [f"| {r['format']} | {r['ms']:.1f} | {r['numpy_ms']:.1f} | "
                  f"{r['ratio_vs_numpy']:.2f} |" for r in mlp["rows"]]
    fc = report.get("first_call")
    if fc:
        lines += ["", "First quantize + dequantize in a new process (import included), with a "
                  "warm Numba cache and, for one format per kernel family, an empty one:", "",
                  "| format | warm s | cold s |", "|---|---:|---:|"]
        lines += [f"| {r['format']} | {r['warm_seconds']:.2f} | "
                  + (f"{r['cold_seconds']:.1f}" if r["cold_seconds"] is not None else "-") + " |"
                  for r in fc["rows"]]
    sz = report.get("sizes")
    if sz:
        lines += ["", "Throughput across sizes (float32 rows of 4096), against np.copyto of the "
                  "same array in the same run:", "",
                  "| elements | format | op | Gelem/s | x np.copyto |", "|---:|---|---|---:|---:|"]
        lines += [f"| 2^{r['elements_log2']} | {r['format']} | {r['op']} | "
                  f"{r['gelem_per_s']:.2f} | {r['ratio_vs_copyto']:.2f} |" for r in sz["rows"]]
    ta = report.get("torchao")
    if ta and ta["rows"]:
        r0 = ta["rows"][0]
        lines += ["", f"torchao {r0['torchao']} (torch {r0['torch']}) CPU MX cast `to_mx` (FLOOR "
                  f"scales) of float32 {ta['shape'][0]}x{ta['shape'][1]} against mxarray's "
                  "quantize, same run:", "",
                  "| format | torchao Gelem/s | x np.copyto | mxarray Gelem/s | x np.copyto | "
                  "mxarray speedup | same codes and scales |", "|---|---:|---:|---:|---:|---:|---|"]
        lines += [f"| {r['format']} | {r['torchao_gelem_per_s']:.3f} | "
                  f"{r['torchao_ratio_vs_copyto']:.2f} | {r['mxarray_gelem_per_s']:.2f} | "
                  f"{r['mxarray_ratio_vs_copyto']:.2f} | {r['speedup']:.0f}x | "
                  f"{'yes' if r['same_bits'] else 'no'} |" for r in ta["rows"]]
    elif ta:
        lines += ["", f"torchao: not measured ({ta['missing']})."]
    lines += ["", "BLAS (threadpoolctl): " + "; ".join(
        ", ".join(f"{k}={v}" for k, v in info.items() if k != "filepath")
        for info in report["blas"]), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=9, help="repetitions per median")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output directory")
    args = parser.parse_args()
    import numba

    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "numba": numba.__version__,
                    "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                            "OMP_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                            "OMP_WAIT_POLICY")}},
        "blas": blas_info(), "quick": args.quick, "repeats": args.repeats,
    }
    for name, section in SECTIONS.items():
        t = time.perf_counter()
        report[name] = section(args)
        print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / "cpu.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
