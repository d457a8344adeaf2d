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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dkvae_live import contract

logger = logging.getLogger(__name__)

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
        contract.VERSION: contract.CONTRACT_VERSION,
        contract.ROLE: role,
        contract.MODEL_KIND: cfg.kind,
        contract.SAMPLE_RATE: str(cfg.sample_rate),
        contract.NUM_SAMPLES: str(cfg.num_samples),
        contract.LATENT_SIZE: str(cfg.latent_size),
        contract.CLASS_NAMES: json.dumps(list(cfg.class_names)),
        contract.CONFIG_HASH: cfg.hash(),
        contract.NAME: name,
    }
    if output_kind is not None:
        meta[contract.OUTPUT_KIND] = output_kind
    if output_kind == contract.LOG_MAGNITUDE:
        meta[contract.N_FFT] = str(cfg.spec_n_fft)
        meta[contract.HOP_LENGTH] = str(cfg.spec_hop_length)
        meta[contract.LOG_OFFSET] = repr(float(cfg.log_offset))
    return meta


def convert(
    model: Any,
    input_specs: list[tuple[str, tuple[int | None, ...], str]],
    output_names: list[str],
    metadata: dict[str, str],
    path: Path,
    small: bool = False,
) -> None:
    """Convert a Keras model with tf2onnx; rename inputs/outputs to the contract's; add metadata.

    ``small``: :func:`compact` the graph (the caller rounds the weights to float16 first).
    """
    import onnx
    import tensorflow as tf
    import tf2onnx

    signature = tuple(
        tf.TensorSpec(shape, getattr(tf, dtype), name=name) for name, shape, dtype in input_specs
    )
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        tf2onnx.convert.from_keras(
            model, input_signature=signature, opset=OPSET, output_path=str(raw)
        )
        proto = onnx.load(str(raw))
    graph = proto.graph
    if len(graph.output) != len(output_names):
        raise ExportError(
            f"expected {len(output_names)} outputs, tf2onnx produced "
            f"{[o.name for o in graph.output]}"
        )
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
    if small:
        compact(proto)
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))


def _stft_basis_nodes(
    name: str, n_fft: int, shape: tuple[int, ...], window: np.ndarray
) -> tuple[list[Any], list[Any]]:
    """Nodes (and small initializers) that compute the windowed DFT basis of ``dsp.stft_basis``
    at load time, laid out as ``shape`` ``[2 * bins, ..., n_fft]``: kilobytes instead of MBs."""
    from onnx import helper, numpy_helper

    bins = n_fft // 2 + 1
    p = name.replace(":", "_").replace("/", "_") + "_gen"
    inits = [
        numpy_helper.from_array(np.arange(bins, dtype=np.float32)[:, None], p + "_k"),
        numpy_helper.from_array(np.arange(n_fft, dtype=np.float32)[None, :], p + "_n"),
        numpy_helper.from_array(np.array(n_fft, dtype=np.float32), p + "_N"),
        numpy_helper.from_array(np.array(2.0 * np.pi / n_fft, dtype=np.float32), p + "_step"),
        numpy_helper.from_array(window.astype(np.float32)[None, :], p + "_window"),
        numpy_helper.from_array(np.array(shape, dtype=np.int64), p + "_shape"),
    ]
    nodes = [
        helper.make_node("Mul", [p + "_k", p + "_n"], [p + "_kn"]),  # exact integers < 2**24
        helper.make_node("Mod", [p + "_kn", p + "_N"], [p + "_m"], fmod=1),
        helper.make_node("Mul", [p + "_m", p + "_step"], [p + "_angle"]),
        helper.make_node("Cos", [p + "_angle"], [p + "_cos"]),
        helper.make_node("Sin", [p + "_angle"], [p + "_sin"]),
        helper.make_node("Mul", [p + "_cos", p + "_window"], [p + "_re"]),
        helper.make_node("Mul", [p + "_sin", p + "_window"], [p + "_im_pos"]),
        helper.make_node("Neg", [p + "_im_pos"], [p + "_im"]),
        helper.make_node("Concat", [p + "_re", p + "_im"], [p + "_rows"], axis=0),
        helper.make_node("Reshape", [p + "_rows", p + "_shape"], [name]),
    ]
    return nodes, inits


