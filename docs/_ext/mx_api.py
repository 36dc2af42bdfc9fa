"""Sphinx extension: short docstrings for the API reference's data objects.

Some public names of ``mxarray`` are plain values without docstrings of their own: the
standard dtypes (NumPy dtype objects), the constants ``e``, ``pi``, ``inf``, ``nan``,
``newaxis``, the spec constants (``BLOCK_SIZE`` ...) and the MX format objects.  autodoc
would show the docstring of their *type* (NumPy's long ``dtype`` text, ``int``'s, the
:class:`mxarray.Format` class text).  This extension replaces such borrowed docstrings
with one line saying what the object is; values are read from the object, never typed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mxarray.formats import Format

__all__ = ["describe", "setup"]

_MEANINGS = {
    "BLOCK_SIZE": "Elements per block of the OCP MX formats, from ``spec/mx.toml``",
    "FORMATS": "The OCP MX formats of ``spec/mx.toml``, name to :class:`mxarray.Format` "
               "(read-only mapping)",
    "ROUNDING_MODES": "The rounding modes of ``spec/mx.toml``, the default first "
                      "(see :doc:`/formats`)",
    "SCALE_MODES": "The scale modes of ``spec/mx.toml``, the default first "
                   "(see :doc:`/formats`)",
    "SPEC_VERSION": "The version of ``spec/mx.toml`` this package implements",
    "__array_api_version__": "The version of the array API standard the namespace follows",
}


def describe(name: str, obj: Any) -> str | None:
    """One-line description of a public data object, or None to keep its docstring."""
    short = name.rsplit(".", 1)[-1]
    if isinstance(obj, Format):
        return (f"The MX format ``{obj.name}``: {obj.element} elements, blocks of "
                f"{obj.block_size}, {obj.bits_per_element:g} bits per element; an MX dtype "
                f"of the namespace. Its numbers: :doc:`/formats`.")
    if isinstance(obj, np.dtype):
        return (f"The array API dtype ``{short}``: the NumPy dtype object "
                f"``numpy.dtype({str(obj)!r})``.")
    if obj is None and short == "newaxis":
        return "``None``: an index that inserts an axis of length one (array API constant)."
    if isinstance(obj, float):
        return f"The array API constant ``{short}`` = ``{obj!r}`` (a Python float)."
    if short in _MEANINGS:
        shown = repr(list(obj)) if short == "FORMATS" else repr(obj)
        return f"{_MEANINGS[short]}: ``{shown}``."
    return None


def _borrowed(obj: Any, lines: list[str]) -> bool:
    """Whether ``lines`` are the docstring of ``obj``'s type rather than of ``obj``."""
    own = type(obj).__doc__
    return not lines or (own is not None and lines[0].strip() == own.strip().splitlines()[0])


def _process(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if what not in ("data", "attribute"):
        return
    text = describe(name, obj)
    if text is not None and _borrowed(obj, lines):
        lines[:] = [text]


def setup(app: Any) -> dict[str, Any]:
    """Connect the docstring hook ahead of numpydoc's."""
    app.connect("autodoc-process-docstring", _process, priority=100)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
