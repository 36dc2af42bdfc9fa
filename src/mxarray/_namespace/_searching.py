"""Searching, sorting and set functions.  MX arrays work on their float32 values."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..array import MXArray
from . import _dtypes as dt
from ._array import Array
from ._device import KINDS, same_device
from ._manipulation import normalize_axis
from ._operands import SCALARS, check_category, dense

__all__ = ["argmax", "argmin", "nonzero", "searchsorted", "where", "argsort", "sort",
           "unique_all", "unique_counts", "unique_inverse", "unique_values",
           "UniqueAllResult", "UniqueCountsResult", "UniqueInverseResult"]


def _arg_extreme(x: Any, axis: int | None, keepdims: bool, name: str) -> Array:
    a = dense(x)
    xp = a._xp
    func = getattr(xp, name)
    check_category(a.dtype, "real numeric", name)
    if a.size == 0:
        raise ValueError(f"{name} of an empty array")
    if axis is None:
        out = func(a._x.reshape(-1))
        if keepdims:
            out = xp.reshape(out, (1,) * a.ndim)
    else:
        out = func(a._x, axis=normalize_axis(axis, a.ndim), keepdims=keepdims)
    return Array._new(xp.asarray(out, dtype=dt.int64))


def argmax(x: Any, /, *, axis: int | None = None, keepdims: bool = False) -> Array:
    """Index of the first maximum (along ``axis``, or of the flattened array)."""
    return _arg_extreme(x, axis, keepdims, "argmax")


def argmin(x: Any, /, *, axis: int | None = None, keepdims: bool = False) -> Array:
    """Index of the first minimum (along ``axis``, or of the flattened array)."""
    return _arg_extreme(x, axis, keepdims, "argmin")


def nonzero(x: Any, /) -> tuple[Array, ...]:
    """Indices of the non-zero elements, one array per axis.

    Raises
    ------
    ValueError
        If ``x`` is 0-d.
    """
    a = dense(x)
    if a.ndim == 0:
        raise ValueError("nonzero of a 0-d array is not allowed")
    return tuple(Array._new(i.astype(dt.int64)) for i in a._xp.nonzero(a._x))


def searchsorted(x1: Any, x2: Any, /, *, side: str = "left", sorter: Any = None) -> Array:
    """Insertion indices of ``x2`` into the sorted 1-D ``x1``.

    Raises
    ------
    ValueError
        If ``x1`` is not 1-D or ``side`` is not "left"/"right".
    """
    a = dense(x1, "x1")
    check_category(a.dtype, "real numeric", "searchsorted")
    if a.ndim != 1:
        raise ValueError("x1 must be 1-D")
    if side not in ("left", "right"):
        raise ValueError("side must be 'left' or 'right'")
    if isinstance(x2, SCALARS):
        v = a._xp.asarray(x2, dtype=dt.scalar_dtype(x2, a.dtype))
    else:
        b = dense(x2, "x2")
        same_device(a.device, b.device)
        dt.promote(a.dtype, b.dtype)
        v = b._x
    sort_idx = None
    if sorter is not None:
        s = dense(sorter, "sorter")
        same_device(a.device, s.device)
        sort_idx = s._x
    return Array._new(a._xp.searchsorted(a._x, v, side=side, sorter=sort_idx)
                      .astype(dt.int64))


def where(condition: Any, x1: Any, x2: Any, /) -> Array:
    """Elements of ``x1`` where ``condition`` is True, else of ``x2`` (one may be a scalar).

    Raises
    ------
    TypeError
        If ``condition`` is not boolean or ``x1``/``x2`` cannot be promoted together.
    """
    c = dense(condition, "condition")
    if c.dtype != dt.bool:
        raise TypeError(f"condition must be a boolean array, got {c.dtype}")
    from ._operands import binary_operands

    for operand in (x1, x2):
        if isinstance(operand, (Array, MXArray)):
            same_device(c.device, operand.device)
    a, b, target = binary_operands(x1, x2, "all", "where")
    return Array._new(c._xp.where(c._x, a, b).astype(target, copy=False))


def argsort(x: Any, /, *, axis: int = -1, descending: bool = False,
            stable: bool = True) -> Array:
    """Indices that sort ``x`` along ``axis`` (stable by default)."""
    a = dense(x)
    check_category(a.dtype, "real numeric", "argsort")
    ax = normalize_axis(axis, a.ndim)
    xp, stable = a._xp, KINDS[a.device.kind].sort_options
    if descending:
        flipped = xp.flip(a._x, ax)
        idx = xp.flip(xp.argsort(flipped, axis=ax, **stable), ax)
        idx = a.shape[ax] - 1 - idx
    else:
        idx = xp.argsort(a._x, axis=ax, **stable)
    return Array._new(idx.astype(dt.int64))


def sort(x: Any, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Array:
    """``x`` sorted along ``axis`` (NaN last)."""
    a = dense(x)
    check_category(a.dtype, "real numeric", "sort")
    ax = normalize_axis(axis, a.ndim)
    xp = a._xp
    out = xp.sort(a._x, axis=ax, **KINDS[a.device.kind].sort_options)
    return Array._new(xp.flip(out, ax) if descending else out)


class UniqueAllResult(NamedTuple):
    """Result of :func:`unique_all`."""

    values: Array
    indices: Array
    inverse_indices: Array
    counts: Array


class UniqueCountsResult(NamedTuple):
    """Result of :func:`unique_counts`."""

    values: Array
    counts: Array


class UniqueInverseResult(NamedTuple):
    """Result of :func:`unique_inverse`."""

    values: Array
    inverse_indices: Array


def _unique(x: Any) -> tuple[Any, ...]:
    d = dense(x)
    a = d._x
    values, index, inverse, counts = d._xp.unique(
        a.reshape(-1), return_index=True, return_inverse=True, return_counts=True,
        equal_nan=False)
    return values, index, inverse.reshape(a.shape), counts


def _i64(v: Any) -> Array:
    return Array._new(v.astype(dt.int64))


def unique_all(x: Any, /) -> UniqueAllResult:
    """Unique values with first indices, inverse indices and counts (NaNs are distinct)."""
    v, i, inv, c = _unique(x)
    return UniqueAllResult(Array._new(v), _i64(i), _i64(inv), _i64(c))


def unique_counts(x: Any, /) -> UniqueCountsResult:
    """Unique values and their counts (NaNs are distinct)."""
    v, _, _, c = _unique(x)
    return UniqueCountsResult(Array._new(v), _i64(c))


def unique_inverse(x: Any, /) -> UniqueInverseResult:
    """Unique values and the inverse indices that rebuild ``x`` (NaNs are distinct)."""
    v, _, inv, _ = _unique(x)
    return UniqueInverseResult(Array._new(v), _i64(inv))


def unique_values(x: Any, /) -> Array:
    """Unique values (NaNs are distinct)."""
    return Array._new(_unique(x)[0])
