"""One prepared GPU check of the CuPy backend (issue 17): tests, bit-equality, bounds, timings.

Run on a machine with a CUDA GPU (``pip install -e .[cuda,test]``; torch and torchao are
used when importable)::

    python benchmarks/gpu_check.py                  # the whole check, at most ~4 minutes
    python benchmarks/gpu_check.py --dry-run        # no GPU: checks the plumbing only
    python benchmarks/gpu_check.py --out DIR        # where gpu_check.json / .md go

Steps: (1) the GPU tests (tests/backends/cuda/test_gpu.py, test_device_storage.py and the CuPy rows of
test_conformance.py); (2) bit-equality of quantize, dequantize and the fused packed
quantize with the NumPy reference on fresh adversarial data (a new seed each run, printed)
for the six OCP formats and MX9/MX6/MX4/NVFP4; (3) every matmul path on each format pair
against its bound (spec/mx.toml [dot], [dot_paths.two_pass]), and the two-pass path on
data that a truncating accumulator gets wrong by more than the [dot] bound: the check of
the accumulation model on this GPU; (4) every row of the issue's target table, timed with
CUDA events (median of 20 after a warm-up) against baselines measured in the same run: a
device-to-device copy, cuBLAS bf16 x bf16 -> fp32 GEMM, "dequantize + torch.matmul bf16"
and torchao's MX cast when importable.  Rows left when the time budget runs out are
marked skipped.  The table is printed and written as JSON and markdown.

``--dry-run`` compiles every kernel with NVRTC (sm_90a), runs the reference side of the
bit-equality check, plans the two-pass path for every matmul row, and writes the table
with every measurement marked "not measured: needs a GPU".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import mxarray
from mxarray import _cuda_sources
from mxarray.backends import cupy_backend
from mxarray.backends._cuda_adversarial import (adversarial_blocks, truncation_adversary,
                                                two_level_blocks)
from mxarray.backends.base import DequantizeOptions, MatmulOperand, QuantizeOptions
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import BLOCK_FORMATS, FORMATS, ROUNDING_MODES, SCALE_MODES, Format

ROOT = Path(__file__).resolve().parent.parent
REF = NumpyBackend()
BUDGET_S = 230.0  # timing rows start only while the run is inside this many seconds
TESTS_TIMEOUT_S = 120.0  # the GPU tests' share of the run
REPEAT = 20
BANDWIDTH_ELEMENTS = 1 << 26  # float32 input of the bandwidth rows (256 MiB)
MATMUL_SIZES = (8192, 2048)
MATMUL_PAIRS = [(f, f) for f in FORMATS] + [("mxfp4_e2m1", "mxfp8_e4m3")] + [
    (f, f) for f in cupy_backend.BLOCK_KERNEL_FORMATS]
BLOCK_FORMAT_NAMES = cupy_backend.BLOCK_KERNEL_FORMATS
GPU_TEST_FILES = ("backends/cuda/test_gpu.py", "backends/cuda/test_device_storage.py",
                  "backends/test_conformance.py")
NVFP4_TENSOR_SCALE = 0.5  # the given tensor scale of the NVFP4 quantize row
BANDWIDTH_TARGETS = {  # format: (quantize, dequantize) targets as fractions of a device copy
    "mxfp8_e4m3": (0.80, 0.85), "mxfp4_e2m1": (0.80, None),
    **{name: (0.60, 0.80) for name in BLOCK_FORMAT_NAMES}}


def matmul_target(size: int, device_name: str) -> float:
    """The issue's MX matmul target against cuBLAS bf16 at ``size``^3 on this card."""
    return (0.90 if "H200" in device_name else 0.85) if size >= 8192 else 0.70


