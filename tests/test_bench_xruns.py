"""The benchmarks' comparison of busy and idle xruns (bench/harness/xruns.py)."""

from __future__ import annotations

import pytest
from harness.xruns import compare_xruns


def test_rates_are_per_second_so_windows_of_different_lengths_compare() -> None:
    # 10 xruns in 60 s is the rate of 5 in 30 s: a tie, not a busy window above idle.
    result = compare_xruns([(10, 60.0)], [(5, 30.0)])
    assert result["per_minute_busy"] == result["per_minute_idle"] == 10.0
    assert result["pairs_busy_above"] == result["pairs_busy_below"] == 0
    assert result["sign_test_p"] == 1.0 and not result["above_idle"]


def test_busy_above_idle_in_every_pair_is_not_chance() -> None:
    result = compare_xruns([(3, 1.0)] * 10, [(1, 1.0)] * 10)
    assert result["pairs_busy_above"] == 10
    assert result["sign_test_p"] == pytest.approx(1 / 1024, abs=1e-4)
    assert result["above_idle"]


def test_one_burst_does_not_outweigh_the_other_windows() -> None:
    # Xruns come in bursts: one busy window with 200 and nine with fewer than their idle
    # neighbours is not "busy above idle", though the busy total is far higher.
    busy = [(200, 30.0)] + [(1, 30.0)] * 9
    idle = [(5, 30.0)] * 10
    result = compare_xruns(busy, idle)
    assert result["xruns_busy"] > result["xruns_idle"]
    assert result["pairs_busy_above"] == 1 and result["pairs_busy_below"] == 9
    assert result["sign_test_p"] > 0.9 and not result["above_idle"]


def test_each_busy_window_needs_its_idle_neighbour() -> None:
    with pytest.raises(ValueError):
        compare_xruns([(1, 1.0), (2, 1.0)], [(1, 1.0)])
    with pytest.raises(ValueError):
        compare_xruns([], [])
