"""The daemon's footprint and a stress run, on a JACK dummy server of our own.

Method: the daemon (shipped default model if there is one, else the sine test model) on a JACK
server `dkvae-bench` (48 kHz, --period frames); xruns are the daemon's count of the server's, and
the server's log names the clients it found late; MIDI goes out from a child process through
rtmidi (its JACK callback is C), so that no Python JACK callback in this busy process makes the
graph late; CPU time and memory come from /proc/PID (CPU in % of one core).

1. start -> ready: wall time from launching `python -m dkvae_live` to its "ready:" log line
   (--starts times; the last daemon stays up for the rest).
2. idle: --idle seconds with no input: CPU, RSS, xruns (daemon's count and JACK's).
3. playing: --play seconds of 16th notes at 180 BPM (12 notes/s, MIDI) with the played pads'
   latents moved 100 times a second over OSC (/dkvae/pad/latent): CPU, RSS.
4. stress: --stress seconds of 1000 OSC latent updates/s plus 50 MIDI notes/s, paced from one
   thread: xruns (against the idle run of the same length), notes lost (MIDI notes sent vs the
   daemon's notes received and played), OSC messages dropped (sent vs received by the daemon,
   the daemon's dropped counters, and the kernel's UDP receive-buffer errors).

    .venv/bin/python bench/footprint.py [--period 64] [--idle 60] [--play 15] [--stress 60]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    PERIOD,
    RESULTS,
    ProcessMeter,
    bench_jack_server,
    choose_model,
    conditions,
    py_spy,
    spy_summary,
    stats,
    table,
    udp_receive_errors,
    use_bench_server,
    write_json,
)

use_bench_server()

from harness.live import Daemon, LateClients, MidiSenderProcess  # noqa: E402

GROOVE = (36, 42, 38, 42)  # kick, hat, snare, hat: a 16th-note pattern


def start_daemon(model: Path) -> tuple[Daemon, float]:
    """A daemon and its seconds from launch to the "ready:" log line."""
    started = time.monotonic()
    daemon = Daemon(model, "--host-api", "JACK")
    while " ready: " not in daemon.log():
        if daemon.proc.poll() is not None or time.monotonic() - started > 60:
            daemon.stop()
            raise RuntimeError(f"daemon did not get ready:\n{daemon.log()}")
        time.sleep(0.005)
    return daemon, time.monotonic() - started


def snapshot(daemon: Daemon) -> dict[str, Any]:
    status = daemon.osc.status()
    return {
        "xruns": int(status["xruns"]),
        "notes_received": int(status["notes_received"]),
        "notes_played": int(status["notes_played"]),
        "osc_received": int(status["osc_received"]),
        "dropped": int(status["dropped"]),
        "dropped_by_reason": {k: v for k, v in status.items() if k.startswith("dropped.")},
        "udp_rcvbuf_errors": udp_receive_errors(),
        "voices_stolen": int(status["voices_stolen"]),
        "renders": int(status["renders"]),
    }


def delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {k: v - before[k] for k, v in after.items() if isinstance(v, int)}


def paced(
    daemon: Daemon,
    midi: MidiSenderProcess,
    seconds: float,
    latent_rate: float,
    note_rate: float,
    latent_size: int,
    pads: tuple[int, ...],
) -> dict[str, Any]:
    """Send latent updates and MIDI notes at these rates for `seconds`, from this thread; the
    sender catches up when it falls behind, so the counts are right even under load."""
    start = time.perf_counter()
    latents = notes = 0
    step = 0
    while True:
        now = time.perf_counter() - start
        if now >= seconds:
            break
        due_notes = min(int(now * note_rate) + 1, int(seconds * note_rate))
        while notes < due_notes:
            midi.note_on(GROOVE[notes % len(GROOVE)], 100 + notes % 27)
            notes += 1
        due_latents = min(int(now * latent_rate) + 1, int(seconds * latent_rate))
        while latents < due_latents:
            phase = 2 * math.pi * step / 200.0  # a slow circle, as from an XY pad
            latent = [math.cos(phase + i) * 1.5 for i in range(latent_size)]
            daemon.osc.send("/dkvae/pad/latent", pads[latents % len(pads)], *latent)
            latents += 1
            step += 1
        time.sleep(0.0003)
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "notes_sent": notes,
        "latent_updates_sent": latents,
        "note_rate": notes / elapsed,
        "latent_rate": latents / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--period", type=int, default=PERIOD)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--play", type=float, default=15.0)
    parser.add_argument("--stress", type=float, default=60.0)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="record which daemon threads hold the GIL (py-spy --gil) in the "
        "idle and stress phases (bench/results/footprint-{idle,stress}"
        ".pyspy.txt, collapsed stacks) and print a summary",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "footprint.json")
    args = parser.parse_args()
    cond = conditions()
    started = time.monotonic()
    result: dict[str, Any] = {}
    with bench_jack_server(args.period), tempfile.TemporaryDirectory() as tmp:
        model, model_desc = choose_model(Path(tmp), args.model)
        print(f"footprint and stress on {model_desc}, JACK period {args.period}", flush=True)
        ready_times = []
        for i in range(args.starts):
            daemon, seconds = start_daemon(model)
            ready_times.append(seconds)
            if i < args.starts - 1:
                daemon.stop()
        try:
            meter = ProcessMeter(daemon.proc.pid)
            result["start_to_ready_s"] = stats(ready_times)
            result["memory_after_start"] = meter.memory_mib()
            # No Python JACK client in this process: its callback would wait for the GIL
            # behind the sending loop, make the graph late and lose notes of its own.
            midi = MidiSenderProcess(daemon.midi_port)
            status = daemon.osc.status()
            latent_size = int(status["latent_size"])
            time.sleep(1.0)

            print(f"idle {args.idle:g} s", flush=True)
            before, late = snapshot(daemon), LateClients()
            spy = (
                py_spy(daemon.proc.pid, args.idle, RESULTS / "footprint-idle.pyspy.txt")
                if args.py_spy
                else None
            )
            cpu_idle = meter.cpu_percent_over(args.idle)
            if spy:
                spy.wait()
            result["idle"] = {
                "seconds": args.idle,
                "cpu_percent": cpu_idle,
                **meter.memory_mib(),
                **delta(snapshot(daemon), before),
                "late_clients": late.counts(daemon.client_name),
            }

            print(
                f"playing 16ths at 180 BPM with latent moves at 100/s for {args.play:g} s",
                flush=True,
            )
            before = snapshot(daemon)
            cpu0, t0 = meter.cpu_seconds(), time.monotonic()
            sent = paced(daemon, midi, args.play, 100.0, 12.0, latent_size, (36, 38))
            cpu = 100 * (meter.cpu_seconds() - cpu0) / (time.monotonic() - t0)
            time.sleep(0.5)
            result["playing"] = {
                "cpu_percent": cpu,
                **meter.memory_mib(),
                **sent,
                **delta(snapshot(daemon), before),
            }

            print(f"stress: 1000 latent updates/s + 50 notes/s for {args.stress:g} s", flush=True)
            time.sleep(1.0)
            before, late = snapshot(daemon), LateClients()
            cpu0, t0 = meter.cpu_seconds(), time.monotonic()
            spy = (
                py_spy(daemon.proc.pid, args.stress, RESULTS / "footprint-stress.pyspy.txt")
                if args.py_spy
                else None
            )
            sent = paced(daemon, midi, args.stress, 1000.0, 50.0, latent_size, (36, 38, 42))
            if spy:
                spy.wait()
            cpu = 100 * (meter.cpu_seconds() - cpu0) / (time.monotonic() - t0)
            time.sleep(1.0)
            after = snapshot(daemon)
            d = delta(after, before)
            stress = {
                "cpu_percent": cpu,
                **meter.memory_mib(),
                **sent,
                **d,
                "dropped_by_reason_after": after["dropped_by_reason"],
                "late_clients": late.counts(daemon.client_name),
            }
            stress["notes_lost_in_transport"] = sent["notes_sent"] - d["notes_received"]
            stress["notes_not_played"] = d["notes_received"] - d["notes_played"]
            # osc_received also counts the /dkvae/status request of the `after` snapshot
            stress["osc_not_received"] = sent["latent_updates_sent"] - (d["osc_received"] - 1)
            result["stress"] = stress
            midi.close()
        finally:
            daemon.stop()
    idle_s = result["idle"]["seconds"]
    result["stress"]["xruns_vs_idle_per_minute"] = {
        "idle_daemon": 60 * result["idle"]["xruns"] / idle_s,
        "stress_daemon": 60 * result["stress"]["xruns"] / result["stress"]["seconds"],
    }
    result["conditions"] = {
        **cond,
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
        "model": model_desc,
        "period": args.period,
        "sample_rate": 48000,
        "seconds": round(time.monotonic() - started, 1),
    }
    print_result(result)
    if args.py_spy:
        for phase, seconds in (("idle", args.idle), ("stress", args.stress)):
            path = RESULTS / f"footprint-{phase}.pyspy.txt"
            if path.exists():
                text = spy_summary(path, seconds, what="GIL held")
                result[f"gil_{phase}"] = text
                print(f"\n{phase}: {text}")
    write_json(args.json, result)
    return 0


def print_result(r: dict[str, Any]) -> None:
    c = r["conditions"]
    print(
        f"\nDaemon footprint and stress; {c['model']}; JACK dummy period {c['period']}; "
        f"load {c['load_average_1_5_15']} -> {c['load_at_end']}"
    )
    s = r["start_to_ready_s"]
    rows = [
        ["start -> ready (s)", f"{s['median']:.2f}", f"max {s['max']:.2f} of {s['count']}"],
        ["RSS after start (MiB)", f"{r['memory_after_start']['rss_mib']:.0f}", ""],
        [
            "idle: CPU % of a core",
            f"{r['idle']['cpu_percent']:.1f}",
            f"RSS {r['idle']['rss_mib']:.0f} MiB",
        ],
        [
            "playing 16ths@180 + 100 moves/s: CPU %",
            f"{r['playing']['cpu_percent']:.1f}",
            f"RSS {r['playing']['rss_mib']:.0f} MiB, peak {r['playing']['peak_rss_mib']:.0f}",
        ],
    ]
    st, x = r["stress"], r["stress"]["xruns_vs_idle_per_minute"]
    rows += [
        [
            "stress: CPU %",
            f"{st['cpu_percent']:.1f}",
            f"{st['latent_rate']:.0f} updates/s, {st['note_rate']:.1f} notes/s sent",
        ],
        [
            "stress: xruns/min (daemon count)",
            f"{x['stress_daemon']:.1f}",
            f"idle: {x['idle_daemon']:.1f}",
        ],
        [
            "stress: clients JACK found late",
            str(st["late_clients"]),
            f"idle: {r['idle']['late_clients']}",
        ],
        [
            "stress: notes lost",
            st["notes_lost_in_transport"] + st["notes_not_played"],
            f"{st['notes_sent']} sent, {st['notes_received']} received, "
            f"{st['notes_played']} played",
        ],
        [
            "stress: OSC messages dropped",
            st["osc_not_received"] + st["dropped"],
            f"{st['latent_updates_sent']} sent, {st['osc_received']} received, "
            f"{st['dropped']} refused, UDP buffer errors {st['udp_rcvbuf_errors']}",
        ],
    ]
    print(table(["", "value", "detail"], rows))


if __name__ == "__main__":
    sys.exit(main())
