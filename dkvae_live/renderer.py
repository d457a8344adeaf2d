"""The render worker: runs the decoder whenever a pad changes, ahead of any note.

Changes are coalesced (latest wins): a burst of 100 latent moves on one pad while a render runs
costs one more render, not 100. A pad that keeps moving (a knob swept from Max or a MIDI
controller: a third change in a row, each within SETTLE_SECONDS of the last render) is
rendered as a draft, its own latent alone: one velocity layer, no variants, a fifth to a
fortieth of the work, so the sweep is heard sooner and costs the CPU (and JACK's threads
beside it) less; once it has been still for SETTLE_SECONDS it is rendered in full. A few
settings sent together (a patch setting a pad's timbre) are not a sweep.

In full, a pad is the velocity layers (when velocity moves timbre) of one or more variants (when
the pad varies per hit), all in one batched decoder call. The worker resamples each sound to the
device rate, checks it, trims its silent tail and publishes a `PadSound` by replacing one
reference, which the audio callback reads. The callback never waits for this thread. Variants
that hits have used up are rendered afresh in the background.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence

import numpy as np
import soxr

from .dcblock import dc_block
from .events import PadSound
from .model import RUN_BATCH, Decoder
from .pads import Pad, PadBank
from .rt import promote_current_thread

log = logging.getLogger(__name__)

SILENCE = 10 ** (-80 / 20)  # tail below -80 dBFS is not played
TAIL_FADE_SECONDS = 0.005
VELOCITY_LAYERS = 5  # rendered when velocity moves timbre; neighbours are crossfaded
VARIANTS = 8  # rendered when a pad varies per hit
REFRESH_SECONDS = 0.05  # how often used-up variants are looked for
BREATH_SECONDS = 0.0005  # rest after each render pass: a flood of latent moves cannot make this
# real-time thread take a whole core; the moves that arrive meanwhile coalesce into one render
REST_FRACTION = 0.25  # rest after each decoder run, as a part of its time (RenderWorker._rest)
SETTLE_SECONDS = 0.15  # renders of a pad closer than this are quick; the third in a row a draft


def prepare_sound(audio: np.ndarray, model_rate: int, device_rate: int) -> np.ndarray | None:
    """DC-block and resample a rendered sound, reject it if broken, trim its silent tail with a
    short fade.

    Returns None when the sound is not finite: such a buffer must never reach a voice.
    """
    if not np.all(np.isfinite(audio)):
        return None
    sound = dc_block(audio, model_rate)
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


def stack_layers(layers: Sequence[np.ndarray]) -> np.ndarray:
    """[layers, samples], shorter layers padded with silence."""
    length = max(1, *(layer.shape[0] for layer in layers))
    out = np.zeros((len(layers), length), np.float32)
    for row, layer in zip(out, layers, strict=True):
        row[: layer.shape[0]] = layer
    return out


def _variant_count(pad: Pad) -> int:
    return VARIANTS if pad.variation > 0.0 else 1


def _full_render_size(pad: Pad) -> int:
    """How many latents a pad's full render takes: variants x velocity layers."""
    return _variant_count(pad) * len(pad.velocity_latents(VELOCITY_LAYERS))


def _sound_key(pad: Pad) -> tuple[object, ...]:
    """What a pad's audio depends on (gain, pan, choke, polyphony and curve do not)."""
    return (pad.class_name, pad.latent, pad.timbre_direction, pad.timbre_amount, pad.variation)


