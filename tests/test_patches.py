"""The Max and Pure Data patches in patches/: played with real Pd, and held to docs/osc.md.

Two kinds of test:
- live (JACK): a daemon on the JACK dummy server, a headless `pd` running a patch; the captured
  audio and the daemon's own replies show what the patch did;
- static: every OSC message a patch can send is traced back through the patch (Pd's text
  format, Max's JSON) to its address and argument types, and compared with the address table.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from harness.live import Capture, Daemon, XrunWatch, dominant_frequency, free_udp_port
from harness.osc_doc import OSC_DOC, documented_addresses, documented_replies
from harness.synth_models import CLASSES, expected_frequency, sine_axes_json, sine_decoder
from patch_flow import (
    PdFlow,
    Sent,
    check,
    max_reaches,
    max_replies,
    max_sent,
    parse_max,
    parse_pd,
    pd_commands,
    pd_help_shows,
    pd_sent,
)

from dkvae_live import contract
from dkvae_live.kit import Kit, save_kit
from dkvae_live.model import resolve_model_path
from dkvae_live.pads import default_latent, default_pads

ROOT = Path(__file__).resolve().parents[1]
PATCHES = ROOT / "patches"
HARNESS = Path(__file__).parent / "patches" / "pad-harness.pd"
UI_REMOTE = Path(__file__).parent / "patches" / "ui-remote.pd"
LATE_PAD = Path(__file__).parent / "patches" / "late-pad.pd"
MASTER_GAIN = 0.5  # the daemon's default
AMPLITUDE = 0.8  # the sine model's
XRUN_RETAKES = 5  # takes of one hit at most, while JACK reports xruns in them

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


def own_capture(daemon: Daemon) -> Capture:
    """A capture of this test's daemon, not of another daemon on the same JACK server."""
    try:
        capture = Capture(daemon.audio_port_pattern)
    except RuntimeError:  # a daemon whose output is a PortAudio client: the default port
        capture = Capture()
    capture.wait_until(1)
    return capture


@pytest.fixture
def own(daemon: Daemon) -> Iterator[Capture]:
    capture = own_capture(daemon)
    yield capture
    capture.close()


def hit(
    capture: Capture, daemon: Daemon, send: Callable[[], None], seconds: float = 0.1
) -> np.ndarray:
    """Send one trigger, return the captured audio from its onset on, from a take in which
    JACK reported no xrun: a missed cycle drops a period of the capture, and a hit's first
    period holds its peak. A take with one is sent again, a few times at most."""
    for _ in range(XRUN_RETAKES):
        watch = XrunWatch(capture, daemon.client_name)
        sent = capture.trigger_frame()
        send()
        # Pd is an ordinary process on a busy machine: give it time (latency is measured
        # elsewhere)
        onset = capture.onset(sent, int(2.0 * capture.rate))
        assert onset is not None, "no sound within 2 s of the trigger"
        take = capture.segment(onset, int(seconds * capture.rate))
        if watch.clean():
            break
        time.sleep(0.3)  # the take's sound rings out before the next
    return take


def pad_reply(daemon: Daemon, note: int) -> list:
    daemon.osc.drain()
    daemon.osc.send("/dkvae/pad/get", note)
    reply = daemon.osc.receive()
    assert reply.address == "/dkvae/pad"
    return list(reply.params)


def settled(daemon: Daemon, note: int, done: Callable[[list], bool], timeout: float = 5.0) -> list:
    """The pad's settings once `done` holds for them (Pd may lag behind the test on a busy
    machine), then a moment for the render worker."""
    deadline = time.monotonic() + timeout
    while True:
        pad = pad_reply(daemon, note)
        if done(pad):
            time.sleep(0.1)
            return pad
        assert time.monotonic() < deadline, f"pad {note} never got there: {pad}"
        time.sleep(0.05)


