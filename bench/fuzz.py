"""Fuzz a running daemon: 100,000 hostile OSC datagrams and 20,000 MIDI messages (Hypothesis).

Method: a daemon on the sine test model, its output captured by a JACK client. The fuzz: random
bytes, truncated and oversized packets, valid addresses with wrong types or counts, NaN, inf
and huge numbers, bundles nested 300 deep, hostile paths (harness/fuzzing.py), then random MIDI
bytes, SysEx, running status and cut messages sent raw over JACK MIDI from a C client
(harness/raw_midi.py: a Python JACK callback costs this VM xruns of its own). Each part goes in
--chunks chunks; each chunk (until the daemon has taken it in) is a busy window, followed by an
idle window of the same length: on a shared VM the idle xrun rate moves by a factor of 5
within minutes, so the baseline is taken between the chunks, not once (compare_xruns). Every
2000 datagrams a valid trigger and a valid latent for pad 37 go in between, and a last latent
after the fuzz. Afterwards: is the daemon alive, did every datagram arrive and get counted, is
the captured audio finite and under full scale, were there more xruns than idle, were the
valid triggers played (the fuzz's own valid triggers count too: a lower bound), does pad 37
hold the last latent sent, and does a valid trigger still play. Last, the controls: the same
floods from the same senders, with the daemon idle, into a UDP socket that drops them and into
jack_midi_dump (a C client), so that what the flood costs this machine can be told from what
the daemon adds. By default the datagrams go as a flood (about 20,000 a second) and the MIDI 8
messages a cycle; --rate and --midi-per-cycle pace them, so the same fuzz can be told apart from
the cost of its own senders.

    .venv/bin/python bench/fuzz.py [--datagrams 100000] [--midi 20000] [--chunks 10]
        [--rate DATAGRAMS_PER_S] [--midi-per-cycle 8]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from common import PERIOD
from harness.fuzzing import caught_up_status, datagrams, draw_examples, midi_messages
from harness.live import (
    Capture,
    Daemon,
    LateClients,
    OscPeer,
    free_udp_port,
    jack_server,
)
from harness.raw_midi import RawMidiSender
from harness.synth_models import sine_decoder
from harness.xruns import compare_xruns

PROBE_EVERY = 2000  # datagrams between two valid messages


def chunked(examples: list[bytes], chunks: int) -> list[list[bytes]]:
    size = -(-len(examples) // chunks)
    return [examples[i : i + size] for i in range(0, len(examples), size)]


def send_datagrams(
    conn: Connection, port: int, examples: list[bytes], chunks: int, rate: float
) -> None:
    """In a child process, a chunk each time the parent says so: the datagrams, 200 at a time
    (`rate` a second, or with a 10 ms pause between when 0), and every PROBE_EVERY a valid
    trigger and a valid latent for pad 37; a last latent after them."""
    peer = OscPeer(port)
    sent = 0
    for chunk in chunked(examples, chunks):
        conn.recv()
        started = time.monotonic()
        for i, datagram in enumerate(chunk, 1):
            peer.send_raw(datagram)
            sent += 1
            if sent % PROBE_EVERY == 0:
                peer.send("/dkvae/trigger", 36, 100)
                peer.send("/dkvae/pad/latent", 37, *probe_latent(sent))
            if sent % 200 == 0:
                time.sleep(max(0.0, started + i / rate - time.monotonic()) if rate else 0.01)
        if sent == len(examples):
            peer.send("/dkvae/pad/latent", 37, *probe_latent(sent + 1))
        conn.send(len(chunk))
    peer.close()


def send_midi(
    conn: Connection, port: str, examples: list[bytes], chunks: int, per_cycle: int
) -> None:
    """In a child process, a chunk each time the parent says so: the raw MIDI messages,
    `per_cycle` per JACK cycle, until they are gone, from a C JACK client (harness/raw_midi.py).
    The sender stays in the graph between chunks, so the idle windows have the same clients."""
    midi = RawMidiSender(f"dkvae-fuzz-midi-{os.getpid()}", port, per_cycle)
    for chunk in chunked(examples, chunks):
        conn.recv()
        midi.send(chunk)
        sent, _ = midi.report()
        conn.send(sent)
    time.sleep(0.5)
    midi.close()


def udp_sink(port: int, ready: Connection) -> None:
    """In a child process: receive datagrams on `port` and drop them, the control for the OSC
    flood (a socket that reads and parses nothing)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.bind(("127.0.0.1", port))
    ready.send(True)
    while True:
        sock.recv(65536)


