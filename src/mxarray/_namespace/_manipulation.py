"""Manipulation functions.  On MX arrays the structural ones keep MX storage when the
block structure allows (see :mod:`._mx_structural`) and otherwise dequantize, operate
and return float32; ``repeat``, ``roll`` and ``tile`` always return float32."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..array import MXArray
from ..layout import integer
from . import _dtypes as dt
from . import _mx_structural as mxs
from ._array import Array
from ._device import same_device
from ._operands import dense

__all__ = [
    "broadcast_arrays", "broadcast_to", "concat", "expand_dims", "flip", "moveaxis",
    "permute_dims", "repeat", "reshape", "roll", "squeeze", "stack", "tile", "unstack",
    "matrix_transpose", "normalize_axes", "normalize_axis",
]


def normalize_axes(axis: Any, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """``axis`` (an int or a tuple of ints) as sorted-unique non-negative axes.

    Raises
    ------
    ValueError
        If an axis is out of range or repeated.
    TypeError
        If an axis is not an integer.
    """
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        a = integer(a, name)
        if not -ndim <= a < ndim:
            raise ValueError(f"{name} {a} is out of range for {ndim} dimension(s)")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(out)


def normalize_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    """One ``axis`` (not a tuple) as a non-negative int; see :func:`normalize_axes`."""
    if isinstance(axis, tuple):
        raise TypeError(f"{name} must be one integer here, not a tuple")
    return normalize_axes(axis, ndim, name)[0]


def _dense_result(values: Any) -> Array:
    return Array._new(values)


def _common_dtype(arrays: Sequence[Array]) -> np.dtype:
    same_device(*(a.device for a in arrays))
    return dt.result_type(*arrays)


def permute_dims(x: Any, /, axes: tuple[int, ...]) -> Any:
    """Permute the axes.  MX: keeps storage; the block axis moves with the permutation.

    Raises
    ------
    ValueError
        If ``axes`` is not a permutation of the axes of ``x``.
    """
    order = normalize_axes(tuple(axes), x.ndim, "axes")
    if len(order) != x.ndim:
        raise ValueError(f"axes {axes} is not a permutation of {x.ndim} axes")
    if isinstance(x, MXArray):
        return mxs.permute_dims(x, order)
    a = dense(x)
    return _dense_result(a._xp.transpose(a._x, order))


def matrix_transpose(x: Any, /) -> Any:
    """Transpose the last two axes.  MX: keeps storage (the block axis moves)."""
    if x.ndim < 2:
        raise ValueError("matrix_transpose needs at least 2 dimensions")
    order = list(range(x.ndim))
    order[-2:] = order[-1], order[-2]
    return permute_dims(x, tuple(order))


def moveaxis(x: Any, source: int | tuple[int, ...], destination: int | tuple[int, ...],
             /) -> Any:
    """Move axes to new positions.  MX: keeps storage (a permutation)."""
    src = normalize_axes(source, x.ndim, "source")
    dst = normalize_axes(destination, x.ndim, "destination")
    if len(src) != len(dst):
        raise ValueError("source and destination must have the same number of axes")
    order = [a for a in range(x.ndim) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute_dims(x, tuple(order))


def _resolve_shape(shape: Any, size: int) -> tuple[int, ...]:
    dims = [integer(d, "shape") for d in (shape if isinstance(shape, tuple) else (shape,))]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise ValueError(f"invalid shape {shape}")
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape an array of size {size} into {shape}")
        dims[dims.index(-1)] = size // known
    if int(np.prod(dims)) != size:
        raise ValueError(f"cannot reshape an array of size {size} into {shape}")
    return tuple(dims)


def reshape(x: Any, /, shape: tuple[int, ...], *, copy: bool | None = None) -> Any:
    """Reshape.  MX: keeps storage when the block axis stays one whole axis with the same
    elements before and after it; otherwise float32.

    Raises
    ------
    ValueError
        If the size does not match, or ``copy=False`` but a copy is needed.
    """
    new = _resolve_shape(shape, x.size)
    if isinstance(x, MXArray):
        out = mxs.reshape(x, new)
        if out is not None:
            return out
        if copy is False:
            raise ValueError("this reshape cuts the blocks of an MX array and needs a "
                             "float32 copy, but copy=False")
    a = dense(x)
    if copy is False:
        view = a._x.view()
        try:
            view.shape = new
        except AttributeError:
            raise ValueError("reshape needs a copy, but copy=False") from None
        return _dense_result(view)
    values = a._x.reshape(new)
    return _dense_result(values.copy() if copy else values)


def expand_dims(x: Any, /, axis: int = 0) -> Any:
    """Insert a size-1 axis at ``axis``.  MX: keeps storage.

    Raises
    ------
    IndexError
        If ``axis`` is outside ``[-ndim - 1, ndim]``.
    """
    ax = integer(axis, "axis")
    if not -x.ndim - 1 <= ax <= x.ndim:
        raise IndexError(f"axis {ax} is out of range for expand_dims of {x.ndim} dimension(s)")
    ax %= x.ndim + 1
    new = x.shape[:ax] + (1,) + x.shape[ax:]
    if isinstance(x, MXArray):
        return mxs.reshape(x, new, x.block_axis + (ax <= x.block_axis))
    a = dense(x)
    return _dense_result(a._xp.expand_dims(a._x, ax))


def squeeze(x: Any, /, axis: int | tuple[int, ...]) -> Any:
    """Remove size-1 axes.  MX: keeps storage unless the block axis is removed (float32).

    Raises
    ------
    ValueError
        If an axis does not have size 1.
    """
    axes = normalize_axes(axis, x.ndim)
    if any(x.shape[a] != 1 for a in axes):
        raise ValueError(f"cannot squeeze axes {axis} of shape {x.shape}: not of size 1")
    new = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    if isinstance(x, MXArray) and x.block_axis not in axes:
        pos = x.block_axis - sum(a < x.block_axis for a in axes)
        return mxs.reshape(x, new, pos)
    a = dense(x)
    return _dense_result(a._xp.squeeze(a._x, axes))


def flip(x: Any, /, *, axis: int | tuple[int, ...] | None = None) -> Any:
    """Reverse the order along ``axis`` (all axes if None).  MX: keeps storage unless the
    block axis is flipped (float32)."""
    axes = tuple(range(x.ndim)) if axis is None else normalize_axes(axis, x.ndim)
    if isinstance(x, MXArray):
        out = mxs.flip(x, axes)
        if out is not None:
            return out
    a = dense(x)
    return _dense_result(a._xp.flip(a._x, axes))


def concat(arrays: tuple[Any, ...] | list[Any], /, *, axis: int | None = 0) -> Any:
    """Join arrays along an existing axis (flattened first if ``axis`` is None).

    MX: same-format arrays with the same block axis keep storage along a non-block axis,
    and along the block axis when every piece but the last has a multiple of 32
    elements there; any other mix gives the promoted dense dtype (MX counts as float32).

    Raises
    ------
    TypeError
        If the dtypes cannot be promoted together.
    ValueError
        If the shapes do not match off ``axis``.
    """
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concat needs at least one array")
    if axis is not None and all(isinstance(a, MXArray) for a in arrays):
        ax = normalize_axis(axis, arrays[0].ndim)
        if any(a.ndim != arrays[0].ndim for a in arrays):
            raise ValueError("concat needs arrays with the same number of dimensions")
        _check_shapes_off(arrays, ax)
        out = mxs.concat(arrays, ax)
        if out is not None:
            return out
    parts = [dense(a, "arrays") for a in arrays]
    target = _common_dtype(parts)
    xp = parts[0]._xp
    if axis is None:
        return _dense_result(xp.concatenate([p._x.reshape(-1) for p in parts]).astype(target))
    if any(p.ndim != parts[0].ndim or p.ndim == 0 for p in parts):
        raise ValueError("concat needs arrays with the same, non-zero number of dimensions")
    ax = normalize_axis(axis, parts[0].ndim)
    return _dense_result(xp.concatenate([p._x for p in parts], axis=ax).astype(target))


def _check_shapes_off(arrays: Sequence[Any], axis: int) -> None:
    ref = arrays[0].shape
    for a in arrays[1:]:
        if any(d != r for i, (d, r) in enumerate(zip(a.shape, ref)) if i != axis):
            raise ValueError(f"shapes {ref} and {a.shape} differ off the concatenation axis")


def stack(arrays: tuple[Any, ...] | list[Any], /, *, axis: int = 0) -> Any:
    """Join same-shape arrays along a new axis.  MX: same-format arrays with the same block
    axis keep storage; other mixes give the promoted dense dtype.

    Raises
    ------
    ValueError
        If the shapes differ or ``axis`` is out of range.
    """
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack needs at least one array")
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("stack needs arrays of one shape")
    ax = integer(axis, "axis")
    nd = arrays[0].ndim + 1
    if not -nd <= ax < nd:
        raise ValueError(f"axis {ax} is out of range for stacking into {nd} dimensions")
    ax %= nd
    if all(isinstance(a, MXArray) for a in arrays):
        out = mxs.stack(arrays, ax)
        if out is not None:
            return out
    parts = [dense(a, "arrays") for a in arrays]
    target = _common_dtype(parts)
    return _dense_result(parts[0]._xp.stack([p._x for p in parts], axis=ax).astype(target))


def unstack(x: Any, /, *, axis: int = 0) -> tuple[Any, ...]:
    """Split into arrays along ``axis``.  MX: keeps storage unless ``axis`` is the block
    axis (float32 pieces)."""
    ax = normalize_axis(axis, x.ndim)
    if isinstance(x, MXArray) and ax == x.block_axis:
        x = dense(x)
    return tuple(x[(slice(None),) * ax + (i,)] for i in range(x.shape[ax]))


def broadcast_to(x: Any, /, shape: tuple[int, ...]) -> Any:
    """Broadcast to ``shape``.  MX: keeps storage unless the block axis must grow (float32).

    Raises
    ------
    ValueError
        If ``x`` cannot be broadcast to ``shape``.
    """
    shape = tuple(integer(d, "shape") for d in shape)
    np.broadcast_shapes(x.shape, shape)
    if len(shape) < x.ndim or np.broadcast_shapes(x.shape, shape) != shape:
        raise ValueError(f"cannot broadcast shape {x.shape} to {shape}")
    if isinstance(x, MXArray):
        out = mxs.broadcast_to(x, shape)
        if out is not None:
            return out
    a = dense(x)
    return _dense_result(a._xp.broadcast_to(a._x, shape).copy())


def broadcast_arrays(*arrays: Any) -> list[Any]:
    """Broadcast arrays against each other (each as :func:`broadcast_to` would)."""
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    return [broadcast_to(a, shape) for a in arrays]


def repeat(x: Any, repeats: int | Array, /, *, axis: int | None = None) -> Array:
    """Repeat elements (float32 for MX input).

    Raises
    ------
    TypeError
        If ``repeats`` is not an int or an integer array.
    """
    a = dense(x)
    if isinstance(repeats, Array):
        if repeats.dtype.kind not in "iu":
            raise TypeError("repeats must have an integer dtype")
        same_device(a.device, repeats.device)
        reps: Any = repeats._x
        negative = bool(a._xp.any(reps < 0))
    elif isinstance(repeats, int) and not isinstance(repeats, bool):
        reps = repeats
        negative = reps < 0
    else:
        raise TypeError("repeats must be an int or an integer array")
    if negative:
        raise ValueError("repeats must be non-negative")
    if axis is None:
        return _dense_result(a._xp.repeat(a._x.reshape(-1), reps))
    return _dense_result(a._xp.repeat(a._x, reps, axis=normalize_axis(axis, a.ndim)))


def roll(x: Any, /, shift: int | tuple[int, ...], *,
         axis: int | tuple[int, ...] | None = None) -> Array:
    """Roll elements along axes (float32 for MX input)."""
    a = dense(x)
    shift = tuple(integer(s, "shift") for s in shift) if isinstance(shift, tuple) else \
        integer(shift, "shift")
    if axis is None:
        return _dense_result(a._xp.roll(a._x, shift))
    axes = axis if isinstance(axis, tuple) else (axis,)
    for ax in axes:
        normalize_axes(ax, a.ndim)
    return _dense_result(a._xp.roll(a._x, shift, axis=axis))


def tile(x: Any, repetitions: tuple[int, ...], /) -> Array:
    """Tile ``x`` (float32 for MX input)."""
    a = dense(x)
    return _dense_result(a._xp.tile(a._x, tuple(integer(r, "repetitions") for r in repetitions)))