# --------------------------------------------------------------------------- live tests
@needs_pd
@pytest.mark.jack
def test_pd_pad_abstraction_moves_the_latent_and_triggers_the_pad(
    daemon: Daemon, own: Capture, pd_runner: Callable[..., PdProcess]
) -> None:
    capture = own
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
        settled(daemon, 36, lambda p: p[1] == "kick" and p[4:] == [0.0] * 8)
        low = hit(capture, daemon, lambda: fudi("trigger 127"))
        time.sleep(0.3)
        fudi("latent dim 0 1")  # one dimension: an octave up
        settled(daemon, 36, lambda p: p[4] == 1.0)
        high = hit(capture, daemon, lambda: fudi("trigger 127"))
        time.sleep(0.3)
        soft = hit(capture, daemon, lambda: fudi("trigger 64"))
        time.sleep(0.3)
        fudi("set class tom")  # by name: class 3, four times the kick's pitch
        pad = settled(daemon, 36, lambda p: p[1] == "tom")
        tom = hit(capture, daemon, lambda: fudi("trigger"))  # bang: the last velocity, 64
        fudi("set class 1")  # by index: snare
        fudi("set gain 0.5")
        fudi("set pan -0.25")
        settings = settled(daemon, 36, lambda p: p[3] == -0.25)
        fudi("set randomize 2")
        randomized = settled(daemon, 36, lambda p: p[4:] != settings[4:])
        fudi("set reset")
        reset = settled(daemon, 36, lambda p: p[4:] != randomized[4:])
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


# A latent unlike the default ones, set before Pd starts: a patch can only show it by asking.
KNOWN = [0.5, 1.5, -1.0, 2.0, 0.25, -0.5, 1.0, -2.0]


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split()]


@needs_pd
@pytest.mark.jack
def test_pd_pad_asks_for_its_pad_and_a_short_latent_keeps_the_other_dimensions(
    daemon: Daemon, pd_runner: Callable[..., PdProcess]
) -> None:
    """[dkvae-pad] asks the daemon for its pad once connected, and at load in a Pd already
    connected; a short latent list (`2 2`) then moves only the dimensions it gives."""
    daemon.osc.send("/dkvae/pad/latent", 36, *KNOWN)
    daemon.osc.send("/dkvae/pad/latent", 38, *KNOWN[::-1])
    settled(daemon, 38, lambda p: p[4:] == pytest.approx(KNOWN[::-1]))  # 36's came first
    reply_port, port = free_udp_port(), free_udp_port()
    pd = pd_runner(
        [HARNESS],
        f"dkvae-connect 127.0.0.1 {daemon.osc_port} {reply_port}",
        f"harness-listen {port}",
    )
    fudi = Fudi(port)
    try:
        # Nothing but the pad's own request makes the daemon send it its pad.
        asked = floats(pd.wait_for(r"^harness-pad: latent (.*)$").group(1))
        pd.wait_for(r"^harness: ready", poke=lambda: fudi("ready"))
        fudi("latent 2 2")
        short = settled(daemon, 36, lambda p: p[4:6] == [2.0, 2.0])
        mark = len(pd.lines)
        fudi(f"open {LATE_PAD.name} {LATE_PAD.parent}")  # the connection is long up
        late = floats(pd.wait_for(r"^late-pad: latent (.*)$", after=mark).group(1))
    finally:
        fudi.close()
    assert asked == pytest.approx(KNOWN)
    assert short[4:] == pytest.approx([2.0, 2.0, *KNOWN[2:]])
    assert late == pytest.approx(KNOWN[::-1])
    assert pd.errors() == [], pd.console


@needs_pd
@pytest.mark.jack
def test_main_pd_patch_shows_the_pad_as_the_daemon_has_it_from_the_start(
    daemon: Daemon, pd_runner: Callable[..., PdProcess]
) -> None:
    daemon.osc.send("/dkvae/pad/latent", 36, *KNOWN)
    settled(daemon, 36, lambda p: p[4:] == pytest.approx(KNOWN))
    pd = pd_runner(
        [PATCHES / "dkvae.pd"],
        f"dkvae-connect 127.0.0.1 {daemon.osc_port} {free_udp_port()}",
        "dkvae-print 1",
    )
    # The pad's replies feed the sliders and, with dkvae-print 1, the Pd window.
    shown = floats(pd.wait_for(r"^dkvae-pad: latent (.*)$").group(1))
    assert shown == pytest.approx(KNOWN)
    assert pd.errors() == [], pd.console


@pytest.fixture
def kit_daemon(jack: None, sine_model: Path, gm_kit: Path, tmp_path: Path) -> Iterator[Daemon]:
    """A daemon on the sine model and the plain GM kit, whose kit folder is a fresh one."""
    (tmp_path / "kits").mkdir()
    d = Daemon(sine_model, "--kit", str(gm_kit), "--kit-dir", str(tmp_path / "kits"))
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


