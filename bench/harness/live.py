"""Drive a real daemon from a test: JACK server, daemon process, OSC and MIDI senders, capture.

Used by tests/ and by bench/ (the latency script), so both measure the same way.
"""

from __future__ import annotations

import gc
import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

_names = itertools.count()
T = TypeVar("T")


def keep_collector_short() -> None:
    """Move every object alive now out of this process's garbage collections.

    A JACK client of ours (capture, MIDI sender) runs a Python callback that needs this
    process's GIL each period; a full collection over a test process's heap (TensorFlow and
    onnx loaded) holds it for tens of milliseconds, the client is late, and JACK counts an
    xrun, and the capture a gap, that the daemon did not cause. The daemon does the same."""
    gc.collect()
    gc.freeze()


def jack_running() -> bool:
    if shutil.which("jack_lsp") is None:
        return False
    return subprocess.run(["jack_lsp"], capture_output=True, timeout=10).returncode == 0


def jackd_log_path(name: str | None = None) -> Path:
    """Where `start_jackd` (and scripts/jack-dummy.sh, for the default server) write the log."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"dkvae-jackd{'-' + name if name else ''}.log"


def running_jackd() -> tuple[Path, list[str]] | None:
    """The /proc folder and command line of the running jackd this process talks to (the
    default server, or the one JACK_DEFAULT_SERVER names)."""
    wanted = os.environ.get("JACK_DEFAULT_SERVER", "default")
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "comm").read_text().strip() != "jackd":
                continue
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
        except OSError:
            continue
        name = args[args.index("-n") + 1] if "-n" in args[:-1] else "default"
        if name == wanted:
            return proc, args
    return None


def running_jackd_log() -> Path | None:
    """The file that the running jackd writes its output to, if it is a regular file."""
    found = running_jackd()
    if found is None:
        return None
    try:
        target = Path(os.readlink(found[0] / "fd" / "2"))
    except OSError:
        return None
    return target if target.is_file() else None


# The period of the tests' JACK servers (scripts/test.sh passes it on to scripts/jack-dummy.sh).
# Not 64 (the daemon's own default, and the benchmarks'): on this 2-core VM a dummy server at 64
# misses about 5 cycles a second with only an idle daemon in its graph (bench/swap.py, 23:12: 48
# xruns in 10 idle seconds, JACK naming the daemon, whose callback is C), and in the VM's noisy
# spells at 128 too (8 a second). A test that compares audio sample for sample, or looks for a
# gap, then tests the VM. At 256 the same benchmark had none, and in the model swap test (23:29)
# JACK named the daemon in none of 6 swaps, where at 128 (23:28) it named it 40 times in 17.
# Latency at 64 is the benchmarks' to measure.
TEST_PERIOD = int(os.environ.get("JACK_PERIOD", "256"))
# The port limit of the servers started here, as scripts/jack-dummy.sh sets it: it sizes the
# shared segment that every client (the daemon too) keeps resident.
PORT_MAX = int(os.environ.get("JACK_PORT_MAX", "256"))


def jackd_command(rate: int, period: int, name: str | None = None) -> list[str]:
    """The command line of a dummy-driver JACK server as the tests and benchmarks start it
    (named `name`, else the default server)."""
    args = ["jackd", "--port-max", str(PORT_MAX)] + (["-n", name] if name else [])
    args += [] if os.geteuid() == 0 else ["--no-realtime"]
    return [*args, "-d", "dummy", "-r", str(rate), "-p", str(period)]


def start_jackd(
    rate: int = 48000, period: int = TEST_PERIOD, name: str | None = None
) -> subprocess.Popen:
    """A JACK server on the dummy driver (named `name`, else the default server), ready."""
    if shutil.which("jackd") is None:
        raise RuntimeError("jackd is not installed (apt-get install jackd2)")
    log = open(jackd_log_path(name), "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        jackd_command(rate, period, name), stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    log.close()
    env = dict(os.environ, **({"JACK_DEFAULT_SERVER": name} if name else {}))
    subprocess.run(["jack_wait", "-w", "-t", "10"], capture_output=True, env=env)
    return proc


def stop_jackd(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=5)
    time.sleep(1.2)  # JACK needs a moment before another server can start


@contextmanager
def jack_server(rate: int = 48000, period: int = TEST_PERIOD) -> Iterator[None]:
    """Use the JACK server already running, or start a dummy-driver server for the duration."""
    if jack_running():
        yield
        return
    proc = start_jackd(rate, period)
    try:
        yield
    finally:
        stop_jackd(proc)


class LateClients:
    """Which JACK clients the server names for each xrun from now on ("client = X was not
    finished"), read from the running jackd's log. It tells the daemon's own client from a
    test's or benchmark's: all are in the same graph, and a late one makes every client count
    an xrun (and a late capture records a gap)."""

    PATTERN = re.compile(rb"client = (\S+) was not finished")

    def __init__(self) -> None:
        found = running_jackd_log()
        self.path = found or Path("/nonexistent")
        self._start = found.stat().st_size if found else None

    def counts(self, daemon_client: str) -> dict[str, int] | None:
        """{"daemon": its JACK client (audio and MIDI in), "others": the rest}; None when no
        running jackd writes a log file."""
        if self._start is None:
            return None
        with open(self.path, "rb") as log:
            log.seek(self._start)
            names = self.PATTERN.findall(log.read())
        counts = {"daemon": 0, "others": 0}
        for raw in names:
            name = raw.decode(errors="replace")
            counts["daemon" if name == daemon_client else "others"] += 1
        return counts


class XrunWatch:
    """Whether JACK reported an xrun since this was made: the capture counted one, or the
    server's log named a late client (the daemon, the capture or another)."""

    def __init__(self, capture: Capture | MidiCapture, daemon_client: str) -> None:
        self._capture = capture
        self._daemon_client = daemon_client
        self._late = LateClients()
        self._xruns = capture.xruns

    def blamed(self) -> dict[str, int] | None:
        return self._late.counts(self._daemon_client)

    def clean(self) -> bool:
        time.sleep(0.05)  # for JACK to report an xrun in the window's last cycles
        blamed = self.blamed()
        return self._capture.xruns == self._xruns and not (blamed and any(blamed.values()))


def without_xrun(
    daemon: Daemon, capture: Capture, check: Callable[[], T], budget_s: float = 30.0
) -> T:
    """`check()`, its result or its failure, from a window in which JACK reported no xrun.

    On this VM JACK misses cycles in idle windows too, in noisy spells several times a second.
    In such a cycle the capture records a gap, the daemon's sound comes a period late from
    there on, and in JACK's default mode a client that was late misses that cycle's MIDI (the
    soak counts such notes). So a check run in a window with an xrun, passed or failed, is run
    again, after a /dkvae/stop, for up to `budget_s`. A daemon that makes an xrun every time
    fails here; one that plays wrong plays wrong in the clean window too."""
    deadline = time.monotonic() + budget_s
    late_clients = []
    while True:
        watch = XrunWatch(capture, daemon.client_name)
        try:
            result, failure = check(), None
        except AssertionError as error:
            failure = error
        if watch.clean():
            if failure is not None:
                raise failure
            return result
        late_clients.append(watch.blamed())
        if time.monotonic() > deadline:
            raise AssertionError(
                f"an xrun in each of {len(late_clients)} tries in {budget_s:.0f} s "
                f"(late clients: {late_clients}); the last try: {failure or 'passed'}"
            )
        daemon.osc.send("/dkvae/stop")  # nothing rings into the next try
        time.sleep(0.2)


def _ephemeral_ports() -> range:
    """The ports the kernel hands to sockets bound to port 0 (Linux; its default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


PORT_RETRIES = 3  # starts of a daemon whose OSC port another socket took first


def free_udp_port() -> int:
    """A UDP port free now, from below the ephemeral range: every socket bound to port 0 (the
    harness's peers, the daemon's reply sockets) could take an ephemeral one before the process
    it is meant for binds it."""
    below = range(10000, max(10000, _ephemeral_ports().start))
    for port in [*random.sample(below, min(200, len(below))), 0]:  # 0: an ephemeral one
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free UDP port")


def osc_datagram(address: str, *args: Any) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return bytes(builder.build().dgram)


class OscPeer:
    """A UDP socket that sends to the daemon and receives its replies."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2.0)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(osc_datagram(address, *args), self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def receive(self, timeout: float = 2.0) -> OscMessage:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        return OscMessage(data)

    def reply(self, address: str, timeout: float = 10.0) -> list[Any]:
        """The params of the next reply with this address, skipping others; an error reply
        (`/dkvae/error`) fails, and so does waiting longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.receive(timeout=max(0.01, deadline - time.monotonic()))
            if msg.address == "/dkvae/error":
                raise AssertionError(f"error reply: {msg.params}")
            if msg.address == address:
                return list(msg.params)

    def drain(self) -> None:
        self.sock.settimeout(0.05)
        try:
            while True:
                self.sock.recvfrom(65536)
        except TimeoutError:
            pass

    def status(self) -> dict[str, Any]:
        """Ask /dkvae/status and collect the replies up to /dkvae/status/end."""
        self.drain()
        self.send("/dkvae/status")
        result: dict[str, Any] = {}
        while True:
            msg = self.receive()
            if msg.address == "/dkvae/status/end":
                return result
            if msg.address.startswith("/dkvae/status/"):
                result[msg.address.removeprefix("/dkvae/status/")] = msg.params[0]

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """A `dkvae-live` process with its own client name and OSC port."""

    def __init__(self, model: Path | None, *extra: str, osc_port: int | None = None) -> None:
        self.client_name = f"dkvae-test-{os.getpid()}-{next(_names)}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.client_name}.log"
        self._args = [*extra] + (["--model", str(model)] if model is not None else [])
        self._port_chosen = osc_port is None  # by the harness: another may be tried
        self._start(osc_port or free_udp_port())

    def _start(self, osc_port: int) -> None:
        self.osc_port = osc_port
        args = [sys.executable, "-m", "dkvae_live", "--client-name", self.client_name]
        args += ["--osc-port", str(osc_port), *self._args]
        self._log = open(self.log_path, "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.osc = OscPeer(osc_port)

    def _port_taken(self) -> bool:
        """Whether the daemon exited because its OSC port was taken after the harness chose
        it (the message is dkvae_live.osc_in's)."""
        return self._port_chosen and "cannot listen for OSC" in self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        retries = PORT_RETRIES
        while time.monotonic() < deadline:
            if " ready: " in self.log():
                return
            if self.proc.poll() is not None:
                if retries and self._port_taken():
                    retries -= 1
                    self.osc.close()
                    self._log.close()
                    self._start(free_udp_port())
                    continue
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"daemon not ready after {timeout} s:\n{self.log()}")

    @property
    def midi_port(self) -> str:
        return f"{self.client_name}:midi_in"

    @property
    def audio_port_pattern(self) -> str:
        """A pattern matching this daemon's left output port only."""
        return f"{re.escape(self.client_name)}:out_1"

    def port_pattern(self, short_name: str) -> str:
        """A pattern matching this daemon's port `short_name` (e.g. kick_1) only."""
        return f"{re.escape(self.client_name)}:{re.escape(short_name)}$"

    def stop(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.osc.close()
        self._log.close()
        return self.proc.returncode


class Capture:
    """A JACK client recording one output port of the daemon, indexed by JACK frame time, and
    the ports matching `also` in the same cycles (`port` 1, 2, ... of `segment` and `onset`)."""

    def __init__(
        self,
        port_pattern: str = r"dkvae.*:out_1",
        seconds: float = 120.0,
        also: Sequence[str] = (),
    ) -> None:
        import jack

        keep_collector_short()
        self.client = jack.Client(
            f"dkvae-capture-{os.getpid()}-{next(_names)}", no_start_server=True
        )
        self.rate = self.client.samplerate
        patterns = [port_pattern, *also]
        self.buffers = np.zeros((len(patterns), int(seconds * self.rate)), np.float32)
        self.buffer = self.buffers[0]
        self.first_frame: int | None = None
        self.end = 0  # frames written
        self.xruns = 0  # xruns the JACK server reported while this capture ran
        self._inports = [
            self.client.inports.register("in" if i == 0 else f"in_{i + 1}")
            for i in range(len(patterns))
        ]
        self._lock = threading.Lock()
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()
        for pattern, inport in zip(patterns, self._inports, strict=True):
            sources = self.client.get_ports(pattern, is_audio=True, is_output=True)
            if not sources:
                raise RuntimeError(f"no JACK port matches {pattern!r}")
            self.client.connect(sources[-1], inport)

    def _process(self, frames: int) -> None:
        if self.first_frame is None:
            self.first_frame = self.client.last_frame_time
        start = self.client.last_frame_time - self.first_frame
        if start + frames <= self.buffers.shape[1]:
            for row, inport in zip(self.buffers, self._inports, strict=True):
                row[start : start + frames] = inport.get_array()
            self.end = start + frames

    def _xrun(self, delay: float) -> None:
        self.xruns += 1

    def now(self) -> int:
        """The current JACK frame time, in this capture's frame index."""
        assert self.first_frame is not None
        return int(self.client.frame_time) - self.first_frame

    def trigger_frame(self) -> int:
        """Where to look for the sound of a trigger sent now: the first frame of the JACK
        cycle under way (or last begun), in this capture's frame index.

        A trigger sent now can still sound from that frame, when the daemon's callback (or
        the MIDI sender's, ahead of it) has not yet run in the cycle. That can lie well before
        `now()`, which JACK estimates from the clock: in a late cycle it runs ahead, by up to
        238 frames in a probe of 400 MIDI hits with a busy loop beside it (5 of them more than
        a period). None sounded before this frame."""
        assert self.first_frame is not None
        return max(0, int(self.client.last_frame_time) - self.first_frame)

    def wait_until(self, frame: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.end < frame:
            if time.monotonic() > deadline:
                raise TimeoutError("capture stalled")
            time.sleep(0.005)

    def segment(self, start: int, length: int, port: int = 0) -> np.ndarray:
        self.wait_until(start + length)
        return self.buffers[port, start : start + length].copy()

    def onset(self, start: int, length: int, threshold: float = 1e-3, port: int = 0) -> int | None:
        """Frame index of the first sample over `threshold` in [start, start+length)."""
        seg = self.segment(start, length, port)
        loud = np.flatnonzero(np.abs(seg) > threshold)
        return start + int(loud[0]) if loud.size else None

    def hit(self, send: Callable[[], None], seconds: float = 0.15) -> np.ndarray:
        """Call `send` (a trigger), return the captured audio from the onset on."""
        sent = self.trigger_frame()
        send()
        onset = self.onset(sent, int(0.1 * self.rate))
        if onset is None:
            raise AssertionError("no sound within 100 ms of the trigger")
        return self.segment(onset, int(seconds * self.rate))

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class MidiCapture:
    """A JACK client recording the MIDI events arriving at its input port, with the JACK frame
    at which each one lands in a period (period start + the event's offset).

    Frames are absolute JACK frame times, comparable with `now()` of this object."""

    def __init__(self, source: str | None = None) -> None:
        import jack

        self.client = jack.Client(
            f"dkvae-midicap-{os.getpid()}-{next(_names)}", no_start_server=True
        )
        self.rate = self.client.samplerate
        self.events: list[tuple[int, bytes]] = []  # (frame, message bytes)
        self.xruns = 0  # xruns the JACK server reported while this capture ran
        self._inport = self.client.midi_inports.register("in")
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()
        if source is not None:
            self.connect(source)

    @property
    def port_name(self) -> str:
        return str(self._inport.name)

    def connect(self, source: str) -> None:
        """Connect the output port named `source`, or the first matching it as a pattern."""
        ports = self.client.get_ports(source, is_midi=True, is_output=True)
        if not ports:
            raise RuntimeError(f"no JACK MIDI output port matches {source!r}")
        self.client.connect(ports[0], self._inport)

    def _process(self, frames: int) -> None:
        start = self.client.last_frame_time
        for offset, data in self._inport.incoming_midi_events():
            self.events.append((start + offset, bytes(data)))

    def _xrun(self, delay: float) -> None:
        self.xruns += 1

    def now(self) -> int:
        return int(self.client.frame_time)

    def trigger_frame(self) -> int:
        """The first frame of the JACK cycle under way: an event sent now lands no earlier
        (see `Capture.trigger_frame`)."""
        return int(self.client.last_frame_time)

    def wait_event(self, after: int, timeout: float = 0.05) -> tuple[int, bytes] | None:
        """The first event recorded since index `after` of `events`, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while len(self.events) <= after:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.0002)
        return self.events[after]

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class MidiSender:
    """A JACK MIDI output connected to the daemon's MIDI input, that sends any bytes at all
    (rtmidi would refuse malformed ones). Messages queued by `send` go out in the next JACK
    cycle, as many as fit (`per_cycle` caps them).

    It is a JACK-Client port, not rtmidi: rtmidi keeps the GIL while it waits on the JACK
    server, and the server waits on this process's capture callback, which waits for the GIL."""

    def __init__(
        self, daemon_port: str | None, per_cycle: int = 4096, *, physical: bool = False
    ) -> None:
        """`daemon_port` None: connect nothing (the daemon connects it, or the test does);
        `physical`: the port is flagged physical, as a pad controller's is."""
        import jack

        keep_collector_short()
        self._jack = jack
        self.client = jack.Client(
            f"dkvae-test-midi-{os.getpid()}-{next(_names)}", no_start_server=True
        )
        self._port = self.client.midi_outports.register("out", is_physical=physical)
        self._pending: deque[bytes] = deque()
        self._per_cycle = per_cycle
        self.sent_frames: list[int] = []  # JACK frame time at which each message went out
        self.client.set_process_callback(self._process)
        self.client.activate()
        if daemon_port is not None:
            self.client.connect(self._port, daemon_port)

    @property
    def port_name(self) -> str:
        return str(self._port.name)

    def _process(self, frames: int) -> None:
        self._port.clear_buffer()
        for offset in range(min(self._per_cycle, len(self._pending), frames)):
            try:
                self._port.write_midi_event(offset, self._pending[0])
            except self._jack.JackError:  # the port's buffer is full: next cycle
                return
            self._pending.popleft()
            self.sent_frames.append(self.client.last_frame_time + offset)

    def send(self, data: list[int]) -> None:
        self._pending.append(bytes(data))

    def note_on(self, note: int, velocity: int, channel: int = 9) -> None:
        self.send([0x90 | channel, note, velocity])

    def flush(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.flush()
        self.client.deactivate()
        self.client.close()


_CHILD_SENDER = """
import sys, rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=sys.argv[2])
ports = out.get_ports()
out.open_port(next(i for i, p in enumerate(ports) if p.startswith(sys.argv[1])), "out")
print("ready", flush=True)
for line in sys.stdin:
    out.send_message(bytes.fromhex(line))
"""


class MidiSenderProcess:
    """A JACK MIDI sender in a child process through rtmidi, whose JACK callback is C: no
    Python runs on a JACK thread, so a busy bench process cannot make the JACK graph late
    (a `MidiSender` callback waits for this process's GIL). Well-formed messages only."""

    def __init__(self, daemon_port: str) -> None:
        name = f"dkvae-test-midiproc-{os.getpid()}-{next(_names)}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_SENDER, daemon_port, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin = self.proc.stdin
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the MIDI sender could not connect to {daemon_port}")

    def send(self, data: list[int]) -> None:
        self._stdin.write(bytes(data).hex() + "\n")
        self._stdin.flush()

    def note_on(self, note: int, velocity: int, channel: int = 9) -> None:
        self.send([0x90 | channel, note, velocity])

    def close(self) -> None:
        self._stdin.close()
        self.proc.wait(timeout=10)


def dominant_frequency(audio: np.ndarray, rate: int) -> float:
    window = np.hanning(audio.shape[0])
    spectrum = np.abs(np.fft.rfft(audio * window, n=8 * audio.shape[0]))
    return float(np.argmax(spectrum) * rate / (8 * audio.shape[0]))
