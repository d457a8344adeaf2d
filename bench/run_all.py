"""Run every benchmark of issue 8 and print one summary table (bench/run_all calls this).

Each benchmark runs as its own process (each trigger-latency period on a JACK server of its own)
and writes its JSON under bench/results/; this script then reads them back, prints the summary
and writes bench/results/summary.json. A benchmark that fails is reported and the others still
run: benchmarks measure, they do not judge the build.

    bench/run_all [--quick] [--only trigger,footprint,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT, conditions, stop_leftover_server, table, write_json

PERIODS = (64, 128, 256)
STEP_TIMEOUT_S = 300  # a step that hangs (a JACK client deadlock, say) costs no more than this


def plan(quick: bool, model: Path | None = None) -> list[tuple[str, list[str], Path]]:
    """(name, arguments of the script, its JSON) for each benchmark, in running order."""
    hits = "60" if quick else "500"
    steps = [
        (
            "render_speed",
            [
                "render_speed.py",
                "--renders",
                "40" if quick else "200",
                *([str(model)] if model else []),
            ],
            RESULTS / "render_speed.json",
        ),
        (
            "offline_render",
            [
                "offline_render.py",
                "--runs",
                "1" if quick else "3",
                *(["--model", str(model)] if model else []),
            ],
            RESULTS / "offline_render.json",
        ),
    ]
    steps.append(
        (
            "latent_path",
            [
                "latent_path.py",
                "--trials",
                "50" if quick else "300",
                *(["--model", str(model)] if model else []),
            ],
            RESULTS / "latent_path.json",
        )
    )
    steps.append(
        (
            "latent_e2e",
            [
                "latent_e2e.py",
                "--trials",
                "4" if quick else "12",
                *(["--model", str(model)] if model else []),
            ],
            RESULTS / "latent_e2e.json",
        )
    )
    for period in PERIODS:
        args = ["trigger.py", "--period", str(period), "--hits", hits]
        if period == PERIODS[0]:
            args += ["--latent-sweep", "--latent-trials", "20" if quick else "100"]
            args += ["--latent-model", str(model)] if model else []
        steps.append((f"trigger_{period}", args, RESULTS / f"trigger-{period}.json"))
    footprint = ["footprint.py", "--period", "64", *(["--model", str(model)] if model else [])]
    if quick:
        footprint += ["--starts", "2", "--idle", "5", "--play", "5", "--stress", "10"]
    steps.append(("footprint", footprint, RESULTS / "footprint.json"))
    rest = ["rest.py", "--period", "64", "--breakdown", *(["--model", str(model)] if model else [])]
    if quick:
        rest += ["--starts", "2", "--idle", "10", "--floor", "5"]
    steps.append(("rest", rest, RESULTS / "rest.json"))
    return steps


def load(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def ms(value: float) -> str:
    return f"{value:.2f}"


def summary_rows(results: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for period in PERIODS:
        r = results.get(f"trigger_{period}")
        if not r:  # not run (--only), or failed: the FAILED line says which
            continue
        c = r["conditions"]
        for kind, floor_key, label in (("midi", "midi_echo", "MIDI"), ("osc", "osc_echo", "OSC")):
            t, f = r[kind], r[floor_key]
            target = r["targets"][kind]
            rows.append(
                [
                    f"{label} note -> onset @{period} ({c['period_ms']:.2f} ms), ms",
                    ms(t["median_ms"]),
                    ms(t["p99_ms"]),
                    ms(t["max_ms"]),
                    f"p99 <= floor {ms(f['p99_ms'])} + period = "
                    f"{ms(target['limit_samples'] * 1000 / c['sample_rate'])}",
                    ("met" if target["met"] else "MISSED")
                    + (f" ({t['missed']} missed)" if t["missed"] else ""),
                ]
            )
        d = r["midi_direct"]
        rows.append(
            [
                f"  floor: JACK MIDI one hop @{period}, ms",
                ms(d["median_ms"]),
                ms(d["p99_ms"]),
                ms(d["max_ms"]),
                f"physical floor {ms(c['period_ms'])}; xruns "
                f"{c['daemon_xruns_during_hits']} during the hits",
                "",
            ]
        )
    sweep = (results.get(f"trigger_{PERIODS[0]}") or {}).get("latent_change")
    if sweep:
        gap = sweep["shortest_gap_ms_p99_new"]
        rows.append(
            [
                "latent change -> next hit new (shortest gap, p99), ms",
                "",
                gap,
                "",
                "< 5",
                "met" if gap is not None and gap < 5 else "MISSED",
            ]
        )
    e2e = results.get("latent_e2e")
    if e2e:
        for name, k in e2e["kinds"].items():
            at5 = next(r for r in k["gaps"] if r["gap_ms"] == 5.0)
            rows.append(
                [
                    f"latent change -> next hit new, {name}: smallest D, ms",
                    "> 30" if k["smallest_gap_ms_median"] is None else k["smallest_gap_ms_median"],
                    "> 30" if k["smallest_gap_ms_p99"] is None else k["smallest_gap_ms_p99"],
                    "",
                    f"new at D = 5 ms: {at5['new']}/{at5['trials']} (>= 99 %)",
                    "met" if e2e["targets"]["new_at_5_ms_in_99_percent"][name] else "MISSED",
                ]
            )
            f, p = k["first_sound_ms"], k["full_pad_ms"]
            rows.append(
                [
                    f"  render worker {name}: change -> full pad, ms",
                    ms(p["median"]),
                    ms(p["p99"]),
                    ms(p["max"]),
                    f"< 30 p99; first sound {ms(f['median'])} / {ms(f['p99'])}",
                    "met" if e2e["targets"]["full_pad_p99_under_30_ms"][name] else "MISSED",
                ]
            )
    path = results.get("latent_path")
    if path:
        for key, label in (
            ("change_to_published_ms", "  render worker: change -> published"),
            ("decoder_ms", "    of which decoder.render"),
            ("prepare_sound_ms", "    of which prepare_sound (resample...)"),
        ):
            s = path[key]
            rows.append(
                [
                    f"{label}, ms",
                    ms(s["median"]),
                    ms(s["p99"]),
                    ms(s["max"]),
                    "bench/latent_path.py",
                    "",
                ]
            )
    render = results.get("render_speed")
    if render:
        for label, m in render["models"].items():
            for batch_label, b in m["batches"].items():
                d = b["daemon_path"]
                rows.append(
                    [
                        f"render {label}: {batch_label}, ms",
                        ms(d["median_ms"]),
                        ms(d["p99_ms"]),
                        ms(d["max_ms"]),
                        f"RTF {b['rtf_daemon_path']:.0f}x (decoder alone "
                        f"{b['rtf_decoder']:.0f}x), one core",
                        "",
                    ]
                )
    fp = results.get("footprint")
    if fp:
        s = fp["start_to_ready_s"]
        rows += [
            ["daemon start -> ready, s", f"{s['median']:.2f}", "", f"{s['max']:.2f}", "", ""],
            [
                "daemon RSS idle / playing, MiB",
                f"{fp['idle']['rss_mib']:.0f}",
                "",
                f"{fp['playing']['peak_rss_mib']:.0f}",
                f"playing {fp['playing']['rss_mib']:.0f}",
                "",
            ],
            ["daemon CPU idle, % of a core", f"{fp['idle']['cpu_percent']:.1f}", "", "", "", ""],
            [
                "daemon CPU 16ths@180 BPM + 100 latent moves/s, %",
                f"{fp['playing']['cpu_percent']:.1f}",
                "",
                "",
                f"xruns {60 * fp['playing']['xruns'] / fp['playing']['seconds']:.0f}/min",
                "",
            ],
        ]
        st = fp["stress"]
        x = st["xruns_vs_idle_per_minute"]
        rows += [
            [
                "stress 1000 updates/s + 50 notes/s: xruns/min",
                f"{x['stress_jack']:.1f}",
                "",
                "",
                f"idle daemon: {x['idle_jack']:.1f}/min",
                "",
            ],
            [
                "stress: notes lost",
                st["notes_lost_in_transport"] + st["notes_not_played"],
                "",
                "",
                f"of {st['notes_sent']}",
                "",
            ],
            [
                "stress: OSC messages dropped",
                st["osc_not_received"] + st["dropped"],
                "",
                "",
                f"of {st['latent_updates_sent']}; daemon CPU {st['cpu_percent']:.0f} %",
                "",
            ],
        ]
    off = results.get("offline_render")
    if off:
        w = off["wall_s"]
        rows.append(
            [
                f"offline render, {off['audio_seconds']:.0f} s groove, whole command, s",
                f"{w['median']:.2f}",
                f"{w['p99']:.2f}",
                f"{w['max']:.2f}",
                f"< 2 (render alone {off['render_s']['median']:.2f})",
                "met" if off["target_met_wall"] else "MISSED",
            ]
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer hits, shorter runs (a check)")
    parser.add_argument("--only", default="", help="comma-separated step names")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a model folder to use instead of the shipped default (render speed, "
        "offline render, latent sweep, footprint); trigger latency keeps the "
        "sine test model",
    )
    args = parser.parse_args()
    started = time.monotonic()
    cond = conditions()
    only = {s for s in args.only.split(",") if s}
    results: dict[str, Any] = {}
    failures: list[str] = []
    for name, script_args, json_path in plan(args.quick, args.model):
        if only and name not in only and name.split("_")[0] not in only:
            continue
        print(f"\n=== {name}: {' '.join(script_args)} ===", flush=True)
        step_started = time.monotonic()
        json_path.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / script_args[0]),
                *script_args[1:],
                "--json",
                str(json_path),
            ],
            cwd=ROOT,
        )
        try:
            code: int | str = proc.wait(timeout=STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the scripts unwind on SIGTERM: daemon and server stopped
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            code = f"timed out after {STEP_TIMEOUT_S} s"
        if stop_leftover_server():
            print("stopped the JACK server the step left behind", flush=True)
        result = load(json_path)
        if code != 0 or result is None:
            failures.append(f"{name} ({code})")
        else:
            results[name] = result
        print(f"=== {name}: {time.monotonic() - step_started:.0f} s ===", flush=True)
    seconds = time.monotonic() - started
    models = sorted(
        {r["conditions"]["model"] for r in results.values() if "model" in r.get("conditions", {})}
    )
    summary = {
        "conditions": {
            **cond,
            "load_at_end": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(seconds, 1),
            "quick": args.quick,
            "models": models,
            "failed": failures,
        },
        "results": results,
    }
    print(f"\nDK·VAE Live benchmarks, {cond['date']}, commit {cond['commit']}, {cond['machine']}")
    print(
        f"load average (1/5/15 min) at start {cond['load_average_1_5_15']}, at end "
        f"{summary['conditions']['load_at_end']}; {seconds / 60:.1f} min"
        + (" (--quick)" if args.quick else "")
    )
    print(
        "JACK dummy driver at 48 kHz on a server of the benchmarks' own; models: "
        + "; ".join(models)
    )
    print(table(["", "median", "p99", "max", "target / detail", ""], summary_rows(results)))
    if failures:
        print(f"FAILED to run: {', '.join(failures)}")
    write_json(RESULTS / "summary.json", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
