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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from harness.live import Capture, Daemon, dominant_frequency, free_udp_port
from harness.osc_doc import OSC_DOC, documented_addresses, documented_replies
from harness.synth_models import CLASSES, expected_frequency

from dkvae_live import contract
from dkvae_live.kit import Kit, save_kit
from dkvae_live.model import resolve_model_path
from dkvae_live.pads import default_latent, default_pads

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


def hit(capture: Capture, send: Callable[[], None], seconds: float = 0.1) -> np.ndarray:
    """Send one trigger, return the captured audio from its onset on."""
    sent = capture.trigger_frame()
    send()
    # Pd is an ordinary process on a busy machine: give it time (latency is measured elsewhere)
    onset = capture.onset(sent, int(2.0 * capture.rate))
    assert onset is not None, "no sound within 2 s of the trigger"
    return capture.segment(onset, int(seconds * capture.rate))


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
        low = hit(capture, lambda: fudi("trigger 127"))
        time.sleep(0.3)
        fudi("latent dim 0 1")  # one dimension: an octave up
        settled(daemon, 36, lambda p: p[4] == 1.0)
        high = hit(capture, lambda: fudi("trigger 127"))
        time.sleep(0.3)
        soft = hit(capture, lambda: fudi("trigger 64"))
        time.sleep(0.3)
        fudi("set class tom")  # by name: class 3, four times the kick's pitch
        pad = settled(daemon, 36, lambda p: p[1] == "tom")
        tom = hit(capture, lambda: fudi("trigger"))  # bang: the last velocity, 64
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
@pytest.mark.jack
def test_main_pd_patch_shows_the_status_and_plays_the_selected_pad(
    kit_daemon: Daemon, pd_runner: Callable[..., PdProcess], tmp_path: Path
) -> None:
    daemon = kit_daemon
    capture = own_capture(daemon)
    reply_port, remote_port = free_udp_port(), free_udp_port()
    pd = pd_runner(
        [PATCHES / "dkvae.pd", UI_REMOTE],
        f"dkvae-connect 127.0.0.1 {daemon.osc_port} {reply_port}",
        "dkvae-print 1",
        f"harness-listen {remote_port}",
    )
    ui = Fudi(remote_port)
    try:
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
        mark = len(pd.lines)
        ui("ui get")  # the refresh button: Pd prints the pad's latent once the daemon has it
        pd.wait_for(r"^dkvae-pad: latent 1 ", after=mark)
        time.sleep(0.1)
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
    # reset goes back to the pad as the loaded kit has it: the kit saved after the slider move
    saved = [1.0, *default_latent(38, 8)[1:]]
    assert [float(v) for v in reset] == pytest.approx(saved, abs=1e-3)
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
    reply_port, remote_port = free_udp_port(), free_udp_port()
    pd = pd_runner(
        [PATCHES / "dkvae.pd", UI_REMOTE],
        f"dkvae-connect 127.0.0.1 {daemon.osc_port} {reply_port}",
        "dkvae-print 1",
        f"harness-listen {remote_port}",
    )
    ui = Fudi(remote_port)
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
# What a patch can send is worked out from the patch itself: every [oscformat] (Pd) and every
# [udpsend] (Max) is traced back through the objects that feed it to the shapes of the messages
# it can receive, and each shape is compared with the signature in docs/osc.md.


@dataclass(frozen=True)
class Atom:
    """One element of a message: `kind` f (float), i (int), s (symbol) or ? (unknown)."""

    kind: str
    value: str | None = None  # the literal text, where the patch fixes it
    many: bool = False  # stands for any number of such elements (an array, a list inlet)


Shape = tuple[Atom, ...]
UNKNOWN: Shape = (Atom("?", many=True),)
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Sent:
    """One message a patch can send: where from, the OSC address and its arguments' types."""

    where: str
    address: str
    args: Shape


def atom_of(token: str, integers: bool) -> Atom:
    """A literal token. Pd numbers are floats; Max tells ints (`3`) from floats (`3.`)."""
    if NUMBER.match(token):
        is_int = integers and re.match(r"^[-+]?\d+$", token) is not None
        return Atom("i" if is_int else "f", token)
    return Atom("s", token)


