"""The CuPy backend: thin launchers for the CUDA C++ kernels in ``backends/cuda/``.

All arithmetic lives in the shared ``__host__ __device__`` headers; this module only picks
a kernel, compiles it once per (source, formats) through :class:`cupy.RawModule` (CuPy
also caches the binary on disk) and launches it.  Importing this module never touches the
GPU: whether CuPy, a driver and a device are present is probed once, on the first call to
:meth:`CupyBackend.available`, and the answer (with the reason) is cached.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import _cuda_sources
from ..formats import BLOCK_SIZE, ROUNDING_MODES, SCALE_MODES, Format

__all__ = ["CupyBackend", "probe"]

_THREADS = 256
_INPUT_KERNELS = {
    np.dtype(np.float16): ("mx_quantize_f16", np.uint16),
    np.dtype(np.float32): ("mx_quantize_f32", np.uint32),
    np.dtype(np.float64): ("mx_quantize_f64", np.uint64),
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


@functools.cache
def _module(source: str, formats: tuple[Format, ...]) -> Any:
    """Compile ``source`` for ``formats`` (one per format macro of the source), once."""
    import cupy

    macros = _cuda_sources.KERNEL_SOURCES[source]
    options = ("-std=c++17", *_cuda_sources.compile_definitions(dict(zip(macros, formats))))
    return cupy.RawModule(code=_cuda_sources.read_source(source), options=options)


def _grid(n_threads: int) -> tuple[int]:
    return (max(1, -(-n_threads // _THREADS)),)


class CupyBackend:
    """The backend interface on CuPy arrays, bit-identical to the NumPy reference."""

    name = "cupy"

    @property
    def xp(self) -> Any:
        """The ``cupy`` module (imported on first use)."""
        import cupy

        return cupy

    @staticmethod
    def available() -> tuple[bool, str]:
        """Whether CuPy and a CUDA device are usable here, and why (not); probed once."""
        return probe()

    def quantize_blocks(
        self, blocks: Any, fmt: Format, rounding: str, scale_mode: str, seed: int | None
    ) -> tuple[Any, Any]:
        """Quantize ``(n, block_size)`` float16/32/64 rows on the GPU."""
        cp = self.xp
        blocks = cp.ascontiguousarray(cp.asarray(blocks))
        if blocks.ndim != 2 or blocks.shape[1] != BLOCK_SIZE:
            raise ValueError(f"blocks must have shape (n, {BLOCK_SIZE}), got {blocks.shape}")
        if blocks.dtype not in _INPUT_KERNELS:
            raise TypeError(f"blocks must be float16, float32 or float64, got {blocks.dtype}")
        if rounding == "stochastic" and seed is None:
            raise ValueError("stochastic rounding needs a seed")
        kernel_name, bits = _INPUT_KERNELS[blocks.dtype]
        n = blocks.shape[0]
        codes = cp.empty((n, BLOCK_SIZE), dtype=cp.uint8)
        scales = cp.empty((n,), dtype=cp.uint8)
        if n:
            kernel = _module("mx_quantize.cu", (fmt,)).get_function(kernel_name)
            args = (blocks.view(bits), codes, scales, np.int64(n),
                    np.int32(ROUNDING_MODES.index(rounding)),
                    np.int32(SCALE_MODES.index(scale_mode)), np.uint64(seed or 0))
            kernel(_grid(n * BLOCK_SIZE), (_THREADS,), args)
        return codes, scales

    def dequantize_blocks(self, codes: Any, scales: Any, fmt: Format, dtype: Any) -> Any:
        """Exact ``decode(code) * 2**(scale - 127)`` as float32 or float64 on the GPU."""
        cp = self.xp
        dtype = np.dtype(dtype)
        if dtype not in _OUTPUT_KERNELS:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        codes = cp.ascontiguousarray(cp.asarray(codes, dtype=cp.uint8))
        scales = cp.ascontiguousarray(cp.asarray(scales, dtype=cp.uint8))
        if codes.shape != (scales.shape[0], BLOCK_SIZE):
            raise ValueError(f"codes {codes.shape} and scales {scales.shape} do not match")
        kernel_name, bits = _OUTPUT_KERNELS[dtype]
        out = cp.empty(codes.shape, dtype=dtype)
        if codes.size:
            kernel = _module("mx_dequantize.cu", (fmt,)).get_function(kernel_name)
            kernel(_grid(codes.size), (_THREADS,), (codes, scales, out.view(bits),
                                                    np.int64(codes.size)))
        return out

    def pack(self, codes: Any, fmt: Format) -> Any:
        """Pack uint8 codes along the last axis into the format's byte layout."""
        return self._repack(codes, fmt, "mx_pack", fmt.layout.elements, fmt.layout.bytes)

    def unpack(self, packed: Any, fmt: Format) -> Any:
        """Inverse of :meth:`pack`: one uint8 code per element along the last axis."""
        return self._repack(packed, fmt, "mx_unpack", fmt.layout.bytes, fmt.layout.elements)

    def _repack(self, src: Any, fmt: Format, kernel_name: str, per_in: int, per_out: int) -> Any:
        cp = self.xp
        src = cp.ascontiguousarray(cp.asarray(src, dtype=cp.uint8))
        if per_in == per_out:
            return src.copy()
        if src.ndim == 0 or src.shape[-1] % per_in:
            raise ValueError(f"the last axis of {src.shape} is not a multiple of {per_in}")
        n_groups = src.size // per_in
        out = cp.empty(src.shape[:-1] + (src.shape[-1] // per_in * per_out,), dtype=cp.uint8)
        if n_groups:
            kernel = _module("mx_pack.cu", (fmt,)).get_function(kernel_name)
            kernel(_grid(n_groups), (_THREADS,), (src, out, np.int64(n_groups)))
        return out

    def matmul_blocks(
        self, a_codes: Any, a_scales: Any, a_fmt: Format, b_codes: Any, b_scales: Any,
        b_fmt: Format,
    ) -> Any:
        """MX matmul of canonical operands with the simple kernel; ``(B, M, N)`` float32."""
        cp = self.xp
        a_codes = cp.ascontiguousarray(cp.asarray(a_codes, dtype=cp.uint8))
        b_codes = cp.ascontiguousarray(cp.asarray(b_codes, dtype=cp.uint8))
        a_scales = cp.ascontiguousarray(cp.asarray(a_scales, dtype=cp.uint8))
        b_scales = cp.ascontiguousarray(cp.asarray(b_scales, dtype=cp.uint8))
        batch, m, n_kb, _ = a_codes.shape
        n = b_codes.shape[1]
        if b_codes.shape != (batch, n, n_kb, BLOCK_SIZE) or a_scales.shape != (batch, m, n_kb) \
                or b_scales.shape != (batch, n, n_kb):
            raise ValueError("matmul operands are not canonical (B, M|N, KB, block_size) blocks")
        out = cp.empty((batch, m, n), dtype=cp.float32)
        if out.size:
            kernel = _module("mx_matmul_simple.cu", (a_fmt, b_fmt)).get_function(
                "mx_matmul_simple")
            kernel(_grid(out.size), (_THREADS,),
                   (a_codes, a_scales, b_codes, b_scales, out.view(cp.uint32), np.int64(batch),
                    np.int64(m), np.int64(n), np.int64(n_kb)))
        return out
