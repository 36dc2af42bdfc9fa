"""Index arithmetic past 2**31 elements and 2**31 / 2**32 bytes on the CPU backends.

Each test builds one array just above such a size and compares the blocks that sit at
the offsets where 32-bit arithmetic would wrap (the start, just below and above
``2**29 .. 2**32`` elements, the end) with the NumPy reference run on those blocks
alone.  The data repeat with a period of ``_PERIOD`` blocks, an odd number, so a block
read from an offset that wrapped modulo any power of two holds other values and the
comparison fails.

Two levels are checked: the Numba backend's methods directly (the kernels then see the
whole array at once) and the public API end to end (the core may hand the backend
chunks).  The Numba tests run in CI when the machine has the memory (they skip, naming
it, otherwise); the end-to-end run on the NumPy reference is slow and runs only in the
long hardening run (``pytest --long``).  One test at a time holds at most about 11 GiB.
"""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pytest
from support.hardening import is_long, require_memory

import mxarray
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import get_format

numba = pytest.importorskip("numba", reason="needs the optional numba package (numba extra)")
from mxarray.backends.numba import NumbaBackend
from support.backend_calls import dopts, matmul_bytes, matmul_codes, qopts

REF = NumpyBackend()
FAST = NumbaBackend()
GIB = 2**30
BIG_ELEMENTS = 2**31 + 96  # just above 2**31 elements: 2**26 + 3 blocks of 32
_PERIOD = 1_000_003  # blocks after which the test data repeat (odd: no power of two)


def _probe_rows(n_rows: int, row_size: int) -> np.ndarray:
    """Rows at the start, at the end, and on both sides of element 2**29 .. 2**32 (byte
    offsets 2**31 and 2**32 of 1-, 2- and 4-byte items) for rows of ``row_size`` items."""
    rows = {0, 1, n_rows - 2, n_rows - 1}
    for power in range(29, 33):
        edge = 2**power // row_size
        rows.update(r for r in (edge - 1, edge, edge + 1) if 0 <= r < n_rows)
    return np.array(sorted(rows))


def _repeat(pattern: np.ndarray, n: int) -> np.ndarray:
    """``pattern`` repeated along its first axis to length ``n``: ``out[i] = pattern[i %
    len(pattern)]``, filled by doubling copies (one pass of large memcpys)."""
    out = np.empty((n,) + pattern.shape[1:], dtype=pattern.dtype)
    done = min(n, len(pattern))
    out[:done] = pattern[:done]
    while done < n:
        step = min(done, n - done)
        out[done : done + step] = out[:step]
        done += step
    return out


