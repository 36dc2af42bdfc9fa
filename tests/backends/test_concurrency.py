"""Concurrency: many threads, asyncio tasks and processes at once.

- quantize, dequantize and matmul from many threads give the bits of serial runs, on
  every backend, including the first-use paths (lazy backend loading, Numba's first
  compile, format registration);
- backend selection with ``use_backend`` stays local to a thread and an asyncio task;
  ``set_backend`` is process-wide;
- parallel Numba kernels launched from several threads survive the ``workqueue``
  threading layer, which is not thread-safe (launches are serialised there);
- Numba's disk cache survives processes compiling the same kernels at the same time.

The sizes (threads, rounds, processes) grow with ``pytest --long``.  The subprocess
tests run with their own working directory so that nothing of the checkout shadows
the standard library.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import mxarray
from support.hardening import is_long
from mxarray import core
from mxarray.backends import named_backend, register_backend, set_backend, use_backend
from mxarray.backends.numpy_backend import NumpyBackend

# registry module (the package re-exports a function of the same name)
registry = sys.modules["mxarray.backends"]

THREADS = 12
ROUNDS = 20 if is_long() else 2
SUBPROCESS_TIMEOUT = 600 if is_long() else 300


def _run_in_pool(n: int, fn, *args) -> list:
    """Run ``fn(i, *args)`` for i in 0..n-1 on n threads released together."""
    barrier = threading.Barrier(n)

    def start(i: int):
        barrier.wait(timeout=60)
        return fn(i, *args)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(start, range(n)))


def _run_script(tmp_path: Path, body: str, *, env: dict | None = None,
                timeout: float = SUBPROCESS_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``body`` in a fresh Python process (cwd ``tmp_path``)."""
    script = tmp_path / f"script_{abs(hash(body))}.py"
    script.write_text(textwrap.dedent(body))
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)


# -- the same bits from many threads ---------------------------------------------------


def _outcome(fn):
    """What a call gives: its result's bytes, or its exception's type and message."""
    try:
        result = fn()
    except (ValueError, TypeError, NotImplementedError) as exc:
        return ("raised", type(exc).__name__, str(exc))
    if isinstance(result, mxarray.MXArray):
        ts = result.tensor_scale
        return ("mx", result.shape, _host(result.packed).tobytes(),
                _host(result.scales).tobytes(), None if ts is None else float(ts))
    result = _host(result)
    return ("array", result.dtype.str, result.shape, result.tobytes())


def _host(a) -> np.ndarray:
    """A NumPy copy of a host or CuPy array (CuPy's ``get``)."""
    return np.asarray(a) if isinstance(a, np.ndarray) else np.asarray(a.get())


def _jobs(backend: str, round_no: int) -> list:
    """Calls over every block format, several roundings and scale modes, random axes and
    dtypes; each a zero-argument callable, deterministic (fixed seeds)."""
    rng = np.random.default_rng(1000 + round_no)
    jobs = []
    names = sorted(mxarray.BLOCK_FORMATS)
    for i, name in enumerate(names):
        for rounding in ("even", "nearest", "toward_zero", "stochastic"):
            ndim = int(rng.integers(1, 4))
            shape = tuple(int(s) for s in rng.integers(1, 48, ndim))
            dtype = (np.float16, np.float32, np.float64)[int(rng.integers(3))]
            spread = 6 if dtype == np.float16 else 40  # binades, within the dtype's range
            x = rng.standard_normal(shape) * 2.0 ** rng.integers(-spread, spread, shape)
            x = x.astype(dtype)
            axis = int(rng.integers(-ndim, ndim))
            scale_mode = mxarray.SCALE_MODES[int(rng.integers(len(mxarray.SCALE_MODES)))]
            seed = int(rng.integers(2**63)) if rounding == "stochastic" else None

            def quantize(x=x, name=name, axis=axis, rounding=rounding, mode=scale_mode,
                         seed=seed):
                return mxarray.quantize(x, name, axis=axis, rounding=rounding,
                                        scale_mode=mode, seed=seed, backend=backend)

            jobs.append(quantize)
            jobs.append(lambda q=quantize: mxarray.dequantize(q(), np.float64, backend=backend))
        m, k, n = (int(v) for v in rng.integers(1, 160, 3))
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        other = names[(i + 1) % len(names)]
        jobs.append(lambda a=a, b=b, fa=name, fb=other: core.matmul(
            mxarray.quantize(a, fa, backend=backend),
            mxarray.quantize(b, fb, axis=0, backend=backend), backend=backend))
    return jobs


