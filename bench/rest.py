"""The daemon at rest: what it costs while nobody plays it, how soon it serves, how soon it stops.

Method: on a JACK dummy server of our own (48 kHz, --period frames), the daemon on the shipped
model and kit (else the sine test model), nothing sent to it. Everything is read from /proc.

1. floor: a JACK client that does nothing (JACK-Client, two output ports, a C process
   callback that returns at once: its process thread runs libjack alone), idle for --floor
   seconds: what any client of this server costs per period on this machine, before the daemon
   starts. Needs a C compiler (cc); skipped without one.
2. start: --starts daemons, each timed from launch to its first OSC status reply ("served"),
   to its "ready:" log line (every pad plays: a draft where that is cheaper than its full
   render) and to its "full quality:" line (every pad plays its full render); then SIGTERM ->
   exit ("stop").
3. rest: the last daemon, --idle seconds after full quality, nothing sent: CPU in % of one core (the
   process, and per thread), wake-ups a second per thread (voluntary context switches: the
   thread slept and was woken; involuntary ones beside them), resident memory (RSS; RSS less
   JACK's shared segment, which libjack maps, and locks under a real-time server, in every
   client; PSS, shared pages divided among the processes that map them) and where it goes
   (/proc/PID/smaps by mapping; the status's sounds_mib).
4. breakdown (--breakdown): a child process that loads the daemon's parts one after another
   (imports, decoder, encoder, every pad rendered) and prints its resident memory after each,
   and its peak so far (VmHWM).

    .venv/bin/python bench/rest.py [--period 64] [--idle 60] [--starts 3] [--breakdown]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    PERIOD,
    RESULTS,
    bench_jack_server,
    choose_model,
    conditions,
    stats,
    table,
    use_bench_server,
    write_json,
)

use_bench_server()

from harness.live import Daemon  # noqa: E402

PROBE_SECONDS = 0.025  # how often a starting daemon is asked for its status
REPLY_WINDOW_SECONDS = 1.1  # the daemon's reply rate limit counts over a second
JACK_SHM = "/dev/shm/jack"  # JACK's shared segments: the server's, mapped into every client
NOTHING_C = "int nothing(unsigned frames, void *arg) { (void)frames; (void)arg; return 0; }\n"
FLOOR_CLIENT = """
import ctypes, sys, jack
nothing = ctypes.cast(ctypes.CDLL(sys.argv[1]).nothing, ctypes.c_void_p).value
client = jack.Client("dkvae-floor", no_start_server=True)
for i in range(2):
    client.outports.register(f"out_{i + 1}")
ffi = jack._ffi
jack._lib.jack_set_process_callback(client._ptr, ffi.cast("JackProcessCallback", nothing), ffi.NULL)
client.activate()
print("ready", flush=True)
sys.stdin.read()
"""
BREAKDOWN = """
import ctypes, json, sys
from pathlib import Path
def rss():
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}
steps = [("python", rss())]
import numpy as np
steps.append(("+ numpy", rss()))
from dkvae_live.kit import DEFAULT_KIT, load_kit
from dkvae_live.model import Decoder, Encoder
from dkvae_live.pads import PadBank
from dkvae_live.renderer import RenderWorker
import jack, pythonosc, soxr
steps.append(("+ onnxruntime, soxr, jack, python-osc, dkvae_live", rss()))
decoder = Decoder(Path(sys.argv[1]))
steps.append(("+ decoder session", rss()))
encoder_path = decoder.path.parent / "encoder.onnx"
encoder = Encoder(encoder_path, decoder.info) if encoder_path.exists() else None
steps.append(("+ encoder session", rss()))
info = decoder.info
try:
    kit = load_kit(DEFAULT_KIT, info.class_names, info.latent_size).pads
except Exception:
    from dkvae_live.pads import default_pads
    kit = default_pads(info.class_names, info.latent_size)
pads = PadBank(kit, info.class_names, info.latent_size)
sounds = []
worker = RenderWorker(decoder, pads, 48000, sounds.append)
worker.render_now(pads.notes()[:1])
steps.append(("+ one pad rendered (the decoder's arena)", rss()))
worker.render_now(pads.notes())
steps.append((f"+ all {len(pads.notes())} pads rendered", rss()))
ctypes.CDLL("libc.so.6").malloc_trim(0)
steps.append(("+ malloc_trim", rss()))
mib = sum(v.nbytes for s in sounds[-len(pads.notes()):] for v in s.variants) / 2**20
print(json.dumps({"steps": steps, "sounds_mib": mib}))
"""


def threads(pid: int) -> dict[int, dict[str, Any]]:
    """Per thread id: name, CPU seconds, voluntary and involuntary context switches."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines())
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = {
            "name": name,
            "cpu_s": (int(stat[11]) + int(stat[12])) / ticks,
            "voluntary": int(status["voluntary_ctxt_switches"]),
            "involuntary": int(status["nonvoluntary_ctxt_switches"]),
        }
    return out


