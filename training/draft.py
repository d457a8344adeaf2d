"""``dkvae-draft``: a small decoder distilled from a model's own, for the first sound after a
change (issue 21).

The draft renders what the next hit plays while the model's decoder renders the pad in full: a
log-magnitude decoder of the same interface with a ninth of the arithmetic (DRAFT_WIDTHS, a
one-frame last layer). It learns from its decoder alone, no bank: each batch is latents drawn
where the daemon plays them (each class's real sounds, their timbre axes, a MIDI CC's reach of
one dimension, the prior) and the decoder's output for them. The loss is the mean squared error
of the log magnitudes within AUDIBLE_DB of each sound's peak: what lies below is never heard.

    dkvae-draft MODEL RUN [--max-minutes M]     train (RUN: a run folder; --resume goes on)
    dkvae-draft MODEL RUN --export              write MODEL/draft.onnx from RUN's best weights

The daemon plays `draft.onnx` only beside the decoder it was made from (docs/model-contract.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from dkvae_live import contract
from dkvae_live.model import Decoder, ModelError, draft_of

from .config import TrainConfig
from .run_folder import (
    BEST_WEIGHTS,
    RUN_INFO,
    RunFolder,
    exit_status,
    interrupted_message,
    restore_checkpoint,
    start_run,
    stop_on_sigterm,
    stopped_by,
    write_json,
)
from .train import resumed_settings

logger = logging.getLogger(__name__)

DRAFT_WIDTHS = (128, 96, 64, 48)  # the model's own: 256, 256, 192, 128, and a 3-frame last layer
AUDIBLE_DB = 90.0  # below a sound's peak bin by more than this, an error is never heard
STEPS_PER_EPOCH = 200
VALIDATION_LATENTS = 192
CC_REACH = 3.0  # a MIDI CC mapped to a dimension sets it within +-3 (docs/osc.md)


def draft_config(info: Any, **overrides: Any) -> TrainConfig:
    """The training settings of a draft of the decoder described by ``info`` (ModelInfo)."""
    settings: dict[str, Any] = {
        "kind": "seed_vae",
        "spec_conditional": True,
        "spec_decoder": "conv1d",
        "sample_rate": info.sample_rate,
        "num_samples": info.num_samples,
        "latent_size": info.latent_size,
        "class_names": tuple(info.class_names),
        "spec_n_fft": info.n_fft,
        "spec_hop_length": info.hop_length,
        "log_offset": info.log_offset,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "min_learning_rate": 1e-5,
        "patience": 12,
        "snapshot_minutes": (),
        "epochs": 1000,
    }
    settings.update(overrides)
    return TrainConfig(**settings)


def draw_latents(info: Any, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (latent, class index) pairs where the daemon plays: mostly near each class's real
    sounds (``dkvae.class_latents``), often moved along a timbre axis, sometimes one dimension
    set as a MIDI CC sets it, the rest from the prior."""
    size = info.latent_size
    classes = rng.integers(0, len(info.class_names), n)
    z = np.empty((n, size), np.float64)
    for i, c in enumerate(classes):
        name = info.class_names[c]
        latents, axes = info.class_latents.get(name), info.axes.get(name)
        if latents is not None and rng.random() < 0.75:
            z[i] = latents.sample(rng, rng.uniform(0.0, 1.5))
            if axes is not None and rng.random() < 0.5:
                z[i] += rng.uniform(-2.0, 2.0) * axes.directions[rng.integers(len(axes.std))]
        else:
            z[i] = rng.standard_normal(size) * rng.uniform(0.5, 1.5)
        if rng.random() < 0.3:
            z[i, rng.integers(size)] = rng.uniform(-CC_REACH, CC_REACH)
    return z.astype(np.float32), classes.astype(np.int64)


