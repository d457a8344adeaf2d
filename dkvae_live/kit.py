"""Kit files: which pads exist and how each sounds, plus MIDI CC mappings. See docs/kits.md.

A kit is TOML. Loading checks every value and names the file, the pad and the field that is
wrong; a kit that does not load changes nothing. Saving is atomic: the new kit is written to a
temporary file beside the old one, flushed to disk, then renamed over it, so a crash or a full
disk at any moment leaves the old kit or the new one, never a broken file. A process killed
mid-save leaves its temporary file; the daemon removes such files when it starts.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .contract import AXIS_NAMES
from .pads import Pad, check_pad

DEFAULT_KIT = Path(__file__).parent / "kits" / "default.toml"
KIT_SUFFIX = ".toml"
TEMP_SUFFIX = ".tmp"
KIT_DECIMALS = 6  # numbers in a kit file are rounded to this many decimals
# save_kit's temporary files: ".NAME.toml.XXXXXXXX.tmp", the middle part mkstemp's own.
_TEMPORARY = re.compile(
    rf"^\..+{re.escape(KIT_SUFFIX)}\.[A-Za-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}$"
)
PAD_KEYS = {
    "note": "note",
    "class": "class_name",
    "latent": "latent",
    "gain": "gain",
    "pan": "pan",
    "choke_group": "choke_group",
    "polyphony": "polyphony",
    "velocity_curve": "velocity_curve",
    "timbre_direction": "timbre_direction",
    "timbre_amount": "timbre_amount",
    "variation": "variation",
    "axes": "axes",
    "output": "output",
}


class KitError(Exception):
    """A kit file is missing, unreadable, or holds something this model cannot play."""


@dataclass(frozen=True)
class CcMapping:
    """A MIDI controller moving one latent dimension, or one timbre axis (`axis`, a name of
    contract.AXIS_NAMES; `dim` is then unused), of one pad between `low` and `high`."""

    controller: int  # 0..127
    note: int
    dim: int
    low: float = -3.0
    high: float = 3.0
    channel: int | None = None  # 0..15; None: any channel
    axis: str | None = None

    def value(self, cc_value: int) -> float:
        return self.low + (self.high - self.low) * cc_value / 127.0


@dataclass(frozen=True)
class Kit:
    name: str
    pads: dict[int, Pad]
    cc: tuple[CcMapping, ...] = ()
    program: int | None = None  # the MIDI program change (0..127) that selects it


def _pad_from_table(table: dict[str, Any], where: str) -> Pad:
    unknown = set(table) - set(PAD_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for required in ("note", "class", "latent"):
        if required not in table:
            raise ValueError(f"{where}: {required!r} is missing")
    values: dict[str, Any] = {PAD_KEYS[k]: v for k, v in table.items()}
    if "axes" in values:
        values["axes"] = _axes_from_table(values["axes"], where)
    for key in ("latent", "timbre_direction"):
        if key in values:
            if not isinstance(values[key], list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values[key]
            ):
                raise ValueError(f"{where}: {key} must be a list of numbers")
            values[key] = tuple(float(v) for v in values[key])
    types = {f.name: f.type for f in fields(Pad)}
    for key, value in values.items():
        if types[key] in ("int", int) and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"{where}: {key} must be an integer")
        if types[key] in ("float", float):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"{where}: {key} must be a number")
            values[key] = float(value)
    if not isinstance(values["class_name"], str):
        raise ValueError(f"{where}: class must be a string")
    if not isinstance(values.get("output", ""), str):
        raise ValueError(f'{where}: output must be a string, such as "toms"')
    return Pad(**values)


def _axes_from_table(table: Any, where: str) -> tuple[float, ...]:
    """``axes = { brightness = 0.5, pitch = -1.0 }`` -> values in AXIS_NAMES order."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: axes must be a table such as {{ brightness = 0.5 }}")
    unknown = set(table) - set(AXIS_NAMES)
    if unknown:
        raise ValueError(
            f"{where}: unknown axis {', '.join(sorted(unknown))}; axes are {', '.join(AXIS_NAMES)}"
        )
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in table.values()):
        raise ValueError(f"{where}: axis values must be numbers")
    return tuple(float(table.get(name, 0.0)) for name in AXIS_NAMES)


def _cc_from_table(table: dict[str, Any], where: str) -> CcMapping:
    allowed = {"controller", "note", "dim", "axis", "min", "max", "channel"}
    unknown = set(table) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    axis = table.get("axis")
    if axis is not None and axis not in AXIS_NAMES:
        raise ValueError(f"{where}: axis must be one of {', '.join(AXIS_NAMES)}")
    if (axis is None) != ("dim" in table):
        raise ValueError(f"{where}: give either dim or axis")
    try:
        channel = table.get("channel", 0)
        mapping = CcMapping(
            controller=int(table["controller"]),
            note=int(table["note"]),
            dim=int(table.get("dim", 0)),
            axis=axis,
            low=float(table.get("min", -3.0)),
            high=float(table.get("max", 3.0)),
            channel=None if channel == 0 else int(channel) - 1,
        )
    except KeyError as exc:
        raise ValueError(f"{where}: {exc.args[0]!r} is missing") from None
    except (TypeError, ValueError):
        raise ValueError(f"{where}: controller, note, dim, channel must be numbers") from None
    if not 0 <= mapping.controller <= 127:
        raise ValueError(f"{where}: controller must be in range 0..127")
    if mapping.channel is not None and not 0 <= mapping.channel <= 15:
        raise ValueError(f"{where}: channel must be in range 1..16 (0: any)")
    if not (math.isfinite(mapping.low) and math.isfinite(mapping.high)):
        raise ValueError(f"{where}: min and max must be finite")
    return mapping


