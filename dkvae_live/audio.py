"""Audio out: a JACK client of our own when a JACK server runs, else PortAudio (sounddevice).

On JACK the mixer's C function is the process callback itself: the audio thread never enters
Python, so nothing a Python thread does (holding the GIL, a garbage collection, a flood of
OSC) can make it late. PortAudio calls `Mixer.process` from its Python callback. Both count
xruns. The JACK backend also survives the server going away: it notices (once), waits for the
server to come back and reconnects, in the same process. PortAudio cannot do that (terminating
it after its JACK server died aborts the process), so on JACK the daemon never initialises
PortAudio.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import queue
import threading
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from .midi_in import wants_source
from .mixer import Mixer
from .outputs import usable
from .pads import MAIN_OUTPUT
from .rt import name_current_thread, name_thread

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 0.25
WATCH_THREAD = "dkvae-jackwatch"
AUDIO_THREAD = "dkvae-audio"  # the audio callback's thread, JACK's or PortAudio's


class AudioOutput(Protocol):
    device_name: str
    host_api: str
    samplerate: int
    latency: float  # seconds
    restarts: int  # times the audio server came back

    def start(self) -> None: ...
    def close(self) -> None: ...


class AudioDeviceError(Exception):
    """No usable output device, or the one asked for does not exist."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # "PortAudio library not found"
        raise AudioDeviceError(
            f"cannot load PortAudio ({exc}); install it, e.g. `apt-get install libportaudio2`"
        ) from exc
    return sounddevice


def find_output_device(device: str | None, host_api: str | None) -> tuple[int, str, str]:
    """(device index, device name, host API name) for names given as case-insensitive substrings.

    With no host API given, the first API that has a matching output, the default one first.
    Devices are always chosen by name, never by index: indices move when servers start.
    """
    sd = _sounddevice()
    apis = sd.query_hostapis()
    devices = sd.query_devices()
    if host_api:
        wanted = [i for i, api in enumerate(apis) if host_api.lower() in api["name"].lower()]
        if not wanted:
            names = ", ".join(api["name"] for api in apis)
            raise AudioDeviceError(f"no host API matches {host_api!r}; available: {names}")
    else:
        default = sd.default.hostapi
        wanted = [default] + [i for i in range(len(apis)) if i != default]
    for api_index in wanted:
        api = apis[api_index]
        candidates = [
            i
            for i in api["devices"]
            if devices[i]["max_output_channels"] > 0
            and (device is None or device.lower() in devices[i]["name"].lower())
        ]
        if device is None and api["default_output_device"] in candidates:
            candidates.insert(0, api["default_output_device"])
        if candidates:
            return candidates[0], devices[candidates[0]]["name"], api["name"]
    outputs = [
        f"{d['name']!r} ({apis[d['hostapi']]['name']})" for d in devices if d["max_output_channels"]
    ]
    raise AudioDeviceError(
        f"no output device matches {device or 'any'!r}"
        + (f" on {host_api!r}" if host_api else "")
        + f"; outputs: {', '.join(outputs) or 'none'}. On a machine without a sound card, "
        "start a JACK server: `jackd -d dummy -r 48000 -p 64 &`"
    )


class PortAudioOutput:
    """A sounddevice output stream on a device chosen by name."""

    def __init__(
        self,
        mixer: Mixer,
        device: str | None,
        host_api: str | None,
        samplerate: int | None,
        blocksize: int,
    ) -> None:
        sd = _sounddevice()
        index, self.device_name, self.host_api = find_output_device(device, host_api)
        info = sd.query_devices(index)
        self.samplerate = int(samplerate or info["default_samplerate"])
        self._mixer = mixer
        self._named = False  # the callback's thread, on its first call
        mixer.configure(self.samplerate)
        try:
            self._stream = sd.OutputStream(
                device=index,
                samplerate=self.samplerate,
                blocksize=blocksize,
                channels=min(2, int(info["max_output_channels"])),
                dtype="float32",
                latency="low",
                callback=self._callback,
            )
        except sd.PortAudioError as exc:
            raise AudioDeviceError(
                f"cannot open {self.device_name!r} on {self.host_api} at {self.samplerate} Hz: "
                f"{exc}"
            ) from exc
        self.latency = float(self._stream.latency)
        self.restarts = 0

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        if not self._named:
            self._named = True
            name_current_thread(AUDIO_THREAD)
        if status.output_underflow:
            self._mixer.xruns += 1
        self._mixer.process(outdata)

    def start(self) -> None:
        self._stream.start()

    def close(self) -> None:
        self._stream.abort()
        self._stream.close()


def _probe() -> Any:
    """A short-lived JACK client, or None when no JACK server answers (or no JACK-Client)."""
    try:
        import jack
    except (ImportError, OSError):
        return None
    try:
        return jack.Client("dkvae-probe", no_start_server=True)
    except jack.JackOpenError:
        return None


