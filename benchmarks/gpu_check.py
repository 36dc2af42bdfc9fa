"""One-shot GPU check of the CuPy backend: tests, bit-equality, bandwidth and TFLOP/s.

Run on a machine with a CUDA GPU and ``pip install -e .[cuda,test]``::

    python benchmarks/gpu_check.py            # the full check, well under 5 minutes
    python benchmarks/gpu_check.py --dry-run  # no GPU needed: checks the plumbing only

Steps: (1) the GPU tests (tests/backends/cuda/test_gpu.py, test_device_storage.py and the CuPy rows
of test_conformance.py); (2) bit-equality with the NumPy reference on fresh random and
adversarial data (a new seed each run, printed), the OCP formats and MX9/MX6/MX4/NVFP4
(with block_ids and tensor scales); (3) quantize and dequantize bandwidth against a
device-to-device copy measured in the same run, OCP mxfp8 and each block format; (4) MX
matmul TFLOP/s of the tensor-core kernel (forced, and whether its first-use self-check passed)
against ``cupy.matmul`` in bf16 (fp16 where CuPy lacks bf16) and fp32, same shape: 8192^3
when the estimated time allows, else the largest of 4096^3, 2048^3, plus every smaller
size; the simple kernel at 2048^3 for comparison, and the simple block-format kernel
(MX9, NVFP4) at 2048^3.  A short table is printed last.
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

from cuda_adversarial import adversarial_blocks, two_level_blocks  # noqa: E402

from mxarray import _cuda_sources  # noqa: E402
from mxarray.backends import cupy_backend  # noqa: E402
from mxarray.backends.numpy_backend import NumpyBackend  # noqa: E402
from mxarray.formats import BLOCK_FORMATS, FORMATS, ROUNDING_MODES, SCALE_MODES  # noqa: E402

REF = NumpyBackend()
BANDWIDTH_ELEMENTS = 1 << 26  # 256 MiB of float32 input
MATMUL_SIZES = (8192, 4096, 2048)
MATMUL_BUDGET_S = 10.0  # the largest shape whose estimated single run fits is used


BLOCK_KERNEL_FORMATS = tuple(BLOCK_FORMATS[n] for n in cupy_backend.BLOCK_KERNEL_FORMATS)
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


def _misaligned(gpu: object | None, a: np.ndarray) -> object:
    """A device copy of ``a`` that starts one element past an allocation (the backend must
    copy it for the kernels' vector loads), or ``a`` itself without a GPU."""
    if gpu is None:
        return a
    import cupy as cp

    flat = cp.empty(a.size + 1, dtype=a.dtype)
    view = flat[1:].reshape(a.shape)
    view[...] = cp.asarray(a)
    return view


def check_bits(gpu: object | None, seed: int) -> str:
    """Compare every format and mode on fresh data; return a summary (reference only if no GPU).

    OCP quantize runs on 1999 rows (the last warp of the 8-lanes-per-block kernel partly
    filled), stochastic rounding with and without ``block_ids``, the ``block_ids`` case on
    a misaligned view; each quantize result is then dequantized to float32 and float64,
    from aligned and misaligned codes."""
    rng = np.random.default_rng(seed)
    mismatches = checked = 0
    for fmt in FORMATS.values():
        for dtype in (np.float16, np.float32, np.float64):
            blocks = np.concatenate([adversarial_blocks(rng, 1000, dtype, fmt),
                                     (rng.standard_normal((999, 32)) * 10.0).astype(dtype)])
            ids = rng.integers(0, 2**64, size=len(blocks), dtype=np.uint64)
            for scale_mode in SCALE_MODES:
                for rounding in ROUNDING_MODES:
                    s = int(rng.integers(0, 2**63)) if rounding == "stochastic" else None
                    for kw in ({}, {"block_ids": ids}) if s is not None else ({},):
                        want = REF.quantize_blocks(blocks, fmt, rounding, scale_mode, s, **kw)
                        checked += 1
                        if gpu is None:
                            continue
                        x = _misaligned(gpu, blocks) if kw else blocks
                        got = gpu.quantize_blocks(x, fmt, rounding, scale_mode, s, **kw)
                        if not all(np.array_equal(g.get(), w) for g, w in zip(got, want)):
                            mismatches += 1
                            print(f"MISMATCH {fmt} {np.dtype(dtype)} {scale_mode} {rounding} "
                                  f"{'block_ids, misaligned' if kw else ''}")
                        for out in (np.float32, np.float64):
                            checked += 1
                            if not _dequantize_equal(gpu, want, fmt, out, bool(kw)):
                                mismatches += 1
                                print(f"MISMATCH dequantize {fmt} -> {np.dtype(out)}")
    for fmt in BLOCK_KERNEL_FORMATS:
        for case in _block_cases(rng, fmt):
            want = REF.quantize_blocks(*case[:5], **case[5])
            checked += 1
            if gpu is None:
                continue
            got = gpu.quantize_blocks(*case[:5], **case[5])
            if not all(np.array_equal(g.get(), w) for g, w in zip(got, want)):
                mismatches += 1
                print(f"MISMATCH {fmt} {case[0].dtype} {case[3]} {case[2]} {case[5]}")
    if gpu is None:
        return f"reference ran on {checked} cases (no GPU to compare)"
    return f"{checked - mismatches}/{checked} cases bit-identical (seed {seed})"


def _dequantize_equal(gpu: object, quantized: tuple, fmt, out: type, misaligned: bool) -> bool:
    """Whether the GPU dequantizes the reference's ``(codes, scales)`` to its exact bits."""
    codes, scales = quantized
    want = REF.dequantize_blocks(codes, scales, fmt, np.dtype(out))
    got = gpu.dequantize_blocks(_misaligned(gpu, codes) if misaligned else codes, scales, fmt,
                                out).get()
    bits = np.uint32 if out == np.float32 else np.uint64
    return np.array_equal(got.view(bits), want.view(bits))


def _block_cases(rng: np.random.Generator, fmt) -> list[tuple]:
    """Quantize cases of a general block format: (blocks, fmt, rounding, scale_mode, seed,
    keywords), every dtype and allowed mode; stochastic with and without block_ids; NVFP4
    under its amax tensor scale and a tiny and a huge one."""
    cases = []
    for dtype in (np.float16, np.float32, np.float64):
        if fmt.tensor_scale != "none":
            for ts in (None, 2.0**-140, 2.0**120):
                gauss = rng.standard_normal((1000, fmt.block_size)) * 10.0
                ts = float(fmt.tensor_scale_for(float(np.abs(gauss).max()))) if ts is None else ts
                blocks = np.concatenate([two_level_blocks(rng, 1000, dtype, fmt, ts),
                                         (gauss * ts * 448).astype(dtype)])
                cases += [(blocks, fmt, r, "floor", None, {"tensor_scale": ts})
                          for r in ROUNDING_MODES if r != "stochastic"]
            continue
        blocks = np.concatenate([adversarial_blocks(rng, 1000, dtype, fmt),
                                 (rng.standard_normal((1000, fmt.block_size)) * 10).astype(dtype)])
        ids = rng.integers(0, 2**64, size=len(blocks), dtype=np.uint64)
        for scale_mode in SCALE_MODES:
            for rounding in ROUNDING_MODES:
                s = int(rng.integers(0, 2**63)) if rounding == "stochastic" else None
                cases.append((blocks, fmt, rounding, scale_mode, s, {}))
                if rounding == "stochastic":
                    cases.append((blocks, fmt, rounding, scale_mode, s, {"block_ids": ids}))
    return cases


def compile_all() -> str:
    """Compile every kernel source for every format with NVRTC (no GPU needed)."""
    from cupy.cuda import nvrtc

    n = 0
    for source, macros in _cuda_sources.KERNEL_SOURCES.items():
        block = source in _cuda_sources.BLOCK_SOURCES
        for fmt in (BLOCK_KERNEL_FORMATS if block else FORMATS.values()):
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
    for fmt in BLOCK_KERNEL_FORMATS:  # the general block formats (no target yet)
        kw = {"tensor_scale": 1.0} if fmt.tensor_scale != "none" else {}
        xb = x.reshape(-1, fmt.block_size)
        c, sc = gpu.quantize_blocks(xb, fmt, "even", "floor", None, **kw)
        moved = x.nbytes + c.nbytes + sc.nbytes
        t_q = gpu_time(lambda xb=xb, fmt=fmt, kw=kw: gpu.quantize_blocks(xb, fmt, "even", "floor",
                                                                         None, **kw))
        t_d = gpu_time(lambda c=c, sc=sc, fmt=fmt, kw=kw: gpu.dequantize_blocks(
            c, sc, fmt, np.float32, **kw))
        for name, t in ((f"quantize fp32->{fmt}", t_q), (f"dequantize {fmt}->fp32", t_d)):
            gbs = moved / t / 1e9
            rows.append((name, f"{gbs:.0f} GB/s", f"{100 * gbs / copy_gbs:.0f}% of copy"))
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
    rows += _block_matmul_rates(MATMUL_SIZES[-1], simple)
    device = cp.cuda.Device().id
    for fmt_name in ("mxfp4_e2m1", "mxfp6_e3m2", "mxfp8_e4m3"):
        fmt = FORMATS[fmt_name]
        ok = cupy_backend._mma_verified(device, fmt, fmt)
        rows.append((f"mma self-check {fmt_name}", "passed" if ok else "FAILED", ""))
    return rows


def _block_matmul_rates(size: int, gpu: cupy_backend.CupyBackend) -> list[tuple[str, str, str]]:
    """TFLOP/s of the simple block-format matmul kernel (MX9, NVFP4) at ``size``^3."""
    import cupy as cp

    rows = []
    for name in ("mx9", "nvfp4"):
        fmt = BLOCK_FORMATS[name]
        kw = {"tensor_scale": 1.0} if fmt.tensor_scale != "none" else {}
        x = cp.random.standard_normal((size * size // fmt.block_size, fmt.block_size),
                                      dtype=cp.float32)
        c, s = gpu.quantize_blocks(x, fmt, "even", "floor", None, **kw)
        kb = size // fmt.block_size
        ops = (c.reshape(1, size, kb, -1), s.reshape(1, size, kb), fmt) * 2
        mm_kw = {"a_tensor_scale": 1.0, "b_tensor_scale": 1.0} if kw else {}
        t = gpu_time(lambda ops=ops, mm_kw=mm_kw: gpu.matmul_blocks(*ops, **mm_kw), repeat=1)
        rows.append((f"MX matmul simple-block {name} {size}^3",
                     f"{2.0 * size**3 / t / 1e12:.2f} TFLOP/s", "no target (simple kernel)"))
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
