"""The namespace's names for the device module, :mod:`mxarray._device_arrays`.

Every device fact (the :class:`Device` names, the array module of each device kind in
:data:`KINDS`, moving data) lives there, below MXArray, so the storage record, core and
the namespace share one definition.  Namespace functions never call NumPy on array
data; they call the module of the data's device (see :func:`module`).
"""

from __future__ import annotations

from typing import Any

from .._device_arrays import (CPU, KINDS, Device, DeviceKind, check_device, linalg_module,
                              locate, module, quiet, same_device, usable, usable_devices)
from .._device_arrays import move as _move

__all__ = ["Device", "CPU", "DeviceKind", "KINDS", "check_device", "same_device", "locate",
           "module", "linalg_module", "usable", "move", "quiet", "usable_devices"]


def move(x: Any, source: Device, target: Device) -> Any:
    """Copy the backend array ``x`` (on ``source``, its own device) to ``target``.

    Raises
    ------
    RuntimeError
        If ``target`` is not usable (see :func:`usable`).
    """
    same_device(source, locate(x))
    return _move(x, usable(target))