def fits(signature: str, args: Shape) -> str | None:
    """None if OSC arguments of these types fit the signature, else what is wrong."""
    params = [
        (name, kind[0], kind[1:]) for name, _, kind in (t.partition(":") for t in signature.split())
    ]

    def type_ok(kind: str, atom: Atom) -> bool:
        integral_literal = (
            atom.kind == "f" and atom.value is not None and float(atom.value).is_integer()
        )
        if kind == "i":
            return atom.kind == "i" or integral_literal
        if kind == "f":
            return atom.kind in ("f", "i")
        if kind == "s":
            return atom.kind == "s"
        return atom.kind in ("i", "s") or integral_literal  # n

    def name_of(atom: Atom) -> str:
        return {"i": "an int", "f": "a float", "s": "a string"}.get(atom.kind, "an unknown atom")

    index = 0
    for name, kind, repeat in params:
        if repeat == "*":
            for atom in args[index:]:
                if not type_ok(kind, atom):
                    return f"{name}: {name_of(atom)} where {kind} values go"
            index = len(args)
            break
        if index >= len(args):
            if repeat == "?":
                continue
            return f"missing argument {name}:{kind}"
        atom = args[index]
        if atom.many:
            return f"{name}: a list of any length where one {kind} goes"
        if not type_ok(kind, atom):
            return f"{name}: {name_of(atom)} where {kind} goes"
        index += 1
    if index < len(args):
        return f"too many arguments: {len(args) - index} more than `{signature}` takes"
    return None


def check(sent: list[Sent]) -> list[str]:
    """Every message that does not exist in docs/osc.md or does not fit its signature."""
    table = documented_addresses()
    problems = []
    for message in sent:
        signature = table.get(message.address)
        if signature is None:
            problems.append(f"{message.where}: {message.address} is not in docs/osc.md")
            continue
        wrong = fits(signature, message.args)
        if wrong:
            types = " ".join(a.kind + ("*" if a.many else "") for a in message.args)
            problems.append(
                f"{message.where}: {message.address} [{types}] against `{signature}`: {wrong}"
            )
    return problems


class Flow:
    """Shapes of the messages leaving each outlet of a patch, worked out from its sources.

    Subclasses say what one object does (`outlet_shapes`); this class follows the wires and
    guards against loops (a loop adds nothing new).
    """

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int, int], list[Shape]] = {}

    def sources(self, canvas: int, box: int, inlet: int) -> list[tuple[int, int, int]]:
        raise NotImplementedError

    def outlet_shapes(self, canvas: int, box: int, outlet: int) -> list[Shape]:
        raise NotImplementedError

    def inlet(self, canvas: int, box: int, inlet: int) -> list[Shape]:
        shapes: list[Shape] = []
        for source in self.sources(canvas, box, inlet):
            for shape in self.out(*source):
                if shape not in shapes:
                    shapes.append(shape)
        return shapes

    def out(self, canvas: int, box: int, outlet: int) -> list[Shape]:
        key = (canvas, box, outlet)
        if key not in self._memo:
            self._memo[key] = []  # a loop back to here contributes nothing
            self._memo[key] = self.outlet_shapes(canvas, box, outlet)
        return self._memo[key]


def substitute(tokens: list[str], shape: Shape, integers: bool) -> Shape:
    """A message box's tokens with $1.. taken from one incoming shape."""
    atoms: list[Atom] = []
    for token in tokens:
        dollar = re.fullmatch(r"\$(\d+)", token)
        if dollar:
            n = int(dollar.group(1)) - 1
            fixed = [a for a in shape if not a.many]
            atoms.append(fixed[n] if n < len(fixed) else Atom("?"))
        else:
            atoms.append(atom_of(token, integers))
    return tuple(atoms)


def split_shape(shape: Shape, n: int) -> tuple[Shape, Shape] | None:
    """The first n elements and the rest, or None if the shape may be shorter than n."""
    head: list[Atom] = []
    for index, atom in enumerate(shape):
        if len(head) == n:
            return tuple(head), shape[index:]
        if atom.many:
            return tuple(head) + (Atom(atom.kind),) * (n - len(head)), shape[index:]
        head.append(atom)
    return (tuple(head), ()) if len(head) == n else None


