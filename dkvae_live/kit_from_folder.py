"""`dkvae-live kit-from-folder`: a kit made from a folder of the user's own sound files.

Every sound file under the folder becomes a pad. Its class comes from its name, by the rules the
bank labels its sounds with (dkvae_live.labels); a name that says nothing (or names a class the
model lacks) leaves it to the sound (`class_of_sound`): the model's class guess from its drum
features (``dkvae.class_guess``), else the class whose real sounds' mean latent
(``dkvae.class_latents``) lies nearest the encoder's latent of the file. Its latent is the
encoder's, fitted through the decoder to the file at the pad's class (latent_fit), as
`/dkvae/pad/encode` makes it. Its note is the first free one of its class on the General MIDI
drum map (pads.GM_DRUMS); a class's further sounds, and the classes the map lacks, take the
notes above General MIDI's percussion range, then those below it.
A file that cannot be read is skipped and named with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import contract
from .class_latents import ClassLatent
from .kit import KIT_SUFFIX, Kit, save_kit
from .labels import LabelRules, folder_instrument
from .latent_fit import FIT_STEPS, fit_latent
from .model import Decoder, Encoder, ModelError, ModelInfo, read_sound
from .pads import GM_DRUMS, LATENT_LIMIT, Pad

log = logging.getLogger(__name__)

# What soundfile (libsndfile) reads; other files in the folder (a README, a drumkit.xml) are not
# sounds and are passed over.
SOUND_SUFFIXES = (
    ".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".opus", ".mp3", ".caf",
    ".w64", ".au",
)  # fmt: skip
# A class's first note is the one a drum pattern plays it on (GM's bass drum 1, acoustic snare,
# closed hi-hat, crash 1, hand clap; an open hat and a ride before the rarer ones); its other
# notes of GM_DRUMS follow from low to high.
FIRST_NOTES: dict[str, tuple[int, ...]] = {
    "kick": (36,),
    "snare": (38,),
    "hihat": (42, 46),
    "cymbal": (49, 51),
    "perc": (39,),
}
GM_PERCUSSION = range(35, 82)  # General MIDI level 1's percussion key map: 35..81
# Notes for the sounds the map has no place for: above the GM range first, then below it.
OTHER_NOTES = (*range(GM_PERCUSSION.stop, 128), *range(GM_PERCUSSION.start - 1, -1, -1))
BY_NAME = "name"
BY_SOUND = "sound"


class FolderError(Exception):
    """No kit can be made from the folder, or the kit file may not be written."""


@dataclass(frozen=True)
class FolderPad:
    """A pad made from one file (`path`, relative to the folder); `by`: BY_NAME when its file's
    name gave its class, BY_SOUND when the sound did (`class_of_sound`)."""

    path: Path
    pad: Pad
    by: str


@dataclass(frozen=True)
class FolderKit:
    """The kit, where each pad came from, and the files skipped with the reason for each."""

    kit: Kit
    pads: tuple[FolderPad, ...]
    skipped: tuple[tuple[Path, str], ...]


def sound_files(folder: Path) -> list[Path]:
    """The sound files under `folder`, recursively, in name order. Hidden files and folders are
    left out (a Mac's `._kick.wav` is metadata, not a sound)."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in SOUND_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix().lower())


def class_from_name(
    relative: Path, kit: str, class_names: Sequence[str], rules: LabelRules
) -> str | None:
    """The class the bank's rules give a file (its subfolder's name first, then its file
    name, as the bank's folder importer names it), if the model has that class."""
    _, label = rules.classify(folder_instrument(relative), relative.name, kit)
    return label if label in class_names else None


def class_of_sound(sound: np.ndarray, latent: np.ndarray, info: ModelInfo) -> str | None:
    """The class of a sound whose name says nothing: the model's class guess from the sound
    itself where it has one, else the class latent nearest its latent; None when it has
    neither (or the sound is silent)."""
    if info.class_guess is not None:
        index = info.class_guess.guess(sound, info.sample_rate)
        return None if index is None else info.class_names[index]
    if info.class_latents:
        return nearest_class(latent, info.class_latents)
    return None


def nearest_class(latent: np.ndarray, class_latents: Mapping[str, ClassLatent]) -> str:
    """The class whose sounds' mean latent is nearest `latent`. The plain distance: on the
    Debian Hydrogen kits' named sounds it agreed with their names more often than the
    Mahalanobis distance or the likelihood under each class's Gaussian."""
    names = list(class_latents)
    distances = [float(np.linalg.norm(latent - class_latents[n].mean)) for n in names]
    return names[int(np.argmin(distances))]


def gm_notes(class_name: str) -> list[int]:
    """The General MIDI notes of a class, in the order its sounds take them."""
    notes = [note for note, (name, _) in GM_DRUMS.items() if name == class_name]
    first = [note for note in FIRST_NOTES.get(class_name, ()) if note in notes]
    return first + sorted(set(notes) - set(first))


def assign_notes(classes: Iterable[str]) -> Iterator[int | None]:
    """A note for each class in turn: its class's next free GM note, else the next of
    OTHER_NOTES; None when all 128 are taken."""
    classes = list(classes)
    free = {name: iter(gm_notes(name)) for name in set(classes)}
    other = iter(OTHER_NOTES)
    for name in classes:
        note = next(free[name], None)
        yield note if note is not None else next(other, None)


def model_encoder(info: ModelInfo) -> Encoder:
    """The encoder beside a model's decoder; ModelError when there is none."""
    path = info.path.parent / contract.ENCODER_FILE
    if not path.is_file():
        raise ModelError(
            f"{path}: no such file; a kit from sounds needs the model's encoder beside its decoder"
        )
    return Encoder(path, info)


def kit_from_folder(
    folder: Path,
    decoder: Decoder,
    encoder: Encoder,
    rules: LabelRules | None = None,
    fit_steps: int = FIT_STEPS,
) -> FolderKit:
    """A kit of every sound file under `folder` for `decoder`'s model; each latent fitted in
    `fit_steps` steps (0: the encoder's as it is)."""
    info = decoder.info
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderError(f"{folder}: no such folder")
    files = sound_files(folder)
    if not files:
        raise FolderError(f"{folder}: holds no sound files ({', '.join(SOUND_SUFFIXES)})")
    rules = rules or LabelRules()
    kit_name = folder.resolve().name
    skipped: list[tuple[Path, str]] = []
    made: list[tuple[Path, str, str, np.ndarray, np.ndarray]] = []  # file, class, by, latent, sound
    for path in files:
        relative = path.relative_to(folder)
        try:
            sound = read_sound(path, info.sample_rate, info.num_samples)
        except ValueError as exc:  # it names the file and what is wrong with it
            skipped.append((relative, str(exc).removeprefix(f"{path}: ")))
            continue
        latent = encoder.encode(sound[None])[0].astype(np.float64)
        name = class_from_name(relative, kit_name, info.class_names, rules)
        if name is not None:
            made.append((relative, name, BY_NAME, latent, sound))
            continue
        guessed = class_of_sound(sound, latent, info)
        if guessed is not None:
            made.append((relative, guessed, BY_SOUND, latent, sound))
        else:
            skipped.append(
                (
                    relative,
                    f"its name says no class of {', '.join(info.class_names)}, and model "
                    f"{info.name} has neither a class guess ({contract.CLASS_GUESS}) nor class "
                    f"latents ({contract.CLASS_LATENTS}) to tell one",
                )
            )
    if fit_steps > 0 and made:
        log.info("fitting %d pads' latents to their sounds, %d steps each", len(made), fit_steps)
    pads: list[FolderPad] = []
    for (relative, name, by, latent, sound), note in zip(
        made, assign_notes([m[1] for m in made]), strict=True
    ):
        if note is None:
            skipped.append((relative, "no MIDI note is left: a kit holds 128 pads at most"))
            continue
        choke = GM_DRUMS[note][1] if note in GM_DRUMS else 0
        latent = fit_latent(decoder, sound, info.class_index(name), latent, fit_steps)
        z = tuple(float(v) for v in np.clip(latent, -LATENT_LIMIT, LATENT_LIMIT))
        pads.append(FolderPad(relative, Pad(note, name, z, choke_group=choke), by))
    if not pads:
        reasons = "; ".join(f"{path}: {why}" for path, why in skipped)
        raise FolderError(f"{folder}: none of its sound files makes a pad ({reasons})")
    kit = Kit(kit_name, {p.pad.note: p.pad for p in pads})
    return FolderKit(kit, tuple(pads), tuple(skipped))


def check_output(out: Path, force: bool) -> None:
    """FolderError unless a kit may be written to `out`: a .toml name, not an existing file
    unless `force`, never a folder."""
    if out.suffix != KIT_SUFFIX:
        raise FolderError(f"{out}: a kit file's name ends in {KIT_SUFFIX}; give one that does")
    if out.is_dir():
        raise FolderError(f"{out}: is a folder; give the kit file's name")
    if (out.exists() or out.is_symlink()) and not force:
        raise FolderError(f"{out}: exists; give another name, or --force to replace it")


def write_kit(kit: Kit, out: Path, force: bool = False) -> None:
    """Save `kit` to `out` atomically (kit.save_kit), after check_output."""
    out = Path(out)
    check_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_kit(kit, out)


def summary(made: FolderKit, out: Path) -> str:
    """What was made, for the terminal: a line per pad, the classes the sounds decided, the
    files skipped and why."""
    by_sound = [p for p in made.pads if p.by == BY_SOUND]
    lines = [f"{out}: kit {made.kit.name!r}, {len(made.pads)} pads"]
    width = max(len(p.pad.class_name) for p in made.pads)
    for p in sorted(made.pads, key=lambda p: p.pad.note):
        how = "by its sound" if p.by == BY_SOUND else "by its name"
        lines.append(f"  {p.pad.note:3d} {p.pad.class_name:<{width}}  {how:<12}  {p.path}")
    if by_sound:
        lines.append(
            f"{len(by_sound)} class(es) guessed from the sound, the names saying none: "
            + ", ".join(f"{p.path} ({p.pad.class_name})" for p in by_sound)
        )
    if made.skipped:
        lines.append(f"{len(made.skipped)} file(s) skipped:")
        lines += [f"  {path}: {why}" for path, why in made.skipped]
    return "\n".join(lines)