class Windows:
    """Busy windows (a chunk sent, and taken in) with an idle window of the same length after
    each, on one daemon: the xruns and the clients JACK named late in each kind."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.busy: list[tuple[int, float]] = []
        self.idle: list[tuple[int, float]] = []
        self.late: dict[str, Counter[str]] = {"busy": Counter(), "idle": Counter()}

    def run(
        self,
        sender: Callable[..., None],
        target: object,
        examples: list[bytes],
        chunks: int,
        pace: float,
    ) -> None:
        """Send `examples` in `chunks` from `sender` in a forked child (this process has a JACK
        client, the capture, whose Python callback would wait for its GIL behind a sending
        loop); `pace` is the sender's last argument (its rate). A busy window lasts until the
        daemon has taken its chunk in (caught_up_status, at least 1.1 s), for the controls
        too, so that their windows are as long."""
        conn, child_conn = multiprocessing.Pipe()
        child = multiprocessing.get_context("fork").Process(
            target=sender, args=(child_conn, target, examples, chunks, pace)
        )
        child.start()
        xruns = self._status()["xruns"]
        for _ in chunked(examples, chunks):
            started, late = time.monotonic(), LateClients()
            conn.send("go")
            conn.recv()
            xruns_after = caught_up_status(self.daemon, attempts=300)["xruns"]
            seconds = time.monotonic() - started
            self.busy.append((xruns_after - xruns, seconds))
            self.late["busy"].update(late.counts(self.daemon.client_name) or {})
            xruns, started, late = xruns_after, time.monotonic(), LateClients()
            time.sleep(seconds)
            now = self._status()["xruns"]
            self.idle.append((now - xruns, time.monotonic() - started))
            self.late["idle"].update(late.counts(self.daemon.client_name) or {})
            xruns = now
        child.join()

    def _status(self) -> dict:
        """The status; when the fuzz has used up the reply rate (error replies to MIDI learn
        and the like) or moved the reply port, it is asked again until it answers."""
        try:
            return dict(self.daemon.osc.status())
        except TimeoutError:
            return caught_up_status(self.daemon, attempts=300)

    def result(self) -> dict[str, object]:
        return {
            **compare_xruns(self.busy, self.idle),
            "late_clients": {kind: dict(c) for kind, c in self.late.items()},
        }


def controls(
    daemon: Daemon, osc_examples: list[bytes], midi_examples: list[bytes], args: argparse.Namespace
) -> dict[str, object]:
    """The same floods from the same senders, with the daemon idle: the datagrams into a UDP
    socket that drops them, the MIDI into jack_midi_dump (a C client). Their xruns are the
    benchmark's own senders' and the machine's, not the daemon's."""
    out: dict[str, object] = {}
    ready, ready_child = multiprocessing.Pipe()
    port = free_udp_port()
    sink = multiprocessing.get_context("fork").Process(target=udp_sink, args=(port, ready_child))
    sink.start()
    ready.recv()
    osc = Windows(daemon)
    osc.run(send_datagrams, port, osc_examples, args.chunks, args.rate)
    sink.kill()
    out["osc_into_udp_sink"] = osc.result()
    if shutil.which("jack_midi_dump") is not None:
        name = f"dkvae-fuzz-sink-{os.getpid()}"
        dump = subprocess.Popen(
            ["jack_midi_dump", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(1.0)
        midi = Windows(daemon)
        midi.run(send_midi, f"{name}:input", midi_examples, args.chunks, args.midi_per_cycle)
        dump.terminate()
        dump.wait()
        out["midi_into_jack_midi_dump"] = midi.result()
    return out


def probe_latent(count: int) -> list[float]:
    """A latent no fuzz example is likely to send, different for each probe."""
    return [round(((count * (dim + 3)) % 997) / 997 * 4.0 - 2.0, 4) for dim in range(8)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datagrams", type=int, default=100_000)
    parser.add_argument("--midi", type=int, default=20_000)
    parser.add_argument(
        "--chunks", type=int, default=10, help="busy windows per part, each followed by an idle one"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="datagrams a second (default 0: a flood, 200 then a 10 ms pause, about 20,000/s)",
    )
    parser.add_argument("--midi-per-cycle", type=int, default=8, help="MIDI messages a cycle")
    parser.add_argument("--json", type=Path, default=Path("bench/results/fuzz.json"))
    args = parser.parse_args()
    with jack_server(period=PERIOD), tempfile.TemporaryDirectory() as tmp:
        model = sine_decoder(Path(tmp) / "decoder.onnx")
        osc_examples = draw_examples(datagrams, args.datagrams)
        midi_examples = draw_examples(midi_messages, args.midi)
        # Hundreds of MB of examples: keep this process's garbage collector from walking them
        # while the capture callback waits for the GIL.
        gc.collect()
        gc.freeze()
        daemon = Daemon(model, "--kit-dir", tmp)
        try:
            daemon.wait_ready()
            capture = Capture(daemon.audio_port_pattern, seconds=900)
            capture.wait_until(1)
            started = time.monotonic()
            before = daemon.osc.status()
            osc_part = Windows(daemon)
            osc_part.run(send_datagrams, daemon.osc_port, osc_examples, args.chunks, args.rate)
            midi_part = Windows(daemon)
            midi_part.run(
                send_midi, daemon.midi_port, midi_examples, args.chunks, args.midi_per_cycle
            )
            seconds = time.monotonic() - started
            status = caught_up_status(daemon, attempts=300)
            triggers_played = status["notes_played"] - before["notes_played"]
            daemon.osc.drain()
            daemon.osc.send("/dkvae/pad/get", 37)
            pad = daemon.osc.receive(timeout=5.0)
            last_latent = probe_latent(len(osc_examples) + 1)
            latent_kept = pad.address == "/dkvae/pad" and np.allclose(
                pad.params[4:], last_latent, atol=1e-4
            )
            played = capture.buffer[: capture.end]
            finite = bool(np.all(np.isfinite(played)))
            peak = float(np.max(np.abs(played))) if played.size else 0.0
            daemon.osc.send("/dkvae/stop")
            time.sleep(0.3)
            still_plays = (
                float(
                    np.max(np.abs(capture.hit(lambda: daemon.osc.send("/dkvae/trigger", 36, 127))))
                )
                > 0.1
            )
            control = controls(daemon, osc_examples, midi_examples, args)
            alive = daemon.proc.poll() is None
            capture.close()
        finally:
            daemon.stop()
    result = {
        "datagrams_sent": len(osc_examples),
        "datagrams_received": status["osc_received"],
        "valid_triggers_in_between": len(osc_examples) // PROBE_EVERY,
        "notes_played_during": triggers_played,
        "last_valid_latent_kept": latent_kept,
        "midi_sent": len(midi_examples),
        "midi_received": status["midi_received"],
        "dropped": {k: v for k, v in status.items() if k.startswith("dropped")},
        "seconds_with_idle_windows": round(seconds, 1),
        "rate": args.rate or "flood",
        "midi_per_cycle": args.midi_per_cycle,
        "xruns": compare_xruns(osc_part.busy + midi_part.busy, osc_part.idle + midi_part.idle),
        "xruns_osc_part": osc_part.result(),
        "xruns_midi_part": midi_part.result(),
        "controls_daemon_idle": control,
        "audio_finite": finite,
        "audio_peak": peak,
        "daemon_alive": alive,
        "valid_trigger_plays_after": still_plays,
        "traceback_in_log": "Traceback" in daemon.log(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    for key, value in result.items():
        print(f"{key:28} {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
