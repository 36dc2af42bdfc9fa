"""An independent, scalar, exact model of the MX spec for the tests.

Written from ``spec/mx.toml`` and the semantics document only, with Python integers and
:class:`fractions.Fraction`: it shares no code with :mod:`mxarray` (not even its decode
tables), so agreeing with it means something.  It is slow (one element at a time) and is
meant for small blocks.
"""

from __future__ import annotations

import bisect
import functools
import math
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

SPEC_PATH = Path(__file__).resolve().parents[2] / "spec" / "mx.toml"
MASK64 = (1 << 64) - 1


@functools.cache
def spec() -> dict:
    """The parsed ``spec/mx.toml`` (read directly, not through the package)."""
    with open(SPEC_PATH, "rb") as f:
        return tomllib.load(f)


BLOCK = spec()["block_size"]
SCALE_BIAS = spec()["scale"]["bias"]
X_MIN = spec()["scale"]["min_exponent"]
X_MAX = spec()["scale"]["max_exponent"]
NAN_SCALE = spec()["scale"]["nan_code"]
GAMMA = spec()["rounding_modes"]["stochastic"]["gamma"]


@dataclass(frozen=True)
class Grid:
    """The non-negative finite magnitudes of one element format, from its bit fields."""

    name: str
    kind: str
    bits: int
    m: int
    emax: int
    max_code: int
    values: tuple[Fraction, ...]  # values[c] = magnitude of code c, c = 0..max_code

    @property
    def max_normal(self) -> Fraction:
        return self.values[self.max_code]

    @property
    def sign_bit(self) -> int:
        return 1 << (self.bits - 1)


def magnitude(kind: str, code: int, m: int, bias: int) -> Fraction:
    """Value of a non-negative code, from the sign/exponent/mantissa (or integer) fields."""
    if kind == "int":
        return Fraction(code, 1 << m)
    exp_field, frac = code >> m, code & ((1 << m) - 1)
    if exp_field == 0:
        return Fraction(frac) * Fraction(2) ** (1 - bias - m)
    return Fraction((1 << m) + frac) * Fraction(2) ** (exp_field - bias - m)


@functools.cache
def grid(name: str) -> Grid:
    """The :class:`Grid` of format ``name``."""
    e = spec()["formats"][name]
    m, bias = e["mantissa_bits"], e["bias"]
    values = tuple(magnitude(e["kind"], c, m, bias) for c in range(e["max_code"] + 1))
    assert list(values) == sorted(values), name
    return Grid(name, e["kind"], e["bits"], m, e["emax"], e["max_code"], values)


def splitmix64(seed: int, n: int) -> int:
    """The ``n``-th output (``n >= 1``) of SplitMix64 started from state ``seed``."""
    z = (seed + n * GAMMA) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def draw(seed: int, index: int) -> int:
    """The 32-bit stochastic-rounding draw of element ``index``."""
    return splitmix64(seed, index + 1) >> 32


def floor_log2(q: Fraction) -> int:
    """Exact ``floor(log2(q))`` of a positive rational."""
    e = q.numerator.bit_length() - q.denominator.bit_length()
    if Fraction(2) ** e > q:
        e -= 1
    return e


def ceil_log2(q: Fraction) -> int:
    """Exact ``ceil(log2(q))`` of a positive rational."""
    e = floor_log2(q)
    return e if Fraction(2) ** e == q else e + 1


def round_half_even(q: Fraction) -> int:
    """Round a non-negative rational to an integer, ties to even."""
    whole = math.floor(q)
    rest = q - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        return whole + 1
    return whole


def shared_exponent(amax: Fraction, g: Grid, scale_mode: str) -> int:
    """The clamped shared exponent X of a finite block with largest magnitude ``amax``."""
    if amax == 0:
        return X_MIN
    if scale_mode == "floor":
        x = floor_log2(amax) - g.emax
    elif scale_mode == "ceil":
        x = ceil_log2(amax) - g.emax
    elif scale_mode == "rceil":
        x = ceil_log2(amax / g.max_normal)
    elif scale_mode == "even":
        e = floor_log2(amax)
        unit = Fraction(2) ** (e - g.m)
        x = floor_log2(round_half_even(amax / unit) * unit) - g.emax
    else:
        raise ValueError(scale_mode)
    return min(max(x, X_MIN), X_MAX)