@needs_pd
def open_main_patch(daemon: Daemon, pd_runner: Callable[..., PdProcess]) -> tuple[PdProcess, Fudi]:
    """dkvae.pd connected to `daemon`, printing its replies, and the harness's remote for its
    controls."""
    reply_port, remote_port = free_udp_port(), free_udp_port()
    pd = pd_runner(
        [PATCHES / "dkvae.pd", UI_REMOTE],
        f"dkvae-connect 127.0.0.1 {daemon.osc_port} {reply_port}",
        "dkvae-print 1",
        f"harness-listen {remote_port}",
    )
    return pd, Fudi(remote_port)


@pytest.mark.jack
def test_main_pd_patch_shows_the_status_and_plays_the_selected_pad(
    kit_daemon: Daemon, pd_runner: Callable[..., PdProcess], tmp_path: Path
) -> None:
    daemon = kit_daemon
    capture = own_capture(daemon)
    pd, ui = open_main_patch(daemon, pd_runner)
    try:
        # the status display is fed by the daemon's replies (/dkvae/reply_to, /dkvae/status)
        pd.wait_for(r"^dkvae-status: model sine-test$")
        latency = float(pd.wait_for(r"^dkvae-status: output_latency_ms ([\d.]+)").group(1))
        pd.wait_for(r"^dkvae-status: xruns \d+$")
        pd.wait_for(r"^harness: ready", poke=lambda: ui("ready"))
        # select pad 38: the patch asks for it and its sliders follow the reply
        mark = len(pd.lines)
        ui("ui pad 38")
        pd.wait_for(r"^dkvae-pad: class snare$", after=mark)
        shown = pd.wait_for(r"^dkvae-pad: latent (.*)$", after=mark).group(1).split()
        ui("ui dim0 1")  # the first slider: an octave above 200 Hz x 2 (snare)
        mark = len(pd.lines)
        ui("ui get")  # the refresh button: Pd prints the pad's latent once the daemon has it
        pd.wait_for(r"^dkvae-pad: latent 1 ", after=mark)
        time.sleep(0.1)
        sound = hit(capture, daemon, lambda: ui("ui hit"))  # the velocity box starts at 100
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
    # reset goes back to the pad as the loaded kit has it: the kit saved after the slider move
    saved = [1.0, *default_latent(38, 8)[1:]]
    assert [float(v) for v in reset] == pytest.approx(saved, abs=1e-3)
    assert pd.errors() == [], pd.console


@pytest.fixture
def axes_daemon(jack: None, gm_kit: Path, tmp_path: Path) -> Iterator[Daemon]:
    """A daemon on the sine model with timbre axes for its kick."""
    model = sine_decoder(
        tmp_path / "model" / "decoder.onnx", metadata={"dkvae.axes": sine_axes_json()}
    )
    d = Daemon(model, "--kit", str(gm_kit))
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def axes_settled(daemon: Daemon, note: int, want: list[float], timeout: float = 5.0) -> list:
    """The pad's axis values and XY axis names, once its values are `want`."""
    deadline = time.monotonic() + timeout
    while True:
        daemon.osc.drain()
        daemon.osc.send("/dkvae/pad/axes", note)
        reply = daemon.osc.receive()
        assert reply.address == "/dkvae/pad/axes"
        if list(reply.params[1:5]) == pytest.approx(want):
            time.sleep(0.1)  # the render worker's moment
            return list(reply.params[1:])
        assert time.monotonic() < deadline, f"pad {note} axes never got to {want}: {reply.params}"
        time.sleep(0.05)


