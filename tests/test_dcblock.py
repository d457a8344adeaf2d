"""The render worker's DC blocker: the exact first-order recursion, fast enough for the worker."""

from __future__ import annotations

import numpy as np
import pytest

from dkvae_live.dcblock import dc_block
from dkvae_live.renderer import SILENCE, prepare_sound

RATE = 44100


def recursion(x: np.ndarray, cutoff: float) -> np.ndarray:
    r = 1.0 - 2.0 * np.pi * cutoff / RATE
    y = np.zeros(len(x))
    prev_x = prev_y = 0.0
    for n, v in enumerate(x):
        prev_y = v - prev_x + r * prev_y
        prev_x = v
        y[n] = prev_y
    return y


@pytest.mark.parametrize("length", [1, 100, 4096, 4097, 10000])
def test_it_is_the_first_order_recursion_across_block_edges(length: int) -> None:
    x = np.random.default_rng(length).normal(0.2, 0.5, length)
    np.testing.assert_allclose(dc_block(x, RATE), recursion(x, 20.0), atol=2e-6)
    batch = np.stack([x, -x])
    np.testing.assert_allclose(dc_block(batch, RATE)[1], -recursion(x, 20.0), atol=2e-6)


def test_it_removes_an_offset_and_passes_the_audible_band() -> None:
    t = np.arange(RATE) / RATE
    offset = dc_block(np.full(RATE, 0.01), RATE)
    assert abs(offset[-1]) < 1e-6  # the offset is gone by the end of the second

    def gain_db(freq: float) -> float:
        y = dc_block(np.sin(2 * np.pi * freq * t), RATE)[RATE // 2 :]
        return 20 * np.log10(np.sqrt(2 * np.mean(y**2)))

    assert gain_db(1000.0) == pytest.approx(0.0, abs=0.02)
    assert gain_db(100.0) == pytest.approx(0.0, abs=0.2)
    assert gain_db(20.0) == pytest.approx(-3.0, abs=0.3)
    assert gain_db(4.0) < -13.0


def test_a_sound_whose_tail_is_only_an_offset_is_trimmed_where_the_sound_ends() -> None:
    t = np.arange(RATE) / RATE
    sound = (0.5 * np.sin(2 * np.pi * 200 * t) * np.exp(-t / 0.02) + 0.003).astype(np.float32)
    prepared = prepare_sound(sound, RATE, RATE)
    assert prepared is not None
    # the decay falls under the render worker's silence at about 0.17 s; the offset alone
    # would have kept the voice playing the whole second
    assert len(prepared) < 0.3 * RATE
    assert np.max(np.abs(prepared[-100:])) < 10 * SILENCE
