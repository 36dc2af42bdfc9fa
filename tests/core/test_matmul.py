"""The MX matmul (mxarray.core.matmul) against exact evaluation, within the spec's bound.

The spec allows ``|C - C_exact| <= (K + 2) * 2**-24 * sum_k |A_k| |B_k|`` where ``A_k`` and
``B_k`` are the dequantized (exact MX) values; :func:`oracle.check_dot_bound` checks it, with
an absolute allowance for float32 underflow that the spec's relative bound lacks.  Small
cases are evaluated exactly with fractions, larger ones with ``math.fsum``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import mxarray
from support import oracle
from support import strategies as mxst
from mxarray.core import matmul

NAMES = mxst.FORMAT_NAMES


def _values(q: mxarray.MXArray) -> np.ndarray:
    return mxarray.dequantize(q, np.float64)


@given(data=st.data(), fa=st.sampled_from(NAMES), fb=st.sampled_from(NAMES),
       m=st.integers(1, 4), n=st.integers(1, 4), k=st.integers(1, 100))
def test_2d_against_exact_fractions(data, fa, fb, m, n, k) -> None:
    a = mxarray.quantize(data.draw(mxst.arrays(fa, (m, k))), fa, backend="numpy")
    b = mxarray.quantize(data.draw(mxst.arrays(fb, (k, n))), fb, axis=0, backend="numpy")
    oracle.check_dot_bound(matmul(a, b, backend="numpy"), _values(a), _values(b), exact=True)


def test_cancellation_is_within_the_bound() -> None:
    """Large terms that cancel: the bound is relative to sum |A||B|, not to |C|."""
    k = 96
    x = np.zeros((1, k))
    x[0, :32] = 448.0
    x[0, 32:64] = -448.0
    x[0, 64:] = 2.0**-9
    a = mxarray.quantize(x, "mxfp8_e4m3", backend="numpy")
    b = mxarray.quantize(np.ones((k, 1)), "mxfp8_e4m3", axis=0, backend="numpy")
    c = matmul(a, b, backend="numpy")
    oracle.check_dot_bound(c, _values(a), _values(b), exact=True)
    assert c[0, 0] == np.float32(32 * 2.0**-9)  # the reference evaluates exactly here


@given(data=st.data(), fa=st.sampled_from(NAMES), fb=st.sampled_from(NAMES))
def test_batched_with_broadcasting(data, fa, fb) -> None:
    k = data.draw(st.integers(1, 70))
    a = mxarray.quantize(data.draw(mxst.arrays(fa, (2, 1, 3, k))), fa, backend="numpy")
    b = mxarray.quantize(data.draw(mxst.arrays(fb, (4, k, 2))), fb, axis=-2, backend="numpy")
    c = matmul(a, b, backend="numpy")
    assert c.shape == (2, 4, 3, 2) and c.dtype == np.float32
    av, bv = _values(a), _values(b)
    for i in range(2):
        for j in range(4):
            oracle.check_dot_bound(c[i, j], av[i, 0], bv[j], exact=False)


@pytest.mark.parametrize("fa, fb", [("mxfp4_e2m1", "mxint8"), ("mxfp8_e5m2", "mxfp6_e2m3")])
def test_one_dimensional_operands(fa, fb) -> None:
    rng = np.random.default_rng(3)
    k = 45
    av = rng.standard_normal(k)
    bm = rng.standard_normal((k, 3))
    am = rng.standard_normal((2, k))
    bv = rng.standard_normal(k)
    a1 = mxarray.quantize(av, fa, backend="numpy")
    b1 = mxarray.quantize(bv, fb, backend="numpy")  # 1-D: blocked along axis 0 = its K axis
    a2 = mxarray.quantize(am, fa, backend="numpy")
    b2 = mxarray.quantize(bm, fb, axis=0, backend="numpy")

    vec_mat = matmul(a1, b2, backend="numpy")
    assert vec_mat.shape == (3,)
    oracle.check_dot_bound(vec_mat[None, :], _values(a1)[None, :], _values(b2), exact=True)

    mat_vec = matmul(a2, b1, backend="numpy")
    assert mat_vec.shape == (2,)
    oracle.check_dot_bound(mat_vec[:, None], _values(a2), _values(b1)[:, None], exact=True)

    dot = matmul(a1, b1, backend="numpy")
    assert np.shape(dot) == ()
    oracle.check_dot_bound(np.reshape(dot, (1, 1)), _values(a1)[None, :], _values(b1)[:, None],
                           exact=True)


@pytest.mark.parametrize("name", NAMES)
def test_nan_scale_blocks_give_nan(name) -> None:
    x = np.linspace(-2, 2, 3 * 64).reshape(3, 64)
    x[1, 40] = np.nan  # block 1 of row 1 gets scale 0xFF
    y = np.linspace(1, 3, 64 * 2).reshape(64, 2)
    a = mxarray.quantize(x, name, backend="numpy")
    b = mxarray.quantize(y, name, axis=0, backend="numpy")
    c = matmul(a, b, backend="numpy")
    assert np.isnan(c[1]).all() and np.isfinite(c[[0, 2]]).all()
    yz = np.zeros((64, 2))
    c0 = matmul(a, mxarray.quantize(yz, name, axis=0, backend="numpy"), backend="numpy")
    assert np.isnan(c0[1]).all()  # NaN times zero is still NaN


@pytest.mark.parametrize("k", [1, 31, 33, 45, 95])
def test_zero_k_padding_is_harmless(k) -> None:
    rng = np.random.default_rng(k)
    x, y = rng.standard_normal((3, k)), rng.standard_normal((k, 2))
    kp = -(-k // 32) * 32
    xp, yp = np.zeros((3, kp)), np.zeros((kp, 2))
    xp[:, :k], yp[:k] = x, y
    a, b = (mxarray.quantize(x, "mxfp6_e3m2", backend="numpy"),
            mxarray.quantize(y, "mxfp4_e2m1", axis=0, backend="numpy"))
    ap, bp = (mxarray.quantize(xp, "mxfp6_e3m2", backend="numpy"),
              mxarray.quantize(yp, "mxfp4_e2m1", axis=0, backend="numpy"))
    c, cp = matmul(a, b, backend="numpy"), matmul(ap, bp, backend="numpy")
    oracle.check_dot_bound(c, _values(a), _values(b), exact=True)
    oracle.check_dot_bound(cp, _values(ap)[:, :k], _values(bp)[:k], exact=True)
    assert np.allclose(c, cp, rtol=(k + 2) * 2.0**-23, atol=0)


def test_matches_the_documented_example() -> None:
    a = mxarray.quantize(np.ones((2, 64)), "mxfp8_e4m3", backend="numpy")
    b = mxarray.quantize(np.full((64, 3), 0.5), "mxfp8_e4m3", axis=0, backend="numpy")
    assert matmul(a, b, backend="numpy").tolist() == [[32.0] * 3] * 2
