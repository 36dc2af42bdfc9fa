"""The Numba backend: fused, parallel, exact kernels on NumPy arrays.

Every format belongs to a kernel family (:mod:`mxarray.backends.numba.families`: the
OCP formats, power-of-two scales with sub-blocks, UE4M3 scales with a tensor scale);
this class routes each operation of the contract (:mod:`mxarray.backends.base`) to the
family of its format, and MX matmul to the panel driver of
:mod:`mxarray.backends.numba.matmul`.  Every result is the NumPy reference's, bit for
bit (quantize, dequantize, pack) or within the spec's bound (matmul).
"""

from __future__ import annotations

import threading

import numpy as np

from ...formats import Format
from ..base import Backend, DequantizeOptions, MatmulOperand, MatmulOptions, QuantizeOptions
from . import matmul as _matmul
from . import transpose
from .bf16 import bf16_cpu, bf16_fits, bf16_gemm_available, matmul_bf16
from .families import KernelFamily, family_for
from .params import tensor_value
from .threads import guarded

__all__ = ["NumbaBackend"]


class NumbaBackend(Backend):
    """Exact parallel CPU kernels compiled by Numba (cached on disk)."""

    name = "numba"
    xp = np
    all_formats = True
    # The default first, chosen by the CPU: "bf16" (spec/mx.toml [dot_bf16_path]) where it
    # has AVX512-BF16 (0.45-0.89x float32 BLAS time against 0.92-1.72x for the panels,
    # docs/benchmarks.md), else "float32-panels" ([dot]).  Operands outside the bf16
    # path's exact window take "float32-panels"; naming "bf16" elsewhere raises.
    matmul_paths = (("bf16", "float32-panels") if bf16_cpu()[0]
                    else ("float32-panels", "bf16"))

    def __init__(self) -> None:
        from . import block_kernels, ocp_kernels, pow2_kernels

        self._kernels = {"ocp": guarded(ocp_kernels), "blocks": guarded(block_kernels),
                         "fast": guarded(pow2_kernels), "transpose": guarded(transpose)}
        self._families: dict[Format, KernelFamily] = {}
        self._lock = threading.Lock()

    def _family(self, fmt: Format) -> KernelFamily:
        family = self._families.get(fmt)
        if family is None:
            with self._lock:
                family = self._families.setdefault(fmt, family_for(fmt, self._kernels))
        return family

    def available(self) -> tuple[bool, str]:
        """Usable when Numba compiles (or loads from its cache) and runs a kernel.

        The probe is the smallest kernel, the tiled copy of :mod:`.transpose` (about a
        second to compile, against 10 s for a quantize kernel): besides it, a process
        compiles or loads only the kernels of the formats it uses.
        """
        try:
            probe = np.arange(6, dtype=np.uint32).reshape(2, 3)
            copy = np.zeros((3, 2), np.uint32)
            tiles = self._kernels["transpose"]
            tiles.launch_kernel(tiles.unwrapped("copy_tiles"), *transpose.flat_view(probe),
                                *transpose.flat_view(copy.T), 2, 3, serial=True)
        except Exception as exc:  # a compile failure must not break the package
            return False, f"Numba kernels failed to compile: {type(exc).__name__}: {exc}"
        if not np.array_equal(copy, probe.T):
            return False, "a Numba kernel ran but gave a wrong result"
        import numba

        return True, f"numba {numba.__version__}, {numba.get_num_threads()} threads"

    def finite_magnitude_max(self, bits: np.ndarray, mask: int, nonfinite: int) -> int:
        """As the base method, in one parallel pass over ``bits`` without a temporary."""
        kind = bits.dtype.type
        return int(self._kernels["blocks"].finite_magnitude_max(
            bits.reshape(-1), kind(mask), kind(nonfinite)))

    def gather(self, view: np.ndarray) -> np.ndarray:
        """A C-contiguous copy of ``view``; a view whose last axis is strided (the block
        axis was not the input's last) is copied in tiles (:mod:`.transpose`)."""
        if _transposed(view):
            out = np.empty(view.shape, dtype=view.dtype)
            self._copy_tiles(np.swapaxes(view, -1, -2), np.swapaxes(out, -1, -2))
            return out
        return np.ascontiguousarray(view)

    def scatter(self, values: np.ndarray, view: np.ndarray) -> None:
        """``view[...] = values``, in tiles when ``view``'s last axis is strided."""
        if (_transposed(view) and values.shape == view.shape and values.dtype == view.dtype
                and transpose.tileable(values)):
            self._copy_tiles(values, view)
        else:
            view[...] = values

    def _copy_tiles(self, src: np.ndarray, dst: np.ndarray) -> None:
        """``dst[...] = src`` (one shape and item size) by :func:`.transpose.copy_tiles`,
        fast when ``src``'s rows and ``dst``'s columns are contiguous."""
        s = transpose.flat_view(src)
        d = transpose.flat_view(dst)
        self._kernels["transpose"].copy_tiles(*s, *d, *src.shape[-2:])

    def quantize_blocks(self, blocks: np.ndarray, options: QuantizeOptions
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Quantize ``(n, block_size)`` floats; return ``(codes, scale_bytes)``."""
        return self._family(options.fmt).quantize(blocks, options, False)

    def quantize(self, blocks: np.ndarray, options: QuantizeOptions,
                 out: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`quantize_blocks` with the codes packed in the kernels, written into
        ``out`` when given."""
        return self._family(options.fmt).quantize(blocks, options, True, out)

    def dequantize_blocks(self, codes: np.ndarray, scales: np.ndarray,
                          options: DequantizeOptions) -> np.ndarray:
        """``decode(codes) * scale value (* tensor scale)``, rounded once to
        ``options.dtype``."""
        return self._family(options.fmt).dequantize(codes, scales, options, False)

    def dequantize(self, packed: np.ndarray, scales: np.ndarray, options: DequantizeOptions,
                   out: np.ndarray | None = None) -> np.ndarray:
        """As :meth:`dequantize_blocks`, reading packed bytes, into ``out`` when given."""
        return self._family(options.fmt).dequantize(packed, scales, options, True, out)

    def pack(self, codes: np.ndarray, fmt: Format) -> np.ndarray:
        """Pack codes along the last axis into the format's byte layout."""
        return self._family(fmt).pack(codes)

    def unpack(self, packed: np.ndarray, fmt: Format) -> np.ndarray:
        """Inverse of :meth:`pack`: one code (``fmt.code_dtype``) per element."""
        return self._family(fmt).unpack(packed)

    def matmul(self, a: MatmulOperand, b: MatmulOperand, options: MatmulOptions) -> np.ndarray:
        """MX matmul of packed operands of any formats.

        Path ``"bf16"`` (:mod:`.bf16`; the default on CPUs with AVX512-BF16) runs operands
        inside its exact window on the CPU's AVX512-BF16 instruction and the others on
        float32 panels; named on a CPU that cannot run it, it raises RuntimeError (as the
        default, it quietly takes the panels when its self-test fails).  Path ``"float32-panels"`` decodes K-panels
        to float32 (float64 for extreme scales) and adds their BLAS products
        (:mod:`.matmul`).
        """
        if (options.path or self.matmul_paths[0]) == "bf16":
            ok, why = bf16_gemm_available()
            if not ok and options.path == "bf16":
                raise RuntimeError(f"matmul path 'bf16' cannot run here: {why}")
            if ok and bf16_fits(a, b):
                return matmul_bf16(a, b)
        ops = [_matmul.PanelOperand(x.packed, x.scales, x.fmt, tensor_value(x.tensor_scale))
               for x in (a, b)]
        decoders = [(lambda dt, op=op: self._family(op.fmt).decoder(op, dt)) for op in ops]
        return _matmul.matmul(ops[0], decoders[0], ops[1], decoders[1])


# Views smaller than this are copied by NumPy (a kernel launch costs more than the copy).
_TILED_MIN_ELEMENTS = 1 << 14


def _transposed(view: np.ndarray) -> bool:
    """Whether ``view`` is a large view whose last axis is not contiguous (a transpose to
    copy in tiles, as unsigned integers of the element's size)."""
    return (view.size >= _TILED_MIN_ELEMENTS and view.ndim >= 2
            and view.strides[-1] != view.itemsize and transpose.tileable(view))
