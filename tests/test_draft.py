"""dkvae-draft: a small decoder distilled from a model's own renders the model's drafts, and the
daemon's loader plays it only beside the decoder it was made from (docs/model-contract.md)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
pytestmark = pytest.mark.train

import onnx  # noqa: E402
from dkvae_export.onnx_export import export_run  # noqa: E402
from dkvae_training import draft  # noqa: E402
from dkvae_training.config import make_config  # noqa: E402
from dkvae_training.data import Arrays  # noqa: E402
from dkvae_training.synthetic import synthetic_drums  # noqa: E402
from dkvae_training.train import train  # noqa: E402
from test_export import TINY, rewrite_metadata, smoke_run  # noqa: E402

from dkvae_live import contract  # noqa: E402
from dkvae_live.model import Decoder, ModelError  # noqa: E402


@pytest.fixture(scope="module")
def model_with_draft(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny seed_vae's model folder with a draft trained for a few short epochs, and the
    draft's run folder."""
    root = tmp_path_factory.mktemp("draft")
    run, _ = smoke_run("seed_vae", root)
    model = export_run(run).decoder_path.parent
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(draft, "STEPS_PER_EPOCH", 20)
        patch.setattr(draft, "VALIDATION_LATENTS", 16)
        assert draft.main([str(model), str(root / "draft-run"), "--max-minutes", "0.15"]) == 0
    assert draft.main([str(model), str(root / "draft-run"), "--export"]) == 0
    return model, root / "draft-run"


def test_the_audible_error_ignores_what_lies_under_the_sound_s_range() -> None:
    teacher = np.full((1, 4, 8), -20.0, np.float32)
    teacher[0, 0, 0] = 0.0  # the peak: the floor lies AUDIBLE_DB under it
    quiet = teacher.copy()
    quiet[0, 3, :] = -40.0  # changed far under the floor: not heard
    loud = teacher.copy()
    loud[0, 1, 1] = -1.0  # changed within the range
    assert float(draft.audible_error(quiet, teacher)) == 0.0
    assert float(draft.audible_error(loud, teacher)) > 0.0


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row pair's waveform correlation."""
    return np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))


def test_the_draft_renders_drafts_and_the_sounds_kept_start_from_its_phase(
    model_with_draft: tuple[Path, Path],
) -> None:
    """The decoder's magnitudes make the sound kept, its phase begun from the draft's: a
    draft and the sound kept after it keep one waveform (how close the sound kept stays to its
    magnitudes, dkvae-eval measures on a trained model)."""
    model, _ = model_with_draft
    with_draft = Decoder(model)
    without = Decoder(model, use_draft=False)
    assert with_draft.draft_path == model / contract.DRAFT_FILE
    assert without.draft_path is None
    info = with_draft.info
    z, classes = draft.draw_latents(info, np.random.default_rng(3), 6)
    drafted, own = with_draft.render(z, classes, draft=True), without.render(z, classes, draft=True)
    assert drafted.shape == own.shape
    assert not np.allclose(drafted, own)  # the draft's sound, not the decoder's
    kept, kept_alone = with_draft.render(z, classes), without.render(z, classes)
    assert np.all(similarity(kept, drafted) > similarity(kept_alone, drafted))


