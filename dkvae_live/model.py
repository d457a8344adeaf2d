"""Load an ONNX decoder (and encoder), check it against docs/model-contract.md, render sounds.

Everything here runs in the render worker or at start-up, never in the audio callback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import ArrayLike

from . import class_guess, contract
from .axes import ClassAxes
from .axes import from_json as axes_from_json
from .class_guess import ClassGuess
from .class_latents import ClassLatent, from_json
from .decay_guard import guard_decay
from .drum_features import prepare
from .phase import audible_frames, detuning, invert, phase_from_gradients, phase_of

DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "default"
# Latents per decoder run. A bigger batch is no faster per latent (measured on the shipped model:
# 1.2-1.4 ms each at any size), but the memory it needs stays with the session: one run of 120
# latents (every pad of a kit after a model swap) grew the process by 190 MiB, and freeing that
# when the session was dropped held the GIL for 10 ms, seven audio periods.
RUN_BATCH = 8
# Fast Griffin-Lim iterations after the gradient phase of a log-magnitude decoder's sound
# (dkvae_live.phase): a sound kept has as many as are heard (on a model's own magnitudes more
# than 4 change the mel distance by hundredths of a dB, at twice the time: bench/phase.py); a
# draft, the first sound after a change, none. One made a big move's draft closer to its own
# sound, but bench/latent_e2e.py heard the new sound later with it on every kind of pad
# (docs/performance.md). The load-time check renders drafts. With none, a draft's beginning
# can be made alone, as its own first samples (Decoder.drafts_onset_first).
PHASE_ITERATIONS = 4
DRAFT_ITERATIONS = 0
# The velocity layers of one pad sound alike: one (the middle, or the one a draft of the pad
# played) is given its phase in full, and each of the others starts from that phase with this
# many iterations, not from its gradient phase with PHASE_ITERATIONS: a pad's layers in under
# half the time, as close to their magnitudes whichever layer leads (bench/layer_phase.py)
LAYER_ITERATIONS = 1


class ModelError(Exception):
    """A model file is missing, unreadable or does not follow the model contract."""


class RenderStopped(Exception):
    """Raised by a `Decoder.render` caller's `between` to abandon the render."""


@dataclass(frozen=True)
class ModelInfo:
    """What a decoder says about itself in its metadata."""

    path: Path
    name: str
    model_kind: str
    output_kind: str
    sample_rate: int
    num_samples: int
    latent_size: int
    class_names: tuple[str, ...]
    n_fft: int = 0
    hop_length: int = 0
    log_offset: float = 0.0
    # where each class's real sounds lie in the latent space (optional metadata)
    class_latents: Mapping[str, ClassLatent] = field(default_factory=dict)
    # a sound's class from the sound itself (optional metadata)
    class_guess: ClassGuess | None = None
    # named timbre directions per class (optional metadata)
    axes: Mapping[str, ClassAxes] = field(default_factory=dict)

    def class_index(self, name: str) -> int:
        try:
            return self.class_names.index(name)
        except ValueError:
            raise ValueError(
                f"unknown class {name!r}; this model knows {', '.join(self.class_names)}"
            ) from None


def _session(path: Path, optimize: bool = True) -> ort.InferenceSession:
    """A one-thread CPU session. `optimize=False` skips graph optimisation: building the
    session then holds the GIL a tenth as long, and the model runs slower."""
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # The session's arena keeps its tensors from one run to the next. Without it a one-latent
    # run took a fresh 5.3 MiB block from malloc, which map_large_buffers_apart maps afresh
    # each time: a million page faults a minute in the soak's set, against 25,000 with it. Runs
    # are at most RUN_BATCH latents, so the arena stays small (12 MiB); dropping a session
    # (a hot swap) holds the GIL 3-4.5 ms with it, 1-1.7 ms without.
    options.enable_cpu_mem_arena = True
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises several unrelated types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable ONNX model ({first_line})") from exc


def _metadata_int(meta: dict[str, str], key: str, path: Path) -> int:
    try:
        value = int(meta[key])
    except KeyError:
        raise ModelError(f"{path}: metadata key {key!r} is missing") from None
    except ValueError:
        raise ModelError(
            f"{path}: metadata {key!r} must be an integer, got {meta[key]!r}"
        ) from None
    if value <= 0:
        raise ModelError(f"{path}: metadata {key!r} must be positive, got {value}")
    return value


