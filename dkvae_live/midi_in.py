"""MIDI in, polled from a thread of our own: from the daemon's JACK client, or python-rtmidi.

On JACK the MIDI input is a port of the daemon's own JACK client, read by the C audio
callback: a note-on plays in the cycle it arrives, one period sooner than through a client of
its own, and every event (malformed ones too) comes on here to be counted and acted on; this
thread sleeps until the callback wakes it, so it costs nothing while no MIDI comes. Other
MIDI systems go through python-rtmidi. The sources wanted (`wants_source`: by default the
physical ones) are connected by the daemon, at the start and whenever one appears: on JACK by
audio.JackOutput, on ALSA here, each through an rtmidi input of its own. On ALSA (a desktop)
rtmidi's own input thread hands each message to a queue that this thread sleeps on. Through
rtmidi's JACK API it is polled: measured on JACK, a Python callback on the MIDI driver's
thread (there, the JACK process thread) loses notes in bursts, while polling `get_message()`
with a deep queue received 2000 back-to-back notes exactly. Bytes are checked here, at the
boundary: what is not a well-formed message the daemon uses is counted and dropped.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from .rt import name_current_thread, promote_current_thread

log = logging.getLogger(__name__)

QUEUE_SIZE = 4096
READ_AT_ONCE = 256  # messages handled between two looks at whether to stop
# Seconds asleep when nothing came, through rtmidi's JACK API, where a note plays only once
# read here.
POLL_INTERVAL = 0.0002
THREAD_NAME = "dkvae-midi"
SCAN_THREAD = "dkvae-midiscan"
# ALSA: seconds between two looks for MIDI sources that appeared (python-rtmidi passes on no
# ALSA announce events; listing the ports is one query of the sequencer).
SCAN_SECONDS = 1.0


BANK_SELECT = (0, 32)  # controllers: bank select, coarse and fine
STOP_ALL = (120, 123)  # controllers: all sound off, all notes off (_mixer.c plays them on JACK)
NO_SOURCES = "none"  # `--midi-port none`: connect no MIDI source by ourselves
# ALSA sequencer clients 16..127 are the kernel's: sound cards and USB MIDI devices (0 is the
# system client, 14 Midi Through); clients of programs are numbered from 128.
ALSA_HARDWARE = range(16, 128)
_ALSA_ADDRESS = re.compile(r" (\d+):(\d+)$")  # rtmidi names ALSA ports "client:port C:P"


class MidiError(Exception):
    """No MIDI API, or the port asked for does not exist."""


def wants_source(choice: str | None, name: str, physical: bool) -> bool:
    """Whether the daemon connects the MIDI source `name` by itself: with no `--midi-port`
    every physical source (a pad controller, a keyboard, a sound card's MIDI in), with
    `--midi-port NAME` those whose name contains NAME (case-insensitive), with `none` none."""
    if choice is None:
        return physical
    if choice.lower() == NO_SOURCES:
        return False
    return choice.lower() in name.lower()


def alsa_is_hardware(port_name: str) -> bool:
    """Whether an rtmidi ALSA port name ("Launchpad:Launchpad MIDI 1 20:0") is a port of a
    hardware (kernel) sequencer client."""
    found = _ALSA_ADDRESS.search(port_name)
    return found is not None and int(found.group(1)) in ALSA_HARDWARE


def _rtmidi() -> Any:
    import rtmidi

    return rtmidi


def available_apis() -> list[str]:
    rtmidi = _rtmidi()
    names = {rtmidi.API_LINUX_ALSA: "alsa", rtmidi.API_UNIX_JACK: "jack"}
    return [names[a] for a in rtmidi.get_compiled_api() if a in names]


def list_input_ports(api: str) -> list[str]:
    return _open_client(api, "dkvae-list").get_ports()


def input_ports_of_others(api: str) -> list[str]:
    """Every MIDI input port on the system (a MidiOut lists the ports it could send to)."""
    rtmidi = _rtmidi()
    apis = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK}
    lister = rtmidi.MidiOut(apis[api], "dkvae-list")
    try:
        return list(lister.get_ports())
    finally:
        lister.delete()


def _open_client(api: str, client_name: str) -> Any:
    rtmidi = _rtmidi()
    apis = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK}
    if api not in apis:
        raise MidiError(f"MIDI API must be one of alsa, jack; got {api!r}")
    try:
        midi_in = rtmidi.MidiIn(apis[api], client_name, queue_size_limit=QUEUE_SIZE)
    except rtmidi.SystemError as exc:
        hint = (
            "is a JACK server running?"
            if api == "jack"
            else "is the ALSA sequencer there (/dev/snd/seq)? try --midi-api jack"
        )
        raise MidiError(f"cannot open the {api} MIDI API ({exc}); {hint}") from exc
    return midi_in


class MidiInput:
    """Reads one MIDI input port and hands notes, stops, controllers and programs to the
    engine's callbacks."""

    def __init__(
        self,
        on_note_on: Callable[[int, int], None],
        on_control: Callable[[int, int, int], None],
        on_drop: Callable[[str, str], None],
        channel: int | None = None,
        on_program: Callable[[int], None] = lambda program: None,
        on_stop_all: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_stop_all`: CC 120 or 123 came (the JACK callback stops the voices itself)."""
        self._on_note_on = on_note_on
        self._on_control = on_control
        self._on_drop = on_drop
        self._on_program = on_program
        self._on_stop_all = on_stop_all
        self.channel = channel  # 0..15, None = all channels
        self.messages = 0
        self.notes = 0
        self.bank_selects = 0  # CC 0 and 32: kits are chosen by program change alone
        self.port_name = ""
        self._midi_in: Any = None
        self._read: Callable[[], list[list[int]]] = list
        self._wait: Callable[[], None] = lambda: time.sleep(POLL_INTERVAL)
        self._wake: Callable[[], None] = lambda: None
        self._arrived: queue.SimpleQueue[list[int] | None] = queue.SimpleQueue()  # ALSA
        self._taken: list[list[int]] = []  # what _wait_for_arrival took off that queue
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=THREAD_NAME, daemon=True)
        # ALSA: the sources we connected, each through an rtmidi input of its own
        self._sources: dict[str, Any] = {}
        self._sources_lock = threading.Lock()
        self._scan: Callable[[], None] | None = None
        self._scanner = threading.Thread(target=self._scan_loop, name=SCAN_THREAD, daemon=True)

    def open(self, api: str, client_name: str, port: str | None, virtual_name: str) -> str:
        """ALSA: open a virtual port of our own and connect the sources that `port` wants
        (`wants_source`: by default the hardware ones), now and whenever one appears.
        JACK through rtmidi: connect to the existing port matching `port`, or open a virtual
        port of our own."""
        if api == "alsa":
            return self._open_alsa(client_name, port, virtual_name)
        midi_in = _open_client(api, client_name)
        midi_in.ignore_types(sysex=False, timing=True, active_sense=True)
        if port and port.lower() != NO_SOURCES:
            names = midi_in.get_ports()
            matches = [i for i, n in enumerate(names) if port.lower() in n.lower()]
            if not matches:
                raise MidiError(
                    f"no MIDI input port matches {port!r}; ports: {', '.join(names) or 'none'}"
                )
            midi_in.open_port(matches[0], virtual_name)
            self.port_name = names[matches[0]]
        else:
            taken = [n for n in input_ports_of_others(api) if n.startswith(f"{client_name}:")]
            if taken:
                midi_in.delete()
                raise MidiError(
                    f"a MIDI port {taken[0]!r} exists already (another dkvae-live?); "
                    "stop it or choose another --client-name"
                )
            midi_in.open_virtual_port(virtual_name)
            self.port_name = f"{client_name}:{virtual_name}"
        self._midi_in = midi_in
        self._read = self._read_rtmidi
        return self.port_name

    def _open_alsa(self, client_name: str, choice: str | None, virtual_name: str) -> str:
        midi_in = _open_client("alsa", client_name)
        midi_in.ignore_types(sysex=False, timing=True, active_sense=True)
        midi_in.open_virtual_port(virtual_name)
        midi_in.set_callback(self._received)
        self._midi_in = midi_in
        self.port_name = f"{client_name}:{virtual_name}"
        self._read, self._wait = self._read_arrived, self._wait_for_arrival
        self._wake = lambda: self._arrived.put(None)

        def scan() -> None:
            names = midi_in.get_ports()
            wanted = {
                (i, n)
                for i, n in enumerate(names)
                if not n.startswith(f"{client_name}:")
                and wants_source(choice, n, alsa_is_hardware(n))
            }
            self._connect_sources(client_name, wanted, set(names))

        self._scan = scan
        scan()
        return self.port_name

    def _connect_sources(
        self, client_name: str, wanted: set[tuple[int, str]], present: set[str]
    ) -> None:
        """Open an rtmidi input on each wanted source not yet connected; close those gone."""
        with self._sources_lock:
            for name in [n for n in self._sources if n not in present]:
                source = self._sources.pop(name)
                source.cancel_callback()
                source.delete()
                log.info("MIDI in: %s went away", name)
            for index, name in sorted(wanted):
                if name in self._sources:
                    continue
                try:
                    source = _open_client("alsa", client_name)
                    source.ignore_types(sysex=False, timing=True, active_sense=True)
                    source.open_port(index, f"from {name}"[:60])
                except Exception as exc:  # gone meanwhile, or refused: next scan tries again
                    log.warning("cannot connect MIDI from %s: %s", name, exc)
                    continue
                source.set_callback(self._received)
                self._sources[name] = source
                log.info("MIDI in: connected %s", name)

    def sources(self) -> list[str]:
        """The MIDI sources connected by us (ALSA)."""
        with self._sources_lock:
            return sorted(self._sources)

    def _scan_loop(self) -> None:
        name_current_thread(SCAN_THREAD)
        while not self._stopping.wait(SCAN_SECONDS):
            if self._scan is not None:
                try:
                    self._scan()
                except Exception as exc:  # the sequencer refused a listing: try again later
                    log.warning("cannot list the MIDI sources: %s", exc)

    def attach(
        self,
        read: Callable[[], list[list[int]]],
        wait: Callable[[], None],
        wake: Callable[[], None],
        port_name: str,
    ) -> str:
        """Take messages from `read` (the JACK callback's, `Mixer.midi_events`) instead;
        `wait` sleeps until there are some (`Mixer.wait_midi`), `wake` ends that sleep."""
        self._read, self._wait, self._wake = read, wait, wake
        self.port_name = port_name
        return port_name

    def _read_rtmidi(self) -> list[list[int]]:
        messages: list[list[int]] = []
        while len(messages) < READ_AT_ONCE and (message := self._midi_in.get_message()):
            messages.append(message[0])
        return messages

    def _received(self, event: tuple[list[int], float], data: object = None) -> None:
        """rtmidi's callback, on its ALSA input thread: hand the bytes over, nothing more."""
        self._arrived.put(event[0])

    def _read_arrived(self) -> list[list[int]]:
        messages, self._taken = self._taken, []
        try:
            while len(messages) < READ_AT_ONCE:
                message = self._arrived.get_nowait()
                if message is not None:
                    messages.append(message)
        except queue.Empty:
            pass
        return messages

    def _wait_for_arrival(self) -> None:
        message = self._arrived.get()  # asleep until rtmidi hands over a message, or stop
        if message is not None:
            self._taken.append(message)

    def start(self) -> None:
        self._thread.start()
        if self._scan is not None:
            self._scanner.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
        if self._scanner.is_alive():
            self._scanner.join(timeout=1.0)
        with self._sources_lock:
            for source in self._sources.values():
                source.cancel_callback()
                source.delete()
            self._sources.clear()
        if self._midi_in is not None:
            self._midi_in.cancel_callback()
            self._midi_in.close_port()
            self._midi_in.delete()
            self._midi_in = None

    def _poll(self) -> None:
        name_current_thread(THREAD_NAME)
        if self._midi_in is not None:  # rtmidi: notes play once read here
            # Below the JACK clients' own threads (5 under a default jackd -P 10): a FIFO
            # thread of equal priority that is running keeps them off its core.
            promote_current_thread(4)
        read, wait = self._read, self._wait
        while not self._stopping.is_set():
            messages = read()
            if not messages:
                wait()
                continue
            for message in messages:
                try:
                    self.handle(message)
                except Exception as exc:  # never let a bad message end the thread
                    self._on_drop("midi.error", f"{exc!r}")

    def handle(self, data: list[int]) -> None:
        """One MIDI message as bytes: act on it, or count and drop it."""
        self.messages += 1
        if not data or not all(isinstance(b, int) and 0 <= b <= 255 for b in data):
            self._on_drop("midi.malformed", f"{data!r}")
            return
        status = data[0]
        if status == 0xF0:
            self._on_drop("midi.sysex", f"{len(data)} bytes")
            return
        if status < 0x80 or any(b > 127 for b in data[1:]):
            self._on_drop("midi.malformed", " ".join(f"{b:02x}" for b in data[:8]))
            return
        kind, channel = status & 0xF0, status & 0x0F
        if (kind in (0x80, 0x90, 0xB0) and len(data) != 3) or (kind == 0xC0 and len(data) != 2):
            self._on_drop("midi.malformed", " ".join(f"{b:02x}" for b in data[:8]))
            return
        if self.channel is not None and kind < 0xF0 and channel != self.channel:
            return  # another channel's traffic is not an error
        if kind == 0x90 and data[2] > 0:
            self.notes += 1
            self._on_note_on(data[1], data[2])
        elif kind == 0xB0 and data[1] in BANK_SELECT:
            if self.bank_selects == 0:
                log.info("bank select (CC 0/32) ignored: a program change alone picks a kit")
            self.bank_selects += 1
        elif kind == 0xB0 and data[1] in STOP_ALL:
            self._on_stop_all()
        elif kind == 0xB0:
            self._on_control(channel, data[1], data[2])
        elif kind == 0xC0:
            self._on_program(data[1])
        # note-off (and note-on at velocity 0): one-shots ring out; nothing to do.
