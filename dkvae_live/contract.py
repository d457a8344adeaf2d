"""The model contract's names, defined once: docs/model-contract.md says what they mean.

The daemon checks models against these (``dkvae_live.model``), the export writes them
(``dkvae_export``), training names its Keras tensors with them. Strings only: importing this
module costs nothing and pulls nothing in.
"""

from __future__ import annotations

CONTRACT_VERSION = "1"

# Roles (``ROLE``'s values) and the files a model folder holds.
DECODER = "decoder"
ENCODER = "encoder"
DRAFT = "draft"
DECODER_FILE = "decoder.onnx"
ENCODER_FILE = "encoder.onnx"  # optional
DRAFT_FILE = "draft.onnx"  # optional: a cheaper decoder for the first sound after a change
MODEL_CARD_FILE = "MODEL_CARD.md"  # optional

# Metadata keys (``metadata_props``, all values strings), in the document's order.
VERSION = "dkvae.contract_version"
ROLE = "dkvae.role"
MODEL_KIND = "dkvae.model_kind"
OUTPUT_KIND = "dkvae.output_kind"
SAMPLE_RATE = "dkvae.sample_rate"
NUM_SAMPLES = "dkvae.num_samples"
LATENT_SIZE = "dkvae.latent_size"
CLASS_NAMES = "dkvae.class_names"
N_FFT = "dkvae.n_fft"
HOP_LENGTH = "dkvae.hop_length"
LOG_OFFSET = "dkvae.log_offset"
CONFIG_HASH = "dkvae.config_hash"
NAME = "dkvae.name"
CLASS_LATENTS = "dkvae.class_latents"
CLASS_GUESS = "dkvae.class_guess"
AXES = "dkvae.axes"
DRAFT_OF = "dkvae.draft_of"
METADATA_KEYS: tuple[str, ...] = (
    VERSION,
    ROLE,
    MODEL_KIND,
    OUTPUT_KIND,
    SAMPLE_RATE,
    NUM_SAMPLES,
    LATENT_SIZE,
    CLASS_NAMES,
    N_FFT,
    HOP_LENGTH,
    LOG_OFFSET,
    CONFIG_HASH,
    NAME,
    CLASS_LATENTS,
    CLASS_GUESS,
    AXES,
    DRAFT_OF,
)
# Required of every decoder (an encoder: all but OUTPUT_KIND).
REQUIRED_KEYS: tuple[str, ...] = METADATA_KEYS[:8]
# Required of a log_magnitude decoder as well.
SPECTROGRAM_KEYS: tuple[str, ...] = (N_FFT, HOP_LENGTH, LOG_OFFSET)
# What a draft must say as its decoder does.
DRAFT_MATCHES: tuple[str, ...] = (
    OUTPUT_KIND,
    SAMPLE_RATE,
    NUM_SAMPLES,
    LATENT_SIZE,
    CLASS_NAMES,
    *SPECTROGRAM_KEYS,
)
# How near a draft's DRAFT_OF must come to its decoder's own output.
DRAFT_OF_TOLERANCE = 1e-3

# The timbre axes ``AXES`` holds per class, in the order a pad's axis values are given.
AXIS_NAMES: tuple[str, ...] = ("brightness", "decay", "pitch", "punch")

# Output kinds (``OUTPUT_KIND``'s values) and the decoder output each one names.
WAVEFORM = "waveform"
LOG_MAGNITUDE = "log_magnitude"
OUTPUT_KINDS: tuple[str, ...] = (WAVEFORM, LOG_MAGNITUDE)

# Tensor names.
Z = "z"  # decoder input, float32 [batch, latent_size]
CLASS_INDEX = "class_index"  # decoder input, int64 [batch]
AUDIO = "audio"  # a waveform decoder's output; the encoder's input: float32 [batch, num_samples]
LOG_MAGNITUDE_OUTPUT = "log_magnitude"  # a log_magnitude decoder's output
Z_MEAN = "z_mean"  # encoder outputs, float32 [batch, latent_size]
Z_LOG_VAR = "z_log_var"
DECODER_OUTPUT: dict[str, str] = {WAVEFORM: AUDIO, LOG_MAGNITUDE: LOG_MAGNITUDE_OUTPUT}
