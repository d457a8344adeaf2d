"""``dkvae-export RUN_FOLDER``: write a run's model as ONNX files the daemon can play."""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from dkvae_training.bank import BankError

from dkvae_live.model import ModelError

from .axes import REFINE_ROUNDS, REFINE_SOUNDS, add_axes_from_bank, copy_axes
from .class_latents import add_class_latents_from_bank
from .onnx_export import DEFAULT_TOLERANCE, ExportError, export_run

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dkvae-export", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="a run folder written by dkvae-train")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        help="folder for decoder.onnx / encoder.onnx (default RUN_FOLDER/export)",
    )
    p.add_argument("--name", help="model name stored in the metadata (default: the run's name)")
    p.add_argument(
        "--checkpoint",
        default="best",
        help="best, last, or a weights file inside the run folder (default best)",
    )
    p.add_argument(
        "--small",
        action="store_true",
        help="store weights as float16 (rounded before the parity check) and compute "
        "STFT bases at load time: files about half the size or less",
    )
    p.add_argument(
        "--bank",
        type=Path,
        help="fit the class latents on this bank's training split (default: the run's bank)",
    )
    p.add_argument(
        "--class-latents-only",
        action="store_true",
        help="RUN_FOLDER is an exported model folder: only fit its class latents "
        "(on --bank) and write them into its decoder.onnx",
    )
    p.add_argument(
        "--axes-only",
        action="store_true",
        help="RUN_FOLDER is an exported model folder: only fit its timbre axes "
        "(brightness, decay, pitch, punch; on --bank) and write them into its decoder.onnx",
    )
    p.add_argument(
        "--axes-from",
        type=Path,
        metavar="MODEL",
        help="RUN_FOLDER is an exported model folder with MODEL's encoder (its decoder trained "
        "on alone): give it MODEL's timbre axes",
    )
    p.add_argument(
        "--refine-rounds",
        type=int,
        default=REFINE_ROUNDS,
        metavar="N",
        help=f"with --axes-only: corrections of the fitted axes, the best kept (default "
        f"{REFINE_ROUNDS}; each about 150 s for six classes on 2 cores)",
    )
    p.add_argument(
        "--refine-sounds",
        type=int,
        default=REFINE_SOUNDS,
        metavar="N",
        help=f"with --axes-only: training sounds per class that each correction measures "
        f"(default {REFINE_SOUNDS}; the time grows with it)",
    )
    p.add_argument(
        "--no-axes",
        action="store_true",
        help="fit no timbre axes: the model plays without /dkvae/pad/axis (the axes can be "
        "added later with --axes-only)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"largest allowed |onnxruntime - keras| (default {DEFAULT_TOLERANCE:g})",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.class_latents_only:
        return _fit_only(
            args.run_dir,
            args.bank,
            "--class-latents-only",
            "class latents",
            add_class_latents_from_bank,
        )
    if args.axes_only:
        add_axes = functools.partial(
            add_axes_from_bank, rounds=args.refine_rounds, refine_sounds=args.refine_sounds
        )
        return _fit_only(args.run_dir, args.bank, "--axes-only", "axes", add_axes)
    if args.axes_from is not None:
        return _fit_only(args.run_dir, args.axes_from, "--axes-from", "axes", copy_axes)
    try:
        result = export_run(
            args.run_dir,
            args.out,
            name=args.name,
            tolerance=args.tolerance,
            checkpoint=args.checkpoint,
            small=args.small,
            bank=args.bank,
            axes=not args.no_axes,
        )
    except (ExportError, FileNotFoundError, BankError) as exc:
        logger.error("export failed: %s", exc)
        return 1
    print(f"decoder: {result.decoder_path} (parity {result.decoder_max_abs_diff:.2g})")
    if result.encoder_path is not None:
        print(f"encoder: {result.encoder_path} (parity {result.encoder_max_abs_diff:.2g})")
    return 0


def _fit_only(
    model_dir: Path,
    bank: Path | None,
    flag: str,
    what: str,
    add: Callable[[Path, Path], Mapping[str, object]],
) -> int:
    """``--class-latents-only`` / ``--axes-only`` / ``--axes-from``: write ``what`` into a model
    with ``add``, fitted on ``bank`` (for ``--axes-from``, the model to copy them from)."""
    if bank is None:
        logger.error("%s needs --bank", flag)
        return 2
    try:
        fitted = add(model_dir, bank)
    except (ModelError, BankError, FileNotFoundError) as exc:
        logger.error("%s not written: %s", what, exc)
        return 1
    print(f"{what} of {len(fitted)} classes written to {model_dir / 'decoder.onnx'}")
    return 0