def _blocks_f32(n_rows: int, block_size: int) -> np.ndarray:
    """``(n_rows, block_size)`` float32 test values: ``_PERIOD`` distinct random blocks
    (magnitudes over many binades, a NaN block, an all-zero block) repeated."""
    rng = np.random.default_rng(9)
    period = min(n_rows, _PERIOD)
    spread = np.exp2(rng.integers(-30, 30, (period, 1))).astype(np.float32)
    template = rng.standard_normal((period, block_size), dtype=np.float32) * spread
    template[period // 3, 5] = np.nan
    template[period // 2] = 0.0
    return _repeat(template, n_rows)


def _random_bytes(shape: tuple[int, ...], seed: int, pool: np.ndarray | None = None) -> np.ndarray:
    """uint8 data of ``shape``: a ``_PERIOD``-byte random pattern (drawn from ``pool``,
    default all bytes) repeated."""
    rng = np.random.default_rng(seed)
    pattern = (rng.integers(0, 256, _PERIOD, dtype=np.uint8) if pool is None
               else rng.choice(pool, _PERIOD))
    return _repeat(pattern, int(np.prod(shape))).reshape(shape)


def _bits(values: np.ndarray) -> np.ndarray:
    """Float bits, so NaNs compare equal."""
    return values.view(np.uint32 if values.dtype == np.float32 else np.uint64)


def test_probe_rows_straddle_every_wrap() -> None:
    """The probed rows sit on both sides of each power-of-two edge the tests target."""
    rows = _probe_rows(2**26 + 3, 32)
    for power in (29, 30, 31):
        edge = 2**power // 32
        assert {edge - 1, edge} <= set(rows.tolist())
    assert rows[-1] == 2**26 + 2 and rows[0] == 0


def test_numba_quantize_and_dequantize_packed_past_2_31_elements() -> None:
    """``quantize_packed`` then ``dequantize_packed`` of 2**31 + 96 float32 values
    (8 GiB in, 1.5 GiB packed FP6: four codes in three bytes, 8 GiB out)."""
    require_memory(11 * GIB, "the 2**31-element Numba quantize/dequantize test")
    fmt = get_format("mxfp6_e3m2")
    n = BIG_ELEMENTS // fmt.block_size
    x = _blocks_f32(n, fmt.block_size)
    rows = _probe_rows(n, fmt.block_size)
    probe = x[rows].copy()
    packed, scales = FAST.quantize(x, qopts(fmt, "even", "floor", None))
    del x
    gc.collect()
    codes, want_scales = REF.quantize_blocks(probe, qopts(fmt, "even", "floor", None))
    np.testing.assert_array_equal(scales[rows], want_scales)
    np.testing.assert_array_equal(packed[rows], REF.pack(codes, fmt))
    out = FAST.dequantize(packed, scales, dopts(fmt, np.float32))
    want = REF.dequantize_blocks(codes, want_scales, dopts(fmt, np.float32))
    np.testing.assert_array_equal(_bits(out[rows]), _bits(want))


@pytest.mark.parametrize("log2_codes", [31, 32])
def test_numba_pack_and_unpack_past_2_31_and_2_32_codes(log2_codes: int) -> None:
    """``pack`` and ``unpack`` of 2**31 + 128 (CI) or 2**32 + 128 (long run) FP6 codes in
    4 rows: later rows start far into the array, the last codes lie past the edge (up to
    4 GiB of codes, 3 GiB packed; at most two of the three arrays exist at once)."""
    if log2_codes > 31 and not is_long():
        pytest.skip(reason="runs in the long hardening run (pytest --long)")
    require_memory(2**log2_codes * 9 // 4 + GIB, f"the 2**{log2_codes}-code Numba pack test")
    fmt = get_format("mxfp6_e3m2")
    width = 2 ** (log2_codes - 2) + 32

    def codes() -> np.ndarray:
        return _random_bytes((4, width), 1, np.arange(64, dtype=np.uint8))

    original = codes()
    packed = FAST.pack(original, fmt)
    assert packed.shape == (4, width // 4 * 3)
    for r in range(4):
        for c in (0, width // 2, width - 64):
            np.testing.assert_array_equal(packed[r, c // 4 * 3 : (c + 64) // 4 * 3],
                                          REF.pack(original[r, c : c + 64], fmt))
    del original
    gc.collect()
    back = FAST.unpack(packed, fmt)
    del packed
    gc.collect()
    want, step = codes(), 2**26  # compared in pieces: no full-size boolean array
    assert all(np.array_equal(back[r, i : i + step], want[r, i : i + step])
               for r in range(4) for i in range(0, width, step))


def _small_int_operand(rows: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """MXINT8 codes in -3..3 and scale bytes 133..135 (elements -3..3 times 1, 2 or 4):
    every product (at most 144) and every sum of up to 2**15 of them is an integer below
    2**24, exact in float32 in any order, so the backend must match the reference bit for
    bit."""
    codes = _random_bytes((rows, k), seed, np.arange(-3, 4, dtype=np.int8).view(np.uint8))
    scales = _random_bytes((rows, k // 32), seed + 1, np.array([133, 134, 135], np.uint8))
    return codes, scales


def test_numba_matmul_packed_operand_past_2_31_elements() -> None:
    """``matmul_packed`` with an MXINT8 operand of (2**16 + 1) x 2**15 elements (2 GiB:
    row * K and the byte offsets pass 2**31), compared row by row with the reference."""
    require_memory(5 * GIB, "the 2**31-element Numba matmul test")
    fmt = get_format("mxint8")
    m, k, n = 2**16 + 1, 2**15, 3
    a, a_scales = _small_int_operand(m, k, seed=2)
    b, b_scales = _small_int_operand(n, k, seed=3)
    c = matmul_bytes(FAST, a[None], a_scales[None], fmt, b[None], b_scales[None], fmt)[0]
    assert c.shape == (m, n)
    rows = _probe_rows(m, k)
    want = matmul_codes(REF, a[rows].reshape(1, rows.size, -1, 32), a_scales[rows][None], fmt, b.reshape(1, n, -1, 32), b_scales[None], fmt)[0]
    np.testing.assert_array_equal(c[rows], want)


def test_public_quantize_dequantize_past_2_31_elements() -> None:
    """``mxarray.quantize`` / ``dequantize`` end to end on (2**14 + 1) x 2**17 float32
    values (2**31 + 2**17 elements, MXFP4), against the reference on the probed blocks."""
    require_memory(11 * GIB, "the 2**31-element end-to-end quantize test")
    rows, width = 2**14 + 1, 2**17
    _check_public_round_trip(lambda: _blocks_f32(rows * width // 32, 32).reshape(rows, width),
                             get_format("mxfp4_e2m1"), "numba")


def _check_public_round_trip(make_x, fmt, backend: str) -> None:
    """Quantize ``make_x()`` (C-contiguous float32, blocks along the last axis, whose
    length is a multiple of 32) with ``backend``; check the probed blocks' packed bytes
    and scales; free the input; dequantize and check the probed blocks' values."""
    x = make_x()
    rows = _probe_rows(x.size // 32, 32)
    probe = x.reshape(-1, 32)[rows].copy()
    q = mxarray.quantize(x, fmt, backend=backend)
    del x
    gc.collect()
    codes, want_scales = REF.quantize_blocks(probe, qopts(fmt, "even", "floor", None))
    packed = q.packed.reshape(-1, fmt.bytes_per_block)
    np.testing.assert_array_equal(q.scales.reshape(-1)[rows], want_scales)
    np.testing.assert_array_equal(packed[rows], REF.pack(codes, fmt))
    out = mxarray.dequantize(q, np.float32, backend=backend).reshape(-1, 32)
    want = REF.dequantize_blocks(codes, want_scales, dopts(fmt, np.float32))
    np.testing.assert_array_equal(_bits(out[rows]), _bits(want))


def _small_int_values(n_blocks: int, seed: int) -> np.ndarray:
    """``(n_blocks, 32)`` float16 values ``k * 2**s`` (``k`` in -3..3, ``s`` in 0..2 per
    block): MXINT8 holds them exactly, and their products and sums are exact as in
    :func:`_small_int_operand`."""
    rng = np.random.default_rng(seed)
    period = min(n_blocks, _PERIOD)
    k = rng.integers(-3, 4, (period, 32)).astype(np.float16)
    return _repeat(k * np.exp2(rng.integers(0, 3, (period, 1))).astype(np.float16), n_blocks)


def test_public_matmul_operand_past_2_31_elements() -> None:
    """``mxarray.matmul`` end to end with an MXINT8 operand of (2**16 + 1) x 2**15
    elements (quantized from 4 GiB of float16), row by row against the reference.

    The operand is quantized, not built with ``MXArray.from_parts``: from_parts of 2 GiB
    of bytes peaks near 24 GiB (it unpacks and repacks them with the reference)."""
    require_memory(8 * GIB, "the 2**31-element end-to-end matmul test")
    m, k, n = 2**16 + 1, 2**15, 3
    x = _small_int_values(m * k // 32, seed=4).reshape(m, k)
    rows = _probe_rows(m, k)
    probe = x[rows].copy()
    a = mxarray.quantize(x, "mxint8", backend="numba")
    del x
    gc.collect()
    b = mxarray.quantize(_small_int_values(n * k // 32, seed=5).reshape(n, k).T, "mxint8",
                         axis=0, backend="numba")
    c = np.asarray(mxarray.matmul(a, b, backend="numba"))
    assert c.shape == (m, n)
    part = mxarray.quantize(probe, "mxint8", backend="numpy")
    assert np.array_equal(part.dequantize(), probe)  # the values are exact in MXINT8
    np.testing.assert_array_equal(c[rows], np.asarray(mxarray.matmul(part, b, backend="numpy")))


def test_public_reference_round_trip_past_2_31_elements() -> None:
    """The NumPy reference end to end on 2**31 + 96 float32 values (slow: minutes)."""
    if not is_long():
        pytest.skip(reason="runs in the long hardening run (pytest --long)")
    require_memory(12 * GIB, "the 2**31-element NumPy reference round trip")
    _check_public_round_trip(lambda: _blocks_f32(BIG_ELEMENTS // 32, 32).reshape(-1),
                             get_format("mxfp8_e4m3"), "numpy")


def test_blas_dimensions_beyond_its_integers_go_in_pieces(monkeypatch) -> None:
    """The matmul's accumulating sgemm never hands BLAS a dimension its integers cannot
    hold (ctypes wraps 2**31 to -2**31 silently for a 32-bit BLAS): rows and columns
    beyond the limit go in pieces, a too-long K or row stride is refused.  The limit is
    lowered here to make the pieces small."""
    from mxarray.backends import _blas

    if _blas.sgemm_acc is None:
        pytest.skip(reason="needs the BLAS bundled with NumPy's wheel (not found here)")
    assert ctypes.c_int(2**31).value == -(2**31)  # the hazard: a silent wrap
    rng = np.random.default_rng(6)
    a = rng.integers(-4, 5, (12, 3)).astype(np.float32)
    b = rng.integers(-4, 5, (4, 3)).astype(np.float32)
    big = np.ones((13, 5), dtype=np.float32)
    c = big[:12, 1:]  # rows strided by 5
    monkeypatch.setattr(_blas, "_MAX_DIM", 5)  # rows in pieces of 5, 5, 2
    _blas.sgemm_acc(a, b, c, True)
    np.testing.assert_array_equal(c, a @ b.T + 1)
    _blas.sgemm_acc(a, b, c, False)
    np.testing.assert_array_equal(c, a @ b.T)
    assert np.all(big[:, 0] == 1) and np.all(big[12] == 1)  # nothing outside c
    with pytest.raises(ValueError, match="exceeds"):
        _blas.sgemm_acc(np.ones((2, 6), np.float32), np.ones((2, 6), np.float32),
                        np.ones((2, 2), np.float32), False)
