"""A training run's folder: the files in it, and the bookkeeping at the end of each epoch.

Single-process training (``train.py``) and distributed training (``distributed.py``) keep their
run folders with this module, so both hold the same files in the same formats::

    config.json            the resolved TrainConfig (export and evaluation read it back)
    run.json               where the data came from, and the command line
    train.log              the training log
    history.csv            one row of metrics per epoch (appended on resume), as Keras's CSVLogger
                           writes it: a header, then the epoch counted from 0 and the metrics
    tensorboard/           TensorBoard logs
    checkpoints/           last.weights.h5, optimizer.npz, state.json (what --resume needs)
    best.weights.h5        the weights with the best monitored metric so far (``monitored_metric``)
    snapshots/             the best weights after each of ``snapshot_minutes`` of training
    summary.json           written when training stops: epochs, time, best metric, why

Training stops at ``epochs``, on early stopping (``patience`` epochs without a better monitored
metric), when the loss is not finite, or when ``max_minutes`` of training (summed over resumes)
have passed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig, save_config

logger = logging.getLogger(__name__)

CONFIG = "config.json"
RUN_INFO = "run.json"
TRAIN_LOG = "train.log"
HISTORY = "history.csv"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoints"
LAST_WEIGHTS = f"{CHECKPOINT_DIR}/last.weights.h5"
OPTIMIZER_STATE = f"{CHECKPOINT_DIR}/optimizer.npz"
STATE = f"{CHECKPOINT_DIR}/state.json"
BEST_WEIGHTS = "best.weights.h5"
SNAPSHOT_DIR = "snapshots"
SUMMARY = "summary.json"


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    epochs_done: int
    best: float  # of the monitored metric
    train_seconds: float
    stop_reason: str
    history: dict[str, list[float]]


def written(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through a temporary file beside it (same suffix, which Keras and numpy
    insist on), renamed into place: a Ctrl-C mid-write leaves the old file, never a torn one."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    written(path, lambda tmp: tmp.write_text(text))


def initial_state() -> dict[str, Any]:
    return {"epoch": 0, "best": float("inf"), "best_epoch": 0, "wait": 0, "train_seconds": 0.0}


def read_state(run_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((Path(run_dir) / STATE).read_text())
    return state


def monitored_metric(cfg: TrainConfig, validation: bool) -> str:
    """The metric whose best value picks ``best.weights.h5`` and drives early stopping.

    The adversarial stage watches the mel distance: its reconstruction loss rises as the
    decoder trades the magnitude fit for texture, so that loss cannot say which epoch sounds
    closest (issue 18's measure 1 is this mel distance). So does the encoder stage, whose
    decoder cannot move: the mel distance is what its encoder is for."""
    if cfg.kind == "seed_vae" and (cfg.adversarial_weight > 0.0 or cfg.encoder_stage):
        name = "mel_db"
    else:
        name = "g_loss" if cfg.kind == "cgan" else "loss"
    return f"val_{name}" if validation else name


def fork_run(source: Path, run_dir: Path, command: list[str]) -> None:
    """Make ``run_dir`` a new run that starts where ``source`` was best: its settings, its best
    weights as the last finished epoch, its history up to then; ``--resume`` goes on from there,
    with other settings where given. The source is not touched. Approximations, recorded in
    ``run.json``: the optimizer's state is the source's last (exact when its last epoch was its
    best; none where the source has none, as one read back from a model's files), and the
    training time so far is the source's, in proportion to the epochs kept."""
    source, run_dir = Path(source), Path(run_dir)
    for name in (CONFIG, RUN_INFO, STATE, BEST_WEIGHTS):
        if not (source / name).exists():
            raise FileNotFoundError(f"{source} is not a run to fork: it has no {name}")
    if (run_dir / STATE).exists():
        raise FileExistsError(f"{run_dir} already holds a run; fork into a new folder")
    state = read_state(source)
    best_epoch = int(state["best_epoch"])
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / CONFIG, run_dir / CONFIG)
    shutil.copyfile(source / BEST_WEIGHTS, run_dir / BEST_WEIGHTS)
    shutil.copyfile(source / BEST_WEIGHTS, run_dir / LAST_WEIGHTS)
    if (source / OPTIMIZER_STATE).exists():  # not in one read back from a model's files
        shutil.copyfile(source / OPTIMIZER_STATE, run_dir / OPTIMIZER_STATE)
    if (source / HISTORY).exists():  # Keras's epochs count from 0
        with (source / HISTORY).open(newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0], *(r for r in rows[1:] if int(r[0]) < best_epoch)]
        with (run_dir / HISTORY).open("w", newline="") as f:
            csv.writer(f).writerows(kept)
    info = json.loads((source / RUN_INFO).read_text())
    info["forked_from"] = {
        "run": str(source.resolve()),
        "epoch": best_epoch,
        "source_epochs": int(state["epoch"]),
        "command": command,
    }
    write_json(run_dir / RUN_INFO, info)
    seconds = float(state["train_seconds"]) * best_epoch / max(1, int(state["epoch"]))
    write_json(
        run_dir / STATE,
        {**state, "epoch": best_epoch, "wait": 0, "train_seconds": seconds},
    )
    logger.info("forked %s at its best epoch %d into %s", source, best_epoch, run_dir)


