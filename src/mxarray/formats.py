"""Block formats (the OCP MX formats, MX9/MX6/MX4, NVFP4, user entries) and their scales.

Every number here is read from ``spec/mx.toml``; decode tables are derived from the
bit-level description (sign, exponent and mantissa fields) and checked against the
spec's typed limits when the module loads, so a wrong spec entry fails at import.
:func:`register` adds a user's block format at run time, from a dict or a TOML file.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import tomllib
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ._block_spec import check_byte_tiling, check_tensor_scale_range, normalize_entry
from ._spec import load_spec

__all__ = [
    "Format",
    "Layout",
    "ScaleFormat",
    "FORMATS",
    "BLOCK_FORMATS",
    "register",
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


@dataclasses.dataclass(frozen=True, eq=False)
class ScaleFormat:
    """A block scale format: byte ``b`` of a block means ``values[b]`` (NaN: none).

    ``kind`` is ``"exponent"`` (E8M0 and plain d-bit exponents: ``2**(b - bias)``, the
    all-ones byte ``nan_code`` is NaN) or ``"ue4m3"`` (unsigned E4M3, ``nan_code`` 0x7F).
    ``min_exponent``/``max_exponent`` bound the exponent X of an exponent scale.
    """

    name: str
    bits: int
    bias: int
    nan_code: int
    min_exponent: int
    max_exponent: int
    kind: str = "exponent"
    values: np.ndarray = dataclasses.field(default=None, repr=False)  # type: ignore[assignment]

    def decode(self, scale_bytes: np.ndarray) -> np.ndarray:
        """Return the float64 values of scale bytes (NaN for ``nan_code`` and invalid bytes)."""
        return self.values[np.asarray(scale_bytes, dtype=np.uint8)]

    def valid(self, scale_bytes: np.ndarray) -> np.ndarray:
        """Mask of the bytes this scale format defines (the NaN byte included)."""
        b = np.asarray(scale_bytes, dtype=np.uint8)
        return ~np.isnan(self.values[b]) | (b == self.nan_code)

    @property
    def finite_grid(self) -> np.ndarray:
        """The finite values of codes ``0, 1, ...`` up to the NaN code, ascending (float64)."""
        return self.values[: self.nan_code]


def _exponent_scale(name: str, bits: int) -> ScaleFormat:
    """A plain ``bits``-bit exponent scale: bias ``2**(bits-1) - 1``, all-ones is NaN."""
    bias = (1 << (bits - 1)) - 1
    nan_code = (1 << bits) - 1
    b = np.arange(256)
    values = np.where(b < nan_code, np.ldexp(1.0, b - bias), np.nan)
    values.flags.writeable = False
    return ScaleFormat(name, bits, bias, nan_code, -bias, nan_code - 1 - bias, "exponent", values)


@dataclasses.dataclass(frozen=True, eq=False)
class Format:
    """One block format: an element type, its block size and scale, optional sub-blocks
    with microexponents, and an optional per-tensor scale.

    Instances are immutable singletons (``mxarray.mxfp4_e2m1``, ``get_format("mx9")`` and
    friends); compare them with ``is`` or ``==``.  The OCP formats come from the spec's
    ``[formats]`` entries, the others from ``[block_formats]`` and :func:`register`.

    Attributes
    ----------
    name : str
        The format name, e.g. ``"mxfp4_e2m1"`` or ``"mx9"``.
    element : str
        The element type, e.g. ``"E2M1"``, ``"INT8"`` or ``"S1M7"`` (sign-magnitude).
    kind : {"float", "int", "signmag"}
        Floating-point elements (sign, exponent, mantissa), two's-complement scaled
        integers, or sign-magnitude scaled integers.
    bits : int
        Bits per element code (without microexponents).
    exponent_bits, mantissa_bits, bias, emax : int
        Field widths, exponent bias and the exponent of the largest normal.  For
        ``kind`` "int" and "signmag", ``mantissa_bits`` is the number of fraction bits.
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
        Elements per shared scale (32 for the OCP formats, 16 for MX9/6/4 and NVFP4).
    ml_dtypes : str
        Name of the equivalent ``ml_dtypes`` element type, or ``""`` if none.
    scale : ScaleFormat
        The block scale (E8M0 for the OCP formats and MX9/6/4, UE4M3 for NVFP4).
    sub_block_size, sub_block_bits : int
        Elements per sub-block and bits of its microexponent (0 and 0: no sub-blocks).
    magnitude_overflow : {"saturate", "promote"}
        What a sub-block does when a rounded magnitude exceeds the largest one.
    tensor_scale : {"none", "amax"}
        Whether arrays carry a float32 per-tensor scale chosen from the tensor's amax.
    description : str
        One line about the format.
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
    scale: ScaleFormat
    sub_block_size: int
    sub_block_bits: int
    magnitude_overflow: str
    tensor_scale: str
    description: str
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
    def is_ocp(self) -> bool:
        """True for the six OCP MX v1.0 formats (E8M0 scale per 32 elements)."""
        return self.name in FORMATS and FORMATS[self.name] is self

    @property
    def n_sub_blocks(self) -> int:
        """Sub-blocks per block (0 when the format has none)."""
        return self.block_size // self.sub_block_size if self.sub_block_size else 0

    @property
    def code_bits(self) -> int:
        """Bits of an unpacked code: element bits plus the sub-block's microexponent."""
        return self.bits + self.sub_block_bits

    @property
    def code_dtype(self) -> np.dtype:
        """dtype of unpacked codes: uint8, or uint16 when :attr:`code_bits` exceeds 8."""
        return np.dtype(np.uint8 if self.code_bits <= 8 else np.uint16)

    @property
    def element_bytes(self) -> int:
        """Packed bytes of one block's elements."""
        return self.block_size * self.bits // 8

    @property
    def sub_block_bytes(self) -> int:
        """Packed bytes of one block's microexponents (after its elements)."""
        return -(-self.n_sub_blocks * self.sub_block_bits // 8)

    @functools.cached_property
    def bytes_per_block(self) -> int:
        """Packed bytes per block in :attr:`MXArray.packed` (scales not included)."""
        return self.element_bytes + self.sub_block_bytes

    @property
    def bits_per_element(self) -> float:
        """Nominal bits per element including the shared parts, e.g. 4.25 for MXFP4, 9 for MX9.

        Element bits plus the scale's bits per block and the microexponent bits per
        sub-block, as the format definitions count them (the per-tensor scale of NVFP4 is
        not included).  Storage rounds up: every scale takes one byte and each block's
        microexponents fill whole bytes, so for a registered format with narrower scales
        or fewer than eight microexponent bits per block, :attr:`MXArray.nbytes` is
        larger.  For the OCP formats, MX9/MX6/MX4 and NVFP4 the two agree.
        """
        sub = self.sub_block_bits / self.sub_block_size if self.sub_block_size else 0.0
        return self.bits + self.scale.bits / self.block_size + sub

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Return the float64 values of unpacked ``codes`` (microexponents applied, without
        the block and tensor scales)."""
        return self.decode_table[np.asarray(codes, dtype=self.code_dtype)]

    def tensor_scale_for(self, amax: float) -> np.float32:
        """The ``"amax"`` tensor scale of the spec for a tensor whose finite amax is ``amax``.

        ``fl32(fl32s(amax) / fl32(max_normal * scale max))``, at least ``2**-149``; 1.0 for
        ``amax == 0``.

        Examples
        --------
        >>> import mxarray
        >>> float(mxarray.formats.get_format("nvfp4").tensor_scale_for(2688.0))
        1.0
        """
        if self.tensor_scale != "amax":
            raise ValueError(f"{self.name} has no tensor scale")
        if not amax > 0:
            return np.float32(1.0)
        f32 = np.finfo(np.float32)
        top = np.float32(min(float(amax), float(f32.max)))  # saturate, then round to float32
        denominator = np.float32(self.max_normal * float(self.scale.finite_grid[-1]))
        return max(np.float32(top / denominator), np.float32(f32.smallest_subnormal))

    def __repr__(self) -> str:
        return f"mxarray.{self.name}"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Pickle by name so unpickling returns the singleton.
        return (get_format, (self.name,))


def _element_values(fmt: Format) -> np.ndarray:
    """Value of every element code, from the bit fields (float64, exact)."""
    codes = np.arange(fmt.n_codes, dtype=np.int64)
    m = fmt.mantissa_bits
    sign = np.where(codes & fmt.sign_bit, -1.0, 1.0)
    if fmt.kind == "int":
        signed = np.where(codes >= fmt.sign_bit, codes - fmt.n_codes, codes)
        return np.ldexp(signed.astype(np.float64), -m)
    if fmt.kind == "signmag":
        return sign * np.ldexp((codes & (fmt.sign_bit - 1)).astype(np.float64), -m)
    exp_field = (codes >> m) & ((1 << fmt.exponent_bits) - 1)
    frac = codes & ((1 << m) - 1)
    subnormal = np.ldexp(frac.astype(np.float64), 1 - fmt.bias - m)
    normal = np.ldexp((frac + (1 << m)).astype(np.float64), exp_field - fmt.bias - m)
    table = sign * np.where(exp_field == 0, subnormal, normal)
    table[list(fmt.inf_codes)] = sign[list(fmt.inf_codes)] * np.inf
    table[list(fmt.nan_codes)] = np.nan
    return table


def _decode_table(fmt: Format) -> np.ndarray:
    """Value of every unpacked code ``element | D << bits``: element value times ``2**-D``."""
    values = _element_values(fmt)
    shifts = np.arange(1 << fmt.sub_block_bits)
    return np.ldexp(values[None, :], -shifts[:, None]).reshape(-1)


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


def _layout_for(bits: int) -> Layout:
    """The bit-stream layout of ``bits``-bit codes (the spec's named layouts where they exist)."""
    for layout in _LAYOUTS.values():
        if layout.elements * bits == layout.bytes * 8:
            return layout
    step = math.gcd(8, bits)
    return Layout("bitstream", 8 // step, bits // step, _SPEC["block_layout"]["elements"])


def _element_fields(element: str | Mapping[str, Any]) -> dict[str, Any]:
    """Format fields of an element: copied from an OCP format, or derived from its bits."""
    if isinstance(element, str):
        base = FORMATS[element]
        keys = ("element", "kind", "bits", "exponent_bits", "mantissa_bits", "bias", "emax",
                "max_normal", "min_normal", "min_subnormal", "has_inf", "inf_codes",
                "nan_codes", "max_code", "ml_dtypes")
        return {k: getattr(base, k) for k in keys}
    kind, bits, m = element["kind"], element["bits"], element["mantissa_bits"]
    sign_bit = 1 << (bits - 1)
    nan_codes = tuple(element.get("nan_codes", ()))
    inf_codes = tuple(element.get("inf_codes", ()))
    specials = set(nan_codes) | set(inf_codes)
    max_code = max(c for c in range(sign_bit) if c not in specials)
    if kind == "float":
        e, bias = element["exponent_bits"], element["bias"]
        name, min_normal = f"E{e}M{m}", 2.0 ** (1 - bias)
    else:
        e, bias = 0, 0
        name = f"INT{bits}" if kind == "int" else f"S1M{bits - 1}"
        min_normal = 2.0**-m
    fields = dict(element=name, kind=kind, bits=bits, exponent_bits=e, mantissa_bits=m,
                  bias=bias, has_inf=bool(inf_codes), inf_codes=inf_codes, nan_codes=nan_codes,
                  max_code=max_code, ml_dtypes="")
    probe = _element_values(_Probe(**fields))  # type: ignore[arg-type]
    if np.isnan(probe[max_code]) or not np.isfinite(probe[max_code]) or probe[max_code] <= 0:
        raise ValueError(f"element {name} has no positive finite value")
    positive = probe[np.isfinite(probe) & (probe > 0)]
    fields.update(max_normal=float(probe[max_code]), min_normal=min_normal,
                  min_subnormal=float(positive.min()),
                  emax=int(np.frexp(probe[max_code])[1]) - 1)
    return fields


@dataclasses.dataclass(frozen=True)
class _Probe:
    """The bit fields :func:`_element_values` reads, before a Format exists."""

    element: str
    kind: str
    bits: int
    exponent_bits: int
    mantissa_bits: int
    bias: int
    has_inf: bool
    inf_codes: tuple[int, ...]
    nan_codes: tuple[int, ...]
    max_code: int
    ml_dtypes: str

    @property
    def n_codes(self) -> int:
        return 1 << self.bits

    @property
    def sign_bit(self) -> int:
        return 1 << (self.bits - 1)


def _scale_for(kind: str, bits: int) -> ScaleFormat:
    if kind == "e8m0":
        return SCALE
    if kind == "ue4m3":
        return UE4M3
    return SCALE if bits == SCALE.bits else _exponent_scale(f"exp{bits}", bits)


def _block_format(entry: Mapping[str, Any], name: str) -> Format:
    """Build a :class:`Format` from a (validated here) block-format entry."""
    e = normalize_entry(entry, name, tuple(FORMATS))
    fields = _element_fields(e["element"])
    check_byte_tiling(name, fields["bits"], e["block_size"])
    scale = _scale_for(e["scale"], e["scale_bits"])
    if e["tensor_scale"] == "amax":
        check_tensor_scale_range(name, fields["max_normal"], float(scale.finite_grid[-1]))
    return Format(
        name=name,
        layout=_layout_for(fields["bits"]),
        block_size=e["block_size"],
        scale=scale,
        sub_block_size=e["sub_block_size"],
        sub_block_bits=e["sub_block_bits"],
        magnitude_overflow=e["magnitude_overflow"],
        tensor_scale=e["tensor_scale"],
        description=e["description"],
        spec=_frozen(entry),
        **fields,
    )


def _frozen(value: Any) -> Any:
    """A read-only deep copy of an entry: later changes to the caller's dict (or lists
    inside it) must not change the definition a format records (files store it)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _check_e8m0(spec: Mapping[str, Any], e8m0: ScaleFormat) -> None:
    s = spec["scale"]
    if (e8m0.bias, e8m0.nan_code, e8m0.min_exponent, e8m0.max_exponent) != (
        s["bias"], s["nan_code"], s["min_exponent"], s["max_exponent"]
    ):
        raise RuntimeError("spec/mx.toml: [scale] is not the 8-bit exponent format E8M0")


def _ue4m3(spec: Mapping[str, Any], e4m3: Format) -> ScaleFormat:
    """The unsigned E4M3 scale of NVFP4: the non-negative codes of the E4M3 element."""
    u = spec["scale_formats"]["ue4m3"]
    values = np.full(256, np.nan)
    values[: u["nan_code"]] = e4m3.decode_table[: u["nan_code"]]
    values.flags.writeable = False
    if values[u["nan_code"] - 1] != u["max_value"]:
        raise RuntimeError("spec/mx.toml: [scale_formats.ue4m3].max_value is not E4M3's maximum")
    return ScaleFormat("ue4m3", u["bits"], e4m3.bias, u["nan_code"],
                       e4m3.emin - e4m3.mantissa_bits, e4m3.emax, "ue4m3", values)


def _build() -> tuple[Mapping[str, Format], ScaleFormat, ScaleFormat, int]:
    spec = load_spec()
    block_size = int(spec["block_size"])
    formats: dict[str, Format] = {}
    scale = _exponent_scale(spec["scale"]["name"], spec["scale"]["bits"])
    _check_e8m0(spec, scale)
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
            layout=_LAYOUTS[e["packing"]],
            block_size=block_size,
            ml_dtypes=e["ml_dtypes"],
            scale=scale,
            sub_block_size=0,
            sub_block_bits=0,
            magnitude_overflow="saturate",
            tensor_scale="none",
            description=f"OCP MX v1.0 {e['element']} elements, E8M0 scale per {block_size}",
            spec=MappingProxyType(dict(e)),
        )
        _check_against_spec(fmt)
        formats[name] = fmt
    return MappingProxyType(formats), scale, _ue4m3(spec, formats["mxfp8_e4m3"]), block_size


_SPEC = load_spec()
_LAYOUTS = {
    name: Layout(name, entry["elements"], entry["bytes"], entry["description"])
    for name, entry in _SPEC["layouts"].items()
    if isinstance(entry, dict)
}
FORMATS, SCALE, UE4M3, BLOCK_SIZE = _build()
"""FORMATS maps the OCP format names to their :class:`Format`; SCALE is the E8M0 scale."""

_REGISTRY: dict[str, Format] = dict(FORMATS)
_REGISTER_LOCK = threading.Lock()
BLOCK_FORMATS: Mapping[str, Format] = MappingProxyType(_REGISTRY)
"""Every known block format by name: the OCP ones, the spec's [block_formats], registered ones."""
for _name, _entry in _SPEC["block_formats"].items():
    _REGISTRY[_name] = _block_format(_entry, _name)

SPEC_VERSION: str = _SPEC["spec_version"]
ROUNDING_MODES: tuple[str, ...] = tuple(_SPEC["rounding_modes"])
SCALE_MODES: tuple[str, ...] = tuple(_SPEC["scale_modes"])


def register(entry: Mapping[str, Any] | str | os.PathLike[str]) -> Format:
    """Add a block format from a dict or a TOML file; return its :class:`Format`.

    The entry has the fields of a ``[block_formats.NAME]`` table of ``spec/mx.toml``
    plus ``name``: ``element`` (an OCP format name or an inline table with ``kind``
    "float", "int" or "signmag"), ``block_size``, ``scale`` ("e8m0", "ue4m3" or
    "exponent" with ``scale_bits``), optionally ``sub_block_size`` with
    ``sub_block_bits``, ``magnitude_overflow`` and ``tensor_scale``.  A TOML file holds
    those keys at its top level.  The new format then works with
    :func:`mxarray.quantize`, :func:`mxarray.dequantize` and matmul on the backends that
    support it (the NumPy reference supports every format).

    Raises
    ------
    ValueError
        If a field is missing, unknown or out of range, or the name is taken; or if
        the file is not UTF-8 TOML (the message names the file).
    OSError
        If the file cannot be read.
    TypeError
        If ``entry`` is neither a mapping nor a path.

    Examples
    --------
    >>> import numpy as np, mxarray
    >>> fmt = mxarray.formats.register({"name": "doc_bfp8", "block_size": 8, "scale": "e8m0",
    ...     "element": {"kind": "signmag", "bits": 8, "mantissa_bits": 6}})
    >>> fmt.bits_per_element
    9.0
    >>> mxarray.quantize(np.array([1.0, -0.75, 3.0]), "doc_bfp8").dequantize()
    array([ 1.  , -0.75,  3.  ], dtype=float32)
    """
    if isinstance(entry, (str, os.PathLike)):
        with open(entry, "rb") as f:
            try:
                entry = tomllib.load(f)
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"{os.fsdecode(entry)} is not a valid UTF-8 TOML file: "
                                 f"{err}") from None
    if not isinstance(entry, Mapping):
        raise TypeError(f"register needs a dict or a TOML file path, got {type(entry).__name__}")
    name = entry.get("name")
    if isinstance(name, str) and name.lower() in _REGISTRY:
        raise ValueError(f"a format named {name!r} already exists")
    fmt = _block_format(entry, name)  # type: ignore[arg-type]
    with _REGISTER_LOCK:  # check and insert at once: of racing registrations one wins
        if fmt.name in _REGISTRY:
            raise ValueError(f"a format named {name!r} already exists")
        _REGISTRY[fmt.name] = fmt
    return fmt


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
            return _REGISTRY[fmt.lower()]
        except KeyError:
            raise ValueError(
                f"unknown MX format {fmt!r}; expected one of {', '.join(_REGISTRY)}"
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
