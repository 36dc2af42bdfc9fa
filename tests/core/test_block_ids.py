"""``block_ids``: stochastic rounding keyed by each block's number in the whole array.

* The NumPy reference draws element (b, i) with index ``block_ids[b] * block_size + i``
  (checked against the independent model in ``tests/support/oracle.py``); the default numbering
  is unchanged; other roundings ignore the ids.
* The core hands ids only to backends whose quantize methods name the keyword; others
  are replaced by the reference, unless the user named them (NotImplementedError).
* ``x[key] = v`` on a stochastically rounded MX array gives the touched blocks the codes
  that quantizing the whole updated array with the recorded seed gives them.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from support import oracle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxarray
from mxarray import core
import mxarray.backends as registry
from mxarray.backends.base import Backend, QuantizeOptions
from mxarray.backends.numpy_backend import NumpyBackend
from support.backend_calls import qopts

OCP = tuple(mxarray.FORMATS)
STOCHASTIC = OCP + ("mx9", "mx6", "mx4")  # every built-in format with power-of-two scales
REF = NumpyBackend()


def _values(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Finite values with fractional parts at every scale."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) * np.exp2(rng.integers(-6, 6, shape))


def _rows(n: int, block_size: int, seed: int) -> np.ndarray:
    """``n >= 3`` rows of :func:`_values`, row 1 holding a NaN (a NaN block)."""
    rows = _values((n, block_size), seed)
    rows[1, 3] = np.nan
    return rows


@pytest.mark.parametrize("name", STOCHASTIC)
def test_default_numbering_is_zero_to_n(name) -> None:
    fmt = mxarray.get_format(name)
    rows = _rows(6, fmt.block_size, 1)
    plain = REF.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", 99))
    numbered = REF.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", 99, block_ids=np.arange(6, dtype=np.uint64)))
    for got, want in zip(numbered, plain, strict=True):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(STOCHASTIC), n=st.integers(1, 12), data=st.data())
def test_numbered_rows_equal_the_same_rows_of_the_whole(name, n, data) -> None:
    """Any subset of rows, in any order, quantized with their row numbers as ids, equals
    those rows of quantizing all rows at once."""
    fmt = mxarray.get_format(name)
    rows = _values((n, fmt.block_size), data.draw(st.integers(0, 2**16)))
    rows[0, -1] = np.inf  # a NaN block too
    seed = data.draw(st.integers(0, 2**64 - 1))
    picked = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    ids = np.array(picked, dtype=np.uint64)
    whole_codes, whole_scales = REF.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", seed))
    codes, scales = REF.quantize_blocks(rows[picked], qopts(fmt, "stochastic", "floor", seed, block_ids=ids))
    np.testing.assert_array_equal(codes, whole_codes[picked])
    np.testing.assert_array_equal(scales, whole_scales[picked])


@pytest.mark.parametrize("name", OCP)
def test_large_ids_match_the_oracle_with_wrapping_indices(name) -> None:
    """Ids near 2**64 / 32: the index ``id * 32 + lane`` wraps modulo 2**64."""
    fmt = mxarray.get_format(name)
    rows = _rows(3, fmt.block_size, 2)
    rows[1] = 0.75  # a finite row instead of the NaN one
    ids = np.array([2**59 - 1, 2**59, 2**63 + 5], dtype=np.uint64)
    seed = 0xDEADBEEF
    codes, scales = REF.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", seed, block_ids=ids))
    for row, block_id, got_codes, got_scale in zip(rows, ids, codes, scales, strict=True):
        first = (int(block_id) * fmt.block_size) % 2**64
        want_scale, want_codes = oracle.quantize_block(
            [float(v) for v in row], name, "stochastic", "floor", seed, first_index=first)
        assert int(got_scale) == want_scale
        assert [int(c) for c in got_codes] == want_codes


@pytest.mark.parametrize("rounding", ["even", "nearest", "toward_zero"])
def test_other_roundings_ignore_the_ids(rounding) -> None:
    fmt = mxarray.get_format("mxfp4_e2m1")
    rows = _rows(4, fmt.block_size, 3)
    ids = np.array([7, 1, 2**40, 3], dtype=np.uint64)
    plain = REF.quantize_blocks(rows, qopts(fmt, rounding, "floor", None))
    numbered = REF.quantize_blocks(rows, qopts(fmt, rounding, "floor", None, block_ids=ids))
    for got, want in zip(numbered, plain, strict=True):
        np.testing.assert_array_equal(got, want)


# -- backends with only the primitives -----------------------------------------------------------

class _Small(Backend):
    """A backend with only the primitives (the reference's, recorded): it inherits the
    fused quantize, dequantize and matmul of the base class."""

    name = "small"
    xp = np
    calls: ClassVar[list[QuantizeOptions]] = []

    def available(self) -> tuple[bool, str]:
        return True, "test double with the primitives only"

    def quantize_blocks(self, blocks, options):
        type(self).calls.append(options)
        return REF.quantize_blocks(blocks, options)

    def dequantize_blocks(self, codes, scales, options):
        return REF.dequantize_blocks(codes, scales, options)

    def pack(self, codes, fmt):
        return REF.pack(codes, fmt)

    def unpack(self, packed, fmt):
        return REF.unpack(packed, fmt)


@pytest.fixture
def small_default(monkeypatch: pytest.MonkeyPatch):
    """``_Small`` registered as the highest-priority backend, so the default picks it."""
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_global_choice", None)
    monkeypatch.setattr(_Small, "calls", [])
    registry.register_backend("small", _Small, priority=1000)
    assert mxarray.get_backend().name == "small"
    return _Small


def _chunk_case() -> tuple[np.ndarray, np.ndarray, mxarray.MXArray]:
    """Rows 1..2 of a (3, 64) array, their global block ids, and the whole array quantized."""
    x = _rows(3, 64, 5).astype(np.float32)
    x[1, 3] = 0.1
    whole = mxarray.quantize(x, "mxfp4_e2m1", rounding="stochastic", seed=5, backend="numpy")
    ids = np.arange(2, 6, dtype=np.uint64)  # rows 1, 2 hold blocks 2..5
    return x[1:], ids, whole


def test_a_backend_with_only_primitives_gets_the_ids_through_the_base_defaults(small_default):
    """The default backend lacks the fused methods: the base class's defaults run its
    primitives with the block numbers (never the NumPy reference in its place)."""
    part, ids, whole = _chunk_case()
    got = core._quantize_with_ids(part, "mxfp4_e2m1", ids, rounding="stochastic", seed=5)
    np.testing.assert_array_equal(got.packed, whole.packed[1:])
    np.testing.assert_array_equal(got.scales, whole.scales[1:])
    assert len(small_default.calls) == 1
    np.testing.assert_array_equal(small_default.calls[0].block_ids, ids)
    assert small_default.calls[0].block_ids.dtype == np.uint64


@pytest.mark.parametrize("how", ["argument", "context", "global"])
def test_a_named_backend_with_only_primitives_runs_itself(small_default, how) -> None:
    part, ids, whole = _chunk_case()
    kw = {"backend": "small"} if how == "argument" else {}
    if how == "context":
        with mxarray.use_backend("small"):
            got = core._quantize_with_ids(part, "mxfp4_e2m1", ids, rounding="stochastic", seed=5)
    else:
        if how == "global":
            mxarray.set_backend("small")
        got = core._quantize_with_ids(part, "mxfp4_e2m1", ids, rounding="stochastic", seed=5,
                                      **kw)
    np.testing.assert_array_equal(got.packed, whole.packed[1:])
    assert [o.rounding for o in small_default.calls] == ["stochastic"]


def test_ids_are_not_passed_for_deterministic_rounding(small_default) -> None:
    part, ids, _ = _chunk_case()
    got = core._quantize_with_ids(part, "mxfp4_e2m1", ids, backend="small")
    want = mxarray.quantize(part, "mxfp4_e2m1", backend="numpy")
    np.testing.assert_array_equal(got.packed, want.packed)
    assert [o.block_ids for o in small_default.calls] == [None]


def test_core_checks_the_ids() -> None:
    part, ids, _ = _chunk_case()
    with pytest.raises(ValueError, match="4 integers, one per block"):
        core._quantize_with_ids(part, "mxfp4_e2m1", ids[:3], rounding="stochastic", seed=1)
    with pytest.raises(ValueError, match="4 integers"):
        core._quantize_with_ids(part, "mxfp4_e2m1", ids.astype(np.float64),
                                rounding="stochastic", seed=1)
    with pytest.raises(ValueError, match="negative"):
        core._quantize_with_ids(part, "mxfp4_e2m1", np.array([0, 1, -1, 2]),
                                rounding="stochastic", seed=1)


def test_part_quantized_with_its_ids_equals_the_whole_on_every_backend(backend) -> None:
    """Rows 1..3 of an array, numbered as in the whole, on every backend (a backend that
    lacks the keyword or the format, named here, is refused with its name)."""
    x = _rows(4, 96, 6)
    x[1, 3] = 0.5
    for name in ("mxfp6_e2m3", "mx6"):
        per_row = 96 // mxarray.get_format(name).block_size
        ids = np.arange(per_row, 4 * per_row)
        want = mxarray.quantize(x, name, rounding="stochastic", seed=3, backend="numpy")
        try:
            got = core._quantize_with_ids(x[1:], name, ids, rounding="stochastic", seed=3,
                                          backend=backend)
        except NotImplementedError as err:
            assert backend in str(err)
            continue
        np.testing.assert_array_equal(np.asarray(got.packed), want.packed[1:])
        np.testing.assert_array_equal(np.asarray(got.scales), want.scales[1:])


# -- __setitem__ --------------------------------------------------------------------------------

def _canonical_blocks(a: np.ndarray, axis: int, block_size: int) -> np.ndarray:
    """``a`` with the block axis last, zero-padded and split: ``lead + (nb, block_size)``."""
    moved = np.moveaxis(a, axis, -1)
    pad = -moved.shape[-1] % block_size
    moved = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(0, pad)])
    return moved.reshape(moved.shape[:-1] + (-1, block_size))


def _assert_touched_blocks_match(a: mxarray.MXArray, key, value: np.ndarray, seed: int) -> None:
    """Set ``a[key] = value`` (float32); the touched blocks must equal quantizing the whole
    updated array with ``seed``; the other blocks must keep their bytes."""
    fmt, axis = a.format, a.block_axis
    before_codes = _canonical_blocks(a.codes(), axis, fmt.block_size)
    before_scales = np.moveaxis(a.scales, axis, -1)
    updated = a.dequantize(np.float64)
    updated[key] = value
    mask = np.zeros(a.shape, dtype=bool)
    mask[key] = True
    touched = _canonical_blocks(mask, axis, fmt.block_size).any(axis=-1)
    a[key] = mxarray.asarray(value)
    assert a.seed == seed and a.rounding == "stochastic"
    ref = mxarray.quantize(updated, fmt, axis=axis, rounding="stochastic", seed=seed,
                           backend="numpy")
    codes = _canonical_blocks(a.codes(), axis, fmt.block_size)
    scales = np.moveaxis(a.scales, axis, -1)
    want_codes = _canonical_blocks(ref.codes(), axis, fmt.block_size)
    np.testing.assert_array_equal(codes[touched], want_codes[touched])
    np.testing.assert_array_equal(scales[touched], np.moveaxis(ref.scales, axis, -1)[touched])
    np.testing.assert_array_equal(codes[~touched], before_codes[~touched])
    np.testing.assert_array_equal(scales[~touched], before_scales[~touched])


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(STOCHASTIC), axis=st.sampled_from([0, 1]), data=st.data())
def test_setitem_draws_the_whole_arrays_bits(name, axis, data) -> None:
    """Written values off the element grid, so their rounding uses the random bits (the
    other elements of a touched block are grid values: they round alike with any bits)."""
    bs = mxarray.get_format(name).block_size
    shape = [3, 3]
    shape[axis] = data.draw(st.integers(1, 4 * bs))
    x = _values(tuple(shape), data.draw(st.integers(0, 2**16)))
    seed = data.draw(st.integers(0, 2**64 - 1))
    a = mxarray.quantize(x, name, axis=axis, rounding="stochastic", seed=seed, backend="numpy")
    start = data.draw(st.integers(0, shape[axis] - 1))
    stop = data.draw(st.integers(start + 1, shape[axis]))
    row = data.draw(st.integers(0, 2))
    key = (row, slice(start, stop)) if axis == 1 else (slice(start, stop), row)
    value = _values((stop - start,), data.draw(st.integers(0, 2**16))).astype(np.float32)
    _assert_touched_blocks_match(a, key, value, seed)


def test_setitem_into_a_later_block_uses_its_global_number() -> None:
    """Writing block 5 of 6 must not reuse block 0's draws (the numbering before
    block_ids), which give different codes here."""
    name, seed = "mxfp4_e2m1", 21
    fmt = mxarray.get_format(name)
    a = mxarray.quantize(_values((2, 96), 7), name, rounding="stochastic", seed=seed,
                         backend="numpy")
    value = _values((32,), 8).astype(np.float32)
    rows = value[None].astype(np.float64)
    first_block_draws = REF.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", seed))[0]
    own_draws = REF.quantize_blocks(rows, qopts(fmt, "stochastic", "floor", seed, block_ids=np.array([5], dtype=np.uint64)))[0]
    assert not np.array_equal(first_block_draws, own_draws)  # the check below can fail
    _assert_touched_blocks_match(a, (1, slice(64, 96)), value, seed)
    np.testing.assert_array_equal(a.codes()[1, 64:96], own_draws[0])
