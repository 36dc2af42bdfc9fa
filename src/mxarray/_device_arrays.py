"""Where an array's memory lives: the host (NumPy) or a CUDA device (CuPy).

CuPy is never imported here unless an array already is a CuPy array or a caller asks to
move data to a GPU, so importing mxarray never touches CUDA.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

__all__ = ["is_device_array", "device_name", "parse_device", "move"]


def is_device_array(a: Any) -> bool:
    """True if ``a`` is a CuPy (GPU) array."""
    return type(a).__module__.split(".", 1)[0] == "cupy"


def device_name(a: Any) -> str:
    """``"cpu"`` for host arrays, ``"cuda:N"`` for a CuPy array on device N."""
    return f"cuda:{a.device.id}" if is_device_array(a) else "cpu"


def parse_device(device: Any) -> str:
    """Normalise a device spec to ``"cpu"`` or ``"cuda:N"``.

    Accepts None or ``"cpu"`` (the host), ``"cuda"`` (device 0), ``"cuda:N"``, a
    ``cupy.cuda.Device`` and any object with a ``name`` attribute holding one of these.

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


def move(a: Any, device: str) -> Any:
    """Return ``a`` on ``device`` (a name from :func:`parse_device`), copying if needed."""
    if device_name(a) == device:
        return a
    if device == "cpu":
        return a.get()
    from .backends import get_backend

    get_backend("cupy")  # RuntimeError naming the reason when no usable GPU and CuPy
    cupy = importlib.import_module("cupy")
    with cupy.cuda.Device(int(device.split(":")[1])):
        return cupy.asarray(np.asarray(a) if not is_device_array(a) else a)
