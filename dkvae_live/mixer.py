"""The mixer: what the audio callback runs, and the state it reads.

The audio side is C (`_mixer.c`): it plays pending note events, mixes the voices (velocity
layers crossfaded, choke groups and voice stealing faded, never cut dead), applies the master
gain and a limit at full scale. On JACK that C function is the process callback itself, so the
audio thread never waits for Python's GIL; PortAudio and the offline renderer call it through
`process`, so every backend sounds the same. On JACK a sound may also play on an output pair
of its own (`add_pair`, outputs.py) besides the main pair, which always carries every sound.

This class is the Python side: it keeps each published sound's buffers alive until the audio
side can no longer read them, and it queues events without ever waiting.
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
import weakref
from collections.abc import Sequence
from typing import overload

import numpy as np

from .pad_sound import FADE_SECONDS, SAMPLE_DTYPE, PadSound

LIMIT = 0.98  # the mix never goes above this (-0.2 dBFS); DK_LIMIT in _mixer.c
RELEASE_SECONDS = 0.15  # the limiter lets go over about this long
MAX_VARIANTS = 64  # DK_MAX_VARIANTS in _mixer.c
SOUND_RECORDS = 1024  # sounds published and not yet free again; 128 pads need 128 + a few
_NOTE_ON, _STOP_ALL = 1, 2
_NOTES_PLAYED, _NOTES_WITHOUT_SOUND, _VOICES_STOLEN, _LIMITED_BLOCKS, _VOICES_ACTIVE = range(5)
_MIDI_OVERFLOW = 5
MIDI_BYTES = 8  # DK_MIDI_BYTES: bytes kept of each MIDI event for Python (SysEx is only counted)
MIDI_READ = 256  # events taken from the MIDI ring at once
ALL_CHANNELS = -1  # DK_ALL_CHANNELS


def _load_library() -> tuple[ctypes.PyDLL, ctypes.CDLL]:
    """The compiled `_mixer` extension, loaded with ctypes twice: calls through the first keep
    the GIL (they are short, and holding it makes the Python threads that queue events take
    turns); the second is for the one call that sleeps, which lets the GIL go."""
    spec = importlib.util.find_spec("dkvae_live._mixer")
    if spec is None or spec.origin is None:
        raise ImportError(
            "dkvae_live._mixer is not built; reinstall the package (`pip install -e .`), "
            "which needs a C compiler"
        )
    lib = ctypes.PyDLL(spec.origin)
    sleeper = ctypes.CDLL(spec.origin)
    sleeper.dk_midi_wait.restype, sleeper.dk_midi_wait.argtypes = None, [ctypes.c_void_p]
    p, i, f, u64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_uint64
    for name, restype, argtypes in [
        ("dk_new", p, [i, i, i, f, i]),
        ("dk_free", None, [p]),
        ("dk_set_master_gain", None, [p, f]),
        ("dk_set_sound", i, [p, i, i, i, p, p, p, f, f, i, i, f, i]),
        ("dk_publish", None, [p, i, i]),
        ("dk_continue", None, [p, i, i]),
        ("dk_sound_voices", i, [p, i]),
        ("dk_cycles", u64, [p]),
        ("dk_push", i, [p, i, i, i]),
        ("dk_pending", i, [p]),
        ("dk_counter", u64, [p, i]),
        ("dk_hits", ctypes.c_uint, [p, i]),
        ("dk_limiter_gain", f, [p]),
        ("dk_mix", None, [p, p, i, i]),
        ("dk_output_pairs", i, []),
        ("dk_set_jack", None, [p, p]),
        ("dk_set_jack_pair", i, [p, i, p, p]),
        ("dk_set_pair_connected", None, [p, i, i]),
        ("dk_set_jack_midi", None, [p, p, p, p]),
        ("dk_set_midi_channel", None, [p, i]),
        ("dk_midi_read", i, [p, p, p, i]),
        ("dk_midi_wake", None, [p]),
        ("dk_exit_after", i, [ctypes.c_double, i]),
    ]:
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib, sleeper


_lib, _sleeper = _load_library()
# Output pairs the callback can play: the main pair and OUTPUT_PAIRS - 1 more (DK_PAIRS).
OUTPUT_PAIRS = int(_lib.dk_output_pairs())
MAIN_PAIR = ""  # the main pair's name in the routing: out_1/out_2, the whole mix


def exit_after(seconds: float, code: int = 0) -> None:
    """End the process with ``code`` after ``seconds``, from a C thread: a thread that holds
    the GIL, or a Python timer the machine runs late, cannot keep the process alive."""
    if _lib.dk_exit_after(seconds, code) != 0:
        raise OSError("cannot start the exit thread")


class _Hits(Sequence[int]):
    """Per note: how many hits it has played (which variant plays next); for the renderer."""

    def __init__(self, mixer: Mixer) -> None:
        self._mixer = mixer

    def __len__(self) -> int:
        return 128

    @overload
    def __getitem__(self, note: int) -> int: ...
    @overload
    def __getitem__(self, note: slice) -> Sequence[int]: ...
    def __getitem__(self, note: int | slice) -> int | Sequence[int]:
        if isinstance(note, slice):
            return [self[n] for n in range(128)[note]]
        if self._mixer._state is None:
            return 0
        return int(_lib.dk_hits(self._mixer._state, note))


class Mixer:
    """Events in, audio out. `publish` comes from the render worker, `note_on` and `stop_all`
    from any thread; the audio backend calls `configure` once and then `process` (or hands
    JACK the C callback, see `jack_process_callback`)."""

    def __init__(self, polyphony: int, master_gain: float = 0.5) -> None:
        if polyphony < 1:
            raise ValueError("polyphony must be at least 1")
        self.polyphony = polyphony
        self.master_gain = master_gain
        self._state: int | None = None
        self.samplerate: int | None = None
        self.sounds: list[PadSound | None] = [None] * 128  # what each note plays now
        self.hits: Sequence[int] = _Hits(self)
        self.xruns = 0  # counted by the audio backend
        self._lock = threading.Lock()  # the Python-side records and pairs: publish and sweep
        self._free: list[int] = list(range(SOUND_RECORDS - 1, -1, -1))
        self._record_of: list[int] = [-1] * 128
        self._held: dict[int, PadSound] = {}  # record -> the sound whose buffers it points at
        self._retired: list[tuple[int, int]] = []  # (record, audio cycle when it was replaced)
        self._waiting: dict[int, PadSound] = {}  # notes to publish once a record is free
        self.sounds_freed = 0  # sounds whose buffers were let go of, since the start
        self._pairs: dict[str, int] = {MAIN_PAIR: 0}  # output pair name -> its index
        self._midi_data = (ctypes.c_uint8 * (MIDI_BYTES * MIDI_READ))()
        self._midi_sizes = (ctypes.c_uint32 * MIDI_READ)()

    def configure(self, samplerate: int) -> None:
        """Make the audio state for this rate (fade and limiter times in samples), once,
        before the audio starts."""
        if self.samplerate is not None:
            if samplerate != self.samplerate:
                raise RuntimeError(f"the mixer runs at {self.samplerate} Hz already")
            return
        state = _lib.dk_new(
            self.polyphony,
            samplerate,
            int(FADE_SECONDS * samplerate),
            RELEASE_SECONDS,
            SOUND_RECORDS,
        )
        if not state:
            raise MemoryError("cannot allocate the mixer")
        self._state, self.samplerate = state, samplerate
        weakref.finalize(self, _lib.dk_free, state)
        _lib.dk_set_master_gain(state, self.master_gain)

    def _audio_state(self) -> int:
        if self._state is None:
            raise RuntimeError("Mixer.configure(samplerate) must come first")
        return self._state

    # -- sounds (the render worker) -------------------------------------------------------
    def publish(self, sound: PadSound) -> None:
        """Swap in a pad's new sound. A voice already playing keeps the buffer it started with,
        unless the new sound `continues` the note's sound before it (`_carries_on`): a voice
        playing that one then goes on from where it is in the new one, at the next block,
        short of the last FADE_SECONDS (the end of a beginning published first, faded out)."""
        variants = sound.variants
        if not 1 <= len(variants) <= MAX_VARIANTS:
            raise ValueError(f"a sound has 1 to {MAX_VARIANTS} variants, not {len(variants)}")
        if len(sound.scales) != len(variants):
            raise ValueError("a sound has one scale per variant")
        layers = variants[0].shape[0]
        for v in variants:
            if v.dtype != SAMPLE_DTYPE or v.ndim != 2 or v.shape[0] != layers:
                raise ValueError("variants are int16 [layers, samples], all of one layer count")
            if not v.flags.c_contiguous or v.shape[1] < 1:
                raise ValueError("variant buffers must be C-contiguous and not empty")
        state = self._audio_state()
        with self._lock:
            self.sounds[sound.note] = sound
            self._sweep()
            if not self._free:  # only while no audio runs to move the cycles on
                self._waiting[sound.note] = sound
                return
            self._waiting.pop(sound.note, None)
            self._install(state, sound)

    def _install(self, state: int, sound: PadSound) -> None:
        before = self._record_of[sound.note]
        record = self._free.pop()
        count = len(sound.variants)
        data = (ctypes.c_void_p * count)(*(v.ctypes.data for v in sound.variants))
        scales = (ctypes.c_float * count)(*sound.scales)
        lengths = (ctypes.c_int * count)(*(v.shape[1] for v in sound.variants))
        _lib.dk_set_sound(
            state,
            record,
            count,
            sound.variants[0].shape[0],
            data,
            scales,
            lengths,
            sound.gain_left,
            sound.gain_right,
            sound.choke_group,
            sound.polyphony,
            sound.velocity_curve,
            self._pairs.get(sound.output, 0),
        )
        self._held[record] = sound
        if sound.continues and before >= 0 and self._carries_on(self._held[before], sound):
            _lib.dk_continue(state, before, record)
        self._point(state, sound.note, record)

    def _carries_on(self, first: PadSound, then: PadSound) -> bool:
        """Whether `then` begins as `first` does, up to its faded end (to a 16-bit step), in
        each variant and layer, at the same scale: only then may a voice move across."""
        assert self.samplerate is not None
        fade = int(FADE_SECONDS * self.samplerate)
        if first.scales != then.scales or len(first.variants) != len(then.variants):
            return False
        for a, b in zip(first.variants, then.variants, strict=True):
            n = a.shape[1] - fade
            if a.shape[0] != b.shape[0] or b.shape[1] < a.shape[1]:
                return False
            if n > 0 and np.max(np.abs(a[:, :n].astype(np.int32) - b[:, :n])) > 1:
                return False
        return True

    def _point(self, state: int, note: int, record: int) -> None:
        """Have `note` play `record` (-1: nothing); the record it played before is retired."""
        old = self._record_of[note]
        _lib.dk_publish(state, note, record)
        self._record_of[note] = record
        if old >= 0:
            self._retired.append((old, int(_lib.dk_cycles(state))))

    @property
    def sound_bytes(self) -> int:
        """Bytes of the rendered sounds held for the audio side: playing, retired and not yet
        freed, or waiting for a record."""
        with self._lock:
            held = [*self._held.values(), *self._waiting.values()]
        return sum(v.nbytes for sound in held for v in sound.variants)

    def playable(self, note: int) -> bool:
        """Whether a hit on `note` plays a sound now (one was published and not withdrawn)."""
        return self._record_of[note] >= 0

    def unpublish(self, note: int) -> None:
        """The note plays nothing from the next block on (its pad was removed)."""
        state = self._audio_state()
        with self._lock:
            self.sounds[note] = None
            self._waiting.pop(note, None)
            self._point(state, note, -1)

    def sweep(self) -> None:
        """Free the buffers that the audio side can no longer read; publish what waited."""
        if self._state is None:
            return
        with self._lock:
            self._sweep()
            while self._waiting and self._free:
                self._install(self._state, self._waiting.pop(next(iter(self._waiting))))

    def _sweep(self) -> None:
        # A record replaced at cycle c may still be read by the block under way then; once
        # that block is over (cycle c + 1) no new voice can start on it, so when no voice
        # plays it any more it is free.
        state = self._audio_state()
        cycles = int(_lib.dk_cycles(state))
        still: list[tuple[int, int]] = []
        for record, at in self._retired:
            if cycles >= at + 2 and _lib.dk_sound_voices(state, record) == 0:
                del self._held[record]
                self._free.append(record)
                self.sounds_freed += 1
            else:
                still.append((record, at))
        self._retired = still

    # -- events (the MIDI and OSC threads) ------------------------------------------------
    def note_on(self, note: int, velocity: int) -> bool:
        """Queue a hit for the next block; False when the queue is full (audio not running)."""
        return _lib.dk_push(self._audio_state(), _NOTE_ON, note, velocity) == 0

    def stop_all(self) -> bool:
        """Fade every sounding voice out at the next block."""
        return _lib.dk_push(self._audio_state(), _STOP_ALL, 0, 0) == 0

    # -- the audio side --------------------------------------------------------------------
    def process(self, outdata: np.ndarray) -> None:
        """Play pending events and fill `outdata` [frames, channels] (float32, C order)."""
        if outdata.dtype != np.float32 or outdata.ndim != 2 or not outdata.flags.c_contiguous:
            raise ValueError("outdata must be C-contiguous float32 [frames, channels]")
        frames, channels = outdata.shape
        _lib.dk_mix(self._audio_state(), outdata.ctypes.data, frames, channels)

    # -- output pairs (JACK) ------------------------------------------------------------------
    @property
    def pair_names(self) -> list[str]:
        """The output pairs' names in index order; the main pair's is MAIN_PAIR."""
        return list(self._pairs)

    def add_pair(self, name: str) -> int:
        """Make `name` an output pair (its index); a sound published with `output = name` from
        now on plays on it as well as on the main pair, once `set_jack_pair` gave its ports.
        The main pair's name, or one made already, gives the index it has."""
        with self._lock:
            if name in self._pairs:
                return self._pairs[name]
            if len(self._pairs) >= OUTPUT_PAIRS:
                raise ValueError(
                    f"no room for output pair {name!r}: "
                    f"at most {OUTPUT_PAIRS - 1} besides the main one"
                )
            self._pairs[name] = len(self._pairs)
            return self._pairs[name]

    def set_jack_pair(self, index: int, left_port: int, right_port: int) -> None:
        """The two JACK output ports (`jack_port_t *`) of pair `index` (0: the main pair). A
        new pair may be given while the callback runs; an existing one only while it does not
        (a new client, before it is activated)."""
        if _lib.dk_set_jack_pair(self._audio_state(), index, left_port, right_port) != 0:
            raise ValueError(f"output pair {index} comes after a pair without ports, or too far")

    def set_pair_connected(self, index: int, connected: bool) -> None:
        """Whether a port of pair `index` is connected now: the callback mixes and writes a
        pair only while one is (any thread; JACK's notification thread tells it)."""
        _lib.dk_set_pair_connected(self._audio_state(), index, int(connected))

    def jack_process_callback(self, get_buffer: int) -> tuple[int, int]:
        """(address of the C process callback, its argument) for `jack_set_process_callback`,
        after telling it libjack's `jack_port_get_buffer`; the ports come with
        `set_jack_pair`, whether they are connected with `set_pair_connected`."""
        state = self._audio_state()
        _lib.dk_set_jack(state, get_buffer)
        callback = ctypes.cast(_lib.dk_jack_process, ctypes.c_void_p).value
        assert callback is not None
        return callback, state

    @staticmethod
    def jack_thread_init_callback() -> int:
        """Address of the C function for `jack_set_thread_init_callback`: it names the threads
        libjack makes for the client."""
        address = ctypes.cast(_lib.dk_jack_thread_init, ctypes.c_void_p).value
        assert address is not None
        return address

    def read_jack_midi(
        self, port: int, count_events: int, get_event: int, channel: int | None
    ) -> None:
        """Have the JACK callback read MIDI from `port` (`jack_port_t *`, with libjack's
        `jack_midi_get_event_count` and `jack_midi_event_get`) and play the note-ons of
        `channel` (None: all) itself. Call before the client is activated."""
        state = self._audio_state()
        _lib.dk_set_midi_channel(state, ALL_CHANNELS if channel is None else channel)
        _lib.dk_set_jack_midi(state, port, count_events, get_event)

    def midi_events(self) -> list[list[int]]:
        """The MIDI events the JACK callback read since the last call (at most MIDI_READ):
        their bytes, a SysEx or other long event cut to its first MIDI_BYTES."""
        if self._state is None:
            return []
        n = _lib.dk_midi_read(self._state, self._midi_data, self._midi_sizes, MIDI_READ)
        if n == 0:
            return []
        data = ctypes.string_at(self._midi_data, n * MIDI_BYTES)
        return [
            list(data[i * MIDI_BYTES : i * MIDI_BYTES + min(self._midi_sizes[i], MIDI_BYTES)])
            for i in range(n)
        ]

    def wait_midi(self) -> None:
        """Sleep, without the GIL, until the JACK callback has MIDI events for `midi_events` or
        `wake_midi` is called; return at once if it has some already."""
        if self._state is not None:
            _sleeper.dk_midi_wait(self._state)

    def wake_midi(self) -> None:
        """End a `wait_midi` in another thread now."""
        if self._state is not None:
            _lib.dk_midi_wake(self._state)

    # -- counters ---------------------------------------------------------------------------
    def _counter(self, which: int) -> int:
        return 0 if self._state is None else int(_lib.dk_counter(self._state, which))

    @property
    def notes_played(self) -> int:
        return self._counter(_NOTES_PLAYED)

    @property
    def notes_without_sound(self) -> int:
        return self._counter(_NOTES_WITHOUT_SOUND)

    @property
    def voices_stolen(self) -> int:
        return self._counter(_VOICES_STOLEN)

    @property
    def limited_blocks(self) -> int:
        return self._counter(_LIMITED_BLOCKS)

    @property
    def voices_active(self) -> int:
        """Voices sounding and not fading out, as of the last block."""
        return self._counter(_VOICES_ACTIVE)

    @property
    def midi_overflow(self) -> int:
        """MIDI events lost because Python did not read them in time."""
        return self._counter(_MIDI_OVERFLOW)

    @property
    def cycles(self) -> int:
        """Audio blocks played so far."""
        return 0 if self._state is None else int(_lib.dk_cycles(self._state))

    @property
    def limiter_gain(self) -> float:
        return 1.0 if self._state is None else float(_lib.dk_limiter_gain(self._state))

    def pending(self) -> int:
        """Events queued and not yet played."""
        return 0 if self._state is None else int(_lib.dk_pending(self._state))
