"""`dkvae-live kit-from-folder`: a folder of real drum samples (the Debian Hydrogen kits' WAVs
and FLACs, renamed as a user's sample pack would be) becomes a kit, which then plays through the
offline render, every pad a sound of its own."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from dkvae_training.bank_cli import DRUMKITS, fetch_package
from harness.synth_models import CLASSES, linear_encoder, sine_decoder

from dkvae_live.cli import main
from dkvae_live.kit import load_kit
from dkvae_live.kit_from_folder import (
    OTHER_NOTES,
    FolderError,
    assign_notes,
    class_from_name,
    kit_from_folder,
    model_encoder,
)
from dkvae_live.labels import LabelRules
from dkvae_live.latent_fit import fit_latent
from dkvae_live.model import Decoder, ModelError, read_sound
from dkvae_live.offline import render_midi

RATE = 48000
SPACING = 1.25  # seconds between the hits of the render: the model's sounds last 1 s
# The sample pack: file in the pack <- file of a Debian Hydrogen kit
PACK = {
    "Kick-Hard.wav": "GMRockKit/Kick-Hard.wav",
    "Kick-Med.wav": "GMRockKit/Kick-Med.wav",
    "Kick-Soft.wav": "GMRockKit/Kick-Soft.wav",
    "Snare-Hard.wav": "GMRockKit/Snare-Hard.wav",
    "Crash-Med.wav": "GMRockKit/Crash-Med.wav",
    "Hats/a.wav": "GMRockKit/HatClosed-Med.wav",  # the folder's name says what they are
    "Hats/b.wav": "GMRockKit/HatOpen-Med.wav",
    "take 7.flac": "TR808EmulationKit/808_Kick_Short.flac",  # the name says nothing
}
# note -> (class, file, how the class was found)
EXPECTED = {
    35: ("kick", "Kick-Med.wav", "name"),
    36: ("kick", "Kick-Hard.wav", "name"),
    38: ("snare", "Snare-Hard.wav", "name"),
    42: ("hihat", "Hats/a.wav", "name"),
    46: ("hihat", "Hats/b.wav", "name"),
    49: ("cymbal", "Crash-Med.wav", "name"),
    82: ("kick", "Kick-Soft.wav", "name"),  # kick's GM notes are taken: above the GM range
    83: ("kick", "take 7.flac", "sound"),
}


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder()  # the shipped model: it has an encoder and class latents


@pytest.fixture(scope="module")
def drumkits() -> Path:
    kits = os.environ.get("DKVAE_TEST_KITS")
    unpacked = kits and (Path(kits) / "hydrogen-data" / ".unpacked").exists()
    if not kits or not (unpacked or list(Path(kits).glob("hydrogen-data_*.deb"))):
        pytest.skip("needs Debian package hydrogen-data in $DKVAE_TEST_KITS (scripts/test.sh)")
    return fetch_package("hydrogen-data", Path(kits)) / DRUMKITS


@pytest.fixture(scope="module")
def pack(drumkits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("samples") / "my pack"
    for name, source in PACK.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(drumkits / source, folder / name)
    (folder / "broken.wav").write_text("not a sound")  # a download cut short
    (folder / "README.txt").write_text("not a sound file at all")
    (folder / "._Kick-Hard.wav").write_bytes(b"\0\5\26\7")  # a Mac's metadata: hidden
    return folder


@pytest.fixture(scope="module")
def made(pack: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The kit file the command wrote, and what it printed."""
    out = tmp_path_factory.mktemp("kit") / "pack.toml"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["kit-from-folder", str(pack), "-o", str(out)]) == 0
    return out, printed.getvalue()


def test_every_sound_file_is_a_pad_on_its_general_midi_note(
    pack: Path, made: tuple[Path, str], decoder: Decoder
) -> None:
    out, printed = made
    info = decoder.info
    kit = load_kit(out, info.class_names, info.latent_size)
    assert kit.name == "my pack"
    assert {note: pad.class_name for note, pad in kit.pads.items()} == {
        note: name for note, (name, _, _) in EXPECTED.items()
    }
    assert {n for n, p in kit.pads.items() if p.choke_group == 1} == {42, 46}  # GM's hi-hat
    # each pad's latent is the encoder's for its file, fitted through the decoder at its class,
    # as /dkvae/pad/encode makes it
    encoder = model_encoder(info)
    for note, (class_name, name, _) in EXPECTED.items():
        sound = read_sound(pack / name, info.sample_rate, info.num_samples)
        z = encoder.encode(sound[None])[0]
        fitted = fit_latent(decoder, sound, info.class_index(class_name), z)
        np.testing.assert_allclose(kit.pads[note].latent, fitted, atol=2e-6, err_msg=name)
        assert np.abs(fitted - z).max() > 0.01, name  # the fit moved it
    # the summary: a line per pad saying how its class was found; what was skipped, and why
    for note, (name, file, how) in EXPECTED.items():
        assert any(
            line.split()[:2] == [str(note), name]
            and f"by its {how}" in line
            and line.endswith(file)
            for line in printed.splitlines()
        ), (note, printed)
    assert (
        "1 class(es) guessed from the sound, the names saying none: take 7.flac (kick)" in printed
    )
    assert "1 file(s) skipped:\n  broken.wav: cannot read the sound:" in printed
    assert "README" not in printed and "._" not in printed


