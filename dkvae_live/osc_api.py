"""The OSC address space (docs/osc.md): what each address does, through the engine.

osc_in.py checks every datagram against the signatures registered here before a handler runs;
a handler that raises ValueError has the request counted (`osc.invalid`) and refused to its
sender. Handlers run on the OSC thread and never wait: what reads or writes files or builds a
model (kits, models, encoding, export) runs on the engine's job thread, and its errors go back
to the sender from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .contract import AXIS_NAMES
from .kit import KIT_SUFFIX, Kit, KitError
from .kit_export import ExportError, export_kit
from .model import Decoder, ModelError, ModelInfo
from .osc_in import OscServer, Sender
from .pad_axes import axis_index, main_axes
from .pad_axes import values as axis_values
from .pads import LATENT_LIMIT, PadBank
from .paths import confine
from .programs import kit_folder
from .stats import Dropped

log = logging.getLogger(__name__)

MAX_PENDING_JOBS = 8  # kit, model and encode requests waiting their turn
PAD_FIELDS = {  # pad settings set by an address of their own: field -> OSC type
    "gain": "f",
    "pan": "f",
    "choke_group": "i",
    "polyphony": "i",
    "velocity_curve": "f",
    "timbre_amount": "f",
    "variation": "f",
}


class Instrument(Protocol):
    """What the address space plays, changes and asks: the engine."""

    pads: PadBank
    dropped: Dropped
    kit_dir: Path
    allowed_dirs: tuple[Path, ...]
    kit_path: Path | None
    kit_name: str
    samplerate: int

    @property
    def info(self) -> ModelInfo: ...
    @property
    def decoder(self) -> Decoder: ...
    def note_on(self, note: int, velocity: int) -> None: ...
    def stop_all(self) -> None: ...
    def reset_pad(self, note: int) -> None: ...
    def set_axis(self, note: int, name: int | str, value: float) -> tuple[float, ...]: ...
    def set_xy(self, note: int, x: float, y: float) -> tuple[float, ...]: ...
    def set_output(self, note: int, output: str) -> None: ...
    def learn(
        self, note: int, dim: int, axis: str | None, on_learned: Callable[[int, int], None]
    ) -> None: ...
    def encode_into_pad(self, note: int, path: Path) -> tuple[float, ...]: ...
    def current_kit(self) -> Kit: ...
    def save_kit_file(self, path: Path) -> None: ...
    def load_kit_file(self, path: Path) -> Kit: ...
    def load_model(self, path: Path | None) -> Decoder: ...
    def status(self) -> dict[str, Any]: ...
    def submit(self, work: Callable[[], None]) -> None: ...


class OscApi:
    """Registers every address of docs/osc.md on `osc`, each acting on `engine`."""

    def __init__(self, engine: Instrument, osc: OscServer) -> None:
        self.engine = engine
        self.osc = osc
        self.triggers = 0  # /dkvae/trigger messages that named a note (for notes_received)
        self._pending_jobs = 0
        osc.add("/dkvae/trigger", "note:i velocity:i?", self._trigger)
        osc.add("/dkvae/stop", "", lambda args, sender: engine.stop_all())
        osc.add("/dkvae/pad/latent", "note:i values:f*", self._latent)
        osc.add("/dkvae/pad/dim", "note:i dim:i value:f", self._dim)
        osc.add("/dkvae/pad/class", "note:i class:n", self._class)
        for field, kind in PAD_FIELDS.items():
            osc.add(f"/dkvae/pad/{field}", f"note:i {field}:{kind}", self._field(field))
        osc.add("/dkvae/pad/output", "note:i output:s", self._output)
        osc.add("/dkvae/pad/timbre_direction", "note:i values:f*", self._timbre_direction)
        osc.add("/dkvae/pad/randomize", "note:i amount:f?", self._randomize)
        osc.add("/dkvae/pad/reset", "note:i", self._reset)
        osc.add("/dkvae/pad/get", "note:i", self._get)
        osc.add("/dkvae/pad/learn", "note:i dim:i", self._learn)
        osc.add("/dkvae/pad/axis", "note:i name:n value:f", self._axis)
        osc.add("/dkvae/pad/xy", "note:i x:f y:f", self._xy)
        osc.add("/dkvae/pad/axes", "note:i", self._axes)
        osc.add("/dkvae/pad/learn_axis", "note:i name:n", self._learn_axis)
        osc.add("/dkvae/pad/encode", "note:i path:s", self._encode)
        osc.add("/dkvae/kit/save", "path:s?", self._kit_save)
        osc.add("/dkvae/kit/load", "path:s", self._kit_load)
        osc.add("/dkvae/kit/export", "path:s force:i?", self._kit_export)
        osc.add("/dkvae/kit/list", "", self._kit_list)
        osc.add("/dkvae/model/load", "path:s", self._model_load)
        osc.add("/dkvae/status", "", self._status)
        osc.add("/dkvae/reply_to", "port:i", lambda a, sender: osc.set_reply_port(sender, a[0]))

    def _note(self, note: int) -> int:
        """`note`, if a pad plays it: a setting or question for a pad that is not there is a
        bad request (a trigger of one is a note that plays nothing, see _trigger)."""
        if not 0 <= note <= 127:
            raise ValueError(f"note must be in range 0..127, got {note}")
        pads = self.engine.pads
        if pads.get(note) is None:
            raise ValueError(f"no pad on note {note}; pads are on notes {pads.notes()}")
        return note

    def _job(self, address: str, sender: Sender, work: Callable[[], None]) -> None:
        """Run slow work off the OSC thread; its errors go back to the sender."""
        if self._pending_jobs >= MAX_PENDING_JOBS:
            raise ValueError("busy: too many kit, model and encode requests waiting")
        self._pending_jobs += 1

        def run() -> None:
            try:
                work()
            except (ValueError, KitError, ModelError, ExportError, OSError) as exc:
                self.engine.dropped.count("osc.invalid", f"{address}: {exc}")
                self.osc.reply(sender, "/dkvae/error", address, str(exc))
            except Exception as exc:
                log.exception("%s failed", address)
                self.osc.reply(sender, "/dkvae/error", address, f"internal error: {exc!r}")
            finally:
                self._pending_jobs -= 1

        self.engine.submit(run)

    # -- playing -----------------------------------------------------------------------------
    def _trigger(self, args: list[Any], sender: Sender) -> None:
        note, velocity = args[0], args[1] if len(args) > 1 else 100
        if not 0 <= note <= 127:
            raise ValueError(f"note must be in range 0..127, got {note}")
        if not 1 <= velocity <= 127:
            raise ValueError(f"velocity must be in range 1..127, got {velocity}")
        self.triggers += 1
        self.engine.note_on(note, velocity)  # a note without a pad: note.unmapped, as on MIDI

    # -- pads --------------------------------------------------------------------------------
    def _latent(self, args: list[Any], sender: Sender) -> None:
        self.engine.pads.update(self._note(args[0]), latent=args[1:])

    def _dim(self, args: list[Any], sender: Sender) -> None:
        self.engine.pads.set_dim(self._note(args[0]), args[1], args[2])

    def _class(self, args: list[Any], sender: Sender) -> None:
        note, value = self._note(args[0]), args[1]
        names = self.engine.pads.class_names
        if isinstance(value, int):
            if not 0 <= value < len(names):
                raise ValueError(f"class index must be in range 0..{len(names) - 1}, got {value}")
            value = names[value]
        self.engine.pads.update(note, class_name=value)

    def _field(self, field: str) -> Callable[[list[Any], Sender], None]:
        def handler(args: list[Any], sender: Sender) -> None:
            self.engine.pads.update(self._note(args[0]), **{field: args[1]})

        return handler

    def _output(self, args: list[Any], sender: Sender) -> None:
        note, output = self._note(args[0]), args[1]
        # a new pair's JACK ports are made first: on the job thread
        self._job("/dkvae/pad/output", sender, lambda: self.engine.set_output(note, output))

    def _timbre_direction(self, args: list[Any], sender: Sender) -> None:
        self.engine.pads.update(self._note(args[0]), timbre_direction=args[1:])

    def _randomize(self, args: list[Any], sender: Sender) -> None:
        note = self._note(args[0])
        amount = args[1] if len(args) > 1 else 1.0
        if not 0.0 <= amount <= 3.0:
            raise ValueError(f"amount must be in range 0..3, got {amount}")
        pads, rng = self.engine.pads, np.random.default_rng()
        pad = pads.get(note)
        assert pad is not None
        where = self.engine.info.class_latents.get(pad.class_name)
        if where is None:
            latent = rng.normal(0.0, amount, pads.latent_size)
        else:  # a random sound of the pad's class: near one of its real sounds
            latent = where.sample(rng, amount)
        pads.update(note, latent=np.clip(latent, -LATENT_LIMIT, LATENT_LIMIT).round(4).tolist())
        self._get([note], sender)

    def _reset(self, args: list[Any], sender: Sender) -> None:
        note = self._note(args[0])
        self.engine.reset_pad(note)
        self._get([note], sender)

    def _get(self, args: list[Any], sender: Sender) -> None:
        pad = self.engine.pads.get(self._note(args[0]))
        assert pad is not None
        self.osc.reply(
            sender, "/dkvae/pad", pad.note, pad.class_name, pad.gain, pad.pan, *pad.latent
        )

    def _learn(self, args: list[Any], sender: Sender) -> None:
        note, dim = self._note(args[0]), args[1]

        def learned(controller: int, channel: int) -> None:
            self.osc.reply(sender, "/dkvae/pad/learned", note, dim, controller, channel + 1)

        self.engine.learn(note, dim, None, learned)

    def _axis(self, args: list[Any], sender: Sender) -> None:
        self.engine.set_axis(self._note(args[0]), args[1], args[2])

    def _xy(self, args: list[Any], sender: Sender) -> None:
        self.engine.set_xy(self._note(args[0]), args[1], args[2])

    def _axes(self, args: list[Any], sender: Sender) -> None:
        pad = self.engine.pads.get(self._note(args[0]))
        assert pad is not None
        plane = main_axes(pad, self.engine.info.axes)
        self.osc.reply(sender, "/dkvae/pad/axes", pad.note, *axis_values(pad), *plane)

    def _learn_axis(self, args: list[Any], sender: Sender) -> None:
        note, axis = self._note(args[0]), AXIS_NAMES[axis_index(args[1])]

        def learned(controller: int, channel: int) -> None:
            self.osc.reply(sender, "/dkvae/pad/learned_axis", note, axis, controller, channel + 1)

        self.engine.learn(note, 0, axis, learned)

    def _encode(self, args: list[Any], sender: Sender) -> None:
        note = self._note(args[0])
        path = self._confine(args[1])

        def work() -> None:
            self.engine.encode_into_pad(note, path)
            self._get([note], sender)

        self._job("/dkvae/pad/encode", sender, work)

    # -- kits and models ---------------------------------------------------------------------
    def _confine(self, path: str, suffix: str = "") -> Path:
        return confine(path, self.engine.kit_dir, self.engine.allowed_dirs, suffix)

    def _kit_save(self, args: list[Any], sender: Sender) -> None:
        engine = self.engine
        if args:
            path = self._confine(args[0], KIT_SUFFIX)
        elif engine.kit_path is not None and engine.kit_path.is_relative_to(engine.kit_dir):
            path = engine.kit_path
        else:
            path = engine.kit_dir / f"{engine.kit_name}{KIT_SUFFIX}"

        def work() -> None:
            engine.save_kit_file(path)
            self.osc.reply(sender, "/dkvae/kit/saved", str(path))

        self._job("/dkvae/kit/save", sender, work)

    def _kit_load(self, args: list[Any], sender: Sender) -> None:
        path = self._confine(args[0], KIT_SUFFIX)

        def work() -> None:
            kit = self.engine.load_kit_file(path)
            self.osc.reply(sender, "/dkvae/kit/loaded", kit.name, str(path))

        self._job("/dkvae/kit/load", sender, work)

    def _kit_export(self, args: list[Any], sender: Sender) -> None:
        engine = self.engine
        path = self._confine(args[0])
        force = bool(args[1]) if len(args) > 1 else False
        kit, decoder = engine.current_kit(), engine.decoder  # as they are now, whatever comes

        def work() -> None:
            # On the job thread: the decoder's session runs here beside the render worker's
            # runs (onnxruntime allows it); the audio callback never waits for either.
            export_kit(decoder, kit, path, samplerate=engine.samplerate, force=force)
            log.info("kit %r exported to %s", kit.name, path)
            self.osc.reply(sender, "/dkvae/kit/exported", str(path))

        self._job("/dkvae/kit/export", sender, work)

    def _kit_list(self, args: list[Any], sender: Sender) -> None:
        def work() -> None:
            entries = kit_folder(self.engine.kit_dir)
            for entry in entries:
                program = -1 if entry.program is None else entry.program
                self.osc.reply(sender, "/dkvae/kit/entry", program, entry.name, str(entry.path))
            self.osc.reply(sender, "/dkvae/kit/list/end", len(entries))

        self._job("/dkvae/kit/list", sender, work)

    def _model_load(self, args: list[Any], sender: Sender) -> None:
        path = self._confine(args[0])

        def work() -> None:
            info = self.engine.load_model(path).info
            self.osc.reply(sender, "/dkvae/model/loaded", info.name, str(info.path))

        self._job("/dkvae/model/load", sender, work)

    def _status(self, args: list[Any], sender: Sender) -> None:
        for key, value in self.engine.status().items():
            self.osc.reply(sender, f"/dkvae/status/{key}", value)
        self.osc.reply(sender, "/dkvae/status/end")
