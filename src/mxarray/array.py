"""MXArray: packed block-format bytes, block scales, an optional tensor scale, and the
logical shape they encode."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import layout as blocks
from ._device_arrays import device_name, is_device_array, move, parse_device
from ._random import check_seed
from .backends import get_backend
from .formats import Format, check_rounding, check_scale_mode, get_format

__all__ = ["MXArray", "check_tensor_scale"]


def check_tensor_scale(value: Any) -> np.float32:
    """Return ``value`` as a positive finite float32 tensor scale, else raise.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is not positive and finite as a float32.

    Examples
    --------
    >>> from mxarray.array import check_tensor_scale
    >>> check_tensor_scale(0.5)
    np.float32(0.5)
    """
    if isinstance(value, (bool, np.bool_, np.complexfloating)) or not isinstance(
            value, (int, float, np.number)):
        raise TypeError(f"tensor_scale must be a real number, not {type(value).__name__}")
    try:
        with np.errstate(over="ignore"):
            scale = np.float32(value)
    except OverflowError:  # a Python int beyond float64's range
        raise ValueError(f"tensor_scale must be positive and finite in float32, got {value!r}"
                         ) from None
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"tensor_scale must be positive and finite in float32, got {value!r}")
    return scale


def _read_only(a: Any) -> Any:
    """Freeze host storage; device (CuPy) storage has no read-only flag and is kept as is."""
    if type(a) is not np.ndarray and is_device_array(a):
        return a
    a = np.ascontiguousarray(a)
    if a.flags.writeable:
        a.flags.writeable = False
    return a


class MXArray:
    """An array in an MX block format: real packed bytes plus one scale byte per block.

    Create one with :func:`mxarray.quantize` or :meth:`MXArray.from_parts`.  The element
    codes are stored packed (``packed``), in the canonical layout: the block axis
    innermost and zero-padded to a multiple of the block size.  ``scales`` holds one E8M0
    byte per block.  Both arrays are read-only.  Storage lives on the host (NumPy) or,
    when quantized with the CuPy backend or moved with :meth:`to_device`, on a GPU.

    This module holds the storage record only.  Importing :mod:`mxarray` installs the rest
    from higher layers (:mod:`mxarray._namespace._mx_methods`): ``dequantize``,
    indexing and assignment (block-wise, :mod:`mxarray.blockwise`), the operators, the
    array API attributes (``dtype``, ``device``, ``T``, ``mT``,
    ``__array_namespace__``) and NumPy-style methods.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> a = mxarray.quantize(np.linspace(-1, 1, 64, dtype=np.float32), "mxfp4_e2m1")
    >>> a
    MXArray(shape=(64,), format=mxfp4_e2m1, block_axis=0, nbytes=34, rounding='even', scale_mode='floor')
    >>> a.packed.shape, a.scales.shape
    ((32,), (2,))
    """

    __slots__ = ("_packed", "_scales", "_format", "_shape", "_axis", "_rounding", "_scale_mode",
                 "_seed", "_tensor_scale")

    def __init__(self) -> None:
        raise TypeError(
            "create an MXArray with mxarray.quantize(...) or MXArray.from_parts(...)"
        )

    @classmethod
    def _wrap(
        cls,
        packed: np.ndarray,
        scales: np.ndarray,
        fmt: Format,
        shape: tuple[int, ...],
        axis: int,
        rounding: str | None,
        scale_mode: str | None,
        seed: int | None,
        tensor_scale: np.float32 | None = None,
    ) -> MXArray:
        """Build from already-validated canonical storage (``scales`` in lead + (nb,)).

        ``tensor_scale`` is required exactly for formats with a per-tensor scale.
        """
        if (tensor_scale is None) != (fmt.tensor_scale == "none"):
            raise ValueError(
                f"{fmt.name} {'needs' if tensor_scale is None else 'has no'} a tensor scale"
            )
        self = object.__new__(cls)
        self._packed = _read_only(packed)
        self._scales = _read_only(scales)
        self._format = fmt
        self._shape = shape
        self._axis = axis
        self._rounding = rounding
        self._scale_mode = scale_mode
        self._seed = seed
        self._tensor_scale = None if tensor_scale is None else np.float32(tensor_scale)
        return self

    @classmethod
    def from_parts(
        cls,
        data: Any,
        scales: Any,
        fmt: str | Format,
        shape: tuple[int, ...],
        *,
        axis: int = -1,
        layout: str | None = None,
        rounding: str | None = None,
        scale_mode: str | None = None,
        seed: int | None = None,
        tensor_scale: float | None = None,
    ) -> MXArray:
        """Wrap element bytes and scale bytes that came from elsewhere, validating both.

        Parameters
        ----------
        data : array_like of uint8 (or uint16)
            Either the packed bytes (uint8), shaped like :attr:`packed` (block axis
            innermost, padded, packed), or one unpacked code per element in the logical
            ``shape`` (like :meth:`codes`; ``fmt.code_dtype``, uint16 for MX9).
        scales : array_like of uint8
            Scale bytes (E8M0, or UE4M3 for NVFP4) shaped like ``shape`` with the block
            axis replaced by its block count.
        fmt : str or Format
            The element format.
        shape : tuple of int
            The logical shape.
        axis : int, optional
            The block axis (default the last).
        layout : {"packed", "codes"}, optional
            How to read ``data``.  Inferred from its shape when unambiguous.
        rounding, scale_mode : str, optional
            Recorded metadata: how the data were produced, if known.
        seed : int, optional
            Recorded metadata: the stochastic-rounding seed that produced the data, an
            integer in ``[0, 2**64)``; only with ``rounding="stochastic"``.
        tensor_scale : float, optional
            The per-tensor scale, required for formats that have one (NVFP4).

        Raises
        ------
        TypeError
            If ``data`` or ``scales`` has the wrong dtype.
        ValueError
            If a shape does not match, a code or scale byte is out of range for the
            format, the elements of one sub-block disagree on their microexponent, the
            padding holds non-zero codes, ``layout`` cannot be inferred, or
            ``tensor_scale`` is missing, bad or not expected.

        Examples
        --------
        >>> import numpy as np, mxarray
        >>> codes = np.array([2, 3, 4, 5], dtype=np.uint8)       # 1.0, 1.5, 2.0, 3.0
        >>> scales = np.array([127], dtype=np.uint8)             # 2**0
        >>> a = mxarray.MXArray.from_parts(codes, scales, "mxfp4_e2m1", (4,))
        >>> a.dequantize()
        array([1. , 1.5, 2. , 3. ], dtype=float32)
        """
        fmt = get_format(fmt)
        shape = _check_shape(shape)
        ax = blocks.normalize_axis(axis, len(shape))
        if shape[ax] == 0:
            raise ValueError(f"the block axis ({ax}) of shape {shape} must not be empty")
        if rounding is not None:
            check_rounding(rounding)
        if scale_mode is not None:
            check_scale_mode(scale_mode)
        if seed is not None:
            seed = check_seed(seed)
            if rounding != "stochastic":
                raise ValueError("a seed is recorded only with rounding='stochastic'")
        if fmt.tensor_scale == "none" and tensor_scale is not None:
            raise ValueError(f"{fmt.name} has no per-tensor scale; drop tensor_scale")
        if fmt.tensor_scale != "none":
            if tensor_scale is None:
                raise ValueError(f"{fmt.name} needs its per-tensor scale: pass tensor_scale=")
            tensor_scale = check_tensor_scale(tensor_scale)
        backend = get_backend("numpy")
        data = _as_uint8(data, "data", fmt.code_dtype)
        scales = _as_uint8(scales, "scales")

        want_packed = blocks.packed_shape(shape, ax, fmt)
        fits_packed = data.shape == want_packed
        fits_codes = data.shape == shape
        if layout not in (None, "packed", "codes"):
            raise ValueError(f"layout must be 'packed', 'codes' or None, got {layout!r}")
        if layout is None:
            if fits_packed and fits_codes and ax != len(shape) - 1:
                raise ValueError(
                    f"data of shape {data.shape} could be packed bytes or codes; "
                    "pass layout='packed' or layout='codes'"
                )
            layout = "packed" if fits_packed else "codes" if fits_codes else None
        if layout is None:
            raise ValueError(
                f"data has shape {data.shape}; expected packed bytes of shape {want_packed} "
                f"or codes of the logical shape {shape} for {fmt.name} with block axis {ax}"
            )
        length = shape[ax]
        if layout == "packed":
            if not fits_packed or data.dtype != np.uint8:
                raise ValueError(f"packed data must be uint8 of shape {want_packed}, got "
                                 f"{data.dtype} {data.shape}")
            # Only the last block of each row can hold padding: unpack just that block, so
            # the check costs a block per row, not a copy of the whole array.
            tail = length - (blocks.n_blocks(length, fmt.block_size) - 1) * fmt.block_size
            last = backend.unpack(data[..., -fmt.bytes_per_block:], fmt)
            if np.any(last[..., tail:] & (fmt.n_codes - 1)) or np.any(
                _first_of_sub_blocks(last, fmt)[..., -(-tail // max(fmt.sub_block_size, 1)):]
            ):
                raise ValueError("the padding after the last element of a block axis must be zero")
        else:
            if not fits_codes:
                raise ValueError(f"codes must have the logical shape {shape}, got {data.shape}")
            limit = 1 << fmt.code_bits
            bad = data >= limit
            if np.any(bad):
                first = int(data[bad].flat[0])
                hint = ("; these look like one-byte codes of an 8-bit format, or packed "
                        "bytes (pass those with layout='packed')"
                        if data.dtype.itemsize == 1 and fmt.code_bits < 8 else "")
                raise ValueError(
                    f"{int(bad.sum())} of {data.size} code(s) out of range for {fmt.name} "
                    f"({fmt.code_bits}-bit codes must be < {limit}); first: {first}{hint}")
            codes = blocks.to_blocks(data, ax, fmt.block_size)
            padded = blocks.n_blocks(length, fmt.block_size) * fmt.block_size
            codes = codes.reshape(want_packed[:-1] + (padded,))
            _check_sub_blocks(codes, fmt, length)
        want_scales = blocks.scales_shape(shape, ax, fmt.block_size)
        if scales.shape != want_scales:
            raise ValueError(f"scales must have shape {want_scales}, got {scales.shape}")
        if not np.all(fmt.scale.valid(scales)):
            first = int(scales[~fmt.scale.valid(scales)].flat[0])
            raise ValueError(f"scale byte {first:#04x} is not a {fmt.scale.name} code")
        return cls._wrap(
            np.array(data, order="C") if layout == "packed" else backend.pack(codes, fmt),
            np.array(np.moveaxis(scales, ax, -1), order="C"),  # copies: the caller keeps theirs
            fmt,
            shape,
            ax,
            rounding,
            scale_mode,
            seed,
            tensor_scale,
        )

    # -- attributes ------------------------------------------------------------------

    @property
    def format(self) -> Format:
        """The element format (an :class:`mxarray.formats.Format`)."""
        return self._format

    @property
    def shape(self) -> tuple[int, ...]:
        """The logical shape."""
        return self._shape

    @property
    def ndim(self) -> int:
        """Number of logical dimensions."""
        return len(self._shape)

    @property
    def size(self) -> int:
        """Number of logical elements."""
        return int(np.prod(self._shape, dtype=np.int64))

    @property
    def block_axis(self) -> int:
        """The (non-negative) axis along which elements share a scale."""
        return self._axis

    @property
    def packed(self) -> np.ndarray:
        """The stored element bytes: block axis innermost, zero-padded, packed (read-only)."""
        return self._packed

    @property
    def scales(self) -> np.ndarray:
        """Scale bytes (E8M0, or UE4M3 for NVFP4), shaped like the array with the block
        axis replaced by its block count (read-only view)."""
        return self._xp().moveaxis(self._scales, -1, self._axis)

    @property
    def canonical_scales(self) -> Any:
        """Scale bytes in the canonical block layout, matching :attr:`packed` block for
        block: the logical shape without the block axis, then the block count (read-only).
        """
        return self._scales

    @property
    def nbytes(self) -> int:
        """Bytes of storage: packed elements (with microexponents), scales, tensor scale."""
        extra = 0 if self._tensor_scale is None else self._tensor_scale.nbytes
        return int(self._packed.nbytes + self._scales.nbytes + extra)

    @property
    def tensor_scale(self) -> np.float32 | None:
        """The float32 per-tensor scale (NVFP4), or None for formats without one."""
        return self._tensor_scale

    @property
    def rounding(self) -> str | None:
        """The rounding mode the data were quantized with (None if unknown)."""
        return self._rounding

    @property
    def scale_mode(self) -> str | None:
        """The scale mode the data were quantized with (None if unknown)."""
        return self._scale_mode

    @property
    def seed(self) -> int | None:
        """The stochastic-rounding seed (None for deterministic rounding)."""
        return self._seed

    def codes(self) -> Any:
        """Return the unpacked codes, one per element, in the logical shape (on the array's
        device): uint8 element codes, with the sub-block microexponent above the element
        bits for MX9/MX6/MX4 (``format.code_dtype``: uint16 for MX9)."""
        backend = get_backend("cupy" if is_device_array(self._packed) else "numpy")
        rows = backend.unpack(self._packed, self._format).reshape(-1, self._format.block_size)
        return blocks.from_blocks(rows, self._shape, self._axis, backend.xp)

    def _xp(self) -> Any:
        """The array module of the storage (numpy, or cupy for GPU storage)."""
        return get_backend("cupy").xp if is_device_array(self._packed) else np

    def copy(self) -> MXArray:
        """Return an MXArray with its own copy of the storage (same format and metadata)."""
        return MXArray._wrap(self._packed.copy(), self._scales.copy(), self._format,
                             self._shape, self._axis, self._rounding, self._scale_mode,
                             self._seed, self._tensor_scale)

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d MXArray")
        return self._shape[0]

    def to_device(self, device: Any, /, *, stream: Any = None) -> MXArray:
        """Return the array with its storage on ``device``, copying the bytes if needed.

        ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"``, an ``mxarray.Device`` or a
        ``cupy.cuda.Device``.  The packed bytes and scales move unchanged (no requantizing).

        Raises
        ------
        ValueError
            If ``device`` is unknown or ``stream`` is given.
        RuntimeError
            If a GPU is asked for and CuPy is not installed.
        """
        target = parse_device(device)
        if stream is not None:
            raise ValueError("stream is not supported; synchronise before moving arrays")
        if target == device_name(self._packed):
            return self
        return MXArray._wrap(
            move(self._packed, target), move(self._scales, target), self._format,
            self._shape, self._axis, self._rounding, self._scale_mode, self._seed,
            self._tensor_scale,
        )

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The dequantized float32 values (so ``numpy.asarray(a)`` works); always a copy."""
        if copy is False:
            raise ValueError("dequantizing an MXArray always makes a copy")
        if is_device_array(self._packed):
            raise TypeError(
                f"this MXArray lives on {device_name(self._packed)}; implicit conversion to a "
                "NumPy array is not allowed: use .to_device('cpu') first"
            )
        values = self.dequantize(np.float32)
        return values if dtype is None else values.astype(dtype)

    # NumPy's operators defer to MXArray's (installed by the namespace, which refuses
    # NumPy arrays): ``ndarray + MXArray`` calls ``MXArray.__radd__``.
    __array_ufunc__ = None
    __hash__ = None  # type: ignore[assignment] - arrays compare element-wise

    def __bool__(self) -> bool:
        raise TypeError(f"the truth value of an MXArray of shape {self._shape} is ambiguous; "
                        "MX arrays have at least one dimension")

    def __repr__(self) -> str:
        details = [
            f"shape={self._shape}",
            f"format={self._format.name}",
            f"block_axis={self._axis}",
            f"nbytes={self.nbytes}",
            f"rounding={self._rounding!r}",
            f"scale_mode={self._scale_mode!r}",
        ]
        if self._seed is not None:
            details.append(f"seed={self._seed}")
        if self._tensor_scale is not None:
            details.append(f"tensor_scale={float(self._tensor_scale)!r}")
        return f"MXArray({', '.join(details)})"

    # -- writing blocks in place (for mxarray.blockwise) ---------------------------------

    def _write_blocks(self, window: tuple[Any, ...], touched: Any, packed: Any, scales: Any,
                      seed: int | None) -> None:
        """Store new bytes and scales for some canonical blocks, and record ``seed``.

        ``window`` indexes the canonical block grid ``lead + (n_blocks,)``: slices, and
        at most one integer array (for the block axis); ``touched`` is a boolean array of
        the window's shape; ``packed`` holds ``(n, bytes_per_block)`` bytes and ``scales``
        ``(n,)`` scale bytes for the ``n`` touched blocks, in C order.

        The storage is written in place when this array alone references it (no view,
        no other MXArray and no caller holds it: CPython's reference count, the test
        ``numpy.ndarray.resize`` uses).  Otherwise it is copied first, so views and
        earlier results never change; after that copy the array owns its storage and
        later writes are in place.
        """
        target_packed = _private(self._packed)
        target_scales = _private(self._scales)
        try:
            grid = target_packed.reshape(target_packed.shape[:-1] + (
                self._scales.shape[-1], self._format.bytes_per_block))
            rows, block_scales = grid[window], target_scales[window]
            rows[touched], block_scales[touched] = packed, scales
            if any(not isinstance(part, slice) for part in window):  # copies: put back
                grid[window], target_scales[window] = rows, block_scales
        finally:
            self._packed, self._scales = _read_only(target_packed), _read_only(target_scales)
        self._seed = seed


