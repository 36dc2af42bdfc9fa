"""The CuPy backend: thin launchers for the CUDA C++ kernels in ``backends/cuda/``.

All arithmetic lives in the shared ``__host__ __device__`` headers; this module only picks
a kernel, compiles it once per (source, formats) through :class:`cupy.RawModule` (CuPy
also caches the binary on disk) and launches it.  Importing this module never touches the
GPU: whether CuPy, a driver and a device are present is probed once, on the first call to
:meth:`CupyBackend.available`, and the answer (with the reason) is cached.

The general block formats MX9, MX6, MX4 and NVFP4 have their own quantize, dequantize,
pack and simple matmul kernels (``mx_block_*.cu``, ``mx_matmul_block.cu``); see
:meth:`CupyBackend.supports`.  The fused operations the core calls,
:meth:`~CupyBackend.quantize` and :meth:`~CupyBackend.dequantize`, run one thread per
block on packed bytes (``mx_packed.cu`` for the OCP formats, float64 input excepted;
``mx_block_packed.cu`` for the others); the primitives ``quantize_blocks`` /
``dequantize_blocks`` keep the lane-per-element kernels.

MX matmul has named paths (:attr:`CupyBackend.matmul_paths`), forceable per call with
``mxarray.core.matmul(a, b, path=...)``, per backend with ``CupyBackend(matmul_kernel=...)``
or by the environment variable ``MXARRAY_CUDA_MATMUL``:

``"two-pass"``
    every format pair: decode both operands to bfloat16 with the block scales folded in
    (``mx_fold_bf16.cu``), then one cuBLAS bf16 x bf16 -> float32 GEMM per K tile and an
    epilogue that removes the operands' shifts and applies NVFP4's tensor scales
    (:mod:`mxarray.backends._cuda_two_pass` plans it).  Operands whose scales no shift can
    fit into bfloat16's range, NaN scales and non-finite elements take the exact path.
    Its bound is spec/mx.toml's ``[dot_paths.two_pass]``.
``"mma"``
    OCP pairs: the tensor-core kernel (``mx_matmul_mma.cu``), the [dot] bound.
``"simple"``
    one thread per output, float64 accumulation (``mx_matmul_simple.cu``, and
    ``mx_matmul_block.cu`` for pairs with a general block format), the [dot] bound.
``"auto"`` (the default)
    products of at least :data:`TWO_PASS_MIN_MACS` multiply-adds (batch x M x N x K): the
    two-pass path once it has passed a self-check on the device for the format pair (a
    small problem compared with the exact result under its bound).  Smaller products, the
    two-pass path's fallbacks, and pairs whose check failed (a warning, once) take the
    exact path: the mma kernel for OCP pairs once it has passed its own self-check, else
    the simple kernel.  So small products meet [dot]; large ones the two-pass bound.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from typing import Any, Callable

import numpy as np

from .. import _cuda_sources
from ..formats import BLOCK_FORMATS, BLOCK_SIZE, ROUNDING_MODES, SCALE_MODES, Format
from . import _cuda_two_pass
from .base import (Backend, DequantizeOptions, MatmulOperand, MatmulOptions,
                   QuantizeOptions)

__all__ = ["BLOCK_KERNEL_FORMATS", "MATMUL_KERNELS", "TWO_PASS_MIN_MACS", "TWO_PASS_TILE_BYTES",
           "CupyBackend",
           "probe", "spec_bound_violations", "two_pass_check_problem", "matmul_violations"]

BLOCK_KERNEL_FORMATS = ("mx9", "mx6", "mx4", "nvfp4")
"""The general block formats with CUDA kernels for every path (besides the six OCP ones)."""

MATMUL_KERNELS = ("auto", "two-pass", "mma", "simple")
"""The matmul paths (``matmul_kernel``, ``MXARRAY_CUDA_MATMUL``, ``path=``); see the module
docstring."""
TWO_PASS_MIN_MACS = 1 << 24
"""``"auto"`` takes the two-pass path from this many multiply-adds (batch x M x N x K) up:
below it the two-pass path's fixed costs (launches, two host synchronisations) outweigh
the GEMM.  A first guess (256^3), to be tuned from ``benchmarks/gpu_check.py`` timings."""
TWO_PASS_TILE_BYTES = 1 << 28
"""The two-pass path's folded bfloat16 K tile of both operands takes at most this many bytes
(at least one block of each); tests lower it to force several tiles."""
# cuBLAS constants (cublas_api.h and library_types.h of CUDA 12): CUBLAS_OP_N/T,
# CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT, CUBLAS_POINTER_MODE_HOST.
_OP_N, _OP_T, _R_16BF, _R_32F, _COMPUTE_32F, _GEMM_DEFAULT = 0, 1, 14, 0, 68, -1
_POINTER_MODE_HOST = 0
_MATMUL_ENV = "MXARRAY_CUDA_MATMUL"
_THREADS = 256
_QUANTIZE_LANES = 8  # MX_QUANTIZE_LANES of mx_quantize.cu: threads per 32-element block
_DEQUANTIZE_WIDTH = 4  # MX_DEQUANTIZE_WIDTH of mx_dequantize.cu: codes per thread
_MMA_THREADS = 256  # MX_MMA_THREADS of backends/cuda/mx_mma_tile.cuh
_MMA_TILE = 128  # MX_MMA_BM = MX_MMA_BN
_INPUT_KERNELS = {
    np.dtype(np.float16): ("mx_quantize_f16", np.uint16),
    np.dtype(np.float32): ("mx_quantize_f32", np.uint32),
    np.dtype(np.float64): ("mx_quantize_f64", np.uint64),
}
_PACKED_QUANTIZE = {  # input dtype -> fused OCP quantize kernel of mx_packed.cu
    np.dtype(np.float16): "mx_quantize_packed_f16",
    np.dtype(np.float32): "mx_quantize_packed_f32",
}
_OUTPUT_KERNELS = {
    np.dtype(np.float32): ("mx_dequantize_f32", np.uint32),
    np.dtype(np.float64): ("mx_dequantize_f64", np.uint64),
}


@functools.cache
def probe() -> tuple[bool, str]:
    """Find out once whether CuPy and a usable CUDA device are here, and why not."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising anything
        return False, (f"CuPy is not importable ({type(exc).__name__}: {exc}); "
                       "pip install mxarray[cuda]")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, or a driver too old for this CuPy
        return False, f"CuPy found no usable CUDA driver ({exc})"
    if count == 0:
        return False, "CuPy found no CUDA device"
    try:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    except Exception as exc:
        return False, f"CuPy cannot query the CUDA device ({exc})"
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return True, f"{name} (sm_{props['major']}{props['minor']}), CuPy {cupy.__version__}"