def _check_common(meta: dict[str, str], path: Path, role: str) -> tuple[str, ...]:
    version = meta.get(contract.VERSION)
    if version is None:
        raise ModelError(
            f"{path}: no {contract.VERSION!r} in the model metadata; "
            "this is not a DK·VAE Live model (see docs/model-contract.md)"
        )
    if version != contract.CONTRACT_VERSION:
        raise ModelError(
            f"{path}: contract version {version!r}, "
            f"this daemon reads version {contract.CONTRACT_VERSION}"
        )
    if meta.get(contract.ROLE) != role:
        raise ModelError(
            f"{path}: {contract.ROLE!r} is {meta.get(contract.ROLE)!r}, expected {role!r}"
        )
    try:
        names = json.loads(meta[contract.CLASS_NAMES])
    except KeyError:
        raise ModelError(f"{path}: metadata key {contract.CLASS_NAMES!r} is missing") from None
    except json.JSONDecodeError:
        raise ModelError(f"{path}: {contract.CLASS_NAMES!r} is not a JSON list") from None
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise ModelError(
            f"{path}: {contract.CLASS_NAMES!r} must be a non-empty JSON list of distinct names"
        )
    return tuple(names)


def _check_io(
    session: ort.InferenceSession,
    path: Path,
    inputs: Mapping[str, tuple[str, int | None]],
    outputs: Mapping[str, tuple[str, int | None]],
) -> None:
    """Check names, element types and ranks; the last dimension where it is given."""
    for kind, expected, actual in (
        ("input", inputs, session.get_inputs()),
        ("output", outputs, session.get_outputs()),
    ):
        found = {a.name: a for a in actual}
        if set(found) != set(expected):
            raise ModelError(
                f"{path}: {kind}s are {sorted(found)}, the contract wants {sorted(expected)}"
            )
        for name, (element_type, last_dim) in expected.items():
            arg = found[name]
            if arg.type != element_type:
                raise ModelError(f"{path}: {kind} {name!r} is {arg.type}, expected {element_type}")
            declared = arg.shape[-1] if arg.shape else None
            if last_dim is not None and isinstance(declared, int) and declared != last_dim:
                raise ModelError(
                    f"{path}: {kind} {name!r} has last dimension {declared}, "
                    f"metadata says {last_dim}"
                )


def _class_latents(
    meta: dict[str, str], path: Path, class_names: tuple[str, ...], latent_size: int
) -> dict[str, ClassLatent]:
    text = meta.get(contract.CLASS_LATENTS)
    if text is None:
        return {}
    try:
        return from_json(text, class_names, latent_size)
    except ValueError as exc:
        raise ModelError(f"{path}: {contract.CLASS_LATENTS!r} {exc}") from None


def _class_guess(
    meta: dict[str, str], path: Path, class_names: tuple[str, ...]
) -> ClassGuess | None:
    text = meta.get(contract.CLASS_GUESS)
    if text is None:
        return None
    try:
        return class_guess.from_json(text, class_names)
    except ValueError as exc:
        raise ModelError(f"{path}: {contract.CLASS_GUESS!r} {exc}") from None


def _axes(
    meta: dict[str, str], path: Path, class_names: tuple[str, ...], latent_size: int
) -> dict[str, ClassAxes]:
    text = meta.get(contract.AXES)
    if text is None:
        return {}
    try:
        return axes_from_json(text, class_names, latent_size)
    except ValueError as exc:
        raise ModelError(f"{path}: {contract.AXES!r} {exc}") from None


def resolve_model_path(path: str | Path | None, filename: str = contract.DECODER_FILE) -> Path:
    """A model folder or an .onnx file; None means the shipped default."""
    target = DEFAULT_MODEL_DIR if path is None else Path(path).expanduser()
    if target.is_dir():
        target = target / filename
    if not target.exists():
        raise ModelError(f"{target}: no such model file")
    return target


