"""Stopping is always prompt: SIGTERM or SIGINT ends the daemon within a second, also when its
JACK server stops at the same moment (a systemd stop or Ctrl-C signals the whole group)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.live import Daemon, start_jackd, stop_jackd
from harness.synth_models import CLASSES

from dkvae_live.kit import Kit, save_kit
from dkvae_live.pads import default_pads

pytestmark = [pytest.mark.jack, pytest.mark.slow]

TRIES = 20
STOP_LIMIT_S = 1.0


@pytest.fixture
def own_server(jack: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen]]:
    """A JACK server of this test's own (others keep theirs), restartable: the list holds the
    one running now."""
    name = f"dkvae-stop-{os.getpid()}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    servers = [start_jackd(name=name)]
    try:
        yield servers
    finally:
        if servers[0].poll() is None:
            stop_jackd(servers[0])
        # A JACK server stopped while a client is still registered leaves that client's
        # semaphores in /dev/shm; these are our own server's.
        for leftover in Path("/dev/shm").glob(f"jack_sem.*_{name}_*"):
            leftover.unlink(missing_ok=True)


def stop_both(daemon: Daemon, server: subprocess.Popen, order: str, sig: int) -> float:
    """Signal the daemon and (unless `order` is "daemon") the server; seconds from the
    daemon's signal to its exit, or the limit's double if it did not end."""
    if order == "server":
        server.send_signal(signal.SIGTERM)
        time.sleep(0.05)  # the server is going away when the daemon is told to stop
    sent = time.monotonic()
    daemon.proc.send_signal(sig)
    if order == "both":
        server.send_signal(signal.SIGTERM)
    try:
        daemon.proc.wait(timeout=2 * STOP_LIMIT_S)
    except subprocess.TimeoutExpired:
        return 2 * STOP_LIMIT_S
    return time.monotonic() - sent


@pytest.mark.parametrize("order", ["daemon", "server", "both"])
def test_a_stop_signal_ends_the_daemon_within_a_second_whatever_its_server_does(
    own_server: list[subprocess.Popen], sine_model: Path, gm_kit: Path, order: str
) -> None:
    times, failures = [], []
    for i in range(TRIES):
        if own_server[0].poll() is not None:
            time.sleep(1.2)  # JACK needs a moment before another server can start
            own_server[0] = start_jackd(name=os.environ["JACK_DEFAULT_SERVER"])
        daemon = Daemon(sine_model, "--kit", str(gm_kit))
        try:
            daemon.wait_ready()
            sig = signal.SIGINT if i % 2 else signal.SIGTERM
            took = stop_both(daemon, own_server[0], order, sig)
            times.append(round(took, 3))
            # With the server killed at the same moment, libjack may crash in the client's
            # close after the server vanished (it says so: "Server is not running"); the stop
            # must still be prompt. Any other exit status is a failure.
            server_gone = order == "both" and "Server is not running" in daemon.log()
            if took >= STOP_LIMIT_S or (daemon.proc.returncode != 0 and not server_gone):
                failures.append((i, signal.Signals(sig).name, took, daemon.log()[-1500:]))
        finally:
            daemon.stop()
        if order != "daemon":
            own_server[0].wait(timeout=10)
    assert not failures, f"stop times {times}; first failure: {failures[0]}"
    assert len(times) == TRIES


def test_a_stop_during_the_first_render_of_the_pads_is_prompt_and_orderly(
    jack: None, sine_model: Path, tmp_path: Path
) -> None:
    # Every pad varies per hit and moves timbre with velocity: seconds of rendering at start.
    pads = {
        note: dataclasses.replace(
            pad, variation=0.3, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5
        )
        for note, pad in default_pads(CLASSES, 8).items()
    }
    kit_path = tmp_path / "slow.toml"
    save_kit(Kit("slow", pads), kit_path)
    daemon = Daemon(sine_model, "--kit", str(kit_path))
    try:
        deadline = time.monotonic() + 60
        while "serving;" not in daemon.log():
            assert time.monotonic() < deadline and daemon.proc.poll() is None, daemon.log()
            time.sleep(0.02)
        time.sleep(0.2)
        # still rendering: every pad plays its draft by now, its full render is under way
        assert " full quality: " not in daemon.log()
        sent = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        code = daemon.proc.wait(timeout=5)
        took = time.monotonic() - sent
    finally:
        daemon.stop()
    log = daemon.log()
    assert took < STOP_LIMIT_S and code == 0, log
    assert "stopped" in log and "not stopped after" not in log, log
