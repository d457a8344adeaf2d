"""The daemon's settings: everything it can be told on its command line (cli.py fills them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .outputs import STEREO


def user_kit_dir() -> Path:
    """Where kits live when no --kit-dir or --kit names a folder (XDG_DATA_HOME)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "dkvae-live" / "kits"


@dataclass
class Settings:
    """Everything the daemon can be told on its command line."""

    model: Path | None = None
    kit: Path | None = None
    kit_dir: Path | None = None
    allow_dirs: tuple[Path, ...] = ()
    device: str | None = None
    host_api: str | None = None
    samplerate: int | None = None
    blocksize: int = 0
    polyphony: int = 32
    master_gain: float = 0.5
    midi: bool = True
    midi_api: str = "auto"
    midi_port: str | None = None
    midi_channel: int | None = None
    client_name: str = "dkvae"
    osc_host: str = "127.0.0.1"
    osc_port: int = 9000
    osc_allow: tuple[str, ...] = ()
    outputs: str = STEREO  # outputs.OUTPUT_MODES: which output pair each pad plays on