def test_threads_give_serial_bits(backend: str) -> None:
    """THREADS threads run every job (each in its own order) at once, ROUNDS times; every
    outcome (bytes, or the same exception) equals the serial run's."""
    compared = 0
    for round_no in range(ROUNDS):
        jobs = _jobs(backend, round_no)
        serial = [_outcome(job) for job in jobs]
        assert any(o[0] == "mx" for o in serial) and any(o[0] == "array" for o in serial)

        def worker(i: int, jobs: list) -> list:
            order = np.random.default_rng(i).permutation(len(jobs))
            got = [None] * len(jobs)
            for j in order:
                got[j] = _outcome(jobs[j])
            return got

        for got in _run_in_pool(THREADS, worker, jobs):
            for j, (want, have) in enumerate(zip(serial, got, strict=True)):
                assert have == want, f"job {j} differs from the serial run"
                compared += 1
    assert compared == ROUNDS * THREADS * len(jobs)


# -- the registry from many threads ----------------------------------------------------


class _Recorder(NumpyBackend):
    """A stand-in backend: the NumPy reference, counting the operations per worker tag."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.used_by: collections.Counter = collections.Counter()

    def available(self) -> tuple[bool, str]:
        return True, "test stand-in"

    def _count(self) -> None:
        self.used_by[_worker.get()] += 1

    def quantize(self, *args, **kwargs):
        self._count()
        return super().quantize(*args, **kwargs)

    def dequantize(self, *args, **kwargs):
        self._count()
        return super().dequantize(*args, **kwargs)

    def matmul(self, *args, **kwargs):
        self._count()
        return super().matmul(*args, **kwargs)


_worker: contextvars.ContextVar[str] = contextvars.ContextVar("worker", default="main")


@pytest.fixture
def recorders():
    """Eight stand-in backends registered as ``standin-0`` .. ``standin-7``."""
    made = {}
    for i in range(8):
        name = f"standin-{i}"
        made[name] = _Recorder(name)
        register_backend(name, lambda r=made[name]: r, priority=-5)
    yield made
    set_backend(None)
    for name in made:
        registry._registry.pop(name, None)


def _quantize_once() -> mxarray.MXArray:
    return mxarray.quantize(np.linspace(-1, 1, 64), "mxfp8_e4m3")


def test_lazy_loading_runs_each_loader_once() -> None:
    """THREADS threads asking at once for a backend not loaded yet get one instance,
    built by one loader call."""
    calls = []
    started = threading.Event()

    def loader():
        calls.append(1)
        started.wait(0.2)  # a slow loader: the others arrive meanwhile
        return _Recorder("standin-lazy")

    register_backend("standin-lazy", loader, priority=-5)
    try:
        got = _run_in_pool(THREADS, lambda i: mxarray.get_backend("standin-lazy"))
    finally:
        registry._registry.pop("standin-lazy")
    assert len(calls) == 1
    assert all(b is got[0] for b in got)


def test_slow_loader_blocks_only_its_own_backend() -> None:
    """While one thread's loader runs, other threads get other backends (regression:
    one registry-wide lock made every backend call wait for any loader)."""
    release, inside = threading.Event(), threading.Event()

    def loader():
        inside.set()
        release.wait(30)
        return _Recorder("standin-slow")

    register_backend("standin-slow", loader, priority=-5)
    try:
        slow = threading.Thread(target=mxarray.get_backend, args=("standin-slow",))
        slow.start()
        assert inside.wait(30)
        done = []
        other = threading.Thread(
            target=lambda: done.append(core.quantize(np.ones(32), "mxint8", backend="numpy")))
        other.start()
        other.join(10)
        finished_while_loading = not other.is_alive()
        release.set()
        slow.join(30)
        other.join(30)
    finally:
        release.set()
        registry._registry.pop("standin-slow")
    assert finished_while_loading and len(done) == 1


def test_loaders_may_use_the_registry(tmp_path: Path) -> None:
    """A loader that registers another backend or asks for one (its own included) works
    instead of deadlocking (regression: the loader ran under the registry's lock).  In a
    subprocess, so that a deadlock cannot hang this process."""
    result = _run_script(tmp_path, """
        import mxarray
        from mxarray.backends.numpy_backend import NumpyBackend

        class Helper(NumpyBackend):
            name = "standin-helper"

        def loader():
            mxarray.register_backend("standin-helper", Helper, priority=-5)
            ref = mxarray.get_backend("numpy")  # a loader asking for another backend
            try:
                mxarray.get_backend("standin-outer")  # ... and for itself
            except RuntimeError as exc:
                print("self:", exc)
            class Outer(NumpyBackend):
                name = "standin-outer"
            return Outer

        mxarray.register_backend("standin-outer", loader, priority=-5)
        print("outer:", mxarray.get_backend("standin-outer").name)
        print("helper:", mxarray.get_backend("standin-helper").name)
    """, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("self:") and "still running" in lines[0]
    assert lines[1:] == ["outer: standin-outer", "helper: standin-helper"]


def test_entry_points_are_complete_before_any_lookup(monkeypatch) -> None:
    """A thread looking up a third-party backend while another thread is still reading
    the entry points waits for them (regression: it got "unknown backend")."""
    reading, release = threading.Event(), threading.Event()

    class EntryPoint:
        name = "standin-ep"

        @staticmethod
        def load():
            return _Recorder("standin-ep")

    def entry_points(group):
        reading.set()
        release.wait(30)
        return [EntryPoint()] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    outcomes = []
    try:
        reader = threading.Thread(target=mxarray.list_backends)
        reader.start()
        assert reading.wait(30)

        def look_up():
            try:
                outcomes.append(mxarray.get_backend("standin-ep").name)
            except ValueError as exc:
                outcomes.append(str(exc))

        looker = threading.Thread(target=look_up)
        looker.start()
        looker.join(0.3)  # long enough to fail fast if it does not wait
        release.set()
        reader.join(30)
        looker.join(30)
    finally:
        release.set()
        registry._registry.pop("standin-ep", None)
    assert outcomes == ["standin-ep"]


# -- backend selection: local to threads and tasks -------------------------------------


def test_use_backend_is_local_to_each_thread(recorders) -> None:
    """Each thread inside its own use_backend (all at once) runs on its own backend;
    a thread started inside the main thread's use_backend does not see it."""

    def worker(i: int) -> tuple:
        _worker.set(f"thread-{i}")
        name = f"standin-{i % 8}"
        seen = []
        with use_backend(name):
            for _ in range(5):
                seen.append(named_backend())
                _quantize_once()
        return name, seen, named_backend()

    with use_backend("numpy"):
        results = _run_in_pool(8, worker)
        in_new_thread = []
        t = threading.Thread(target=lambda: in_new_thread.append(named_backend()))
        t.start()
        t.join()
        assert named_backend() == "numpy"
    assert in_new_thread == [None]
    for i, (name, seen, after) in enumerate(results):
        assert seen == [name] * 5 and after is None
        assert dict(recorders[name].used_by) and set(recorders[name].used_by) == {f"thread-{i}"}


def test_use_backend_is_local_to_each_task(recorders) -> None:
    """asyncio tasks, each in its own (nested) use_backend and interleaved at awaits,
    see and run their own backend; a task created inside a use_backend inherits it, and
    its own changes do not reach its creator."""

    async def task(i: int) -> list:
        _worker.set(f"task-{i}")
        seen = []
        with use_backend("numpy"):
            with use_backend(f"standin-{i}"):
                for _ in range(4):
                    await asyncio.sleep(0)
                    seen.append(named_backend())
                    _quantize_once()
            seen.append(named_backend())
        seen.append(named_backend())
        return seen

    async def child() -> str | None:
        seen = named_backend()
        with use_backend("standin-7"):
            await asyncio.sleep(0)
        return seen

    async def main() -> tuple:
        results = await asyncio.gather(*(task(i) for i in range(7)))
        with use_backend("standin-6"):
            inherited = await asyncio.create_task(child())
            after_child = named_backend()
        return results, inherited, after_child

    results, inherited, after_child = asyncio.run(main())
    for i, seen in enumerate(results):
        assert seen == [f"standin-{i}"] * 4 + ["numpy", None]
        assert set(recorders[f"standin-{i}"].used_by) == {f"task-{i}"}
    assert inherited == "standin-6" and after_child == "standin-6"
    assert not recorders["standin-7"].used_by


def test_copied_context_keeps_the_choice(recorders) -> None:
    """contextvars.copy_context() inside use_backend carries the choice (to a pool's
    worker too, which otherwise starts without it)."""
    with use_backend("standin-3"):
        ctx = contextvars.copy_context()
        with ThreadPoolExecutor(2) as pool:
            plain = pool.submit(named_backend).result()
            carried = pool.submit(ctx.run, named_backend).result()
    assert plain is None and carried == "standin-3"
    assert ctx.run(named_backend) == "standin-3" and named_backend() is None


def test_set_backend_is_process_wide(recorders) -> None:
    """set_backend in one thread is seen by every other thread (documented), except where
    a use_backend is active."""
    set_backend("standin-1")
    try:
        def worker(i: int) -> tuple:
            _worker.set(f"global-{i}")
            if i % 2:
                with use_backend("standin-2"):
                    _quantize_once()
                    return named_backend(), mxarray.get_backend().name
            _quantize_once()
            return named_backend(), mxarray.get_backend().name

        results = _run_in_pool(6, worker)
    finally:
        set_backend(None)
    assert results == [("standin-1", "standin-1"), ("standin-2", "standin-2")] * 3
    assert set(recorders["standin-1"].used_by) == {f"global-{i}" for i in (0, 2, 4)}
    assert named_backend() is None


# -- first-use paths in fresh processes -------------------------------------------------

_RACE_SCRIPT = """
    import json, os, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np

    # a file barrier: every process starts compiling at the same moment
    here, n_procs = sys.argv[1], int(sys.argv[2])
    open(os.path.join(here, f"ready-{os.getpid()}"), "w").close()
    deadline = time.monotonic() + 120
    while sum(f.startswith("ready-") for f in os.listdir(here)) < n_procs:
        assert time.monotonic() < deadline, "the other processes never came"
        time.sleep(0.01)

    import mxarray

    x = np.random.default_rng(7).standard_normal((5, 96)).astype(np.float32)
    barrier = threading.Barrier(4)

    def work(i):
        barrier.wait()
        be = mxarray.get_backend("numba")  # lazy loading and the first compile race
        a = mxarray.quantize(x, "mxfp8_e4m3", backend="numba")
        return be, a.packed.tobytes(), a.scales.tobytes(), \\
            mxarray.dequantize(a, backend="numba").tobytes()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    ref = mxarray.quantize(x, "mxfp8_e4m3", backend="numpy")
    want = (ref.packed.tobytes(), ref.scales.tobytes(),
            mxarray.dequantize(ref, backend="numpy").tobytes())
    be = results[0][0]
    from mxarray.backends.numba import ocp_kernels as kernels
    stats = {}
    for name in ("quantize_rows_f32", "dequantize_rows"):
        s = getattr(kernels, name).stats
        stats[name] = [sum(s.cache_hits.values()), sum(s.cache_misses.values())]
    print(json.dumps({"same_backend": all(r[0] is be for r in results),
                      "matches": all(r[1:] == want for r in results),
                      "stats": stats}))
"""


@pytest.mark.parametrize("n_procs", [2])
def test_numba_disk_cache_survives_racing_processes(tmp_path: Path, n_procs: int) -> None:
    """n_procs processes with one fresh NUMBA_CACHE_DIR compile the same kernels at once
    (4 threads each racing the lazy backend load and the first compile); a later process
    loads both kernels from that cache without compiling, and all give the reference's
    bits."""
    pytest.importorskip("numba", reason="the numba backend needs numba (mxarray[numba])")
    cache = tmp_path / "numba-cache"
    env = {"NUMBA_CACHE_DIR": str(cache)}
    script = tmp_path / "race.py"
    script.write_text(textwrap.dedent(_RACE_SCRIPT))
    full_env = {**os.environ, **env}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(n_procs)],
                              cwd=tmp_path, env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n_procs)]
    cold = []
    for p in procs:
        out, err = p.communicate(timeout=SUBPROCESS_TIMEOUT)
        assert p.returncode == 0, err
        cold.append(json.loads(out.splitlines()[-1]))
    for ready in tmp_path.glob("ready-*"):
        ready.unlink()
    warm = subprocess.run([sys.executable, str(script), str(tmp_path), "1"], cwd=tmp_path,
                          env=full_env, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT, check=False)
    assert warm.returncode == 0, warm.stderr
    warm_report = json.loads(warm.stdout.splitlines()[-1])
    for report in [*cold, warm_report]:
        assert report["same_backend"] and report["matches"]
    # the racing processes compiled (nobody had a cache yet, or loaded the other's) ...
    assert all(sum(r["stats"][k]) >= 1 for r in cold for k in r["stats"])
    # ... and the later process compiled nothing: every kernel came from the disk cache
    assert all(hits >= 1 and misses == 0 for hits, misses in warm_report["stats"].values())
    assert list(cache.rglob("*.nbi")) and list(cache.rglob("*.nbc"))


