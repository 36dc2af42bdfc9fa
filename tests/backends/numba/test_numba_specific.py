"""Numba-only concerns: the on-disk kernel cache, compile-failure fallback, and the
packed fast paths that only this backend offers (checked against the NumPy reference).

The backend interface itself is checked against the reference by the shared
conformance suite (``fast_backend`` fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mxarray
from mxarray.backends.numpy_backend import NumpyBackend
from mxarray.formats import FORMATS

numba = pytest.importorskip("numba", reason="needs the optional numba package (numba extra)")
from mxarray.backends.numba import NumbaBackend  # noqa: E402  (after the importorskip)
from mxarray.backends.numba import matmul as numba_matmul  # noqa: E402
from mxarray.backends.numba import ocp_kernels, transpose  # noqa: E402
from mxarray.backends.numba.params import general_matmul_dtype  # noqa: E402
from support.backend_calls import decoded, dopts, matmul_bytes, matmul_codes, qopts

import mxarray.backends as registry
REF = NumpyBackend()
FAST = NumbaBackend()


def _sample(rng: np.random.Generator, dtype, n_blocks: int = 64) -> np.ndarray:
    spread = np.exp2(rng.integers(-40, 40, (n_blocks, 1)))
    with np.errstate(over="ignore"):  # float16 overflows to inf: a non-finite block
        x = (rng.standard_normal((n_blocks, 32)) * spread).astype(dtype)
    x[0, 1] = np.nan
    x[1, :] = -0.0
    x[2, 3] = -np.inf
    x[3, :] = np.finfo(dtype).smallest_subnormal * np.arange(-16, 16)
    return x


def test_kernels_load_from_disk_cache_in_fresh_process(tmp_path) -> None:
    """A second new process finds every kernel it runs in the on-disk cache."""
    script = textwrap.dedent(
        """
        import json, numpy as np, mxarray
        from mxarray.backends.numba import ocp_kernels as k
        x = np.linspace(-5, 5, 96, dtype=np.float32).reshape(3, 32)
        a = mxarray.quantize(x, "mxfp4_e2m1", backend="numba")
        mxarray.dequantize(a, backend="numba")
        used = [k.quantize_rows_f32, k.dequantize_rows]  # what the public API runs
        print(json.dumps([[f.stats.cache_hits.total(), f.stats.cache_misses.total()]
                          for f in used]))
        """
    )
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True, text=True, check=True, cwd=tmp_path,
            ).stdout
        )
        for _ in range(2)
    ]
    for hits, misses in runs[1]:
        assert hits >= 1 and misses == 0, runs


def test_compile_failure_falls_back_with_warning(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise numba.core.errors.TypingError("simulated compile failure")

    monkeypatch.setattr(transpose, "copy_tiles", fail)
    ok, why = FAST.available()
    assert not ok and "simulated compile failure" in why

    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_global_choice", None)
    registry.register_backend(
        "numba", NumbaBackend, priority=10, fallback_warning=True
    )
    monkeypatch.setattr(NumbaBackend, "available", lambda self: (False, why))
    with pytest.warns(RuntimeWarning, match="simulated compile failure"):
        assert mxarray.get_backend().name == "numpy"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("rounding", ["even", "stochastic"])
@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_quantize_packed_matches_reference(fmt, rounding, dtype) -> None:
    x = _sample(np.random.default_rng(7), dtype)
    seed = 2**63 + 12345 if rounding == "stochastic" else None
    codes, scales = REF.quantize_blocks(x, qopts(fmt, rounding, "floor", seed))
    packed, fast_scales = FAST.quantize(x, qopts(fmt, rounding, "floor", seed))
    assert np.array_equal(fast_scales, scales)
    assert np.array_equal(packed, REF.pack(codes, fmt))
    for dt in (np.float32, np.float64):
        want = REF.dequantize_blocks(codes, scales, dopts(fmt, dt))
        got = FAST.dequantize(packed, scales, dopts(fmt, dt))
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("scale", [1.0, 2.0**-60, 2.0**60], ids=["unit", "tiny", "huge"])
@pytest.mark.parametrize(
    "fa,fb", [("mxfp8_e4m3", "mxfp4_e2m1"), ("mxfp8_e5m2", "mxfp8_e5m2"), ("mxint8", "mxfp6_e2m3")]
)
def test_matmul_packed_within_bound(fa, fb, scale) -> None:
    """Tiles in float32 or (for extreme scales) float64 both keep the spec's bound."""
    fa, fb = FORMATS[fa], FORMATS[fb]
    rng = np.random.default_rng(3)
    batch, m, n, kb = 2, 19, 11, 3
    a = rng.standard_normal((batch * m, kb * 32)) * scale
    b = rng.standard_normal((batch * n, kb * 32)) * scale
    ac, as_ = REF.quantize_blocks(a.reshape(-1, 32), qopts(fa, "even", "floor", None))
    bc, bs_ = REF.quantize_blocks(b.reshape(-1, 32), qopts(fb, "even", "floor", None))
    as_, bs_ = as_.reshape(batch, m, kb), bs_.reshape(batch, n, kb)
    ac, bc = ac.reshape(batch, m, kb, 32), bc.reshape(batch, n, kb, 32)
    got = matmul_bytes(FAST, REF.pack(ac.reshape(batch, m, -1), fa), as_, fa, REF.pack(bc.reshape(batch, n, -1), fb), bs_, fb)
    np.testing.assert_array_equal(got, matmul_codes(FAST, ac, as_, fa, bc, bs_, fb))
    wide = general_matmul_dtype(fa, as_, fb, bs_, kb * 32) == np.float64
    if scale == 1.0:
        assert not wide  # the float32 path
    elif fa.name == fb.name == "mxfp8_e5m2":
        assert wide  # products below 2**-149 or sums beyond 2**128 need float64 tiles
    da, db = decoded(ac, as_, fa), decoded(bc, bs_, fb)
    exact = np.matmul(da, np.swapaxes(db, -1, -2))
    bound = (kb * 32 + 2) * 2.0**-24 * np.matmul(np.abs(da), np.swapaxes(np.abs(db), -1, -2))
    assert got.dtype == np.float32
    assert np.all(np.abs(got - exact) <= bound)


