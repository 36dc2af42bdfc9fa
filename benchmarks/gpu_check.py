"""One-shot GPU check of the CuPy backend: tests, bit-equality, bandwidth and TFLOP/s.

Run on a machine with a CUDA GPU and ``pip install -e .[cuda,test]``::

    python benchmarks/gpu_check.py            # the full check, well under 5 minutes
    python benchmarks/gpu_check.py --dry-run  # no GPU needed: checks the plumbing only

Steps: (1) the GPU tests (tests/test_gpu.py, test_device_storage.py and the CuPy rows
of test_conformance.py); (2) bit-equality with the NumPy reference
on fresh random and adversarial data (a new seed each run, printed); (3) quantize and
dequantize bandwidth against a device-to-device copy measured in the same run; (4) MX matmul
TFLOP/s of the tensor-core kernel (forced, and whether its first-use self-check passed)
against ``cupy.matmul`` in bf16 (fp16 where CuPy lacks bf16) and fp32, same shape: 8192^3
when the estimated time allows, else the largest of 4096^3, 2048^3, plus every smaller
size; the simple kernel at 2048^3 for comparison.  A short table is printed last.
``--dry-run`` builds the data, runs the reference, compiles every kernel with NVRTC when
CuPy is importable, and prints the table with the GPU rows left empty.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the shared adversarial-data helpers

from cuda_adversarial import adversarial_blocks  # noqa: E402

from mxarray import _cuda_sources  # noqa: E402
from mxarray.backends import cupy_backend  # noqa: E402
from mxarray.backends.numpy_backend import NumpyBackend  # noqa: E402
from mxarray.formats import FORMATS, ROUNDING_MODES, SCALE_MODES  # noqa: E402

REF = NumpyBackend()
BANDWIDTH_ELEMENTS = 1 << 26  # 256 MiB of float32 input
MATMUL_SIZES = (8192, 4096, 2048)
MATMUL_BUDGET_S = 10.0  # the largest shape whose estimated single run fits is used


GPU_TEST_FILES = ("test_gpu.py", "test_device_storage.py", "test_conformance.py")


def run_gpu_tests() -> str:
    """Run the GPU tests, the device-storage tests and the CuPy rows of the conformance
    suite; return pytest's summary line."""
    files = [str(ROOT / "tests" / name) for name in GPU_TEST_FILES]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files,
         "-k", "gpu or device or cupy"],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    print(proc.stdout[-3000:])
    return lines[-1] if lines else f"pytest exited {proc.returncode}"


def check_bits(gpu: object | None, seed: int) -> str:
    """Compare every format and mode on fresh data; return a summary (reference only if no GPU)."""
    rng = np.random.default_rng(seed)
    mismatches = checked = 0
    for fmt in FORMATS.values():
        for dtype in (np.float16, np.float32, np.float64):
            blocks = np.concatenate([adversarial_blocks(rng, 1000, dtype, fmt),
                                     (rng.standard_normal((1000, 32)) * 10.0).astype(dtype)])
            for scale_mode in SCALE_MODES:
                for rounding in ROUNDING_MODES:
                    s = int(rng.integers(0, 2**63)) if rounding == "stochastic" else None
                    want = REF.quantize_blocks(blocks, fmt, rounding, scale_mode, s)
                    checked += 1
                    if gpu is None:
                        continue
                    got = gpu.quantize_blocks(blocks, fmt, rounding, scale_mode, s)
                    if not all(np.array_equal(g.get(), w) for g, w in zip(got, want)):
                        mismatches += 1
                        print(f"MISMATCH {fmt} {np.dtype(dtype)} {scale_mode} {rounding}")
    if gpu is None:
        return f"reference ran on {checked} cases (no GPU to compare)"
    return f"{checked - mismatches}/{checked} cases bit-identical (seed {seed})"