_WORKQUEUE_SCRIPT = """
    import json, threading
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    import numba
    import mxarray
    from mxarray import core
    from mxarray.backends.numba.threads import guarded, _GATE

    be = mxarray.get_backend("numba")
    if {apply_gate}:
        be._kernels = {{k: guarded(v) for k, v in be._kernels.items()}}
    rng = np.random.default_rng(3)
    x = rng.standard_normal((48, 4096)).astype(np.float32)
    b = rng.standard_normal((4096, 24)).astype(np.float32)

    def job():
        a = mxarray.quantize(x, "mxfp8_e4m3", backend="numba")
        bq = mxarray.quantize(b, "mxfp8_e4m3", axis=0, backend="numba")
        return (a.packed.tobytes(), mxarray.dequantize(a, backend="numba").tobytes(),
                core.matmul(a, bq, backend="numba").tobytes())

    want = job()
    barrier = threading.Barrier({threads})

    def work(i):
        barrier.wait()
        return [job() == want for _ in range({calls})]

    with ThreadPoolExecutor({threads}) as pool:
        same = [ok for r in pool.map(work, range({threads})) for ok in r]
    print(json.dumps({{"layer": numba.threading_layer(), "serialises": _GATE.serialises,
                      "same": all(same), "calls": len(same)}}))
"""


