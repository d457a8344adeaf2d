"""Hostile input at volume against a running daemon: it keeps playing, counts what it drops,
and its audio stays finite and under full scale. bench/fuzz.py runs the same at 100,000."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from harness.fuzzing import caught_up_status, datagrams, draw_examples, midi_messages, send_examples
from harness.live import Capture, Daemon

pytestmark = [pytest.mark.jack, pytest.mark.slow]


def test_fuzzed_osc_and_midi_leave_the_daemon_playing(
    jack: None, sine_model: Path, tmp_path: Path
) -> None:
    osc_examples = draw_examples(datagrams, 3000)
    midi_examples = draw_examples(midi_messages, 1000)
    daemon = Daemon(sine_model, "--kit-dir", str(tmp_path))
    try:
        daemon.wait_ready()
        capture = Capture(daemon.audio_port_pattern)
        capture.wait_until(1)
        start = capture.now()
        send_examples(daemon, osc_examples, midi_examples, pause=0.02)
        sent, midi_sent = len(osc_examples), len(midi_examples)
        status = caught_up_status(daemon)
        assert daemon.proc.poll() is None, daemon.log()
        assert status["osc_received"] >= sent  # none lost by the socket (plus the status query)
        # rtmidi's JACK input itself discards clock, active sensing, system common messages,
        # unterminated SysEx and data bytes over 127; what it passes on, the daemon counts.
        assert 0.5 * midi_sent < status["midi_received"] <= midi_sent
        assert status["dropped.osc.malformed"] > 0 and status["dropped.osc.invalid"] > 0
        assert status["dropped.midi.malformed"] > 0 and status["dropped.midi.sysex"] > 0
        played = capture.segment(start, capture.end - start)
        assert np.all(np.isfinite(played)) and np.max(np.abs(played)) <= 1.0
        assert "Traceback" not in daemon.log()
        # A valid trigger still plays.
        daemon.osc.send("/dkvae/stop")
        time.sleep(0.3)
        sound = capture.hit(lambda: daemon.osc.send("/dkvae/trigger", 36, 127))
        assert np.max(np.abs(sound)) > 0.1
        capture.close()
    finally:
        daemon.stop()
