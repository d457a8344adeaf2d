"""The audio side: choose an output device by name, run the stream, and the callback itself.

The callback drains pending events without blocking, mixes the voice pool into `outdata` and
counts xruns. It does not call the model, log, take locks or allocate numpy buffers.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from .events import Event, NoteOn, PadSound, StopAll
from .voices import VoicePool

FADE_SECONDS = 0.005  # a cut voice fades out over this long: no click


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

    With no host API given, JACK is preferred when a JACK server is running, then the system
    default. Devices are always chosen by name, never by index: indices move when servers start.
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
        wanted = [i for i, api in enumerate(apis) if "jack" in api["name"].lower()]
        wanted += [i for i in range(len(apis)) if i not in wanted]
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


class AudioOutput:
    """The output stream and its callback. `events` and `sounds` are filled by other threads."""

    def __init__(self, polyphony: int, master_gain: float = 0.5) -> None:
        self.polyphony = polyphony
        self.voices = VoicePool(polyphony, 1)  # replaced by configure(), once the rate is known
        self.master_gain = master_gain
        self.events: deque[Event] = deque()
        self.sounds: list[PadSound | None] = [None] * 128
        self.hits = [0] * 128  # per note: which variant plays next; read by the render worker
        self.xruns = 0
        self.notes_played = 0
        self.notes_without_sound = 0
        self.callbacks = 0
        self.stream: Any = None

    def open(
        self, device: str | None, host_api: str | None, samplerate: int | None, blocksize: int
    ) -> tuple[str, str, int]:
        """Open (not start) the stream; returns (device name, host API, sample rate)."""
        sd = _sounddevice()
        index, name, api = find_output_device(device, host_api)
        info = sd.query_devices(index)
        rate = int(samplerate or info["default_samplerate"])
        self.configure(rate)
        try:
            self.stream = sd.OutputStream(
                device=index,
                samplerate=rate,
                blocksize=blocksize,
                channels=min(2, int(info["max_output_channels"])),
                dtype="float32",
                latency="low",
                callback=self._callback,
            )
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open {name!r} on {api} at {rate} Hz: {exc}") from exc
        return name, api, rate

    def configure(self, samplerate: int) -> None:
        """Allocate the voice pool for this rate (fade length in samples)."""
        self.voices = VoicePool(self.polyphony, int(FADE_SECONDS * samplerate))

    def start(self) -> None:
        self.stream.start()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.abort()
            self.stream.close()
            self.stream = None

    def publish(self, sound: PadSound) -> None:
        """Swap in a pad's new sound. A voice already playing keeps the buffer it started with."""
        self.sounds[sound.note] = sound

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        self.callbacks += 1
        if status.output_underflow:
            self.xruns += 1
        self.process(outdata)

    def process(self, outdata: np.ndarray) -> None:
        """Play pending events and fill `outdata` [frames, channels]: the whole audio path.

        The stream's callback calls this; so does the offline renderer, so both sound the same.
        """
        outdata.fill(0.0)
        events = self.events
        while events:
            event = events.popleft()
            if isinstance(event, NoteOn):
                sound = self.sounds[event.note]
                if sound is None:
                    self.notes_without_sound += 1
                else:
                    self.voices.trigger(sound, event.velocity, self.hits[event.note])
                    self.hits[event.note] += 1
                    self.notes_played += 1
            elif isinstance(event, StopAll):
                self.voices.stop_all()
        self.voices.mix_into(outdata)
        np.multiply(outdata, self.master_gain, out=outdata)
        np.clip(outdata, -1.0, 1.0, out=outdata)
