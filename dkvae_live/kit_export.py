"""Export a kit as a sample kit that plays without the daemon: WAV one-shots, an SFZ, a Hydrogen
kit, and a JSON of how they were made. See docs/kits.md.

Every pad is rendered by the daemon's own render worker (`RenderWorker`: the same latents per
velocity layer and variant, the same resampling, DC block, trim and fade), so each WAV holds,
sample for sample up to 24-bit rounding, a layer of a variant that the daemon would play. The
mix settings are not in the samples but in the mappings: gain, pan, velocity curve, choke groups,
polyphony, velocity layers (crossfaded in the SFZ as the daemon crossfades them) and variants
(round-robins, played in turn as the daemon plays them).

The export is atomic: everything is written to a temporary folder beside the destination, which
is then renamed into place. An existing folder is replaced only when asked (`force`) and only if
it is empty or an earlier export (it holds EXPORT_JSON): a mistyped path never deletes a folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import soundfile

from .kit import Kit, kit_to_toml
from .model import Decoder
from .pad_sound import FADE_SECONDS, PadSound
from .pads import Pad, PadBank
from .renderer import RenderWorker

FORMATS = ("sfz", "hydrogen", "wav")  # WAVs are always written: the other two map them
EXPORT_JSON = "dkvae-export.json"
HYDROGEN_XML = "drumkit.xml"
HYDROGEN_ARCHIVE = "drumkit.h2drumkit"
HYDROGEN_NS = "http://www.hydrogen-music.org/drumkit"
SAMPLE_SUBTYPE = "PCM_24"
VELOCITY_CURVE_POINTS = (1, *range(8, 127, 8), 127)  # amp_velcurve_N, linear between them
TEMP_SUFFIX = ".tmp"


class ExportError(Exception):
    """A kit cannot be exported: the destination is taken, or a pad would not render."""


@dataclass(frozen=True)
class PadExport:
    """One pad as exported: its sound as the daemon publishes it, the latent of each of its
    [variant][layer] rows, and the file name of each."""

    pad: Pad
    sound: PadSound
    latents: tuple[tuple[tuple[float, ...], ...], ...]
    files: tuple[tuple[str, ...], ...]

    @property
    def layers(self) -> int:
        return self.sound.variants[0].shape[0]

    @property
    def variants(self) -> int:
        return len(self.sound.variants)


def parse_formats(text: str) -> tuple[str, ...]:
    """`sfz,hydrogen,wav` -> the formats named; ValueError naming an unknown one."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        named = ", ".join(unknown) or "(none)"
        raise ValueError(f"unknown format {named}: use {','.join(FORMATS)}")
    return names


def safe_name(text: str) -> str:
    """A file name part from a kit or class name: letters, digits, '-', '_' and '.'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "kit"


def sample_name(note: int, class_name: str, layer: int, variant: int) -> str:
    """`<note>-<class>-v<layer>-rr<n>.wav`, layer and round-robin counted from 1 (v1: softest)."""
    return f"{note}-{safe_name(class_name)}-v{layer + 1}-rr{variant + 1}.wav"


class _RecordingDecoder:
    """The decoder, as the render worker sees it, noting the latents of every render."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.info = decoder.info
        self.latents: list[np.ndarray] = []

    def render(self, z: np.ndarray, class_index: np.ndarray, **options: Any) -> np.ndarray:
        """Decoder.render, with whatever options the worker passes (draft, between)."""
        self.latents.append(np.array(z, np.float32).reshape(-1, self.info.latent_size))
        return self.decoder.render(z, class_index, **options)