def test_workqueue_layer_serialises_launches(tmp_path: Path) -> None:
    """Under Numba's workqueue layer (not thread-safe), THREADS threads quantizing,
    dequantizing and multiplying at once finish with the serial bits: the gate of
    mxarray.backends.numba.threads serialises the launches (without it, the process
    aborts: "Concurrent access has been detected")."""
    pytest.importorskip("numba", reason="the numba backend needs numba (mxarray[numba])")
    calls = 10 if is_long() else 3
    result = _run_script(
        tmp_path, _WORKQUEUE_SCRIPT.format(apply_gate=True, threads=THREADS, calls=calls),
        env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report == {"layer": "workqueue", "serialises": True, "same": True,
                      "calls": THREADS * calls}


def test_thread_safe_layer_runs_without_the_lock(tmp_path: Path) -> None:
    """Under this machine's default (thread-safe) layer the gate stops locking after the
    first launch, and the threads still get the serial bits."""
    pytest.importorskip("numba", reason="the numba backend needs numba (mxarray[numba])")
    result = _run_script(
        tmp_path, _WORKQUEUE_SCRIPT.format(apply_gate=True, threads=THREADS, calls=2))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])
    if report["layer"] not in ("tbb", "omp"):
        pytest.skip(f"waits for a thread-safe Numba layer (tbb or omp); here {report['layer']}")
    assert report["serialises"] is False and report["same"] and report["calls"] == THREADS * 2


