"""Memory: quantize, dequantize and matmul peak at their result plus a bounded workspace.

The core walks the canonical layout in pieces of at most ``core._PIECE_ELEMENTS``
elements, and the reference matmul works in row tiles of about
``base.TILE_ELEMENTS`` float64 values, so the memory a call needs beyond its
input and its result is a constant, whatever the array's size.  The first tests check
that pieces and tiles change no bit (Hypothesis, with budgets small enough to force many
of them); the others measure the peak with tracemalloc (NumPy reports its data buffers
to it, and Numba allocates the arrays it returns through NumPy) and, once, the peak RSS
of a child process.

The stated bounds come from the code, not from measurements: per element of a piece,
the NumPy reference keeps at most ``REFERENCE_BYTES`` bytes of temporaries alive (about
twenty float64/int64 arrays of a piece's size while it rounds; dequantize fewer), and
Numba at most ``NUMBA_BYTES`` (a float64 or contiguous copy of the piece and the piece's
result before it is copied into place).  ``SLACK`` covers interpreter objects.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from support.hardening import fuzz_settings, is_long, require_memory
from hypothesis import given
from hypothesis import strategies as st

import mxarray
from mxarray import core, layout
from mxarray.backends import base
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import BLOCK_FORMATS, ROUNDING_MODES, SCALE_MODES
from support.backend_calls import matmul_bytes, matmul_codes

REFERENCE_BYTES = 160
"""Bytes of temporaries per element of a piece that the NumPy reference may hold."""
REFERENCE_DEQUANTIZE_BYTES = 48
NUMBA_BYTES = 24
"""Bytes of temporaries per element of a piece that the Numba backend may hold."""
SLACK = 1 << 20
"""Interpreter objects (plans, tuples, small arrays) besides the data buffers."""


@contextlib.contextmanager
def budgets(piece: int, tile: int | None = None) -> Iterator[None]:
    """Run with ``piece`` elements per piece (and ``tile`` per matmul tile)."""
    saved = core._PIECE_ELEMENTS, base.TILE_ELEMENTS
    core._PIECE_ELEMENTS = piece
    base.TILE_ELEMENTS = tile if tile is not None else saved[1]
    try:
        yield
    finally:
        core._PIECE_ELEMENTS, base.TILE_ELEMENTS = saved


UNBOUNDED = 1 << 62


def _modes(fmt: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(roundings, scale modes) defined for ``fmt``."""
    if mxarray.get_format(fmt).scale.kind == "ue4m3":
        return tuple(r for r in ROUNDING_MODES if r != "stochastic"), ("floor",)
    return ROUNDING_MODES, SCALE_MODES


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """A format with modes it allows, an array view (any axis, stride, padding), a seed."""
    fmt = draw(st.sampled_from(sorted(BLOCK_FORMATS)))
    roundings, scale_modes = _modes(fmt)
    # Sides with and without padding: multiples of 16 and 32 fill whole blocks.
    sides = st.one_of(st.integers(1, 40), st.sampled_from([16, 32, 64, 96]))
    shape = list(draw(st.lists(sides, min_size=1, max_size=3)))
    while math.prod(shape) > 12_000:
        shape[shape.index(max(shape))] //= 2
    shape = tuple(shape)
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.standard_normal(tuple(2 * d for d in shape)) * 2.0 ** rng.integers(-30, 30)
    base.flat[rng.integers(0, base.size, size=draw(st.integers(0, 2)))] = draw(
        st.sampled_from([np.inf, -np.inf, np.nan, 0.0]))
    with np.errstate(over="ignore"):
        base = base.astype(dtype)
    # A view: every other element, reversed along some axes (negative strides).
    flips = tuple(slice(None, None, -2) if draw(st.booleans()) else slice(None, None, 2)
                  for _ in shape)
    return {
        "x": base[flips],
        "fmt": fmt,
        "axis": draw(st.integers(-len(shape), len(shape) - 1)),
        "rounding": draw(st.sampled_from(roundings)),
        "scale_mode": draw(st.sampled_from(scale_modes)),
        "seed": draw(st.integers(0, 2**64 - 1)),
        "piece": draw(st.sampled_from([1, 16, 33, 100, 1000])),
    }


def _same_array(p: mxarray.MXArray, q: mxarray.MXArray) -> None:
    assert p.shape == q.shape and p.block_axis == q.block_axis
    np.testing.assert_array_equal(p.packed, q.packed)
    np.testing.assert_array_equal(p.scales, q.scales)
    assert p.tensor_scale == q.tensor_scale


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