def _private(a: Any) -> Any:
    """``a`` itself, made writeable, if nothing but the MXArray's slot references its
    memory; else a writeable copy.

    A view is private when its owner (``a.base``, a NumPy array) is referenced by ``a``
    alone.  The counts include this function's reference and ``getrefcount``'s own.
    """
    if not is_device_array(a) and sys.getrefcount(a) <= 3:
        owner = a.base
        if owner is None or (type(owner) is np.ndarray and sys.getrefcount(owner) <= 3):
            try:
                a.flags.writeable = True
                return a
            except ValueError:  # memory that cannot be written (a read-only owner)
                pass
    return a.copy()


def _check_shape(shape: object) -> tuple[int, ...]:
    dims = blocks.normalize_shape(shape)
    if not dims:
        raise ValueError("an MXArray needs at least one dimension")
    return dims


def _as_uint8(a: Any, name: str, also: Any = np.uint8) -> np.ndarray:
    """``a`` as a host array of dtype uint8 (or ``also``, e.g. uint16 codes of MX9)."""
    if is_device_array(a):
        raise TypeError(
            f"{name} must be a host array; copy it with .get() and move the result with "
            "MXArray.to_device"
        )
    arr = np.asarray(a)
    if arr.dtype not in (np.dtype(np.uint8), np.dtype(also)):
        raise TypeError(f"{name} must be a {np.dtype(also)} array, got dtype {arr.dtype}")
    return arr


def _first_of_sub_blocks(codes: np.ndarray, fmt: Format) -> np.ndarray:
    """Microexponents of each sub-block (from its first code); empty without sub-blocks."""
    if not fmt.sub_block_size:
        return codes[..., :0]
    return codes[..., :: fmt.sub_block_size] >> fmt.bits


def _check_sub_blocks(codes: np.ndarray, fmt: Format, length: int) -> None:
    """Every element of a sub-block (padding aside) must carry the same microexponent."""
    if not fmt.sub_block_size:
        return
    d = (codes >> fmt.bits).astype(np.int64)
    first = np.repeat(d[..., :: fmt.sub_block_size], fmt.sub_block_size, axis=-1)
    real = np.arange(codes.shape[-1]) < length
    if np.any((d != first) & real):
        raise ValueError(
            f"the elements of each {fmt.sub_block_size}-element sub-block of {fmt.name} must "
            "carry the same microexponent (the bits above the element code)"
        )
