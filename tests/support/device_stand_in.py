"""A stand-in GPU for the namespace tests: host memory that NumPy is not allowed to touch.

The namespace computes on every device with that device's array module (see
``mxarray._namespace._device.KINDS``).  To prove that no NumPy call on array data hides
in the namespace without a GPU, the tests register this kind as "cuda":

* its arrays are :class:`Walled` objects: a NumPy array behind a wall.  NumPy refuses
  them the way it refuses CuPy arrays: ``numpy.asarray`` raises (``__array__``), NumPy
  functions raise (``__array_function__``) and ufuncs raise (``__array_ufunc__ = None``);
* its module is :class:`WalledModule`: NumPy's functions behind the wall, which also
  refuses plain host NumPy arrays as arguments (CuPy refuses them too).

So a namespace function that calls NumPy on device data, or mixes a host array into a
device computation, raises instead of passing; one that computes through the device's
module gives NumPy's exact results, which the tests compare bit for bit.
"""

from __future__ import annotations

import contextlib
import importlib
import operator
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from unittest import mock

import numpy as np

from mxarray._namespace import _device as devices

__all__ = ["STAND_IN", "LeakError", "Walled", "WalledModule", "stand_in"]


class LeakError(TypeError):
    """Device data reached NumPy directly, or host data reached the device module."""


def _in(v: Any) -> Any:
    """Unwrap arguments going into NumPy; plain host arrays are refused."""
    if isinstance(v, Walled):
        return v.a
    if isinstance(v, np.ndarray):
        raise LeakError("a host NumPy array was passed to the device's array module")
    if isinstance(v, (list, tuple)):
        return type(v)(_in(x) for x in v)
    if isinstance(v, dict):
        return {k: _in(x) for k, x in v.items()}
    return v


def _out(v: Any) -> Any:
    """Wrap results coming out of NumPy."""
    if isinstance(v, (np.ndarray, np.generic)):
        return Walled(np.asarray(v))
    if isinstance(v, tuple):
        items = [_out(x) for x in v]
        return type(v)(*items) if hasattr(v, "_fields") else tuple(items)
    if isinstance(v, list):
        return [_out(x) for x in v]
    return v


def _through(func: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _out(func(*_in(args), **_in(kwargs)))

    return call


class Walled:
    """A NumPy array that only the stand-in module may compute on."""

    __slots__ = ("a",)
    __array_ufunc__ = None
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, a: np.ndarray) -> None:
        object.__setattr__(self, "a", a)

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise LeakError("numpy.asarray was called on device data")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise LeakError(f"numpy.{func.__name__} was called on device data")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__array"):  # no buffer views for NumPy (__array_interface__)
            raise AttributeError(name)
        value = getattr(self.a, name)
        return _through(value) if callable(value) else _out(value)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.a, name, _in(value))

    def __getitem__(self, key: Any) -> Any:
        return _out(self.a[_in(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self.a[_in(key)] = _in(value)

    def __len__(self) -> int:
        return len(self.a)

    def __bool__(self) -> bool:
        return bool(self.a)

    def __int__(self) -> int:
        return int(self.a)

    def __float__(self) -> float:
        return float(self.a)

    def __complex__(self) -> complex:
        return complex(self.a)

    def __index__(self) -> int:
        return operator.index(self.a)

    def __repr__(self) -> str:
        return f"Walled({self.a!r})"


def _operator(name: str) -> Any:
    def method(self: Walled, *other: Any) -> Any:
        return _out(getattr(self.a, name)(*_in(other)))

    method.__name__ = name
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and",
              "or", "xor", "lshift", "rshift"):
    for _form in (f"__{_name}__", f"__r{_name}__"):
        setattr(Walled, _form, _operator(_form))
for _form in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__neg__",
              "__pos__", "__abs__", "__invert__"):
    setattr(Walled, _form, _operator(_form))


class WalledModule:
    """A NumPy-like module whose functions take and give :class:`Walled` arrays."""

    def __init__(self, base: ModuleType) -> None:
        self._base = base

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._base, name)
        if isinstance(value, ModuleType):
            return WalledModule(value)
        if callable(value) and not isinstance(value, type):
            return _through(value)
        return value


STAND_IN = devices.DeviceKind(
    load=lambda: WalledModule(np),
    load_linalg=lambda: WalledModule(importlib.import_module("array_api_compat.numpy.linalg")),
    owns=lambda x: isinstance(x, Walled),
    index_of=lambda x: 0,
    to_host=lambda x: x.a.copy(),
    from_host=lambda host, index: Walled(np.array(host, copy=True)),
    unusable=lambda: None,
    count=lambda: 1,
    sort_options={"kind": "stable"},
)


@contextlib.contextmanager
def stand_in() -> Iterator[Any]:
    """Within the block, "cuda:0" is the stand-in device; yields its Device."""
    with mock.patch.dict(devices.KINDS, {"cuda": STAND_IN}):
        yield devices.Device("cuda:0")
