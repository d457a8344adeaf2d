"""The README's OSC example, run as a reader would run it, against the shipped model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.live import Daemon

from dkvae_live.contract import AXIS_NAMES
from dkvae_live.kit import DEFAULT_KIT, load_kit
from dkvae_live.model import Decoder, resolve_model_path

README = Path(__file__).resolve().parents[1] / "README.md"


def osc_example() -> str:
    """The Python block of the README's OSC paragraph."""
    section = README.read_text().split("- **OSC**", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's OSC paragraph has no Python example"
    return "\n".join(line.strip() for line in match.group(1).splitlines())


@pytest.fixture
def shipped(jack: None) -> Iterator[Daemon]:
    d = Daemon(None)
    try:
        d.wait_ready(timeout=60)
        yield d
    finally:
        d.stop()


@pytest.mark.jack
def test_the_readme_osc_example_moves_pad_36_as_it_says(shipped: Daemon) -> None:
    code = osc_example().replace('"127.0.0.1", 9000', f'"127.0.0.1", {shipped.osc_port}')
    exec(compile(code, "README.md", "exec"), {})
    info = Decoder(resolve_model_path(None)).info
    kit = load_kit(DEFAULT_KIT, info.class_names, info.latent_size)
    shipped.osc.send("/dkvae/pad/get", 36)
    latent = shipped.osc.reply("/dkvae/pad")[4:]
    assert int(shipped.osc.status()["dropped"]) == 0  # nothing refused
    # the latent tells what happened: decay moved it, then one dimension was set
    decay = info.axes["kick"].directions[AXIS_NAMES.index("decay")]
    want = [z + 1.5 * d for z, d in zip(kit.pads[36].latent, decay, strict=True)]
    want[3] = -1.0
    assert latent == pytest.approx(want, abs=1e-3)
