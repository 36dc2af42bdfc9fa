"""Array: a dense array of a standard dtype, with the array API's object semantics.

It wraps one backend array (a NumPy array on the CPU, a CuPy array on a GPU; see
:mod:`._device`) and adds only what the standard asks of an array object: strict
promotion in operators, the standard's indexing rules, in-place operators that keep the
dtype, 0-d conversions, ``device``/``to_device``, DLPack and
``__array_namespace__``.  Arithmetic lives in :mod:`._elementwise`; the operators here
call it, so operator and function always agree.
"""

from __future__ import annotations

import importlib
import operator
from typing import Any

import numpy as np

from . import _device as devices
from . import _dtypes as dt
from ._device import Device

__all__ = ["Array"]


def _ew() -> Any:
    """The namespace package, imported when first needed (it imports this module)."""
    return importlib.import_module("mxarray._namespace")


def _binary(func: str, reflected: bool = False) -> Any:
    def method(self: Array, other: Any) -> Any:
        f = getattr(_ew(), func)
        return f(other, self) if reflected else f(self, other)

    method.__name__ = func
    method.__doc__ = f"``{'other' if reflected else 'self'} {func} " \
                     f"{'self' if reflected else 'other'}`` (see ``mxarray.{func}``)."
    return method


def _inplace(func: str) -> Any:
    def method(self: Array, other: Any) -> Array:
        target = dt.result_type(self, other)
        if target != self.dtype:
            raise TypeError(f"in-place {func} of {self.dtype} with {other!r} would give "
                            f"{target}; the dtype of an array cannot change in place")
        result = getattr(_ew(), func)(self, other)
        self._assign_inplace(result, func)
        return self

    method.__name__ = f"i{func}"
    method.__doc__ = f"In-place ``{func}``; the dtype and shape of ``self`` must not change."
    return method


def _unary(func: str) -> Any:
    def method(self: Array) -> Any:
        return getattr(_ew(), func)(self)

    method.__name__ = func
    method.__doc__ = f"``mxarray.{func}(self)``."
    return method


