"""Linear algebra: ``matmul``, ``vecdot``, ``tensordot``, and the ``linalg`` extension.

MX operands blocked along the contracted axis go through :func:`mxarray.core.matmul`
(the active backend's exact MX dot product, float32 result).  In ``matmul`` and
``tensordot``, a dense array times a 2-D MX matrix blocked along the contracted axis
decodes the MX matrix a tile at a time (:mod:`._mixed_product`).  Every other MX operand
is dequantized to float32 and the dense function runs (documented fallback); two MX
operands that miss the MX dot product because of their block axes say so with a
:class:`~mxarray.BlockAxisWarning`.  The
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
from ._mixed_product import mixed_matmul, mixed_tensordot
from ._operands import check_category, dense, wrap
from ._warnings import BlockAxisWarning, warn_outside

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


def _warn_dense_path(func: str, problems: list[str]) -> None:
    """Say, with a :class:`BlockAxisWarning`, why two MX operands missed the MX dot product."""
    warn_outside(f"{func}: the MX dot product needs both operands blocked along the "
                 f"contracted axis, but {' and '.join(problems)}; computing in float32 on "
                 "the dequantized values instead", BlockAxisWarning)


def matmul(x1: Any, x2: Any, /, *, backend: str | None = None) -> Array:
    """Matrix product.  MX @ MX with ``x1`` blocked along its last axis and ``x2`` along
    its second-to-last (first if 1-D) uses the MX matmul of ``backend`` (default: the
    active backend, see :func:`mxarray.core.matmul`); otherwise float32.

    Two MX operands blocked elsewhere warn (:class:`~mxarray.BlockAxisWarning`) and use
    float32: block ``x1`` along its last axis (the default) and weights ``W`` of
    ``x @ W`` along K, ``mx.asarray(W, dtype=fmt, block_axis=0)`` (``W.ndim - 2`` for
    stacks).

    Raises
    ------
    ValueError
        If an operand is 0-d or the contracted lengths differ.
    """
    if isinstance(x1, MXArray) and isinstance(x2, MXArray) and x1.ndim and x2.ndim:
        k2 = max(x2.ndim - 2, 0)
        if x1.block_axis == x1.ndim - 1 and x2.block_axis == k2:
            return Array._new(core.matmul(x1, x2, backend=backend))
        problems = []
        if x1.block_axis != x1.ndim - 1:
            problems.append(f"x1 is blocked along axis {x1.block_axis}, not its last axis "
                            "(make it with block_axis=-1, the default)")
        if x2.block_axis != k2:
            problems.append(f"x2 is blocked along axis {x2.block_axis}, not along K (axis "
                            f"{k2}; make weights with mx.asarray(W, dtype=fmt, "
                            f"block_axis={k2}))")
        _warn_dense_path("matmul", problems)
    mixed = mixed_matmul(x1, x2)
    if mixed is not None:
        return mixed
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
        if (x1.block_axis, x2.block_axis) != (ax, ax):
            _warn_dense_path("vecdot", [f"they are blocked along axes {x1.block_axis} and "
                                        f"{x2.block_axis}, not both along axis {ax}"])
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
        if all(x1.shape[i] == x2.shape[j] for i, j in zip(c1, c2)):
            _warn_dense_path("tensordot", [
                f"they are blocked along axes {x1.block_axis} and {x2.block_axis} while the "
                f"contracted axes are {c1} and {c2} (the MX path contracts one pair)"])
    if {type(x1), type(x2)} == {Array, MXArray}:
        mixed = mixed_tensordot(x1, x2, *_tensordot_axes(axes, x1.ndim, x2.ndim))
        if mixed is not None:
            return mixed
    a, b, target = _pair(x1, x2, "numeric", "tensordot")
    c1, c2 = _tensordot_axes(axes, a.ndim, b.ndim)
    if any(a.shape[i] != b.shape[j] for i, j in zip(c1, c2)):
        raise ValueError("tensordot: contracted axes have different lengths")
    with quiet(a._xp):
        out = a._xp.tensordot(_as(a, target), _as(b, target), axes=(c1, c2))
    return Array._new(out)


def _matrix_stack(x: Any, name: str) -> Array:
    """``x`` as a dense Array checked for ``linalg.name``: floating-point, at least 2-D.

    Raises
    ------
    TypeError
        If the dtype is not floating-point.
    ValueError
        If ``x`` has fewer than 2 dimensions.
    """
    a = dense(x)
    check_category(a.dtype, "floating-point", f"linalg.{name}")
    if a.ndim < 2:
        raise ValueError(f"linalg.{name} needs at least 2 dimensions, got shape {a.shape}")
    return a


def _compat(a: Array, name: str, **kwargs: Any) -> Any:
    """``linalg.name`` of array-api-compat for ``a``'s device, on backend arrays, wrapped."""
    with quiet(a._xp):
        return wrap(getattr(linalg_module(a.device), name)(a._x, **kwargs))


