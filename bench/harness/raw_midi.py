"""A raw JACK MIDI sender with a C process callback (raw_midi_sender.c beside it), for the fuzz.

`harness.live.MidiSender` sends any bytes too, but from a Python callback: every JACK
cycle it takes a Python thread and the GIL, and measured into `jack_midi_dump` with the daemon
idle it raised this VM's xruns by itself (36 against 9 idle, 2026-12-01 16:46). This one costs
the graph a few microseconds a cycle. It is built on first use with gcc against libjack.so.0,
into a folder under the system's temporary directory, keyed by the source's hash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

SOURCE = Path(__file__).with_name("raw_midi_sender.c")


def build() -> Path:
    """The sender's executable, compiled if this source has not been compiled yet."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    exe = Path(tempfile.gettempdir()) / "dkvae-bench" / f"raw_midi_sender-{digest}"
    if exe.exists():
        return exe
    if shutil.which("gcc") is None:
        raise RuntimeError("gcc is needed to build raw_midi_sender.c (apt-get install gcc)")
    exe.parent.mkdir(parents=True, exist_ok=True)
    partial = exe.with_suffix(f".{os.getpid()}")
    done = subprocess.run(
        [
            "gcc",
            "-O2",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-o",
            str(partial),
            str(SOURCE),
            "-l:libjack.so.0",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building {SOURCE.name} failed:\n{done.stderr}")
    partial.replace(exe)
    return exe


class RawMidiSender:
    """A child process, a JACK client connected to `destination`, that sends the messages given
    to `send`, at most `per_cycle` a cycle; `report` waits until they have gone out."""

    def __init__(self, client_name: str, destination: str, per_cycle: int) -> None:
        self.proc = subprocess.Popen(
            [str(build()), client_name, destination, str(per_cycle)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=False,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout
        ready = self._out.readline().decode()
        if not ready.startswith("ready "):
            self.proc.wait(timeout=5)
            raise RuntimeError(f"raw_midi_sender did not start (exit {self.proc.returncode})")
        self.port_name = ready.split(" ", 1)[1].strip()

    def send(self, messages: Iterable[bytes]) -> None:
        for message in messages:
            if not 0 < len(message) < 0xFFFF:
                raise ValueError(f"a message of {len(message)} bytes cannot be sent")
            self._in.write(struct.pack("<H", len(message)) + bytes(message))
        self._in.flush()

    def report(self) -> tuple[int, int]:
        """(messages sent, messages dropped as longer than a JACK MIDI buffer holds), once
        every message given so far has gone out."""
        self._in.write(struct.pack("<H", 0))
        self._in.flush()
        words = self._out.readline().decode().split()
        return int(words[1]), int(words[3])

    def close(self) -> None:
        self._in.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
