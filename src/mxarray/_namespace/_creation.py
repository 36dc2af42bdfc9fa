"""Creation functions.  Any of them makes an MX array when given an MX ``dtype``.

For an MX dtype the values are built in float64 and quantized along ``block_axis``
(default the last axis) with the default rounding ("even") and scale mode ("floor");
``asarray`` and ``astype`` also take ``rounding``, ``scale_mode`` and ``seed``.

``device=`` places the result: ``zeros``/``ones``/``full`` and the ``*_like`` functions
fill on the device with its array module; the others (and every MX result) are built
on the host and copied there.  A GPU device without a usable GPU raises RuntimeError.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..array import MXArray
from .._random import check_seed
from ..formats import Format, check_rounding, check_scale_mode
from ..layout import normalize_axis
from . import _dtypes as dt
from ._array import Array
from ._device import CPU, Device, check_device, locate, module, same_device, usable
from ._mx_convert import to_mx
from ._operands import dense

__all__ = [
    "asarray", "astype", "arange", "empty", "empty_like", "eye", "from_dlpack", "full",
    "full_like", "linspace", "meshgrid", "ones", "ones_like", "tril", "triu", "zeros",
    "zeros_like",
]


def _target(device: Any) -> Device:
    """The device to create on, checked to be usable."""
    return usable(check_device(device))


def _on(result: Any, device: Device) -> Any:
    """``result`` (an Array or MXArray) moved to ``device`` if it is elsewhere."""
    return result if result.device == device else result.to_device(device)


def _finish(values: np.ndarray, dtype: Any, block_axis: int, device: Device) -> Any:
    """Cast host values to ``dtype`` (a standard dtype, or an MX one by quantizing) and
    place them on ``device``."""
    if isinstance(dtype, Format):
        return _on(to_mx(values, dtype, block_axis=block_axis), device)
    return _on(Array._new(np.asarray(values, dtype=dtype)), device)


def _dtype_or(dtype: Any, default: np.dtype) -> Any:
    return default if dtype is None else dt.check_dtype(dtype)


def _infer_scalar_dtype(obj: Any) -> np.dtype:
    if isinstance(obj, builtins.bool):
        return dt.bool
    if isinstance(obj, int):
        return dt.uint64 if 2**63 <= obj < 2**64 else dt.int64
    if isinstance(obj, float):
        return dt.float64
    return dt.complex128


def _from_sequence(obj: Any) -> np.ndarray:
    """A nested Python sequence (or a buffer) as a NumPy array of a standard dtype."""
    if isinstance(obj, (list, tuple)):
        flat = list(_leaves(obj))
        if any(isinstance(v, MXArray) for v in flat):
            obj = _replace_mx(obj)
        elif flat and all(isinstance(v, dt.PYTHON_SCALARS) for v in flat):
            kinds = [_infer_scalar_dtype(v) for v in flat]
            target = max(kinds, key=lambda d: "biufc".index(d.kind))
            if target.kind in "iu":
                big = [v for v in flat if not -2**63 <= v < 2**63]
                if big:
                    raise OverflowError(f"Python int {big[0]} does not fit int64")
            return np.asarray(obj, dtype=target)
    arr = np.asarray(obj)
    if arr.dtype not in dt.STANDARD_DTYPES.values():
        raise TypeError(f"cannot make an array of dtype {arr.dtype} (not a standard dtype)")
    return arr


def _leaves(obj: Any) -> Any:
    for v in obj:
        if isinstance(v, (list, tuple)):
            yield from _leaves(v)
        else:
            yield v


def _replace_mx(obj: Any) -> Any:
    if isinstance(obj, (list, tuple)):
        return [_replace_mx(v) for v in obj]
    return obj.dequantize(np.float32) if isinstance(obj, MXArray) else obj


def asarray(obj: Any, /, *, dtype: Any = None, device: Any = None, copy: bool | None = None,
            block_axis: int | None = None, rounding: str = "even", scale_mode: str = "floor",
            seed: int | None = None) -> Any:
    """Convert ``obj`` to an array of the namespace.

    Parameters
    ----------
    obj : Array, MXArray, Python scalar, nested sequence or buffer
    dtype : dtype, optional
        A standard dtype, or an MX dtype (``mxarray.mxfp8_e4m3`` ...) to quantize.
    device : Device, optional
        Where the result lives; by default the device of an array ``obj`` (a CuPy
        array stays on its GPU), else the CPU.
    copy : bool, optional
        True always copies; False never copies (ValueError if it must); None copies
        only when needed.
    block_axis, rounding, scale_mode, seed
        MX extension: how to quantize when ``dtype`` is an MX dtype (see
        :func:`mxarray.quantize`).  ``block_axis`` defaults to the block axis of an MX
        ``obj`` and to the last axis otherwise.

    Returns
    -------
    Array or MXArray

    Raises
    ------
    TypeError
        For an unsupported ``obj`` or ``dtype``.
    ValueError
        If ``copy=False`` but a copy (or a quantization, or a move) is needed, or
        ``device`` is unknown.
    RuntimeError
        If ``device`` is a GPU that is not usable here.
    OverflowError
        If a Python int does not fit the dtype.

    Examples
    --------
    >>> import mxarray as mx
    >>> mx.asarray([[1.0, -2.0, 3.5]], dtype=mx.mxfp4_e2m1)
    MXArray(shape=(1, 3), format=mxfp4_e2m1, block_axis=1, nbytes=17, rounding='even', scale_mode='floor')
    """
    out = _asarray(obj, dtype, copy, block_axis, rounding, scale_mode, seed)
    if device is None:
        return out
    where = _target(device)
    if out.device != where and copy is False:
        raise ValueError(f"moving to {where.name} needs a copy, but copy=False")
    return _on(out, where)


def _asarray(obj: Any, dtype: Any, copy: bool | None, block_axis: int | None, rounding: str,
             scale_mode: str, seed: int | None) -> Any:
    """:func:`asarray` where the data already are (a CuPy array stays on its GPU)."""
    target = None if dtype is None else dt.check_dtype(dtype)
    if isinstance(obj, MXArray):
        target = obj.format if target is None else target
        block_axis = obj.block_axis if block_axis is None else block_axis
    if isinstance(target, Format):  # checked even when obj is returned as it is
        check_rounding(rounding)
        check_scale_mode(scale_mode)
        if seed is not None:
            check_seed(seed)
    block_axis = -1 if block_axis is None else block_axis
    if isinstance(obj, MXArray) and target is obj.format and (
            normalize_axis(block_axis, obj.ndim, "block_axis") == obj.block_axis):
        return obj.copy() if copy else obj
    if isinstance(target, Format):
        if copy is False:
            raise ValueError("quantizing into an MX dtype always makes new storage; copy=False "
                             "cannot be honoured")
        values = dense(obj)._x if isinstance(obj, (Array, MXArray)) else _from_sequence(obj)
        return to_mx(values, target, block_axis=block_axis, rounding=rounding,
                     scale_mode=scale_mode, seed=seed)
    if isinstance(obj, (Array, MXArray)):
        x = dense(obj)._x
        copied = isinstance(obj, MXArray)
    elif isinstance(obj, dt.PYTHON_SCALARS):
        want = target or _infer_scalar_dtype(obj)
        if isinstance(obj, int) and not isinstance(obj, builtins.bool) and want.kind in "iu":
            info = np.iinfo(want)
            if not info.min <= obj <= info.max:
                raise OverflowError(f"Python int {obj} is out of bounds for {want}")
        return Array._new(np.asarray(obj, dtype=want))
    elif locate(obj) != CPU:  # a backend array of a GPU: wrap it where it is
        x, copied = obj, False
    else:
        if copy is False:
            x = np.asarray(obj, copy=False)
            if x.dtype not in dt.STANDARD_DTYPES.values():
                raise TypeError(f"cannot make an array of dtype {x.dtype}")
        else:
            x = _from_sequence(obj)
        copied = x is not obj and not hasattr(obj, "__array__") and not hasattr(
            obj, "__dlpack__")
    if target is not None and target != x.dtype:
        if copy is False:
            raise ValueError(f"converting {x.dtype} to {target} needs a copy, but copy=False")
        return Array._new(x.astype(target))
    if copy and not copied:
        return Array._new(x.copy())
    if copy is False and isinstance(obj, MXArray):
        raise ValueError("dequantizing an MX array always makes a copy; copy=False "
                         "cannot be honoured")
    return Array._new(x)


def astype(x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None,
           block_axis: int | None = None, rounding: str = "even", scale_mode: str = "floor",
           seed: int | None = None) -> Any:
    """Cast ``x`` to ``dtype``.

    Casting to an MX dtype quantizes (along ``block_axis``; by default the block axis of an
    MX input, else the last axis); casting an MX array to a standard dtype dequantizes
    (float32 exactly, then the standard cast).  ``device`` moves the result there.

    Raises
    ------
    TypeError
        If ``x`` is complex and ``dtype`` real (the standard forbids that cast), or the
        values cannot be quantized.
    """
    where = None if device is None else _target(device)
    target = dt.check_dtype(dtype)
    if isinstance(target, Format):
        if block_axis is None:
            block_axis = x.block_axis if isinstance(x, MXArray) else -1
        out = to_mx(x, target, block_axis=block_axis, rounding=rounding,
                    scale_mode=scale_mode, seed=seed)
        out = asarray(out, copy=True) if out is x and copy else out
        return out if where is None else _on(out, where)
    a = dense(x)
    if a.dtype.kind == "c" and target.kind != "c":
        raise TypeError(f"casting complex {a.dtype} to real {target} is not allowed; "
                        "use real(), imag() or abs()")
    if not copy and target == a.dtype:
        out = a
    else:
        out = Array._new(a._x.astype(target, copy=True))
    return out if where is None else _on(out, where)


def arange(start: int | float, /, stop: int | float | None = None, step: int | float = 1, *,
           dtype: Any = None, device: Any = None) -> Any:
    """Evenly spaced values in ``[start, stop)`` (default dtype from the arguments)."""
    where = _target(device)
    if stop is None:
        start, stop = 0, start
    args = (start, stop, step)
    default = dt.float64 if any(isinstance(v, float) for v in args) else dt.int64
    target = _dtype_or(dtype, default)
    work = np.float64 if isinstance(target, Format) else target
    return _finish(np.arange(start, stop, step, dtype=work), target, -1, where)


def _filled(shape: Any, value: Any, dtype: Any, device: Any) -> Any:
    where = _target(device)
    target = _dtype_or(dtype, _infer_scalar_dtype(value))
    if isinstance(target, Format):
        return _on(to_mx(np.full(shape, value, dtype=np.float64), target), where)
    if isinstance(value, int) and not isinstance(value, builtins.bool) and target.kind in "iu":
        info = np.iinfo(target)
        if not info.min <= value <= info.max:
            raise OverflowError(f"fill value {value} is out of bounds for {target}")
    return Array._new(module(where).full(shape, value, dtype=target))


def empty(shape: int | tuple[int, ...], *, dtype: Any = None, device: Any = None) -> Any:
    """An array of ``shape`` (zero-filled; default float64)."""
    return _filled(shape, 0.0 if dtype is None else 0, dtype, device)


def zeros(shape: int | tuple[int, ...], *, dtype: Any = None, device: Any = None) -> Any:
    """An array of zeros (default float64)."""
    return _filled(shape, 0.0 if dtype is None else 0, dtype, device)


def ones(shape: int | tuple[int, ...], *, dtype: Any = None, device: Any = None) -> Any:
    """An array of ones (default float64)."""
    return _filled(shape, 1.0 if dtype is None else 1, dtype, device)


def _fill_value(value: Any) -> Any:
    """``value`` as a Python scalar (NumPy scalars of a standard dtype are accepted).

    Raises
    ------
    TypeError
        If ``value`` is not a scalar.
    """
    value = dt.python_scalar(value)
    if not isinstance(value, dt.PYTHON_SCALARS):
        raise TypeError("fill_value must be a Python bool, int, float or complex (or a NumPy "
                        f"scalar of a standard dtype), got {type(value).__name__}")
    return value


def full(shape: int | tuple[int, ...], fill_value: bool | int | float | complex, *,
         dtype: Any = None, device: Any = None) -> Any:
    """An array filled with ``fill_value`` (dtype inferred from it by default).

    Raises
    ------
    TypeError
        If ``fill_value`` is not a scalar.
    """
    fill_value = _fill_value(fill_value)
    return _filled(shape, fill_value, dtype, device)


def _like(x: Any, value: Any, dtype: Any, device: Any) -> Any:
    where = usable(x.device if device is None else check_device(device))
    target = x.dtype if dtype is None else dt.check_dtype(dtype)
    if isinstance(target, Format):
        axis = x.block_axis if isinstance(x, MXArray) and dtype is None else -1
        return _on(to_mx(np.full(x.shape, value, dtype=np.float64), target, block_axis=axis),
                   where)
    return Array._new(module(where).full(x.shape, value, dtype=target))


def empty_like(x: Any, /, *, dtype: Any = None, device: Any = None) -> Any:
    """An array shaped like ``x`` (zero-filled; an MX ``x`` gives MX, same block axis)."""
    return _like(x, 0, dtype, device)


def zeros_like(x: Any, /, *, dtype: Any = None, device: Any = None) -> Any:
    """Zeros shaped like ``x`` (an MX ``x`` gives MX, same block axis)."""
    return _like(x, 0, dtype, device)


def ones_like(x: Any, /, *, dtype: Any = None, device: Any = None) -> Any:
    """Ones shaped like ``x`` (an MX ``x`` gives MX, same block axis)."""
    return _like(x, 1, dtype, device)


def full_like(x: Any, /, fill_value: bool | int | float | complex, *, dtype: Any = None,
              device: Any = None) -> Any:
    """``fill_value`` shaped like ``x``."""
    fill_value = _fill_value(fill_value)
    return _like(x, fill_value, dtype, device)


def eye(n_rows: int, n_cols: int | None = None, /, *, k: int = 0, dtype: Any = None,
        device: Any = None) -> Any:
    """A 2-D array with ones on the ``k``-th diagonal."""
    where = _target(device)
    target = _dtype_or(dtype, dt.float64)
    work = np.float64 if isinstance(target, Format) else target
    return _finish(np.eye(n_rows, n_cols, k=k, dtype=work), target, -1, where)


def linspace(start: int | float | complex, stop: int | float | complex, /, num: int, *,
             dtype: Any = None, device: Any = None, endpoint: bool = True) -> Any:
    """``num`` evenly spaced values from ``start`` to ``stop``."""
    where = _target(device)
    default = dt.complex128 if any(isinstance(v, complex) for v in (start, stop)) else dt.float64
    target = _dtype_or(dtype, default)
    if not isinstance(target, Format) and target.kind not in "fc":
        raise TypeError(f"linspace needs a floating-point dtype, got {target}")
    work = np.float64 if isinstance(target, Format) else target
    return _finish(np.linspace(start, stop, num, endpoint=endpoint, dtype=work), target, -1,
                   where)


def meshgrid(*arrays: Any, indexing: str = "xy") -> list[Array]:
    """Coordinate matrices from 1-D arrays (MX inputs give float32).

    Raises
    ------
    ValueError
        If ``indexing`` is not "xy" or "ij", or an input is not 1-D.
    TypeError
        If the dtypes differ.
    ValueError
        If the arrays live on different devices.
    """
    if indexing not in ("xy", "ij"):
        raise ValueError(f"indexing must be 'xy' or 'ij', got {indexing!r}")
    parts = [dense(a) for a in arrays]
    if any(p.ndim != 1 for p in parts):
        raise ValueError("meshgrid needs 1-D arrays")
    if len({p.dtype for p in parts}) > 1:
        raise TypeError("meshgrid needs arrays of one dtype")
    if not parts:
        return []
    same_device(*(p.device for p in parts))
    grids = parts[0]._xp.meshgrid(*(p._x for p in parts), indexing=indexing)
    return [Array._new(g) for g in grids]


def _triangle(x: Any, k: int, name: str) -> Array:
    a = dense(x)
    if a.ndim < 2:
        raise ValueError(f"{name} needs at least 2 dimensions")
    return Array._new(getattr(a._xp, name)(a._x, k=k))


def tril(x: Any, /, *, k: int = 0) -> Array:
    """Lower triangle of the matrices in ``x`` (float32 for MX input)."""
    return _triangle(x, k, "tril")


def triu(x: Any, /, *, k: int = 0) -> Array:
    """Upper triangle of the matrices in ``x`` (float32 for MX input)."""
    return _triangle(x, k, "triu")


def from_dlpack(x: Any, /, *, device: Any = None, copy: bool | None = None) -> Array:
    """An array from any object with ``__dlpack__`` (standard dtypes only).

    Host data give a NumPy-backed array, CUDA data (a CuPy or torch GPU tensor, ...) a
    CuPy-backed one on the same GPU; ``device`` then moves the result.

    Raises
    ------
    TypeError
        If ``x`` is an MX array (DLPack has no MX dtypes; use ``astype`` to a float dtype).
    RuntimeError
        If ``x`` lives on a GPU and CuPy cannot use it.
    """
    if isinstance(x, MXArray):
        raise TypeError("MX arrays cannot be exchanged through DLPack; cast with astype first")
    where = None if device is None else _target(device)
    kwargs = {} if copy is None else {"copy": copy}
    dl_type, dl_index = x.__dlpack_device__()
    if int(dl_type) in _DLPACK_CUDA:
        gpu = usable(Device(f"cuda:{int(dl_index)}"))
        out = Array._new(module(gpu).from_dlpack(x, **kwargs))
    else:
        out = Array._new(np.from_dlpack(x, **kwargs))
    return out if where is None else _on(out, where)


# DLPack device types whose memory CuPy reads: kDLCUDA and kDLCUDAManaged.
_DLPACK_CUDA = (2, 13)
