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

    def configure(self, samplerate: int) -> None:
        """Allocate the voice pool for this rate (fade length in samples)."""
        self.voices = VoicePool(self.polyphony, int(FADE_SECONDS * samplerate))

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
        np.clip(outdata, -1.0, 1.0, out=outdata)