def audible_error(student: Any, teacher: Any) -> Any:
    """Mean squared error of log magnitudes ``[batch, frames, bins]``, both floored at
    AUDIBLE_DB under the teacher's peak of each sound."""
    import tensorflow as tf

    floor = tf.reduce_max(teacher, axis=(1, 2), keepdims=True) - AUDIBLE_DB / 20.0 * math.log(10)
    return tf.reduce_mean(tf.square(tf.maximum(student, floor) - tf.maximum(teacher, floor)))


def build_student(cfg: TrainConfig) -> Any:
    """The draft: a Keras model whose ``decoder`` is the draft decoder, trained on teacher pairs
    ``((z, class_index), log_magnitude)``."""
    import keras
    import tensorflow as tf

    from .seed_vae import build_spectrogram_decoder

    class DraftStudent(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="draft_student")
            self.cfg = cfg
            self.decoder = build_spectrogram_decoder(
                cfg, "draft", conditional=True, widths=DRAFT_WIDTHS, out_kernel=1
            )
            self.tracker = keras.metrics.Mean(name="loss")

        @property
        def metrics(self) -> list[Any]:
            return [self.tracker]  # reset by Keras at each epoch's start

        def call(self, inputs: Any, training: bool = False) -> Any:
            return self.decoder(inputs, training=training)

        def _logs(self, loss: Any) -> dict[str, Any]:
            self.tracker.update_state(loss)
            return {"loss": self.tracker.result()}

        def train_step(self, data: Any) -> dict[str, Any]:
            inputs, target = data
            with tf.GradientTape() as tape:
                loss = audible_error(self.decoder(inputs, training=True), target)
            variables = self.decoder.trainable_variables
            grads = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            return self._logs(loss)

        def test_step(self, data: Any) -> dict[str, Any]:
            inputs, target = data
            return self._logs(audible_error(self.decoder(inputs), target))

    model = DraftStudent()
    model((np.zeros((1, cfg.latent_size), np.float32), np.zeros(1, np.int64)))
    return model


def _teacher_pairs(teacher: Decoder, cfg: TrainConfig, seed: list[int], count: int | None) -> Any:
    """A tf.data.Dataset of batches ((z, class_index), teacher output): endless, or ``count``
    latents (the validation set, the same every time)."""
    import tensorflow as tf

    from .seed_vae import spectrogram_shape

    frames, bins = spectrogram_shape(cfg)
    size, batch = cfg.latent_size, cfg.batch_size

    def batches() -> Any:
        rng = np.random.default_rng(seed)
        left = count
        while left is None or left > 0:
            n = batch if left is None else min(batch, left)
            z, classes = draw_latents(teacher.info, rng, n)
            yield (z, classes), teacher.output(z, classes)
            left = None if left is None else left - n

    signature = (
        (
            tf.TensorSpec((None, size), tf.float32),
            tf.TensorSpec((None,), tf.int64),
        ),
        tf.TensorSpec((None, frames, bins), tf.float32),
    )
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return ds.cache() if count is not None else ds.prefetch(2)


def train_draft(
    model_dir: Path, run_dir: Path, cfg: TrainConfig, *, resume: bool, verbose: int = 2
) -> Any:
    """Distil the decoder of ``model_dir`` into a draft in ``run_dir``."""
    import keras

    teacher = Decoder(model_dir, use_draft=False)
    state = start_run(run_dir, cfg, resume=resume)
    if not resume:
        write_json(run_dir / RUN_INFO, {"teacher": str(teacher.path), "command": sys.argv})
    keras.utils.set_random_seed(cfg.seed + int(state["epoch"]))
    model = build_student(cfg)
    model.compile(
        optimizer=keras.optimizers.Adam(float(state.get("learning_rate", cfg.learning_rate)))
    )
    if resume:
        restore_checkpoint(model, run_dir, state)
    logger.info(
        "draft: %d parameters (the decoder's own: see its model card)", model.count_params()
    )
    book = RunFolder(run_dir, cfg, state, "val_loss")
    callbacks = [
        book.callback(),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            mode="min",
            factor=0.5,
            patience=4,
            min_lr=cfg.min_learning_rate,
            verbose=0,
        ),
    ]
    model.fit(
        _teacher_pairs(teacher, cfg, [cfg.seed, 0, int(state["epoch"])], None),
        validation_data=_teacher_pairs(teacher, cfg, [cfg.seed, 1], VALIDATION_LATENTS),
        steps_per_epoch=STEPS_PER_EPOCH,
        epochs=cfg.epochs,
        initial_epoch=int(state["epoch"]),
        callbacks=callbacks,
        verbose=verbose,
    )
    return book.finish(model, {})


