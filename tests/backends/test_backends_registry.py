"""The backend registry: listing, selection, context-locality, entry points, fallback."""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from importlib import metadata

import numpy as np
import pytest

import mxarray

import mxarray.backends as registry
from mxarray.backends.numpy_backend import NumpyBackend


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch):
    """Let a test add or replace backends; the registry is restored afterwards."""
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_global_choice", None)
    return registry


class _Dummy(NumpyBackend):
    """A minimal third-party backend: the reference under another name."""

    name = "dummy"

    def available(self) -> tuple[bool, str]:
        return True, "test double"


class _NotABackend:
    """Has the methods but does not subclass the base class."""

    name = "duck"
    xp = np

    def available(self) -> tuple[bool, str]:
        return True, "a duck"


def test_a_loader_must_give_a_backend_subclass(clean_registry) -> None:
    clean_registry.register_backend("duck", _NotABackend, priority=-5)
    row = {b.name: b for b in mxarray.list_backends()}["duck"]
    assert not row.available
    assert "not a subclass of mxarray.backends.base.Backend" in row.reason
    with pytest.raises(RuntimeError, match="duck"):
        mxarray.quantize(np.ones(32), "mxint8", backend="duck")


def test_backend_modules_import_under_their_own_names() -> None:
    """``mxarray.backends`` is the registry package, not a function hiding it."""
    import mxarray.backends.base as base

    assert mxarray.backends is registry
    assert base.Backend.__module__ == "mxarray.backends.base"
    assert issubclass(type(mxarray.get_backend("numpy")), base.Backend)


def test_listing_names_every_builtin_with_status() -> None:
    rows = {b.name: b for b in mxarray.list_backends()}
    assert rows["numpy"].available and rows["numpy"].reason
    assert "numba" in rows
    if not rows["numba"].available:
        assert rows["numba"].reason  # says why not
    priorities = [b.priority for b in mxarray.list_backends()]
    assert priorities == sorted(priorities, reverse=True)


def test_default_is_best_available() -> None:
    rows = [b for b in mxarray.list_backends() if b.available and b.priority >= 0]
    assert mxarray.get_backend().name == rows[0].name


def test_numba_outranks_numpy() -> None:
    rows = {b.name: b for b in mxarray.list_backends()}
    assert rows["numba"].priority > rows["numpy"].priority


def test_set_backend_and_reset(clean_registry) -> None:
    mxarray.set_backend("numpy")
    assert mxarray.get_backend().name == "numpy"
    mxarray.set_backend(None)
    assert mxarray.get_backend().name == registry._default().name


@pytest.mark.parametrize("bad", ["nope", "", 3, None.__class__])
def test_unknown_names_raise_value_error(bad) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        mxarray.set_backend(bad)
    with pytest.raises(ValueError, match="unknown backend"):
        with mxarray.use_backend(bad):
            pass  # pragma: no cover
    with pytest.raises(ValueError, match="unknown backend"):
        mxarray.quantize(np.ones(4), "mxint8", backend=bad)


def test_backend_argument_beats_context_and_global(clean_registry) -> None:
    clean_registry.register_backend("dummy", _Dummy, priority=-5)
    mxarray.set_backend("numpy")
    with mxarray.use_backend("dummy"):
        assert mxarray.get_backend().name == "dummy"
        assert mxarray.get_backend("numpy").name == "numpy"
    assert mxarray.get_backend().name == "numpy"


def test_use_backend_is_local_to_threads(clean_registry) -> None:
    clean_registry.register_backend("dummy", _Dummy, priority=-5)
    seen: dict[str, str] = {}
    inside = threading.Event()
    checked = threading.Event()

    def other_thread() -> None:
        inside.wait()
        seen["other"] = mxarray.get_backend().name
        checked.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with mxarray.use_backend("dummy"):
        inside.set()
        checked.wait()
        seen["self"] = mxarray.get_backend().name
    t.join()
    assert seen["self"] == "dummy"
    assert seen["other"] == registry._default().name


def test_use_backend_is_local_to_asyncio_tasks(clean_registry) -> None:
    clean_registry.register_backend("dummy", _Dummy, priority=-5)

    async def main() -> tuple[str, str]:
        entered = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> str:
            with mxarray.use_backend("dummy"):
                entered.set()
                await release.wait()
                return mxarray.get_backend().name

        async def observer() -> str:
            await entered.wait()
            name = mxarray.get_backend().name
            release.set()
            return name

        return tuple(await asyncio.gather(holder(), observer()))  # type: ignore[return-value]

    held, observed = asyncio.run(main())
    assert held == "dummy"
    assert observed == registry._default().name


def test_named_backend_reports_the_users_choice(clean_registry) -> None:
    clean_registry.register_backend("dummy", _Dummy, priority=-5)
    assert registry.named_backend() is None  # the automatic default is no one's choice
    mxarray.set_backend("numpy")
    assert registry.named_backend() == "numpy"
    with mxarray.use_backend("dummy"):
        assert registry.named_backend() == "dummy"  # the context beats the global
        assert mxarray.get_backend().name == "dummy"
    assert registry.named_backend() == "numpy"
    mxarray.set_backend(None)
    assert registry.named_backend() is None


