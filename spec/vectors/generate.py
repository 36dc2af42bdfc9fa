"""Write mxarray's golden test vectors from the NumPy reference backend.

Usage::

    python spec/vectors/generate.py           # (re)write codes.json and quantize.json
    python spec/vectors/generate.py --check   # exit 1 if the committed files are stale

``codes.json`` holds the value of every element code of every format and of every E8M0
scale byte.  ``block_formats.json`` does the same for the general block formats (MX9, MX6,
MX4, NVFP4: every unpacked code, microexponent included, and the UE4M3 scale bytes) and
gives their edge-case blocks with the reference's scale bytes, codes and packed bytes.
``quantize.json`` holds edge-case blocks for every format (ties, their float64
neighbours, saturation, subnormals, signed zeros, NaN/Inf, powers of two, scale clamping)
and, for every scale mode and rounding mode, the scale byte and element codes the reference
gives.  Numbers are written exactly: ``float.hex`` strings, or ``"nan"``, ``"inf"``,
``"-inf"``; codes are hexadecimal strings, two digits per element.  Other implementations
can test against these files without running Python.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

import mxarray
from mxarray._spec import load_spec
from mxarray.formats import SCALE, Format

HERE = Path(__file__).resolve().parent
STOCHASTIC_SEED = 0x0123456789ABCDEF
FILES = ("codes.json", "quantize.json", "block_formats.json")
TENSOR_SCALES = {"s1": 1.0, "computed": None}  # NVFP4: a given tensor scale, and the amax rule


def exact_string(v: float) -> str:
    """``float.hex`` of a finite value (``-0x0.0p+0`` keeps the sign), else a marker."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float.hex(v)


def parse_exact(s: str) -> float:
    """Inverse of :func:`exact_string`."""
    return float(s) if s in ("nan", "inf", "-inf") else float.fromhex(s)


def codes_document() -> dict[str, Any]:
    """The value of every code of every format, and of every scale byte."""
    return {
        "description": "value of every element code (index = code) and every E8M0 scale byte",
        "spec_version": mxarray.SPEC_VERSION,
        "formats": {
            name: {
                "bits": fmt.bits,
                "values": [exact_string(float(v)) for v in fmt.decode_table],
            }
            for name, fmt in mxarray.FORMATS.items()
        },
        "scale_e8m0": [exact_string(float(v)) for v in SCALE.decode(np.arange(256))],
    }


def _block(*lanes: float) -> list[float]:
    """Pad ``lanes`` with zeros to one block (or truncate to one)."""
    values = [float(v) for v in lanes][: mxarray.BLOCK_SIZE]
    return values + [0.0] * (mxarray.BLOCK_SIZE - len(values))


def _spread(values: list[float], n: int) -> list[float]:
    """``n`` items spread evenly over ``values`` (all of them if there are fewer)."""
    if len(values) <= n:
        return values
    return [values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)]


def edge_blocks(fmt: Format) -> dict[str, list[float]]:
    """Named 32-value edge-case blocks for ``fmt``, derived from its grid."""
    top = fmt.max_normal
    grid = [float(v) for v in fmt.decode_table[: fmt.max_code + 1]]
    mids = [(a + b) / 2 for a, b in zip(grid, grid[1:])]
    tiny = fmt.min_subnormal
    binade = 2.0 ** (fmt.emax + 1)
    unit = 2.0 ** -(fmt.mantissa_bits + 1)
    blocks = {
        "ties": _block(top, *_spread(mids, 31)),
        "ties_negative_scaled": _block(*(-math.ldexp(v, -3) for v in [top, *_spread(mids, 31)])),
        "tie_neighbours": _block(top, *(math.nextafter(m, math.inf if i % 2 else 0.0)
                                        for i, m in enumerate(_spread(mids, 31)))),
        "saturation": _block(top, math.nextafter(top, math.inf), (top + binade) / 2,
                             math.nextafter(binade, 0.0), -top, -(top + binade) / 2,
                             math.nextafter(top, 0.0), -math.nextafter(binade, 0.0)),
        "subnormals": _block(top, *(s * tiny * f for f in (0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5,
                                                          3, 3.5, 0.5 + 2**-30, 0.5 - 2**-30,
                                                          1.5 + 2**-30, 2**-20, 5)
                                    for s in (1, -1))),
        "signed_zeros": _block(1.0, -0.0, 0.0, -tiny / 4, tiny / 4, -0.0, -tiny / 2, tiny / 2),
        "all_zero": _block(),
        "all_negative_zero": [-0.0] * mxarray.BLOCK_SIZE,
        "nan": _block(1.0, 2.0, -3.0, 0.5, 4.0, math.nan, 1.5),
        "inf": _block(1.0, math.inf, -2.0),
        "negative_inf": _block(-math.inf, 1.0),
        "powers_of_two": _block(*(f(2.0**k) for k in range(fmt.emax, fmt.emax - 16, -1)
                                  for f in (lambda p: p, lambda p: -math.nextafter(p, 0.0)))),
        "amax_below_power_of_two": _block(math.nextafter(binade, 0.0), 1.0, -0.75, top / 3),
        "amax_scale_rounding_tie": _block((2 - unit) * 2.0**fmt.emax, -top / 2, 0.3),
        "amax_below_scale_rounding_tie": _block(math.nextafter((2 - unit) * 2.0**fmt.emax, 0.0),
                                                top / 5),
        "clamp_high": _block(2.0**200, -(2.0**190), 2.0**180 * 3, 2.0**100),
        "clamp_low": _block(2.0**-200, -(2.0**-300), 3 * 2.0**-131, 2.0**-1074, 2.0**-140),
        "mixed": [((i * 2654435761) % 1000003 / 1000003 - 0.5) * 2.0 ** (i % 13 - 6)
                  for i in range(mxarray.BLOCK_SIZE)],
    }
    assert all(len(b) == mxarray.BLOCK_SIZE for b in blocks.values())
    return blocks