@dataclasses.dataclass
class Row:
    """One line of the table: a measurement against a same-run baseline and a target."""

    metric: str
    value: float | None = None
    unit: str = ""
    baseline: str = ""
    ratio: float | None = None
    target: float | None = None
    note: str = ""
    timed: bool = False  # a timing row (left "not measured" by --dry-run)

    @property
    def status(self) -> str:
        if self.ratio is None or self.target is None:
            return ""
        return "met" if self.ratio >= self.target else "MISSED"


# --- steps without timings --------------------------------------------------------------


def run_gpu_tests() -> str:
    """Run the GPU tests; return pytest's summary line."""
    files = [str(ROOT / "tests" / name) for name in GPU_TEST_FILES]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files,
             "-k", "gpu or device or cupy"],
            capture_output=True, text=True, timeout=TESTS_TIMEOUT_S, cwd=ROOT,
        )
    except subprocess.TimeoutExpired as exc:
        print((exc.stdout or b"")[-3000:] if isinstance(exc.stdout, bytes) else exc.stdout)
        return f"stopped after {TESTS_TIMEOUT_S:.0f} s (rerun tests/backends/cuda/test_gpu.py alone)"
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    print(proc.stdout[-3000:])
    return lines[-1] if lines else f"pytest exited {proc.returncode}"


def compile_all() -> str:
    """Compile every kernel source for every format it serves with NVRTC for sm_90a."""
    from cupy.cuda import nvrtc

    n = 0
    for source, macros in _cuda_sources.KERNEL_SOURCES.items():
        names = (BLOCK_FORMAT_NAMES if source in _cuda_sources.BLOCK_SOURCES else
                 [*FORMATS, *BLOCK_FORMAT_NAMES] if source == "mx_fold_bf16.cu" else FORMATS)
        for name in names:
            defs = _cuda_sources.compile_definitions({m: BLOCK_FORMATS[name] for m in macros})
            prog = nvrtc.createProgram(_cuda_sources.read_source(source), source, [], [])
            try:
                nvrtc.compileProgram(prog, [*defs, "-arch=sm_90a", "-ftz=true", "-std=c++17"])
            finally:
                nvrtc.destroyProgram(prog)
            n += 1
    return f"{n} kernel modules compiled for sm_90a"


def _quantize_cases(rng: np.random.Generator, fmt: Format) -> list[tuple[np.ndarray, Any]]:
    """(blocks, QuantizeOptions) cases: every dtype and mode; stochastic rounding with and
    without block_ids; NVFP4 under its amax tensor scale and a tiny and a huge one."""
    cases = []
    for dtype in (np.float16, np.float32, np.float64):
        if fmt.tensor_scale != "none":
            gauss = rng.standard_normal((500, fmt.block_size)) * 10.0
            for ts in (float(fmt.tensor_scale_for(float(np.abs(gauss).max()))), 2.0**-140,
                       2.0**120):
                with np.errstate(over="ignore"):  # float16 overflows to inf: a case too
                    blocks = np.concatenate([two_level_blocks(rng, 500, dtype, fmt, ts),
                                             (gauss * ts * 448).astype(dtype)])
                cases += [(blocks, QuantizeOptions(fmt, r, "floor", None, np.float32(ts)))
                          for r in ROUNDING_MODES if r != "stochastic"]
            continue
        blocks = np.concatenate([adversarial_blocks(rng, 500, dtype, fmt),
                                 (rng.standard_normal((499, fmt.block_size)) * 10).astype(dtype)])
        ids = rng.integers(0, 2**64, size=len(blocks), dtype=np.uint64)
        for scale_mode in SCALE_MODES:
            for rounding in ROUNDING_MODES:
                seed = int(rng.integers(0, 2**63)) if rounding == "stochastic" else None
                options = QuantizeOptions(fmt, rounding, scale_mode, seed, None)
                cases.append((blocks, options))
                if seed is not None:
                    cases.append((blocks, options.with_block_ids(ids)))
    return cases


