"""Indexing: the keys the standard allows, assignment values, ``take``/``take_along_axis``."""

from __future__ import annotations

import builtins
import operator
from typing import Any

import numpy as np

from ..array import MXArray
from ..layout import integer
from . import _dtypes as dt
from ._array import Array
from ._device import CPU, Device, module, same_device
from ._operands import SCALARS, check_category, dense

__all__ = ["backend_key", "backend_value", "take", "take_along_axis"]


def _component(k: Any, device: Device) -> Any:
    if k is None or k is Ellipsis or isinstance(k, (builtins.bool, int)):
        return k
    if isinstance(k, slice):
        return slice(*(None if v is None else operator.index(v) for v in (k.start, k.stop, k.step)))
    if isinstance(k, Array):
        if k.dtype.kind not in "biu":
            raise IndexError(f"array indices must be integer or boolean, got {k.dtype}")
        same_device(device, k.device)
        return k._x
    if isinstance(k, MXArray):
        raise IndexError("an MX array cannot be used as an index")
    if hasattr(k, "__index__") and not isinstance(k, (np.ndarray, float)):
        return operator.index(k)
    raise IndexError(
        f"unsupported index {type(k).__name__}: use integers, slices, None, Ellipsis, "
        "or integer/boolean mxarray arrays"
    )


def backend_key(key: Any, shape: tuple[int, ...], device: Device = CPU) -> Any:
    """Translate an index into one for the backend array of an array on ``device``.

    Raises
    ------
    IndexError
        For index types the standard does not allow (lists, floats, foreign arrays,
        MX arrays) and for more than one Ellipsis.
    ValueError
        If an index array lives on another device.
    """
    parts = key if isinstance(key, tuple) else (key,)
    if sum(p is Ellipsis for p in parts) > 1:
        raise IndexError("an index can only have a single Ellipsis")
    out = tuple(_component(p, device) for p in parts)
    return out if isinstance(key, tuple) else out[0]


def backend_value(value: Any, dtype: np.dtype, device: Device = CPU) -> Any:
    """The backend value to assign into an array of ``dtype`` on ``device``.

    Raises
    ------
    TypeError
        If the value's dtype (or a scalar's kind) would need a cast the promotion
        rules do not allow.
    ValueError
        If the value lives on another device.
    """
    if isinstance(value, SCALARS):
        return module(device).asarray(value, dtype=dt.scalar_dtype(value, dtype))
    v = dense(value, "value")
    same_device(device, v.device)
    if dt.promote(v.dtype, dtype) != dtype:
        raise TypeError(f"cannot assign a {v.dtype} value into a {dtype} array")
    return v._x


def _axis(axis: Any, ndim: int) -> int:
    ax = integer(axis, "axis")
    if not -ndim <= ax < ndim:
        raise IndexError(f"axis {ax} is out of bounds for an array of {ndim} dimension(s)")
    return ax % ndim


def take(x: Any, indices: Any, /, *, axis: int | None = None) -> Any:
    """Elements of ``x`` at integer ``indices`` along ``axis``.

    On an MX array, ``take`` along an axis other than the block axis keeps MX storage
    (see :func:`mxarray._namespace._mx_index.getitem`); along the block axis it
    returns the float32 values.

    Raises
    ------
    TypeError
        If ``indices`` is not a 1-D integer array.
    ValueError
        If ``axis`` is omitted for an array of more than one dimension.
    """
    if not isinstance(indices, Array) or indices.dtype.kind not in "iu" or indices.ndim != 1:
        raise TypeError("indices must be a 1-D integer mxarray array")
    if axis is None:
        if x.ndim != 1:
            raise ValueError("take needs an axis for arrays of more than one dimension")
        axis = 0
    ax = _axis(axis, x.ndim)
    same_device(x.device, indices.device)
    xp = indices._xp
    if bool(xp.any(indices._x >= x.shape[ax])) or bool(xp.any(indices._x < -x.shape[ax])):
        raise IndexError(f"an index is out of bounds for axis {ax} of size {x.shape[ax]}")
    return x[(slice(None),) * ax + (indices,)]


def take_along_axis(x: Any, indices: Any, /, *, axis: int = -1) -> Array:
    """Values of ``x`` at ``indices`` matched along ``axis`` (float32 for MX input).

    Raises
    ------
    TypeError
        If ``indices`` is not an integer array.
    ValueError
        If the dimensions of ``x`` and ``indices`` differ.
    """
    a = dense(x)
    if not isinstance(indices, Array):
        raise TypeError("indices must be an mxarray integer array")
    check_category(indices.dtype, "integer", "take_along_axis")
    if indices.ndim != a.ndim:
        raise ValueError("x and indices must have the same number of dimensions")
    same_device(a.device, indices.device)
    return Array._new(a._xp.take_along_axis(a._x, indices._x, axis=_axis(axis, a.ndim)))