class _FakeParallelKernel:
    """Stands in for a ``parallel=True`` dispatcher; records how many calls overlap."""

    targetoptions = {"parallel": True}

    def __init__(self, meet: threading.Barrier | None = None) -> None:
        self.meet, self.inside, self.most = meet, 0, 0
        self._count = threading.Lock()

    def __call__(self, x):
        with self._count:
            self.inside += 1
            self.most = max(self.most, self.inside)
        if self.meet is not None:
            self.meet.wait(30)  # passes only if every thread is inside at once
        else:
            threading.Event().wait(0.002)
        with self._count:
            self.inside -= 1
        return x + 1


def _fake_kernels(kernel) -> object:
    import types

    module = types.ModuleType("fake_kernels")
    module.launch, module.CODES, module.serial = kernel, {"even": 0}, abs
    return module


@pytest.mark.parametrize("unsafe", [True, None])
def test_gate_serialises_unsafe_layers(monkeypatch, unsafe) -> None:
    """Where the layer is not thread-safe (or not known yet), no two parallel launches
    overlap; results and the other attributes pass through unchanged."""
    from mxarray.backends.numba import threads as nt

    monkeypatch.setattr(nt, "_GATE", nt._LaunchGate())
    monkeypatch.setattr(nt, "_layer_is_unsafe", lambda: unsafe)
    kernel = _FakeParallelKernel()
    kernels = nt.guarded(_fake_kernels(kernel))
    got = _run_in_pool(8, lambda i: [kernels.launch(i) for _ in range(5)])
    assert got == [[i + 1] * 5 for i in range(8)]
    assert kernel.most == 1 and nt._GATE.serialises is unsafe
    assert kernels.CODES == {"even": 0} and kernels.serial is abs