def _rtol(a: Array, rtol: float | Array | None) -> Any:
    """The ``rtol`` argument as a Python float, a backend array on ``a``'s device, or None.

    Raises
    ------
    TypeError
        If ``rtol`` is neither a real number nor a real floating-point array.
    """
    rtol = dt.python_scalar(rtol)
    if rtol is None or isinstance(rtol, (int, float)) and not isinstance(rtol, bool):
        return rtol
    r = dense(rtol, "rtol")
    same_device(a.device, r.device)
    check_category(r.dtype, "real floating-point", "rtol")
    return r._x


def cholesky(x: Any, /, *, upper: bool = False) -> Array:
    """Cholesky factor of each Hermitian positive-definite matrix of ``x`` (lower, or upper
    with ``upper=True``).  MX input is used as float32."""
    return _compat(_matrix_stack(x, "cholesky"), "cholesky", upper=upper)


def det(x: Any, /) -> Array:
    """Determinant of each square matrix of ``x``.  MX input is used as float32."""
    return _compat(_matrix_stack(x, "det"), "det")


def eigh(x: Any, /) -> tuple[Array, Array]:
    """Eigenvalues and eigenvectors ``(eigenvalues, eigenvectors)`` of each Hermitian
    matrix of ``x``.  MX input is used as float32."""
    return _compat(_matrix_stack(x, "eigh"), "eigh")


def eigvalsh(x: Any, /) -> Array:
    """Eigenvalues of each Hermitian matrix of ``x``.  MX input is used as float32."""
    return _compat(_matrix_stack(x, "eigvalsh"), "eigvalsh")


def inv(x: Any, /) -> Array:
    """Inverse of each square matrix of ``x``.  MX input is used as float32."""
    return _compat(_matrix_stack(x, "inv"), "inv")


def matrix_norm(x: Any, /, *, keepdims: bool = False,
                ord: int | float | str | None = "fro") -> Array:  # noqa: A002
    """Norm of each matrix of ``x`` (``ord``: "fro", "nuc", 1, 2, inf, -1, -2, -inf).
    MX input is used as float32."""
    return _compat(_matrix_stack(x, "matrix_norm"), "matrix_norm", keepdims=keepdims,
                   ord=dt.python_scalar(ord))


def matrix_rank(x: Any, /, *, rtol: float | Array | None = None) -> Array:
    """Rank of each matrix of ``x``: the singular values above ``rtol`` times the largest
    (default ``max(M, N) * eps``).  MX input is used as float32."""
    a = _matrix_stack(x, "matrix_rank")
    return _compat(a, "matrix_rank", rtol=_rtol(a, rtol))


def pinv(x: Any, /, *, rtol: float | Array | None = None) -> Array:
    """Moore-Penrose pseudo-inverse of each matrix of ``x``, ignoring singular values at
    or below ``rtol`` times the largest (default ``max(M, N) * eps``).  MX input is used
    as float32."""
    a = _matrix_stack(x, "pinv")
    return _compat(a, "pinv", rtol=_rtol(a, rtol))