@needs_pd
@pytest.mark.jack
def test_main_pd_patch_plays_the_timbre_axes_and_the_xy_pad(
    axes_daemon: Daemon, pd_runner: Callable[..., PdProcess]
) -> None:
    """The four axis sliders and the XY pad of dkvae.pd move the selected pad (heard in its
    pitch: the sine model's pitch axis is half an octave a step), and the patch shows the axes
    the daemon replies, with the names of the XY pad's two."""
    daemon = axes_daemon
    capture = own_capture(daemon)
    pd, ui = open_main_patch(daemon, pd_runner)
    try:
        shown = pd.wait_for(r"^dkvae-pad: axes (.*)$").group(1).split()  # pad 36 at start
        pd.wait_for(r"^harness: ready", poke=lambda: ui("ready"))
        plain = hit(capture, daemon, lambda: ui("ui hit"))
        time.sleep(0.3)
        ui("ui pitch 1")  # the pitch slider
        axes_settled(daemon, 36, [0, 0, 1, 0])
        up = hit(capture, daemon, lambda: ui("ui hit"))
        time.sleep(0.3)
        ui("ui y -1")  # the XY pad's y: pitch, here; x (punch) stays
        axes_settled(daemon, 36, [0, 0, -1, 0])
        ui("ui x 0.5")
        final = axes_settled(daemon, 36, [0, 0, -1, 0.5])
        down = hit(capture, daemon, lambda: ui("ui hit"))
        mark = len(pd.lines)
        ui("ui get")  # refresh: the patch asks again and shows what the daemon has
        refreshed = pd.wait_for(r"^dkvae-pad: axes (.*)$", after=mark).group(1).split()
    finally:
        ui.close()
        capture.close()
    assert shown == ["0", "0", "0", "0", "punch", "pitch"]
    assert final[4:] == ["punch", "pitch"]
    f = lambda audio: dominant_frequency(audio[:4096], capture.rate)  # noqa: E731
    assert f(up) / f(plain) == pytest.approx(2**0.5, rel=0.02)
    assert f(down) / f(plain) == pytest.approx(2**-0.5, rel=0.02)
    assert refreshed == ["0", "0", "-1", "0.5", "punch", "pitch"]
    assert pd.errors() == [], pd.console


@needs_pd
@pytest.mark.jack
def test_main_pd_patch_lists_the_kit_folder_and_loads_a_kit_by_its_program(
    kit_daemon: Daemon, pd_runner: Callable[..., PdProcess], tmp_path: Path
) -> None:
    """`/dkvae/kit/list` from the patch reaches the daemon, the replies come back into the patch
    (issue 22), and picking a program there loads the kit the list gave it."""
    daemon = kit_daemon
    kits = tmp_path / "kits"
    pads = default_pads(CLASSES, 8)
    save_kit(Kit("low", pads), kits / "a-low.toml")  # place 0
    save_kit(Kit("high", pads, program=7), kits / "b-high.toml")  # says program 7
    save_kit(Kit("mid", pads), kits / "c-mid.toml")  # place 2
    pd, ui = open_main_patch(daemon, pd_runner)
    try:
        pd.wait_for(r"^dkvae-status: model sine-test$")  # replies reach the patch
        pd.wait_for(r"^harness: ready", poke=lambda: ui("ready"))
        ui("ui kitlist")  # the list-kits button
        count = int(pd.wait_for(r"^dkvae-kit: list end (\d+)$").group(1))
        entries = [
            (int(m.group(1)), m.group(2), Path(m.group(3)).name)
            for m in (
                re.match(r"^dkvae-kit: entry (-?\d+) (\S+) (\S+)$", line) for line in pd.lines
            )
            if m
        ]
        mark = len(pd.lines)
        ui("ui kitpick 7")  # the program box: the kit the list says program 7 selects
        loaded = pd.wait_for(r"^dkvae-kit: loaded (\S+) (\S+)$", after=mark)
        mark = len(pd.lines)
        ui("ui kitpick 5")  # no kit in the list has it: nothing is sent
        pd.wait_for(r"^dkvae-kit: no listed kit has that program$", after=mark)
        status = daemon.osc.status()
    finally:
        ui.close()
    assert entries == [
        (0, "low", "a-low.toml"),
        (7, "high", "b-high.toml"),
        (2, "mid", "c-mid.toml"),
    ]
    assert count == 3
    assert (loaded.group(1), Path(loaded.group(2)).name) == ("high", "b-high.toml")
    assert status["kit"] == "high"
    assert pd.errors() == [], pd.console


