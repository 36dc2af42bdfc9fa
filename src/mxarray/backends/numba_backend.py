"""The Numba backend: fused, parallel, exact kernels on NumPy arrays.

Quantize is one pass per block (find the largest magnitude, choose the shared exponent,
round and pack every element) in exact integer arithmetic on the input's bit pattern,
so it gives the NumPy reference's bits for every format, scale mode and rounding mode,
and for stochastic rounding the same SplitMix64 draws for the same seed; float32 (and
float16) inputs with a deterministic rounding mode take a kernel on 32-bit lanes.
Dequantize builds each element's value from its code's bits (no table lookups) and can
write straight into a caller's array.  The kernels live in
:mod:`mxarray.backends._numba_kernels`; this module turns a
:class:`~mxarray.formats.Format` into their integer parameters, and runs MX matmul as
a sum of K-panel products: both operands are decoded, a few blocks of K at a time, into
float32 panels of all their rows, and NumPy's own BLAS adds each panel product into the
result (:mod:`mxarray.backends._blas`), so every element is decoded once and BLAS sees
large GEMMs.  Without an accumulating BLAS, or for extreme scales (float64), it
multiplies row tiles instead.

Besides the backend interface of :mod:`mxarray.backends.base`, this backend offers
``quantize_packed``, ``dequantize_packed`` and ``matmul_packed``, which fuse the packing
step into the kernels and read or write packed bytes directly.

All of the above is for the six OCP formats.  Every other block format (MX9/MX6/MX4,
NVFP4 and formats registered at run time) takes the generic kernels of
:mod:`mxarray.backends._numba_block_kernels`, with arguments from
:mod:`mxarray.backends._numba_block_params`: exact integer rounding on float64 bits for
power-of-two scales (microexponents and "promote" included), exact comparisons with
the scaled grid for UE4M3 scales, and table decoding.  Their matmul decodes panels by
table without the tensor scales, whose product scales each sum once in float64 before
its one rounding to float32 (a sum may lie outside float32's range where the scaled
result does not); panels are float32 when
:func:`~mxarray.backends._numba_block_params.general_matmul_dtype` proves every value,
product and partial sum exact or in range there, else float64 (exact for every
registrable format); operands of different block sizes share panels
that start and end inside blocks.  ``block_ids`` numbers the blocks of every quantize
path for stochastic rounding (the shared contract of :mod:`mxarray.backends.base`).

Why the matmul panels may fold the scale into float32
-----------------------------------------------------
A decoded element ``decode(P) * 2**X`` has at most ``mantissa_bits + 1`` significant
bits (8 for MXINT8) and its lowest set bit is at least ``min_subnormal * 2**X``.  For
``X >= -127`` that is at least ``2**-16 * 2**-127 = 2**-143`` in the worst format
(E5M2), above float32's smallest subnormal ``2**-149``, so the value is exact in
float32 unless it overflows, i.e. unless ``X + emax + 1 > 128``.  A product of two such
values has at most 16 significant bits and is exact in float32 when its lowest bit,
``min_subnormal_a * min_subnormal_b * 2**(Xa + Xb)``, is at least ``2**-149``.  A sum
of K products stays below ``2**(Xa + emax_a + 1 + Xb + emax_b + 1 + log2 K)``.  When
these stay inside float32's range (checked on the operands' smallest and largest
scales) BLAS sums exact products in float32 without overflow, within the spec's bound
``(K + 2) * 2**-24 * sum |A| |B|``.  Otherwise (extreme scales) the tiles are decoded
to float64 instead, which holds every such value and product exactly.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ..formats import BLOCK_SIZE, FORMATS, SCALE, Format
from ._blas import sgemm_acc
from ._numba_block_params import (
    KIND_CODES,
    general_matmul_dtype,
    layout_params,
    pow2_params,
    scale_values,
    tensor_factor,
    ue4m3_params,
    unpack_lanes,
)
from ._numba_threads import guarded
from .base import (Backend, DequantizeOptions, MatmulOperand, MatmulOptions,
                   QuantizeOptions)

__all__ = ["NumbaBackend"]

# The decoded panels or tiles of both operands together stay within this fraction of
# the size of the operands decoded to float32 (but at least _MIN_TILE_BYTES).
_TILE_FRACTION = 0.094
_MIN_TILE_BYTES = 1 << 20
_FLOAT32 = np.finfo(np.float32)


def _input_params(dtype: np.dtype) -> tuple[Any, ...]:
    """Bit-field parameters of an IEEE input dtype, read from ``numpy.finfo``."""
    info = np.finfo(dtype)
    mant, width = int(info.nmant), 8 * dtype.itemsize
    exp_ones = (1 << int(info.nexp)) - 1
    bias = exp_ones >> 1
    return (
        mant,
        bias,
        np.uint64((1 << mant) - 1),
        np.uint64(exp_ones),
        np.uint64((1 << (width - 1)) - 1),
        np.uint64(exp_ones << mant),
        np.uint64(width - 1),
    )


_UINT_OF = {4: np.uint32, 8: np.uint64}
# Widen float16 (exactly) to float32 before the kernels: the float32 fast path then
# covers it, and no float16 subnormal needs the slow path.
_KERNEL_FLOAT = {np.dtype(np.float16): np.dtype(np.float32)}


def _format_params(fmt: Format) -> tuple[Any, ...]:
    """Integer parameters of an element format for the quantize kernel."""
    mant, expo = np.frexp(fmt.max_normal)
    rceil_emax = int(expo) - 1  # floor(log2(max_normal))
    rceil_sig53 = int(np.ldexp(mant, 53))  # max_normal's significand on 53 bits
    return (
        fmt.kind == "float",
        fmt.mantissa_bits,
        fmt.emax,
        fmt.emin,
        fmt.max_code,
        fmt.sign_bit,
        fmt.n_codes - 1,
        rceil_emax,
        rceil_sig53,
        SCALE.min_exponent,
        SCALE.max_exponent,
        SCALE.bias,
        SCALE.nan_code,
    )


def _layout(fmt: Format, packed: bool) -> tuple[int, int, int]:
    """(codes per group, bytes per group, bits per code) of packed or one-per-byte codes."""
    if packed:
        return fmt.layout.elements, fmt.layout.bytes, fmt.bits
    return 1, 1, 8


def _scale_values(dtype: np.dtype) -> np.ndarray:
    """The 256 E8M0 scale values (NaN for the NaN byte) in ``dtype``, exact (see the
    module docstring; float32 holds every 2**X down to 2**-127 as a subnormal)."""
    return SCALE.decode(np.arange(256, dtype=np.uint8)).astype(dtype)


def _decode_params(fmt: Format) -> tuple[Any, ...]:
    """Parameters of the bit-level element decode of ``dequantize_rows``.

    Float codes: the magnitude field shifted to float32's field positions, rebiased by
    ``127 - bias`` in the exponent field; subnormal codes (magnitude below the first
    normal one) less the smallest normal value; magnitudes from the first non-finite
    one on are specials (Inf at the infinite magnitude, NaN otherwise).  Integer codes:
    two's complement times the value of code 1.  Every (code, scale) pair is checked
    against the reference in the tests.
    """
    table = fmt.decode_table
    magnitudes = np.arange(fmt.sign_bit)
    special = magnitudes[~np.isfinite(table[: fmt.sign_bit])]
    infinite = magnitudes[np.isinf(table[: fmt.sign_bit])]
    is_float = fmt.kind == "float"
    mant = int(_FLOAT32.nmant)
    return (
        is_float,
        np.uint32(1 << (mant - fmt.mantissa_bits)),
        np.uint32(fmt.sign_bit),
        np.int32(fmt.n_codes),
        np.uint32(fmt.sign_bit - 1),
        np.uint32(special.min() if special.size else fmt.n_codes),
        np.uint32(infinite[0] if infinite.size else fmt.n_codes),
        np.uint32(1 << fmt.mantissa_bits),
        np.uint32((_FLOAT32.maxexp - 1 - fmt.bias) << mant),
        np.float32(fmt.min_normal if is_float else table[1]),
    )


def _rows(a: np.ndarray, width: int) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1, width)


_NO_IDS = np.empty(0, dtype=np.uint64)


def _outputs(out: tuple[np.ndarray, np.ndarray] | None, n: int, width: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Packed rows ``(n, width)`` and scales ``(n,)``, uint8: the caller's ``out`` (checked)
    or new arrays."""
    if out is None:
        return np.empty((n, width), dtype=np.uint8), np.empty(n, dtype=np.uint8)
    rows, scales = out
    for a, shape in ((rows, (n, width)), (scales, (n,))):
        if a.shape != shape or a.dtype != np.uint8 or not a.flags.c_contiguous:
            raise ValueError(f"out must hold C-contiguous uint8 arrays of shapes {(n, width)} "
                             f"and {(n,)}, got {a.dtype} {a.shape}")
    return rows, scales


