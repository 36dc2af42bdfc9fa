"""The top-level namespace: a dtype-like attribute per built-in format, no stray names."""

from __future__ import annotations

import pytest

import mxarray


# The formats of the spec (collected before any test registers one of its own).
BUILTIN = sorted(name for name in mxarray.BLOCK_FORMATS if hasattr(mxarray, name))


def test_the_builtin_list_is_the_spec() -> None:
    assert {"mxfp8_e4m3", "mxint8", "mx9", "mx6", "mx4", "nvfp4"} <= set(BUILTIN)
    assert len(BUILTIN) == 10


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_format_is_an_attribute(name) -> None:
    assert getattr(mxarray, name) is mxarray.get_format(name)
    assert name in mxarray.__all__


def test_no_future_import_leaks_into_the_namespace() -> None:
    assert not hasattr(mxarray, "annotations")
    assert "annotations" not in mxarray.__all__


def test_a_backend_says_what_it_is() -> None:
    text = repr(mxarray.get_backend("numpy"))
    assert "'numpy'" in text and "NumpyBackend" in text