def quantize_document() -> dict[str, Any]:
    """Edge-case blocks and the reference's scale bytes and codes for every mode pair."""
    formats = {}
    for name, fmt in mxarray.FORMATS.items():
        blocks = edge_blocks(fmt)
        x = np.array(list(blocks.values()), dtype=np.float64)
        results = {}
        for scale_mode in mxarray.SCALE_MODES:
            for rounding in mxarray.ROUNDING_MODES:
                seed = STOCHASTIC_SEED if rounding == "stochastic" else None
                q = mxarray.quantize(x, fmt, rounding=rounding, scale_mode=scale_mode, seed=seed,
                                     backend="numpy")
                results[f"{scale_mode}/{rounding}"] = {
                    "scales": q.scales[:, 0].tolist(),
                    "codes": ["".join(f"{c:02x}" for c in row) for row in q.codes().tolist()],
                }
        formats[name] = {
            "blocks": list(blocks),
            "inputs": [[exact_string(v) for v in row] for row in blocks.values()],
            "results": results,
        }
    return {
        "description": (
            "each format: named float64 input blocks of 32 (row i is block i of one array "
            "quantized along its last axis, so stochastic rounding uses element indices "
            "32*i + lane), and for each 'scale_mode/rounding' the scale byte and the codes "
            "(two hex digits per element) of every block"
        ),
        "spec_version": mxarray.SPEC_VERSION,
        "stochastic_seed": STOCHASTIC_SEED,
        "formats": formats,
    }