# --------------------------------------------------------------------------- static checks
# What a patch can send is worked out from the patch itself (tests/patch_flow.py) and each
# message is compared with its signature in docs/osc.md.
PD_FILES = sorted(PATCHES.glob("*.pd")) + sorted((Path(__file__).parent / "patches").glob("*.pd"))
MAX_FILES = sorted(PATCHES.glob("*.maxpat"))
# What a performer's patch must be able to send (issue 7): pad, latent, class, hit with velocity,
# randomize, reset, kit save and load, and the status requests that feed the display.
PLAYED = {
    "/dkvae/trigger": 2,  # with a velocity
    "/dkvae/pad/dim": 3,
    "/dkvae/pad/class": 2,
    "/dkvae/pad/randomize": 2,
    "/dkvae/pad/reset": 1,
    "/dkvae/pad/get": 1,
    "/dkvae/kit/save": 1,
    "/dkvae/kit/load": 1,
    "/dkvae/reply_to": 1,
    "/dkvae/status": 0,
    "/dkvae/kit/list": 0,  # issue 22: the kit folder's kits and their programs
    "/dkvae/pad/axis": 3,  # issue 23: four labelled axis sliders
    "/dkvae/pad/xy": 3,  # and an XY pad
    "/dkvae/pad/axes": 1,
}
# Pd names that are not $0- local: the public interface of the patches (patches/README.md)
PUBLIC_PD_NAMES = {
    "dkvae-osc-out", "dkvae-reply", "dkvae-connect", "dkvae-connected", "dkvae-print", "dkvae-ui"
}  # fmt: skip


def test_the_address_table_is_read() -> None:
    """Every row of the address table is read, once, with its signature as written, and no
    row of the replies' table: the checker holds the patches to exactly this table."""
    table = documented_addresses()
    text = OSC_DOC.read_text()
    section = text.split("## Addresses", 1)[1].split("## Replies", 1)[0]
    assert len(table) == len([row for row in section.splitlines() if row.startswith("| `/")])
    assert table["/dkvae/trigger"] == "note:i velocity:i?"
    assert table["/dkvae/pad/latent"] == "note:i values:f*"
    assert table["/dkvae/kit/list"] == ""
    assert "/dkvae/kit/entry" not in table  # a reply: the other table


@pytest.mark.parametrize("path", PD_FILES, ids=lambda p: p.name)
def test_pd_patch_sends_only_documented_messages(path: Path) -> None:
    sent = pd_sent(path.read_text(), path.name)
    assert check(sent) == []


@pytest.mark.parametrize("path", MAX_FILES, ids=lambda p: p.name)
def test_max_patch_sends_only_documented_messages(path: Path) -> None:
    document = json.loads(path.read_text())
    assert document["patcher"]["fileversion"] == 1
    for entry in document["patcher"]["boxes"]:
        box = entry["box"]
        assert {"id", "maxclass", "numinlets", "numoutlets", "patching_rect"} <= box.keys()
    boxes = {entry["box"]["id"]: entry["box"] for entry in document["patcher"]["boxes"]}
    for entry in document["patcher"]["lines"]:
        (a, outlet), (b, inlet) = entry["patchline"]["source"], entry["patchline"]["destination"]
        assert outlet < boxes[a]["numoutlets"], f"{boxes[a]} has no outlet {outlet}"
        assert inlet < boxes[b]["numinlets"], f"{boxes[b]} has no inlet {inlet}"
    sent = max_sent(document, path.name)
    assert sent, "a Max patch that sends nothing"
    assert check(sent) == []


def played(sent: list[Sent]) -> dict[str, set[int]]:
    counts: dict[str, set[int]] = {}
    for message in sent:
        counts.setdefault(message.address, set()).add(len(message.args))
    return counts


def test_the_pd_and_max_patches_send_every_control_of_the_issue() -> None:
    pd = played(
        [
            m
            for name in ("dkvae-osc.pd", "dkvae-pad.pd")
            for m in pd_sent((PATCHES / name).read_text(), name)
        ]
    )
    max_ = played(max_sent(json.loads((PATCHES / "dkvae.maxpat").read_text()), "dkvae.maxpat"))
    for address, count in PLAYED.items():
        assert count in pd.get(address, set()), f"the Pd patches never send {address} ({count})"
        assert count in max_.get(address, set()), f"dkvae.maxpat never sends {address} ({count})"
    assert "/dkvae/pad/latent" in pd  # the abstraction's latent inlet sets the whole latent


