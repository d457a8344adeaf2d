"""Training: every config trains on a tiny bank, the loss falls, a run folder resumes."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.train

import soundfile as sf  # noqa: E402
import tensorflow as tf  # noqa: E402
from dkvae_training.config import load_config, make_config  # noqa: E402
from dkvae_training.data import EQ_TILT_CAP_DB, Arrays, make_dataset, pitch_shifted  # noqa: E402
from dkvae_training.run_folder import written  # noqa: E402
from dkvae_training.synthetic import synthetic_drums  # noqa: E402
from dkvae_training.train import main, train  # noqa: E402

SR = 8000
N = 4096
TINY: dict[str, Any] = {
    "sample_rate": SR,
    "num_samples": N,
    "batch_size": 4,
    "epochs": 2,
    "channels": [32, 16, 16, 16],
    "enc_channels": [16, 16, 16, 16],
    "enc_n_fft": 256,
    "enc_hop_length": 64,
    "stft_sizes": [512, 128],
    "snapshot_minutes": [],
    "kl_warmup_steps": 4,
    "gain_augment_db": 0.0,
}


def tiny_config(kind: str, **over: Any) -> Any:
    return make_config(kind, **{**TINY, **over})


def tiny_arrays(per_class: int = 2, seed: int = 0) -> Arrays:
    cfg = tiny_config("vae")
    audio, labels = synthetic_drums(per_class, sample_rate=SR, num_samples=N, seed=seed)
    return Arrays(audio, labels, cfg.class_names)


def write_bank(root: Path, per_class: int = 4) -> Path:
    """A seed-layout bank (``<class>/<file>.wav``) of generated sounds."""
    audio, labels = synthetic_drums(per_class, sample_rate=SR, num_samples=N, seed=3)
    names = make_config("vae").class_names
    for i, (x, lab) in enumerate(zip(audio, labels, strict=True)):
        folder = root / names[lab]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"s{i:03d}.wav", x * 0.8, SR)
    return root


@pytest.mark.parametrize("kind", ["vae", "seed_vae", "cgan"])
def test_each_config_trains_a_few_steps_into_a_run_folder(kind: str, tmp_path: Path) -> None:
    cfg = tiny_config(kind)
    result = train(cfg, tmp_path / "run", tiny_arrays(), tiny_arrays(1, seed=1), verbose=0)
    run = tmp_path / "run"
    for name in (
        "config.json",
        "history.csv",
        "best.weights.h5",
        "summary.json",
        "checkpoints/last.weights.h5",
        "checkpoints/optimizer.npz",
        "checkpoints/state.json",
    ):
        assert (run / name).exists(), name
    assert any((run / "tensorboard").rglob("*tfevents*"))
    assert result.epochs_done == 2
    assert load_config(run / "config.json") == cfg

    from dkvae_training.models import load_trained

    _, model = load_trained(run)
    z = np.random.default_rng(0).standard_normal((3, cfg.latent_size)).astype(np.float32)
    out = np.asarray(model.decoder([z, np.array([0, 1, 5], np.int64)]))
    if kind == "vae":
        assert out.shape == (3, N)
        z_mean, z_log_var = model.encoder(tiny_arrays().audio[:2])
        assert z_mean.shape == z_log_var.shape == (2, cfg.latent_size)
    else:
        assert out.shape == (3, 1 + N // cfg.spec_hop_length, cfg.spec_n_fft // 2 + 1)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize(("kind", "lr"), [("vae", 2e-3), ("seed_vae", 1e-3)])
def test_loss_falls(kind: str, lr: float, tmp_path: Path) -> None:
    cfg = tiny_config(kind, epochs=12, kl_weight=1e-4, learning_rate=lr)
    arrays = tiny_arrays(2)
    result = train(cfg, tmp_path / "run", arrays, None, verbose=0)
    losses = result.history["loss"]
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses


def test_vae_decoder_depends_on_class_and_latent(tmp_path: Path) -> None:
    from dkvae_training.vae import build_decoder

    decoder = build_decoder(tiny_config("vae"))
    z = np.zeros((2, 8), np.float32)
    by_class = np.asarray(decoder([z, np.array([0, 1], np.int64)]))
    z2 = np.stack([z[0], z[0] + 1.0])
    by_latent = np.asarray(decoder([z2, np.array([0, 0], np.int64)]))
    assert not np.allclose(by_class[0], by_class[1])
    assert not np.allclose(by_latent[0], by_latent[1])


def test_resume_continues_where_the_run_stopped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = tiny_config("vae", epochs=2)
    train(cfg, run, tiny_arrays(), tiny_arrays(1, seed=1), verbose=0)
    state = json.loads((run / "checkpoints/state.json").read_text())
    assert state["epoch"] == 2
    before = dict(np.load(run / "checkpoints/optimizer.npz"))
    with pytest.raises(FileExistsError):
        train(cfg, run, tiny_arrays(), None, verbose=0)

    longer = tiny_config("vae", epochs=4)
    result = train(longer, run, tiny_arrays(), tiny_arrays(1, seed=1), resume=True, verbose=0)
    assert result.epochs_done == 4
    assert len(result.history["loss"]) == 2  # only epochs 3 and 4 ran
    with (run / "history.csv").open() as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1, 2, 3]
    after = dict(np.load(run / "checkpoints/optimizer.npz"))
    # the optimizer kept counting from its saved state instead of starting again at zero
    iterations = [k for k in before if before[k].shape == () and before[k].dtype.kind == "i"]
    assert iterations and all(after[k] == 2 * before[k] for k in iterations)


def test_cli_smoke_test_from_a_bank_folder_and_resume(tmp_path: Path) -> None:
    bank = write_bank(tmp_path / "bank")
    run = tmp_path / "run"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    rc = main(
        [
            str(run),
            "--config",
            "vae",
            "--bank",
            str(bank),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--smoke-test",
            "--verbose",
            "0",
            *sets,
        ]
    )
    assert rc == 0
    source = json.loads((run / "run.json").read_text())
    assert source["bank"] == str(bank.resolve()) and source["train_sounds"] > 0
    assert (run / "train.log").read_text().count("epoch 2:") == 1
    assert json.loads((run / "checkpoints/state.json").read_text())["epoch"] == 2
    # a second run into the same folder is refused; --resume continues it (already done: 2 of 2)
    assert main([str(run), "--bank", str(bank), "--smoke-test", "--verbose", "0"]) == 2
    assert main([str(run), "--resume", "--smoke-test", "--verbose", "0"]) == 0


@pytest.mark.parametrize(("stop", "by"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_ctrl_c_or_kill_stops_with_one_message_and_the_run_resumes(
    tmp_path: Path, stop: signal.Signals, by: str
) -> None:
    """A real SIGINT (or SIGTERM) to a real dkvae-train: no traceback, the state kept, one line
    that says how to go on, and --resume goes on."""
    run = tmp_path / "run"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    command = [sys.executable, "-m", "dkvae_training.train", str(run), "--synthetic", "1"]
    proc = subprocess.Popen(
        [*command, "--verbose", "0", *sets, "--epochs", "10000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal, whatever this test runner does with SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    state = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]
    time.sleep(0.3)  # into a later epoch
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + stop, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "stops after epoch 10000, after " in err and "no budget: --max-minutes M" in err
    found = re.search(rf"stopped by {by}; \S+ keeps epoch (\d+): dkvae-train --resume ", err)
    assert found, err
    kept = int(found.group(1))
    assert json.loads(state.read_text())["epoch"] == kept >= 1
    summary = json.loads((run / "summary.json").read_text())  # what the model card reads
    assert summary["stop_reason"] == f"stopped by {by} after epoch {kept}"
    assert summary["epochs_done"] == kept
    assert main([str(run), "--resume", "--epochs", str(kept + 1), "--verbose", "0"]) == 0
    assert json.loads(state.read_text())["epoch"] == kept + 1


def test_early_stopping_and_time_budget_stop_training(tmp_path: Path) -> None:
    cfg = tiny_config("vae", epochs=50, patience=1, learning_rate=0.0)
    result = train(cfg, tmp_path / "a", tiny_arrays(1), tiny_arrays(1, seed=1), verbose=0)
    assert result.stop_reason.startswith("early stopping") and result.epochs_done <= 4
    cfg = tiny_config("vae", epochs=50, max_minutes=1e-4)
    result = train(cfg, tmp_path / "b", tiny_arrays(1), None, verbose=0)
    assert result.stop_reason.startswith("time budget") and result.epochs_done == 1


def test_config_rejects_unknown_keys_and_kinds() -> None:
    with pytest.raises(ValueError, match="unknown config keys: latnet_size"):
        make_config("vae", latnet_size=4)
    with pytest.raises(ValueError, match="config must be one of"):
        make_config("wavenet")
    assert make_config("vae", latent_size=4).hash() != make_config("vae").hash()


def test_resume_with_changed_settings_records_them_and_restarts_the_best(tmp_path: Path) -> None:
    run = tmp_path / "run"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    assert main([str(run), "--synthetic", "1", "--verbose", "0", *sets]) == 0
    assert (
        main(
            [str(run), "--resume", "--epochs", "3", "--set", "log_mse_weight=0.7", "--verbose", "0"]
        )
        == 0
    )
    cfg = load_config(run / "config.json")
    assert (cfg.epochs, cfg.log_mse_weight) == (3, 0.7)
    resumes = json.loads((run / "run.json").read_text())["resumes"]
    assert resumes[0]["at_epoch"] == 2
    assert resumes[0]["overrides"] == {"log_mse_weight": 0.7, "epochs": 3}
    state = json.loads((run / "checkpoints/state.json").read_text())
    # the objective changed, so the best epoch is one scored under the new loss
    assert state["epoch"] == 3 and state["best_epoch"] == 3


def test_resume_at_a_new_learning_rate_keeps_the_best(tmp_path: Path) -> None:
    """A run on a long plateau is resumed at a lower rate: it trains at that rate, and the best
    epoch so far still counts (the objective is the same)."""
    run = tmp_path / "run"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    assert main([str(run), "--synthetic", "1", "--verbose", "0", *sets]) == 0
    before = json.loads((run / "checkpoints/state.json").read_text())
    args = [
        str(run),
        "--resume",
        "--epochs",
        "3",
        "--set",
        "learning_rate=0.0002",
        "--verbose",
        "0",
    ]
    assert main(args) == 0
    state = json.loads((run / "checkpoints/state.json").read_text())
    assert state["epoch"] == 3
    assert state["learning_rate"] == pytest.approx(0.0002)
    rows = list(csv.DictReader((run / "history.csv").read_text().splitlines()))
    last_val = float(rows[-1]["val_loss"])
    assert state["best"] == pytest.approx(min(before["best"], last_val))


def test_a_fork_starts_from_the_sources_best_epoch_with_changed_settings(tmp_path: Path) -> None:
    """Try a loss weight from where a run was best, in a new folder, the run itself untouched."""
    source, fork = tmp_path / "source", tmp_path / "fork"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    assert main([str(source), "--synthetic", "1", "--epochs", "3", "--verbose", "0", *sets]) == 0
    state = json.loads((source / "checkpoints/state.json").read_text())
    state.update(best_epoch=2)  # as if epoch 3 had been worse
    (source / "checkpoints/state.json").write_text(json.dumps(state))
    untouched = {f: (source / f).read_bytes() for f in ("history.csv", "best.weights.h5")}
    args = ["--fork", str(source), "--epochs", "4", "--set", "log_mse_weight=0.7"]
    assert main([str(fork), *args, "--verbose", "0"]) == 0
    assert {f: (source / f).read_bytes() for f in untouched} == untouched
    rows = list(csv.DictReader((fork / "history.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]  # epochs 1-2 kept, 3-4 its own
    info = json.loads((fork / "run.json").read_text())
    assert info["forked_from"]["epoch"] == 2 and info["forked_from"]["source_epochs"] == 3
    assert info["resumes"][0]["overrides"] == {"log_mse_weight": 0.7, "epochs": 4}
    assert load_config(fork / "config.json").log_mse_weight == 0.7
    assert json.loads((fork / "checkpoints/state.json").read_text())["epoch"] == 4
    # a source without optimizer state (weights read back from a model's ONNX files) forks too
    (source / "checkpoints/optimizer.npz").unlink()
    assert main([str(tmp_path / "again"), *args, "--verbose", "0"]) == 0
    assert json.loads((tmp_path / "again/checkpoints/state.json").read_text())["epoch"] == 4
    # a folder that holds a run already, or a bank beside --fork, is refused
    assert main([str(fork), "--fork", str(source), "--verbose", "0"]) == 2
    assert main([str(tmp_path / "x"), "--fork", str(source), "--synthetic", "1"]) == 2


def _weights(path: Path, group: str) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        if group in f:
            f[group].visititems(
                lambda name, obj: out.__setitem__(name, obj[()]) if hasattr(obj, "shape") else None
            )
    return out


def _stage(tmp_path: Path, setting: str) -> tuple[Path, Path]:
    """A tiny seed_vae run, and a stage forked from it with `setting` for one more epoch: the
    source's best weights and the stage's last."""
    source, stage = tmp_path / "source", tmp_path / "stage"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    args = [str(source), "--config", "seed_vae", "--synthetic", "1", "--verbose", "0", *sets]
    assert main(args) == 0
    args = ["--fork", str(source), "--epochs", "3", "--set", setting]
    assert main([str(stage), *args, "--verbose", "0"]) == 0
    return source / "best.weights.h5", stage / "checkpoints/last.weights.h5"


def test_the_adversarial_stage_trains_the_decoder_alone_from_where_a_run_was_best(
    tmp_path: Path,
) -> None:
    before, after = _stage(tmp_path, "adversarial_weight=0.1")
    stage = tmp_path / "stage"
    assert _weights(after, "discriminator")  # a discriminator of its own, saved for a resume
    assert not _weights(before, "discriminator")
    encoder = _weights(before, "encoder")
    assert encoder and all(
        np.array_equal(v, _weights(after, "encoder")[k]) for k, v in encoder.items()
    )
    decoder = _weights(before, "decoder")
    assert any(not np.array_equal(v, _weights(after, "decoder")[k]) for k, v in decoder.items())
    # its best epoch is its own, judged by the mel distance, not by the loss it gives up
    state = json.loads((stage / "checkpoints/state.json").read_text())
    rows = list(csv.DictReader((stage / "history.csv").read_text().splitlines()))
    stage_mel = [float(r["val_mel_db"]) for r in rows[2:]]
    # the discriminator's losses are columns from the stage on
    assert rows[1]["val_d_loss"] == "NA" and np.isfinite(float(rows[2]["val_d_loss"]))
    assert state["monitor"] == "val_mel_db" and state["best"] == pytest.approx(min(stage_mel))
    assert state["best_epoch"] == 3 + int(np.argmin(stage_mel))
    # and it resumes with its discriminator and both optimizers
    assert main([str(stage), "--resume", "--epochs", "4", "--verbose", "0"]) == 0
    assert json.loads((stage / "checkpoints/state.json").read_text())["epoch"] == 4


def test_the_encoder_stage_trains_the_encoder_alone(tmp_path: Path) -> None:
    before, after = _stage(tmp_path, "encoder_stage=true")
    stage = tmp_path / "stage"
    decoder = _weights(before, "decoder")
    assert decoder and all(
        np.array_equal(v, _weights(after, "decoder")[k]) for k, v in decoder.items()
    )
    encoder = _weights(before, "encoder")
    assert any(not np.array_equal(v, _weights(after, "encoder")[k]) for k, v in encoder.items())
    assert json.loads((stage / "checkpoints/state.json").read_text())["monitor"] == "val_mel_db"
    from dkvae_training.seed_vae import SeedVAE

    with pytest.raises(ValueError, match="encoder_stage trains the encoder alone"):
        SeedVAE(make_config("seed_vae", encoder_stage=True, adversarial_weight=0.1))


def test_the_adversarial_losses() -> None:
    from dkvae_training.adversarial import WIDTHS, discriminator_loss, generator_losses

    def outputs(score: float, feature: float) -> list[tf.Tensor]:
        return [tf.fill((2, 3), feature)] * len(WIDTHS) + [tf.fill((2, 3), score)]

    # a discriminator sure of both (real over 1, generated under -1) has nothing to learn
    assert float(discriminator_loss(outputs(1.5, 0.0), outputs(-1.5, 0.0))) == 0.0
    assert float(discriminator_loss(outputs(0.0, 0.0), outputs(0.0, 0.0))) == 2.0
    adversarial, matching = generator_losses(outputs(1.0, 0.5), outputs(-0.5, 0.25))
    assert (float(adversarial), float(matching)) == (0.5, 0.25)


def test_a_checkpoint_write_cut_short_leaves_the_old_file_whole(tmp_path: Path) -> None:
    """Ctrl-C in the middle of saving a checkpoint (a resume once found a torn optimizer.npz)."""
    path = tmp_path / "optimizer.npz"
    written(path, lambda tmp: np.savez(tmp, np.arange(3)))

    def torn(tmp: Path) -> None:
        tmp.write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        written(path, torn)
    np.testing.assert_array_equal(np.load(path)["arr_0"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["optimizer.npz"]


def test_pitch_augmentation_plays_each_sound_faster_and_slower() -> None:
    """A decaying 400 Hz tone shifted by +-12 semitones: 800 and 200 Hz, its decay halved and
    doubled, peak-normalised, labels carried along."""
    t = np.arange(N) / SR
    tone = (np.sin(2 * np.pi * 400.0 * t) * np.exp(-t / 0.05)).astype(np.float32)
    arrays = Arrays(np.stack([tone, 0.5 * tone]), np.array([3, 5]), ("a",) * 6)
    out = pitch_shifted(arrays, (12.0, -12.0), SR)
    assert out.audio.shape == (6, N)
    np.testing.assert_array_equal(out.labels, [3, 5, 3, 5, 3, 5])
    np.testing.assert_array_equal(out.audio[:2], arrays.audio)

    def peak_hz(x: np.ndarray) -> float:
        return float(np.argmax(np.abs(np.fft.rfft(x))) * SR / len(x))

    def energy_time(x: np.ndarray) -> float:  # where its energy is centred: tau / 2
        return float(np.sum(np.arange(len(x)) * x**2) / np.sum(x**2))

    assert peak_hz(out.audio[2]) == pytest.approx(800.0, abs=4.0)
    assert peak_hz(out.audio[4]) == pytest.approx(200.0, abs=4.0)
    for shifted in out.audio[2:]:
        assert np.abs(shifted).max() == pytest.approx(1.0, abs=1e-3)
    d0, up, down = (energy_time(out.audio[i]) for i in (0, 2, 4))
    assert up / d0 == pytest.approx(0.5, rel=0.1)
    assert down / d0 == pytest.approx(2.0, rel=0.1)


def test_eq_tilt_gives_each_sound_its_own_spectral_slope() -> None:
    """White noise through the tilt: each sound's level falls or rises by its own slope per
    octave about 1 kHz, within the range asked, capped, peak-normalised; none without it."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((64, N)).astype(np.float32) * 0.3
    arrays = Arrays(noise, np.arange(64) % 6, ("a",) * 6)

    def slopes(audio: np.ndarray) -> np.ndarray:  # dB per octave, 250 Hz against 2 kHz
        power = np.abs(np.fft.rfft(audio, axis=1)) ** 2
        hz = np.fft.rfftfreq(N, 1 / SR)
        band = [power[:, (hz > f / 1.2) & (hz < f * 1.2)].mean(axis=1) for f in (250.0, 2000.0)]
        return 10 * np.log10(band[1] / band[0]) / 3.0

    def batches(**augment: Any) -> tuple[np.ndarray, np.ndarray]:
        ds = make_dataset(arrays, 64, shuffle=False, sample_rate=SR, **augment)
        audio, labels = next(iter(ds))
        return np.asarray(audio), np.asarray(labels)

    plain, labels = batches()
    np.testing.assert_array_equal(plain, noise)
    tilted, labels = batches(eq_tilt_augment_db=4.0)
    np.testing.assert_array_equal(labels, arrays.labels)
    moved = slopes(tilted) - slopes(noise)
    assert np.all(np.abs(moved) < 4.0 + 0.5)
    assert moved.min() < -2.0 and moved.max() > 2.0  # each its own, both ways
    np.testing.assert_allclose(np.abs(tilted).max(axis=1), 1.0, rtol=1e-5)
    steep, _ = batches(eq_tilt_augment_db=40.0)  # capped: no band lifted or cut past the cap
    assert np.all(np.abs(slopes(steep) - slopes(noise)) < 2 * EQ_TILT_CAP_DB / 3.0 + 0.5)


