"""The render worker's rests (dkvae_live.duty): a burst after a rest, a share of the time when
kept busy, on a clock the test moves."""

from __future__ import annotations

import pytest

from dkvae_live.duty import Duty

SHARE = 0.8
BURST = 0.1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def work(duty: Duty, clock: Clock, seconds: float) -> float:
    """Work `seconds` from now; the rest then owed."""
    since = clock.now
    clock.now += seconds
    return duty.owed(since)


def test_a_rested_thread_works_its_burst_on_end_and_then_rests_a_quarter_of_its_work() -> None:
    clock = Clock()
    duty = Duty(SHARE, BURST, clock)
    clock.now += 10.0  # idle
    assert work(duty, clock, 0.9 * BURST) == 0.0
    # past the burst: for each second of work, a quarter of a second of rest at 80 %
    assert work(duty, clock, 0.1 * BURST + 0.04) == pytest.approx(0.04 * (1 - SHARE) / SHARE)


def test_kept_busy_it_works_at_most_its_share_of_the_time() -> None:
    clock = Clock()
    duty = Duty(SHARE, BURST, clock)
    started, worked = clock.now, 0.0
    for _ in range(2000):  # 2 ms pieces, each followed by the rest it owes
        worked += 0.002
        owed = work(duty, clock, 0.002)
        clock.now += owed
    elapsed = clock.now - started
    assert worked <= SHARE * elapsed + BURST
    assert worked >= SHARE * elapsed - 0.01  # and rests no more than it owes


def test_a_long_idle_gives_one_burst_not_more() -> None:
    clock = Clock()
    duty = Duty(SHARE, BURST, clock)
    clock.now += 1000.0
    assert work(duty, clock, 2 * BURST) == pytest.approx(BURST * (1 - SHARE) / SHARE)


def test_a_rest_owed_and_taken_is_paid() -> None:
    clock = Clock()
    duty = Duty(SHARE, BURST, clock)
    owed = work(duty, clock, 3 * BURST)
    assert owed > 0.0
    clock.now += owed
    assert work(duty, clock, 0.0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("share", "burst"), [(0.0, 0.1), (1.0, 0.1), (0.8, -1.0)])
def test_a_share_outside_zero_to_one_or_a_negative_burst_is_refused(
    share: float, burst: float
) -> None:
    with pytest.raises(ValueError, match="share"):
        Duty(share, burst)
