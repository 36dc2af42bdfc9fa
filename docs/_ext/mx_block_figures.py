"""Sphinx extension: QSNR of every spec format on three distributions, at build time.

The numbers come from :func:`mxarray.report.evaluate` (the engine of ``mxarray report``)
on :func:`mxarray.datasets.make_dataset` data of :data:`QSNR_SIZE` values, on the NumPy
reference backend, so the build needs neither numba nor a GPU.  They are computed once
per build and shared by the table, the comparison table and the figure.

Directives (usable from reST and MyST pages):

``mx-block-qsnr-table``
    one row per format: bits per element and QSNR on each distribution.
``mx-block-qsnr-pairs``
    for the pairs of :data:`PAIRS`: the difference in bits per element and in QSNR.

The figure is drawn by :func:`qsnr_by_distribution`, for the ``plot`` directive.
"""

from __future__ import annotations

import functools
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from mx_formats import _literal, _table  # docs/_ext is on sys.path (conf.py)

from mxarray import formats as _formats
from mxarray._spec import load_spec
from mxarray.datasets import DATASETS, make_dataset
from mxarray.report import FormatReport, evaluate

__all__ = [
    "DISTRIBUTIONS",
    "PAIRS",
    "QSNR_SIZE",
    "pair_rows",
    "qsnr_by_distribution",
    "qsnr_rows",
    "setup",
    "spec_format_names",
    "table_rows",
]

QSNR_SIZE = 1 << 16
"""Values drawn from each distribution (kept small: the build is timed)."""

DISTRIBUTIONS = ("gaussian", "laplace", "student_t")
"""The built-in datasets of :mod:`mxarray.datasets` measured here, all of variance 1."""

PAIRS = (
    ("mx9", "mxint8"),
    ("mx9", "mxfp8_e4m3"),
    ("mx6", "mxfp6_e2m3"),
    ("mx6", "mxfp8_e4m3"),
    ("mx4", "mxfp4_e2m1"),
    ("nvfp4", "mxfp4_e2m1"),
)
"""(format, baseline) pairs compared by ``mx-block-qsnr-pairs``."""


def spec_format_names() -> tuple[str, ...]:
    """The OCP formats, then the spec's ``[block_formats]``; formats registered at run
    time (by a doctest or a test) are left out, so the figures do not depend on them."""
    return (*_formats.FORMATS, *load_spec()["block_formats"])


@functools.cache
def qsnr_rows() -> dict[str, dict[str, FormatReport]]:
    """``{distribution: {format: FormatReport}}`` for every spec format."""
    result = {}
    for name in DISTRIBUTIONS:
        x = make_dataset(name, (QSNR_SIZE,))
        rows = evaluate(x, list(spec_format_names()), backend="numpy", repeats=1)
        result[name] = {row.format: row for row in rows}
    return result


def _label(distribution: str) -> str:
    """Short column name of a dataset: "Gaussian", "Laplace", "Student-t"."""
    return distribution.replace("_", "-").capitalize()


def table_rows() -> list[list[str]]:
    """Rendered cells of the QSNR table: format, bits per element, QSNR per distribution."""
    data = qsnr_rows()
    cells = []
    for fmt in spec_format_names():
        first = data[DISTRIBUTIONS[0]][fmt]
        cells.append([fmt, f"{first.bits_per_element:g}",
                      *(f"{data[d][fmt].qsnr_db:.2f}" for d in DISTRIBUTIONS)])
    return cells


def pair_rows() -> list[list[str]]:
    """Rendered cells of the comparison table: format, baseline, extra bits, QSNR gain
    per distribution."""
    data = qsnr_rows()
    cells = []
    for fmt, base in PAIRS:
        a, b = data[DISTRIBUTIONS[0]][fmt], data[DISTRIBUTIONS[0]][base]
        cells.append([fmt, base, f"{a.bits_per_element - b.bits_per_element:+g}",
                      *(f"{data[d][fmt].qsnr_db - data[d][base].qsnr_db:+.2f}"
                        for d in DISTRIBUTIONS)])
    return cells


def qsnr_by_distribution() -> Any:
    """QSNR against bits per element: one marker per distribution, one colour per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = qsnr_rows()
    markers = dict(zip(DISTRIBUTIONS, ("o", "s", "^")))
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    for fmt in spec_format_names():
        family = 0 if fmt in _formats.FORMATS else (2 if fmt.startswith("nv") else 1)
        for d in DISTRIBUTIONS:
            row = data[d][fmt]
            ax.scatter(row.bits_per_element, row.qsnr_db, marker=markers[d], s=28,
                       color=f"C{family}", alpha=0.85, zorder=3)
        top = max(data[d][fmt].qsnr_db for d in DISTRIBUTIONS)
        ax.annotate(fmt, (data[DISTRIBUTIONS[0]][fmt].bits_per_element, top),
                    xytext=(7, 2), textcoords="offset points", fontsize=8,
                    color=f"C{family}")
    for d in DISTRIBUTIONS:
        ax.scatter([], [], marker=markers[d], color="0.35", label=DATASETS[d][0])
    for family, text in enumerate(("OCP MX (32 per E8M0)", "MX9/6/4 (microexponents)",
                                   "NVFP4 (E4M3 + FP32)")):
        ax.scatter([], [], marker="o", color=f"C{family}", label=text)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.set_xlabel("bits per element, shared scale and microexponents included")
    ax.set_ylabel("QSNR (dB)")
    ax.set_title("QSNR on $2^{16}$ values per distribution (NumPy reference backend)")
    ax.grid(alpha=0.3)
    ax.set_xlim(3.7, 9.9)
    return fig


class QsnrTable(Directive):
    """``.. mx-block-qsnr-table::``: one row per format."""

    def run(self) -> list[nodes.Node]:
        header = ["format", "bits / element", *(_label(d) for d in DISTRIBUTIONS)]
        body = [[_literal(cells[0]), *cells[1:]] for cells in table_rows()]
        return [_table(header, body)]


class QsnrPairs(Directive):
    """``.. mx-block-qsnr-pairs::``: differences between the pairs of :data:`PAIRS`."""

    def run(self) -> list[nodes.Node]:
        header = ["format", "baseline", "Δ bits / element", *(_label(d) for d in DISTRIBUTIONS)]
        body = [[_literal(cells[0]), _literal(cells[1]), *cells[2:]] for cells in pair_rows()]
        return [_table(header, body)]


def setup(app: Any) -> dict[str, Any]:
    """Register the directives."""
    app.add_directive("mx-block-qsnr-table", QsnrTable)
    app.add_directive("mx-block-qsnr-pairs", QsnrPairs)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
