"""Validate a block-format entry (``[block_formats.NAME]`` of the spec, or a user's dict).

Hand-written checks with clear ``ValueError`` / ``TypeError`` messages, so that the
package needs no ``jsonschema`` at run time; ``spec/mx.schema.json`` describes the same
rules and the tests check the two agree.  The result is a normalised ``dict`` (every
optional field filled in) that :mod:`mxarray.formats` turns into a ``Format``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np

from ._kernel_codes import ELEMENT_KINDS, SCALE_KINDS

__all__ = [
    "ELEMENT_KINDS", "SCALE_KINDS", "OVERFLOW_MODES", "TENSOR_SCALES", "normalize_entry",
    "check_byte_tiling", "check_tensor_scale_range",
]

OVERFLOW_MODES = ("saturate", "promote")
TENSOR_SCALES = ("none", "amax")
SUB_BLOCK_BITS = (1, 2, 4)  # microexponent widths that tile a byte exactly

_ENTRY_KEYS = {
    "name", "description", "element", "block_size", "scale", "scale_bits", "sub_block_size",
    "sub_block_bits", "magnitude_overflow", "tensor_scale",
}
_ELEMENT_KEYS = {
    "float": {"kind", "bits", "exponent_bits", "mantissa_bits", "bias", "nan_codes", "inf_codes"},
    "int": {"kind", "bits", "mantissa_bits"},
    "signmag": {"kind", "bits", "mantissa_bits"},
}
_NAME = re.compile(r"[a-z][a-z0-9_]*")  # fullmatch: "$" would let a final "\n" in


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be in [{low}, {high}], got {value}")
    return value


def _choice(value: Any, what: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _unknown(keys: Any, allowed: set[str], where: str) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise ValueError(f"unknown field(s) in {where}: {', '.join(map(str, extra))}")


def _element(value: Any, ocp_names: tuple[str, ...]) -> str | dict[str, Any]:
    """A [formats] name, or an inline element table checked field by field."""
    if isinstance(value, str):
        if value not in ocp_names:
            raise ValueError(
                f"element {value!r} names no OCP format; use one of {', '.join(ocp_names)} "
                "or an inline table with kind float/int/signmag"
            )
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"element must be a format name or a table, got {type(value).__name__}")
    kind = _choice(value.get("kind"), "element.kind", ELEMENT_KINDS)
    _unknown(value, _ELEMENT_KEYS[kind], f"a {kind} element")
    bits = _int(value.get("bits"), "element.bits", 2, 8)
    out: dict[str, Any] = {"kind": kind, "bits": bits}
    if kind == "float":
        e = _int(value.get("exponent_bits"), "element.exponent_bits", 1, 7)
        m = _int(value.get("mantissa_bits"), "element.mantissa_bits", 0, 6)
        if 1 + e + m != bits:
            raise ValueError(f"a float element needs bits = 1 + exponent_bits + mantissa_bits "
                             f"({1 + e + m}), got {bits}")
        out.update(exponent_bits=e, mantissa_bits=m,
                   bias=_int(value.get("bias"), "element.bias", -64, 64))
        for key in ("nan_codes", "inf_codes"):
            codes = value.get(key, [])
            if not isinstance(codes, (list, tuple)):
                raise ValueError(f"element.{key} must be a list of codes")
            out[key] = [_int(c, f"element.{key}[]", 0, (1 << bits) - 1) for c in codes]
        _check_special_codes(out["nan_codes"], out["inf_codes"], bits)
        if m == 0:
            raise ValueError(
                "a float element needs mantissa_bits >= 1: with a one-digit significand "
                "every value is odd, so round-half-to-even names no neighbour")
    else:
        out["exponent_bits"] = 0
        out["mantissa_bits"] = _int(value.get("mantissa_bits"), "element.mantissa_bits", 0, 16)
    return out


def _check_special_codes(nan_codes: list[int], inf_codes: list[int], bits: int) -> None:
    """NaN and Inf codes must be distinct and above every finite magnitude.

    Quantization produces the magnitude codes ``0 .. max_code`` (with either sign), where
    ``max_code`` is the largest non-special positive code; a special code among them
    would turn finite inputs (zero included) into NaN or Inf.
    """
    both = sorted(set(nan_codes) & set(inf_codes))
    if both:
        raise ValueError(f"element code(s) {', '.join(map(hex, both))} are listed both in "
                         "nan_codes and in inf_codes")
    special = set(nan_codes) | set(inf_codes)
    sign_bit = 1 << (bits - 1)
    finite = [c for c in range(1, sign_bit) if c not in special]
    if not finite or 0 in special:
        raise ValueError("a float element needs a zero code 0 and at least one positive "
                         "finite code outside nan_codes and inf_codes")
    inside = sorted(c for c in special if c & (sign_bit - 1) <= max(finite))
    if inside:
        raise ValueError(
            f"element code(s) {', '.join(map(hex, inside))} in nan_codes/inf_codes lie among "
            f"the finite magnitudes (up to {max(finite):#x}); special codes must have the "
            "largest magnitudes, so that quantizing a finite value never produces them"
        )


def _numpy_type_name(name: str) -> bool:
    """Whether ``name`` is a NumPy scalar type (``float32``, ``int8``, ``half``, ...)."""
    attr = getattr(np, name, None)
    return isinstance(attr, type) and issubclass(attr, np.generic)


def normalize_entry(entry: Mapping[str, Any], name: str, ocp_names: tuple[str, ...]) -> dict:
    """Check one block-format entry and return it with every optional field filled in.

    Raises
    ------
    ValueError
        For a bad name, an unknown field, a missing or out-of-range value, or a
        combination the reference does not define (see the messages).
    TypeError
        If ``entry`` is not a mapping.
    """
    if not isinstance(entry, Mapping):
        raise TypeError(f"a block-format entry must be a dict, got {type(entry).__name__}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"format name must match [a-z][a-z0-9_]*, got {name!r}")
    if _numpy_type_name(name):
        raise ValueError(f"format name {name!r} is a NumPy dtype name; choose another, so that "
                         "a dtype string names one thing")
    _unknown(entry, _ENTRY_KEYS, f"block format {name!r}")
    element = _element(entry.get("element"), ocp_names)
    block_size = _int(entry.get("block_size"), "block_size", 1, 4096)
    scale = _choice(entry.get("scale"), "scale", SCALE_KINDS)
    scale_bits = 8
    if scale == "exponent":
        scale_bits = _int(entry.get("scale_bits"), "scale_bits", 2, 8)
    elif "scale_bits" in entry:
        raise ValueError(f"scale_bits applies only to scale = 'exponent', not {scale!r}")
    sub_size = entry.get("sub_block_size")
    sub_bits = entry.get("sub_block_bits")
    if (sub_size is None) != (sub_bits is None):
        raise ValueError("sub_block_size and sub_block_bits go together")
    if sub_size is not None:
        sub_size = _int(sub_size, "sub_block_size", 1, block_size)
        if block_size % sub_size:
            raise ValueError(f"sub_block_size {sub_size} must divide block_size {block_size}")
        sub_bits = _int(sub_bits, "sub_block_bits", 1, 4)
        if sub_bits not in SUB_BLOCK_BITS:
            raise ValueError(f"sub_block_bits must be 1, 2 or 4, got {sub_bits}")
        if scale == "ue4m3":
            raise ValueError("microexponents need a power-of-two scale (e8m0 or exponent)")
    else:
        sub_size, sub_bits = 0, 0
    overflow = _choice(entry.get("magnitude_overflow", "saturate"), "magnitude_overflow",
                       OVERFLOW_MODES)
    tensor = _choice(entry.get("tensor_scale", "none"), "tensor_scale", TENSOR_SCALES)
    if tensor == "amax" and scale != "ue4m3":
        raise ValueError("tensor_scale = 'amax' is defined for scale = 'ue4m3' only")
    bits = element["bits"] if isinstance(element, dict) else None
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise ValueError("description must be a string")
    return {
        "name": name,
        "description": description,
        "element": element,
        "bits": bits,
        "block_size": block_size,
        "scale": scale,
        "scale_bits": scale_bits,
        "sub_block_size": sub_size,
        "sub_block_bits": sub_bits,
        "magnitude_overflow": overflow,
        "tensor_scale": tensor,
    }


def check_tensor_scale_range(name: str, max_normal: float, scale_max: float) -> None:
    """An "amax" tensor scale divides by ``fl32(max_normal * scale_max)``: that divisor
    must lie in ``[1, float32 max]``, or the float32 tensor scale overflows to infinity
    (the divisor below 1) or the divisor does (above the float32 range)."""
    divisor = np.float32(max_normal * scale_max) if max_normal * scale_max <= float(
        np.finfo(np.float32).max) else np.float32(np.inf)
    if not 1.0 <= divisor < np.inf:
        raise ValueError(
            f"{name}: tensor_scale = 'amax' needs the element's max_normal ({max_normal!r}) "
            f"times the scale's largest value ({scale_max!r}) in [1, float32 max], so that "
            "the float32 tensor scale is finite")


def check_byte_tiling(name: str, bits: int, block_size: int) -> None:
    """Blocks must fill whole bytes.

    (Unpacked codes always fit 16 bits: element bits are at most 8 and microexponents at
    most 4 bits, both checked by :func:`normalize_entry`.)
    """
    if block_size * bits % 8:
        step = 8 // math.gcd(8, bits)
        raise ValueError(
            f"{name}: block_size * element bits must be a multiple of 8 so that every block "
            f"is whole bytes; use a block_size that is a multiple of {step}"
        )
