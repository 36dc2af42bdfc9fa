"""The bfloat16 matmul path (:mod:`mxarray.backends.numba.bf16`).

The window arithmetic runs everywhere; the kernels need a CPU with AVX512-BF16.  The
hardware facts spec/mx.toml's [dot_bf16_path] states (order of the accumulation,
subnormal inputs and results flushed) are checked on the instruction itself, and every
product within the window is checked against the bound on adversarial data: scales at
the window's edges, cancellation, NaN blocks, K over several panels.
"""

from __future__ import annotations

import numpy as np
import pytest

import mxarray
from mxarray.backends.numba import bf16 as bf
from mxarray.backends.base import DequantizeOptions, MatmulOperand
from mxarray.backends.cupy_backend import spec_bound_violations
from mxarray.formats import BLOCK_FORMATS, FORMATS, get_format

HAVE_BF16, WHY = bf.bf16_gemm_available()
needs_bf16 = pytest.mark.skipif(not HAVE_BF16, reason=f"needs a CPU with AVX512-BF16 ({WHY})")
REF = mxarray.get_backend("numpy")
ALL_FORMATS = sorted(set(FORMATS) | set(BLOCK_FORMATS))


def _operand(x: np.ndarray, fmt_name: str) -> tuple[MatmulOperand, np.ndarray, np.ndarray]:
    """``x`` (rows, K) quantized along K by the reference: the batch-1 operand, its codes
    ``(1, rows, KB, block_size)`` and scales ``(1, rows, KB)``."""
    q = mxarray.quantize(x, fmt_name, backend="numpy")
    fmt = q.format
    packed = np.asarray(q.packed).reshape(1, x.shape[0], -1)
    scales = np.asarray(q.scales).reshape(1, x.shape[0], -1)
    codes = REF.unpack(packed, fmt).reshape(scales.shape + (fmt.block_size,))
    return MatmulOperand(packed, scales, fmt, q.tensor_scale), codes, scales


def _violations(got, a, b) -> list[str]:
    (op_a, ac, as_), (op_b, bc, bs) = a, b
    return spec_bound_violations(got, ac, as_, op_a.fmt, bc, bs, op_b.fmt,
                                 a_tensor_scale=op_a.tensor_scale,
                                 b_tensor_scale=op_b.tensor_scale)


