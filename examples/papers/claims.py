"""The papers' qualitative claims, and whether each holds in this experiment.

The claims are paraphrased from Rouhani et al. 2023, "Microscaling Data Formats for
Deep Learning" (arXiv:2310.10537, "MX paper"), and Rouhani et al., "With Shared
Microexponents, A Little Shifting Goes a Long Way" (ISCA 2023, arXiv:2302.08007, "SMX
paper").  Each verdict is computed from the recorded results with the tolerances
below, fixed before the runs; none is written by hand.
"""

from __future__ import annotations

from statistics import mean, pstdev
from typing import Any

import mxarray as mx

# Direct cast: a format "matches" FP32 when the mean accuracy drop is at most MATCH_PP
# percentage points (about 3 of the 539 test images), is "close" within CLOSE_PP, and
# "degrades" when the drop exceeds MATCH_PP.
MATCH_PP = 0.5
CLOSE_PP = 2.0
# Training "tracks" FP32 when the mean final test accuracy is within this many points
# of FP32's, or within two standard deviations of FP32 over the seeds if that is wider.
TRACK_PP = 1.0

# (paper, claim, kind, subject, expectation).  kind "cast": direct-cast formats, judged
# by their accuracy drop; "train": training recipes; "qsnr": a shared-microexponent
# format (first) against the MX formats of about the same width (the others).
# Expectation "none" marks a configuration the papers make no claim about: its row
# reports what happened.
CLAIMS: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    ("MX", "direct-cast MXINT8 matches FP32", "cast", ("mxint8",), "match"),
    ("MX", "direct-cast MXFP8 (E4M3, E5M2) matches FP32", "cast",
     ("mxfp8_e4m3", "mxfp8_e5m2"), "match"),
    ("MX", "direct-cast MXFP6 (E3M2, E2M3) comes close to FP32", "cast",
     ("mxfp6_e3m2", "mxfp6_e2m3"), "close"),
    ("MX", "direct-cast MXFP4 degrades without fine-tuning", "cast", ("mxfp4_e2m1",),
     "degrade"),
    ("MX", "training with MXFP8 E4M3 tracks FP32", "train", ("MXFP8 E4M3",), "track"),
    ("MX", "training with MXFP6 E3M2 tracks FP32", "train", ("MXFP6 E3M2",), "track"),
    ("MX", "training with MXFP4 weights and MXFP6 activations and gradients comes close "
     "to FP32", "train", ("MXFP4 W + MXFP6 E3M2 A/G",), "track"),
    ("—", "all-MXFP4 training (not claimed: the MX paper pairs MXFP4 weights with MXFP6 "
     "activations and gradients)", "train", ("MXFP4",), "none"),
    ("—", "all-MX4 training (not claimed: the SMX paper uses MX4 for inference)", "train",
     ("MX4",), "none"),
    ("SMX", "MX9 is a drop-in replacement for FP32: direct cast matches", "cast", ("mx9",),
     "match"),
    ("SMX", "MX6 comes close to FP32 in direct cast", "cast", ("mx6",), "close"),
    ("SMX", "MX4 degrades without fine-tuning", "cast", ("mx4",), "degrade"),
    ("SMX", "training with MX9 tracks FP32", "train", ("MX9",), "track"),
    ("SMX", "training with MX6 tracks FP32", "train", ("MX6",), "track"),
    ("SMX", "MX9 quantizes more accurately than the 8-bit MX formats (higher logit QSNR)",
     "qsnr", ("mx9", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8"), "higher"),
    ("SMX", "MX6 quantizes more accurately than MXFP6 (higher logit QSNR)", "qsnr",
     ("mx6", "mxfp6_e3m2", "mxfp6_e2m3"), "higher"),
    ("SMX", "MX4 quantizes more accurately than MXFP4 (higher logit QSNR)", "qsnr",
     ("mx4", "mxfp4_e2m1"), "higher"),
)


def summarize_cast(casts: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean accuracy, accuracy drop (percentage points) and QSNR of each format over the
    seeds' direct-cast results (QSNR ``None`` for FP32 itself)."""
    out = {}
    for name in casts[0]:
        acc = [c[name]["accuracy"] for c in casts]
        drop = [100 * (c["FP32"]["accuracy"] - c[name]["accuracy"]) for c in casts]
        snr = None if casts[0][name]["qsnr_db"] is None else mean(
            c[name]["qsnr_db"] for c in casts)
        out[name] = {"accuracy": mean(acc), "drop_pp": mean(drop), "qsnr_db": snr}
    return out


def summarize_training(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per recipe: mean and spread of the final test accuracy, mean final training loss,
    and mean wall-clock and CPU seconds per run."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["recipe"] for r in runs):
        mine = [r for r in runs if r["recipe"] == name]
        final = [100 * r["test_accuracy"][-1] for r in mine]
        out[name] = {"final_accuracy_pct": mean(final), "accuracy_std_pp": pstdev(final),
                     "final_train_loss": mean(r["train_loss"][-1] for r in mine),
                     "seconds_per_run": mean(r["seconds"] for r in mine),
                     "cpu_seconds_per_run": mean(r["cpu_seconds"] for r in mine),
                     "seeds": len(mine)}
    return out


def _cast_verdict(cast: dict[str, dict[str, float]], subjects: tuple[str, ...],
                  expect: str) -> tuple[bool, str]:
    drops = {s: cast[s]["drop_pp"] for s in subjects}
    result = ", ".join(f"{s}: {cast[s]['accuracy'] * 100:.2f} % "
                       f"({0.0 - d:+.2f} pp), QSNR {cast[s]['qsnr_db']:.1f} dB"
                       for s, d in drops.items())
    if expect == "match":
        holds = all(abs(d) <= MATCH_PP for d in drops.values())
    elif expect == "close":
        holds = all(d <= CLOSE_PP for d in drops.values())
    else:
        holds = all(d > MATCH_PP for d in drops.values())
    return holds, result


def _train_verdict(train: dict[str, dict[str, float]], subjects: tuple[str, ...]
                   ) -> tuple[bool, str]:
    base = train["FP32"]
    tolerance = max(TRACK_PP, 2 * base["accuracy_std_pp"])
    parts, holds = [], True
    for s in subjects:
        gap = base["final_accuracy_pct"] - train[s]["final_accuracy_pct"]
        holds = holds and gap <= tolerance
        parts.append(f"{s}: {train[s]['final_accuracy_pct']:.2f} % vs FP32 "
                     f"{base['final_accuracy_pct']:.2f} % ({0.0 - gap:+.2f} pp; "
                     f"tolerance {tolerance:.2f} pp), final loss "
                     f"{train[s]['final_train_loss']:.4f} vs {base['final_train_loss']:.4f}")
    return holds, "; ".join(parts)


def _qsnr_verdict(cast: dict[str, dict[str, float]], subjects: tuple[str, ...]
                  ) -> tuple[bool, str]:
    first, *others = subjects
    holds = all(cast[first]["qsnr_db"] > cast[o]["qsnr_db"] for o in others)
    result = ", ".join(f"{s} ({mx.get_format(s).bits_per_element:g} bits) "
                       f"{cast[s]['qsnr_db']:.1f} dB" for s in subjects)
    return holds, result


def verdicts(cast: dict[str, dict[str, float]], train: dict[str, dict[str, float]]
             ) -> list[dict[str, str]]:
    """One row per claim: paper, claim, measured result, and "holds" or "does not
    hold" (claims about recipes that were not run are left out; configurations without
    a claim say whether they track FP32)."""
    rows = []
    for paper, claim, kind, subjects, expect in CLAIMS:
        if kind == "train":
            if not all(s in train for s in subjects):
                continue
            holds, result = _train_verdict(train, subjects)
            if expect == "none":
                rows.append({"paper": paper, "claim": claim, "result": result,
                             "verdict": "no claim: " + ("tracks FP32" if holds
                                                        else "does not track FP32")})
                continue
        elif kind == "cast":
            holds, result = _cast_verdict(cast, subjects, expect)
        else:
            holds, result = _qsnr_verdict(cast, subjects)
        rows.append({"paper": paper, "claim": claim, "result": result,
                     "verdict": "holds" if holds else "does not hold"})
    return rows
