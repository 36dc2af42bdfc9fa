"""Why a quantized array looks the way it does: per-block statistics and one block explained.

:func:`block_stats` counts, per block, the elements that saturated and the non-zero
elements that became zero, and histograms the scale bytes.  :func:`explain` walks one
block through the spec's rules (shared exponent, scale byte, rounding onto the element
grid) with exact rational arithmetic, independently of the backends, and says why each
element got its code.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

import numpy as np

from . import layout as blocks
from .array import MXArray
from .core import _as_float_array, quantize
from .formats import Format, check_rounding, check_scale_mode, get_format

__all__ = ["BlockStats", "block_stats", "ElementExplanation", "BlockExplanation", "explain"]

def _float_input(x: Any) -> np.ndarray:
    if isinstance(x, MXArray):
        raise TypeError("x must be the float input, not an MXArray (pass the MXArray as q)")
    return _as_float_array(x, np)  # quantize's checks; big-endian data in native order


# -- per-block statistics -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BlockStats:
    """Per-block counts for one quantization of an array.

    Attributes
    ----------
    format : Format
    block_axis : int
    saturated : ndarray of int64
        Per block (shaped like ``MXArray.scales``): finite elements with
        ``|v| > max_normal * s``, which were clamped to the largest magnitude; ``s`` is
        the block's scale (``2**X``, or the UE4M3 value times the tensor scale for
        NVFP4), halved for each unit of the element's microexponent (MX9/MX6/MX4).
    underflow : ndarray of int64
        Per block: non-zero finite elements whose code decodes to zero.
    nan_blocks : ndarray of bool
        Per block: the scale byte is the scale format's NaN code (0xFF for E8M0, 0x7F
        for UE4M3): the block held a NaN or an infinity.
    scale_histogram : ndarray of int64
        ``scale_histogram[b]`` is the number of blocks with scale byte ``b`` (256 bins).
    """

    format: Format
    block_axis: int
    saturated: np.ndarray
    underflow: np.ndarray
    nan_blocks: np.ndarray
    scale_histogram: np.ndarray

    @property
    def n_blocks(self) -> int:
        """Number of blocks."""
        return int(self.nan_blocks.size)

    def __str__(self) -> str:
        scale = self.format.scale
        used = np.flatnonzero(self.scale_histogram)
        finite = used[used != scale.nan_code]
        if not finite.size:
            span = "none"
        elif scale.kind == "exponent":
            span = f"{int(finite.min()) - scale.bias}..{int(finite.max()) - scale.bias}"
        else:
            span = f"{scale.values[finite.min()]:g}..{scale.values[finite.max()]:g}"
        what = "shared exponents X" if scale.kind == "exponent" else "block scales"
        return "\n".join([
            f"{self.format.name}: {self.n_blocks} block(s) along axis {self.block_axis}",
            f"  saturated elements:   {int(self.saturated.sum())} in "
            f"{int(np.count_nonzero(self.saturated))} block(s)",
            f"  underflow to zero:    {int(self.underflow.sum())} in "
            f"{int(np.count_nonzero(self.underflow))} block(s)",
            f"  NaN blocks:           {int(self.nan_blocks.sum())}",
            f"  {what + ':':<22}{span}",
        ])


def _per_block(mask: np.ndarray, q: MXArray) -> np.ndarray:
    """Sum an element mask over each block; shaped like ``q.scales``."""
    rows = blocks.to_blocks(mask, q.block_axis, q.format.block_size)
    counts = rows.sum(axis=1, dtype=np.int64)
    nb = blocks.n_blocks(q.shape[q.block_axis], q.format.block_size)  # not -1: 0-size lead
    canonical = counts.reshape(blocks.lead_shape(q.shape, q.block_axis) + (nb,))
    return np.moveaxis(canonical, -1, q.block_axis)


def _per_element(per_block: np.ndarray, q: MXArray) -> np.ndarray:
    """Repeat a per-block array along the block axis to the logical shape."""
    rep = np.repeat(per_block, q.format.block_size, axis=q.block_axis)
    return np.take(rep, np.arange(q.shape[q.block_axis]), axis=q.block_axis)


def block_stats(
    x: Any,
    fmt: str | Format | None = None,
    *,
    q: MXArray | None = None,
    axis: int = -1,
    **quantize_kwargs: Any,
) -> BlockStats:
    """Count saturation and underflow per block, and histogram the scale bytes.

    Parameters
    ----------
    x : array_like
        The float input (host memory).
    fmt : str or Format, optional
        Quantize ``x`` into this format (with ``axis`` and ``quantize_kwargs``, as
        :func:`mxarray.quantize`).  Give either ``fmt`` or ``q``.
    q : MXArray, optional
        An existing quantization of ``x`` to examine instead.
    axis : int, optional
        The block axis when quantizing (default the last).

    Returns
    -------
    BlockStats

    Raises
    ------
    TypeError
        If ``x`` is not a float array or ``q`` not an MXArray.
    ValueError
        If both or neither of ``fmt`` and ``q`` are given, or ``q.shape != x.shape``.

    Examples
    --------
    >>> import numpy as np
    >>> from mxarray.diagnostics import block_stats
    >>> s = block_stats(np.array([7.0, 0.1, 1.0, 2.0]), "mxfp4_e2m1")   # X = 2 - 2 = 0
    >>> int(s.saturated[0]), int(s.underflow[0])     # 7 > 6 saturates; 0.1 < 0.25 -> 0
    (1, 1)
    >>> int(s.scale_histogram[127])
    1
    """
    arr = _float_input(x)
    if (fmt is None) == (q is None):
        raise ValueError("give exactly one of fmt (to quantize x) and q (an MXArray of x)")
    if q is None:
        q = quantize(arr, fmt, axis=axis, **quantize_kwargs)  # type: ignore[arg-type]
    elif not isinstance(q, MXArray):
        raise TypeError(f"q must be an MXArray, not {type(q).__name__}")
    if q.shape != arr.shape:
        raise ValueError(f"q has shape {q.shape} but x has shape {arr.shape}")
    q = q.to_device("cpu")
    f = q.format
    scales = np.asarray(q.scales)
    nan_blocks = scales == f.scale.nan_code
    codes = q.codes()
    scale = _per_element(np.nan_to_num(f.scale.decode(scales)), q)
    if q.tensor_scale is not None:
        scale = scale * np.float64(q.tensor_scale)
    values = arr.astype(np.float64)
    live = np.isfinite(values) & ~_per_element(nan_blocks, q)
    with np.errstate(over="ignore"):  # microexponents: a sub-block's grid is 2**-D finer
        limit = np.ldexp(f.max_normal * scale, -(codes >> f.bits).astype(np.int32))
    saturated = live & (limit > 0) & (np.abs(values) > limit)
    underflow = live & (values != 0) & (f.decode(codes) == 0)
    return BlockStats(
        format=f,
        block_axis=q.block_axis,
        saturated=_per_block(saturated, q),
        underflow=_per_block(underflow, q),
        nan_blocks=nan_blocks,
        scale_histogram=np.bincount(scales.ravel(), minlength=256).astype(np.int64),
    )


# -- one block explained --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ElementExplanation:
    """How one element of a block was encoded.

    ``scaled`` is ``value / 2**X``; ``lower`` and ``upper`` are its neighbours on the
    element grid (signed like the value; None where there is none); ``element`` is the
    value of ``code`` before scaling.
    """

    index: int
    value: float
    scaled: Fraction | None
    lower: float | None
    upper: float | None
    code: int
    element: float
    reason: str


@dataclasses.dataclass(frozen=True)
class BlockExplanation:
    """One block walked through the quantization rules; ``str()`` gives a table."""

    format: Format
    block: int
    block_axis: int
    start: int
    rounding: str
    scale_mode: str
    amax: float
    shared_exponent: int | None
    scale_byte: int
    scale_rule: str
    elements: tuple[ElementExplanation, ...]

    @property
    def codes(self) -> np.ndarray:
        """The element codes of the block, as quantize produces them (uint8)."""
        return np.array([e.code for e in self.elements], dtype=np.uint8)

    def __str__(self) -> str:
        f = self.format
        end = self.start + len(self.elements) - 1
        head = [
            f"{f.name} block {self.block}: elements {self.start}..{end} along axis "
            f"{self.block_axis}, rounding {self.rounding!r}, scale mode {self.scale_mode!r}",
            f"amax = {self.amax!r}",
            f"shared exponent X = {self.shared_exponent}: {self.scale_rule}"
            if self.shared_exponent is not None else f"shared exponent X: none ({self.scale_rule})",
            f"scale byte = X + {f.scale.bias} = {self.scale_byte} (0x{self.scale_byte:02X})"
            if self.scale_byte != f.scale.nan_code
            else f"scale byte = 0x{f.scale.nan_code:02X} (NaN): the block holds a NaN or an Inf",
            "",
            f"{'i':>5} {'input':>12} {'input/2**X':>12} {'grid below':>11} {'grid above':>11}"
            f" {'code':>5} {'element':>9}  reason",
        ]

        def num(v: float | Fraction | None, width: int) -> str:
            return f"{'-':>{width}}" if v is None else f"{float(v):>{width}.6g}"

        rows = [
            f"{e.index:>5} {num(e.value, 12)} {num(e.scaled, 12)} {num(e.lower, 11)} "
            f"{num(e.upper, 11)} {f'0x{e.code:02X}':>5} {num(e.element, 9)}  {e.reason}"
            for e in self.elements
        ]
        return "\n".join(head + rows)


def _floor_log2(q: Fraction) -> int:
    """floor(log2(q)) of a positive rational, exactly."""
    k = q.numerator.bit_length() - q.denominator.bit_length()
    return k - 1 if Fraction(2) ** k > q else k


def _shared_exponent(amax: Fraction, fmt: Format, scale_mode: str) -> tuple[int, str]:
    """The shared exponent X of a finite block and the rule that produced it."""
    lo, hi = fmt.scale.min_exponent, fmt.scale.max_exponent
    if amax == 0:
        return lo, f"all-zero block: X = {lo}"
    e = _floor_log2(amax)
    if scale_mode == "floor":
        x, rule = e - fmt.emax, f"floor: X = floor(log2(amax)) - emax = {e} - {fmt.emax}"
    elif scale_mode == "ceil":
        c = e + (amax != Fraction(2) ** e)
        x, rule = c - fmt.emax, f"ceil: X = ceil(log2(amax)) - emax = {c} - {fmt.emax}"
    elif scale_mode == "rceil":
        ratio = amax / Fraction(fmt.max_normal)
        k = _floor_log2(ratio)
        x = k + (ratio != Fraction(2) ** k)
        rule = f"rceil: X = ceil(log2(amax / max_normal)) = ceil(log2({float(ratio):.6g}))"
    else:  # "even": round amax to the element's mantissa width first
        m = fmt.mantissa_bits
        r = _round_half_even(amax * Fraction(2) ** (m - e))
        e2 = e + (r == 2 ** (m + 1))
        x = e2 - fmt.emax
        rule = (f"even: amax rounded to {m} mantissa bits is {float(r * Fraction(2) ** (e - m))!r}"
                f", X = floor(log2 of that) - emax = {e2} - {fmt.emax}")
    if not lo <= x <= hi:
        rule += f" = {x}, clamped to [{lo}, {hi}]"
        x = min(max(x, lo), hi)
    return x, rule


def _round_half_even(q: Fraction) -> int:
    whole = math.floor(q)
    frac = q - whole
    return whole + (frac > Fraction(1, 2) or (frac == Fraction(1, 2) and whole % 2 == 1))


def _choose(mag: Fraction, grid: list[Fraction], rounding: str) -> tuple[int, str]:
    """Index into the magnitude grid and the reason, for ``0 <= mag <= grid[-1]``."""
    k = max(i for i, g in enumerate(grid) if g <= mag)
    if grid[k] == mag:
        return k, "exact"
    mid = (grid[k] + grid[k + 1]) / 2
    if rounding == "toward_zero":
        return k, "truncated toward zero"
    if mag == mid:
        if rounding == "nearest":
            return k + 1, "tie: away from zero"
        up = k % 2 == 1
        return k + up, f"tie: to even ({'up' if up else 'down'})"
    return (k + 1, "rounded up (nearer)") if mag > mid else (k, "rounded down (nearer)")


def _signed_code(k: int, negative: bool, fmt: Format) -> int:
    if fmt.kind == "int":  # two's complement, no negative zero
        return (-k if negative else k) & (fmt.n_codes - 1)
    return k | (fmt.sign_bit if negative else 0)  # a sign bit: float and sign-magnitude


def _block_position(block: Any, shape: tuple[int, ...], ax: int, bs: int) -> int:
    """The canonical flat number of ``block`` (an int, or an index into the scales; both
    count from the end when negative, as NumPy indices do)."""
    nb = blocks.n_blocks(shape[ax], bs)
    scales_shape = shape[:ax] + (nb,) + shape[ax + 1 :]
    total = math.prod(scales_shape)
    if isinstance(block, tuple):
        if len(block) != len(shape):
            raise ValueError(f"block index {block} must have {len(shape)} entries "
                             f"(the scales' shape is {scales_shape})")
        where = [blocks.integer(i, "block index entries") for i in block]
        if not all(-n <= i < n for i, n in zip(where, scales_shape)):
            raise ValueError(f"block index {block} is out of range for the scales' shape "
                             f"{scales_shape}")
        where = [i % n for i, n in zip(where, scales_shape)]
        canonical = tuple(where[:ax] + where[ax + 1 :] + [where[ax]])
        return int(np.ravel_multi_index(canonical, shape[:ax] + shape[ax + 1 :] + (nb,)))
    b = blocks.integer(block, "block")
    if not -total <= b < total:
        raise ValueError(f"block={b} is out of range: the array has {total} block(s)")
    return b % total


def explain(
    x: Any,
    fmt: str | Format,
    block: int | tuple[int, ...] = 0,
    *,
    axis: int = -1,
    rounding: str = "even",
    scale_mode: str = "floor",
) -> BlockExplanation:
    """Explain how one block of ``x`` is quantized: amax, scale byte, and each code.

    The explanation is computed from the spec's rules with exact rational arithmetic,
    not by calling a backend, and its codes equal those :func:`mxarray.quantize` gives.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64 values (host memory).
    fmt : str or Format
    block : int or tuple of int, optional
        Which block: its number in the canonical layout (row-major over the other axes,
        then along the block axis; negative counts from the end), or its index into
        ``MXArray.scales``.  Default the first.
    axis : int, optional
        The block axis (default the last).
    rounding : {"even", "nearest", "toward_zero"}, optional
    scale_mode : {"floor", "ceil", "rceil", "even"}, optional

    Returns
    -------
    BlockExplanation
        ``str()`` of it is a table: one row per element with the input, ``input/2**X``,
        its two grid neighbours, the code, the element value and the reason (exact,
        rounded down/up, tie to even / away from zero, truncated toward zero,
        saturated, underflow to zero, NaN block).

    Raises
    ------
    TypeError
        If ``x`` is not a float array or ``block`` has the wrong type.
    ValueError
        If ``block`` is out of range, ``rounding`` is "stochastic" (its draws depend
        on the seed, not on a rule to explain), or ``fmt`` has sub-block
        microexponents (MX9/MX6/MX4) or a scale that is not a power of two (NVFP4).

    Examples
    --------
    >>> import numpy as np
    >>> from mxarray.diagnostics import explain
    >>> e = explain(np.array([0.3, -1.7, 5.0, 100.0]), "mxfp4_e2m1")
    >>> print(e)
    mxfp4_e2m1 block 0: elements 0..3 along axis 0, rounding 'even', scale mode 'floor'
    amax = 100.0
    shared exponent X = 4: floor: X = floor(log2(amax)) - emax = 6 - 2
    scale byte = X + 127 = 131 (0x83)
    <BLANKLINE>
        i        input   input/2**X  grid below  grid above  code   element  reason
        0          0.3      0.01875           0         0.5  0x00         0  underflow to zero
        1         -1.7     -0.10625          -0        -0.5  0x08        -0  underflow to zero
        2            5       0.3125           0         0.5  0x01       0.5  rounded up (nearer)
        3          100         6.25           6           -  0x07         6  saturated
    """
    arr = _float_input(x)
    fmt = get_format(fmt)
    extras = [what for what, present in [
        ("sub-block microexponents", fmt.sub_block_size),
        (f"{fmt.scale.name} block scales", fmt.scale.kind != "exponent"),
        ("a per-tensor scale", fmt.tensor_scale != "none")] if present]
    if extras:
        raise ValueError(f"explain walks formats with one power-of-two scale per block; "
                         f"{fmt.name} has {' and '.join(extras)}: use block_stats, or "
                         "quantize and read q.codes() and q.scales")
    check_scale_mode(scale_mode)
    if check_rounding(rounding) == "stochastic":
        raise ValueError("explain supports the deterministic rounding modes; stochastic "
                         "rounding depends on the seed's random draws, not on a rule")
    ax = blocks.normalize_axis(axis, arr.ndim)
    if arr.shape[ax] == 0:
        raise ValueError(f"the block axis ({ax}) of x with shape {arr.shape} is empty")
    bs = fmt.block_size
    b = _block_position(block, arr.shape, ax, bs)
    nb = blocks.n_blocks(arr.shape[ax], bs)
    start = (b % nb) * bs
    count = min(bs, arr.shape[ax] - start)
    row = blocks.to_blocks(arr, ax, bs)[b, :count].astype(np.float64)

    grid = [Fraction(float(v)) for v in fmt.decode_table[: fmt.max_code + 1]]
    finite = bool(np.all(np.isfinite(row)))
    amax_f = float(np.max(np.abs(row))) if finite else float("nan")
    if finite:
        x_exp, rule = _shared_exponent(Fraction(amax_f), fmt, scale_mode)
        scale_byte = x_exp + fmt.scale.bias
    else:
        x_exp, rule = None, "the block holds a NaN or an Inf"
        scale_byte = fmt.scale.nan_code

    out = []
    for i, v in enumerate(row.tolist()):
        index = start + i
        if not finite:
            why = "NaN block" + ("" if math.isfinite(v) else " (this input is not finite)")
            out.append(ElementExplanation(index, v, None, None, None, 0, 0.0, why))
            continue
        negative = math.copysign(1.0, v) < 0
        scaled = Fraction(v) / Fraction(2) ** x_exp  # type: ignore[operator]
        mag = abs(scaled)
        if mag > grid[-1]:
            k, why, lower, upper = len(grid) - 1, "saturated", grid[-1], None
        else:
            k, why = _choose(mag, grid, rounding)
            lower = max(g for g in grid if g <= mag)
            upper = lower if lower == mag else min(g for g in grid if g > mag)
            if k == 0 and mag > 0:
                why = "underflow to zero"
            elif v == 0:
                why = "zero"
        sign = -1 if negative else 1
        code = _signed_code(k, negative, fmt)
        out.append(ElementExplanation(
            index, v, scaled,
            None if lower is None else sign * float(lower),
            None if upper is None else sign * float(upper),
            code, float(fmt.decode_table[code]), why,
        ))
    return BlockExplanation(fmt, b, ax, start, rounding, scale_mode, amax_f, x_exp,
                            scale_byte, rule, tuple(out))
