"""Faults on a real JACK server: the server dies and comes back; bad models and kits at start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness.live import Capture, Daemon, MidiSender, start_jackd, stop_jackd

pytestmark = pytest.mark.jack


def start_daemon(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a daemon that is expected to refuse to start; its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "dkvae_live", *args], capture_output=True, text=True, timeout=30
    )


def sound_within(capture: Capture, send, seconds: float) -> float | None:
    """Trigger every 50 ms until a hit is captured; seconds it took, or None."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        sent = capture.trigger_frame()
        send()
        try:
            if capture.onset(sent, int(0.05 * capture.rate)) is not None:
                return time.monotonic() - start
        except TimeoutError:
            pass
    return None


def test_the_daemon_plays_again_within_2_s_of_the_jack_server_coming_back(
    jack: None, sine_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"dkvae-restart-{os.getpid()}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)  # our own server: others keep theirs
    server = start_jackd(name=name)
    daemon = Daemon(sine_model)
    try:
        daemon.wait_ready()
        capture = Capture(daemon.audio_port_pattern)
        capture.wait_until(1)
        assert sound_within(capture, lambda: daemon.osc.send("/dkvae/trigger", 36, 127), 1.0)
        capture.close()
        stop_jackd(server, signal.SIGKILL)
        time.sleep(1.0)
        assert daemon.proc.poll() is None, daemon.log()
        server = start_jackd(name=name)
        back = time.monotonic()
        capture = Capture(daemon.audio_port_pattern)
        capture.wait_until(1)
        took = sound_within(capture, lambda: daemon.osc.send("/dkvae/trigger", 36, 127), 5.0)
        assert took is not None, daemon.log()
        assert time.monotonic() - back < 2.0 + 0.5  # 2 s target; the capture needs a moment
        midi = MidiSender(daemon.midi_port)  # the MIDI port came back too
        assert sound_within(capture, lambda: midi.note_on(38, 127), 2.0) is not None
        midi.close()
        capture.close()
        log = daemon.log()
        assert log.count("the JACK server went away") == 1
        assert "the JACK server is back: playing again" in log
        assert daemon.stop() == 0
    finally:
        daemon.stop()
        stop_jackd(server)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/model"], "no such model file"),
        (["--kit", "/nonexistent/kit.toml"], "no such kit file"),
        (["--host-api", "NoSuchAudioSystem"], "no host API matches 'NoSuchAudioSystem'"),
    ],
)
def test_a_bad_start_says_what_is_wrong_in_one_line_and_exits_non_zero(
    jack: None, sine_model: Path, args: list[str], message: str
) -> None:
    if "--model" not in args:
        args = ["--model", str(sine_model), *args]
    result = start_daemon("--osc-port", "0", *args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("dkvae-live:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_a_truncated_model_at_start_is_refused(
    jack: None, sine_model: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "decoder.onnx"
    broken.write_bytes(sine_model.read_bytes()[:1000])
    result = start_daemon("--osc-port", "0", "--model", str(broken))
    assert result.returncode == 2
    assert f"dkvae-live: {broken}: not a loadable ONNX model" in result.stderr


def test_a_second_daemon_on_the_same_osc_port_says_so_and_exits(
    daemon: Daemon, sine_model: Path
) -> None:
    result = start_daemon(
        "--model", str(sine_model), "--no-midi", "--osc-port", str(daemon.osc_port)
    )
    assert result.returncode == 2
    assert "another dkvae-live" in result.stderr
    assert daemon.proc.poll() is None


def test_the_harness_starts_the_daemon_again_when_another_socket_took_its_port(
    jack: None, sine_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.live

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken_port = taken.getsockname()[1]
        chosen = iter([taken_port, harness.live.free_udp_port()])
        monkeypatch.setattr(harness.live, "free_udp_port", lambda: next(chosen))
        daemon = Daemon(sine_model, "--no-midi")
        try:
            daemon.wait_ready()
            assert daemon.osc_port != taken_port
            assert "voices_active" in daemon.osc.status()  # it answers on the new port
        finally:
            daemon.stop()


def test_a_second_daemon_with_the_same_jack_client_name_says_so_and_exits(
    daemon: Daemon, sine_model: Path
) -> None:
    result = start_daemon(
        "--model", str(sine_model), "--client-name", daemon.client_name, "--osc-port", "0"
    )
    assert result.returncode == 2
    # its MIDI port would be the first one's, daemon.midi_port: JACK refuses the name
    assert f"a JACK client '{daemon.client_name}' exists already" in result.stderr
    assert "another dkvae-live" in result.stderr
    assert daemon.proc.poll() is None


def test_sighup_reloads_the_kit(jack: None, sine_model: Path, tmp_path: Path) -> None:
    from harness.synth_models import CLASSES

    from dkvae_live.kit import Kit, save_kit
    from dkvae_live.pads import default_pads

    pads = default_pads(CLASSES, 8)
    kit_path = tmp_path / "kit.toml"
    save_kit(Kit("a", pads), kit_path)
    daemon = Daemon(sine_model, "--kit", str(kit_path))
    try:
        daemon.wait_ready()
        # Same size and mtime as before, so that only SIGHUP (not the file watcher) can tell.
        before = kit_path.stat()
        save_kit(Kit("b", pads), kit_path)
        os.utime(kit_path, ns=(before.st_atime_ns, before.st_mtime_ns))
        time.sleep(1.0)
        assert daemon.osc.status()["kit"] == "a"
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 3
        while daemon.osc.status()["kit"] != "b":
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.1)
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()
