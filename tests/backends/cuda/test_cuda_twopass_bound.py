"""The two-pass path's dot-product bound against a model of tensor-core accumulation, in
exact rational arithmetic.

The model (spec/mx.toml ``[dot_paths.two_pass]``): the K products (exact: bfloat16 x
bfloat16) are split into parts (the decode tiles and cuBLAS's split-K, each of at least
16 products but the last); within a part, groups of ``g`` products are added to the
float32 running sum by aligning every term to the largest one's exponent, cutting each to
``24 + guard`` bits at that alignment (toward zero), adding exactly and cutting the sum to
24 significant bits; the parts' sums are added in float32, rounding to nearest.  Fasi,
Higham, Mikaitis and Pranesh, "Numerical behavior of NVIDIA tensor cores" (PeerJ Computer
Science, 2021) measured this behaviour on V100, T4 and A100 (g = 4 on V100/T4, 8 on A100
for fp16/bf16 inputs, no guard bits, truncation); Blanchard, Higham, Lopez, Mary and
Pranesh, "Mixed precision block fused multiply-add: error analysis and application to GPU
tensor cores" (SIAM J. Sci. Comput., 2020) gives the block-FMA error analysis.  sm_90's
bf16 HMMA is assumed to behave within this model with g >= 4; the GPU test
(tests/backends/cuda/test_gpu.py) checks it with :func:`truncation_adversary` data.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from support.cuda_adversarial import truncation_adversary
from mxarray.backends import _cuda_two_pass as tp


def _floor_log2(x: Fraction) -> int:
    x = abs(x)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    return e if x >= Fraction(2) ** e else e - 1


def _cut(x: Fraction, quantum_exp: int, nearest: bool = False) -> Fraction:
    """``x`` to a multiple of 2^quantum_exp, toward zero (or to nearest, ties to even)."""
    q = Fraction(2) ** quantum_exp
    n = x / q
    if nearest:
        return round(n) * q  # Fraction rounds half to even
    return math.trunc(n) * q


def _to_f32(x: Fraction, nearest: bool) -> Fraction:
    return x if x == 0 else _cut(x, _floor_log2(x) - 23, nearest)


def model_dot(products: list[Fraction], parts: list[int], g: int, guard: int) -> Fraction:
    """The model's float32 result for ``products`` split into parts of the given sizes."""
    total, start = Fraction(0), 0
    for size in parts:
        s = Fraction(0)
        for i in range(start, start + size, g):
            terms = [s, *products[i:min(i + g, start + size)]]
            nonzero = [t for t in terms if t != 0]
            if not nonzero:
                continue
            e = max(_floor_log2(t) for t in nonzero)
            s = _to_f32(sum(_cut(t, e - 23 - guard) for t in terms), nearest=False)
        total = _to_f32(total + s, nearest=True)
        start += size
    return total


def _parts(rng: np.random.Generator, k: int, split: bool) -> list[int]:
    if not split:
        return [k]
    sizes, left = [], k
    while left > 0:
        size = min(left, int(rng.integers(16, max(17, k // 3))))
        sizes.append(size)
        left -= size
    return sizes


def _bf16_values(rng: np.random.Generator, n: int, spread: int) -> list[Fraction]:
    """Random bfloat16 values (8 significant bits) over 2^+-spread."""
    sig = rng.integers(128, 256, n) * rng.choice([-1, 1], n)
    exp = rng.integers(-spread, spread + 1, n) - 7
    return [Fraction(int(s)) * Fraction(2) ** int(e) for s, e in zip(sig, exp)]


def _check(products: list[Fraction], rng: np.random.Generator) -> float:
    """Run the model over group sizes, guard bits and splits; return the largest
    error / bound ratio (asserting each is at most 1)."""
    k = len(products)
    exact = sum(products)
    bound = tp.two_pass_gamma(k) * sum(abs(p) for p in products)
    worst = 0.0
    for g in (4, 8, 16, 32):
        for guard in (0, 3):
            for split in (False, True):
                got = model_dot(products, _parts(rng, k, split), g, guard)
                ratio = float(abs(got - exact) / bound) if bound else 0.0
                assert ratio <= 1.0, (g, guard, split, ratio)
                worst = max(worst, ratio)
    return worst


@pytest.mark.parametrize("k", [1, 16, 33, 160, 1024])
@pytest.mark.parametrize("spread", [0, 8, 40])
def test_random_products_stay_within_the_bound(k, spread):
    rng = np.random.default_rng(1000 * k + spread)
    a, b = _bf16_values(rng, k, spread), _bf16_values(rng, k, spread)
    _check([x * y for x, y in zip(a, b)], rng)


@pytest.mark.parametrize("k", [64, 1024, 4096])
def test_truncation_adversary_needs_the_restated_bound(k):
    """The adversary's error under the model exceeds the [dot] bound (so the two-pass path
    could not promise it) and comes within a factor of two of the restated bound."""
    rng = np.random.default_rng(k)
    a, b = truncation_adversary(rng, 1, k)
    products = [Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a[0], b[0])]
    abs_sum = sum(abs(p) for p in products)
    got = model_dot(products, [k], 4, 0)
    error = abs(got - sum(products))
    assert error > (k + 2) * Fraction(1, 1 << 24) * abs_sum
    assert error <= tp.two_pass_gamma(k) * abs_sum
    assert error * 2 > tp.two_pass_gamma(k) * abs_sum / 2
    assert _check(products, rng) <= 1.0


def test_cancellation_stays_within_the_bound():
    rng = np.random.default_rng(3)
    big = _bf16_values(rng, 200, 30)
    products = [p for x in big for p in (x, -x * Fraction(255, 256))]
    rng.shuffle(products)
    _check(products, rng)


def test_gamma_grows_like_the_model_and_matches_its_formula():
    assert tp.two_pass_gamma(1) > 0
    for k in (1, 32, 4096, 1 << 20):
        nu = Fraction(k + math.ceil(k / 4) + 2 * math.ceil(k / 16) + 2, 1 << 23)
        assert tp.two_pass_gamma(k) == nu / (1 - nu)
        # about 2.75 K units of 2^-24 for large K, against the [dot] bound's K + 2
        assert tp.two_pass_gamma(k) < Fraction(3 * k + 16, 1 << 24) * (1 + 2 * nu)
