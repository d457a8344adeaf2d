"""The render worker: runs the decoder whenever a pad changes, ahead of any note.

Changes are coalesced (latest wins): a burst of 100 latent moves on one pad while a render runs
costs one more render, not 100. Each new sound is resampled to the device rate, checked, trimmed
of its silent tail and published by replacing one reference in `sounds`, which the audio
callback reads. The callback never waits for this thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np
import soxr

from .events import PadSound
from .model import Decoder
from .pads import Pad, PadBank
from .rt import promote_current_thread

log = logging.getLogger(__name__)

SILENCE = 10 ** (-80 / 20)  # tail below -80 dBFS is not played
TAIL_FADE_SECONDS = 0.005


def prepare_sound(audio: np.ndarray, model_rate: int, device_rate: int) -> np.ndarray | None:
    """Resample a rendered sound, reject it if broken, trim its silent tail with a short fade.

    Returns None when the sound is not finite: such a buffer must never reach a voice.
    """
    if not np.all(np.isfinite(audio)):
        return None
    sound = audio.astype(np.float32)
    if device_rate != model_rate:
        sound = soxr.resample(sound, model_rate, device_rate, quality="HQ").astype(np.float32)
    peak = float(np.max(np.abs(sound))) if sound.size else 0.0
    if peak > 1.0:
        sound /= peak
    loud = np.flatnonzero(np.abs(sound) > SILENCE)
    end = int(loud[-1]) + 1 if loud.size else 0
    fade = min(end, int(TAIL_FADE_SECONDS * device_rate))
    sound = np.ascontiguousarray(sound[:end])
    if fade:
        sound[end - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return sound


class RenderWorker:
    """Owns the decoder; renders dirty pads in one batched call; publishes `PadSound`s."""

    def __init__(
        self,
        decoder: Decoder,
        pads: PadBank,
        device_rate: int,
        publish: Callable[[PadSound], None],
        on_rejected: Callable[[int], None] = lambda note: None,
    ) -> None:
        self.decoder = decoder
        self.pads = pads
        self.device_rate = device_rate
        self._publish = publish
        self._on_rejected = on_rejected
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="dkvae-render", daemon=True)
        # (class, latent) -> prepared audio, per note: a gain or pan change re-uses the audio.
        self._rendered: dict[int, tuple[str, tuple[float, ...], np.ndarray]] = {}
        self.renders = 0

    def request(self, note: int) -> None:
        """Mark a pad to be rendered again. Cheap, never blocks for long; any thread."""
        with self._lock:
            self._dirty.add(note)
        self._wake.set()

    def render_now(self, notes: list[int]) -> None:
        """Render these pads in the calling thread (used at start-up, before the audio runs)."""
        self._render(notes)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        promote_current_thread(1)
        while True:
            self._wake.wait()
            if self._stopping:
                return
            self._wake.clear()
            with self._lock:
                notes, self._dirty = sorted(self._dirty), set()
            try:
                self._render(notes)
            except Exception:  # a worker that dies leaves the pads stale: log, keep going
                log.exception("render failed for notes %s", notes)

    def _render(self, notes: list[int]) -> None:
        todo: list[Pad] = []
        for note in notes:
            pad = self.pads.get(note)
            if pad is None:
                continue
            cached = self._rendered.get(note)
            if cached and cached[0] == pad.class_name and cached[1] == pad.latent:
                self._publish_pad(pad, cached[2])
            else:
                todo.append(pad)
        if not todo:
            return
        info = self.decoder.info
        z = np.array([pad.latent for pad in todo], np.float32)
        classes = np.array([info.class_index(pad.class_name) for pad in todo], np.int64)
        audio = self.decoder.render(z, classes)
        self.renders += len(todo)
        for pad, raw in zip(todo, audio, strict=True):
            sound = prepare_sound(raw, info.sample_rate, self.device_rate)
            if sound is None:
                self._on_rejected(pad.note)
                continue
            self._rendered[pad.note] = (pad.class_name, pad.latent, sound)
            # The pad may have changed while we rendered; a newer request is already queued.
            self._publish_pad(pad, sound)

    def _publish_pad(self, pad: Pad, audio: np.ndarray) -> None:
        left, right = pad.channel_gains()
        self._publish(PadSound(pad.note, audio, left, right, pad.choke_group, pad.polyphony))
