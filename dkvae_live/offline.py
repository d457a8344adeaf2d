"""Offline render: a MIDI file played through a kit by the same voice engine as live.

The events go through `Mixer.process`, the very function the live audio callback runs,
so a render sounds like a live take of the same notes; only the timing is exact to the sample
here, where live it falls on block boundaries.
"""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np

from .kit import Kit
from .mixer import Mixer
from .model import Decoder
from .pads import PadBank
from .renderer import RenderWorker

MAX_CHUNK = 4096
# A few bars of every drum class on the General MIDI map, written by scripts/make_demo_groove.py
DEMO_GROOVE = Path(__file__).parent / "demo" / "groove.mid"


def midi_notes(path: Path, channel: int | None = None) -> list[tuple[float, int, int]]:
    """(seconds, note, velocity) of every note-on in a MIDI file, tempo changes applied."""
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable MIDI file: {exc}") from None
    notes, now = [], 0.0
    for message in midi:
        now += message.time
        is_hit = message.type == "note_on" and message.velocity > 0
        if is_hit and (channel is None or message.channel == channel):
            notes.append((now, message.note, message.velocity))
    return notes


def render_midi(
    notes: list[tuple[float, int, int]],
    decoder: Decoder,
    kit: Kit,
    samplerate: int,
    polyphony: int = 32,
    master_gain: float = 0.5,
) -> tuple[np.ndarray, int]:
    """Stereo float32 [frames, 2] of `notes` played on `kit`; also the count of notes without
    a pad (skipped)."""
    info = decoder.info
    pads = PadBank(kit.pads, info.class_names, info.latent_size)
    audio = Mixer(polyphony, master_gain)
    audio.configure(samplerate)
    renderer = RenderWorker(decoder, pads, samplerate, audio.publish, hits=audio.hits)
    renderer.render_now(pads.notes())
    longest = max(
        (v.shape[1] for s in audio.sounds if s is not None for v in s.variants), default=0
    )
    last = round(notes[-1][0] * samplerate) if notes else 0
    out = np.zeros((last + longest + 1, 2), np.float32)  # the last hit rings out
    skipped = 0
    position = 0
    for seconds, note, velocity in notes:
        frame = min(round(seconds * samplerate), out.shape[0])
        position = _render_until(audio, out, position, frame)
        if pads.get(note) is None:
            skipped += 1
            continue
        renderer.refresh_now()
        while not audio.note_on(note, velocity):  # the queue is full: play it out, no time
            audio.process(out[position:position])
    _render_until(audio, out, position, out.shape[0])
    return out, skipped


def _render_until(audio: Mixer, out: np.ndarray, start: int, stop: int) -> int:
    while start < stop:
        n = min(MAX_CHUNK, stop - start)
        audio.process(out[start : start + n])
        start += n
    return start
