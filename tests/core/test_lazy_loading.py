"""What a new process loads: importing mxarray imports no optional machinery, and a call
loads only the kernels of its own format (each check runs in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


def _fresh(script: str) -> dict:
    """Run ``script`` in a new interpreter; return the JSON object it prints last."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_import_loads_no_backend_and_no_entry_points() -> None:
    """``import mxarray`` imports neither Numba, SciPy, Dask nor importlib.metadata (the
    registry reads the entry points on the first backend lookup)."""
    loaded = _fresh("""
        import json, sys
        import mxarray
        print(json.dumps({m: m in sys.modules for m in
                          ("numba", "scipy", "dask", "importlib.metadata")}))
    """)
    assert loaded == {"numba": False, "scipy": False, "dask": False,
                      "importlib.metadata": False}


def test_a_call_loads_only_its_own_kernels() -> None:
    """Quantizing and dequantizing MX6 with the Numba backend compiles or loads no OCP
    kernel (the backend's availability probe is the tiled copy, not a quantize kernel)."""
    pytest.importorskip("numba", reason="the numba backend needs numba (mxarray[numba])")
    counts = _fresh("""
        import json
        import numpy as np, mxarray
        from mxarray.backends.numba import ocp_kernels as k
        q = mxarray.quantize(np.ones((4, 64), np.float32), "mx6", backend="numba")
        mxarray.dequantize(q, backend="numba")
        print(json.dumps({name: len(getattr(k, name).overloads)
                          for name in ("quantize_rows_f32", "dequantize_rows")}))
    """)
    assert counts == {"quantize_rows_f32": 0, "dequantize_rows": 0}
