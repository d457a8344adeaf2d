"""Read a seed_vae model's Keras weights back from its exported ONNX files.

A shipped model keeps only its ONNX files; its run folder (the Keras weights that training goes
on from) stays on the machine that trained it. This makes a run folder again from the model's
``decoder.onnx`` and ``encoder.onnx`` and the settings it was trained with, so that
``dkvae-train --fork`` or ``--resume`` can go on from the shipped model. The weights are the
exported ones (float16 in a ``--small`` export), and there is no optimizer state: training goes
on with a new optimizer.

    python scripts/weights_from_onnx.py dkvae_live/models/default runs/r3e-onnx \\
        --epoch 39 --minutes 256.2 --set spec_conditional=true ...

Each ONNX weight is found by the Keras layer named in the graph around it (tf2onnx keeps the
names) and laid out as Keras wants it; the script then checks that the Keras decoder and encoder
compute what the ONNX files compute, and stops if they do not.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from dkvae_training import run_folder
from dkvae_training.config import make_config, save_config
from dkvae_training.train import parse_overrides
from onnx import numpy_helper

LAYER = re.compile(r"(?:encoder|decoder)_1/(\w+?)_1/")
# max |Keras - ONNX| over a decoder's log magnitudes / an encoder's latents
TOLERANCE = 1e-2


def _onnx_layout(keras_shape: tuple[int, ...], value: np.ndarray) -> np.ndarray:
    """An ONNX weight in Keras's layout. Convolutions: ONNX (out, in, [1,] k...) or, transposed,
    (in, out, 1, k); Keras (k..., in, out) or, transposed, (k, out, in)."""
    if value.ndim == 4 and value.shape[2] == 1 and len(keras_shape) == 3:  # 1-D conv as 2-D
        value = value[:, :, 0, :].transpose(2, 1, 0)
    elif value.ndim == 4:
        value = value.transpose(2, 3, 1, 0)
    return value.reshape(keras_shape)


def onnx_weights(path: Path) -> dict[tuple[str, str], np.ndarray]:
    """``(layer, "kernel" | "bias" | "embeddings") -> value`` of each learned weight in ``path``."""
    model = onnx.load(str(path))
    inits = {
        i.name: numpy_helper.to_array(i).astype(np.float32)
        for i in model.graph.initializer
        if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and i.dims
    }  # not shapes, indices or the scalars of a log
    casts = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Cast"}
    found: dict[tuple[str, str], np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Add", "Gather"):
            continue
        for k, used in enumerate(node.input):
            name = casts.get(used, used)
            if name not in inits:
                continue
            # the layer: in the weight's own name, else (a folded bias) in what its node makes
            where = LAYER.search(" ".join([used, *node.output]))
            if where is None:
                continue
            if node.op_type == "Gather":
                role = "embeddings"
            elif node.op_type == "Add" or k == 2:
                role = "bias"
            else:
                role = "kernel"
            found[(where.group(1), role)] = inits[name]
    return found


def load_into(keras_model: Any, weights: dict[tuple[str, str], np.ndarray], what: str) -> None:
    """Every weight of ``keras_model`` from ``weights``; constants of layers without weights (a
    scale, an offset) are left, and ``check`` proves the result."""
    for layer in keras_model.layers:
        values = []
        for var in layer.weights:
            key = (layer.name, var.name)
            if key not in weights:
                raise SystemExit(f"{what}: no ONNX weight for {layer.name}/{var.name}")
            values.append(_onnx_layout(tuple(var.shape), weights.pop(key)))
        if values:
            layer.set_weights(values)


def check(model: Any, model_dir: Path, latent_size: int, num_samples: int) -> None:
    """Stop unless the Keras decoder and encoder compute what ``model_dir``'s ONNX files do."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, latent_size)).astype(np.float32)
    labels = np.arange(6, dtype=np.int64)
    sess = ort.InferenceSession(str(model_dir / "decoder.onnx"))
    names = [i.name for i in sess.get_inputs()]
    want = sess.run(None, dict(zip(names, (z, labels), strict=True)))[0]
    got = np.asarray(model.decoder([z, labels]))
    err = float(np.abs(got.reshape(want.shape) - want).max())
    print(f"decoder: max |Keras - ONNX| = {err:.2e} (log magnitude)")
    audio = (rng.standard_normal((2, num_samples)) * 0.1).astype(np.float32)
    sess = ort.InferenceSession(str(model_dir / "encoder.onnx"))
    want = sess.run(None, {sess.get_inputs()[0].name: audio})[0]
    got = np.asarray(model.encoder(audio)[0])
    enc = float(np.abs(got - want).max())
    print(f"encoder: max |Keras - ONNX| = {enc:.2e} (z_mean)")
    if max(err, enc) > TOLERANCE:
        raise SystemExit("the Keras model does not compute what the ONNX files do")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path, help="a folder with decoder.onnx and encoder.onnx")
    p.add_argument("run_dir", type=Path, help="the run folder to make")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting the model was trained with (as dkvae-train --set)",
    )
    p.add_argument("--bank", type=Path, required=True, help="the bank it was trained on")
    p.add_argument("--epoch", type=int, required=True, help="the epoch the weights are from")
    p.add_argument("--minutes", type=float, required=True, help="its training time so far")
    args = p.parse_args(argv)

    cfg = make_config("seed_vae", **parse_overrides(args.set))
    from dkvae_training.seed_vae import SeedVAE

    model = SeedVAE(cfg)
    model((np.zeros((1, cfg.num_samples), np.float32), np.zeros(1, np.int64)))
    load_into(model.decoder, onnx_weights(args.model_dir / "decoder.onnx"), "decoder")
    load_into(model.encoder, onnx_weights(args.model_dir / "encoder.onnx"), "encoder")
    check(model, args.model_dir, cfg.latent_size, cfg.num_samples)

    run_dir = args.run_dir
    if (run_dir / run_folder.STATE).exists():
        raise SystemExit(f"{run_dir} already holds a run")
    (run_dir / run_folder.CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / run_folder.CONFIG)
    model.save_weights(str(run_dir / run_folder.BEST_WEIGHTS))
    model.save_weights(str(run_dir / run_folder.LAST_WEIGHTS))
    run_folder.write_json(
        run_dir / run_folder.RUN_INFO,
        {
            "bank": str(args.bank.resolve()),
            "weights_from_onnx": str(args.model_dir),
            "command": sys.argv,
        },
    )
    state = {
        **run_folder.initial_state(),
        "epoch": args.epoch,
        "best_epoch": args.epoch,
        "train_seconds": args.minutes * 60.0,
        "learning_rate": cfg.learning_rate,
    }
    run_folder.write_json(run_dir / run_folder.STATE, state)
    print(f"{run_dir}: epoch {args.epoch}, no optimizer state: {json.dumps(state)}")


if __name__ == "__main__":
    main()