def check_bits(gpu: Any | None, seed: int) -> str:
    """Quantize (codes and the fused packed form) and dequantize (float32 and float64) on
    the GPU against the reference; the reference alone without a GPU."""
    rng = np.random.default_rng(seed)
    checked = mismatches = 0
    for name in [*FORMATS, *BLOCK_FORMAT_NAMES]:
        fmt = BLOCK_FORMATS[name]
        for blocks, options in _quantize_cases(rng, fmt):
            want_codes, want_scales = REF.quantize_blocks(blocks, options)
            want_packed = REF.pack(want_codes, fmt)
            checked += 1
            if gpu is None:
                continue
            cp = gpu.xp
            ids = None if options.block_ids is None else cp.asarray(options.block_ids)
            device = options.with_block_ids(ids)
            codes, scales = gpu.quantize_blocks(cp.asarray(blocks), device)
            packed, _ = gpu.quantize(cp.asarray(blocks), device)
            same = (np.array_equal(codes.get(), want_codes)
                    and np.array_equal(scales.get(), want_scales)
                    and np.array_equal(packed.get(), want_packed))
            for dtype, bits in ((np.float32, np.uint32), (np.float64, np.uint64)):
                d_opts = DequantizeOptions(fmt, np.dtype(dtype), options.tensor_scale)
                want = REF.dequantize_blocks(want_codes, want_scales, d_opts)
                got = gpu.dequantize(cp.asarray(want_packed), cp.asarray(want_scales), d_opts)
                same = same and np.array_equal(got.get().view(bits), want.view(bits))
            if not same:
                mismatches += 1
                print(f"MISMATCH {name} {blocks.dtype} {options.rounding} {options.scale_mode} "
                      f"block_ids={options.block_ids is not None}")
    if gpu is None:
        return f"reference ran on {checked} cases (no GPU to compare; seed {seed})"
    return f"{checked - mismatches}/{checked} cases bit-identical (seed {seed})"


def _paths(a_fmt: Format, b_fmt: Format) -> list[str]:
    return ["two-pass", "simple"] + (["mma"] if a_fmt.is_ocp and b_fmt.is_ocp else [])


def check_matmul_bounds(gpu: Any | None) -> list[Row]:
    """Every path on every pair's check problem against its bound (on the GPU), or the
    two-pass plan of each check problem (without one: it must take the two-pass path)."""
    rows = []
    for fa, fb in MATMUL_PAIRS:
        a, b = cupy_backend.two_pass_check_problem(BLOCK_FORMATS[fa], BLOCK_FORMATS[fb])
        if gpu is None:
            planned = cupy_backend._plan_two_pass(np, a, b, min(a.padded_length,
                                                               b.padded_length))
            rows.append(Row(f"two-pass plan {fa} x {fb}", note=f"shifts {planned}"))
            assert planned is not None, (fa, fb)
            continue
        cp = gpu.xp
        on_device = [MatmulOperand(cp.asarray(op.packed), cp.asarray(op.scales), op.fmt,
                                   op.tensor_scale) for op in (a, b)]
        for path in _paths(a.fmt, b.fmt):
            got = mxarray_matmul(gpu, *on_device, path)
            problems = cupy_backend.matmul_violations(got.get()[0], a, b, path)
            rows.append(Row(f"bound {path} {fa} x {fb}",
                            note="within its bound" if not problems else "; ".join(problems)))
    return rows


def mxarray_matmul(gpu: Any, a: MatmulOperand, b: MatmulOperand, path: str) -> Any:
    """The backend's matmul on one path (what ``mxarray.core.matmul(path=...)`` calls)."""
    return gpu.matmul(a, b, cupy_backend.MatmulOptions(path))


