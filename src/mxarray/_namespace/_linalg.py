"""Linear algebra: ``matmul``, ``vecdot``, ``tensordot``, and the ``linalg`` extension.

MX operands blocked along the contracted axis go through :func:`mxarray.core.matmul`
(the active backend's exact MX dot product, float32 result).  Every other MX operand
is dequantized to float32 and the dense function runs (documented fallback).  The
dense functions are those of the data's array module (NumPy or CuPy) and
array-api-compat's ``linalg`` for it, after the standard's dtype checks.
"""

from __future__ import annotations

import operator
from types import SimpleNamespace
from typing import Any

import numpy as np

from .. import core
from ..array import MXArray
from . import _dtypes as dt
from . import _manipulation as manip
from ._array import Array
from ._device import linalg_module, quiet, same_device
from ._operands import check_category, dense, wrap

__all__ = ["matmul", "vecdot", "tensordot", "linalg"]


def _as(a: Array, target: np.dtype) -> Any:
    """The backend array of ``a`` in ``target`` (not copied when it already is)."""
    return a._x if a.dtype == target else a._x.astype(target)


def _pair(x1: Any, x2: Any, category: str, name: str) -> tuple[Array, Array, np.dtype]:
    a, b = dense(x1, "x1"), dense(x2, "x2")
    same_device(a.device, b.device)
    check_category(a.dtype, category, name)
    check_category(b.dtype, category, name)
    target = dt.promote(a.dtype, b.dtype)
    return a, b, target


def matmul(x1: Any, x2: Any, /, *, backend: str | None = None) -> Array:
    """Matrix product.  MX @ MX with ``x1`` blocked along its last axis and ``x2`` along
    its second-to-last (first if 1-D) uses the MX matmul of ``backend`` (default: the
    active backend, see :func:`mxarray.core.matmul`); otherwise float32.

    Raises
    ------
    ValueError
        If an operand is 0-d or the contracted lengths differ.
    """
    if isinstance(x1, MXArray) and isinstance(x2, MXArray):
        k2 = max(x2.ndim - 2, 0)
        if x1.block_axis == x1.ndim - 1 and x2.block_axis == k2:
            return Array._new(core.matmul(x1, x2, backend=backend))
    a, b, target = _pair(x1, x2, "numeric", "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul does not accept 0-d arrays")
    with quiet(a._xp):
        return Array._new(a._xp.matmul(_as(a, target), _as(b, target)))


def vecdot(x1: Any, x2: Any, /, *, axis: int = -1) -> Array:
    """Dot product of vectors along ``axis`` (conjugating ``x1``).  Two MX operands both
    blocked along ``axis`` use the backend's MX dot product; otherwise float32.

    Raises
    ------
    ValueError
        If the lengths along ``axis`` differ.
    """
    if isinstance(x1, MXArray) and isinstance(x2, MXArray) and x1.ndim == x2.ndim:
        ax = manip.normalize_axis(axis, x1.ndim)
        if x1.block_axis == ax and x2.block_axis == ax and x1.shape[ax] == x2.shape[ax]:
            a = manip.expand_dims(manip.moveaxis(x1, ax, -1), axis=-2)
            b = manip.expand_dims(manip.moveaxis(x2, ax, -1), axis=-1)
            return Array._new(core.matmul(a, b)[..., 0, 0])
    a, b, target = _pair(x1, x2, "numeric", "vecdot")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("vecdot needs arrays of at least one dimension")
    shape = np.broadcast_shapes(a.shape, b.shape)
    ax = manip.normalize_axis(axis, len(shape)) - len(shape)
    if a.shape[ax] != b.shape[ax]:
        raise ValueError(f"vecdot: lengths {a.shape[ax]} and {b.shape[ax]} along axis differ")
    # CuPy has no vecdot; the array API linalg module of the device has one.
    impl = getattr(a._xp, "vecdot", None) or linalg_module(a.device).vecdot
    with quiet(a._xp):
        out = impl(_as(a, target), _as(b, target), axis=ax)
    return Array._new(a._xp.asarray(out, dtype=target))


