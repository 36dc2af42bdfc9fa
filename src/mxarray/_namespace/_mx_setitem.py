"""``__setitem__`` for MX arrays: check the key and value, then write block-wise."""

from __future__ import annotations

from typing import Any

from .. import blockwise
from ..array import MXArray
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


def setitem(x: MXArray, key: Any, value: Any) -> None:
    """``x[key] = value`` (see :func:`mxarray.blockwise.write`).

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
        For values of other kinds (integer, boolean, complex arrays, float64 arrays), and
        for an MX array whose storage is on a GPU.
    """
    bkey = backend_key(key, x.shape)
    if x.device != CPU:
        dense(x)  # refuses, naming the move to the host
    blockwise.write(x, bkey, _value(value))
