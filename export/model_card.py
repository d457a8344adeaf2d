"""Write ``MODEL_CARD.md`` for an exported model from what its run folder and evaluations say.

    python -m dkvae_export.model_card RUN_DIR MODEL_DIR --eval EVAL_DIR/metrics.json \\
        [--baseline NAME=metrics.json ...] [--bench bench.json] [--command "..."] [--notes notes.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dkvae_training.bank import kits_markdown, read_manifest
from dkvae_training.licences import (
    COMPATIBLE_WITH_WEIGHTS,
    WEIGHTS_LICENCE,
    compatible_with_weights,
)

from dkvae_live.contract import MODEL_CARD_FILE


def split_counts(bank: Path) -> Counter[str]:
    """Sounds per split from a bank's ``manifest.csv``."""
    with (bank / "manifest.csv").open(newline="") as f:
        return Counter(row.get("split", "?") for row in csv.DictReader(f))


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def evaluation_section(metrics: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> list[str]:
    """Issue 18's four measures for this model and the others it was measured against (the
    bake-off), from ``dkvae-eval``'s ``metrics.json``, then this model's per class."""
    lines = [
        "## Evaluation (`dkvae-eval`, test split: kits no training sound came from)",
        "",
        "| model | 1 mel distance (dB) | 2 yardstick on real | 3 generated recognised "
        "| 3 worst class | 4 Frechet ratio | 4 spread | LSD (dB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in {"this model": metrics, **baselines}.items():
        generated = m.get("generated_class_latents", {})
        worst = min(generated.get("per_class", {}).items(), key=lambda kv: kv[1], default=None)
        realism = m.get("realism", {})
        lines.append(
            f"| {name} | {_fmt(m.get('mel_distance_db'))} "
            f"| {_pct(m.get('yardstick', {}).get('accuracy'))} "
            f"| {_pct(generated.get('accuracy'))} "
            f"| {'-' if worst is None else f'{worst[0]} {100 * worst[1]:.0f} %'} "
            f"| {_fmt(realism.get('frechet_ratio'))} | {_pct(realism.get('spread_ratio'))} "
            f"| {_fmt(m.get('lsd_db'))} |"
        )
    targets = metrics.get("targets", {})
    if targets:
        lines += [
            "",
            "Targets for this model: "
            + "; ".join(
                f"{k} {t['target']}: {'met' if t['met'] else 'MISSED'}" for k, t in targets.items()
            )
            + ".",
        ]
    references = metrics.get("mel_distance_references", {})
    if references:
        lines += [
            "",
            "Mel distance of resyntheses from exact STFT magnitudes with random phases, on the "
            "same sounds: " + ", ".join(f"{k} {v:.2f} dB" for k, v in references.items()) + ".",
        ]
    per_class = metrics.get("per_class", {})
    generated = metrics.get("generated_class_latents", {}).get("per_class", {})
    real = metrics.get("yardstick", {}).get("per_class", {})
    if per_class:
        lines += [
            "",
            "| class | test sounds | mel distance (dB) | yardstick on real "
            "| generated recognised |",
            "|---|---|---|---|---|",
        ]
        for name, m in per_class.items():
            lines.append(
                f"| {name} | {m.get('sounds', '-')} | {_fmt(m.get('mel_distance_db'))} "
                f"| {_pct(real.get(name))} | {_pct(generated.get(name))} |"
            )
    return lines


def licence_section(kit_licences: Iterable[tuple[str, str]] | None) -> list[str]:
    """The weights' licence (the project's decision, ``dkvae_training.licences``), and which of
    the training kits' licences (``(kit, licence)`` pairs; a kit may hold several) it cannot
    carry; None when the bank is not at hand."""
    lines = [
        "## Licence",
        "",
        f"The weights: {WEIGHTS_LICENCE}, with the attribution of the kits they were trained on "
        "(the kit table above). The code that plays them: MIT (LICENSE).",
        "",
        f"Training-sound licences {WEIGHTS_LICENCE} can carry: "
        + ", ".join(COMPATIBLE_WITH_WEIGHTS)
        + " (a Creative Commons port, such as CC-BY-SA-3.0-us, as its licence). "
        "`dkvae-bank build-default BANK --licences compatible` builds a bank of those only.",
    ]
    if kit_licences is None:
        return [
            *lines,
            "",
            "The training bank was not at hand: its kits' licences are not checked.",
        ]
    others: dict[str, set[str]] = defaultdict(set)
    for kit, licence in kit_licences:
        if not compatible_with_weights(licence):
            others[licence or "unknown"].add(kit)
    if not others:
        return [*lines, "", "Every training kit's licence is one of them."]
    return [
        *lines,
        "",
        f"This model was also trained on kits under licences {WEIGHTS_LICENCE} cannot carry: "
        + "; ".join(
            f"{lic} ({', '.join(sorted(kits, key=str.lower))})"
            for lic, kits in sorted(others.items())
        )
        + ". Whether trained weights are a derivative work of their data is not settled; if "
        "they are, those kits' terms apply too and conflict with "
        f"{WEIGHTS_LICENCE}. For a model that is {WEIGHTS_LICENCE} beyond that question, train "
        "on a bank built with `--licences compatible`.",
    ]


def shown_path(path: str | None) -> str:
    """A path as the card shows it: relative to the repository (or the working folder) where
    it lies inside one, else its last two parts; never the training machine's layout."""
    if not path:
        return "-"
    p = Path(path).resolve()
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        if p.is_relative_to(root):
            return str(p.relative_to(root))
    return str(Path(*p.parts[-2:]))


def design_lines(cfg: dict[str, Any]) -> list[str]:
    """The decoder and its loss, in the words of its design."""
    kl = f"KL x {cfg['kl_weight']} (warm-up {cfg['kl_warmup_steps']} steps)"
    if cfg["kind"] == "seed_vae":
        layers = (
            "1-D transposed convolutions over time, the frequency bins as channels"
            if cfg.get("spec_decoder") == "conv1d"
            else "2-D transposed convolutions"
        )
        mel_term = ""
        if mel_db := cfg.get("spec_mel_db_weight", 0.0):
            mel_term = f" + issue 18's mel distance (dB, on the decoded magnitudes) x {mel_db}"
        lines = [
            f"- decoder: log-magnitude STFT (n_fft {cfg['spec_n_fft']} / hop "
            f"{cfg['spec_hop_length']}) from {layers}"
            + (", conditioned on the class" if cfg.get("spec_conditional") else "")
            + "; the daemon gives it a phase (dkvae_live/phase.py)",
            f"- loss: log-spectrogram MSE{mel_term} + {kl}",
        ]
        if adversarial := cfg.get("adversarial_weight", 0.0):
            lines.append(
                f"- adversarial stage: the decoder alone (encoder frozen), its loss plus "
                f"{adversarial} x (hinge + feature matching) from discriminators on its log "
                f"magnitudes at {cfg.get('discriminator_scales', 3)} scales "
                "(training/adversarial.py)"
            )
        return lines
    return [
        f"- decoder: STFT n_fft {cfg['n_fft']} / hop {cfg['hop_length']} through a fixed "
        "inverse STFT, "
        + ("all bins" if cfg["max_frequency"] <= 0 else f"bins up to {cfg['max_frequency']:.0f} Hz")
        + f", phases predicted below {cfg.get('phase_max_frequency', 0):.0f} Hz, channels "
        f"{cfg['channels']}, low-band waveform head ({cfg['lowband_per_hop']} sample(s) per "
        "hop)",
        f"- loss: multi-resolution STFT (sizes {cfg['stft_sizes']}) x {cfg['mstft_weight']}"
        f" + seed log-spectrogram MSE x {cfg['log_mse_weight']} + low-band L1 x "
        f"{cfg['lowband_weight']} + {kl}",
    ]


def render_card(
    run_dir: Path,
    model_dir: Path,
    metrics: dict[str, Any],
    baselines: dict[str, dict[str, Any]],
    bench: dict[str, Any] | None,
    command: str,
    notes: str,
) -> str:
    cfg = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    source = json.loads((run_dir / "run.json").read_text())
    spectral = cfg["kind"] in ("seed_vae", "cgan")
    output = "`log_magnitude`" if spectral else "`audio`"
    lines = [f"# DK·VAE default model ({cfg['kind']}, config {summary['config_hash']})", ""]
    lines += [
        "A class-conditional VAE that renders 1 s drum one-shots at "
        f"{cfg['sample_rate']} Hz from a {cfg['latent_size']}-dimensional latent and a class "
        f"({', '.join(cfg['class_names'])}). Files: `decoder.onnx` (inputs `z`, `class_index`; "
        f"output {output}) and `encoder.onnx` (input `audio`; outputs `z_mean`, `z_log_var`), "
        "following docs/model-contract.md.",
        "",
    ]
    sizes = ", ".join(
        f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in sorted(model_dir.glob("*.onnx"))
    )
    lines += ["## Files", "", sizes, ""]
    if command:
        lines += ["## Reproduce", "", "```", command, "```", ""]
    lines += [
        "## Training",
        "",
        f"- bank: `{shown_path(source.get('bank'))}` ({source.get('train_sounds')} training / "
        f"{source.get('validation_sounds')} validation sounds)",
        f"- trained {summary['train_minutes']:.1f} min on this machine's 2 shared CPU "
        f"cores (nice 10, beside other work), {summary['epochs_done']} epochs of batch "
        f"{cfg['batch_size']}; stopped by: {summary['stop_reason']}; best "
        f"{summary.get('monitor', 'val_loss')} "
        f"{summary.get('best', summary.get('best_val_loss', float('nan'))):.4f} "
        f"at epoch {summary.get('best_epoch', '?')}",
        *design_lines(cfg),
        f"- Adam, learning rate {cfg['learning_rate']} (halved on plateaus), "
        f"gain augmentation {cfg['gain_augment_db']} dB"
        + (
            f", the training split played again at {cfg['pitch_augment_semitones']} semitones"
            if cfg.get("pitch_augment_semitones")
            else ""
        ),
        "",
    ]
    bank = Path(source["bank"]) if source.get("bank") else None
    if bank is not None and (bank / "manifest.csv").exists():
        splits = split_counts(bank)
        lines += [
            "## Training data: kits and licences",
            "",
            f"{sum(splits.values())} sounds ("
            + ", ".join(f"{k} {v}" for k, v in sorted(splits.items()))
            + "), from `dkvae-bank kits`:",
            "",
            kits_markdown(bank),
        ]
        lines += [""]
    kit_licences = None
    if bank is not None and (bank / "manifest.csv").exists():
        kit_licences = {(r.kit or "-", r.licence) for r in read_manifest(bank)}
    lines += [*licence_section(kit_licences), ""]
    lines += evaluation_section(metrics, baselines)
    lines += [""]
    if bench:
        d, e = bench["decoder"], bench.get("encoder")
        lines += [
            "## Speed (`bench/bench_model.py`, onnxruntime, 1 thread)",
            "",
            f"- decoder, one 1 s hit: median {d['median_ms']:.2f} ms, p99 "
            f"{d['p99_ms']:.2f} ms over {bench['renders']} renders",
            f"- decoder, batch of 8: median {bench['decoder_batch8']['median_ms']:.2f} ms",
        ]
        if e:
            lines.append(f"- encoder, one 1 s sound: median {e['median_ms']:.2f} ms")
        lines += [""]
    if notes:
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("model_dir", type=Path)
    p.add_argument("--eval", type=Path, required=True, help="metrics.json of dkvae-eval")
    p.add_argument("--baseline", action="append", default=[], metavar="NAME=METRICS_JSON")
    p.add_argument("--bench", type=Path)
    p.add_argument("--command", default="", help="the command that reproduces the model")
    p.add_argument("--notes", type=Path, help="Markdown appended (limits, licence notes)")
    args = p.parse_args(argv)
    baselines = {}
    for item in args.baseline:
        name, _, path = item.partition("=")
        baselines[name] = json.loads(Path(path).read_text())
    card = render_card(
        args.run_dir,
        args.model_dir,
        json.loads(args.eval.read_text()),
        baselines,
        json.loads(args.bench.read_text()) if args.bench else None,
        args.command,
        args.notes.read_text() if args.notes else "",
    )
    (args.model_dir / MODEL_CARD_FILE).write_text(card)
    print(f"wrote {args.model_dir / MODEL_CARD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