# ------------------------------------------------------------------ Pd
@dataclass
class PdBox:
    kind: str  # obj, msg, floatatom, symbolatom, text, subpatch, graph
    atoms: list[str]
    x: int = 0
    child: int | None = None  # the canvas of a subpatch


@dataclass
class PdCanvas:
    boxes: list[PdBox]
    wires: list[tuple[int, int, int, int]]
    parent: tuple[int, int] | None = None  # (canvas, box) of the subpatch holding this one


def pd_records(text: str) -> list[list[str]]:
    """Pd's file format: records end with an unescaped `;`; escapes \\$ \\, \\; are undone."""
    records = []
    for record in re.split(r"(?<!\\);", text):
        record = re.sub(r"(?<!\\),\s*f\s+\d+\s*$", "", record.strip())  # a box's width
        if not record:
            continue
        tokens = record.split()
        records.append(
            [t.replace("\\$", "$").replace("\\,", ",").replace("\\;", ";") for t in tokens]
        )
    return records


def parse_pd(text: str) -> list[PdCanvas]:
    canvases: list[PdCanvas] = []
    stack: list[int] = []
    for tokens in pd_records(text):
        head = tokens[:2]
        if head == ["#N", "canvas"]:
            parent = (stack[-1], len(canvases[stack[-1]].boxes)) if stack else None
            canvases.append(PdCanvas([], [], parent))
            stack.append(len(canvases) - 1)
            continue
        if not stack or tokens[0] != "#X":
            continue
        canvas = canvases[stack[-1]]
        kind = tokens[1]
        if kind == "restore":
            child = stack.pop()
            box = PdBox(
                "subpatch" if tokens[4:5] == ["pd"] else "graph", tokens[4:], int(tokens[2])
            )
            box.child = child
            canvases[stack[-1]].boxes.append(box)
        elif kind == "connect":
            a, ao, b, bi = (int(t) for t in tokens[2:6])
            canvas.wires.append((a, ao, b, bi))
        elif kind in ("obj", "msg", "floatatom", "symbolatom", "text", "listbox"):
            x = int(float(tokens[2])) if len(tokens) > 2 else 0
            canvas.boxes.append(PdBox(kind, tokens[4:], x))
    return canvases


PD_FLOAT_OBJECTS = {
    "f", "float", "i", "int", "+", "-", "*", "/", "==", "!=", ">", "<", ">=", "<=", "clip",
    "moses", "mod", "div", "%", "max", "min", "abs", "wrap", "random", "expr", "change", "v",
    "value", "tgl", "nbx", "hsl", "vsl", "hradio", "vradio", "array size", "mtof", "ftom",
}  # fmt: skip
PD_BANG_OBJECTS = {"loadbang", "bng", "metro", "delay", "del", "bang", "b", "timer"}
# Objects that send only when something reaches them: with no wire in, they never send.
PD_WAITING = {
    "bang", "b", "t", "trigger", "f", "float", "symbol", "makefilename", "pack", "unpack",
    "route", "sel", "select", "moses", "list", "spigot", "gate", "metro", "delay", "del",
}  # fmt: skip
PD_TYPES = {"f": "f", "float": "f", "s": "s", "symbol": "s"}
IEM_SEND = {"bng": 5, "tgl": 3, "nbx": 7, "hsl": 7, "vsl": 7, "hradio": 5, "vradio": 5}


