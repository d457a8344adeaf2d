"""The mixer: the one function the audio callback runs, and the state it reads.

`process` drains pending events without blocking, mixes the voice pool into the output block
and applies the master gain and a limit at full scale. It does not call the model, log, take
locks or allocate numpy buffers. Every audio backend (PortAudio, JACK) and the offline renderer
call it, so all of them sound the same.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .events import Event, NoteOn, PadSound, StopAll
from .voices import VoicePool

FADE_SECONDS = 0.005  # a cut voice fades out over this long: no click
LIMIT = 0.98  # the mix never goes above this (-0.2 dBFS)
RELEASE_SECONDS = 0.15  # the limiter lets go over about this long
MAX_BLOCK = 8192


class Mixer:
    """Events in, audio out. `events` and `sounds` are filled by other threads."""

    def __init__(self, polyphony: int, master_gain: float = 0.5) -> None:
        self.polyphony = polyphony
        self.master_gain = master_gain
        self.voices = VoicePool(polyphony, 1)  # replaced by configure(), once the rate is known
        self.events: deque[Event] = deque()
        self.sounds: list[PadSound | None] = [None] * 128
        self.hits = [0] * 128  # per note: which variant plays next; read by the render worker
        self.xruns = 0
        self.notes_played = 0
        self.notes_without_sound = 0
        self.limited_blocks = 0
        self._gain = 1.0  # the limiter's gain now
        self._release = 0.0
        self._steps = np.arange(1, MAX_BLOCK + 1, dtype=np.float32)
        self._envelope = np.zeros(MAX_BLOCK, np.float32)

    def configure(self, samplerate: int) -> None:
        """Allocate the voice pool for this rate (fade length in samples)."""
        self.voices = VoicePool(self.polyphony, int(FADE_SECONDS * samplerate))
        self._release_per_sample = 1.0 / (RELEASE_SECONDS * samplerate)

    def publish(self, sound: PadSound) -> None:
        """Swap in a pad's new sound. A voice already playing keeps the buffer it started with."""
        self.sounds[sound.note] = sound

    def process(self, outdata: np.ndarray) -> None:
        """Play pending events and fill `outdata` [frames, channels]: the whole audio path."""
        outdata.fill(0.0)
        events = self.events
        while events:
            event = events.popleft()
            if isinstance(event, NoteOn):
                sound = self.sounds[event.note]
                if sound is None:
                    self.notes_without_sound += 1
                else:
                    self.voices.trigger(sound, event.velocity, self.hits[event.note])
                    self.hits[event.note] += 1
                    self.notes_played += 1
            elif isinstance(event, StopAll):
                self.voices.stop_all()
        self.voices.mix_into(outdata)
        np.multiply(outdata, self.master_gain, out=outdata)
        self._limit(outdata)
        np.clip(outdata, -1.0, 1.0, out=outdata)  # a transient faster than one block

    def _limit(self, outdata: np.ndarray) -> None:
        """Keep many loud hits under full scale without clipping them: when a block would go
        over LIMIT its gain drops at once (that only happens when new hits start, which mask
        it), then glides back up over RELEASE_SECONDS."""
        frames = outdata.shape[0]
        peak = max(float(outdata.max(initial=0.0)), -float(outdata.min(initial=0.0)))
        wanted = min(1.0, LIMIT / peak) if peak > 0.0 else 1.0
        if wanted < self._gain:
            self._gain = wanted
            self.limited_blocks += 1
            np.multiply(outdata, wanted, out=outdata)
            return
        if self._gain == 1.0:
            return
        first = self._gain
        last = min(wanted, first + self._release_per_sample * frames)
        done = 0
        while done < frames:  # blocks longer than MAX_BLOCK glide piecewise
            n = min(MAX_BLOCK, frames - done)
            a = first + (last - first) * done / frames
            b = first + (last - first) * (done + n) / frames
            envelope = self._envelope[:n]
            np.multiply(self._steps[:n], (b - a) / n, out=envelope)
            np.add(envelope, a, out=envelope)
            np.multiply(outdata[done : done + n], envelope[:, None], out=outdata[done : done + n])
            done += n
        self._gain = last