def encode_magnitude(t: Fraction, g: Grid, rounding: str, r: int | None) -> int:
    """Magnitude code of the scaled magnitude ``t >= 0`` (``r``: the stochastic draw)."""
    if t >= g.max_normal:
        return g.max_code
    hi = bisect.bisect_right(g.values, t)  # values[hi - 1] <= t < values[hi]
    lo = hi - 1
    if g.values[lo] == t:
        return lo
    below, above = t - g.values[lo], g.values[hi] - t
    if rounding == "toward_zero":
        return lo
    if rounding == "stochastic":
        frac = below / (g.values[hi] - g.values[lo])
        return hi if frac * 2**32 > r else lo
    if below != above:
        return lo if below < above else hi
    if rounding == "nearest":
        return hi
    if rounding == "even":
        return lo if lo % 2 == 0 else hi
    raise ValueError(rounding)


def signed_code(mag_code: int, negative: bool, g: Grid) -> int:
    """Attach the sign: sign bit for FP formats, two's complement for integers."""
    if g.kind == "int":
        return (-mag_code) & ((1 << g.bits) - 1) if negative else mag_code
    return mag_code | (g.sign_bit if negative else 0)


def quantize_block(
    values: list[float],
    name: str,
    rounding: str = "even",
    scale_mode: str = "floor",
    seed: int | None = None,
    first_index: int = 0,
) -> tuple[int, list[int]]:
    """Quantize one block (up to 32 Python floats; the rest is zero padding).

    ``first_index`` is the canonical index of the block's lane 0 (``block * 32``), used by
    stochastic rounding.  Returns ``(scale_byte, codes)`` with one code per input value.
    """
    g = grid(name)
    if not all(math.isfinite(v) for v in values):
        return NAN_SCALE, [0] * len(values)
    amax = max((abs(Fraction(v)) for v in values), default=Fraction(0))
    x = shared_exponent(amax, g, scale_mode)
    codes = []
    for lane, v in enumerate(values):
        t = abs(Fraction(v)) / Fraction(2) ** x
        r = draw(seed, first_index + lane) if rounding == "stochastic" else None
        codes.append(signed_code(encode_magnitude(t, g, rounding, r), math.copysign(1, v) < 0, g))
    return x + SCALE_BIAS, codes


def decode(code: int, name: str) -> Fraction | float:
    """Exact value of any code (a Fraction, or float NaN/inf for special codes)."""
    e = spec()["formats"][name]
    if code in e["nan_codes"]:
        return math.nan
    sign = -1 if code & (1 << (e["bits"] - 1)) else 1
    if code in e["inf_codes"]:
        return sign * math.inf
    if e["kind"] == "int":
        return Fraction(code - (1 << e["bits"]) if sign < 0 else code, 1 << e["mantissa_bits"])
    return sign * magnitude("float", code & ((1 << (e["bits"] - 1)) - 1), e["mantissa_bits"],
                            e["bias"])


def dequantize_value(code: int, scale_byte: int, name: str) -> float:
    """``decode(code) * 2**(scale_byte - 127)`` as a float64 (NaN for scale 0xFF)."""
    if scale_byte == NAN_SCALE:
        return math.nan
    v = decode(code, name)
    if isinstance(v, float):
        return v
    out = float(v * Fraction(2) ** (scale_byte - SCALE_BIAS))
    if v == 0 and code & (1 << (spec()["formats"][name]["bits"] - 1)):
        return -0.0 if spec()["formats"][name]["kind"] == "float" else out
    return out


def underflow_slack(k: int) -> Fraction:
    """Absolute allowance for float32 underflow, missing from the spec's relative bound.

    A result (or partial sum) in float32's subnormal range is rounded with an absolute
    error up to ``2**-150``; with ``k`` products and ``k`` additions that is at most
    ``(2k + 1) * 2**-150``.  (The relative bound alone fails, e.g., for a product of two
    1e-24 values, which float32 rounds to zero.)
    """
    return (2 * k + 1) * Fraction(2) ** -150


