"""Timbre axes: the descriptors, the fit, and the metadata the daemon reads (dkvae.axes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness.synth_models import sine_decoder

from dkvae_live import axes, descriptors
from dkvae_live.contract import AXIS_NAMES
from dkvae_live.model import Decoder, ModelError

RATE = 44100


def ping(hz: float, tau: float, seconds: float = 1.0, attack: float = 0.0) -> np.ndarray:
    """A decaying sine: its energy falls 40 dB in 2 ln(10) tau seconds."""
    t = np.arange(int(seconds * RATE)) / RATE
    env = np.exp(-t / tau) * (np.minimum(1.0, t / attack) if attack else 1.0)
    return np.sin(2 * np.pi * hz * t) * env


def test_descriptors_read_back_what_a_sound_was_made_with() -> None:
    x = ping(100.0, 0.05)
    values = dict(zip(AXIS_NAMES, descriptors.measure(x, RATE, "kick"), strict=True))
    assert 2.0 ** values["pitch"] == pytest.approx(100.0, rel=0.06)  # within a semitone
    assert 2.0 ** values["decay"] == pytest.approx(2 * np.log(10) * 0.05, rel=0.1)
    # a cymbal cut at one second before it fell 40 dB: extrapolated
    long = descriptors.decay(ping(3000.0, 0.5), RATE)
    assert 2.0**long == pytest.approx(2 * np.log(10) * 0.5, rel=0.15)
    # the spectral peak for classes without a body
    assert 2.0 ** descriptors.pitch(ping(3000.0, 0.2), RATE, "cymbal") == pytest.approx(
        3000.0, rel=0.06
    )
    assert descriptors.brightness(ping(2000.0, 0.1), RATE) > values["brightness"] + 3  # octaves
    assert descriptors.punch(ping(100.0, 0.01), RATE) > values["punch"] + 10  # dB
    assert descriptors.punch(ping(100.0, 0.05, attack=0.03), RATE) < values["punch"]


def test_the_fit_finds_the_latent_dimensions_that_move_pitch_and_decay(tmp_path: Path) -> None:
    """The sine model: z[0] is pitch (octaves), z[1] decay; the rest does nothing."""
    decoder = Decoder(sine_decoder(tmp_path / "decoder.onnx", num_samples=RATE))
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 0.5, (120, 8)).astype(np.float32)
    labels = np.zeros(120, np.int64)
    played = descriptors.measure_all(decoder.render(z, labels), RATE, ["kick"] * 120)
    fitted = axes.fit(
        z, labels, decoder.info.class_names, played, axes.spread(played, labels, ("kick",))
    )
    assert list(fitted) == ["kick"]
    kick = fitted["kick"]
    pitch, decay = AXIS_NAMES.index("pitch"), AXIS_NAMES.index("decay")
    assert np.argmax(np.abs(kick.directions[pitch])) == 0
    assert np.argmax(np.abs(kick.directions[decay])) == 1
    # +1 on an axis: one standard deviation of the class, its own descriptor only
    base = np.zeros((1, 8), np.float32)
    for axis in (pitch, decay):
        moved = (base + kick.directions[axis]).astype(np.float32)
        before = descriptors.measure(decoder.render(base, [0])[0], RATE, "kick")
        after = descriptors.measure(decoder.render(moved, [0])[0], RATE, "kick")
        change = (after - before) / kick.std
        assert change[axis] == pytest.approx(1.0, abs=0.3)
        other = (pitch + decay) - axis
        assert abs(change[other]) < 0.3


def curved(z: np.ndarray) -> np.ndarray:
    """A 'decoder and descriptors' in one: brightness and decay follow z[0] and z[1], and z[4]
    pushes them apart by its cube, which a fit over a wide region reads as a strong linear link
    but which hardly moves them where this class's sounds lie (|z[4]| small)."""
    z = np.asarray(z, np.float64)
    bend = 0.5 * z[:, 4] ** 3
    return np.stack([z[:, 0] + bend, z[:, 1] - bend, z[:, 2], z[:, 3]], axis=1)


