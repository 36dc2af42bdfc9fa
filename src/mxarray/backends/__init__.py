"""The backend registry: which implementation runs quantize, dequantize and matmul.

A backend is an instance of a subclass of :class:`mxarray.backends.base.Backend`.  It
sees only contiguous ``(n_blocks, block_size)`` blocks; the core does all shape work.

Selection, strongest first: the ``backend=`` argument of a call, the innermost
:func:`use_backend` context (local to the thread and asyncio task), the process-wide
:func:`set_backend`, and finally the default: the best available backend.

Threads: every function here may be called from any number of threads at once.  Each
backend is loaded once, by the first thread that needs it, under a lock of its own, so
a slow loader (Numba compiling its kernels) delays only the threads that wait for that
backend, and a loader may itself register backends or ask for other ones.  A
:func:`use_backend` choice lives in a :mod:`contextvars` variable: it is seen by the
code inside the ``with`` block, by asyncio tasks created there and by
:func:`contextvars.copy_context` runs, but not by other threads (a new thread, or a
pool's worker, starts without it) nor by tasks created elsewhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import threading
import warnings
from typing import Any, Callable, Iterator

from .base import Backend

__all__ = [
    "Backend",
    "BackendInfo",
    "get_backend",
    "list_backends",
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
    loading: bool = False  # the loader is running (seen by its own thread only)
    # Held while the loader runs; re-entrant so that a loader asking for its own backend
    # gets an error instead of a deadlock.
    lock: Any = dataclasses.field(default_factory=threading.RLock)


_lock = threading.Lock()  # guards _registry; never held while a loader runs
_registry: dict[str, _Entry] = {}
_entry_points_lock = threading.Lock()
_context_choice: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mxarray_backend", default=None
)
_global_choice: str | None = None
_entry_points_loaded = False
# (registry, the default's backend) once the default is settled; a registration clears
# it, and it holds for that registry object only.
_default_backend: tuple[dict[str, _Entry], Any] | None = None


def register_backend(
    name: str, loader: Callable[[], Any], *, priority: int = 0, fallback_warning: bool = False
) -> None:
    """Register a backend under ``name``.

    Parameters
    ----------
    name : str
        The name users pass as ``backend=``.
    loader : callable
        Called once, on first use, with no arguments; returns the backend: an instance
        of a subclass of :class:`~mxarray.backends.base.Backend` (or such a class, which
        is then instantiated).  It may raise ``ImportError`` or ``RuntimeError`` to say
        the backend is unusable here; anything else is reported as unusable too.
    priority : int, optional
        Higher priorities are preferred by the default selection; negative ones are used
        only when named.
    fallback_warning : bool, optional
        Emit a :class:`RuntimeWarning` (once) when the backend turns out unusable, e.g. an
        optional dependency is missing or its kernels fail to compile, so that users
        learn why a slower backend runs instead.
    """
    global _default_backend
    with _lock:
        _registry[name] = _Entry(name, loader, priority, fallback_warning)
        _default_backend = None  # the default may change: look again


def _load_entry_points() -> None:
    """Register the entry points' backends, once; other threads wait until it is done."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    with _entry_points_lock:
        if _entry_points_loaded:
            return
        from importlib import metadata  # imported here: about 15 ms, needed once

        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name not in _registry:
                register_backend(ep.name, ep.load, priority=-1)
        _entry_points_loaded = True


def __getattr__(name: str) -> Any:
    """``metadata``: :mod:`importlib.metadata`, imported on first use (as the registry
    itself does), so that importing mxarray does not pay for it."""
    if name == "metadata":
        from importlib import metadata

        return metadata
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _entries() -> list[_Entry]:
    """A snapshot of the registry, highest priority first."""
    with _lock:
        return sorted(_registry.values(), key=lambda e: -e.priority)


def _instantiate(entry: _Entry) -> Any:
    """The entry's backend object, loading it on first use; None if it is unusable (or
    still loading, when its own loader asks for it)."""
    if entry.loaded:
        return entry.instance
    with entry.lock:
        if entry.loaded or entry.loading:
            return entry.instance
        entry.loading = True
        try:
            candidate = entry.loader()
            if isinstance(candidate, type):
                candidate = candidate()
            if not isinstance(candidate, Backend):
                raise TypeError(
                    f"the loader gave a {type(candidate).__name__}, not a subclass of "
                    "mxarray.backends.base.Backend")
            ok, why = candidate.available()
            if ok:
                entry.instance = candidate
            else:
                entry.error = why
        except Exception as exc:  # a broken optional backend must never break import
            entry.error = f"{type(exc).__name__}: {exc}"
        finally:
            entry.loading = False
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


def list_backends() -> list[BackendInfo]:
    """List every registered backend, whether it is usable here, and why not.

    Examples
    --------
    >>> import mxarray
    >>> [b.name for b in mxarray.list_backends() if b.name == "numpy"]
    ['numpy']
    """
    _load_entry_points()
    rows = []
    for entry in _entries():
        instance = _instantiate(entry)
        if instance is not None:
            reason = instance.available()[1]
        else:
            reason = entry.error or "unavailable"
        rows.append(BackendInfo(entry.name, instance is not None, reason, entry.priority))
    return rows


def _lookup(name: object) -> _Entry:
    _load_entry_points()
    with _lock:
        entry = _registry.get(name) if isinstance(name, str) else None
        if entry is None:
            raise ValueError(
                f"unknown backend {name!r}; registered: {', '.join(sorted(_registry))}")
    return entry


def _usable(name: str) -> Any:
    entry = _lookup(name)
    instance = _instantiate(entry)
    if instance is None:
        why = entry.error or "its loader is still running and asked for it"
        raise RuntimeError(f"backend {name!r} is not usable here: {why}")
    return instance


def set_backend(name: str | None) -> None:
    """Choose the process-wide backend (``None`` restores the automatic default).

    The choice is seen by every thread and task that has no :func:`use_backend` of its
    own; prefer :func:`use_backend` to change the backend for a part of a program.

    Examples
    --------
    >>> import mxarray
    >>> from mxarray.backends import named_backend
    >>> mxarray.set_backend("numpy")
    >>> named_backend()
    'numpy'
    >>> mxarray.set_backend(None)
    >>> named_backend() is None
    True
    """
    global _global_choice
    if name is not None:
        _usable(name)
    _global_choice = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Use backend ``name`` inside a ``with`` block (local to this thread and task).

    Code inside the block, and asyncio tasks or :func:`contextvars.copy_context` runs
    created there, see the choice; other threads and tasks do not (a thread started
    inside the block does not either: new threads start without it).

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
    global _default_backend
    found = _default_backend
    if found is not None and found[0] is _registry:
        return found[1]
    _load_entry_points()
    entries = _entries()
    for i, entry in enumerate(entries):
        if entry.priority < 0:
            continue  # third-party backends are used only when named
        instance = _instantiate(entry)
        if instance is not None:
            # Kept if every better backend has finished loading (one may still be
            # loading and asking for the default) and nothing was registered since.
            settled = all(e.loaded for e in entries[:i])
            with _lock:
                if settled and len(entries) == len(_registry) and all(
                        _registry.get(e.name) is e for e in entries):
                    _default_backend = (_registry, instance)
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
    "numba", _builtin("numba", "NumbaBackend"), priority=10, fallback_warning=True
)

# CuPy is never the default for host data; the core picks it for data that live on a GPU.
register_backend("cupy", _builtin("cupy_backend", "CupyBackend"), priority=-1)
