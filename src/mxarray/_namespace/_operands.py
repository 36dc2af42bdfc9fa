"""Turning function arguments into backend arrays: unwrapping, MX dequantization, scalars.

Every namespace function goes through here, so the rules live once:

* an :class:`~mxarray._namespace._array.Array` gives its dense backend array;
* an :class:`~mxarray.MXArray` gives its dequantized float32 values (functions that
  keep MX storage handle MX arrays before they get here);
* a Python scalar meets the dtype of the other operand (standard scalar rules) and is
  made on that operand's device, by its array module; a NumPy scalar of a standard dtype
  (``numpy.float32(2.0)``, ``numpy.int64(3)``, ``numpy.bool_(True)``) counts as the Python
  scalar it holds;
* anything else (a raw NumPy array, another library's array) is a TypeError: mixing
  array libraries is never silently allowed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..array import MXArray
from . import _dtypes as dt
from ._array import Array
from ._device import CPU, locate, module, same_device

__all__ = ["dense", "unwrap", "check_category", "binary_operands", "wrap", "array_module",
           "SCALARS"]

SCALARS = dt.SCALARS


def dense(x: Any, name: str = "x") -> Array:
    """Return ``x`` as a dense Array (MX arrays dequantized to float32).

    Raises
    ------
    TypeError
        If ``x`` is not an array of this namespace.
    """
    if isinstance(x, Array):
        return x
    if isinstance(x, MXArray):
        if x.device != CPU:
            raise TypeError(
                f"{name} is an MXArray on {x.device.name}; namespace functions work on MX "
                "arrays on the host only, so move it first with .to_device('cpu')"
            )
        return Array._new(x.dequantize(np.float32))
    raise TypeError(
        f"{name} must be an mxarray array (Array or MXArray), got {type(x).__module__}."
        f"{type(x).__name__}; convert it with mxarray.asarray"
    )


def unwrap(x: Any, name: str = "x") -> Any:
    """The backend array of ``x`` (see :func:`dense`)."""
    return dense(x, name)._x


def check_category(dtype: np.dtype, category: str, func: str) -> None:
    """Raise TypeError if ``dtype`` is not in the standard's input ``category`` of ``func``."""
    if dtype not in dt.CATEGORIES[category]:
        raise TypeError(f"{func} needs {category} input, got {dtype}")


def binary_operands(
    x1: Any, x2: Any, category: str, func: str
) -> tuple[Any, Any, np.dtype]:
    """Backend arrays for a binary function, with their promoted dtype.

    One operand may be a Python scalar (or a NumPy scalar, taken as one); it takes the
    kind of the array operand and is made on its device.

    Raises
    ------
    TypeError
        For non-arrays, disallowed dtype categories, or unpromotable dtypes.
    ValueError
        If the arrays live on different devices.
    OverflowError
        If a Python int does not fit the array's integer dtype.
    """
    x1, x2 = dt.python_scalar(x1), dt.python_scalar(x2)
    s1, s2 = isinstance(x1, SCALARS), isinstance(x2, SCALARS)
    if s1 and s2:
        raise TypeError(f"{func} needs at least one array argument")
    if s1:
        b = dense(x2, "x2")
        check_category(b.dtype, category, func)
        a_x = b._xp.asarray(x1, dtype=dt.scalar_dtype(x1, b.dtype))
        return a_x, b._x, dt.promote(a_x.dtype, b.dtype)
    a = dense(x1, "x1")
    if s2:
        check_category(a.dtype, category, func)
        b_x = a._xp.asarray(x2, dtype=dt.scalar_dtype(x2, a.dtype))
        return a._x, b_x, dt.promote(a.dtype, b_x.dtype)
    b = dense(x2, "x2")
    same_device(a.device, b.device)
    check_category(a.dtype, category, func)
    check_category(b.dtype, category, func)
    return a._x, b._x, dt.promote(a.dtype, b.dtype)


def wrap(result: Any) -> Any:
    """Wrap a backend result (array, tuple or named tuple of arrays) as namespace arrays."""
    if isinstance(result, tuple):
        items = [wrap(r) for r in result]
        return type(result)(*items) if hasattr(result, "_fields") else tuple(items)
    if isinstance(result, list):
        return [wrap(r) for r in result]
    return Array._new(result)


def array_module(x: Any) -> Any:
    """The array module of a backend array returned by :func:`binary_operands`."""
    return module(locate(x))
