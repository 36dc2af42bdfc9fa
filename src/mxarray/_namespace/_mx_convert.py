"""Conversions between dense arrays and MX arrays (quantize on the way in, dequantize out)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..array import MXArray
from ..core import quantize
from ..formats import Format, check_rounding, check_scale_mode
from ..layout import normalize_axis
from ._array import Array

__all__ = ["to_mx", "MX_OPTIONS"]

# The extra keywords asarray/astype accept for MX targets, with their defaults.
MX_OPTIONS = {"block_axis": -1, "rounding": "even", "scale_mode": "floor", "seed": None}


def to_mx(values: Any, fmt: Format, *, block_axis: int = -1, rounding: str = "even",
          scale_mode: str = "floor", seed: int | None = None) -> MXArray:
    """Quantize dense values into ``fmt`` along ``block_axis``.

    ``values`` may be an Array, an MXArray (requantized from its float32 values, or
    returned as is when format and block axis already match) or a NumPy array.

    Raises
    ------
    TypeError
        If the values are boolean or complex (the MX formats hold real numbers).
    ValueError
        If the values are 0-d, the block axis is empty or out of range, or the rounding
        or scale mode is unknown.
    """
    check_rounding(rounding)
    check_scale_mode(scale_mode)
    if isinstance(values, MXArray):
        ax = normalize_axis(block_axis, values.ndim, "block_axis")
        if values.format is fmt and values.block_axis == ax:
            return values
        values = values.dequantize(np.float32)
    x = values._x if isinstance(values, Array) else np.asarray(values)
    if x.dtype.kind not in "iuf":
        raise TypeError(f"cannot quantize {x.dtype} values into {fmt.name}: MX formats hold "
                        "real numbers (cast booleans or complex values first)")
    if x.dtype.kind in "iu":
        x = x.astype(np.float64)
    return quantize(x, fmt, axis=block_axis, rounding=rounding, scale_mode=scale_mode,
                    seed=seed)
