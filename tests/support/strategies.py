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

from support import oracle

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
    return _specials(oracle.grid(name))


@functools.cache
def element_specials(name: str) -> tuple[float, ...]:
    """Adversarial magnitudes of the element of block format ``name`` (exponent 0)."""
    return _specials(oracle.element_grid(name))


def _specials(g: oracle.Grid) -> tuple[float, ...]:
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


# --- general block formats (spec [block_formats]) ----------------------------------------

BLOCK_FORMAT_NAMES: tuple[str, ...] = tuple(oracle.spec()["block_formats"])
SUB_BLOCK_NAMES = tuple(n for n in BLOCK_FORMAT_NAMES if "sub_block_size" in oracle.entry(n))
TWO_LEVEL_NAMES = tuple(n for n in BLOCK_FORMAT_NAMES if oracle.entry(n)["scale"] == "ue4m3")


@st.composite
def sub_block_rows(draw: st.DrawFn, name: str, *, n_blocks: int = 1,
                   nonfinite: bool = True) -> np.ndarray:
    """``(n_blocks, block_size)`` float64 blocks that exercise the microexponent choice.

    Each block has an exponent ``X``; each sub-block sits ``k`` binades below it (k = 0:
    microexponent 0; k = 1: microexponent 1; k >= 2: capped) or is all zero, and its
    elements are adversarial magnitudes (grid values, ties, neighbours, saturating
    values) of the element grid at that level, with both signs and signed zeros.
    """
    e = oracle.entry(name)
    size, sub = e["block_size"], e["sub_block_size"]
    rows = []
    for _ in range(n_blocks):
        x = draw(st.one_of(st.integers(-20, 20), st.sampled_from([-150, -130, -127, 127, 140])))
        row: list[float] = []
        for _ in range(size // sub):
            k = draw(st.sampled_from([0, 0, 1, 1, 2, 5, None]))
            for _ in range(sub):
                if k is None or draw(st.integers(0, 9)) == 0:
                    row.append(draw(st.sampled_from([0.0, -0.0])))
                    continue
                mag = draw(st.sampled_from(element_specials(name)))
                row.append(draw(st.sampled_from([1.0, -1.0])) * math.ldexp(mag, x - k))
        if nonfinite and draw(st.integers(0, 7)) == 0:
            row[draw(st.integers(0, size - 1))] = draw(st.sampled_from([math.nan, math.inf]))
        rows.append(row)
    return np.array(rows, dtype=np.float64)


@functools.cache
def _e4m3_points() -> tuple[float, ...]:
    """UE4M3 grid values and midpoints: block scales, and ties of the block-scale rounding."""
    values = [float(v) for v in oracle.grid("mxfp8_e4m3").values[:127]]
    return tuple(values + [(a + b) / 2 for a, b in zip(values, values[1:])] + [512.0, 2**-11])


@st.composite
def two_level_case(draw: st.DrawFn, name: str, *, n_blocks: int = 2,
                   nonfinite: bool = True) -> tuple[np.ndarray, float | None]:
    """Blocks and an optional user tensor scale for a UE4M3-scaled format (NVFP4).

    Each block is built around a block scale ``s`` (a UE4M3 value or a midpoint, so that
    the block-scale rounding meets ties) times a tensor scale ``S``: its elements are
    adversarial element magnitudes times ``s * S`` (element ties, saturation, zeros).
    """
    s_t = draw(st.sampled_from([None, None, 1.0, 2.0**-10, 3.0 * 2**-7]) | st.floats(
        2.0**-100, 2.0**100, width=32))
    base = 1.0 if s_t is None else s_t
    size = oracle.entry(name)["block_size"]
    rows = []
    for _ in range(n_blocks):
        s = draw(st.sampled_from(_e4m3_points()))
        row = []
        for _ in range(size):
            if draw(st.integers(0, 9)) == 0:
                row.append(draw(st.sampled_from([0.0, -0.0])))
                continue
            mag = draw(st.sampled_from(element_specials(name)))
            row.append(draw(st.sampled_from([1.0, -1.0])) * mag * s * base)
        if nonfinite and draw(st.integers(0, 7)) == 0:
            row[draw(st.integers(0, size - 1))] = draw(st.sampled_from([math.nan, -math.inf]))
        rows.append(row)
    return np.array(rows, dtype=np.float64), s_t
