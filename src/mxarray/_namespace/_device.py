"""The devices of the namespace.  Arrays live on the host ("cpu") for now."""

from __future__ import annotations

from typing import Any

__all__ = ["Device", "CPU", "check_device", "same_device"]


class Device:
    """A device an array can live on; compares equal by name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("mxarray.Device", self.name))

    def __repr__(self) -> str:
        return f"mxarray.Device({self.name!r})"


CPU = Device("cpu")


def check_device(device: Any) -> Device:
    """Return the Device that ``device`` names (None means the default, the CPU).

    Raises
    ------
    ValueError
        If ``device`` is not a device of this namespace.
    """
    if device is None or device == CPU or device == "cpu":
        return CPU
    raise ValueError(f"unsupported device {device!r}; mxarray arrays live on {CPU!r}")


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
                             "combined")
    return first