class PdFlow(Flow):
    def __init__(self, canvases: list[PdCanvas]) -> None:
        super().__init__()
        self.canvases = canvases
        self.senders: dict[str, list[tuple[int, int, Shape | None]]] = {}
        for c, canvas in enumerate(canvases):
            for b, box in enumerate(canvas.boxes):
                for name, shape in self._sends(box):
                    self.senders.setdefault(name, []).append((c, b, shape))

    def _sends(self, box: PdBox) -> list[tuple[str, Shape | None]]:
        """(name, shape) for what this box sends by name; shape None: the box's inlet."""
        atoms = box.atoms
        if box.kind == "obj" and atoms[:1] in (["s"], ["send"]) and len(atoms) > 1:
            return [(atoms[1], None)]
        if box.kind == "obj" and atoms and atoms[0] in IEM_SEND and len(atoms) > IEM_SEND[atoms[0]]:
            name = atoms[IEM_SEND[atoms[0]]]
            return [(name, () if atoms[0] == "bng" else (Atom("f"),))]
        if box.kind in ("floatatom", "symbolatom") and len(atoms) > 6 and atoms[6] != "-":
            return [(atoms[6], (Atom("f") if box.kind == "floatatom" else Atom("s"),))]
        if box.kind == "msg" and ";" in atoms:
            out: list[tuple[str, Shape | None]] = []
            for part in " ".join(atoms).split(";")[1:]:
                words = part.split()
                if words:
                    out.append((words[0], substitute(words[1:], (), False)))
            return out
        return []

    def sources(self, canvas: int, box: int, inlet: int) -> list[tuple[int, int, int]]:
        wires = self.canvases[canvas].wires
        return [(canvas, a, ao) for a, ao, b, bi in wires if b == box and bi == inlet]

    def outlet_shapes(self, canvas: int, box_index: int, outlet: int) -> list[Shape]:
        box = self.canvases[canvas].boxes[box_index]
        inlet = lambda n=0: self.inlet(canvas, box_index, n)  # noqa: E731
        if box.kind == "floatatom":
            return [(Atom("f"),)]
        if box.kind == "symbolatom":
            return [(Atom("s"),)]
        if box.kind == "msg":
            return self._message(box, inlet())
        if box.kind == "subpatch":
            assert box.child is not None
            return self._subpatch_outlet(box.child, outlet)
        if box.kind != "obj" or not box.atoms:
            return [UNKNOWN]
        name, args = box.atoms[0], box.atoms[1:]
        two = " ".join(box.atoms[:2])
        if name in PD_WAITING and all(b != box_index for _, _, b, _ in self.canvases[canvas].wires):
            return []
        if name in ("inlet",):
            return self._inlet_of(canvas, box_index)
        if name in ("r", "receive") and args:
            return self._received(args[0])
        if two in PD_FLOAT_OBJECTS or name in PD_FLOAT_OBJECTS:
            return [(Atom("f"),)]
        if name in ("symbol", "makefilename"):
            return [(Atom("s"),)]
        if name in PD_BANG_OBJECTS:
            return [()]
        if two == "array get":
            return [(Atom("f", many=True),)]
        if name in ("t", "trigger"):
            kind = args[len(args) - 1 - outlet] if outlet < len(args) else "a"
            if kind in ("b", "bang"):
                return [()]
            if kind in ("f", "float"):
                return [(Atom("f"),)]
            if kind in ("s", "symbol"):
                return [(Atom("s"),)]
            return inlet()
        if name == "pack":
            return [tuple(Atom(PD_TYPES.get(a, "f" if NUMBER.match(a) else "?")) for a in args)]
        if name == "unpack":
            kind = args[outlet] if outlet < len(args) else "f"
            return [(Atom(PD_TYPES.get(kind, "f" if NUMBER.match(kind) else "?")),)]
        if name == "route":
            return self._route(args, inlet(), outlet)
        if name in ("sel", "select"):
            return [()] if outlet < max(1, len(args)) else inlet()
        if name == "list":
            return self._list(args, canvas, box_index, outlet)
        if name in ("spigot", "gate", "print"):
            return inlet()
        return [
            UNKNOWN
        ]  # an abstraction, a network object, or something this checker does not know

    def _message(self, box: PdBox, incoming: list[Shape]) -> list[Shape]:
        text = " ".join(box.atoms).split(";")[0]
        shapes = []
        clicked = [] if "$" in text else [()]  # a click sends the text as it stands
        for shape in incoming + clicked:
            for part in text.split(","):
                words = part.split()
                if not words or words[0] == "set":
                    continue
                if words[0] in ("list", "symbol", "float", "bang"):
                    words = words[1:]
                shapes.append(substitute(words, shape, False))
        return shapes

    def _route(self, args: list[str], incoming: list[Shape], outlet: int) -> list[Shape]:
        shapes: list[Shape] = []
        types = {"float": "f", "symbol": "s", "bang": "", "list": "l", "anything": "a"}
        if outlet >= len(args):  # the reject outlet
            return incoming
        selector = args[outlet]
        for shape in incoming:
            first = shape[0] if shape else None
            if selector in types and all(a in types for a in args):
                kind = types[selector]
                if kind == "" and (first is None or first.many):
                    shapes.append(())
                elif kind in ("f", "s") and first is not None:
                    if first.kind in (kind, "?"):
                        shapes.append((Atom(kind, None if first.many else first.value),))
                elif kind in ("l", "a") and shape:
                    shapes.append(shape)
            elif first is not None and first.value in (None, selector):
                shapes.append(shape[1:] if not first.many else shape)
        return shapes

    def _list(self, args: list[str], canvas: int, box: int, outlet: int) -> list[Shape]:
        op = args[0] if args and not NUMBER.match(args[0]) else "append"
        rest = args[1:] if args and not NUMBER.match(args[0]) else args
        left = self.inlet(canvas, box, 0)
        if op in ("prepend", "append"):
            right = self.inlet(canvas, box, 1) or [substitute(rest, (), False)]
            if op == "prepend":
                return [r + s for r in right for s in left]
            return [s + r for s in left for r in right]
        if op == "trim":
            return left
        if op == "split" and rest and NUMBER.match(rest[0]):
            n = int(float(rest[0]))
            shapes = []
            for shape in left:
                parts = split_shape(shape, n)
                if outlet == 2:
                    shapes.append(shape)
                elif parts is not None:
                    shapes.append(parts[outlet])
            return shapes
        if op == "length":
            return [(Atom("f"),)]
        return [UNKNOWN]

    def _received(self, name: str) -> list[Shape]:
        shapes: list[Shape] = []
        for c, b, shape in self.senders.get(name, []):
            found = self.inlet(c, b, 0) if shape is None else [shape]
            shapes += [s for s in found if s not in shapes]
        if not name.startswith("$0"):
            shapes.append(UNKNOWN)  # a global name: anything outside this file may send to it
        return shapes

    def _inlet_of(self, canvas: int, box: int) -> list[Shape]:
        """An [inlet]: in a subpatch, what its parent sends there; in an abstraction, anything."""
        parent = self.canvases[canvas].parent
        if parent is None:
            return [UNKNOWN]
        inlets = sorted(
            (b.x, i)
            for i, b in enumerate(self.canvases[canvas].boxes)
            if b.kind == "obj" and b.atoms[:1] == ["inlet"]
        )
        index = [i for _, i in inlets].index(box)
        return self.inlet(parent[0], parent[1], index)

    def _subpatch_outlet(self, child: int, outlet: int) -> list[Shape]:
        outlets = sorted(
            (b.x, i)
            for i, b in enumerate(self.canvases[child].boxes)
            if b.kind == "obj" and b.atoms[:1] == ["outlet"]
        )
        if outlet >= len(outlets):
            return []
        return self.inlet(child, outlets[outlet][1], 0)


