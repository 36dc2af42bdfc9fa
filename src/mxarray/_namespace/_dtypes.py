"""Data types of the namespace: the standard dtypes, the MX dtypes, and promotion.

The standard dtypes are NumPy dtype objects (``mxarray.float32 is numpy.dtype("float32")``),
so they compare equal to what NumPy and array-api-compat report.  The MX dtypes are the
:class:`mxarray.formats.Format` singletons.  For promotion an MX dtype behaves as
``float32`` (its values are dequantized to float32 first); it belongs to no standard
``isdtype`` kind and is not listed by ``__array_namespace_info__().dtypes()``.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..formats import BLOCK_FORMATS, Format

__all__ = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
    "STANDARD_DTYPES", "KINDS", "CATEGORIES", "is_mx_dtype", "check_dtype", "promote",
    "isdtype", "result_type", "can_cast", "finfo", "iinfo", "scalar_dtype",
    "PYTHON_SCALARS", "SCALARS", "python_scalar", "FInfo", "IInfo",
]

bool = np.dtype(np.bool_)  # noqa: A001 - the standard's name
int8, int16, int32, int64 = (np.dtype(f"int{n}") for n in (8, 16, 32, 64))
uint8, uint16, uint32, uint64 = (np.dtype(f"uint{n}") for n in (8, 16, 32, 64))
float32, float64 = np.dtype(np.float32), np.dtype(np.float64)
complex64, complex128 = np.dtype(np.complex64), np.dtype(np.complex128)

_SIGNED = (int8, int16, int32, int64)
_UNSIGNED = (uint8, uint16, uint32, uint64)
_REAL_FLOAT = (float32, float64)
_COMPLEX = (complex64, complex128)

STANDARD_DTYPES: dict[str, np.dtype] = {
    str(dt): dt for dt in (*_SIGNED, *_UNSIGNED, *_REAL_FLOAT, *_COMPLEX, bool)
}

# The dtype kinds of isdtype().
KINDS: dict[str, tuple[np.dtype, ...]] = {
    "bool": (bool,),
    "signed integer": _SIGNED,
    "unsigned integer": _UNSIGNED,
    "integral": _SIGNED + _UNSIGNED,
    "real floating": _REAL_FLOAT,
    "complex floating": _COMPLEX,
    "numeric": _SIGNED + _UNSIGNED + _REAL_FLOAT + _COMPLEX,
}

# The input categories the standard's function signatures name.
CATEGORIES: dict[str, tuple[np.dtype, ...]] = {
    "all": tuple(STANDARD_DTYPES.values()),
    "numeric": KINDS["numeric"],
    "real numeric": _SIGNED + _UNSIGNED + _REAL_FLOAT,
    "integer": _SIGNED + _UNSIGNED,
    "integer or boolean": _SIGNED + _UNSIGNED + (bool,),
    "boolean": (bool,),
    "floating-point": _REAL_FLOAT + _COMPLEX,
    "real floating-point": _REAL_FLOAT,
    "complex floating-point": _COMPLEX,
}


# Python scalars, and the NumPy scalars that stand for them: wherever the standard takes a
# Python scalar, a NumPy scalar is taken as the Python scalar it holds (``python_scalar``).
PYTHON_SCALARS = (builtins.bool, int, float, complex)
SCALARS = PYTHON_SCALARS + (np.bool_, np.integer, np.floating, np.complexfloating)


def python_scalar(value: Any) -> Any:
    """``value`` as a Python scalar if it is a NumPy scalar of a standard dtype, else unchanged.

    ``numpy.float32(2.0)`` becomes ``2.0`` and ``numpy.bool_(True)`` becomes ``True``, so the
    standard's rules for Python scalars apply to them (a float meeting a float32 array
    stays float32).  ``numpy.float64`` and ``numpy.complex128`` already are Python scalars.

    Raises
    ------
    TypeError
        For a NumPy scalar of a dtype outside the standard (``float16``, ``longdouble``):
        its value has no exact Python scalar of the same kind and precision.

    Examples
    --------
    >>> import numpy as np
    >>> from mxarray._namespace._dtypes import python_scalar
    >>> python_scalar(np.float32(0.5)), python_scalar(np.int64(3)), python_scalar(np.bool_(1))
    (0.5, 3, True)
    """
    if not isinstance(value, np.generic):
        return value
    if value.dtype not in STANDARD_DTYPES.values():
        raise TypeError(f"a NumPy scalar of dtype {value.dtype} is not a scalar of the array "
                        "API standard; convert it to a standard dtype first")
    return value.item()


def is_mx_dtype(dtype: object) -> builtins.bool:
    """Return True if ``dtype`` is one of the MX formats (``mxarray.mxfp4_e2m1`` ...).

    Examples
    --------
    >>> import mxarray as mx
    >>> mx.is_mx_dtype(mx.mxfp8_e4m3), mx.is_mx_dtype(mx.float32)
    (True, False)
    """
    return isinstance(dtype, Format)


def check_dtype(dtype: object) -> np.dtype | Format:
    """Return ``dtype`` as a namespace dtype: a standard NumPy dtype or an MX Format.

    Strings name either (``"float32"``, ``"mxfp4_e2m1"``).

    Raises
    ------
    TypeError
        If ``dtype`` is not a dtype of this namespace.
    """
    if isinstance(dtype, Format):
        return dtype
    if isinstance(dtype, str) and dtype in BLOCK_FORMATS:
        return BLOCK_FORMATS[dtype]
    if isinstance(dtype, np.dtype) and dtype in STANDARD_DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in STANDARD_DTYPES:
        return STANDARD_DTYPES[dtype]
    raise TypeError(f"{dtype!r} is not a dtype of the mxarray namespace")


def _as_promotable(dtype: np.dtype | Format) -> np.dtype:
    """MX dtypes promote as float32 (their dequantized values)."""
    return float32 if isinstance(dtype, Format) else dtype


def promote(d1: np.dtype | Format, d2: np.dtype | Format) -> np.dtype:
    """The standard's type promotion of two dtypes (MX dtypes count as float32).

    Raises
    ------
    TypeError
        For pairs the standard leaves undefined: mixed kinds (boolean, integer,
        floating) and uint64 with a signed integer.
    """
    a, b = _as_promotable(d1), _as_promotable(d2)
    if a == b:
        return a
    ka, kb = a.kind, b.kind
    same_family = (ka == kb) or {ka, kb} == {"i", "u"} or {ka, kb} == {"f", "c"}
    if not same_family or (uint64 in (a, b) and {ka, kb} == {"i", "u"}):
        raise TypeError(f"{d1} and {d2} cannot be type promoted together")
    return np.promote_types(a, b)


def scalar_dtype(value: object, dtype: np.dtype | Format) -> np.dtype:
    """The dtype a Python scalar takes when it meets an array of ``dtype``.

    Raises
    ------
    TypeError
        If the scalar's kind does not fit the array's kind (e.g. a float with an
        integer array, a bool with a numeric array).
    OverflowError
        If an int does not fit an integer dtype.
    """
    dt = _as_promotable(dtype)
    value = python_scalar(value)
    if isinstance(value, builtins.bool):
        if dt != bool:
            raise TypeError("Python bool scalars can only be combined with bool arrays")
        return dt
    if isinstance(value, int):
        if dt == bool:
            raise TypeError("Python int scalars cannot be combined with bool arrays")
        if dt.kind in "iu":
            info = np.iinfo(dt)
            if not info.min <= value <= info.max:
                raise OverflowError(f"Python int {value} is out of bounds for {dt}")
        return dt
    if isinstance(value, float):
        if dt.kind not in "fc":
            raise TypeError("Python float scalars can only be combined with floating-point arrays")
        return dt
    if isinstance(value, complex):
        if dt.kind not in "fc":
            raise TypeError(
                "Python complex scalars can only be combined with floating-point arrays"
            )
        return complex64 if dt == float32 else complex128 if dt == float64 else dt
    raise TypeError(f"expected an array or a Python scalar, got {type(value).__name__}")


def isdtype(dtype: Any, kind: str | Any | tuple[Any, ...]) -> builtins.bool:
    """Return True if ``dtype`` is of ``kind`` (a kind name, a dtype, or a tuple of them).

    MX dtypes are of no standard kind; they match only themselves.

    Raises
    ------
    TypeError
        If ``dtype`` or a dtype in ``kind`` is not a dtype of this namespace.
    ValueError
        If ``kind`` names no kind of the standard.
    """
    dtype = check_dtype(dtype)
    if isinstance(kind, tuple):
        return any(isdtype(dtype, k) for k in kind)
    if isinstance(kind, str):
        if kind not in KINDS:
            raise ValueError(f"unknown dtype kind {kind!r}; expected one of {sorted(KINDS)}")
        return (not isinstance(dtype, Format)) and dtype in KINDS[kind]
    return dtype == check_dtype(kind)


def result_type(*arrays_and_dtypes: Any) -> np.dtype:
    """The dtype that results from promoting all arguments (arrays, dtypes, Python scalars).

    Raises
    ------
    TypeError
        If no array or dtype is given, or the arguments cannot be promoted together.
    """
    dtypes, scalars = [], []
    for a in arrays_and_dtypes:
        if isinstance(a, SCALARS):
            scalars.append(python_scalar(a))
        elif hasattr(a, "dtype") and not isinstance(a, np.dtype):
            dtypes.append(check_dtype(a.dtype))
        else:
            dtypes.append(check_dtype(a))
    if not dtypes:
        raise TypeError("result_type needs at least one array or dtype")
    out = _as_promotable(dtypes[0])
    for d in dtypes[1:]:
        out = promote(out, d)
    for s in scalars:
        out = scalar_dtype(s, out)
    return out


def can_cast(from_: Any, to: Any, /) -> builtins.bool:
    """Return True if ``from_`` (a dtype or array) can be cast to ``to`` under promotion rules.

    Any dtype can be cast to an MX dtype by quantizing and an MX dtype to float32/float64
    by dequantizing; ``can_cast`` answers with the standard's promotion rules, where an
    MX dtype counts as float32.
    """
    src = _dtype_of(from_)
    dst = check_dtype(to)
    try:
        return promote(src, dst) == _as_promotable(dst)
    except TypeError:
        return False


@dataclass(frozen=True)
class FInfo:
    """Machine limits of a floating-point dtype, as the standard's ``finfo`` object.

    For a complex dtype they describe its real components (``dtype`` is the real dtype).
    """

    bits: int
    eps: float
    max: float
    min: float
    smallest_normal: float
    dtype: np.dtype


@dataclass(frozen=True)
class IInfo:
    """Machine limits of an integer dtype, as the standard's ``iinfo`` object."""

    bits: int
    max: int
    min: int
    dtype: np.dtype


