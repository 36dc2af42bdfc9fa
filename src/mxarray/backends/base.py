"""The backend contract: one abstract base class, options as frozen records.

Core (:mod:`mxarray.core`) is the only caller.  It checks every argument once, moves the
block axis last, pads and cuts the array into contiguous rows of whole blocks, builds
the option records below, and calls one method per operation:

- :meth:`Backend.quantize`: ``(n, block_size)`` float16/32/64 rows to ``(n,
  bytes_per_block)`` packed uint8 codes and ``(n,)`` scale bytes, written into ``out``
  when given;
- :meth:`Backend.dequantize`: packed rows and their scale bytes to ``(n, block_size)``
  values of ``options.dtype``, written into ``out`` when given;
- :meth:`Backend.matmul`: two :class:`MatmulOperand` records to a ``(batch, M, N)``
  float32 product within the spec's bound for the chosen path;
- :meth:`Backend.pack` and :meth:`Backend.unpack`: unpacked codes to packed bytes along
  the last axis, and back.

A backend subclasses :class:`Backend` and writes the four primitives
(:meth:`~Backend.quantize_blocks`, :meth:`~Backend.dequantize_blocks`, ``pack``,
``unpack``); it inherits fused defaults for ``quantize``, ``dequantize`` and ``matmul``
built from them, and overrides those where it has faster kernels.  What a backend can do
is class data (:attr:`Backend.all_formats`, :attr:`Backend.matmul_paths`), read by
:meth:`Backend.supports`: core never inspects signatures or probes attributes.

Codes are *unpacked codes* of dtype ``fmt.code_dtype``: the element code in the low
``fmt.bits`` bits and, for formats with sub-blocks (MX9/MX6/MX4), the sub-block's
microexponent above them.  Scale bytes are E8M0 (or d-bit exponent) bytes, or UE4M3
bytes for NVFP4.  Every backend gives the NumPy reference's bits for quantize and
dequantize; matmul results lie within the bound that spec/mx.toml states for the path.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from ..formats import Format

__all__ = [
    "Backend",
    "DequantizeOptions",
    "MatmulOperand",
    "MatmulOptions",
    "QuantizeOptions",
]


@dataclasses.dataclass(frozen=True, eq=False)
class QuantizeOptions:
    """How to quantize rows of blocks; built and checked once by the core.

    Attributes
    ----------
    fmt : Format
        The block format.
    rounding : str
        ``"even"``, ``"nearest"``, ``"toward_zero"`` or ``"stochastic"``.
    scale_mode : str
        ``"floor"``, ``"ceil"``, ``"rceil"`` or ``"even"``.
    seed : int or None
        The counter-based generator's seed: an int in ``[0, 2**64)`` exactly when
        ``rounding == "stochastic"``, else None.
    tensor_scale : numpy.float32 or None
        The per-tensor scale, set exactly for formats that have one (NVFP4).
    block_ids : array or None
        None (row ``b`` is block ``b``), or a C-contiguous uint64 ``(n,)`` array of the
        backend's array module: row ``b`` draws its stochastic bits with counter
        ``block_ids[b] * block_size + i``, the bits the whole array gives that block.
    """

    fmt: Format
    rounding: str
    scale_mode: str
    seed: int | None
    tensor_scale: np.float32 | None
    block_ids: Any = None

    def with_block_ids(self, block_ids: Any) -> QuantizeOptions:
        """The same options for rows numbered ``block_ids`` (see the class docstring)."""
        return dataclasses.replace(self, block_ids=block_ids)


@dataclasses.dataclass(frozen=True, eq=False)
class DequantizeOptions:
    """How to decode rows of blocks; built and checked once by the core.

    Attributes
    ----------
    fmt : Format
        The block format.
    dtype : numpy.dtype
        float32 or float64.
    tensor_scale : numpy.float32 or None
        The per-tensor scale, set exactly for formats that have one (NVFP4).
    calling_thread : bool
        Decode on the calling thread alone: set by callers that alternate decodes with
        BLAS GEMMs (:mod:`mxarray._namespace._mixed_product`), where a CPU backend's
        worker threads would stay awake after the decode and take the cores from BLAS.
        Backends without worker threads ignore it.
    """

    fmt: Format
    dtype: np.dtype
    tensor_scale: np.float32 | None
    calling_thread: bool = False


@dataclasses.dataclass(frozen=True, eq=False)
class MatmulOperand:
    """One side of an MX matmul in the canonical layout, batch dimensions merged.

    Attributes
    ----------
    packed : array
        ``(batch, rows, KB * fmt.bytes_per_block)`` uint8: row ``r`` holds the packed
        blocks of one row of A (or one column of B) along the contracted axis.
    scales : array
        ``(batch, rows, KB)`` uint8 scale bytes.
    fmt : Format
        The block format.
    tensor_scale : numpy.float32 or None
        The per-tensor scale, set exactly for formats that have one (NVFP4).
    """

    packed: Any
    scales: Any
    fmt: Format
    tensor_scale: np.float32 | None

    @property
    def padded_length(self) -> int:
        """The contracted length covered by the blocks (a multiple of the block size)."""
        return int(self.scales.shape[-1]) * self.fmt.block_size


@dataclasses.dataclass(frozen=True)
class MatmulOptions:
    """How to run a matmul.

    Attributes
    ----------
    path : str or None
        A name from the backend's :attr:`Backend.matmul_paths`, or None for its default.
    """

    path: str | None = None


class Backend(abc.ABC):
    """Base class of every mxarray backend (see the module docstring for the contract).

    Subclasses set :attr:`name` and :attr:`xp`, implement :meth:`available` and the four
    primitives, and may override the fused operations.  Third-party backends registered
    through the ``mxarray.backends`` entry point group subclass it too.

    Examples
    --------
    A backend that implements only the primitives (here by borrowing the reference's)
    inherits the fused operations, and the core calls those:

    >>> import numpy as np, mxarray
    >>> from mxarray.backends.base import Backend
    >>> ref = mxarray.get_backend("numpy")
    >>> class Small(Backend):
    ...     name, xp = "small", np
    ...     def available(self):
    ...         return True, "a doctest backend"
    ...     def quantize_blocks(self, blocks, options):
    ...         return ref.quantize_blocks(blocks, options)
    ...     def dequantize_blocks(self, codes, scales, options):
    ...         return ref.dequantize_blocks(codes, scales, options)
    ...     def pack(self, codes, fmt):
    ...         return ref.pack(codes, fmt)
    ...     def unpack(self, packed, fmt):
    ...         return ref.unpack(packed, fmt)
    >>> mxarray.register_backend("small", Small)
    >>> x = np.linspace(-1, 1, 64)
    >>> a = mxarray.quantize(x, "mxfp4_e2m1", backend="small")
    >>> bool((a.packed == mxarray.quantize(x, "mxfp4_e2m1", backend="numpy").packed).all())
    True
    >>> Small().supports(mxarray.get_format("mx9"))    # class data: OCP formats only
    False
    """

    name: ClassVar[str]
    xp: Any
    all_formats: ClassVar[bool] = False
    """True when the backend implements every block format; False: the six OCP ones."""
    matmul_paths: ClassVar[tuple[str, ...]] = ("exact",)
    """The matmul paths the backend offers, its default first (see :class:`MatmulOptions`)."""

    @abc.abstractmethod
    def available(self) -> tuple[bool, str]:
        """Whether the backend is usable on this machine, and why (not); called once, by
        the registry, before the backend's first use."""

    def supports(self, fmt: Format) -> bool:
        """Whether the backend implements block format ``fmt`` (from :attr:`all_formats`)."""
        return self.all_formats or fmt.is_ocp

    def __repr__(self) -> str:
        return f"<mxarray backend {self.name!r} ({type(self).__module__}.{type(self).__name__})>"

    # -- primitives -------------------------------------------------------------------

    @abc.abstractmethod
    def quantize_blocks(self, blocks: Any, options: QuantizeOptions) -> tuple[Any, Any]:
        """``(n, block_size)`` floats -> ``(n, block_size)`` unpacked codes, ``(n,)`` scales."""

    @abc.abstractmethod
    def dequantize_blocks(self, codes: Any, scales: Any, options: DequantizeOptions) -> Any:
        """``(n, block_size)`` unpacked codes and ``(n,)`` scales -> ``(n, block_size)`` values."""

    @abc.abstractmethod
    def pack(self, codes: Any, fmt: Format) -> Any:
        """Pack unpacked codes along the last axis (whole blocks) into the byte layout."""

    @abc.abstractmethod
    def unpack(self, packed: Any, fmt: Format) -> Any:
        """Inverse of :meth:`pack`: one unpacked code (``fmt.code_dtype``) per element."""

    # -- the tensor scale's amax (formats with a tensor scale, e.g. NVFP4) -------------

    def finite_magnitude_max(self, bits: Any, mask: int, nonfinite: int) -> int:
        """Largest ``b & mask`` below ``nonfinite`` over the unsigned integers ``bits`` (a
        C-contiguous piece of float bit patterns: ``mask`` clears the sign bit and
        ``nonfinite`` is the pattern of +Inf, so this is the largest finite magnitude's
        pattern), or 0 when there is none.

        The core reads a tensor's amax through it, piece by piece.  Default: array
        operations of :attr:`xp` (one temporary of ``bits``' size).
        """
        kind = bits.dtype.type
        magnitudes = bits & kind(mask)
        magnitudes[magnitudes >= kind(nonfinite)] = 0
        return int(magnitudes.max()) if magnitudes.size else 0

    # -- layout copies (what the core calls around quantize and dequantize) ------------

    def gather(self, view: Any) -> Any:
        """A C-contiguous copy of ``view`` (a piece of the input with the block axis moved
        last, often a strided view), or ``view`` itself when it is one already."""
        return self.xp.ascontiguousarray(view)

    def scatter(self, values: Any, view: Any) -> None:
        """``view[...] = values``: write C-contiguous values into a (strided) view of the
        result, the inverse of :meth:`gather`."""
        view[...] = values

    # -- fused operations (what the core calls) ----------------------------------------

    def quantize(self, blocks: Any, options: QuantizeOptions,
                 out: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
        """Packed ``(n, bytes_per_block)`` codes and ``(n,)`` scales of ``(n, block_size)`` rows.

        With ``out`` (C-contiguous uint8 arrays of those shapes) the results are written
        there and ``out`` is returned.  The default packs :meth:`quantize_blocks`' codes.
        """
        codes, scales = self.quantize_blocks(blocks, options)
        packed = self.pack(codes, options.fmt)
        if out is None:
            return packed, scales
        out[0][...] = packed.reshape(out[0].shape)
        out[1][...] = scales
        return out

    def dequantize(self, packed: Any, scales: Any, options: DequantizeOptions,
                   out: Any = None) -> Any:
        """``(n, block_size)`` values of ``(n, bytes_per_block)`` packed rows and their scales.

        With ``out`` (a C-contiguous ``(n, block_size)`` array of ``options.dtype``) the
        values are written there and ``out`` is returned.  The default unpacks, then
        calls :meth:`dequantize_blocks`.
        """
        codes = self.unpack(packed, options.fmt).reshape(scales.shape[0], options.fmt.block_size)
        values = self.dequantize_blocks(codes, scales, options)
        if out is None:
            return values
        out[...] = values
        return out

    def matmul(self, a: MatmulOperand, b: MatmulOperand, options: MatmulOptions) -> Any:
        """``(batch, M, N)`` float32 product of ``a`` (rows of A) and ``b`` (columns of B).

        The contracted length is the shorter padded length (beyond it one side is
        padding).  The default decodes row tiles of both operands exactly to float64
        with :meth:`dequantize` and multiplies each pair of tiles in one float64 GEMM
        (:func:`tiled_matmul`), rounding once to float32; its memory beyond the result
        is a few tiles.
        """
        k = min(a.padded_length, b.padded_length)
        return tiled_matmul(self.xp, self._decoder(a), self._decoder(b),
                            tuple(a.scales.shape[:2]), int(b.scales.shape[1]), k)

    def _decoder(self, op: MatmulOperand) -> Any:
        """``decode(i, rows)``: rows ``rows`` of batch item ``i`` of ``op`` in float64."""
        options = DequantizeOptions(op.fmt, np.dtype(np.float64), op.tensor_scale)
        xp, bpb = self.xp, op.fmt.bytes_per_block

        def decode(i: int, rows: slice) -> Any:
            scales = xp.ascontiguousarray(op.scales[i, rows])
            n_rows, n_blocks = scales.shape
            packed = xp.ascontiguousarray(op.packed[i, rows]).reshape(n_rows * n_blocks, bpb)
            values = self.dequantize(packed, scales.reshape(-1), options)
            return values.reshape(n_rows, n_blocks * op.fmt.block_size)

        return decode


# The default matmul decodes row tiles of A and of B holding at most about this many
# float64 values together with their product tile (tests lower it to force many tiles).
TILE_ELEMENTS = 1 << 20


def tiled_matmul(xp: Any, a_rows: Any, b_rows: Any, batch_m: tuple[int, int], n: int, k: int
                 ) -> Any:
    """``(batch, M, N)`` float32 products of decoded row tiles, one float64 GEMM per tile.

    ``a_rows(b, rows)`` and ``b_rows(b, rows)`` decode the rows (a slice) of operand
    ``b`` of A and B to float64, at least ``k`` columns.  Every output element is one
    float64 dot product over all of K (K is never split), rounded once to float32, as in
    one GEMM of the whole operands; no tile has a single row unless its operand has
    (NumPy's matmul would treat it as a vector).  When every product and partial sum is
    exact in float64 (power-of-two scales within about 2**30 of each other) the result
    is the same in any order, so tiles change no bit.  Otherwise (NVFP4's float32 tensor
    scales make products of up to 60 significant bits) BLAS may order or fuse a dot
    differently for a tile than for the whole: the two differ within the float64 error
    of a dot (``k * 2**-53 * sum |a b|``) before the float32 rounding, far inside the
    spec's dot-product bound.  The decoded tiles and their product hold about
    ``max(TILE_ELEMENTS, 4 * k + 4)`` float64 values.
    """
    batch, m = batch_m
    out = xp.empty((batch, m, n), dtype=np.float32)
    t = _tile_rows(k)
    with np.errstate(over="ignore", invalid="ignore"):
        for bi in range(batch):
            for ma in _spans(m, t):
                a = a_rows(bi, ma)[:, :k]
                for nb in _spans(n, t):
                    out[bi, ma, nb] = xp.matmul(a, b_rows(bi, nb)[:, :k].T)
    return out


def _tile_rows(k: int) -> int:
    """Rows per tile: the largest ``t >= 2`` with ``2 t k + t * t <= TILE_ELEMENTS``."""
    return max(2, math.isqrt(k * k + TILE_ELEMENTS) - k)


def _spans(length: int, t: int) -> list[slice]:
    """Slices of at most ``t + 1`` rows covering ``length`` rows, none of one row unless
    ``length == 1`` (a last row on its own joins the tile before it)."""
    starts = list(range(0, length, t))
    if len(starts) > 1 and length - starts[-1] == 1:
        starts.pop()
    return [slice(a, b) for a, b in zip(starts, starts[1:] + [length])]
