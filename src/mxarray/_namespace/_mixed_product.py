"""Products of a dense array and an MX matrix, decoded a tile of rows at a time.

``x @ W`` with ``W`` an MX matrix blocked along K (the layout of weights:
``mx.asarray(W, dtype=fmt, block_axis=0)``) and ``x`` dense, and ``A @ y`` with ``A``
blocked along its last axis, need the MX operand's values but not all of them at once.
The MX operand's canonical layout holds its rows along K (``W.T``'s rows, ``A``'s rows)
one after the other, so a run of canonical rows is a tile of the matrix: each tile is
decoded on the active backend (:func:`mxarray.core.dequantize_rows`, no transpose) and
multiplied by the dense operand in one GEMM of the dense array module.  Every element is
decoded once; the decoded tile stays within :data:`TILE_BYTES` (or one row), so no
float32 copy of the whole MX operand is made.

The result is the dense product of the dequantized values, in the promoted dtype (the MX
operand counts as float32), as the namespace's dense path computes it; only how the
GEMM is split differs.
"""

from __future__ import annotations

from typing import Any

from .. import core
from ..array import MXArray
from . import _dtypes as dt
from . import _manipulation as manip
from ._array import Array
from ._device import CPU, quiet

__all__ = ["mixed_matmul", "mixed_tensordot", "TILE_BYTES"]

TILE_BYTES = 1 << 21
"""Largest decoded tile of the MX operand, in bytes (at least one row is decoded): 2 MiB
measured faster than 1 MiB (1.20-1.25x against 1.22-1.33x NumPy float32 time for the
benchmark MLP) and as fast as 4 MiB."""


def mixed_matmul(x1: Any, x2: Any) -> Array | None:
    """``x1 @ x2`` for a dense Array and a 2-D host MXArray blocked along the contracted
    axis, tile by tile; None when the operands are not such a pair (the caller then takes
    its general path, which also raises the errors for mismatched shapes or dtypes).

    ``x1`` dense of shape ``(..., K)`` with ``x2`` MX ``(K, N)`` blocked along axis 0, or
    ``x1`` MX ``(M, K)`` blocked along axis 1 with ``x2`` dense ``(K,)`` or ``(K, N)``.
    """
    if isinstance(x1, Array) and _is_tiled_operand(x2, 0):
        if x1.ndim == 0 or x1.shape[-1] != x2.shape[0]:
            return None
        target = _target_dtype(x1)
        if target is None:
            return None
        with quiet(x1._xp):
            return Array._new(_dense_times_mx(x1._x.astype(target, copy=False), x2, target,
                                              x1._xp))
    if isinstance(x2, Array) and _is_tiled_operand(x1, 1):
        if x2.ndim not in (1, 2) or x2.shape[0] != x1.shape[1]:
            return None
        target = _target_dtype(x2)
        if target is None:
            return None
        with quiet(x2._xp):
            return Array._new(_mx_times_dense(x1, x2._x.astype(target, copy=False), target,
                                              x2._xp))
    return None


def mixed_tensordot(x1: Any, x2: Any, c1: list[int], c2: list[int]) -> Array | None:
    """``tensordot`` over one pair of axes ``c1``, ``c2`` (non-negative) as
    :func:`mixed_matmul` when one operand is a 2-D host MXArray contracted over its block
    axis; None otherwise."""
    if len(c1) != 1:
        return None
    if isinstance(x1, Array) and _is_tiled_operand(x2, c2[0]) and c2[0] == 0:
        moved = manip.moveaxis(x1, c1[0], -1)
        return mixed_matmul(moved, x2)
    if isinstance(x2, Array) and _is_tiled_operand(x1, c1[0]) and c1[0] == 1:
        if x2.ndim == 0 or x2.shape[c2[0]] != x1.shape[1]:
            return None
        moved = manip.moveaxis(x2, c2[0], 0)
        flat = mixed_matmul(x1, manip.reshape(moved, (moved.shape[0], -1)))
        return None if flat is None else manip.reshape(flat, (x1.shape[0],) + moved.shape[1:])
    return None


def _is_tiled_operand(x: Any, contracted: int) -> bool:
    """Whether ``x`` is a 2-D MXArray on the host blocked along axis ``contracted``."""
    return (isinstance(x, MXArray) and x.ndim == 2 and x.block_axis == contracted
            and x.device == CPU)


def _target_dtype(dense: Array) -> Any:
    """The result dtype of ``dense`` with a float32 operand, when a real float on the host
    (else None: integer, boolean and complex operands and device arrays take the general
    path and its rules)."""
    if dense.device != CPU or dense.dtype not in dt.CATEGORIES["real floating-point"]:
        return None
    return dt.promote(dense.dtype, dt.float32)


def _tile_rows(a: MXArray, itemsize: int) -> int:
    """Canonical rows of ``a`` decoded at a time."""
    row_bytes = a.canonical_scales.shape[-1] * a.format.block_size * itemsize
    return max(1, TILE_BYTES // row_bytes)


def _decoded_rows(a: MXArray, first: int, count: int, target: Any) -> Any:
    """Canonical rows ``first .. first + count - 1`` of 2-D ``a``, ``(count, K)``."""
    per_row = a.canonical_scales.shape[-1]
    # on the calling thread: a CPU backend's workers woken by a parallel decode would
    # spin after it and take the cores from the GEMM that follows (64 against 12 ms for
    # the benchmark's MLP, measured)
    rows = core.dequantize_rows(a, first * per_row, count * per_row, target,
                                calling_thread=True)
    return rows.reshape(count, -1)[:, : a.shape[a.block_axis]]


def _dense_times_mx(x: Any, w: MXArray, target: Any, xp: Any) -> Any:
    """``x @ w`` for ``w`` blocked along its rows (K): ``w``'s canonical rows are its
    columns, so a tile of them gives a block of the result's columns."""
    n = w.shape[1]
    out = xp.empty(x.shape[:-1] + (n,), dtype=target)
    step = _tile_rows(w, out.itemsize)
    for j in range(0, n, step):
        count = min(step, n - j)
        out[..., j:j + count] = xp.matmul(x, _decoded_rows(w, j, count, target).T)
    return out


def _mx_times_dense(a: MXArray, y: Any, target: Any, xp: Any) -> Any:
    """``a @ y`` for ``a`` blocked along its last axis: a tile of ``a``'s rows gives the
    same rows of the result."""
    m = a.shape[0]
    out = xp.empty((m,) + y.shape[1:], dtype=target)
    step = _tile_rows(a, out.itemsize)
    for i in range(0, m, step):
        count = min(step, m - i)
        xp.matmul(_decoded_rows(a, i, count, target), y, out=out[i:i + count])
    return out
