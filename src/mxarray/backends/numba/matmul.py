"""The MX matmul driver of the Numba backend: decoded panels into BLAS.

``out = factor * (A @ B.T)`` for two packed operands of any formats, as a sum of K-panel
products: both operands are decoded, a few blocks of K at a time, into float32 panels
of all their rows (by their kernel family's panel decoder), and NumPy's own BLAS adds
each panel product into the result (:mod:`mxarray.backends._blas`), so every element is
decoded once and BLAS sees large GEMMs.  The panels are decoded on the calling thread
(the families launch them serially): OpenMP workers woken between GEMMs would spin and
take the cores from BLAS.  Without an accumulating BLAS, or when a value,
product or partial sum would not be exact or in range in float32
(:func:`~mxarray.backends.numba.params.general_matmul_dtype`), it multiplies row tiles
instead (float64 tiles where needed, exact for every registrable format).  Panels leave
out the tensor scales: their product ``factor`` multiplies each sum once, in float64,
before its one rounding to float32 (a sum may lie outside float32's range where the
scaled result does not).  Operands of different block sizes share panels that start
and end on whole blocks of both (``unit``, the least common multiple of the block
sizes), except at the end of K.

Why float32 panels keep the spec's bound: a decoded element has at most 8 significant
bits and a product of two at most 16; when every product and partial sum is exact or
in range in float32 (checked on the operands' scales), BLAS sums exact products in
float32 without overflow, within ``(K + 2) * 2**-24 * sum |A| |B|``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .._blas import sgemm_acc
from .params import general_matmul_dtype

__all__ = ["PanelOperand", "matmul"]

# The decoded panels or tiles of both operands together stay within this fraction of
# the size of the operands decoded to float32 (but at least _MIN_TILE_BYTES).
_TILE_FRACTION = 0.094
_MIN_TILE_BYTES = 1 << 20

Decoder = Callable[[int, int, int, np.ndarray], None]
"""``decode(batch, row0, e0, out)``: elements ``e0 ..`` (as many as ``out``'s columns) of
rows ``row0 ..`` of batch item ``batch`` of an operand, into ``out``."""


class PanelOperand:
    """One matmul operand: its packed rows, scale bytes and format, per batch item
    C-contiguous (:func:`per_batch`)."""

    def __init__(self, packed: Any, scales: Any, fmt: Any, tensor: float) -> None:
        batch, rows = np.shape(scales)[:2]
        self.packed, self.scales = per_batch(packed, batch, rows), per_batch(scales, batch, rows)
        self.fmt, self.tensor = fmt, tensor
        self.distinct_scales = _distinct(self.scales)


def per_batch(x: Any, batch: int, rows: int) -> np.ndarray:
    """``x`` as uint8 ``(batch, rows, -1)`` whose batch items are C-contiguous (what the
    decode kernels read), copying only when an item is not: an operand broadcast along
    the batch axis (stride 0) stays one copy instead of ``batch``."""
    x = np.asarray(x, dtype=np.uint8)
    x = x.reshape(batch, rows, math.prod(x.shape[2:]))
    return x if not batch or x[0].flags.c_contiguous else np.ascontiguousarray(x)


def _distinct(x: np.ndarray) -> np.ndarray:
    """The batch items of ``x`` that may differ: one when the batch axis is a broadcast."""
    return x[:1] if x.strides[0] == 0 else x


def matmul(a: PanelOperand, a_decoder: Callable[[np.dtype], Decoder],
           b: PanelOperand, b_decoder: Callable[[np.dtype], Decoder]) -> np.ndarray:
    """``(batch, M, N)`` float32 ``A @ B.T`` of two operands, contracted over the shorter
    padded length; ``x_decoder(dtype)`` gives an operand's panel decoder in ``dtype``."""
    batch, m, kb_a = a.scales.shape
    n, kb_b = b.scales.shape[1:]
    k = min(kb_a * a.fmt.block_size, kb_b * b.fmt.block_size)
    out = np.empty((batch, m, n), dtype=np.float32)
    if k == 0:
        out[...] = 0
    if not out.size or k == 0:
        return out
    dt = general_matmul_dtype(a.fmt, a.distinct_scales, b.fmt, b.distinct_scales, k)
    unit = math.lcm(a.fmt.block_size, b.fmt.block_size)
    factor = a.tensor * b.tensor
    with np.errstate(over="ignore", invalid="ignore"):
        if dt == np.float32 and sgemm_acc is not None:
            _matmul_k_panels(a_decoder(dt), b_decoder(dt), out, k, unit)
            if factor != 1.0:
                _scale_result(out.reshape(-1), factor)
        else:
            _matmul_tiles(a_decoder(dt), b_decoder(dt), out, k, dt, factor)
    return out


def _scale_result(flat: np.ndarray, factor: float) -> None:
    """``flat *= factor`` with one rounding to float32 per element (the product is formed
    in float64), a chunk at a time so that no float64 copy of the result is made."""
    step = _MIN_TILE_BYTES // 8
    for i in range(0, flat.size, step):
        part = flat[i : i + step]
        part[...] = np.multiply(part, factor, dtype=np.float64)


def _matmul_k_panels(a: Decoder, b: Decoder, out: np.ndarray, k: int, unit: int) -> None:
    """``out = A @ B.T`` as a sum of K-panel products accumulated by BLAS in ``out``.

    Each element of both operands is decoded exactly once, into a panel of all rows and
    a few ``unit``-element steps of K, and every product is one large GEMM (``beta = 1``
    after the first).
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
            a(p, 0, e0, ap)
            b(p, 0, e0, bp)
            sgemm_acc(ap, bp, out[p], e0 > 0)


def _matmul_tiles(a: Decoder, b: Decoder, out: np.ndarray, k: int, dt: np.dtype,
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
            b(p, j, 0, bj)
            for i in range(0, m, tm):
                ai = a_tile[: min(tm, m - i)]
                a(p, i, 0, ai)
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


def _tile_shape(m: int, n: int, k: int, itemsize: int) -> tuple[int, int]:
    """Rows of A and of B decoded at a time: B tiles large (decoded once), A tiles small."""
    budget = max(_MIN_TILE_BYTES, int(_TILE_FRACTION * 4 * (m + n) * k))
    rows = max(2, budget // max(1, itemsize * k))
    tm = max(1, min(m, rows // 6))
    tn = max(1, min(n, rows - tm))
    return tm, tn
