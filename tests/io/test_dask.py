"""mxarray.dask: chunked quantize/dequantize give the in-memory bytes and values."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array", reason="dask not installed: the dask extra is needed")

import mxarray  # noqa: E402
import mxarray.dask as mxd  # noqa: E402

FORMATS = tuple(mxarray.FORMATS)
# Every built-in format with power-of-two scales (NVFP4's tensor scale needs the whole array).
STOCHASTIC = FORMATS + ("mx9", "mx6", "mx4")


def _data(shape: tuple[int, ...], seed: int, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spread = 10 if dtype == np.float16 else 20  # stay finite in float16
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread, size=shape))
    x.flat[rng.integers(x.size)] = np.inf  # one NaN block somewhere
    x.flat[rng.integers(x.size)] = -0.0
    return x.astype(dtype)


def _assert_same(q: mxd.DaskMXArray, ref: mxarray.MXArray) -> None:
    got = q.compute(scheduler="synchronous")
    np.testing.assert_array_equal(got.packed, ref.packed)
    np.testing.assert_array_equal(got.scales, ref.scales)
    assert (got.shape, got.block_axis, got.format) == (ref.shape, ref.block_axis, ref.format)
    assert (got.rounding, got.seed) == (ref.rounding, ref.seed)
    values = mxd.dequantize(q, np.float64).compute(scheduler="synchronous")
    want = ref.dequantize(np.float64)
    assert values.shape == want.shape
    np.testing.assert_array_equal(values.view(np.uint64), want.view(np.uint64))  # -0, NaN too


def _layouts(bs: int) -> list[tuple[tuple[int, ...], int, tuple]]:
    """(shape, axis, chunks) in units of the block size ``bs``: aligned, ragged last
    chunk, block axis first, 3-D, and chunkings that need rechunking."""
    return [
        ((4 * bs + 5,), 0, (2 * bs,)),                         # ragged last chunk
        ((3, 5 * bs), -1, (2, bs)),                            # lead axis chunked too
        ((3 * bs + 1, 4), 0, (bs, 3)),                         # block axis first, ragged
        ((2, 2 * bs + 7, 3), 1, (1, bs, 2)),                   # 3-D, middle axis
        ((2, 6 * bs), -1, (2, bs + 3)),                        # misaligned: rechunked
        ((2 * bs,), 0, (2 * bs,)),                             # one chunk
    ]


@pytest.mark.parametrize("name", STOCHASTIC)
@pytest.mark.parametrize("case", range(6))
def test_chunked_quantize_equals_in_memory(name, case) -> None:
    bs = mxarray.get_format(name).block_size
    shape, axis, chunks = _layouts(bs)[case]
    x = _data(shape, case)
    q = mxd.quantize(da.from_array(x, chunks=chunks), name, axis=axis)
    _assert_same(q, mxarray.quantize(x, name, axis=axis))


@pytest.mark.parametrize("scale_mode", mxarray.SCALE_MODES)
@pytest.mark.parametrize("rounding", [r for r in mxarray.ROUNDING_MODES if r != "stochastic"])
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_modes_and_dtypes_pass_through(scale_mode, rounding, dtype) -> None:
    name = "mxfp4_e2m1"
    bs = mxarray.get_format(name).block_size
    x = _data((3, 3 * bs + 2), 7, dtype)
    q = mxd.quantize(da.from_array(x, chunks=(2, bs)), name, rounding=rounding,
                     scale_mode=scale_mode)
    assert (q.rounding, q.scale_mode) == (rounding, scale_mode)
    _assert_same(q, mxarray.quantize(x, name, rounding=rounding, scale_mode=scale_mode))


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_any_chunking_gives_the_in_memory_bytes(data) -> None:
    name = data.draw(st.sampled_from(FORMATS))
    bs = mxarray.get_format(name).block_size
    rows = data.draw(st.integers(1, 4))
    length = data.draw(st.integers(1, 5 * bs))
    row_chunk = data.draw(st.integers(1, rows))
    col_chunk = data.draw(st.integers(1, length))
    axis = data.draw(st.sampled_from([0, 1]))
    x = _data((rows, length), data.draw(st.integers(0, 2**16)))
    if axis == 0:
        x = np.ascontiguousarray(x.T)
    chunks = (row_chunk, col_chunk) if axis == 1 else (col_chunk, row_chunk)
    q = mxd.quantize(da.from_array(x, chunks=chunks), name, axis=axis)
    _assert_same(q, mxarray.quantize(x, name, axis=axis))


def test_misaligned_chunks_are_rechunked_to_whole_blocks() -> None:
    for name in FORMATS:
        bs = mxarray.get_format(name).block_size
        x = da.ones((2, 10 * bs), chunks=(1, bs + 1), dtype=np.float32)
        q = mxd.quantize(x, name)
        blocks_per_chunk = q.canonical_scales.chunks[-1]
        assert sum(blocks_per_chunk) == 10
        bpb = q.packed.shape[-1] // 10
        assert q.packed.chunks[-1] == tuple(n * bpb for n in blocks_per_chunk)


def test_dequantize_follows_the_scales_when_packed_is_chunked_differently() -> None:
    name = "mxfp6_e3m2"
    bs = mxarray.get_format(name).block_size
    x = _data((4, 5 * bs - 3), 11)
    ref = mxarray.quantize(x, name)
    packed = da.from_array(np.asarray(ref.packed), chunks=(3, 7))  # splits blocks' bytes
    scales = da.from_array(np.asarray(ref.scales), chunks=(2, 2))
    q = mxd.DaskMXArray(packed, scales, name, x.shape, -1)
    np.testing.assert_array_equal(mxd.dequantize(q).compute(), ref.dequantize())


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_stochastic_rounding_gives_the_in_memory_bytes_for_any_chunking(data) -> None:
    """One seed, every chunking (rechunked ones included), 1-D to 3-D, any block axis."""
    name = data.draw(st.sampled_from(STOCHASTIC))
    bs = mxarray.get_format(name).block_size
    ndim = data.draw(st.integers(1, 3))
    axis = data.draw(st.integers(0, ndim - 1))
    shape = [data.draw(st.integers(1, 3)) for _ in range(ndim)]
    shape[axis] = data.draw(st.integers(1, 4 * bs + 3))
    chunks = tuple(data.draw(st.integers(1, n)) for n in shape)
    seed = data.draw(st.integers(0, 2**64 - 1))
    x = _data(tuple(shape), data.draw(st.integers(0, 2**16)))
    q = mxd.quantize(da.from_array(x, chunks=chunks), name, axis=axis, rounding="stochastic",
                     seed=seed)
    assert q.seed == seed
    ref = mxarray.quantize(x, name, axis=axis, rounding="stochastic", seed=seed,
                           backend="numpy")
    _assert_same(q, ref)


@pytest.mark.parametrize("name", ["mxfp4_e2m1", "mx4"])
def test_stochastic_rounding_depends_on_the_position_of_each_chunk(name) -> None:
    """Two chunks holding equal values draw different bits (their global block numbers
    differ), as the in-memory quantization does."""
    bs = mxarray.get_format(name).block_size
    half = _data((2, 2 * bs), 16)
    half[np.isinf(half)] = 1.0
    x = np.concatenate([half, half], axis=1)
    q = mxd.quantize(da.from_array(x, chunks=(2, 2 * bs)), name, rounding="stochastic", seed=9)
    got = q.compute(scheduler="synchronous")
    assert not np.array_equal(got.packed[:, : got.packed.shape[1] // 2],
                              got.packed[:, got.packed.shape[1] // 2 :])
    _assert_same(q, mxarray.quantize(x, name, rounding="stochastic", seed=9, backend="numpy"))


def test_stochastic_seed_is_drawn_once_and_recorded() -> None:
    x = _data((3, 100), 17)
    q = mxd.quantize(da.from_array(x, chunks=(1, 32)), "mxfp6_e3m2", rounding="stochastic")
    assert isinstance(q.seed, int) and 0 <= q.seed < 2**64
    _assert_same(q, mxarray.quantize(x, "mxfp6_e3m2", rounding="stochastic", seed=q.seed,
                                     backend="numpy"))
    assert mxd.quantize(da.from_array(x), "mxfp6_e3m2", seed=5).seed is None  # not stochastic


def test_stochastic_npy_file_matches_in_memory(tmp_path) -> None:
    name = "mx6"
    bs = mxarray.get_format(name).block_size
    x = _data((5, 7 * bs + 3), 18)
    np.save(tmp_path / "x.npy", x)
    q = mxd.quantize_npy(tmp_path / "x.npy", tmp_path / "p.npy", tmp_path / "s.npy", name,
                         chunk_bytes=2 * bs * x.itemsize, rounding="stochastic", seed=2**63,
                         scheduler="synchronous")
    assert q.canonical_scales.npartitions > 1
    _assert_same(q, mxarray.quantize(x, name, rounding="stochastic", seed=2**63,
                                     backend="numpy"))


def test_formats_with_a_tensor_scale_are_refused() -> None:
    with pytest.raises(ValueError, match="nvfp4.*per-tensor scale"):
        mxd.quantize(da.ones(64, chunks=32), "nvfp4")


def test_bad_input_is_refused() -> None:
    with pytest.raises(TypeError, match="dask array"):
        mxd.quantize(np.ones(64), "mxfp8_e4m3")
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        mxd.quantize(da.ones(64, dtype=np.int32), "mxfp8_e4m3")
    with pytest.raises(ValueError, match="empty"):
        mxd.quantize(da.ones((2, 0)), "mxfp8_e4m3")
    with pytest.raises(ValueError, match="unknown"):
        mxd.quantize(da.ones(64), "mxfp8_e4m3", scale_mode="up")
    with pytest.raises(ValueError, match="seed"):
        mxd.quantize(da.ones(64), "mxfp8_e4m3", rounding="stochastic", seed=-1)
    with pytest.raises(TypeError, match="seed"):
        mxd.quantize(da.ones(64), "mxfp8_e4m3", rounding="stochastic", seed=1.5)
    with pytest.raises(TypeError, match="DaskMXArray"):
        mxd.dequantize(mxarray.quantize(np.ones(64), "mxfp8_e4m3"))
    q = mxd.quantize(da.ones(64), "mxfp8_e4m3")
    with pytest.raises(TypeError, match="float32 or float64"):
        mxd.dequantize(q, np.float16)
    with pytest.raises(ValueError, match="packed must be uint8 of shape"):
        mxd.DaskMXArray(q.packed[:32], q.canonical_scales, "mxfp8_e4m3", (64,), 0)
    with pytest.raises(TypeError, match="scales must be a dask array"):
        mxd.DaskMXArray(q.packed, np.zeros(2, np.uint8), "mxfp8_e4m3", (64,), 0)


def test_store_writes_both_parts_into_memmaps(tmp_path) -> None:
    name = "mxfp4_e2m1"
    bs = mxarray.get_format(name).block_size
    x = _data((5, 3 * bs + 9), 12)
    q = mxd.quantize(da.from_array(x, chunks=(2, bs)), name)
    packed = np.lib.format.open_memmap(tmp_path / "p.npy", "w+", np.uint8, q.packed.shape)
    scales = np.lib.format.open_memmap(tmp_path / "s.npy", "w+", np.uint8, q.canonical_scales.shape)
    mxd.store(q, packed, scales, scheduler="synchronous")
    ref = mxarray.quantize(x, name)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), ref.packed)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), ref.scales)


def test_store_into_zarr(tmp_path) -> None:
    zarr = pytest.importorskip("zarr", reason="zarr not installed: this store test needs it")
    name = "mxfp8_e5m2"
    bs = mxarray.get_format(name).block_size
    x = _data((3, 4 * bs), 13)
    q = mxd.quantize(da.from_array(x, chunks=(1, 2 * bs)), name)
    packed = zarr.open_array(tmp_path / "p.zarr", mode="w", shape=q.packed.shape,
                             dtype=np.uint8, chunks=q.packed.chunksize)
    scales = zarr.open_array(tmp_path / "s.zarr", mode="w", shape=q.canonical_scales.shape,
                             dtype=np.uint8, chunks=q.canonical_scales.chunksize)
    mxd.store(q, packed, scales, scheduler="synchronous")
    ref = mxarray.quantize(x, name)
    np.testing.assert_array_equal(packed[...], ref.packed)
    np.testing.assert_array_equal(scales[...], ref.scales)


@pytest.mark.parametrize("axis", [0, -1])
def test_quantize_npy_matches_in_memory(tmp_path, axis) -> None:
    name = "mxfp6_e2m3"
    bs = mxarray.get_format(name).block_size
    x = _data((7, 5 * bs + 3), 14)
    np.save(tmp_path / "x.npy", x)
    q = mxd.quantize_npy(tmp_path / "x.npy", tmp_path / "p.npy", tmp_path / "s.npy", name,
                         axis=axis, chunk_bytes=4 * bs * x.itemsize, scheduler="synchronous")
    ref = mxarray.quantize(x, name, axis=axis)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), ref.packed)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), np.moveaxis(ref.scales, axis, -1))
    assert q.canonical_scales.npartitions > 1  # it really went chunk by chunk
    _assert_same(q, ref)


def test_quantize_npy_memory_is_bounded_by_the_chunk(tmp_path) -> None:
    """Peak Python-tracked memory stays far below the file size (NumPy backend: its
    allocations are visible to tracemalloc).  The peak is a few dozen chunks' worth of
    temporaries plus Dask's graph (a few KiB per chunk)."""
    n = 2**24  # 64 MiB of float32
    src = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, (64, n // 64))
    src[:] = 1.5
    src.flush()
    del src
    chunk = 2**18  # 256 KiB chunks
    small = np.ones((4, 256), np.float32)
    np.save(tmp_path / "warm.npy", small)  # first run imports modules: not counted
    mxd.quantize_npy(tmp_path / "warm.npy", tmp_path / "wp.npy", tmp_path / "ws.npy",
                     "mxfp8_e4m3", chunk_bytes=chunk, backend="numpy", scheduler="synchronous")
    tracemalloc.start()
    mxd.quantize_npy(tmp_path / "x.npy", tmp_path / "p.npy", tmp_path / "s.npy", "mxfp8_e4m3",
                     chunk_bytes=chunk, backend="numpy", scheduler="synchronous")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < n, f"peak {peak} bytes for a {4 * n}-byte file"
    packed = np.load(tmp_path / "p.npy", mmap_mode="r")
    want = mxarray.quantize(np.full(64, 1.5, np.float32), "mxfp8_e4m3").packed[0]
    assert packed.shape == (64, n // 64) and bool(np.all(packed[::7, ::101] == want))


@pytest.mark.slow
def test_local_cluster_with_two_workers_gives_the_in_memory_bytes() -> None:
    distributed = pytest.importorskip("distributed",
                                      reason="distributed not installed: the dask extra")
    name = "mxfp4_e2m1"
    bs = mxarray.get_format(name).block_size
    x = _data((6, 8 * bs + 5), 15)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        q = mxd.quantize(da.from_array(x, chunks=(2, 2 * bs)), name, backend="numpy")
        packed, scales = client.compute([q.packed, q.canonical_scales], sync=True)
        values = client.compute(mxd.dequantize(q), sync=True)
    ref = mxarray.quantize(x, name)
    np.testing.assert_array_equal(packed, ref.packed)
    np.testing.assert_array_equal(scales, ref.scales)
    np.testing.assert_array_equal(values, ref.dequantize())


def test_scales_mean_what_they_mean_on_mxarray() -> None:
    """``canonical_scales`` has the block axis innermost and ``scales`` the logical layout,
    as on MXArray (issue 14: the word meant one thing on each class)."""
    x = np.random.default_rng(3).standard_normal((96, 5)).astype(np.float32)
    q = mxd.quantize(da.from_array(x, chunks=(64, 5)), "mxfp8_e4m3", axis=0)
    ref = mxarray.quantize(x, "mxfp8_e4m3", axis=0)
    assert q.canonical_scales.shape == ref.canonical_scales.shape == (5, 3)
    assert q.scales.shape == ref.scales.shape == (3, 5)
    np.testing.assert_array_equal(q.scales.compute(), ref.scales)
    np.testing.assert_array_equal(q.canonical_scales.compute(), ref.canonical_scales)