def compile_all() -> str:
    """Compile every kernel source for every format with NVRTC (no GPU needed)."""
    from cupy.cuda import nvrtc

    n = 0
    for source, macros in _cuda_sources.KERNEL_SOURCES.items():
        for fmt in FORMATS.values():
            defs = _cuda_sources.compile_definitions({m: fmt for m in macros})
            prog = nvrtc.createProgram(_cuda_sources.read_source(source), source, [], [])
            nvrtc.compileProgram(prog, [*defs, "-arch=sm_90", "-ftz=true", "-std=c++17"])
            nvrtc.destroyProgram(prog)
            n += 1
    return f"{n} kernel modules compiled for sm_90"


def gpu_time(fn, repeat: int = 5) -> float:
    """Median seconds of ``fn()`` on the current stream, after one warm-up call."""
    import cupy as cp

    fn()
    times = []
    for _ in range(repeat):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


def bandwidth(gpu: cupy_backend.CupyBackend) -> list[tuple[str, str, str]]:
    """Quantize/dequantize GB/s against a device-to-device copy, same run."""
    import cupy as cp

    fmt = FORMATS["mxfp8_e4m3"]
    x = cp.random.standard_normal((BANDWIDTH_ELEMENTS // 32, 32), dtype=cp.float32)
    dst = cp.empty_like(x)
    t_copy = gpu_time(lambda: dst.__setitem__(Ellipsis, x))
    copy_gbs = 2 * x.nbytes / t_copy / 1e9
    codes, scales = gpu.quantize_blocks(x, fmt, "even", "floor", None)
    moved_q = x.nbytes + codes.nbytes + scales.nbytes
    t_q = gpu_time(lambda: gpu.quantize_blocks(x, fmt, "even", "floor", None))
    t_d = gpu_time(lambda: gpu.dequantize_blocks(codes, scales, fmt, np.float32))
    rows = [("d2d copy", f"{copy_gbs:.0f} GB/s", "100%")]
    for name, t in (("quantize fp32->mxfp8", t_q), ("dequantize mxfp8->fp32", t_d)):
        gbs = moved_q / t / 1e9
        rows.append((name, f"{gbs:.0f} GB/s", f"{100 * gbs / copy_gbs:.0f}% (target 75%)"))
    return rows


def _mx_operands(size: int, fmt_name: str, gpu: cupy_backend.CupyBackend):
    import cupy as cp

    fmt = FORMATS[fmt_name]
    a = cp.random.standard_normal((size * size // 32, 32), dtype=cp.float32)
    b = cp.random.standard_normal((size * size // 32, 32), dtype=cp.float32)
    ac, as_ = gpu.quantize_blocks(a, fmt, "even", "floor", None)
    bc, bs = gpu.quantize_blocks(b, fmt, "even", "floor", None)
    kb = size // 32
    return (ac.reshape(1, size, kb, 32), as_.reshape(1, size, kb), fmt,
            bc.reshape(1, size, kb, 32), bs.reshape(1, size, kb), fmt)


def matmul_rates() -> list[tuple[str, str, str]]:
    """MX matmul TFLOP/s (tensor-core kernel; simple kernel at the smallest size) against
    cupy.matmul bf16/fp16 and fp32."""
    import cupy as cp

    mma = cupy_backend.CupyBackend(matmul_kernel="mma")
    simple = cupy_backend.CupyBackend(matmul_kernel="simple")
    t_small = _time_mx(MATMUL_SIZES[-1], "mxfp8_e4m3", [mma])[0]
    top = next((s for s in MATMUL_SIZES
                if t_small * (s / MATMUL_SIZES[-1]) ** 3 <= MATMUL_BUDGET_S), MATMUL_SIZES[-1])
    rows = []
    for size in sorted(s for s in MATMUL_SIZES if s <= top):
        rows += _rates_at(size, mma, simple if size == MATMUL_SIZES[-1] else None)
    device = cp.cuda.Device().id
    for fmt_name in ("mxfp4_e2m1", "mxfp6_e3m2", "mxfp8_e4m3"):
        fmt = FORMATS[fmt_name]
        ok = cupy_backend._mma_verified(device, fmt, fmt)
        rows.append((f"mma self-check {fmt_name}", "passed" if ok else "FAILED", ""))
    return rows


def _time_dense(size: int) -> tuple[str, float, float]:
    """cupy.matmul seconds at ``size``^3: (half-precision name, half, fp32)."""
    import cupy as cp

    dense = cp.random.standard_normal((size, size), dtype=cp.float32)
    try:
        import ml_dtypes

        half = cp.asarray(cp.asnumpy(dense).astype(ml_dtypes.bfloat16))
        half_name = "bf16"
        cp.matmul(half, half)
    except Exception:  # CuPy without bfloat16 support
        half, half_name = dense.astype(cp.float16), "fp16 (no bf16 in this CuPy)"
    t_half = gpu_time(lambda: cp.matmul(half, half), repeat=3)
    t_f32 = gpu_time(lambda: cp.matmul(dense, dense), repeat=3)
    return half_name, t_half, t_f32


def _time_mx(size: int, fmt_name: str, backends: list) -> list[float]:
    """Seconds of one MX matmul at ``size``^3 in ``fmt_name`` with each backend."""
    ops = _mx_operands(size, fmt_name, backends[0])
    return [gpu_time(lambda b=b: b.matmul_blocks(*ops), repeat=1) for b in backends]


def _rates_at(size: int, mma: cupy_backend.CupyBackend,
              simple: cupy_backend.CupyBackend | None) -> list[tuple[str, str, str]]:
    flops = 2.0 * size**3
    half_name, t_half, t_f32 = _time_dense(size)
    rows = [(f"cupy.matmul {half_name} {size}^3", f"{flops / t_half / 1e12:.1f} TFLOP/s", ""),
            (f"cupy.matmul fp32 {size}^3", f"{flops / t_f32 / 1e12:.1f} TFLOP/s", "")]
    kernels = [("mma", mma)] + ([("simple", simple)] if simple is not None else [])
    # mxfp8 runs on the float16 mma path: there is no FP8 (e4m3) mma path yet
    for fmt_name, target in (("mxfp4_e2m1", 50), ("mxfp6_e3m2", 50), ("mxfp8_e4m3", 100)):
        times = _time_mx(size, fmt_name, [b for _, b in kernels])
        for (kind, _), t in zip(kernels, times):
            note = f"{100 * t_half / t:.1f}% of {half_name}"
            if kind == "mma":
                note += f" (target {target}%)"
            rows.append((f"MX matmul {kind} {fmt_name} {size}^3",
                         f"{flops / t / 1e12:.2f} TFLOP/s", note))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="check the plumbing, no GPU")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ok, reason = cupy_backend.probe()
    rows: list[tuple[str, str, str]] = [("device", reason, "")]
    seed = int(time.time_ns() % 2**32)
    if args.dry_run or not ok:
        if not args.dry_run:
            print(f"no usable GPU: {reason}")
            return 1
        try:
            rows.append(("nvrtc", compile_all(), ""))
        except ImportError:
            rows.append(("nvrtc", "skipped: CuPy not importable", ""))
        rows.append(("bit-equality", check_bits(None, seed), ""))
        rows += [(name, "-", "GPU only") for name in ("GPU tests", "bandwidth", "matmul")]
    else:
        gpu = cupy_backend.CupyBackend()
        rows.append(("GPU tests", run_gpu_tests(), ""))
        rows.append(("bit-equality", check_bits(gpu, seed), ""))
        rows += bandwidth(gpu)
        rows += matmul_rates()
    rows.append(("wall time", f"{time.perf_counter() - started:.0f} s", "limit 300 s"))
    width = max(len(r[0]) for r in rows)
    print()
    for name, value, note in rows:
        print(f"{name:<{width}}  {value}  {note}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