# Held while a kernel module is built or the mma kernel is self-checked, so that threads
# arriving together do that once (functools.cache alone lets each of them run it).
_ONCE_LOCK = threading.RLock()


def _module(source: str, formats: tuple[Format, ...]) -> Any:
    """Compile ``source`` for ``formats`` (one per format macro of the source), once."""
    with _ONCE_LOCK:
        return _build_module(source, formats)


@functools.cache
def _build_module(source: str, formats: tuple[Format, ...]) -> Any:
    import cupy

    macros = _cuda_sources.KERNEL_SOURCES[source]
    options = ("-std=c++17", *_cuda_sources.compile_definitions(dict(zip(macros, formats))))
    return cupy.RawModule(code=_cuda_sources.read_source(source), options=options)


_MAX_GRID = 2**31 - 1  # CUDA's limit on gridDim.x


def _checked_grid(blocks: int) -> tuple[int]:
    """A 1-D grid of ``blocks`` thread blocks; ValueError beyond CUDA's grid limit (the
    kernels index in 64 bits, so the grid is the only bound on their size)."""
    if blocks > _MAX_GRID:
        raise ValueError(f"the launch needs {blocks} thread blocks, more than CUDA's grid "
                         f"limit of {_MAX_GRID}; split the array")
    return (blocks,)


