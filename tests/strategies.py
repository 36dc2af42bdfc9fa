"""Hypothesis strategies shared by the reference, layout and conformance tests.

The adversarial values are built from each format's grid (read by :mod:`oracle` from the
spec, not from the package): representable values, midpoints between neighbours (ties),
one float64 / float32 ulp either side of a midpoint, powers of two and their neighbours,
values beyond the largest normal (saturation), half the smallest subnormal, zeros of
both signs, and non-finite values.  Each is then multiplied by ``2**X`` for a block
exponent ``X`` so that every scale byte gets exercised.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from hypothesis import strategies as st

import oracle

FORMAT_NAMES: tuple[str, ...] = tuple(oracle.spec()["formats"])
SCALE_MODES: tuple[str, ...] = tuple(oracle.spec()["scale_modes"])
ROUNDINGS: tuple[str, ...] = tuple(oracle.spec()["rounding_modes"])
DETERMINISTIC_ROUNDINGS: tuple[str, ...] = tuple(r for r in ROUNDINGS if r != "stochastic")
INPUT_DTYPES = (np.float16, np.float32, np.float64)
BLOCK = oracle.BLOCK


def _f32_neighbours(v: float) -> list[float]:
    f = np.float32(v)
    return [float(np.nextafter(f, np.float32(-np.inf))), float(np.nextafter(f, np.float32(np.inf)))]


@functools.cache
def special_magnitudes(name: str) -> tuple[float, ...]:
    """Non-negative adversarial magnitudes of format ``name`` at block exponent 0."""
    g = oracle.grid(name)
    values = [float(v) for v in g.values]
    mids = [(a + b) / 2 for a, b in zip(values, values[1:])]
    out = set(values) | set(mids)
    for mid in mids:
        out.update({math.nextafter(mid, 0.0), math.nextafter(mid, math.inf)})
        out.update(_f32_neighbours(mid))
    top = 2.0 ** (g.emax + 1)
    smallest = values[1]
    out.update({smallest / 2, smallest / 4, smallest * 0.75, smallest / 2**20})
    out.update({(float(g.max_normal) + top) / 2, math.nextafter(top, 0.0), top, 2 * top, 1e6})
    for k in range(-12, g.emax + 3):
        p = 2.0**k
        out.update({p, math.nextafter(p, 0.0), math.nextafter(p, math.inf)})
        out.update(_f32_neighbours(p))
    return tuple(sorted(out))


@st.composite
def adversarial_values(draw: st.DrawFn, name: str, x: int) -> float:
    """One adversarial float64 for format ``name`` scaled by ``2**x`` (finite)."""
    kind = draw(st.sampled_from(["special", "special", "special", "zero", "uniform"]))
    if kind == "zero":
        return draw(st.sampled_from([0.0, -0.0]))
    if kind == "uniform":
        mag = draw(st.floats(0.0, 2.0 ** (oracle.grid(name).emax + 1), allow_subnormal=True))
    else:
        mag = draw(st.sampled_from(special_magnitudes(name)))
    sign = draw(st.sampled_from([1.0, -1.0]))
    return sign * math.ldexp(mag, x)


@st.composite
def blocks(
    draw: st.DrawFn,
    name: str,
    *,
    n_blocks: int = 1,
    x_range: tuple[int, int] = (-24, 24),
    nonfinite: bool = True,
) -> np.ndarray:
    """A float64 ``(n_blocks, 32)`` array of adversarial blocks of format ``name``.

    Each block has its own exponent ``X``; with ``nonfinite`` some blocks hold a NaN or
    an infinity in one lane.
    """
    rows = []
    for _ in range(n_blocks):
        x = draw(st.one_of(st.integers(*x_range), st.sampled_from([-150, -130, -127, 127, 140])))
        row = draw(st.lists(adversarial_values(name, x), min_size=BLOCK, max_size=BLOCK))
        if nonfinite and draw(st.integers(0, 7)) == 0:
            lane = draw(st.integers(0, BLOCK - 1))
            row[lane] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        rows.append(row)
    return np.array(rows, dtype=np.float64)


def _cap(shape: list[int], max_elements: int) -> tuple[int, ...]:
    """Halve the largest dimension until the shape holds at most ``max_elements``."""
    shape = list(shape)
    while math.prod(shape) > max_elements:
        i = shape.index(max(shape))
        shape[i] = max(1, shape[i] // 2)
    return tuple(shape)


def shapes_and_axes(
    max_dims: int = 3, max_side: int = 70, max_elements: int = 20_000
) -> st.SearchStrategy:
    """``(shape, axis)`` pairs: 1..max_dims dims, partial blocks, negative axes."""
    return st.lists(st.integers(1, max_side), min_size=1, max_size=max_dims).map(
        lambda shape: _cap(shape, max_elements)
    ).flatmap(
        lambda shape: st.tuples(st.just(shape), st.integers(-len(shape), len(shape) - 1))
    )


@st.composite
def arrays(draw: st.DrawFn, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` filled from a pool of adversarial values of ``name``.

    A small pool drawn by Hypothesis is spread over the array by a seeded NumPy generator,
    so that large shapes stay cheap to generate.
    """
    x = draw(st.integers(-10, 10))
    pool = draw(st.lists(adversarial_values(name, x), min_size=1, max_size=48))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    picks = rng.integers(0, len(pool), size=int(np.prod(shape)))
    with np.errstate(over="ignore"):
        return np.array(pool, dtype=np.float64)[picks].astype(dtype).reshape(shape)


seeds = st.integers(0, 2**64 - 1)