def draft_of(decoder_output: np.ndarray) -> list[float]:
    """A draft's ``dkvae.draft_of``: its decoder's output for the zero latent of each class
    (``[classes, ...]``), averaged per class. It tells a draft's own decoder from another of the
    same shape (a later export) whatever either's metadata says."""
    values = np.asarray(decoder_output, np.float64)
    return [float(v) for v in values.reshape(values.shape[0], -1).mean(axis=1)]


def _run(session: ort.InferenceSession, z: ArrayLike, class_index: ArrayLike) -> np.ndarray:
    """A decoder session's output for z [batch, latent_size] and class_index [batch]."""
    feed = {
        contract.Z: np.atleast_2d(np.ascontiguousarray(z, dtype=np.float32)),
        contract.CLASS_INDEX: np.asarray(class_index, dtype=np.int64).reshape(-1),
    }
    return np.asarray(session.run(None, feed)[0])


def _key(z: np.ndarray, class_index: np.ndarray) -> bytes:
    """One latent and class as a dictionary key."""
    return z.tobytes() + class_index.tobytes()


def _draft_session(
    path: Path,
    decoder_meta: Mapping[str, str],
    inputs: Mapping[str, tuple[str, int | None]],
    outputs: Mapping[str, tuple[str, int | None]],
    decoder_output: np.ndarray,
) -> ort.InferenceSession:
    """The session of the draft decoder at `path`, checked against its decoder: the same
    interface, and made from this decoder (its `dkvae.draft_of`)."""
    session = _session(path)
    meta = dict(session.get_modelmeta().custom_metadata_map)
    _check_common(meta, path, contract.DRAFT)
    for key in contract.DRAFT_MATCHES:
        if meta.get(key) != decoder_meta.get(key):
            raise ModelError(
                f"{path}: {key!r} is {meta.get(key)!r}, its decoder's {decoder_meta.get(key)!r}"
            )
    _check_io(session, path, inputs, outputs)
    try:
        made_from = np.asarray(json.loads(meta[contract.DRAFT_OF]), np.float64)
    except (KeyError, ValueError, TypeError):
        raise ModelError(f"{path}: {contract.DRAFT_OF!r} is missing or not a JSON list") from None
    own = np.asarray(draft_of(decoder_output))
    if made_from.shape != own.shape or not np.all(
        np.abs(made_from - own) <= contract.DRAFT_OF_TOLERANCE
    ):
        raise ModelError(
            f"{path}: this draft was made from another decoder than {path.parent}'s; "
            "make it again (dkvae-draft) or delete it"
        )
    return session