def check_accumulation_model(gpu: Any | None) -> Row:
    """The two-pass path on :func:`truncation_adversary` data: within the two-pass bound,
    and whether the error exceeds the [dot] bound (truncating accumulation, as modelled)."""
    k = 4096
    a_vals, b_vals = truncation_adversary(np.random.default_rng(17), 64, k)
    fmt = FORMATS["mxfp8_e4m3"]
    ops = []
    for vals in (a_vals, b_vals):
        packed, scales = REF.quantize(vals.reshape(-1, 32), QuantizeOptions(fmt, "even", "floor",
                                                                            None, None))
        ops.append(MatmulOperand(packed.reshape(1, 64, -1), scales.reshape(1, 64, -1), fmt, None))
    assert np.array_equal(REF.dequantize(ops[0].packed.reshape(-1, 32), ops[0].scales.ravel(),
                                         DequantizeOptions(fmt, np.dtype(np.float32), None)),
                          a_vals.reshape(-1, 32)), "the adversary is not exact in mxfp8_e4m3"
    if gpu is None:
        return Row("accumulation model (truncation adversary, K=4096)", timed=True)
    cp = gpu.xp
    dev = [MatmulOperand(cp.asarray(o.packed), cp.asarray(o.scales), fmt, None) for o in ops]
    got = mxarray_matmul(gpu, *dev, "two-pass").get()[0]
    problems = cupy_backend.matmul_violations(got, *ops, "two-pass")
    beyond_dot = bool(cupy_backend.matmul_violations(got, *ops, "simple"))
    exact = a_vals.astype(np.float64) @ b_vals.astype(np.float64).T
    worst = float(np.max(np.abs(got - exact)) / (k * 2.0**-24))
    note = ("within the two-pass bound" if not problems else "; ".join(problems))
    note += (f"; largest error {worst:.2f} K 2^-24: "
             + ("beyond [dot]: the accumulator truncates, as modelled" if beyond_dot
                else "inside [dot]: this GPU's accumulation rounds better than the model"))
    return Row("accumulation model (truncation adversary, K=4096)", worst, "K 2^-24", note=note)


# --- timings ------------------------------------------------------------------------------


def gpu_time(fn: Callable[[], Any], repeat: int = REPEAT) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after one warm-up (CUDA events)."""
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


def _nbytes(a: Any) -> int:
    return int(a.packed.nbytes + a.scales.nbytes)


def bandwidth_rows(cp: Any) -> list[Row]:
    """Public quantize / dequantize against a device-to-device copy, same run."""
    x = cp.random.standard_normal(BANDWIDTH_ELEMENTS, dtype=cp.float32)
    dst = cp.empty_like(x)
    copy_s = gpu_time(lambda: dst.data.copy_from_device_async(x.data, x.nbytes))
    copy_gbs = 2 * x.nbytes / copy_s / 1e9
    rows = [Row("device copy 256 MiB", copy_gbs, "GB/s", note="baseline")]
    for name, (q_target, d_target) in BANDWIDTH_TARGETS.items():
        kw = {"tensor_scale": NVFP4_TENSOR_SCALE} if name == "nvfp4" else {}
        a = mxarray.quantize(x, name, **kw)
        moved = x.nbytes + _nbytes(a)
        t_q = gpu_time(lambda name=name, kw=kw: mxarray.quantize(x, name, **kw))
        gbs = moved / t_q / 1e9
        rows.append(Row(f"quantize float32 2^26 -> {name}", gbs, "GB/s", "device copy",
                        gbs / copy_gbs, q_target))
        t_d = gpu_time(lambda a=a: mxarray.dequantize(a))
        gbs = moved / t_d / 1e9
        rows.append(Row(f"dequantize {name} -> float32", gbs, "GB/s", "device copy",
                        gbs / copy_gbs, d_target))
    rows += torchao_rows(x, copy_gbs)
    return rows


def torchao_rows(x: Any, copy_gbs: float) -> list[Row]:
    """torchao's MX cast of the same float32 data (mxfp8 e4m3, blocks of 32), if importable."""
    try:
        import torch
        from torchao.prototype.mx_formats.mx_tensor import MXTensor
    except Exception as exc:  # not installed: say so in the table
        return [Row("torchao MX cast float32 -> mxfp8", note=f"not run: {type(exc).__name__}: "
                                                                f"{exc}")]
    try:
        t = torch.from_dlpack(x).reshape(-1, 1024)
        cast = lambda: MXTensor.to_mx(t, torch.float8_e4m3fn, 32)  # noqa: E731
        seconds = gpu_time(cast)
        moved = x.nbytes + x.size + x.size // 32
        gbs = moved / seconds / 1e9
        import torchao
        return [Row("torchao MX cast float32 -> mxfp8", gbs, "GB/s", "device copy",
                    gbs / copy_gbs, note=f"torchao {torchao.__version__}")]
    except Exception as exc:
        return [Row("torchao MX cast float32 -> mxfp8", note=f"failed: {type(exc).__name__}: "
                                                             f"{exc}")]


