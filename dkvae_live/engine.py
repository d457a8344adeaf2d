"""The engine makes the parts, wires them together and owns their threads.

It makes the mixer, the pads, the render worker (which owns the decoder), the audio output,
the MIDI and OSC inputs (the OSC address space is osc_api.py), the sweeper (which also looks
at the kit file once a second) and the job thread for slow requests; it starts and stops
them, and holds what they share: the kit playing (its file, its controller mappings) and the
model's encoder. What each thread does and what crosses between them: docs/architecture.md.

A note-on never waits for the model: it only queues an event that the next audio callback
plays from the sound already rendered for that pad (on JACK the callback reads MIDI and plays
it itself). Slow requests (kits, models, encoding a file) run on the job thread, so they never
hold up the MIDI or OSC threads either.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import contract
from .audio import AudioOutput, JackOutput, open_output
from .kit import (
    DEFAULT_KIT,
    CcMapping,
    Kit,
    KitError,
    check_cc,
    load_kit,
    remove_stale_temporaries,
    save_kit,
)
from .latent_fit import fit_latent
from .midi_in import MidiInput
from .mixer import Mixer
from .model import Decoder, Encoder, ModelError, ModelInfo, read_sound
from .osc_api import OscApi
from .osc_in import OscServer
from .outputs import STEREO, pairs_wanted, router
from .pad_axes import main_axes, move
from .pad_axes import values as axis_values
from .pads import LATENT_LIMIT, Pad, PadBank, check_output_name, default_pads
from .programs import kit_for_program
from .renderer import RenderWorker
from .rt import name_current_thread, settle_heap, thread_names
from .settings import Settings, user_kit_dir
from .stats import Dropped
from .sweeper import Sweeper

log = logging.getLogger(__name__)

JOBS_THREAD = "dkvae-jobs"
# A thread that wants the GIL (MIDI in, a PortAudio callback, the render worker after a decoder
# run) waits this long for another to let it go, not Python's 5 ms (sys.setswitchinterval)
SWITCH_INTERVAL_SECONDS = 0.0005


class Engine:
    """The running instrument: `start()` it, play it, `stop()` it. The inputs are served from
    the start; `on_ready` is called (from the render worker) once every pad was rendered."""

    def __init__(self, settings: Settings, on_ready: Callable[[], None] = lambda: None) -> None:
        self._created = time.time()  # saves of kits older than this are no longer under way
        self.settings = settings
        self.dropped = Dropped(log)
        decoder = Decoder(settings.model)  # the render worker's: it alone runs and swaps it
        # built at the first /dkvae/pad/encode, on the job thread: nothing else needs it, and
        # a session held all day for a request that may never come is memory at rest
        self._encoder: Encoder | None = None
        # with it, a decoder session of the job thread's own, that fits the encoder's latent
        # to the sound (latent_fit): the render worker's is its alone
        self._fitter: Decoder | None = None
        info = decoder.info
        kit = self._initial_kit(info)
        self.pads = PadBank(kit.pads, info.class_names, info.latent_size)
        self._loaded = {note: (pad.latent, pad.axes) for note, pad in kit.pads.items()}
        self.kit_name = kit.name
        self.kit_program = kit.program
        self.cc: list[CcMapping] = list(kit.cc)
        self.kit_dir = (
            settings.kit_dir or (settings.kit.parent if settings.kit else user_kit_dir())
        ).resolve()
        self.allowed_dirs = (self.kit_dir, *(d.resolve() for d in settings.allow_dirs))
        # a learn under way: (note, dim, axis or None, whom to tell (controller, channel))
        self._learning: tuple[int, int, str | None, Callable[[int, int], None]] | None = None
        self._kit_stamp = self._stamp(self.kit_path)
        self.mixer = Mixer(settings.polyphony, settings.master_gain)
        self._output_of = router(settings.outputs)
        self.renderer = RenderWorker(
            decoder,
            self.pads,
            0,  # the device's rate, known once the audio is open: start() tells the worker
            self.mixer.publish,
            unpublish=self.mixer.unpublish,
            on_rejected=lambda note, reason: self.dropped.count(reason, f"pad {note}"),
            hits=self.mixer.hits,
            on_first_pass=on_ready,
            output_of=self._output_of,
        )
        self.audio: AudioOutput | None = None
        self.midi: MidiInput | None = None
        self.osc: OscServer | None = None
        self.osc_api: OscApi | None = None
        self.device_name = self.host_api = self.midi_port = ""
        self.samplerate = 0
        self._program_lock = threading.Lock()
        self._program_wanted: int | None = None  # the latest program change not yet acted on
        self._program_job = False  # a job is acting on program changes
        self._stopping = threading.Event()
        self._jobs = ThreadPoolExecutor(
            1,
            thread_name_prefix=JOBS_THREAD,
            initializer=name_current_thread,
            initargs=(JOBS_THREAD,),
        )
        # the kit file is looked at once a second, as the sweeper wakes: one stat() costs nothing
        self._sweeper = Sweeper(self.mixer, also=self._check_kit)

    def _initial_kit(self, info: ModelInfo) -> Kit:
        """The kit given, else the shipped default kit if it fits the model, else the GM map."""
        path = self.settings.kit
        if path is not None:
            self.kit_path: Path | None = path.resolve()
            return load_kit(path, info.class_names, info.latent_size)
        self.kit_path = None
        try:
            return load_kit(DEFAULT_KIT, info.class_names, info.latent_size)
        except KitError as exc:
            log.info(
                "the shipped default kit does not fit this model (%s); using the General "
                "MIDI map with default latents",
                exc,
            )
            return Kit("general-midi", default_pads(info.class_names, info.latent_size))

    def _encoding_now(self) -> tuple[Encoder, Decoder]:
        """The playing model's encoder and the job thread's decoder (built now if this is
        their first use)."""
        if self._encoder is None or self._fitter is None:
            path = self.decoder.path.parent / contract.ENCODER_FILE
            if not path.exists():
                raise ValueError("this model has no encoder (encoder.onnx beside decoder.onnx)")
            self._fitter = Decoder(self.decoder.path)
            self._encoder = Encoder(path, self._fitter.info)
        return self._encoder, self._fitter

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        self._remove_stale_temporaries()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        self.osc = OscServer(s.osc_host, s.osc_port, self.dropped.count, s.osc_allow)
        self.audio = open_output(
            self.mixer,
            device=s.device,
            host_api=s.host_api,
            samplerate=s.samplerate,
            blocksize=s.blocksize,
            client_name=s.client_name,
        )
        self.device_name, self.host_api = self.audio.device_name, self.audio.host_api
        self.samplerate = self.audio.samplerate
        if s.outputs != STEREO and not isinstance(self.audio, JackOutput):
            log.warning(
                "--outputs %s needs JACK: on %s every pad plays on the stereo mix",
                s.outputs,
                self.host_api,
            )
        self._add_outputs(self.pads.snapshot().values(), self.info.class_names)
        self.pads.on_change = self.renderer.request
        if s.midi:
            self._open_midi()
        self.osc_api = OscApi(self, self.osc)
        self.audio.start()
        if self.midi:
            self.midi.start()
        self.osc.start()
        self._sweeper.start()
        # last: the inputs are served meanwhile
        self.renderer.start(render_all=True, device_rate=self.samplerate)

    def _add_outputs(self, pads: Iterable[Pad], class_names: tuple[str, ...]) -> None:
        """Make the output pairs that `--outputs` wants for these pads and classes and has not
        made yet (JACK only), before the pads that play on them are published."""
        if isinstance(self.audio, JackOutput):
            self.audio.add_outputs(pairs_wanted(self.settings.outputs, class_names, pads))

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of kit saves that a killed daemon left (ours only, see kit.py)."""
        folders = {self.kit_dir} | ({self.kit_path.parent} if self.kit_path else set())
        for folder in sorted(folders):
            for path in remove_stale_temporaries(folder, self._created):
                log.info("removed %s, left by a save that was cut short", path)

    def _open_midi(self) -> None:
        """On JACK a MIDI port of our audio client, read by its C callback; else rtmidi."""
        s = self.settings
        api = self._midi_api()
        if api == "jack" and isinstance(self.audio, JackOutput):
            # The callback plays note-ons and stops itself; this thread counts them, and acts
            # on the rest through the pads (a new sound published), never back into the mixer.
            self.midi = MidiInput(
                self._note_played_by_callback,
                self._control,
                self.dropped.count,
                s.midi_channel,
                self._program_change,
            )
            port = self.audio.open_midi(s.midi_port, s.midi_channel)
            self.midi_port = self.midi.attach(
                self.mixer.midi_events, self.mixer.wait_midi, self.mixer.wake_midi, port
            )
            return
        self.midi = MidiInput(
            self.note_on,
            self._control,
            self.dropped.count,
            s.midi_channel,
            self._program_change,
            on_stop_all=self.stop_all,
        )
        self.midi_port = self.midi.open(api, s.client_name, s.midi_port, "midi_in")

    def _midi_sources(self) -> list[str]:
        if isinstance(self.audio, JackOutput) and self.midi is not None:
            return self.audio.midi_sources()
        return self.midi.sources() if self.midi is not None else []

    def _midi_api(self) -> str:
        api = self.settings.midi_api
        if api != "auto":
            return api
        if "jack" in self.host_api.lower():
            return "jack"
        return "alsa" if Path("/dev/snd/seq").exists() else "jack"

    def stop(self) -> None:
        self._stopping.set()
        # Audio first: closing a JACK MIDI client waits for a JACK cycle, and our JACK process
        # callback would wait for the GIL that the closing thread holds.
        if self.audio is not None:
            self.audio.close()
        for part in (self.midi, self.osc, self.renderer, self._sweeper):
            if part is not None:
                part.stop()
        self._jobs.shutdown(wait=False, cancel_futures=True)

    # -- what the inputs do ----------------------------------------------------------------
    def note_on(self, note: int, velocity: int) -> None:
        """Queue a hit for the next audio callback. Any thread; never waits."""
        if not self._has_pad(note):
            return
        if not self.mixer.note_on(note, velocity):  # the mixer clamps it to 1..127
            self.dropped.count("note.queue_full", f"note {note}: the audio is not keeping up")
        self.renderer.hit(note, velocity)

    def _note_played_by_callback(self, note: int, velocity: int) -> None:
        """A JACK MIDI note-on: the audio callback played it already; count what it missed."""
        if self._has_pad(note):
            self.renderer.hit(note, velocity)

    def _has_pad(self, note: int) -> bool:
        """Whether a pad plays `note`; a note without one is counted as dropped."""
        if self.pads.get(note) is None:
            self.dropped.count("note.unmapped", f"note {note} has no pad")
            return False
        return True

    def stop_all(self) -> None:
        if not self.mixer.stop_all():
            self.dropped.count("note.queue_full", "stop all: the audio is not keeping up")

    def _control(self, channel: int, controller: int, value: int) -> None:
        """MIDI CC (not bank select nor a stop): a learn in progress takes the controller;
        mapped controllers move their pad's latent dimension or axis."""
        learning = self._learning
        if learning is not None:
            note, dim, axis, on_learned = learning
            self._learning = None
            self.cc = [
                m
                for m in self.cc
                if not (m.controller == controller and m.channel in (None, channel))
            ]
            self.cc.append(CcMapping(controller, note, dim, channel=channel, axis=axis))
            log.info(
                "learned: CC %d on channel %d moves pad %d %s",
                controller,
                channel + 1,
                note,
                f"axis {axis}" if axis else f"dimension {dim}",
            )
            on_learned(controller, channel)
        for mapping in self.cc:
            if mapping.controller == controller and mapping.channel in (None, channel):
                try:
                    if mapping.axis is not None:
                        self.set_axis(mapping.note, mapping.axis, mapping.value(value))
                    else:
                        self.pads.set_dim(mapping.note, mapping.dim, mapping.value(value))
                except ValueError as exc:
                    self.dropped.count("midi.cc_unmapped", str(exc))

    def learn(
        self, note: int, dim: int, axis: str | None, on_learned: Callable[[int, int], None]
    ) -> None:
        """Have the next MIDI controller moved drive pad `note`'s latent dimension `dim`, or
        its timbre axis `axis`; `on_learned(controller, channel)` is told which it was."""
        if axis is None:
            check_cc(CcMapping(0, note, dim), self.pads.snapshot(), self.pads.latent_size)
        self._learning = (note, dim, axis, on_learned)
        what = f"axis {axis}" if axis else f"dimension {dim}"
        log.info("learning: the next MIDI controller moved drives pad %d %s", note, what)

    def _program_change(self, program: int) -> None:
        """MIDI program change (the MIDI thread): load its kit on the job thread. Changes that
        come while one loads are folded: the latest one is loaded next."""
        with self._program_lock:
            self._program_wanted = program
            if self._program_job:
                return
            self._program_job = True
        self._jobs.submit(self._select_programs)

    def _select_programs(self) -> None:
        while True:
            with self._program_lock:
                program, self._program_wanted = self._program_wanted, None
                if program is None:
                    self._program_job = False
                    return
            self.select_program(program)

    def select_program(self, program: int) -> None:
        """Play the kit of `program` (programs.py); the old kit plays until each pad of the new
        one is rendered. No kit, or a kit that does not load, is counted and changes nothing."""
        path = kit_for_program(self.kit_dir, program)
        if path is None:
            self.dropped.count(
                "midi.program_unmapped",
                f"program {program}: no kit in {self.kit_dir} has it; {self.kit_name!r} plays on",
            )
            return
        try:
            self.load_kit_file(path)
        except KitError as exc:
            self.dropped.count("midi.program_kit_broken", f"{exc}; {self.kit_name!r} plays on")
            return
        log.info("program %d: kit %r", program, self.kit_name)

    # -- kits and models -------------------------------------------------------------------
    def submit(self, work: Callable[[], None]) -> None:
        """Run slow work (kits, models, encoding) on the job thread, one at a time."""
        self._jobs.submit(work)

    def current_kit(self) -> Kit:
        return Kit(self.kit_name, self.pads.snapshot(), tuple(self.cc), self.kit_program)

    def load_kit_file(self, path: Path) -> Kit:
        """Load a kit and play it; a kit that does not load changes nothing (KitError)."""
        info = self.info
        kit = load_kit(path, info.class_names, info.latent_size)
        self._add_outputs(kit.pads.values(), info.class_names)
        self.pads.replace_all(kit.pads)
        self._loaded = {note: (pad.latent, pad.axes) for note, pad in kit.pads.items()}
        self.cc = list(kit.cc)
        self.kit_name = kit.name
        self.kit_program = kit.program
        self.kit_path = path.resolve()
        self._kit_stamp = self._stamp(self.kit_path)
        settle_heap()
        log.info("kit %r loaded from %s: %d pads", kit.name, path, len(kit.pads))
        return kit

    def save_kit_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_kit(self.current_kit(), path)
        self.kit_path = path.resolve()
        self._kit_stamp = self._stamp(self.kit_path)
        log.info("kit saved to %s", path)

    def reload_kit(self) -> None:
        """SIGHUP: read the current kit file again (the old kit stays if it is broken)."""
        if self.kit_path is None:
            log.info("no kit file to reload (playing %r)", self.kit_name)
            return
        try:
            self.load_kit_file(self.kit_path)
        except KitError as exc:
            log.error("kit not reloaded, the old one keeps playing: %s", exc)

    @staticmethod
    def _stamp(path: Path | None) -> tuple[int, int] | None:
        try:
            st = path.stat() if path else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size) if st else None

    def _check_kit(self) -> None:
        """Reload the kit if its file changed on disk (the sweeper calls this once a second)."""
        if self._stopping.is_set():
            return
        stamp = self._stamp(self.kit_path)
        if stamp is not None and stamp != self._kit_stamp:
            self._kit_stamp = stamp
            log.info("kit file %s changed on disk: reloading", self.kit_path)
            self.reload_kit()

    def load_model(self, path: Path | None) -> Decoder:
        """Swap in another decoder while the old one keeps playing; ModelError if it cannot."""
        decoder = Decoder(path)
        info, old = decoder.info, self.info
        if info.latent_size != old.latent_size:
            raise ModelError(
                f"{decoder.path}: latent size {info.latent_size}, the kit's pads "
                f"have {old.latent_size}; load a kit made for it"
            )
        missing = {p.class_name for p in self.pads.snapshot().values()} - set(info.class_names)
        if missing:
            raise ModelError(
                f"{decoder.path}: has no class {', '.join(sorted(missing))}, "
                "which the kit's pads use"
            )
        # The old sessions are let go of by the render worker, one at a time; the new model's
        # encoder is built at its first use.
        self._add_outputs(self.pads.snapshot().values(), info.class_names)
        self.pads.class_names = info.class_names
        retired = (self._encoder, self._fitter)
        self._encoder = self._fitter = None
        settle_heap()
        self.renderer.swap_decoder(decoder, *retired)
        log.info("model %s (%s) loaded from %s", info.name, info.model_kind, decoder.path)
        return decoder

    @property
    def decoder(self) -> Decoder:
        """The render worker's decoder, or the one it is about to take (a model load)."""
        return self.renderer.latest_decoder

    @property
    def info(self) -> ModelInfo:
        """What the model playing (or about to) says about itself."""
        return self.decoder.info

    def set_axis(self, note: int, name: int | str, value: float) -> tuple[float, ...]:
        """Put one timbre axis of a pad at `value` (-3..3); its values in AXIS_NAMES order."""
        axes = self.info.axes
        return axis_values(self.pads.change(note, lambda pad: move(pad, axes, {name: value})))

    def set_output(self, note: int, output: str) -> None:
        """Play a pad on the output pair `output` too ("": the main pair only). With `--outputs
        per-pad` a pair no pad had yet gets its JACK ports first; ValueError for a name that
        cannot name a pair."""
        pad = self.pads.get(note)
        if pad is None:
            raise ValueError(f"no pad on note {note}; pads are on notes {self.pads.notes()}")
        if output:
            check_output_name(output)
        self._add_outputs([replace(pad, output=output)], self.info.class_names)
        self.pads.update(note, output=output)

    def set_xy(self, note: int, x: float, y: float) -> tuple[float, ...]:
        """Put the two main axes of a pad's class (its XY plane) at `x` and `y`, as one change."""
        axes = self.info.axes

        def xy(pad: Pad) -> dict[str, Any]:
            x_axis, y_axis = main_axes(pad, axes)
            return move(pad, axes, {x_axis: x, y_axis: y})

        return axis_values(self.pads.change(note, xy))

    def reset_pad(self, note: int) -> None:
        """Put a pad's latent and axes back as its kit had them (the GM map's, for a new pad)."""
        loaded = self._loaded.get(note)
        if loaded is None:
            info = self.info
            loaded = (default_pads(info.class_names, info.latent_size)[note].latent, ())
        self.pads.update(note, latent=loaded[0], axes=loaded[1])

    def encode_into_pad(self, note: int, path: Path) -> tuple[float, ...]:
        """Set a pad's latent to the one whose sound, at the pad's class, is closest to this
        sound file: the encoder's, fitted through the decoder (latent_fit)."""
        pad = self.pads.existing(note)
        encoder, fitter = self._encoding_now()
        info = fitter.info
        sound = read_sound(path, info.sample_rate, info.num_samples)
        start = encoder.encode(sound[None])[0]
        latent = fit_latent(fitter, sound, info.class_index(pad.class_name), start)
        return self.pads.update(
            note, latent=np.clip(latent, -LATENT_LIMIT, LATENT_LIMIT).tolist()
        ).latent

    def status(self) -> dict[str, Any]:
        assert self.audio is not None
        info = self.info
        notes = self.pads.notes()
        dropped = self.dropped.snapshot()
        if self.mixer.midi_overflow:  # events the JACK callback read and we took too late
            dropped["midi.overflow"] = self.mixer.midi_overflow
        first_sound_ms, full_pad_ms = self.renderer.latencies()
        return {
            "model": info.name,
            "model_kind": info.model_kind,
            "model_sample_rate": info.sample_rate,
            "latent_size": info.latent_size,
            "classes": " ".join(info.class_names),
            "kit": self.kit_name,
            "device": self.device_name,
            "host_api": self.host_api,
            "sample_rate": self.samplerate,
            "block_size": self.settings.blocksize,
            "output_latency_ms": round(self.audio.latency * 1000.0, 3),
            "outputs": self.settings.outputs,
            "output_ports": ", ".join(
                self.audio.output_ports() if isinstance(self.audio, JackOutput) else ()
            ),
            "xruns": self.mixer.xruns,
            "notes_received": (self.midi.notes if self.midi else 0)
            + (self.osc_api.triggers if self.osc_api else 0),
            "notes_played": self.mixer.notes_played,
            "notes_without_sound": self.mixer.notes_without_sound,
            "voices_active": self.mixer.voices_active,
            "voices_stolen": self.mixer.voices_stolen,
            "renders": self.renderer.renders,
            "first_sound_ms": " ".join(f"{ms:.2f}" for ms in first_sound_ms),
            "full_pad_ms": " ".join(f"{ms:.2f}" for ms in full_pad_ms),
            "sounds_freed": self.mixer.sounds_freed,
            "sounds_mib": round(self.mixer.sound_bytes / 2**20, 2),
            "pads": len(notes),
            "pads_ready": sum(self.mixer.playable(n) for n in notes),
            "threads": " ".join(thread_names()),
            "midi_port": self.midi_port,
            "midi_sources": ", ".join(self._midi_sources()),
            "midi_received": self.midi.messages if self.midi else 0,
            "midi_bank_selects": self.midi.bank_selects if self.midi else 0,
            "osc_received": self.osc.received if self.osc else 0,
            "dropped": self.dropped.total() + self.mixer.midi_overflow,
            **{f"dropped.{k}": v for k, v in sorted(dropped.items())},
        }
