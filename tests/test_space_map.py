"""`dkvae-live map`: a PNG with a panel per class and every pad of the kit on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness.synth_models import CLASSES, sine_decoder

from dkvae_live.contract import AXIS_NAMES
from dkvae_live.kit import Kit, save_kit
from dkvae_live.model import Decoder
from dkvae_live.pads import default_pads

pytest.importorskip("matplotlib")


def test_map_writes_a_png_with_every_pad_of_the_kit(tmp_path: Path) -> None:
    from PIL import Image

    from dkvae_live.space_map import draw_map

    rng = np.random.default_rng(0)
    axes = {"kick": {a: {"direction": rng.normal(size=8).tolist(), "std": 1.0} for a in AXIS_NAMES}}
    model = sine_decoder(tmp_path / "decoder.onnx", metadata={"dkvae.axes": json.dumps(axes)})
    pads = default_pads(CLASSES, 8)
    kit = tmp_path / "gm.toml"
    save_kit(Kit("gm", pads), kit)
    out = tmp_path / "map.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dkvae_live",
            "map",
            "--model",
            str(model),
            "--kit",
            str(kit),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"{len(pads)} pads" in result.stdout
    with Image.open(out) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 400
    # every pad is placed, in its own class's plane, where its latent projects
    placed = draw_map(Decoder(model).info, pads, tmp_path / "again.png")
    assert sorted(placed) == sorted(pads)
    basis = np.linalg.qr(np.array([axes["kick"][a]["direction"] for a in AXIS_NAMES])[:2].T)[0]
    assert np.abs(basis[:, 0] @ pads[36].latent) == pytest.approx(abs(placed[36][0]), abs=1e-6)


def test_map_of_a_kit_that_does_not_fit_says_why(tmp_path: Path) -> None:
    model = sine_decoder(tmp_path / "decoder.onnx")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dkvae_live",
            "map",
            "--model",
            str(model),
            "--kit",
            str(tmp_path / "none.toml"),
            "-o",
            str(tmp_path / "m.png"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "no such kit file" in result.stdout
