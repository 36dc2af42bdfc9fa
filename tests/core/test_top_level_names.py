"""The top-level namespace: a dtype-like attribute per built-in format, no stray names."""

from __future__ import annotations

import pytest

import mxarray


@pytest.mark.parametrize("name", sorted(mxarray.BLOCK_FORMATS))
def test_every_builtin_format_is_an_attribute(name) -> None:
    assert getattr(mxarray, name) is mxarray.get_format(name)
    assert name in mxarray.__all__


def test_no_future_import_leaks_into_the_namespace() -> None:
    assert not hasattr(mxarray, "annotations")
    assert "annotations" not in mxarray.__all__


def test_a_backend_says_what_it_is() -> None:
    text = repr(mxarray.get_backend("numpy"))
    assert "'numpy'" in text and "NumpyBackend" in text
