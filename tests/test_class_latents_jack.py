"""Randomize on a live daemon draws from where the model says the pad's class lies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from harness.live import Capture, Daemon, dominant_frequency
from harness.synth_models import expected_frequency, sine_decoder

pytestmark = pytest.mark.jack

KICK_MEAN = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.5]  # dimension 0: one octave up


def test_randomize_draws_from_the_models_class_latents(
    jack: None, gm_kit: Path, tmp_path: Path
) -> None:
    where = {"kick": {"mean": KICK_MEAN, "scale": (0.02 * np.eye(8)).tolist(), "sounds": 9}}
    model = sine_decoder(
        tmp_path / "decoder.onnx", metadata={"dkvae.class_latents": json.dumps(where)}
    )
    daemon = Daemon(model, "--kit", str(gm_kit))
    try:
        daemon.wait_ready()
        capture = Capture(daemon.audio_port_pattern)
        try:
            osc = daemon.osc
            latents = []
            for amount in (0.0, 1.0, 1.0):
                osc.send("/dkvae/pad/randomize", 36, amount)
                reply = osc.receive()
                assert reply.address == "/dkvae/pad" and reply.params[0] == 36
                latents.append(reply.params[4:])
            assert latents[0] == pytest.approx(KICK_MEAN, abs=1e-4)
            for latent in latents[1:]:  # within 5 sigma of the class mean, and fresh each time
                assert latent == pytest.approx(KICK_MEAN, abs=0.1)
            assert latents[1] != latents[2]
            time.sleep(0.3)
            sound = capture.hit(lambda: osc.send("/dkvae/trigger", 36, 120))
            want = expected_frequency(latents[2][0], 0)
            assert dominant_frequency(sound[:4096], capture.rate) == pytest.approx(want, rel=0.03)
        finally:
            capture.close()
    finally:
        daemon.stop()
