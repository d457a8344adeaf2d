"""Xruns of busy windows against idle ones, judged on their pairs: the benchmarks (fuzz, soak)
report it, and tests/test_bench_xruns.py holds it to what it claims."""

from __future__ import annotations

import math
from typing import Any


def compare_xruns(busy: list[tuple[int, float]], idle: list[tuple[int, float]]) -> dict[str, Any]:
    """Xruns of busy windows against the idle windows taken between them: (xruns, seconds) per
    window, the i-th idle window next to the i-th busy one.

    On a shared VM the idle rate moves by a factor of 5 within minutes, so a baseline taken once
    says little; interleaved windows share the machine's noise. Xruns come in bursts, so the
    test is on the pairs, not on the counts: a one-sided sign test of "the busy window's rate is
    above its idle neighbour's" (pairs with equal rates left out). `above_idle` is True when that
    is unlikely by chance (p < 0.05)."""
    if len(busy) != len(idle) or not busy:
        raise ValueError("need one idle window per busy window, and at least one")

    def per_minute(windows: list[tuple[int, float]]) -> float:
        seconds = sum(s for _, s in windows)
        return 60.0 * sum(x for x, _ in windows) / seconds if seconds > 0 else 0.0

    above = sum(1 for (bx, bs), (ix, is_) in zip(busy, idle, strict=True) if bx * is_ > ix * bs)
    below = sum(1 for (bx, bs), (ix, is_) in zip(busy, idle, strict=True) if bx * is_ < ix * bs)
    n = above + below
    p = sum(math.comb(n, k) for k in range(above, n + 1)) / 2**n if n else 1.0
    return {
        "windows": len(busy),
        "xruns_busy": sum(x for x, _ in busy),
        "xruns_idle": sum(x for x, _ in idle),
        "seconds_busy": round(sum(s for _, s in busy), 1),
        "seconds_idle": round(sum(s for _, s in idle), 1),
        "per_minute_busy": round(per_minute(busy), 1),
        "per_minute_idle": round(per_minute(idle), 1),
        "pairs_busy_above": above,
        "pairs_busy_below": below,
        "sign_test_p": round(p, 4),
        "above_idle": p < 0.05,
    }
