"""Trigger latency (MIDI and OSC) at one JACK period, next to its floors; latent change -> new hit.

Method (the one of bench/latency.py): a JACK dummy server of our own (`dkvae-bench`, 48 kHz,
--period frames), the daemon as its own process, a JACK client recording the daemon's output
port. For each hit: read the JACK frame time, send the trigger (a MIDI note-on over JACK MIDI,
or /dkvae/trigger over UDP), find the first captured sample over -60 dBFS after that frame.
latency = onset frame - frame at send. Hits are spaced 40-50 ms apart at random, so sends fall
at every phase of the period. JACK's frame time is an estimate from the clock, and it drifts
against the cycles by milliseconds when cycles come late; so MIDI is also measured in the
graph: onset frame - the frame the sender wrote the note-on at (0 = played in its cycle).

The model is the sine test model (harness/synth_models.py) unless --model is given: its attack is
at sample 0, so the onset found is the daemon's timing and not a model's slow attack; the model
plays no part in the note path (sounds are rendered ahead).

Floors, measured the same way (frame at send -> JACK frame of arrival):
- physical: one period (a sound can start no earlier than the next period's buffer);
- MIDI transport: bench/midi_echo.py, a process that receives JACK MIDI as the daemon does
  (rtmidi, polled) and echoes each note to a JACK MIDI output, recorded by a JACK client;
  also the bare one-hop JACK MIDI delivery (sender -> recording client);
- OSC transport: the same echo process receiving the UDP datagram and echoing it as JACK MIDI.
Target (issue 8): p99 of each trigger within one period of its transport floor's p99.

With --latent-sweep: the shortest gap between an OSC latent change and an OSC trigger at which
99 % of hits play the new sound. For each gap, --latent-trials trials alternate the pad between
two latents A and B; each captured hit is compared (normalised cross-correlation) with
reference hits of A and B captured long after a change. Works with any model.

    .venv/bin/python bench/trigger.py --period 64 [--hits 500] [--latent-sweep] [--json F]
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    PERIOD,
    RESULTS,
    ROOT,
    bench_jack_server,
    choose_model,
    conditions,
    py_spy,
    similarity,
    sine_model,
    spy_summary,
    stats,
    table,
    use_bench_server,
    wait_precisely,
    write_json,
)

use_bench_server()

import rtmidi  # noqa: E402
from harness.live import (  # noqa: E402
    Capture,
    Daemon,
    MidiCapture,
    MidiSender,
    free_udp_port,
    osc_datagram,
)
from latency import measure  # noqa: E402

PAD = 36
SWEEP_GAPS_MS = (
    0.0,
    0.5,
    1.0,
    2.0,
    2.5,
    3.0,
    3.5,
    4.0,
    4.5,
    5.0,
    6.0,
    7.0,
    10.0,
    15.0,
    20.0,
    30.0,
    50.0,
    100.0,
)


def in_units(samples: list[int] | list[float], rate: int) -> dict[str, Any]:
    s = stats(samples)
    return {
        "latencies_samples": [int(x) for x in samples],  # every hit, for a closer look
        "hits": s["count"],
        **{f"{k}_samples": s[k] for k in ("median", "p99", "max", "min")},
        **{f"{k}_ms": s[k] * 1000 / rate for k in ("median", "p99", "max", "min")},
    }


def measure_in_graph(capture: Capture, midi: MidiSender, hits: int) -> tuple[list[int], int]:
    """Frames from the JACK frame a MIDI note-on was written at (the sender's cycle start plus
    its offset, exact) to the onset: 0 when the note plays in the cycle it arrives in, k
    periods when it plays k cycles later. Unlike the latency from `now()`, this does not move
    with JACK's clock estimate, which drifts by milliseconds against the cycles when cycles
    come late (seen at period 128: 49 hits in a row 2.5 to 5 periods "late", one 17 early)."""
    latencies, missed = [], 0
    assert capture.first_frame is not None
    for _ in range(hits):
        time.sleep(0.03 + random.random() * 0.01)
        earliest, index = capture.trigger_frame(), len(midi.sent_frames)
        midi.note_on(PAD, 127)
        onset = capture.onset(earliest, int(0.03 * capture.rate))
        deadline = time.monotonic() + 1.0
        while len(midi.sent_frames) <= index and time.monotonic() < deadline:
            time.sleep(0.001)
        if onset is None or len(midi.sent_frames) <= index:
            missed += 1
        else:
            latencies.append(onset - (midi.sent_frames[index] - capture.first_frame))
    return latencies, missed


def measure_echo(midicap: MidiCapture, send: Any, hits: int) -> tuple[list[int], int]:
    """Frames from send to the echoed event's arrival at `midicap`, for `hits` sends."""
    latencies, missed = [], 0
    for _ in range(hits):
        time.sleep(0.01 + random.random() * 0.01)
        index = len(midicap.events)
        earliest, sent = midicap.trigger_frame(), midicap.now()
        send()
        event = midicap.wait_event(index, timeout=0.05)
        # A send can land in the cycle under way, which began before now(): negative latency.
        while event is not None and event[0] < earliest:  # a late echo of an earlier send
            index += 1
            event = midicap.wait_event(index, timeout=0.05)
        if event is None:
            missed += 1
        else:
            latencies.append(event[0] - sent)
        time.sleep(0.002)
        del midicap.events[:]  # late arrivals would pair with the next send
    return latencies, missed


