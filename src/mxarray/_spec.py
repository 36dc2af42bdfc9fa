"""Locate and load the machine-readable MX specification (``spec/mx.toml``).

The specification ships inside the wheel as ``mxarray/_data/spec/``; in a source
checkout (an editable install) it is read from the repository's top-level ``spec/``.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["spec_dir", "load_spec"]

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATES = (
    _PACKAGE_DIR / "_data" / "spec",  # installed wheel
    _PACKAGE_DIR.parent.parent / "spec",  # source checkout: <repo>/src/mxarray -> <repo>/spec
)


def spec_dir() -> Path:
    """Return the directory that holds ``mx.toml`` and ``mx.schema.json``.

    Raises
    ------
    FileNotFoundError
        If neither the packaged copy nor a source checkout's ``spec/`` exists.
    """
    for candidate in _CANDIDATES:
        if (candidate / "mx.toml").is_file():
            return candidate
    raise FileNotFoundError(
        "mxarray cannot find its specification mx.toml; looked in "
        + ", ".join(str(c) for c in _CANDIDATES)
    )


@functools.cache
def load_spec() -> dict[str, Any]:
    """Parse ``mx.toml`` once and return it as a nested ``dict`` (treat as read-only)."""
    with open(spec_dir() / "mx.toml", "rb") as f:
        return tomllib.load(f)