def realized(directions: np.ndarray, z: np.ndarray) -> axes.Measured:
    """The acceptance test's measure of ``directions`` at ``z``."""
    return axes.Measured.of(directions, axes.response(curved, z, directions, np.ones(4)))


def test_refine_removes_the_cross_talk_the_linear_fit_leaves_where_sounds_lie() -> None:
    rng = np.random.default_rng(3)
    wide = rng.normal(0.0, 1.5, (400, 6))  # as export draws the linear fit's latents
    labels = np.zeros(len(wide), np.int64)
    linear = axes.fit(wide, labels, ["tom"], curved(wide), {"tom": np.ones(4)})["tom"]
    sounds = [rng.normal(0.0, 0.3, (30, 6)) for _ in range(3)]  # where the class's sounds lie
    elsewhere = rng.normal(0.0, 0.3, (30, 6))  # other sounds of the class, to check on
    before = realized(linear.directions, elsewhere)
    # brightness moves decay by most of its own move, and back (a third of that on average
    # over the other three), and each moves its own by half what it should
    assert np.all(before.cross[:2] > 0.2) and np.all(before.own[:2] < 0.6)
    refined, history = axes.refine(linear, sounds, curved)
    assert len(history) == 3  # the linear fit, two corrections
    np.testing.assert_allclose(history[0].cross[:2], before.cross[:2], rtol=0.2)
    after = realized(refined.directions, elsewhere)
    np.testing.assert_allclose(after.own, 1.0, atol=0.1)
    assert np.all(after.cross < 0.05)
    assert np.all(np.linalg.norm(refined.directions, axis=1) <= axes.MAX_NORM + 1e-9)
    np.testing.assert_array_equal(refined.std, linear.std)  # only the directions move


def test_the_direction_measured_best_is_kept_per_axis() -> None:
    first = axes.Measured(np.eye(4, 6), np.array([1.0, 1.0, 1.0, 1.0]), np.array([0.2] * 4))
    second = axes.Measured(
        2 * np.eye(4, 6),
        np.array([1.0, 1.0, -1.0, 0.05]),  # pitch the wrong way, punch hardly at all
        np.array([0.1, 0.3, 0.0, 0.0]),
    )
    kept = axes.best([first, second])
    np.testing.assert_array_equal(np.diag(kept.directions), [2.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(kept.cross, [0.1, 0.2, 0.2, 0.2])
    # where no candidate moves its own descriptor, the first (the linear fit) is kept
    nowhere = [axes.Measured(k * np.eye(4, 6), np.zeros(4), np.zeros(4)) for k in (1.0, 2.0)]
    np.testing.assert_array_equal(axes.best(nowhere).directions, np.eye(4, 6))


def test_a_clean_direction_is_kept_as_it_is() -> None:
    """Directions whose measured response is already one std of their own descriptor and
    nothing else are a fixed point of the correction."""
    directions = np.linalg.qr(np.random.default_rng(4).normal(size=(6, 6)))[0][:4]
    moves = axes.probes(directions, np.random.default_rng(5).normal(size=(20, 6)))
    assert moves.shape == (6, 6)
    np.testing.assert_array_equal(moves[:4], directions)
    np.testing.assert_allclose(directions @ moves[4:].T, 0.0, atol=1e-12)  # the rest of space
    measured = np.zeros((10, 6, 4))
    measured[:, np.arange(4), np.arange(4)] = 1.0
    measured[:, 4:] = np.random.default_rng(6).normal(size=(10, 2, 4))  # the rest: noise
    np.testing.assert_allclose(axes.correct(moves, measured), directions, atol=1e-9)


def _entry(latent_size: int = 8, **override: object) -> dict[str, object]:
    entry: dict[str, object] = {
        a: {"direction": [0.1 * (i + 1)] * latent_size, "std": 1.0 + i, "r2": 0.5}
        for i, a in enumerate(AXIS_NAMES)
    }
    entry["sounds"] = 10
    entry.update(override)
    return entry


def test_axes_in_the_metadata_are_read(tmp_path: Path) -> None:
    path = sine_decoder(
        tmp_path / "decoder.onnx",
        num_samples=1000,
        metadata={"dkvae.axes": json.dumps({"snare": _entry()})},
    )
    info = Decoder(path).info
    assert set(info.axes) == {"snare"}
    snare = info.axes["snare"]
    assert snare.directions.shape == (4, 8) and list(snare.std) == [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(snare.offset([0, 0, 2, 0]), [0.6] * 8)
    assert Decoder(sine_decoder(tmp_path / "plain.onnx", num_samples=1000)).info.axes == {}


def test_fitted_axes_survive_the_metadata(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 8))
    mixing = np.eye(4) + 0.3 * rng.normal(size=(4, 4))  # descriptors that move together
    played = z[:, :4] @ mixing + 0.01 * rng.normal(size=(50, 4))
    labels = np.zeros(50, np.int64)
    fitted = axes.fit(z, labels, ["kick"], played, {"kick": np.ones(4)})
    back = axes.from_json(axes.to_json(fitted), ["kick"], 8)
    np.testing.assert_allclose(back["kick"].directions, fitted["kick"].directions, atol=1e-6)
    # the directions undo the fitted gradient: each moves its own descriptor only
    grad = np.linalg.lstsq(z - z.mean(0), played - played.mean(0), rcond=None)[0].T
    np.testing.assert_allclose(grad @ back["kick"].directions.T, np.eye(4), atol=0.1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{oops", "is not JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"cowbell": _entry()}), "names class 'cowbell'"),
        (json.dumps({"kick": _entry(pitch=None)}), "'pitch' needs 'direction' and 'std'"),
        (json.dumps({"kick": _entry(7)}), "'direction' must have 8 values"),
        (
            json.dumps({"kick": _entry(decay={"direction": [0] * 8, "std": 0})}),
            "positive 'std'",
        ),
        (json.dumps({"kick": _entry(loudness={})}), "unknown axis loudness"),
        (json.dumps({"kick": _entry(sounds=-1)}), "'sounds' must be a count"),
    ],
)
def test_broken_axes_are_refused_naming_the_key(tmp_path: Path, value: str, message: str) -> None:
    path = sine_decoder(tmp_path / "decoder.onnx", num_samples=1000, metadata={"dkvae.axes": value})
    with pytest.raises(ModelError) as err:
        Decoder(path)
    assert "'dkvae.axes'" in str(err.value) and message in str(err.value)


