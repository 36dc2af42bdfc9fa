"""The array API ``fft`` extension (``mxarray.fft``).

The transforms are those of the data's array module (``numpy.fft`` on the CPU,
``cupy.fft`` on a GPU), after the standard's dtype checks, with the result cast to the
precision of the input (``float32``/``complex64`` in, ``complex64``/``float32`` out).
MX operands enter as their dequantized float32 values, as for every function that does
not keep MX storage: ``rfft`` of an MX array is the ``rfft`` of its float32 values, and
``fft`` of one is a ``TypeError``, as for ``float32`` input (the complex transforms take
complex input).  Each function is described once in a table and built by one factory.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import _dtypes as dt
from ._array import Array
from ._creation import _finish, _target
from ._device import quiet
from ._operands import check_category, dense

__all__ = ["fft"]

# name: (input category of the standard, output kind: "complex" or "real" of the input's
# precision, or "same" dtype).
_ONE_AXIS: dict[str, tuple[str, str]] = {
    "fft": ("complex floating-point", "same"),
    "ifft": ("complex floating-point", "same"),
    "rfft": ("real floating-point", "complex"),
    "irfft": ("complex floating-point", "real"),
    "hfft": ("complex floating-point", "real"),
    "ihfft": ("real floating-point", "complex"),
}
_MANY_AXES: dict[str, tuple[str, str]] = {
    "fftn": ("complex floating-point", "same"),
    "ifftn": ("complex floating-point", "same"),
    "rfftn": ("real floating-point", "complex"),
    "irfftn": ("complex floating-point", "real"),
}
_NORMS = ("backward", "ortho", "forward")


def _out_dtype(kind: str, dtype: np.dtype) -> np.dtype:
    single = dtype in (dt.float32, dt.complex64)
    if kind == "complex":
        return dt.complex64 if single else dt.complex128
    if kind == "real":
        return dt.float32 if single else dt.float64
    return dtype


def _checked(x: Any, name: str, category: str, norm: str) -> Array:
    """``x`` as a dense Array of ``category``, after checking ``norm``.

    Raises
    ------
    TypeError
        If the dtype is not of ``category``.
    ValueError
        If ``norm`` is not "backward", "ortho" or "forward", or ``x`` is 0-d.
    """
    a = dense(x)
    check_category(a.dtype, category, f"fft.{name}")
    if norm not in _NORMS:
        raise ValueError(f"fft.{name}: norm must be one of {_NORMS}, got {norm!r}")
    if a.ndim == 0:
        raise ValueError(f"fft.{name} needs an array of at least one dimension")
    return a


def _run(a: Array, name: str, kind: str, **kwargs: Any) -> Array:
    with quiet(a._xp):
        out = getattr(a._xp.fft, name)(a._x, **kwargs)
    return Array._new(out.astype(_out_dtype(kind, a.dtype), copy=False))


def _make_one_axis(name: str, category: str, kind: str) -> Any:
    def func(x: Any, /, *, n: int | None = None, axis: int = -1,
             norm: str = "backward") -> Array:
        a = _checked(x, name, category, norm)
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                              or n < 1):
            raise ValueError(f"fft.{name}: n must be a positive integer, got {n!r}")
        return _run(a, name, kind, n=n, axis=axis, norm=norm)

    func.__name__ = func.__qualname__ = name
    func.__doc__ = (
        f"``fft.{name}`` of the array API standard ({category} input) along ``axis``, "
        "with ``n`` points (the input is cropped or zero-padded) and normalisation "
        "``norm``.\n\nMX arrays are dequantized to float32 first.\n\nRaises\n------\n"
        f"TypeError\n    If the dtype is not {category}.\nValueError\n    For an invalid "
        "``n``, ``norm`` or axis, or 0-d input."
    )
    return func


def _make_many_axes(name: str, category: str, kind: str) -> Any:
    def func(x: Any, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
             norm: str = "backward") -> Array:
        a = _checked(x, name, category, norm)
        if s is not None and any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                 or v < 1 for v in s):
            raise ValueError(f"fft.{name}: s must hold positive integers, got {s!r}")
        return _run(a, name, kind, s=None if s is None else tuple(s),
                    axes=None if axes is None else tuple(axes), norm=norm)

    func.__name__ = func.__qualname__ = name
    func.__doc__ = (
        f"``fft.{name}`` of the array API standard ({category} input) over ``axes`` "
        "(default: all, or the last ``len(s)``), with ``s`` points per axis and "
        "normalisation ``norm``.\n\nMX arrays are dequantized to float32 first.\n\n"
        f"Raises\n------\nTypeError\n    If the dtype is not {category}.\nValueError\n    "
        "For invalid ``s``, ``axes`` or ``norm``, or 0-d input."
    )
    return func


def _frequencies(name: str, n: int, d: float, dtype: Any, device: Any) -> Array:
    """Sample frequencies from ``numpy.fft.<name>``, made on the host and moved.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer or ``dtype`` is not real floating-point.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"fft.{name}: n must be a positive integer, got {n!r}")
    target = dt.float64 if dtype is None else dt.check_dtype(dtype)
    if target not in dt.CATEGORIES["real floating-point"]:
        raise ValueError(f"fft.{name}: dtype must be a real floating-point dtype, got {target}")
    values = getattr(np.fft, name)(int(n), d=float(dt.python_scalar(d)))
    return _finish(values, target, -1, _target(device))


def fftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Array:
    """The ``n`` sample frequencies of a discrete Fourier transform with sample spacing
    ``d`` (``[0, 1, ..., -1] / (d * n)``; default dtype float64).

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer or ``dtype`` is not real floating-point.
    """
    return _frequencies("fftfreq", n, d, dtype, device)


def rfftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Array:
    """The ``n // 2 + 1`` non-negative sample frequencies of ``rfft`` with sample spacing
    ``d`` (default dtype float64).

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer or ``dtype`` is not real floating-point.
    """
    return _frequencies("rfftfreq", n, d, dtype, device)


def _shift(name: str, x: Any, axes: int | Sequence[int] | None) -> Array:
    a = dense(x)
    check_category(a.dtype, "floating-point", f"fft.{name}")
    axes = axes if axes is None or isinstance(axes, (int, np.integer)) else tuple(axes)
    return Array._new(getattr(a._xp.fft, name)(a._x, axes=axes))


def fftshift(x: Any, /, *, axes: int | Sequence[int] | None = None) -> Array:
    """Move the zero-frequency term to the centre along ``axes`` (default: all).
    MX arrays give float32.

    Raises
    ------
    TypeError
        If the dtype is not floating-point.
    """
    return _shift("fftshift", x, axes)


def ifftshift(x: Any, /, *, axes: int | Sequence[int] | None = None) -> Array:
    """The inverse of :func:`fftshift` (they differ for odd lengths).  MX arrays give
    float32.

    Raises
    ------
    TypeError
        If the dtype is not floating-point.
    """
    return _shift("ifftshift", x, axes)


fft = SimpleNamespace(
    **{n: _make_one_axis(n, c, k) for n, (c, k) in _ONE_AXIS.items()},
    **{n: _make_many_axes(n, c, k) for n, (c, k) in _MANY_AXES.items()},
    fftfreq=fftfreq, rfftfreq=rfftfreq, fftshift=fftshift, ifftshift=ifftshift,
)
fft.__doc__ = "The array API ``fft`` extension of the mxarray namespace."