# The help patches: dkvae-help.maxpat says it has every message (patches/README.md); a Pd
# -help.pd shows what its abstraction takes.
MAX_HELP = PATCHES / "dkvae-help.maxpat"
PD_HELPS = sorted(PATCHES.glob("*-help.pd"))


def shipped_latent_size() -> int:
    """The shipped model's latent size, from its metadata (no session is opened)."""
    model = onnx.load(str(resolve_model_path(None)), load_external_data=False)
    return int({p.key: p.value for p in model.metadata_props}[contract.LATENT_SIZE])


def max_help_gaps(document: dict, name: str) -> list[str]:
    """The requests of docs/osc.md a Max help patch does not show with every argument its
    signature names (an optional one at least once), and `*` lists not of latent_size values."""
    sent = max_sent(document, name)
    latent_size = shipped_latent_size()
    gaps = []
    for address, signature in documented_addresses().items():
        params = signature.split()
        examples = [m.args for m in sent if m.address == address]
        if not any(len(args) >= len(params) for args in examples):
            gaps.append(f"{address} `{signature}`: not shown with every argument")
        if any(p.endswith("*") for p in params):  # values:f*: exactly latent_size values
            lengths = {len(args) - (len(params) - 1) for args in examples}
            if lengths - {latent_size}:
                gaps.append(f"{address}: {sorted(lengths)} values, not {latent_size}")
    return gaps


def test_the_max_help_patch_shows_every_documented_request() -> None:
    """Every request of docs/osc.md is a message to click, fitting its signature. Max itself
    cannot run here: the messages that reach the [udpsend] are read from the patch."""
    document = json.loads(MAX_HELP.read_text())
    assert max_help_gaps(document, MAX_HELP.name) == []
    assert check(max_sent(document, MAX_HELP.name)) == []  # and each one fits its signature


def test_the_max_help_check_finds_a_request_left_out_or_shown_short() -> None:
    document = json.loads(MAX_HELP.read_text())
    boxes = {entry["box"].get("text"): entry["box"] for entry in document["patcher"]["boxes"]}
    boxes["/dkvae/kit/export my-kit-samples 1"]["text"] = "/dkvae/kit/export my-kit-samples"
    boxes["/dkvae/model/load my-model"]["text"] = "/dkvae/pad/timbre_direction 36 1. 0."
    n = shipped_latent_size()
    assert max_help_gaps(document, MAX_HELP.name) == [
        f"/dkvae/pad/timbre_direction: [2, {n}] values, not {n}",
        "/dkvae/kit/export `path:s force:i?`: not shown with every argument",
        "/dkvae/model/load `path:s`: not shown with every argument",
    ]


@pytest.mark.parametrize("path", PD_HELPS, ids=lambda p: p.name)
def test_pd_help_patch_shows_every_command_of_its_abstraction(path: Path) -> None:
    """Each command the abstraction takes is shown in its help, wired to the inlet that takes
    it; nothing shown is dropped by the abstraction; and each command leads to addresses of
    docs/osc.md, or to the connection itself ([dkvae-osc]'s connect and disconnect)."""
    abstraction = path.name.removesuffix("-help.pd")
    commands = pd_commands(PATCHES / f"{abstraction}.pd")
    shown = pd_help_shows(path, abstraction, set(commands))
    known = set(documented_addresses()) | {"[netsend]"}
    for command, reached in commands.items():
        assert reached, f"{abstraction}.pd: {command} leads nowhere"
        assert reached <= known, f"{abstraction}.pd: {command} sends {reached - known}"
    assert [c for c in commands if c not in shown] == [], f"{path.name} does not show these"
    assert {c: m for c, m in shown.items() if c not in commands} == {}, "dropped by the inlet"


def test_max_patch_takes_only_documented_replies_and_loads_a_kit_from_the_list() -> None:
    """The replies dkvae.maxpat picks out are in docs/osc.md; the kit list (issue 22) is shown
    and a kit chosen from it is loaded. Max itself cannot run here: the wires are followed."""
    patcher = parse_max(json.loads((PATCHES / "dkvae.maxpat").read_text()))[0]
    routed = max_replies(patcher)
    documented = documented_replies()
    assert [a for a in routed if not any(p.fullmatch(a) for p in documented)] == []
    for address in ("/dkvae/status/kit", "/dkvae/kit/loaded", "/dkvae/kit/list/end"):
        assert address in routed, f"dkvae.maxpat does not show {address}"
        assert any((a, ao) == routed[address] for a, ao, _, _ in patcher.wires), address
    assert max_reaches(patcher, routed["/dkvae/kit/entry"], "udpsend"), "no kit to choose"


