"""Distributed training with ``tf.distribute``: mirrored (one host's devices) or multi-worker.

Keras 3 ``fit`` fails under ``MultiWorkerMirroredStrategy`` ("Attempt to convert a value
(PerReplica...) to a Tensor", keras-team/keras#20585), so this is a custom loop: model and
optimizer built under ``strategy.scope()``, ``experimental_distribute_dataset``, a
``tf.function`` step that runs ``strategy.run`` with a GradientTape and scales the loss by the
global batch size. The run folder is the same as ``dkvae-train`` writes (only worker 0, the
chief, writes it), so export and evaluation work on it unchanged.

Multi-worker: start one process per worker with the same ``--workers host:port,...`` list and
its own ``--worker-index``; each builds ``TF_CONFIG`` from them. Stop decisions (early stopping,
time budget) are taken by the chief and shared with an all-reduce so workers never diverge.

    dkvae-train RUN --bank B --strategy multiworker --workers 127.0.0.1:23456,127.0.0.1:23457 \\
        --worker-index 0 &
    dkvae-train RUN-w1 --bank B --strategy multiworker \\
        --workers 127.0.0.1:23456,127.0.0.1:23457 --worker-index 1
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig, save_config
from .train import (
    CHECKPOINT_DIR,
    Arrays,
    RunResult,
    initial_state,
    load_optimizer_state,
    make_dataset,
    save_optimizer_state,
)

logger = logging.getLogger(__name__)


def make_strategy(name: str, workers: str | None = None, worker_index: int = 0) -> Any:
    """``mirrored`` or ``multiworker`` (which sets ``TF_CONFIG`` from ``workers``)."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if workers:
            hosts = [w.strip() for w in workers.split(",") if w.strip()]
            if not 0 <= worker_index < len(hosts):
                raise ValueError(f"worker index must be in range 0..{len(hosts) - 1}")
            os.environ["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": worker_index}}
            )
        elif "TF_CONFIG" not in os.environ:
            raise ValueError("multiworker needs --workers host:port,... (or TF_CONFIG)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be mirrored or multiworker, got {name!r}")