def floors(period: int, hits: int) -> dict[str, Any]:
    """The MIDI and OSC transport floors, through bench/midi_echo.py."""
    name = f"dkvae-echo-{random.randrange(1 << 20)}"
    udp_port = free_udp_port()
    echo = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "midi_echo.py"), name, str(udp_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = {}
    try:
        assert echo.stdout is not None
        if echo.stdout.readline().strip() != "ready":
            raise RuntimeError("midi_echo.py did not start")
        time.sleep(0.3)
        # Every rtmidi client exists before the recording client starts and is closed after it
        # stops (see main()).
        sender = MidiSender(f"{name}:in")
        direct = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, f"direct-{name}")
        direct.open_virtual_port("out")
        midicap = MidiCapture()
        # rtmidi names the echo's 2nd client NAME-01
        echo_port = midicap.client.get_ports(f"^{name}.*:out", is_midi=True, is_output=True)[0]
        midicap.client.connect(echo_port, midicap.port_name)
        rate = midicap.rate
        lat, missed = measure_echo(midicap, lambda: sender.note_on(PAD, 127), hits)
        result["midi_echo"] = {**in_units(lat, rate), "missed": missed}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            datagram = osc_datagram("/dkvae/trigger", PAD, 127)
            lat, missed = measure_echo(
                midicap, lambda: sock.sendto(datagram, ("127.0.0.1", udp_port)), hits
            )
        result["osc_echo"] = {**in_units(lat, rate), "missed": missed}
        # One hop: a JACK MIDI sender straight to the recording client.
        midicap.client.disconnect(echo_port, midicap.port_name)
        midicap.connect(f"^direct-{name}.*:out")
        time.sleep(0.1)
        lat, missed = measure_echo(midicap, lambda: direct.send_message([0x99, PAD, 127]), hits)
        result["midi_direct"] = {**in_units(lat, rate), "missed": missed}
        midicap.close()
        sender.close()
        direct.close_port()
        direct.delete()
    finally:
        echo.kill()
        echo.wait()
    return result


def spy_per_render(path: Path, renders: int, rate: int) -> dict[str, float]:
    """Milliseconds each daemon thread ran per render (py-spy samples / rate / renders)."""
    per: dict[str, float] = {}
    for row in path.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        head = stack.split(";")[0]
        name = head.split(":")[-1].strip() if ":" in head else "audio (JACK thread)"
        per[name] = per.get(name, 0.0) + int(count) * 1000 / rate / max(1, renders)
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


# -- latent change -> next hit new ------------------------------------------------------------
def changed_hit(
    daemon: Daemon, capture: Capture, latent: list[float], gap_s: float, length: int
) -> tuple[np.ndarray | None, float]:
    """Silence the pad, set its latent, wait gap_s, trigger; the captured hit and the real gap."""
    daemon.osc.send("/dkvae/stop")
    time.sleep(0.03)
    sent = capture.trigger_frame()
    start = time.perf_counter()
    daemon.osc.send("/dkvae/pad/latent", PAD, *latent)
    gap = wait_precisely(start, gap_s)
    daemon.osc.send("/dkvae/trigger", PAD, 127)
    onset = capture.onset(sent, int((gap_s + 0.04) * capture.rate))
    if onset is None:
        return None, gap
    return capture.segment(onset, length), gap


