"""Distributed training with ``tf.distribute``: mirrored (one host's devices) or multi-worker.

Keras 3 ``fit`` fails under ``MultiWorkerMirroredStrategy`` ("Attempt to convert a value
(PerReplica...) to a Tensor", keras-team/keras#20585), so this is a custom loop: model and
optimizer built under ``strategy.scope()``, ``experimental_distribute_dataset``, a
``tf.function`` step that runs ``strategy.run`` with a GradientTape and scales the loss by the
global batch size. The run folder is kept by :mod:`.run_folder`, as ``dkvae-train`` without a
strategy keeps it, so export, evaluation and ``--resume`` work on it unchanged.

Multi-worker: start one process per worker with the same ``--workers host:port,...`` list and
its own ``--worker-index``; each builds ``TF_CONFIG`` from them. Worker 0, the chief, writes the
run folder; every other worker writes only its ``train.log`` and ``run.json`` into the run folder
it is given, and its (identical) checkpoints into a temporary folder removed when it ends. Stop
decisions (early stopping, time budget) are taken by the chief and shared with an all-reduce so
workers never diverge. A multi-worker run is resumed without ``--strategy`` (or with
``mirrored``): the other workers could not read the chief's checkpoint.

    dkvae-train RUN --bank B --strategy multiworker --workers 127.0.0.1:23456,127.0.0.1:23457 \\
        --worker-index 0 &
    dkvae-train RUN-w1 --bank B --strategy multiworker \\
        --workers 127.0.0.1:23456,127.0.0.1:23457 --worker-index 1
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig
from .data import Arrays, training_datasets
from .run_folder import (
    TENSORBOARD_DIR,
    RunFolder,
    RunResult,
    monitored_metric,
    restore_checkpoint,
    start_run,
)

logger = logging.getLogger(__name__)

DISTRIBUTED_KINDS = ("vae", "seed_vae")


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
    verbose: int | str = 1,
) -> RunResult:
    """Train ``cfg`` (``vae`` or ``seed_vae``) with a custom loop under a distribution strategy."""
    if cfg.kind not in DISTRIBUTED_KINDS:
        raise ValueError(
            f"--strategy trains {' and '.join(DISTRIBUTED_KINDS)}, not {cfg.kind}: "
            "train it without --strategy"
        )
    if resume and strategy == "multiworker":
        raise ValueError(
            "a multi-worker run resumes without --strategy (or with --strategy mirrored)"
        )
    if smoke_test:
        cfg = dataclasses.replace(cfg, epochs=min(cfg.epochs, 2), max_minutes=0.0)
    strat = make_strategy(strategy, workers, worker_index)
    train = functools.partial(
        _train, cfg, train_arrays, val_arrays, strat, strategy, smoke_test=smoke_test
    )
    if worker_index == 0:
        return train(Path(run_dir), chief=True, resume=resume, verbose=verbose)
    # the other workers save the same checkpoints as the chief (every worker runs the same
    # operations) into a folder of their own that goes when they end
    with tempfile.TemporaryDirectory(prefix="dkvae-worker-") as scratch:
        result = train(Path(scratch), chief=False, resume=False, verbose=0)
    return dataclasses.replace(result, run_dir=Path(run_dir))


def _train(
    cfg: TrainConfig,
    train_arrays: Arrays,
    val_arrays: Arrays | None,
    strat: Any,
    strategy: str,
    out_dir: Path,
    *,
    chief: bool,
    resume: bool,
    smoke_test: bool,
    verbose: int | str,
) -> RunResult:
    """The custom loop of one worker, writing its run folder ``out_dir``."""
    import keras
    import tensorflow as tf

    from .models import build_model
    from .vae_base import GRADIENT_CLIP_NORM

    state = start_run(out_dir, cfg, resume=resume)
    keras.utils.set_random_seed(cfg.seed + int(state["epoch"]))
    with strat.scope():
        model = build_model(cfg)
        lr = float(state.get("learning_rate", cfg.learning_rate))
        model.compile(optimizer=keras.optimizers.Adam(lr))
        model.optimizer.build(model.trainable_variables)
        if resume:
            restore_checkpoint(model, out_dir, state)
    replicas = strat.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    logger.info(
        "%s strategy: %d replicas in sync, global batch %d", strategy, replicas, global_batch
    )
    train_ds, val_ds = training_datasets(
        cfg,
        train_arrays,
        val_arrays,
        batch_size=global_batch,
        drop_remainder=True,
        smoke_test=smoke_test,
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dist_ds = strat.experimental_distribute_dataset(train_ds.with_options(options))
    optimizer = model.optimizer

    @tf.function
    def train_step(batch: Any) -> Any:
        def replica_step(audio: Any, labels: Any) -> Any:
            with tf.GradientTape() as tape:
                values = model.compute_losses(audio, labels, training=True)
                loss = tf.reduce_sum(values["loss"]) / float(global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            grads, _ = tf.clip_by_global_norm(grads, GRADIENT_CLIP_NORM)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            # each loss's share of the global batch mean; summed over replicas below
            return {k: tf.reduce_sum(v) / float(global_batch) for k, v in values.items()}

        per_replica = strat.run(replica_step, args=batch)
        return {
            k: strat.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()
        }

    @tf.function
    def agree(flag: Any) -> Any:
        """The sum of every replica's flag (> 0 when any worker wants to stop)."""
        per_replica = strat.run(lambda f: tf.identity(f), args=(flag,))
        return strat.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    book = RunFolder(out_dir, cfg, state, monitored_metric(cfg, validation=val_ds is not None))
    callbacks = keras.callbacks.CallbackList(
        [
            book.callback(),
            keras.callbacks.TensorBoard(str(out_dir / TENSORBOARD_DIR), write_graph=False),
        ],
        model=model,
    )
    counter = getattr(model, "step_counter", None)
    history: dict[str, list[float]] = defaultdict(list)
    callbacks.on_train_begin()
    for epoch in range(int(state["epoch"]), cfg.epochs):
        callbacks.on_epoch_begin(epoch)
        sums: dict[str, float] = defaultdict(float)
        steps = 0
        progress = keras.utils.Progbar(None, verbose=1 if verbose == 1 else 0, unit_name="step")
        for batch in dist_ds:
            values = train_step(batch)
            if counter is not None:
                counter.assign_add(1.0)
            for k, v in values.items():
                sums[k] += float(v)
            steps += 1
            progress.update(steps, [("loss", float(values["loss"]))])
        # as Keras fit reports them: means over the epoch's batches
        logs = {k: v / max(steps, 1) for k, v in sums.items()}
        if val_ds is not None:
            val: dict[str, list[float]] = defaultdict(list)
            for audio, labels in val_ds:
                for k, v in model.compute_losses(audio, labels, training=False).items():
                    val[k].append(float(tf.reduce_mean(v)))
            logs.update({f"val_{k}": float(np.mean(v)) for k, v in val.items()})
        for k, v in logs.items():
            history[k].append(v)
        logger.info(
            "epoch %d: loss %.4f, val_loss %.4f, %d steps x %d replicas",
            epoch + 1,
            logs["loss"],
            logs.get("val_loss", float("nan")),
            steps,
            replicas,
        )
        callbacks.on_epoch_end(epoch, logs)
        if float(agree(tf.constant(1.0 if chief and book.stop else 0.0))) > 0.0:
            if not chief:
                book.stop_reason = "stopped by the chief"
            break
    callbacks.on_train_end()
    return book.finish(model, dict(history), strategy=strategy, replicas=replicas)
