"""Build the backend contract's option records in tests (see mxarray.backends.base).

Tests call backend methods directly with the reference's arguments; these helpers turn
those arguments into the records the methods take, as the core would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mxarray.backends.base import (DequantizeOptions, MatmulOperand, MatmulOptions,
                                   QuantizeOptions)
from mxarray.formats import Format, get_format


def _scale(value: Any) -> np.float32 | None:
    return None if value is None else np.float32(value)


def qopts(fmt: str | Format, rounding: str = "even", scale_mode: str = "floor",
          seed: int | None = None, *, block_ids: Any = None,
          tensor_scale: float | None = None) -> QuantizeOptions:
    """A QuantizeOptions record; ``block_ids`` are made uint64 as the core makes them."""
    if isinstance(block_ids, np.ndarray) or isinstance(block_ids, list):
        block_ids = np.ascontiguousarray(block_ids, dtype=np.uint64)
    return QuantizeOptions(get_format(fmt), rounding, scale_mode, seed, _scale(tensor_scale),
                           block_ids)


def dopts(fmt: str | Format, dtype: Any = np.float32, *,
          tensor_scale: float | None = None) -> DequantizeOptions:
    """A DequantizeOptions record."""
    return DequantizeOptions(get_format(fmt), np.dtype(dtype), _scale(tensor_scale))


def matmul_bytes(be: Any, a_packed: Any, a_scales: Any, a_fmt: Format, b_packed: Any,
                 b_scales: Any, b_fmt: Format, *, a_tensor_scale: float | None = None,
                 b_tensor_scale: float | None = None, path: str | None = None) -> Any:
    """``be.matmul`` on packed ``(B, M|N, packed K)`` operands and ``(B, M|N, KB)`` scales."""
    return be.matmul(MatmulOperand(a_packed, a_scales, get_format(a_fmt), _scale(a_tensor_scale)),
                     MatmulOperand(b_packed, b_scales, get_format(b_fmt), _scale(b_tensor_scale)),
                     MatmulOptions(path))


def matmul_codes(be: Any, a_codes: Any, a_scales: Any, a_fmt: Format, b_codes: Any,
                 b_scales: Any, b_fmt: Format, **kwargs: Any) -> Any:
    """``be.matmul`` on unpacked ``(B, M|N, KB, block_size)`` codes (packed by ``be``)."""
    def packed(codes: Any, fmt: Format) -> Any:
        return be.pack(codes.reshape(tuple(codes.shape[:2]) + (-1,)), get_format(fmt))

    return matmul_bytes(be, packed(a_codes, a_fmt), a_scales, a_fmt, packed(b_codes, b_fmt),
                        b_scales, b_fmt, **kwargs)


def decoded(codes: Any, scales: Any, fmt: Format, tensor_scale: float | None = None) -> Any:
    """``(B, R, KB, block_size)`` codes and ``(B, R, KB)`` scales decoded exactly by the
    NumPy reference to float64 rows ``(B, R, KB * block_size)``."""
    from mxarray.backends.numpy_backend import NumpyBackend

    fmt = get_format(fmt)
    flat = NumpyBackend().dequantize_blocks(
        np.reshape(codes, (-1, fmt.block_size)), np.reshape(scales, -1),
        dopts(fmt, np.float64, tensor_scale=tensor_scale))
    return flat.reshape(tuple(np.shape(scales)[:-1]) + (-1,))