def test_matmul_many_small_tiles(monkeypatch) -> None:
    """Ragged tiles (edges included) cover the result exactly once, within the bound."""
    fmt = FORMATS["mxfp8_e4m3"]
    rng = np.random.default_rng(5)
    ac, as_ = REF.quantize_blocks(rng.standard_normal((300 * 2, 32)), qopts(fmt, "even", "floor", None))
    bc, bs_ = REF.quantize_blocks(rng.standard_normal((70 * 2, 32)), qopts(fmt, "even", "floor", None))
    args = (ac.reshape(1, 300, 2, 32), as_.reshape(1, 300, 2), fmt,
            bc.reshape(1, 70, 2, 32), bs_.reshape(1, 70, 2), fmt)
    monkeypatch.setattr(numba_matmul, "_tile_shape", lambda m, n, k, size: (7, 13))
    monkeypatch.setattr(numba_matmul, "sgemm_acc", None)  # the row-tile path
    got = matmul_codes(FAST, *args)
    da, db = decoded(*args[:3]), decoded(*args[3:])
    exact = da @ np.swapaxes(db, -1, -2)
    bound = (64 + 2) * 2.0**-24 * (np.abs(da) @ np.swapaxes(np.abs(db), -1, -2))
    assert np.all(np.abs(got - exact) <= bound)


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_dequantize_every_code_and_scale(fmt) -> None:
    """The bit-level element decode equals the reference for every (code, scale byte)
    pair, both output dtypes, one code per byte or packed, fresh or into ``out``."""
    every_code = np.tile(np.arange(fmt.n_codes, dtype=np.uint8), max(1, 32 // fmt.n_codes))
    rows_per_scale = every_code.size // 32
    codes = np.tile(every_code.reshape(rows_per_scale, 32), (256, 1))
    scales = np.repeat(np.arange(256, dtype=np.uint8), rows_per_scale)
    for dt in (np.float32, np.float64):
        want = REF.dequantize_blocks(codes, scales, dopts(fmt, dt))
        out = np.full(want.shape, 7.0, dtype=dt)
        got = [
            FAST.dequantize_blocks(codes, scales, dopts(fmt, dt)),
            FAST.dequantize(REF.pack(codes, fmt), scales, dopts(fmt, dt)),
            FAST.dequantize(REF.pack(codes, fmt), scales, dopts(fmt, dt), out=out),
        ]
        assert got[2] is out
        for g in got:
            assert g.dtype == want.dtype
            np.testing.assert_array_equal(g.view(np.uint8), want.view(np.uint8))  # bitwise


@pytest.mark.parametrize("rounding", ["even", "nearest", "toward_zero"])
@pytest.mark.parametrize("scale_mode", ["floor", "ceil", "rceil", "even"])
@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_float32_kernel_matches_reference(fmt, scale_mode, rounding) -> None:
    """The 32-bit-lane float32 kernel, on ties, exact grid points, saturation, blocks
    below float32's normal range and NaN/Inf blocks, packed and not."""
    rng = np.random.default_rng(11)
    n = 600
    x = rng.standard_normal((n, 32)) * np.exp2(rng.integers(-150, 128, (n, 1)))
    ties = rng.integers(-600, 600, (n, 32)) * 0.125 * np.exp2(rng.integers(-130, 110, (n, 1)))
    x = np.where(rng.random((n, 1)) < 0.5, ties, x)
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    tiny = np.finfo(np.float32).smallest_subnormal
    x[:40] = tiny * rng.integers(-3000, 3000, (40, 32))
    x[40:50] = np.finfo(np.float32).max * rng.uniform(-1, 1, (10, 32))
    x[50:60, 4] = np.nan
    x[60:70, 9] = -np.inf
    codes, scales = REF.quantize_blocks(x, qopts(fmt, rounding, scale_mode, None))
    fast_codes, fast_scales = FAST.quantize_blocks(x, qopts(fmt, rounding, scale_mode, None))
    packed, packed_scales = FAST.quantize(x, qopts(fmt, rounding, scale_mode, None))
    np.testing.assert_array_equal(fast_scales, scales)
    np.testing.assert_array_equal(packed_scales, scales)
    np.testing.assert_array_equal(fast_codes, codes)
    np.testing.assert_array_equal(packed, REF.pack(codes, fmt))


def _mx_operands(rng, batch, m, n, kb, fa, fb):
    a = rng.standard_normal((batch * m * kb, 32))
    b = rng.standard_normal((batch * n * kb, 32))
    ac, as_ = REF.quantize_blocks(a, qopts(fa, "even", "floor", None))
    bc, bs_ = REF.quantize_blocks(b, qopts(fb, "even", "floor", None))
    return (ac.reshape(batch, m, kb, 32), as_.reshape(batch, m, kb), fa,
            bc.reshape(batch, n, kb, 32), bs_.reshape(batch, n, kb), fb)


@pytest.mark.skipif(numba_matmul.sgemm_acc is None,
                    reason="needs NumPy's bundled OpenBLAS with CBLAS sgemm")
@pytest.mark.parametrize("panel_blocks", [1, 3])
def test_matmul_k_panels_within_bound(monkeypatch, panel_blocks) -> None:
    """K-panels (a ragged last one included) accumulate into the result within the bound."""
    fa, fb = FORMATS["mxfp6_e2m3"], FORMATS["mxfp4_e2m1"]
    args = _mx_operands(np.random.default_rng(9), 2, 37, 23, 7, fa, fb)
    monkeypatch.setattr(numba_matmul, "_panel_blocks", lambda m, n, kb, bs: panel_blocks)
    got = matmul_codes(FAST, *args)
    da, db = decoded(*args[:3]), decoded(*args[3:])
    exact = da @ np.swapaxes(db, -1, -2)
    bound = (7 * 32 + 2) * 2.0**-24 * (np.abs(da) @ np.swapaxes(np.abs(db), -1, -2))
    assert got.dtype == np.float32 and got.shape == (2, 37, 23)
    assert np.all(np.abs(got - exact) <= bound)


@pytest.mark.skipif(numba_matmul.sgemm_acc is None,
                    reason="needs NumPy's bundled OpenBLAS with CBLAS sgemm")
def test_sgemm_acc_overwrites_then_accumulates() -> None:
    from mxarray.backends._blas import sgemm_acc

    rng = np.random.default_rng(2)
    a = rng.integers(-8, 8, (5, 6)).astype(np.float32)
    b = rng.integers(-8, 8, (4, 6)).astype(np.float32)
    c = np.full((5, 4), np.nan, dtype=np.float32)
    sgemm_acc(a, b, c, False)
    np.testing.assert_array_equal(c, a @ b.T)  # small integers: exact
    sgemm_acc(a, b, c, True)
    np.testing.assert_array_equal(c, 2 * (a @ b.T))
    with pytest.raises(ValueError):
        sgemm_acc(a, b, np.empty((4, 5), dtype=np.float32), False)


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=str)
def test_decode_panel_windows_match_reference(fmt) -> None:
    """Matmul panels (row and K-block windows of a packed operand, over several parallel
    work items with their prefetches, a ragged last one included) hold exactly the
    reference's decoded values."""
    rng = np.random.default_rng(13)
    rows, kb = 71, 9
    codes = rng.integers(0, fmt.n_codes, (rows * kb, 32)).astype(np.uint8)
    scales = rng.integers(110, 140, rows * kb).astype(np.uint8)
    want = REF.dequantize_blocks(codes, scales, dopts(fmt, np.float32)).reshape(rows, kb * 32)
    operand = numba_matmul.PanelOperand(
        REF.pack(codes, fmt).reshape(1, rows, -1), scales.reshape(1, rows, kb), fmt, 1.0)
    decode = FAST._family(fmt).decoder(operand, np.dtype(np.float32))
    windows = [(0, rows, 0, kb), (5, 66, 2, 4), (70, 1, 8, 1), (33, 38, 0, 1)]
    for row0, n_rows, kb0, width in windows:
        out = np.full((n_rows, width * 32), np.nan, dtype=np.float32)
        decode(0, row0, kb0 * 32, out)
        window = want[row0 : row0 + n_rows, kb0 * 32 : (kb0 + width) * 32]
        np.testing.assert_array_equal(out.view(np.uint32), window.view(np.uint32))  # bitwise


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mx6"])
def test_matmul_keeps_a_broadcast_operand_single(fmt) -> None:
    """An operand broadcast over the batch is decoded from its one copy: the matmul's
    peak allocation stays near its output and panels, not ``batch`` copies of the
    operand (it was 70x the operand's bytes for a 64-way broadcast), and each batch
    item's result equals the unbroadcast product."""
    import tracemalloc

    rng = np.random.default_rng(8)
    a = mxarray.quantize(rng.standard_normal((256, 4096)).astype(np.float32), fmt,
                         backend="numba")
    b = mxarray.quantize(rng.standard_normal((64, 4096, 8)).astype(np.float32), fmt,
                         axis=-2, backend="numba")
    mxarray.core.matmul(a[:1], b[:1], backend="numba")  # compile outside the measurement
    tracemalloc.start()
    try:
        c = mxarray.core.matmul(a, b, backend="numba")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * a.packed.nbytes + 4 * c.nbytes + 2**21, peak
    for i in (0, 33, 63):
        np.testing.assert_array_equal(c[i], mxarray.core.matmul(a, b[i], backend="numba"))


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "nvfp4"])
@pytest.mark.parametrize(("batch", "m", "n"), [(1, 0, 3), (2, 3, 0), (0, 3, 3)])
def test_matmul_packed_with_an_empty_dimension(fmt, batch, m, n) -> None:
    """An empty batch, M or N gives an empty float32 result (it raised a reshape error)."""
    f = mxarray.get_format(fmt)
    kb = 2
    extra = {} if f.tensor_scale == "none" else {"a_tensor_scale": 1.0, "b_tensor_scale": 1.0}
    c = matmul_bytes(FAST, np.zeros((batch, m, kb * f.bytes_per_block), np.uint8), np.zeros((batch, m, kb), np.uint8), f, np.zeros((batch, n, kb * f.bytes_per_block), np.uint8), np.zeros((batch, n, kb), np.uint8), f, **extra)
    assert c.shape == (batch, m, n) and c.dtype == np.float32
