"""The backend registry: which implementation runs quantize, dequantize and matmul.

A backend is an object with the methods of :class:`mxarray.backends.base.Backend`.  It
sees only contiguous ``(n_blocks, block_size)`` blocks; the core does all shape work.

Selection, strongest first: the ``backend=`` argument of a call, the innermost
:func:`use_backend` context (local to the thread and asyncio task), the process-wide
:func:`set_backend`, and finally the default: the best available backend.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import threading
import warnings
from importlib import metadata
from typing import Any, Callable, Iterator

from .base import Backend

__all__ = [
    "Backend",
    "BackendInfo",
    "backends",
    "get_backend",
    "register_backend",
    "set_backend",
    "use_backend",
]

ENTRY_POINT_GROUP = "mxarray.backends"


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """One row of :func:`backends`: a registered backend and whether it is usable here."""

    name: str
    available: bool
    reason: str
    priority: int


@dataclasses.dataclass
class _Entry:
    name: str
    loader: Callable[[], Any]
    priority: int
    fallback_warning: bool = False
    instance: Any = None
    error: str | None = None
    loaded: bool = False


_lock = threading.Lock()
_registry: dict[str, _Entry] = {}
_context_choice: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mxarray_backend", default=None
)
_global_choice: str | None = None
_entry_points_loaded = False


def register_backend(
    name: str, loader: Callable[[], Any], *, priority: int = 0, fallback_warning: bool = False
) -> None:
    """Register a backend under ``name``.

    Parameters
    ----------
    name : str
        The name users pass as ``backend=``.
    loader : callable
        Called once, on first use, with no arguments; returns the backend object.  It may
        raise ``ImportError`` or ``RuntimeError`` to say the backend is unusable here.
    priority : int, optional
        Higher priorities are preferred by the default selection; negative ones are used
        only when named.
    fallback_warning : bool, optional
        Emit a :class:`RuntimeWarning` (once) when the backend turns out unusable, e.g. an
        optional dependency is missing or its kernels fail to compile, so that users
        learn why a slower backend runs instead.
    """
    with _lock:
        _registry[name] = _Entry(name, loader, priority, fallback_warning)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _registry:
            register_backend(ep.name, ep.load, priority=-1)


def _instantiate(entry: _Entry) -> Any:
    failed = False
    with _lock:
        if not entry.loaded:
            try:
                candidate = entry.loader()
                if isinstance(candidate, type):
                    candidate = candidate()
                ok, why = candidate.available()
                if ok:
                    entry.instance = candidate
                else:
                    entry.error = why
            except Exception as exc:  # a broken optional backend must never break import
                entry.error = f"{type(exc).__name__}: {exc}"
            entry.loaded = True
            failed = entry.instance is None and entry.fallback_warning
    if failed:
        missing = (entry.error or "").startswith("ModuleNotFoundError")
        hint = f" (pip install 'mxarray[{entry.name}]' adds it)" if missing else ""
        warnings.warn(
            f"mxarray backend {entry.name!r} is unusable ({entry.error}); "
            f"falling back to the next available backend{hint}",
            RuntimeWarning,
            stacklevel=3,
        )
    return entry.instance


def backends() -> list[BackendInfo]:
    """List every registered backend, whether it is usable here, and why not.

    Examples
    --------
    >>> import mxarray
    >>> [b.name for b in mxarray.backends() if b.name == "numpy"]
    ['numpy']
    """
    _load_entry_points()
    rows = []
    for entry in sorted(_registry.values(), key=lambda e: -e.priority):
        instance = _instantiate(entry)
        if instance is not None:
            reason = instance.available()[1]
        else:
            reason = entry.error or "unavailable"
        rows.append(BackendInfo(entry.name, instance is not None, reason, entry.priority))
    return rows


def _check_name(name: object) -> str:
    _load_entry_points()
    if not isinstance(name, str) or name not in _registry:
        raise ValueError(f"unknown backend {name!r}; registered: {', '.join(sorted(_registry))}")
    return name


def _usable(name: str) -> Any:
    entry = _registry[_check_name(name)]
    instance = _instantiate(entry)
    if instance is None:
        raise RuntimeError(f"backend {name!r} is not usable here: {entry.error}")
    return instance


def set_backend(name: str | None) -> None:
    """Choose the process-wide backend (``None`` restores the automatic default)."""
    global _global_choice
    if name is not None:
        _usable(name)
    _global_choice = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Use backend ``name`` inside a ``with`` block (local to this thread and task).

    Examples
    --------
    >>> import mxarray
    >>> with mxarray.use_backend("numpy") as b:
    ...     b.name
    'numpy'
    """
    backend = _usable(name)
    token = _context_choice.set(name)
    try:
        yield backend
    finally:
        _context_choice.reset(token)


def _default() -> Any:
    _load_entry_points()
    for entry in sorted(_registry.values(), key=lambda e: -e.priority):
        if entry.priority < 0:
            continue  # third-party backends are used only when named
        instance = _instantiate(entry)
        if instance is not None:
            return instance
    raise RuntimeError("no mxarray backend is usable")  # pragma: no cover - numpy always is


def named_backend() -> str | None:
    """The backend the user has named for calls here, or None for the automatic default.

    That is the innermost :func:`use_backend` of this thread and asyncio task, else the
    process-wide :func:`set_backend` choice.  A call's own ``backend=`` argument is not
    seen here; callers check it first.  The core uses this to tell a user's choice, which
    it must honour or refuse, from the default, which it may replace by a backend that
    can do the job.

    Examples
    --------
    >>> from mxarray.backends import named_backend, use_backend
    >>> with use_backend("numpy"):
    ...     named_backend()
    'numpy'
    """
    choice = _context_choice.get()
    return choice if choice is not None else _global_choice


def get_backend(name: str | None = None) -> Backend:
    """Resolve the backend for a call: the argument, the context, the global, the default."""
    choice = name if name is not None else named_backend()
    return _usable(choice) if choice is not None else _default()


def _builtin(module: str, cls: str) -> Callable[[], Any]:
    def load() -> Any:
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()

    return load


register_backend("numpy", _builtin("numpy_backend", "NumpyBackend"), priority=0)
register_backend(
    "numba", _builtin("numba_backend", "NumbaBackend"), priority=10, fallback_warning=True
)

# CuPy is never the default for host data; the core picks it for data that live on a GPU.
register_backend("cupy", _builtin("cupy_backend", "CupyBackend"), priority=-1)
