"""The Max and Pure Data patches in patches/: played with real Pd, and held to docs/osc.md.

Two kinds of test:
- live (JACK): a daemon on the JACK dummy server, a headless `pd` running a patch; the captured
  audio and the daemon's own replies show what the patch did;
- static: every OSC message a patch can send is traced back through the patch (Pd's text
  format, Max's JSON) to its address and argument types, and compared with the address table.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from live_harness import Capture, Daemon, dominant_frequency, free_udp_port
from synth_models import expected_frequency

from dkvae_live.pads import default_latent

ROOT = Path(__file__).resolve().parents[1]
PATCHES = ROOT / "patches"
HARNESS = Path(__file__).parent / "patches" / "pad-harness.pd"
UI_REMOTE = Path(__file__).parent / "patches" / "ui-remote.pd"
MASTER_GAIN = 0.5  # the daemon's default
AMPLITUDE = 0.8  # the sine model's

needs_pd = pytest.mark.skipif(
    shutil.which("pd") is None, reason="Pure Data is not installed (apt-get install puredata-core)"
)


# --------------------------------------------------------------------------- running real Pd
class PdProcess:
    """`pd -nogui` running one patch; its console (stderr) is collected line by line."""

    def __init__(self, patches: list[Path], *sends: str) -> None:
        args = ["pd", "-nogui", "-nosound", "-nomidi", "-stderr"]
        for message in sends:
            args += ["-send", message]
        for patch in patches:
            args += ["-open", str(patch)]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def console(self) -> str:
        return "\n".join(self.lines)

    def wait_for(
        self,
        pattern: str,
        timeout: float = 10.0,
        poke: Callable[[], None] | None = None,
        after: int = 0,
    ) -> re.Match[str]:
        """The first console line from line `after` on that matches `pattern` (a regex).

        `poke` is called while waiting.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None:
                break
            if poke is not None:
                poke()
            time.sleep(0.1)
        raise AssertionError(f"Pd never printed /{pattern}/; its console:\n{self.console}")

    def errors(self) -> list[str]:
        return [
            line
            for line in self.lines
            if re.search(r"\berror\b|couldn't create|connection failed|refused", line)
        ]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=2)


