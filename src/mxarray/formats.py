"""MX element formats and the E8M0 scale, built from the machine-readable spec.

Every number here is read from ``spec/mx.toml``; decode tables are derived from the
bit-level description (sign, exponent and mantissa fields) and checked against the
spec's typed limits when the module loads, so a wrong spec entry fails at import.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ._spec import load_spec

__all__ = [
    "Format",
    "Layout",
    "ScaleFormat",
    "FORMATS",
    "SCALE",
    "BLOCK_SIZE",
    "ROUNDING_MODES",
    "SCALE_MODES",
    "SPEC_VERSION",
    "get_format",
    "check_rounding",
    "check_scale_mode",
]


@dataclasses.dataclass(frozen=True)
class Layout:
    """How element codes are packed into bytes: ``elements`` codes in ``bytes`` bytes."""

    name: str
    elements: int
    bytes: int
    description: str


@dataclasses.dataclass(frozen=True)
class ScaleFormat:
    """The shared E8M0 scale: byte ``b`` means ``2**(b - bias)``; ``nan_code`` is NaN."""

    name: str
    bits: int
    bias: int
    nan_code: int
    min_exponent: int
    max_exponent: int

    def decode(self, scale_bytes: np.ndarray) -> np.ndarray:
        """Return the float64 values ``2**(b - bias)`` of scale bytes (NaN for ``nan_code``)."""
        b = np.asarray(scale_bytes, dtype=np.uint8)
        values = np.ldexp(1.0, b.astype(np.int32) - self.bias)
        return np.where(b == self.nan_code, np.nan, values)


@dataclasses.dataclass(frozen=True, eq=False)
class Format:
    """One MX element format together with its block size and E8M0 scale.

    Instances are immutable singletons (``mxarray.mxfp4_e2m1`` and friends); compare
    them with ``is`` or ``==``.  All fields come from the spec entry of the same name.

    Attributes
    ----------
    name : str
        The format name, e.g. ``"mxfp4_e2m1"``.
    element : str
        The element type, e.g. ``"E2M1"`` or ``"INT8"``.
    kind : {"float", "int"}
        Floating-point elements (sign, exponent, mantissa) or scaled integers.
    bits : int
        Bits per element code.
    exponent_bits, mantissa_bits, bias, emax : int
        Field widths, exponent bias and the exponent of the largest normal.
        For ``kind == "int"``, ``mantissa_bits`` is the number of fraction bits.
    max_normal, min_normal, min_subnormal : float
        Largest finite magnitude, smallest normal and smallest non-zero magnitude.
    has_inf : bool
        Whether the element format encodes infinities.
    inf_codes, nan_codes : tuple of int
        Codes that decode to +-Inf and NaN.
    max_code : int
        Code of ``+max_normal``; quantization never produces a larger magnitude code.
    layout : Layout
        The byte packing of element codes.
    block_size : int
        Elements per shared scale (32 for every OCP format).
    ml_dtypes : str
        Name of the equivalent ``ml_dtypes`` element type, or ``""`` if none.
    spec : Mapping
        The raw spec entry, read-only.
    """

    name: str
    element: str
    kind: str
    bits: int
    exponent_bits: int
    mantissa_bits: int
    bias: int
    emax: int
    max_normal: float
    min_normal: float
    min_subnormal: float
    has_inf: bool
    inf_codes: tuple[int, ...]
    nan_codes: tuple[int, ...]
    max_code: int
    layout: Layout
    block_size: int
    ml_dtypes: str
    spec: Mapping[str, Any] = dataclasses.field(repr=False)
    decode_table: np.ndarray = dataclasses.field(repr=False, init=False)

    def __post_init__(self) -> None:
        table = _decode_table(self)
        table.flags.writeable = False
        object.__setattr__(self, "decode_table", table)

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal (``1 - bias``; for integers, ``-mantissa_bits``)."""
        return 1 - self.bias if self.kind == "float" else -self.mantissa_bits

    @property
    def n_codes(self) -> int:
        """Number of distinct element codes, ``2**bits``."""
        return 1 << self.bits

    @property
    def sign_bit(self) -> int:
        """Mask of the sign bit of a code."""
        return 1 << (self.bits - 1)

    @property
    def bits_per_element(self) -> float:
        """Storage cost per element including the shared scale, e.g. 4.25 for MXFP4."""
        return self.bits + SCALE.bits / self.block_size

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Return the float64 element values of ``codes`` (without the block scale)."""
        return self.decode_table[np.asarray(codes, dtype=np.uint8)]

    def __repr__(self) -> str:
        return f"mxarray.{self.name}"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Pickle by name so unpickling returns the singleton.
        return (get_format, (self.name,))


def _decode_table(fmt: Format) -> np.ndarray:
    """Derive the value of every code from the bit fields (float64, exact)."""
    codes = np.arange(fmt.n_codes, dtype=np.int64)
    m = fmt.mantissa_bits
    if fmt.kind == "int":
        signed = np.where(codes >= fmt.sign_bit, codes - fmt.n_codes, codes)
        return np.ldexp(signed.astype(np.float64), -m)
    sign = np.where(codes & fmt.sign_bit, -1.0, 1.0)
    exp_field = (codes >> m) & ((1 << fmt.exponent_bits) - 1)
    frac = codes & ((1 << m) - 1)
    subnormal = np.ldexp(frac.astype(np.float64), 1 - fmt.bias - m)
    normal = np.ldexp((frac + (1 << m)).astype(np.float64), exp_field - fmt.bias - m)
    table = sign * np.where(exp_field == 0, subnormal, normal)
    table[list(fmt.inf_codes)] = sign[list(fmt.inf_codes)] * np.inf
    table[list(fmt.nan_codes)] = np.nan
    return table


def _check_against_spec(fmt: Format) -> None:
    """Fail loudly if the typed limits in the spec disagree with the bit-level decode."""
    finite = fmt.decode_table[np.isfinite(fmt.decode_table)]
    positive = finite[finite > 0]
    derived = {
        "max_normal": float(fmt.decode_table[fmt.max_code]),
        "min_subnormal": float(positive.min()),
    }
    if fmt.kind == "float":
        derived["min_normal"] = 2.0 ** (1 - fmt.bias)
        derived["emax"] = int(np.frexp(fmt.max_normal)[1]) - 1
    for key, value in derived.items():
        if getattr(fmt, key) != value:
            raise RuntimeError(
                f"spec/mx.toml is inconsistent: {fmt.name}.{key} = {getattr(fmt, key)!r} "
                f"but the bit layout gives {value!r}"
            )
    if fmt.kind == "float" and positive.max() != fmt.max_normal:
        raise RuntimeError(f"spec/mx.toml: {fmt.name}.max_code is not the largest finite code")


def _build() -> tuple[Mapping[str, Format], ScaleFormat, int]:
    spec = load_spec()
    block_size = int(spec["block_size"])
    s = spec["scale"]
    scale = ScaleFormat(
        name=s["name"],
        bits=s["bits"],
        bias=s["bias"],
        nan_code=s["nan_code"],
        min_exponent=s["min_exponent"],
        max_exponent=s["max_exponent"],
    )
    layouts = {
        name: Layout(name, entry["elements"], entry["bytes"], entry["description"])
        for name, entry in spec["layouts"].items()
        if isinstance(entry, dict)
    }
    formats: dict[str, Format] = {}
    for name, e in spec["formats"].items():
        fmt = Format(
            name=name,
            element=e["element"],
            kind=e["kind"],
            bits=e["bits"],
            exponent_bits=e["exponent_bits"],
            mantissa_bits=e["mantissa_bits"],
            bias=e["bias"],
            emax=e["emax"],
            max_normal=float(e["max_normal"]),
            min_normal=float(e["min_normal"]),
            min_subnormal=float(e["min_subnormal"]),
            has_inf=e["has_inf"],
            inf_codes=tuple(e["inf_codes"]),
            nan_codes=tuple(e["nan_codes"]),
            max_code=e["max_code"],
            layout=layouts[e["packing"]],
            block_size=block_size,
            ml_dtypes=e["ml_dtypes"],
            spec=MappingProxyType(dict(e)),
        )
        _check_against_spec(fmt)
        formats[name] = fmt
    return MappingProxyType(formats), scale, block_size


FORMATS, SCALE, BLOCK_SIZE = _build()
"""FORMATS maps every format name to its :class:`Format`; SCALE is the E8M0 scale."""

SPEC_VERSION: str = load_spec()["spec_version"]
ROUNDING_MODES: tuple[str, ...] = tuple(load_spec()["rounding_modes"])
SCALE_MODES: tuple[str, ...] = tuple(load_spec()["scale_modes"])


def get_format(fmt: str | Format) -> Format:
    """Return the :class:`Format` for a name or a Format.

    Raises
    ------
    ValueError
        If ``fmt`` names no known format.
    TypeError
        If ``fmt`` is neither a string nor a Format.
    """
    if isinstance(fmt, Format):
        return fmt
    if isinstance(fmt, str):
        try:
            return FORMATS[fmt.lower()]
        except KeyError:
            raise ValueError(
                f"unknown MX format {fmt!r}; expected one of {', '.join(FORMATS)}"
            ) from None
    raise TypeError(f"fmt must be a format name or an mxarray Format, not {type(fmt).__name__}")


def _check_mode(value: object, allowed: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


def check_rounding(rounding: object) -> str:
    """Return ``rounding`` if it is a rounding mode of the spec, else raise ValueError."""
    return _check_mode(rounding, ROUNDING_MODES, "rounding mode")


def check_scale_mode(scale_mode: object) -> str:
    """Return ``scale_mode`` if it is a scale mode of the spec, else raise ValueError."""
    return _check_mode(scale_mode, SCALE_MODES, "scale mode")