def pd_sent(text: str, name: str) -> list[Sent]:
    """Every OSC message a Pd patch can send: the [oscformat] objects and what feeds them."""
    canvases = parse_pd(text)
    flow = PdFlow(canvases)
    sent = []
    for c, canvas in enumerate(canvases):
        for b, box in enumerate(canvas.boxes):
            if box.kind != "obj" or box.atoms[:1] != ["oscformat"]:
                continue
            args = box.atoms[1:]
            fmt = ""
            if args[:1] == ["-f"]:
                fmt, args = args[1], args[2:]
            address = "/" + "/".join(args)
            where = f"{name}: [oscformat {' '.join(box.atoms[1:])}]"
            shapes = flow.inlet(c, b, 0)
            if not shapes:
                sent.append(Sent(where + " (nothing feeds it)", address, (Atom("?"),)))
            for shape in shapes:
                typed = []
                for position, atom in enumerate(shape):
                    kind = fmt[position] if position < len(fmt) else atom.kind
                    if position < len(fmt) and kind == "i" and atom.kind == "s":
                        kind = "?"  # Pd would send 0 for a symbol formatted as an int
                    typed.append(Atom(kind, atom.value, atom.many))
                sent.append(Sent(where, address, tuple(typed)))
    return sent


# ------------------------------------------------------------------ Max
MAX_CONFIG = {"host", "port", "maxqueuesize", "maxpacketsize"}  # udpsend's own messages
# As PD_WAITING: objects that send only when something reaches them.
MAX_WAITING = {
    "prepend", "append", "pack", "pak", "unpack", "t", "trigger", "i", "int", "f", "float",
    "tosymbol", "sprintf", "route", "gate", "onebang", "speedlim", "defer", "deferlow",
    "change", "metro", "delay", "b", "bangbang", "+", "-", "*", "/", "%",
}  # fmt: skip


