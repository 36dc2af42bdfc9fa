"""Accumulating float32 GEMM (``C += A @ B.T``) from the BLAS that NumPy itself uses.

NumPy's ``matmul`` always overwrites its output, so an MX matmul that decodes its
operands in K-panels (each element decoded once, within a small memory budget) needs
BLAS's ``beta = 1`` to add each panel's product into the result.  NumPy's wheels ship
OpenBLAS as a shared library next to the package; this module finds its CBLAS
``sgemm`` (the ILP64 ``scipy_openblas`` build or a plain one) with :mod:`ctypes`, so
the product runs on the same BLAS and threads as ``numpy.matmul``.  Where no such
library is found, :func:`sgemm_acc` is None and callers use ``numpy.matmul`` tiles.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Callable

import numpy as np

__all__ = ["sgemm_acc", "release_blas_workers"]

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # CBLAS enum values
# (symbol, 64-bit integers?) in order of preference
_SYMBOLS = (("scipy_cblas_sgemm64_", True), ("cblas_sgemm64_", True),
            ("scipy_cblas_sgemm", False), ("cblas_sgemm", False))


def _library_paths() -> list[str]:
    """Shared libraries bundled with NumPy's wheel that may hold its BLAS."""
    root = os.path.dirname(np.__file__)
    patterns = [os.path.join(root + ".libs", "*blas*"), os.path.join(root, ".dylibs", "*blas*"),
                os.path.join(root, "..", "numpy.libs", "*blas*")]
    return sorted({p for pattern in patterns for p in glob.glob(pattern)})


def _workers_shutdown() -> Callable[[], None] | None:
    """OpenBLAS's ``blas_thread_shutdown_`` (what its own fork handler calls), if exported."""
    for path in _library_paths():
        try:
            fn = getattr(ctypes.CDLL(path), "blas_thread_shutdown_", None)
        except OSError:
            continue
        if fn is not None:
            fn.argtypes, fn.restype = [], ctypes.c_int
            return fn
    return None


def _load() -> tuple[Callable[..., None], int] | None:
    """The first CBLAS sgemm found and the largest dimension its integers hold."""
    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, ilp64 in _SYMBOLS:
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            size = ctypes.c_int64 if ilp64 else ctypes.c_int
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, size, size, size,
                           ctypes.c_float, ctypes.c_void_p, size, ctypes.c_void_p, size,
                           ctypes.c_float, ctypes.c_void_p, size]
            fn.restype = None
            return fn, 2**63 - 1 if ilp64 else 2**31 - 1
    return None


def _agrees_with_numpy(fn: Callable[..., None]) -> bool:
    """Self-test on small integers (exact in any order): a symbol whose integer width or
    calling convention we guessed wrong must never be used."""
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(20, dtype=np.float32).reshape(5, 4) - 7
    c = np.ones((3, 5), dtype=np.float32)
    fn(_ROW_MAJOR, _NO_TRANS, _TRANS, 3, 5, 4, 1.0, a.ctypes.data, 4, b.ctypes.data, 4,
       1.0, c.ctypes.data, 5)
    return bool(np.array_equal(c, a @ b.T + 1))


_SGEMM, _MAX_DIM = _load() or (None, 0)
if _SGEMM is not None and not _agrees_with_numpy(_SGEMM):
    _SGEMM = None


def _sgemm_acc(a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulate: bool) -> None:
    """``c = a @ b.T`` (``accumulate`` False) or ``c += a @ b.T``, all float32.

    ``a`` is C-contiguous ``(m, k)``, ``b`` C-contiguous ``(n, k)``; ``c`` is ``(m, n)``
    with unit column stride (rows may be strided).
    """
    m, k = a.shape
    n = b.shape[0]
    ok = (a.dtype == b.dtype == c.dtype == np.float32 and a.flags.c_contiguous
          and b.flags.c_contiguous and b.shape[1] == k and c.shape == (m, n)
          and c.strides[1] == 4 and c.strides[0] % 4 == 0 and c.flags.writeable)
    if not ok:  # BLAS would read or write out of bounds
        raise ValueError("sgemm_acc needs C-contiguous float32 a (m, k), b (n, k) and "
                         "a writeable float32 c (m, n) with unit column stride")
    ldc = c.strides[0] // 4
    if max(k, ldc) > _MAX_DIM:  # ctypes would silently wrap them
        raise ValueError(f"sgemm_acc: k = {k} or row stride {ldc} exceeds this BLAS's "
                         f"integers (at most {_MAX_DIM})")
    # rows beyond the BLAS's integers (a 32-bit BLAS and 2**31 rows) go in pieces; n <= ldc
    for i in range(0, m, _MAX_DIM):
        ai = a[i : i + _MAX_DIM]
        _SGEMM(_ROW_MAJOR, _NO_TRANS, _TRANS, ai.shape[0], n, k, 1.0, ai.ctypes.data, k,
               b.ctypes.data, k, 1.0 if accumulate else 0.0, c[i:].ctypes.data, ldc)


sgemm_acc: Callable[[np.ndarray, np.ndarray, np.ndarray, bool], None] | None = (
    _sgemm_acc if _SGEMM is not None else None
)


_SHUTDOWN = _workers_shutdown()


def release_blas_workers() -> bool:
    """Stop NumPy's OpenBLAS worker threads now, so they give the cores back at once.

    After each call OpenBLAS's idle workers spin for a while (its thread timeout,
    ``2**28`` cycles by default, ~0.1 s) before they sleep; a kernel that runs on other
    threads right after a NumPy GEMM then shares the cores with them (measured on 2
    cores: the bf16 MX matmul took 1.9x its time).  OpenBLAS starts the workers again at
    its next threaded call.  Done only while this is the process's only Python thread
    (no other thread can be inside OpenBLAS then); returns whether it was done.
    """
    if _SHUTDOWN is None or threading.active_count() != 1:
        return False
    _SHUTDOWN()
    return True