class CountingSession:
    """An onnxruntime session that notes how many latents each run is given."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.latents: list[int] = []

    def run(self, names: Any, feed: dict[str, np.ndarray], *options: Any) -> Any:
        self.latents.append(feed[contract.Z].shape[0])
        return self.session.run(names, feed, *options)


@pytest.mark.parametrize(("layers", "played"), [(1, 0), (3, 1), (3, 0)])
def test_a_sound_kept_starts_from_the_phase_its_draft_played_without_drafting_it_again(
    model_with_draft: tuple[Path, Path], layers: int, played: int
) -> None:
    """The first sound of a change is a draft of one velocity layer (`played` of the first
    set's `layers`); the sound kept of that latent, rendered next, takes the phase that draft
    played with instead of running the draft decoder and making its phase again, and sounds as
    its render alone would; the other layers of its set start from it. Other sets' drafts are
    made (of their middle layers) as before."""
    model, _ = model_with_draft
    decoder, fresh = Decoder(model), Decoder(model)
    info = decoder.info
    z, classes = draft.draw_latents(info, np.random.default_rng(5), 2 * layers)
    onset = info.sample_rate // 10
    list(decoder.drafts_onset_first(z[[played]], classes[[played]], onset, floor=1e-4))
    counting = CountingSession(decoder._draft_session)
    decoder._draft_session = counting
    kept = decoder.render(z, classes, floor=1e-4, layers=layers)
    assert counting.latents == [1]  # the second set's middle alone
    alone = fresh.render(z[[played]], classes[[played]], floor=1e-4)
    np.testing.assert_allclose(kept[played], alone[0], atol=1e-5)
    other = fresh.render(z[layers:], classes[layers:], floor=1e-4, layers=layers)
    np.testing.assert_allclose(kept[layers:], other, atol=1e-5)


def test_the_draft_learns_its_decoder(model_with_draft: tuple[Path, Path]) -> None:
    _, run = model_with_draft
    history = (run / "history.csv").read_text().splitlines()
    column = history[0].split(",").index("val_loss")
    losses = [float(row.split(",")[column]) for row in history[1:]]
    assert len(losses) >= 3
    assert min(losses[1:]) < 0.7 * losses[0]


def test_a_draft_beside_another_decoder_is_refused(
    model_with_draft: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = model_with_draft
    cfg = make_config("seed_vae", **{**TINY, "seed": 1})  # other weights, the same shapes
    audio, labels = synthetic_drums(2, sample_rate=cfg.sample_rate, num_samples=cfg.num_samples)
    arrays = Arrays(audio, labels, cfg.class_names)
    train(cfg, tmp_path / "other", arrays, None, smoke_test=True, verbose=0)
    other = export_run(tmp_path / "other").decoder_path.parent
    shutil.copy(model / contract.DRAFT_FILE, other / contract.DRAFT_FILE)
    with pytest.raises(ModelError, match="made from another decoder") as info:
        Decoder(other)
    assert str(other / contract.DRAFT_FILE) in str(info.value)
    assert Decoder(other, use_draft=False).draft_path is None


def test_the_decoder_s_metadata_may_change_under_its_draft(
    model_with_draft: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = model_with_draft
    shutil.copytree(model, tmp_path / "m")
    decoder = tmp_path / "m" / contract.DECODER_FILE
    rewrite_metadata(decoder, decoder, name="renamed")  # as adding axes or class latents does
    assert Decoder(tmp_path / "m").draft_path is not None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_fft": str(2 * 512)}, "n_fft"),
        ({"role": "decoder"}, "role"),
        ({"draft_of": None}, "draft_of"),
    ],
)
def test_a_draft_that_does_not_fit_its_decoder_is_refused(
    model_with_draft: tuple[Path, Path], tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    model, _ = model_with_draft
    shutil.copytree(model, tmp_path / "m")
    bad = tmp_path / "m" / contract.DRAFT_FILE
    rewrite_metadata(bad, bad, **changes)
    with pytest.raises(ModelError, match=message) as info:
        Decoder(tmp_path / "m")
    assert str(bad) in str(info.value)


def test_the_exported_draft_follows_the_contract(model_with_draft: tuple[Path, Path]) -> None:
    model, _ = model_with_draft
    meta = {p.key: p.value for p in onnx.load(str(model / contract.DRAFT_FILE)).metadata_props}
    assert meta[contract.ROLE] == contract.DRAFT
    assert set(contract.REQUIRED_KEYS) <= set(meta)
    assert TINY["sample_rate"] == int(meta[contract.SAMPLE_RATE])


def test_a_kill_stops_a_draft_run_with_one_line_that_says_how_to_go_on(
    model_with_draft: tuple[Path, Path], tmp_path: Path
) -> None:
    """A real SIGTERM to a real dkvae-draft: no traceback, the epochs kept, and the command that
    goes on (dkvae-draft's own, not dkvae-train's); exit status 143, as a shell says."""
    import json
    import re
    import signal
    import subprocess
    import sys
    import time

    model, _ = model_with_draft
    run = tmp_path / "draft-run"
    command = [sys.executable, "-m", "dkvae_training.draft", str(model), str(run)]
    proc = subprocess.Popen(
        [*command, "--max-minutes", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    state = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err, err
    found = re.search(rf"stopped by SIGTERM; \S+ keeps epoch (\d+): dkvae-draft {model} ", err)
    assert found and f"{run} --resume continues from there" in err, err
    assert json.loads(state.read_text())["epoch"] == int(found.group(1)) >= 1