class RenderWorker:
    """Owns the decoder; renders dirty pads in one batched call; publishes `PadSound`s."""

    def __init__(
        self,
        decoder: Decoder,
        pads: PadBank,
        device_rate: int,
        publish: Callable[[PadSound], None],
        on_rejected: Callable[[int], None] = lambda note: None,
        hits: Sequence[int] = (0,) * 128,
        unpublish: Callable[[int], None] = lambda note: None,
    ) -> None:
        self.decoder = decoder
        self.pads = pads
        self.device_rate = device_rate
        self._publish = publish
        self._unpublish = unpublish  # a pad was removed: its note plays nothing
        self._on_rejected = on_rejected
        self._hits = hits
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="dkvae-render", daemon=True)
        # Per note: the sound key and variants last rendered, and the hit count at publication.
        self._rendered: dict[int, tuple[tuple[object, ...], tuple[np.ndarray, ...]]] = {}
        self._hits_at_render: dict[int, int] = {}
        self._rendered_at: dict[int, float] = {}  # per note: when its last render was published
        self._quick: set[int] = set()  # notes whose last render came quickly after the one before
        self._drafts: set[int] = set()  # notes whose published sound is a draft
        self._rng = np.random.default_rng()
        self._next_decoder: Decoder | None = None
        self._retired: list[object] = []  # old sessions to let go of, one per rest
        self.renders = 0

    def request(self, note: int) -> None:
        """Mark a pad to be rendered again. Cheap, never blocks for long; any thread."""
        with self._lock:
            self._dirty.add(note)
        self._wake.set()

    def swap_decoder(self, decoder: Decoder, *retired: object) -> None:
        """Render every pad with `decoder` and publish; the old sounds play until then.

        The old decoder and `retired` (the old encoder) are let go of after that, one at a time
        with a rest between: dropping an onnxruntime session holds the GIL for 0.5-1 ms."""
        with self._lock:
            self._next_decoder = decoder
            self._retired += retired
            self._dirty |= set(self.pads.notes())
        self._wake.set()

    def render_now(self, notes: list[int]) -> None:
        """Render these pads in the calling thread (at start-up, before the audio runs)."""
        self._render(notes)

    def refresh_now(self) -> None:
        """Render afresh, in the calling thread, the variants that hits have used up."""
        used_up = self._used_up()
        if used_up:
            self._render(sorted(used_up))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        promote_current_thread(1)
        while not self._stopping:
            self._wake.wait(REFRESH_SECONDS)
            if self._stopping:
                return
            self._wake.clear()
            with self._lock:
                dirty, self._dirty = self._dirty, set()
                decoder, self._next_decoder = self._next_decoder, None
                if decoder is not None:
                    self._retired.append(self.decoder)
            if decoder is not None:
                self.decoder = decoder
                self._rendered.clear()
            moving, settled = self._moving_and_settled(dirty)
            notes = dirty | settled | self._used_up()
            if notes:
                try:
                    self._render(sorted(notes), rest=self._rest, drafts=moving)
                except Exception:  # a worker that dies leaves the pads stale: log, keep going
                    log.exception("render failed for notes %s", sorted(notes))
                time.sleep(BREATH_SECONDS)
            while self._retired:
                with self._lock:
                    old = self._retired.pop() if self._retired else None
                del old
                time.sleep(BREATH_SECONDS)

    @staticmethod
    def _rest(since: float) -> None:
        """Rest after a decoder run that began at `since`: REST_FRACTION of its time, at least
        BREATH_SECONDS. This is a SCHED_FIFO thread. Kept busy (latent moves over the shipped
        kit while its varying pads are hit, or a swap) it took all of a core, and when the
        real-time threads of a core use 95 % of a second, Linux stops them all for the rest of
        it (RT throttling), JACK's threads too. Measured in a soak on the shipped model: the
        renderer's core seen throttled at the 950 ms cap 30 times in 4 minutes; never after
        this rest, in as long. Resting a quarter of the work keeps this thread under 80 %."""
        time.sleep(max(BREATH_SECONDS, REST_FRACTION * (time.monotonic() - since)))

    def _moving_and_settled(self, dirty: set[int]) -> tuple[set[int], set[int]]:
        """(dirty pads that keep moving: draw them as drafts, pads whose draft has been still
        for SETTLE_SECONDS: render them in full)."""
        now = time.monotonic()
        recent = {n for n, at in self._rendered_at.items() if now - at < SETTLE_SECONDS}
        moving = dirty & recent & self._quick
        return moving, self._drafts - recent - dirty

    def _used_up(self) -> set[int]:
        """Pads that vary per hit and have played half their variants since they were rendered."""
        return {
            note
            for note, (key, variants) in self._rendered.items()
            if len(variants) > 1
            and self._hits[note] - self._hits_at_render.get(note, 0) >= len(variants) // 2
        }

    def _latents(self, pad: Pad, draft: bool) -> list[tuple[float, ...]]:
        """Every latent to render for a pad: variants x velocity layers, variant-major; a
        draft's is the pad's own latent alone (its middle layer)."""
        if draft:
            return [pad.latent]
        base = [pad]
        if pad.variation > 0.0:
            offsets = self._rng.normal(0.0, pad.variation, (VARIANTS, len(pad.latent)))
            base = [
                Pad(
                    pad.note,
                    pad.class_name,
                    tuple(np.add(pad.latent, o).tolist()),
                    timbre_direction=pad.timbre_direction,
                    timbre_amount=pad.timbre_amount,
                )
                for o in offsets
            ]
        return [latent for p in base for latent in p.velocity_latents(VELOCITY_LAYERS)]

    def _render(
        self,
        notes: list[int],
        rest: Callable[[float], None] = lambda since: None,
        drafts: Collection[int] = (),
    ) -> None:
        """Render these pads and publish each; a pad whose sound is cached is published as is,
        a pad in `drafts` is drawn as a draft.

        Pads go to the decoder a few at a time (about RUN_BATCH latents), with `rest` called
        after each run: after a model swap every pad is rendered, and this real-time thread
        would otherwise keep a core for a quarter of a second, where a thread of ours that
        holds the GIL may wait."""
        used_up = self._used_up()
        groups: list[list[tuple[Pad, list[tuple[float, ...]], bool]]] = [[]]
        size = 0
        for note in notes:
            pad = self.pads.get(note)
            if pad is None:
                self._rendered.pop(note, None)
                self._rendered_at.pop(note, None)
                self._quick.discard(note)
                self._drafts.discard(note)
                self._unpublish(note)
                continue
            cached = self._rendered.get(note)
            if cached and cached[0] == _sound_key(pad) and note not in used_up:
                self._drafts.discard(note)
                self._publish_pad(pad, cached[1])
                continue
            if size >= RUN_BATCH:
                groups.append([])
                size = 0
            draft = note in drafts and _full_render_size(pad) > 1
            latents = self._latents(pad, draft)
            groups[-1].append((pad, latents, draft))
            size += len(latents)
        for group in (g for g in groups if g):
            started = time.monotonic()
            self._render_group(group)
            rest(started)

    def _render_group(self, group: list[tuple[Pad, list[tuple[float, ...]], bool]]) -> None:
        """Render a few pads in one decoder call: (pad, its latents, whether a draft) each."""
        info = self.decoder.info
        latents = [latent for _, pad_latents, _ in group for latent in pad_latents]
        classes = [info.class_index(pad.class_name) for pad, ls, _ in group for _ in ls]
        audio = self.decoder.render(np.array(latents, np.float32), np.array(classes, np.int64))
        self.renders += len(latents)
        start = 0
        for pad, pad_latents, draft in group:
            count = len(pad_latents)
            prepared = [
                prepare_sound(raw, info.sample_rate, self.device_rate)
                for raw in audio[start : start + count]
            ]
            start += count
            if any(p is None for p in prepared):
                self._on_rejected(pad.note)
                continue
            sounds = [p for p in prepared if p is not None]
            layers = len(sounds) // (1 if draft else _variant_count(pad))
            variants = tuple(
                stack_layers(sounds[i : i + layers]) for i in range(0, len(sounds), layers)
            )
            now, last = time.monotonic(), self._rendered_at.get(pad.note)
            if last is not None and now - last < SETTLE_SECONDS:
                self._quick.add(pad.note)
            else:
                self._quick.discard(pad.note)
            self._rendered_at[pad.note] = now
            if draft:
                self._drafts.add(pad.note)
            else:
                self._drafts.discard(pad.note)
                self._rendered[pad.note] = (_sound_key(pad), variants)
                self._hits_at_render[pad.note] = self._hits[pad.note]
            # The pad may have changed while we rendered; a newer request is already queued.
            self._publish_pad(pad, variants)

    def _publish_pad(self, pad: Pad, variants: tuple[np.ndarray, ...]) -> None:
        left, right = pad.channel_gains()
        self._publish(
            PadSound(
                pad.note, variants, left, right, pad.choke_group, pad.polyphony, pad.velocity_curve
            )
        )