def render_pads(decoder: Decoder, kit: Kit, samplerate: int, seed: int = 0) -> list[PadExport]:
    """Render every pad of `kit` as the daemon does at `samplerate`; `seed` draws the variants
    of pads that vary per hit (the daemon draws afresh as hits use them up)."""
    info = decoder.info
    bank = PadBank(kit.pads, info.class_names, info.latent_size)
    recorder = _RecordingDecoder(decoder)
    published: dict[int, PadSound] = {}
    refused: dict[int, str] = {}
    worker = RenderWorker(
        cast(Decoder, recorder),
        bank,
        samplerate,
        lambda sound: published.__setitem__(sound.note, sound),
        on_rejected=lambda note, reason: refused.__setitem__(note, reason),
    )
    worker._rng = np.random.default_rng(seed)  # the variants' offsets: reproducible here
    out = []
    for note in bank.notes():
        recorder.latents.clear()
        worker.render_now([note])  # one pad a call: the latents recorded are all its own
        if note in refused or note not in published:
            raise ExportError(f"pad {note}: the render was refused ({refused.get(note, '?')})")
        sound, pad = published[note], kit.pads[note]
        rows = np.concatenate(recorder.latents).astype(np.float64)
        layers = sound.variants[0].shape[0]
        latents = tuple(
            tuple(tuple(row.tolist()) for row in rows[v * layers : (v + 1) * layers])
            for v in range(len(sound.variants))
        )
        files = tuple(
            tuple(sample_name(note, pad.class_name, layer, v) for layer in range(layers))
            for v in range(len(sound.variants))
        )
        out.append(PadExport(pad, sound, latents, files))
    return out


# -- velocity layers ------------------------------------------------------------------------
def layer_centres(layers: int) -> list[float]:
    """The velocity at which the mixer plays each layer alone (`_mixer.c`, note_on: position
    (velocity - 1) / 126 * (layers - 1)); between two centres it crossfades them linearly."""
    if layers < 2:
        return [127.0]
    return [1.0 + 126.0 * i / (layers - 1) for i in range(layers)]


def _velocity(value: float) -> int:
    return min(127, max(1, math.floor(value + 0.5)))


def sfz_velocity_opcodes(layer: int, layers: int) -> dict[str, int]:
    """lovel/hivel of one layer, with the linear crossfades to its neighbours."""
    if layers < 2:
        return {"lovel": 1, "hivel": 127}
    c = [_velocity(v) for v in layer_centres(layers)]
    ops: dict[str, int] = {}
    ops["lovel"] = c[layer - 1] if layer > 0 else 1
    ops["hivel"] = c[layer + 1] if layer < layers - 1 else 127
    if layer > 0:
        ops["xfin_lovel"], ops["xfin_hivel"] = c[layer - 1], c[layer]
    if layer < layers - 1:
        ops["xfout_lovel"], ops["xfout_hivel"] = c[layer], c[layer + 1]
    return ops


def hydrogen_velocity_range(layer: int, layers: int) -> tuple[float, float]:
    """(min, max) in Hydrogen's 0..1 velocity: Hydrogen picks one layer, no crossfade, so each
    layer takes the velocities nearest its centre."""
    centres = layer_centres(layers)
    low = 0.0 if layer == 0 else (centres[layer - 1] + centres[layer]) / 2 / 127
    high = 1.0 if layer == layers - 1 else (centres[layer] + centres[layer + 1]) / 2 / 127
    return low, high


# -- writers --------------------------------------------------------------------------------
def _num(value: float) -> str:
    return f"{value:.6g}"


def write_samples(folder: Path, pads: Sequence[PadExport], samplerate: int) -> None:
    for p in pads:
        for v, names in enumerate(p.files):
            for row, name in zip(p.sound.audio(v), names, strict=True):
                soundfile.write(str(folder / name), row, samplerate, subtype=SAMPLE_SUBTYPE)


