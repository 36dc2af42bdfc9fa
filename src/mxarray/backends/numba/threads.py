"""Parallel Numba kernels called from many Python threads at once.

Numba runs ``parallel=True`` kernels on one of three threading layers.  TBB and OpenMP
accept launches from several Python threads at the same time; the ``workqueue`` layer
(the fallback where neither library is installed, e.g. many macOS machines, or the one
chosen by ``NUMBA_THREADING_LAYER=workqueue``) does not: it detects the concurrent
launch and aborts the whole process.  :func:`guarded` wraps a kernel module so that
its parallel kernels are launched one at a time while the active layer is not known to
be thread-safe; the layer is known after the first launch, and from then on a
thread-safe layer runs launches without the lock.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any, Callable

__all__ = ["THREAD_SAFE_LAYERS", "ParallelKernels", "guarded"]

THREAD_SAFE_LAYERS = frozenset({"tbb", "omp"})
"""Numba threading layers that accept parallel launches from several threads at once."""


class _LaunchGate:
    """Runs parallel kernels, one at a time unless the threading layer is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serialise: bool | None = None  # unknown until the first launch

    @property
    def serialises(self) -> bool | None:
        """Whether launches take the lock: None until the first launch has run."""
        return self._serialise

    def run(self, kernel: Callable[..., Any], *args: Any) -> Any:
        """Call ``kernel(*args)``, holding the lock unless the layer is thread-safe."""
        if self._serialise is False:
            return kernel(*args)
        with self._lock:
            result = kernel(*args)
            if self._serialise is None:
                self._serialise = _layer_is_unsafe()
            return result


def _layer_is_unsafe() -> bool | None:
    """Whether Numba's active threading layer is not thread-safe; None while no
    parallel region has started one."""
    import numba

    try:
        return numba.threading_layer() not in THREAD_SAFE_LAYERS
    except ValueError:  # no threading layer initialised yet
        return None


_GATE = _LaunchGate()


def _is_parallel(obj: Any) -> bool:
    """Whether ``obj`` is a Numba dispatcher compiled with ``parallel=True``."""
    options = getattr(obj, "targetoptions", None)
    return isinstance(options, dict) and bool(options.get("parallel"))


class ParallelKernels:
    """A kernel module whose parallel kernels launch through the process's gate.

    Every other attribute (constants, serial kernels) is the module's own.
    """

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._wrapped: dict[str, Callable[..., Any]] = {}

    @staticmethod
    def launch(kernel: Callable[..., Any], *args: Any) -> Any:
        """Run a parallel kernel made at run time (a per-format kernel) through the gate."""
        return _GATE.run(kernel, *args)

    def __getattr__(self, name: str) -> Any:
        wrapped = self._wrapped.get(name)
        if wrapped is not None:
            return wrapped
        attr = getattr(self._module, name)
        if not _is_parallel(attr):
            return attr

        def launch(*args: Any) -> Any:
            return _GATE.run(attr, *args)

        launch.__name__ = name
        launch.__doc__ = attr.__doc__
        self._wrapped[name] = launch
        return launch


def guarded(module: ModuleType | ParallelKernels) -> ParallelKernels:
    """``module`` with its parallel kernels launched safely from any number of threads.

    Examples
    --------
    >>> import types
    >>> from mxarray.backends.numba.threads import guarded
    >>> kernels = types.ModuleType("kernels")
    >>> kernels.CODES = {"even": 0}
    >>> guarded(kernels).CODES
    {'even': 0}
    >>> g = guarded(kernels)
    >>> guarded(g) is g
    True
    """
    return module if isinstance(module, ParallelKernels) else ParallelKernels(module)