@dataclass
class MaxPatcher:
    boxes: list[dict]
    index: dict[str, int]
    wires: list[tuple[int, int, int, int]]


def parse_max(document: dict) -> list[MaxPatcher]:
    """The patcher and every patcher inside it (each is checked on its own)."""
    found: list[MaxPatcher] = []

    def walk(patcher: dict) -> None:
        boxes = [entry["box"] for entry in patcher.get("boxes", [])]
        index = {box["id"]: i for i, box in enumerate(boxes)}
        wires = []
        for entry in patcher.get("lines", []):
            line = entry["patchline"]
            (a, ao), (b, bi) = line["source"], line["destination"]
            wires.append((index[a], int(ao), index[b], int(bi)))
        found.append(MaxPatcher(boxes, index, wires))
        for box in boxes:
            if isinstance(box.get("patcher"), dict):
                walk(box["patcher"])

    walk(document["patcher"])
    return found


def max_atom(token: str) -> Atom:
    if token in ("i", "int"):
        return Atom("i")
    if token in ("f", "float"):
        return Atom("f")
    if NUMBER.match(token):
        return atom_of(token, integers=True)
    return Atom("s", None if token in ("s", "sym", "symbol") else token)


class MaxFlow(Flow):
    def __init__(self, patcher: MaxPatcher) -> None:
        super().__init__()
        self.patcher = patcher

    def sources(self, canvas: int, box: int, inlet: int) -> list[tuple[int, int, int]]:
        return [(0, a, ao) for a, ao, b, bi in self.patcher.wires if b == box and bi == inlet]

    def outlet_shapes(self, canvas: int, box_index: int, outlet: int) -> list[Shape]:
        box = self.patcher.boxes[box_index]
        kind = box["maxclass"]
        inlet = lambda n=0: self.inlet(0, box_index, n)  # noqa: E731
        if kind in ("number", "toggle", "live.numbox") and outlet == 0:
            return [(Atom("i"),)]
        if kind == "flonum" and outlet == 0:
            return [(Atom("f"),)]
        if kind in ("slider", "dial"):
            return [(Atom("f" if box.get("floatoutput") else "i"),)]
        if kind in ("live.dial", "live.slider"):
            return [(Atom("f"),)]
        if kind == "multislider":
            return [(Atom("f", many=True),)]
        if kind == "button":
            return [()]
        if kind == "umenu":
            return [(Atom("i"),)] if outlet == 0 else [(Atom("s"),)] if outlet == 1 else [UNKNOWN]
        if kind == "message":
            return self._message(box.get("text", ""), inlet())
        if kind != "newobj":
            return [UNKNOWN]
        words = box.get("text", "").split()
        name, args = (words[0], words[1:]) if words else ("", [])
        if name in MAX_WAITING and all(b != box_index for _, _, b, _ in self.patcher.wires):
            return []
        if name == "prepend":
            return [tuple(max_atom(a) for a in args) + s for s in inlet()]
        if name == "append":
            return [s + tuple(max_atom(a) for a in args) for s in inlet()]
        if name in ("pack", "pak"):
            return [tuple(max_atom(a) for a in args)]
        if name == "unpack":
            return [(max_atom(args[outlet]),)] if outlet < len(args) else [UNKNOWN]
        if name in ("t", "trigger"):
            arg = args[outlet] if outlet < len(args) else "a"
            if arg in ("b", "bang"):
                return [()]
            if arg in ("l", "a", "list", "anything"):
                return inlet()
            return [(max_atom(arg),)]
        if name in ("i", "int"):
            return [(Atom("i"),)]
        if name in ("f", "float"):
            return [(Atom("f"),)]
        if name in ("+", "-", "*", "/", "%"):
            floaty = any("." in a for a in args)
            return [(Atom("f" if floaty else "i"),)]
        if name in ("tosymbol", "sprintf"):
            return [(Atom("s"),)]
        if name in ("loadbang", "metro", "delay", "b", "bangbang"):
            return [()]
        if name == "loadmess":
            return [tuple(max_atom(a) for a in args)]
        if name == "route":
            if outlet >= len(args):
                return inlet()
            shapes = []
            for shape in inlet():
                first = shape[0] if shape else None
                if first is not None and first.value in (None, args[outlet]):
                    shapes.append(shape[1:] if not first.many else shape)
            return shapes
        if name in ("gate", "onebang", "speedlim", "defer", "deferlow", "change"):
            return inlet(1 if name == "gate" else 0)
        return [UNKNOWN]

    def _message(self, text: str, incoming: list[Shape]) -> list[Shape]:
        """A message box: its text (with $1..) for each message in; `set ...` replaces it."""
        text = text.split(";")[0]
        shapes: list[Shape] = []
        clicked = [] if "$" in text else [()]  # a click sends the text as it stands
        for shape in incoming + clicked:
            if shape and shape[0].value == "set":
                shapes.append(shape[1:])
                continue
            for part in text.split(","):
                words = part.split()
                if words and words[0] != "set":
                    shapes.append(substitute(words, shape, True))
        return shapes


