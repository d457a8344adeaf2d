"""``dkvae-train``: a bank and a config in, a run folder out.

The run folder's files are listed in :mod:`.run_folder`. Training stops at ``epochs``, on early
stopping, or when ``max_minutes`` of training (summed over resumes) have passed; there is no
time budget unless one is set. Ctrl-C stops it too: the last finished epoch stays for
``--resume``. ``--pack`` and ``--unpack`` carry a run's resume state to another machine in one
small file (:mod:`.resume_file`). ``--strategy`` trains ``vae`` and ``seed_vae`` with
``tf.distribute`` (:mod:`.distributed`); ``cgan`` and ``ddsp`` train only without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .config import MODEL_KINDS, TrainConfig, load_config, make_config, save_config
from .data import Arrays, load_arrays, synthetic_arrays, training_datasets
from .resume_file import pack, unpack
from .run_folder import (
    BEST_WEIGHTS,
    CONFIG,
    RUN_INFO,
    STATE,
    TENSORBOARD_DIR,
    TRAIN_LOG,
    RunFolder,
    RunResult,
    exit_status,
    fork_run,
    interrupted_message,
    monitored_metric,
    read_state,
    restore_checkpoint,
    start_run,
    stop_on_sigterm,
    stopped_by,
    write_json,
)

logger = logging.getLogger(__name__)


def train(
    cfg: TrainConfig,
    run_dir: Path,
    train_arrays: Arrays,
    val_arrays: Arrays | None,
    *,
    resume: bool = False,
    smoke_test: bool = False,
    verbose: int | str = 1,
) -> RunResult:
    """Train ``cfg`` into ``run_dir`` with Keras ``fit`` (with ``resume``: continue the run
    saved there)."""
    import keras
    import tensorflow as tf

    from .models import build_model

    run_dir = Path(run_dir)
    if smoke_test:
        cfg = dataclasses.replace(cfg, epochs=min(cfg.epochs, 2), max_minutes=0.0)
    state = start_run(run_dir, cfg, resume=resume)
    keras.utils.set_random_seed(cfg.seed + int(state["epoch"]))

    model = build_model(cfg)
    lr = float(state.get("learning_rate", cfg.learning_rate))
    model.compile(optimizer=keras.optimizers.Adam(lr, beta_1=0.5 if cfg.kind == "cgan" else 0.9))
    if resume:
        restore_checkpoint(model, run_dir, state)
    logger.info(
        "model %s: %d parameters (decoder %d)",
        cfg.kind,
        model.count_params(),
        model.decoder.count_params(),
    )
    train_ds, val_ds = training_datasets(
        cfg, train_arrays, val_arrays, batch_size=cfg.batch_size, smoke_test=smoke_test
    )
    monitor = monitored_metric(cfg, validation=val_ds is not None)
    book = RunFolder(run_dir, cfg, state, monitor)
    callbacks = [
        book.callback(),
        keras.callbacks.TensorBoard(str(run_dir / TENSORBOARD_DIR), write_graph=False),
    ]
    if cfg.kind != "cgan":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                mode="min",
                factor=0.5,
                patience=max(3, cfg.patience // 4),
                min_lr=cfg.min_learning_rate,
                verbose=0,
            )
        )
    history: dict[str, list[float]] = {}
    if int(state["epoch"]) < cfg.epochs:
        tf.config.run_functions_eagerly(False)
        try:
            hist = model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=cfg.epochs,
                initial_epoch=int(state["epoch"]),
                callbacks=callbacks,
                verbose=verbose,
            )
        except KeyboardInterrupt as stop:
            if (run_dir / BEST_WEIGHTS).exists():  # an epoch ended: its summary, as for any stop
                # the state --resume finds: the stop may have cut an epoch's bookkeeping short
                book.state = read_state(run_dir)
                epoch = book.state["epoch"]
                book.stop_reason = f"stopped by {stopped_by(stop)} after epoch {epoch}"
                book.finish(model, {})
            raise
        history = {k: [float(x) for x in v] for k, v in hist.history.items()}
    else:
        book.stop_reason = f"already trained {state['epoch']} of {cfg.epochs} epochs"
    return book.finish(model, history)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are parsed as JSON when they can be (numbers, lists)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dkvae-train", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="run folder to create (or to continue with --resume)")
    p.add_argument("--config", choices=MODEL_KINDS, default="vae", help="model kind (default vae)")
    p.add_argument("--bank", type=Path, help="bank folder (see dkvae-bank)")
    p.add_argument("--cache-dir", type=Path, help="where the bank loader caches cleaned audio")
    p.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="train on N generated sounds per class instead of a bank (development)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config setting (repeatable), e.g. --set latent_size=16",
    )
    p.add_argument("--epochs", type=int, help="shorthand for --set epochs=N")
    p.add_argument("--max-minutes", type=float, help="shorthand for --set max_minutes=M")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    p.add_argument(
        "--fork",
        type=Path,
        metavar="RUN",
        help="start RUN_DIR from RUN's best epoch and go on as --resume (with --set changes)",
    )
    p.add_argument(
        "--pack",
        type=Path,
        metavar="FILE",
        help="write RUN_DIR's resume state to FILE, small enough to commit, and stop",
    )
    p.add_argument(
        "--unpack",
        type=Path,
        metavar="FILE",
        help="make RUN_DIR from the resume FILE (--pack) and go on as --resume",
    )
    p.add_argument("--smoke-test", action="store_true", help="train 2 epochs of 2 steps")
    p.add_argument(
        "--strategy",
        choices=("none", "mirrored", "multiworker"),
        default="none",
        help="tf.distribute strategy (custom training loop; vae and seed_vae)",
    )
    p.add_argument("--workers", help="multiworker: comma-separated host:port of every worker")
    p.add_argument("--worker-index", type=int, default=0, help="multiworker: this worker's index")
    p.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Keras progress display: 1 bar, 2 one line per epoch (for log files)",
    )
    return p


def resumed_settings(
    run_dir: Path, overrides: dict[str, Any]
) -> tuple[TrainConfig, dict[str, Any]]:
    """The config and ``run.json`` of a run to resume, with ``overrides`` applied. A resumed run
    may change settings (more epochs, a loss weight); the change is recorded in ``run.json`` so
    the run can be reproduced."""
    cfg = load_config(run_dir / CONFIG)
    source: dict[str, Any] = json.loads((run_dir / RUN_INFO).read_text())
    if not overrides:
        return cfg, source
    settings = dataclasses.asdict(cfg)
    settings.pop("kind")
    cfg = make_config(cfg.kind, **{**settings, **overrides})
    state = json.loads((run_dir / STATE).read_text())
    source.setdefault("resumes", []).append(
        {"at_epoch": state["epoch"], "overrides": overrides, "command": sys.argv}
    )
    if "learning_rate" in overrides:
        # the saved rate (lowered on plateaus) is what a resume trains at; an explicit one wins
        state.update(learning_rate=float(overrides["learning_rate"]), wait=0)
    if set(overrides) - {"epochs", "max_minutes", "patience", "snapshot_minutes", "learning_rate"}:
        # the objective changed: earlier validation losses are not comparable
        state.update(best=float("inf"), wait=0)
    write_json(run_dir / STATE, state)
    write_json(run_dir / RUN_INFO, source)
    save_config(cfg, run_dir / CONFIG)
    logger.info("resuming with changed settings: %s", overrides)
    return cfg, source


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop_on_sigterm()
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(run_dir / TRAIN_LOG)],
        force=True,
    )
    try:
        overrides = parse_overrides(args.set)
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        if args.max_minutes is not None:
            overrides["max_minutes"] = args.max_minutes
        if args.pack is not None:
            pack(run_dir, args.pack)
            return 0
        if args.fork is not None or args.unpack is not None:
            if args.resume or args.bank or args.synthetic or (args.fork and args.unpack):
                raise ValueError(
                    "--fork and --unpack take the bank and settings from the run they start from"
                )
            if args.fork is not None:
                fork_run(args.fork, run_dir, sys.argv)
            else:
                unpack(args.unpack, run_dir)
            args.resume = True
        if args.resume:
            cfg, source = resumed_settings(run_dir, overrides)
            bank = Path(source["bank"]) if source.get("bank") else None
            synthetic: int | None = source.get("synthetic")
            cache_dir = Path(source["cache_dir"]) if source.get("cache_dir") else None
        else:
            cfg = make_config(args.config, **overrides)
            bank, synthetic, cache_dir = args.bank, args.synthetic, args.cache_dir
            if (bank is None) == (synthetic is None):
                raise ValueError("give exactly one of --bank or --synthetic")
        if bank is not None:
            train_arrays = load_arrays(bank, "train", cfg, cache_dir)
            val_arrays: Arrays | None = load_arrays(bank, "validation", cfg, cache_dir)
            cfg = dataclasses.replace(cfg, class_names=train_arrays.class_names)
        elif synthetic is not None:
            train_arrays = synthetic_arrays(int(synthetic), cfg, seed=cfg.seed)
            val_arrays = synthetic_arrays(max(1, int(synthetic) // 4), cfg, seed=cfg.seed + 1)
        else:
            raise ValueError(f"{run_dir / RUN_INFO} names neither a bank nor synthetic sounds")
        if not args.resume:
            source = {
                "bank": str(bank.resolve()) if bank else None,
                "synthetic": synthetic,
                "cache_dir": str(cache_dir.resolve()) if cache_dir else None,
                "train_sounds": len(train_arrays.labels),
                "validation_sounds": len(val_arrays.labels) if val_arrays else 0,
                "command": sys.argv,
                "strategy": args.strategy,
            }
            write_json(run_dir / RUN_INFO, source)
        logger.info(
            "%s: %d training / %d validation sounds, classes %s",
            cfg.kind,
            len(train_arrays.labels),
            len(val_arrays.labels) if val_arrays else 0,
            list(cfg.class_names),
        )
        logger.info(
            "stops after epoch %d, after %d epochs without a better %s, or %s; "
            "Ctrl-C stops it keeping the last finished epoch for --resume",
            cfg.epochs,
            cfg.patience,
            monitored_metric(cfg, validation=val_arrays is not None),
            f"after {cfg.max_minutes:g} min of training"
            if cfg.max_minutes > 0
            else "never on time (no budget: --max-minutes M sets one)",
        )
        loop: Any = train
        if args.strategy != "none":
            from .distributed import train_distributed

            loop = functools.partial(
                train_distributed,
                strategy=args.strategy,
                workers=args.workers,
                worker_index=args.worker_index,
            )
        loop(
            cfg,
            run_dir,
            train_arrays,
            val_arrays,
            resume=args.resume,
            smoke_test=args.smoke_test,
            verbose=args.verbose,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        logger.error("%s", exc)
        return 2
    except KeyboardInterrupt as stop:
        logger.warning("%s", interrupted_message(run_dir, stopped_by(stop)))
        return exit_status(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
