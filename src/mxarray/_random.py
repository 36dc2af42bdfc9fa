"""The counter-based generator behind stochastic rounding (SplitMix64).

Element ``i`` of the canonical blocked layout (``block_number * block_size + lane``)
draws ``R_i = splitmix64(seed + (i + 1) * GAMMA) >> 32``; a value rounds away from zero
iff ``frac * 2**32 > R_i``.  The same integer recipe runs in every backend, so a seed
gives identical bits on NumPy, Numba and CUDA.
"""

from __future__ import annotations

import secrets

import numpy as np

from ._spec import load_spec

__all__ = ["GAMMA", "random_u32", "new_seed", "check_seed"]

GAMMA = np.uint64(load_spec()["rounding_modes"]["stochastic"]["gamma"])
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def random_u32(seed: int, index: np.ndarray) -> np.ndarray:
    """Return the 32-bit draws ``R_i`` for the element indices ``index`` (uint64 array)."""
    z = np.uint64(seed) + (np.asarray(index, dtype=np.uint64) + np.uint64(1)) * GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return z >> np.uint64(32)


def new_seed() -> int:
    """Draw a fresh 64-bit seed from the operating system's entropy."""
    return secrets.randbits(64)


def check_seed(seed: object) -> int:
    """Validate a user seed: an integer in ``[0, 2**64)``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer in [0, 2**64), not {type(seed).__name__}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return int(seed)