@fuzz_settings(60)
@given(case=cases())
def test_pieces_change_no_bit(backend: str, case: dict[str, Any]) -> None:
    """Quantize and dequantize (fresh, into a C-order ``out``, into a strided ``out``) in
    many small pieces give the bits of one piece, for every format, mode, axis, view."""
    kwargs = {k: case[k] for k in ("axis", "rounding", "scale_mode", "seed")}
    x, fmt = case["x"], case["fmt"]
    with budgets(UNBOUNDED):
        whole = mxarray.quantize(x, fmt, backend=backend, **kwargs)
        dense = {dt: mxarray.dequantize(whole, dt, backend=backend)
                 for dt in (np.float32, np.float64)}
    with budgets(case["piece"]):
        pieces = mxarray.quantize(x, fmt, backend=backend, **kwargs)
        _same_array(pieces, whole)
        for dt, expected in dense.items():
            _same_bits(mxarray.dequantize(pieces, dt, backend=backend), expected)
            out = np.full(x.shape, 7.0, dtype=dt)
            assert mxarray.dequantize(pieces, out=out, backend=backend) is out
            _same_bits(out, expected)
            strided = np.full(tuple(2 * d for d in x.shape), 7.0, dtype=dt)[
                tuple(slice(None, None, -2) for _ in x.shape)]
            mxarray.dequantize(pieces, out=strided, backend=backend)
            _same_bits(np.ascontiguousarray(strided), expected)


