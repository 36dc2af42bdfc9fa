"""Shared fixtures: one test body runs against every registered backend."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

import mxarray
from support.hardening import set_long

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long", action="store_true", default=False,
        help="the long hardening run: fuzz tests draw hardening.LONG_FACTOR times as many "
             "examples and large-array tests run at full size (also MXARRAY_LONG=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    set_long(bool(config.getoption("--long")))


def _backend_params() -> list:
    params = []
    for info in mxarray.list_backends():
        marks = []
        if not info.available:
            marks.append(pytest.mark.skip(reason=f"backend {info.name!r} unusable here: {info.reason}"))
        params.append(pytest.param(info.name, marks=marks, id=info.name))
    return params


@pytest.fixture(params=_backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    """Name of a registered backend; unusable ones are skipped with the reason."""
    return request.param


@pytest.fixture(
    params=[name for name in (b.name for b in mxarray.list_backends()) if name != "numpy"] or [None]
)
def fast_backend(request: pytest.FixtureRequest) -> str:
    """Name of a non-reference backend, for differential tests against NumPy."""
    if request.param is None:
        pytest.skip("no backend besides the NumPy reference is registered: waits for numba or cupy")
    info = {b.name: b for b in mxarray.list_backends()}[request.param]
    if not info.available:
        pytest.skip(f"backend {info.name!r} (numba, or cupy with a GPU) unusable here: {info.reason}")
    return request.param


@pytest.fixture(autouse=True, scope="module")
def _formats_registered_here_stay_here():
    """Formats a test module registers are forgotten after it, so that no other module's
    listing of ``mxarray.BLOCK_FORMATS`` (strategies, parametrisations) depends on which
    modules ran first."""
    from mxarray import formats

    before = set(formats.BLOCK_FORMATS)
    yield
    with formats._REGISTER_LOCK:
        for name in set(formats.BLOCK_FORMATS) - before:
            del formats._REGISTRY[name]


def _path_params() -> list:
    """(backend, matmul path) for every registered backend and each of its paths."""
    params = []
    for info in mxarray.list_backends():
        if not info.available:
            params.append(pytest.param((info.name, None), id=f"{info.name}-default", marks=[
                pytest.mark.skip(reason=f"backend {info.name!r} unusable here: {info.reason}")]))
            continue
        for path in type(mxarray.get_backend(info.name)).matmul_paths:
            marks = []
            if path == "two-pass":
                marks.append(pytest.mark.skip(reason="its bound is [dot_paths.two_pass], not "
                                              "[dot]: tested in tests/backends/cuda (needs a GPU)"))
            if path == "bf16":
                from mxarray.backends.numba.bf16 import bf16_cpu

                ok, why = bf16_cpu()
                if not ok:
                    marks.append(pytest.mark.skip(reason=f"needs a CPU with AVX512-BF16: {why}"))
            params.append(pytest.param((info.name, path), id=f"{info.name}-{path}", marks=marks))
    return params


@pytest.fixture(params=_path_params())
def backend_path(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """A usable backend and one of its matmul paths (each path is checked on its own)."""
    return request.param
