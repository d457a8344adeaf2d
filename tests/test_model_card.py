"""The model card's licence section: the weights' licence, and the kits it cannot carry."""

from __future__ import annotations

from pathlib import Path

from dkvae_export.model_card import design_lines, licence_section, shown_path
from dkvae_training.licences import WEIGHTS_LICENCE


def test_licence_section_states_the_weights_licence_and_flags_other_kits() -> None:
    clean = "\n".join(licence_section([("a", "CC0"), ("b", "CC-BY-SA-3.0-us"), ("c", "MIT")]))
    assert f"The weights: {WEIGHTS_LICENCE}, with the attribution" in clean
    assert "Every training kit's licence is one of them." in clean
    assert "cannot carry:" not in clean
    mixed = "\n".join(
        licence_section([("a", "CC0"), ("Zed", "GPL-2"), ("b", "GPL-2"), ("b", ""), ("c", "MIT")])
    )
    assert "cannot carry: GPL-2 (b, Zed); unknown (b)." in mixed
    assert "Every training kit" not in mixed
    assert "not checked" in "\n".join(licence_section(None))


def test_the_card_shows_no_path_of_the_training_machine() -> None:
    inside = Path(__file__).resolve().parents[1] / "data" / "default-bank"
    assert shown_path(str(inside)) == "data/default-bank"
    assert shown_path("/somewhere/else/runs/my-bank") == "runs/my-bank"
    assert shown_path(None) == "-"


def test_a_spectrogram_model_is_described_as_one() -> None:
    cfg = {"kind": "seed_vae", "spec_n_fft": 2048, "spec_hop_length": 256, "kl_weight": 0.001}
    text = "\n".join(design_lines({**cfg, "kl_warmup_steps": 0, "spec_decoder": "conv1d"}))
    assert "log-magnitude STFT (n_fft 2048 / hop 256)" in text
    assert "1-D transposed convolutions" in text and "inverse STFT" not in text
    assert "mel distance" not in text
    tuned = "\n".join(design_lines({**cfg, "kl_warmup_steps": 0, "spec_mel_db_weight": 0.5}))
    assert "MSE + issue 18's mel distance (dB, on the decoded magnitudes) x 0.5 + KL" in tuned
    assert "adversarial" not in tuned
    staged = "\n".join(design_lines({**cfg, "kl_warmup_steps": 0, "adversarial_weight": 0.1}))
    assert "adversarial stage: the decoder alone" in staged and "0.1 x (hinge" in staged