def train_distributed(
    cfg: TrainConfig,
    run_dir: Path,
    train_arrays: Arrays,
    val_arrays: Arrays | None,
    *,
    strategy: str,
    workers: str | None = None,
    worker_index: int = 0,
    resume: bool = False,
    smoke_test: bool = False,
    verbose: int = 1,
) -> RunResult:
    """Train ``cfg`` (``vae`` or ``seed_vae``) with a custom loop under a distribution strategy."""
    import keras
    import tensorflow as tf

    from .models import build_model

    if cfg.kind not in ("vae", "seed_vae"):
        raise ValueError(f"distributed training supports vae and seed_vae, not {cfg.kind}")
    if smoke_test:
        cfg = dataclasses.replace(cfg, epochs=min(cfg.epochs, 2), max_minutes=0.0)
    strat = make_strategy(strategy, workers, worker_index)
    chief = worker_index == 0
    # non-chief workers write their (identical) checkpoints to a scratch folder
    out_dir = Path(run_dir) if chief else Path(tempfile.mkdtemp(prefix="dkvae-worker-"))
    ckpt = out_dir / CHECKPOINT_DIR
    ckpt.mkdir(parents=True, exist_ok=True)
    state = json.loads((ckpt / "state.json").read_text()) if resume and chief else initial_state()
    if chief and not resume:
        save_config(cfg, out_dir / "config.json")
    keras.utils.set_random_seed(cfg.seed)
    with strat.scope():
        model = build_model(cfg)
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate))
        model.optimizer.build(model.trainable_variables)
        if resume and chief:
            model.load_weights(str(ckpt / "last.weights.h5"))
            load_optimizer_state(model, ckpt / "optimizer.npz")
    replicas = strat.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    logger.info(
        "%s strategy: %d replicas in sync, global batch %d", strategy, replicas, global_batch
    )
    ds = make_dataset(
        train_arrays,
        global_batch,
        shuffle=True,
        seed=cfg.seed,
        gain_augment_db=cfg.gain_augment_db,
        drop_remainder=True,
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(options)
    if smoke_test:
        ds = ds.take(2)
    dist_ds = strat.experimental_distribute_dataset(ds)
    optimizer = model.optimizer

    @tf.function
    def train_step(batch: Any) -> Any:
        def replica_step(audio: Any, labels: Any) -> Any:
            with tf.GradientTape() as tape:
                values = model.compute_losses(audio, labels, training=True)
                loss = tf.reduce_sum(values["loss"]) / float(global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            grads, _ = tf.clip_by_global_norm(grads, 5.0)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        per_replica = strat.run(replica_step, args=batch)
        return strat.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    @tf.function
    def agree(flag: Any) -> Any:
        """The sum of every replica's flag (> 0 when any worker wants to stop)."""
        per_replica = strat.run(lambda f: tf.identity(f), args=(flag,))
        return strat.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    val_ds = (
        make_dataset(val_arrays, cfg.batch_size, shuffle=False)
        if val_arrays is not None and len(val_arrays.labels)
        else None
    )
    if smoke_test and val_ds is not None:
        val_ds = val_ds.take(1)
    counter = getattr(model, "step_counter", None)
    history: dict[str, list[float]] = {"loss": [], "val_loss": []}
    started = time.monotonic()
    trained_before = float(state["train_seconds"])
    stop_reason = "epochs"
    for epoch in range(int(state["epoch"]), cfg.epochs):
        total, steps = 0.0, 0
        progress = keras.utils.Progbar(
            None, verbose=1 if chief and verbose == 1 else 0, unit_name="step"
        )
        for batch in dist_ds:
            loss = float(train_step(batch))
            if counter is not None:
                counter.assign_add(1.0)
            total += loss
            steps += 1
            progress.update(steps, [("loss", loss)])
        train_loss = total / max(steps, 1)
        val_loss = float("nan")
        if val_ds is not None:
            vals = [
                float(tf.reduce_mean(model.compute_losses(a, b, training=False)["loss"]))
                for a, b in val_ds
            ]
            val_loss = float(np.mean(vals))
        history["loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        monitored = val_loss if np.isfinite(val_loss) else train_loss
        if monitored < state["best"]:
            state.update(best=monitored, best_epoch=epoch + 1, wait=0)
            model.save_weights(str(out_dir / "best.weights.h5"))
        else:
            state["wait"] += 1
        elapsed = trained_before + time.monotonic() - started
        state.update(epoch=epoch + 1, train_seconds=elapsed)
        model.save_weights(str(ckpt / "last.weights.h5"))
        save_optimizer_state(model, ckpt / "optimizer.npz")
        (ckpt / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        logger.info(
            "epoch %d: loss %.4f, val_loss %.4f, %d steps x %d replicas; %.1f min",
            epoch + 1,
            train_loss,
            val_loss,
            steps,
            replicas,
            elapsed / 60.0,
        )
        if chief:
            with (out_dir / "history.csv").open("a") as f:
                f.write(f"{epoch},{train_loss},{val_loss}\n")
        stop = 0.0
        if state["wait"] >= cfg.patience:
            stop, stop_reason = 1.0, "early stopping"
        elif cfg.max_minutes > 0 and elapsed >= cfg.max_minutes * 60.0:
            stop, stop_reason = 1.0, "time budget reached"
        if float(agree(tf.constant(stop if chief else 0.0))) > 0.0:
            if not chief:
                stop_reason = "stopped by the chief"
            break
    if not (out_dir / "best.weights.h5").exists():
        model.save_weights(str(out_dir / "best.weights.h5"))
    if chief:
        (out_dir / "summary.json").write_text(
            json.dumps(
                {
                    "kind": cfg.kind,
                    "epochs_done": state["epoch"],
                    "best_val_loss": state["best"],
                    "train_minutes": state["train_seconds"] / 60.0,
                    "stop_reason": stop_reason,
                    "strategy": strategy,
                    "replicas": replicas,
                    "config_hash": cfg.hash(),
                },
                indent=2,
            )
            + "\n"
        )
    return RunResult(
        out_dir,
        int(state["epoch"]),
        float(state["best"]),
        float(state["train_seconds"]),
        stop_reason,
        history,
    )
