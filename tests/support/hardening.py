"""Sizes of the hardening tests: short in CI, longer with ``pytest --long``.

The fuzz, large-offset, concurrency and memory tests read their example counts and
sizes from here, so one switch turns the CI run into the long (nightly-style) run:
``pytest --long`` or ``MXARRAY_LONG=1 pytest``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

LONG_FACTOR = 50
"""How many times more Hypothesis examples each fuzz test draws in the long run."""

_long_run = os.environ.get("MXARRAY_LONG", "") == "1"


def set_long(flag: bool) -> None:
    """Switch the long run on (called by conftest from ``--long``)."""
    global _long_run
    _long_run = _long_run or flag


def is_long() -> bool:
    """Whether this is the long run."""
    return _long_run


def fuzz_settings(ci_examples: int, **overrides: object) -> settings:
    """Hypothesis settings for a fuzz test: ``ci_examples`` in CI, LONG_FACTOR times that
    in the long run; no deadline (the machines are shared and noisy)."""
    kwargs: dict = {
        "max_examples": ci_examples * (LONG_FACTOR if _long_run else 1),
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                  HealthCheck.filter_too_much,
                                  HealthCheck.function_scoped_fixture],
    }
    kwargs.update(overrides)
    return settings(**kwargs)


def available_memory_bytes() -> int:
    """Memory the kernel says a new allocation can get now (MemAvailable), in bytes."""
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - every Linux kernel since 3.14 reports it


def require_memory(n_bytes: int, what: str) -> None:
    """Skip the calling test, naming the need, unless ``n_bytes`` of memory are free."""
    have = available_memory_bytes()
    if have < n_bytes:
        pytest.skip(reason=f"{what} waits for {n_bytes / 2**30:.1f} GiB of free memory "
                           f"(this machine has {have / 2**30:.1f} GiB available)")