def _block_ids(block_ids: np.ndarray | None, n: int) -> np.ndarray:
    """The rows' block numbers for the kernels: ``block_ids``, or ``0 .. n-1``."""
    return np.arange(n, dtype=np.uint64) if block_ids is None else block_ids


class NumbaBackend(Backend):
    """Exact parallel CPU kernels compiled by Numba (cached on disk)."""

    name = "numba"
    xp = np

    def __init__(self) -> None:
        # Numba's OpenMP workers spin after each parallel kernel and steal the cores from
        # the BLAS threads that run next (measured: 40x slower MX matmul on 2 cores).
        # Passive waiting must be chosen before the OpenMP runtime starts; a user's
        # explicit setting wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from . import _numba_block_kernels as block_kernels
        from . import _numba_kernels as kernels

        self._k = guarded(kernels)
        self._bk = guarded(block_kernels)

    # Every block format: the OCP ones on their specialised kernels, the others (MX9/MX6/
    # MX4, NVFP4 and registered formats) on kernels generic over every field
    # mxarray.formats.register accepts.
    all_formats = True

    def available(self) -> tuple[bool, str]:
        """Usable when the kernels compile (or load from the cache) and run."""
        try:
            probe = np.linspace(-3.0, 3.0, BLOCK_SIZE, dtype=np.float32)[None]
            self.quantize_blocks(probe, QuantizeOptions(next(iter(FORMATS.values())), "even",
                                                        "floor", None, None))
        except Exception as exc:  # a compile failure must not break the package
            return False, f"Numba kernels failed to compile: {type(exc).__name__}: {exc}"
        import numba

        return True, f"numba {numba.__version__}, {numba.get_num_threads()} threads"

    # -- quantize ---------------------------------------------------------------------

    def _quantize(
        self,
        blocks: np.ndarray,
        options: QuantizeOptions,
        packed: bool,
        out: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        k = self._k
        fmt, rounding, seed = options.fmt, options.rounding, options.seed
        tensor_scale = options.tensor_scale
        blocks = np.asarray(blocks)
        mode = k.SCALE_MODE_CODES[options.scale_mode]
        rmode = k.ROUNDING_CODES[rounding]
        ids = _block_ids(options.block_ids, blocks.shape[0])
        if not fmt.is_ocp:
            return self._quantize_general(blocks, fmt, rounding, mode, rmode, seed, packed, ids,
                                          tensor_scale, out)
        if blocks.dtype in _KERNEL_FLOAT:
            blocks = blocks.astype(_KERNEL_FLOAT[blocks.dtype])
        bits = np.ascontiguousarray(blocks).view(_UINT_OF[blocks.dtype.itemsize])
        per_group, group_bytes, code_bits = _layout(fmt, packed)
        n, bs = bits.shape
        out, scales = _outputs(out, n, bs // per_group * group_bytes)
        params = (*_input_params(blocks.dtype), *_format_params(fmt), mode, rmode)
        if rounding == "stochastic":
            k.quantize_rows(bits, *params, np.uint64(seed), ids, per_group, group_bytes,
                            code_bits, out, scales)
        elif bits.dtype == np.uint32:
            k.quantize_rows_f32(bits, *params, per_group, group_bytes, code_bits, out, scales)
        else:
            k.quantize_rows_nearest(bits, *params, per_group, group_bytes, code_bits, out, scales)
        return out, scales

    def _quantize_general(
        self,
        blocks: np.ndarray,
        fmt: Format,
        rounding: str,
        mode: int,
        rmode: int,
        seed: int | None,
        packed: bool,
        ids: np.ndarray,
        tensor_scale: float | None,
        out: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Non-OCP formats: float64 values (exact for every input dtype) into the
        generic kernels; unpacked codes are made uint16 there and cast to
        ``fmt.code_dtype`` here."""
        v = np.ascontiguousarray(blocks, dtype=np.float64)
        n = v.shape[0]
        if packed:
            out, scales = _outputs(out, n, fmt.bytes_per_block)
        else:
            out, scales = np.empty((n, fmt.block_size), dtype=np.uint16), np.empty(n, np.uint8)
        layout = layout_params(fmt)
        if fmt.scale.kind == "ue4m3":
            self._bk.quantize_ue4m3_rows(
                v, *ue4m3_params(fmt, rounding, tensor_scale), rmode, KIND_CODES[fmt.kind],
                fmt.bits, fmt.max_code, fmt.sign_bit, fmt.n_codes - 1, fmt.scale.nan_code,
                packed, layout[3], out, scales)
        else:
            in_params = _input_params(np.dtype(np.float64))[:6]
            self._bk.quantize_pow2_rows(
                v.view(np.uint64), *in_params, *pow2_params(fmt), mode, rmode,
                np.uint64(seed or 0), ids, packed, layout[3], out, scales)
        if not packed:
            out = out.astype(fmt.code_dtype, copy=False)
        return out, scales

    def quantize_blocks(
        self, blocks: np.ndarray, options: QuantizeOptions
    ) -> tuple[np.ndarray, np.ndarray]:
        """Quantize ``(n, block_size)`` floats; return ``(codes, scale_bytes)``."""
        return self._quantize(blocks, options, False)

    def quantize(
        self,
        blocks: np.ndarray,
        options: QuantizeOptions,
        out: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`quantize_blocks`, but return the codes packed: ``pack(codes)`` rows,
        written into ``out`` (C-contiguous uint8 ``(n, bytes_per_block)`` and ``(n,)``)
        when given."""
        return self._quantize(blocks, options, True, out)

    # -- dequantize -------------------------------------------------------------------

    def _dequantize(
        self,
        data: np.ndarray,
        scales: np.ndarray,
        options: DequantizeOptions,
        packed: bool,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        fmt, dt, tensor_scale = options.fmt, options.dtype, options.tensor_scale
        scales = np.ascontiguousarray(scales, dtype=np.uint8).reshape(-1)
        if out is None:
            out = np.empty((scales.size, fmt.block_size), dtype=dt)
        if not fmt.is_ocp:
            if packed:
                rows = _rows(np.asarray(data, dtype=np.uint8), fmt.bytes_per_block)
            else:
                rows = _rows(np.asarray(data, dtype=np.uint16), fmt.block_size)
                if rows.size and int(rows.max()) >= fmt.decode_table.size:
                    raise ValueError(f"codes must be below {fmt.decode_table.size} for {fmt.name}")
            self._bk.dequantize_table_rows(rows, scales, packed, unpack_lanes(fmt),
                                           fmt.decode_table, scale_values(fmt, tensor_scale),
                                           out)
            return out
        per_group, group_bytes, code_bits = _layout(fmt, packed)
        rows = _rows(np.asarray(data, dtype=np.uint8), fmt.block_size // per_group * group_bytes)
        pow2 = _scale_values(dt)
        self._k.dequantize_rows(rows, scales, per_group, group_bytes, code_bits,
                                *_decode_params(fmt), pow2, out)
        return out

    def dequantize_blocks(
        self, codes: np.ndarray, scales: np.ndarray, options: DequantizeOptions
    ) -> np.ndarray:
        """Return ``decode(codes) * scale value (* tensor scale)`` for ``(n, block_size)``
        codes, exact and rounded once to ``options.dtype``."""
        return self._dequantize(codes, scales, options, packed=False)

    def dequantize(
        self,
        packed: np.ndarray,
        scales: np.ndarray,
        options: DequantizeOptions,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """As :meth:`dequantize_blocks`, reading packed bytes (one block's bytes per scale);
        writes into ``out`` (C-contiguous ``(n, block_size)``) when given."""
        return self._dequantize(packed, scales, options, packed=True, out=out)

    # -- pack / unpack ----------------------------------------------------------------

    def pack(self, codes: np.ndarray, fmt: Format) -> np.ndarray:
        """Pack codes along the last axis into the format's byte layout."""
        if not fmt.is_ocp:
            codes = np.asarray(codes, dtype=np.uint16)
            lead, width = codes.shape[:-1], codes.shape[-1]
            out = np.empty(lead + (width // fmt.block_size * fmt.bytes_per_block,), np.uint8)
            if out.size:
                self._bk.pack_rows(_rows(codes, fmt.block_size), *layout_params(fmt),
                                   out.reshape(-1, fmt.bytes_per_block))
            return out
        layout = fmt.layout
        return self._regroup(codes, layout.elements, fmt.bits, layout.bytes, 8)

    def unpack(self, packed: np.ndarray, fmt: Format) -> np.ndarray:
        """Inverse of :meth:`pack`: one code (``fmt.code_dtype``) per element."""
        if not fmt.is_ocp:
            packed = np.asarray(packed, dtype=np.uint8)
            lead, width = packed.shape[:-1], packed.shape[-1]
            out = np.empty(lead + (width // fmt.bytes_per_block * fmt.block_size,), np.uint16)
            if out.size:
                self._bk.unpack_rows(_rows(packed, fmt.bytes_per_block), unpack_lanes(fmt),
                                     out.reshape(-1, fmt.block_size))
            return out.astype(fmt.code_dtype, copy=False)
        layout = fmt.layout
        return self._regroup(packed, layout.bytes, 8, layout.elements, fmt.bits)

    def _regroup(
        self, data: np.ndarray, in_count: int, in_bits: int, out_count: int, out_bits: int
    ) -> np.ndarray:
        data = np.asarray(data, dtype=np.uint8)
        width = data.shape[-1]
        out = np.empty(data.shape[:-1] + (width // in_count * out_count,), np.uint8)
        if data.size:
            self._k.regroup_rows(
                _rows(data, width), in_count, in_bits, out_count, out_bits,
                out.reshape(-1, out.shape[-1]),
            )
        return out

    # -- matmul -----------------------------------------------------------------------

    def matmul(self, a: MatmulOperand, b: MatmulOperand, options: MatmulOptions) -> np.ndarray:
        """MX matmul of packed operands (see :mod:`mxarray.backends.base`).

        ``a.packed`` is ``(B, M, packed K)`` with scales ``(B, M, KB)``; ``b.packed`` is
        ``(B, N, packed K)`` with scales ``(B, N, KB')`` (B stored blocked along K).
        """
        if a.fmt.is_ocp and b.fmt.is_ocp:
            return self._matmul(a.packed, a.scales, a.fmt, b.packed, b.scales, b.fmt,
                                packed=True)
        return self._matmul_general(a.packed, a.scales, a.fmt, b.packed, b.scales, b.fmt,
                                    tensor_factor(a.fmt, a.tensor_scale)
                                    * tensor_factor(b.fmt, b.tensor_scale))

    def _matmul(
        self,
        a: np.ndarray,
        a_scales: np.ndarray,
        a_fmt: Format,
        b: np.ndarray,
        b_scales: np.ndarray,
        b_fmt: Format,
        packed: bool,
    ) -> np.ndarray:
        """Two OCP operands: the bit-level decode, scales folded in (module docstring)."""
        batch, m, kb = np.shape(a_scales)
        n = np.shape(b_scales)[1]
        k = kb * a_fmt.block_size
        a, a_scales = _per_batch(a, batch, m), _per_batch(a_scales, batch, m)
        b, b_scales = _per_batch(b, batch, n), _per_batch(b_scales, batch, n)
        out = _empty_result(batch, m, n, k)
        if not out.size or k == 0:
            return out
        dt = _tile_dtype(_distinct(a_scales), a_fmt, _distinct(b_scales), b_fmt, k)
        a_op = _Operand(a, a_scales, a_fmt, dt, packed, self._k.decode_panel)
        b_op = _Operand(b, b_scales, b_fmt, dt, packed, self._k.decode_panel)
        _run_matmul(a_op, b_op, out, k, a_fmt.block_size, dt)
        return out

    def _matmul_general(
        self,
        a: np.ndarray,
        a_scales: np.ndarray,
        a_fmt: Format,
        b: np.ndarray,
        b_scales: np.ndarray,
        b_fmt: Format,
        factor: float,
    ) -> np.ndarray:
        """Packed operands of any formats: table-decoded panels without the tensor scales,
        whose product ``factor`` multiplies every sum once, in float64, before it is
        rounded to float32.

        Block sizes may differ: K is cut to the shorter padded length (beyond it one
        side is padding) and panels span whole blocks of both operands.
        """
        batch, m, kb_a = np.shape(a_scales)
        n, kb_b = np.shape(b_scales)[1:]
        k = min(kb_a * a_fmt.block_size, kb_b * b_fmt.block_size)
        a, a_scales = _per_batch(a, batch, m), _per_batch(a_scales, batch, m)
        b, b_scales = _per_batch(b, batch, n), _per_batch(b_scales, batch, n)
        out = _empty_result(batch, m, n, k)
        if not out.size or k == 0:
            return out
        dt = general_matmul_dtype(a_fmt, _distinct(a_scales), b_fmt, _distinct(b_scales), k)
        kernel = self._bk.decode_panel_table
        a_op = _TableOperand(a, a_scales, a_fmt, dt, kernel)
        b_op = _TableOperand(b, b_scales, b_fmt, dt, kernel)
        _run_matmul(a_op, b_op, out, k, math.lcm(a_fmt.block_size, b_fmt.block_size), dt,
                    factor)
        return out


def _per_batch(x: Any, batch: int, rows: int) -> np.ndarray:
    """``x`` as uint8 ``(batch, rows, -1)`` whose batch items are C-contiguous (what the
    decode kernels read), copying only when an item is not: an operand broadcast along
    the batch axis (stride 0) stays one copy instead of ``batch``."""
    x = np.asarray(x, dtype=np.uint8)
    x = x.reshape(batch, rows, math.prod(x.shape[2:]))
    return x if not batch or x[0].flags.c_contiguous else np.ascontiguousarray(x)


def _distinct(x: np.ndarray) -> np.ndarray:
    """The batch items of ``x`` that may differ: one when the batch axis is a broadcast."""
    return x[:1] if x.strides[0] == 0 else x


def _empty_result(batch: int, m: int, n: int, k: int) -> np.ndarray:
    """The float32 ``(batch, m, n)`` result, zero-filled when there is nothing to sum."""
    out = np.empty((batch, m, n), dtype=np.float32)
    if k == 0:
        out[...] = 0
    return out


def _scale_result(flat: np.ndarray, factor: float) -> None:
    """``flat *= factor`` with one rounding to float32 per element (the product is formed
    in float64), a chunk at a time so that no float64 copy of the result is made."""
    step = _MIN_TILE_BYTES // 8
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, flat.size, step):
            part = flat[i : i + step]
            part[...] = np.multiply(part, factor, dtype=np.float64)


def _run_matmul(a: Any, b: Any, out: np.ndarray, k: int, unit: int, dt: np.dtype,
                factor: float = 1.0) -> None:
    """``out = factor * (A @ B.T)`` over ``k`` elements: K-panels on BLAS when ``dt`` is
    float32 and an accumulating sgemm exists, else row tiles.

    Every sum is multiplied by ``factor`` in float64 before its rounding to float32:
    float32 sums are in range (``dt`` is chosen so), float64 sums need not be.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if dt == np.float32 and sgemm_acc is not None:
            _matmul_k_panels(a, b, out, k, unit)
            if factor != 1.0:
                _scale_result(out.reshape(-1), factor)
        else:
            _matmul_tiles(a, b, out, k, dt, factor)


class _Operand:
    """One OCP MX matmul operand (packed or one code per byte) and how to decode it."""

    def __init__(self, data: np.ndarray, scales: np.ndarray, fmt: Format, dtype: np.dtype,
                 packed: bool, kernel: Any) -> None:
        self.data, self.scales, self.bs = data, scales, fmt.block_size
        self.pow2 = _scale_values(dtype)
        self.args = (fmt.block_size, *_layout(fmt, packed), *_decode_params(fmt))
        self.kernel = kernel

    def decode(self, batch: int, row0: int, e0: int, out: np.ndarray) -> None:
        """Elements ``e0 ..`` (a block boundary; as many as ``out`` holds) of rows
        ``row0 ..`` into ``out``."""
        self.kernel(self.data[batch], self.scales[batch], row0, e0 // self.bs, *self.args,
                    self.pow2, out)


class _TableOperand:
    """One packed operand of any format, decoded by table lookup in ``dtype``."""

    def __init__(self, data: np.ndarray, scales: np.ndarray, fmt: Format, dtype: np.dtype,
                 kernel: Any) -> None:
        self.data, self.scales, self.kernel = data, scales, kernel
        with np.errstate(over="ignore"):  # table values never used in float32 may overflow
            self.table = fmt.decode_table.astype(dtype)
            self.values = scale_values(fmt, None, with_tensor=False).astype(dtype)
        self.args = (fmt.block_size, unpack_lanes(fmt))

    def decode(self, batch: int, row0: int, e0: int, out: np.ndarray) -> None:
        """Elements ``e0 ..`` (as many as ``out`` holds) of rows ``row0 ..`` into ``out``."""
        self.kernel(self.data[batch], self.scales[batch], row0, e0, *self.args, self.table,
                    self.values, out)


def _matmul_k_panels(a: Any, b: Any, out: np.ndarray, k: int, unit: int) -> None:
    """``out = A @ B.T`` as a sum of K-panel products accumulated by BLAS in ``out``.

    Each element of both operands is decoded exactly once, into a panel of all rows and
    a few ``unit``-element steps of K, and every product is one large GEMM (``beta = 1``
    after the first).  Decoded values and products are exact in float32 here
    (``_tile_dtype``, ``general_matmul_dtype``), and accumulating in any order keeps the
    spec's bound.
    """
    batch, m, n = out.shape
    panel = _panel_blocks(m, n, -(-k // unit), unit) * unit
    a_panel = np.empty(m * panel, dtype=np.float32)
    b_panel = np.empty(n * panel, dtype=np.float32)
    for p in range(batch):
        for e0 in range(0, k, panel):
            width = min(panel, k - e0)
            ap = a_panel[: m * width].reshape(m, width)
            bp = b_panel[: n * width].reshape(n, width)
            a.decode(p, 0, e0, ap)
            b.decode(p, 0, e0, bp)
            sgemm_acc(ap, bp, out[p], e0 > 0)


def _matmul_tiles(a: Any, b: Any, out: np.ndarray, k: int, dt: np.dtype,
                  factor: float) -> None:
    """``out = factor * (A @ B.T)`` by row tiles of both operands over all of K, in
    ``dt``, each tile multiplied by ``factor`` in float64 and rounded once to float32.

    Used for extreme scales (float64 tiles) or where NumPy's BLAS cannot accumulate.
    """
    batch, m, n = out.shape
    tm, tn = _tile_shape(m, n, k, dt.itemsize)
    a_tile = np.empty((tm, k), dtype=dt)
    b_tile = np.empty((tn, k), dtype=dt)
    c_tile = None if dt == np.float32 and factor == 1.0 else np.empty((tm, tn), dtype=dt)
    for p in range(batch):
        for j in range(0, n, tn):
            bj = b_tile[: min(tn, n - j)]
            b.decode(p, j, 0, bj)
            for i in range(0, m, tm):
                ai = a_tile[: min(tm, m - i)]
                a.decode(p, i, 0, ai)
                target = out[p, i : i + ai.shape[0], j : j + bj.shape[0]]
                if c_tile is None:
                    np.matmul(ai, bj.T, out=target)
                else:
                    c = c_tile[: ai.shape[0], : bj.shape[0]]
                    np.matmul(ai, bj.T, out=c)
                    np.multiply(c, factor, out=target, dtype=np.float64)


def _panel_blocks(m: int, n: int, kb: int, bs: int) -> int:
    """Blocks of K per panel: both float32 panels within the memory budget (>= 1)."""
    budget = max(_MIN_TILE_BYTES, int(_TILE_FRACTION * 4 * (m + n) * kb * bs))
    return max(1, min(kb, budget // (4 * (m + n) * bs)))


def _tile_dtype(
    a_scales: np.ndarray, a_fmt: Format, b_scales: np.ndarray, b_fmt: Format, k: int
) -> np.dtype:
    """float32 when decoded values and their products are exact in it, else float64."""

    def x_range(scales: np.ndarray) -> tuple[int, int]:
        valid = scales[scales != SCALE.nan_code]
        if valid.size == 0:
            return 0, 0
        return int(valid.min()) - SCALE.bias, int(valid.max()) - SCALE.bias

    (a_lo, a_hi), (b_lo, b_hi) = x_range(a_scales), x_range(b_scales)
    # every |value| < 2**(X + emax + 1); every partial sum of K products stays below
    # 2**(a_top + b_top + log2 K), so no decoded value, product or sum overflows
    a_top, b_top = a_hi + a_fmt.emax + 1, b_hi + b_fmt.emax + 1
    terms = int(np.ceil(np.log2(max(k, 1))))
    fits = max(a_top, b_top, a_top + b_top + terms) <= _FLOAT32.maxexp
    lowest = np.log2(a_fmt.min_subnormal) + a_lo + np.log2(b_fmt.min_subnormal) + b_lo
    exact = lowest >= np.log2(_FLOAT32.smallest_subnormal)
    return np.dtype(np.float32) if fits and exact else np.dtype(np.float64)


def _tile_shape(m: int, n: int, k: int, itemsize: int) -> tuple[int, int]:
    """Rows of A and of B decoded at a time: B tiles large (decoded once), A tiles small."""
    budget = max(_MIN_TILE_BYTES, int(_TILE_FRACTION * 4 * (m + n) * k))
    rows = max(2, budget // max(1, itemsize * k))
    tm = max(1, min(m, rows // 6))
    tn = max(1, min(n, rows - tm))
    return tm, tn
