"""Export: smoke runs of every kind become ONNX models the daemon's loader plays; bad ones are
refused (by the export's own checks, and by the loader when the contract is broken)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
pytestmark = pytest.mark.train

import onnx  # noqa: E402
from dkvae_export.onnx_export import ExportError, export_decoder, export_run  # noqa: E402
from dkvae_training.config import make_config  # noqa: E402
from dkvae_training.data import Arrays  # noqa: E402
from dkvae_training.synthetic import synthetic_drums  # noqa: E402
from dkvae_training.train import train  # noqa: E402

from dkvae_live.model import Decoder, Encoder, ModelError  # noqa: E402

SR = 8000
N = 4096
TINY: dict[str, Any] = {
    "sample_rate": SR,
    "num_samples": N,
    "batch_size": 4,
    "epochs": 1,
    "channels": [32, 16, 16, 16],
    "enc_channels": [16, 16, 16, 16],
    "enc_n_fft": 256,
    "enc_hop_length": 64,
    "stft_sizes": [512, 128],
    "snapshot_minutes": [],
}


def smoke_run(kind: str, root: Path) -> tuple[Path, Any]:
    cfg = make_config(kind, **TINY)
    audio, labels = synthetic_drums(2, sample_rate=SR, num_samples=N)
    train(
        cfg, root / kind, Arrays(audio, labels, cfg.class_names), None, smoke_test=True, verbose=0
    )
    return root / kind, cfg


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any, Any]]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for kind in ("vae", "seed_vae", "cgan"):
        run, cfg = smoke_run(kind, root)
        out[kind] = (run, cfg, export_run(run))
    return out


@pytest.mark.parametrize(
    ("kind", "output_kind", "has_encoder"),
    [
        ("vae", "waveform", True),
        ("seed_vae", "log_magnitude", True),
        ("cgan", "log_magnitude", False),
    ],
)
def test_exported_model_loads_in_the_daemon_with_the_contract_metadata(
    exported: dict[str, tuple[Path, Any, Any]], kind: str, output_kind: str, has_encoder: bool
) -> None:
    _, cfg, result = exported[kind]
    assert result.decoder_max_abs_diff < 1e-3
    dec = Decoder(result.decoder_path)
    assert dec.info.model_kind == kind
    assert dec.info.output_kind == output_kind
    assert dec.info.latent_size == cfg.latent_size
    assert dec.info.class_names == tuple(cfg.class_names)
    assert (dec.info.sample_rate, dec.info.num_samples) == (SR, N)
    meta = {p.key: p.value for p in onnx.load(str(result.decoder_path)).metadata_props}
    assert meta["dkvae.config_hash"] == cfg.hash()
    assert meta["dkvae.contract_version"] == "1"
    if output_kind == "log_magnitude":
        assert (int(meta["dkvae.n_fft"]), int(meta["dkvae.hop_length"])) == (512, 128)
        assert float(meta["dkvae.log_offset"]) == cfg.log_offset
    # dynamic batch: 1 and 5 sounds in one call
    for batch in (1, 5):
        z = np.random.default_rng(batch).standard_normal((batch, cfg.latent_size))
        audio = dec.render(z.astype(np.float32), np.arange(batch) % 6)
        assert audio.shape == (batch, N) and np.all(np.isfinite(audio))
    assert (result.encoder_path is not None) == has_encoder
    if has_encoder:
        enc = Encoder(result.encoder_path, dec.info)
        z = enc.encode(np.zeros((3, N), np.float32))
        assert z.shape == (3, cfg.latent_size)


def test_onnx_matches_keras_on_the_same_latents(exported: dict[str, tuple[Path, Any, Any]]) -> None:
    from dkvae_training.models import load_trained

    run, cfg, result = exported["vae"]
    _, model = load_trained(run)
    z = np.random.default_rng(7).standard_normal((4, cfg.latent_size)).astype(np.float32)
    labels = np.array([0, 2, 4, 5], np.int64)
    want = np.asarray(model.decoder([z, labels]))
    got = Decoder(result.decoder_path).render(z, labels)
    np.testing.assert_allclose(got, want, atol=1e-4)


def rewrite_metadata(src: Path, dst: Path, **changes: str | None) -> Path:
    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        key = "dkvae." + key
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"latent_size": "16"}, "metadata says 16"),
        ({"role": "encoder"}, "role"),
        ({"class_names": None}, "class_names"),
        ({"output_kind": "midi"}, "output_kind"),
    ],
)
def test_a_model_with_a_wrong_contract_is_refused_with_a_message(
    exported: dict[str, tuple[Path, Any, Any]],
    tmp_path: Path,
    changes: dict[str, str | None],
    message: str,
) -> None:
    _, _, result = exported["vae"]
    bad = rewrite_metadata(result.decoder_path, tmp_path / "decoder.onnx", **changes)
    with pytest.raises(ModelError, match=message) as info:
        Decoder(bad)
    assert str(bad) in str(info.value)


def test_encoder_of_another_model_is_refused(
    exported: dict[str, tuple[Path, Any, Any]], tmp_path: Path
) -> None:
    _, _, result = exported["vae"]
    dec = Decoder(result.decoder_path)
    names = json.dumps(["a", "b", "c", "d", "e", "f"])
    bad = rewrite_metadata(result.encoder_path, tmp_path / "encoder.onnx", class_names=names)
    with pytest.raises(ModelError, match="class names"):
        Encoder(bad, dec.info)


def _constant_decoder(cfg: Any, value: float) -> Any:
    import keras

    z = keras.Input((cfg.latent_size,), name="z")
    c = keras.Input((), dtype="int64", name="class_index")
    zero = keras.layers.Dense(
        cfg.num_samples, kernel_initializer="zeros", bias_initializer="zeros"
    )(z)
    c_float = keras.layers.Lambda(
        lambda t: keras.ops.cast(keras.ops.expand_dims(t, -1), "float32") * 0.0
    )(c)
    out = keras.layers.Lambda(lambda ts: ts[0] + ts[1] + value)([zero, c_float])
    return keras.Model([z, c], out, name="decoder")


@pytest.mark.parametrize(
    ("value", "message"), [(0.0, "silent"), (2.0, "clipped"), (float("nan"), "NaN")]
)
def test_export_refuses_silent_clipped_or_nan_output(
    tmp_path: Path, value: float, message: str
) -> None:
    cfg = make_config("vae", **TINY)
    path = tmp_path / "decoder.onnx"
    with pytest.raises(ExportError, match=message):
        export_decoder(_constant_decoder(cfg, value), cfg, path, output_kind="waveform")
    assert not path.exists()


def test_export_fails_loudly_past_the_tolerance(
    exported: dict[str, tuple[Path, Any, Any]], tmp_path: Path
) -> None:
    from dkvae_training.models import load_trained

    run, cfg, _ = exported["vae"]
    _, model = load_trained(run)
    # float32 ONNX never matches Keras to within 0: the check must fire and name the numbers
    with pytest.raises(ExportError, match="parity failed"):
        export_decoder(
            model.decoder, cfg, tmp_path / "d.onnx", output_kind="waveform", tolerance=0.0
        )


def test_small_export_is_smaller_and_renders_the_same_sounds(
    exported: dict[str, tuple[Path, Any, Any]], tmp_path: Path
) -> None:
    run, cfg, full = exported["vae"]
    small = export_run(run, tmp_path / "small", small=True)
    for a, b in ((small.decoder_path, full.decoder_path), (small.encoder_path, full.encoder_path)):
        assert a is not None and b is not None
        assert a.stat().st_size < 0.75 * b.stat().st_size
    encoder = onnx.load(str(small.encoder_path))
    init_sizes = [int(np.prod(i.dims)) for i in encoder.graph.initializer]
    assert max(init_sizes) < 2 * (cfg.enc_n_fft // 2 + 1) * cfg.enc_n_fft  # basis computed at load
    z = np.random.default_rng(3).standard_normal((6, cfg.latent_size)).astype(np.float32)
    classes = np.arange(6)
    a = Decoder(small.decoder_path).render(z, classes)
    b = Decoder(full.decoder_path).render(z, classes)
    # float16 weights: the same sounds to within a small fraction of their level
    assert np.max(np.abs(a - b)) < 0.02 * max(1e-3, float(np.max(np.abs(b))))
    audio = np.random.default_rng(4).standard_normal((2, N)).astype(np.float32) * 0.1
    dec_info = Decoder(small.decoder_path).info
    za = Encoder(small.encoder_path, dec_info).encode(audio)
    zb = Encoder(full.encoder_path, dec_info).encode(audio)
    np.testing.assert_allclose(za, zb, atol=0.05)


def test_export_with_a_bank_fits_class_latents_through_the_exported_encoder(
    exported: dict[str, tuple[Path, Any, Any]], tmp_path: Path
) -> None:
    import soundfile as sf
    from dkvae_training.bank import load_split

    from dkvae_live.drum_features import features

    run, cfg, full = exported["vae"]
    assert Decoder(full.decoder_path).info.class_latents == {}  # a run without a bank: none
    audio, labels = synthetic_drums(6, sample_rate=SR, num_samples=N, seed=5)
    bank = tmp_path / "bank"  # the seed's layout: <bank>/<class>/<file>.wav
    for i, (x, label) in enumerate(zip(audio, labels, strict=True)):
        folder = bank / cfg.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{i}.wav", x, SR)
    result = export_run(run, tmp_path / "model", bank=bank)
    info = Decoder(result.decoder_path).info
    train = load_split(bank, "train", sample_rate=SR, num_samples=N, class_names=cfg.class_names)
    assert result.encoder_path is not None
    z = Encoder(result.encoder_path, info).encode(train.audio)
    fitted = [name for i, name in enumerate(cfg.class_names) if np.sum(train.labels == i) >= 2]
    assert fitted and sorted(info.class_latents) == sorted(fitted)
    for i, name in enumerate(cfg.class_names):
        if name in info.class_latents:
            mine = z[train.labels == i]
            where = info.class_latents[name]
            assert where.sounds == len(mine)
            np.testing.assert_allclose(where.mean, mine.mean(axis=0), atol=1e-4)
            assert where.sounds_at is not None  # each sound's own latent, in the bank's order
            np.testing.assert_allclose(where.sounds_at, mine, atol=1e-4)
            cov = where.scale @ where.scale.T
            np.testing.assert_allclose(
                np.diag(cov), mine.var(axis=0, ddof=1) + 1e-3, rtol=1e-3, atol=1e-5
            )
    # and a class guess from the sounds' drum features, fitted on the same split
    assert info.class_guess is not None
    feats, _ = features(train.audio, SR)
    assert np.mean(info.class_guess.classes_of(feats) == train.labels) >= 0.9
    # the metadata changes nothing the decoder renders
    zs = np.random.default_rng(2).standard_normal((4, cfg.latent_size)).astype(np.float32)
    np.testing.assert_array_equal(
        Decoder(result.decoder_path).render(zs, np.arange(4)),
        Decoder(full.decoder_path).render(zs, np.arange(4)),
    )


def test_a_seed_vae_s_weights_read_back_from_its_onnx_files_are_its_own(
    exported: dict[str, tuple[Path, Any, Any]], tmp_path: Path
) -> None:
    """scripts/weights_from_onnx.py: the run folder a shipped model's training goes on from."""
    import runpy

    import h5py

    run, _, result = exported["seed_vae"]
    script = runpy.run_path(str(Path(__file__).parents[1] / "scripts/weights_from_onnx.py"))
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    back = tmp_path / "back"
    args = ["--bank", str(tmp_path), "--epoch", "2", "--minutes", "1", *sets]
    script["main"]([str(result.decoder_path.parent), str(back), *args])

    def weights(path: Path) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda k, v: out.__setitem__(k, v[()]) if hasattr(v, "shape") else None)
        return out

    want, got = weights(run / "best.weights.h5"), weights(back / "best.weights.h5")
    learned = [k for k in want if k.startswith(("encoder", "decoder"))]
    assert learned and set(learned) <= set(got)
    for k in learned:
        np.testing.assert_allclose(got[k], want[k], atol=1e-7, err_msg=k)
    state = json.loads((back / "checkpoints/state.json").read_text())
    assert state["epoch"] == 2 and state["train_seconds"] == 60.0
