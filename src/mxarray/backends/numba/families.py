"""Kernel families: one per kind of block format, behind one interface.

:class:`OcpFamily`
    The six OCP formats: bit-level kernels on 32-bit lanes
    (:mod:`~mxarray.backends.numba.ocp_kernels`).
:class:`Pow2Family`
    Power-of-two block scales (E8M0 or a d-bit exponent) with or without sub-block
    microexponents: MX9/MX6/MX4 and registered formats.
:class:`Ue4m3Family`
    UE4M3 block scales with a float32 tensor scale (NVFP4).

Each family turns the format into the records of :mod:`~mxarray.backends.numba.params`
once, and offers ``quantize``, ``dequantize``, ``pack``, ``unpack`` and a matmul panel
decoder (:meth:`KernelFamily.decoder`).  :func:`family_for` picks a format's family;
the backend calls nothing else.  The options arrive checked by the core: no family
re-checks a dtype, seed, block numbering or tensor scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...formats import Format
from ..base import DequantizeOptions, QuantizeOptions
from . import params as P
from .first_use import announce
from .matmul import Decoder, PanelOperand
from .threads import SERIAL_BELOW, ParallelKernels

__all__ = ["KernelFamily", "OcpFamily", "Pow2Family", "Ue4m3Family", "family_for"]

_NO_IDS = np.empty(0, dtype=np.uint64)
_PANELS = "matmul panels"
_UINT_OF = {4: np.uint32, 8: np.uint64}


_LANES = (np.dtype(np.float16), np.dtype(np.float32))  # inputs of the float32-lane kernels


def _float32_bits(blocks: np.ndarray) -> np.ndarray:
    """float16 or float32 rows as float32 bit patterns (float16 widened exactly)."""
    return np.ascontiguousarray(blocks, dtype=np.float32).view(np.uint32)


def _rows(a: np.ndarray, width: int) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1, width)


def _ids(options: QuantizeOptions) -> np.ndarray:
    """The rows' block numbers for the kernels (empty: rows 0 .. n-1)."""
    return _NO_IDS if options.block_ids is None else options.block_ids


