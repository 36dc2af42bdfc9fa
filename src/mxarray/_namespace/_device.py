"""The devices of the namespace, and the array module that computes on each.

A device is ``"cpu"`` (NumPy arrays) or ``"cuda:N"`` (CuPy arrays on GPU ``N``).  Each
device kind has a :class:`DeviceKind` in :data:`KINDS`: the NumPy-like module that
computes there, the array-api-compat ``linalg`` for it, how to recognise its arrays and
how to move host data in and out.  Namespace functions never call NumPy on array data;
they call the module of the data's device (see :func:`module`).  CuPy is imported only
when a GPU device is used, so ``import mxarray`` never touches CUDA.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .._device_arrays import is_device_array, parse_device

__all__ = ["Device", "CPU", "DeviceKind", "KINDS", "check_device", "same_device", "locate",
           "module", "linalg_module", "usable", "move", "quiet", "usable_devices"]


class Device:
    """A device an array can live on (``"cpu"`` or ``"cuda:N"``); compares equal by name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def kind(self) -> str:
        """``"cpu"`` or ``"cuda"``."""
        return self.name.partition(":")[0]

    @property
    def index(self) -> int:
        """The device number (0 for the CPU)."""
        return int(self.name.partition(":")[2] or 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("mxarray.Device", self.name))

    def __repr__(self) -> str:
        return f"mxarray.Device({self.name!r})"


CPU = Device("cpu")


@dataclass(frozen=True)
class DeviceKind:
    """How the namespace computes on one kind of device.

    Attributes
    ----------
    load : callable
        Returns the NumPy-like array module of the device (imported on first use).
    load_linalg : callable
        Returns the array API ``linalg`` module for those arrays (array-api-compat's).
    owns : callable
        True for an array of this kind.
    index_of : callable
        The device number of such an array.
    to_host : callable
        Copies such an array into a NumPy array.
    from_host : callable
        ``from_host(numpy_array, index)``: copies host data onto device ``index``.
    unusable : callable
        ``None`` when the kind is usable here, else the reason it is not.
    count : callable
        The number of usable devices of this kind.
    sort_options : dict
        Keywords that make the module's ``sort``/``argsort`` stable.
    """

    load: Callable[[], Any]
    load_linalg: Callable[[], Any]
    owns: Callable[[Any], bool]
    index_of: Callable[[Any], int]
    to_host: Callable[[Any], np.ndarray]
    from_host: Callable[[np.ndarray, int], Any]
    unusable: Callable[[], str | None]
    count: Callable[[], int]
    sort_options: dict[str, Any] = field(default_factory=dict)


def _cupy_unusable() -> str | None:
    from ..backends import list_backends

    info = {b.name: b for b in list_backends()}.get("cupy")
    if info is None:
        return "no cupy backend is registered"
    return None if info.available else info.reason


def _cupy_count() -> int:
    if _cupy_unusable() is not None:
        return 0
    return int(importlib.import_module("cupy").cuda.runtime.getDeviceCount())


def _cupy_from_host(host: np.ndarray, index: int) -> Any:
    cupy = importlib.import_module("cupy")
    with cupy.cuda.Device(index):
        return cupy.asarray(host)


KINDS: dict[str, DeviceKind] = {
    "cpu": DeviceKind(
        load=lambda: np,
        load_linalg=lambda: importlib.import_module("array_api_compat.numpy.linalg"),
        owns=lambda x: isinstance(x, (np.ndarray, np.generic)),
        index_of=lambda x: 0,
        to_host=lambda x: x,
        from_host=lambda host, index: host,
        unusable=lambda: None,
        count=lambda: 1,
        sort_options={"kind": "stable"},
    ),
    "cuda": DeviceKind(
        load=lambda: importlib.import_module("cupy"),
        load_linalg=lambda: importlib.import_module("array_api_compat.cupy.linalg"),
        owns=is_device_array,
        index_of=lambda x: int(x.device.id),
        to_host=lambda x: x.get(),
        from_host=_cupy_from_host,
        unusable=_cupy_unusable,
        count=_cupy_count,
    ),
}


def check_device(device: Any) -> Device:
    """Return the Device that ``device`` names (None means the default, the CPU).

    Accepts a :class:`Device`, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a
    ``cupy.cuda.Device``.  It does not check that the device is usable (see
    :func:`usable`).

    Raises
    ------
    ValueError
        If ``device`` is not a device of this namespace.
    """
    if device is None or device == CPU:
        return CPU
    return Device(parse_device(device))


def usable(device: Device) -> Device:
    """Return ``device`` if arrays can be made there.

    Raises
    ------
    RuntimeError
        If the device kind is not usable here (the reason is named) or there is no
        device of that number.
    """
    kind = KINDS[device.kind]
    why = kind.unusable()
    if why is not None:
        raise RuntimeError(f"device {device.name} is not usable: {why}")
    if device.index >= kind.count():
        raise RuntimeError(f"device {device.name} does not exist: {kind.count()} "
                           f"{device.kind} device(s) are usable")
    return device


def usable_devices() -> list[Device]:
    """The CPU, then every usable GPU."""
    out = [CPU]
    for name, kind in KINDS.items():
        if name != "cpu" and kind.unusable() is None:
            out += [Device(f"{name}:{i}") for i in range(kind.count())]
    return out


def locate(x: Any) -> Device:
    """The device of a backend array (anything that is no device array is on the CPU)."""
    for name, kind in KINDS.items():
        if name != "cpu" and kind.owns(x):
            return Device(f"{name}:{kind.index_of(x)}")
    return CPU


def module(device: Device) -> Any:
    """The NumPy-like array module that computes on ``device``."""
    return KINDS[device.kind].load()


def linalg_module(device: Device) -> Any:
    """The array API ``linalg`` module for arrays on ``device``."""
    return KINDS[device.kind].load_linalg()


def move(x: Any, source: Device, target: Device) -> Any:
    """Copy the backend array ``x`` from ``source`` to ``target`` (through the host).

    Raises
    ------
    RuntimeError
        If ``target`` is not usable (see :func:`usable`).
    """
    usable(target)
    host = KINDS[source.kind].to_host(x)
    return KINDS[target.kind].from_host(np.asarray(host), target.index)


def quiet(xp: Any) -> Any:
    """A context that silences floating-point warnings of ``xp`` (if it has any)."""
    errstate = getattr(xp, "errstate", None)
    return errstate(all="ignore") if errstate is not None else contextlib.nullcontext()


def same_device(*devices: Device) -> Device:
    """Return the common device of several arrays.

    Raises
    ------
    ValueError
        If the devices differ.
    """
    first = devices[0]
    for d in devices[1:]:
        if d != first:
            raise ValueError(f"arrays on different devices ({first!r} and {d!r}) cannot be "
                             "combined; move one with .to_device()")
    return first
