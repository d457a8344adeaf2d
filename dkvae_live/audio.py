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
from typing import Any, Protocol

import numpy as np

from .midi_in import wants_source
from .mixer import Mixer
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
    matching `device`), and a MIDI input that connects MIDI sources as they appear (see
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
        self._ports = [client.outports.register(f"out_{i + 1}") for i in range(2)]
        if self._mixer.samplerate is None:  # the first time; a server that comes back keeps it
            self._mixer.configure(int(client.samplerate))
        callback, state = self._mixer.jack_process_callback(
            _address(ffi, ffi.addressof(lib, "jack_port_get_buffer")),
            *(_address(ffi, port._ptr) for port in self._ports),
        )
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
        if self._midi_port is not None:  # the server came back: the MIDI input comes back too
            self._register_midi(client)
        return client

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