def sfz_text(kit: Kit, pads: Sequence[PadExport], model: str) -> str:
    lines = [
        f"// {kit.name}: a DK·VAE Live kit (model {model}), exported by dkvae-live export-kit.",
        "// One <group> per pad: velocity layers crossfade as the daemon's do, variants play",
        "// in turn (seq_position), choke groups cut with the daemon's 5 ms fade.",
        "<control> default_path=./",
        "<global> amp_veltrack=100 xf_velcurve=gain",
    ]
    for p in pads:
        pad = p.pad
        group = {
            "key": str(pad.note),
            "pan": _num(100.0 * pad.pan),
            "volume": _num(20.0 * math.log10(pad.gain)) if pad.gain > 0 else "-144",
            "note_polyphony": str(pad.polyphony),
        }
        for v in VELOCITY_CURVE_POINTS:
            group[f"amp_velcurve_{v}"] = _num((v / 127.0) ** pad.velocity_curve)
        if pad.choke_group:
            group |= {
                "group": str(pad.choke_group),
                "off_by": str(pad.choke_group),
                "off_mode": "time",
                "off_time": _num(FADE_SECONDS),  # the mixer's fade when a choke cuts a voice
            }
        if p.variants > 1:
            group["seq_length"] = str(p.variants)
        lines += ["", f"// pad {pad.note}: {pad.class_name}"]
        lines.append("<group> " + " ".join(f"{k}={v}" for k, v in group.items()))
        for variant, names in enumerate(p.files):
            for layer, name in enumerate(names):
                region = {"sample": name, **sfz_velocity_opcodes(layer, p.layers)}
                if p.variants > 1:
                    region["seq_position"] = variant + 1
                lines.append("<region> " + " ".join(f"{k}={v}" for k, v in region.items()))
    return "\n".join(lines) + "\n"


def _sub(parent: ET.Element, tag: str, text: object) -> ET.Element:
    elem = ET.SubElement(parent, tag)
    elem.text = text if isinstance(text, str) else _num(float(cast(float, text)))
    return elem


