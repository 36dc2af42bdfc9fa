"""The figures of the docs, drawn with matplotlib at build time by the ``plot`` directive.

Each function draws one figure on the current matplotlib figure and returns it.  Numbers
come from the package: element values from the decode tables of every format of the
spec (:func:`spec_tables.all_formats`), accuracy from :func:`mxarray.report.evaluate` (the engine
of ``mxarray report``) on :func:`mxarray.datasets.make_dataset` data.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402

import mxarray  # noqa: E402
from mxarray.datasets import make_dataset  # noqa: E402
from mxarray.report import evaluate  # noqa: E402
from spec_tables import all_formats  # noqa: E402 - docs/_ext is on sys.path

__all__ = ["QSNR_SIZE", "value_grids", "qsnr_vs_bits", "block_before_after"]

QSNR_SIZE = 1 << 16
"""Values of the Gaussian sample behind the QSNR figure (kept small: the build is timed)."""


def _positive_values(fmt: Any) -> np.ndarray:
    values = np.asarray(fmt.decode(np.arange(fmt.n_codes)), dtype=np.float64)
    return np.unique(values[np.isfinite(values) & (values > 0)])


def value_grids() -> Any:
    """Every positive representable value of each element format on a log2 axis."""
    formats = all_formats()
    names = list(formats)
    fig, ax = plt.subplots(figsize=(8.0, 0.45 * len(names) + 1.2))
    for row, name in enumerate(names):
        values = _positive_values(formats[name])
        ax.scatter(np.log2(values), np.full(values.size, row), marker="|", s=120,
                   linewidths=1.0, color=f"C{row % 10}")
        ax.annotate(f"{values.size} values", (np.log2(values[-1]), row),
                    xytext=(8, -3), textcoords="offset points", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("log2 of the element value (before the block scale)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(right=ax.get_xlim()[1] + 3)  # room for the annotations
    ax.set_title("Positive representable element values")
    return fig


def qsnr_vs_bits() -> Any:
    """QSNR of every format on Gaussian data against its bits per element (scale included)."""
    x = make_dataset("gaussian", (QSNR_SIZE,))
    rows = evaluate(x, list(all_formats()), backend="numpy", repeats=1)
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for n, row in enumerate(rows):
        ax.scatter(row.bits_per_element, row.qsnr_db, color=f"C{n % 10}", zorder=3)
        ax.annotate(row.format, (row.bits_per_element, row.qsnr_db), xytext=(6, -4),
                    textcoords="offset points", fontsize=8)
    ax.set_xlabel("bits per element, including the shared scale")
    ax.set_ylabel("QSNR (dB)")
    ax.set_title(f"Gaussian N(0, 1), {QSNR_SIZE} values (mxarray report's engine)")
    ax.grid(alpha=0.3)
    ax.set_xlim(right=ax.get_xlim()[1] + 1.0)
    return fig


def block_before_after(formats: tuple[str, ...] = ("mxfp4_e2m1", "mxfp8_e4m3"),
                       seed: int = 7) -> Any:
    """One block of Gaussian values and its dequantized values in each of ``formats``."""
    block = mxarray.BLOCK_SIZE
    x = np.random.default_rng(seed).standard_normal(block).astype(np.float32)
    fig, axes = plt.subplots(len(formats), 1, figsize=(8.0, 3.0 * len(formats)), sharex=True)
    for ax, name in zip(np.atleast_1d(axes), formats):
        q = mxarray.quantize(x, name, backend="numpy")
        y = q.dequantize()
        lanes = np.arange(block)
        ax.vlines(lanes, np.minimum(x, y), np.maximum(x, y), color="0.6", linewidth=1)
        ax.scatter(lanes, x, s=24, label="input (float32)", color="C0", zorder=3)
        ax.scatter(lanes, y, s=30, marker="x", label="dequantized", color="C3", zorder=3)
        scale = int(q.scales.reshape(-1)[0]) - mxarray.formats.SCALE.bias
        ax.set_title(f"{name}: shared scale $2^{{{scale}}}$", fontsize=10)
        ax.axhline(0.0, color="0.8", linewidth=0.8)
        ax.set_ylabel("value")
    np.atleast_1d(axes)[0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.12), ncol=2,
                                  fontsize=9, frameon=False)
    np.atleast_1d(axes)[-1].set_xlabel("lane within the 32-element block")
    return fig
