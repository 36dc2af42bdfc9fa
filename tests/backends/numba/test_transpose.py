"""The Numba backend's tiled copies (block axis not last) against NumPy's own copies.

Every bit is compared: inputs are random bit patterns (NaN payloads, subnormals and
infinities included) viewed as each float type of 2, 4 and 8 bytes.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba", reason="needs the optional numba package (numba extra)")
from mxarray.backends.numba import NumbaBackend, transpose  # noqa: E402  (after the importorskip)
from mxarray.backends.numba.backend import _TILED_MIN_ELEMENTS  # noqa: E402

FAST = NumbaBackend()
EDGES = [1, 2, 7, 8, 9, 63, 64, 65, 127, 128, 129, 130]  # around the 8 x 8 blocks, 64 x 64 tiles
FLOATS = ["float16", "bfloat16", "float32", "float64"]


def _bits(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Random bit patterns of ``shape`` viewed as ``dtype`` (ml_dtypes for bfloat16)."""
    dt = np.dtype(dtype) if dtype != "bfloat16" else np.dtype(pytest.importorskip(
        "ml_dtypes", reason="bfloat16 needs the ml_dtypes package").bfloat16)
    raw = np.random.default_rng(seed).integers(0, 256, size=(*shape, dt.itemsize), dtype=np.uint8)
    return raw.view(dt).reshape(shape)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` hold the same shape, dtype and bytes, element by element."""
    bits = f"u{a.itemsize}"
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        np.ascontiguousarray(a).view(bits), np.ascontiguousarray(b).view(bits))


def _copy(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst[...] = src`` through the kernel, whatever the two arrays' sizes."""
    transpose.copy_tiles(*transpose.flat_view(src), *transpose.flat_view(dst), *src.shape[-2:])


@pytest.mark.parametrize("itemsize", [2, 4, 8])
@pytest.mark.parametrize("rows", EDGES)
def test_kernel_swaps_every_edge_size(itemsize, rows) -> None:
    """Rows and columns on and off the block and tile edges, in both directions (the
    first takes the vector blocks on whole tiles, the second the item-by-item copy)."""
    for cols in EDGES:
        x = _bits((rows, cols), f"u{itemsize}", seed=rows * 1000 + cols)
        x.setflags(write=False)  # read-only inputs compile and copy alike
        out = np.empty((cols, rows), x.dtype)
        _copy(x, out.T)  # x's rows contiguous, out.T's columns contiguous
        assert _same_bits(out, x.T), (rows, cols)
        back = np.empty_like(x)
        _copy(out.T, back)  # and the other way round
        assert _same_bits(back, x), (rows, cols)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("make_view", [
    lambda x: np.moveaxis(x, 0, -1),                 # batch dims between: (5, 70, 131 -> 70)
    lambda x: np.moveaxis(x[::2], 1, -1),            # every other batch entry
    lambda x: np.moveaxis(x[::-1, ::-1], 1, -1),     # reversed axes (negative strides)
    lambda x: np.moveaxis(np.asfortranarray(x), 2, 0),  # Fortran order
    lambda x: np.moveaxis(x[:, :, ::2], 1, -1),      # no unit stride at all
    lambda x: np.broadcast_to(x[:1], x.shape).swapaxes(0, 2),  # read-only, zero stride
], ids=["batch", "every-other", "reversed", "fortran", "no-unit-stride", "broadcast"])
def test_gather_and_scatter_copy_strided_views_exactly(dtype, make_view) -> None:
    """Large views (the kernel's path) of every float width, both ways, bit for bit."""
    x = _bits((5, 70, 131), dtype)
    view = make_view(x)
    assert view.size >= _TILED_MIN_ELEMENTS and view.strides[-1] != view.itemsize
    got = FAST.gather(view)
    assert got.flags.c_contiguous and _same_bits(got, view)
    target = make_view(np.zeros(x.shape, x.dtype))
    if not target.flags.writeable:  # the broadcast view: scatter into a plain transpose
        target = np.zeros(view.shape[::-1], x.dtype).T
    values = _bits(target.shape, dtype, seed=1)
    FAST.scatter(values, target)
    assert _same_bits(target, values)


@pytest.mark.parametrize("shape", [(3, 2, 64, 300), (1, 1, 1, 20000), (2, 9000, 2)])
def test_gather_with_leading_batch_dims(shape) -> None:
    """Several leading dimensions (one kernel call for all) and degenerate 1-wide sides."""
    x = _bits(shape, "float32", seed=3)
    view = x.swapaxes(-1, -2)
    got = FAST.gather(view)
    assert _same_bits(got, view)
    dst = np.zeros(shape, x.dtype)
    FAST.scatter(got, dst.swapaxes(-1, -2))
    assert _same_bits(dst, x)


def test_flat_view_locates_every_element() -> None:
    """``memory[offsets[k] + i * row + j * col]`` is element ``[k, i, j]``, for a view
    with negative, zero and non-unit strides."""
    x = np.arange(4 * 6 * 10, dtype=np.float32).reshape(4, 6, 10)
    view = np.broadcast_to(x[::-1, ::2, ::-3][:, :, None], (4, 3, 2, 4))[1:, :, :, ::-1]
    memory, offsets, row, col = transpose.flat_view(view)
    k, i, j = np.meshgrid(np.arange(offsets.size), np.arange(view.shape[-2]),
                          np.arange(view.shape[-1]), indexing="ij")
    located = memory[offsets[k] + i * row + j * col].view(np.float32)
    assert np.array_equal(located, view.reshape(-1, *view.shape[-2:]))
    assert not memory.flags.writeable  # a broadcast view is read-only, and so is its memory


def test_any_stride_on_a_length_one_axis() -> None:
    """A length-one axis may carry any stride (NumPy never steps along it): the view is
    still copied by the kernel, exactly."""
    x = _bits((20000, 3), "float32", seed=5)
    view = np.lib.stride_tricks.as_strided(x, shape=(1, 3, 20000), strides=(3, 4, 12))
    assert transpose.tileable(view)
    assert _same_bits(FAST.gather(view), view)


def test_views_the_kernel_cannot_take_are_copied_by_numpy() -> None:
    """Strides that are not whole elements (a field of a structured array), 1-byte items
    and misaligned data take NumPy's copy, still exact."""
    def field_view() -> np.ndarray:
        return np.zeros((200, 300), dtype=[("a", "u1"), ("b", "<f4")])["b"].T

    def byte_view() -> np.ndarray:
        return np.zeros((300, 200), np.uint8).T

    def misaligned_view() -> np.ndarray:
        raw = np.zeros(300 * 200 * 4 + 1, np.uint8)
        return raw[1:].view(np.float32).reshape(300, 200).T

    for make in (field_view, byte_view, misaligned_view):
        view = make()
        view[...] = _bits(view.shape, view.dtype.name)
        assert not transpose.tileable(view)
        assert _same_bits(FAST.gather(view), view)
        target = make()
        FAST.scatter(np.ascontiguousarray(view), target)
        assert _same_bits(target, view)