def test_pd_patches_use_local_names_and_have_help() -> None:
    for path in sorted(PATCHES.glob("*.pd")):
        canvases = parse_pd(path.read_text())
        flow = PdFlow(canvases)
        names = set(flow.senders)
        for canvas in canvases:
            for box in canvas.boxes:
                if (
                    box.kind == "obj"
                    and box.atoms[:1] in (["r"], ["receive"])
                    and len(box.atoms) > 1
                ):
                    names.add(box.atoms[1])
        names = {n for n in names if n not in ("empty", "-") and not n.startswith("$0-")}
        names -= {n for n in names if n.startswith("pd")}  # "; pd quit" style messages to Pd
        assert names <= PUBLIC_PD_NAMES, f"{path.name}: global names {names - PUBLIC_PD_NAMES}"
        abstraction = path.name not in ("dkvae.pd",) and not path.stem.endswith("-help")
        if abstraction:
            assert (PATCHES / f"{path.stem}-help.pd").is_file(), f"{path.name} has no -help.pd"
        if path.name == "dkvae.pd":
            assert any(
                b.atoms[:2] == ["pd", "guts"] for b in canvases[0].boxes if b.kind == "subpatch"
            )


# The checker must be able to fail: patches that are wrong in one way each.
PD_WRONG = {
    "a symbol where the note goes": (
        "#N canvas 0 0 400 300 12;\n#X msg 10 10 list kick 100;\n"
        "#X obj 10 40 oscformat dkvae trigger;\n#X connect 0 0 1 0;\n",
        "/dkvae/trigger [s f] against `note:i velocity:i?`: note: a string where i goes",
    ),
    "a float where the dimension goes": (
        "#N canvas 0 0 400 300 12;\n#X obj 10 10 pack f f f;\n"
        "#X obj 10 40 oscformat -f i dkvae pad dim;\n#X floatatom 100 10 5 0 0 0 - - - 0;\n"
        "#X connect 0 0 1 0;\n#X connect 2 0 0 0;\n",
        "dim: a float where i goes",
    ),
    "an address that does not exist": (
        "#N canvas 0 0 400 300 12;\n#X msg 10 10 36 0.5;\n"
        "#X obj 10 40 oscformat dkvae pad volume;\n#X connect 0 0 1 0;\n",
        "/dkvae/pad/volume is not in docs/osc.md",
    ),
    "one argument too many": (
        "#N canvas 0 0 400 300 12;\n#X msg 10 10 36 100 5;\n"
        "#X obj 10 40 oscformat -f iii dkvae trigger;\n#X connect 0 0 1 0;\n",
        "too many arguments",
    ),
    "a missing argument, through a subpatch": (
        "#N canvas 0 0 400 300 12;\n#X obj 10 10 pack f f;\n"
        "#N canvas 0 0 300 200 inner 0;\n#X obj 10 10 inlet;\n#X obj 10 40 list prepend 36;\n"
        "#X obj 10 70 outlet;\n#X connect 0 0 1 0;\n#X connect 1 0 2 0;\n"
        "#X restore 10 40 pd inner;\n"
        "#X obj 10 70 oscformat -f iif dkvae pad class;\n#X floatatom 100 10 5 0 0 0 - - - 0;\n"
        "#X connect 0 0 1 0;\n#X connect 1 0 2 0;\n#X connect 3 0 0 0;\n",
        "too many arguments",
    ),
    "an abstraction inlet passed on unchecked": (
        "#N canvas 0 0 400 300 12;\n#X obj 10 10 inlet;\n#X obj 10 40 list prepend 36;\n"
        "#X obj 10 70 oscformat -f i dkvae pad latent;\n"
        "#X connect 0 0 1 0;\n#X connect 1 0 2 0;\n",
        "values: an unknown atom where f values go",
    ),
    "a message only an object nothing triggers would send": (
        "#N canvas 0 0 400 300 12;\n#X obj 10 10 bang;\n#X obj 10 40 oscformat dkvae stop;\n"
        "#X connect 0 0 1 0;\n",
        "(nothing feeds it)",
    ),
    "a local send of a symbol": (
        "#N canvas 0 0 400 300 12;\n#X msg 10 10 kick;\n#X obj 10 40 s \\$0-gain;\n"
        "#X obj 100 10 r \\$0-gain;\n#X obj 100 40 list prepend 36;\n"
        "#X obj 100 70 oscformat -f i dkvae pad gain;\n"
        "#X connect 0 0 1 0;\n#X connect 2 0 3 0;\n#X connect 3 0 4 0;\n",
        "gain: a string where f goes",
    ),
}


