"""Dense arrays on devices: the device model, moves, mixing errors, and genericity.

Genericity without a GPU: the differential suite of ``test_namespace_dense`` runs again
with every input on a stand-in "cuda:0" whose arrays NumPy may not touch
(``device_stand_in``); each result must live on that device and equal, bit for bit, the
result on the CPU (which ``test_namespace_dense`` checks against array_api_strict).  A
hidden NumPy call on array data, or a host array mixed into a device computation, raises
there.  The tests marked ``gpu`` repeat the checks with real CuPy arrays.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import test_namespace_dense as suite
from support.device_stand_in import LeakError, Walled, WalledModule, stand_in
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mxarray as mx

GPU_INFO = {b.name: b for b in mx.list_backends()}["cupy"]
needs_gpu = pytest.mark.skipif(not GPU_INFO.available,
                               reason=f"needs a CUDA GPU and CuPy: {GPU_INFO.reason}")
SETTINGS = settings(max_examples=10, deadline=None)
CREATORS = {"asarray", "arange", "empty", "eye", "full", "linspace", "ones", "zeros"}


class OnDevice:
    """The mxarray namespace with ``device`` as the default of the creation functions."""

    def __init__(self, device: mx.Device) -> None:
        self.device = device

    def __getattr__(self, name: str):
        value = getattr(mx, name)
        if name not in CREATORS:
            return value

        def create(*args, **kwargs):
            kwargs.setdefault("device", self.device)
            return value(*args, **kwargs)

        return create


def _same(got, want, device, exact=True):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w, device, exact)
        return
    if not isinstance(want, mx.Array):
        both_nan = isinstance(want, float) and math.isnan(want) and math.isnan(got)
        assert got == want or both_nan
        return
    assert isinstance(got, mx.Array) and got.device == device, got.device
    assert got.dtype == want.dtype and got.shape == want.shape
    ours, ref = np.asarray(got.to_device("cpu")), np.asarray(want)
    if exact:
        np.testing.assert_array_equal(ours, ref, strict=True)
        if ref.dtype.kind == "f":
            real = ~np.isnan(ref)
            np.testing.assert_array_equal(np.signbit(ours[real]), np.signbit(ref[real]))
    else:
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=0, equal_nan=True)


def same_as_host(call, *host_arrays, device, exact=True):
    """``call(namespace, *arrays)`` on ``device`` equals the CPU result (or raises alike)."""
    ns = OnDevice(device)
    try:  # a copy: in-place calls must not change the inputs of the device run
        want = call(mx, *(mx.asarray(a, copy=True) for a in host_arrays))
    except Exception as exc:  # noqa: BLE001 - the device run must raise the same class
        with pytest.raises(type(exc)):
            call(ns, *(mx.asarray(a, device=device) for a in host_arrays))
        return
    got = call(ns, *(mx.asarray(a, device=device) for a in host_arrays))
    _same(got, want, device, exact)


# -- the stand-in wall holds --------------------------------------------------------------


def test_the_stand_in_refuses_numpy():
    """Without this the genericity tests below would prove nothing."""
    w = Walled(np.arange(3.0))
    with pytest.raises(TypeError):
        np.asarray(w)
    with pytest.raises(TypeError):
        np.sin(w)
    with pytest.raises(TypeError):
        np.concatenate([w, w])
    with pytest.raises(LeakError):
        WalledModule(np).add(w, np.ones(3))
    assert np.array_equal(WalledModule(np).add(w, w).a, [0.0, 2.0, 4.0])


# -- genericity: the differential suite on the stand-in device ---------------------------


@pytest.mark.parametrize("name", suite.UNARY)
@SETTINGS
@given(data=st.data())
def test_unary_on_a_device(name, data):
    x = data.draw(suite.arrays(data.draw(st.sampled_from(suite.DTYPES))))
    with stand_in() as device:
        same_as_host(lambda ns, a: getattr(ns, name)(a), x, device=device)


@pytest.mark.parametrize("name", suite.BINARY)
@SETTINGS
@given(data=st.data())
def test_binary_on_a_device(name, data):
    d1, d2 = data.draw(st.sampled_from(suite.DTYPES)), data.draw(st.sampled_from(suite.DTYPES))
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    x1 = data.draw(suite.arrays(d1, st.just(shapes.input_shapes[0])))
    x2 = data.draw(suite.arrays(d2, st.just(shapes.input_shapes[1])))
    with stand_in() as device:
        same_as_host(lambda ns, a, b: getattr(ns, name)(a, b), x1, x2, device=device)


@pytest.mark.parametrize("op", ["__add__", "__rsub__", "__mul__", "__truediv__", "__pow__",
                                "__lt__", "__and__", "__lshift__", "__iadd__", "__imul__"])
@SETTINGS
@given(data=st.data())
def test_operators_with_python_scalars_on_a_device(op, data):
    x = data.draw(suite.arrays(data.draw(st.sampled_from(suite.DTYPES))))
    s = data.draw(st.sampled_from([True, 0, 3, -2, 1.5, -0.0, math.inf, 1j]))
    with stand_in() as device:
        same_as_host(lambda ns, a: getattr(a, op)(s), x, device=device)


@pytest.mark.parametrize("name", suite.REDUCTIONS)
@SETTINGS
@given(data=st.data())
def test_reductions_on_a_device(name, data):
    x = data.draw(suite.arrays(data.draw(st.sampled_from(suite.DTYPES)),
                               hnp.array_shapes(min_dims=1, max_dims=3, min_side=0,
                                                max_side=4)))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    with stand_in() as device:
        same_as_host(lambda ns, a: getattr(ns, name)(a, axis=axis), x, device=device)


@pytest.mark.parametrize("name", sorted(suite.MANIPULATIONS))
@SETTINGS
@given(data=st.data())
def test_manipulation_search_and_structure_on_a_device(name, data):
    x = data.draw(suite.arrays(data.draw(st.sampled_from(suite.DTYPES)),
                               hnp.array_shapes(min_dims=1, max_dims=3, min_side=1,
                                                max_side=4)))
    with stand_in() as device:
        same_as_host(suite.MANIPULATIONS[name], x, device=device)


@pytest.mark.parametrize("name", sorted(suite.CREATION))
def test_creation_and_linalg_on_a_device(name):
    with stand_in() as device:
        same_as_host(suite.CREATION[name], device=device)


def test_setitem_and_cumulative_on_a_device():
    with stand_in() as device:
        x = mx.arange(6, dtype=mx.int32, device=device)
        x[mx.asarray([0, 2], device=device)] = 7
        x[1:3] = mx.asarray(-1, dtype=mx.int32, device=device)
        x[-1] = 5
        assert x.device == device
        assert np.asarray(x.to_device("cpu")).tolist() == [7, -1, -1, 3, 4, 5]
        y = mx.cumulative_sum(x, include_initial=True)
        assert y.device == device
        assert np.asarray(y.to_device("cpu")).tolist() == [0, 7, 6, 5, 8, 12, 17]


# -- the device model -------------------------------------------------------------------


def test_devices_listed_and_default():
    info = mx.__array_namespace_info__()
    assert info.default_device() == mx.Device("cpu")
    assert info.devices()[0] == mx.Device("cpu")
    assert all(d.name.startswith("cuda:") for d in info.devices()[1:])
    assert (len(info.devices()) > 1) == GPU_INFO.available
    with stand_in() as device:
        assert info.devices() == [mx.Device("cpu"), device]


@pytest.mark.skipif(GPU_INFO.available, reason="checks the error raised where no GPU is usable")
@pytest.mark.parametrize("make", [
    lambda: mx.zeros(3, device="cuda:0"),
    lambda: mx.asarray([1.0], device="cuda"),
    lambda: mx.arange(3, device=mx.Device("cuda:0")),
    lambda: mx.asarray([1.0]).to_device("cuda:0"),
    lambda: mx.astype(mx.asarray([1]), mx.float32, device="cuda:0"),
])
def test_a_gpu_without_one_says_why(make):
    with pytest.raises(RuntimeError, match="cuda:0 is not usable") as err:
        make()
    assert GPU_INFO.reason in str(err.value)


def test_unknown_devices_are_value_errors():
    for bad in ["gpu", "cuda:x", 3]:
        with pytest.raises(ValueError, match="unsupported device"):
            mx.zeros(2, device=bad)


def test_moves_and_device_propagation():
    with stand_in() as device:
        host = mx.asarray([[1.5, -2.0], [0.0, 3.0]], dtype=mx.float32)
        x = host.to_device(device)
        assert x.device == device and isinstance(x._x, Walled)
        assert x.to_device(device) is x
        assert "device=cuda:0" in repr(x)
        back = x.to_device("cpu")
        assert back.device == mx.Device("cpu")
        assert np.array_equal(np.asarray(back), np.asarray(host))
        for like in (mx.zeros_like, mx.ones_like, mx.empty_like):
            assert like(x).device == device
        assert mx.full_like(x, 2.0, device="cpu").device == mx.Device("cpu")
        assert mx.asarray(x).device == device
        assert mx.asarray(x, device="cpu").device == mx.Device("cpu")
        with pytest.raises(ValueError, match="copy=False"):
            mx.asarray(x, device="cpu", copy=False)
        with pytest.raises(TypeError, match="to_device"):
            np.asarray(x)


def test_mixing_devices_is_a_value_error():
    with stand_in() as device:
        h = mx.asarray([1.0, 2.0])
        d = mx.asarray([1.0, 2.0], device=device)
        i = mx.asarray([0, 1], device=device)
        q = mx.asarray(np.ones((1, 32)), dtype=mx.mxfp4_e2m1)
        mixes = [
            lambda: h + d, lambda: mx.add(d, h), lambda: mx.concat([h, d]),
            lambda: mx.stack([d, h]), lambda: mx.where(d > 0, h, d),
            lambda: mx.where(mx.asarray([True, False]), d, d), lambda: mx.matmul(h, d),
            lambda: mx.vecdot(d, h), lambda: mx.linalg.outer(h, d), lambda: h[i],
            lambda: mx.take(h, i), lambda: h.__setitem__(0, d[0]),
            lambda: mx.clip(d, h, None), lambda: mx.searchsorted(h, d),
            lambda: mx.meshgrid(h, d), lambda: mx.diff(d, prepend=h),
            lambda: mx.multiply(q[0], d[:1]),
        ]
        for mix in mixes:
            with pytest.raises(ValueError, match="different devices"):
                mix()
        assert (d + 1).device == device and (2.0 * d).device == device


def test_dlpack_stays_on_the_host_for_host_data():
    with stand_in():
        x = mx.from_dlpack(np.arange(3.0))
        assert x.device == mx.Device("cpu")
        assert mx.from_dlpack(x, device="cuda:0").device == mx.Device("cuda:0")


# -- real GPU (CuPy) --------------------------------------------------------------------


@needs_gpu
@pytest.mark.gpu
def test_cupy_arrays_are_wrapped_where_they_are():
    import cupy

    c = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)
    x = mx.asarray(c)
    assert x.device == mx.Device("cuda:0") and isinstance(x._x, cupy.ndarray)
    y = mx.from_dlpack(c)
    assert y.device == mx.Device("cuda:0")
    assert np.array_equal(np.asarray((x + y).to_device("cpu")), 2 * cupy.asnumpy(c))
    assert mx.zeros(3, device="cuda:0").device == mx.Device("cuda:0")
    with pytest.raises(ValueError, match="different devices"):
        x + mx.asarray(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="to_device"):
        np.asarray(x)
    assert mx.Device("cuda:0") in mx.__array_namespace_info__().devices()
    q = mx.asarray(np.ones((2, 32)), dtype=mx.mxfp8_e4m3, device="cuda:0")
    assert isinstance(q, mx.MXArray) and q.device == mx.Device("cuda:0")


EXACT_ON_GPU = ["add", "subtract", "multiply", "equal", "less", "maximum", "bitwise_and",
                "floor_divide"]


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("name", EXACT_ON_GPU)
@SETTINGS
@given(data=st.data())
def test_binary_on_the_gpu(name, data):
    d1, d2 = data.draw(st.sampled_from(suite.DTYPES)), data.draw(st.sampled_from(suite.DTYPES))
    x1 = data.draw(suite.arrays(d1))
    x2 = data.draw(suite.arrays(d2))
    same_as_host(lambda ns, a, b: getattr(ns, name)(a, b), x1, x2,
                 device=mx.Device("cuda:0"))


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(set(suite.MANIPULATIONS) - {"astype_i8"}))
@SETTINGS
@given(data=st.data())
def test_manipulation_on_the_gpu(name, data):
    """Everything but float-to-int8 casts (out-of-range values are undefined there)."""
    x = data.draw(suite.arrays(data.draw(st.sampled_from(suite.DTYPES)),
                               hnp.array_shapes(min_dims=1, max_dims=3, min_side=1,
                                                max_side=4)))
    exact = name not in {"vecdot", "matmul", "tensordot"}
    same_as_host(suite.MANIPULATIONS[name], x, device=mx.Device("cuda:0"), exact=exact)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["sqrt", "exp", "log", "sin", "tanh"])
def test_transcendentals_on_the_gpu_within_rounding(name):
    x = np.linspace(0.1, 4.0, 50)
    same_as_host(lambda ns, a: getattr(ns, name)(a), x, device=mx.Device("cuda:0"),
                 exact=False)
