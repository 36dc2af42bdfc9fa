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
skip the public functions' lock (:func:`_thread_count`).  A kernel already compiled for
its arguments' exact Numba types is called through that compiled overload's entry
point, past the dispatcher's type matching (:class:`_EntryPoints`).
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any, Callable, Hashable

import numpy as np

__all__ = ["THREAD_SAFE_LAYERS", "SERIAL_BELOW", "ParallelKernels", "guarded"]

SERIAL_BELOW = 1 << 15
"""Elements (or bytes) of a kernel's first argument below which it runs serially."""

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
        """Run a parallel kernel (a Numba dispatcher) through the gate, by its compiled
        entry point where one is known for the arguments' types; ``serial``: on the
        calling thread only (see :func:`_call`)."""
        key = _ENTRIES.key(kernel, args)
        point = _ENTRIES.points.get(key) if key is not None else None
        if point is not None:
            return _GATE.run(point, *args, serial=serial)
        result = _GATE.run(kernel, *args, serial=serial)
        if key is not None:
            _ENTRIES.learn(key, kernel, args)
        return result

    def __getattr__(self, name: str) -> Any:
        wrapped = self._wrapped.get(name)
        if wrapped is not None:
            return wrapped
        attr = getattr(self._module, name)
        if not _is_parallel(attr):
            return attr

        def launch(*args: Any) -> Any:
            return self.launch_kernel(attr, *args, serial=np.size(args[0]) < SERIAL_BELOW)

        launch.__name__ = name
        launch.__doc__ = attr.__doc__
        self._wrapped[name] = launch
        return launch


try:
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:  # another Numba: every call goes through the dispatcher
    _fingerprint = None

_SCALARS = (np.number, np.bool_)
_IMMUTABLE = (tuple, int, float)
_RECORDS_KEPT = 1024  # objects whose Numba types are kept (then all are forgotten)


class _EntryPoints:
    """Compiled entry points of Numba dispatchers, keyed exactly by argument types.

    A Numba dispatcher matches the Numba types of its arguments against its compiled
    overloads on every call: about 0.7 us per record argument (a NamedTuple, typed by
    Numba's Python-level ``typeof``), several microseconds per kernel call.  The key
    here determines every argument's Numba type (numba 0.68.1, ``typeof``): an
    ``ndarray`` (the exact class) by the fingerprint Numba's own C ``typeof`` keys its
    type cache on (``numba._dispatcher.compute_fingerprint``: dimensions, layout,
    writeability, dtype; without it, no entry point is taken); an immutable object (the
    records of :mod:`.params`, which hold no array that changes, ints, bools) by its
    identity, with its Numba type computed once and the object kept alive with it, so
    that its ``id`` cannot be reused while the entry stands; a NumPy scalar by its
    class; any other argument takes the dispatcher.  A Numba type enters the key as a
    number of its own (hashing a Numba record type runs Python code: microseconds per
    call).  An overload is taken only when the dispatcher, called first, compiled one
    for exactly those types.  Kernels called with arrays and NumPy scalars alone keep the
    dispatcher, whose C ``typeof`` types those as fast as the key would; any other
    callable is called as it is.
    """

    def __init__(self) -> None:
        self.points: dict[tuple[Hashable, ...], Callable[..., Any]] = {}
        self._records: dict[int, tuple[Any, int]] = {}
        self._tokens: dict[Any, int] = {}  # Numba type -> its number in the keys
        self._lock = threading.Lock()  # one number per type, when threads miss at once
        self._plain: set[Any] = set()  # kernels left to the dispatcher

    def key(self, kernel: Any, args: tuple[Any, ...]) -> tuple[Hashable, ...] | None:
        """A key fixing ``kernel`` and the Numba type of every argument; None if an
        argument has no cheap exact key."""
        if _fingerprint is None or kernel in self._plain:
            return None
        key: list[Hashable] = [kernel]
        records = self._records
        try:
            for a in args:
                if type(a) is np.ndarray:
                    key.append(_fingerprint(a))
                else:
                    hit = records.get(id(a))  # the kept object holds its id
                    if hit is not None:
                        key.append(hit[1])
                    elif isinstance(a, _SCALARS):  # typed by its class alone
                        key.append(type(a))
                    else:
                        key.append(self._record_type(kernel, a))
        except Exception:  # not typeable: the dispatcher raises its own error
            return None
        return tuple(key)

    def _record_type(self, kernel: Any, record: Any) -> int:
        if not isinstance(record, _IMMUTABLE):
            raise TypeError("only immutable arguments are keyed by identity")
        if len(self._records) >= _RECORDS_KEPT:  # records made per call (seeds)
            self._records.clear()
        numba_type = kernel.typeof_pyval(record)
        with self._lock:
            token = self._tokens.setdefault(numba_type, len(self._tokens))
        self._records[id(record)] = (record, token)
        return token

    def learn(self, key: tuple[Hashable, ...], kernel: Any, args: tuple[Any, ...]) -> None:
        """After ``kernel`` ran on ``args``: keep the entry point of the overload compiled
        for exactly their types, if there is one (none where every argument is an array
        or a NumPy scalar, or where ``kernel`` is no Numba dispatcher)."""
        overloads = getattr(kernel, "overloads", None)
        if overloads is None or all(type(a) is np.ndarray or isinstance(a, _SCALARS)
                                    for a in args):
            self._plain.add(kernel)
            return
        overload = overloads.get(tuple(kernel.typeof_pyval(a) for a in args))
        if overload is not None:
            self.points[key] = overload.entry_point


_ENTRIES = _EntryPoints()


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