def _float32(x: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bits."""
    return (np.asarray(x, dtype=np.uint32) << 16).view(np.float32)


# -- the window (no hardware needed) -----------------------------------------------------

def _uniform(fmt_name: str, rows: int, blocks: int, x: int) -> MatmulOperand:
    """An operand whose every block has scale ``2**x`` (codes do not matter to the window)."""
    fmt = get_format(fmt_name)
    packed = np.zeros((1, rows, blocks * fmt.bytes_per_block), dtype=np.uint8)
    scales = np.full((1, rows, blocks), x + fmt.scale.bias, dtype=np.uint8)
    return MatmulOperand(packed, scales, fmt, None)


@pytest.mark.parametrize(("x", "fits"), [(-54, True), (-55, False), (52, True), (53, False)])
def test_window_edges_by_hand(x, fits) -> None:
    # E4M3 values have lowest bit 2**-9 and highest 2**8 (448): with every scale 2**x
    # a product's lowest bit is 2**(2x - 18) >= 2**-126 iff x >= -54, and a sum of 32
    # products stays below 2**(2(x + 8) + 1 + 5) <= 2**127 iff x <= 52.
    a = _uniform("mxfp8_e4m3", 2, 1, x)
    assert bf.bf16_fits(a, a) is fits


def test_window_checks_each_value_and_nan_scales() -> None:
    # a value below bfloat16's normal range (2**-9 * 2**-118) fails even when the
    # other operand's products would lift it; an operand of only NaN scales leaves the
    # other's values to decide
    low, high = _uniform("mxfp8_e4m3", 2, 1, -118), _uniform("mxfp8_e4m3", 2, 1, 100)
    assert not bf.bf16_fits(low, high)
    nan = _uniform("mxfp8_e4m3", 2, 1, 0)
    nan.scales[...] = nan.fmt.scale.nan_code
    assert bf.bf16_fits(nan, _uniform("mxfp8_e4m3", 2, 1, 10))
    assert not bf.bf16_fits(nan, low)


def test_outside_the_window_raises() -> None:
    a = _uniform("mxfp4_e2m1", 2, 1, -126)
    with pytest.raises(ValueError, match="window"):
        bf.matmul_bf16(a, a)


# -- the instruction's rules (spec/mx.toml [dot_bf16_path]) ------------------------------

def _dot(a: list[float], b: list[float]) -> float:
    bits = [bf._bits(np.array([v], dtype=np.float32)) for v in (a, b)]
    return float(bf.gemm_bf16(*bits)[0, 0])


@needs_bf16
def test_pairs_accumulate_high_element_first() -> None:
    # pair (k2, k3) on an accumulator of 2**24: k3's product first gives
    # (2**24 + 1) - 2**24 = 0 (the 1 is lost to rounding); k2's first, or the pair
    # fused, would give 1
    assert _dot([0.0, 2.0**24, -(2.0**24), 1.0], [1.0, 1.0, 1.0, 1.0]) == 0.0


@needs_bf16
def test_subnormal_results_and_inputs_are_flushed() -> None:
    assert _dot([2.0**-70, 0.0], [2.0**-70, 0.0]) == 0.0  # 2**-140: a float32 subnormal
    assert _dot([2.0**-63, -1.5 * 2.0**-63], [2.0**-63, 2.0**-63]) == 0.0  # sum 2**-127
    subnormal = np.array([[1, 0]], dtype=np.uint16)  # bfloat16 2**-133
    big = bf._bits(np.array([[2.0**100, 0.0]], dtype=np.float32))
    assert bf.gemm_bf16(subnormal, big)[0, 0] == 0.0  # exact: 2**-33


@needs_bf16
@pytest.mark.parametrize(("m", "n", "k"), [(1, 1, 1), (9, 33, 257), (17, 40, 600)])
def test_gemm_exact_on_small_integers(m, n, k) -> None:
    # every product and partial sum is an integer below 2**24: exact in any order
    rng = np.random.default_rng(k)
    a = rng.integers(-8, 9, (m, k)).astype(np.float32)
    b = rng.integers(-8, 9, (n, k)).astype(np.float32)
    assert np.array_equal(bf.gemm_bf16(bf._bits(a), bf._bits(b)), a @ b.T)


# -- decoding ----------------------------------------------------------------------------

@needs_bf16
@pytest.mark.parametrize("name", ALL_FORMATS)
def test_decode_panel_is_exact(name) -> None:
    # every code (NaN and Inf ones included) of a format with random in-window scales,
    # decoded from inside a block with an odd width, equals the reference's values
    fmt = get_format(name)
    rng = np.random.default_rng(len(name))
    rows, blocks = 11, 4
    codes = rng.integers(0, fmt.decode_table.size, (rows, blocks * fmt.block_size))
    codes[0, : fmt.decode_table.size] = np.arange(fmt.decode_table.size)[: codes.shape[1]]
    if fmt.scale.kind == "ue4m3":
        scales = rng.integers(0, fmt.scale.nan_code + 1, (rows, blocks))
    else:
        scales = rng.integers(fmt.scale.bias - 100, fmt.scale.bias + 100, (rows, blocks))
        scales[1, 1] = fmt.scale.nan_code
    codes = codes.astype(fmt.code_dtype)
    scales = scales.astype(np.uint8)
    packed = REF.pack(codes, fmt)
    codes = REF.unpack(packed, fmt)  # one microexponent per sub-block, as stored
    e0, width = fmt.block_size // 2 + 1, 2 * fmt.block_size + 3
    out = np.full((2, (width + 1) // 2, 8), 0xDEADBEEF, dtype=np.uint32)
    dec = bf._Decoder(MatmulOperand(packed[None], scales[None], fmt, None))
    dec.filler(0)(e0, width, out)
    tensor_scale = np.float32(1.0) if fmt.tensor_scale != "none" else None
    options = DequantizeOptions(fmt, np.dtype(np.float64), tensor_scale)
    want = REF.dequantize_blocks(codes.reshape(-1, fmt.block_size), scales.reshape(-1), options)
    want = want.reshape(rows, -1)[:, e0: e0 + width].astype(np.float32)
    assert not (want.view(np.uint32) & 0xFFFF).any()  # exact in bfloat16
    halves = out.transpose(0, 2, 1).reshape(16, -1).view(np.uint16).reshape(16, -1)
    got = _float32(halves)
    np.testing.assert_array_equal(got[:rows, :width], want)  # NaN where want is NaN
    assert not got[rows:].any() and (width % 2 == 0 or not got[:, width].any())


# -- the product against the bound --------------------------------------------------------

PAIRS = [(f, f) for f in FORMATS] + [
    ("mxfp8_e4m3", "mxfp4_e2m1"), ("mxint8", "mxfp6_e2m3"), ("mx9", "mxfp8_e4m3"),
    ("mx6", "mx6"), ("mx4", "mxfp4_e2m1"), ("nvfp4", "nvfp4"), ("nvfp4", "mxfp8_e5m2"),
]


def _data(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    """Values spread over 2**-12 .. 2**12 by row and block, with cancellation: the
    second half of K negates the first (a block at a time), so exact sums are small
    against their terms."""
    x = rng.standard_normal((rows, k // 2)) * 2.0 ** rng.integers(-12, 13, (rows, 1))
    x *= 2.0 ** rng.integers(-4, 5, (1, k // 2))
    return np.concatenate([x, -x * rng.choice([1, 1, 1, 0.5], (1, k // 2))], axis=1)


def _shifted(fa: str, fb: str, xa: np.ndarray, xb: np.ndarray, sa: int, sb: int):
    """Both operands of ``xa * 2**(t sa)`` and ``xb * 2**(t sb)`` for the largest ``t``
    whose product is still inside the window: scales at its edge."""
    best = None
    for t in range(0, 200 if sa or sb else 1):
        a, b = _operand(xa * 2.0 ** (t * sa), fa), _operand(xb * 2.0 ** (t * sb), fb)
        if not bf.bf16_fits(a[0], b[0]):
            break
        best = a, b
    assert best is not None
    return best


@needs_bf16
@pytest.mark.parametrize(("fa", "fb"), PAIRS)
@pytest.mark.parametrize(("sa", "sb"), [(0, 0), (-1, -1), (1, 1), (-1, 1)])
def test_matmul_within_the_bound(fa, fb, sa, sb) -> None:
    rng = np.random.default_rng([sum(map(ord, fa + fb)), sa + 1, sb + 1])
    m, n, k = 19, 37, 576  # K over three panels; edge tiles in M and N
    a, b = _shifted(fa, fb, _data(rng, m, k), _data(rng, n, k), sa, sb)
    got = bf.matmul_bf16(a[0], b[0])
    assert got.shape == (1, m, n) and got.dtype == np.float32
    assert _violations(got[0], a, b) == []


@needs_bf16
def test_nan_blocks_and_batches() -> None:
    rng = np.random.default_rng(3)
    xa, xb = rng.standard_normal((2, 5, 96)), rng.standard_normal((2, 7, 96))
    xa[1, 3, 40] = np.nan  # one block of row 3 of batch item 1: its E8M0 scale is NaN
    a = [_operand(x, "mxfp8_e4m3") for x in xa]
    b = [_operand(x, "mx6") for x in xb]
    stack = [MatmulOperand(np.concatenate([o[0].packed for o in ops]),
                           np.concatenate([o[0].scales for o in ops]), ops[0][0].fmt, None)
             for ops in (a, b)]
    got = bf.matmul_bf16(*stack)
    assert np.isnan(got[1, 3]).all() and not np.isnan(np.delete(got[1], 3, axis=0)).any()
    for i in range(2):
        assert _violations(got[i], a[i], b[i]) == []


@needs_bf16
def test_matmul_agrees_with_the_float32_panel_path_on_exact_sums() -> None:
    # small codes and K: every partial sum is exact in float32 on both paths
    rng = np.random.default_rng(11)
    xa, xb = rng.integers(-6, 7, (24, 64)) / 4.0, rng.integers(-6, 7, (40, 64)) / 2.0
    a = mxarray.quantize(xa, "mxfp8_e4m3", backend="numpy")
    b = mxarray.quantize(xb.T, "mxfp4_e2m1", axis=0, backend="numpy")
    ops = [_operand(xa, "mxfp8_e4m3")[0], _operand(xb, "mxfp4_e2m1")[0]]
    want = np.asarray(mxarray.matmul(a, b, backend="numpy"))
    assert np.array_equal(bf.matmul_bf16(*ops)[0], want)


@needs_bf16
@pytest.mark.parametrize(("batch", "m", "n", "kb"), [(0, 2, 3, 1), (1, 0, 3, 1), (2, 3, 0, 1),
                                                     (1, 2, 3, 0)])
def test_empty_dimensions(batch, m, n, kb) -> None:
    fmt = get_format("mxfp8_e4m3")

    def op(rows: int) -> MatmulOperand:
        return MatmulOperand(np.zeros((batch, rows, kb * fmt.bytes_per_block), np.uint8),
                             np.full((batch, rows, kb), fmt.scale.bias, np.uint8), fmt, None)

    got = bf.matmul_bf16(op(m), op(n))
    assert got.shape == (batch, m, n) and got.dtype == np.float32 and not got.any()


NUMBA_PATHS = type(mxarray.get_backend("numba")).matmul_paths


def test_default_path_follows_the_cpu() -> None:
    """bf16 first (the default) exactly where the CPU has AVX512-BF16."""
    assert sorted(NUMBA_PATHS) == ["bf16", "float32-panels"]
    assert NUMBA_PATHS[0] == ("bf16" if bf.bf16_cpu()[0] else "float32-panels")


@needs_bf16
def test_paths_are_named_and_forceable() -> None:
    assert NUMBA_PATHS == ("bf16", "float32-panels")  # the default first: this CPU has it
    rng = np.random.default_rng(4)
    xa, xb = rng.standard_normal((2, 9, 200)), rng.standard_normal((200, 21))
    a = mxarray.quantize(xa, "mxfp8_e4m3", backend="numpy")
    b = mxarray.quantize(xb, "mx6", axis=0, backend="numpy")
    default = mxarray.core.matmul(a, b, backend="numba")
    forced = mxarray.core.matmul(a, b, backend="numba", path="bf16")
    ops = (_operand(xa.reshape(18, 200), "mxfp8_e4m3")[0], _operand(xb.T, "mx6")[0])
    direct = bf.matmul_bf16(*ops)[0].reshape(2, 9, 21)
    assert np.array_equal(forced, direct)
    panels = mxarray.core.matmul(a, b, backend="numba", path="float32-panels")
    assert np.array_equal(default, forced)
    da, db = mxarray.dequantize(a, np.float64), mxarray.dequantize(b, np.float64)
    exact = da @ db  # float64: within 200 * 2**-53 of the exact sums
    bound = (200 + 3) * 2.0**-24 * (np.abs(da) @ np.abs(db))
    for got in (forced, panels):
        assert (np.abs(np.asarray(got, np.float64) - exact) <= bound).all()


def test_refuses_a_cpu_without_the_instruction(monkeypatch) -> None:
    # on such a CPU LLVM cannot compile the kernel: a clear error instead
    monkeypatch.setattr(bf, "bf16_cpu", lambda: (False, "no AVX512-BF16"))
    bits = np.zeros((2, 4), dtype=np.uint16)
    with pytest.raises(RuntimeError, match="no AVX512-BF16"):
        bf.gemm_bf16(bits, bits)
