"""MX matmul on the CPU's bfloat16 dot-product hardware (AVX512-BF16).

Every element value of every block format has at most 8 significant bits, and so does
its product with a power-of-two block scale (UE4M3 scales add 4 bits to NVFP4's 2).
While such a value lies in bfloat16's normal range it is exact in bfloat16, and the
product of two is exact in float32 (at most 16 significant bits).  This module decodes
packed MX operands straight into bfloat16 bit patterns with the block scale folded in
(:func:`decode_panel`: one float32 product per element, exact, then its top 16 bits)
and multiplies them on the ``VDPBF16PS`` instruction, which sums pairs of bfloat16
products into float32 accumulators: no per-block scaling work is left in the GEMM.

The GEMM is our own (:func:`_gemm`), in Numba: a register-tiled ``MR x NR`` micro-kernel
(:func:`_dp_tile`) written as LLVM IR around the ``llvm.x86.avx512bf16.dpbf16ps.512``
intrinsic, fed by K-panels of both operands in the micro-kernel's layout.  Each output
element is one float32 accumulator carried through all of K in order (loaded from and
stored to the result between K-panels, which changes no bit), so the accumulation is
``c += a[2i+1] b[2i+1]; c += a[2i] b[2i]`` for i = 0, 1, ... as the instruction defines it.
Why not a library (checked on this project's machine, an AMD EPYC with AVX512-BF16 and
no AMX): NumPy 2.4.6's bundled OpenBLAS (scipy-openblas64 0.3.31.188) exports no
``sbgemm``; oneMKL's ``cblas_gemm_bf16bf16f32`` (oneMKL 2024.2 inside torch 2.13, and
the ``mkl`` 2026.2 wheel: 221 MB, Intel Simplified Software License) took longer than
NumPy's float32 sgemm there; the ``onednn`` 2026.1 wheel (97 MB) needs the SYCL, TBB and
Intel compiler runtimes; torch 2.13's CPU bfloat16 matmul returns bfloat16 (its
``out_dtype`` overload has no CPU kernel).

The instruction treats bfloat16 subnormal inputs as zero, flushes subnormal float32
results to zero and rounds to nearest even whatever MXCSR says (Intel SDM, VDPBF16PS).
:func:`bf16_fits` admits only operands for which none of that can happen: every
decoded value is a normal bfloat16, every product and hence every partial sum is a
multiple of ``2**-126`` (so a non-zero one is normal), and no partial sum can reach
``2**128``.  Within that window each sum is the float32 sum of exact products, within
spec/mx.toml's ``[dot_bf16_path]`` bound (the ``[dot]`` bound); outside it the caller
takes the float32-panel path.  Tensor scales (NVFP4) multiply each sum once, in float64,
before the rounding to float32, as on the float32-panel path.
"""

from __future__ import annotations

import functools
import math
import os
import sys

import numba as nb
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .._blas import release_blas_workers
from ..base import MatmulOperand
from .block_kernels import _unpack_row
from .params import _value_span, tensor_value, unpack_lanes
from .threads import guarded

__all__ = ["bf16_cpu", "bf16_fits", "bf16_gemm_available", "gemm_bf16", "matmul_bf16"]

MR, NR = 8, 32  # micro-kernel tile: MR rows of A x NR rows of B (2 zmm accumulators a row)
KC = 256  # K elements per panel at most (even): a B micro-panel (KC * NR * 2 bytes) fits L1
# Both panels together stay within this fraction of the operands' size in float32 (but
# may take _MIN_PANEL_BYTES): the float32-panel path's workspace budget.
_PANEL_FRACTION = 0.094
_MIN_PANEL_BYTES = 1 << 20
# Products of at least this many multiply-adds (a few ms) first stop NumPy's OpenBLAS
# workers (mxarray.backends._blas.release_blas_workers): restarting them at the next
# NumPy GEMM costs about 55 us, while workers spinning after a GEMM cost the bf16 GEMM
# about 1.9x its time on 2 cores.
_RELEASE_MIN_MACS = 1 << 26
_SCALE_ROWS = 4096  # operand rows whose scale bytes bf16_fits reads at a time
_LANES = 16  # float32 lanes of a zmm register
_LOWEST, _HIGHEST = -126, 127  # exponents of bfloat16's (and float32's) normal range


