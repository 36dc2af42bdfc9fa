"""Every name of the 2024.12 standard (as array_api_strict has it) exists in mxarray with a
compatible signature, and the namespace's metadata is right."""

from __future__ import annotations

import inspect

import pytest

import mxarray as mx

xps = pytest.importorskip("array_api_strict", reason="needs the optional array_api_strict")
xps.set_array_api_strict_flags(api_version="2024.12")

# array_api_strict's own helpers (not part of the standard).
_NOT_STANDARD = {"ArrayAPIStrictFlags", "get_array_api_strict_flags", "set_array_api_strict_flags",
                 "reset_array_api_strict_flags", "Device", "__version__"}
# Names array_api_strict lists but the 2024.12 standard does not have.
_NEWER = {"isin", "broadcast_shapes"}

STANDARD_NAMES = sorted(set(xps.__all__) - _NOT_STANDARD - _NEWER)
LINALG_NAMES = sorted(set(xps.linalg.__all__) - {"eig", "eigvals"})
FFT_NAMES = sorted(xps.fft.__all__)


def _compatible(ours: object, theirs: object) -> list[str]:
    """Problems with calling ``ours`` the way the standard calls ``theirs``."""
    try:
        sig_o, sig_t = inspect.signature(ours), inspect.signature(theirs)
    except (TypeError, ValueError):
        return []
    problems = []
    params_o = sig_o.parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params_o.values())
    if var_kw:
        problems.append("takes **kwargs instead of the standard's keywords")
    var_pos = any(p.kind is p.VAR_POSITIONAL for p in params_o.values())
    for name, p in sig_t.parameters.items():
        if p.kind is p.KEYWORD_ONLY:
            q = params_o.get(name)
            if q is None or q.kind not in (q.KEYWORD_ONLY, q.POSITIONAL_OR_KEYWORD):
                problems.append(f"keyword {name!r} missing")
            elif isinstance(p.default, (type(None), bool, int, float, str)) \
                    and q.default != p.default:
                problems.append(f"keyword {name!r} defaults to {q.default!r}, the standard "
                                f"to {p.default!r}")
        elif p.kind is p.VAR_POSITIONAL and not var_pos:
            problems.append("*args missing")
    n_pos_t = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  for p in sig_t.parameters.values())
    n_pos_o = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  for p in params_o.values())
    if n_pos_o < n_pos_t and not var_pos:
        problems.append(f"takes {n_pos_o} positional argument(s), the standard {n_pos_t}")
    return problems


@pytest.mark.parametrize("name", STANDARD_NAMES)
def test_standard_name_exists_with_compatible_signature(name):
    assert hasattr(mx, name), f"mxarray lacks {name}"
    assert _compatible(getattr(mx, name), getattr(xps, name)) == []


@pytest.mark.parametrize("name", LINALG_NAMES)
def test_linalg_name_exists_with_compatible_signature(name):
    assert hasattr(mx.linalg, name), f"mxarray.linalg lacks {name}"
    assert _compatible(getattr(mx.linalg, name), getattr(xps.linalg, name)) == []


@pytest.mark.parametrize("name", FFT_NAMES)
def test_fft_name_exists_with_compatible_signature(name):
    assert hasattr(mx.fft, name), f"mxarray.fft lacks {name}"
    assert _compatible(getattr(mx.fft, name), getattr(xps.fft, name)) == []


def test_version_is_declared_by_mxarray():
    assert mx.__array_api_version__ == "2024.12"
    assert mx.asarray([1.0]).__array_namespace__() is mx
    assert mx.asarray([1.0], dtype=mx.mxfp4_e2m1).__array_namespace__() is mx
    with pytest.raises(ValueError):
        mx.asarray([1.0]).__array_namespace__(api_version="2021.12")


def test_existing_exports_still_work():
    for name in ("MXArray", "quantize", "dequantize", "matmul", "backends", "set_backend",
                 "use_backend", "get_format", "FORMATS"):
        assert hasattr(mx, name)
    for name, fmt in mx.FORMATS.items():
        assert getattr(mx, name) is fmt
        assert name in mx.__all__


def test_info_lists_standard_dtypes_only():
    info = mx.__array_namespace_info__()
    strict = xps.__array_namespace_info__()
    assert set(info.dtypes()) == set(strict.dtypes())
    for kind in ("bool", "signed integer", "unsigned integer", "integral", "real floating",
                 "complex floating", "numeric"):
        assert set(info.dtypes(kind=kind)) == set(strict.dtypes(kind=kind))
    assert {k: str(v) for k, v in info.default_dtypes().items()} == {
        k: str(v).removeprefix("array_api_strict.") for k, v in strict.default_dtypes().items()}
    assert info.default_device() in info.devices()
    assert set(info.capabilities()) >= {"boolean indexing", "data-dependent shapes"}


@pytest.mark.parametrize("fmt", sorted(mx.FORMATS))
def test_mx_dtypes_are_outside_the_standard_kinds(fmt):
    dtype = mx.FORMATS[fmt]
    assert mx.is_mx_dtype(dtype)
    assert not mx.is_mx_dtype(mx.float32)
    kinds = ("bool", "signed integer", "unsigned integer", "integral", "real floating",
             "complex floating", "numeric")
    assert not any(mx.isdtype(dtype, k) for k in kinds)
    assert mx.isdtype(dtype, dtype)
    assert mx.result_type(dtype, dtype) == mx.float32
    assert mx.result_type(dtype, mx.float64) == mx.float64
    assert mx.result_type(dtype, 1.5) == mx.float32
    with pytest.raises(TypeError):
        mx.result_type(dtype, mx.int32)
