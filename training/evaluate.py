"""``dkvae-eval``: how well a model reconstructs and generates drums, in numbers and pictures.

For a run folder (Keras weights) or an exported model folder (``--onnx``, run through the
daemon's own loader) and a bank split:

* reconstruction: each sound is encoded (``z_mean``) and decoded with its class; the
  log-spectral distance (dB; n_fft 2048, hop 512, floor -80 dB) and the multi-resolution STFT
  distance (spectral convergence + log-magnitude L1 over 6 resolutions) to the original;
  every decoded sound is heard as on stage: spectrogram models through the daemon's
  Griffin-Lim, and all through its render worker's preparation (DC blocker, silent tail cut);
  the same distances from reference points that need no model are printed beside them;
* generation: ``--per-class`` sounds per class from z ~ N(0, 1), and as many from the class
  latents (the model's own ``dkvae.class_latents``, else fitted on the training split), written
  as WAV and labelled by a small classifier trained on the bank's training split (its accuracy on
  the real split is printed too, as the yardstick);
* pictures: the split's latents in 2-D (PCA) coloured by class; log spectrograms of real,
  reconstructed and generated hits side by side.

Everything goes into ``OUT`` (default ``RUN/eval-SPLIT``): ``metrics.json``, ``latent_map.png``,
``spectrograms.png``, ``generated/<class>/NN.wav``, ``generated-class-latents/<class>/NN.wav``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dkvae_live.class_latents import ClassLatent, fit

logger = logging.getLogger(__name__)

Decode = Callable[[np.ndarray, np.ndarray], np.ndarray]
Encode = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class ModelFns:
    """What evaluation needs from a model, whatever it runs on."""

    kind: str
    sample_rate: int
    num_samples: int
    latent_size: int
    class_names: tuple[str, ...]
    decode: Decode  # (z [n, latent], labels [n]) -> audio [n, num_samples]
    encode: Encode | None  # audio [n, num_samples] -> z_mean [n, latent]
    # where each class's sounds lie (an exported model's dkvae.class_latents); None: fit them
    class_latents: Mapping[str, ClassLatent] | None = None


def as_played(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Rendered sounds as the daemon's render worker prepares them (DC blocker, peak limit,
    silent tail trimmed with a fade), at the model's rate and length; silence if rejected."""
    from dkvae_live.renderer import prepare_sound

    out = np.zeros(audio.shape, np.float32)
    for row, raw in zip(out, audio, strict=True):
        sound = prepare_sound(raw, sample_rate, sample_rate)
        if sound is not None:
            row[: sound.shape[0]] = sound[: row.shape[0]]
    return out