def test_gate_lets_thread_safe_layers_overlap(monkeypatch) -> None:
    """Once a thread-safe layer is known, launches from several threads run at once
    (each call below returns only when all four are inside the kernel together)."""
    from mxarray.backends.numba import threads as nt

    monkeypatch.setattr(nt, "_GATE", nt._LaunchGate())
    monkeypatch.setattr(nt, "_layer_is_unsafe", lambda: False)
    first = nt.guarded(_fake_kernels(_FakeParallelKernel()))
    assert first.launch(1) == 2 and nt._GATE.serialises is False
    kernel = _FakeParallelKernel(meet=threading.Barrier(4))
    kernels = nt.guarded(_fake_kernels(kernel))
    assert _run_in_pool(4, lambda i: kernels.launch(i)) == [1, 2, 3, 4]
    assert kernel.most == 4


def test_numba_backend_guards_its_kernels() -> None:
    """The Numba backend itself routes its parallel kernels through the gate."""
    pytest.importorskip("numba", reason="the numba backend needs numba (mxarray[numba])")
    from mxarray.backends.numba.threads import ParallelKernels

    be = mxarray.get_backend("numba")
    assert all(isinstance(k, ParallelKernels) for k in be._kernels.values())


_REGISTER_SCRIPT = """
    import json, sys, threading
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    import mxarray
    from mxarray.formats import register

    sys.setswitchinterval(1e-6)  # switch threads as often as possible: widen any race
    rounds, threads = {rounds}, {threads}
    x = np.linspace(-4, 4, 96)
    want = mxarray.quantize(x, "mxint8").packed.tobytes()
    lookups_ok, distinct_ok = True, True
    for r in range(rounds):
        barrier = threading.Barrier(threads)

        def work(i):
            barrier.wait()
            if i % 2 == 0:  # lookups and quantizes of a known format meanwhile
                return mxarray.quantize(x, "mxint8").packed.tobytes() == want
            return register({{"name": f"race_{{r}}_{{i}}", "block_size": 16, "scale": "e8m0",
                             "element": "mxint8"}}).name

        out = list(ThreadPoolExecutor(threads).map(work, range(threads)))
        lookups_ok &= all(out[0::2])
        distinct_ok &= all(mxarray.get_format(n).name == n for n in out[1::2])
    print(json.dumps({{"lookups": lookups_ok, "distinct": distinct_ok}}))
"""


