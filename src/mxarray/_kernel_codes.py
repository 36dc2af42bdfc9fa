"""The small integers that stand for modes and kinds in compiled kernels, from the spec.

Kernels (Numba, CUDA) take a rounding mode, a scale mode, an element kind or a scale
kind as a small integer.  This module numbers each by its position in the spec, once:
rounding and scale modes in the order of ``spec/mx.toml``'s ``[rounding_modes]`` and
``[scale_modes]`` tables, element and scale kinds in the order of the enums of
``spec/mx.schema.json`` (the inline element's ``kind`` and the block format's
``scale``).  The Numba kernels, the CUDA compile definitions
(:mod:`mxarray._cuda_sources`) and the block-format validator
(:mod:`mxarray._block_spec`) all read these tables.

Examples
--------
>>> from mxarray._kernel_codes import ROUNDING_CODES, ELEMENT_KIND_CODES
>>> ROUNDING_CODES["even"], ELEMENT_KIND_CODES["float"]
(0, 0)
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Mapping

from ._spec import load_spec, spec_dir

__all__ = [
    "ROUNDING_MODES", "SCALE_MODES", "ELEMENT_KINDS", "SCALE_KINDS",
    "ROUNDING_CODES", "SCALE_MODE_CODES", "ELEMENT_KIND_CODES", "SCALE_KIND_CODES",
]


def _schema_enum(*path: str) -> tuple[str, ...]:
    """The ``enum`` at ``path`` (property names below ``$defs``) of ``mx.schema.json``."""
    with open(spec_dir() / "mx.schema.json", encoding="utf-8") as f:
        node = json.load(f)["$defs"]
    node = node[path[0]]
    for key in path[1:]:
        node = node["properties"][key]
    return tuple(node["enum"])


def _numbered(names: tuple[str, ...]) -> Mapping[str, int]:
    return MappingProxyType({name: i for i, name in enumerate(names)})


_SPEC = load_spec()
ROUNDING_MODES: tuple[str, ...] = tuple(_SPEC["rounding_modes"])
"""Rounding mode names in spec order (``even`` first)."""
SCALE_MODES: tuple[str, ...] = tuple(_SPEC["scale_modes"])
"""Scale mode names in spec order (``floor`` first)."""
ELEMENT_KINDS: tuple[str, ...] = _schema_enum("inline_element", "kind")
"""Element kinds: ``float``, ``int`` (two's complement), ``signmag`` (sign-magnitude)."""
SCALE_KINDS: tuple[str, ...] = _schema_enum("block_format", "scale")
"""Block scale kinds: ``e8m0``, ``ue4m3``, ``exponent`` (a d-bit power of two)."""

ROUNDING_CODES = _numbered(ROUNDING_MODES)
SCALE_MODE_CODES = _numbered(SCALE_MODES)
ELEMENT_KIND_CODES = _numbered(ELEMENT_KINDS)
SCALE_KIND_CODES = _numbered(SCALE_KINDS)
