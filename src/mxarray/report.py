"""Accuracy and speed of every block format on one array: the engine of ``mxarray report``."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterable, Sequence

import numpy as np

from ._device_arrays import move
from .backends import get_backend
from .core import _check_scale_kind, backend_for, dequantize, quantize
from .formats import BLOCK_FORMATS, get_format
from .layout import integer

__all__ = ["FormatReport", "qsnr_db", "qsnr_of_sums", "evaluate", "format_table", "table"]


@dataclasses.dataclass(frozen=True)
class FormatReport:
    """One row of the report: how one format treats one array."""

    format: str
    bits_per_element: float
    compression: float
    qsnr_db: float
    max_relative_error: float
    saturated_fraction: float
    quantize_gbps: float
    dequantize_gbps: float
    backend: str


def qsnr_db(x: np.ndarray, y: np.ndarray) -> float:
    """Quantization signal-to-noise ratio ``10 log10(sum x^2 / sum (x - y)^2)`` in dB.

    Computed in float64 over the finite entries of ``x``; ``inf`` when ``y == x``.
    """
    x64 = np.asarray(x, dtype=np.float64)
    y64 = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x64)
    return qsnr_of_sums(float(np.sum(x64[keep] ** 2)),
                        float(np.sum((x64[keep] - y64[keep]) ** 2)))


def qsnr_of_sums(signal: float, noise: float) -> float:
    """QSNR in dB from its two float64 sums, ``sum x^2`` and ``sum (x - y)^2``, which
    may be accumulated piece by piece; ``inf`` when ``noise`` is 0.

    Examples
    --------
    >>> from mxarray.report import qsnr_of_sums
    >>> qsnr_of_sums(100.0, 1.0), qsnr_of_sums(1.0, 0.0)
    (20.0, inf)
    """
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(signal / noise))


def _saturated_fraction(x: np.ndarray, q: Any) -> float:
    """Share of elements whose magnitude exceeded the largest value of their grid:
    ``max_normal`` times their block's scale, the tensor scale if any, and ``2**-D`` for
    a sub-block with microexponent ``D``.  Blocks whose scale is zero (an NVFP4 block far
    below the tensor's maximum) store zeros: that is underflow, not saturation."""
    fmt = q.format
    scales = np.repeat(q.scales, fmt.block_size, axis=q.block_axis)
    scales = np.take(scales, np.arange(x.shape[q.block_axis]), axis=q.block_axis)
    block = fmt.scale.decode(scales)
    if q.tensor_scale is not None:
        block = block * np.float64(q.tensor_scale)
    shift = (np.asarray(q.codes()) >> fmt.bits).astype(np.int32)
    with np.errstate(over="ignore"):
        limit = np.ldexp(fmt.max_normal * block, -shift)
    counted = np.isfinite(x) & ~np.isnan(block) & (limit > 0)
    return float(np.count_nonzero(np.abs(x[counted]) > limit[counted]) / max(x.size, 1))


def _best_time(fn: Any, repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls of ``fn`` after one untimed call (which loads
    or compiles the kernels and wakes the backend's threads), and the last result."""
    fn()
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def evaluate(
    x: np.ndarray,
    formats: Iterable[str] | None = None,
    *,
    axis: int = -1,
    rounding: str = "even",
    scale_mode: str = "floor",
    backend: str | None = None,
    repeats: int = 3,
) -> list[FormatReport]:
    """Quantize ``x`` into each format and measure accuracy and throughput.

    Throughput is the best of ``repeats`` runs after one untimed run, in GB/s of
    float32-equivalent data (``4 * x.size`` bytes), so figures are comparable across
    input dtypes.  ``formats``
    defaults to every known block format that defines ``rounding`` and ``scale_mode``
    (NVFP4 has no stochastic rounding and only the "floor" mode).  A format the named
    ``backend`` has no kernel for runs on the best backend that has one; each row names
    the backend that ran.

    Raises
    ------
    TypeError
        If ``formats`` is a single string (pass a list), ``repeats`` is not an
        integer, or ``x`` is not a float array.
    ValueError
        If ``repeats < 1``, or for the reasons :func:`mxarray.quantize` gives.

    Examples
    --------
    >>> import numpy as np
    >>> from mxarray.report import evaluate
    >>> x = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    >>> row = evaluate(x, ["mxfp8_e4m3"], repeats=1)[0]
    >>> row.bits_per_element, round(row.compression, 3)
    (8.25, 3.879)
    """
    x = np.asarray(x)  # a list, say: host data either way
    if isinstance(formats, str):
        raise TypeError(f"formats must be a list of format names, not the string {formats!r}")
    repeats = integer(repeats, "repeats")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    rows = []
    gbytes = 4 * x.size / 1e9
    for name in formats if formats is not None else _defined(rounding, scale_mode):
        fmt = get_format(name)
        named = backend if backend is None or get_backend(backend).supports(fmt) else None
        ran = backend_for(fmt, named, x).name
        t_q, q = _best_time(
            lambda: quantize(
                x, fmt, axis=axis, rounding=rounding, scale_mode=scale_mode, seed=0,
                backend=ran,
            ),
            repeats,
        )
        t_d, y = _best_time(lambda: dequantize(q, backend=ran), repeats)
        y, q = move(y, "cpu"), q.to_device("cpu")  # statistics run on the host
        nonzero = (x != 0) & np.isfinite(x)
        rel = np.abs(x[nonzero].astype(np.float64) - y[nonzero]) / np.abs(x[nonzero])
        rows.append(
            FormatReport(
                format=fmt.name,
                bits_per_element=fmt.bits_per_element,
                compression=8 * x.dtype.itemsize / fmt.bits_per_element,
                qsnr_db=qsnr_db(x, y),
                max_relative_error=float(rel.max()) if rel.size else 0.0,
                saturated_fraction=_saturated_fraction(x, q),
                quantize_gbps=gbytes / t_q,
                dequantize_gbps=gbytes / t_d,
                backend=ran,
            )
        )
    return rows


def _defined(rounding: str, scale_mode: str) -> list[str]:
    """Names of the block formats for which ``rounding`` and ``scale_mode`` are defined."""
    names = []
    # a snapshot: another thread may register a format meanwhile
    for name, fmt in list(BLOCK_FORMATS.items()):
        try:
            _check_scale_kind(fmt, rounding, scale_mode)
        except ValueError:
            continue
        names.append(name)
    return names


_COLUMNS = (
    ("format", "format", "{}"),
    ("bits/elem", "bits_per_element", "{:.2f}"),
    ("compression", "compression", "{:.2f}x"),
    ("QSNR dB", "qsnr_db", "{:.2f}"),
    ("max rel err", "max_relative_error", "{:.3g}"),
    ("saturated", "saturated_fraction", "{:.4%}"),
    ("quant GB/s", "quantize_gbps", "{:.3f}"),
    ("dequant GB/s", "dequantize_gbps", "{:.3f}"),
    ("backend", "backend", "{}"),
)


def format_table(rows: list[FormatReport]) -> str:
    """Render report rows as an aligned plain-text table."""
    body = [[fmt.format(getattr(row, attr)) for _, attr, fmt in _COLUMNS] for row in rows]
    titles = [title for title, _, _ in _COLUMNS]
    return table(titles, body, right=titles[1:])


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[str] = ()
          ) -> str:
    """An aligned plain-text table under a rule of dashes; the columns named in ``right``
    are right-aligned, the others left-aligned; trailing blanks are dropped.

    Examples
    --------
    >>> from mxarray.report import table
    >>> print(table(["name", "bytes"], [["a", "1,024"], ["long name", "8"]], right=["bytes"]))
    name       bytes
    ---------  -----
    a          1,024
    long name      8
    """
    cells = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    flush = [h in set(right) for h in headers]
    lines = ["  ".join(c.rjust(w) if f else c.ljust(w)
                       for c, w, f in zip(r, widths, flush, strict=True)).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
