"""MXArray storage on the host or a GPU: device reporting, moves and backend choice.

What can run without a GPU runs everywhere; the round trips through GPU memory need a
CUDA GPU and CuPy and skip with that reason otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

import mxarray
from mxarray._device_arrays import parse_device

GPU = {b.name: b for b in mxarray.list_backends()}["cupy"]
needs_gpu = pytest.mark.skipif(not GPU.available, reason=f"needs a CUDA GPU and CuPy: {GPU.reason}")


@pytest.mark.parametrize(
    "spec, name",
    [(None, "cpu"), ("cpu", "cpu"), ("cuda", "cuda:0"), ("cuda:3", "cuda:3"),
     (mxarray.Device("cuda:1"), "cuda:1"), (mxarray.Device("cpu"), "cpu")],
)
def test_device_specs_normalise(spec, name) -> None:
    assert parse_device(spec) == name


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", 0, "tpu:0"])
def test_unknown_devices_are_value_errors(spec) -> None:
    a = mxarray.quantize(np.ones(32), "mxfp4_e2m1")
    with pytest.raises(ValueError, match="unsupported device"):
        a.to_device(spec)


def test_host_arrays_report_the_cpu_and_stay_put() -> None:
    a = mxarray.quantize(np.ones(32), "mxfp4_e2m1")
    assert a.device == mxarray.Device("cpu")
    assert a.to_device("cpu") is a


@pytest.mark.skipif(GPU.available, reason="checks the error raised where no GPU is usable")
def test_moving_to_a_gpu_without_one_says_why() -> None:
    a = mxarray.quantize(np.ones(32), "mxfp4_e2m1")
    with pytest.raises(RuntimeError, match="cupy"):
        a.to_device("cuda")


def test_host_only_backend_refuses_gpu_data() -> None:
    """A host backend named for GPU data is an error, not a silent copy over the bus."""
    device = type("Device", (), {"id": 0})()
    fake_gpu_array = type("ndarray", (), {"__module__": "cupy._core.core", "device": device})()
    with pytest.raises(TypeError, match="works on host arrays"):
        mxarray.core._resolve_backend("numpy", fake_gpu_array)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("name", list(mxarray.FORMATS))
def test_gpu_round_trip_keeps_every_byte(name) -> None:
    import cupy

    x = np.random.default_rng(3).standard_normal((5, 70)).astype(np.float32)
    host = mxarray.quantize(x, name, backend="numpy")
    on_gpu = host.to_device("cuda")
    assert on_gpu.device == mxarray.Device("cuda:0")
    assert isinstance(on_gpu.packed, cupy.ndarray)
    back = on_gpu.to_device("cpu")
    assert np.array_equal(back.packed, host.packed) and np.array_equal(back.scales, host.scales)
    # GPU data pick the CuPy backend by default, and give the reference's bits.
    q = mxarray.quantize(cupy.asarray(x), name)
    assert isinstance(q.packed, cupy.ndarray)
    assert np.array_equal(q.packed.get(), host.packed)
    assert np.array_equal(cupy.asnumpy(q.codes()), host.codes())
    values = mxarray.dequantize(q)
    assert isinstance(values, cupy.ndarray)
    assert np.array_equal(values.get(), mxarray.dequantize(host))
    with pytest.raises(TypeError, match="implicit conversion"):
        np.asarray(q)
