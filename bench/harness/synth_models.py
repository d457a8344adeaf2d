"""Small ONNX decoders built with onnx.helper that follow docs/model-contract.md.

Their sound is a decaying sine whose pitch and decay a test can read back:
    frequency = base_hz * 2**z[0] * (1 + class_index)
    decay     = decay_s * 2**z[1]      (seconds to fall by 1/e)
    audio     = amplitude * sin(2 pi frequency t) * exp(-t / decay)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = ("kick", "snare", "hihat", "tom", "cymbal", "perc")


def contract_model(graph: onnx.GraphProto, metadata: dict[str, str | None]) -> onnx.ModelProto:
    """An opset-17 model of `graph` carrying `metadata` (keys with None are left out)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in metadata.items():
        if value is not None:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    return model


def spectrogram_decoder(
    path: Path,
    log_magnitude: np.ndarray,
    *,
    sample_rate: int,
    num_samples: int,
    n_fft: int,
    hop_length: int,
    class_names: str = '["kick"]',
    log_offset: str | None = None,
) -> Path:
    """A log-magnitude decoder that plays `log_magnitude` [frames, bins] whatever z and class
    it is given (it broadcasts the stored spectrogram over the batch)."""
    frames, bins = log_magnitude.shape
    graph = helper.make_graph(
        [
            helper.make_node("Shape", ["class_index"], ["n"]),
            helper.make_node("Concat", ["n", "tail"], ["shape"], axis=0),
            helper.make_node("Expand", ["spec", "shape"], ["log_magnitude"]),
            helper.make_node("ReduceSum", ["z"], ["unused"], keepdims=0),
        ],
        "spectrogram_decoder",
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("class_index", TensorProto.INT64, ["batch"]),
        ],
        [
            helper.make_tensor_value_info(
                "log_magnitude", TensorProto.FLOAT, ["batch", frames, bins]
            )
        ],
        [
            numpy_helper.from_array(np.asarray(log_magnitude, np.float32), "spec"),
            numpy_helper.from_array(np.array([frames, bins], np.int64), "tail"),
        ],
    )
    meta: dict[str, str | None] = {
        "dkvae.contract_version": "1",
        "dkvae.role": "decoder",
        "dkvae.model_kind": "test",
        "dkvae.output_kind": "log_magnitude",
        "dkvae.sample_rate": str(sample_rate),
        "dkvae.num_samples": str(num_samples),
        "dkvae.latent_size": "8",
        "dkvae.class_names": class_names,
        "dkvae.n_fft": str(n_fft),
        "dkvae.hop_length": str(hop_length),
        "dkvae.log_offset": log_offset,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(contract_model(graph, meta), str(path))
    return path


def flat_spectrogram_decoder(path: Path) -> Path:
    """A small log-magnitude decoder (16 kHz, 4096 samples, STFT 512 / 128, classes kick and
    snare) that plays one flat spectrogram: for tests of the phase and the render path."""
    n_fft, hop, num_samples = 512, 128, 4096
    return spectrogram_decoder(
        path,
        np.full((1 + num_samples // hop, n_fft // 2 + 1), -3.0, np.float32),
        sample_rate=16000,
        num_samples=num_samples,
        n_fft=n_fft,
        hop_length=hop,
        class_names='["kick", "snare"]',
    )


def expected_frequency(z0: float, class_index: int, base_hz: float = 200.0) -> float:
    return base_hz * 2.0**z0 * (1 + class_index)


# Timbre axes for the sine model's kick (metadata ``dkvae.axes``): pitch moves z[0] (half an
# octave a step), decay z[1]; brightness follows pitch and punch falls with decay, as they do on
# a sine. By fit (r2) the two main axes, the XY pad's, are punch (x) and pitch (y).
SINE_PITCH_STEP = (0.5, 0, 0, 0, 0, 0, 0, 0)
SINE_DECAY_STEP = (0, 0.25, 0, 0, 0, 0, 0, 0)
SINE_AXES_R2 = {"brightness": 0.2, "decay": 0.1, "pitch": 0.5, "punch": 0.7}


def sine_axes_json() -> str:
    pitch, decay = SINE_PITCH_STEP, tuple(-v for v in SINE_DECAY_STEP)
    steps = {"brightness": pitch, "decay": SINE_DECAY_STEP, "pitch": pitch, "punch": decay}
    entry = {
        name: {"direction": list(step), "std": 1.0, "r2": SINE_AXES_R2[name]}
        for name, step in steps.items()
    }
    return json.dumps({"kick": entry})


def sine_decoder(
    path: Path,
    *,
    sample_rate: int = 44100,
    num_samples: int = 22050,
    latent_size: int = 8,
    class_names: tuple[str, ...] = CLASSES,
    base_hz: float = 200.0,
    decay_s: float = 0.08,
    amplitude: float = 0.8,
    metadata: dict[str, str | None] | None = None,
    output_name: str = "audio",
    work_layers: int = 0,
) -> Path:
    """`work_layers` > 0: each latent also takes that many sines of 65536 numbers, multiplied by
    0 and added to the sound: a decoder that costs the same per latent in a batch as alone (a
    dense layer would not: batched, it runs many times faster per latent), with the same sound."""
    t = (np.arange(num_samples, dtype=np.float32) / sample_rate)[None, :]
    inits = [
        numpy_helper.from_array(t, "t"),
        numpy_helper.from_array(np.array(0, np.int64), "i0"),
        numpy_helper.from_array(np.array(1, np.int64), "i1"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(2 * np.pi * base_hz, np.float32), "w0"),
        numpy_helper.from_array(np.array(decay_s, np.float32), "d0"),
        numpy_helper.from_array(np.array(-1.0, np.float32), "minus"),
        numpy_helper.from_array(np.array(amplitude, np.float32), "amp"),
    ]
    nodes = [
        helper.make_node("Gather", ["z", "i0"], ["z0"], axis=1),
        helper.make_node("Gather", ["z", "i1"], ["z1"], axis=1),
        helper.make_node("Unsqueeze", ["z0", "axis1"], ["z0c"]),
        helper.make_node("Unsqueeze", ["z1", "axis1"], ["z1c"]),
        helper.make_node("Cast", ["class_index"], ["cf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["cf", "one"], ["cf1"]),
        helper.make_node("Unsqueeze", ["cf1", "axis1"], ["cfc"]),
        helper.make_node("Pow", ["two", "z0c"], ["p0"]),
        helper.make_node("Mul", ["p0", "w0"], ["w"]),
        helper.make_node("Mul", ["w", "cfc"], ["wc"]),
        helper.make_node("Mul", ["wc", "t"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["sine"]),
        helper.make_node("Pow", ["two", "z1c"], ["p1"]),
        helper.make_node("Mul", ["p1", "d0"], ["decay"]),
        helper.make_node("Div", ["t", "decay"], ["td"]),
        helper.make_node("Mul", ["td", "minus"], ["ntd"]),
        helper.make_node("Exp", ["ntd"], ["env"]),
        helper.make_node("Mul", ["sine", "env"], ["shaped"]),
        helper.make_node("Mul", ["shaped", "amp"], ["sound" if work_layers else output_name]),
    ]
    if work_layers:
        width = 65536
        inits += [
            numpy_helper.from_array(np.linspace(0, 1, width, dtype=np.float32)[None], "ramp"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ]
        nodes += [helper.make_node("Mul", ["z0c", "ramp"], ["x0"])]
        for i in range(work_layers):
            nodes += [helper.make_node("Sin", [f"x{i}"], [f"x{i + 1}"])]
        nodes += [
            helper.make_node("ReduceMean", [f"x{work_layers}"], ["work"], axes=[1], keepdims=1),
            helper.make_node("Mul", ["work", "zero"], ["nothing"]),
            helper.make_node("Add", ["sound", "nothing"], [output_name]),
        ]
    graph = helper.make_graph(
        nodes,
        "sine_decoder",
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", latent_size]),
            helper.make_tensor_value_info("class_index", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", num_samples])],
        inits,
    )
    meta: dict[str, str | None] = {
        "dkvae.contract_version": "1",
        "dkvae.role": "decoder",
        "dkvae.model_kind": "test",
        "dkvae.output_kind": "waveform",
        "dkvae.sample_rate": str(sample_rate),
        "dkvae.num_samples": str(num_samples),
        "dkvae.latent_size": str(latent_size),
        "dkvae.class_names": json.dumps(list(class_names)),
        "dkvae.name": "sine-test",
    }
    meta.update(metadata or {})
    model = contract_model(graph, meta)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def linear_encoder(
    path: Path,
    *,
    sample_rate: int = 44100,
    num_samples: int = 22050,
    latent_size: int = 8,
    class_names: tuple[str, ...] = CLASSES,
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    """An encoder following the contract: z_mean = audio @ W (W returned, for checking)."""
    weights = np.random.default_rng(seed).normal(0, 0.05, (num_samples, latent_size))
    weights = weights.astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["audio", "W"], ["z_mean"]),
            helper.make_node("Mul", ["z_mean", "zero"], ["z_log_var"]),
        ],
        "linear_encoder",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", num_samples])],
        [
            helper.make_tensor_value_info("z_mean", TensorProto.FLOAT, ["batch", latent_size]),
            helper.make_tensor_value_info("z_log_var", TensorProto.FLOAT, ["batch", latent_size]),
        ],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    model = contract_model(
        graph,
        {
            "dkvae.contract_version": "1",
            "dkvae.role": "encoder",
            "dkvae.model_kind": "test",
            "dkvae.sample_rate": str(sample_rate),
            "dkvae.num_samples": str(num_samples),
            "dkvae.latent_size": str(latent_size),
            "dkvae.class_names": json.dumps(list(class_names)),
        },
    )
    onnx.save(model, str(path))
    return path, weights
