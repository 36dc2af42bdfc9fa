"""Stopping NumPy's OpenBLAS workers before a kernel on other threads (``_blas``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mxarray.backends import _blas

needs_shutdown = pytest.mark.skipif(
    _blas._SHUTDOWN is None,
    reason="needs NumPy's bundled OpenBLAS exporting blas_thread_shutdown_")


@needs_shutdown
def test_workers_stop_only_while_one_python_thread_runs() -> None:
    a = np.arange(256 * 256, dtype=np.float32).reshape(256, 256) % 7
    want = a.astype(np.float64) @ a.astype(np.float64)  # small integers: exact
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not _blas.release_blas_workers()  # another thread might be inside BLAS
    finally:
        stop.set()
        other.join()
    if threading.active_count() != 1:
        pytest.skip(reason="a thread outside this test (a plugin's) is alive")
    assert _blas.release_blas_workers()
    assert np.array_equal(a @ a, want)  # OpenBLAS restarts its workers for the next GEMM
    assert _blas.release_blas_workers()
    assert np.array_equal(a @ a, want)