def test_register_races_with_lookups(tmp_path: Path) -> None:
    """Formats registered from several threads while others look formats up and
    quantize: lookups never fail, distinct names all register."""
    rounds = 100 if is_long() else 10
    result = _run_script(tmp_path, _REGISTER_SCRIPT.format(rounds=rounds, threads=8),
                         timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {"lookups": True, "distinct": True}


_SAME_NAME_SCRIPT = """
    import json, threading
    from concurrent.futures import ThreadPoolExecutor
    import mxarray
    from mxarray import formats

    # Every thread passes the name check before any inserts: each builds its Format,
    # then waits at the barrier until all have built theirs (the widest interleaving).
    threads = 6
    meet = threading.Barrier(threads)
    build = formats._block_format

    def build_then_meet(*args, **kwargs):
        fmt = build(*args, **kwargs)
        meet.wait(30)
        return fmt

    formats._block_format = build_then_meet
    entry = {"name": "race_same", "block_size": 16, "scale": "e8m0", "element": "mxint8"}

    def work(i):
        try:
            return formats.register(entry)
        except ValueError:
            return None

    won = [f for f in ThreadPoolExecutor(threads).map(work, range(threads)) if f is not None]
    print(json.dumps({"winners": len(won),
                      "registered": bool(won) and mxarray.get_format("race_same") is won[0]}))
"""


def test_register_same_name_once(tmp_path: Path) -> None:
    """One name registered from several threads at once: exactly one call succeeds and
    its Format is the registry's; the others raise ValueError (regression: every one
    succeeded, each replacing the previous one silently)."""
    result = _run_script(tmp_path, _SAME_NAME_SCRIPT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {"winners": 1, "registered": True}


def test_cuda_self_check_runs_once(monkeypatch) -> None:
    """Threads asking at once whether the tensor-core kernel is verified for a (device,
    format pair) run its self-check once and warn at most once (regression: each thread
    ran it).  Needs CuPy importable, not a GPU: without one the check fails and warns."""
    pytest.importorskip("cupy", reason="the CUDA backend's module needs CuPy (mxarray[cuda])")
    from mxarray.backends import cupy_backend

    calls = []
    real = cupy_backend._self_check_problem

    def slow_problem(a_fmt, b_fmt):
        calls.append(1)
        threading.Event().wait(0.05)  # let the other threads arrive
        return real(a_fmt, b_fmt)

    monkeypatch.setattr(cupy_backend, "_self_check_problem", slow_problem)
    device = 4000 + os.getpid() % 1000  # a device id no other test has checked
    fmt = mxarray.mxfp8_e4m3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run_in_pool(8, lambda i: cupy_backend._mma_verified(device, fmt, fmt))
    assert len(calls) == 1
    assert sum(f"device {device}" in str(w.message) for w in caught) <= 1


_REPORT_SCRIPT = """
    import threading
    import numpy as np
    import mxarray
    from mxarray import report
    from mxarray.formats import register

    # Another thread registers a format while the report walks the known formats: the
    # walk pauses at its first format until the registration is done.
    registered = threading.Event()
    check = report._check_scale_kind

    def check_after_registration(*args):
        if not registered.is_set():
            threading.Thread(target=lambda: (register(
                {"name": "rep_new", "block_size": 16, "scale": "e8m0", "element": "mxint8"}),
                registered.set())).start()
            registered.wait(30)
        return check(*args)

    report._check_scale_kind = check_after_registration
    rows = report.evaluate(np.linspace(-1.0, 1.0, 32), repeats=1)
    print(len(rows) >= len(mxarray.FORMATS))
"""


def test_report_while_formats_register(tmp_path: Path) -> None:
    """The report over every format, run while another thread registers formats, does not
    fail (regression: RuntimeError "dictionary changed size during iteration")."""
    result = _run_script(tmp_path, _REPORT_SCRIPT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True"]