def process_cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def at_rest(pid: int, seconds: float) -> dict[str, Any]:
    """CPU and wake-ups of the process and each of its threads over `seconds`."""
    before, cpu0, t0 = threads(pid), process_cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    after, cpu1, elapsed = threads(pid), process_cpu_s(pid), time.monotonic() - t0
    rows = []
    for tid, now in sorted(after.items()):
        was = before.get(tid)
        if was is None:
            continue
        rows.append(
            {
                "tid": tid,
                "name": now["name"],
                "cpu_percent": 100 * (now["cpu_s"] - was["cpu_s"]) / elapsed,
                "wakeups_per_s": (now["voluntary"] - was["voluntary"]) / elapsed,
                "involuntary_per_s": (now["involuntary"] - was["involuntary"]) / elapsed,
            }
        )
    return {
        "seconds": elapsed,
        "cpu_percent": 100 * (cpu1 - cpu0) / elapsed,
        "threads": rows,
        "threads_started_or_ended": sorted(set(before) ^ set(after)),
    }


def memory(pid: int) -> dict[str, Any]:
    """Resident memory, in MiB: in all, outside JACK's shared segments, and by mapping."""
    by_mapping: dict[str, float] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else "[anonymous]"
            if name.startswith(JACK_SHM):
                name = "JACK shared memory (/dev/shm/jack*)"
            elif "site-packages/" in name:
                name = name.split("site-packages/", 1)[1].split("/", 1)[0] + " (library)"
            elif name.startswith("/"):
                name = Path(name).name
        elif fields[0] == "Rss:":
            by_mapping[name] = by_mapping.get(name, 0.0) + int(fields[1]) / 1024
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )

    def mib(key: str) -> float:
        return int(status[key].split()[0]) / 1024

    jack = by_mapping.get("JACK shared memory (/dev/shm/jack*)", 0.0)
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    pss = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:")) / 1024
    return {
        "rss_mib": mib("VmRSS"),
        "pss_mib": pss,  # shared pages divided among the processes that map them
        "rss_without_jack_shm_mib": mib("VmRSS") - jack,
        "anonymous_mib": mib("RssAnon"),
        "file_mib": mib("RssFile"),
        "jack_shm_mib": jack,
        "locked_mib": mib("VmLck"),
        "by_mapping_mib": dict(sorted(by_mapping.items(), key=lambda kv: -kv[1])),
    }