def compact(proto: Any, min_size: int = 4096) -> Any:
    """Make a model file small without changing what it computes.

    * A large initializer equal to an STFT analysis basis (``dsp.stft_basis``) is replaced by the
      nodes that compute it when the session loads.
    * A large float32 initializer whose values are all exact in float16 (the exporter rounds the
      Keras weights to float16 first) is stored as float16 with a ``Cast`` back to float32;
      onnxruntime folds the cast when the session loads, so inference runs in float32 as before.
    """
    from dkvae_training.dsp import hann, stft_basis
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    new_nodes: list[Any] = []
    keep = []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype != np.float32 or arr.size < min_size:
            keep.append(init)
            continue
        n_fft = arr.shape[-1]
        if arr.shape[0] == 2 * (n_fft // 2 + 1) and arr.size == arr.shape[0] * n_fft:
            basis = stft_basis(n_fft)[:, 0, :].T.reshape(arr.shape)
            if np.allclose(arr, basis, atol=1e-6):
                nodes, inits = _stft_basis_nodes(init.name, n_fft, arr.shape, hann(n_fft))
                new_nodes += nodes
                keep += inits
                continue
        half = arr.astype(np.float16)
        if np.array_equal(half.astype(np.float32), arr):
            keep.append(numpy_helper.from_array(half, init.name + "_f16"))
            new_nodes.append(
                helper.make_node("Cast", [init.name + "_f16"], [init.name], to=TensorProto.FLOAT)
            )
            continue
        keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes + nodes)
    return proto


def round_weights_to_float16(model: Any) -> None:
    """Round every float weight of a Keras model to the nearest float16 value (kept float32)."""
    model.set_weights(
        [
            w.astype(np.float16).astype(np.float32) if w.dtype == np.float32 else w
            for w in model.get_weights()
        ]
    )


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
        if kind == contract.AUDIO:
            peak = float(np.max(np.abs(row)))
            if peak < SILENT_PEAK:
                raise ExportError(f"audio for class {name!r} is silent (peak {peak:.2e})")
            clipped = float(np.mean(np.abs(row) >= 1.0))
            if peak > CLIP_PEAK or clipped > CLIP_FRACTION:
                raise ExportError(
                    f"audio for class {name!r} is clipped (peak {peak:.2f}, "
                    f"{clipped:.1%} of samples at or over full scale)"
                )
        else:  # log magnitude: silent if every bin sits at the log floor
            if float(np.max(row)) - float(np.min(row)) < 1e-3:
                raise ExportError(f"{kind} for class {name!r} is constant (silent)")


def export_decoder(
    decoder: Any,
    cfg: Any,
    path: Path,
    *,
    output_kind: str,
    name: str = "model",
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    small: bool = False,
    role: str = contract.DECODER,
    metadata: Mapping[str, str] | None = None,
) -> float:
    """Export, reload and check a decoder; returns the largest |onnxruntime - keras|.

    ``small``: round the weights to float16 (in ``decoder`` too, so the parity check compares
    like with like) and store them so; see :func:`compact`. ``role`` contract.DRAFT exports a
    model's draft decoder; ``metadata``: keys beside the contract's (a draft's DRAFT_OF).
    """
    output_name = contract.DECODER_OUTPUT[output_kind]
    meta = {**contract_metadata(cfg, role, output_kind, name), **(metadata or {})}
    if small:
        round_weights_to_float16(decoder)
    convert(
        decoder,
        [
            (contract.Z, (None, cfg.latent_size), "float32"),
            (contract.CLASS_INDEX, (None,), "int64"),
        ],
        [output_name],
        meta,
        path,
        small=small,
    )
    sess = ort_session(path)
    rng = np.random.default_rng(seed)
    n = max(4, cfg.num_classes)
    z = rng.standard_normal((n, cfg.latent_size)).astype(np.float32)
    classes = (np.arange(n) % cfg.num_classes).astype(np.int64)
    want = np.asarray(decoder([z, classes], training=False))
    got = sess.run([output_name], {contract.Z: z, contract.CLASS_INDEX: classes})[0]
    one = sess.run([output_name], {contract.Z: z[:1], contract.CLASS_INDEX: classes[:1]})[0]
    if got.shape != want.shape or one.shape[0] != 1:
        raise ExportError(
            f"onnxruntime output shape {got.shape} (batch 1: {one.shape}) differs "
            f"from keras {want.shape}"
        )
    if not np.all(np.isfinite(got)):
        path.unlink(missing_ok=True)
        raise ExportError("decoder output contains NaN or inf")
    diff = float(np.max(np.abs(got - want)))
    if not np.isfinite(diff) or diff > tolerance:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"decoder parity failed: max |onnxruntime - keras| = {diff:.3g} > "
            f"tolerance {tolerance:g}"
        )
    zeros = np.zeros((cfg.num_classes, cfg.latent_size), np.float32)
    per_class = sess.run(
        [output_name],
        {contract.Z: zeros, contract.CLASS_INDEX: np.arange(cfg.num_classes, dtype=np.int64)},
    )
    try:
        check_renders(per_class[0], tuple(cfg.class_names), output_name)
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    logger.info("decoder %s: parity max abs diff %.3g (tolerance %g)", path, diff, tolerance)
    return diff