def start_run(run_dir: Path, cfg: TrainConfig, *, resume: bool) -> dict[str, Any]:
    """The state to train from: a new run folder's (its config written), or with ``resume`` the
    state saved in ``run_dir``."""
    run_dir = Path(run_dir)
    if resume:
        return read_state(run_dir)
    if (run_dir / STATE).exists():
        raise FileExistsError(f"{run_dir} already holds a run; use --resume to continue it")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG)
    return initial_state()


def _optimizers(model: Any) -> list[tuple[Any, list[Any]]]:
    """Every optimizer of a model with the variables it updates."""
    if getattr(model, "discriminator", None) is not None:
        return [
            (model.optimizer, model.decoder.trainable_variables),
            (model.d_optimizer, model.discriminator.trainable_variables),
        ]
    return [(model.optimizer, model.trainable_variables)]


def save_optimizer_state(model: Any, path: Path) -> None:
    values = [np.asarray(var) for opt, _ in _optimizers(model) for var in opt.variables]
    written(path, lambda tmp: np.savez(tmp, *values))


def load_optimizer_state(model: Any, path: Path) -> None:
    data = np.load(path)
    k = 0
    for opt, variables in _optimizers(model):
        if not opt.built:
            opt.build(variables)
        for var in opt.variables:
            value = data[f"arr_{k}"]
            k += 1
            if tuple(value.shape) != tuple(var.shape):
                raise ValueError(f"optimizer state {path} does not fit this model")
            var.assign(value)


def restore_checkpoint(model: Any, run_dir: Path, state: Mapping[str, Any]) -> None:
    """Weights, optimizer state and learning rate of the last finished epoch of ``run_dir``.
    A run that enters its adversarial stage (seed_vae's ``adversarial_weight``) starts it from
    weights that have no discriminator: those get a new one, and new optimizers."""
    import h5py

    path = run_dir / LAST_WEIGHTS
    with h5py.File(path, "r") as f:
        stage_starts = (
            getattr(model, "discriminator", None) is not None and "discriminator" not in f
        )
    if stage_starts:
        before = type(model)(dataclasses.replace(model.cfg, adversarial_weight=0.0))
        before((np.zeros((1, model.cfg.num_samples), np.float32), np.zeros(1, np.int64)))
        before.load_weights(str(path))
        model.encoder.set_weights(before.encoder.get_weights())
        model.decoder.set_weights(before.decoder.get_weights())
        logger.info("adversarial stage: a new discriminator and new optimizers")
    else:
        model.load_weights(str(path))
        if (run_dir / OPTIMIZER_STATE).exists():
            load_optimizer_state(model, run_dir / OPTIMIZER_STATE)
        else:  # a resume file's run, or weights read back from a model's ONNX files
            logger.info("no optimizer state in %s: a new optimizer", run_dir / CHECKPOINT_DIR)
    if "learning_rate" in state:
        model.optimizer.learning_rate.assign(float(state["learning_rate"]))
    logger.info(
        "resuming %s at epoch %d (%.1f min trained)",
        run_dir,
        state["epoch"],
        state["train_seconds"] / 60.0,
    )


