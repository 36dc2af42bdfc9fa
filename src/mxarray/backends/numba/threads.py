"""Parallel Numba kernels called from many Python threads at once.

Numba runs ``parallel=True`` kernels on one of three threading layers.  TBB and OpenMP
accept launches from several Python threads at the same time; the ``workqueue`` layer
(the fallback where neither library is installed, e.g. many macOS machines, or the one
chosen by ``NUMBA_THREADING_LAYER=workqueue``) does not: it detects the concurrent
launch and aborts the whole process.  :func:`guarded` wraps a kernel module so that
its parallel kernels are launched one at a time while the active layer is not known to
be thread-safe; the layer is known after the first launch, and from then on a
thread-safe layer runs launches without the lock.

Small launches run on the calling thread alone (waking the pool costs more than their
work); the thread count is switched with the threading layer's own functions, which
skip the public functions' lock (:func:`_thread_count`).
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

    def run(self, kernel: Callable[..., Any], *args: Any, serial: bool = False) -> Any:
        """Call ``kernel(*args)``, holding the lock unless the layer is thread-safe;
        ``serial``: on the calling thread alone (see :func:`_call`)."""
        if self._serialise is False:
            return _call(kernel, args, serial)
        with self._lock:
            result = _call(kernel, args, serial)
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

    def unwrapped(self, name: str) -> Any:
        """The module's own attribute ``name`` (a kernel not wrapped by the gate)."""
        return getattr(self._module, name)

    @staticmethod
    def launch_kernel(kernel: Callable[..., Any], *args: Any, serial: bool = False) -> Any:
        """Run a parallel kernel through the gate; ``serial``: on the calling thread only
        (see :func:`_call`)."""
        return _GATE.run(kernel, *args, serial=serial)

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


def _call(call: Callable[..., Any], args: tuple[Any, ...], serial: bool) -> Any:
    """``call(*args)``; when ``serial``, its parallel regions run on the calling thread
    alone.

    Numba's thread count is per Python thread (``numba.set_num_threads``), and a
    parallel region of one thread wakes no worker.  Used for small calls, where waking
    the pool costs more than the work, and for the matmul panels, which alternate with
    BLAS: OpenMP workers woken by a kernel spin for a while after it (the default wait
    policy) and take the cores from the BLAS threads that run next.
    """
    if not serial:
        return call(*args)
    get, put = _thread_count()
    before = get()
    if before == 1:
        return call(*args)
    put(1)
    try:
        return call(*args)
    finally:
        put(before)


_counts: tuple[Callable[[], int], Callable[[int], None]] | None = None


def _thread_count() -> tuple[Callable[[], int], Callable[[int], None]]:
    """Get and set the calling thread's Numba thread count.

    The public ``numba.get_num_threads``/``set_num_threads`` start the threading layer,
    take a process-wide lock and check the count on every call.  Once the layer runs,
    its own functions do the same work: numba 0.68.1 keeps them as
    ``numba.np.ufunc.parallel._get_num_threads``/``_set_num_threads`` (ctypes functions
    of the layer's library).  The counts set here are 1 and a count read back from the
    layer, which the public checks always pass.
    """
    global _counts
    if _counts is None:
        import numba
        from numba.np.ufunc import parallel

        numba.get_num_threads()  # starts the threading layer, binding its functions
        get = getattr(parallel, "_get_num_threads", None)
        put = getattr(parallel, "_set_num_threads", None)
        if not (callable(get) and callable(put)):
            get, put = numba.get_num_threads, numba.set_num_threads
        _counts = (get, put)
    return _counts


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
