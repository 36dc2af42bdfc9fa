"""The MX papers example (examples/mx_papers.py): its training step, on a small subset.

Loss decreases, MX training is bit-reproducible for a seed on one backend, the NumPy
and Numba backends quantize every GEMM operand to the same bits and multiply within the
spec's dot-product bound, and the same code gives the same logits on NumPy arrays,
mxarray arrays and MX data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from array_api_compat import array_namespace

import mxarray as mx
from support import oracle

pytest.importorskip("sklearn", reason="the example's data set needs scikit-learn")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from papers import claims, experiments, mlp  # noqa: E402 - the examples folder, just added
from papers.data import Split, load_digits_split  # noqa: E402

SIZES = (64, 128, 128, 10)
MX_RECIPES = [mlp.Recipe.uniform("MXFP8 E4M3", "mxfp8_e4m3"), mlp.Recipe.uniform("MX6", "mx6")]


@pytest.fixture(scope="module")
def subset() -> Split:
    """256 training and 128 test images of the example's split."""
    s = load_digits_split()
    return Split(s.x_train[:256], s.y_train[:256], s.x_test[:128], s.y_test[:128])


def batch(subset: Split, n: int = 64) -> tuple[mx.Array, mx.Array]:
    return (mx.asarray(subset.x_train[:n]),
            mx.asarray(experiments.onehot(subset.y_train[:n], subset.n_classes)))


@pytest.mark.parametrize("recipe", [mlp.FP32, *MX_RECIPES], ids=lambda r: r.name)
def test_training_steps_lower_the_loss(subset, recipe) -> None:
    state = mlp.init_state(SIZES, 0, mx)
    x, y = batch(subset)
    losses = [mlp.train_step(state, x, y, recipe, lr=0.05, momentum=0.9) for _ in range(8)]
    assert losses[-1] < 0.75 * losses[0]
    assert all(w.dtype == mx.float32 for w in state.weights + state.biases)  # master weights


@pytest.mark.parametrize("recipe", MX_RECIPES, ids=lambda r: r.name)
def test_mx_training_is_bit_reproducible(subset, recipe) -> None:
    setup = experiments.Setup(sizes=SIZES, epochs=1)
    runs = [experiments.train(subset, recipe, 3, setup, mx) for _ in range(2)]
    assert runs[0].train_loss == runs[1].train_loss
    for a, b in zip(runs[0].state.weights, runs[1].state.weights):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    other = experiments.train(subset, recipe, 4, setup, mx)  # the seed matters
    assert other.train_loss != runs[0].train_loss


def record_gemms(monkeypatch, state: mlp.State, x, y, recipe: mlp.Recipe) -> list[tuple]:
    """The operands and formats of every GEMM of one training step."""
    seen = []

    def recording(a, b, fa, fb):
        seen.append((np.asarray(a).copy(), np.asarray(b).copy(), fa, fb))
        return real(a, b, fa, fb)

    real = mlp.gemm
    monkeypatch.setattr(mlp, "gemm", recording)
    mlp.train_step(state, x, y, recipe, lr=0.05, momentum=0.9)
    return seen


@pytest.mark.parametrize("recipe", MX_RECIPES, ids=lambda r: r.name)
def test_numpy_and_numba_backends_agree_on_every_gemm(subset, monkeypatch, recipe) -> None:
    pytest.importorskip("numba", reason="compares the Numba backend with NumPy")
    x, y = batch(subset, 32)
    gemms = record_gemms(monkeypatch, mlp.init_state(SIZES, 0, mx), x, y, recipe)
    assert len(gemms) == 3 * len(SIZES[1:]) - 1  # no grad-input GEMM for the first layer
    for a, b, fa, fb in gemms:
        results = {}
        for name in ("numpy", "numba"):
            with mx.use_backend(name):
                qa, qb = mx.quantize(a, fa, axis=-1), mx.quantize(b, fb, axis=0)
                results[name] = (qa, qb, mx.core.matmul(qa, qb))
        (qa, qb, c_numpy), (qa2, qb2, c_numba) = results["numpy"], results["numba"]
        for q, q2 in ((qa, qa2), (qb, qb2)):  # quantization is exact: the same bits
            assert np.array_equal(q.packed, q2.packed) and np.array_equal(q.scales, q2.scales)
        a64, b64 = (mx.dequantize(q, np.float64) for q in (qa, qb))
        for c in (c_numpy, c_numba):  # the first rows: the bound holds for each element
            oracle.check_dot_bound(c[:4], a64[:4], b64, exact=False)


