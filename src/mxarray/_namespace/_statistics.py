"""Reductions and statistics (and the utility reductions all/any/diff).

MX arrays are reduced on their dequantized float32 values and give float32.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from . import _dtypes as dt
from ._array import Array
from ._device import quiet, same_device
from ._manipulation import normalize_axes, normalize_axis
from ._operands import check_category, dense

__all__ = ["max", "min", "mean", "prod", "std", "sum", "var", "cumulative_sum",
           "cumulative_prod", "all", "any", "diff", "count_nonzero"]


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    return tuple(range(ndim)) if axis is None else normalize_axes(axis, ndim)


def _sum_dtype(dtype: Any, given: Any) -> np.dtype:
    if given is not None:
        return dt.check_dtype(given)
    if dtype.kind == "u":
        return dt.uint64
    if dtype.kind in "ib":
        return dt.int64
    return dtype


def _reduce(x: Any, axis: Any, keepdims: bool, category: str, name: str, func: str,
            out_dtype: Any = None, **kwargs: Any) -> Array:
    """Reduce with ``func`` (a function name of the data's array module)."""
    a = dense(x)
    check_category(a.dtype, category, name)
    axes = _axes(axis, a.ndim)
    xp = a._xp
    with quiet(xp):
        out = getattr(xp, func)(a._x, axis=axes, keepdims=keepdims, **kwargs)
    return Array._new(xp.asarray(out).astype(out_dtype or a.dtype, copy=False))


def sum(x: Any, /, *, axis: Any = None, dtype: Any = None,  # noqa: A001
        keepdims: bool = False) -> Array:
    """Sum over ``axis``; integer input sums in int64/uint64 unless ``dtype`` is given."""
    a = dense(x)
    target = _sum_dtype(a.dtype, dtype)
    return _reduce(a, axis, keepdims, "numeric", "sum", "sum", target, dtype=target)


def prod(x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Array:
    """Product over ``axis``; integer input multiplies in int64/uint64 unless ``dtype``."""
    a = dense(x)
    target = _sum_dtype(a.dtype, dtype)
    return _reduce(a, axis, keepdims, "numeric", "prod", "prod", target, dtype=target)


def _extreme(x: Any, axis: Any, keepdims: bool, name: str) -> Array:
    a = dense(x)
    check_category(a.dtype, "real numeric", name)
    if builtins.any(a.shape[i] == 0 for i in _axes(axis, a.ndim)):
        raise ValueError(f"{name} of an empty axis is undefined")
    return _reduce(a, axis, keepdims, "real numeric", name, name)


def max(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Array:  # noqa: A001
    """Maximum over ``axis`` (NaN propagates).

    Raises
    ------
    ValueError
        If a reduced axis is empty.
    """
    return _extreme(x, axis, keepdims, "max")


def min(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Array:  # noqa: A001
    """Minimum over ``axis`` (NaN propagates).

    Raises
    ------
    ValueError
        If a reduced axis is empty.
    """
    return _extreme(x, axis, keepdims, "min")


def mean(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Array:
    """Arithmetic mean over ``axis`` (floating-point input)."""
    return _reduce(x, axis, keepdims, "floating-point", "mean", "mean")


def std(x: Any, /, *, axis: Any = None, correction: int | float = 0.0,
        keepdims: bool = False) -> Array:
    """Standard deviation over ``axis`` with ``correction`` degrees of freedom removed."""
    return _reduce(x, axis, keepdims, "real floating-point", "std", "std", ddof=correction)


def var(x: Any, /, *, axis: Any = None, correction: int | float = 0.0,
        keepdims: bool = False) -> Array:
    """Variance over ``axis`` with ``correction`` degrees of freedom removed."""
    return _reduce(x, axis, keepdims, "real floating-point", "var", "var", ddof=correction)


def _cumulative(x: Any, axis: Any, dtype: Any, include_initial: bool, name: str,
                func: str, initial: int) -> Array:
    a = dense(x)
    check_category(a.dtype, "numeric", name)
    if axis is None:
        if a.ndim > 1:
            raise ValueError(f"{name} needs an axis for arrays of more than one dimension")
        axis = 0
    if a.ndim == 0:
        raise ValueError(f"{name} needs at least one dimension")
    ax = normalize_axis(axis, a.ndim)
    target = _sum_dtype(a.dtype, dtype)
    xp = a._xp
    values = a._x.astype(target)
    if include_initial:
        shape = list(values.shape)
        shape[ax] = 1
        values = xp.concatenate([xp.full(shape, initial, dtype=target), values], axis=ax)
    with quiet(xp):
        out = getattr(xp, func)(values, axis=ax, dtype=target)
    return Array._new(out.astype(target, copy=False))


def cumulative_sum(x: Any, /, *, axis: int | None = None, dtype: Any = None,
                   include_initial: bool = False) -> Array:
    """Running sum along ``axis`` (optionally starting with 0)."""
    return _cumulative(x, axis, dtype, include_initial, "cumulative_sum", "cumsum", 0)


def cumulative_prod(x: Any, /, *, axis: int | None = None, dtype: Any = None,
                    include_initial: bool = False) -> Array:
    """Running product along ``axis`` (optionally starting with 1)."""
    return _cumulative(x, axis, dtype, include_initial, "cumulative_prod", "cumprod", 1)


def all(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Array:  # noqa: A001
    """True where every element along ``axis`` is non-zero."""
    return _reduce(x, axis, keepdims, "all", "all", "all", dt.bool)


def any(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Array:  # noqa: A001
    """True where some element along ``axis`` is non-zero."""
    return _reduce(x, axis, keepdims, "all", "any", "any", dt.bool)


def count_nonzero(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Array:
    """Number of non-zero elements along ``axis`` (default integer dtype)."""
    a = dense(x)
    check_category(a.dtype, "all", "count_nonzero")
    nonzero = Array._new(a._x != 0)  # a sum: CuPy's count_nonzero has no keepdims
    return _reduce(nonzero, axis, keepdims, "all", "count_nonzero", "sum", dt.int64,
                   dtype=dt.int64)


def diff(x: Any, /, *, axis: int = -1, n: int = 1, prepend: Any = None,
         append: Any = None) -> Array:
    """``n``-th discrete difference along ``axis``.

    Raises
    ------
    ValueError
        If ``n`` is negative or ``x`` is 0-d.
    TypeError
        If ``prepend``/``append`` have another dtype than ``x``.
    """
    a = dense(x)
    check_category(a.dtype, "numeric", "diff")
    if a.ndim == 0:
        raise ValueError("diff needs at least one dimension")
    if n < 0:
        raise ValueError("n must be non-negative")
    ax = normalize_axis(axis, a.ndim)
    extra = {}
    for name, v in (("prepend", prepend), ("append", append)):
        if v is not None:
            d = dense(v, name)
            if d.dtype != a.dtype:
                raise TypeError(f"{name} must have the dtype of x ({a.dtype}), got {d.dtype}")
            same_device(a.device, d.device)
            extra[name] = d._x
    with quiet(a._xp):
        out = a._xp.diff(a._x, n=n, axis=ax, **extra)
    return Array._new(out.astype(a.dtype, copy=False))