def check_dot_bound(c, a, b, exact: bool) -> None:
    """Assert the spec's matmul error bound for ``c`` (M, N) float32.

    The bound is ``(K + 2) * 2**-24 * sum_k |A_k| |B_k|`` plus
    :func:`underflow_slack`.

    ``a`` (M, K) and ``b`` (K, N) are the dequantized float64 MX values.  The reference
    value is exact (fractions) when ``exact``, else ``math.fsum`` of the exact float64
    products, whose own error ``2**-53 * sum |A_k B_k|`` is added to the allowance.
    """
    k = a.shape[1]
    assert c.dtype == np.float32 and c.shape == (a.shape[0], b.shape[1])
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            pairs = list(zip(a[i].tolist(), b[:, j].tolist()))
            if exact:
                terms = [Fraction(x) * Fraction(y) for x, y in pairs]
                want, mag = sum(terms, Fraction(0)), sum(map(abs, terms), Fraction(0))
                slack = Fraction(0)
            else:
                terms = [x * y for x, y in pairs]  # exact: no float64 overflow or underflow
                want, mag = Fraction(math.fsum(terms)), Fraction(math.fsum(map(abs, terms)))
                slack = mag * Fraction(2) ** -51  # fsum's rounding, twice
            bound = (k + 2) * Fraction(2) ** -24 * mag + slack + underflow_slack(k)
            assert abs(Fraction(float(c[i, j])) - want) <= bound, (i, j, float(c[i, j]), want)


# ---------------------------------------------------------------------------------
# General block formats ([block_formats] of the spec): MX9/MX6/MX4 (sub-blocks with
# microexponents) and NVFP4 (UE4M3 block scale, float32 tensor scale).  Same rules as
# above, read from the spec's words, in Python integers and Fractions.
# ---------------------------------------------------------------------------------

F32_MAX = (2 - Fraction(2) ** -23) * Fraction(2) ** 127


EXTRA_ENTRIES: dict[str, dict] = {}
"""Block-format entries that tests register at run time, by name."""


def entry(name: str) -> dict:
    """The spec's ``[block_formats]`` entry of ``name`` (or one in :data:`EXTRA_ENTRIES`)."""
    return spec()["block_formats"].get(name) or EXTRA_ENTRIES[name]


@functools.cache
def element_grid(name: str) -> Grid:
    """The element :class:`Grid` of block format ``name`` (its OCP element, or inline)."""
    el = entry(name)["element"]
    if isinstance(el, str):
        return grid(el)
    bits, m = el["bits"], el["mantissa_bits"]
    assert el["kind"] == "signmag"
    top = (1 << (bits - 1)) - 1
    values = tuple(Fraction(k, 1 << m) for k in range(top + 1))
    return Grid(name, "signmag", bits, m, floor_log2(values[-1]), top, values)


def raw_exponent(amax: Fraction, g: Grid, scale_mode: str) -> int:
    """The scale mode's exponent of a positive maximum, before clamping."""
    if scale_mode == "floor":
        return floor_log2(amax) - g.emax
    if scale_mode == "ceil":
        return ceil_log2(amax) - g.emax
    if scale_mode == "rceil":
        return ceil_log2(amax / g.max_normal)
    e = floor_log2(amax)
    unit = Fraction(2) ** (e - g.m)
    return floor_log2(round_half_even(amax / unit) * unit) - g.emax


def round_integer(q: Fraction, rounding: str, r: int | None) -> int:
    """Round ``q >= 0`` to an integer in any rounding mode (``r``: the stochastic draw)."""
    whole = math.floor(q)
    rest = q - whole
    if rounding == "even":
        return round_half_even(q)
    if rounding == "nearest":
        return whole + (rest >= Fraction(1, 2))
    if rounding == "toward_zero":
        return whole
    return whole + (rest * 2**32 > r)


def round_float32(q: Fraction) -> Fraction:
    """``q >= 0`` rounded to float32, ties to even (subnormals included, no overflow)."""
    if q == 0:
        return q
    e = max(floor_log2(q), -126)
    unit = Fraction(2) ** (e - 23)
    return round_half_even(q / unit) * unit