# -- the micro-kernel ----------------------------------------------------------------

@intrinsic
def _dp_tile(typingctx, a_addr, b_addr, c_addr, ldc, pairs, load_c):
    """``C[MR, NR] (+)= A @ B.T`` over ``pairs`` K-pairs on VDPBF16PS (LLVM IR).

    ``a_addr`` points at ``pairs x MR`` uint32 words (the bfloat16 pair ``k = 2p, 2p+1`` of
    row ``r``, low half first), ``b_addr`` at ``pairs x NR`` such words, ``c_addr`` at
    float32 rows ``ldc`` elements apart.  The ``MR * NR / 16`` accumulators start from C
    (``load_c``) or zero and live in registers for the whole loop.
    """
    sig = types.void(types.uintp, types.uintp, types.uintp, types.intp, types.intp,
                     types.boolean)

    def codegen(context, builder, signature, args):
        a_addr, b_addr, c_addr, ldc, pairs, load_c = args
        i32, f32 = ir.IntType(32), ir.FloatType()
        vi, vf = ir.VectorType(i32, _LANES), ir.VectorType(f32, _LANES)
        name = "llvm.x86.avx512bf16.dpbf16ps.512"
        dp = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(vf, [vf, vi, vi]), name)
        idx = ldc.type

        def const(v):
            return ir.Constant(idx, v)

        a_ptr = builder.inttoptr(a_addr, i32.as_pointer())
        b_ptr = builder.inttoptr(b_addr, vi.as_pointer())
        c_ptr = builder.inttoptr(c_addr, f32.as_pointer())
        nv = NR // _LANES
        c_vecs = [builder.bitcast(builder.gep(c_ptr, [builder.add(builder.mul(ldc, const(r)),
                                                                  const(v * _LANES))]),
                                  vf.as_pointer())
                  for r in range(MR) for v in range(nv)]
        with builder.if_else(load_c) as (then, otherwise):
            with then:
                loaded = [builder.load(p, align=4) for p in c_vecs]
                from_c = builder.block
            with otherwise:
                from_zero = builder.block
        start = []
        for value in loaded:
            phi = builder.phi(vf)
            phi.add_incoming(value, from_c)
            phi.add_incoming(ir.Constant(vf, None), from_zero)
            start.append(phi)
        before = builder.block
        head = builder.append_basic_block("dp.head")
        body = builder.append_basic_block("dp.body")
        done = builder.append_basic_block("dp.done")
        builder.branch(head)
        builder.position_at_end(head)
        p = builder.phi(idx)
        p.add_incoming(const(0), before)
        acc = []
        for value in start:
            phi = builder.phi(vf)
            phi.add_incoming(value, before)
            acc.append(phi)
        builder.cbranch(builder.icmp_signed("<", p, pairs), body, done)
        builder.position_at_end(body)
        b_vecs = [builder.load(builder.gep(b_ptr, [builder.add(builder.mul(p, const(nv)),
                                                               const(v))]), align=4)
                  for v in range(nv)]
        undef = ir.Constant(vi, ir.Undefined)
        splat = ir.Constant(vi, [0] * _LANES)
        new = []
        for r in range(MR):
            word = builder.load(builder.gep(a_ptr, [builder.add(builder.mul(p, const(MR)),
                                                                const(r))]), align=4)
            a_vec = builder.shuffle_vector(builder.insert_element(undef, word, ir.Constant(i32, 0)),
                                           undef, splat)
            new += [builder.call(dp, [acc[r * nv + v], a_vec, b_vecs[v]]) for v in range(nv)]
        p.add_incoming(builder.add(p, const(1)), body)
        for phi, value in zip(acc, new):
            phi.add_incoming(value, body)
        builder.branch(head)
        builder.position_at_end(done)
        for phi, ptr in zip(acc, c_vecs):
            builder.store(phi, ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(cache=True, parallel=True)
def panel_product(a_panel, b_panel, c, load_c):
    """``c (+)= A_panel @ B_panel.T`` for one K-panel in the micro-kernel layout.

    ``a_panel`` is ``(ceil(M / MR), pairs, MR)`` uint32 bfloat16 pairs and ``b_panel``
    ``(ceil(N / NR), pairs, NR)`` (rows past M or N are zero); ``c`` is C-contiguous float32
    ``(M, N)``.  Threads take the B micro-panels (each stays in L1 while every A
    micro-panel streams past it); tiles that cross the edge of ``c`` go through a
    scratch tile.
    """
    m, n = c.shape
    a_tiles, pairs = a_panel.shape[0], a_panel.shape[1]
    b_tiles = b_panel.shape[0]
    a_step, b_step = pairs * MR * 4, pairs * NR * 4
    a0, b0, c0 = a_panel.ctypes.data, b_panel.ctypes.data, c.ctypes.data
    for jt in prange(b_tiles):
        scratch = np.zeros((MR, NR), dtype=np.float32)
        j = jt * NR
        cols = min(NR, n - j)
        for it in range(a_tiles):
            i = it * MR
            rows = min(MR, m - i)
            a_addr, b_addr = a0 + it * a_step, b0 + jt * b_step
            if rows == MR and cols == NR:
                _dp_tile(a_addr, b_addr, c0 + (i * n + j) * 4, n, pairs, load_c)
            else:
                if load_c:
                    scratch[:rows, :cols] = c[i:i + rows, j:j + cols]
                _dp_tile(a_addr, b_addr, scratch.ctypes.data, NR, pairs, load_c)
                c[i:i + rows, j:j + cols] = scratch[:rows, :cols]


# -- panels ------------------------------------------------------------------------------

@nb.njit(cache=True, inline="always")
def _block_codes(src, lanes, simple, codes):
    """One block's unpacked codes: :func:`_unpack_row`, or for ``simple`` layouts (no
    microexponents, element bits dividing 8: FP8, INT8, FP4) a shift and a mask."""
    if simple:
        bits = lanes[6, 2]
        mask = lanes[6, 0]
        for i in range(codes.shape[0]):
            pos = i * bits
            codes[i] = (np.int64(src[pos >> 3]) >> (pos & 7)) & mask
    else:
        _unpack_row(src, lanes, codes)


@nb.njit(cache=True, parallel=True)
def decode_panel(packed, scales, rows, e0, width, bs, lanes, simple, table, scale_values, out):
    """Elements ``e0 .. e0 + width`` of the first ``rows`` rows of a packed MX operand, as
    bfloat16 pairs in the micro-kernel layout ``out`` (``(tiles, pairs, L)`` uint32).

    Each value is ``table[code] * scale_values[scale byte]`` in float32 (exact inside
    :func:`bf16_fits`'s window, NaN for NaN scale bytes) and its top 16 bits are its
    bfloat16 pattern; word ``p`` of a row holds elements ``2p`` (low half) and ``2p + 1``.
    Rows past ``rows`` and the odd element past ``width`` are zero.
    """
    tiles, pairs, per_tile = out.shape
    bytes_per_block = packed.shape[1] // scales.shape[1]
    first, last = e0 // bs, (e0 + width - 1) // bs
    for t in prange(tiles):
        codes = np.empty(bs, dtype=np.int64)
        values = np.zeros(2 * pairs + bs, dtype=np.float32)
        bits = values.view(np.uint32)
        for lane in range(per_tile):
            r = t * per_tile + lane
            if r >= rows:
                out[t, :, lane] = 0
                continue
            src = packed[r]
            for blk in range(first, last + 1):
                base = blk * bytes_per_block
                _block_codes(src[base: base + bytes_per_block], lanes, simple, codes)
                s = scale_values[scales[r, blk]]
                at = blk * bs - e0  # may be negative for a block that starts before e0
                for i in range(max(0, -at), min(bs, width - at)):
                    values[at + i] = table[codes[i]] * s
            bits[width] = 0
            for p in range(pairs):
                out[t, p, lane] = (bits[2 * p] >> 16) | (bits[2 * p + 1] & 0xFFFF0000)


@nb.njit(cache=True, parallel=True)
def copy_panel(src, rows, e0, width, out):
    """Columns ``e0 .. e0 + width`` of bfloat16 bits ``src`` (``(R, K)`` uint16) as pairs in
    the micro-kernel layout ``out``, as :func:`decode_panel` lays out decoded values."""
    tiles, pairs, per_tile = out.shape
    for t in prange(tiles):
        for lane in range(per_tile):
            r = t * per_tile + lane
            if r >= rows:
                out[t, :, lane] = 0
                continue
            row = src[r]
            for p in range(width // 2):
                e = e0 + 2 * p
                out[t, p, lane] = np.uint32(row[e]) | (np.uint32(row[e + 1]) << 16)
            if width & 1:
                out[t, pairs - 1, lane] = np.uint32(row[e0 + width - 1])


@nb.njit(cache=True, parallel=True)
def scale_result(flat, factor):
    """``flat[i] = float32(float64(flat[i]) * factor)``: one rounding per element."""
    for i in prange(flat.size):
        flat[i] = np.float32(np.float64(flat[i]) * factor)


_K = guarded(sys.modules[__name__])


def _gemm(out: np.ndarray, k: int, fill_a, fill_b) -> None:
    """``out = A @ B.T`` (float32 ``(M, N)``) over ``k`` elements, K-panel by K-panel.

    ``fill_a(e0, width, panel)`` and ``fill_b`` write K-columns ``e0 .. e0 + width`` of
    every row of their operand into ``panel`` in the micro-kernel layout; each element
    is written once.  Panels are ``KC`` elements wide, or narrower where both would take
    more than the float32-panel path's workspace budget (a fraction of the operands'
    size in float32, at least 1 MiB).
    """
    ok, why = bf16_cpu()
    if not ok:  # compiling the kernel for such a CPU would end the process in LLVM
        raise RuntimeError(f"the bfloat16 GEMM cannot run here: {why}")
    m, n = out.shape
    if k == 0:
        out[...] = 0
        return
    a_tiles, b_tiles = -(-m // MR), -(-n // NR)
    padded_rows = a_tiles * MR + b_tiles * NR
    budget = max(_MIN_PANEL_BYTES, int(_PANEL_FRACTION * 4 * (m + n) * k))
    step = 2 * max(1, min(KC // 2, budget // (4 * padded_rows)))  # K elements per panel
    a_buf = np.empty(a_tiles * (step // 2) * MR, dtype=np.uint32)
    b_buf = np.empty(b_tiles * (step // 2) * NR, dtype=np.uint32)
    for e0 in range(0, k, step):
        width = min(step, k - e0)
        pairs = (width + 1) // 2
        a_panel = a_buf[: a_tiles * pairs * MR].reshape(a_tiles, pairs, MR)
        b_panel = b_buf[: b_tiles * pairs * NR].reshape(b_tiles, pairs, NR)
        fill_a(e0, width, a_panel)
        fill_b(e0, width, b_panel)
        _K.panel_product(a_panel, b_panel, out, e0 > 0)


# -- availability and the window ---------------------------------------------------------

@functools.cache
def bf16_cpu() -> tuple[bool, str]:
    """Whether the CPU has AVX512-BF16 for Numba's code, from its feature flags alone.

    Cheap (no compilation): what a backend may read at import to order its matmul
    paths.  LLVM reports the feature only where the operating system also saves the
    512-bit registers; Numba must compile for the host (``NUMBA_CPU_NAME`` unset or
    ``host``).
    """
    import llvmlite.binding as llvm

    if not llvm.get_host_cpu_features().get("avx512bf16", False):
        return False, "the CPU (or its operating system) lacks AVX512-BF16"
    target = os.environ.get("NUMBA_CPU_NAME", "host")
    if target != "host":
        return False, f"Numba compiles for NUMBA_CPU_NAME={target!r}, not this CPU"
    return True, f"AVX512-BF16 ({llvm.get_host_cpu_name()})"


@functools.cache
def bf16_gemm_available() -> tuple[bool, str]:
    """Whether this CPU runs the bfloat16 GEMM, and why (not).

    :func:`bf16_cpu`, and the kernel compiles (or loads from Numba's cache) and a small
    product of exact integers agrees with NumPy.
    """
    ok, why = bf16_cpu()
    if not ok:
        return ok, why
    a = (np.arange(3 * 70, dtype=np.float32).reshape(3, 70) % 7) - 3
    b = (np.arange(40 * 70, dtype=np.float32).reshape(40, 70) % 5) - 2
    try:
        got = gemm_bf16(_bits(a), _bits(b))
    except Exception as exc:  # a compile failure must not break the backend
        return False, f"the bfloat16 kernel failed: {type(exc).__name__}: {exc}"
    if not np.array_equal(got, a @ b.T):
        return False, "the bfloat16 kernel disagreed with NumPy on a self-test"
    return True, why


def _bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bits of float32 values exact in bfloat16 (their top 16 bits)."""
    return (np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def _scale_bytes_used(scales: np.ndarray) -> np.ndarray:
    """The distinct bytes of ``scales`` (``(batch, rows, KB)``), counted a slice at a time
    and once for a batch axis that is a broadcast: no copy of the operand's scales."""
    scales = np.asarray(scales)
    if scales.ndim and scales.strides[0] == 0:
        scales = scales[:1]
    seen = np.zeros(256, dtype=bool)
    for item in scales.reshape((math.prod(scales.shape[:-2]),) + scales.shape[-2:]):
        for rows in range(0, item.shape[0], _SCALE_ROWS):
            seen[np.unique(item[rows: rows + _SCALE_ROWS])] = True
    return np.flatnonzero(seen).astype(np.uint8)


def bf16_fits(a: MatmulOperand, b: MatmulOperand) -> bool:
    """Whether ``a @ b`` runs exactly as stated on the bfloat16 path (module docstring).

    From the scale bytes in use: every decoded value (tensor scales left out) has at
    most 8 significant bits and lies in ``[2**-126, 2**128)`` in magnitude, so it is a
    normal bfloat16; every product's lowest bit is at least ``2**-126``; and a sum of
    K products stays below ``2**128``.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> from mxarray.backends.base import MatmulOperand
    >>> from mxarray.backends.numba.bf16 import bf16_fits
    >>> def operand(x):
    ...     q = mxarray.quantize(x, "mxfp8_e4m3", backend="numpy")
    ...     return MatmulOperand(q.packed[None], q.scales[None], q.format, None)
    >>> bf16_fits(operand(np.ones((2, 32))), operand(np.ones((3, 32))))
    True
    >>> bf16_fits(operand(np.full((2, 32), 2.0**-100)), operand(np.ones((3, 32))))
    False
    """
    k = min(a.padded_length, b.padded_length)
    spans = [_value_span(op.fmt, _scale_bytes_used(op.scales)) for op in (a, b)]
    for span in spans:
        if span is not None and not (span[2] <= 8 and _LOWEST <= span[0] and span[1] <= _HIGHEST):
            return False
    if None in spans:  # every product is NaN or zero
        return True
    (a_low, a_high, _), (b_low, b_high, _) = spans
    terms = math.ceil(math.log2(max(k, 1)))
    return a_low + b_low >= _LOWEST and a_high + b_high + 1 + terms <= _HIGHEST


# -- entry points ------------------------------------------------------------------------

def gemm_bf16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` in float32 for bfloat16 bit patterns ``a`` ``(M, K)`` and ``b`` ``(N, K)``.

    The same GEMM as :func:`matmul_bf16` on operands already in bfloat16 (uint16 bits);
    subnormal inputs count as zero and subnormal partial sums are flushed (VDPBF16PS).
    Needs :func:`bf16_gemm_available`.
    """
    a = np.ascontiguousarray(a, dtype=np.uint16)
    b = np.ascontiguousarray(b, dtype=np.uint16)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"gemm_bf16 needs (M, K) and (N, K) arrays, got {a.shape} and {b.shape}")
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.float32)

    def filler(x):
        return lambda e0, width, panel: _K.copy_panel(x, x.shape[0], e0, width, panel)

    if out.size * a.shape[1] >= _RELEASE_MIN_MACS:
        release_blas_workers()
    _gemm(out, a.shape[1], filler(a), filler(b))
    return out


class _Decoder:
    """Fills micro-kernel panels of one batch item of a packed MX operand."""

    def __init__(self, op: MatmulOperand) -> None:
        fmt = op.fmt
        self.bs, self.lanes = fmt.block_size, unpack_lanes(fmt)
        self.simple = not fmt.sub_block_bits and 8 % fmt.bits == 0
        with np.errstate(over="ignore", invalid="ignore"):  # values outside the window unused
            self.table = fmt.decode_table.astype(np.float32)
            self.scale_values = fmt.scale.values.astype(np.float32)
        self.op = op

    def filler(self, item: int):
        packed = np.ascontiguousarray(self.op.packed[item], dtype=np.uint8)
        scales = np.ascontiguousarray(self.op.scales[item], dtype=np.uint8)
        rows = scales.shape[0]

        def fill(e0: int, width: int, panel: np.ndarray) -> None:
            _K.decode_panel(packed, scales, rows, e0, width, self.bs, self.lanes, self.simple,
                            self.table, self.scale_values, panel)

        return fill


def matmul_bf16(a: MatmulOperand, b: MatmulOperand) -> np.ndarray:
    """``(batch, M, N)`` float32 MX product of ``a`` (rows of A) and ``b`` (rows of B.T).

    Operands as :meth:`mxarray.backends.base.Backend.matmul` receives them; they must
    satisfy :func:`bf16_fits` (else ValueError: take the float32-panel path) on a CPU
    where :func:`bf16_gemm_available` holds.  Block sizes may differ; K is the shorter
    padded length.  Extra memory: one bfloat16 K-panel of each operand (see :func:`_gemm`).
    """
    if not bf16_fits(a, b):
        raise ValueError("operands outside the bfloat16 path's exact window (bf16_fits)")
    batch, m = a.scales.shape[:2]
    n = b.scales.shape[1]
    k = min(a.padded_length, b.padded_length)
    out = np.empty((batch, m, n), dtype=np.float32)
    if out.size == 0:
        return out
    da, db = _Decoder(a), _Decoder(b)
    if batch * m * n * k >= _RELEASE_MIN_MACS:  # spinning OpenBLAS workers share the cores
        release_blas_workers()
    for item in range(batch):
        _gemm(out[item], k, da.filler(item), db.filler(item))
    factor = tensor_value(a.tensor_scale) * tensor_value(b.tensor_scale)
    if factor != 1.0 and out.size:
        with np.errstate(over="ignore"):
            _K.scale_result(out.reshape(-1), factor)
    return out