class Decoder:
    """An ONNX decoder that follows the contract. `render` returns mono float32 audio. A
    `draft.onnx` beside the decoder (`use_draft`) renders its drafts."""

    def __init__(
        self,
        path: str | Path | None = None,
        phase_iterations: int = PHASE_ITERATIONS,
        use_draft: bool = True,
    ) -> None:
        self.path = resolve_model_path(path)
        self._session = _session(self.path)
        self._draft_session: ort.InferenceSession | None = None
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        class_names = _check_common(meta, self.path, contract.DECODER)
        output_kind = meta.get(contract.OUTPUT_KIND, "")
        if output_kind not in contract.OUTPUT_KINDS:
            raise ModelError(
                f"{self.path}: {contract.OUTPUT_KIND!r} is {output_kind!r}, "
                f"expected one of {', '.join(contract.OUTPUT_KINDS)}"
            )
        latent_size = _metadata_int(meta, contract.LATENT_SIZE, self.path)
        n_fft = hop = 0
        log_offset = 0.0
        if output_kind == contract.LOG_MAGNITUDE:
            n_fft = _metadata_int(meta, contract.N_FFT, self.path)
            hop = _metadata_int(meta, contract.HOP_LENGTH, self.path)
            try:
                log_offset = float(meta.get(contract.LOG_OFFSET, "0"))
            except ValueError:
                raise ModelError(f"{self.path}: {contract.LOG_OFFSET!r} is not a number") from None
            output: dict[str, tuple[str, int | None]] = {
                contract.LOG_MAGNITUDE_OUTPUT: ("tensor(float)", n_fft // 2 + 1)
            }
        else:
            output = {contract.AUDIO: ("tensor(float)", None)}
        inputs: dict[str, tuple[str, int | None]] = {
            contract.Z: ("tensor(float)", latent_size),
            contract.CLASS_INDEX: ("tensor(int64)", None),
        }
        _check_io(self._session, self.path, inputs, output)
        self.info = ModelInfo(
            path=self.path,
            name=meta.get(contract.NAME) or self.path.parent.name,
            model_kind=meta.get(contract.MODEL_KIND, "unknown"),
            output_kind=output_kind,
            sample_rate=_metadata_int(meta, contract.SAMPLE_RATE, self.path),
            num_samples=_metadata_int(meta, contract.NUM_SAMPLES, self.path),
            latent_size=latent_size,
            class_names=class_names,
            n_fft=n_fft,
            hop_length=hop,
            log_offset=log_offset,
            class_latents=_class_latents(meta, self.path, class_names, latent_size),
            class_guess=_class_guess(meta, self.path, class_names),
            axes=_axes(meta, self.path, class_names, latent_size),
        )
        self._phase_iterations = phase_iterations
        self._detune = detuning(n_fft, hop, self.info.sample_rate) if n_fft else None
        # a run with this shrinks the session's arena at its end: see release_arena
        self._shrink = ort.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        # The phase each draft of the latest `drafts_onset_first` played with, by latent and
        # class, over its frames that sound: the sound kept of the same latent starts from it
        # without the draft decoder's run and phase again
        self._played: dict[bytes, np.ndarray] = {}
        draft_path = self.path.with_name(contract.DRAFT_FILE)
        if use_draft and draft_path.exists():
            # the decoder's own output, which the draft must have been made from; the check
            # below renders drafts, so this also runs the decoder itself once before the stage
            zeros = np.zeros((len(class_names), latent_size), np.float32)
            try:
                own = self.output(zeros, np.arange(len(class_names)))
            except Exception as exc:
                raise ModelError(f"{self.path}: the model fails to run: {exc}") from exc
            self._draft_session = _draft_session(draft_path, meta, inputs, output, own)
        self._check_renders()

    @property
    def draft_path(self) -> Path | None:
        """The draft decoder that renders this decoder's drafts, if any."""
        return self.path.with_name(contract.DRAFT_FILE) if self._draft_session else None

    def _check_renders(self) -> None:
        """Run the model once per class so a broken graph fails at load, not on stage. As
        drafts: a spectrogram's phase iterations are the sound's quality, not whether the model
        runs, and they would keep the daemon from answering anyone meanwhile."""
        z = np.zeros((len(self.info.class_names), self.info.latent_size), np.float32)
        try:
            audio = self.render(z, np.arange(len(self.info.class_names)), draft=True)
        except Exception as exc:
            raise ModelError(f"{self.path}: the model fails to run: {exc}") from exc
        if audio.shape != (len(self.info.class_names), self.info.num_samples):
            raise ModelError(
                f"{self.path}: rendered shape {audio.shape}, metadata promises "
                f"[batch, {self.info.num_samples}]"
            )

    def render(
        self,
        z: ArrayLike,
        class_index: ArrayLike,
        draft: bool = False,
        between: Callable[[], None] | None = None,
        floor: float = 0.0,
        layers: int = 1,
    ) -> np.ndarray:
        """z [batch, latent_size], class_index [batch] -> audio float32 [batch, num_samples].
        A draft of a log-magnitude model refines the phase its gradients give only
        DRAFT_ITERATIONS times: several times quicker (the same sound for a waveform model).
        A log-magnitude model's sound is silent from where its magnitudes can no longer reach
        `floor` (phase.audible_frames), and its phase is made only up to there. `layers` > 1:
        z is runs of that many velocity layers of one sound each, whose phases start from one
        of theirs (LAYER_ITERATIONS): the one a draft played (`drafts_onset_first`), else the
        middle one.

        `between` is called before each latent's decoder run and, for a log-magnitude model,
        before each sound's phase and each of its Griffin-Lim iterations: the caller can serve
        something more urgent after a millisecond or two of work, or abandon the render by
        raising (RenderStopped)."""
        z = np.ascontiguousarray(z, dtype=np.float32).reshape(-1, self.info.latent_size)
        classes = np.asarray(class_index, dtype=np.int64).reshape(-1)
        # a run's phase is made before the next run: the phase's temporaries are then a run's
        # size, not the whole batch's (five complex copies of a 40-latent pad's spectrogram);
        # a run holds whole sets of layers
        layers = max(1, layers)
        step = max(1, RUN_BATCH // layers) * layers
        session = self._draft_session if draft and self._draft_session else self._session
        runs = []
        for i in range(0, max(1, z.shape[0]), step):
            chunk = (z[i : i + step], classes[i : i + step])
            if between is None:
                output = _run(session, *chunk)
            else:  # latent by latent: as quick per latent, and `between` comes every one
                outputs = []
                for j in range(max(1, chunk[0].shape[0])):
                    between()
                    outputs.append(_run(session, chunk[0][j : j + 1], chunk[1][j : j + 1]))
                output = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
            runs.append(
                self._audio(output, draft, between, floor, layers, None if draft else chunk)
            )
        return runs[0] if len(runs) == 1 else np.concatenate(runs)

    def drafts_onset_first(
        self, z: ArrayLike, class_index: ArrayLike, onset_samples: int, floor: float = 0.0
    ) -> Iterator[np.ndarray]:
        """`render(z, class_index, draft=True, floor=floor)` in two steps from one decoder run:
        first its first `onset_samples` samples alone [batch, onset_samples], then the whole of
        it, which begins with those samples exactly. A log-magnitude draft's magnitudes, phase
        and inverse transform are made for the frames that the onset needs first, the others'
        after: the onset in a fraction of the whole's time. The whole is the render's own where
        a sound is loudest within its onset's frames, as a drum is."""
        z = np.ascontiguousarray(z, dtype=np.float32).reshape(-1, self.info.latent_size)
        classes = np.asarray(class_index, dtype=np.int64).reshape(-1)
        session = self._draft_session or self._session
        output = _run(session, z, classes)
        info = self.info
        onset_samples = max(1, min(onset_samples, info.num_samples))
        if info.output_kind != contract.LOG_MAGNITUDE:
            audio = np.asarray(output, dtype=np.float32)
            yield audio[:, :onset_samples]
            yield audio
            return
        n_fft, hop, detune = info.n_fft, info.hop_length, self._detune
        # the gradient phase of a frame needs only the frames up to the next (DRAFT_ITERATIONS
        # 0): the frames over the onset's samples (centred: half a window on), and one more
        frames = -(-(onset_samples + n_fft // 2) // hop) + 1
        onset = self._magnitudes(output[:, :frames])
        yield invert(onset, n_fft, hop, onset_samples, 0, floor, detune)
        magnitude = self._magnitudes(output)
        # the whole begins as its onset did, so that a voice carries on from one to the other
        # without a step: they differ where the onset's decay guard saw a loudest frame that
        # the whole's sees later (a sound that swells after its first 0.1 s)
        magnitude[:, :frames] = onset
        # the phase `invert` would give it (DRAFT_ITERATIONS 0), made here to be kept
        played = self._phase(magnitude[:, : audible_frames(magnitude, n_fft, hop, floor)])
        self._played = {_key(z[i], classes[i]): played[i] for i in range(z.shape[0])}
        yield invert(magnitude, n_fft, hop, info.num_samples, 0, floor, start=played)

    def magnitudes(self, z: ArrayLike, class_index: ArrayLike) -> np.ndarray:
        """A log-magnitude decoder's magnitudes for z, as the render worker gives them a phase
        (the decay guarded)."""
        return self._magnitudes(self.output(z, class_index))

    def _magnitudes(self, output: np.ndarray) -> np.ndarray:
        return guard_decay(np.maximum(np.exp(output) - self.info.log_offset, 0.0))

    def output(self, z: ArrayLike, class_index: ArrayLike) -> np.ndarray:
        """The decoder's own output for z [batch, latent_size] (its `output_kind`: audio, or log
        magnitudes), nothing done to it."""
        return _run(self._session, z, class_index)

    def release_arena(self) -> None:
        """Give back what the session's arena kept from the renders so far (its tensors for a
        batch of RUN_BATCH latents): one one-latent run that shrinks the arena at its end. For a
        decoder at rest; the next render grows the arena again."""
        feed = {
            contract.Z: np.zeros((1, self.info.latent_size), np.float32),
            contract.CLASS_INDEX: np.zeros(1, np.int64),
        }
        for session in (self._session, self._draft_session):
            if session is not None:
                session.run(None, feed, self._shrink)
        self._played = {}

    def _audio(
        self,
        output: np.ndarray,
        draft: bool,
        between: Callable[[], None] | None,
        floor: float,
        layers: int = 1,
        kept: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """One decoder run's output as audio float32 [batch, num_samples]. `kept`: the run's
        (latents, classes), for sounds kept whose phase starts from their drafts'
        (`_draft_starts`)."""
        if self.info.output_kind != contract.LOG_MAGNITUDE:
            return np.asarray(output, dtype=np.float32)
        magnitude = self._magnitudes(output)
        info = self.info
        if layers > 1 and not draft and magnitude.shape[0] % layers == 0:
            leads = self._leads(magnitude.shape[0], layers, kept)
            led = None if kept is None else (kept[0][leads], kept[1][leads])
            starts = self._draft_starts(magnitude[leads], floor, led)
            return self._layered_audio(magnitude, between, floor, leads, starts)
        starts = self._draft_starts(magnitude, floor, kept)
        iterations = DRAFT_ITERATIONS if draft else self._phase_iterations
        # with `between`, sound by sound: a sound's phase in full is tens of milliseconds
        step = magnitude.shape[0] if between is None else 1
        pieces = []
        for row in range(0, magnitude.shape[0], step):
            if between is not None:
                between()
            pieces.append(
                invert(
                    magnitude[row : row + step],
                    info.n_fft,
                    info.hop_length,
                    info.num_samples,
                    iterations,
                    floor,
                    detune=self._detune if draft else None,  # kept: Griffin-Lim's phase
                    start=None if starts is None else starts[row : row + step],
                    between=between,
                )
            )
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _draft_starts(
        self, magnitude: np.ndarray, floor: float, kept: tuple[np.ndarray, np.ndarray] | None
    ) -> np.ndarray | None:
        """The phase [batch, frames, bins] that the sounds kept of `magnitude` [batch, frames,
        bins] start from, over the frames that sound above `floor`: the phase of each one's
        draft by the draft decoder, where there is one and `kept` gives (latents, classes), so
        that a sound kept keeps the waveform of the draft played before it (the draft
        decoder's magnitudes give a phase of their own, unlike the decoder's). The phase a
        draft of the same latent played with is taken as it is (`_played`); the others' drafts
        are made now."""
        if self._draft_session is None or kept is None:
            return None
        z, classes = kept
        info = self.info
        frames = audible_frames(magnitude, info.n_fft, info.hop_length, floor)
        keys = [_key(z[i], classes[i]) for i in range(z.shape[0])]
        starts = np.empty((len(keys), frames, magnitude.shape[2]), np.complex64)
        missing = []
        for row, key in enumerate(keys):
            played = self._played.get(key)
            if played is not None and played.shape[0] >= frames:
                starts[row] = played[:frames]
            else:
                missing.append(row)
        if missing:
            drafted = self._magnitudes(_run(self._draft_session, z[missing], classes[missing]))
            starts[missing] = self._phase(drafted[:, :frames])
        return starts

    def _leads(
        self, count: int, layers: int, kept: tuple[np.ndarray, np.ndarray] | None
    ) -> np.ndarray:
        """Of each set of `layers` rows, the one whose phase the others start from: the
        layer a draft played (`_played`: a player's hits at that velocity keep the draft's
        waveform, and its draft's phase need not be made again), else the middle one."""
        leads = np.arange(layers // 2, count, layers)
        if kept is not None and self._played:
            for i, first in enumerate(range(0, count, layers)):
                played = [
                    row
                    for row in range(first, first + layers)
                    if _key(kept[0][row], kept[1][row]) in self._played
                ]
                if played:
                    leads[i] = played[0]
        return leads

    def _phase(self, drafted: np.ndarray) -> np.ndarray:
        """The phase a draft of these magnitudes plays with (`invert`'s for DRAFT_ITERATIONS 0)."""
        return phase_from_gradients(drafted, self.info.n_fft, self.info.hop_length, self._detune)

    def _layered_audio(
        self,
        magnitude: np.ndarray,
        between: Callable[[], None] | None,
        floor: float,
        leads: np.ndarray,
        starts: np.ndarray | None = None,
    ) -> np.ndarray:
        """Sets of velocity layers [sets x layers, frames, bins] as audio: the phase of each
        set's lead layer (`leads`, one row of each set) in full (from its draft's, where
        `starts` [sets, frames, bins] gives it: `_draft_starts`), the others' from it
        (LAYER_ITERATIONS), sound by sound."""
        info = self.info
        framing = (info.n_fft, info.hop_length, info.num_samples)
        audio = np.zeros((magnitude.shape[0], info.num_samples), np.float32)
        layers = magnitude.shape[0] // len(leads)
        for i, lead in enumerate(leads):
            first = i * layers
            order = [lead, *(r for r in range(first, first + layers) if r != lead)]
            start = None
            for row in order:
                if between is not None:
                    between()
                if row == lead and starts is not None:
                    start = starts[i][None]
                iterations = self._phase_iterations if row == lead else LAYER_ITERATIONS
                audio[row] = invert(
                    magnitude[row : row + 1],
                    *framing,
                    iterations,
                    floor,
                    start=start,
                    between=between,
                )[0]
                if row == lead:
                    start = phase_of(
                        audio[row : row + 1], info.n_fft, info.hop_length, magnitude.shape[1]
                    )
        return audio


class Encoder:
    """An ONNX encoder that follows the contract: audio -> z_mean."""

    def __init__(self, path: str | Path, decoder: ModelInfo) -> None:
        self.path = Path(path)
        # Built on every model swap while the audio plays, used only to encode a file now and
        # then: unoptimised, the shipped encoder's session holds the GIL for stretches of
        # 0.2-1 ms instead of 1.5-4 ms (audio periods are 1.3 ms), and encodes in 17 ms, not 6.
        self._session = _session(self.path, optimize=False)
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        class_names = _check_common(meta, self.path, contract.ENCODER)
        for key, expected in (
            (contract.SAMPLE_RATE, decoder.sample_rate),
            (contract.NUM_SAMPLES, decoder.num_samples),
            (contract.LATENT_SIZE, decoder.latent_size),
        ):
            if _metadata_int(meta, key, self.path) != expected:
                raise ModelError(f"{self.path}: {key!r} does not match the decoder's {expected}")
        if class_names != decoder.class_names:
            raise ModelError(f"{self.path}: class names differ from the decoder's")
        _check_io(
            self._session,
            self.path,
            {contract.AUDIO: ("tensor(float)", None)},
            {
                contract.Z_MEAN: ("tensor(float)", decoder.latent_size),
                contract.Z_LOG_VAR: ("tensor(float)", decoder.latent_size),
            },
        )
        self.num_samples = decoder.num_samples

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """audio [batch, num_samples] at the model's rate -> z_mean [batch, latent_size]."""
        batch = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1, self.num_samples)
        z_mean, _ = self._session.run(
            [contract.Z_MEAN, contract.Z_LOG_VAR], {contract.AUDIO: batch}
        )
        return np.asarray(z_mean, dtype=np.float32)


def read_sound(path: Path, sample_rate: int, num_samples: int) -> np.ndarray:
    """A sound file as the encoder wants it: mono, at the model's rate, leading silence trimmed,
    peak-normalised, padded or cut to `num_samples`. ValueError says what is wrong."""
    import soundfile
    import soxr

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise ValueError(f"{path}: cannot read the sound: {exc}") from None
    mono = audio.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise ValueError(f"{path}: the sound holds NaN or infinite samples")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate).astype(np.float32)
    prepared, silent = prepare(mono)
    if silent[0]:
        raise ValueError(f"{path}: the sound is silent")
    out = np.zeros(num_samples, np.float32)
    piece = prepared[0, :num_samples]
    out[: piece.shape[0]] = piece
    return out
