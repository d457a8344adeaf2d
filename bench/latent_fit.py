"""How close a run's encoder comes to the best latent its decoder can use: issue 18's measure 1
(the mel distance, on the decoder's magnitudes) of each sound decoded from the encoder's
`z_mean`, beside the same from a latent fitted to that sound alone.

Method: each sound of a bank split, read as the encoder reads it, is encoded; its latent is then
fitted by --steps of Adam (rate --rate) on the run's own reconstruction loss (log-magnitude MSE
plus its mel-distance weight) through the frozen decoder, at the sound's own class, starting from
the encoder's latent. The gap between the two distances is what a better encoder could win
without touching the decoder (the amortisation gap); the fitted distance is what the decoder
itself allows. No phase: magnitudes only, as training measures them (the daemon's phase adds
about 0.4 dB on the test split). Needs TensorFlow (the training extra) and a seed_vae run.

    .venv/bin/python bench/latent_fit.py runs/r3e-onnx --bank data/bank-v3-fair --split test
    .venv/bin/python bench/latent_fit.py runs/r3e-onnx --bank data/bank-v3 --split train --limit 128
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import RESULTS, table, write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a seed_vae run folder")
    p.add_argument("--checkpoint", default="best", help="best, last, or a weights file in the run")
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=0, help="at most this many sounds (a fixed draw)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rate", type=float, default=0.03)
    p.add_argument("--json", type=Path, default=RESULTS / "latent_fit.json")
    args = p.parse_args()

    import tensorflow as tf
    from dkvae_training import losses
    from dkvae_training import yardstick as ys
    from dkvae_training.data import load_arrays
    from dkvae_training.models import load_trained

    cfg, model = load_trained(args.run, args.checkpoint)
    arrays = load_arrays(args.bank, args.split, cfg, None)
    audio, labels = arrays.audio, arrays.labels
    if 0 < args.limit < len(audio):
        keep = np.sort(np.random.default_rng(0).permutation(len(audio))[: args.limit])
        audio, labels = audio[keep], labels[keep]
    filterbank = ys.mel_filterbank(cfg.sample_rate, cfg.spec_n_fft, ys.MEL_BANDS)

    def scores(batch: tf.Tensor, classes: tf.Tensor, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(the run's loss without KL, the mel distance) per sound."""
        magnitude = losses.stft_magnitude(batch, cfg.spec_n_fft, cfg.spec_hop_length)
        out = model.decoder([z, classes], training=False)
        mse = tf.reduce_mean(tf.square(out - tf.math.log(magnitude + cfg.log_offset)), axis=[1, 2])
        mel = losses.heard_mel_distance(
            magnitude, tf.exp(out), filterbank, ys.MEL_FLOOR_DB, ys.MEL_FRAME_RANGE_DB
        )
        return mse + cfg.spec_mel_db_weight * mel, mel

    encoded, fitted = [], []
    for start in range(0, len(audio), 32):
        batch = tf.constant(audio[start : start + 32])
        classes = tf.constant(labels[start : start + 32])
        z_mean, _ = model.encoder(batch, training=False)
        encoded.append(scores(batch, classes, z_mean)[1].numpy())
        z = tf.Variable(z_mean)
        optimizer = tf.keras.optimizers.Adam(args.rate)
        for _ in range(args.steps):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(scores(batch, classes, z)[0])
            optimizer.apply_gradients([(tape.gradient(loss, z), z)])
        fitted.append(scores(batch, classes, z)[1].numpy())
        print(f"{start + len(batch)}/{len(audio)} sounds", flush=True)
    enc, fit = np.concatenate(encoded), np.concatenate(fitted)

    rows = [
        [
            "all",
            len(enc),
            f"{enc.mean():.2f}",
            f"{fit.mean():.2f}",
            f"{enc.mean() - fit.mean():.2f}",
        ]
    ]
    per_class = {}
    for index, name in enumerate(arrays.class_names):
        mine = labels == index
        if mine.any():
            per_class[name] = {
                "n": int(mine.sum()),
                "encoder": float(enc[mine].mean()),
                "fitted": float(fit[mine].mean()),
            }
            rows.append(
                [
                    name,
                    int(mine.sum()),
                    f"{enc[mine].mean():.2f}",
                    f"{fit[mine].mean():.2f}",
                    f"{enc[mine].mean() - fit[mine].mean():.2f}",
                ]
            )
    print(
        f"{args.run} ({args.checkpoint}), {args.bank} {args.split}: mel distance on magnitudes (dB)"
    )
    print(table(["class", "sounds", "encoder's latent", "fitted latent", "gap"], rows))
    write_json(
        args.json,
        {
            "run": str(args.run),
            "checkpoint": args.checkpoint,
            "bank": str(args.bank),
            "split": args.split,
            "steps": args.steps,
            "encoder_mel_db": float(enc.mean()),
            "fitted_mel_db": float(fit.mean()),
            "per_class": per_class,
        },
    )


if __name__ == "__main__":
    main()
