"""The render worker: runs the decoder whenever a pad changes, ahead of any note.

Changes are coalesced (latest wins): a burst of 100 latent moves on one pad while a render runs
costs one more render, not 100. A pad that keeps moving (a knob swept from Max or a MIDI
controller: a third change in a row, each within SETTLE_SECONDS of the last render) is
rendered as a draft, one latent alone (its velocity layer nearest the velocity it was last
played at, played at every velocity): no variants, a fifth to a fortieth of the work, so the
sweep is heard sooner and costs the CPU (and JACK's threads beside it) less; once it has been
still for SETTLE_SECONDS it is rendered in full. A few settings sent together (a patch setting a
pad's timbre) are not a sweep. Any other change is drawn as a draft first too, published (its
beginning, ONSET_SECONDS, as soon as it is made, then the whole, which a hit on the beginning
carries on in), and then rendered in full at once: the next hit plays the new latent after
one decoder run, not after every layer and variant (and, for a log-magnitude model, before
its phase is refined). A change that comes during a long render (a pad of many latents:
hundreds of milliseconds) has its draft made between two of its latents' decoder runs, two
phase iterations of a sound, or two sounds' preparations, and if the render under way is of
the changed pad alone it is abandoned, out of date.

In full, a pad is the velocity layers (when velocity moves timbre) of one or more variants (when
the pad varies per hit), all in one call of Decoder.render. The worker resamples each sound to the
device rate, checks it, trims its silent tail and publishes a `PadSound` by replacing one
reference, which the audio callback reads. The callback never waits for this thread. Variants
that hits have used up are rendered afresh in the background. At rest (no pad changing, no hit
in the last HIT_WATCH_SECONDS) the thread sleeps until it is asked for something.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence

import numpy as np

from . import contract
from .dcblock import dc_block
from .duty import Duty
from .model import RUN_BATCH, Decoder, RenderStopped
from .pad_sound import FADE_SECONDS, FULL_SCALE, Encoded, PadSound, encode_variants
from .pads import Pad, PadBank
from .peak_limit import limit_peaks
from .resample import resample
from .rt import name_current_thread, promote_current_thread, release_free_memory, settle_heap

log = logging.getLogger(__name__)

SILENCE = 10 ** (-80 / 20)  # tail below -80 dBFS is not played
VELOCITY_LAYERS = 5  # rendered when velocity moves timbre; neighbours are crossfaded
VARIANTS = 8  # rendered when a pad varies per hit
REFRESH_SECONDS = 0.05  # how often used-up variants are looked for, while hits come
HIT_WATCH_SECONDS = 1.0  # ... for this long after a hit (the callback counts hits, not us)
THREAD_NAME = "dkvae-render"
BREATH_SECONDS = 0.0005  # rest after each render pass: a flood of latent moves cannot make this
# real-time thread take a whole core; the moves that arrive meanwhile coalesce into one render
# Kept busy, the worker works WORK_SHARE of its time at most, resting REST_FRACTION of its work
# (RenderWorker._rest); rested, it first works BURST_SECONDS on end: a pad's full render
WORK_SHARE = 0.75
REST_FRACTION = (1.0 - WORK_SHARE) / WORK_SHARE
BURST_SECONDS = 0.1
# With no decoder run for this long, the decoder's arena is given back (Decoder.release_arena):
# a daemon at rest holds no batch's tensors, and one knob turned now and then finds them kept
ARENA_REST_SECONDS = 5.0
# a pad's draft before it is first played: its own latent, the middle of its velocity layers
DRAFT_VELOCITY = 64
SETTLE_SECONDS = 0.15  # renders of a pad closer than this are quick; the third in a row a draft
# A render whose content above ULTRASONIC_HZ is louder than ULTRASONIC_LIMIT_DBFS (RMS) is
# refused: it is no sound anyone hears, and a tweeter or an ear can be hurt by it (a CGAN drew
# a hi-hat as a loud 21.4 kHz tone). The shipped model's cymbals reach -45 dBFS up there.
ULTRASONIC_HZ = 20_000.0
ULTRASONIC_LIMIT_DBFS = -30.0
ULTRASONIC_LIMIT = 10 ** (ULTRASONIC_LIMIT_DBFS / 20)  # as an RMS
REJECTED_NOT_FINITE = "render.not_finite"
REJECTED_ULTRASONIC = "render.ultrasonic"
LATENCIES_KEPT = 256  # the latest changes whose time to a first sound and a full pad is kept
# A change's first sound is published in two steps: its first ONSET_SECONDS, as soon as they
# are made, then the whole, which a hit on the beginning carries on in (Mixer.publish). Both are
# stored at ONSET_SCALE: full scale, which prepare_sound's sounds never pass, however much
# louder than the beginning the rest is.
ONSET_SECONDS = 0.1
ONSET_SCALE = 1.0 / FULL_SCALE


def ultrasonic_rms(audio: np.ndarray, rate: int) -> np.ndarray:
    """Per row of `audio` [rows, samples] at `rate`: the RMS of its content above
    ULTRASONIC_HZ, where it may matter; 0 where it cannot (no such content at this rate, or
    under the limit) and for a row that is not finite (prepare_sound refuses those).

    A third difference has a gain of at least `floor` everywhere above ULTRASONIC_HZ, so its
    power over `floor` bounds the power up there (Parseval), for a third of an FFT's cost
    (0.3 against 0.7 ms for a second at 44.1 kHz, measured on the shipped model). Only the
    rows that the bound does not clear below the limit get an FFT."""
    out = np.zeros(audio.shape[0])
    if rate <= 2 * ULTRASONIC_HZ or audio.shape[1] < 4:
        return out
    floor = (2.0 * np.sin(np.pi * ULTRASONIC_HZ / rate)) ** 6  # |1 - 1/z|^6 at ULTRASONIC_HZ
    third = np.diff(audio, n=3, axis=1)
    bound = np.sqrt(np.einsum("ij,ij->i", third, third, dtype=np.float64) / third.shape[1] / floor)
    above = np.fft.rfftfreq(audio.shape[1], 1.0 / rate) >= ULTRASONIC_HZ
    for row in np.flatnonzero(bound > ULTRASONIC_LIMIT):
        spectrum = np.fft.rfft(audio[row])[above]
        out[row] = np.sqrt(2.0 * np.sum(np.abs(spectrum) ** 2)) / audio.shape[1]
    return out


def prepare_sound(audio: np.ndarray, model_rate: int, device_rate: int) -> np.ndarray | None:
    """DC-block and resample a rendered sound, reject it if broken, bring its peaks down to
    full scale, trim its silent tail with a short fade.

    Returns None when the sound is not finite: such a buffer must never reach a voice.
    """
    if not np.all(np.isfinite(audio)):
        return None
    # a silent tail (Decoder.render's floor) costs nothing to filter and resample
    nonzero = np.flatnonzero(audio)
    audio = audio[: nonzero[-1] + 1 if nonzero.size else 0]
    sound = limit_peaks(resample(dc_block(audio, model_rate), model_rate, device_rate), device_rate)
    # the last sample over SILENCE
    loud = np.abs(sound[::-1]) > SILENCE
    end = sound.shape[0] - int(np.argmax(loud)) if sound.size and loud.any() else 0
    fade = min(end, int(FADE_SECONDS * device_rate))
    sound = np.array(sound[:end], np.float32)  # a copy: the voice owns it
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


class _Redrafted(RenderStopped):
    """Every pad of a full render under way changed, and its draft is out: the render is
    abandoned, and they are rendered in full from their new latents in the next pass."""


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
        on_rejected: Callable[[int, str], None] = lambda note, reason: None,
        hits: Sequence[int] = (0,) * 128,
        unpublish: Callable[[int], None] = lambda note: None,
        on_first_pass: Callable[[], None] = lambda: None,
        output_of: Callable[[Pad], str] = lambda pad: "",
    ) -> None:
        """`output_of(pad)`: the output pair a pad's sound also plays on (outputs.router)."""
        self.decoder = decoder
        self.pads = pads
        self.device_rate = device_rate
        self._publish = publish
        self._unpublish = unpublish  # a pad was removed: its note plays nothing
        self._on_rejected = on_rejected
        self._on_first_pass = on_first_pass  # every pad was rendered once (or failed)
        self._output_of = output_of
        self._hits = hits
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._hit_at = -HIT_WATCH_SECONDS  # monotonic time of the last hit we were told of
        # the velocity each note was last played at: what its draft sounds like
        self._velocity = [DRAFT_VELOCITY] * 128
        self._asleep = False  # asleep with no timeout: a hit must wake us
        self._render_all = False
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        # Per note: the sound key and variants last rendered, and the hit count at publication.
        self._rendered: dict[int, tuple[tuple[object, ...], Encoded]] = {}
        self._hits_at_render: dict[int, int] = {}
        self._rendered_at: dict[int, float] = {}  # per note: when its last render was published
        self._quick: set[int] = set()  # notes whose last render came quickly after the one before
        self._drafts: set[int] = set()  # notes whose published sound is a draft
        # notes whose full render a change of another pad cut short, or the start left to
        # the loop: rendered in full next, without a draft
        self._unfinished: set[int] = set()
        # changed pads whose draft was made in the middle of a full render: in full next
        self._drafted_midway: set[int] = set()
        self._rendering: set[int] = set()  # the pads of the decoder call under way
        self._work_since = 0.0  # when the work not yet rested for began (_rest)
        self._duty = Duty(WORK_SHARE, BURST_SECONDS)
        self._last_run = 0.0  # when the decoder last ran
        self._arena_held = False  # it ran since its arena was last given back
        self._drafted_at_start: float | None = None  # when the start's first pass ended
        self._rng = np.random.default_rng()
        self._next_decoder: Decoder | None = None
        self._retired: list[object] = []  # old sessions to let go of, one per rest
        self.renders = 0
        # When each pad's sound was first asked for since its last render (request() -> the
        # worker takes it), and the changes taken that wait for a first sound / a full pad.
        self._requested: dict[int, float] = {}
        self._awaiting_first: dict[int, float] = {}
        self._awaiting_full: dict[int, float] = {}
        self._first_sound_ms: deque[float] = deque(maxlen=LATENCIES_KEPT)
        self._full_pad_ms: deque[float] = deque(maxlen=LATENCIES_KEPT)

    def request(self, note: int) -> None:
        """Mark a pad to be rendered again. Cheap, never blocks for long; any thread."""
        with self._lock:
            self._dirty.add(note)
            self._requested.setdefault(note, time.monotonic())
        self._wake.set()

    def latencies(self) -> tuple[list[float], list[float]]:
        """Milliseconds from a change of a pad's sound (its request) to its first sound
        published, and to its full pad (every layer and variant) published, for the latest
        LATENCIES_KEPT changes, oldest first. Changes that came together count once; a pad
        with nothing to draft first has its full render as its first sound. Any thread."""
        with self._lock:
            return list(self._first_sound_ms), list(self._full_pad_ms)

    def hit(self, note: int, velocity: int) -> None:
        """A note was played (any thread): look for used-up variants for a while; the pad's
        drafts are its sound at this velocity."""
        self._velocity[note & 127] = velocity
        self._hit_at = time.monotonic()
        if self._asleep:
            self._wake.set()

    def _wait_timeout(self) -> float | None:
        """How long to sleep before looking again for drafts that have settled and variants
        used up; None: until asked."""
        now = time.monotonic()
        if self._unfinished or self._drafted_midway:
            return 0.0
        if self._drafts:  # the first to settle is rendered in full then
            settles = min(self._rendered_at.get(n, now) for n in self._drafts) + SETTLE_SECONDS
            return max(REFRESH_SECONDS, settles - now)
        self._asleep = True  # before reading _hit_at: a hit after this read wakes us
        varying = any(len(variants) > 1 for _, (variants, _) in self._rendered.values())
        if varying and now - self._hit_at < HIT_WATCH_SECONDS:
            self._asleep = False
            return REFRESH_SECONDS
        if self._arena_held:
            return max(0.0, self._last_run + ARENA_REST_SECONDS - now)
        return None

    def _release_arena_at_rest(self) -> None:
        if not self._arena_held or time.monotonic() - self._last_run < ARENA_REST_SECONDS:
            return
        self._arena_held = False
        try:
            self.decoder.release_arena()
        except Exception:  # the memory stays held; the pads play on
            log.exception("giving back the decoder's arena failed")
        release_free_memory()

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

    @property
    def latest_decoder(self) -> Decoder:
        """The decoder given last: the one rendering, or the one `swap_decoder` gave."""
        with self._lock:
            return self._next_decoder or self.decoder

    def start(self, render_all: bool = False, device_rate: int | None = None) -> None:
        """Start the thread; `render_all`: it renders every pad first, then calls
        `on_first_pass` (a daemon's start: the inputs are served meanwhile). `device_rate`:
        the audio device's rate, where it was not known when the worker was made."""
        if device_rate is not None:
            self.device_rate = device_rate
        self._render_all = render_all
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():  # a daemon whose start failed never started it
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        name_current_thread(THREAD_NAME)
        if self._render_all:
            # Each pad plays as soon as its group is published, while the inputs are served
            # already: as a draft where that is cheaper, so that every pad plays within a
            # second; the loop then renders those in full. Then the objects made so far stay
            # out of garbage collections. This pass runs before the thread is real-time, so it
            # needs no rests (see _rest): the kernel shares the cores with it fairly.
            every = self.pads.notes()
            drafted = [n for n in every if self._draft_is_cheaper(n)]
            try:
                self._render(drafted, drafts=drafted, first_sound=True)
                self._render([n for n in every if n not in drafted])
            except Exception:
                log.exception("the first render of the pads failed")
            self._unfinished = set(drafted)
            self._drafted_at_start = time.monotonic()
            settle_heap()
            self._on_first_pass()
            if not drafted:
                self._full_quality()
        promote_current_thread(1)
        while not self._stopping:
            self._wake.wait(self._wait_timeout())
            self._asleep = False
            if self._stopping:
                return
            self._wake.clear()
            with self._lock:
                dirty = self._take(self._dirty)
                midway, self._drafted_midway = self._drafted_midway, set()
                decoder, self._next_decoder = self._next_decoder, None
                if decoder is not None:  # under the lock: latest_decoder never sees the old
                    self._retired.append(self.decoder)
                    self.decoder = decoder
            if decoder is not None:
                self._rendered.clear()
            moving, settled = self._moving_and_settled(dirty)
            first = self._drafted_first(dirty, moving)
            if first:  # what the next hit needs first: each changed pad's draft
                try:
                    self._render(sorted(first), rest=self._rest, drafts=first, first_sound=True)
                except Exception:
                    log.exception("render failed for notes %s", sorted(first))
                with self._lock:  # changed again meanwhile: drafted first next time round
                    dirty -= self._dirty
            dirty |= midway
            notes = dirty | settled | self._used_up() | self._unfinished
            self._unfinished = set()
            if notes:
                try:
                    # the changed pads first: what was left of a pass cut short waits for them
                    order = sorted(dirty) + sorted(notes - dirty)
                    self._unfinished = self._render(
                        order, rest=self._rest, drafts=moving, interruptible=True
                    )
                except Exception:  # a worker that dies leaves the pads stale: log, keep going
                    log.exception("render failed for notes %s", sorted(notes))
                if not self._unfinished:
                    self._full_quality()
                time.sleep(BREATH_SECONDS)
            while self._retired:
                with self._lock:
                    old = self._retired.pop() if self._retired else None
                del old
                time.sleep(BREATH_SECONDS)
            self._release_arena_at_rest()

    def _take(self, notes: Collection[int]) -> set[int]:
        """Take these changed pads from the dirty set (under the lock) and start the clocks of
        their first sound and full pad."""
        taken = set(notes)
        self._dirty -= taken
        for note in taken & self._requested.keys():
            since = self._requested.pop(note)
            self._awaiting_first.setdefault(note, since)  # the player waits since
            self._awaiting_full[note] = since  # a sweep's full pad comes once it is still
        return taken

    def _between_sounds(self) -> None:
        """Called by the decoder between the sounds of a full render, which for a pad of many
        latents with a spectrogram model is seconds of work, and between a sound's phase
        iterations: a stop is prompt, and a pad changed meanwhile plays its draft now, not
        after the render (its full render comes first in the next pass). A pad with nothing
        cheaper to draft waits, as a sweep's does."""
        if self._stopping:
            raise RenderStopped
        # the rest for the work just done, here rather than after the whole call; once there
        # is enough of it that a rest owed is REST_FRACTION of it, not BREATH_SECONDS at least
        if time.monotonic() - self._work_since > BREATH_SECONDS / REST_FRACTION:
            self._rest(self._work_since)
            self._work_since = time.monotonic()
        if not self._dirty:
            return
        with self._lock:
            changed = set(self._dirty)
        candidates = self._drafts_next(changed)
        with self._lock:
            first = self._take(candidates & self._dirty)
        if first:
            rendering = self._rendering
            self._render(sorted(first), rest=self._rest, drafts=first, first_sound=True)
            self._drafted_midway |= first
            self._work_since = time.monotonic()  # the drafts had their rest
            if rendering <= self._drafted_midway:  # what is rendered in full is out of date
                for note in rendering:  # still a render, for telling a sweep (as _overtaken)
                    self._rendered_now(note)
                raise _Redrafted

    def _rendered_now(self, note: int) -> None:
        """Count a render of this pad now: the third of them in a row, each within
        SETTLE_SECONDS of the one before, tells a sweep (_moving_and_settled)."""
        now, last = time.monotonic(), self._rendered_at.get(note)
        if last is not None and now - last < SETTLE_SECONDS:
            self._quick.add(note)
        else:
            self._quick.discard(note)
        self._rendered_at[note] = now

    def _overtaken(self, note: int) -> bool:
        """Whether a pad's full render under way is out of date: the pad changed since, and
        its new draft comes next (a sweep's pad is published all the same: its renders tell
        the sweep). Preparing a pad's many sounds takes tens of milliseconds."""
        return note in self._dirty and bool(self._drafts_next({note}))

    def _full_quality(self) -> None:
        """Log, once after the start, that every pad plays its full render."""
        if self._drafted_at_start is not None:
            log.info(
                "full quality: every pad rendered in full, %.2f s after ready",
                time.monotonic() - self._drafted_at_start,
            )
            self._drafted_at_start = None

    def _rest(self, since: float) -> None:
        """Rest after the work that began at `since`, as much as it owes (Duty): nothing while
        its burst lasts, then REST_FRACTION of its work, at least BREATH_SECONDS. This is a
        SCHED_FIFO thread: kept busy (latent moves over the shipped kit while its varying pads
        are hit, or a swap) it took all of a core, and when the real-time threads of a core use
        95 % of a second, Linux stops them all for the rest of it (RT throttling), JACK's too
        (docs/performance.md)."""
        owed = self._duty.owed(since)
        if owed > 0.0:
            time.sleep(max(BREATH_SECONDS, owed))

    def _moving_and_settled(self, dirty: set[int]) -> tuple[set[int], set[int]]:
        """(dirty pads that keep moving: draw them as drafts, pads whose draft has been still
        for SETTLE_SECONDS: render them in full)."""
        now = time.monotonic()
        recent = {n for n, at in self._rendered_at.items() if now - at < SETTLE_SECONDS}
        moving = dirty & recent & self._quick
        return moving, self._drafts - recent - dirty

    def _drafts_next(self, changed: set[int]) -> set[int]:
        """Of these changed pads, those whose draft is made as soon as the worker can: not a
        sweep's, and cheaper to draft than to render in full."""
        return self._drafted_first(changed, self._moving_and_settled(changed)[0])

    def _drafted_first(self, changed: set[int], moving: set[int]) -> set[int]:
        """The changed pads whose first sound is a draft: those not moving (a sweep's drafts
        are its renders) and cheaper to draft than to render in full. Reads the pads."""
        return {n for n in changed - moving if self._draft_is_cheaper(n)}

    def _draft_is_cheaper(self, note: int) -> bool:
        """Whether a draft of this pad costs less than its full render: it has more than one
        latent, or the model's full render refines a phase the draft leaves as it comes."""
        pad = self.pads.get(note)
        return pad is not None and (
            _full_render_size(pad) > 1 or self.decoder.info.output_kind == contract.LOG_MAGNITUDE
        )

    def _used_up(self) -> set[int]:
        """Pads that vary per hit and have played half their variants since they were rendered."""
        return {
            note
            for note, (key, (variants, _)) in self._rendered.items()
            if len(variants) > 1
            and self._hits[note] - self._hits_at_render.get(note, 0) >= len(variants) // 2
        }

    def _latents(self, pad: Pad, draft: bool) -> list[tuple[float, ...]]:
        """Every latent to render for a pad: variants x velocity layers, variant-major; a
        draft's is one latent alone: the pad's velocity layer nearest the velocity it was last
        played at, so that a player who keeps that velocity hears the draft of their sound, and
        that layer's sound kept starts from the draft's phase (Decoder.render)."""
        if draft:
            return [pad.layer_latent(self._velocity[pad.note], VELOCITY_LAYERS)]
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
        first_sound: bool = False,
        interruptible: bool = False,
    ) -> set[int]:
        """Render these pads and publish each; a pad whose sound is cached is published as is,
        a pad in `drafts` is drawn as a draft. `first_sound`: these drafts come just before
        their full renders, so they do not count as renders for telling a sweep.
        `interruptible`: when another pad changes meanwhile, stop after the decoder call under
        way, so that its first sound need not wait for this whole pass; returns the notes
        left. Within a call, a changed pad's draft is made between two sounds
        (_between_sounds).

        Pads go to the decoder a few at a time (about RUN_BATCH latents), with `rest` called
        after each run: after a model swap every pad is rendered, and this real-time thread
        would otherwise keep a core for a quarter of a second, where a thread of ours that
        holds the GIL may wait."""
        used_up = self._used_up()
        todo: list[tuple[Pad, list[tuple[float, ...]], bool]] = []
        for note in notes:
            pad = self.pads.get(note)
            if pad is None:
                self._rendered.pop(note, None)
                self._rendered_at.pop(note, None)
                self._quick.discard(note)
                self._drafts.discard(note)
                self._unpublish(note)
                self._awaiting_first.pop(note, None)
                self._awaiting_full.pop(note, None)
                continue
            cached = self._rendered.get(note)
            if cached and cached[0] == _sound_key(pad) and note not in used_up:
                self._drafts.discard(note)
                self._publish_pad(pad, cached[1])
                self._awaiting_first.pop(note, None)  # nothing was rendered: no latency
                self._awaiting_full.pop(note, None)
                continue
            draft = note in drafts and self._draft_is_cheaper(note)
            todo.append((pad, self._latents(pad, draft), draft))
        # drafts first, and never in one decoder call with full renders: a call is one or other
        todo.sort(key=lambda item: not item[2])
        # A spectrogram model's full render is mostly each sound's phase, which a batch does
        # not make cheaper: there each pad is a call of its own, published as soon as it is done.
        alone = self.decoder.info.output_kind == contract.LOG_MAGNITUDE
        groups: list[list[tuple[Pad, list[tuple[float, ...]], bool]]] = []
        size = 0
        for item in todo:
            full_alone = alone and not item[2]
            if not groups or size >= RUN_BATCH or groups[-1][0][2] != item[2] or full_alone:
                groups.append([])
                size = 0
            groups[-1].append(item)
            size += len(item[1])
        for i, group in enumerate(groups):
            if self._stopping:  # a stop during a long pass (start-up, model swap) is prompt
                return set()
            if interruptible and i > 0 and self._dirty:
                return {pad.note for later in groups[i:] for pad, _, _ in later}
            self._work_since = time.monotonic()
            between = self._between_sounds if interruptible and not group[0][2] else None
            outer, self._rendering = self._rendering, {pad.note for pad, _, _ in group}
            try:
                self._render_group(group, first_sound, between)
            except _Redrafted:  # its pads are rendered in full in the next pass
                pass
            except RenderStopped:  # the worker stops
                return set()
            finally:
                self._rendering = outer
            rest(self._work_since)
        return set()

    def _render_group(
        self,
        group: list[tuple[Pad, list[tuple[float, ...]], bool]],
        first_sound: bool = False,
        between: Callable[[], None] | None = None,
    ) -> None:
        """Render a few pads in one decoder call: (pad, its latents, whether a draft) each,
        all drafts or none. `between`: see Decoder.render. A pad that changed meanwhile is
        published all the same (its new sound is queued), unless the draft of its new sound
        is out already."""
        info = self.decoder.info
        latents = np.array([latent for _, ls, _ in group for latent in ls], np.float32)
        classes = np.array(
            [info.class_index(pad.class_name) for pad, ls, _ in group for _ in ls], np.int64
        )
        self._arena_held = True
        self._last_run = time.monotonic()
        self.renders += len(latents)
        lead, lead_latents, drafts = group[0]
        onset = int(ONSET_SECONDS * info.sample_rate)
        if first_sound and drafts and onset < info.num_samples:
            # what the next hit needs first is the beginning of each draft: that alone, then
            # the whole, which a voice playing the beginning carries on in (Mixer.publish)
            steps = self.decoder.drafts_onset_first(latents, classes, onset, SILENCE)
            begun = self._publish_group(group, next(steps), first_sound, onset=True)
            self._publish_group(group, next(steps), first_sound, continuing=begun)
            return
        # one pad in full: its variants' velocity layers, whose phases the decoder relates
        alone = len(group) == 1 and not drafts
        layers = len(lead_latents) // _variant_count(lead) if alone else 1
        audio = self.decoder.render(
            latents, classes, draft=drafts, between=between, floor=SILENCE, layers=layers
        )
        self._publish_group(group, audio, first_sound, between=between)

    def _publish_group(
        self,
        group: list[tuple[Pad, list[tuple[float, ...]], bool]],
        audio: np.ndarray,
        first_sound: bool,
        onset: bool = False,
        continuing: Collection[int] | None = None,
        between: Callable[[], None] | None = None,
    ) -> set[int]:
        """Check, prepare and publish each pad's rows of `audio` [latents, samples] (the
        model's rate); returns the notes published. `onset`: the rows are the beginnings of
        drafts; `continuing`: the rows are the whole of those drafts, published as carrying on
        the beginnings of these notes. Both are stored at ONSET_SCALE. `between` (a full
        render's, see Decoder.render) is called before each sound is checked and prepared: a
        varying pad's 40 take tens of milliseconds, and a pad changed meanwhile plays its
        draft first; a pad of this render drafted so is not published."""
        info = self.decoder.info
        published: set[int] = set()
        start = 0
        for pad, pad_latents, draft in group:
            count = len(pad_latents)
            rows = slice(start, start + count)
            start += count
            if not draft and pad.note in self._drafted_midway:  # its newer sound is out
                continue
            if continuing is not None and pad.note not in continuing:  # beginning refused
                continue
            prepared: list[np.ndarray | None] = []
            ultrasonic = False
            for raw in audio[rows]:
                if between is not None:
                    between()
                if not draft and (pad.note in self._drafted_midway or self._overtaken(pad.note)):
                    break
                if ultrasonic_rms(raw[None], info.sample_rate)[0] > ULTRASONIC_LIMIT:
                    ultrasonic = True
                    break
                prepared.append(prepare_sound(raw, info.sample_rate, self.device_rate))
            if ultrasonic:  # the pad keeps its sound
                self._on_rejected(pad.note, REJECTED_ULTRASONIC)
                continue
            if len(prepared) < count:  # overtaken: still a render, for telling a sweep
                self._rendered_now(pad.note)
                continue
            if any(p is None for p in prepared):
                self._on_rejected(pad.note, REJECTED_NOT_FINITE)
                continue
            sounds = [p for p in prepared if p is not None]
            layers = len(sounds) // (1 if draft else _variant_count(pad))
            stacked = [stack_layers(sounds[i : i + layers]) for i in range(0, len(sounds), layers)]
            # the rest of a draft may be louder than its beginning: both at full scale
            split = onset or continuing is not None
            variants = encode_variants(stacked, (ONSET_SCALE,) * len(stacked) if split else None)
            published.add(pad.note)
            if first_sound:  # its full render follows at once
                self._publish_pad(pad, variants, continues=continuing is not None)
                if continuing is None:
                    self._published_latency(pad.note, full=False)
                continue
            self._rendered_now(pad.note)
            if draft:
                self._drafts.add(pad.note)
            else:
                self._drafts.discard(pad.note)
                self._rendered[pad.note] = (_sound_key(pad), variants)
                self._hits_at_render[pad.note] = self._hits[pad.note]
            self._publish_pad(pad, variants)
            self._published_latency(pad.note, full=not draft)
        return published

    def _published_latency(self, note: int, full: bool) -> None:
        """Note the time from the changes of this pad that waited to this publication."""
        now = time.monotonic()
        since = self._awaiting_first.pop(note, None)
        full_since = self._awaiting_full.pop(note, None) if full else None
        with self._lock:
            if since is not None:
                self._first_sound_ms.append(round(1000.0 * (now - since), 2))
            if full_since is not None:
                self._full_pad_ms.append(round(1000.0 * (now - full_since), 2))

    def _publish_pad(self, pad: Pad, variants: Encoded, continues: bool = False) -> None:
        left, right = pad.channel_gains()
        self._publish(
            PadSound(
                pad.note,
                *variants,
                left,
                right,
                pad.choke_group,
                pad.polyphony,
                pad.velocity_curve,
                self._output_of(pad),
                continues,
            )
        )
