"""``__setitem__`` for MX arrays: requantize only the blocks the write touches."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layout as blocks
from .._random import new_seed
from ..array import MXArray
from ..backends import get_backend
from ..backends.base import QuantizeOptions
from . import _dtypes as dt
from ._device import CPU, same_device
from ._indexing import backend_key
from ._operands import SCALARS, dense

__all__ = ["setitem"]


def _value(value: Any) -> Any:
    if isinstance(value, SCALARS):
        dt.scalar_dtype(value, dt.float32)
        return value
    v = dense(value, "value")
    same_device(CPU, v.device)
    if dt.promote(v.dtype, dt.float32) != dt.float32:
        raise TypeError(f"cannot assign a {v.dtype} value into an MX array (it takes "
                        "float32, MX values or Python int/float scalars)")
    return v._x


def setitem(x: MXArray, key: Any, value: Any) -> tuple[np.ndarray, np.ndarray, int | None]:
    """New canonical storage (packed, scales, seed) for ``x[key] = value``.

    Blocks that hold at least one written element are requantized from their new
    values with ``x``'s recorded rounding and scale mode (defaults "even"/"floor" when
    unknown); all other blocks keep their bytes.  With stochastic rounding the touched
    blocks draw, under ``x``'s seed (a fresh one if none is recorded), the random bits
    they would get if the whole updated array were quantized with it.  A partial write
    therefore may change the other elements of a touched block (they share the new
    scale), never elements of other blocks.

    Raises
    ------
    IndexError
        For invalid or out-of-range indices.
    TypeError
        For values of other kinds (integer, boolean, complex arrays, float64 arrays).
    """
    bkey = backend_key(key, x.shape)
    mask = np.zeros(x.shape, dtype=np.bool_)
    mask[bkey] = True
    values = x.dequantize(np.float64)
    values[bkey] = _value(value)
    size = x.format.block_size
    touched = blocks.to_blocks(mask, x.block_axis, size).any(axis=1)
    rows = blocks.to_blocks(values, x.block_axis, size)[touched]
    rounding = x.rounding or "even"
    scale_mode = x.scale_mode or "floor"
    seed = None
    if rounding == "stochastic":
        seed = x.seed if x.seed is not None else new_seed()
    be = get_backend("numpy")
    codes = be.unpack(x._packed, x.format).reshape(x._scales.size, size)  # 0 blocks too
    scales = x._scales.reshape(-1).copy()
    if rows.shape[0]:
        ids = np.flatnonzero(touched).astype(np.uint64)  # their numbers in the whole array
        options = QuantizeOptions(x.format, rounding, scale_mode, seed, x.tensor_scale, ids)
        new_codes, new_scales = be.quantize_blocks(rows, options)
        codes[touched] = new_codes
        scales[touched] = new_scales
    lead = x._packed.shape[:-1]
    padded = x._scales.shape[-1] * size
    return (be.pack(codes.reshape(lead + (padded,)), x.format), scales.reshape(x._scales.shape),
            seed)
