"""Devices: where an array's memory lives, and the array module that computes there.

A device is ``"cpu"`` (NumPy arrays) or ``"cuda:N"`` (CuPy arrays on GPU ``N``), named
by a :class:`Device`.  Each device kind has a :class:`DeviceKind` in :data:`KINDS`: the
NumPy-like module that computes there, the array-api-compat ``linalg`` for it, how to
recognise its arrays and how to move data in and out (array-api-compat's ``device`` and
``to_device`` for CuPy arrays).  The MXArray storage record, core and the array API
namespace all use this one module.  CuPy is imported only when a GPU device is used,
so ``import mxarray`` never touches CUDA.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import array_api_compat as compat
import numpy as np

__all__ = ["Device", "CPU", "DeviceKind", "KINDS", "is_device_array", "device_name",
           "parse_device", "check_device", "same_device", "locate", "module",
           "linalg_module", "usable", "usable_devices", "move", "quiet"]


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


def is_device_array(a: Any) -> bool:
    """True if ``a`` is a CuPy (GPU) array, recognised by its type's module (so CuPy is
    not imported to answer)."""
    return type(a).__module__.split(".", 1)[0] == "cupy"


@dataclass(frozen=True)
class DeviceKind:
    """How to hold and compute on one kind of device.

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
    from .backends import list_backends

    info = {b.name: b for b in list_backends()}.get("cupy")
    if info is None:
        return "no cupy backend is registered"
    return None if info.available else f"backend 'cupy' unusable here: {info.reason}"


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
        index_of=lambda x: int(compat.device(x).id),
        to_host=lambda x: compat.to_device(x, "cpu"),
        from_host=_cupy_from_host,
        unusable=_cupy_unusable,
        count=_cupy_count,
    ),
}


def locate(x: Any) -> Device:
    """The device of a backend array (anything that is no device array is on the CPU)."""
    for name, kind in KINDS.items():
        if name != "cpu" and kind.owns(x):
            return Device(f"{name}:{kind.index_of(x)}")
    return CPU


def device_name(a: Any) -> str:
    """``"cpu"`` for host arrays, ``"cuda:N"`` for a CuPy array on device N."""
    return locate(a).name


def parse_device(device: Any) -> str:
    """Normalise a device spec to ``"cpu"`` or ``"cuda:N"``.

    Accepts None or ``"cpu"`` (the host), ``"cuda"`` (device 0), ``"cuda:N"``, a
    ``cupy.cuda.Device`` and any object with a ``name`` attribute holding one of these
    (a :class:`Device`).

    Raises
    ------
    ValueError
        If ``device`` names no such device.
    """
    if device is None:
        return "cpu"
    if type(device).__module__.split(".", 1)[0] == "cupy" and hasattr(device, "id"):
        return f"cuda:{device.id}"
    name = getattr(device, "name", device)
    if isinstance(name, str):
        if name == "cpu":
            return "cpu"
        if name == "cuda":
            return "cuda:0"
        kind, _, index = name.partition(":")
        if kind == "cuda" and index.isdigit():
            return f"cuda:{int(index)}"
    raise ValueError(f"unsupported device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def check_device(device: Any) -> Device:
    """Return the Device that ``device`` names (None means the default, the CPU).

    It does not check that the device is usable (see :func:`usable`).

    Raises
    ------
    ValueError
        If ``device`` is not a device spec :func:`parse_device` accepts.
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


def module(device: Device) -> Any:
    """The NumPy-like array module that computes on ``device``."""
    return KINDS[device.kind].load()


def linalg_module(device: Device) -> Any:
    """The array API ``linalg`` module for arrays on ``device``."""
    return KINDS[device.kind].load_linalg()


def move(x: Any, target: Device | str) -> Any:
    """``x`` (a backend array) on ``target``, copied through the host if it lives
    elsewhere (``x`` itself if it is already there).

    Raises
    ------
    RuntimeError
        If ``target`` is not usable (see :func:`usable`).
    ValueError
        If ``target`` names no device.
    """
    target = check_device(target)
    source = locate(x)
    if source == target:
        return x
    host = KINDS[source.kind].to_host(x)
    if target == CPU:
        return host
    usable(target)
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
