"""Render time of an ONNX model on one CPU thread: median and p99 over N renders of one 1 s hit.

onnxruntime with intra_op_num_threads=1 and inter_op_num_threads=1 (the daemon's render worker
runs the same way). Random latents and classes, batch 1; 50 warm-up renders are not counted.
The encoder (when the model folder has one) is timed the same way on one 1 s sound, and a batch
of 8 renders (velocity layers) is timed too.

    .venv/bin/python bench/bench_model.py [MODEL_DIR] [--renders 1000] [--json out.json]

MODEL_DIR defaults to the shipped model, dkvae_live/models/default.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "dkvae_live" / "models" / "default"


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def time_runs(run: Any, renders: int, warmup: int = 50) -> np.ndarray:
    """Milliseconds per call of ``run()`` over ``renders`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    times = np.empty(renders)
    for i in range(renders):
        start = time.perf_counter()
        run()
        times[i] = time.perf_counter() - start
    return times * 1e3


def summary(times_ms: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": float(np.median(times_ms)),
        "p99_ms": float(np.percentile(times_ms, 99)),
        "mean_ms": float(np.mean(times_ms)),
        "max_ms": float(np.max(times_ms)),
    }


def bench(model_dir: Path, renders: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Timings of ``model_dir``'s decoder (batch 1 and 8) and encoder (if present)."""
    rng = np.random.default_rng(seed)
    dec = session(model_dir / "decoder.onnx")
    meta = dec.get_modelmeta().custom_metadata_map
    latent = int(meta["dkvae.latent_size"])
    classes = len(json.loads(meta["dkvae.class_names"]))
    num_samples = int(meta["dkvae.num_samples"])
    out_name = dec.get_outputs()[0].name
    feeds = [
        {
            "z": rng.standard_normal((1, latent)).astype(np.float32),
            "class_index": np.array([rng.integers(classes)], np.int64),
        }
        for _ in range(16)
    ]
    counter = iter(range(10**9))

    def render() -> None:
        dec.run([out_name], feeds[next(counter) % len(feeds)])

    result: dict[str, Any] = {
        "model": str(model_dir),
        "renders": renders,
        "num_samples": num_samples,
        "sample_rate": int(meta["dkvae.sample_rate"]),
        "output_kind": meta["dkvae.output_kind"],
        "onnxruntime": ort.__version__,
        "machine": platform.processor() or platform.machine(),
        "decoder": summary(time_runs(render, renders)),
    }
    batch8 = {
        "z": rng.standard_normal((8, latent)).astype(np.float32),
        "class_index": (np.arange(8) % classes).astype(np.int64),
    }
    result["decoder_batch8"] = summary(
        time_runs(lambda: dec.run([out_name], batch8), max(50, renders // 10))
    )
    enc_path = model_dir / "encoder.onnx"
    if enc_path.exists():
        enc = session(enc_path)
        audio = (rng.standard_normal((1, num_samples)) * 0.1).astype(np.float32)
        result["encoder"] = summary(
            time_runs(lambda: enc.run(["z_mean"], {"audio": audio}), max(50, renders // 10))
        )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model_dir", nargs="?", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--renders", type=int, default=1000)
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    result = bench(args.model_dir, args.renders)
    d = result["decoder"]
    print(
        f"decoder {args.model_dir}: one {result['num_samples']}-sample hit, 1 thread, "
        f"{args.renders} renders: median {d['median_ms']:.3f} ms, p99 {d['p99_ms']:.3f} ms"
    )
    b = result["decoder_batch8"]
    print(f"decoder batch of 8: median {b['median_ms']:.3f} ms, p99 {b['p99_ms']:.3f} ms")
    if "encoder" in result:
        e = result["encoder"]
        print(f"encoder: one 1 s sound: median {e['median_ms']:.3f} ms, p99 {e['p99_ms']:.3f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
