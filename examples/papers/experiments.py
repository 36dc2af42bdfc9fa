"""The experiments: MX training runs and direct-cast inference, timed and recorded.

Every function takes the array namespace ``xp`` (and a ``device``) to run in, so the
same experiment runs on NumPy, on mxarray arrays and on a GPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import array_namespace

import mxarray as mx

from .data import Split
from .mlp import FP32, Recipe, State, accuracy, forward, init_state, qsnr_db, train_step

# The built-in block formats, in the order the tables list them.
DIRECT_CAST_FORMATS = ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1",
                       "mxint8", "mx9", "mx6", "mx4", "nvfp4")


def training_recipes() -> list[Recipe]:
    """The training configurations: FP32, one format for every operand kind, and the MX
    paper's mixed MXFP4-weight recipe."""
    uniform = [("MXFP8 E4M3", "mxfp8_e4m3"), ("MXFP6 E3M2", "mxfp6_e3m2"),
               ("MXFP4", "mxfp4_e2m1"), ("MX9", "mx9"), ("MX6", "mx6"), ("MX4", "mx4")]
    fp6 = mx.get_format("mxfp6_e3m2")
    return [FP32, *(Recipe.uniform(name, fmt) for name, fmt in uniform),
            Recipe("MXFP4 W + MXFP6 E3M2 A/G", mx.get_format("mxfp4_e2m1"), fp6, fp6)]


@dataclass(frozen=True)
class Setup:
    """Network and optimizer settings shared by every run."""

    sizes: tuple[int, ...] = (64, 128, 128, 10)
    epochs: int = 30
    batch: int = 64
    lr: float = 0.05
    momentum: float = 0.9


@dataclass
class Run:
    """One training run: per-epoch mean training loss and test accuracy, the wall-clock
    and CPU seconds (all threads) the epochs took, and the wall-clock seconds of one
    first step timed apart (Numba compiles its kernels for a format on first use)."""

    recipe: Recipe
    seed: int
    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    warmup_seconds: float = 0.0
    state: State | None = None

    def record(self) -> dict[str, Any]:
        """The run as JSON-ready data (without the weights)."""
        return {"recipe": self.recipe.name, "formats": self.recipe.formats(), "seed": self.seed,
                "train_loss": self.train_loss, "test_accuracy": self.test_accuracy,
                "seconds": round(self.seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
                "warmup_seconds": round(self.warmup_seconds, 3)}


def onehot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Float32 one-hot rows for integer ``labels``."""
    return np.eye(n_classes, dtype=np.float32)[labels]


def train(split: Split, recipe: Recipe, seed: int, setup: Setup, xp: Any,
          device: Any = None) -> Run:
    """Train a fresh network with ``recipe`` on the training set in ``xp``; the seed
    fixes the initial weights and the order of the minibatches.

    The test accuracy after each epoch is measured with the recipe's forward pass
    (weights and activations in the recipe's formats).  One step on a throwaway network
    comes first, timed apart, so that compilation is not counted in ``seconds``.
    """
    kw = {} if device is None else {"device": device}
    x_train = xp.asarray(split.x_train, **kw)
    y_train = xp.asarray(onehot(split.y_train, split.n_classes), **kw)
    x_test, y_test = xp.asarray(split.x_test, **kw), xp.asarray(split.y_test, **kw)
    start = time.perf_counter()  # a first step on a throwaway network compiles kernels
    train_step(init_state(setup.sizes, seed, xp, device), x_train[:setup.batch],
               y_train[:setup.batch], recipe, setup.lr, setup.momentum)
    state = init_state(setup.sizes, seed, xp, device)
    order_rng = np.random.default_rng(seed + 1)
    run = Run(recipe, seed, state=state, warmup_seconds=time.perf_counter() - start)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(setup.epochs):
        order = order_rng.permutation(len(split.y_train))
        losses = []
        for i in range(0, len(order), setup.batch):
            idx = xp.asarray(order[i:i + setup.batch], **kw)
            losses.append(train_step(state, xp.take(x_train, idx, axis=0),
                                     xp.take(y_train, idx, axis=0), recipe, setup.lr,
                                     setup.momentum))
        run.train_loss.append(float(np.mean(losses)))
        run.test_accuracy.append(accuracy(forward(state, x_test, recipe)[0], y_test))
    run.seconds = time.perf_counter() - start
    run.cpu_seconds = time.process_time() - cpu_start
    return run


def direct_cast(state: State, x_test: Any, y_test: Any, formats: tuple[str, ...]
                ) -> dict[str, dict[str, float]]:
    """Accuracy and logit QSNR of the float32-trained ``state`` with its weights and
    activations cast to each format (no fine-tuning), next to FP32."""
    reference = forward(state, x_test, FP32)[0]
    out = {"FP32": {"accuracy": accuracy(reference, y_test), "qsnr_db": None,
                    "seconds": 0.0}}
    for name in formats:
        start = time.perf_counter()
        logits = forward(state, x_test, Recipe.uniform(name, name))[0]
        out[name] = {"accuracy": accuracy(logits, y_test),
                     "qsnr_db": qsnr_db(reference, logits),
                     "seconds": round(time.perf_counter() - start, 4)}
    return out


def same_code_three_inputs(state: State, split: Split, recipe: Recipe) -> dict[str, Any]:
    """The logits of one forward pass with the test set given as NumPy arrays, mxarray
    float32 arrays and MX data, and the largest difference from the NumPy logits.

    The MX data are MXINT8, which holds the pixel values k/16 exactly (MXFP8 E4M3 does
    not: with the OCP scale rule a block whose largest pixel is 15/16 gets the scale
    2**-9, and 15/16 = 480 * 2**-9 saturates to 448 * 2**-9 = 14/16).
    """
    np_xp = array_namespace(split.x_test)
    in_numpy = State([np_xp.asarray(np.asarray(w)) for w in state.weights],
                     [np_xp.asarray(np.asarray(b)) for b in state.biases], [])
    as_numpy = np.asarray(forward(in_numpy, split.x_test, recipe)[0])
    inputs = {"mxarray float32": mx.asarray(split.x_test),
              "MX data (mxint8)": mx.asarray(split.x_test, dtype=mx.mxint8)}
    diffs = {"numpy": 0.0}
    for kind, x in inputs.items():
        logits = np.asarray(forward(state, x, recipe)[0])
        diffs[kind] = float(np.max(np.abs(logits - as_numpy)))
    return {"recipe": recipe.name, "max_abs_difference_from_numpy": diffs}