def _dtype_of(value: Any) -> np.dtype | Format:
    """The namespace dtype of a dtype or of an array."""
    return check_dtype(value.dtype if hasattr(value, "dtype") and not isinstance(
        value, np.dtype) else value)


def finfo(type: Any, /) -> FInfo:  # noqa: A002 - the standard's name
    """Machine limits of a floating-point dtype or array: ``bits`` (int), ``eps``, ``max``,
    ``min``, ``smallest_normal`` (Python floats) and ``dtype``.

    Raises
    ------
    TypeError
        If ``type`` is not a floating-point dtype (MX dtypes included: their limits
        are on the Format object).
    """
    dt = _dtype_of(type)
    if isinstance(dt, Format) or dt.kind not in "fc":
        raise TypeError(f"finfo needs a standard floating-point dtype, got {dt}")
    info = np.finfo(dt)
    return FInfo(bits=int(info.bits), eps=float(info.eps), max=float(info.max),
                 min=float(info.min), smallest_normal=float(info.smallest_normal),
                 dtype=info.dtype)


def iinfo(type: Any, /) -> IInfo:  # noqa: A002 - the standard's name
    """Machine limits of an integer dtype or array: ``bits``, ``max``, ``min`` (Python ints)
    and ``dtype``.

    Raises
    ------
    TypeError
        If ``type`` is not an integer dtype.
    """
    dt = _dtype_of(type)
    if isinstance(dt, Format) or dt.kind not in "iu":
        raise TypeError(f"iinfo needs an integer dtype, got {dt}")
    info = np.iinfo(dt)
    return IInfo(bits=int(info.bits), max=int(info.max), min=int(info.min), dtype=dt)
