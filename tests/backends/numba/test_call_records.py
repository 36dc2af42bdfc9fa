"""The Numba backend reuses kernel-call records and compiled entry points across calls
(:mod:`mxarray.backends.numba.params`, :mod:`mxarray.backends.numba.threads`): calls
that alternate formats, tensor scales, modes and input layouts must each give the
reference's bits, never a record or an overload left from the call before."""

from __future__ import annotations

import numpy as np
import pytest

from mxarray.backends.numpy_backend import NumpyBackend
from support.backend_calls import qopts

numba = pytest.importorskip("numba", reason="needs the optional numba package (numba extra)")
from mxarray.backends.numba import NumbaBackend  # noqa: E402  (after the importorskip)
from mxarray.backends.numba import params as P  # noqa: E402

REF = NumpyBackend()
FAST = NumbaBackend()


def _check(x: np.ndarray, options) -> None:
    codes, scales = REF.quantize_blocks(x, options)
    packed, fast_scales = FAST.quantize(x, options)
    assert np.array_equal(fast_scales, scales)
    assert np.array_equal(packed, REF.pack(codes, options.fmt))


def test_alternating_formats_and_modes_give_reference_bits() -> None:
    x = np.random.default_rng(3).standard_normal((4, 32)).astype(np.float32) * 3.0
    frozen = x.copy()
    frozen.flags.writeable = False  # another Numba array type: another entry point
    calls = [("mxfp8_e4m3", "even", "floor"), ("mxfp8_e5m2", "even", "floor"),
             ("mxfp4_e2m1", "even", "rceil"), ("mxfp8_e4m3", "toward_zero", "ceil"),
             ("mxfp6_e2m3", "even", "floor")]
    for _ in range(2):
        for fmt, rounding, scale_mode in calls:
            for values in (x, frozen, x.astype(np.float64)):
                _check(values, qopts(fmt, rounding, scale_mode))


def test_alternating_tensor_scales_give_reference_bits() -> None:
    x = np.random.default_rng(4).standard_normal((4, 16)).astype(np.float32) * 100.0
    for _ in range(2):
        for s_t in (1.0, 2.0**-3, 0.75, 3.5e-3):
            for rounding in ("even", "toward_zero"):
                _check(x, qopts("nvfp4", rounding, tensor_scale=s_t))


def test_records_are_reused_and_keyed_exactly() -> None:
    opts = qopts("mxfp8_e4m3")
    assert P.modes(opts) is P.modes(qopts("mxfp4_e2m1"))
    assert P.modes(qopts("mxfp8_e4m3", "stochastic", seed=5)).seed == np.uint64(5)
    assert P.modes(qopts("mxfp8_e4m3", "stochastic", seed=6)).seed == np.uint64(6)
    fmt = opts.fmt
    assert P.pack_layout(fmt, True) is P.pack_layout(fmt, True)
    nv = qopts("nvfp4").fmt
    a, b = (P.ue4m3_grid(nv, "even", np.float32(s)) for s in (0.5, 0.25))
    assert (a.tensor_scale, b.tensor_scale) == (0.5, 0.25)
    assert a is P.ue4m3_grid(nv, "even", np.float32(0.5))
    zeros = [P.ue4m3_grid(nv, "even", np.float32(z)).scale_unit for z in (0.0, -0.0)]
    assert [np.signbit(z) for z in zeros] == [False, True]


def test_entry_keys_tell_equal_records_of_other_types_apart() -> None:
    from mxarray.backends.numba import ocp_kernels, threads

    kernel = ocp_kernels.quantize_rows_f32
    typed, untyped = P.Modes(1, 0, np.uint64(5)), P.Modes(1, 0, 5)  # equal, not one type
    assert typed == untyped
    key = threads._ENTRIES.key
    assert key(kernel, (typed,)) != key(kernel, (untyped,))
    rows = np.zeros((2, 32), np.uint32)
    frozen = rows.copy()
    frozen.flags.writeable = False
    assert len({key(kernel, (a,)) for a in (rows, frozen, rows.T, rows[:, ::2])}) == 4
    assert key(kernel, ([1, 2],)) is None  # mutable: the dispatcher types it each call