def test_mel_weighting_weighs_low_bins_more_and_still_trains(tmp_path: Path) -> None:
    from dkvae_training.seed_vae import bin_weights

    cfg = tiny_config("seed_vae", spec_loss_weighting="mel")
    weights = bin_weights(cfg)
    assert weights is not None and weights.shape == (cfg.spec_n_fft // 2 + 1,)
    assert weights.mean() == pytest.approx(1.0, rel=1e-5)
    assert np.all(np.diff(weights) < 0)  # falling with frequency
    assert weights[0] / weights[-1] == pytest.approx((700.0 + SR / 2) / 700.0, rel=1e-4)
    assert bin_weights(tiny_config("seed_vae")) is None
    with pytest.raises(ValueError, match="spec_loss_weighting"):
        bin_weights(tiny_config("seed_vae", spec_loss_weighting="bark"))
    result = train(cfg, tmp_path / "run", tiny_arrays(), tiny_arrays(seed=1), verbose=0)
    history = result.history
    # the weighted MSE is what is minimised; log_mse stays the plain MSE, comparable across runs
    fit = history["loss"][-1] - cfg.kl_weight * history["kl"][-1]
    assert fit != pytest.approx(history["log_mse"][-1], rel=1e-2)


def test_the_training_mel_distance_is_issue_18s_measure_and_ignores_what_lies_under_the_floor() -> (
    None
):
    import tensorflow as tf
    from dkvae_training import losses
    from dkvae_training import yardstick as ys

    rng = np.random.default_rng(0)
    t = np.arange(44100) / 44100
    a = np.sin(2 * np.pi * 60 * t) * np.exp(-t * 8) + 0.3 * rng.standard_normal(t.size) * np.exp(
        -t * 30
    )
    b = np.sin(2 * np.pi * 70 * t) * np.exp(-t * 6) + 0.2 * rng.standard_normal(t.size) * np.exp(
        -t * 20
    )
    ref, other = np.stack([a, b]), np.stack([0.7 * b, a])
    fb = ys.mel_filterbank(44100, ys.MEL_N_FFT, ys.MEL_BANDS)

    def magnitude(x: np.ndarray) -> Any:
        scaled = x / np.abs(ref).max(axis=1, keepdims=True)  # as the measure reads them
        return losses.stft_magnitude(tf.constant(scaled, tf.float32), ys.MEL_N_FFT, ys.MEL_HOP)

    got = losses.heard_mel_distance(
        magnitude(ref), magnitude(other), fb, ys.MEL_FLOOR_DB, ys.MEL_FRAME_RANGE_DB
    )
    np.testing.assert_allclose(got.numpy(), ys.mel_distance(ref, other, 44100), rtol=1e-4)

    # a target with nothing over 10 kHz, an output that differs from it only over 12 kHz, where
    # it lies 100 dB under the peak: no distance, and no gradient to spend there
    hz = np.fft.rfftfreq(ys.MEL_N_FFT, 1 / 44100)
    target = magnitude(ref) * (hz < 10_000)
    quiet = tf.Variable(1e-5 * np.abs(rng.standard_normal(target.shape)), dtype=tf.float32)
    with tf.GradientTape() as tape:
        distance = losses.heard_mel_distance(
            target, target + quiet * (hz > 12_000), fb, ys.MEL_FLOOR_DB, ys.MEL_FRAME_RANGE_DB
        )
    assert np.all(distance.numpy() == 0.0)
    assert np.all(tape.gradient(distance, quiet).numpy() == 0.0)


def test_the_seed_vae_trains_on_the_mel_distance_when_asked(tmp_path: Path) -> None:
    cfg = tiny_config("seed_vae", spec_mel_db_weight=0.1)
    result = train(cfg, tmp_path / "run", tiny_arrays(), tiny_arrays(seed=1), verbose=0)
    h = result.history
    assert all(np.isfinite(h["val_mel_db"])) and h["mel_db"][-1] > 0.0
    fit = h["loss"][-1] - cfg.kl_weight * h["kl"][-1]
    assert fit == pytest.approx(h["log_mse"][-1] + 0.1 * h["mel_db"][-1], rel=1e-3)
    plain = train(tiny_config("seed_vae"), tmp_path / "plain", tiny_arrays(), None, verbose=0)
    p = plain.history
    assert p["loss"][-1] - cfg.kl_weight * p["kl"][-1] == pytest.approx(p["log_mse"][-1], rel=1e-3)


def test_a_packed_run_unpacks_on_another_machine_and_goes_on(tmp_path: Path) -> None:
    """The resume file is what a session commits for the next one: float16 weights, the run's
    texts, no optimizer moments; unpacked, the run goes on from its last epoch."""
    run, moved = tmp_path / "run", tmp_path / "elsewhere/run"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    args = [str(run), "--config", "seed_vae", "--synthetic", "1", "--verbose", "0", *sets]
    assert main(args) == 0
    packed = tmp_path / "r.h5"
    assert main([str(run), "--pack", str(packed)]) == 0
    last = run / "checkpoints/last.weights.h5"
    assert packed.stat().st_size < 0.6 * last.stat().st_size  # float16, no optimizer
    import h5py

    with h5py.File(last, "r") as before, h5py.File(packed, "r") as f:
        assert "optimizer" in before and "optimizer" not in f  # its moments: not in float16
    assert main([str(moved), "--unpack", str(packed), "--epochs", "3", "--verbose", "0"]) == 0
    state = json.loads((moved / "checkpoints/state.json").read_text())
    assert state["epoch"] == 3
    rows = list(csv.DictReader((moved / "history.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    info = json.loads((moved / "run.json").read_text())
    assert info["unpacked_from"]["epoch"] == 2
    cfg = load_config(run / "config.json")
    assert load_config(moved / "config.json") == dataclasses.replace(cfg, epochs=3)
    # the weights came back as float32, within float16's rounding of the packed ones
    from dkvae_training.resume_file import unpack

    unpack(packed, tmp_path / "again")
    before = _weights(last, "decoder")
    after = _weights(tmp_path / "again/best.weights.h5", "decoder")
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert after[k].dtype == np.float32
        np.testing.assert_allclose(after[k], v, rtol=1e-3, atol=1e-6)
    # a folder that holds a run is not overwritten, and a weights file is not a resume file
    assert main([str(moved), "--unpack", str(packed), "--verbose", "0"]) == 2
    assert main([str(tmp_path / "y"), "--unpack", str(last), "--verbose", "0"]) == 2
