"""The backend interface: the five operations every backend provides.

Contracts (every backend is tested against the NumPy reference, bit for bit):

``quantize_blocks(blocks, fmt, rounding, scale_mode, seed, *, block_ids=None) -> (codes, scales)``
    ``blocks`` is a C-contiguous ``(n, block_size)`` float16/32/64 array.  Returns
    ``(n, block_size)`` uint8 element codes and ``(n,)`` uint8 E8M0 scale bytes, following
    the spec exactly.  ``seed`` is an int for ``rounding == "stochastic"``, else None;
    element ``(b, i)`` draws its random bits with index ``b * block_size + i``.
    ``block_ids`` is None or a C-contiguous uint64 ``(n,)`` array giving each row's block
    number in the canonical layout of a larger array (a chunk, or the blocks an
    assignment rewrites); element ``(b, i)`` then draws with index
    ``block_ids[b] * block_size + i`` (uint64 arithmetic), so the rows get the bits the
    whole array would give them.  Other roundings ignore it.
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

Optional: ``supports(fmt) -> bool``, whether the backend implements block format
``fmt``.  A backend without the method supports exactly the six OCP formats (E8M0 scale
per 32 elements, no sub-blocks, no tensor scale); see :func:`supports`.  For the other
block formats (MX9/MX6/MX4, NVFP4, registered ones) the contracts above change so:

- codes are *unpacked codes* of dtype ``fmt.code_dtype``: the element code in the low
  ``fmt.bits`` bits and its sub-block's microexponent D above them (uint16 for MX9);
- scale bytes are E8M0 / d-bit exponent bytes, or UE4M3 bytes for NVFP4;
- formats with a tensor scale get it as the keyword ``tensor_scale=`` (a float32 value)
  in ``quantize_blocks`` and ``dequantize_blocks``, and ``a_tensor_scale=`` /
  ``b_tensor_scale=`` in ``matmul_blocks``; the keywords are passed only for them;
- block sizes of the two matmul operands may differ (both padded K lengths cover K).

Optional fused paths, used by the core when a backend defines them (same results):

``quantize_packed(blocks, fmt, rounding, scale_mode, seed, *, block_ids=None) -> (packed, scales)``
    As ``quantize_blocks`` followed by ``pack`` of each row.  A backend may also take
    ``out=(packed, scales)``, C-contiguous uint8 arrays of shapes ``(n, bytes_per_block)``
    and ``(n,)`` to write into and return: the core then has each piece of a large array
    written in place instead of copied (it passes ``out`` only when the signature names it).
``dequantize_packed(packed, scales, fmt, dtype, out=None) -> values``
    As ``unpack`` followed by ``dequantize_blocks``; ``packed`` holds one block's bytes per row.
    With ``out`` (a C-contiguous ``(n, block_size)`` array of ``dtype``) it writes there
    and returns ``out``.
``matmul_packed(a_packed, a_scales, a_fmt, b_packed, b_scales, b_fmt) -> c``
    As ``matmul_blocks`` on ``(B, M, packed K)`` and ``(B, N, packed K)`` bytes.

The core passes ``block_ids`` only when it is not None and the rounding is stochastic,
and only to a backend whose quantize methods name the keyword in their signatures (a
catch-all ``**kwargs`` does not count); see :func:`takes_block_ids`.  For any other
backend it runs the NumPy reference instead, or raises NotImplementedError if the user
named that backend.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

from ..formats import Format

__all__ = ["Backend", "supports", "takes_block_ids"]

_QUANTIZE_METHODS = ("quantize_blocks", "quantize_packed")


class Backend(Protocol):
    """Structural type of an mxarray backend (see the module docstring for contracts)."""

    name: str
    xp: Any  # the array module the backend works on (numpy, cupy)

    def available(self) -> tuple[bool, str]: ...

    def quantize_blocks(
        self,
        blocks: Any,
        fmt: Format,
        rounding: str,
        scale_mode: str,
        seed: int | None,
        *,
        block_ids: Any = None,
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


def supports(backend: Any, fmt: Format) -> bool:
    """Whether ``backend`` implements ``fmt``: its ``supports(fmt)``, else "OCP formats only".

    Examples
    --------
    >>> import mxarray
    >>> from mxarray.backends.base import supports
    >>> class OldBackend: ...
    >>> old = OldBackend()
    >>> supports(old, mxarray.mxfp4_e2m1), supports(old, mxarray.get_format("mx9"))
    (True, False)
    """
    probe = getattr(backend, "supports", None)
    return bool(probe(fmt)) if probe is not None else fmt.is_ocp


def takes_block_ids(backend: Any) -> bool:
    """Whether ``backend`` accepts the ``block_ids`` keyword in every quantize method it has.

    A method qualifies when its signature names a ``block_ids`` parameter that can be
    passed by keyword; ``**kwargs`` alone does not (it might drop the keyword silently).
    The answer is computed once per backend class.

    Examples
    --------
    >>> import mxarray
    >>> from mxarray.backends.base import takes_block_ids
    >>> class OldBackend:
    ...     def quantize_blocks(self, blocks, fmt, rounding, scale_mode, seed, **kw): ...
    >>> takes_block_ids(mxarray.get_backend("numpy")), takes_block_ids(OldBackend())
    (True, False)
    """
    cls = type(backend)
    if cls not in _BLOCK_IDS_BY_CLASS:
        methods = [getattr(backend, n) for n in _QUANTIZE_METHODS if hasattr(backend, n)]
        _BLOCK_IDS_BY_CLASS[cls] = bool(methods) and all(map(_names_block_ids, methods))
    return _BLOCK_IDS_BY_CLASS[cls]


def _names_block_ids(method: Any) -> bool:
    """Whether ``method``'s signature has a ``block_ids`` parameter passable by keyword."""
    try:
        param = inspect.signature(method).parameters.get("block_ids")
    except (TypeError, ValueError):  # no introspectable signature (some extension types)
        return False
    return param is not None and param.kind in (
        inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
    )


# Backend class -> answer of takes_block_ids (a class's signatures do not change).
_BLOCK_IDS_BY_CLASS: dict[type, bool] = {}