def _cublas_bf16_seconds(cp: Any, size: int) -> float:
    """cuBLAS bf16 x bf16 -> fp32 GEMM at size^3 (the two-pass path's own GEMM call)."""
    a = (cp.random.standard_normal((size, size), dtype=cp.float32).view(cp.uint32) >> 16
         ).astype(cp.uint16)
    out = cp.empty((size, size), dtype=cp.float32)
    return gpu_time(lambda: cupy_backend._gemm_bf16(a, a, out, size, False))


def _operands(cp: Any, size: int, fa: str, fb: str) -> tuple[Any, Any]:
    x = cp.random.standard_normal((size, size), dtype=cp.float32)
    kw = lambda name: {"tensor_scale": 1.0} if name == "nvfp4" else {}  # noqa: E731
    return (mxarray.quantize(x, fa, **kw(fa)), mxarray.quantize(x, fb, axis=0, **kw(fb)))


def matmul_rows(cp: Any, device_name: str, deadline: float) -> list[Row]:
    """MX matmul (two-pass) of every pair at each size against cuBLAS bf16, same run; and
    "dequantize + torch.matmul bf16" for mxfp8."""
    rows = []
    for size in MATMUL_SIZES:
        flops = 2.0 * size**3
        t_ref = _cublas_bf16_seconds(cp, size)
        rows.append(Row(f"cuBLAS bf16 GEMM fp32 out {size}^3", flops / t_ref / 1e12, "TFLOP/s",
                        note="baseline"))
        target = matmul_target(size, device_name)
        for fa, fb in MATMUL_PAIRS:
            metric = f"MX matmul two-pass {fa} x {fb} {size}^3"
            if time.perf_counter() > deadline:
                rows.append(Row(metric, note="skipped: time budget"))
                continue
            a, b = _operands(cp, size, fa, fb)
            t = gpu_time(lambda a=a, b=b: mxarray.core.matmul(a, b, path="two-pass"))
            rows.append(Row(metric, flops / t / 1e12, "TFLOP/s", "cuBLAS bf16", t_ref / t,
                            target))
        rows.append(_dequantize_torch_row(cp, size, t_ref))
    return rows


def _dequantize_torch_row(cp: Any, size: int, t_ref: float) -> Row:
    metric = f"dequantize + torch.matmul bf16, mxfp8_e4m3 {size}^3"
    try:
        import torch
    except Exception as exc:
        return Row(metric, note=f"not run: {type(exc).__name__}: {exc}")
    a, b = _operands(cp, size, "mxfp8_e4m3", "mxfp8_e4m3")

    def composed() -> Any:
        da = torch.from_dlpack(mxarray.dequantize(a)).to(torch.bfloat16)
        db = torch.from_dlpack(mxarray.dequantize(b)).to(torch.bfloat16)
        return torch.matmul(da, db)

    t = gpu_time(composed)
    return Row(metric, 2.0 * size**3 / t / 1e12, "TFLOP/s", "cuBLAS bf16", t_ref / t,
               note=f"torch {torch.__version__}")


# --- output ---------------------------------------------------------------------------------