def sub_block_edge_blocks(fmt: Format) -> dict[str, list[float]]:
    """Named edge-case blocks for a format with sub-blocks (MX9/MX6/MX4)."""
    n, size = fmt.block_size, fmt.sub_block_size
    top = fmt.max_normal
    binade = 2.0 ** (fmt.emax + 1)
    grid = [float(v) for v in fmt.decode_table[: fmt.max_code + 1]]
    mids = [(a + b) / 2 for a, b in zip(grid, grid[1:])]

    def block(*lanes: float) -> list[float]:
        return [float(v) for v in lanes][:n] + [0.0] * (n - len(lanes))

    levels = [math.ldexp(v, -k) for k in (0, 1, 2, 5) for v in _spread(mids, n // 4)]
    return {
        "ties_at_every_level": block(top, *levels),
        "tie_neighbours": block(top, *(math.nextafter(v, math.inf if i % 2 else 0.0)
                                       for i, v in enumerate(levels))),
        "overflow_at_microexponent_1": block(top / 2 + binade / 4, 0.0, top, -0.0,
                                             -(top / 2 + binade / 4), top / 4,
                                             (top + binade) / 4, 1e-9),
        "saturation": block(math.nextafter(binade, 0.0), (top + binade) / 2, -top, top),
        "pair_exponents": block(*(s * math.ldexp(1.5, -k) for k in range(n // size)
                                  for s in (1, -1)))[: n],
        "zero_pairs": block(1.0, 0.0, -0.0, -0.0, 0.0, 0.0, 2.0**-30, -(2.0**-30)),
        "all_zero": block(),
        "nan": block(1.0, math.nan, -0.5),
        "inf": block(-math.inf, 1.0),
        "clamp_high": block(2.0**200, -(2.0**190), 2.0**127 * 3),
        "clamp_low": block(2.0**-200, 3 * 2.0**-131, 2.0**-128, 2.0**-1074),
        "mixed": [((i * 2654435761) % 1000003 / 1000003 - 0.5) * 2.0 ** (i % 7 - 3)
                  for i in range(n)],
    }


def two_level_edge_blocks(fmt: Format) -> dict[str, list[float]]:
    """Named edge-case blocks for a UE4M3-scaled format (NVFP4), at tensor scale 1."""
    n, top = fmt.block_size, fmt.max_normal
    e4m3 = [float(v) for v in fmt.scale.finite_grid]
    e4m3_mids = [(a + b) / 2 for a, b in zip(e4m3, e4m3[1:])]
    grid = [float(v) for v in fmt.decode_table[: fmt.max_code + 1]]
    mids = [(a + b) / 2 for a, b in zip(grid, grid[1:])]

    def block(*lanes: float) -> list[float]:
        return [float(v) for v in lanes][:n] + [0.0] * (n - len(lanes))

    return {
        "scale_ties_low": block(*(top * m for m in _spread(e4m3_mids[:40], n))),
        "scale_ties_high": block(top * e4m3_mids[-1], top * e4m3_mids[-2]),
        "element_ties": block(top, *mids, *(-m for m in mids)),
        "element_ties_scaled": block(*(3 * v for v in (top, *mids, *(-m for m in mids)))),
        "saturation": block(top * 448 * 1.5, top * 448, -1.0),
        "subnormal_scale": block(19 * 2.0**-10, 2.0**-12),
        "zero_scale": block(-(2.0**-20), 2.0**-20),
        "signed_zeros": block(1.0, -0.0, -1e-3),
        "nan": block(1.0, math.nan),
        "inf": block(math.inf, 1.0),
        "mixed": [((i * 2654435761) % 1000003 / 1000003 - 0.5) * 2.0 ** (i % 7 - 3)
                  for i in range(n)],
    }


def _hex_codes(row: list[int], fmt: Format) -> str:
    width = 2 if fmt.code_bits <= 8 else 4
    return "".join(f"{c:0{width}x}" for c in row)


def block_formats_document() -> dict[str, Any]:
    """Every unpacked code's value and edge-case blocks of each general block format."""
    formats = {}
    for name in load_spec()["block_formats"]:  # the spec's entries, not run-time registrations
        fmt = mxarray.get_format(name)
        two_level = fmt.scale.kind == "ue4m3"
        blocks = two_level_edge_blocks(fmt) if two_level else sub_block_edge_blocks(fmt)
        x = np.array(list(blocks.values()), dtype=np.float64)
        results = {}
        if two_level:
            runs = [(f"floor/{r}/{t}", "floor", r, s) for r in ("even", "nearest", "toward_zero")
                    for t, s in TENSOR_SCALES.items()]
        else:
            runs = [(f"{m}/{r}", m, r, None) for m in mxarray.SCALE_MODES
                    for r in mxarray.ROUNDING_MODES]
        for key, scale_mode, rounding, s_t in runs:
            seed = STOCHASTIC_SEED if rounding == "stochastic" else None
            q = mxarray.quantize(x, fmt, rounding=rounding, scale_mode=scale_mode, seed=seed,
                                 tensor_scale=s_t, backend="numpy")
            results[key] = {
                "scales": q.scales[:, 0].tolist(),
                "codes": [_hex_codes(row, fmt) for row in q.codes().tolist()],
            }
            if rounding == "even":
                results[key]["packed"] = [bytes(row).hex() for row in q.packed.tolist()]
            if q.tensor_scale is not None:
                results[key]["tensor_scale"] = exact_string(float(q.tensor_scale))
        entry = {
            "code_bits": fmt.code_bits,
            "values": [exact_string(float(v)) for v in fmt.decode_table],
            "blocks": list(blocks),
            "inputs": [[exact_string(v) for v in row] for row in blocks.values()],
            "results": results,
        }
        if two_level:
            entry["scale_values"] = [exact_string(float(v)) for v in fmt.scale.values[:128]]
        formats[name] = entry
    return {
        "description": (
            "each general block format: the value of every unpacked code (element code | "
            "microexponent << bits; index = code, block and tensor scale 1), named float64 "
            "input blocks (row i is block i of one array), and for each 'scale_mode/rounding' "
            "(NVFP4: '/tensor scale', 's1' = tensor_scale 1.0 given, 'computed' = the amax "
            "rule) the scale bytes, the codes (hex, 2 or 4 digits each) and, for rounding "
            "'even', the packed bytes of every block"
        ),
        "spec_version": mxarray.SPEC_VERSION,
        "stochastic_seed": STOCHASTIC_SEED,
        "formats": formats,
    }


def documents() -> dict[str, dict[str, Any]]:
    """File name -> JSON document, freshly generated."""
    return {"codes.json": codes_document(), "quantize.json": quantize_document(),
            "block_formats.json": block_formats_document()}


def render(doc: dict[str, Any]) -> str:
    """The exact text written to disk (stable key order, one trailing newline)."""
    return json.dumps(doc, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare the committed files with a fresh generation; exit 1 if stale")
    parser.add_argument("--out", type=Path, default=HERE, help="directory of the JSON files")
    args = parser.parse_args(argv)
    stale = []
    for filename, doc in documents().items():
        path = args.out / filename
        text = render(doc)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(filename)
        else:
            path.write_text(text)
            print(f"wrote {path} ({len(text)} bytes)")
    if stale:
        print(f"stale golden vectors: {', '.join(stale)}; run python {Path(__file__).name}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
