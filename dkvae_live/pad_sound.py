"""What the render worker hands the mixer: a pad's sound, published whole."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLE_DTYPE = np.int16  # what the mixer plays from: half float32's memory, as a sampler's
FULL_SCALE = 32767  # the largest sample; a variant's peak is stored as this
# A sound's end fades out over this long (the render worker's trim), and so does a voice cut
# short (the mixer): no click. A voice moves on to a sound that `continues` its own only
# short of this fade.
FADE_SECONDS = 0.005


# Variants as the mixer takes them: 16-bit [layers, samples] each, and each one's scale.
Encoded = tuple[tuple[np.ndarray, ...], tuple[float, ...]]


def encode(audio: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, float]:
    """A float [layers, samples] buffer as 16-bit samples and the scale that gives them back
    (audio ~= samples * scale): each variant uses the whole 16 bits, so a quiet one keeps its
    96 dB below its own peak, not below full scale. A `scale` given is used instead (the one
    of a sound this one carries on), the samples beyond its reach clipped."""
    samples = np.asarray(audio, np.float64)
    if scale is None:
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        scale = (peak if peak > 0.0 else 1.0) / FULL_SCALE
        return np.rint(samples / scale).astype(SAMPLE_DTYPE), scale
    return np.clip(np.rint(samples / scale), -FULL_SCALE, FULL_SCALE).astype(SAMPLE_DTYPE), scale


def encode_variants(
    variants: Sequence[np.ndarray], scales: Sequence[float] | None = None
) -> Encoded:
    """Each float variant [layers, samples] through `encode` (at `scales`, if given):
    (samples, scales)."""
    encoded = [encode(v, None if scales is None else scales[i]) for i, v in enumerate(variants)]
    return tuple(samples for samples, _ in encoded), tuple(scale for _, scale in encoded)


@dataclass(frozen=True, slots=True)
class PadSound:
    """What the audio callback needs to play a pad: published whole by the render worker.

    `variants` holds one or more 16-bit arrays [velocity_layers, samples] at the device rate,
    mono, never written after publication; `scales[v]` turns variant v's samples back into
    audio (`audio(v)`). Hit n of the pad plays variant n % len(variants); its velocity picks
    two neighbouring layers and crossfades them. `output` names the output pair it also plays
    on, besides the main pair (the whole mix); "" (or a name the audio backend has no pair
    for): the main pair only. `continues`: this sound carries on the one its note played
    before, which was its beginning (`Mixer.publish`). Make one from float audio with
    `from_audio`.
    """

    note: int
    variants: tuple[np.ndarray, ...]
    scales: tuple[float, ...]
    gain_left: float
    gain_right: float
    choke_group: int
    polyphony: int
    velocity_curve: float = 1.0
    output: str = ""
    continues: bool = False

    @classmethod
    def from_audio(
        cls,
        note: int,
        variants: Sequence[np.ndarray],
        gain_left: float,
        gain_right: float,
        choke_group: int,
        polyphony: int,
        velocity_curve: float = 1.0,
        output: str = "",
    ) -> PadSound:
        """A sound from float variants [velocity_layers, samples], stored as 16 bits."""
        return cls(
            note,
            *encode_variants(variants),
            gain_left,
            gain_right,
            choke_group,
            polyphony,
            velocity_curve,
            output,
        )

    def audio(self, variant: int) -> np.ndarray:
        """Variant `variant` as float32 [velocity_layers, samples], as the mixer hears it."""
        return (self.variants[variant] * np.float32(self.scales[variant])).astype(np.float32)