def _tensordot_axes(axes: Any, n1: int, n2: int) -> tuple[list[int], list[int]]:
    """The contracted axes of each operand, non-negative, in pairing order.

    Raises
    ------
    TypeError
        If ``axes`` is neither an integer nor a pair of (sequences of) integers.
    ValueError
        If an axis is out of range or repeated, or the two sides differ in length.
    """
    if isinstance(axes, (bool, np.bool_)):
        raise TypeError("axes must be an integer or a pair of sequences of integers, not bool")
    if isinstance(axes, (int, np.integer)):
        if axes < 0 or axes > min(n1, n2):
            raise ValueError(f"axes={axes} is out of range")
        return list(range(n1 - axes, n1)), list(range(axes))
    if not isinstance(axes, (tuple, list)) or len(axes) != 2:
        raise TypeError(f"axes must be an integer or a pair of sequences of integers, "
                        f"got {axes!r}")
    a1, a2 = (tuple(a) if isinstance(a, (tuple, list)) else (a,) for a in axes)
    if len(a1) != len(a2):
        raise ValueError(f"axes {axes!r}: the two operands need as many contracted axes")
    return (list(manip.normalize_axes(a1, n1, "axes")),
            list(manip.normalize_axes(a2, n2, "axes")))


def tensordot(x1: Any, x2: Any, /, *, axes: int | tuple[Any, Any] = 2) -> Array:
    """Tensor contraction over ``axes``.  Two MX operands contracted over exactly one axis,
    which is the block axis of both, use the backend's MX matmul; otherwise float32.

    Raises
    ------
    ValueError
        If the contracted lengths differ.
    """
    if isinstance(x1, MXArray) and isinstance(x2, MXArray):
        c1, c2 = _tensordot_axes(axes, x1.ndim, x2.ndim)
        if (len(c1) == 1 and x1.block_axis == c1[0] and x2.block_axis == c2[0]
                and x1.shape[c1[0]] == x2.shape[c2[0]]):
            free1 = [i for i in range(x1.ndim) if i != c1[0]]
            free2 = [i for i in range(x2.ndim) if i != c2[0]]
            k = x1.shape[c1[0]]
            a = manip.reshape(manip.permute_dims(x1, tuple(free1 + c1)), (-1, k))
            b = manip.reshape(manip.permute_dims(x2, tuple(c2 + free2)), (k, -1))
            out = core.matmul(a, b)
            return Array._new(out.reshape([x1.shape[i] for i in free1]
                                          + [x2.shape[i] for i in free2]))
    a, b, target = _pair(x1, x2, "numeric", "tensordot")
    c1, c2 = _tensordot_axes(axes, a.ndim, b.ndim)
    if any(a.shape[i] != b.shape[j] for i, j in zip(c1, c2)):
        raise ValueError("tensordot: contracted axes have different lengths")
    with quiet(a._xp):
        out = a._xp.tensordot(_as(a, target), _as(b, target), axes=(c1, c2))
    return Array._new(out)


def _unary(name: str, category: str, min_ndim: int = 2) -> Any:
    def func(x: Any, /, **kwargs: Any) -> Any:
        a = dense(x)
        impl = getattr(linalg_module(a.device), name)
        check_category(a.dtype, category, f"linalg.{name}")
        if a.ndim < min_ndim:
            raise ValueError(f"linalg.{name} needs at least {min_ndim} dimension(s)")
        return wrap(impl(a._x, **kwargs))

    func.__name__ = func.__qualname__ = name
    func.__doc__ = (f"``linalg.{name}`` of the array API standard ({category} input; MX "
                    f"arrays as float32), computed by array-api-compat's linalg for the data's "
                    "array module.")
    return func


