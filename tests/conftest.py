from __future__ import annotations

import os
import shutil

# As in the daemon (dkvae_live/cli.py): the render worker's numpy work (resampling is a matrix
# product) runs on one BLAS thread. A pool of BLAS threads beside the worker's real-time thread
# made its first sound wait 100-160 ms on this 2-core machine. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.live import Capture, Daemon, jack_running, jack_server
from harness.synth_models import sine_decoder


@pytest.fixture(scope="session")
def jack() -> Iterator[None]:
    """A JACK server: the one CI started, or a dummy-driver one of our own."""
    if not jack_running() and shutil.which("jackd") is None:
        pytest.skip("no JACK server and no jackd to start one (apt-get install jackd2)")
    with jack_server():
        yield


@pytest.fixture(scope="session")
def sine_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sine_decoder(tmp_path_factory.mktemp("model") / "decoder.onnx")


@pytest.fixture(scope="session")
def gm_kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The General MIDI map with its plain default latents: no velocity timbre, no variation."""
    from harness.synth_models import CLASSES

    from dkvae_live.kit import Kit, save_kit
    from dkvae_live.pads import default_pads

    path = tmp_path_factory.mktemp("kit") / "gm.toml"
    save_kit(Kit("gm", default_pads(CLASSES, 8)), path)
    return path


@pytest.fixture
def daemon(jack: None, sine_model: Path, gm_kit: Path) -> Iterator[Daemon]:
    """A running daemon on the sine test model and the plain General MIDI kit."""
    d = Daemon(sine_model, "--kit", str(gm_kit))
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


@pytest.fixture
def capture(daemon: Daemon) -> Iterator[Capture]:
    """What the daemon plays, recorded by a JACK client."""
    cap = Capture(daemon.audio_port_pattern)
    cap.wait_until(1)
    yield cap
    cap.close()