def append_history(path: Path, epoch: int, logs: Mapping[str, float]) -> None:
    """One row of ``history.csv`` as Keras's CSVLogger writes it: ``epoch`` from 0, then the
    metrics in sorted order, then (a run without validation) ``val_`` columns of "NA". A file
    that exists keeps its columns; metrics new to it (a stage that adds losses) are added as
    columns, "NA" in the rows before."""
    keys = sorted(logs)
    if not any(k.startswith("val_") for k in keys):
        keys += [f"val_{k}" for k in keys]
    row = {"epoch": epoch, **{k: float(v) for k, v in logs.items()}}
    rows: list[dict[str, Any]] = []
    columns = ["epoch", *keys]
    if path.exists() and path.stat().st_size > 0:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            kept = list(reader.fieldnames or [])
        columns = kept + [k for k in keys if k not in kept]
        if columns == kept:
            with path.open("a", newline="") as fh:
                csv.DictWriter(fh, columns, restval="NA", extrasaction="ignore").writerow(row)
            return

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, columns, restval="NA", extrasaction="ignore")
            writer.writeheader()
            writer.writerows([*rows, row])

    written(path, write)


class RunFolder:
    """The bookkeeping of one run folder: at each epoch's end the history row, the best and
    last weights, the optimizer and training state (what ``--resume`` needs), snapshots, and
    the stop decisions (early stopping, a loss that is not finite, the time budget)."""

    def __init__(
        self, run_dir: Path, cfg: TrainConfig, state: dict[str, Any], monitor: str
    ) -> None:
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self.state = state
        self.monitor = monitor
        # runs from before this record watched their loss
        before = dataclasses.replace(cfg, adversarial_weight=0.0)
        recorded = state.get("monitor", monitored_metric(before, monitor.startswith("val_")))
        if recorded != monitor:
            logger.info("the best epoch is now judged by %s (was %s)", monitor, recorded)
            state.update(best=float("inf"), wait=0)
        state["monitor"] = monitor
        self.started = time.monotonic()
        self.trained_before = float(state["train_seconds"])  # by earlier runs of this folder
        self.stop_reason = "epochs"
        self.stop = False

    def elapsed(self) -> float:
        return self.trained_before + time.monotonic() - self.started

    def _stop(self, reason: str) -> None:
        self.stop_reason, self.stop = reason, True

    def end_epoch(self, model: Any, epoch: int, logs: Mapping[str, float]) -> None:
        """Record epoch ``epoch`` (from 0) with its metrics ``logs``; sets ``stop`` (and
        ``stop_reason``) when training should end here."""
        append_history(self.run_dir / HISTORY, epoch, logs)
        value = float(logs.get(self.monitor, np.nan))
        (self.run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
        if np.isfinite(value) and value < self.state["best"]:
            self.state.update(best=value, best_epoch=epoch + 1, wait=0)
            written(self.run_dir / BEST_WEIGHTS, lambda tmp: model.save_weights(str(tmp)))
        else:
            self.state["wait"] += 1
        if not np.isfinite(float(logs.get("loss", np.nan))):
            self._stop("loss is not finite")
        elapsed = self.elapsed()
        self.state.update(
            epoch=epoch + 1,
            train_seconds=elapsed,
            learning_rate=float(np.asarray(model.optimizer.learning_rate)),
        )
        written(self.run_dir / LAST_WEIGHTS, lambda tmp: model.save_weights(str(tmp)))
        save_optimizer_state(model, self.run_dir / OPTIMIZER_STATE)
        write_json(self.run_dir / STATE, self.state)
        logger.info(
            "epoch %d: %s; best %s %.5f (epoch %d); %.1f min",
            epoch + 1,
            ", ".join(f"{k} {v:.4g}" for k, v in sorted(logs.items())),
            self.monitor,
            self.state["best"],
            self.state["best_epoch"],
            elapsed / 60.0,
        )
        if self.state["wait"] >= self.cfg.patience:
            self._stop(
                f"early stopping ({self.cfg.patience} epochs without a better {self.monitor})"
            )
        for minutes in self.cfg.snapshot_minutes:
            snap = self.run_dir / SNAPSHOT_DIR / f"best_at_{minutes:g}min.weights.h5"
            if elapsed >= minutes * 60.0 and not snap.exists():
                # the best weights after `minutes` of training: equal-time comparisons
                snap.parent.mkdir(exist_ok=True)
                shutil.copyfile(self.run_dir / BEST_WEIGHTS, snap)
        if self.cfg.max_minutes > 0 and elapsed >= self.cfg.max_minutes * 60.0:
            self._stop(f"time budget of {self.cfg.max_minutes:g} min reached")

    def callback(self) -> Any:
        """A Keras callback that calls :meth:`end_epoch` and stops ``fit`` when it says so
        (built on call, so that importing this module needs no Keras)."""
        import keras

        book = self

        class _RunFolderCallback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                book.end_epoch(self.model, epoch, logs or {})
                if book.stop:
                    self.model.stop_training = True

        return _RunFolderCallback()

    def finish(self, model: Any, history: dict[str, list[float]], **extra: object) -> RunResult:
        """Write ``summary.json`` (with ``extra`` fields) and return what the run did. A run
        that trained no epoch still gets ``best.weights.h5`` (its initial weights)."""
        if not (self.run_dir / BEST_WEIGHTS).exists():
            model.save_weights(str(self.run_dir / BEST_WEIGHTS))
        state = self.state
        result = RunResult(
            self.run_dir,
            int(state["epoch"]),
            float(state["best"]),
            float(state["train_seconds"]),
            self.stop_reason,
            history,
        )
        summary = {
            "kind": self.cfg.kind,
            "epochs_done": result.epochs_done,
            "monitor": self.monitor,
            "best": result.best,
            "best_epoch": state["best_epoch"],
            "train_minutes": result.train_seconds / 60.0,
            "stop_reason": result.stop_reason,
            **extra,
            "config_hash": self.cfg.hash(),
        }
        write_json(self.run_dir / SUMMARY, summary)
        logger.info(
            "stopped after %d epochs (%s); %.1f min; best %s %.5f",
            result.epochs_done,
            result.stop_reason,
            result.train_seconds / 60.0,
            self.monitor,
            result.best,
        )
        return result


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job's time limit): stop as Ctrl-C does, keeping the last epoch."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def stop_on_sigterm() -> None:
    """Make SIGTERM stop this process as Ctrl-C does (`Terminated`); from the main thread."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def stopped_by(stop: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"


def exit_status(stop: KeyboardInterrupt) -> int:
    """What a shell says of a process stopped so: 128 + the signal."""
    return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)


def interrupted_message(run_dir: Path, by: str = "Ctrl-C", resume: str = "") -> str:
    """What a Ctrl-C (or another stop ``by``) left: the run folder's last finished epoch, and
    how to go on (``resume``: the command; default dkvae-train's)."""
    try:
        epoch = int(read_state(run_dir)["epoch"])
    except (OSError, ValueError, KeyError):
        epoch = 0
    if epoch == 0:
        return f"stopped by {by} before the first epoch ended; nothing to resume in {run_dir}"
    resume = resume or f"dkvae-train --resume {run_dir}"
    return f"stopped by {by}; {run_dir} keeps epoch {epoch}: {resume} continues from there"