def _binary(name: str, category: str) -> Any:
    def func(x1: Any, x2: Any, /, **kwargs: Any) -> Any:
        a, b, target = _pair(x1, x2, category, f"linalg.{name}")
        impl = getattr(linalg_module(a.device), name)
        return wrap(impl(_as(a, target), _as(b, target), **kwargs))

    func.__name__ = func.__qualname__ = name
    func.__doc__ = (f"``linalg.{name}`` of the array API standard ({category} input; MX "
                    f"arrays as float32), computed by array-api-compat's linalg for the data's "
                    "array module.")
    return func


def _matrix_power(x: Any, n: int, /) -> Array:
    a = dense(x)
    check_category(a.dtype, "floating-point", "linalg.matrix_power")
    return Array._new(a._xp.linalg.matrix_power(a._x, operator.index(n)))


def _outer(x1: Any, x2: Any, /) -> Array:
    a, b, target = _pair(x1, x2, "numeric", "linalg.outer")
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("linalg.outer needs 1-D arrays")
    return Array._new(a._xp.outer(a._x, b._x).astype(target))


def _cross(x1: Any, x2: Any, /, *, axis: int = -1) -> Array:
    a, b, target = _pair(x1, x2, "numeric", "linalg.cross")
    if a.ndim != b.ndim:
        raise ValueError("linalg.cross needs arrays with the same number of dimensions")
    if a.shape[axis] != 3 or b.shape[axis] != 3:
        raise ValueError("linalg.cross needs length 3 along axis")
    return Array._new(a._xp.cross(a._x, b._x, axis=axis).astype(target))


def _vector_norm(x: Any, /, *, axis: Any = None, keepdims: bool = False,
                 ord: int | float = 2) -> Array:  # noqa: A002
    a = dense(x)
    check_category(a.dtype, "floating-point", "linalg.vector_norm")
    return wrap(linalg_module(a.device).vector_norm(a._x, axis=axis, keepdims=keepdims,
                                                    ord=ord))


def _trace(x: Any, /, *, offset: int = 0, dtype: Any = None) -> Array:
    a = dense(x)
    check_category(a.dtype, "numeric", "linalg.trace")
    from ._statistics import _sum_dtype

    target = _sum_dtype(a.dtype, dtype)
    return Array._new(a._xp.asarray(a._xp.trace(a._x, offset=offset, axis1=-2, axis2=-1,
                                                dtype=target)))


def _diagonal(x: Any, /, *, offset: int = 0) -> Array:
    a = dense(x)
    if a.ndim < 2:
        raise ValueError("linalg.diagonal needs at least 2 dimensions")
    return Array._new(a._xp.diagonal(a._x, offset=offset, axis1=-2, axis2=-1).copy())


linalg = SimpleNamespace(
    cholesky=_unary("cholesky", "floating-point"),
    cross=_cross,
    det=_unary("det", "floating-point"),
    diagonal=_diagonal,
    eigh=_unary("eigh", "floating-point"),
    eigvalsh=_unary("eigvalsh", "floating-point"),
    inv=_unary("inv", "floating-point"),
    matmul=matmul,
    matrix_norm=_unary("matrix_norm", "floating-point"),
    matrix_power=_matrix_power,
    matrix_rank=_unary("matrix_rank", "floating-point"),
    matrix_transpose=manip.matrix_transpose,
    outer=_outer,
    pinv=_unary("pinv", "floating-point"),
    qr=_unary("qr", "floating-point"),
    slogdet=_unary("slogdet", "floating-point"),
    solve=_binary("solve", "floating-point"),
    svd=_unary("svd", "floating-point"),
    svdvals=_unary("svdvals", "floating-point"),
    tensordot=tensordot,
    trace=_trace,
    vecdot=vecdot,
    vector_norm=_vector_norm,
)
linalg.__doc__ = "The array API ``linalg`` extension of the mxarray namespace."