@fuzz_settings(30)
@given(case=cases(), offset=st.integers(0, 2**40))
def test_pieces_keep_given_block_ids(backend: str, case: dict[str, Any], offset: int) -> None:
    """A piece of a larger array (the Dask path: explicit block numbers) quantized in
    small pieces draws the same stochastic bits as in one piece."""
    x, fmt = case["x"], case["fmt"]
    if "stochastic" not in _modes(fmt)[0]:
        return
    moved = np.moveaxis(x, case["axis"], -1)
    n = math.prod(moved.shape[:-1]) * -(-moved.shape[-1] // mxarray.get_format(fmt).block_size)
    ids = offset + np.random.default_rng(case["seed"] % 2**32).permutation(n)
    kwargs = {"axis": case["axis"], "rounding": "stochastic", "seed": case["seed"],
              "scale_mode": case["scale_mode"], "backend": backend}
    with budgets(UNBOUNDED):
        whole = core._quantize_with_ids(x, fmt, ids, **kwargs)
    with budgets(case["piece"]):
        _same_array(core._quantize_with_ids(x, fmt, ids, **kwargs), whole)


def test_pieces_draw_the_whole_arrays_bits() -> None:
    """Stochastic rounding in pieces numbers each piece's blocks from its place in the
    whole array: the bits differ from numbering every piece from zero (which a core that
    forgot the numbering would do), and equal one piece's."""
    x = np.random.default_rng(3).standard_normal((64, 96)).astype(np.float32)
    kwargs = {"rounding": "stochastic", "seed": 11, "backend": "numpy", "axis": 0}
    with budgets(UNBOUNDED):
        whole = mxarray.quantize(x, "mxfp4_e2m1", **kwargs)
    with budgets(64):
        _same_array(mxarray.quantize(x, "mxfp4_e2m1", **kwargs), whole)
    restarted = np.concatenate([
        mxarray.quantize(np.ascontiguousarray(x[:, j:j + 2]), "mxfp4_e2m1", **kwargs).packed
        for j in range(0, 96, 2)])
    assert not np.array_equal(restarted, whole.packed)


def test_amax_of_pieces() -> None:
    """The NVFP4 tensor scale comes from the whole tensor's finite amax, found piece by
    piece: a maximum in the last piece (next to an infinity and a NaN) counts."""
    x = np.full((40, 50), 0.5, dtype=np.float32)
    x[-1, -1], x[0, 0], x[5, 5] = 3000.0, np.inf, np.nan
    with budgets(UNBOUNDED):
        whole = mxarray.quantize(x, "nvfp4", backend="numpy")
    with budgets(7):
        _same_array(mxarray.quantize(x, "nvfp4", backend="numpy"), whole)
        assert core._finite_amax(x, mxarray.get_backend("numpy")) == 3000.0


class _FillingReference(NumpyBackend):
    """The reference with a fused quantize that fills the core's arrays (``out=``)."""

    name = "filling"

    def __init__(self) -> None:
        self.filled = 0

    def quantize(self, blocks: np.ndarray, options: Any,
                 out: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
        if out is not None:
            self.filled += 1
        return super().quantize(blocks, options, out=out)


@pytest.fixture
def filling(monkeypatch: pytest.MonkeyPatch) -> _FillingReference:
    """A registered backend "filling" (the registry is restored afterwards)."""
    import mxarray.backends as registry
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    instance = _FillingReference()
    registry.register_backend("filling", lambda: instance, priority=-1)
    return instance


@pytest.mark.parametrize("fmt", ["mxfp4_e2m1", "mx6", "nvfp4"])
def test_pieces_fill_in_place(filling: _FillingReference, fmt: str) -> None:
    """A backend's ``quantize`` with ``out=`` gets each piece's slice of the
    result to fill (no copy), with the same bits as the reference in one piece."""
    x = np.random.default_rng(2).standard_normal((30, 50, 7))
    kwargs = {"axis": 1, "rounding": "toward_zero"}
    with budgets(UNBOUNDED):
        whole = mxarray.quantize(x, fmt, backend="numpy", **kwargs)
    with budgets(100):
        _same_array(mxarray.quantize(x, fmt, backend="filling", **kwargs), whole)
    size = mxarray.get_format(fmt).block_size
    assert filling.filled == len(list(layout.pieces((30, 7, 50), size, 100))) > 1


# -- matmul tiles ------------------------------------------------------------------------

@st.composite
def matmul_cases(draw: st.DrawFn) -> dict[str, Any]:
    fa = draw(st.sampled_from(sorted(BLOCK_FORMATS)))
    fb = draw(st.sampled_from(sorted(BLOCK_FORMATS)))
    m, n, k = (draw(st.integers(1, 40)) for _ in range(3))
    batch = draw(st.sampled_from([(), (2,)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = 2.0 ** rng.integers(-20, 20, size=2)
    return {
        "a": mxarray.quantize(rng.standard_normal(batch + (m, k)) * scale[0], fa,
                              backend="numpy"),
        "b": mxarray.quantize(rng.standard_normal(batch + (k, n)) * scale[1], fb, axis=-2,
                              backend="numpy"),
        "tile": draw(st.sampled_from([1, 50, 300, 2000])),
    }


@fuzz_settings(60)
@given(case=matmul_cases())
def test_matmul_tiles_change_no_bit(case: dict[str, Any]) -> None:
    """The reference matmul in tiles of two or more rows, from packed bytes, gives the
    bits of one GEMM of the whole decoded operands (the reference before tiling) when
    every product and partial sum is exact in float64 (power-of-two scales, these data);
    with NVFP4's tensor scales (inexact products, so BLAS's order within a dot shows)
    within the float64 error of two summation orders and one float32 rounding."""
    a, b = case["a"], case["b"]
    a_rows = mxarray.dequantize(a, np.float64, backend="numpy")
    b_rows = np.ascontiguousarray(np.swapaxes(mxarray.dequantize(b, np.float64,
                                                                 backend="numpy"), -1, -2))
    with np.errstate(over="ignore", invalid="ignore"):
        whole = np.matmul(a_rows, np.swapaxes(b_rows, -1, -2)).astype(np.float32)
    with budgets(core._PIECE_ELEMENTS, case["tile"]):
        tiled = mxarray.core.matmul(a, b, backend="numpy")
    if a.tensor_scale is None and b.tensor_scale is None:
        _same_bits(tiled, whole)
        return
    # Two float64 dots of the same products in different orders differ by at most twice
    # the float64 error bound k 2**-53 sum |a b|; each is then rounded once to float32.
    k = a.shape[-1]
    bound = 2 * k * 2.0**-53 * np.matmul(np.abs(a_rows), np.abs(np.swapaxes(b_rows, -1, -2)))
    bound = bound + np.spacing(np.abs(whole)).astype(np.float64)
    assert np.all(np.abs(tiled.astype(np.float64) - whole) <= bound)


def test_matmul_codes_and_bytes_agree() -> None:
    """``matmul_blocks`` (codes) and ``matmul_packed`` (bytes) tile alike, to the bit."""
    rng = np.random.default_rng(5)
    ref = mxarray.get_backend("numpy")
    a = mxarray.quantize(rng.standard_normal((9, 70)), "mx6", backend="numpy")
    b = mxarray.quantize(rng.standard_normal((70, 11)), "mxfp6_e2m3", axis=0, backend="numpy")
    fa, fb = a.format, b.format
    with budgets(core._PIECE_ELEMENTS, 1):
        packed = matmul_bytes(ref, a.packed[None], a.canonical_scales[None], fa, b.packed[None], b.canonical_scales[None], fb)
        codes = matmul_codes(ref, ref.unpack(a.packed, fa).reshape(1, 9, -1, fa.block_size), a.canonical_scales[None], fa, ref.unpack(b.packed, fb).reshape(1, 11, -1, fb.block_size), b.canonical_scales[None], fb)
    _same_bits(packed, codes)


def test_tiles_never_hold_one_row() -> None:
    """A single leftover row joins the tile before it (NumPy's matmul would treat a
    one-row operand as a vector and sum in another order)."""
    spans = base._spans(9, 4)
    assert [(s.start, s.stop) for s in spans] == [(0, 4), (4, 9)]
    assert [(s.start, s.stop) for s in base._spans(1, 4)] == [(0, 1)]
    assert all(s.stop - s.start >= 2 for n in range(2, 50) for t in (2, 3, 7)
               for s in base._spans(n, t))


# -- measured peaks ----------------------------------------------------------------------

def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the peak of tracemalloc's traced memory while it ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _workspace(backend: str, per_element: dict[str, int], piece: int) -> int:
    return per_element[backend] * piece + SLACK


QUANTIZE_BYTES = {"numpy": REFERENCE_BYTES, "numba": NUMBA_BYTES}
DEQUANTIZE_BYTES = {"numpy": REFERENCE_DEQUANTIZE_BYTES, "numba": NUMBA_BYTES}
PIECE = 1 << 18  # elements per piece in the measured tests (the bounds scale with it)
SIZES = (1 << 21, 1 << 23) if not is_long() else (1 << 22, 1 << 25)

LAYOUTS = {  # name -> (view of a float32 array of n elements, block axis)
    "axis -1": (lambda x: x.reshape(-1, 1024), -1),
    "axis 0": (lambda x: x.reshape(-1, 1024), 0),
    "padded": (lambda x: x.reshape(-1, 1024)[:, :1000], -1),
}


def _measured_backends() -> list[str]:
    return [b for b in ("numpy", "numba") if b in {i.name for i in mxarray.list_backends()
                                                   if i.available}]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp4_e2m1", "nvfp4"])
@pytest.mark.parametrize("backend", _measured_backends())
def test_quantize_and_dequantize_peaks(backend: str, fmt: str, layout: str) -> None:
    """At two sizes (4x apart; 8x in the long run), quantize peaks at its result (packed
    bytes and scales) plus the workspace bound, and dequantize at its float32 result
    plus its bound; the bounds do not grow with the size."""
    require_memory(8 * SIZES[-1], "measuring quantize's peak memory")
    for n in SIZES:
        _check_quantize_and_dequantize(backend, fmt, layout, n)


def _check_quantize_and_dequantize(backend: str, fmt: str, layout: str, n: int) -> None:
    view, axis = LAYOUTS[layout]
    x = view(np.random.default_rng(n).standard_normal(n, dtype=np.float32))
    with budgets(PIECE):
        mxarray.quantize(x[:4], fmt, axis=axis, backend=backend)  # compile, warm caches
        q, peak = traced_peak(lambda: mxarray.quantize(x, fmt, axis=axis, backend=backend))
        result = q.packed.nbytes + q.canonical_scales.nbytes
        assert peak <= result + _workspace(backend, QUANTIZE_BYTES, PIECE), (n, peak, result)
        dense, peak = traced_peak(lambda: mxarray.dequantize(q, backend=backend))
        assert peak <= dense.nbytes + _workspace(backend, DEQUANTIZE_BYTES, PIECE), (
            n, peak, dense.nbytes)


def test_unbounded_reference_would_fail_the_bound() -> None:
    """The bound is tight enough to catch the unchunked core: one piece of the whole
    array exceeds it on the reference (so the measured tests can fail)."""
    n = 1 << 21
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32).reshape(-1, 1024)
    with budgets(n):
        q, peak = traced_peak(lambda: mxarray.quantize(x, "mxfp8_e4m3", backend="numpy"))
    result = q.packed.nbytes + q.canonical_scales.nbytes
    assert peak > result + _workspace("numpy", QUANTIZE_BYTES, PIECE)


@pytest.mark.parametrize("backend", _measured_backends())
def test_matmul_peak(backend: str) -> None:
    """MX matmul peaks at its float32 result plus a workspace: for the reference, tiles of
    rows (O(tile * K) float64 values) that do not grow with M and N; for Numba, K panels
    of both operands, by design a fraction (``_TILE_FRACTION``) of their size decoded to
    float32 but at least ``_MIN_TILE_BYTES`` (twice that allowed: extreme scales decode
    to float64).  BLAS's own packing buffers are not NumPy allocations: tracemalloc does
    not see them."""
    k = 256
    peaks = []
    for m in (512, 2048):
        rng = np.random.default_rng(m)
        operands = (
            mxarray.quantize(rng.standard_normal((m, k), dtype=np.float32), "mxfp8_e4m3"),
            mxarray.quantize(rng.standard_normal((k, m), dtype=np.float32), "mxfp8_e4m3",
                             axis=0),
        )
        with budgets(PIECE, PIECE):
            c, peak = traced_peak(lambda ab=operands: mxarray.core.matmul(*ab, backend=backend))
        bound = {
            # tiles of A and B rows and their product, float64, decode temporaries of
            # one tile (REFERENCE_DEQUANTIZE_BYTES per element of a tile)
            "numpy": (8 + REFERENCE_DEQUANTIZE_BYTES) * (PIECE + 4 * k + 4),
            "numba": 2 * _numba_panel_bytes(2 * m * k),
        }[backend] + SLACK
        assert peak <= c.nbytes + bound, (m, peak, c.nbytes, bound)
        peaks.append(peak - c.nbytes)
    if backend == "numpy":  # the reference's workspace is independent of M and N
        assert peaks[1] <= peaks[0] + SLACK


@pytest.mark.parametrize("shapes", [((8, 1), (1, 16)), ((1, 16), (8, 1)), ((3, 1, 4), (1, 5, 1))],
                         ids=["a-spread-b-broadcast", "a-broadcast-b-spread", "three-dims"])
def test_matmul_does_not_copy_an_operand_per_batch_item(backend: str, shapes) -> None:
    """Regression: an operand broadcast along one batch dimension but not another was
    copied once per batch item (merging the batch dimensions forced the copy), so its
    memory grew with the batch.  Now the peak stays at the result plus one batch item's
    workspace, and every batch item equals the 2-D product of its operands."""
    (ba, bb), m, k, n = shapes, 64, 2048, 64
    rng = np.random.default_rng(7)
    a = mxarray.quantize(rng.standard_normal(ba + (m, k), dtype=np.float32), "mxfp8_e4m3")
    b = mxarray.quantize(rng.standard_normal(bb + (k, n), dtype=np.float32), "mxfp4_e2m1",
                         axis=-2)
    c, peak = traced_peak(lambda: mxarray.core.matmul(a, b, backend=backend))
    batch = np.broadcast_shapes(ba, bb)
    assert c.shape == batch + (m, n)
    for i in np.ndindex(batch):
        ia = tuple(0 if s == 1 else j for s, j in zip(ba, i))
        ib = tuple(0 if s == 1 else j for s, j in zip(bb, i))
        want = mxarray.core.matmul(a[ia], b[ib], backend=backend)
        assert np.array_equal(c[i], want)
    # The workspace is one batch item's (measured on the first item's 2-D product), not
    # a copy of an operand per item (12 to 25 MiB here); 3 MiB allow for the per-call
    # results and the loop over outer batch indices:
    first = tuple(0 for _ in batch)
    one, one_peak = traced_peak(lambda: mxarray.core.matmul(a[first[:len(ba)]],
                                                            b[first[:len(bb)]],
                                                            backend=backend))
    assert peak - c.nbytes <= one_peak - one.nbytes + 3 * SLACK, (peak, c.nbytes, one_peak)


def _numba_panel_bytes(n_values: int) -> int:
    """The Numba matmul's panel budget for operands of ``n_values`` elements in all."""
    from mxarray.backends.numba import matmul as numba_backend

    return max(int(numba_backend._TILE_FRACTION * 4 * n_values), numba_backend._MIN_TILE_BYTES)


def test_quantize_peak_rss() -> None:
    """In a child process, quantizing 2**24 float32 values (64 MiB) raises the peak RSS
    by at most the result plus the workspace bound (and 16 MiB of allocator and page
    slack), measured from the baseline with the input already in memory."""
    n = 1 << 24
    require_memory(12 * n, "measuring quantize's peak RSS")
    child = textwrap.dedent(f"""
        import resource, numpy as np, mxarray
        from mxarray import core
        core._PIECE_ELEMENTS = {PIECE}
        x = np.ones({n}, dtype=np.float32).reshape(-1, 1024)
        x[:, ::3] = -2.5
        mxarray.quantize(x[:8], "mxfp8_e4m3", backend="numpy")   # imports and caches
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        q = mxarray.quantize(x, "mxfp8_e4m3", backend="numpy")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(before * 1024, after * 1024, q.packed.nbytes + q.canonical_scales.nbytes)
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=300, check=True)
    before, after, result = map(int, done.stdout.split())
    assert after - before <= result + _workspace("numpy", QUANTIZE_BYTES, PIECE) + (16 << 20), (
        before, after, result)