def write_outputs(rows: list[Row], out_dir: Path, header: dict) -> tuple[Path, Path]:
    """The table as gpu_check.json and gpu_check.md in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {**header, "rows": [dict(dataclasses.asdict(r), status=r.status) for r in rows]}
    json_path, md_path = out_dir / "gpu_check.json", out_dir / "gpu_check.md"
    json_path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    lines = [f"GPU check: {header['device']} ({header['command']}, {header['date']})", "",
             "| metric | value | vs | ratio | target | status | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        value = "not measured: needs a GPU" if r.timed and header["dry_run"] else (
            "" if r.value is None else f"{r.value:.3g} {r.unit}")
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        target = "" if r.target is None else f">= {r.target:.2f}x"
        lines.append(f"| {r.metric} | {value} | {r.baseline} | {ratio} | {target} | {r.status} "
                     f"| {r.note} |")
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return json_path, md_path


def planned_rows() -> list[Row]:
    """The timing rows of a GPU run, unmeasured (what --dry-run lists)."""
    rows = [Row("device copy 256 MiB", note="baseline", timed=True)]
    for name, (q_target, d_target) in BANDWIDTH_TARGETS.items():
        rows += [Row(f"quantize float32 2^26 -> {name}", baseline="device copy",
                     target=q_target, timed=True),
                 Row(f"dequantize {name} -> float32", baseline="device copy", target=d_target,
                     timed=True)]
    rows.append(Row("torchao MX cast float32 -> mxfp8", baseline="device copy", timed=True))
    for size in MATMUL_SIZES:
        rows.append(Row(f"cuBLAS bf16 GEMM fp32 out {size}^3", note="baseline", timed=True))
        rows += [Row(f"MX matmul two-pass {fa} x {fb} {size}^3", baseline="cuBLAS bf16",
                     target=matmul_target(size, "H100"),
                     note="target 0.90x on H200" if size >= 8192 else "", timed=True)
                 for fa, fb in MATMUL_PAIRS]
        rows.append(Row(f"dequantize + torch.matmul bf16, mxfp8_e4m3 {size}^3",
                        baseline="cuBLAS bf16", timed=True))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="check the plumbing, no GPU")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for gpu_check.json/.md (default benchmarks/results, "
                             "a temporary directory with --dry-run)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ok, reason = cupy_backend.probe()
    seed = int(time.time_ns() % 2**32)
    if not args.dry_run and not ok:
        print(f"no usable GPU: {reason}")
        return 1
    rows: list[Row] = []
    if args.dry_run:
        try:
            rows.append(Row("nvrtc", note=compile_all()))
        except ImportError:
            rows.append(Row("nvrtc", note="skipped: CuPy not importable"))
        rows.append(Row("bit-equality", note=check_bits(None, seed)))
        rows += check_matmul_bounds(None)
        rows.append(check_accumulation_model(None))
        rows.append(Row("GPU tests", note="not run: needs a GPU"))
        rows += planned_rows()
    else:
        import cupy as cp

        gpu = cupy_backend.CupyBackend()
        rows.append(Row("GPU tests", note=run_gpu_tests()))
        rows.append(Row("bit-equality", note=check_bits(gpu, seed)))
        rows += check_matmul_bounds(gpu)
        rows.append(check_accumulation_model(gpu))
        rows += bandwidth_rows(cp)
        rows += matmul_rows(cp, reason, started + BUDGET_S)
    elapsed = time.perf_counter() - started
    rows.append(Row("wall time", elapsed, "s", note="limit 240 s"))
    header = {"device": reason if ok else "no GPU", "dry_run": args.dry_run, "seed": seed,
              "command": "python benchmarks/gpu_check.py" + (" --dry-run" if args.dry_run
                                                             else ""),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out_dir = args.out or (Path(tempfile.mkdtemp(prefix="gpu_check_")) if args.dry_run
                           else ROOT / "benchmarks" / "results")
    json_path, md_path = write_outputs(rows, out_dir, header)
    print(md_path.read_text(encoding="utf-8"))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