def export_draft(model_dir: Path, run_dir: Path) -> Path:
    """Write ``model_dir``/draft.onnx from the best weights in ``run_dir``; checks it against
    Keras and against the decoder it was made from, and returns its path."""
    from dkvae_export.onnx_export import ExportError, export_decoder

    from .config import load_config
    from .run_folder import CONFIG

    cfg = load_config(run_dir / CONFIG)
    teacher = Decoder(model_dir, use_draft=False)
    for key, want in (
        ("latent_size", teacher.info.latent_size),
        ("num_samples", teacher.info.num_samples),
        ("spec_n_fft", teacher.info.n_fft),
        ("class_names", tuple(teacher.info.class_names)),
    ):
        if getattr(cfg, key) != want:
            raise ExportError(f"{run_dir} is a draft of another model: its {key} differs")
    model = build_student(cfg)
    model.load_weights(str(run_dir / BEST_WEIGHTS))
    zeros = np.zeros((len(cfg.class_names), cfg.latent_size), np.float32)
    own = teacher.output(zeros, np.arange(len(cfg.class_names)))
    path = teacher.path.with_name(contract.DRAFT_FILE)
    diff = export_decoder(
        model.decoder,
        cfg,
        path,
        output_kind=contract.LOG_MAGNITUDE,
        name=teacher.info.name,
        small=True,
        role=contract.DRAFT,
        metadata={contract.DRAFT_OF: json.dumps(draft_of(own))},
    )
    try:
        Decoder(model_dir)  # the daemon's own checks, the draft with its decoder
    except ModelError:
        path.unlink(missing_ok=True)
        raise
    logger.info("draft %s: parity %.3g", path, diff)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dkvae-draft", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("model", type=Path, help="the model folder whose decoder is distilled")
    parser.add_argument("run_dir", type=Path, help="the draft's run folder")
    parser.add_argument(
        "--max-minutes", type=float, default=30.0, help="training time (default 30)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    parser.add_argument("--export", action="store_true", help="write MODEL/draft.onnx from RUN_DIR")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.export:
            print(export_draft(args.model, args.run_dir))
            return 0
        info = Decoder(args.model, use_draft=False).info
        if info.output_kind != contract.LOG_MAGNITUDE:
            print(
                f"dkvae-draft: {args.model} is a {info.output_kind} model; drafts are of "
                "log_magnitude models",
                file=sys.stderr,
            )
            return 2
        if args.resume:  # recorded in run.json, as dkvae-train --resume records it
            cfg, _ = resumed_settings(args.run_dir, {"max_minutes": args.max_minutes})
        else:
            cfg = draft_config(info, max_minutes=args.max_minutes)
        train_draft(args.model, args.run_dir, cfg, resume=args.resume)
    except KeyboardInterrupt as stop:
        resume = f"dkvae-draft {args.model} {args.run_dir} --resume"
        print(interrupted_message(args.run_dir, stopped_by(stop), resume), file=sys.stderr)
        if argv is None:  # the command: the interpreter's normal exit aborts ("terminate called
            # without an active exception") while tf.data's threads still run the teacher;
            # what the run keeps is on disk already
            sys.stderr.flush()
            os._exit(exit_status(stop))
        return exit_status(stop)
    except (ModelError, FileExistsError, OSError, ValueError, RuntimeError) as exc:  # ExportError
        print(f"dkvae-draft: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
