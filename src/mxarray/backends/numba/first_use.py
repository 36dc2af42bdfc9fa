"""A one-line notice on stderr before a kernel compiles for the first time on a machine.

Numba compiles a kernel on its first call and keeps the machine code in its disk cache
(``cache=True``; the directory is ``NUMBA_CACHE_DIR`` or ``__pycache__`` next to the
sources), so a compile happens once per machine, kernel and argument types.  A compile
takes seconds, so before a kernel that has nothing compiled in this process and
nothing in the disk cache runs, :func:`announce` prints one line naming the format,
the operation and the expected time.  Only the kernels a call needs are compiled.

Whether the disk cache holds a kernel is read from Numba's cache index through Numba's
own (private) cache objects, checked against numba 0.68.1; where they differ, the notice
is printed (it never changes a result).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["announce", "EXPECTED_SECONDS"]

EXPECTED_SECONDS = {"ocp": 10, "ocp-decode": 5, "pow2": 12, "ue4m3": 2, "table": 1,
                    "generic": 6}
"""About how long one kernel of each kind takes to compile, in CPU seconds: measured with
numba 0.68.1 on the 2-core development machine (empty ``NUMBA_CACHE_DIR``: OCP quantize
10.5 s, OCP dequantize and panel decode ("ocp-decode") 4.5 s, MX9 quantize 12 s, NVFP4 quantize 1.4 s, the table
dequantize 0.5-0.6 s); the generic kernels' figure is an earlier session's (MX9, 5.5 s).
Kinds under a second print no notice."""

_seen: set[int] = set()
_lock = threading.Lock()


def _in_disk_cache(kernel: Any) -> bool:
    """Whether Numba's disk cache holds compiled code of ``kernel`` (any argument types)."""
    try:
        cache = kernel._cache
        _, magic, code = cache._index_key(None, kernel.targetctx.codegen())
        index = cache._cache_file._load_index()
    except Exception:  # another Numba, or no cache: assume a compile
        return False
    return any(key[1:] == (magic, code) for key in index)


def announce(kernel: Any, subject: str, kind: str) -> None:
    """Before ``kernel``'s first call in this process: if it is neither compiled nor in
    the disk cache, print ``mxarray: compiling ...`` with ``subject`` (format and
    operation) and the expected time of a kernel of ``kind`` to stderr, once."""
    key = id(kernel)
    if key in _seen:
        return
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    if getattr(kernel, "overloads", None) or _in_disk_cache(kernel):
        return
    seconds = EXPECTED_SECONDS[kind]
    if seconds > 1:
        print(f"mxarray: compiling the Numba kernel for {subject} (first use on this machine, "
              f"about {seconds} s; cached for later runs)", file=sys.stderr, flush=True)