def jack_server_running() -> bool:
    probe = _probe()
    if probe is None:
        return False
    probe.close()
    return True


def _client_exists(name: str) -> bool:
    """Whether a JACK client of this exact name has ports."""
    probe = _probe()
    if probe is None:
        return False
    try:
        return any(p.name.startswith(f"{name}:") for p in probe.get_ports())
    finally:
        probe.close()


def _address(ffi: Any, pointer: Any) -> int:
    """A cffi pointer as the integer the C mixer takes."""
    return int(ffi.cast("uintptr_t", pointer))


def _libjack(jack: Any) -> ctypes.CDLL:
    """The libjack that the JACK-Client package loaded, through ctypes, for the two functions
    its bindings leave out."""
    libjack = ctypes.CDLL(jack._libname)
    libjack.jack_set_thread_init_callback.restype = ctypes.c_int
    libjack.jack_set_thread_init_callback.argtypes = [ctypes.c_void_p] * 3
    libjack.jack_client_thread_id.restype = ctypes.c_ulong  # pthread_t
    libjack.jack_client_thread_id.argtypes = [ctypes.c_void_p]
    return libjack


class JackOutput:
    """A JACK client with two output ports, connected to the physical outputs (or to the ports
    matching `device`), more pairs of outputs for a DAW to record drums apart (`add_outputs`,
    never connected by us), and a MIDI input that connects MIDI sources as they appear (see
    `open_midi`). Reconnects by itself when the server goes away and comes back."""

    def __init__(
        self,
        mixer: Mixer,
        client_name: str,
        device: str | None,
        samplerate: int | None,
    ) -> None:
        import jack

        self._jack = jack
        self._libjack = _libjack(jack)
        self._mixer = mixer
        self._name = client_name
        self._device = device
        self.host_api = "JACK"
        self._lost = threading.Event()
        self._closing = threading.Event()
        self._watch = threading.Event()  # the server went away, a source came, or we close
        self._dead_clients: list[Any] = []  # never closed: closing a client of a dead server
        self._shutdown_reason = ""
        self._midi_choice: str | None = None  # --midi-port: which MIDI sources we connect
        self._midi_channel: int | None = None
        # MIDI sources that appeared, named by JACK's notification thread, which must not
        # call the server: the supervisor thread connects them.
        self._appeared: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._midi_port: Any = None  # our MIDI input, once open_midi was called
        # Output pairs are registered by the job thread (add_outputs) and, after a restart, by
        # the supervisor (_open): one at a time, on the client `_pairs_client` of the moment.
        self._pairs_lock = threading.Lock()
        self._pairs_client: Any = None
        self._pair_ports: dict[int, list[Any]] = {}  # pair index -> its ports on that client
        # Connections to each of our output ports, counted from JACK's notifications (their
        # thread calls no JACK function), under a lock never held while JACK is called.
        self._connections_lock = threading.Lock()
        self._pair_of_port: dict[str, int] = {}  # our output port's name -> its pair
        self._connections: dict[str, int] = {}
        self.restarts = 0
        try:
            self._client = self._open()
        except jack.JackOpenError as exc:
            if _client_exists(client_name):  # JACK2 says "server error" for a name clash
                raise AudioDeviceError(
                    f"a JACK client {client_name!r} exists already (another dkvae-live?); "
                    "stop it or choose another --client-name"
                ) from exc
            raise AudioDeviceError(
                "no JACK server answers; start one (`jackd -d alsa` on a sound card, or "
                "`jackd -d dummy -r 48000 -p 64` without one) or choose --host-api ALSA"
            ) from exc
        self.samplerate = int(self._client.samplerate)
        if samplerate and samplerate != self.samplerate:
            self._client.close()
            raise AudioDeviceError(
                f"the JACK server runs at {self.samplerate} Hz, not {samplerate}; "
                "restart it at that rate or leave --samplerate out"
            )
        self.device_name = self._client.name
        self.latency = self._client.blocksize / self.samplerate
        self._supervisor = threading.Thread(target=self._supervise, name=WATCH_THREAD, daemon=True)

    def _open(self) -> Any:
        ffi, lib = self._jack._ffi, self._jack._lib
        client = self._jack.Client(self._name, use_exact_name=True, no_start_server=True)
        if self._mixer.samplerate is None:  # the first time; a server that comes back keeps it
            self._mixer.configure(int(client.samplerate))
        callback, state = self._mixer.jack_process_callback(
            _address(ffi, ffi.addressof(lib, "jack_port_get_buffer"))
        )
        with self._pairs_lock:  # every pair made so far, on this client, before it runs
            self._pairs_client, self._pair_ports = client, {}
            with self._connections_lock:  # new ports: nothing is connected to them
                self._pair_of_port, self._connections = {}, {}
            for index, name in enumerate(self._mixer.pair_names):
                self._register_pair(index, name)
        self._ports = self._pair_ports[0]
        error = lib.jack_set_process_callback(
            client._ptr, ffi.cast("JackProcessCallback", callback), ffi.cast("void *", state)
        )
        if not error:
            error = self._libjack.jack_set_thread_init_callback(
                _address(ffi, client._ptr), self._mixer.jack_thread_init_callback(), None
            )
        if error:
            client.close()
            raise self._jack.JackError(f"cannot set the process callbacks (error {error})")
        client.set_xrun_callback(self._xrun)
        client.set_shutdown_callback(self._shutdown)
        client.set_port_registration_callback(self._port_registered)
        client.set_port_connect_callback(self._port_connected, only_available=False)
        if self._midi_port is not None:  # the server came back: the MIDI input comes back too
            self._register_midi(client)
        return client

    def _register_pair(self, index: int, name: str) -> list[str]:
        """Register pair `index`'s two ports on `_pairs_client` and give them to the mixer."""
        ffi, client = self._jack._ffi, self._pairs_client
        short = [f"{MAIN_OUTPUT if index == 0 else name}_{i + 1}" for i in range(2)]
        names = [f"{client.name}:{n}" for n in short]
        with self._connections_lock:  # known before they exist: a patchbay may connect at once
            self._pair_of_port.update(dict.fromkeys(names, index))
        ports = [client.outports.register(n) for n in short]
        self._mixer.set_jack_pair(index, *(_address(ffi, port._ptr) for port in ports))
        self._pair_ports[index] = ports
        with self._connections_lock:  # what came meanwhile (set_jack_pair took it to none)
            self._mixer.set_pair_connected(index, self._pair_connected(index))
        return names

    def _pair_connected(self, index: int) -> bool:
        """Whether a port of pair `index` is connected; with `_connections_lock` held."""
        return any(
            self._connections.get(name, 0) > 0
            for name, pair in self._pair_of_port.items()
            if pair == index
        )

    def _port_connected(self, a: Any, b: Any, connect: bool) -> None:
        """JACK's notification thread: two ports were connected or disconnected. The audio
        callback mixes a pair only while a port of it is connected (the C mixer's comment
        says why it does not ask JACK itself)."""
        for port in (a, b):
            if port is None:  # gone already (only_available=False): not one of ours
                continue
            name = port.name
            with self._connections_lock:
                index = self._pair_of_port.get(name)
                if index is None:
                    continue
                count = self._connections.get(name, 0) + (1 if connect else -1)
                self._connections[name] = max(0, count)
                self._mixer.set_pair_connected(index, self._pair_connected(index))

    def add_outputs(self, names: Iterable[str]) -> list[str]:
        """Make an output pair (ports NAME_1, NAME_2) for each name that has none yet, while the
        audio runs or before; returns the new ports' names. A pair is never taken away: a DAW's
        connections stay. A name that cannot name ports, or one past the mixer's room for
        pairs, is logged and skipped: its pads play on the main pair alone."""
        added: list[str] = []
        with self._pairs_lock:
            for name in names:
                if not usable(name):
                    log.warning("no output pair %r: not a JACK port name; main pair only", name)
                    continue
                try:
                    index = self._mixer.add_pair(name)
                except ValueError as exc:
                    log.warning("%s; its pads play on the main pair only", exc)
                    continue
                if index in self._pair_ports or self._pairs_client in self._dead_clients:
                    continue  # made already, or the server is away: _open makes it on return
                try:
                    added += self._register_pair(index, name)
                except self._jack.JackError as exc:
                    log.warning("cannot make output pair %r: %s", name, exc)
        if added:
            log.info("outputs: %s", ", ".join(added))
        return added

    def output_ports(self) -> list[str]:
        """Our audio output ports now, the main pair first."""
        with self._pairs_lock:
            return [port.name for i in sorted(self._pair_ports) for port in self._pair_ports[i]]

    def open_midi(self, choice: str | None, channel: int | None) -> str:
        """A JACK MIDI input on this client, read by the C callback itself (a note-on plays in
        the cycle it arrives), connected from every MIDI source that `choice` wants
        (`midi_in.wants_source`: by default the physical ones) at the start and whenever one
        appears. Call before `start`. Its events reach Python through `Mixer.midi_events`."""
        self._midi_channel = channel
        self._midi_choice = choice
        self._register_midi(self._client)
        return str(self._midi_port.name)

    def midi_sources(self) -> list[str]:
        """The MIDI output ports connected to our MIDI input now (ours or by anyone)."""
        if self._midi_port is None or self._lost.is_set():
            return []
        try:
            return [p.name for p in self._client.get_all_connections(self._midi_port)]
        except self._jack.JackError:
            return []

    def _port_registered(self, port: Any, registered: bool) -> None:
        """JACK's notification thread: a port appeared; name it to the supervisor if it is a
        MIDI source we want. Nothing here calls the server."""
        if not registered or self._midi_port is None:
            return
        if port.is_midi and port.is_output and self._wanted(port.name, port.is_physical):
            self._appeared.put(port.name)
            self._watch.set()

    def _wanted(self, name: str, physical: bool) -> bool:
        return not name.startswith(f"{self._name}:") and wants_source(
            self._midi_choice, name, physical
        )

    def _connect_midi(self, source: str) -> None:
        """Connect one MIDI source to our input, once; log it."""
        try:
            self._client.connect(source, self._midi_port)
        except self._jack.JackErrorCode as exc:
            if exc.code != errno.EEXIST:
                log.warning("cannot connect MIDI from %s: %s", source, exc)
            return
        except self._jack.JackError as exc:  # it went away meanwhile
            log.warning("cannot connect MIDI from %s: %s", source, exc)
            return
        log.info("MIDI in: connected %s", source)

    def _register_midi(self, client: Any) -> None:
        ffi, lib = self._jack._ffi, self._jack._lib
        self._midi_port = client.midi_inports.register("midi_in")
        self._mixer.read_jack_midi(
            _address(ffi, self._midi_port._ptr),
            _address(ffi, ffi.addressof(lib, "jack_midi_get_event_count")),
            _address(ffi, ffi.addressof(lib, "jack_midi_event_get")),
            self._midi_channel,
        )

    def _xrun(self, delay_usecs: float) -> None:
        self._mixer.xruns += 1

    def _shutdown(self, status: Any, reason: str) -> None:
        self._shutdown_reason = reason
        self._lost.set()
        self._watch.set()

    def _connect_outputs(self) -> None:
        client = self._client
        targets = client.get_ports(is_audio=True, is_input=True, is_physical=self._device is None)
        if self._device:
            targets = [p for p in targets if self._device.lower() in p.name.lower()]
        for source, target in zip(self._ports, targets, strict=False):
            client.connect(source, target)
        if self._midi_port is None:
            return
        for port in client.get_ports(is_midi=True, is_output=True):
            if self._wanted(port.name, port.is_physical):
                self._connect_midi(port.name)

    def _activate(self) -> None:
        self._client.activate()
        thread = self._libjack.jack_client_thread_id(_address(self._jack._ffi, self._client._ptr))
        name_thread(thread, AUDIO_THREAD)
        self._connect_outputs()

    def start(self) -> None:
        self._activate()
        self._supervisor.start()

    def close(self) -> None:
        self._closing.set()
        self._watch.set()
        if not self._lost.is_set():
            self._client.deactivate()
            self._client.close()

    def _supervise(self) -> None:
        name_current_thread(WATCH_THREAD)
        while not self._closing.is_set():
            self._watch.wait()  # asleep until the server goes away, a MIDI source appears...
            self._watch.clear()
            if self._closing.is_set():
                return
            while not self._appeared.empty():
                source = self._appeared.get()
                if not self._lost.is_set():
                    self._connect_midi(source)
            if not self._lost.is_set():
                continue
            log.warning(
                "the JACK server went away (%s); waiting for it to come back",
                self._shutdown_reason or "no reason given",
            )
            self._dead_clients.append(self._client)
            while not self._closing.wait(RECONNECT_SECONDS):
                try:
                    self._client = self._open()
                except self._jack.JackError:
                    continue
                break
            else:
                return
            try:
                self._activate()
            except self._jack.JackError as exc:
                log.error("the JACK server is back but our client failed: %s", exc)
                self._watch.set()  # try again
                continue
            rate = int(self._client.samplerate)
            if rate != self.samplerate:
                log.error(
                    "the JACK server came back at %d Hz, not %d: sounds play at the wrong "
                    "pitch until dkvae-live is restarted",
                    rate,
                    self.samplerate,
                )
            self.restarts += 1
            self._lost.clear()
            log.info("the JACK server is back: playing again")


def open_output(
    mixer: Mixer,
    *,
    device: str | None,
    host_api: str | None,
    samplerate: int | None,
    blocksize: int,
    client_name: str,
) -> AudioOutput:
    """JACK when asked for, or by default when a JACK server runs; PortAudio otherwise."""
    wants_jack = host_api is not None and "jack" in host_api.lower()
    if wants_jack or (host_api is None and jack_server_running()):
        return JackOutput(mixer, client_name, device, samplerate)
    return PortAudioOutput(mixer, device, host_api, samplerate, blocksize)
