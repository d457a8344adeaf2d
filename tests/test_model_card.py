"""The model card's licence section: the weights' licence, and the kits it cannot carry."""

from __future__ import annotations

from dkvae_export.model_card import licence_section
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
