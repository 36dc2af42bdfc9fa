"""A multilayer perceptron written against the array API, with MX GEMMs.

Every operation goes through the namespace of its operands
(``xp = array_namespace(x)``), so the same code runs on NumPy arrays, mxarray dense
arrays, MX arrays (the first layer's input may be MX data) and GPU arrays.  The only
mxarray-specific step is :func:`gemm`, which quantizes both operands of a matrix
product along its reduction axis and multiplies them with the MX dot product, as in
the MX paper's training recipe (Rouhani et al. 2023, "Microscaling Data Formats for
Deep Learning"): all three GEMMs of every layer (forward, gradient with respect to the
input, gradient with respect to the weights) take MX operands, while everything else
(bias, ReLU, softmax, the optimizer and the master weights) stays in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace

import mxarray as mx
from mxarray import Format


@dataclass(frozen=True)
class Recipe:
    """The format of each operand kind in every GEMM (``None``: float32, no quantization).

    ``weight`` is the weight matrix W (forward and grad-input GEMMs), ``activation`` the
    layer input X (forward and grad-weight GEMMs), ``gradient`` the gradient dY of the
    layer output (grad-input and grad-weight GEMMs).
    """

    name: str
    weight: Format | None = None
    activation: Format | None = None
    gradient: Format | None = None

    def __post_init__(self) -> None:
        kinds = (self.weight, self.activation, self.gradient)
        if any(f is None for f in kinds) and any(f is not None for f in kinds):
            raise ValueError(f"recipe {self.name!r}: quantize every operand kind or none "
                             "(an MX GEMM needs two MX operands)")

    @classmethod
    def uniform(cls, name: str, fmt: str | Format) -> Recipe:
        """One format for weights, activations and gradients."""
        f = mx.get_format(fmt) if isinstance(fmt, str) else fmt
        return cls(name, f, f, f)

    def formats(self) -> dict[str, str]:
        """The format name of each operand kind (``"float32"`` when not quantized)."""
        return {kind: getattr(self, kind).name if getattr(self, kind) else "float32"
                for kind in ("weight", "activation", "gradient")}


FP32 = Recipe("FP32")


def gemm(a: Any, b: Any, fa: Format | None, fb: Format | None) -> Any:
    """``a @ b`` with ``a`` quantized to ``fa`` along its last axis and ``b`` to ``fb``
    along its first, both the reduction axis, multiplied by the MX dot product.

    With ``fa`` and ``fb`` both ``None`` this is the float32 ``a @ b``.  The result is a
    float32 array of ``a``'s namespace (mxarray's when ``a`` is MX data).

    Raises
    ------
    ValueError
        If exactly one of ``fa`` and ``fb`` is ``None``.
    """
    if fa is None and fb is None:
        return a @ b
    if fa is None or fb is None:
        raise ValueError("gemm: give both operand formats or neither")
    qa = mx.asarray(a, dtype=fa)                  # blocks along a's last axis
    qb = mx.asarray(b, dtype=fb, block_axis=0)    # blocks along b's first axis
    out = mx.matmul(qa, qb)                       # the MX dot product, float32
    xp = array_namespace(a)
    return out if xp is mx else xp.from_dlpack(out)


@dataclass
class State:
    """Float32 master weights and biases of each layer, with their momentum buffers."""

    weights: list[Any]
    biases: list[Any]
    velocity: list[Any]


def init_state(sizes: tuple[int, ...], seed: int, xp: Any, device: Any = None) -> State:
    """He-normal weights ``(fan_in, fan_out)`` and zero biases, drawn with NumPy's
    generator for ``seed`` and moved into ``xp`` (on ``device``, if given)."""
    rng = np.random.default_rng(seed)
    kw = {} if device is None else {"device": device}
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        weights.append(xp.asarray(w.astype(np.float32), **kw))
        biases.append(xp.zeros((fan_out,), dtype=xp.float32, **kw))
    velocity = [xp.zeros_like(p) for p in weights + biases]
    return State(weights, biases, velocity)


def forward(state: State, x: Any, recipe: Recipe) -> tuple[Any, list[Any]]:
    """The logits for inputs ``x`` (rows), and each layer's input for the backward pass.

    Weights and activations enter the GEMMs in the recipe's formats; bias and ReLU are
    float32.
    """
    inputs = []
    h = x
    last = len(state.weights) - 1
    for i, (w, b) in enumerate(zip(state.weights, state.biases)):
        inputs.append(h)
        z = gemm(h, w, recipe.activation, recipe.weight) + b
        h = z if i == last else array_namespace(z).maximum(z, 0.0)
    return h, inputs


def softmax_cross_entropy(logits: Any, onehot: Any) -> tuple[Any, Any]:
    """The mean cross-entropy of ``logits`` against ``onehot`` targets, and its
    gradient with respect to the logits."""
    xp = array_namespace(logits, onehot)
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    logp = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
    n = logits.shape[0]
    return -xp.sum(onehot * logp) / n, (xp.exp(logp) - onehot) / n


def backward(state: State, inputs: list[Any], dlogits: Any, recipe: Recipe
             ) -> list[Any]:
    """Gradients of the weights, then of the biases, for the layer ``inputs`` that
    :func:`forward` returned.

    Per layer, grad-weight ``X^T @ dY`` reduces over the batch (so ``X`` and ``dY`` are
    blocked along the batch axis) and grad-input ``dY @ W^T`` over the layer's outputs
    (``dY`` blocked along its last axis, ``W`` along its second).
    """
    xp = array_namespace(dlogits)
    grad_w, grad_b = [], []
    d = dlogits
    for i in reversed(range(len(state.weights))):
        x = inputs[i]
        grad_w.append(gemm(x.mT, d, recipe.activation, recipe.gradient))
        grad_b.append(xp.sum(d, axis=0))
        if i > 0:  # x = relu(z) of the layer below: its derivative is x > 0
            dx = gemm(d, state.weights[i].mT, recipe.gradient, recipe.weight)
            d = dx * xp.astype(x > 0, xp.float32)
    return grad_w[::-1] + grad_b[::-1]


def train_step(state: State, x: Any, onehot: Any, recipe: Recipe, lr: float,
               momentum: float) -> float:
    """One SGD step with momentum on the batch ``x``; updates ``state`` in float32 and
    returns the batch loss before the step."""
    logits, inputs = forward(state, x, recipe)
    loss, dlogits = softmax_cross_entropy(logits, onehot)
    grads = backward(state, inputs, dlogits, recipe)
    params = state.weights + state.biases
    for j, (p, g) in enumerate(zip(params, grads)):
        state.velocity[j] = momentum * state.velocity[j] + g
        params[j] = p - lr * state.velocity[j]
    n = len(state.weights)
    state.weights, state.biases = params[:n], params[n:]
    return float(loss)


def accuracy(logits: Any, labels: Any) -> float:
    """The fraction of rows whose largest logit is at the label."""
    xp = array_namespace(logits, labels)
    hits = xp.argmax(logits, axis=-1) == labels
    return float(xp.mean(xp.astype(hits, xp.float32)))


def qsnr_db(reference: Any, approx: Any) -> float:
    """Quantization signal-to-noise ratio, ``10 log10(sum ref^2 / sum (approx - ref)^2)``
    in dB.

    Raises
    ------
    ValueError
        If ``approx`` equals ``reference`` (no noise: the ratio is infinite).
    """
    xp = array_namespace(reference, approx)
    signal = float(xp.sum(reference * reference))
    noise = float(xp.sum((approx - reference) ** 2))
    if noise == 0.0:
        raise ValueError("qsnr_db: approx equals reference, the QSNR is infinite")
    return 10.0 * float(np.log10(signal / noise))