def qr(x: Any, /, *, mode: str = "reduced") -> tuple[Array, Array]:
    """QR decomposition ``(Q, R)`` of each matrix of ``x`` (``mode``: "reduced" or
    "complete").  MX input is used as float32.

    Raises
    ------
    ValueError
        If ``mode`` is neither "reduced" nor "complete".
    """
    if mode not in ("reduced", "complete"):
        raise ValueError(f"mode must be 'reduced' or 'complete', got {mode!r}")
    return _compat(_matrix_stack(x, "qr"), "qr", mode=mode)


def slogdet(x: Any, /) -> tuple[Array, Array]:
    """Sign and natural logarithm of the absolute determinant ``(sign, logabsdet)`` of each
    square matrix of ``x``.  MX input is used as float32."""
    return _compat(_matrix_stack(x, "slogdet"), "slogdet")


def svd(x: Any, /, *, full_matrices: bool = True) -> tuple[Array, Array, Array]:
    """Singular value decomposition ``(U, S, Vh)`` of each matrix of ``x``.  MX input is
    used as float32."""
    return _compat(_matrix_stack(x, "svd"), "svd", full_matrices=full_matrices)


def svdvals(x: Any, /) -> Array:
    """Singular values of each matrix of ``x``, in descending order.  MX input is used as
    float32."""
    return _compat(_matrix_stack(x, "svdvals"), "svdvals")


def solve(x1: Any, x2: Any, /) -> Array:
    """Solution ``X`` of ``x1 @ X = x2`` for each square matrix of ``x1`` (``x2`` a vector
    when 1-D).  MX input is used as float32.

    Raises
    ------
    ValueError
        If ``x1`` is not a stack of square matrices or the shapes do not match.
    """
    a, b, target = _pair(x1, x2, "floating-point", "linalg.solve")
    _matrix_stack(a, "solve")
    with quiet(a._xp):
        return wrap(linalg_module(a.device).solve(_as(a, target), _as(b, target)))


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
    """Cross product of the 3-element vectors along ``axis`` (negative, counted from the
    last axis); the other axes broadcast, so operands of different ranks combine.

    Raises
    ------
    ValueError
        If ``axis`` is not in ``[-N, -1]`` (N the smaller rank), a length along it is not
        3, or the other axes do not broadcast.
    """
    a, b, target = _pair(x1, x2, "numeric", "linalg.cross")
    axis = operator.index(axis)
    n = min(a.ndim, b.ndim)
    if not -n <= axis <= -1:
        raise ValueError(f"linalg.cross: axis must be in [{-n}, -1], got {axis}")
    if a.shape[axis] != 3 or b.shape[axis] != 3:
        raise ValueError(f"linalg.cross needs length 3 along axis {axis}, got shapes "
                         f"{a.shape} and {b.shape}")
    np.broadcast_shapes(a.shape, b.shape)
    with quiet(a._xp):
        return Array._new(a._xp.cross(_as(a, target), _as(b, target), axis=axis))


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
    cholesky=cholesky,
    cross=_cross,
    det=det,
    diagonal=_diagonal,
    eigh=eigh,
    eigvalsh=eigvalsh,
    inv=inv,
    matmul=matmul,
    matrix_norm=matrix_norm,
    matrix_power=_matrix_power,
    matrix_rank=matrix_rank,
    matrix_transpose=manip.matrix_transpose,
    outer=_outer,
    pinv=pinv,
    qr=qr,
    slogdet=slogdet,
    solve=solve,
    svd=svd,
    svdvals=svdvals,
    tensordot=tensordot,
    trace=_trace,
    vecdot=vecdot,
    vector_norm=_vector_norm,
)
linalg.__doc__ = "The array API ``linalg`` extension of the mxarray namespace."