def tensor_scale(amax: Fraction, name: str) -> Fraction:
    """The "amax" tensor scale rule of the spec."""
    if amax == 0:
        return Fraction(1)
    g = element_grid(name)
    top = round_float32(min(amax, F32_MAX))
    denominator = round_float32(g.max_normal * grid("mxfp8_e4m3").values[126])
    return max(round_float32(top / denominator), Fraction(2) ** -149)


def _sub_block_codes(vals, g, x, d, rounding, seed, first, bits):
    """Codes of one sub-block against exponent x - d, and whether a magnitude overflowed."""
    codes, over = [], False
    for lane, v in vals:
        t = abs(Fraction(v)) / Fraction(2) ** (x - d)
        r = draw(seed, first + lane) if rounding == "stochastic" else None
        n = round_integer(t * (1 << g.m), rounding, r)
        over |= n > g.max_code
        codes.append(signed_code(min(n, g.max_code), math.copysign(1, v) < 0, g) | (d << bits))
    return codes, over


def quantize_block_format(
    values: list[float],
    name: str,
    rounding: str = "even",
    scale_mode: str = "floor",
    seed: int | None = None,
    first_index: int = 0,
    s_t: Fraction | None = None,
) -> tuple[int, list[int]]:
    """Quantize one block of block format ``name``; ``s_t`` is the NVFP4 tensor scale.

    Returns ``(scale_byte, unpacked codes)`` (``element | D << bits``).
    """
    e, g = entry(name), element_grid(name)
    if not all(math.isfinite(v) for v in values):
        return (spec()["scale_formats"]["ue4m3"]["nan_code"] if e["scale"] == "ue4m3"
                else NAN_SCALE), [0] * len(values)
    fr = [Fraction(v) for v in values]
    amax = max((abs(v) for v in fr), default=Fraction(0))
    if e["scale"] == "ue4m3":
        e4m3 = grid("mxfp8_e4m3")
        scale_grid = Grid("ue4m3", "float", 8, 3, 8, 126, e4m3.values[:127])
        code = encode_magnitude(amax / (g.max_normal * s_t), scale_grid, "even", None)
        sb = scale_grid.values[code]
        out = []
        for v in values:
            mag = 0 if sb == 0 else encode_magnitude(abs(Fraction(v)) / (sb * s_t), g, rounding,
                                                     None)
            out.append(signed_code(mag, math.copysign(1, v) < 0, g))
        return code, out
    x = shared_exponent(amax, g, scale_mode)
    size, dmax, bits = e["sub_block_size"], (1 << e["sub_block_bits"]) - 1, g.bits
    out = []
    for start in range(0, len(fr), size):
        sub = list(enumerate(values[start:start + size], start))
        a = max(abs(Fraction(v)) for _, v in sub)
        d = 0 if a == 0 else min(max(x - raw_exponent(a, g, scale_mode), 0), dmax)
        codes, over = _sub_block_codes(sub, g, x, d, rounding, seed, first_index, bits)
        while e["magnitude_overflow"] == "promote" and over and d > 0:
            d -= 1
            codes, over = _sub_block_codes(sub, g, x, d, rounding, seed, first_index, bits)
        out += codes
    return x + SCALE_BIAS, out


def dequantize_block_format(code: int, scale_byte: int, name: str,
                            s_t: Fraction | None = None) -> float:
    """Exact value of one unpacked code of block format ``name`` as a float64."""
    e, g = entry(name), element_grid(name)
    element = code & ((1 << g.bits) - 1)
    d = code >> g.bits
    negative = bool(element & g.sign_bit)
    mag = g.values[element & (g.sign_bit - 1)]
    if e["scale"] == "ue4m3":
        if scale_byte >= spec()["scale_formats"]["ue4m3"]["nan_code"]:
            return math.nan
        scale = grid("mxfp8_e4m3").values[scale_byte] * s_t
    else:
        if scale_byte == NAN_SCALE:
            return math.nan
        scale = Fraction(2) ** (scale_byte - SCALE_BIAS)
    value = float(mag * scale / Fraction(2) ** d)
    return -value if negative else value