class Array:
    """A dense array of a standard dtype (bool, int8 to uint64, float32/64, complex64/128).

    Create one with the namespace's creation functions (:func:`mxarray.asarray`,
    :func:`mxarray.zeros`, ...), not with the constructor.

    Examples
    --------
    >>> import mxarray as mx
    >>> x = mx.asarray([1.0, 2.0, 3.0], dtype=mx.float32)
    >>> x * 2
    Array([2., 4., 6.], dtype=float32)
    """

    __slots__ = ("_device", "_x")
    __array_ufunc__ = None  # NumPy ufuncs and operators defer to us (and then refuse)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        raise TypeError("create arrays with mxarray.asarray(...) or another creation function")

    @classmethod
    def _new(cls, x: Any) -> Array:
        """Wrap a backend array of any device (NumPy scalars become 0-d arrays)."""
        device = devices.locate(x)
        arr = np.asarray(x) if device == devices.CPU else x
        if arr.dtype not in dt.STANDARD_DTYPES.values():
            raise TypeError(f"the backend produced dtype {arr.dtype}, not a standard dtype")
        self = object.__new__(cls)
        self._x = arr
        self._device = device
        return self

    @property
    def _xp(self) -> Any:
        """The array module that computes on this array's device."""
        return devices.module(self._device)

    # -- attributes --------------------------------------------------------------------

    @property
    def dtype(self) -> np.dtype:
        """The data type (a standard dtype of the namespace)."""
        return self._x.dtype

    @property
    def device(self) -> Device:
        """The device the data live on (``Device("cpu")`` or ``Device("cuda:N")``)."""
        return self._device

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape."""
        return self._x.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self._x.ndim

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(self._x.size)

    @property
    def T(self) -> Array:  # noqa: N802 - the standard's name
        """Transpose of a 2-D array.

        Raises
        ------
        ValueError
            If the array is not 2-D (use ``mT`` or ``permute_dims``).
        """
        if self.ndim != 2:
            raise ValueError(f"x.T needs a 2-D array, got {self.ndim}-D; use x.mT or permute_dims")
        return Array._new(self._x.T)

    @property
    def mT(self) -> Array:  # noqa: N802 - the standard's name
        """Transpose of the last two axes (a stack of matrices).

        Raises
        ------
        ValueError
            If the array has fewer than two dimensions.
        """
        if self.ndim < 2:
            raise ValueError(f"x.mT needs at least 2 dimensions, got {self.ndim}")
        return Array._new(self._xp.swapaxes(self._x, -1, -2))

    def __array_namespace__(self, *, api_version: str | None = None) -> Any:
        """Return the ``mxarray`` namespace.

        Raises
        ------
        ValueError
            If ``api_version`` is given and is not ``"2024.12"``.
        """
        import mxarray

        if api_version is not None and api_version != mxarray.__array_api_version__:
            raise ValueError(f"mxarray implements array API {mxarray.__array_api_version__}, "
                             f"not {api_version!r}")
        return mxarray

    def to_device(self, device: Any, /, *, stream: Any = None) -> Array:
        """Return the array on ``device`` (itself if it is there already, else a copy).

        Raises
        ------
        ValueError
            If ``device`` is not a device of this namespace, or ``stream`` is given.
        RuntimeError
            If ``device`` is a GPU and no usable GPU and CuPy are present (the reason
            is named).
        """
        target = devices.check_device(device)
        if stream is not None:
            raise ValueError("stream is not supported; synchronise before moving arrays")
        if target == self._device:
            return self
        return Array._new(devices.move(self._x, target))

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None,
                   dl_device: Any = None, copy: bool | None = None) -> Any:
        """Export the data through DLPack (delegates to the backend array)."""
        kwargs: dict[str, Any] = {"stream": stream}
        if max_version is not None:
            kwargs["max_version"] = max_version
        if dl_device is not None:
            kwargs["dl_device"] = dl_device
        if copy is not None:
            kwargs["copy"] = copy
        return self._x.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[Any, int]:
        """The DLPack device of the data."""
        return self._x.__dlpack_device__()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The data as a NumPy array (for ``numpy.asarray``; host arrays only).

        Raises
        ------
        TypeError
            If the array lives on a GPU (move it with ``.to_device("cpu")`` first).
        """
        if self._device != devices.CPU:
            raise TypeError(f"this array lives on {self._device.name}; implicit conversion to "
                            "a NumPy array is not allowed: use .to_device('cpu') first")
        if copy:
            return np.array(self._x, dtype=dtype, copy=True)
        return np.asarray(self._x, dtype=dtype)

    # -- conversions of 0-d arrays -----------------------------------------------------

    def _scalar(self, kind: str) -> Any:
        if self.ndim != 0:
            raise TypeError(f"{kind}() needs a 0-d array, got shape {self.shape}")
        return self._x[()]

    def __bool__(self) -> bool:
        return bool(self._scalar("bool"))

    def __int__(self) -> int:
        if self.dtype.kind == "c":
            raise TypeError("int() of a complex array")
        return int(self._scalar("int"))

    def __float__(self) -> float:
        if self.dtype.kind == "c":
            raise TypeError("float() of a complex array")
        return float(self._scalar("float"))

    def __complex__(self) -> complex:
        return complex(self._scalar("complex"))

    def __index__(self) -> int:
        if self.dtype.kind not in "iu":
            raise TypeError(f"only integer arrays can be used as an index, got {self.dtype}")
        return operator.index(self._scalar("index"))

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __len__(self) -> int:
        """The length of the first axis (as NumPy and ``MXArray``; SciPy's array API
        code calls ``len`` on arrays).

        Raises
        ------
        TypeError
            For a 0-d array.
        """
        if self.ndim == 0:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        host = devices.KINDS[self._device.kind].to_host(self._x)
        body = np.array2string(np.asarray(host), separator=", ", prefix="Array(")
        where = "" if self._device == devices.CPU else f", device={self._device.name}"
        return f"Array({body}, dtype={self.dtype}{where})"

    # -- indexing ----------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Array:
        from ._indexing import backend_key

        return Array._new(self._x[backend_key(key, self.shape, self._device)])

    def __setitem__(self, key: Any, value: Any) -> None:
        from ._indexing import backend_key, backend_value

        self._x[backend_key(key, self.shape, self._device)] = backend_value(
            value, self.dtype, self._device)

    def _assign_inplace(self, result: Array, func: str) -> None:
        if result.dtype != self.dtype:
            raise TypeError(f"in-place {func} would change the dtype from {self.dtype} to "
                            f"{result.dtype}")
        if result.shape != self.shape:
            raise ValueError(f"in-place {func} would change the shape from {self.shape} to "
                             f"{result.shape}")
        self._x[...] = result._x

    # -- operators -----------------------------------------------------------------------

    __add__, __radd__, __iadd__ = _binary("add"), _binary("add", True), _inplace("add")
    __sub__, __rsub__, __isub__ = (_binary("subtract"), _binary("subtract", True),
                                   _inplace("subtract"))
    __mul__, __rmul__, __imul__ = (_binary("multiply"), _binary("multiply", True),
                                   _inplace("multiply"))
    __truediv__, __rtruediv__, __itruediv__ = (_binary("divide"), _binary("divide", True),
                                               _inplace("divide"))
    __floordiv__, __rfloordiv__, __ifloordiv__ = (
        _binary("floor_divide"), _binary("floor_divide", True), _inplace("floor_divide"))
    __mod__, __rmod__, __imod__ = (_binary("remainder"), _binary("remainder", True),
                                   _inplace("remainder"))
    __pow__, __rpow__, __ipow__ = _binary("pow"), _binary("pow", True), _inplace("pow")
    __matmul__, __rmatmul__, __imatmul__ = (_binary("matmul"), _binary("matmul", True),
                                            _inplace("matmul"))
    __and__, __rand__, __iand__ = (_binary("bitwise_and"), _binary("bitwise_and", True),
                                   _inplace("bitwise_and"))
    __or__, __ror__, __ior__ = (_binary("bitwise_or"), _binary("bitwise_or", True),
                                _inplace("bitwise_or"))
    __xor__, __rxor__, __ixor__ = (_binary("bitwise_xor"), _binary("bitwise_xor", True),
                                   _inplace("bitwise_xor"))
    __lshift__, __rlshift__, __ilshift__ = (
        _binary("bitwise_left_shift"), _binary("bitwise_left_shift", True),
        _inplace("bitwise_left_shift"))
    __rshift__, __rrshift__, __irshift__ = (
        _binary("bitwise_right_shift"), _binary("bitwise_right_shift", True),
        _inplace("bitwise_right_shift"))
    __eq__ = _binary("equal")  # type: ignore[assignment]
    __ne__ = _binary("not_equal")  # type: ignore[assignment]
    __lt__, __le__ = _binary("less"), _binary("less_equal")
    __gt__, __ge__ = _binary("greater"), _binary("greater_equal")
    __neg__, __pos__, __abs__ = _unary("negative"), _unary("positive"), _unary("abs")
    __invert__ = _unary("bitwise_invert")