def hydrogen_xml(kit: Kit, pads: Sequence[PadExport], model: str) -> bytes:
    """A Hydrogen 1.2 drumkit.xml: one instrument per pad (MIDI note as its output note), its
    layers by velocity, its variants as round-robins over the layers of one velocity range."""
    root = ET.Element("drumkit_info", {"xmlns": HYDROGEN_NS})
    _sub(root, "name", kit.name)
    _sub(root, "author", "DK·VAE Live")
    _sub(root, "info", f"Rendered by dkvae-live export-kit from model {model}.")
    _sub(root, "license", "")
    _sub(root, "image", "")
    _sub(root, "imageLicense", "")
    components = ET.SubElement(root, "componentList")
    component = ET.SubElement(components, "drumkitComponent")
    _sub(component, "id", "0")
    _sub(component, "name", "Main")
    _sub(component, "volume", "1")
    instruments = ET.SubElement(root, "instrumentList")
    for index, p in enumerate(pads):
        pad = p.pad
        elem = ET.SubElement(instruments, "instrument")
        for tag, value in (
            ("id", str(index)),
            ("name", f"{pad.class_name} {pad.note}"),
            ("volume", "1"),
            ("isMuted", "false"),
            ("isSoloed", "false"),
            ("pan", pad.pan),
            ("pitchOffset", "0"),
            ("randomPitchFactor", "0"),
            ("gain", pad.gain),
            ("applyVelocity", "true"),
            ("filterActive", "false"),
            ("filterCutoff", "1"),
            ("filterResonance", "0"),
            ("Attack", "0"),
            ("Decay", "0"),
            ("Sustain", "1"),
            ("Release", "1000"),
            ("muteGroup", str(pad.choke_group or -1)),
            ("midiOutChannel", "-1"),
            ("midiOutNote", str(pad.note)),
            ("isStopNote", "false"),
            ("sampleSelectionAlgo", "ROUND_ROBIN" if p.variants > 1 else "VELOCITY"),
            ("isHihat", "-1"),
            ("lower_cc", "0"),
            ("higher_cc", "127"),
            *((f"FX{n}Level", "0") for n in range(1, 5)),
        ):
            _sub(elem, tag, value)
        part = ET.SubElement(elem, "instrumentComponent")
        _sub(part, "component_id", "0")
        _sub(part, "gain", "1")
        for layer in range(p.layers):
            low, high = hydrogen_velocity_range(layer, p.layers)
            for names in p.files:
                entry = ET.SubElement(part, "layer")
                _sub(entry, "filename", names[layer])
                _sub(entry, "min", low)
                _sub(entry, "max", high)
                _sub(entry, "gain", "1")
                _sub(entry, "pitch", "0")
    ET.indent(root, " ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def write_hydrogen_archive(folder: Path, kit_name: str, pads: Sequence[PadExport]) -> None:
    """drumkit.h2drumkit: a tar.gz of one folder, named after the kit, holding drumkit.xml and
    the samples it names (what Hydrogen's "Import drumkit" reads)."""
    top = safe_name(kit_name)
    with tarfile.open(folder / HYDROGEN_ARCHIVE, "w:gz") as archive:
        archive.add(folder / HYDROGEN_XML, f"{top}/{HYDROGEN_XML}")
        for p in pads:
            for names in p.files:
                for name in names:
                    archive.add(folder / name, f"{top}/{name}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_record(
    decoder: Decoder, kit: Kit, pads: Sequence[PadExport], samplerate: int, seed: int
) -> dict[str, object]:
    """What reproduces the export: the model (and its checksum), the kit as TOML, the seed of
    the variants, and per pad the latent behind every file."""
    info = decoder.info
    return {
        "exported_by": "dkvae-live export-kit",
        "model": {
            "name": info.name,
            "path": str(info.path),
            "sha256": _sha256(info.path),
            "sample_rate": info.sample_rate,
        },
        "samplerate": samplerate,
        "seed": seed,
        "kit": {"name": kit.name, "toml": kit_to_toml(kit)},
        "pads": [
            {
                "note": p.pad.note,
                "class": p.pad.class_name,
                "files": [list(names) for names in p.files],
                "latents": [[list(z) for z in variant] for variant in p.latents],
            }
            for p in pads
        ],
    }


# -- the export -----------------------------------------------------------------------------
def check_destination(out: Path, force: bool) -> None:
    """ExportError unless `out` is free, empty, or (with `force`) an earlier export."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise ExportError(f"{out}: exists and is not a folder; give another name")
    if not any(out.iterdir()):
        return
    if not force:
        raise ExportError(f"{out}: exists; give another name, or --force to replace an export")
    if not (out / EXPORT_JSON).is_file():
        raise ExportError(f"{out}: not an earlier export (no {EXPORT_JSON}); not replacing it")


def export_kit(
    decoder: Decoder,
    kit: Kit,
    out: Path,
    formats: Collection[str] = FORMATS,
    samplerate: int = 48000,
    force: bool = False,
    seed: int = 0,
) -> list[PadExport]:
    """Render `kit` and write it to the folder `out`, atomically. Returns what was written."""
    out = Path(out).absolute()
    check_destination(out, force)
    pads = render_pads(decoder, kit, samplerate, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=TEMP_SUFFIX, dir=out.parent))
    old: Path | None = None
    try:
        write_samples(tmp, pads, samplerate)
        model = decoder.info.name
        if "sfz" in formats:
            (tmp / f"{safe_name(kit.name)}.sfz").write_text(sfz_text(kit, pads, model))
        if "hydrogen" in formats:
            (tmp / HYDROGEN_XML).write_bytes(hydrogen_xml(kit, pads, model))
            write_hydrogen_archive(tmp, kit.name, pads)
        record = export_record(decoder, kit, pads, samplerate, seed)
        (tmp / EXPORT_JSON).write_text(json.dumps(record, indent=1) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp's folder is private; an export is not
        _sync(tmp)
        check_destination(out, force)  # again: the render took a while
        if out.exists():  # empty, or an earlier export to replace: moved aside first
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / "export")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():  # put the old export back
            os.replace(old / "export", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _sync(out.parent, files=False)
    return pads


def _sync(folder: Path, files: bool = True) -> None:
    """fsync the files of `folder` (not its subfolders), then the folder itself: what was
    written is on disk before the rename that makes it the export."""
    for path in folder.iterdir() if files else ():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