class KernelFamily:
    """The kernels of one kind of format, bound to one format ``fmt``.

    ``ocp``, ``blocks`` (and ``fast``) are the guarded kernel modules.
    """

    def __init__(self, fmt: Format, kernels: dict[str, ParallelKernels]) -> None:
        self.fmt = fmt
        self._ocp, self._blocks, self._fast = kernels["ocp"], kernels["blocks"], kernels["fast"]

    def _launch(self, kernels: ParallelKernels, kernel: Any, op: str, kind: str, *args: Any,
                calling_thread: bool = False) -> None:
        """Run ``kernel`` (a dispatcher, or the name of one in ``kernels``) through the
        launch gate, with the first-use notice of :mod:`.first_use` for ``op``; on the
        calling thread alone for matmul panels, small arrays (the first argument's
        size), where waking the worker threads costs more than it gains, and when
        ``calling_thread`` (see :class:`~mxarray.backends.base.DequantizeOptions`)."""
        if isinstance(kernel, str):
            kernel = kernels.unwrapped(kernel)
        announce(kernel, f"{self.fmt.name} {op}", kind)
        serial = calling_thread or op == _PANELS or np.size(args[0]) < SERIAL_BELOW
        kernels.launch_kernel(kernel, *args, serial=serial)

    def _outputs(self, out: tuple[np.ndarray, np.ndarray] | None, n: int, packed: bool,
                 code_dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        """The caller's ``out`` (packed rows only) or new code rows and scale bytes."""
        if out is not None:
            return out
        width = self.fmt.bytes_per_block if packed else self.fmt.block_size
        return (np.empty((n, width), dtype=np.uint8 if packed else code_dtype),
                np.empty(n, dtype=np.uint8))

    def quantize(self, blocks: np.ndarray, options: QuantizeOptions, packed: bool,
                 out: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(n, block_size)`` floats -> packed rows (``packed``) or unpacked codes, and
        scale bytes; into ``out`` (packed only) when given."""
        raise NotImplementedError

    def dequantize(self, data: np.ndarray, scales: np.ndarray, options: DequantizeOptions,
                   packed: bool, out: np.ndarray | None = None) -> np.ndarray:
        """Packed rows or unpacked codes and scale bytes -> ``(n, block_size)`` values."""
        raise NotImplementedError

    def pack(self, codes: np.ndarray) -> np.ndarray:
        """Unpacked codes -> packed bytes along the last axis."""
        raise NotImplementedError

    def unpack(self, packed: np.ndarray) -> np.ndarray:
        """Packed bytes -> unpacked codes (``fmt.code_dtype``) along the last axis."""
        raise NotImplementedError

    def decoder(self, op: PanelOperand, dtype: np.dtype) -> Decoder:
        """Panel decoder of a matmul operand, without its tensor scale, in ``dtype``:
        any window of elements (table decode; families override with faster ones)."""
        fmt = self.fmt
        with np.errstate(over="ignore"):  # table values never used in float32 may overflow
            table = fmt.decode_table.astype(dtype)
            values = P.scale_values(fmt, None).astype(dtype)
        lanes, bs = P.unpack_lanes(fmt), fmt.block_size

        def decode(batch: int, row0: int, e0: int, out: np.ndarray) -> None:
            self._launch(self._blocks, "decode_panel_table", _PANELS, "table",
                         op.packed[batch], op.scales[batch], row0, e0, bs, lanes, table, values,
                         out)

        return decode


class OcpFamily(KernelFamily):
    """The OCP formats: fused bit-level kernels, OCP byte layouts."""

    # Widen float16 (exactly) to float32 before the kernels: the float32 fast path then
    # covers it, and no float16 subnormal needs the slow path.
    _WIDEN = {np.dtype(np.float16): np.dtype(np.float32)}

    def __init__(self, fmt: Format, kernels: dict[str, ParallelKernels]) -> None:
        super().__init__(fmt, kernels)
        self._el, self._sc = P.element_grid(fmt), P.scale_range(fmt)
        self._dec = P.element_decode(fmt)
        self._quantize_kernels = {name: self._ocp.unwrapped(name) for name in
                                  ("quantize_rows", "quantize_rows_f32",
                                   "quantize_rows_nearest")}

    def quantize(self, blocks, options, packed, out=None):
        k, kernel = self._ocp, self._quantize_kernels
        if blocks.dtype in self._WIDEN:
            blocks = blocks.astype(self._WIDEN[blocks.dtype])
        bits = np.ascontiguousarray(blocks).view(_UINT_OF[blocks.dtype.itemsize])
        layout = P.pack_layout(self.fmt, packed)
        n, bs = bits.shape
        if out is None:
            out = (np.empty((n, bs // layout.per_group * layout.group_bytes), np.uint8),
                   np.empty(n, np.uint8))
        args = (bits, P.input_bits(blocks.dtype), self._el, self._sc, P.modes(options))
        if options.rounding == "stochastic":
            self._launch(k, kernel["quantize_rows"], "quantize (stochastic)", "ocp", *args,
                         _ids(options), layout, *out)
        elif bits.dtype == np.uint32:
            self._launch(k, kernel["quantize_rows_f32"], "quantize", "ocp", *args, layout,
                         *out)
        else:
            self._launch(k, kernel["quantize_rows_nearest"], "quantize (float64)", "ocp",
                         *args, layout, *out)
        return out

    def dequantize(self, data, scales, options, packed, out=None):
        fmt = self.fmt
        if out is None:
            out = np.empty((scales.shape[0], fmt.block_size), dtype=options.dtype)
        layout = P.pack_layout(fmt, packed)
        rows = _rows(np.asarray(data, dtype=np.uint8),
                     fmt.block_size // layout.per_group * layout.group_bytes)
        self._launch(self._ocp, "dequantize_rows", "dequantize", "ocp-decode", rows, scales,
                     layout, self._dec, P.e8m0_values(out.dtype), out,
                     calling_thread=options.calling_thread)
        return out

    def pack(self, codes):
        layout = self.fmt.layout
        return self._regroup(codes, layout.elements, self.fmt.bits, layout.bytes, 8)

    def unpack(self, packed):
        layout = self.fmt.layout
        return self._regroup(packed, layout.bytes, 8, layout.elements, self.fmt.bits)

    def _regroup(self, data, in_count, in_bits, out_count, out_bits):
        data = np.asarray(data, dtype=np.uint8)
        width = data.shape[-1]
        out = np.empty(data.shape[:-1] + (width // in_count * out_count,), np.uint8)
        if data.size:
            self._ocp.regroup_rows(_rows(data, width), in_count, in_bits, out_count, out_bits,
                                   out.reshape(-1, out.shape[-1]))
        return out

    def decoder(self, op, dtype):
        """Windows on whole blocks take the bit-level decode; others the table's."""
        fmt, table_decode = self.fmt, super().decoder(op, dtype)
        pow2, bs = P.e8m0_values(dtype), fmt.block_size
        layout, dec = P.pack_layout(fmt, True), self._dec

        def decode(batch: int, row0: int, e0: int, out: np.ndarray) -> None:
            if e0 % bs or out.shape[1] % bs:
                return table_decode(batch, row0, e0, out)
            self._launch(self._ocp, "decode_panel", _PANELS, "ocp-decode", op.packed[batch],
                         op.scales[batch], row0, e0 // bs, bs, layout, dec, pow2, out)

        return decode


class _BlockFamily(KernelFamily):
    """What the general block formats share: the spec block layout, table decoding."""

    def __init__(self, fmt: Format, kernels: dict[str, ParallelKernels]) -> None:
        super().__init__(fmt, kernels)
        self._el, self._subs = P.element_grid(fmt), P.sub_blocks(fmt)

    def dequantize(self, data, scales, options, packed, out=None):
        fmt = self.fmt
        if out is None:
            out = np.empty((scales.shape[0], fmt.block_size), dtype=options.dtype)
        values = P.scale_values(fmt, options.tensor_scale)
        if packed:  # the per-format kernel
            kernel = self._fast.dequantize_table(fmt.block_size, fmt.bits, *self._subs[:2],
                                                 fmt.element_bytes)
            self._launch(self._fast, kernel, "dequantize", "table",
                         _rows(data, fmt.bytes_per_block), scales, fmt.decode_table, values, out,
                         calling_thread=options.calling_thread)
            return out
        width = fmt.block_size
        rows = _rows(np.asarray(data, dtype=np.uint16), width)
        if rows.size and int(rows.max()) >= fmt.decode_table.size:
            raise ValueError(f"codes must be below {fmt.decode_table.size} for {fmt.name}")
        self._blocks.dequantize_table_rows(rows, scales, False, P.unpack_lanes(fmt),
                                           fmt.decode_table, values, out)
        return out

    def pack(self, codes):
        fmt = self.fmt
        codes = np.asarray(codes, dtype=np.uint16)
        lead, width = codes.shape[:-1], codes.shape[-1]
        out = np.empty(lead + (width // fmt.block_size * fmt.bytes_per_block,), np.uint8)
        if out.size:
            size, bits, _, element_bytes = self._subs
            self._blocks.pack_rows(_rows(codes, fmt.block_size), fmt.bits, size, bits,
                                   element_bytes, out.reshape(-1, fmt.bytes_per_block))
        return out

    def unpack(self, packed):
        fmt = self.fmt
        packed = np.asarray(packed, dtype=np.uint8)
        lead, width = packed.shape[:-1], packed.shape[-1]
        out = np.empty(lead + (width // fmt.bytes_per_block * fmt.block_size,), np.uint16)
        if out.size:
            self._blocks.unpack_rows(_rows(packed, fmt.bytes_per_block), P.unpack_lanes(fmt),
                                     out.reshape(-1, fmt.block_size))
        return out.astype(fmt.code_dtype, copy=False)

    def _finish(self, out: tuple[np.ndarray, np.ndarray], packed: bool
                ) -> tuple[np.ndarray, np.ndarray]:
        codes, scales = out
        return (codes if packed else codes.astype(self.fmt.code_dtype, copy=False)), scales


class Pow2Family(_BlockFamily):
    """Power-of-two block scales, sub-block microexponents, any element kind."""

    def __init__(self, fmt: Format, kernels: dict[str, ParallelKernels]) -> None:
        super().__init__(fmt, kernels)
        self._sc = P.scale_range(fmt)

    def quantize(self, blocks, options, packed, out=None):
        fmt = self.fmt
        if packed and blocks.dtype in _LANES and options.rounding != "stochastic" \
                and not self._subs.promote:  # the per-format kernel on float32 lanes
            bits = _float32_bits(blocks)
            out = self._outputs(out, bits.shape[0], True, None)
            kernel = self._fast.quantize_pow2(self._el, self._sc, self._subs, fmt.block_size)
            mode = P.modes(options)
            self._launch(self._fast, kernel, "quantize", "pow2", bits, mode.scale_mode,
                         mode.rounding, *out)
            return out
        v = np.ascontiguousarray(blocks, dtype=np.float64)
        out = self._outputs(out, v.shape[0], packed, np.uint16)
        self._launch(self._blocks, "quantize_pow2_rows", "quantize (any input)", "generic",
                     v.view(np.uint64), P.input_bits(np.dtype(np.float64)), self._el, self._sc,
                     self._subs, P.modes(options), _ids(options), packed, *out)
        return self._finish(out, packed)


class Ue4m3Family(_BlockFamily):
    """UE4M3 block scales times a float32 tensor scale (NVFP4)."""

    def quantize(self, blocks, options, packed, out=None):
        fmt = self.fmt
        grid = P.ue4m3_grid(fmt, options.rounding, options.tensor_scale)
        if packed and blocks.dtype in _LANES:  # the per-format kernel
            bits = _float32_bits(blocks)
            out = self._outputs(out, bits.shape[0], True, None)
            kernel = self._fast.quantize_ue4m3(self._el, fmt.scale.nan_code, fmt.block_size,
                                               grid.grid_mid.shape[0],
                                               grid.element_bounds.shape[0])
            self._launch(self._fast, kernel, "quantize", "ue4m3", bits, grid,
                         P.modes(options).rounding, *out)
            return out
        v = np.ascontiguousarray(blocks, dtype=np.float64)
        out = self._outputs(out, v.shape[0], packed, np.uint16)
        self._launch(self._blocks, "quantize_ue4m3_rows", "quantize (any input)", "generic",
                     v, grid, self._el, P.modes(options).rounding, fmt.scale.nan_code, packed,
                     fmt.element_bytes, *out)
        return self._finish(out, packed)


def family_for(fmt: Format, kernels: dict[str, ParallelKernels]) -> KernelFamily:
    """The kernel family of ``fmt``, bound to it."""
    if fmt.is_ocp:
        cls: type[KernelFamily] = OcpFamily
    elif fmt.scale.kind == "ue4m3":
        cls = Ue4m3Family
    else:
        cls = Pow2Family
    return cls(fmt, kernels)