def max_sent(document: dict, name: str) -> list[Sent]:
    """Every OSC message a Max patch can send: what reaches the left inlet of a [udpsend]."""
    sent = []
    for patcher in parse_max(document):
        flow = MaxFlow(patcher)
        for b, box in enumerate(patcher.boxes):
            if box["maxclass"] != "newobj" or not box.get("text", "").startswith("udpsend"):
                continue
            for source in flow.sources(0, b, 0):
                source_box = patcher.boxes[source[1]]
                where = f"{name}: [{source_box.get('text') or source_box['maxclass']}]"
                for shape in flow.out(*source):
                    head = shape[0] if shape else None
                    if head is not None and head.value in MAX_CONFIG:
                        continue
                    if head is None or head.kind != "s" or not (head.value or "").startswith("/"):
                        sent.append(Sent(where + " (no OSC address)", "?", shape))
                        continue
                    sent.append(Sent(where, head.value or "", shape[1:]))
    return sent


# ------------------------------------------------------------------ the static tests
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
}
# Pd names that are not $0- local: the public interface of the patches (patches/README.md)
PUBLIC_PD_NAMES = {"dkvae-osc-out", "dkvae-reply", "dkvae-connect", "dkvae-print", "dkvae-ui"}


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
PdCommand = tuple[int, str | None]  # an abstraction's inlet and a selector (None: any other)


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


def pd_reaches(canvas: PdCanvas, start: tuple[int, int]) -> set[int]:
    """The boxes a message from outlet `start` (box, outlet) can reach: along the wires, and
    from an [s NAME] to each [r NAME] of the canvas."""
    receivers: dict[str, list[int]] = {}
    for b, box in enumerate(canvas.boxes):
        if box.kind == "obj" and box.atoms[:1] in (["r"], ["receive"]) and len(box.atoms) > 1:
            receivers.setdefault(box.atoms[1], []).append(b)
    seen: set[int] = set()
    todo = [b for a, ao, b, _ in canvas.wires if (a, ao) == start]
    while todo:
        b = todo.pop()
        if b in seen:
            continue
        seen.add(b)
        todo += [d for a, _, d, _ in canvas.wires if a == b]
        atoms = canvas.boxes[b].atoms
        if canvas.boxes[b].kind == "obj" and atoms[:1] in (["s"], ["send"]) and len(atoms) > 1:
            todo += receivers.get(atoms[1], [])
    return seen