@pytest.fixture
def pd_runner() -> Iterator[Callable[..., PdProcess]]:
    """Start Pd processes; each is stopped at the end of the test."""
    started: list[PdProcess] = []

    def start(patches: list[Path], *sends: str) -> PdProcess:
        process = PdProcess(patches, *sends)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class Fudi:
    """Commands to the harness patch, as Pd's own FUDI text over UDP."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def __call__(self, text: str) -> None:
        self.sock.sendto(f"{text};\n".encode(), self.target)

    def close(self) -> None:
        self.sock.close()


def hit(capture: Capture, send: Callable[[], None], seconds: float = 0.1) -> np.ndarray:
    """Send one trigger, return the captured audio from its onset on."""
    sent = capture.now()
    send()
    onset = capture.onset(sent, int(0.15 * capture.rate))
    assert onset is not None, "no sound within 150 ms of the trigger"
    return capture.segment(onset, int(seconds * capture.rate))


def pad_reply(daemon: Daemon, note: int) -> list:
    daemon.osc.drain()
    daemon.osc.send("/dkvae/pad/get", note)
    reply = daemon.osc.receive()
    assert reply.address == "/dkvae/pad"
    return list(reply.params)


# --------------------------------------------------------------------------- live tests
@needs_pd
@pytest.mark.jack
def test_pd_pad_abstraction_moves_the_latent_and_triggers_the_pad(
    daemon: Daemon, capture: Capture, pd_runner: Callable[..., PdProcess]
) -> None:
    port = free_udp_port()
    pd = pd_runner(
        [HARNESS],
        f"dkvae-connect 127.0.0.1 {daemon.osc_port} -1",  # -1: send only, no replies
        f"harness-listen {port}",
    )
    fudi = Fudi(port)
    try:
        pd.wait_for(r"^harness: ready", poke=lambda: fudi("ready"))
        # [dkvae-pad 36]'s latent inlet (a list: the whole latent) and settings inlet
        fudi("latent 0 0 0 0 0 0 0 0")
        fudi("set class kick")
        time.sleep(0.3)
        low = hit(capture, lambda: fudi("trigger 127"))
        fudi("latent dim 0 1")  # one dimension: an octave up
        time.sleep(0.3)
        high = hit(capture, lambda: fudi("trigger 127"))
        time.sleep(0.2)
        soft = hit(capture, lambda: fudi("trigger 64"))
        fudi("set class tom")  # by name: class 3, four times the kick's pitch
        time.sleep(0.3)
        tom = hit(capture, lambda: fudi("trigger"))  # bang: the last velocity, 64
        pad = pad_reply(daemon, 36)
        fudi("set class 1")  # by index: snare
        fudi("set gain 0.5")
        fudi("set pan -0.25")
        time.sleep(0.3)
        settings = pad_reply(daemon, 36)
        fudi("set randomize 2")
        time.sleep(0.3)
        randomized = pad_reply(daemon, 36)
        fudi("set reset")
        time.sleep(0.3)
        reset = pad_reply(daemon, 36)
    finally:
        fudi.close()

    f = lambda audio: dominant_frequency(audio[:4096], capture.rate)  # noqa: E731
    assert f(low) == pytest.approx(expected_frequency(0.0, 0), rel=0.02)
    assert f(high) == pytest.approx(expected_frequency(1.0, 0), rel=0.02)
    assert f(tom) == pytest.approx(expected_frequency(1.0, 3), rel=0.02)
    assert np.max(np.abs(high)) == pytest.approx(AMPLITUDE * MASTER_GAIN, rel=0.05)
    assert np.max(np.abs(soft)) / np.max(np.abs(high)) == pytest.approx(64 / 127, rel=0.05)
    assert np.max(np.abs(tom)) / np.max(np.abs(high)) == pytest.approx(64 / 127, rel=0.05)
    assert pad[:4] == [36, "tom", 1.0, 0.0]
    assert pad[4:] == pytest.approx([1.0] + [0.0] * 7)
    assert settings[:4] == [36, "snare", 0.5, -0.25]
    assert randomized[4:] != pytest.approx(settings[4:], abs=1e-6)
    assert reset[4:] == pytest.approx(default_latent(36, 8), abs=1e-3)
    assert pd.errors() == [], pd.console


@pytest.fixture
def kit_daemon(jack: None, sine_model: Path, tmp_path: Path) -> Iterator[Daemon]:
    """A daemon on the sine model whose kit folder is a fresh temporary folder."""
    (tmp_path / "kits").mkdir()
    d = Daemon(sine_model, "--kit-dir", str(tmp_path / "kits"))
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


@needs_pd
@pytest.mark.jack
def test_main_pd_patch_shows_the_status_and_plays_the_selected_pad(
    kit_daemon: Daemon, pd_runner: Callable[..., PdProcess], tmp_path: Path
) -> None:
    daemon = kit_daemon
    capture = Capture()
    reply_port, remote_port = free_udp_port(), free_udp_port()
    pd = pd_runner(
        [PATCHES / "dkvae.pd", UI_REMOTE],
        f"dkvae-connect 127.0.0.1 {daemon.osc_port} {reply_port}",
        "dkvae-print 1",
        f"harness-listen {remote_port}",
    )
    ui = Fudi(remote_port)
    try:
        capture.wait_until(1)
        # the status display is fed by the daemon's replies (/dkvae/reply_to, /dkvae/status)
        pd.wait_for(r"^dkvae-status: model sine-test$")
        latency = float(pd.wait_for(r"^dkvae-status: output_latency_ms ([\d.]+)").group(1))
        pd.wait_for(r"^dkvae-status: xruns \d+$")
        pd.wait_for(r"^harness: ready", poke=lambda: ui("ready"))
        # select pad 38: the patch asks for it and its sliders follow the reply
        ui("ui pad 38")
        pd.wait_for(r"^dkvae-pad: class snare$")
        shown = pd.wait_for(r"^dkvae-pad: latent (.*)$").group(1).split()
        ui("ui dim0 1")  # the first slider: an octave above 200 Hz x 2 (snare)
        time.sleep(0.3)
        sound = hit(capture, lambda: ui("ui hit"))  # the velocity box starts at 100
        # kit: save as, then load it back
        ui("ui kitname pd-test")
        ui("ui saveas")
        pd.wait_for(r"^dkvae-kit: saved .*pd-test\.toml$")
        ui("ui load")
        pd.wait_for(r"^dkvae-kit: loaded ")
        mark = len(pd.lines)
        ui("ui rand")
        randomized = pd.wait_for(r"^dkvae-pad: latent (.*)$", after=mark).group(1).split()
        mark = len(pd.lines)
        ui("ui reset")
        reset = pd.wait_for(r"^dkvae-pad: latent (.*)$", after=mark).group(1).split()
    finally:
        ui.close()
        capture.close()
    assert latency > 0
    assert [float(v) for v in shown] == pytest.approx(default_latent(38, 8), abs=1e-3)
    freq = dominant_frequency(sound[:4096], capture.rate)
    assert freq == pytest.approx(expected_frequency(1.0, 1), rel=0.02)
    assert np.max(np.abs(sound)) == pytest.approx(AMPLITUDE * MASTER_GAIN * 100 / 127, rel=0.05)
    assert (tmp_path / "kits" / "pd-test.toml").is_file()
    assert len(randomized) == 8
    assert [float(v) for v in randomized] != pytest.approx(default_latent(38, 8), abs=1e-3)
    assert [float(v) for v in reset] == pytest.approx(default_latent(38, 8), abs=1e-3)
    assert pd.errors() == [], pd.console