def floor(seconds: float, tmp: Path) -> dict[str, Any] | None:
    """A JACK client whose process callback does nothing, at rest: libjack's cost alone."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    (tmp / "nothing.c").write_text(NOTHING_C)
    library = tmp / "nothing.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(tmp / "nothing.c")],
        check=True,
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOOR_CLIENT, str(library)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        rest = at_rest(proc.pid, seconds)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    busiest = max(rest["threads"], key=lambda t: t["wakeups_per_s"])
    return {"cpu_percent": rest["cpu_percent"], "process_thread": busiest}


def start_and_serve(model: Path) -> tuple[Daemon, float, float, float]:
    """A daemon; seconds from launch to its first OSC reply, to its "ready:" line (every pad
    plays, a draft where that is cheaper) and to its "full quality:" line (every pad plays its
    full render)."""
    started = time.monotonic()
    daemon = Daemon(model, "--host-api", "JACK")
    served = ready = None
    while True:
        now = time.monotonic() - started
        if daemon.proc.poll() is not None or now > 120:
            daemon.stop()
            raise RuntimeError(f"daemon did not get ready:\n{daemon.log()}")
        if served is None:  # one request in flight at a time: replies are rate-limited
            daemon.osc.send("/dkvae/status")
            try:
                daemon.osc.receive(timeout=PROBE_SECONDS)
                served = now
            except OSError:
                pass
        else:
            time.sleep(0.005)
        if ready is None and " ready: " in daemon.log():
            ready = now
        if ready is not None and " full quality: " in daemon.log():
            daemon.osc.drain()
            return daemon, served if served is not None else now, ready, now


def stop_time(daemon: Daemon) -> float:
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(timeout=10)
    took = time.monotonic() - started
    daemon.stop()
    return took


def breakdown(model: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", BREAKDOWN, str(model)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return dict(json.loads(out.stdout.splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--period", type=int, default=PERIOD)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--floor", type=float, default=20.0)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS / "rest.json")
    args = parser.parse_args()
    cond = conditions()
    started = time.monotonic()
    result: dict[str, Any] = {}
    with bench_jack_server(args.period), tempfile.TemporaryDirectory() as tmp:
        model, model_desc = choose_model(Path(tmp), args.model)
        print(f"the daemon at rest on {model_desc}, JACK period {args.period}", flush=True)
        print(f"floor: a client that does nothing, {args.floor:g} s", flush=True)
        result["floor"] = floor(args.floor, Path(tmp))
        served, ready, full, stops = [], [], [], []
        for i in range(args.starts):
            daemon, to_serve, to_ready, to_full = start_and_serve(model)
            served.append(to_serve)
            ready.append(to_ready)
            full.append(to_full)
            if i < args.starts - 1:
                stops.append(stop_time(daemon))
        try:
            time.sleep(REPLY_WINDOW_SECONDS)  # the probes' replies are out of the rate limit
            status = daemon.osc.status()
            print(f"rest: {args.idle:g} s after full quality, nothing sent", flush=True)
            rest = at_rest(daemon.proc.pid, args.idle)
            rest["memory"] = memory(daemon.proc.pid)
            rest["status_threads"] = status["threads"].split()
            rest["sounds_mib"] = float(status["sounds_mib"])
            rest["pads_ready"] = f"{status['pads_ready']} of {status['pads']}"
        finally:
            stops.append(stop_time(daemon))
        result.update(
            start_to_served_s=stats(served),
            start_to_ready_s=stats(ready),
            start_to_full_s=stats(full),
            stop_s=stats(stops),
            rest=rest,
        )
        if args.breakdown:
            print("breakdown: the daemon's parts loaded one after another", flush=True)
            result["breakdown"] = breakdown(model)
    result["conditions"] = {
        **cond,
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
        "model": model_desc,
        "period": args.period,
        "sample_rate": 48000,
        "seconds": round(time.monotonic() - started, 1),
    }
    print_result(result)
    write_json(args.json, result)
    return 0


def print_result(r: dict[str, Any]) -> None:
    c, rest, mem = r["conditions"], r["rest"], r["rest"]["memory"]
    print(
        f"\nThe daemon at rest; {c['model']}; JACK dummy period {c['period']}; "
        f"load {c['load_average_1_5_15']} -> {c['load_at_end']}"
    )
    s, rd, st = r["start_to_served_s"], r["start_to_ready_s"], r["stop_s"]
    fl = r["floor"]
    print(
        table(
            ["", "value", "detail"],
            [
                [
                    "start -> served (s)",
                    f"{s['median']:.2f}",
                    f"max {s['max']:.2f} of {s['count']}",
                ],
                ["start -> ready (s)", f"{rd['median']:.2f}", f"max {rd['max']:.2f}"],
                [
                    "start -> full quality (s)",
                    f"{r['start_to_full_s']['median']:.2f}",
                    f"max {r['start_to_full_s']['max']:.2f}",
                ],
                [
                    "SIGTERM -> exit (s)",
                    f"{st['median']:.2f}",
                    f"max {st['max']:.2f} of {st['count']}",
                ],
                [
                    f"rest: CPU % of a core over {rest['seconds']:.0f} s",
                    f"{rest['cpu_percent']:.2f}",
                    "a client doing nothing: "
                    + (
                        f"{fl['cpu_percent']:.2f} ({fl['process_thread']['wakeups_per_s']:.0f} "
                        "wake-ups/s)"
                        if fl
                        else "not measured (no cc)"
                    ),
                ],
                [
                    "rest: resident MiB",
                    f"{mem['rss_mib']:.0f}",
                    f"{mem['rss_without_jack_shm_mib']:.0f} without JACK's shared memory "
                    f"({mem['jack_shm_mib']:.0f}, locked by libjack); PSS {mem['pss_mib']:.0f}",
                ],
                ["rest: rendered sounds MiB", f"{rest['sounds_mib']:.1f}", rest["pads_ready"]],
            ],
        )
    )
    print("\nPer thread at rest")
    print(
        table(
            ["thread", "CPU %", "wake-ups/s", "involuntary/s"],
            [
                [
                    t["name"],
                    f"{t['cpu_percent']:.2f}",
                    f"{t['wakeups_per_s']:.1f}",
                    f"{t['involuntary_per_s']:.1f}",
                ]
                for t in rest["threads"]
            ],
        )
    )
    print("\nResident memory by mapping (MiB, 1 and more)")
    print(
        table(
            ["mapping", "MiB"],
            [[k, f"{v:.1f}"] for k, v in mem["by_mapping_mib"].items() if v >= 1.0],
        )
    )
    if "breakdown" in r:
        b = r["breakdown"]
        print("\nWhere memory goes: the parts loaded one after another (MiB)")
        rows, last = [], 0.0
        for step, m in b["steps"]:
            rows.append(
                [
                    step,
                    f"{m['VmRSS']:.0f}",
                    f"{m['VmRSS'] - last:+.0f}",
                    f"{m['RssAnon']:.0f}",
                    f"{m['RssFile']:.0f}",
                    f"{m['VmHWM']:.0f}",
                ]
            )
            last = m["VmRSS"]
        print(table(["step", "RSS", "change", "anonymous", "file", "peak so far"], rows))
        print(f"(the rendered sounds alone: {b['sounds_mib']:.1f} MiB)")


if __name__ == "__main__":
    sys.exit(main())
