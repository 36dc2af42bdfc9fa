"""quantize, dequantize and matmul: validate input, canonicalise blocks, dispatch.

All shape handling lives here (through :mod:`mxarray.layout`); backends receive
contiguous ``(n_blocks, block_size)`` rows and return rows.  On the host, quantize and
dequantize hand the backend the canonical layout in pieces of at most
:data:`_PIECE_ELEMENTS` elements and write each piece's results into the whole result,
so their memory beyond the input and the result does not grow with the array.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from . import layout as blocks
from ._device_arrays import device_name, is_device_array
from ._random import check_seed, new_seed
from .array import MXArray, check_tensor_scale
from .backends import get_backend, list_backends, named_backend
from .backends.base import (Backend, DequantizeOptions, MatmulOperand, MatmulOptions,
                            QuantizeOptions)
from .formats import Format, check_rounding, check_scale_mode, get_format

__all__ = ["quantize", "dequantize", "matmul", "backend_for", "quantize_options",
           "dequantize_rows"]

_INPUT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
# bfloat16 (ml_dtypes' NumPy dtype, as mxarray.io.load returns it): every value is exact
# in float32, to which each piece is converted before the backend sees it.
_BFLOAT16 = "bfloat16"
_OUTPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _resolve_backend(name: str | None, *arrays: Any) -> Backend:
    """The backend for a call on ``arrays``: GPU data goes to the CuPy backend.

    Host data follows the usual selection (argument, context, global, default).  Data on
    a GPU picks ``"cupy"`` unless ``name`` says otherwise; a host-only backend asked to
    work on GPU data is refused rather than silently copying across the bus.
    """
    on_device = [a for a in arrays if type(a) is not np.ndarray and is_device_array(a)]
    if not on_device:
        return get_backend(name)
    be = get_backend(name if name is not None else "cupy")
    if be.xp is np:
        raise TypeError(
            f"backend {be.name!r} works on host arrays, but the data live on "
            f"{device_name(on_device[0])}; use backend='cupy' or move the data to the host"
        )
    return be


def _explicitly_chosen(name: str | None) -> bool:
    """Whether the user named the backend: the argument, ``use_backend`` or ``set_backend``."""
    return name is not None or named_backend() is not None


def backend_for(fmts: Format | tuple[Format, ...], backend: str | None = None, *arrays: Any
                ) -> Backend:
    """The backend that runs a call on formats ``fmts`` (and data ``arrays``).

    The usual selection (:func:`mxarray.get_backend`, GPU data to CuPy) when its backend
    supports every format (:meth:`~mxarray.backends.base.Backend.supports`).  Only the
    automatic default may be replaced: if the user named no backend and the default
    lacks a format, the highest-priority available backend that has it runs instead
    (with the built-in backends this never happens: Numba and the NumPy reference
    implement every format).  A backend the user named is never replaced.

    Raises
    ------
    NotImplementedError
        If the named backend (argument, ``use_backend`` or ``set_backend``, or CuPy for
        GPU data) has no kernel for one of the formats.

    Examples
    --------
    >>> import mxarray
    >>> from mxarray.core import backend_for
    >>> mx9 = mxarray.get_format("mx9")
    >>> backend_for(mx9).supports(mx9)      # the default, or the best backend with mx9
    True
    """
    fmts = fmts if isinstance(fmts, tuple) else (fmts,)
    be = _resolve_backend(backend, *arrays)
    missing = [f for f in fmts if not be.supports(f)]
    if not missing:
        return be
    on_device = any(is_device_array(a) for a in arrays)
    if not _explicitly_chosen(backend) and not on_device:
        for info in list_backends():  # highest priority first
            if info.available and info.priority >= 0:
                candidate = get_backend(info.name)
                if all(candidate.supports(f) for f in fmts):
                    return candidate
    raise NotImplementedError(
        f"backend {be.name!r} has no kernel for {missing[0].name} yet; "
        "use backend='numpy' (the reference implements every format)"
    )


def _input_dtype(dtype: Any) -> np.dtype:
    """``dtype`` in native byte order, if quantize accepts it (bfloat16, float16, float32,
    float64)."""
    dt = np.dtype(dtype)
    native = dt.newbyteorder("=") if dt.kind == "f" else dt
    if native not in _INPUT_DTYPES and native.name != _BFLOAT16:
        raise TypeError(
            f"x must be a bfloat16, float16, float32 or float64 array, got dtype {dt}")
    return native


def _kernel_input(piece: Any) -> Any:
    """A piece of the input as the backends take it: bfloat16 becomes float32 (exact)."""
    return piece if piece.dtype in _INPUT_DTYPES else piece.astype(np.float32)


def _output_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a NumPy dtype, if dequantize produces it (float32, float64)."""
    if dtype is None:  # numpy.dtype(None) would be float64
        raise TypeError("dtype must be float32 or float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in _OUTPUT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _as_float_array(x: Any, xp: Any) -> Any:
    if isinstance(x, MXArray):
        raise TypeError("x is already an MXArray; dequantize it first to requantize")
    arr = xp.asarray(x)
    dt = _input_dtype(arr.dtype)
    if dt != arr.dtype:  # e.g. big-endian ">f4" from a file
        arr = arr.astype(dt)
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension (got a 0-d array)")
    return arr


def quantize(
    x: Any,
    fmt: str | Format,
    *,
    axis: int = -1,
    rounding: str = "even",
    scale_mode: str = "floor",
    seed: int | None = None,
    backend: str | None = None,
    tensor_scale: float | None = None,
) -> MXArray:
    """Quantize a float array into an MX block format, in blocks along ``axis``.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64 values, at least one dimension.  The length along
        ``axis`` need not be a multiple of the block size: the last block is padded with
        zeros, which never changes its scale.
    fmt : str or Format
        ``"mxfp8_e4m3"``, ``"mxfp8_e5m2"``, ``"mxfp6_e3m2"``, ``"mxfp6_e2m3"``,
        ``"mxfp4_e2m1"``, ``"mxint8"``, ``"mx9"``, ``"mx6"``, ``"mx4"``, ``"nvfp4"``, a
        registered format (:func:`mxarray.formats.register`) or a Format object.
    axis : int, optional
        The block axis (default the last).
    rounding : {"even", "nearest", "toward_zero", "stochastic"}, optional
        How scaled elements are rounded onto the element grid (default ties-to-even).
    scale_mode : {"floor", "ceil", "rceil", "even"}, optional
        How each block's shared exponent (and each sub-block's microexponent) is chosen
        from its largest magnitude.  Formats with UE4M3 scales (NVFP4) round their block
        scales to nearest-even and accept only the default "floor".
    seed : int, optional
        Seed of the counter-based generator for ``rounding="stochastic"``, in
        ``[0, 2**64)``.  If omitted, a fresh seed is drawn and recorded on the result.
    backend : str, optional
        Backend name (see :func:`mxarray.backends`); default per :func:`mxarray.get_backend`,
        or the best backend that supports ``fmt``.
    tensor_scale : float, optional
        For formats with a per-tensor scale (NVFP4): a positive finite float32 to use
        instead of the spec's choice from the tensor's amax (``amax / (6 * 448)``).

    Returns
    -------
    MXArray

    Raises
    ------
    TypeError
        If ``x`` is not float16/32/64, or an argument has the wrong type.
    ValueError
        If ``x`` is 0-d, its block axis is empty, ``axis`` is out of range, the format,
        rounding or scale mode is unknown or not defined for the format, or
        ``tensor_scale`` is bad or given for a format without one.
    NotImplementedError
        If the named backend has no kernel for the format.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> a = mxarray.quantize(np.array([957.0, 1.0, -3.0]), "mxfp8_e4m3")
    >>> a.dequantize()
    array([896.,   1.,  -3.], dtype=float32)
    >>> int(a.scales[0]) - 127                      # the shared exponent X
    1
    """
    return _quantize_with_ids(x, fmt, None, axis=axis, rounding=rounding,
                              scale_mode=scale_mode, seed=seed, backend=backend,
                              tensor_scale=tensor_scale)


def _quantize_with_ids(
    x: Any,
    fmt: str | Format,
    block_ids: Any,
    *,
    axis: int = -1,
    rounding: str = "even",
    scale_mode: str = "floor",
    seed: int | None = None,
    backend: str | None = None,
    tensor_scale: float | None = None,
) -> MXArray:
    """:func:`quantize` for a piece of a larger array (used by ``mxarray.dask``).

    ``block_ids`` is None (``x`` is the whole array) or integers, one per block of ``x``
    in its canonical layout (``lead + (n_blocks,)``, C order): each block's number in the
    canonical layout of the larger array.  With stochastic rounding the blocks then draw
    the random bits the whole array's quantization gives them; other roundings ignore it.
    """
    options = quantize_options(fmt, rounding=rounding, scale_mode=scale_mode, seed=seed,
                               tensor_scale=tensor_scale)
    fmt = options.fmt
    be = backend_for(fmt, backend, x)
    arr = _as_float_array(x, be.xp)
    ax = blocks.normalize_axis(axis, arr.ndim)
    if arr.shape[ax] == 0:
        raise ValueError(f"the block axis ({ax}) of x with shape {arr.shape} is empty")
    moved = arr if ax == arr.ndim - 1 else be.xp.moveaxis(arr, ax, -1)  # canonical order
    lead, per_row = moved.shape[:-1], blocks.n_blocks(arr.shape[ax], fmt.block_size)
    n_total = math.prod(lead) * per_row
    stochastic = options.rounding == "stochastic"
    ids = _check_block_ids(block_ids, n_total, be.xp) if block_ids is not None and stochastic \
        else None
    if fmt.tensor_scale != "none" and options.tensor_scale is None:
        options = dataclasses.replace(
            options, tensor_scale=fmt.tensor_scale_for(_finite_amax(arr, be)))
    packed = scales = None
    if ax == arr.ndim - 1 and 0 < n_total * fmt.block_size <= _budget(be):
        # The usual case, the block axis last and the whole array in one piece: no view
        # to cut out, and the backend's arrays are kept.
        if ids is not None:
            options = options.with_block_ids(ids)
        rows = blocks.to_blocks(_kernel_input(be.gather(arr)), -1, fmt.block_size, be.xp)
        packed, scales = be.quantize(rows, options)
    pieces = () if packed is not None else blocks.pieces(moved.shape, fmt.block_size,
                                                             _budget(be))
    for index, first, count in pieces:
        rows = blocks.to_blocks(_kernel_input(be.gather(moved[index])), -1, fmt.block_size,
                                be.xp)
        if stochastic and (ids is not None or count < n_total):
            options = options.with_block_ids(
                ids[first:first + count] if ids is not None else
                be.xp.arange(first, first + count, dtype=np.uint64))
        if count == n_total:  # the whole array in one piece: keep the backend's arrays
            packed, scales = be.quantize(rows, options)
            break
        if packed is None:
            packed = be.xp.empty((n_total, fmt.bytes_per_block), dtype=np.uint8)
            scales = be.xp.empty(n_total, dtype=np.uint8)
        run = slice(first, first + count)
        be.quantize(rows, options, out=(packed[run], scales[run]))
        del rows  # before the next piece's copy exists
    if packed is None:  # no blocks at all (an empty dimension besides the block axis)
        packed = be.xp.empty((0, fmt.bytes_per_block), dtype=np.uint8)
        scales = be.xp.empty(0, dtype=np.uint8)
    return MXArray._wrap(
        packed.reshape(lead + (per_row * fmt.bytes_per_block,)), scales.reshape(lead + (per_row,)),
        fmt, arr.shape, ax, options.rounding, options.scale_mode, options.seed,
        options.tensor_scale,
    )


def quantize_options(
    fmt: str | Format,
    *,
    rounding: str = "even",
    scale_mode: str = "floor",
    seed: int | None = None,
    tensor_scale: float | None = None,
) -> QuantizeOptions:
    """Check quantize's options once and return them as a :class:`QuantizeOptions` record.

    A stochastic rounding without a seed draws a fresh one; other roundings drop the
    seed.  The tensor scale of a format that has one stays None when not given (the
    core then takes it from the data's amax).

    Raises
    ------
    TypeError, ValueError
        As :func:`quantize` for the same arguments.

    Examples
    --------
    >>> from mxarray.core import quantize_options
    >>> o = quantize_options("mxfp4_e2m1", rounding="stochastic", seed=7)
    >>> o.fmt.name, o.rounding, o.seed
    ('mxfp4_e2m1', 'stochastic', 7)
    """
    fmt = get_format(fmt)
    common = seed is None and tensor_scale is None and type(rounding) is str \
        and type(scale_mode) is str
    key = (fmt, rounding, scale_mode)
    if common:
        cached = _OPTIONS.get(key)
        if cached is not None:
            return cached
    check_rounding(rounding)
    check_scale_mode(scale_mode)
    if seed is not None:
        seed = check_seed(seed)
    if rounding == "stochastic" and seed is None:
        seed = new_seed()
    if rounding != "stochastic":
        seed = None
    _check_scale_kind(fmt, rounding, scale_mode)
    if tensor_scale is not None:
        if fmt.tensor_scale == "none":
            raise ValueError(f"{fmt.name} has no per-tensor scale; drop tensor_scale")
        tensor_scale = check_tensor_scale(tensor_scale)
    options = QuantizeOptions(fmt, rounding, scale_mode, seed, tensor_scale)
    if common and rounding != "stochastic":  # checked: the same record serves every call
        _OPTIONS[key] = options
    return options


# Checked options of calls without a seed or tensor scale, by (format, rounding, scale
# mode); at most formats x roundings x scale modes records (options are immutable).
_OPTIONS: dict[tuple[Format, str, str], QuantizeOptions] = {}


# Quantize and dequantize on the host walk the canonical layout in pieces of at most this
# many elements, so their memory beyond the input and the result is bounded by a constant
# (a few times this, in the backend's temporaries) whatever the array's size.  Tests
# lower it to force many pieces.  Data on a GPU go in one piece: launches want big work.
_PIECE_ELEMENTS = 1 << 22


def _budget(be: Backend) -> int:
    """Elements per piece for backend ``be``; unbounded on a GPU."""
    if be.xp is not np:
        return 1 << 62
    return _PIECE_ELEMENTS


def _check_block_ids(block_ids: Any, n: int, xp: Any) -> Any:
    """``block_ids`` as a C-contiguous uint64 ``(n,)`` array of module ``xp``."""
    ids = np.asarray(block_ids)
    if ids.dtype.kind not in "iu" or ids.size != n:
        raise ValueError(f"block_ids must hold {n} integers, one per block, "
                         f"got {ids.size} of dtype {ids.dtype}")
    if ids.dtype.kind == "i" and ids.size and ids.min() < 0:
        raise ValueError("block_ids must not be negative")
    return xp.ascontiguousarray(xp.asarray(ids.reshape(-1).astype(np.uint64)))


def _check_scale_kind(fmt: Format, rounding: str, scale_mode: str) -> None:
    """Scale modes and stochastic rounding are defined for power-of-two scales only."""
    if fmt.scale.kind != "ue4m3":
        return
    if scale_mode != "floor":
        raise ValueError(
            f"scale_mode {scale_mode!r} does not apply to {fmt.name}: its UE4M3 block scales "
            "are always rounded to nearest-even; leave scale_mode at 'floor'"
        )
    if rounding == "stochastic":
        raise ValueError(
            f"stochastic rounding is not defined for {fmt.name} (its scales are not powers "
            "of two); use 'even', 'nearest' or 'toward_zero'"
        )


_MAGNITUDE_BITS = {  # float dtype -> (unsigned view, mask of the magnitude, first non-finite)
    np.dtype(np.float16): (np.uint16, 0x7FFF, 0x7C00),
    np.dtype(np.float32): (np.uint32, 0x7FFF_FFFF, 0x7F80_0000),
    np.dtype(np.float64): (np.uint64, 0x7FFF_FFFF_FFFF_FFFF, 0x7FF0_0000_0000_0000),
}


_BFLOAT16_BITS = (np.uint16, 0x7FFF, 0x7F80)  # the only other input dtype


def _finite_amax(arr: Any, be: Backend) -> float:
    """Largest finite magnitude of ``arr`` (0.0 if none, an empty array included).

    Found among the bit patterns (sign cleared, IEEE magnitudes order like unsigned
    integers), so no floating-point operation touches the data: a GPU that flushes
    subnormals to zero in its float arithmetic still finds a subnormal maximum.  Reads
    ``arr`` in pieces of at most :data:`_PIECE_ELEMENTS` on the host, so its
    temporaries stay within a piece; each piece goes to the backend's
    :meth:`~mxarray.backends.base.Backend.finite_magnitude_max`.
    """
    xp = be.xp
    uint, mask, nonfinite = _MAGNITUDE_BITS.get(arr.dtype, _BFLOAT16_BITS)
    top = 0
    budget = _budget(be)
    # One piece (the whole array) when it fits the budget: no pieces to cut.
    for index, _, _ in (blocks.pieces(arr.shape, 1, budget) if arr.size > budget
                        else [((), 0, arr.size)] if arr.size else []):
        bits = xp.ascontiguousarray(arr[index]).view(uint)
        top = max(top, be.finite_magnitude_max(bits, mask, nonfinite))
    return float(np.array(top, dtype=uint).view(arr.dtype))


def _check_mx(a: object, name: str) -> MXArray:
    if not isinstance(a, MXArray):
        raise TypeError(
            f"{name} must be an MXArray, not {type(a).__name__}; create one with mxarray.quantize"
        )
    return a


def dequantize(
    a: MXArray, dtype: Any = np.float32, *, out: Any = None, backend: str | None = None
) -> Any:
    """Return the values of an MXArray as a dense array of the backend's kind.

    Each element is ``decode(code) * 2**(scale - 127)``, computed exactly; blocks whose
    scale byte is 0xFF (NaN) give NaN.  Values beyond float32's range (possible only for
    float64 inputs or the ``ceil``/``even`` scale modes at the very top of the range)
    become +-inf in float32; use ``dtype=numpy.float64`` to keep them.

    Parameters
    ----------
    a : MXArray
    dtype : {numpy.float32, numpy.float64}, optional
        Ignored when ``out`` is given: its dtype is used.
    out : ndarray, optional
        A writeable array of ``a.shape`` and dtype float32 or float64, of the backend's
        kind, to fill (and return).  Reusing one saves the allocation: with the block
        axis last, a length that is a multiple of the block size and a C-contiguous
        ``out``, backends with a fused path write straight into it.
    backend : str, optional

    Returns
    -------
    ndarray
        Of ``a.shape`` and ``dtype`` (``out`` itself when given).

    Raises
    ------
    TypeError
        If ``a`` is not an MXArray, or ``dtype``/``out`` has an unsupported dtype.
    ValueError
        If ``out`` has the wrong shape or is read-only.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> a = mxarray.quantize(np.array([0.3, -1.7, 5.0, 100.0]), "mxfp4_e2m1")
    >>> int(a.scales[0]) - 127           # amax 100 -> X = floor(log2(100)) - 2 = 4
    4
    >>> mxarray.dequantize(a)            # steps of 2**4 * 0.5 near zero; 100/16 -> 6
    array([ 0., -0.,  8., 96.], dtype=float32)
    """
    _check_mx(a, "a")
    be = backend_for(a.format, backend, a.packed, out)
    if out is not None:
        dtype = _check_out(out, a.shape, be)
    dt = _output_dtype(dtype)
    fmt, xp = a.format, be.xp
    options = _dequantize_options(fmt, dt, a.tensor_scale)
    scales = xp.asarray(a.canonical_scales).reshape(-1)
    packed = xp.asarray(a.packed).reshape(scales.shape[0], fmt.bytes_per_block)
    ax, n_total = a.block_axis, scales.shape[0]
    # With the block axis last, whole blocks and C order, the result's rows are exactly
    # the blocks: the backend writes straight into them.
    direct = (ax == a.ndim - 1 and a.shape[-1] % fmt.block_size == 0
              and (out is None or out.flags.c_contiguous))
    if direct and 0 < n_total * fmt.block_size <= _budget(be):  # the usual case: one piece
        result = xp.empty(a.shape, dtype=dt) if out is None else out
        be.dequantize(packed, scales, options, out=result.reshape(-1, fmt.block_size))
        return result
    result = out
    canonical = blocks.lead_shape(a.shape, ax) + (a.shape[ax],)
    for index, first, count in blocks.pieces(canonical, fmt.block_size, _budget(be)):
        run = slice(first, first + count)
        # The values become the result only for one piece with the block axis last (a
        # slice drops the padding); moving the block axis back goes through the backend's
        # scatter (a tiled transpose on Numba) into a new array.
        if result is None and (direct or count < n_total or ax != a.ndim - 1):
            result = xp.empty(a.shape, dtype=dt)
        if direct:
            be.dequantize(packed[run], scales[run], options,
                          out=result.reshape(-1, fmt.block_size)[run])
            continue
        values = be.dequantize(packed[run], scales[run], options)
        if result is None:  # one piece, block axis last: its values become the result
            return blocks.from_blocks(values, a.shape, ax, xp)
        target = xp.moveaxis(result, ax, -1)[index]
        be.scatter(values.reshape(target.shape[:-1] + (-1,))[..., : target.shape[-1]], target)
        del values  # before the next piece's values exist
    return result if result is not None else xp.empty(a.shape, dtype=dt)


def _dequantize_options(fmt: Format, dtype: np.dtype, tensor_scale: np.float32 | None,
                        calling_thread: bool = False) -> DequantizeOptions:
    """The options record of a dequantize; one per format, dtype and thread choice
    without a tensor scale (records are immutable)."""
    if tensor_scale is not None:
        return DequantizeOptions(fmt, dtype, tensor_scale, calling_thread)
    key = (fmt, dtype, calling_thread)
    options = _DEQUANTIZE_OPTIONS.get(key)
    if options is None:
        options = _DEQUANTIZE_OPTIONS.setdefault(
            key, DequantizeOptions(fmt, dtype, None, calling_thread))
    return options


_DEQUANTIZE_OPTIONS: dict[tuple[Format, np.dtype, bool], DequantizeOptions] = {}


def dequantize_rows(a: MXArray, first: int, count: int, dtype: Any = np.float32, *,
                    backend: str | None = None, calling_thread: bool = False) -> Any:
    """Values of the canonical blocks ``first .. first + count - 1`` of ``a``, decoded alone.

    Blocks are numbered in ``a``'s canonical layout (block axis last, C order), as its
    ``scales`` flattened.  Returns a ``(count, block_size)`` array of ``dtype``; padding
    elements of a last partial block decode to zero.  Only those blocks are read, so the
    cost does not depend on the size of ``a``.  ``calling_thread``: decode on the
    calling thread alone (:class:`~mxarray.backends.base.DequantizeOptions`), for callers
    that alternate decodes with BLAS GEMMs.

    Raises
    ------
    TypeError
        If ``a`` is not an MXArray or ``dtype`` is not float32/float64.
    ValueError
        If the range of blocks is not inside ``a``.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> from mxarray.core import dequantize_rows
    >>> a = mxarray.quantize(np.arange(64.0).reshape(2, 32), "mxint8")
    >>> dequantize_rows(a, 1, 1)[0, :3]
    array([32., 33., 34.], dtype=float32)
    """
    _check_mx(a, "a")
    dt = _output_dtype(dtype)
    n_total = math.prod(a.canonical_scales.shape)
    if not (0 <= first and 0 <= count and first + count <= n_total):
        raise ValueError(f"blocks {first} .. {first + count - 1} are not inside the {n_total} "
                         "blocks of a")
    be = backend_for(a.format, backend, a.packed)
    xp, fmt = be.xp, a.format
    scales = xp.asarray(a.canonical_scales).reshape(-1)[first:first + count]
    packed = xp.asarray(a.packed).reshape(n_total, fmt.bytes_per_block)[first:first + count]
    return be.dequantize(xp.ascontiguousarray(packed), xp.ascontiguousarray(scales),
                         _dequantize_options(fmt, dt, a.tensor_scale, calling_thread))


def _merges_without_copy(arr: Any, k: int) -> bool:
    """Whether the first ``k`` dimensions of ``arr`` merge into one without a copy."""
    dims = [(size, stride) for size, stride in zip(arr.shape[:k], arr.strides[:k]) if size != 1]
    return all(outer == inner * size for (_, outer), (size, inner) in zip(dims, dims[1:]))


def _check_out(out: Any, shape: tuple[int, ...], be: Any) -> Any:
    """Validate a dequantize ``out`` array for backend ``be``; return its dtype."""
    if not isinstance(out, be.xp.ndarray):
        raise TypeError(
            f"out must be a {be.xp.__name__}.ndarray for backend {be.name!r}, "
            f"not {type(out).__module__}.{type(out).__name__}"
        )
    if out.dtype not in _OUTPUT_DTYPES:
        raise TypeError(f"out must have dtype float32 or float64, got {out.dtype}")
    if tuple(out.shape) != shape:
        raise ValueError(f"out must have shape {shape}, got {tuple(out.shape)}")
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError("out must be writeable")
    return out.dtype


def matmul(a: MXArray, b: MXArray, *, backend: str | None = None, path: str | None = None
           ) -> Any:
    """MX matrix product with a float32 result, per the spec's dot-product rule.

    ``C = sum over blocks k of 2**(XA_k + XB_k) * sum_i PA_i * PB_i`` for the OCP
    formats; in general ``C = sum_k A_k B_k`` over the exact dequantized values
    (microexponents, UE4M3 block scales and tensor scales included).  ``a`` must be
    blocked along its last axis and ``b`` along its second-to-last (its first, if 1-D).
    Batch dimensions broadcast as in :func:`numpy.matmul`; 1-D operands are treated as
    a row (``a``) or a column (``b``) vector and that dimension is dropped.  The formats
    of ``a`` and ``b`` may differ.

    ``path`` names one of the backend's matmul paths (``get_backend().matmul_paths``;
    default its first); the bound each path guarantees is in spec/mx.toml.

    Raises
    ------
    TypeError
        If an operand is not an MXArray.
    ValueError
        If an operand is blocked along the wrong axis, the contracted lengths differ, or
        the backend has no matmul path ``path``.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> a = mxarray.quantize(np.ones((2, 64)), "mxfp8_e4m3")
    >>> b = mxarray.quantize(np.full((64, 3), 0.5), "mxfp8_e4m3", axis=0)
    >>> mxarray.core.matmul(a, b)
    array([[32., 32., 32.],
           [32., 32., 32.]], dtype=float32)
    """
    _check_mx(a, "a")
    _check_mx(b, "b")
    if a.block_axis != a.ndim - 1:
        raise ValueError(
            f"a must be blocked along its last axis, but its block axis is {a.block_axis}; "
            "quantize it with axis=-1"
        )
    b_contracted = max(b.ndim - 2, 0)
    if b.block_axis != b_contracted:
        raise ValueError(
            f"b must be blocked along axis {b_contracted} (its second-to-last), but its block "
            f"axis is {b.block_axis}; quantize it with axis={-min(b.ndim, 2)}"
        )
    if device_name(a.packed) != device_name(b.packed):
        raise ValueError(
            f"a lives on {device_name(a.packed)} and b on {device_name(b.packed)}; move one "
            "with MXArray.to_device"
        )
    k = a.shape[-1]
    if b.shape[b_contracted] != k:
        raise ValueError(
            f"matmul: a has {k} columns but b has {b.shape[b_contracted]} rows "
            f"(shapes {a.shape} and {b.shape})"
        )
    be = backend_for((a.format, b.format), backend, a.packed, b.packed)
    if path is not None and path not in be.matmul_paths:
        raise ValueError(f"backend {be.name!r} has no matmul path {path!r}; its paths: "
                         f"{', '.join(be.matmul_paths)}")
    options = MatmulOptions(path)
    xp = be.xp
    a_rows, b_rows = xp.asarray(a.packed), xp.asarray(b.packed)
    a_scales, b_scales = xp.asarray(a.canonical_scales), xp.asarray(b.canonical_scales)
    if a.ndim == 1:
        a_rows, a_scales = a_rows[None], a_scales[None]
    if b.ndim == 1:
        b_rows, b_scales = b_rows[None], b_scales[None]
    try:
        batch = np.broadcast_shapes(a_rows.shape[:-2], b_rows.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: the batch dimensions of a {a.shape} and b {b.shape} do "
                         "not broadcast") from None
    m, n = a_rows.shape[-2], b_rows.shape[-2]

    n_batch = int(np.prod(batch, dtype=np.int64))

    def spread(rows: Any, scales: Any) -> tuple[Any, Any]:  # views of the batch shape
        return (xp.broadcast_to(rows, batch + rows.shape[-2:]),
                xp.broadcast_to(scales, batch + scales.shape[-2:]))

    def flat(arr: Any) -> Any:  # the batch dimensions merged into one
        return arr.reshape((n_batch,) + arr.shape[len(batch):])

    def operands(ar: Any, asc: Any, br: Any, bsc: Any) -> tuple[MatmulOperand, MatmulOperand]:
        return (MatmulOperand(ar, asc, a.format, a.tensor_scale),
                MatmulOperand(br, bsc, b.format, b.tensor_scale))

    if n_batch == 0 or m == 0 or n == 0:  # nothing to compute: an empty float32 result
        out = xp.zeros(batch + (m, n), dtype=np.float32)
    else:
        (ar, asc), (br, bsc) = spread(a_rows, a_scales), spread(b_rows, b_scales)
        if xp is np and not all(_merges_without_copy(v, len(batch)) for v in (ar, asc, br, bsc)):
            # An operand broadcast along some batch dimensions but not others: merging
            # them would copy it once per batch item, so each outer index runs alone.
            out = np.empty(batch + (m, n), dtype=np.float32)
            for i in np.ndindex(batch[:-1]):
                out[i] = be.matmul(*operands(ar[i], asc[i], br[i], bsc[i]), options)
        else:
            out = be.matmul(*operands(flat(ar), flat(asc), flat(br), flat(bsc)), options)

    out = out.reshape(batch + (m, n))
    if b.ndim == 1:
        out = out[..., 0]
    if a.ndim == 1:
        out = out[..., 0, :] if b.ndim > 1 else out[..., 0]
    return out
