"""A sound's latent fitted through the decoder (dkvae_live.latent_fit): real drum sounds from
kits in the shipped model's test split (lmms-common's DrumSynth presets, rendered as the bank
imports them) come back closer, as the daemon plays them, than from the encoder's latent alone;
a waveform decoder's own sound is found again from a latent put off it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from dkvae_training import yardstick as ys
from dkvae_training.importers.drumsynth import read_preset, render
from harness.synth_models import sine_decoder
from test_importers import debian_package

from dkvae_live.latent_fit import fit_distance, fit_latent
from dkvae_live.model import Decoder, Encoder, read_sound

# presets of three kits the shipped model never trained on (its test split), and their classes
PRESETS = {
    "cr8000/Kick.ds": "kick",
    "cr8000/Snare.ds": "snare",
    "cr8000/Hat_c.ds": "hihat",
    "cr8000/Cymbal.ds": "cymbal",
    "cr8000/Conga_m.ds": "perc",
    "acoustic/JazzKick.ds": "kick",
    "acoustic/Ride.ds": "cymbal",
    "electro/S_Linn.ds": "snare",
    "electro/Syntom_1.ds": "tom",
}


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The presets rendered to sound files, as a user's sample pack would hold them."""
    folder = debian_package("lmms-common") / "usr/share/lmms/samples/drumsynth"
    out = tmp_path_factory.mktemp("drumsynth")
    files = []
    for name in PRESETS:
        path = out / name.replace("/", "-").replace(".ds", ".wav")
        soundfile.write(path, render(read_preset(folder / name)), 44100, subtype="FLOAT")
        files.append(path)
    return files


def test_real_sounds_of_unseen_kits_come_back_closer(sounds: list[Path]) -> None:
    decoder = Decoder()  # the shipped model
    info = decoder.info
    encoder = Encoder(info.path.parent / "encoder.onnx", info)
    audio = np.stack([read_sound(f, info.sample_rate, info.num_samples) for f in sounds])
    classes = np.array([info.class_index(c) for c in PRESETS.values()], np.int64)
    encoded = encoder.encode(audio)
    fitted = np.stack(
        [fit_latent(decoder, a, int(c), z) for a, c, z in zip(audio, classes, encoded, strict=True)]
    )
    assert np.all(np.isfinite(fitted)) and fitted.shape == encoded.shape
    # issue 18's measure 1, as the daemon renders them (phase and all)
    before = ys.mel_distance(audio, decoder.render(encoded, classes), info.sample_rate)
    after = ys.mel_distance(audio, decoder.render(fitted, classes), info.sample_rate)
    assert np.mean(before - after) > 0.3, (before, after)
    assert np.sum(after < before) >= len(PRESETS) - 1, (before, after)
    # no steps: the encoder's latent as it is
    np.testing.assert_array_equal(
        fit_latent(decoder, audio[0], int(classes[0]), encoded[0], 0), encoded[0]
    )


def test_a_waveform_decoders_own_sound_is_found_from_a_latent_put_off_it(tmp_path: Path) -> None:
    """The sine model's pitch and decay follow z[0] and z[1]: its sound at a latent, fitted from
    a latent put off in both, comes back to that latent's pitch and decay. (A pure tone's pitch
    is a narrow valley: a tenth of a unit off is inside it, a half is not.)"""
    decoder = Decoder(sine_decoder(tmp_path / "decoder.onnx", amplitude=1.0))
    info = decoder.info
    target = np.zeros(info.latent_size, np.float32)
    target[:2] = (0.5, -0.3)
    sound = decoder.render(target[None], np.array([2]))[0]  # its peak is 1, as read from a file
    start = target.copy()
    start[:2] += (0.1, 0.5)
    fitted = fit_latent(decoder, sound, 2, start, steps=24)
    assert np.abs(fitted[:2] - target[:2]).max() < 0.1, fitted[:2]
    np.testing.assert_array_equal(fitted[2:], target[2:])  # dimensions the sound does not move
    far = ys.mel_distance(sound[None], decoder.render(start[None], np.array([2])), info.sample_rate)
    near = ys.mel_distance(
        sound[None], decoder.render(fitted[None], np.array([2])), info.sample_rate
    )
    assert near[0] < 0.2 * far[0], (far, near)


def test_each_step_keeps_the_closest_latent_met(tmp_path: Path) -> None:
    """A step that lands further from the sound is not taken: more steps never end further
    away, whatever the start (here one far off in pitch, where the first steps overshoot)."""
    decoder = Decoder(sine_decoder(tmp_path / "decoder.onnx", amplitude=1.0))
    target = np.zeros(decoder.info.latent_size, np.float32)
    target[:2] = (-0.4, 0.2)
    sound = decoder.render(target[None], np.array([1]))[0]
    start = target.copy()
    start[:2] += (0.6, -0.8)
    fitted = np.stack([fit_latent(decoder, sound, 1, start, steps) for steps in range(9)])
    distances = fit_distance(decoder, sound, 1, fitted)
    assert np.all(np.diff(distances) <= 0.0), distances
    assert distances[-1] < distances[0], distances
