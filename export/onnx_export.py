"""Run folder -> ONNX decoder (+ encoder) that follows ``docs/model-contract.md``, checked.

The export checks itself before anything is written where the daemon looks:

* parity: onnxruntime against Keras on the same random latents / classes (and, for the encoder,
  the same audio); a difference larger than ``tolerance`` raises :class:`ExportError`;
* sanity: one render per class must be finite, not silent and not clipped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CONTRACT_VERSION = "1"
OPSET = 17
#: Largest allowed |onnxruntime - keras| (absolute, on outputs of order 1) in the parity check.
DEFAULT_TOLERANCE = 1e-3
SILENT_PEAK = 1e-4
CLIP_PEAK = 4.0
CLIP_FRACTION = 0.01


class ExportError(RuntimeError):
    """The exported model failed a check (parity, finiteness, silence, clipping, contract)."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    decoder_path: Path
    encoder_path: Path | None
    decoder_max_abs_diff: float
    encoder_max_abs_diff: float | None


def contract_metadata(cfg: Any, role: str, output_kind: str | None, name: str) -> dict[str, str]:
    """The ``metadata_props`` the contract asks for, as strings."""
    meta = {
        "dkvae.contract_version": CONTRACT_VERSION,
        "dkvae.role": role,
        "dkvae.model_kind": cfg.kind,
        "dkvae.sample_rate": str(cfg.sample_rate),
        "dkvae.num_samples": str(cfg.num_samples),
        "dkvae.latent_size": str(cfg.latent_size),
        "dkvae.class_names": json.dumps(list(cfg.class_names)),
        "dkvae.config_hash": cfg.hash(),
        "dkvae.name": name,
    }
    if output_kind is not None:
        meta["dkvae.output_kind"] = output_kind
    if output_kind == "log_magnitude":
        meta["dkvae.n_fft"] = str(cfg.spec_n_fft)
        meta["dkvae.hop_length"] = str(cfg.spec_hop_length)
        meta["dkvae.log_offset"] = repr(float(cfg.log_offset))
    return meta