@pytest.mark.parametrize("case", sorted(PD_WRONG), ids=lambda c: c.replace(" ", "-"))
def test_the_checker_reports_a_wrong_pd_patch(case: str) -> None:
    text, expected = PD_WRONG[case]
    problems = check(pd_sent(text, "wrong.pd"))
    assert any(expected in p for p in problems), problems


def max_document(boxes: list[tuple[str, str, str]], lines: list[tuple[int, int, int, int]]) -> dict:
    """A small Max patcher: boxes (maxclass, text or "", extra JSON) and lines by box number."""
    entries = []
    for n, (maxclass, text, extra) in enumerate(boxes):
        box = {"id": f"obj-{n}", "maxclass": maxclass, "text": text, "numinlets": 2}
        box.update(json.loads(extra or "{}"))
        entries.append({"box": box})
    wires = [
        {"patchline": {"source": [f"obj-{a}", ao], "destination": [f"obj-{b}", bi]}}
        for a, ao, b, bi in lines
    ]
    return {"patcher": {"fileversion": 1, "boxes": entries, "lines": wires}}


MAX_WRONG = {
    "a float note from a flonum": (
        [
            ("flonum", "", ""),
            ("newobj", "prepend /dkvae/trigger", ""),
            ("newobj", "udpsend 127.0.0.1 9000", ""),
        ],
        [(0, 0, 1, 0), (1, 0, 2, 0)],
        "note: a float where i goes",
    ),
    "a message box with a typo in the address": (
        [("message", "/dkvae/triger 36 100", ""), ("newobj", "udpsend 127.0.0.1 9000", "")],
        [(0, 0, 1, 0)],
        "/dkvae/triger is not in docs/osc.md",
    ),
    "an integer slider for a float dimension value, one argument short": (
        [
            ("slider", "", ""),
            ("newobj", "pack i i", ""),
            ("newobj", "prepend /dkvae/pad/dim", ""),
            ("newobj", "udpsend 127.0.0.1 9000", ""),
        ],
        [(0, 0, 1, 1), (1, 0, 2, 0), (2, 0, 3, 0)],
        "missing argument value:f",
    ),
    "a kit name as a number": (
        [
            ("number", "", ""),
            ("newobj", "prepend /dkvae/kit/load", ""),
            ("newobj", "udpsend localhost 9000", ""),
        ],
        [(0, 0, 1, 0), (1, 0, 2, 0)],
        "path: an int where s goes",
    ),
    "a message without an address": (
        [("message", "36 100", ""), ("newobj", "udpsend 127.0.0.1 9000", "")],
        [(0, 0, 1, 0)],
        "(no OSC address)",
    ),
}


@pytest.mark.parametrize("case", sorted(MAX_WRONG), ids=lambda c: c.replace(" ", "-"))
def test_the_checker_reports_a_wrong_max_patch(case: str) -> None:
    boxes, lines, expected = MAX_WRONG[case]
    problems = check(max_sent(max_document(boxes, lines), "wrong.maxpat"))
    assert any(expected in p for p in problems), problems


def test_the_checker_sees_nothing_sent_by_a_max_object_nothing_triggers() -> None:
    boxes = [("newobj", "prepend /dkvae/stop", ""), ("newobj", "udpsend 127.0.0.1 9000", "")]
    assert max_sent(max_document(boxes, [(0, 0, 1, 0)]), "dead.maxpat") == []
    boxes.insert(0, ("button", "", ""))
    assert len(max_sent(max_document(boxes, [(0, 0, 1, 0), (1, 0, 2, 0)]), "live.maxpat")) == 1
