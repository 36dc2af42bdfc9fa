"""The namespace's names for the device module, :mod:`mxarray._device_arrays`.

Every device fact (the :class:`Device` names, the array module of each device kind in
:data:`KINDS`, moving data) lives there, below MXArray, so the storage record, core and
the namespace share one definition.  Namespace functions never call NumPy on array
data; they call the module of the data's device (see :func:`module`).
"""

from __future__ import annotations

from .._device_arrays import (CPU, KINDS, Device, DeviceKind, check_device, linalg_module,
                              locate, module, move, quiet, same_device, usable,
                              usable_devices)

__all__ = ["Device", "CPU", "DeviceKind", "KINDS", "check_device", "same_device", "locate",
           "module", "linalg_module", "usable", "move", "quiet", "usable_devices"]
