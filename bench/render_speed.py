"""Render speed of each shipped model on one core: one hit, a kit's worth of pads, a velocity-layer
set; as milliseconds and as real-time factor (seconds of audio rendered per second of work).

Method: the process is pinned to one CPU. Two measurements per model:
- the decoder alone, through bench/bench_model.py (onnxruntime, 1 intra-op and 1 inter-op
  thread, as the daemon's render worker runs it): batch 1 and 8 as that script times them, and
  here also a batch of one kit's pads (the shipped default kit's pad count) and of one
  velocity-layer set (dkvae_live.renderer.VELOCITY_LAYERS latents);
- the daemon's whole render path for the same batches: `Decoder.render` (a spectrogram model's
  phase included, made up to where the sound falls under the worker's floor) and
  `prepare_sound` for each sound (resample to 48 kHz, check, trim), what the render worker
  does before a sound can be played; in full and as a draft (the first sound of
  a changed pad: a spectrogram model's phase unrefined, the same as in full otherwise);
- `prepare_sound` alone, per sound, over a kit's worth of different rendered sounds (issue 21:
  it cost as much as the decoder).
The models are every folder in dkvae_live/models/ with a decoder.onnx; with none shipped yet,
the sine test model stands in (and the output says so).

    .venv/bin/python bench/render_speed.py [MODEL_DIR ...] [--renders 200] [--json F]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the daemon; before numpy loads

import bench_model
import numpy as np
from common import RESULTS, conditions, shipped_models, sine_model, table, write_json

from dkvae_live.kit import DEFAULT_KIT, load_kit
from dkvae_live.model import Decoder
from dkvae_live.renderer import SILENCE, VELOCITY_LAYERS, prepare_sound

DEVICE_RATE = 48000


def pin_to_one_core() -> int:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    return cpus[-1]


def kit_size(decoder: Decoder) -> int:
    try:
        kit = load_kit(DEFAULT_KIT, decoder.info.class_names, decoder.info.latent_size)
        return len(kit.pads)
    except Exception:  # the shipped kit may not fit this model: the GM map's size then
        from dkvae_live.pads import default_pads

        return len(default_pads(decoder.info.class_names, decoder.info.latent_size))


def time_batches(model_dir: Path, renders: int, batches: dict[str, int]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    decoder = Decoder(model_dir)
    info = decoder.info
    session = bench_model.session(decoder.path)
    out_name = session.get_outputs()[0].name
    hit_seconds = info.num_samples / info.sample_rate
    result: dict[str, Any] = {}
    for label, batch in batches.items():
        z = rng.standard_normal((batch, info.latent_size)).astype(np.float32)
        classes = (np.arange(batch) % len(info.class_names)).astype(np.int64)
        n = max(20, renders // batch)
        onnx_ms = bench_model.time_runs(
            lambda z=z, c=classes: session.run([out_name], {"z": z, "class_index": c}), n, 5
        )

        def full(z: np.ndarray = z, c: np.ndarray = classes, draft: bool = False) -> None:
            for raw in decoder.render(z, c, draft=draft, floor=SILENCE):
                prepare_sound(raw, info.sample_rate, DEVICE_RATE)

        full_ms = bench_model.time_runs(full, max(10, n // 2), 3)
        draft_ms = bench_model.time_runs(lambda: full(draft=True), max(10, n // 2), 3)
        audio_s = batch * hit_seconds
        result[label] = {
            "batch": batch,
            "decoder": bench_model.summary(onnx_ms),
            "daemon_path": bench_model.summary(full_ms),
            "daemon_path_draft": bench_model.summary(draft_ms),
            "rtf_decoder": audio_s / (np.median(onnx_ms) / 1000),
            "rtf_daemon_path": audio_s / (np.median(full_ms) / 1000),
        }
    return result


def time_prepare(model_dir: Path, sounds: int, renders: int) -> dict[str, float]:
    """`prepare_sound` per sound (DC block, resample to DEVICE_RATE, check, trim), cycling
    through `sounds` different renders of the model."""
    decoder = Decoder(model_dir)
    info = decoder.info
    rng = np.random.default_rng(1)
    z = rng.standard_normal((sounds, info.latent_size)).astype(np.float32)
    classes = (np.arange(sounds) % len(info.class_names)).astype(np.int64)
    raw = decoder.render(z, classes, floor=SILENCE)
    index = iter(range(1 << 30))

    def one() -> None:
        prepare_sound(raw[next(index) % sounds], info.sample_rate, DEVICE_RATE)

    return bench_model.summary(bench_model.time_runs(one, max(100, renders), 20))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--json", type=Path, default=RESULTS / "render_speed.json")
    args = parser.parse_args()
    cpu = pin_to_one_core()
    cond = conditions(pinned_cpu=cpu, onnx_threads=1)
    started = time.monotonic()
    out: dict[str, Any] = {"models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        models = [(m, str(m)) for m in args.models] or [
            (m, f"shipped {m.name}") for m in shipped_models()
        ]
        if not models:
            models = [(sine_model(Path(tmp)), "sine test model (no shipped model yet)")]
        for model_dir, label in models:
            print(f"timing {label} ({model_dir})", flush=True)
            decoder = Decoder(model_dir)
            info = decoder.info
            batches = {
                "one hit": 1,
                f"kit ({kit_size(decoder)} pads)": kit_size(decoder),
                f"velocity layers ({VELOCITY_LAYERS})": VELOCITY_LAYERS,
            }
            out["models"][label] = {
                "path": str(model_dir),
                "sample_rate": info.sample_rate,
                "num_samples": info.num_samples,
                "output_kind": info.output_kind,
                "bench_model": bench_model.bench(model_dir, args.renders),
                "batches": time_batches(model_dir, args.renders, batches),
                "prepare_sound": time_prepare(model_dir, kit_size(decoder), args.renders),
            }
    out["conditions"] = {**cond, "seconds": round(time.monotonic() - started, 1)}
    print_result(out)
    write_json(args.json, out)
    return 0


def print_result(out: dict[str, Any]) -> None:
    c = out["conditions"]
    print(
        f"\nRender speed on one core (CPU {c['pinned_cpu']}, onnxruntime 1 thread); "
        f"load {c['load_average_1_5_15']}"
    )
    rows = []
    for label, m in out["models"].items():
        for batch_label, b in m["batches"].items():
            d, p, q = b["decoder"], b["daemon_path"], b["daemon_path_draft"]
            rows.append(
                [
                    f"{label}: {batch_label}",
                    f"{d['median_ms']:.2f}",
                    f"{d['p99_ms']:.2f}",
                    f"{d['max_ms']:.2f}",
                    f"{b['rtf_decoder']:.0f}x",
                    f"{p['median_ms']:.2f}",
                    f"{p['p99_ms']:.2f}",
                    f"{b['rtf_daemon_path']:.0f}x",
                    f"{q['median_ms']:.2f}",
                    f"{q['p99_ms']:.2f}",
                ]
            )
    print(
        table(
            [
                "",
                "decoder median ms",
                "p99",
                "max",
                "RTF",
                "daemon path median ms",
                "p99",
                "RTF",
                "draft median ms",
                "p99",
            ],
            rows,
        )
    )
    for label, m in out["models"].items():
        p = m["prepare_sound"]
        print(
            f"{label}: prepare_sound per sound ({m['sample_rate']} -> {DEVICE_RATE} Hz): "
            f"median {p['median_ms']:.3f} ms, p99 {p['p99_ms']:.3f} ms"
        )


if __name__ == "__main__":
    sys.exit(main())