def convert(model: Any, input_specs: list[tuple[str, tuple[int | None, ...], str]],
            output_names: list[str], metadata: dict[str, str], path: Path) -> None:
    """Convert a Keras model with tf2onnx; rename inputs/outputs to the contract's; add metadata."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    signature = tuple(tf.TensorSpec(shape, getattr(tf, dtype), name=name)
                      for name, shape, dtype in input_specs)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET,
                                   output_path=str(raw))
        proto = onnx.load(str(raw))
    graph = proto.graph
    if len(graph.output) != len(output_names):
        raise ExportError(f"expected {len(output_names)} outputs, tf2onnx produced "
                          f"{[o.name for o in graph.output]}")
    renames = {o.name: new for o, new in zip(graph.output, output_names, strict=True)}
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name in renames:
                node.output[i] = renames[name]
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    for out in graph.output:
        out.name = renames[out.name]
    actual_inputs = [i.name for i in graph.input]
    wanted = [name for name, _, _ in input_specs]
    if actual_inputs != wanted:
        raise ExportError(f"exported inputs {actual_inputs} are not the contract's {wanted}")
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "dkvae-export"
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))


def ort_session(path: Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_renders(audio: np.ndarray, class_names: tuple[str, ...], kind: str) -> None:
    """Refuse NaN/inf, silent or clipped renders (one row per class). ``kind`` names the output."""
    for row, name in zip(audio, class_names, strict=True):
        if not np.all(np.isfinite(row)):
            raise ExportError(f"{kind} for class {name!r} contains NaN or inf")
        if kind == "audio":
            peak = float(np.max(np.abs(row)))
            if peak < SILENT_PEAK:
                raise ExportError(f"audio for class {name!r} is silent (peak {peak:.2e})")
            clipped = float(np.mean(np.abs(row) >= 1.0))
            if peak > CLIP_PEAK or clipped > CLIP_FRACTION:
                raise ExportError(f"audio for class {name!r} is clipped (peak {peak:.2f}, "
                                  f"{clipped:.1%} of samples at or over full scale)")
        else:  # log magnitude: silent if every bin sits at the log floor
            if float(np.max(row)) - float(np.min(row)) < 1e-3:
                raise ExportError(f"{kind} for class {name!r} is constant (silent)")


def export_decoder(decoder: Any, cfg: Any, path: Path, *, output_kind: str, name: str = "model",
                   tolerance: float = DEFAULT_TOLERANCE, seed: int = 0) -> float:
    """Export, reload and check a decoder; returns the largest |onnxruntime - keras|."""
    output_name = "audio" if output_kind == "waveform" else "log_magnitude"
    meta = contract_metadata(cfg, "decoder", output_kind, name)
    convert(decoder, [("z", (None, cfg.latent_size), "float32"), ("class_index", (None,), "int64")],
            [output_name], meta, path)
    sess = ort_session(path)
    rng = np.random.default_rng(seed)
    n = max(4, cfg.num_classes)
    z = rng.standard_normal((n, cfg.latent_size)).astype(np.float32)
    classes = (np.arange(n) % cfg.num_classes).astype(np.int64)
    want = np.asarray(decoder([z, classes], training=False))
    got = sess.run([output_name], {"z": z, "class_index": classes})[0]
    one = sess.run([output_name], {"z": z[:1], "class_index": classes[:1]})[0]
    if got.shape != want.shape or one.shape[0] != 1:
        raise ExportError(f"onnxruntime output shape {got.shape} (batch 1: {one.shape}) differs "
                          f"from keras {want.shape}")
    if not np.all(np.isfinite(got)):
        path.unlink(missing_ok=True)
        raise ExportError("decoder output contains NaN or inf")
    diff = float(np.max(np.abs(got - want)))
    if not np.isfinite(diff) or diff > tolerance:
        path.unlink(missing_ok=True)
        raise ExportError(f"decoder parity failed: max |onnxruntime - keras| = {diff:.3g} > "
                          f"tolerance {tolerance:g}")
    zeros = np.zeros((cfg.num_classes, cfg.latent_size), np.float32)
    per_class = sess.run([output_name], {"z": zeros,
                                         "class_index": np.arange(cfg.num_classes, dtype=np.int64)})
    try:
        check_renders(per_class[0], tuple(cfg.class_names),
                      "audio" if output_kind == "waveform" else output_name)
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    logger.info("decoder %s: parity max abs diff %.3g (tolerance %g)", path, diff, tolerance)
    return diff


def export_encoder(encoder: Any, cfg: Any, path: Path, *, name: str = "model",
                   tolerance: float = DEFAULT_TOLERANCE, audio: np.ndarray | None = None) -> float:
    """Export, reload and check an encoder (``audio -> z_mean, z_log_var``)."""
    meta = contract_metadata(cfg, "encoder", None, name)
    convert(encoder, [("audio", (None, cfg.num_samples), "float32")], ["z_mean", "z_log_var"],
            meta, path)
    sess = ort_session(path)
    if audio is None:
        rng = np.random.default_rng(1)
        t = np.arange(cfg.num_samples) / cfg.sample_rate
        audio = (rng.standard_normal((3, cfg.num_samples)) * np.exp(-t * 20.0) * 0.3
                 ).astype(np.float32)
    want = [np.asarray(v) for v in encoder(audio, training=False)]
    got = sess.run(["z_mean", "z_log_var"], {"audio": audio})
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want, strict=True))
    if not np.isfinite(diff) or diff > tolerance:
        path.unlink(missing_ok=True)
        raise ExportError(f"encoder parity failed: max |onnxruntime - keras| = {diff:.3g} > "
                          f"tolerance {tolerance:g}")
    logger.info("encoder %s: parity max abs diff %.3g", path, diff)
    return diff


def export_run(run_dir: Path, out_dir: Path | None = None, *, name: str | None = None,
               tolerance: float = DEFAULT_TOLERANCE, checkpoint: str = "best") -> ExportResult:
    """Export the model of a run folder (``best`` or ``last`` weights) into ``out_dir``.

    ``out_dir`` defaults to ``RUN/export``. Writes ``decoder.onnx`` and, for the VAEs,
    ``encoder.onnx``.
    """
    from dkvae_training.models import build_for_export

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "export"
    cfg, decoder, encoder, output_kind = build_for_export(run_dir, checkpoint)
    name = name or run_dir.name
    dec_path = out_dir / "decoder.onnx"
    dec_diff = export_decoder(decoder, cfg, dec_path, output_kind=output_kind, name=name,
                              tolerance=tolerance)
    enc_path: Path | None = None
    enc_diff: float | None = None
    if encoder is not None:
        enc_path = out_dir / "encoder.onnx"
        enc_diff = export_encoder(encoder, cfg, enc_path, name=name, tolerance=tolerance)
    return ExportResult(dec_path, enc_path, dec_diff, enc_diff)
