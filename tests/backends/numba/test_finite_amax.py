"""The Numba backend's amax kernel (the tensor scale's amax) against the base method."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba", reason="needs the optional numba package")
from mxarray.backends.base import Backend  # noqa: E402
from mxarray.backends.numba import NumbaBackend  # noqa: E402
from mxarray.backends.numpy_backend import NumpyBackend  # noqa: E402

FAST, REF = NumbaBackend(), NumpyBackend()
FLOATS = {np.uint16: np.float16, np.uint32: np.float32, np.uint64: np.float64}


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(FLOATS, key=str)), n=st.sampled_from([0, 1, 7, 65535, 65537, 200003]),
       seed=st.integers(0, 2**32 - 1), specials=st.lists(st.sampled_from(
           ["inf", "-inf", "nan", "-nan", "max", "-max", "sub", "zero"]), max_size=4))
def test_numba_amax_is_the_base_methods(kind, n, seed, specials):
    """Random bit patterns (every sign, NaN payloads, Inf, subnormals) give the largest
    finite magnitude's pattern, as the base method's array operations do."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, np.iinfo(kind).max, size=n, dtype=kind, endpoint=True)
    values = bits.view(FLOATS[kind])
    fi = np.finfo(FLOATS[kind])
    table = {"inf": np.inf, "-inf": -np.inf, "nan": np.nan, "-nan": -np.nan, "max": fi.max,
             "-max": -fi.max, "sub": fi.smallest_subnormal, "zero": -0.0}
    for name in specials:
        if n:
            values[rng.integers(0, n)] = table[name]
    width = np.dtype(kind).itemsize * 8
    mask, nonfinite = (1 << (width - 1)) - 1, int(np.array(np.inf, FLOATS[kind]).view(kind))
    want = Backend.finite_magnitude_max(REF, bits.copy(), mask, nonfinite)
    assert FAST.finite_magnitude_max(bits, mask, nonfinite) == want
    finite = np.abs(values[np.isfinite(values)])
    assert want == (int(finite.max().view(kind)) if finite.size else 0)
