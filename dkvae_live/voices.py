"""The voice pool: a fixed set of voices mixed into the output block by the audio callback.

All numpy buffers are allocated in `__init__`. `trigger` and `mix_into` only index, slice and
run numpy ufuncs with `out=` into those buffers: no new arrays, no locks, no model, no logging.
A voice that is cut (stolen, choked, stopped) is never cut dead: it fades out over
`fade_samples`, so there is no click.
"""

from __future__ import annotations

import numpy as np

from .events import PadSound


class VoicePool:
    """`max_voices` sounding voices, plus as many slots again for voices that are fading out."""

    def __init__(self, max_voices: int, fade_samples: int, max_block: int = 4096) -> None:
        if max_voices < 1:
            raise ValueError("polyphony must be at least 1")
        self.max_voices = max_voices
        self.slots = 2 * max_voices
        self.max_block = max_block
        self.fade_samples = max(1, fade_samples)
        # A linear ramp from 1 to 0, then zeros for the rest of the last block.
        self._ramp = np.zeros(self.fade_samples + max_block, np.float32)
        self._ramp[: self.fade_samples] = np.linspace(1.0, 0.0, self.fade_samples, dtype=np.float32)
        self._voice = np.zeros(max_block, np.float32)
        self._scratch = np.zeros(max_block, np.float32)
        # Per-slot state; a slot is free when its sound is None.
        self._sound: list[PadSound | None] = [None] * self.slots
        self._layer_a: list[np.ndarray | None] = [None] * self.slots
        self._layer_b: list[np.ndarray | None] = [None] * self.slots  # None: no crossfade
        self._weight_a = [0.0] * self.slots
        self._weight_b = [0.0] * self.slots
        self._pos = [0] * self.slots
        self._fade_pos = [-1] * self.slots  # -1: not fading
        self._left = [0.0] * self.slots
        self._right = [0.0] * self.slots
        self._age = [0] * self.slots
        self._clock = 0
        self.voices_stolen = 0

    def active_count(self) -> int:
        """Voices sounding and not fading out."""
        return sum(
            1 for s in range(self.slots) if self._sound[s] is not None and self._fade_pos[s] < 0
        )

    def _fade(self, slot: int) -> None:
        if self._fade_pos[slot] < 0:
            self._fade_pos[slot] = 0

    def _oldest(self, note: int = -1) -> tuple[int, int]:
        """(oldest sounding slot or -1, number sounding), of pad `note` or of all pads."""
        oldest, count = -1, 0
        for s in range(self.slots):
            sound = self._sound[s]
            if sound is None or self._fade_pos[s] >= 0 or (note >= 0 and sound.note != note):
                continue
            count += 1
            if oldest < 0 or self._age[s] < self._age[oldest]:
                oldest = s
        return oldest, count

    def trigger(self, sound: PadSound, velocity: int, hit: int = 0) -> None:
        """Start hit number `hit` of `sound` at `velocity` (1..127), cutting what it must cut."""
        if sound.choke_group > 0:
            for s in range(self.slots):
                other = self._sound[s]
                if (
                    other is not None
                    and other.choke_group == sound.choke_group
                    and other.note != sound.note
                ):
                    self._fade(s)
        oldest, count = self._oldest(note=sound.note)
        if count >= sound.polyphony:
            self._fade(oldest)
        oldest, count = self._oldest()
        if count >= self.max_voices:
            self._fade(oldest)
            self.voices_stolen += 1
        slot = self._free_slot()
        layers = sound.variants[hit % len(sound.variants)]
        position = (velocity - 1) / 126.0 * (layers.shape[0] - 1)
        low = int(position)
        weight = position - low
        self._layer_a[slot] = layers[low]
        self._layer_b[slot] = layers[low + 1] if weight > 0.0 else None
        self._weight_a[slot] = 1.0 - weight
        self._weight_b[slot] = weight
        level = (velocity / 127.0) ** sound.velocity_curve
        self._sound[slot] = sound
        self._pos[slot] = 0
        self._fade_pos[slot] = -1
        self._left[slot] = sound.gain_left * level
        self._right[slot] = sound.gain_right * level
        self._clock += 1
        self._age[slot] = self._clock

    def _free_slot(self) -> int:
        """A free slot, or else the fading voice furthest into its fade (nearly silent)."""
        best, best_fade = 0, -1
        for s in range(self.slots):
            if self._sound[s] is None:
                return s
            if self._fade_pos[s] > best_fade:
                best, best_fade = s, self._fade_pos[s]
        return best

    def stop_all(self) -> None:
        for s in range(self.slots):
            if self._sound[s] is not None:
                self._fade(s)

    def mix_into(self, out: np.ndarray) -> None:
        """Add every voice into `out` [frames, channels] (already zeroed by the caller)."""
        frames = out.shape[0]
        start = 0
        while start < frames:
            n = min(frames - start, self.max_block)
            self._mix_block(out[start : start + n], n)
            start += n

    def _mix_block(self, out: np.ndarray, frames: int) -> None:
        stereo = out.shape[1] > 1
        for s in range(self.slots):
            layer_a = self._layer_a[s]
            if self._sound[s] is None or layer_a is None:
                continue
            pos = self._pos[s]
            n = min(frames, layer_a.shape[0] - pos)
            voice = self._voice[:n]
            np.multiply(layer_a[pos : pos + n], self._weight_a[s], out=voice)
            layer_b = self._layer_b[s]
            if layer_b is not None:
                np.multiply(layer_b[pos : pos + n], self._weight_b[s], out=self._scratch[:n])
                np.add(voice, self._scratch[:n], out=voice)
            fade_pos = self._fade_pos[s]
            if fade_pos >= 0:
                np.multiply(voice, self._ramp[fade_pos : fade_pos + n], out=voice)
                self._fade_pos[s] = fade_pos + n
            scaled = self._scratch[:n]
            np.multiply(voice, self._left[s], out=scaled)
            np.add(out[:n, 0], scaled, out=out[:n, 0])
            if stereo:
                np.multiply(voice, self._right[s], out=scaled)
                np.add(out[:n, 1], scaled, out=out[:n, 1])
            self._pos[s] = pos + n
            if self._pos[s] >= layer_a.shape[0] or self._fade_pos[s] >= self.fade_samples:
                self._sound[s] = None
                self._layer_a[s] = self._layer_b[s] = None
