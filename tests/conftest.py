from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from live_harness import Capture, Daemon, jack_running, jack_server
from synth_models import sine_decoder


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


@pytest.fixture
def daemon(jack: None, sine_model: Path) -> Iterator[Daemon]:
    """A running daemon on the sine test model."""
    d = Daemon(sine_model)
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