def test_same_code_on_numpy_mxarray_and_mx_data(subset) -> None:
    """The pixels k/16 are exact in MXINT8, so all three inputs give the same bits."""
    state = mlp.init_state(SIZES, 1, mx)
    for recipe in (mlp.FP32, MX_RECIPES[0]):
        out = experiments.same_code_three_inputs(state, subset, recipe)
        assert set(out["max_abs_difference_from_numpy"].values()) == {0.0}


def test_fp32_training_is_the_same_on_numpy_and_mxarray(subset) -> None:
    setup = experiments.Setup(sizes=SIZES, epochs=1)
    np_xp = array_namespace(subset.x_train)
    on_numpy = experiments.train(subset, mlp.FP32, 0, setup, np_xp)
    on_mx = experiments.train(subset, mlp.FP32, 0, setup, mx)
    assert on_numpy.train_loss == on_mx.train_loss
    assert isinstance(on_numpy.state.weights[0], np.ndarray)
    for a, b in zip(on_numpy.state.weights, on_mx.state.weights):
        assert np.array_equal(a, np.asarray(b))


def test_direct_cast_reports_every_format(subset) -> None:
    state = mlp.init_state(SIZES, 2, mx)
    out = experiments.direct_cast(state, mx.asarray(subset.x_test), mx.asarray(subset.y_test),
                                  ("mxint8", "mxfp4_e2m1"))
    assert list(out) == ["FP32", "mxint8", "mxfp4_e2m1"]
    assert out["mxint8"]["qsnr_db"] > out["mxfp4_e2m1"]["qsnr_db"] > 0


@pytest.mark.parametrize("fmt", ["mxfp4_e2m1", "mx6", "nvfp4"])
def test_gemm_is_the_mx_product_blocked_along_the_reduction_axis(fmt) -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal((8, 64), dtype=np.float32)
    b = rng.standard_normal((64, 24), dtype=np.float32)
    f = mx.get_format(fmt)
    want = mx.core.matmul(mx.quantize(a, f, axis=-1), mx.quantize(b, f, axis=0))
    for xa, xb in ((a, b), (mx.asarray(a), mx.asarray(b))):  # NumPy and mxarray operands
        got = mlp.gemm(xa, xb, f, f)
        assert type(got) is type(xa)
        assert np.array_equal(np.asarray(got), want)


def test_gemm_and_recipe_refuse_half_quantized_products() -> None:
    with pytest.raises(ValueError, match="both operand formats or neither"):
        mlp.gemm(mx.ones((2, 32)), mx.ones((32, 2)), mx.mxint8, None)
    with pytest.raises(ValueError, match="every operand kind or none"):
        mlp.Recipe("half", weight=mx.mxint8)


def test_claim_verdicts_follow_the_numbers() -> None:
    cast = {name: {"accuracy": 0.95, "drop_pp": 0.0, "qsnr_db": 30.0}
            for name in ("FP32", *experiments.DIRECT_CAST_FORMATS)}
    cast["mxfp4_e2m1"] = {**cast["mxfp4_e2m1"], "drop_pp": 0.1}   # does not degrade
    cast["mx4"] = {**cast["mx4"], "drop_pp": 3.0, "qsnr_db": 10.0}  # degrades
    train = {"FP32": {"final_accuracy_pct": 95.0, "accuracy_std_pp": 0.1,
                      "final_train_loss": 0.1}}
    train["MX6"] = {**train["FP32"], "final_accuracy_pct": 90.0}  # does not track
    rows = {r["claim"]: r["verdict"] for r in claims.verdicts(cast, train)}
    assert rows["direct-cast MXFP4 degrades without fine-tuning"] == "does not hold"
    assert rows["MX4 degrades without fine-tuning"] == "holds"
    assert rows["training with MX6 tracks FP32"] == "does not hold"
    assert "training with MX9 tracks FP32" not in rows  # not run: no verdict
    assert rows["MX4 quantizes more accurately than MXFP4 (higher logit QSNR)"] == "does not hold"
