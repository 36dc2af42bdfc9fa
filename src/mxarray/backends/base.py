"""The backend interface: the five operations every backend provides.

Contracts (every backend is tested against the NumPy reference, bit for bit):

``quantize_blocks(blocks, fmt, rounding, scale_mode, seed) -> (codes, scales)``
    ``blocks`` is a C-contiguous ``(n, block_size)`` float16/32/64 array.  Returns
    ``(n, block_size)`` uint8 element codes and ``(n,)`` uint8 E8M0 scale bytes, following
    the spec exactly.  ``seed`` is an int for ``rounding == "stochastic"``, else None;
    element ``(b, i)`` draws its random bits with index ``b * block_size + i``.
``dequantize_blocks(codes, scales, fmt, dtype) -> values``
    ``(n, block_size)`` codes and ``(n,)`` scales to ``(n, block_size)`` values of
    ``dtype`` (float32 or float64), exactly ``decode(code) * 2**(scale - 127)``; NaN for
    scale byte 0xFF.
``pack(codes, fmt) -> packed`` and ``unpack(packed, fmt) -> codes``
    Along the last axis, whose length is a multiple of the block size.
``matmul_blocks(a_codes, a_scales, a_fmt, b_codes, b_scales, b_fmt) -> c``
    ``a_codes (B, M, KB, bs)``, ``a_scales (B, M, KB)``, ``b_codes (B, N, KB, bs)``,
    ``b_scales (B, N, KB)``; returns ``(B, M, N)`` float32 within the dot-product error
    bound of the spec.
``available() -> (bool, str)``
    Whether the backend is usable on this machine, and why (not).

Optional fused paths, used by the core when a backend defines them (same results):

``quantize_packed(blocks, fmt, rounding, scale_mode, seed) -> (packed, scales)``
    As ``quantize_blocks`` followed by ``pack`` of each row.
``dequantize_packed(packed, scales, fmt, dtype, out=None) -> values``
    As ``unpack`` followed by ``dequantize_blocks``; ``packed`` holds one block's bytes per row.
    With ``out`` (a C-contiguous ``(n, block_size)`` array of ``dtype``) it writes there
    and returns ``out``.
``matmul_packed(a_packed, a_scales, a_fmt, b_packed, b_scales, b_fmt) -> c``
    As ``matmul_blocks`` on ``(B, M, packed K)`` and ``(B, N, packed K)`` bytes.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..formats import Format

__all__ = ["Backend"]


class Backend(Protocol):
    """Structural type of an mxarray backend (see the module docstring for contracts)."""

    name: str
    xp: Any  # the array module the backend works on (numpy, cupy)

    def available(self) -> tuple[bool, str]: ...

    def quantize_blocks(
        self, blocks: Any, fmt: Format, rounding: str, scale_mode: str, seed: int | None
    ) -> tuple[Any, Any]: ...

    def dequantize_blocks(self, codes: Any, scales: Any, fmt: Format, dtype: Any) -> Any: ...

    def pack(self, codes: Any, fmt: Format) -> Any: ...

    def unpack(self, packed: Any, fmt: Format) -> Any: ...

    def matmul_blocks(
        self,
        a_codes: Any,
        a_scales: Any,
        a_fmt: Format,
        b_codes: Any,
        b_scales: Any,
        b_fmt: Format,
    ) -> Any: ...
