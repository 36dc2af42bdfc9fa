"""The data of the docs' format tables, built from the spec (no Sphinx needed).

:mod:`mx_formats` renders these rows as tables when the docs are built; the tests check
them against ``spec/mx.toml``.  Every number comes from :mod:`mxarray.formats` (which reads ``spec/mx.toml``) or from the
spec mapping itself, so the pages cannot drift from the code.  The extension iterates
over whatever :data:`mxarray.formats.FORMATS` holds and leaves out a row whose field a
format does not define.

Cells are plain strings (Unicode superscripts for powers of two), so the same rows
serve any output format.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from mxarray import formats as _formats
from mxarray._spec import load_spec

__all__ = [
    "Row",
    "all_formats",
    "format_rows",
    "summary_rows",
    "scale_names",
    "scale_rows",
    "mode_rows",
    "policy_rows",
    "non_negative_values",
    "value_grid",
    "number_text",
    "SUMMARY_COLUMNS",
]

Row = tuple[str, Any, str]
"""One table row: (label, raw value, rendered text)."""

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def number_text(x: float) -> str:
    """Render an exact dyadic number with its binary form ``n × 2^k`` (``n`` odd).

    Examples
    --------
    >>> number_text(448.0), number_text(0.015625), number_text(1.984375)
    ('448 = 7 × 2⁶', '0.015625 = 2⁻⁶', '1.984375 = 127 × 2⁻⁶')
    """
    if x == 0 or not math.isfinite(x):
        return repr(float(x))
    text = f"{x:.17g}" if abs(x) >= 1e-4 else repr(float(x))
    numerator, exponent = abs(x), 0
    while numerator != int(numerator):
        numerator, exponent = numerator * 2, exponent - 1
    numerator = int(numerator)
    while numerator % 2 == 0:
        numerator, exponent = numerator // 2, exponent + 1
    power = f"2{str(exponent).translate(_SUPERSCRIPT)}"
    return f"{text} = {power}" if numerator == 1 else f"{text} = {numerator} × {power}"


def all_formats() -> dict[str, Any]:
    """Every format of the spec: ``FORMATS`` (OCP) first, then any other block formats."""
    found = dict(_formats.FORMATS)
    for name, fmt in getattr(_formats, "BLOCK_FORMATS", {}).items():
        found.setdefault(name, fmt)
    return found


def _codes(codes: Iterable[int], bits: int) -> str:
    width = (bits + 3) // 4
    listed = [f"0x{c:0{width}X}" for c in codes]
    return ", ".join(listed) if listed else "none"


def _bit_layout(fmt: Any) -> str | None:
    kind = getattr(fmt, "kind", None)
    bits = getattr(fmt, "bits", None)
    e, m = getattr(fmt, "exponent_bits", None), getattr(fmt, "mantissa_bits", None)
    if kind == "float" and None not in (bits, e, m):
        return f"S {'E' * e} {'M' * m}  (1 sign, {e} exponent, {m} mantissa bits)"
    if kind == "signmag" and bits is not None:
        fraction = f" × 2{str(-m).translate(_SUPERSCRIPT)}" if m else ""
        return f"S {'M' * (bits - 1)}  (sign and {bits - 1}-bit magnitude M, value ±M{fraction})"
    if kind == "int" and bits is not None:
        fraction = f", value = k × 2{str(-m).translate(_SUPERSCRIPT)}" if m else ""
        return f"{'I' * bits}  ({bits}-bit two's complement k{fraction})"
    return None


def _scale_name(fmt: Any) -> str:
    scale = getattr(fmt, "scale", None) or _formats.SCALE
    return str(getattr(scale, "name", scale)).upper()


def format_rows(fmt: Any) -> list[Row]:
    """The property rows of one format; fields the format lacks are left out."""
    rows: list[Row] = []

    def add(label: str, value: Any, text: str | None = None) -> None:
        if value is not None:
            rows.append((label, value, str(value) if text is None else text))

    description = getattr(fmt, "description", None)
    add("description", description or None)
    add("element type", getattr(fmt, "element", None))
    layout = _bit_layout(fmt)
    add("bit layout", layout)
    if getattr(fmt, "kind", None) == "float":
        add("exponent bias", getattr(fmt, "bias", None))
        add("emax", getattr(fmt, "emax", None))
        emin = getattr(fmt, "emin", None)
        add("emin", emin)
    for label, attr in (("max normal", "max_normal"), ("min normal", "min_normal"),
                        ("min subnormal", "min_subnormal")):
        value = getattr(fmt, attr, None)
        if value is not None:
            add(label, float(value), number_text(float(value)))
    bits = getattr(fmt, "bits", 8)
    if getattr(fmt, "kind", None) == "float":
        inf_codes = getattr(fmt, "inf_codes", None)
        if inf_codes is not None:
            add("Inf codes", tuple(inf_codes), _codes(inf_codes, bits))
        nan_codes = getattr(fmt, "nan_codes", None)
        if nan_codes is not None:
            add("NaN codes", tuple(nan_codes), _codes(nan_codes, bits))
        sign_bit = getattr(fmt, "sign_bit", None)
        if sign_bit is not None:
            add("negative zero code", sign_bit, _codes([sign_bit], bits))
    elif getattr(fmt, "kind", None) == "int":
        unused = load_spec().get("policy", {}).get("int_unused_code")
        if unused is not None:
            add("unused code", unused,
                f"{_codes([unused], bits)} (decodes to {float(fmt.decode(unused)):g}; "
                "quantization never produces it)")
    max_code = getattr(fmt, "max_code", None)
    if max_code is not None:
        add("code of +max normal", max_code, _codes([max_code], bits))
    layout_obj = getattr(fmt, "layout", None)
    if layout_obj is not None:
        add("packing", getattr(layout_obj, "name", str(layout_obj)),
            f"{layout_obj.name}: {layout_obj.description}"
            if hasattr(layout_obj, "description") else None)
    add("block size", getattr(fmt, "block_size", None))
    add("shared scale", _scale_name(fmt))
    if getattr(fmt, "sub_block_size", 0):
        add("sub-blocks", fmt.sub_block_size,
            f"{fmt.sub_block_size} elements, each with a "
            f"{getattr(fmt, 'sub_block_bits', '?')}-bit microexponent")
    overflow = getattr(fmt, "magnitude_overflow", None)
    if overflow and getattr(fmt, "sub_block_size", 0):
        add("magnitude overflow", overflow)
    tensor_scale = getattr(fmt, "tensor_scale", None)
    if tensor_scale and tensor_scale != "none":
        add("tensor scale", tensor_scale, f"float32, from the tensor's {tensor_scale}")
    bpe = getattr(fmt, "bits_per_element", None)
    if bpe is not None:
        add("bits per element (with scale)", float(bpe), f"{float(bpe):g}")
    ml = getattr(fmt, "ml_dtypes", None)
    if ml is not None:
        add("ml_dtypes equivalent", ml, ml or "none")
    return rows


SUMMARY_COLUMNS = ("format", "element", "bits", "bits per element", "max normal",
                    "min subnormal", "Inf / NaN")


def summary_rows() -> list[list[str]]:
    """One row of rendered cells per format, columns as in :data:`SUMMARY_COLUMNS`."""
    table = []
    for name, fmt in all_formats().items():
        specials = []
        if getattr(fmt, "inf_codes", None):
            specials.append("Inf")
        if getattr(fmt, "nan_codes", None):
            specials.append("NaN")
        bpe = getattr(fmt, "bits_per_element", None)
        table.append([
            name,
            str(getattr(fmt, "element", "")),
            str(getattr(fmt, "bits", "")),
            "" if bpe is None else f"{float(bpe):g}",
            f"{float(fmt.max_normal):.17g}" if hasattr(fmt, "max_normal") else "",
            f"{float(fmt.min_subnormal):.17g}" if hasattr(fmt, "min_subnormal") else "",
            " and ".join(specials) or "neither",
        ])
    return table


def scale_names() -> list[str]:
    """The spec's scale formats: ``[scale]`` (E8M0) first, then ``[scale_formats.*]``."""
    spec = load_spec()
    return [str(spec["scale"]["name"]), *spec.get("scale_formats", {})]