def test_the_kit_plays_every_pad_a_sound_of_its_own(
    made: tuple[Path, str], decoder: Decoder
) -> None:
    """The kit through the offline render (the live voice engine): every hit sounds, and no
    two pads sound alike."""
    kit = load_kit(made[0], decoder.info.class_names, decoder.info.latent_size)
    notes = sorted(kit.pads)
    audio, skipped = render_midi(
        [(i * SPACING, note, 100) for i, note in enumerate(notes)], decoder, kit, RATE
    )
    assert skipped == 0
    hits = [audio[round(i * SPACING * RATE) :][:RATE, 0] for i in range(len(notes))]
    for note, hit in zip(notes, hits, strict=True):
        assert np.sqrt(np.mean(hit**2)) > 1e-3, f"pad {note} is silent"
    for i in range(len(notes)):
        for j in range(i + 1, len(notes)):
            a, b = hits[i], hits[j]
            apart = np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b))
            assert apart > 0.1, f"pads {notes[i]} and {notes[j]} play the same sound"
    # and each as its class sounds: every kick darker than every hi-hat
    frequencies = np.fft.rfftfreq(RATE, 1 / RATE)
    centroid = {}
    for note, hit in zip(notes, hits, strict=True):
        spectrum = np.abs(np.fft.rfft(hit))
        centroid[note] = float(spectrum @ frequencies / spectrum.sum())
    kicks = [centroid[n] for n in notes if kit.pads[n].class_name == "kick"]
    hats = [centroid[n] for n in notes if kit.pads[n].class_name == "hihat"]
    assert max(kicks) < min(hats), centroid


def test_a_kit_file_is_replaced_only_with_force(
    pack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], decoder: Decoder
) -> None:
    out = tmp_path / "mine.toml"
    out.write_text("# my own kit\n")
    command = ["kit-from-folder", str(pack / "Hats"), "-o", str(out)]
    assert main(command) == 2
    assert (
        "mine.toml: exists; give another name, or --force to replace it" in capsys.readouterr().err
    )
    assert out.read_text() == "# my own kit\n"
    assert main([*command, "--force"]) == 0
    info = decoder.info  # the shipped model, which the command uses
    assert len(load_kit(out, info.class_names, info.latent_size).pads) == 2  # its two files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml"]  # no temporaries left
    assert main(["kit-from-folder", str(pack), "-o", str(tmp_path / "kit.txt")]) == 2
    assert "a kit file's name ends in .toml" in capsys.readouterr().err


def test_a_folder_without_a_readable_sound_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "kick.wav").write_text("not a sound")
    (tmp_path / "in" / "snare.flac").write_bytes(b"")
    out = tmp_path / "kit.toml"
    assert main(["kit-from-folder", str(tmp_path / "in"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "none of its sound files makes a pad" in err
    assert "kick.wav: cannot read the sound" in err and "snare.flac: cannot read the sound" in err
    assert not out.exists()
    assert main(["kit-from-folder", str(tmp_path / "nowhere"), "-o", str(out)]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err


def test_notes_follow_the_general_midi_drum_map() -> None:
    classes = ["kick", "hihat", "kick", "hihat", "hihat", "tom", "hihat", "snare", "kick", "gong"]
    assert list(assign_notes(classes)) == [36, 42, 35, 46, 44, 41, 82, 38, 83, 84]
    # when the notes above the GM range are taken, those below it; then none
    notes = list(assign_notes(["gong"] * 128))
    assert notes[: len(OTHER_NOTES)] == [*range(82, 128), *range(34, -1, -1)]
    assert notes[len(OTHER_NOTES) :] == [None] * (128 - len(OTHER_NOTES))


def test_classes_from_names_as_the_bank_labels_them() -> None:
    rules = LabelRules()

    def named(path: str, classes: tuple[str, ...] = CLASSES) -> str | None:
        return class_from_name(Path(path), "my pack", classes, rules)

    assert named("BassDrum_01.wav") == "kick"
    assert named("Kicks/x.wav") == "kick"  # the folder's name, as the bank's folder importer
    assert named("HatClosed.aiff") == "hihat"
    assert named("808 Cowbell.wav") == "perc"
    assert named("take 7.wav") is None
    assert named("metronome.wav") is None  # left out of a bank: here the sound decides
    assert named("Tom1.wav", ("kick", "snare")) is None  # a class the model lacks


def test_a_model_without_class_latents_or_encoder(tmp_path: Path, pack: Path) -> None:
    model = tmp_path / "model"
    sine_decoder(model / "decoder.onnx")
    info = Decoder(model).info
    with pytest.raises(ModelError, match=r"encoder.onnx: no such file; a kit from sounds needs"):
        model_encoder(info)
    linear_encoder(model / "encoder.onnx")
    folder_kit = kit_from_folder(pack, Decoder(model), model_encoder(info))
    assert sorted(folder_kit.kit.pads) == [35, 36, 38, 42, 46, 49, 82]
    reasons = {str(path): why for path, why in folder_kit.skipped}
    assert list(reasons) == ["broken.wav", "take 7.flac"]
    assert reasons["broken.wav"].startswith("cannot read the sound: ")
    assert reasons["take 7.flac"].startswith("its name says no class of kick, snare, hihat")
    assert "neither a class guess (dkvae.class_guess) nor class latents" in reasons["take 7.flac"]
    with pytest.raises(FolderError, match="holds no sound files"):
        kit_from_folder(tmp_path / "model", Decoder(model), model_encoder(info))
