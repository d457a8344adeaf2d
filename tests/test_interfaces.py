"""The two public interfaces: the OSC address space document and the model contract."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
from harness.osc_doc import documented_addresses
from harness.synth_models import linear_encoder, sine_decoder, spectrogram_decoder

from dkvae_live.class_latents import NEAR, from_json, to_json
from dkvae_live.engine import Engine
from dkvae_live.latent_fit import fit_latent
from dkvae_live.model import Decoder, Encoder, ModelError, read_sound
from dkvae_live.osc_api import OscApi
from dkvae_live.osc_in import OscServer
from dkvae_live.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_daemon_registers_exactly_the_documented_osc_addresses(sine_model: Path) -> None:
    engine = Engine(Settings(model=sine_model))
    server = OscServer("127.0.0.1", 0, lambda reason, detail: None)
    try:
        OscApi(engine, server)
        assert server.signatures == documented_addresses()
    finally:
        server.stop()


def test_live_package_never_imports_tensorflow() -> None:
    code = (
        "import sys, dkvae_live, dkvae_live.cli, dkvae_live.engine;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_model_that_follows_the_contract_loads_and_renders(tmp_path: Path) -> None:
    decoder = Decoder(sine_decoder(tmp_path / "decoder.onnx", num_samples=1000))
    assert decoder.info.latent_size == 8
    assert decoder.info.class_names[0] == "kick"
    audio = decoder.render(np.zeros((3, 8), np.float32), np.array([0, 1, 2]))
    assert audio.shape == (3, 1000) and audio.dtype == np.float32
    # Class 2 sounds three times as high as class 0 in the sine model: count zero crossings.
    crossings = [(np.diff(np.sign(a[1:])) != 0).sum() for a in audio]
    assert crossings[2] == pytest.approx(3 * crossings[0], abs=2)


def test_a_folder_with_decoder_onnx_is_a_model(tmp_path: Path) -> None:
    sine_decoder(tmp_path / "mymodel" / "decoder.onnx")
    assert Decoder(tmp_path / "mymodel").info.name == "sine-test"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dkvae.contract_version": None}, "not a DK·VAE Live model"),
        ({"dkvae.contract_version": "7"}, "contract version '7'"),
        ({"dkvae.role": "encoder"}, "expected 'decoder'"),
        ({"dkvae.output_kind": "midi"}, "'dkvae.output_kind' is 'midi'"),
        ({"dkvae.sample_rate": "fast"}, "'dkvae.sample_rate' must be an integer"),
        ({"dkvae.sample_rate": None}, "'dkvae.sample_rate' is missing"),
        ({"dkvae.latent_size": "4"}, "last dimension 8, metadata says 4"),
        ({"dkvae.num_samples": "999"}, "metadata promises [batch, 999]"),
        ({"dkvae.class_names": "kick,snare"}, "not a JSON list"),
        ({"dkvae.class_names": json.dumps(["kick", "kick"])}, "distinct names"),
        ({"dkvae.class_names": "[]"}, "non-empty"),
    ],
)
def test_a_model_with_a_wrong_contract_is_refused_saying_what_is_wrong(
    tmp_path: Path, change: dict[str, str | None], message: str
) -> None:
    path = sine_decoder(tmp_path / "decoder.onnx", num_samples=1000, metadata=change)
    with pytest.raises(ModelError) as err:
        Decoder(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_wrong_output_name_is_refused(tmp_path: Path) -> None:
    path = sine_decoder(tmp_path / "decoder.onnx", num_samples=1000, output_name="wave")
    with pytest.raises(ModelError, match=r"outputs are \['wave'\], the contract wants \['audio'\]"):
        Decoder(path)


def test_missing_truncated_and_garbage_model_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model file"):
        Decoder(tmp_path / "nothing.onnx")
    good = sine_decoder(tmp_path / "good.onnx", num_samples=1000).read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        Decoder(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xff" * 500)
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        Decoder(garbage)


def test_log_magnitude_models_are_played_with_a_phase_made_for_them(tmp_path: Path) -> None:
    """A decoder whose output is a log-magnitude STFT of a 1 kHz tone plays a 1 kHz tone."""
    from dkvae_live.phase import stft

    rate, n_fft, hop, length = 16000, 512, 128, 8000
    tone = np.sin(2 * np.pi * 1000 * np.arange(length) / rate).astype(np.float32)[None]
    frames = length // hop + 1
    log_mag = np.log(np.abs(stft(tone, n_fft, hop, frames)) + 1e-6)
    path = spectrogram_decoder(
        tmp_path / "decoder.onnx",
        log_mag[0],
        sample_rate=rate,
        num_samples=length,
        n_fft=n_fft,
        hop_length=hop,
        log_offset="1e-6",
    )
    audio = Decoder(path).render(np.zeros((1, 8), np.float32), np.array([0]))[0]
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) * rate / length == pytest.approx(1000, abs=5)
    # Spectral convergence: the played sound's magnitudes are those the model gave.
    played = np.abs(stft(audio[None], n_fft, hop, frames))
    target = np.exp(log_mag) - 1e-6
    assert np.linalg.norm(played - target) / np.linalg.norm(target) < 0.2


def _class_latents_json(mean: list[float], scale: float = 0.01, **extra: object) -> str:
    entry = {"mean": mean, "scale": (scale * np.eye(len(mean))).tolist(), "sounds": 5, **extra}
    return json.dumps({"kick": entry})


def test_class_latents_in_the_metadata_are_read_and_sampled(tmp_path: Path) -> None:
    mean = [1.5, -0.5, 0, 0, 0, 0, 0, 0.25]
    path = sine_decoder(
        tmp_path / "decoder.onnx",
        num_samples=1000,
        metadata={"dkvae.class_latents": _class_latents_json(mean)},
    )
    where = Decoder(path).info.class_latents
    assert set(where) == {"kick"}
    rng = np.random.default_rng(0)
    draws = np.array([where["kick"].sample(rng) for _ in range(200)])
    assert draws.mean(axis=0) == pytest.approx(mean, abs=0.01)
    assert draws.std(axis=0) == pytest.approx([0.01] * 8, rel=0.2)
    assert where["kick"].sample(rng, amount=0.0) == pytest.approx(mean)


def test_stored_sounds_make_each_draw_land_near_one_of_them(tmp_path: Path) -> None:
    mean = [0.0] * 8
    sounds = [[2.0] + [0.0] * 7, [-2.0] + [0.0] * 7]  # two real kicks, far apart on dimension 0
    path = sine_decoder(
        tmp_path / "decoder.onnx",
        num_samples=1000,
        metadata={"dkvae.class_latents": _class_latents_json(mean, 0.1, sounds_at=sounds)},
    )
    kick = Decoder(path).info.class_latents["kick"]
    rng = np.random.default_rng(0)
    draws = np.array([kick.sample(rng) for _ in range(400)])
    # every draw lies near one of the two sounds, none between them where the mean is
    assert np.all(np.abs(np.abs(draws[:, 0]) - 2.0) < 5 * 0.1 * NEAR)
    assert 0.35 < np.mean(draws[:, 0] > 0) < 0.65
    assert draws[:, 1:].std() == pytest.approx(0.1 * NEAR, rel=0.2)
    assert kick.sample(rng, amount=0.0) == pytest.approx(mean)  # amount 0: the class's mean
    assert np.abs(kick.sample(rng, amount=0.5)[0]) == pytest.approx(1.0, abs=0.1)
    # and back into the metadata as it came
    again = from_json(to_json({"kick": kick}), ["kick"], 8)["kick"].sounds_at
    assert again is not None and np.array_equal(again, sounds)


def test_a_model_without_class_latents_has_none(tmp_path: Path) -> None:
    assert (
        Decoder(sine_decoder(tmp_path / "decoder.onnx", num_samples=1000)).info.class_latents == {}
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (
            json.dumps({"cowbell": {"mean": [0] * 8, "scale": np.eye(8).tolist()}}),
            "names class 'cowbell'",
        ),
        (json.dumps({"kick": {"mean": [0] * 8}}), "needs 'mean' and 'scale'"),
        (_class_latents_json([0.0] * 7), "'mean' must have 8 values"),
        (_class_latents_json([float("nan")] * 8), "must be finite"),
        (
            json.dumps({"kick": {"mean": [0] * 8, "scale": np.ones((8, 8)).tolist()}}),
            "lower-triangular",
        ),
        (
            json.dumps({"kick": {"mean": ["a"] * 8, "scale": np.eye(8).tolist()}}),
            "lists of numbers",
        ),
        (_class_latents_json([0.0] * 8, sounds_at=[[0.0] * 7]), "'sounds_at' must hold"),
        (_class_latents_json([0.0] * 8, sounds_at=[]), "'sounds_at' must hold"),
        (_class_latents_json([0.0] * 8, sounds_at="x"), "'sounds_at' must be a list"),
        (_class_latents_json([0.0] * 8, sounds_at=[[float("inf")] * 8]), "must be finite"),
    ],
)
def test_broken_class_latents_are_refused_saying_what_is_wrong(
    tmp_path: Path, value: str, message: str
) -> None:
    path = sine_decoder(
        tmp_path / "decoder.onnx", num_samples=1000, metadata={"dkvae.class_latents": value}
    )
    with pytest.raises(ModelError) as err:
        Decoder(path)
    assert "'dkvae.class_latents'" in str(err.value) and message in str(err.value)
    assert str(path) in str(err.value)


def documented_metadata() -> dict[str, str]:
    """metadata key -> its 'required' column, from the decoder's table in docs/model-contract.md."""
    text = (ROOT / "docs" / "model-contract.md").read_text()
    section = text.split("### Metadata", 1)[1].split("## Encoder", 1)[0]
    rows = re.findall(r"^\| `(dkvae\.[a-z_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    return {key: required.strip() for key, required in rows}


@pytest.mark.parametrize("role", ["decoder", "encoder"])
def test_the_shipped_model_carries_the_documented_metadata_and_no_other(role: str) -> None:
    from dkvae_live.model import DEFAULT_MODEL_DIR

    documented = documented_metadata()
    assert "dkvae.class_latents" in documented and documented["dkvae.contract_version"] == "yes"
    model = onnx.load(str(DEFAULT_MODEL_DIR / f"{role}.onnx"), load_external_data=False)
    keys = {p.key for p in model.metadata_props}
    assert keys - set(documented) == set(), "metadata the contract does not document"
    required = {k for k, r in documented.items() if r == "yes"}
    if role == "encoder":
        required.discard("dkvae.output_kind")  # the contract exempts encoders
    assert required - keys == set(), "required metadata missing"
    assert {p.value for p in model.metadata_props if p.key == "dkvae.role"} == {role}


def documented_tensors(section: str) -> list[str]:
    """The tensor names in the first column of a section's tables of docs/model-contract.md."""
    text = (ROOT / "docs" / "model-contract.md").read_text()
    part = text.split(f"## {section}", 1)[1].split("### Metadata", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \| (?:float32|int64) \|", part, flags=re.MULTILINE)


def test_contract_module_names_exactly_what_the_document_says() -> None:
    """dkvae_live/contract.py and docs/model-contract.md: the same keys, tensors and kinds."""
    from dkvae_live import contract

    text = (ROOT / "docs" / "model-contract.md").read_text()
    assert f"(version {contract.CONTRACT_VERSION})" in text.splitlines()[0]
    documented = documented_metadata()
    assert list(documented) == list(contract.METADATA_KEYS)
    assert [k for k, r in documented.items() if r == "yes"] == list(contract.REQUIRED_KEYS)
    spectral = [k for k, r in documented.items() if r == "for `log_magnitude`"]
    assert spectral == list(contract.SPECTROGRAM_KEYS)
    kinds = re.findall(r"^\| `([a-z_]+)` \| `([a-z_]+)` \| `\[batch", text, flags=re.MULTILINE)
    assert dict(kinds) == contract.DECODER_OUTPUT
    assert tuple(contract.DECODER_OUTPUT) == contract.OUTPUT_KINDS
    assert documented_tensors("Decoder") == [contract.Z, contract.CLASS_INDEX]
    assert documented_tensors("Encoder") == [contract.AUDIO, contract.Z_MEAN, contract.Z_LOG_VAR]
    files = f"holding `{contract.DECODER_FILE}`, optionally `{contract.ENCODER_FILE}`"
    assert files in " ".join(text.split())
    assert f"`{contract.MODEL_CARD_FILE}`" in text
    assert f"optionally `{contract.DRAFT_FILE}`" in " ".join(text.split())
    assert f"`dkvae.role` = `{contract.DRAFT}`" in text
    draft = text.split("## Draft", 1)[1].split("\n## ", 1)[0]
    assert f"more than {contract.DRAFT_OF_TOLERANCE:g}" in draft
    assert all(f"`{key}`" in draft for key in contract.DRAFT_MATCHES)


def test_the_readme_layout_names_every_module_of_the_daemon() -> None:
    text = (ROOT / "README.md").read_text()
    layout = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    modules = {p.name for p in (ROOT / "dkvae_live").glob("*.py")} | {"_mixer.c"}
    missing = sorted(m for m in modules - {"__init__.py"} if m not in layout)
    assert not missing, f"README's Layout section lacks {missing}"


def test_the_encoder_is_built_at_its_first_use_and_follows_a_model_swap(tmp_path: Path) -> None:
    """A daemon at rest holds no encoder session; /dkvae/pad/encode builds the playing model's,
    and a model swap lets it go (the new model here has none, and says so)."""
    model = sine_decoder(tmp_path / "a" / "decoder.onnx")
    _, weights = linear_encoder(tmp_path / "a" / "encoder.onnx")
    sine_decoder(tmp_path / "b" / "decoder.onnx")
    wav = tmp_path / "kits" / "hit.wav"
    wav.parent.mkdir()
    sound = np.sin(np.arange(22050) / 10.0).astype(np.float32) * np.exp(-np.arange(22050) / 4e3)
    soundfile.write(wav, sound, 44100)
    engine = Engine(Settings(model=model, kit_dir=tmp_path / "kits"))
    assert engine._encoder is None
    latent = engine.encode_into_pad(38, wav)
    assert engine._encoder is not None
    sound = read_sound(wav, 44100, 22050)
    decoder = Decoder(model)
    encoded = Encoder(model.parent / "encoder.onnx", decoder.info).encode(sound[None])[0]
    np.testing.assert_allclose(encoded, sound @ weights, atol=1e-4)
    pad_class = engine.info.class_index(engine.pads.snapshot()[38].class_name)
    want = fit_latent(decoder, sound, pad_class, encoded)  # then fitted, as it says
    assert latent == pytest.approx(np.clip(want, -9.9, 9.9).tolist(), abs=1e-4)
    engine.load_model(tmp_path / "b")
    assert engine._encoder is None
    with pytest.raises(ValueError, match="this model has no encoder"):
        engine.encode_into_pad(38, wav)