def check_cc(mapping: CcMapping, pads: dict[int, Pad], latent_size: int) -> None:
    if mapping.note not in pads:
        raise ValueError(f"CC {mapping.controller} maps to note {mapping.note}, which has no pad")
    if mapping.axis is not None:
        if mapping.axis not in AXIS_NAMES:
            raise ValueError(
                f"CC {mapping.controller}: axis must be one of {', '.join(AXIS_NAMES)}"
            )
        if not (-3.0 <= mapping.low <= 3.0 and -3.0 <= mapping.high <= 3.0):
            raise ValueError(f"CC {mapping.controller}: an axis's min and max must be in -3..3")
        return
    if not 0 <= mapping.dim < latent_size:
        raise ValueError(f"CC {mapping.controller}: dim must be in range 0..{latent_size - 1}")


def load_kit(path: Path, class_names: tuple[str, ...], latent_size: int) -> Kit:
    """Read and check a kit for a model with these classes and latent size."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KitError(f"{path}: no such kit file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KitError(f"{path}: cannot read the kit: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KitError(f"{path}: not a valid TOML kit: {exc}") from None
    try:
        pads: dict[int, Pad] = {}
        for i, table in enumerate(data.get("pad", [])):
            pad = _pad_from_table(table, f"pad #{i + 1}")
            if pad.note in pads:
                raise ValueError(f"pad #{i + 1}: note {pad.note} appears twice")
            try:
                check_pad(pad, class_names, latent_size)
            except ValueError as exc:  # which pad of the file: its place and its note
                raise ValueError(f"pad #{i + 1} (note {pad.note}): {exc}") from None
            pads[pad.note] = pad
        if not pads:
            raise ValueError("no [[pad]] tables: a kit needs at least one pad")
        cc = tuple(_cc_from_table(t, f"cc #{i + 1}") for i, t in enumerate(data.get("cc", [])))
        for mapping in cc:
            check_cc(mapping, pads, latent_size)
        name = data.get("name", Path(path).stem)
        if not isinstance(name, str):
            raise ValueError("name must be a string")
        program = check_program(data.get("program"))
    except ValueError as exc:
        raise KitError(f"{path}: {exc}") from None
    return Kit(name, pads, cc, program)


def check_program(value: object) -> int | None:
    """A kit's `program`: None (not given) or a MIDI program number 0..127."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 127:
        raise ValueError(f"program must be an integer in range 0..127, got {value!r}")
    return value


def _number(value: float) -> str:
    return repr(round(float(value), KIT_DECIMALS))


def kit_to_toml(kit: Kit) -> str:
    lines = [
        "# DK·VAE Live kit: pads and MIDI CC mappings (docs/kits.md)",
        f"name = {_quote(kit.name)}",
        *([] if kit.program is None else [f"program = {kit.program}"]),
        "",
    ]
    for note in sorted(kit.pads):
        pad = kit.pads[note]
        lines += [
            "[[pad]]",
            f"note = {pad.note}",
            f"class = {_quote(pad.class_name)}",
            f"latent = [{', '.join(_number(v) for v in pad.latent)}]",
            f"gain = {_number(pad.gain)}",
            f"pan = {_number(pad.pan)}",
            f"choke_group = {pad.choke_group}",
            f"polyphony = {pad.polyphony}",
            f"velocity_curve = {_number(pad.velocity_curve)}",
        ]
        if pad.timbre_direction:
            lines.append(
                f"timbre_direction = [{', '.join(_number(v) for v in pad.timbre_direction)}]"
            )
        lines += [
            f"timbre_amount = {_number(pad.timbre_amount)}",
            f"variation = {_number(pad.variation)}",
        ]
        if any(pad.axes):
            values = ", ".join(
                f"{n} = {_number(v)}" for n, v in zip(AXIS_NAMES, pad.axes, strict=True)
            )
            lines.append(f"axes = {{ {values} }}")
        if pad.output:
            lines.append(f"output = {_quote(pad.output)}")
        lines.append("")
    for m in kit.cc:
        lines += [
            "[[cc]]",
            f"channel = {0 if m.channel is None else m.channel + 1}",
            f"controller = {m.controller}",
            f"note = {m.note}",
            f'axis = "{m.axis}"' if m.axis else f"dim = {m.dim}",
            f"min = {_number(m.low)}",
            f"max = {_number(m.high)}",
            "",
        ]
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def save_kit(kit: Kit, path: Path) -> None:
    """Write `kit` to `path` atomically (temporary file, fsync, rename, fsync the folder)."""
    path = Path(path)
    text = kit_to_toml(kit).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def remove_stale_temporaries(folder: Path, older_than: float) -> list[Path]:
    """Remove the temporary files that saves of kits (save_kit) left in `folder` when the
    process saving was killed: only files named as save_kit names them, only those last
    changed before `older_than` (a time.time(), this process's start: a save under way in
    another process is younger). Returns what was removed; a folder that cannot be read is
    left alone."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not _TEMPORARY.match(entry.name):
            continue
        try:
            if entry.is_file() and entry.stat().st_mtime < older_than:
                entry.unlink()
                removed.append(entry)
        except OSError:  # gone meanwhile, or not ours to remove
            continue
    return removed
