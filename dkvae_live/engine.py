"""The engine wires the parts together and owns their threads.

    MIDI thread ─┐                       ┌─> render worker ──> sounds[note] (reference swap)
                 ├─> NoteOn ─> deque ─┐   │                                │
    OSC thread  ─┴─> PadBank change ──┼───┘                                v
                                      └─────────────> audio callback: voices.mix_into(out)

A note-on never waits for the model: it only appends an event that the next audio callback
plays from the sound already rendered for that pad.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .audio import AudioOutput
from .events import NoteOn, StopAll
from .midi_in import MidiInput
from .model import Decoder
from .osc_in import OscServer, Sender
from .pads import PadBank, default_pads
from .renderer import RenderWorker
from .stats import Dropped

log = logging.getLogger(__name__)


@dataclass
class Settings:
    """Everything the daemon can be told on its command line."""

    model: Path | None = None
    device: str | None = None
    host_api: str | None = None
    samplerate: int | None = None
    blocksize: int = 0
    polyphony: int = 32
    master_gain: float = 0.5
    midi: bool = True
    midi_api: str = "auto"
    midi_port: str | None = None
    midi_channel: int | None = None
    client_name: str = "dkvae"
    osc_host: str = "127.0.0.1"
    osc_port: int = 9000
    osc_allow: tuple[str, ...] = ()


class Engine:
    """The running instrument: `start()` it, play it, `stop()` it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dropped = Dropped(log)
        self.decoder = Decoder(settings.model)
        info = self.decoder.info
        self.pads = PadBank(
            default_pads(info.class_names, info.latent_size), info.class_names, info.latent_size
        )
        self.audio: AudioOutput | None = None
        self.renderer: RenderWorker | None = None
        self.midi: MidiInput | None = None
        self.osc: OscServer | None = None
        self.device_name = self.host_api = self.midi_port = ""
        self.samplerate = 0
        self._osc_triggers = 0

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        sys.setswitchinterval(0.0005)  # keep the GIL from holding the audio thread for 5 ms
        self.osc = OscServer(s.osc_host, s.osc_port, self.dropped.count, s.osc_allow)
        self.audio = AudioOutput(s.polyphony, s.master_gain)
        self.device_name, self.host_api, self.samplerate = self.audio.open(
            s.device, s.host_api, s.samplerate, s.blocksize
        )
        self.renderer = RenderWorker(
            self.decoder,
            self.pads,
            self.samplerate,
            self.audio.publish,
            on_rejected=lambda note: self.dropped.count("render.not_finite", f"pad {note}"),
        )
        self.renderer.render_now(self.pads.notes())
        self.pads.on_change = self.renderer.request
        self.renderer.start()
        if s.midi:
            self.midi = MidiInput(self.note_on, self._control, self.dropped.count, s.midi_channel)
            self.midi_port = self.midi.open(self._midi_api(), s.client_name, s.midi_port, "midi_in")
        self._register_osc(self.osc)
        self.audio.start()
        if self.midi:
            self.midi.start()
        self.osc.start()

    def _midi_api(self) -> str:
        api = self.settings.midi_api
        if api != "auto":
            return api
        if "jack" in self.host_api.lower():
            return "jack"
        return "alsa" if Path("/dev/snd/seq").exists() else "jack"

    def stop(self) -> None:
        for part in (self.midi, self.osc):
            if part is not None:
                part.stop()
        if self.audio is not None:
            self.audio.close()
        if self.renderer is not None:
            self.renderer.stop()

    # -- what the inputs do ----------------------------------------------------------------
    def note_on(self, note: int, velocity: int) -> None:
        """Queue a hit for the next audio callback. Any thread; never waits."""
        if self.pads.get(note) is None:
            self.dropped.count("note.unmapped", f"note {note} has no pad")
            return
        assert self.audio is not None
        self.audio.events.append(NoteOn(note, max(1, min(127, velocity))))

    def stop_all(self) -> None:
        assert self.audio is not None
        self.audio.events.append(StopAll())

    def _control(self, channel: int, controller: int, value: int) -> None:
        """MIDI CC: 120 (all sound off) and 123 (all notes off) stop every voice."""
        if controller in (120, 123):
            self.stop_all()

    def status(self) -> dict[str, Any]:
        assert self.audio is not None and self.renderer is not None
        info = self.decoder.info
        stream_latency = float(self.audio.stream.latency) if self.audio.stream else 0.0
        return {
            "model": info.name,
            "model_kind": info.model_kind,
            "model_sample_rate": info.sample_rate,
            "latent_size": info.latent_size,
            "classes": " ".join(info.class_names),
            "device": self.device_name,
            "host_api": self.host_api,
            "sample_rate": self.samplerate,
            "block_size": self.settings.blocksize,
            "output_latency_ms": round(stream_latency * 1000.0, 3),
            "xruns": self.audio.xruns,
            "notes_received": (self.midi.notes if self.midi else 0) + self._osc_triggers,
            "notes_played": self.audio.notes_played,
            "voices_active": self.audio.voices.active_count(),
            "voices_stolen": self.audio.voices.voices_stolen,
            "renders": self.renderer.renders,
            "midi_port": self.midi_port,
            "osc_received": self.osc.received if self.osc else 0,
            "dropped": self.dropped.total(),
            **{f"dropped.{k}": v for k, v in sorted(self.dropped.snapshot().items())},
        }

    # -- OSC address space: docs/osc.md ------------------------------------------------------
    def _register_osc(self, osc: OscServer) -> None:
        osc.add("/dkvae/trigger", "note:i velocity:i?", self._osc_trigger)
        osc.add("/dkvae/stop", "", lambda args, sender: self.stop_all())
        osc.add("/dkvae/pad/latent", "note:i values:f*", self._osc_latent)
        osc.add("/dkvae/pad/dim", "note:i dim:i value:f", self._osc_dim)
        osc.add("/dkvae/pad/class", "note:i class:n", self._osc_class)
        osc.add("/dkvae/pad/gain", "note:i gain:f", self._osc_gain)
        osc.add("/dkvae/pad/pan", "note:i pan:f", self._osc_pan)
        osc.add("/dkvae/pad/randomize", "note:i amount:f?", self._osc_randomize)
        osc.add("/dkvae/pad/reset", "note:i", self._osc_reset)
        osc.add("/dkvae/pad/get", "note:i", self._osc_get)
        osc.add("/dkvae/status", "", self._osc_status)
        osc.add("/dkvae/reply_to", "port:i", lambda a, sender: osc.set_reply_port(sender, a[0]))

    def _note(self, note: int) -> int:
        if not 0 <= note <= 127:
            raise ValueError(f"note must be in range 0..127, got {note}")
        if self.pads.get(note) is None:
            raise ValueError(f"no pad on note {note}; pads are on notes {self.pads.notes()}")
        return note

    def _osc_trigger(self, args: list[Any], sender: Sender) -> None:
        note = self._note(args[0])
        velocity = args[1] if len(args) > 1 else 100
        if not 1 <= velocity <= 127:
            raise ValueError(f"velocity must be in range 1..127, got {velocity}")
        self._osc_triggers += 1
        self.note_on(note, velocity)

    def _osc_latent(self, args: list[Any], sender: Sender) -> None:
        self.pads.set_latent(self._note(args[0]), args[1:])

    def _osc_dim(self, args: list[Any], sender: Sender) -> None:
        self.pads.set_dim(self._note(args[0]), args[1], args[2])

    def _osc_class(self, args: list[Any], sender: Sender) -> None:
        note, value = self._note(args[0]), args[1]
        names = self.pads.class_names
        if isinstance(value, int):
            if not 0 <= value < len(names):
                raise ValueError(f"class index must be in range 0..{len(names) - 1}, got {value}")
            value = names[value]
        self.pads.set_class(note, value)

    def _osc_gain(self, args: list[Any], sender: Sender) -> None:
        self.pads.set_gain(self._note(args[0]), args[1])

    def _osc_pan(self, args: list[Any], sender: Sender) -> None:
        self.pads.set_pan(self._note(args[0]), args[1])

    def _osc_randomize(self, args: list[Any], sender: Sender) -> None:
        note = self._note(args[0])
        amount = args[1] if len(args) > 1 else 1.0
        if not 0.0 <= amount <= 3.0:
            raise ValueError(f"amount must be in range 0..3, got {amount}")
        latent = np.random.default_rng().normal(0.0, amount, self.pads.latent_size)
        self.pads.set_latent(note, latent.round(4).tolist())
        self._osc_get([note], sender)

    def _osc_reset(self, args: list[Any], sender: Sender) -> None:
        note = self._note(args[0])
        info = self.decoder.info
        self.pads.set_latent(note, default_pads(info.class_names, info.latent_size)[note].latent)
        self._osc_get([note], sender)

    def _osc_get(self, args: list[Any], sender: Sender) -> None:
        pad = self.pads.get(self._note(args[0]))
        assert pad is not None and self.osc is not None
        self.osc.reply(
            sender, "/dkvae/pad", pad.note, pad.class_name, pad.gain, pad.pan, *pad.latent
        )

    def _osc_status(self, args: list[Any], sender: Sender) -> None:
        assert self.osc is not None
        for key, value in self.status().items():
            self.osc.reply(sender, f"/dkvae/status/{key}", value)
        self.osc.reply(sender, "/dkvae/status/end")
