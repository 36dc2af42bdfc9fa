"""Element-wise functions of the standard.

Each function is described once in a table (the name of its ufunc in the array module of
the data's device, NumPy or CuPy; the dtype category the
standard allows, and what dtype it returns) and built by one factory, so every
function checks its input and promotes the same way.  MX arrays enter as their
dequantized float32 values (see :mod:`._operands`).
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from . import _dtypes as dt
from ._array import Array
from ._device import quiet, same_device
from ._operands import SCALARS, array_module, binary_operands, check_category, dense

# The outputs: "same" (the promoted input dtype), "bool", or "real" (the real dtype
# matching a complex input, else the input dtype).
_UNARY: dict[str, tuple[str, str, str]] = {
    "abs": ("absolute", "numeric", "real"),
    "acos": ("arccos", "floating-point", "same"),
    "acosh": ("arccosh", "floating-point", "same"),
    "asin": ("arcsin", "floating-point", "same"),
    "asinh": ("arcsinh", "floating-point", "same"),
    "atan": ("arctan", "floating-point", "same"),
    "atanh": ("arctanh", "floating-point", "same"),
    "bitwise_invert": ("invert", "integer or boolean", "same"),
    "ceil": ("ceil", "real numeric", "same"),
    "conj": ("conj", "numeric", "same"),
    "cos": ("cos", "floating-point", "same"),
    "cosh": ("cosh", "floating-point", "same"),
    "exp": ("exp", "floating-point", "same"),
    "expm1": ("expm1", "floating-point", "same"),
    "floor": ("floor", "real numeric", "same"),
    "imag": ("imag", "complex floating-point", "real"),
    "isfinite": ("isfinite", "numeric", "bool"),
    "isinf": ("isinf", "numeric", "bool"),
    "isnan": ("isnan", "numeric", "bool"),
    "log": ("log", "floating-point", "same"),
    "log10": ("log10", "floating-point", "same"),
    "log1p": ("log1p", "floating-point", "same"),
    "log2": ("log2", "floating-point", "same"),
    "logical_not": ("logical_not", "boolean", "same"),
    "negative": ("negative", "numeric", "same"),
    "positive": ("positive", "numeric", "same"),
    "real": ("real", "numeric", "real"),
    "reciprocal": ("reciprocal", "floating-point", "same"),
    "round": ("round", "numeric", "same"),
    "sign": ("sign", "numeric", "same"),
    "signbit": ("signbit", "real floating-point", "bool"),
    "sin": ("sin", "floating-point", "same"),
    "sinh": ("sinh", "floating-point", "same"),
    "sqrt": ("sqrt", "floating-point", "same"),
    "square": ("square", "numeric", "same"),
    "tan": ("tan", "floating-point", "same"),
    "tanh": ("tanh", "floating-point", "same"),
    "trunc": ("trunc", "real numeric", "same"),
}

_BINARY: dict[str, tuple[str, str, str]] = {
    "add": ("add", "numeric", "same"),
    "atan2": ("arctan2", "real floating-point", "same"),
    "bitwise_and": ("bitwise_and", "integer or boolean", "same"),
    "bitwise_or": ("bitwise_or", "integer or boolean", "same"),
    "bitwise_xor": ("bitwise_xor", "integer or boolean", "same"),
    "bitwise_left_shift": ("left_shift", "integer", "same"),
    "bitwise_right_shift": ("right_shift", "integer", "same"),
    "copysign": ("copysign", "real floating-point", "same"),
    "divide": ("divide", "floating-point", "same"),
    "equal": ("equal", "all", "bool"),
    "floor_divide": ("floor_divide", "real numeric", "same"),
    "greater": ("greater", "real numeric", "bool"),
    "greater_equal": ("greater_equal", "real numeric", "bool"),
    "hypot": ("hypot", "real floating-point", "same"),
    "less": ("less", "real numeric", "bool"),
    "less_equal": ("less_equal", "real numeric", "bool"),
    "logaddexp": ("logaddexp", "real floating-point", "same"),
    "logical_and": ("logical_and", "boolean", "same"),
    "logical_or": ("logical_or", "boolean", "same"),
    "logical_xor": ("logical_xor", "boolean", "same"),
    "maximum": ("maximum", "real numeric", "same"),
    "minimum": ("minimum", "real numeric", "same"),
    "multiply": ("multiply", "numeric", "same"),
    "nextafter": ("nextafter", "real floating-point", "same"),
    "not_equal": ("not_equal", "all", "bool"),
    "pow": ("power", "numeric", "same"),
    "remainder": ("remainder", "real numeric", "same"),
    "subtract": ("subtract", "numeric", "same"),
}

# Rounding functions return integer input unchanged (the backend may give floats).
_IDENTITY_ON_INTEGERS = {"ceil", "floor", "trunc", "round"}


# Special cases where NumPy's ufuncs (checked with NumPy 2.4) differ from the standard's
# tables; applied on every device, they are no-ops where the module already conforms.
# Each fix-up takes the array module, the input backend arrays and the ufunc's result,
# and returns the result with those elements replaced.

def _floor_divide_cases(xp: Any, x1: Any, x2: Any, out: Any) -> Any:
    """An infinite dividend over a finite nonzero divisor is a signed infinity (NumPy:
    NaN); a finite nonzero dividend over an infinite divisor of the other sign is ``-0``
    (NumPy: -1)."""
    if out.dtype.kind != "f":
        return out
    inf_over_finite = xp.isinf(x1) & xp.isfinite(x2) & (x2 != 0)
    finite_over_inf = xp.isfinite(x1) & (x1 != 0) & xp.isinf(x2)
    signs_differ = xp.signbit(x1) != xp.signbit(x2)
    out = xp.where(inf_over_finite, xp.where(signs_differ, -xp.inf, xp.inf), out)
    return xp.where(finite_over_inf, xp.where(signs_differ, -0.0, 0.0), out).astype(out.dtype)


def _pow_cases(xp: Any, x1: Any, x2: Any, out: Any) -> Any:
    """``-infinity`` or ``-0`` to a positive power that is not an odd integer gives
    ``+infinity`` or ``+0`` (NumPy 2.4 computes ``x ** 0.5`` as ``sqrt(x)``: NaN and
    ``-0``)."""
    if out.dtype.kind != "f":
        return out
    not_odd = ~((x2 % 2) == 1)
    negative_pole = ((x1 == -xp.inf) | ((x1 == 0) & xp.signbit(x1))) & (x2 > 0) & not_odd
    return xp.where(negative_pole, xp.where(xp.isinf(x1), xp.inf, 0.0), out).astype(out.dtype)


def _expm1_cases(xp: Any, x: Any, out: Any) -> Any:
    """Complex ``expm1`` with an infinite or NaN real part, as the standard's table (NumPy
    computes ``exp(x) - 1`` and gives NaN parts): ``+infinity + bj`` gives
    ``+infinity * cis(b)`` (``b`` kept when it is zero, ``infinity + NaN j`` when it is not
    finite), ``-infinity + bj`` gives ``-1 + 0 * cis(b)`` (``-1 + 0j`` when ``b`` is not
    finite) and ``NaN ± 0j`` gives ``NaN ± 0j``."""
    if out.dtype.kind != "c":
        return out
    a, b = x.real, x.imag
    finite_b = xp.isfinite(b)
    safe_b = xp.where(finite_b, b, 0.0)
    cos_b, sin_b = xp.cos(safe_b), xp.sin(safe_b)
    up_re = xp.where(finite_b, xp.where(b == 0, xp.inf, xp.inf * cos_b), xp.inf)
    up_im = xp.where(finite_b, xp.where(b == 0, b, xp.inf * sin_b), xp.nan)
    down_im = xp.where(finite_b, 0.0 * sin_b, 0.0)
    re = xp.where(a == xp.inf, up_re, xp.where(a == -xp.inf, -1.0, out.real))
    im = xp.where(a == xp.inf, up_im, xp.where(a == -xp.inf, down_im, out.imag))
    im = xp.where(xp.isnan(a) & (b == 0), b, im)
    return _complex(xp, re, im, out.dtype)


def _tanh_cases(xp: Any, x: Any, out: Any) -> Any:
    """Complex ``tanh`` of an infinite real part and a finite imaginary part ``b`` is
    ``±1 + 0j`` with the zero taking the sign of ``b`` (NumPy: the sign of ``sin(2b)``)."""
    if out.dtype.kind != "c":
        return out
    a, b = x.real, x.imag
    hit = xp.isinf(a) & xp.isfinite(b)
    re = xp.where(hit, xp.where(a > 0, 1.0, -1.0), out.real)
    im = xp.where(hit, xp.where(xp.signbit(b), -0.0, 0.0), out.imag)
    return _complex(xp, re, im, out.dtype)


def _complex(xp: Any, re: Any, im: Any, dtype: Any) -> Any:
    """A complex array of ``dtype`` from its parts, signed zeros and NaNs kept (a sum
    ``re + 1j * im`` would turn ``inf * 1j`` into NaN parts)."""
    out = xp.empty(re.shape, dtype=dtype)
    out.real = re
    out.imag = im
    return out


_SPECIAL_CASES: dict[str, Any] = {
    "floor_divide": _floor_divide_cases,
    "pow": _pow_cases,
    "expm1": _expm1_cases,
    "tanh": _tanh_cases,
}


def _out_dtype(rule: str, dtype: np.dtype) -> np.dtype:
    if rule == "bool":
        return dt.bool
    if rule == "real" and dtype.kind == "c":
        return dt.float32 if dtype == dt.complex64 else dt.float64
    return dtype


def _make_unary(name: str, ufunc: str, category: str, rule: str) -> Any:
    def func(x: Any, /) -> Array:
        a = dense(x)
        check_category(a.dtype, category, name)
        if name in _IDENTITY_ON_INTEGERS and a.dtype.kind in "iu":
            return Array._new(a._x.copy())
        xp = a._xp
        with quiet(xp):
            out = getattr(xp, ufunc)(a._x)
            if name in _SPECIAL_CASES:
                out = _SPECIAL_CASES[name](xp, a._x, xp.asarray(out))
        return Array._new(xp.asarray(out).astype(_out_dtype(rule, a.dtype), copy=False))

    func.__name__ = func.__qualname__ = name
    func.__doc__ = (
        f"Element-wise ``{name}`` of the array API standard ({category} input).\n\n"
        "MX arrays are dequantized to float32 first.\n\n"
        "Raises\n------\nTypeError\n    If the dtype is not " + category + "."
    )
    return func


def _make_binary(name: str, ufunc: str, category: str, rule: str) -> Any:
    def func(x1: Any, x2: Any, /) -> Array:
        a, b, promoted = binary_operands(x1, x2, category, name)
        xp = array_module(a)
        with quiet(xp):
            out = getattr(xp, ufunc)(a, b)
            if name in _SPECIAL_CASES:
                out = _SPECIAL_CASES[name](xp, a, b, xp.asarray(out))
        return Array._new(xp.asarray(out).astype(_out_dtype(rule, promoted), copy=False))

    func.__name__ = func.__qualname__ = name
    func.__doc__ = (
        f"Element-wise ``{name}`` of the array API standard ({category} input).\n\n"
        "One argument may be a Python scalar; MX arrays are dequantized to float32 "
        "first.\n\nRaises\n------\nTypeError\n    If a dtype is not " + category
        + " or the dtypes cannot be promoted together.\nValueError\n    If the shapes do "
        "not broadcast or the arrays are on different devices."
    )
    return func


_FUNCS = {
    **{n: _make_unary(n, u, c, r) for n, (u, c, r) in _UNARY.items()},
    **{n: _make_binary(n, u, c, r) for n, (u, c, r) in _BINARY.items()},
}
globals().update(_FUNCS)

__all__ = sorted(_FUNCS)

_sign = _FUNCS["sign"]


def sign(x: Any, /) -> Array:
    """Sign of each element: -1, 0 or 1 for real input, ``x / abs(x)`` (0 at 0) for complex,
    the standard's definition.

    Raises
    ------
    TypeError
        If the dtype is not numeric.
    """
    a = dense(x)
    if a.dtype.kind != "c":
        return _sign(a)
    xp = a._xp
    with quiet(xp):
        out = xp.where(a._x == 0, 0, a._x / xp.abs(a._x))
    return Array._new(out.astype(a.dtype, copy=False))


_FUNCS["sign"] = sign

_shift_left, _shift_right = _FUNCS["bitwise_left_shift"], _FUNCS["bitwise_right_shift"]


def _check_shift(x2: Any) -> None:
    x2 = dt.python_scalar(x2)
    negative = bool(x2._xp.any(x2._x < 0)) if isinstance(x2, Array) else (
        isinstance(x2, int) and x2 < 0)
    if negative:
        raise ValueError("bitwise shifts are only defined for non-negative shift counts")


def bitwise_left_shift(x1: Any, x2: Any, /) -> Array:
    """``x1 << x2`` element-wise (integer input; ``x2`` must be non-negative).

    Raises
    ------
    ValueError
        If a shift count is negative.
    """
    _check_shift(x2)
    return _shift_left(x1, x2)


def bitwise_right_shift(x1: Any, x2: Any, /) -> Array:
    """``x1 >> x2`` element-wise (integer input; ``x2`` must be non-negative).

    Raises
    ------
    ValueError
        If a shift count is negative.
    """
    _check_shift(x2)
    return _shift_right(x1, x2)


def clip(x: Any, /, min: Any = None, max: Any = None) -> Array:  # noqa: A002
    """Clamp ``x`` to ``[min, max]``; the result keeps the dtype of ``x``.

    Raises
    ------
    TypeError
        If a dtype is not real numeric, or an integer ``x`` meets float bounds.
    ValueError
        If the shapes of ``x``, ``min`` and ``max`` do not broadcast together.
    """
    a = dense(x)
    check_category(a.dtype, "real numeric", "clip")
    xp = a._xp
    out = a._x.copy()
    bounds = []
    for name, bound in (("min", min), ("max", max)):
        bound = dt.python_scalar(bound)
        if bound is None:
            bounds.append(None)
            continue
        if isinstance(bound, SCALARS) and not isinstance(bound, (builtins.bool, complex)):
            if isinstance(bound, int) and a.dtype.kind in "iu":
                info = np.iinfo(a.dtype)
                bound = builtins.min(builtins.max(bound, int(info.min)), int(info.max))
            value = xp.asarray(bound, dtype=dt.scalar_dtype(bound, a.dtype))
        else:
            b = dense(bound, name)
            check_category(b.dtype, "real numeric", "clip")
            same_device(a.device, b.device)
            dt.promote(a.dtype, b.dtype)
            value = b._x
        bounds.append(value)
    shape = np.broadcast_shapes(out.shape, *(b.shape for b in bounds if b is not None))
    out = xp.broadcast_to(out, shape).copy()
    with quiet(xp):
        if bounds[0] is not None:
            out = xp.where(out < bounds[0], bounds[0], out).astype(a.dtype, copy=False)
        if bounds[1] is not None:
            out = xp.where(out > bounds[1], bounds[1], out).astype(a.dtype, copy=False)
    return Array._new(out.astype(a.dtype, copy=False))
