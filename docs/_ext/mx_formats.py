"""Sphinx extension: the format tables of the docs, generated from the spec at build time.

The rows come from :mod:`spec_tables` (which reads the spec through
:mod:`mxarray.formats` and ``mxarray._spec``); nothing here is typed by hand.

Directives (usable from reST and MyST pages):

``mx-format-summary``
    one row per format: element, bits, bits per element, range.
``mx-format-details``
    one section per format: its properties and, for floating-point formats of at most
    6 bits, the grid of its non-negative values (exponent field by mantissa field).
``mx-scale-table``
    the scale formats.
``mx-modes-table`` *scale_modes* | *rounding_modes*
    the modes with their spec definitions.
``mx-policy-table``
    the special-value policy.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from docutils import nodes
from docutils.parsers.rst import Directive

from spec_tables import (SUMMARY_COLUMNS, all_formats, format_rows, mode_rows, policy_rows,
                         scale_names, scale_rows, summary_rows, value_grid)

__all__ = ["setup"]


def _table(header: Sequence[str], body: Iterable[Sequence[str | nodes.Node]],
           classes: Sequence[str] = ()) -> nodes.table:
    table = nodes.table(classes=["mx-table", *classes])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    head += _row(header)
    tbody = nodes.tbody()
    group += tbody
    for cells in body:
        tbody += _row(cells)
    return table


def _row(cells: Sequence[str | nodes.Node]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += nodes.paragraph("", "", cell if isinstance(cell, nodes.Node)
                                 else nodes.Text(cell))
        row += entry
    return row


def _literal(text: str) -> nodes.literal:
    return nodes.literal(text, text)


class FormatSummary(Directive):
    """``.. mx-format-summary::``: one row per format."""

    def run(self) -> list[nodes.Node]:
        body = [[_literal(cells[0]), *cells[1:]] for cells in summary_rows()]
        return [_table(SUMMARY_COLUMNS, body)]


class FormatDetails(Directive):
    """``.. mx-format-details::``: one section per format."""

    def run(self) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for name, fmt in all_formats().items():
            section = nodes.section(ids=[nodes.make_id(f"format-{name}")], names=[name])
            section += nodes.title(name, name)
            rows = [(label, text) for label, _, text in format_rows(fmt)]
            section += _table(("property", "value"), rows, classes=["mx-properties"])
            grid = value_grid(fmt)
            if grid is not None:
                row_labels, col_labels, cells = grid
                section += nodes.paragraph(
                    "", f"Every non-negative value of {name}: row = exponent field, "
                    "column = mantissa field (negative values repeat with the sign bit set).")
                body = [[_literal(label), *row] for label, row in zip(row_labels, cells)]
                header = ["E \\ M", *col_labels]
                section += _table(header, body, classes=["mx-value-grid"])
            out.append(section)
        return out


class ScaleTable(Directive):
    """``.. mx-scale-table::``: every scale format of the spec, E8M0 first."""

    def run(self) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for name in scale_names():
            out.append(nodes.rubric(name.upper(), name.upper()))
            rows = [(label, text) for label, _, text in scale_rows(name)]
            out.append(_table(("property", "value"), rows, classes=["mx-properties"]))
        return out


class ModesTable(Directive):
    """``.. mx-modes-table:: scale_modes`` (or ``rounding_modes``)."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        try:
            rows = mode_rows(self.arguments[0])
        except ValueError as exc:
            raise self.error(str(exc)) from None
        body = []
        for name, default, definition, extra in rows:
            text = definition + "".join(f"; {k}: {v}" for k, v in extra)
            body.append([_literal(name), "yes" if default else "", text])
        return [_table(("mode", "default", "definition (spec)"), body)]


class PolicyTable(Directive):
    """``.. mx-policy-table::``: the special-value policy."""

    def run(self) -> list[nodes.Node]:
        return [_table(("rule", "spec"), policy_rows(), classes=["mx-properties"])]


def setup(app: Any) -> dict[str, Any]:
    """Register the directives."""
    app.add_directive("mx-format-summary", FormatSummary)
    app.add_directive("mx-format-details", FormatDetails)
    app.add_directive("mx-scale-table", ScaleTable)
    app.add_directive("mx-modes-table", ModesTable)
    app.add_directive("mx-policy-table", PolicyTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