def export_encoder(
    encoder: Any,
    cfg: Any,
    path: Path,
    *,
    name: str = "model",
    tolerance: float = DEFAULT_TOLERANCE,
    audio: np.ndarray | None = None,
    small: bool = False,
) -> float:
    """Export, reload and check an encoder (``audio -> z_mean, z_log_var``)."""
    meta = contract_metadata(cfg, contract.ENCODER, None, name)
    if small:
        round_weights_to_float16(encoder)
    convert(
        encoder,
        [(contract.AUDIO, (None, cfg.num_samples), "float32")],
        [contract.Z_MEAN, contract.Z_LOG_VAR],
        meta,
        path,
        small=small,
    )
    sess = ort_session(path)
    if audio is None:
        rng = np.random.default_rng(1)
        t = np.arange(cfg.num_samples) / cfg.sample_rate
        audio = (rng.standard_normal((3, cfg.num_samples)) * np.exp(-t * 20.0) * 0.3).astype(
            np.float32
        )
    want = [np.asarray(v) for v in encoder(audio, training=False)]
    got = sess.run([contract.Z_MEAN, contract.Z_LOG_VAR], {contract.AUDIO: audio})
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want, strict=True))
    if not np.isfinite(diff) or diff > tolerance:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"encoder parity failed: max |onnxruntime - keras| = {diff:.3g} > "
            f"tolerance {tolerance:g}"
        )
    logger.info("encoder %s: parity max abs diff %.3g", path, diff)
    return diff


def export_run(
    run_dir: Path,
    out_dir: Path | None = None,
    *,
    name: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    checkpoint: str = "best",
    small: bool = False,
    bank: Path | None = None,
    axes: bool = True,
) -> ExportResult:
    """Export the model of a run folder (``best`` or ``last`` weights) into ``out_dir``.

    ``out_dir`` defaults to ``RUN/export``. Writes ``decoder.onnx`` and, for the VAEs,
    ``encoder.onnx``, and then the class latents and timbre axes fitted on the training split of
    ``bank`` (default: the run's own bank; none for a run on synthetic sounds). ``small``: float16
    weights and load-time STFT bases (see :func:`compact`). ``axes=False``: no timbre axes (for
    a model whose fitted axes are not yet good enough to play).
    """
    from dkvae_training.models import build_for_export

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "export"
    cfg, decoder, encoder, output_kind = build_for_export(run_dir, checkpoint)
    name = name or run_dir.name
    dec_path = out_dir / contract.DECODER_FILE
    dec_diff = export_decoder(
        decoder, cfg, dec_path, output_kind=output_kind, name=name, tolerance=tolerance, small=small
    )
    enc_path: Path | None = None
    enc_diff: float | None = None
    if encoder is not None:
        enc_path = out_dir / contract.ENCODER_FILE
        enc_diff = export_encoder(
            encoder, cfg, enc_path, name=name, tolerance=tolerance, small=small
        )
        source = _run_source(run_dir)
        bank = bank or (Path(source["bank"]) if source.get("bank") else None)
        if bank is None:
            logger.info("no bank for this run: the model carries no class latents and no axes")
        else:
            from .axes import add_axes_from_bank
            from .class_latents import add_class_latents_from_bank

            cache = Path(source["cache_dir"]) if source.get("cache_dir") else None
            add_class_latents_from_bank(out_dir, bank, cache)
            if axes:
                add_axes_from_bank(out_dir, bank, cache)
    return ExportResult(dec_path, enc_path, dec_diff, enc_diff)


def _run_source(run_dir: Path) -> dict[str, Any]:
    """What ``run.json`` says about the run's data (empty for runs made by tests)."""
    path = run_dir / "run.json"
    return json.loads(path.read_text()) if path.exists() else {}