def scale_rows(name: str | None = None) -> list[Row]:
    """Properties of a scale format: the ``[scale]`` table, or ``[scale_formats.<name>]``."""
    spec = load_spec()
    if name is None or name == spec["scale"]["name"]:
        spec = spec["scale"]
    else:
        spec = {"name": name, **spec.get("scale_formats", {})[name]}
    labels = {
        "name": "name", "bits": "bits", "bias": "bias (byte b means 2^(b − bias))",
        "nan_code": "NaN code", "min_exponent": "smallest exponent (byte 0)",
        "max_exponent": "largest exponent (byte 0xFE)", "signed": "signed",
        "has_zero": "has zero", "has_inf": "has infinity", "ml_dtypes": "ml_dtypes equivalent",
    }
    rows: list[Row] = []
    for key, value in spec.items():
        label = labels.get(key, key.replace("_", " "))
        if key in ("nan_code", "max_code") and isinstance(value, int):
            rows.append((label, value, f"0x{value:02X}"))
        elif key == "name":
            rows.append((label, value, str(value).upper()))
        elif isinstance(value, bool):
            rows.append((label, value, "yes" if value else "no"))
        elif isinstance(value, float):
            rows.append((label, value, number_text(value)))
        else:
            rows.append((label, value, str(value)))
    return rows