def latent_sweep(daemon: Daemon, capture: Capture, latent_size: int, trials: int) -> dict[str, Any]:
    length = 2048
    a = [0.0] * latent_size
    b = [1.5 if i % 2 == 0 else -1.5 for i in range(latent_size)]
    daemon.osc.send("/dkvae/pad/variation", PAD, 0.0)
    daemon.osc.send("/dkvae/pad/timbre_amount", PAD, 0.0)
    refs = []
    for latent in (a, b):
        hit, _ = changed_hit(daemon, capture, latent, 0.3, length)
        if hit is None:
            raise RuntimeError("no sound from the reference hit")
        refs.append(hit)
    ref_similarity = similarity(refs[0], refs[1])
    state = 1  # the pad plays B now

    def run_gap(gap_ms: float, n: int) -> dict[str, Any]:
        nonlocal state
        new, gaps, missed = 0, [], 0
        for _ in range(n):
            state = 1 - state
            hit, gap = changed_hit(daemon, capture, (a, b)[state], gap_ms / 1000, length)
            gaps.append(gap * 1000)
            if hit is None:
                missed += 1
                continue
            new += similarity(hit, refs[state]) > similarity(hit, refs[1 - state])
        print(
            f"  latent change -> trigger {gap_ms:5.1f} ms later: new sound on {new}/{n} hits",
            flush=True,
        )
        return {
            "gap_ms": gap_ms,
            "measured_gap_ms_median": float(np.median(gaps)),
            "trials": n,
            "new": new,
            "missed": missed,
            "fraction_new": new / n,
        }

    # A coarse pass (20 trials a gap) finds where the hits turn new, so a slow model does not
    # spend 100 trials on every short gap; the full pass starts one gap before that.
    coarse, first = [], len(SWEEP_GAPS_MS) - 1
    for i, gap_ms in enumerate(SWEEP_GAPS_MS):
        coarse.append(run_gap(gap_ms, 20))
        if coarse[-1]["new"] == 20:
            first = max(0, i - 1)
            break
    rows, passed, shortest = [], 0, None
    for gap_ms in SWEEP_GAPS_MS[first:]:
        row = run_gap(gap_ms, trials)
        rows.append(row)
        if row["fraction_new"] >= 0.99:
            shortest = gap_ms if shortest is None else shortest
            passed += 1
            if passed >= 2:
                break
        else:
            shortest, passed = None, 0
    return {
        "method": "OSC latent change, busy-wait gap, OSC trigger; hit classified by normalised "
        "cross-correlation with reference hits of each latent",
        "reference_similarity_a_b": ref_similarity,
        "coarse_pass": coarse,
        "gaps": rows,
        "shortest_gap_ms_p99_new": shortest,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--period", type=int, default=PERIOD, help="JACK period in frames")
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--hits", type=int, default=500, help="per trigger kind")
    parser.add_argument("--floor-hits", type=int, default=None, help="default: --hits")
    parser.add_argument("--latent-sweep", action="store_true")
    parser.add_argument("--latent-trials", type=int, default=100, help="per gap")
    parser.add_argument(
        "--latent-model",
        type=Path,
        default=None,
        help="model for the latent sweep (default: shipped default, else sine)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model for trigger latency (default: the sine test model)",
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="profile the daemon during the latent sweep (py-spy, running "
        "threads, 1 kHz): where the time from a latent change to a new sound goes",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    json_path = args.json or RESULTS / f"trigger-{args.period}.json"
    started = time.monotonic()
    cond = conditions(load_at_start=None)
    with bench_jack_server(args.period, args.rate) as server, tempfile.TemporaryDirectory() as tmp:
        model = args.model or sine_model(Path(tmp))
        model_desc = str(args.model) if args.model else "sine test model (attack at sample 0)"
        daemon = Daemon(model, "--host-api", "JACK")
        try:
            daemon.wait_ready()
            # rtmidi clients are opened before, and closed after, the capture client: opening or
            # closing a JACK client waits for the process cycle, and the capture's Python
            # callback needs the GIL, which rtmidi may hold meanwhile (a deadlock, seen once).
            midi = MidiSender(daemon.midi_port)
            capture = Capture()
            capture.wait_until(1)
            period = int(capture.client.blocksize)
            rate = capture.rate
            # A 5 ms decay (z[1] = -4): a hit is under -60 dBFS before the next one is sent.
            daemon.osc.send("/dkvae/pad/latent", PAD, 0.0, -4.0, *([0.0] * 6))
            time.sleep(0.3)
            before = daemon.osc.status()
            xruns_before = capture.xruns
            midi_lat, midi_missed = measure(
                capture, lambda: midi.note_on(PAD, 127), args.hits, 0.03, 0.03
            )
            graph_lat, graph_missed = measure_in_graph(capture, midi, args.hits)
            osc_lat, osc_missed = measure(
                capture, lambda: daemon.osc.send("/dkvae/trigger", PAD, 127), args.hits, 0.03, 0.03
            )
            after = daemon.osc.status()
            jack_xruns = capture.xruns - xruns_before
            capture.close()
            midi.close()
        finally:
            daemon.stop()
        floor = floors(period, args.floor_hits or args.hits)
        sweep = None
        if args.latent_sweep:
            sweep_model, sweep_desc = choose_model(Path(tmp), args.latent_model)
            daemon = Daemon(sweep_model, "--host-api", "JACK")
            try:
                daemon.wait_ready()
                capture = Capture()
                capture.wait_until(1)
                latent_size = int(daemon.osc.status()["latent_size"])
                print(f"latent sweep on {sweep_desc}", flush=True)
                spy_path = RESULTS / "latent-sweep.pyspy.txt"
                spy = (
                    py_spy(daemon.proc.pid, 900, spy_path, gil=False, rate=1000)
                    if args.py_spy
                    else None
                )
                spy_started, renders_before = time.monotonic(), daemon.osc.status()["renders"]
                sweep = {
                    "model": sweep_desc,
                    **latent_sweep(daemon, capture, latent_size, args.latent_trials),
                }
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
                    spy.wait(timeout=30)
                    spy_seconds = time.monotonic() - spy_started
                    renders = int(daemon.osc.status()["renders"]) - int(renders_before)
                    text = spy_summary(spy_path, spy_seconds, rate=1000, what="running")
                    per = spy_per_render(spy_path, renders, rate=1000)
                    sweep["profile"] = {
                        "renders": renders,
                        "seconds": spy_seconds,
                        "summary": text,
                        "ms_per_render_by_thread": per,
                    }
                    print(text)
                    print(
                        f"per latent change ({renders} renders): "
                        + ", ".join(f"{name} {ms:.2f} ms running" for name, ms in per.items())
                    )
                capture.close()
            finally:
                daemon.stop()
    result: dict[str, Any] = {
        "conditions": {
            **cond,
            "load_at_end": [round(x, 2) for x in __import__("os").getloadavg()],
            "driver": f"JACK dummy, own server {server['server']!r}",
            "sample_rate": rate,
            "period": period,
            "period_ms": period * 1000 / rate,
            "model": model_desc,
            "daemon_output_latency_ms": after["output_latency_ms"],
            "daemon_xruns_during_hits": int(after["xruns"]) - int(before["xruns"]),
            "jack_xruns_during_hits": jack_xruns,
            "seconds": round(time.monotonic() - started, 1),
        },
        "physical_floor": {"samples": period, "ms": period * 1000 / rate},
        "midi": {**in_units(midi_lat, rate), "missed": midi_missed},
        "midi_in_graph": {**in_units(graph_lat, rate), "missed": graph_missed},
        "osc": {**in_units(osc_lat, rate), "missed": osc_missed},
        **floor,
    }
    targets = {}
    for kind, floor_name in (("midi", "midi_echo"), ("osc", "osc_echo")):
        limit = result[floor_name]["p99_samples"] + period
        targets[kind] = {
            "limit_samples": limit,
            "p99_samples": result[kind]["p99_samples"],
            "met": bool(result[kind]["p99_samples"] <= limit),
            "over_by_samples": max(0.0, result[kind]["p99_samples"] - limit),
        }
    result["targets"] = targets
    if sweep is not None:
        result["latent_change"] = sweep
    print_result(result)
    write_json(json_path, result)
    return 0


def print_result(result: dict[str, Any]) -> None:
    c = result["conditions"]
    print(
        f"\nTrigger latency, JACK dummy {c['sample_rate']} Hz, period {c['period']} frames "
        f"({c['period_ms']:.2f} ms); {c['model']}; load {c['load_average_1_5_15']}; "
        f"xruns during the hits: daemon {c['daemon_xruns_during_hits']}, "
        f"JACK {c['jack_xruns_during_hits']}"
    )
    rows = []
    for key, label in (
        ("midi", "MIDI note-on -> onset"),
        ("midi_in_graph", "MIDI event frame -> onset"),
        ("osc", "OSC trigger -> onset"),
        ("midi_echo", "floor: JACK MIDI echo"),
        ("osc_echo", "floor: UDP->MIDI echo"),
        ("midi_direct", "floor: JACK MIDI one hop"),
    ):
        r = result[key]
        rows.append(
            [
                label,
                r["hits"],
                f"{r['median_samples']:.0f} ({r['median_ms']:.2f} ms)",
                f"{r['p99_samples']:.0f} ({r['p99_ms']:.2f} ms)",
                f"{r['max_samples']:.0f} ({r['max_ms']:.2f} ms)",
                r["missed"],
            ]
        )
    rows.append(
        [
            "floor: physical (one period)",
            "-",
            str(c["period"]),
            str(c["period"]),
            str(c["period"]),
            "-",
        ]
    )
    print(table(["", "hits", "median", "p99", "max", "missed"], rows))
    for kind, t in result["targets"].items():
        print(
            f"target {kind}: p99 {t['p99_samples']:.0f} <= floor p99 + period = "
            f"{t['limit_samples']:.0f} samples: {'met' if t['met'] else 'MISSED'}"
        )
    sweep = result.get("latent_change")
    if sweep:
        print(
            f"latent change -> next hit new ({sweep['model']}): shortest gap with >= 99 % new: "
            f"{sweep['shortest_gap_ms_p99_new']} ms (target < 5 ms)"
        )


if __name__ == "__main__":
    sys.exit(main())