def keras_model_fns(run_dir: Path, checkpoint: str = "best") -> ModelFns:
    """Evaluation functions for a run folder's Keras model (Griffin-Lim for spectrogram models)."""
    from dkvae_live.model import griffin_lim

    from .models import OUTPUT_KINDS, load_trained

    cfg, model = load_trained(run_dir, checkpoint)
    spectral = OUTPUT_KINDS[cfg.kind] == "log_magnitude"

    def decode(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        out = np.asarray(
            model.decoder([z.astype(np.float32), labels.astype(np.int64)], training=False)
        )
        if spectral:
            mag = np.maximum(np.exp(out) - cfg.log_offset, 0.0)
            out = griffin_lim(
                mag, cfg.spec_n_fft, cfg.spec_hop_length, cfg.num_samples, cfg.griffin_lim_iters
            )
        return as_played(out, cfg.sample_rate)

    encode: Encode | None = None
    if getattr(model, "encoder", None) is not None:

        def encode(audio: np.ndarray) -> np.ndarray:
            return np.asarray(model.encoder(audio.astype(np.float32), training=False)[0])

    return ModelFns(
        cfg.kind,
        cfg.sample_rate,
        cfg.num_samples,
        cfg.latent_size,
        tuple(cfg.class_names),
        decode,
        encode,
    )


def onnx_model_fns(model_dir: Path) -> ModelFns:
    """Evaluation functions for an exported model folder, through the daemon's loader."""
    from dkvae_live.model import Decoder, Encoder

    dec = Decoder(model_dir / "decoder.onnx")
    enc = (
        Encoder(model_dir / "encoder.onnx", dec.info)
        if (model_dir / "encoder.onnx").exists()
        else None
    )
    info = dec.info

    def decode(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return as_played(dec.render(z, labels), info.sample_rate)

    return ModelFns(
        info.model_kind,
        info.sample_rate,
        info.num_samples,
        info.latent_size,
        tuple(info.class_names),
        decode,
        enc.encode if enc else None,
        info.class_latents or None,
    )


def _batched(fn: Callable[..., np.ndarray], *arrays: np.ndarray, batch: int = 16) -> np.ndarray:
    n = arrays[0].shape[0]
    return np.concatenate([fn(*(a[i : i + batch] for a in arrays)) for i in range(0, n, batch)])


def reconstruction_metrics(target: np.ndarray, output: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sound log-spectral distance (dB) and multi-resolution STFT distance."""
    import tensorflow as tf

    from .losses import log_spectral_distance, multi_resolution_stft_loss

    lsd, mr = [], []
    for i in range(0, len(target), 16):
        t = tf.constant(target[i : i + 16], tf.float32)
        o = tf.constant(output[i : i + 16], tf.float32)
        lsd.append(log_spectral_distance(t, o).numpy())
        mr.append(multi_resolution_stft_loss(t, o).numpy())
    return {"lsd_db": np.concatenate(lsd), "mrstft": np.concatenate(mr)}


def reference_distances(audio: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Log-spectral distances (dB) that no model is needed for, to read a model's against.

    * ``smoothed_3x3`` / ``smoothed_3x7``: each sound against its own power spectrum averaged
      over 3 frames x 3 (or 7) bins: an oracle that knows the sound's spectrum to that resolution
      but not its fine grain;
    * ``random_phase``: each sound resynthesised from its own STFT magnitudes (the metric's
      n_fft 2048, hop 512) with random phases: exact magnitudes, phases not known.
    """
    import tensorflow as tf
    from scipy.signal import istft, stft

    from .losses import log_spectral_distance, smoothed_spectrum_lsd

    rng = np.random.default_rng(seed)
    _, _, spec = stft(audio, nperseg=2048, noverlap=1536)
    spec = np.abs(spec) * np.exp(2j * np.pi * rng.random(spec.shape))
    _, resynth = istft(spec, nperseg=2048, noverlap=1536)
    resynth = resynth[:, : audio.shape[1]].astype(np.float32)
    out: dict[str, list[np.ndarray]] = {"smoothed_3x3": [], "smoothed_3x7": [], "random_phase": []}
    for i in range(0, len(audio), 16):
        t = tf.constant(audio[i : i + 16], tf.float32)
        out["smoothed_3x3"].append(smoothed_spectrum_lsd(t, 3, 3).numpy())
        out["smoothed_3x7"].append(smoothed_spectrum_lsd(t, 3, 7).numpy())
        out["random_phase"].append(
            log_spectral_distance(t, tf.constant(resynth[i : i + 16])).numpy()
        )
    return {k: float(np.mean(np.concatenate(v))) for k, v in out.items()}


def classifier_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Hand-made features for the class check: band energies over time, envelope, centroid."""
    n_fft, hop = 1024, 256
    frames = 1 + (audio.shape[1] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    window = np.hanning(n_fft).astype(np.float32)
    feats = []
    edges = np.geomspace(30.0, sample_rate / 2, 25)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    bands = [(freqs >= lo) & (freqs < hi) for lo, hi in itertools.pairwise(edges)]
    segments = [(0.0, 0.03), (0.03, 0.1), (0.1, 0.3), (0.3, 1.0)]
    for x in audio:
        power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2  # [frames, bins]
        t = (np.arange(frames) * hop + n_fft / 2) / sample_rate
        f: list[np.ndarray] = []
        for lo, hi in segments:
            sel = (t >= lo) & (t < hi)
            p = power[sel].mean(axis=0) if np.any(sel) else np.zeros(power.shape[1])
            f.append(10 * np.log10(np.array([p[b].sum() for b in bands]) + 1e-10))
        energy = power.sum(axis=1)
        env = 10 * np.log10(energy / (energy.max() + 1e-12) + 1e-10)
        f.append(
            np.array(
                [
                    np.mean(t[env > -20]) if np.any(env > -20) else 0.0,
                    np.mean(t[env > -40]) if np.any(env > -40) else 0.0,
                ]
            )
        )
        centroid = (power.sum(axis=0) * freqs).sum() / (power.sum() + 1e-12)
        f.append(np.array([np.log(centroid + 1.0)]))
        feats.append(np.concatenate(f))
    return np.asarray(feats, np.float32)


class ClassCheck:
    """Multinomial logistic regression (L2) on :func:`classifier_features`, trained on the bank's
    training split by full-batch gradient descent (numpy; deterministic, a few seconds)."""

    def __init__(
        self,
        audio: np.ndarray,
        labels: np.ndarray,
        num_classes: int,
        sample_rate: int,
        l2: float = 1e-2,
        steps: int = 2000,
        lr: float = 0.5,
    ) -> None:
        self.sample_rate = sample_rate
        x = classifier_features(audio, sample_rate).astype(np.float64)
        self.mean, self.std = x.mean(axis=0), x.std(axis=0) + 1e-6
        x = (x - self.mean) / self.std
        onehot = np.eye(num_classes)[labels]
        # balance the classes: each class weighs the same in the loss
        counts = np.maximum(onehot.sum(axis=0), 1.0)
        weights = (onehot / counts).sum(axis=1) * len(labels) / num_classes
        w = np.zeros((x.shape[1], num_classes))
        b = np.zeros(num_classes)
        for _ in range(steps):
            logits = x @ w + b
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - onehot) * weights[:, None] / len(labels)
            w -= lr * (x.T @ g + l2 * w)
            b -= lr * g.sum(axis=0)
        self.w, self.b = w, b

    def predict(self, audio: np.ndarray) -> np.ndarray:
        x = (classifier_features(audio, self.sample_rate) - self.mean) / self.std
        return np.argmax(x @ self.w + self.b, axis=1)


def latent_map_png(
    z: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centred = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6, 5))
    for i, name in enumerate(class_names):
        sel = labels == i
        if np.any(sel):
            ax.scatter(xy[sel, 0], xy[sel, 1], s=12, label=name)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("latent means (z_mean) of the split, by class")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spectrograms_png(
    rows: list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray]], sample_rate: int, path: Path
) -> None:
    """One row per class: real | reconstructed | generated (log magnitude, dB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 3, figsize=(11, 2.2 * len(rows)), squeeze=False)
    n_fft, hop = 1024, 256
    window = np.hanning(n_fft)
    for r, (name, real, recon, gen) in enumerate(rows):
        for c, (title, x) in enumerate(
            (("real", real), ("reconstructed", recon), ("generated", gen))
        ):
            ax = axes[r, c]
            if x is None:
                ax.axis("off")
                continue
            frames = 1 + (len(x) - n_fft) // hop
            idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
            db = 20 * np.log10(np.abs(np.fft.rfft(x[idx] * window, axis=1)) + 1e-5)
            ax.imshow(
                db.T,
                origin="lower",
                aspect="auto",
                vmin=-80,
                vmax=20,
                cmap="magma",
                extent=(0, len(x) / sample_rate, 0, sample_rate / 2000),
            )
            ax.set_title(f"{name}: {title}", fontsize=8)
            ax.tick_params(labelsize=6)
            if c == 0:
                ax.set_ylabel("kHz", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(
    fns: ModelFns,
    audio: np.ndarray,
    labels: np.ndarray,
    out_dir: Path,
    *,
    train_audio: np.ndarray | None = None,
    train_labels: np.ndarray | None = None,
    per_class: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Run every measurement, write the files, return the metrics."""
    import soundfile as sf

    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    metrics: dict[str, Any] = {"kind": fns.kind, "sounds": len(labels)}
    recon: np.ndarray | None = None
    z: np.ndarray | None = None
    if fns.encode is not None and len(labels):
        z = _batched(fns.encode, audio)
        recon = _batched(fns.decode, z, labels)
        m = reconstruction_metrics(audio, recon)
        metrics["lsd_db"] = float(np.mean(m["lsd_db"]))
        metrics["mrstft"] = float(np.mean(m["mrstft"]))
        metrics["per_class"] = {
            name: {
                "lsd_db": float(np.mean(m["lsd_db"][labels == i])),
                "mrstft": float(np.mean(m["mrstft"][labels == i])),
                "sounds": int(np.sum(labels == i)),
            }
            for i, name in enumerate(fns.class_names)
            if np.any(labels == i)
        }
        latent_map_png(z, labels, fns.class_names, out_dir / "latent_map.png")
        metrics["lsd_db_references"] = reference_distances(audio)
    n_classes = len(fns.class_names)
    gen_labels = np.repeat(np.arange(n_classes), per_class).astype(np.int64)

    def generate(gen_z: np.ndarray, folder: Path) -> np.ndarray:
        generated = _batched(fns.decode, gen_z.astype(np.float32), gen_labels)
        for i, (x, lab) in enumerate(zip(generated, gen_labels, strict=True)):
            (folder / fns.class_names[lab]).mkdir(parents=True, exist_ok=True)
            peak = float(np.max(np.abs(x)))
            sf.write(
                folder / fns.class_names[lab] / f"{i % per_class:02d}.wav",
                x / max(peak, 1.0),
                fns.sample_rate,
                subtype="PCM_16",
            )
        return generated

    # from the prior N(0, 1), and from where each class's real sounds lie (dkvae.class_latents)
    generated = generate(
        rng.standard_normal((len(gen_labels), fns.latent_size)), out_dir / "generated"
    )
    metrics["generated_peak_max"] = float(np.max(np.abs(generated)))
    metrics["generated_finite"] = bool(np.all(np.isfinite(generated)))
    places = fns.class_latents
    if (
        places is None
        and fns.encode is not None
        and train_audio is not None
        and train_labels is not None
    ):
        places = fit(_batched(fns.encode, train_audio), train_labels, fns.class_names)
    from_classes = None
    if places:
        from_classes = generate(
            np.stack(
                [
                    places[fns.class_names[lab]].sample(rng)
                    if fns.class_names[lab] in places
                    else rng.standard_normal(fns.latent_size)
                    for lab in gen_labels
                ]
            ),
            out_dir / "generated-class-latents",
        )
    if train_audio is not None and train_labels is not None:
        check = ClassCheck(train_audio, train_labels, n_classes, fns.sample_rate)
        real_pred = check.predict(audio) if len(labels) else np.array([])
        metrics["classifier_accuracy_real"] = (
            float(np.mean(real_pred == labels)) if len(labels) else None
        )
        for key, sounds in (("generated", generated), ("generated_class_latents", from_classes)):
            if sounds is None:
                continue
            pred = check.predict(sounds)
            metrics[f"classifier_accuracy_{key}"] = float(np.mean(pred == gen_labels))
            metrics[f"classifier_accuracy_{key}_per_class"] = {
                name: float(np.mean(pred[gen_labels == i] == i))
                for i, name in enumerate(fns.class_names)
            }
    rows: list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray]] = []
    for i, name in enumerate(fns.class_names):
        where = np.flatnonzero(labels == i)
        if len(where):
            j = int(where[0])
            rows.append(
                (name, audio[j], recon[j] if recon is not None else None, generated[i * per_class])
            )
    if rows:
        spectrograms_png(rows, fns.sample_rate, out_dir / "spectrograms.png")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of the headline metrics of several evaluations."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    lines = [
        "| model | LSD (dB) | MR-STFT | classifier on generated: from N(0, 1) | "
        "from the class latents |",
        "|---|---|---|---|---|",
    ]
    references: dict[str, float] = {}
    for name, m in results.items():
        lsd = f"{m['lsd_db']:.2f}" if "lsd_db" in m else "-"
        mr = f"{m['mrstft']:.3f}" if "mrstft" in m else "-"
        lines.append(
            f"| {name} | {lsd} | {mr} | {pct(m.get('classifier_accuracy_generated'))} | "
            f"{pct(m.get('classifier_accuracy_generated_class_latents'))} |"
        )
        references = m.get("lsd_db_references", references)
    if references:  # the same for every model on one split
        lines += ["", "| reference, no model (the split's own sounds) | LSD (dB) |", "|---|---|"]
        lines += [f"| {key} | {value:.2f} |" for key, value in references.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dkvae-eval", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="run folder (or, with --onnx, an exported model)")
    p.add_argument(
        "--onnx",
        action="store_true",
        help="RUN_DIR is a folder with decoder.onnx [+ encoder.onnx]: evaluate it "
        "through the daemon's loader",
    )
    p.add_argument("--bank", type=Path, help="bank folder (default: the run's bank)")
    p.add_argument("--cache-dir", type=Path)
    p.add_argument("--split", default="test", choices=("train", "validation", "test", "all"))
    p.add_argument(
        "--checkpoint", default="best", help="best, last, or a weights file inside the run folder"
    )
    p.add_argument("--per-class", type=int, default=20, help="generated sounds per class")
    p.add_argument("--no-classifier", action="store_true", help="skip the class check")
    p.add_argument("--out", type=Path, help="output folder (default RUN_DIR/eval-SPLIT)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .bank import load_split

    bank, cache_dir = args.bank, args.cache_dir
    if bank is None and not args.onnx and (args.run_dir / "run.json").exists():
        source = json.loads((args.run_dir / "run.json").read_text())
        bank = Path(source["bank"]) if source.get("bank") else None
        if cache_dir is None and source.get("cache_dir"):
            cache_dir = Path(source["cache_dir"])
    if bank is None:
        logger.error("no bank: give --bank")
        return 2
    fns = (
        onnx_model_fns(args.run_dir)
        if args.onnx
        else keras_model_fns(args.run_dir, args.checkpoint)
    )
    data = load_split(
        bank,
        args.split,
        sample_rate=fns.sample_rate,
        num_samples=fns.num_samples,
        cache_dir=cache_dir,
    )
    if tuple(data.class_names) != fns.class_names:
        logger.error(
            "the bank's classes %s differ from the model's %s", data.class_names, fns.class_names
        )
        return 2
    train = (
        None
        if args.no_classifier
        else load_split(
            bank,
            "train",
            sample_rate=fns.sample_rate,
            num_samples=fns.num_samples,
            cache_dir=cache_dir,
        )
    )
    out = args.out or args.run_dir / f"eval-{args.split}"
    metrics = evaluate(
        fns,
        data.audio,
        data.labels,
        out,
        train_audio=None if train is None else train.audio,
        train_labels=None if train is None else train.labels,
        per_class=args.per_class,
    )
    print(format_table({f"{fns.kind} ({args.run_dir.name})": metrics}))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