def _grid(n_threads: int) -> tuple[int]:
    return _checked_grid(max(1, -(-n_threads // _THREADS)))


def _mma_grid(batch: int, m: int, n: int) -> tuple[int]:
    return _checked_grid(batch * -(-m // _MMA_TILE) * -(-n // _MMA_TILE))


def _launch_matmul(kernel_kind: str, a_codes: Any, a_scales: Any, a_fmt: Format, b_codes: Any,
                   b_scales: Any, b_fmt: Format) -> Any:
    """Run one matmul kernel on canonical, contiguous, 16-byte aligned CuPy operands."""
    import cupy as cp

    batch, m, n_kb, _ = a_codes.shape
    n = b_codes.shape[1]
    out = cp.empty((batch, m, n), dtype=cp.float32)
    if out.size:
        source = "mx_matmul_mma.cu" if kernel_kind == "mma" else "mx_matmul_simple.cu"
        kernel = _module(source, (a_fmt, b_fmt)).get_function(source[:-3])
        grid, block = ((_mma_grid(batch, m, n), (_MMA_THREADS,)) if kernel_kind == "mma"
                       else (_grid(out.size), (_THREADS,)))
        kernel(grid, block, (a_codes, a_scales, b_codes, b_scales, out.view(cp.uint32),
                             np.int64(batch), np.int64(m), np.int64(n), np.int64(n_kb)))
    return out


def _tensor_scale_bits(fmt: Format, tensor_scale: float | None) -> np.uint32:
    """The float32 bits of ``fmt``'s tensor scale (those of 1.0 for formats without one)."""
    if fmt.tensor_scale == "none":
        return np.float32(1.0).view(np.uint32)
    if tensor_scale is None:
        raise ValueError(f"{fmt.name} needs its per-tensor scale (tensor_scale=...)")
    return np.float32(tensor_scale).view(np.uint32)


def _launch_block_matmul(cp: Any, a_codes: Any, a_scales: Any, a_fmt: Format, a_ts: np.uint32,
                         b_codes: Any, b_scales: Any, b_fmt: Format, b_ts: np.uint32) -> Any:
    """The simple matmul for any pair of block formats; operand rows meet over the shorter
    padded length, as in the reference."""
    a_codes = cp.ascontiguousarray(cp.asarray(a_codes, dtype=a_fmt.code_dtype))
    b_codes = cp.ascontiguousarray(cp.asarray(b_codes, dtype=b_fmt.code_dtype))
    a_scales = cp.ascontiguousarray(cp.asarray(a_scales, dtype=cp.uint8))
    b_scales = cp.ascontiguousarray(cp.asarray(b_scales, dtype=cp.uint8))
    shapes_ok = (a_codes.ndim == 4 and b_codes.ndim == 4
                 and a_codes.shape[-1] == a_fmt.block_size
                 and b_codes.shape[-1] == b_fmt.block_size
                 and a_codes.shape[0] == b_codes.shape[0]
                 and a_scales.shape == a_codes.shape[:-1] and b_scales.shape == b_codes.shape[:-1])
    if not shapes_ok:
        raise ValueError("matmul operands are not canonical (B, M|N, KB, block_size) blocks")
    batch, m, a_kb, _ = a_codes.shape
    n, b_kb = b_codes.shape[1], b_codes.shape[2]
    a_len, b_len = a_kb * a_fmt.block_size, b_kb * b_fmt.block_size
    out = cp.empty((batch, m, n), dtype=cp.float32)
    if out.size:
        kernel = _module("mx_matmul_block.cu", (a_fmt, b_fmt)).get_function("mx_matmul_block")
        kernel(_grid(out.size), (_THREADS,),
               (a_codes, a_scales, b_codes, b_scales, out.view(cp.uint32), np.int64(batch),
                np.int64(m), np.int64(n), np.int64(a_len), np.int64(b_len),
                np.int64(min(a_len, b_len)), a_ts, b_ts))
    return out


def _self_check_problem(a_fmt: Format, b_fmt: Format) -> tuple[np.ndarray, ...]:
    """A small problem over two tile rows and columns with tiny, huge and NaN scales."""
    from ..backends.numpy_backend import NumpyBackend

    ref = NumpyBackend()
    rng = np.random.default_rng(20260601)
    m, n, kb = 150, 140, 5

    def operand(rows: int, fmt: Format) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((rows * kb, BLOCK_SIZE))
        x *= np.ldexp(1.0, rng.integers(-12, 13, (rows * kb, 1)))
        codes, scales = ref.quantize_blocks(
            x.astype(np.float32), QuantizeOptions(fmt, "even", "floor", None, None))
        return codes.reshape(1, rows, kb, BLOCK_SIZE), scales.reshape(1, rows, kb)

    ac, as_ = operand(m, a_fmt)
    bc, bs = operand(n, b_fmt)
    as_[0, 130, 1], bs[0, 5, 0] = 0, 0  # the smallest scales, on the mma path
    as_[0, 7, 2] = 254  # the largest: the first tile row takes the exact path
    as_[0, 140, 4] = 255  # a NaN row
    return ac, as_, bc, bs


_OVERFLOW = 2.0**128 - 2.0**103  # float32 rounds magnitudes from here up to infinity


def spec_bound_violations(got: np.ndarray, ac: np.ndarray, as_: np.ndarray, a_fmt: Format,
                          bc: np.ndarray, bs: np.ndarray, b_fmt: Format, *,
                          a_tensor_scale: float | None = None,
                          b_tensor_scale: float | None = None,
                          error_bound: Callable[[int, np.ndarray], np.ndarray] | None = None
                          ) -> list[str]:
    """How a float32 MX matmul result breaks spec/mx.toml's [dot] rule (empty if it does not).

    ``ac, as_`` and ``bc, bs`` are one batch of canonical operands, ``(1, M|N, KB, block
    size)`` codes and ``(1, M|N, KB)`` scales (with the tensor scales of formats that have
    one); ``got`` is ``(M, N)``.  The rule ([dot], and [dot_block_formats] for the general
    block formats, whose dequantized values include microexponents and tensor scales): NaN
    exactly where the reference has NaN; where the exact (float64) result is infinite, the
    reference's infinity; elsewhere ``|C - C_exact| <= (K + 2) 2^-24 sum |A||B| +
    (2K + 1) 2^-150``, an infinity counting as within the bound when the bound reaches
    float32's overflow threshold on its side.  Rows of different padded lengths meet over
    the shorter one, as in the reference.  ``error_bound(K, sum |A||B|)``, when given,
    replaces the [dot] bound (the two-pass path's bound, for instance).
    """
    from ..backends.numpy_backend import NumpyBackend

    ref = NumpyBackend()

    def operand(codes: np.ndarray, sc: np.ndarray, fmt: Format, ts: float | None
                ) -> MatmulOperand:
        packed = ref.pack(codes.reshape(codes.shape[:2] + (-1,)), fmt)
        return MatmulOperand(packed, sc, fmt, None if ts is None else np.float32(ts))

    want = ref.matmul(operand(ac, as_, a_fmt, a_tensor_scale),
                      operand(bc, bs, b_fmt, b_tensor_scale), MatmulOptions())[0]

    def values(codes: np.ndarray, sc: np.ndarray, fmt: Format, ts: float | None) -> np.ndarray:
        options = DequantizeOptions(fmt, np.dtype(np.float64),
                                    None if ts is None else np.float32(ts))
        flat = ref.dequantize_blocks(codes.reshape(-1, fmt.block_size), sc.reshape(-1), options)
        return flat.reshape(codes.shape[1], -1)

    da = values(ac, as_, a_fmt, a_tensor_scale)
    db = values(bc, bs, b_fmt, b_tensor_scale)
    k = min(da.shape[1], db.shape[1])
    da, db = da[:, :k], db[:, :k]
    problems = []
    with np.errstate(invalid="ignore", over="ignore"):
        exact = da @ db.T
        abs_dot = np.abs(da) @ np.abs(db).T
        bound = (error_bound(k, abs_dot) if error_bound is not None
                 else (k + 2) * 2.0**-24 * abs_dot + (2 * k + 1) * 2.0**-150)
        got64 = got.astype(np.float64)
        err = np.abs(got64 - exact)
        reach = np.sign(got64) * exact + bound  # how far the bound reaches towards got's side
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        problems.append(f"NaN at {int(np.sum(np.isnan(got) != np.isnan(want)))} outputs "
                        "where the reference has none, or the reverse")
    special = ~np.isfinite(exact) & ~np.isnan(want)
    if not np.array_equal(got[special], want[special]):
        problems.append("an infinite exact result not reproduced")
    finite = np.isfinite(exact)
    over = finite & np.isinf(got)
    if np.any(reach[over] < _OVERFLOW):
        problems.append("an infinity where the bound stays below float32's overflow")
    close = finite & np.isfinite(got)
    if np.any(err[close] > bound[close]):
        problems.append(f"beyond the bound by up to {np.max(err[close] - bound[close])}")
    return problems


def _agrees_with_exact(got: np.ndarray, ac: np.ndarray, as_: np.ndarray, a_fmt: Format,
                       bc: np.ndarray, bs: np.ndarray, b_fmt: Format) -> bool:
    return not spec_bound_violations(got, ac, as_, a_fmt, bc, bs, b_fmt)


def _mma_verified(device_id: int, a_fmt: Format, b_fmt: Format) -> bool:
    """Run the mma kernel once on this device and format pair against the exact result."""
    with _ONCE_LOCK:
        return _mma_check(device_id, a_fmt, b_fmt)


@functools.cache
def _mma_check(device_id: int, a_fmt: Format, b_fmt: Format) -> bool:
    import cupy as cp

    ac, as_, bc, bs = _self_check_problem(a_fmt, b_fmt)
    try:
        with cp.cuda.Device(device_id):
            got = cp.asnumpy(_launch_matmul("mma", cp.asarray(ac), cp.asarray(as_), a_fmt,
                                            cp.asarray(bc), cp.asarray(bs), b_fmt))[0]
        problem = None if _agrees_with_exact(got, ac, as_, a_fmt, bc, bs, b_fmt) else \
            "results beyond the spec's error bound"
    except Exception as exc:  # no mma.sync on this GPU (before sm_80): compile/launch error
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        warnings.warn(
            f"mxarray: the tensor-core MX matmul kernel failed its self-check on CUDA device "
            f"{device_id} for {a_fmt.name} x {b_fmt.name} ({problem}); using the simple "
            f"kernel (set {_MATMUL_ENV}=simple to skip the check)",
            RuntimeWarning, stacklevel=3,
        )
    return problem is None


# --- the two-pass path -----------------------------------------------------------------


def _plan_two_pass(xp: Any, a: MatmulOperand, b: MatmulOperand, k: int
                   ) -> tuple[int, int] | None:
    """The operands' shifts (:func:`_cuda_two_pass.plan_shifts`) from their scale bytes:
    a few reductions on the device and one small copy to the host."""
    if not (_cuda_two_pass.fold_is_exact(a.fmt) and _cuda_two_pass.fold_is_exact(b.fmt)):
        return None
    stats = []
    for op in (a, b):
        lo, hi, _ = _cuda_two_pass.scale_tables(op.fmt)
        flat = xp.asarray(op.scales).ravel()
        stats += [xp.asarray(lo).take(flat).min(), xp.asarray(hi).take(flat).max()]
    lo_a, hi_a, lo_b, hi_b = (int(v) for v in _to_host(xp, xp.stack(stats)))
    return _cuda_two_pass.plan_shifts(
        _cuda_two_pass.operand_exponents(a.fmt, lo_a, hi_a),
        _cuda_two_pass.operand_exponents(b.fmt, lo_b, hi_b), k)


def _to_host(xp: Any, a: Any) -> np.ndarray:
    """``a`` as a NumPy array (copied from the device for CuPy)."""
    return a if xp is np else xp.asnumpy(a)


def _fold_source(backend: Backend, op: MatmulOperand) -> tuple[Any, str]:
    """What the fold kernel reads for ``op`` as ``(batch, rows, bytes)`` uint8, and the
    kernel: OCP packed bytes, or the unpacked codes of a general block format."""
    xp = backend.xp
    if op.fmt.is_ocp:
        return _aligned(op.packed, xp), "mx_fold_bf16_packed"
    batch, rows, _ = op.scales.shape
    codes = backend.unpack(op.packed, op.fmt)
    return _aligned(codes.view(xp.uint8).reshape(batch, rows, -1), xp), "mx_fold_bf16_codes"


def _fold(xp: Any, src: Any, kernel_name: str, scales: Any, fmt: Format, k0: int, k1: int,
          shift: int, flag: Any) -> Any:
    """Fold the blocks of ``src`` (one batch item, ``(rows, bytes)``) covering K range
    ``[k0, k1)`` to bfloat16 bits ``(rows, blocks * block_size)`` uint16."""
    cp = xp
    rows, n_kb = scales.shape
    size = fmt.block_size
    kb0, kb1 = k0 // size, -(-k1 // size)
    out = cp.empty((rows, (kb1 - kb0) * size), dtype=cp.uint16)
    kernel = _module("mx_fold_bf16.cu", (fmt,)).get_function(kernel_name)
    min_byte = _cuda_two_pass.scale_tables(fmt)[2]
    kernel(_grid(rows * (kb1 - kb0)), (_THREADS,),
           (src, cp.ascontiguousarray(scales), out, np.int64(rows), np.int64(n_kb),
            np.int64(kb0), np.int64(kb1 - kb0), np.int32(shift), np.int32(min_byte), flag))
    return out


def _gemm_bf16(a: Any, b: Any, out: Any, k: int, accumulate: bool) -> None:
    """``out (M, N) float32 [+]= a[:, :k] @ b[:, :k].T`` for bfloat16 bits ``a (M, lda)``
    and ``b (N, ldb)``: one cuBLAS GEMM (``cublasGemmEx``, bf16 inputs, float32 compute and
    output), run as the column-major ``out^T = op_T(b) op_N(a)``."""
    import cupy as cp
    from cupy_backends.cuda.libs import cublas

    m, lda = a.shape
    n, ldb = b.shape
    alpha = np.ones(1, np.float32)
    beta = np.full(1, 1.0 if accumulate else 0.0, np.float32)
    handle = cp.cuda.device.get_cublas_handle()
    mode = cublas.getPointerMode(handle)
    cublas.setPointerMode(handle, _POINTER_MODE_HOST)
    try:
        cublas.gemmEx(handle, _OP_T, _OP_N, n, m, k, alpha.ctypes.data, b.data.ptr, _R_16BF,
                      ldb, a.data.ptr, _R_16BF, lda, beta.ctypes.data, out.data.ptr, _R_32F, n,
                      _COMPUTE_32F, _GEMM_DEFAULT)
    finally:
        cublas.setPointerMode(handle, mode)


def _two_pass(backend: Backend, a: MatmulOperand, b: MatmulOperand) -> Any | None:
    """The two-pass product ``(batch, M, N)`` float32, or None where the exact path must
    compute it (no shift fits the scales, a NaN scale, a non-finite element, an uncovered
    block)."""
    cp = backend.xp
    batch, m, _ = a.scales.shape
    n = b.scales.shape[1]
    k = min(a.padded_length, b.padded_length)
    out = cp.zeros((batch, m, n), dtype=cp.float32)
    if out.size == 0 or k == 0:
        return out
    shifts = _plan_two_pass(cp, a, b, k)
    if shifts is None:
        return None
    flag = cp.zeros(1, dtype=cp.uint32)
    (a_src, a_kernel), (b_src, b_kernel) = _fold_source(backend, a), _fold_source(backend, b)
    tiles = _cuda_two_pass.k_tiles(k, a.fmt.block_size, b.fmt.block_size, m + n,
                                   TWO_PASS_TILE_BYTES)
    for i in range(batch):
        for t, (k0, k1) in enumerate(tiles):
            fa = _fold(cp, a_src[i], a_kernel, a.scales[i], a.fmt, k0, k1, shifts[0], flag)
            fb = _fold(cp, b_src[i], b_kernel, b.scales[i], b.fmt, k0, k1, shifts[1], flag)
            _gemm_bf16(fa, fb, out[i], k1 - k0, accumulate=t > 0)
    epilogue = _module("mx_fold_bf16.cu", (a.fmt,)).get_function("mx_two_pass_epilogue")
    epilogue(_grid(out.size), (_THREADS,),
             (out.view(cp.uint32), np.int64(out.size), np.int32(shifts[0] + shifts[1]),
              _tensor_scale_bits(a.fmt, a.tensor_scale),
              _tensor_scale_bits(b.fmt, b.tensor_scale)))
    return None if int(flag[0]) else out


def two_pass_check_problem(a_fmt: Format, b_fmt: Format) -> tuple[MatmulOperand, ...]:
    """Host operands (one batch item, M = 150, N = 140, K = 160) for the two-pass
    self-check: random values spread over 2^+-12 per row, quantized by the reference
    (tensor scales 0.75 and 1.5 for formats that have one)."""
    from ..backends.numpy_backend import NumpyBackend

    ref = NumpyBackend()
    rng = np.random.default_rng(20261207)

    def operand(rows: int, fmt: Format, ts: float) -> MatmulOperand:
        kb = 160 // fmt.block_size
        x = rng.standard_normal((rows, kb * fmt.block_size))
        x *= np.ldexp(1.0, rng.integers(-12, 13, (rows, 1)))
        tensor_scale = np.float32(ts) if fmt.tensor_scale != "none" else None
        options = QuantizeOptions(fmt, "even", "floor", None, tensor_scale)
        packed, scales = ref.quantize(x.reshape(-1, fmt.block_size).astype(np.float32),
                                      options)
        return MatmulOperand(packed.reshape(1, rows, -1), scales.reshape(1, rows, kb), fmt,
                             tensor_scale)

    return operand(150, a_fmt, 0.75), operand(140, b_fmt, 1.5)


def matmul_violations(got: np.ndarray, a: MatmulOperand, b: MatmulOperand, path: str
                      ) -> list[str]:
    """How a result ``got`` (M, N) of host operands (one batch item) breaks the bound of
    matmul path ``path``: the two-pass bound (:func:`_cuda_two_pass.two_pass_error_bound`)
    for ``"two-pass"``, else the [dot] bound; empty if it does not."""
    from ..backends.numpy_backend import NumpyBackend

    ref = NumpyBackend()

    def codes(op: MatmulOperand) -> np.ndarray:
        rows, kb = op.scales.shape[1:]
        return ref.unpack(op.packed, op.fmt).reshape(1, rows, kb, op.fmt.block_size)

    scaled = a.tensor_scale is not None or b.tensor_scale is not None

    def two_pass_bound(k: int, abs_dot: np.ndarray) -> np.ndarray:
        return _cuda_two_pass.two_pass_error_bound(k, abs_dot, scaled)

    return spec_bound_violations(
        got, codes(a), a.scales, a.fmt, codes(b), b.scales, b.fmt,
        a_tensor_scale=a.tensor_scale, b_tensor_scale=b.tensor_scale,
        error_bound=two_pass_bound if path == "two-pass" else None)


def _two_pass_verified(cp: Any, a_fmt: Format, b_fmt: Format) -> bool:
    """Run the two-pass path once on the current device and format pair against the exact
    result (``cp``: the cupy module)."""
    with _ONCE_LOCK:
        return _two_pass_check(cp.cuda.Device().id, a_fmt, b_fmt)


@functools.cache
def _two_pass_check(device_id: int, a_fmt: Format, b_fmt: Format) -> bool:
    import cupy as cp

    backend = CupyBackend(matmul_kernel="two-pass")
    a, b = two_pass_check_problem(a_fmt, b_fmt)
    try:
        with cp.cuda.Device(device_id):
            on_device = [MatmulOperand(cp.asarray(op.packed), cp.asarray(op.scales), op.fmt,
                                       op.tensor_scale) for op in (a, b)]
            got = _two_pass(backend, *on_device)
        if got is None:
            problem = "the check's operands did not take the two-pass path"
        else:
            violations = matmul_violations(cp.asnumpy(got)[0], a, b, "two-pass")
            problem = "; ".join(violations) if violations else None
    except Exception as exc:  # no cuBLAS, or a launch error
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        warnings.warn(
            f"mxarray: the two-pass MX matmul failed its self-check on CUDA device {device_id} "
            f"for {a_fmt.name} x {b_fmt.name} ({problem}); using the exact path (set "
            f"{_MATMUL_ENV}=mma or simple to skip the check)",
            RuntimeWarning, stacklevel=3,
        )
    return problem is None


def _is_aligned(a: Any, alignment: int) -> bool:
    """Whether the data of ``a`` (CuPy, or NumPy in the CPU launch checks) start on a
    multiple of ``alignment`` bytes."""
    data = a.data  # a CuPy MemoryPointer; a NumPy buffer in the CPU launch check
    address = data.ptr if hasattr(data, "ptr") else a.ctypes.data
    return address % alignment == 0


def _starting_on(a: Any, alignment: int) -> Any:
    """The C-contiguous array ``a``, or a copy of it if its data do not start on a multiple
    of ``alignment`` bytes (the vector loads of the OCP kernels need it)."""
    return a if _is_aligned(a, alignment) else a.copy()


def _aligned(a: Any, xp: Any = None) -> Any:
    """``a`` as a C-contiguous uint8 array of ``xp`` (default CuPy) whose data start on 16
    bytes (the mma and fold kernels read 16 bytes at a time)."""
    if xp is None:
        import cupy as xp

    return _starting_on(xp.ascontiguousarray(xp.asarray(a, dtype=xp.uint8)), 16)


class CupyBackend(Backend):
    """The backend contract on CuPy arrays, bit-identical to the NumPy reference.

    Parameters
    ----------
    matmul_kernel : {"auto", "two-pass", "mma", "simple"}, optional
        The default MX matmul path (see the module docstring): ``"auto"`` (default) takes
        the two-pass path where it has passed its self-check on the device, else the exact
        path; the others force one.  ``None`` reads ``MXARRAY_CUDA_MATMUL`` (default
        auto).  ``mxarray.core.matmul(..., path=...)`` overrides it per call.

    Examples
    --------
    >>> from mxarray.backends.cupy_backend import CupyBackend
    >>> CupyBackend(matmul_kernel="simple").matmul_kernel
    'simple'
    """

    name = "cupy"
    matmul_paths = MATMUL_KERNELS

    def __init__(self, matmul_kernel: str | None = None) -> None:
        kind = matmul_kernel if matmul_kernel is not None else os.environ.get(_MATMUL_ENV, "auto")
        if kind not in MATMUL_KERNELS:
            source = "matmul_kernel" if matmul_kernel is not None else _MATMUL_ENV
            raise ValueError(f"{source} must be one of {MATMUL_KERNELS}, got {kind!r}")
        self.matmul_kernel = kind

    @property
    def xp(self) -> Any:
        """The ``cupy`` module (imported on first use)."""
        import cupy

        return cupy

    @staticmethod
    def available() -> tuple[bool, str]:
        """Whether CuPy and a CUDA device are usable here, and why (not); probed once."""
        return probe()

    def supports(self, fmt: Format) -> bool:
        """Whether every path here has a kernel for ``fmt``: the six OCP formats and
        MX9, MX6, MX4 and NVFP4 (registered formats run on the NumPy reference).

        Examples
        --------
        >>> import mxarray
        >>> from mxarray.backends.cupy_backend import CupyBackend
        >>> CupyBackend().supports(mxarray.get_format("nvfp4"))
        True
        """
        return fmt.is_ocp or any(fmt is BLOCK_FORMATS.get(name) for name in BLOCK_KERNEL_FORMATS)

    def quantize_blocks(self, blocks: Any, options: QuantizeOptions) -> tuple[Any, Any]:
        """Quantize ``(n, block_size)`` float16/32/64 rows on the GPU."""
        cp = self.xp
        fmt, rounding, seed = options.fmt, options.rounding, options.seed
        blocks = cp.ascontiguousarray(cp.asarray(blocks))
        size = fmt.block_size
        n = blocks.shape[0]
        ids = self._block_ids(options.block_ids, rounding)
        kernel_name, bits = _INPUT_KERNELS[blocks.dtype]
        codes = cp.empty((n, size), dtype=fmt.code_dtype)
        scales = cp.empty((n,), dtype=cp.uint8)
        if n:
            if fmt.is_ocp:  # vector loads of 4 elements, at most 16 bytes
                blocks = _starting_on(blocks, min(4 * blocks.itemsize, 16))
            args = (blocks.view(bits), codes, scales, np.int64(n),
                    np.int32(ROUNDING_MODES.index(rounding)),
                    np.int32(SCALE_MODES.index(options.scale_mode)), np.uint64(seed or 0), ids)
            if fmt.is_ocp:
                kernel = _module("mx_quantize.cu", (fmt,)).get_function(kernel_name)
                n_threads = n * _QUANTIZE_LANES
            else:
                kernel = _module("mx_block_quantize.cu", (fmt,)).get_function(
                    kernel_name.replace("mx_", "mx_block_", 1))
                args += (_tensor_scale_bits(fmt, options.tensor_scale),)
                n_threads = n * size
            kernel(_grid(n_threads), (_THREADS,), args)
        return codes, scales

    def quantize(self, blocks: Any, options: QuantizeOptions,
                 out: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
        """Packed codes and scale bytes in one pass, one thread per block: the OCP formats
        from float16/float32 (``mx_packed.cu``; float64 quantizes to codes and packs, the
        contract's default) and MX9/MX6/MX4/NVFP4 from any input (``mx_block_packed.cu``)."""
        cp = self.xp
        fmt = options.fmt
        blocks = cp.ascontiguousarray(cp.asarray(blocks))
        if fmt.is_ocp:
            name = _PACKED_QUANTIZE.get(blocks.dtype)
            if name is None:
                return super().quantize(blocks, options, out)
            source, extra, aligned_out = "mx_packed.cu", (), 16
        else:
            name = "mx_block_quantize_packed_" + _INPUT_KERNELS[blocks.dtype][0][-3:]
            extra = (_tensor_scale_bits(fmt, options.tensor_scale),)
            source, aligned_out = "mx_block_packed.cu", 1  # byte stores
        n = blocks.shape[0]
        if out is not None and _is_aligned(out[0], aligned_out):
            packed, scales = out
        else:
            packed = cp.empty((n, fmt.bytes_per_block), dtype=cp.uint8)
            scales = cp.empty((n,), dtype=cp.uint8)
        if n:
            kernel = _module(source, (fmt,)).get_function(name)
            kernel(_grid(n), (_THREADS,),
                   (_starting_on(blocks, 16), packed, scales, np.int64(n),
                    np.int32(ROUNDING_MODES.index(options.rounding)),
                    np.int32(SCALE_MODES.index(options.scale_mode)),
                    np.uint64(options.seed or 0),
                    self._block_ids(options.block_ids, options.rounding)) + extra)
        if out is not None and out[0] is not packed:
            out[0][...] = packed
            out[1][...] = scales
            return out
        return packed, scales

    def dequantize(self, packed: Any, scales: Any, options: DequantizeOptions,
                   out: Any = None) -> Any:
        """Values of packed rows in one pass, one thread per block: ``mx_packed.cu`` for
        the OCP formats, ``mx_block_packed.cu`` for MX9/MX6/MX4/NVFP4."""
        cp = self.xp
        fmt = options.fmt
        scales = cp.ascontiguousarray(cp.asarray(scales, dtype=cp.uint8))
        n = scales.shape[0]
        values = out if out is not None and _is_aligned(out, 16) else \
            cp.empty((n, fmt.block_size), dtype=options.dtype)
        suffix = "f32" if options.dtype == np.float32 else "f64"
        if n and fmt.is_ocp:
            kernel = _module("mx_packed.cu", (fmt,)).get_function(f"mx_dequantize_packed_{suffix}")
            kernel(_grid(n), (_THREADS,), (_aligned(packed, cp), scales, values, np.int64(n)))
        elif n:
            kernel = _module("mx_block_packed.cu", (fmt,)).get_function(
                f"mx_block_dequantize_packed_{suffix}")
            kernel(_grid(n), (_THREADS,),
                   (_aligned(packed, cp), scales, values, np.int64(n),
                    _tensor_scale_bits(fmt, options.tensor_scale)))
        if out is not None and out is not values:
            out[...] = values
            return out
        return values

    def _block_ids(self, block_ids: Any, rounding: str) -> Any:
        """``block_ids`` as a uint64 CuPy array, or an empty one (a null pointer: the
        kernels then number the rows 0 .. n-1)."""
        cp = self.xp
        if block_ids is None or rounding != "stochastic":
            return cp.empty((0,), dtype=cp.uint64)
        return cp.ascontiguousarray(cp.asarray(block_ids, dtype=cp.uint64))

    def dequantize_blocks(self, codes: Any, scales: Any, options: DequantizeOptions) -> Any:
        """Exact ``decode(code) * scale value (* tensor scale)`` as float32 or float64."""
        cp = self.xp
        fmt, dtype = options.fmt, options.dtype
        codes = cp.ascontiguousarray(cp.asarray(codes, dtype=fmt.code_dtype))
        scales = cp.ascontiguousarray(cp.asarray(scales, dtype=cp.uint8))
        kernel_name, bits = _OUTPUT_KERNELS[dtype]
        out = cp.empty(codes.shape, dtype=dtype)
        if codes.size and fmt.is_ocp:  # 4 codes per thread, read as one 4-byte word
            n_groups = codes.size // _DEQUANTIZE_WIDTH
            kernel = _module("mx_dequantize.cu", (fmt,)).get_function(kernel_name)
            kernel(_grid(n_groups), (_THREADS,), (_starting_on(codes, _DEQUANTIZE_WIDTH), scales,
                                                  out.view(bits), np.int64(n_groups)))
        elif codes.size:
            kernel = _module("mx_block_dequantize.cu", (fmt,)).get_function(
                kernel_name.replace("mx_", "mx_block_", 1))
            kernel(_grid(codes.size), (_THREADS,),
                   (codes, scales, out.view(bits), np.int64(codes.size),
                    _tensor_scale_bits(fmt, options.tensor_scale)))
        return out

    def pack(self, codes: Any, fmt: Format) -> Any:
        """Pack codes along the last axis into the format's byte layout."""
        if fmt.is_ocp:
            return self._repack(codes, fmt, "mx_pack", fmt.layout.elements, fmt.layout.bytes)
        return self._repack(codes, fmt, "mx_block_pack", fmt.block_size, fmt.bytes_per_block)

    def unpack(self, packed: Any, fmt: Format) -> Any:
        """Inverse of :meth:`pack`: one code (``fmt.code_dtype``) per element."""
        if fmt.is_ocp:
            return self._repack(packed, fmt, "mx_unpack", fmt.layout.bytes, fmt.layout.elements)
        return self._repack(packed, fmt, "mx_block_unpack", fmt.bytes_per_block, fmt.block_size)

    def _repack(self, src: Any, fmt: Format, kernel_name: str, per_in: int, per_out: int) -> Any:
        """Run a pack (codes to bytes) or unpack kernel over groups of ``per_in`` items."""
        cp = self.xp
        packing = "unpack" not in kernel_name
        src_dtype, out_dtype = ((fmt.code_dtype, np.uint8) if packing
                                else (np.uint8, fmt.code_dtype))
        src = cp.ascontiguousarray(cp.asarray(src, dtype=src_dtype))
        if per_in == per_out and src_dtype == out_dtype:
            return src.copy()
        if src.ndim == 0 or src.shape[-1] % per_in:
            raise ValueError(f"the last axis of {src.shape} is not a multiple of {per_in}")
        n_groups = src.size // per_in
        out = cp.empty(src.shape[:-1] + (src.shape[-1] // per_in * per_out,), dtype=out_dtype)
        if n_groups:
            source = "mx_pack.cu" if fmt.is_ocp else "mx_block_pack.cu"
            kernel = _module(source, (fmt,)).get_function(kernel_name)
            kernel(_grid(n_groups), (_THREADS,), (src, out, np.int64(n_groups)))
        return out

    def matmul(self, a: MatmulOperand, b: MatmulOperand, options: MatmulOptions) -> Any:
        """MX matmul of canonical operands on the path ``options.path`` (default the
        backend's ``matmul_kernel``); ``(B, M, N)`` float32.

        Raises
        ------
        ValueError
            For the ``"mma"`` path with a general block format (it serves OCP pairs).
        """
        cp = self.xp
        kind = options.path or self.matmul_kernel
        if kind == "mma" and not (a.fmt.is_ocp and b.fmt.is_ocp):
            raise ValueError(f"the mma matmul path serves pairs of OCP formats only, not "
                             f"{a.fmt.name} x {b.fmt.name}; use two-pass or simple")
        batch, m, _ = a.scales.shape
        macs = batch * m * int(b.scales.shape[1]) * min(a.padded_length, b.padded_length)
        if kind == "two-pass" or (kind == "auto" and macs >= TWO_PASS_MIN_MACS
                                  and _two_pass_verified(cp, a.fmt, b.fmt)):
            out = _two_pass(self, a, b)
            if out is not None:
                return out
            kind = "auto"  # the exact path
        return self._exact_matmul(a, b, kind)

    def _exact_matmul(self, a: MatmulOperand, b: MatmulOperand, kind: str) -> Any:
        """The [dot]-bound paths: ``"mma"``, ``"simple"``, or ``"auto"`` (mma for OCP
        pairs where it passed its self-check, else simple; simple for block formats)."""
        a_fmt, b_fmt = a.fmt, b.fmt
        a_codes = self.unpack(a.packed, a_fmt).reshape(tuple(a.scales.shape) + (a_fmt.block_size,))
        b_codes = self.unpack(b.packed, b_fmt).reshape(tuple(b.scales.shape) + (b_fmt.block_size,))
        a_scales, b_scales = a.scales, b.scales
        if not (a_fmt.is_ocp and b_fmt.is_ocp):
            return _launch_block_matmul(
                self.xp, a_codes, a_scales, a_fmt, _tensor_scale_bits(a_fmt, a.tensor_scale),
                b_codes, b_scales, b_fmt, _tensor_scale_bits(b_fmt, b.tensor_scale))
        cp = self.xp
        a_codes, b_codes = _aligned(a_codes), _aligned(b_codes)
        a_scales, b_scales = _aligned(a_scales), _aligned(b_scales)
        if a_codes.ndim != 4 or a_codes.shape[-1] != BLOCK_SIZE:
            raise ValueError("matmul operands are not canonical (B, M|N, KB, block_size) blocks")
        batch, m, n_kb, _ = a_codes.shape
        n = b_codes.shape[1] if b_codes.ndim == 4 else -1
        if b_codes.shape != (batch, n, n_kb, BLOCK_SIZE) or a_scales.shape != (batch, m, n_kb) \
                or b_scales.shape != (batch, n, n_kb):
            raise ValueError("matmul operands are not canonical (B, M|N, KB, block_size) blocks")
        if kind == "auto":
            verified = _mma_verified(cp.cuda.Device().id, a_fmt, b_fmt)
            kind = "mma" if verified else "simple"
        return _launch_matmul(kind, a_codes, a_scales, a_fmt, b_codes, b_scales, b_fmt)