def test_named_backend_is_local_to_threads(clean_registry) -> None:
    clean_registry.register_backend("dummy", _Dummy, priority=-5)
    seen: dict[str, str | None] = {}
    inside, checked, main_read = threading.Event(), threading.Event(), threading.Event()

    def other_thread() -> None:
        inside.wait()
        seen["other, main in a context"] = registry.named_backend()
        with mxarray.use_backend("numpy"):
            seen["other, own context"] = registry.named_backend()
            checked.set()
            main_read.wait()  # hold the context while the main thread looks

    t = threading.Thread(target=other_thread)
    t.start()
    with mxarray.use_backend("dummy"):
        inside.set()
        checked.wait()
        seen["main"] = registry.named_backend()
        main_read.set()
    t.join()
    assert seen == {"other, main in a context": None, "other, own context": "numpy",
                    "main": "dummy"}


def test_named_backend_is_local_to_asyncio_tasks(clean_registry) -> None:
    clean_registry.register_backend("dummy", _Dummy, priority=-5)

    async def main() -> list[str | None]:
        entered = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> str | None:
            with mxarray.use_backend("dummy"):
                entered.set()
                await release.wait()
                return registry.named_backend()

        async def observer() -> str | None:
            await entered.wait()
            name = registry.named_backend()
            release.set()
            return name

        async def inheritor() -> str | None:  # a task started inside the context copies it
            with mxarray.use_backend("dummy"):
                return await asyncio.create_task(_named())

        return list(await asyncio.gather(holder(), observer(), inheritor()))

    async def _named() -> str | None:
        return registry.named_backend()

    assert asyncio.run(main()) == ["dummy", None, "dummy"]
    assert registry.named_backend() is None


def test_entry_point_registration(clean_registry, monkeypatch: pytest.MonkeyPatch) -> None:
    ep = metadata.EntryPoint(
        name="thirdparty", value=f"{__name__}:_Dummy", group=registry.ENTRY_POINT_GROUP
    )
    calls = []

    def fake_entry_points(**kwargs):
        calls.append(kwargs)
        return [ep] if kwargs.get("group") == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    rows = {b.name: b for b in mxarray.list_backends()}
    assert calls and rows["thirdparty"].available
    assert rows["thirdparty"].priority < 0
    assert mxarray.get_backend().name != "thirdparty"  # used only when named
    a = mxarray.quantize(np.linspace(-1, 1, 40), "mxfp6_e2m3", backend="thirdparty")
    ref = mxarray.quantize(np.linspace(-1, 1, 40), "mxfp6_e2m3", backend="numpy")
    assert np.array_equal(a.packed, ref.packed) and np.array_equal(a.scales, ref.scales)


def test_unusable_backend_is_listed_with_reason(clean_registry) -> None:
    def broken():
        raise ImportError("libfoo is missing")

    clean_registry.register_backend("broken", broken, priority=-3)
    row = {b.name: b for b in mxarray.list_backends()}["broken"]
    assert not row.available and "libfoo is missing" in row.reason
    with pytest.raises(RuntimeError, match="not usable"):
        mxarray.set_backend("broken")


def test_missing_numba_falls_back_with_warning(clean_registry, monkeypatch) -> None:
    # Simulate an environment without numba: its import fails.
    monkeypatch.setitem(sys.modules, "numba", None)
    for mod in [m for m in sys.modules if m.startswith("mxarray.backends.numba")]:
        monkeypatch.delitem(sys.modules, mod, raising=False)
    clean_registry.register_backend(
        "numba",
        clean_registry._builtin("numba", "NumbaBackend"),
        priority=10,
        fallback_warning=True,
    )
    with pytest.warns(RuntimeWarning,
                      match=r"'numba' is unusable.*falling back.*pip install 'mxarray\[numba\]'"):
        chosen = mxarray.get_backend()
    assert chosen.name == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, not on every call
        assert mxarray.get_backend().name == "numpy"
        a = mxarray.quantize(np.arange(5.0), "mxint8")
    assert a.dequantize().shape == (5,)
    row = {b.name: b for b in mxarray.list_backends()}["numba"]
    assert not row.available and "numba" in row.reason


def test_import_never_fails_without_numba(tmp_path) -> None:
    import subprocess

    code = (
        "import sys, warnings; sys.modules['numba'] = None\n"
        "import mxarray, numpy as np\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    name = mxarray.get_backend().name\n"
        "print(name, any(issubclass(x.category, RuntimeWarning) for x in w))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.split()
    assert out == ["numpy", "True"]


def test_core_and_registry_never_probe_a_backend() -> None:
    """What a backend can do is declared (class data, ``supports``), never discovered:
    no ``hasattr``, no ``getattr`` with a default, no ``inspect`` in the modules that pick
    and call backends (issue 14)."""
    import ast
    import pathlib

    import mxarray.backends
    import mxarray.blockwise
    import mxarray.core

    for module in (mxarray.core, mxarray.backends, mxarray.blockwise):
        tree = ast.parse(pathlib.Path(module.__file__).read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "inspect" not in names, f"{module.__name__} imports inspect"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "hasattr", f"hasattr in {module.__name__}:{node.lineno}"
                if node.func.id == "getattr":
                    assert len(node.args) < 3, f"getattr default in {module.__name__}:{node.lineno}"
