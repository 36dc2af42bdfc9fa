"""What an MXArray gets from the namespace: the standard's attributes and operators,
indexing and assignment, NumPy-style conveniences, and NumPy's function protocol.

:class:`mxarray.MXArray` is a storage record below the namespace and imports none of
it; importing the namespace (which ``import mxarray`` does) installs these on it.

NumPy habits: ``q.astype``, ``q.reshape``, the reductions ``q.sum`` ... ``q.all`` and
``q.tolist`` work on the dequantized values through the namespace functions (so they
keep MX storage where those do); ``q.copy()`` copies the storage.  NumPy functions
(``numpy.sum(q)``, ``numpy.mean(q)`` ...) all refuse an MXArray with a message naming
the conversion, ``numpy.asarray(q)`` (the float32 values), or the mxarray function;
NumPy ufuncs refuse it too (``__array_ufunc__ = None``, so that ``ndarray + q`` defers
to ``MXArray.__radd__``, which refuses NumPy arrays as every namespace function does).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _namespace as ns
from .. import blockwise
from ..array import MXArray
from ..core import dequantize
from . import _mx_setitem, _mx_structural
from ._array import Array
from ._device import CPU, Device
from ._indexing import backend_key
from ._operands import dense

__all__: list[str] = []


def _dequantize(self: MXArray, dtype: Any = np.float32, *, backend: str | None = None) -> Any:
    """Return the values as a dense array; see :func:`mxarray.dequantize`."""
    return dequantize(self, dtype, backend=backend)


def _dtype(self: MXArray) -> Any:
    """The MX dtype of the array API namespace: the element :class:`Format`."""
    return self.format


def _device(self: MXArray) -> Device:
    """The device the storage lives on: ``Device('cpu')`` or ``Device('cuda:N')``."""
    return ns._device.locate(self.packed)


def _transpose(self: MXArray) -> Any:
    """Transpose of a 2-D array (keeps MX storage; the block axis moves)."""
    if self.ndim != 2:
        raise ValueError(f"x.T needs a 2-D array, got {self.ndim}-D; use x.mT or permute_dims")
    return ns.permute_dims(self, (1, 0))


def _matrix_transpose(self: MXArray) -> Any:
    """Transpose of the last two axes (keeps MX storage; the block axis moves)."""
    return ns.matrix_transpose(self)


def _array_namespace(self: MXArray, *, api_version: str | None = None) -> Any:
    """Return the ``mxarray`` namespace (see :meth:`mxarray.Array.__array_namespace__`)."""
    return Array.__array_namespace__(self, api_version=api_version)  # type: ignore[arg-type]


def _getitem(self: MXArray, key: Any) -> Any:
    """Index: keeps MX storage when the blocks allow (see the docs), else the float32
    values of the selection, decoding only the blocks that hold them."""
    bkey = backend_key(key, self.shape)  # rejects index types the standard forbids
    kept = _mx_structural.getitem(self, key)
    if kept is not None:
        return kept
    if self.device != CPU:
        return dense(self)[key]  # refuses, naming the move to the host
    return Array._new(blockwise.read(self, bkey))


def _setitem(self: MXArray, key: Any, value: Any) -> None:
    """Assign, requantizing only the blocks that hold written elements."""
    _mx_setitem.setitem(self, key, value)


def _tolist(self: MXArray) -> Any:
    """The dequantized float32 values as nested Python lists of floats."""
    return np.asarray(self.to_device("cpu")).tolist()


def _array_function(self: MXArray, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
    """NumPy functions refuse MX arrays, naming the conversion to use."""
    name = func.__name__
    also = f" or call mxarray.{name}(q)" if name in ns.__all__ else ""
    raise TypeError(
        f"numpy.{name} does not take an MXArray: convert it with numpy.asarray(q) (the "
        f"dequantized float32 values){also}"
    )


def _forward(func: str, reflected: bool = False) -> Callable[..., Any]:
    def method(self: MXArray, other: Any) -> Any:
        f = getattr(ns, func)
        return f(other, self) if reflected else f(self, other)

    method.__name__ = func
    method.__doc__ = f"``mxarray.{func}`` on the dequantized float32 values."
    return method


def _forward_inplace(func: str) -> Callable[..., Any]:
    def method(self: MXArray, other: Any) -> MXArray:
        result = getattr(ns, func)(self, other)
        if result.shape != self.shape:
            raise ValueError(f"in-place {func} would change the shape from {self.shape} to "
                             f"{result.shape}")
        self[...] = result
        return self

    method.__name__ = f"i{func}"
    method.__doc__ = f"In-place ``{func}``: computes in float32, requantizes every block."
    return method


def _forward_unary(func: str) -> Callable[..., Any]:
    def method(self: MXArray) -> Any:
        return getattr(ns, func)(self)

    method.__name__ = func
    method.__doc__ = f"``mxarray.{func}`` on the dequantized float32 values."
    return method


def _forward_call(func: str) -> Callable[..., Any]:
    def method(self: MXArray, *args: Any, **kwargs: Any) -> Any:
        return getattr(ns, func)(self, *args, **kwargs)

    method.__name__ = func
    method.__doc__ = (f"``mxarray.{func}(x, ...)`` (keeps MX storage where that function "
                      "does, else works on the dequantized float32 values).")
    return method


def _reshape(self: MXArray, *shape: Any, copy: bool | None = None) -> Any:
    """``mxarray.reshape(x, shape, copy=copy)``; the shape may also be given as separate
    integers, as in NumPy (``q.reshape(2, -1)``)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return ns.reshape(self, shape, copy=copy)


def _install() -> None:
    for name, func in [("dequantize", _dequantize), ("tolist", _tolist),
                       ("reshape", _reshape), ("__getitem__", _getitem),
                       ("__setitem__", _setitem), ("__array_namespace__", _array_namespace),
                       ("__array_function__", _array_function)]:
        setattr(MXArray, name, func)
    for name, getter in [("dtype", _dtype), ("device", _device), ("T", _transpose),
                         ("mT", _matrix_transpose)]:
        setattr(MXArray, name, property(getter, doc=getter.__doc__))
    for name in ("astype", "sum", "mean", "max", "min", "prod", "std", "var", "any", "all"):
        setattr(MXArray, name, _forward_call(name))
    for op, func in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                     ("truediv", "divide"), ("floordiv", "floor_divide"), ("mod", "remainder"),
                     ("pow", "pow"), ("matmul", "matmul")]:
        setattr(MXArray, f"__{op}__", _forward(func))
        setattr(MXArray, f"__r{op}__", _forward(func, reflected=True))
        setattr(MXArray, f"__i{op}__", _forward_inplace(func))
    for op, func in [("eq", "equal"), ("ne", "not_equal"), ("lt", "less"),
                     ("le", "less_equal"), ("gt", "greater"), ("ge", "greater_equal"),
                     ("and", "bitwise_and"), ("or", "bitwise_or"), ("xor", "bitwise_xor"),
                     ("lshift", "bitwise_left_shift"), ("rshift", "bitwise_right_shift")]:
        setattr(MXArray, f"__{op}__", _forward(func))
    for op, func in [("neg", "negative"), ("pos", "positive"), ("abs", "abs"),
                     ("invert", "bitwise_invert")]:
        setattr(MXArray, f"__{op}__", _forward_unary(func))


_install()
