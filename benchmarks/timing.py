"""Timing: warm-up (first call reported separately), interleaved repetitions, median and IQR.

The machine this was written on has 2 cores shared with other processes, so absolute
times drift. Every comparison is therefore made *within one round*: each round calls every
implementation once, in turn, and ratios are taken per round (paired) before the median.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np


@dataclasses.dataclass
class Timing:
    name: str
    first_s: float  # the first call: compile (for JAX) + one run
    times_s: list[float]  # the timed repetitions, after warm-up

    @property
    def median_s(self) -> float:
        return float(np.median(self.times_s))

    @property
    def iqr_s(self) -> float:
        q1, q3 = np.percentile(self.times_s, [25, 75])
        return float(q3 - q1)

    @property
    def q1_s(self) -> float:
        return float(np.percentile(self.times_s, 25))

    @property
    def q3_s(self) -> float:
        return float(np.percentile(self.times_s, 75))

    def summary(self) -> dict:
        return {
            "name": self.name,
            "first_call_s": self.first_s,
            "median_s": self.median_s,
            "q1_s": self.q1_s,
            "q3_s": self.q3_s,
            "iqr_s": self.iqr_s,
            "reps": len(self.times_s),
        }


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()  # every callable here blocks until its result is ready (block_until_ready for JAX)
    return time.perf_counter() - t0


def measure(
    fns: dict[str, Callable[[], object]],
    *,
    budget_s: float = 3.0,
    min_reps: int = 5,
    max_reps: int = 200,
    min_reps_slow: int = 3,
) -> dict[str, Timing]:
    """Time each zero-argument callable; rounds interleave the callables.

    Each callable is called once (``first_s``: includes JIT compilation) and, unless that took
    over 2 s, once more (warm-up, not recorded). The number of rounds is ``budget_s / sum(per-call time)``,
    clipped to ``[lo, max_reps]``: ``lo`` is 10 when a round takes under 2 s, ``min_reps`` up
    to 10 s and ``min_reps_slow`` beyond (so slow, collapsed peers can't starve a cheap size of
    repetitions, and S3 in float64 stays within minutes).
    """
    first = {k: _timed(f) for k, f in fns.items()}
    # A second, untimed warm-up call; skipped for callables whose first call took over 2 s
    # (their first call is then the round-time estimate, an overestimate for JAX's compile).
    warm = {k: (_timed(f) if first[k] <= 2.0 else first[k]) for k, f in fns.items()}
    round_s = sum(warm.values())
    lo = min_reps_slow if round_s > 10.0 else (min_reps if round_s > 2.0 else max(min_reps, 10))
    reps = int(np.clip(budget_s / max(round_s, 1e-9), lo, max_reps))
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(reps):
        # Alternate the order so no implementation always runs right after the same one.
        order = names if r % 2 == 0 else names[::-1]
        for k in order:
            times[k].append(_timed(fns[k]))
    return {k: Timing(k, first[k], times[k]) for k in fns}


def paired_ratio(a: Timing, b: Timing) -> dict:
    """Median and IQR of the per-round ratio ``a / b`` (rounds are interleaved, so paired)."""
    r = np.asarray(a.times_s) / np.asarray(b.times_s)
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3)}
