"""Quantize and dequantize Dask arrays chunk by chunk (the ``dask`` extra).

Each chunk is quantized with :func:`mxarray.quantize` on its own.  Because every block
has its own scale, and chunks along the block axis hold whole blocks, the bytes equal
those of quantizing the whole array in memory.  Stochastic rounding keys its random
bits by each element's index in the canonical layout of the whole array, so each chunk
is told the global numbers of its blocks and, with one seed for the whole array, draws
exactly the bits the in-memory quantization would.  The result, :class:`DaskMXArray`,
holds two lazy uint8 Dask arrays in the canonical layout (block axis innermost):
``packed`` (``lead + (packed bytes,)``) and ``canonical_scales`` (``lead + (n_blocks,)``),
where ``lead`` is the logical shape without the block axis; ``scales`` views the latter in
the logical layout, as :attr:`mxarray.MXArray.scales` does.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import numpy as np

from . import layout as blocks
from ._random import check_seed, new_seed
from .array import MXArray
from .core import _input_dtype, _output_dtype, _quantize_with_ids, backend_for
from .core import dequantize as _dequantize
from .formats import Format, check_rounding, check_scale_mode, get_format

try:
    import dask
    import dask.array as da
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "mxarray.dask needs dask[array]: pip install 'mxarray[dask]'"
    ) from err

__all__ = ["DaskMXArray", "quantize", "dequantize", "store", "quantize_npy"]


@dataclasses.dataclass(frozen=True, eq=False)
class DaskMXArray:
    """A lazily quantized array: packed bytes and scales as two Dask arrays.

    Attributes
    ----------
    packed : dask.array.Array
        uint8, ``lead + (n_blocks * bytes_per_block,)``: the block axis innermost,
        padded and packed exactly as :attr:`mxarray.MXArray.packed`.
    canonical_scales : dask.array.Array
        uint8 scale bytes in the canonical block layout, ``lead + (n_blocks,)`` (the block
        axis innermost), as :attr:`mxarray.MXArray.canonical_scales`; :attr:`scales` is
        the same bytes in the logical layout, as :attr:`mxarray.MXArray.scales`.
    format : Format
    shape : tuple of int
        The logical shape.
    block_axis : int
        The block axis of the logical shape (non-negative).
    rounding, scale_mode : str or None
        How the data were quantized, if known.
    seed : int or None
        The stochastic-rounding seed, if any (recorded on :meth:`compute`'s result).
    """

    packed: Any
    canonical_scales: Any
    format: Format
    shape: tuple[int, ...]
    block_axis: int
    rounding: str | None = None
    scale_mode: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        fmt = get_format(self.format)
        if fmt.tensor_scale != "none":
            raise ValueError(_TENSOR_SCALE_REFUSAL.format(fmt.name))
        if self.seed is not None:
            object.__setattr__(self, "seed", check_seed(self.seed))
        object.__setattr__(self, "format", fmt)
        shape = blocks.normalize_shape(self.shape)
        object.__setattr__(self, "shape", shape)
        ax = blocks.normalize_axis(self.block_axis, len(shape), "block_axis")
        object.__setattr__(self, "block_axis", ax)
        for name, want in [("packed", blocks.packed_shape(shape, ax, fmt)),
                           ("canonical_scales", blocks.lead_shape(shape, ax)
                            + (blocks.n_blocks(shape[ax], fmt.block_size),))]:
            arr = getattr(self, name)
            if not isinstance(arr, da.Array):
                raise TypeError(f"{name} must be a dask array, not {type(arr).__name__}")
            if arr.dtype != np.uint8 or tuple(arr.shape) != want:
                raise ValueError(f"{name} must be uint8 of shape {want} for {fmt.name} with "
                                 f"logical shape {shape} and block axis {ax}, got "
                                 f"{arr.dtype} {tuple(arr.shape)}")

    @property
    def ndim(self) -> int:
        """Number of logical dimensions."""
        return len(self.shape)

    @property
    def scales(self) -> Any:
        """The scale bytes shaped like the array with the block axis replaced by its block
        count (a lazy view of :attr:`canonical_scales`), as :attr:`mxarray.MXArray.scales`."""
        return da.moveaxis(self.canonical_scales, -1, self.block_axis)

    def compute(self, **kwargs: Any) -> MXArray:
        """Compute both parts (in one pass over the graph) into an in-memory MXArray.

        Keyword arguments go to :func:`dask.compute` (``scheduler=...``).
        """
        packed, scales = dask.compute(self.packed, self.canonical_scales, **kwargs)
        return MXArray.from_parts(
            packed, np.moveaxis(scales, -1, self.block_axis), self.format, self.shape,
            axis=self.block_axis, layout="packed", rounding=self.rounding,
            scale_mode=self.scale_mode, seed=self.seed,
        )

    def dequantize(self, dtype: Any = np.float32) -> Any:
        """Lazily dequantize; see :func:`mxarray.dask.dequantize`."""
        return dequantize(self, dtype)


def _align_chunks(chunks: tuple[int, ...], block_size: int) -> tuple[int, ...]:
    """``chunks`` without its empty chunks (an empty chunk has no block to quantize) if
    every chunk but the last holds whole blocks; else chunks of whole blocks, each about
    as long as the largest of ``chunks``."""
    chunks = tuple(c for c in chunks if c) or chunks
    if all(c % block_size == 0 for c in chunks[:-1]):
        return chunks
    length = sum(chunks)
    step = max(block_size, max(chunks) // block_size * block_size)
    return tuple(min(step, length - start) for start in range(0, length, step))


_TENSOR_SCALE_REFUSAL = (
    "mxarray.dask does not support {} yet: its per-tensor scale depends on the whole "
    "array's amax, which a chunk cannot know; quantize it in memory with mxarray.quantize"
)


def _global_block_ids(location: list[tuple[int, int]], shape: tuple[int, ...],
                      block_size: int) -> np.ndarray:
    """Numbers, in the canonical layout of an array of ``shape`` (block axis last), of the
    blocks of the chunk at ``location`` ((start, stop) per axis; it holds whole blocks)."""
    *lead, (start, stop) = location
    first = start // block_size
    ranges = [np.arange(lo, hi) for lo, hi in lead]
    ranges.append(np.arange(first, first + blocks.n_blocks(stop - start, block_size)))
    dims = tuple(shape[:-1]) + (blocks.n_blocks(shape[-1], block_size),)
    return np.ravel_multi_index(np.ix_(*ranges), dims).astype(np.uint64).reshape(-1)


def _quantize_chunk(chunk: np.ndarray, block_info: Any = None, *, fmt: Format, rounding: str,
                    **kwargs: Any) -> np.ndarray:
    """Quantize one chunk (block axis last); return packed bytes and scales side by side.

    Dask passes ``block_info``: where the chunk lies in the whole array, which gives
    its blocks' global numbers for stochastic rounding.
    """
    ids = None
    if rounding == "stochastic":
        where = block_info[0]
        ids = _global_block_ids(where["array-location"], where["shape"], fmt.block_size)
    q = _quantize_with_ids(chunk, fmt, ids, axis=-1, rounding=rounding, **kwargs)
    return np.concatenate([q.packed, q.canonical_scales], axis=-1)


def _packed_part(both: np.ndarray, bytes_per_block: int) -> np.ndarray:
    n = both.shape[-1] // (bytes_per_block + 1)
    return both[..., : n * bytes_per_block]


def _scales_part(both: np.ndarray, bytes_per_block: int) -> np.ndarray:
    n = both.shape[-1] // (bytes_per_block + 1)
    return both[..., n * bytes_per_block :]


def quantize(
    x: Any,
    fmt: str | Format,
    *,
    axis: int = -1,
    rounding: str = "even",
    scale_mode: str = "floor",
    seed: int | None = None,
    backend: str | None = None,
) -> DaskMXArray:
    """Quantize a Dask array chunk by chunk; the bytes equal :func:`mxarray.quantize`'s.

    Chunks along ``axis`` must hold whole blocks (each but the last a multiple of
    ``fmt.block_size``); other chunkings are rechunked to that, keeping the chunk
    length about the same.  Nothing is computed until the result is.  With
    ``rounding="stochastic"`` the bytes equal those of :func:`mxarray.quantize` with the
    same seed, whatever the chunking.

    Parameters
    ----------
    x : dask.array.Array
        float16, float32 or float64, at least one dimension.
    fmt, axis, rounding, scale_mode, seed, backend
        As for :func:`mxarray.quantize` (one seed serves the whole array; if omitted
        for stochastic rounding, one is drawn now and recorded on the result).  Formats
        with a per-tensor scale (NVFP4) are refused.

    Returns
    -------
    DaskMXArray

    Raises
    ------
    TypeError
        If ``x`` is not a float Dask array.
    ValueError
        For a 0-d or empty block axis, an unknown mode, format or backend, a format
        with a per-tensor scale, or a bad seed.
    NotImplementedError
        If the named backend has no kernel for ``fmt``.

    Examples
    --------
    >>> import numpy as np, dask.array as da, mxarray, mxarray.dask
    >>> x = np.linspace(-3, 3, 200, dtype=np.float32).reshape(2, 100)
    >>> q = mxarray.dask.quantize(da.from_array(x, chunks=(1, 64)), "mxfp8_e4m3")
    >>> q.packed.chunks, q.canonical_scales.chunks
    (((1, 1), (64, 64)), ((1, 1), (2, 2)))
    >>> bool(np.array_equal(q.compute().packed, mxarray.quantize(x, "mxfp8_e4m3").packed))
    True
    >>> q = mxarray.dask.quantize(da.from_array(x, chunks=(1, 64)), "mxfp4_e2m1",
    ...                           rounding="stochastic", seed=7)
    >>> ref = mxarray.quantize(x, "mxfp4_e2m1", rounding="stochastic", seed=7)
    >>> bool(np.array_equal(q.compute().packed, ref.packed)), q.compute().seed
    (True, 7)
    """
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask array, not {type(x).__name__}; use mxarray.quantize "
                        "for in-memory arrays")
    _input_dtype(x.dtype)  # either byte order
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension (got a 0-d array)")
    fmt = get_format(fmt)
    if fmt.tensor_scale != "none":
        raise ValueError(_TENSOR_SCALE_REFUSAL.format(fmt.name))
    backend_for(fmt, backend)  # a bad backend fails now, not when a chunk is computed
    check_scale_mode(scale_mode)
    if seed is not None:
        seed = check_seed(seed)
    if check_rounding(rounding) != "stochastic":
        seed = None
    elif seed is None:
        seed = new_seed()
    ax = blocks.normalize_axis(axis, x.ndim)
    if x.shape[ax] == 0:
        raise ValueError(f"the block axis ({ax}) of x with shape {x.shape} is empty")
    moved = da.moveaxis(x, ax, -1)
    moved = moved.rechunk(moved.chunks[:-1] + (_align_chunks(moved.chunks[-1], fmt.block_size),))
    bpb = fmt.bytes_per_block
    nb = [blocks.n_blocks(c, fmt.block_size) for c in moved.chunks[-1]]
    both = moved.map_blocks(
        functools.partial(_quantize_chunk, fmt=fmt, rounding=rounding,
                          scale_mode=scale_mode, seed=seed, backend=backend),
        dtype=np.uint8, chunks=moved.chunks[:-1] + (tuple(n * (bpb + 1) for n in nb),),
        meta=np.empty((0,) * moved.ndim, dtype=np.uint8),
    )
    lead = moved.chunks[:-1]
    packed = both.map_blocks(_packed_part, bpb, dtype=np.uint8,
                             chunks=lead + (tuple(n * bpb for n in nb),))
    scales = both.map_blocks(_scales_part, bpb, dtype=np.uint8, chunks=lead + (tuple(nb),))
    return DaskMXArray(packed, scales, fmt, tuple(x.shape), ax, rounding, scale_mode, seed)


def _dequantize_chunk(
    packed: np.ndarray, scales: np.ndarray, *, fmt: Format, lengths: tuple[int, ...],
    dtype: np.dtype, backend: str | None, block_id: tuple[int, ...],
) -> np.ndarray:
    shape = packed.shape[:-1] + (lengths[block_id[-1]],)
    a = MXArray.from_parts(packed, scales, fmt, shape, layout="packed")
    return _dequantize(a, dtype, backend=backend)


def dequantize(
    q: DaskMXArray, dtype: Any = np.float32, *, backend: str | None = None
) -> Any:
    """Lazily dequantize a :class:`DaskMXArray` into a Dask array of ``q.shape``.

    The chunks follow ``q.canonical_scales`` (``packed`` is rechunked to match if needed);
    each
    chunk is dequantized with :func:`mxarray.dequantize`, so the values equal the
    in-memory ones exactly.

    Parameters
    ----------
    q : DaskMXArray
    dtype : {numpy.float32, numpy.float64}, optional
    backend : str, optional

    Raises
    ------
    TypeError
        If ``q`` is not a DaskMXArray or ``dtype`` is unsupported.
    ValueError
        If ``backend`` names no registered backend.
    NotImplementedError
        If the named backend has no kernel for ``q.format``.

    Examples
    --------
    >>> import numpy as np, dask.array as da, mxarray, mxarray.dask
    >>> q = mxarray.dask.quantize(da.from_array(np.array([0.3, -1.7, 5.0, 100.0])), "mxfp4_e2m1")
    >>> mxarray.dask.dequantize(q).compute()
    array([ 0., -0.,  8., 96.], dtype=float32)
    """
    if not isinstance(q, DaskMXArray):
        raise TypeError(f"q must be a DaskMXArray, not {type(q).__name__}")
    dt = _output_dtype(dtype)
    fmt, ax = q.format, q.block_axis
    backend_for(fmt, backend)  # a bad backend fails now, not when a chunk is computed
    scales = q.canonical_scales
    packed = q.packed.rechunk(
        scales.chunks[:-1] + (tuple(n * fmt.bytes_per_block for n in scales.chunks[-1]),)
    )
    bounds = np.cumsum((0,) + scales.chunks[-1]) * fmt.block_size
    length = q.shape[ax]
    lengths = tuple(int(min(hi, length) - lo)
                    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True))
    values = da.map_blocks(
        functools.partial(_dequantize_chunk, fmt=fmt, lengths=lengths, dtype=dt,
                          backend=backend),
        packed, scales, dtype=dt, chunks=scales.chunks[:-1] + (lengths,),
        meta=np.empty((0,) * q.ndim, dtype=dt),
    )
    return da.moveaxis(values, -1, ax)


def store(q: DaskMXArray, packed: Any, scales: Any, **kwargs: Any) -> None:
    """Write ``q.packed`` and ``q.canonical_scales`` into two array-likes, chunk by chunk.

    The targets (``numpy.memmap``, ``np.lib.format.open_memmap``, Zarr arrays ...) must
    have the shapes of ``q.packed`` and ``q.canonical_scales`` and support slice
    assignment.  Both
    parts are written in one pass: each chunk is read and quantized once.  Keyword
    arguments go to :func:`dask.array.store` (``scheduler=...``, ``lock=...``).

    Raises
    ------
    TypeError
        If ``q`` is not a DaskMXArray.

    Examples
    --------
    >>> import numpy as np, dask.array as da, mxarray, mxarray.dask
    >>> q = mxarray.dask.quantize(da.ones((4, 64), chunks=(2, 32)), "mxint8")
    >>> packed = np.empty(q.packed.shape, np.uint8)
    >>> scales = np.empty(q.canonical_scales.shape, np.uint8)
    >>> mxarray.dask.store(q, packed, scales)
    >>> int(packed[0, 0]), int(scales[0, 0]) - 127          # 1.0 = 64/64 * 2**0
    (64, 0)
    """
    if not isinstance(q, DaskMXArray):
        raise TypeError(f"q must be a DaskMXArray, not {type(q).__name__}")
    da.store([q.packed, q.canonical_scales], [packed, scales], **kwargs)


class _NpyFile:
    """A ``.npy`` file as an array-like that reads only the slices asked for.

    ``dask.array.from_array`` copies arrays that have a ``copy`` method, which for a
    memory map reads the whole file; this stand-in has none, and pickles as its path
    (so distributed workers open the file themselves).
    """

    def __init__(self, path: Any) -> None:
        self.path = str(path)
        with open(self.path, "rb") as f:  # np.load calls anything else "pickled data"
            if f.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                raise ValueError(f"{self.path} is not a .npy file (no NumPy magic string)")
        try:
            header = np.load(self.path, mmap_mode="r")
        except ValueError as err:
            raise ValueError(f"{self.path}: unreadable .npy file: {err}") from None
        self.shape, self.dtype, self.ndim = header.shape, header.dtype, header.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.array(np.load(self.path, mmap_mode="r")[key])

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        stat = os.stat(self.path)
        return (self.path, stat.st_mtime_ns, stat.st_size, self.shape, str(self.dtype))


def quantize_npy(
    source: str | os.PathLike[str],
    packed_path: str | os.PathLike[str],
    scales_path: str | os.PathLike[str],
    fmt: str | Format,
    *,
    axis: int = -1,
    chunk_bytes: int = 64 * 2**20,
    rounding: str = "even",
    scale_mode: str = "floor",
    seed: int | None = None,
    backend: str | None = None,
    **kwargs: Any,
) -> DaskMXArray:
    """Quantize a ``.npy`` file into two ``.npy`` files without loading it whole.

    The source is read through a memory map in chunks of about ``chunk_bytes`` (whole blocks
    along ``axis``); the packed bytes and scales are written to new memory-mapped
    ``.npy`` files in the canonical layout of :class:`DaskMXArray`.  Peak memory is a
    few chunks per worker thread, however large the file.

    Parameters
    ----------
    source : str or path
        A ``.npy`` file of float16, float32 or float64 values.
    packed_path, scales_path : str or path
        The ``.npy`` files to create (overwritten if they exist).
    fmt, axis, rounding, scale_mode, seed, backend
        As for :func:`quantize`.
    chunk_bytes : int, optional
        About how many bytes of the source one chunk holds (default 64 MiB).
    **kwargs
        Passed to :func:`dask.array.store` (``scheduler=...``).

    Raises
    ------
    ValueError
        If ``source`` is not a ``.npy`` file (the message names it) or for the
        reasons :func:`quantize` gives, or a bad ``chunk_bytes``.
    TypeError
        If the source's dtype is not float16, float32 or float64.
    OSError
        If a file cannot be read or written.

    Returns
    -------
    DaskMXArray
        Over the written files (opened read-only, lazily).  The format, logical shape
        and block axis are not in the ``.npy`` files: keep them to reopen the pair as a
        ``DaskMXArray(packed, canonical_scales, fmt, shape, axis)`` of two Dask arrays.

    Examples
    --------
    >>> import numpy as np, tempfile, os, mxarray, mxarray.dask
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "x.npy"), np.linspace(-1, 1, 300).reshape(3, 100))
    >>> q = mxarray.dask.quantize_npy(os.path.join(d, "x.npy"), os.path.join(d, "p.npy"),
    ...                               os.path.join(d, "s.npy"), "mxfp6_e2m3", chunk_bytes=512)
    >>> np.load(os.path.join(d, "p.npy")).shape, np.load(os.path.join(d, "s.npy")).shape
    ((3, 96), (3, 4))
    >>> in_memory = mxarray.quantize(np.load(os.path.join(d, "x.npy")), "mxfp6_e2m3")
    >>> bool(np.array_equal(q.compute().packed, in_memory.packed))
    True
    """
    fmt = get_format(fmt)
    src = _NpyFile(source)
    ax = blocks.normalize_axis(axis, src.ndim)
    if isinstance(chunk_bytes, (bool, np.bool_)) or not isinstance(
            chunk_bytes, (int, np.integer)) or chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
    if src.shape[ax] == 0:
        raise ValueError(f"the block axis ({ax}) of {source} with shape {src.shape} is empty")
    if 0 in src.shape:  # nothing to read: one (empty) chunk; "auto" divides by the size
        chunks = tuple((d,) for d in src.shape)
    else:
        chunks = da.core.normalize_chunks("auto", src.shape, limit=int(chunk_bytes),
                                          dtype=src.dtype, previous_chunks=None)
    chunks = chunks[:ax] + (_align_chunks(chunks[ax], fmt.block_size),) + chunks[ax + 1 :]
    x = da.from_array(src, chunks=chunks)
    q = quantize(x, fmt, axis=ax, rounding=rounding, scale_mode=scale_mode, seed=seed,
                 backend=backend)
    out_packed = np.lib.format.open_memmap(packed_path, mode="w+", dtype=np.uint8,
                                           shape=q.packed.shape)
    out_scales = np.lib.format.open_memmap(scales_path, mode="w+", dtype=np.uint8,
                                           shape=q.canonical_scales.shape)
    store(q, out_packed, out_scales, **kwargs)
    out_packed.flush()
    out_scales.flush()
    del out_packed, out_scales
    reopened = [da.from_array(_NpyFile(p), chunks=c)
                for p, c in [(packed_path, q.packed.chunks), (scales_path, q.canonical_scales.chunks)]]
    return DaskMXArray(*reopened, fmt, q.shape, ax, rounding, scale_mode, q.seed)