def test_a_decoder_trained_on_alone_takes_its_source_s_axes_and_no_other_does(
    tmp_path: Path,
) -> None:
    """dkvae-export MODEL --axes-from SOURCE: the adversarial stage trains the decoder alone, so
    the latent space, and the axes fitted in it, are its source's; a model with another
    encoder is refused."""
    import shutil

    import onnx
    from dkvae_export.class_latents import write_metadata
    from dkvae_export.cli import main
    from onnx import numpy_helper

    from dkvae_live.model import DEFAULT_MODEL_DIR

    source = Decoder(DEFAULT_MODEL_DIR / "decoder.onnx").info
    stage, other = tmp_path / "stage", tmp_path / "other"
    for folder in (stage, other):
        shutil.copytree(DEFAULT_MODEL_DIR, folder, ignore=shutil.ignore_patterns("examples"))
        write_metadata(folder / "decoder.onnx", {"dkvae.axes": "{}"})
        assert Decoder(folder / "decoder.onnx").info.axes == {}
    proto = onnx.load(str(other / "encoder.onnx"))
    first = next(i for i in proto.graph.initializer if i.dims)
    first.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(first) * 1.01, first.name))
    onnx.save(proto, str(other / "encoder.onnx"))

    assert main([str(stage), "--axes-from", str(DEFAULT_MODEL_DIR)]) == 0
    copied = Decoder(stage / "decoder.onnx").info.axes
    assert set(copied) == set(source.axes)
    for name, ours in copied.items():
        np.testing.assert_allclose(ours.directions, source.axes[name].directions, atol=1e-6)
    assert main([str(other), "--axes-from", str(DEFAULT_MODEL_DIR)]) == 1
    assert Decoder(other / "decoder.onnx").info.axes == {}
    assert main([str(other), "--axes-from", str(stage / "missing")]) == 1