def mode_rows(kind: str) -> list[tuple[str, bool, str, list[tuple[str, str]]]]:
    """(name, is default, definition, other spec keys) for ``scale_modes`` or ``rounding_modes``."""
    if kind not in ("scale_modes", "rounding_modes"):
        raise ValueError(f"kind must be 'scale_modes' or 'rounding_modes', not {kind!r}")
    rows = []
    for name, entry in load_spec().get(kind, {}).items():
        extra = [(k, f"0x{v:X}" if isinstance(v, int) and v > 1 << 16 else str(v))
                 for k, v in entry.items() if k not in ("definition", "default")]
        rows.append((name, bool(entry.get("default", False)),
                     str(entry.get("definition", "")), extra))
    return rows


def policy_rows() -> list[tuple[str, str]]:
    """The spec's special-value policy as (rule, statement) pairs."""
    rows = []
    for key, value in load_spec().get("policy", {}).items():
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int):
            text = f"0x{value:02X}"
        else:
            text = str(value)
        rows.append((key.replace("_", " "), text))
    return rows


def non_negative_values(fmt: Any) -> list[float]:
    """The values of the codes with a clear sign bit, in code order (NaN/Inf codes skipped)."""
    values = np.asarray(fmt.decode(np.arange(fmt.sign_bit)), dtype=np.float64)
    return [float(v) for v in values if math.isfinite(v)]


def value_grid(fmt: Any) -> tuple[list[str], list[str], list[list[str]]] | None:
    """Row labels (exponent field), column labels (mantissa field) and value cells.

    Only for floating-point formats of at most 6 bits; ``None`` otherwise.
    """
    if getattr(fmt, "kind", None) != "float" or getattr(fmt, "bits", 99) > 6:
        return None
    e, m = fmt.exponent_bits, fmt.mantissa_bits
    values = np.asarray(fmt.decode(np.arange(fmt.sign_bit)), dtype=np.float64)
    rows = [f"{x:0{e}b}" for x in range(1 << e)]
    cols = [f"{y:0{m}b}" for y in range(1 << m)]
    cells = [[f"{values[(x << m) | y]:g}" for y in range(1 << m)] for x in range(1 << e)]
    return rows, cols, cells
