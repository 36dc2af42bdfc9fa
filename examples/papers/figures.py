"""The figures: direct-cast accuracy and QSNR per format, and training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_direct_cast(cast: dict[str, dict[str, float]], path: Path) -> None:
    """Bars of the mean test accuracy and logit QSNR of every format (FP32 first)."""
    plt = _pyplot()
    names = list(cast)
    fig, (ax_acc, ax_snr) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=90)
    ax_acc.bar(names, [100 * cast[n]["accuracy"] for n in names], color="tab:blue")
    low = min(100 * cast[n]["accuracy"] for n in names)
    ax_acc.set_ylim(max(0.0, low - 3.0), 100.0)
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("direct cast: accuracy")
    quantized = names[1:]  # FP32's QSNR is infinite
    ax_snr.bar(quantized, [cast[n]["qsnr_db"] for n in quantized], color="tab:orange")
    ax_snr.set_ylabel("logit QSNR (dB)")
    ax_snr.set_title("direct cast: logit QSNR vs FP32")
    for ax in (ax_acc, ax_snr):
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_training(runs: list[dict[str, Any]], path: Path) -> None:
    """Training loss (log scale) and test accuracy per epoch, the mean over seeds of
    each recipe, with the range over seeds shaded."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=90)
    for name in dict.fromkeys(r["recipe"] for r in runs):
        mine = [r for r in runs if r["recipe"] == name]
        for ax, key, scale in ((ax_loss, "train_loss", 1.0), (ax_acc, "test_accuracy", 100.0)):
            curves = scale * np.array([r[key] for r in mine])
            epochs = np.arange(1, curves.shape[1] + 1)
            line, = ax.plot(epochs, curves.mean(axis=0), label=name, lw=1.3)
            ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0),
                            color=line.get_color(), alpha=0.15, lw=0)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_ylim(85, 100)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
