"""``__array_namespace_info__``: what the namespace supports."""

from __future__ import annotations

from typing import Any

from . import _dtypes as dt
from ._device import CPU, Device, check_device, usable_devices

__all__ = ["__array_namespace_info__", "Info"]


class Info:
    """Inspection object of the mxarray namespace (array API 2023.12+ ``info``)."""

    def capabilities(self) -> dict[str, Any]:
        """Optional features: boolean indexing and data-dependent shapes are supported."""
        return {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}

    def default_device(self) -> Device:
        """The default device (the CPU)."""
        return CPU

    def devices(self) -> list[Device]:
        """The devices arrays can live on: the CPU, then every usable GPU."""
        return usable_devices()

    def default_dtypes(self, *, device: Any = None) -> dict[str, Any]:
        """Default dtypes per kind (float64, complex128, int64, int64)."""
        check_device(device)
        return {"real floating": dt.float64, "complex floating": dt.complex128,
                "integral": dt.int64, "indexing": dt.int64}

    def dtypes(self, *, device: Any = None, kind: Any = None) -> dict[str, Any]:
        """The standard dtypes (optionally of one ``kind``).  MX dtypes are not listed:
        they are an extension (see ``mxarray.FORMATS`` and ``mxarray.is_mx_dtype``)."""
        check_device(device)
        return {name: d for name, d in dt.STANDARD_DTYPES.items()
                if kind is None or dt.isdtype(d, kind)}


def __array_namespace_info__() -> Info:
    """Return the namespace's inspection object."""
    return Info()