def pd_selector(words: list[str]) -> str:
    """The selector Pd gives a message: a leading number makes it a float or a list."""
    if NUMBER.match(words[0]):
        return "float" if len(words) == 1 else "list"
    return words[0]


def pd_commands(path: Path) -> dict[PdCommand, set[str]]:
    """What an abstraction takes, (inlet, selector) -> what that command reaches: the OSC
    addresses of the [oscformat]s, and "[netsend]" for the connection itself. Inlets are
    numbered left to right; the selectors are those of the [route] an inlet feeds, and None
    stands for anything else, where the [route]'s last outlet (or an inlet with no [route]
    after it) leads somewhere."""
    canvases = parse_pd(path.read_text())
    assert len(canvases) == 1, f"{path.name}: follow its subpatches too"
    canvas = canvases[0]
    inlets = sorted((box.x, b) for b, box in enumerate(canvas.boxes) if box.atoms == ["inlet"])
    commands: dict[PdCommand, set[str]] = {}
    for number, (_, inlet) in enumerate(inlets):
        routes = [
            b
            for a, _, b, _ in canvas.wires
            if a == inlet and canvas.boxes[b].atoms[:1] == ["route"]
        ]
        selectors = canvas.boxes[routes[0]].atoms[1:] if routes else []
        outlets = [(routes[0], n) for n in range(len(selectors) + 1)] if routes else [(inlet, 0)]
        for selector, outlet in zip([*selectors, None], outlets, strict=True):
            reached = set()
            for b in pd_reaches(canvas, outlet):
                atoms = canvas.boxes[b].atoms
                if atoms[:1] == ["oscformat"]:
                    words = atoms[3:] if atoms[1:2] == ["-f"] else atoms[1:]
                    reached.add("/" + "/".join(words))
                elif atoms[:1] == ["netsend"]:
                    reached.add("[netsend]")
            if selector is not None or reached:
                commands[number, selector] = reached
    return commands


def pd_help_shows(
    path: Path, abstraction: str, commands: set[PdCommand]
) -> dict[PdCommand, list[str]]:
    """The messages a help patch's message boxes send to [abstraction ...], by the command
    they are to it: (inlet, selector or None) -> the messages."""
    canvas = parse_pd(path.read_text())[0]
    shown: dict[PdCommand, list[str]] = {}
    for a, _, b, inlet in canvas.wires:
        source, target = canvas.boxes[a], canvas.boxes[b]
        if source.kind != "msg" or target.kind != "obj" or target.atoms[:1] != [abstraction]:
            continue
        for part in " ".join(source.atoms).split(";")[0].split(","):
            words = part.split()
            if not words:
                continue
            selector = pd_selector(words)
            key = (inlet, selector if (inlet, selector) in commands else None)
            shown.setdefault(key, []).append(part.strip())
    return shown


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


def max_replies(patcher: MaxPatcher) -> dict[str, tuple[int, int]]:
    """Each address a [route] right after a [udpreceive] picks out: its (box, outlet)."""
    routed: dict[str, tuple[int, int]] = {}
    for r, _, b, _ in patcher.wires:
        receiver, box = patcher.boxes[r], patcher.boxes[b]
        words = box.get("text", "").split()
        if receiver.get("text", "").startswith("udpreceive") and words[:1] == ["route"]:
            routed.update({address: (b, n) for n, address in enumerate(words[1:])})
    return routed


def max_reaches(patcher: MaxPatcher, start: tuple[int, int], name: str) -> bool:
    """Whether a wire path leads from outlet `start` (box, outlet) to an object `name`."""
    seen: set[int] = set()
    todo = [b for a, ao, b, _ in patcher.wires if (a, ao) == start]
    while todo:
        box = todo.pop()
        if patcher.boxes[box].get("text", "").split()[:1] == [name]:
            return True
        if box not in seen:
            seen.add(box)
            todo += [b for a, _, b, _ in patcher.wires if a == box]
    return False


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
