"""Latent change -> the next hit is the new sound, end to end, on every kind of pad (issue 21).

What a player hears: the daemon as its own process on the benchmark's JACK server (48 kHz,
period 64), the shipped default model and kit, a JACK client recording `dkvae:out_1`. A pad
alternates between two distant latents A and B. Each trial: `/dkvae/stop` (every voice fades
in 5 ms), QUIET seconds of rest (the last change's renders are done, and the next change is
no part of a sweep), `/dkvae/pad/latent NOTE ...`, a busy-wait of D ms (measured), then
`/dkvae/trigger NOTE 110`. The captured hit (REF_SAMPLES from its onset) is "new" when it
correlates better (normalised cross-correlation, bench/common.py `similarity`, the best of
REFS reference hits) with the latent just set than with the one before; the references are hits
captured long after a change. Trials alternate A -> B and B -> A.

Pad kinds: the shipped kit's pads all have velocity layers (timbre_amount 0.4) and none
varies, so the other kinds are made from shipped pads over OSC before their trials:
- layers: pad 36 as shipped (5 velocity layers: the full pad is 5 latents);
- variation: pad 41 with `/dkvae/pad/variation 41 VARIATION` (8 variants x 5 layers: 40);
- plain: pad 43 with `/dkvae/pad/timbre_amount 43 0` (one latent: no draft is cheaper);
- MIDI CC: a `[[cc]]` mapping (controller CC on any channel -> pad 36, dimension CC_DIM,
  -3 at 0 and 3 at 127) added to a copy of the shipped kit; the change is the controller
  moved from 0 to 127 or back and the trigger a JACK MIDI note-on (a child process's rtmidi
  client, whose JACK callback is C), both from the same sender, in order.
41 and 43 are toms: a hi-hat's two latents sounded too much alike (correlation 0.94) to tell.

For each kind and D in GAPS_MS: how many hits were new. The smallest D at which the hit is new
is read from those fractions as a distribution: its median is the smallest D from which on
(that D and every longer one) at least half the hits were new, its p99 the smallest D from
which on at least 99 % were ("> 30" when no D was). Target (issue 21): the hit new at D = 5 ms
in >= 99 % of trials, on every kind.

From inside, the daemon's status (`first_sound_ms`, `full_pad_ms`, docs/osc.md): for each
trial's change, the render worker's time from the change to the pad's first sound published and
to the whole pad (every layer and variant) published. Target: full pad within 30 ms p99. And
how many hits were cut after their beginning (TAIL_FROM_S): a hit on a change's first sound,
the beginning of its draft, must go on in the whole draft (Mixer.publish).

    .venv/bin/python bench/latent_e2e.py [--trials 12] [--model DIR] [--json F]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    PERIOD,
    RESULTS,
    bench_jack_server,
    choose_model,
    conditions,
    similarity,
    stats,
    table,
    use_bench_server,
    wait_precisely,
    write_json,
)

use_bench_server()

from harness.live import Capture, Daemon, MidiSenderProcess  # noqa: E402

from dkvae_live.kit import DEFAULT_KIT  # noqa: E402

GAPS_MS = (0.0, 2.0, 5.0, 8.0, 12.0, 16.0, 20.0, 30.0)
VELOCITY = 110
QUIET = 0.35  # s between a trial's hit and the next change: > SETTLE_SECONDS after the renders
REF_SAMPLES = 4096
# A hit on a change's first sound (the draft's beginning, renderer.ONSET_SECONDS) goes on in
# the whole draft: its level from TAIL_FROM_S on for TAIL_S is compared with the reference
# hits'; under CUT_FRACTION of the quietest reference's, the hit was cut after its beginning.
TAIL_FROM_S, TAIL_S, CUT_FRACTION = 0.11, 0.05, 0.1
REFS = 3  # reference hits per latent (a varying pad plays a new variant each hit)
VARIATION = 0.1  # small: the variants of one latent must sound more alike than A and B
CC, CC_DIM, CC_MIN, CC_MAX = 21, 0, -3.0, 3.0
KINDS = {  # name: (note, OSC settings made before the trials, what it is)
    "layers": (36, [], "pad 36 as shipped: 5 velocity layers"),
    "variation": (
        41,
        [("/dkvae/pad/variation", VARIATION)],
        f"pad 41, variation {VARIATION}: 8 variants x 5 layers",
    ),
    "plain": (43, [("/dkvae/pad/timbre_amount", 0.0)], "pad 43, timbre_amount 0: one latent"),
}
TARGET_D_MS, TARGET_FULL_P99_MS = 5.0, 30.0


def kit_with_cc(folder: Path) -> Path:
    """The shipped kit plus one controller mapped to pad 36's dimension CC_DIM."""
    path = folder / "e2e.toml"
    path.write_text(
        DEFAULT_KIT.read_text()
        + f"\n[[cc]]\nchannel = 0\ncontroller = {CC}\nnote = 36\ndim = {CC_DIM}\n"
        + f"min = {CC_MIN}\nmax = {CC_MAX}\n"
    )
    return path


def pad_latent(daemon: Daemon, note: int) -> list[float]:
    daemon.osc.drain()
    daemon.osc.send("/dkvae/pad/get", note)
    params = daemon.osc.reply("/dkvae/pad")
    return [float(v) for v in params[4:]]


class CaptureStalled(RuntimeError):
    """The capture received nothing for seconds: the JACK graph stopped, or its buffer ran out."""


class Trials:
    """Change, wait, trigger, capture: for one pad and a way of changing it."""

    def __init__(
        self,
        daemon: Daemon,
        capture: Capture,
        change: Callable[[int], None],
        trigger: Callable[[], None],
    ) -> None:
        self.daemon, self.capture = daemon, capture
        self.change, self.trigger = change, trigger  # change(0) sets A, change(1) B
        self.state = 0
        self.refs: list[list[np.ndarray]] = [[], []]
        self.ref_tails: list[float] = []  # each reference hit's level after the beginning

    def hit(self, which: int, gap_s: float) -> tuple[np.ndarray | None, float, float]:
        """(The hit's first REF_SAMPLES, the gap measured, its RMS over TAIL_S from TAIL_FROM_S
        after its onset)."""
        self.daemon.osc.send("/dkvae/stop")
        time.sleep(QUIET)
        sent = self.capture.trigger_frame()
        start = time.perf_counter()
        self.change(which)
        gap = wait_precisely(start, gap_s)
        self.trigger()
        try:
            rate = self.capture.rate
            onset = self.capture.onset(sent, int((gap_s + 0.1) * rate))
            if onset is None:
                return None, gap, 0.0
            tail = self.capture.segment(onset + int(TAIL_FROM_S * rate), int(TAIL_S * rate))
            return self.capture.segment(onset, REF_SAMPLES), gap, float(np.sqrt(np.mean(tail**2)))
        except TimeoutError as error:
            raise CaptureStalled(f"the capture stalled ({error}); see the jackd log") from error

    def references(self) -> tuple[float, float]:
        """REFS hits of each latent, each long after its change. (The best similarity of an A
        hit with a B hit, the worst of two hits of one latent): the first must stay below the
        second for the hits to be told apart (a varying pad plays a new variant each hit).
        A hit of each latent comes first and is not kept: a change's draft, and so the phase
        of its full render, follows the velocity the pad was last played at, which is the
        trials' from then on."""
        for which in (0, 1):
            self.hit(which, 0.6)
        for _ in range(REFS):
            for which in (0, 1):
                hit, _, tail = self.hit(which, 0.6)
                if hit is None:
                    raise RuntimeError("no sound from a reference hit")
                self.refs[which].append(hit)
                self.ref_tails.append(tail)
        self.state = 1
        within = min(
            similarity(refs[i], refs[j])
            for refs in self.refs
            for i in range(REFS)
            for j in range(i + 1, REFS)
        )
        return max(similarity(a, b) for a in self.refs[0] for b in self.refs[1]), within

    def run_gap(self, gap_ms: float, trials: int) -> dict[str, Any]:
        new, missed, cut, gaps = 0, 0, 0, []
        for _ in range(trials):
            self.state = 1 - self.state
            hit, gap, tail = self.hit(self.state, gap_ms / 1000)
            gaps.append(gap * 1000)
            if hit is None:
                missed += 1
                continue
            cut += tail < CUT_FRACTION * min(self.ref_tails)
            to_new = max(similarity(hit, r) for r in self.refs[self.state])
            to_old = max(similarity(hit, r) for r in self.refs[1 - self.state])
            new += to_new > to_old
        return {
            "gap_ms": gap_ms,
            "measured_gap_ms_median": float(np.median(gaps)),
            "trials": trials,
            "new": int(new),
            "missed": missed,
            "cut": int(cut),
            "fraction_new": new / trials,
        }


def smallest_gap(rows: list[dict[str, Any]], fraction: float) -> float | None:
    """The smallest D from which on (it and every longer D) at least `fraction` were new."""
    found = None
    for row in reversed(rows):
        if row["fraction_new"] < fraction:
            break
        found = row["gap_ms"]
    return found


def inside(daemon: Daemon, count: int) -> tuple[list[float], list[float]]:
    """The render worker's times for the last `count` changes (status first_sound_ms and
    full_pad_ms)."""
    status = daemon.osc.status()

    def last(key: str) -> list[float]:
        values = [float(v) for v in str(status.get(key, "")).split()]
        return values[-count:] if count else []

    return last("first_sound_ms"), last("full_pad_ms")


@contextmanager
def capturing(daemon: Daemon, per_gap: int) -> Iterator[Capture]:
    """A capture of the daemon's out_1 for one kind's trials: its buffer holds a second for each
    trial (they take about half that), and is let go of afterwards."""
    capture = Capture(
        daemon.audio_port_pattern, seconds=30.0 + len(GAPS_MS) * per_gap + 2 * (REFS + 1)
    )
    try:
        capture.wait_until(1)
        yield capture
    finally:
        capture.close()


def measure_kind(trials: Trials, daemon: Daemon, per_gap: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    first_ms: list[float] = []
    full_ms: list[float] = []
    stalled = None
    try:
        ref_similarity, within = trials.references()
        for gap_ms in GAPS_MS:
            rows.append(trials.run_gap(gap_ms, per_gap))
            first, full = inside(daemon, per_gap)
            first_ms += first
            full_ms += full
            print(f"    D = {gap_ms:4.1f} ms: new on {rows[-1]['new']}/{per_gap}", flush=True)
    except CaptureStalled as error:
        print(f"    stopped: {error}", flush=True)
        stalled, ref_similarity, within = str(error), float("nan"), float("nan")
    return {
        "stalled": stalled,
        "reference_similarity_a_b": ref_similarity,
        "reference_similarity_within": within,
        "gaps": rows,
        "smallest_gap_ms_median": smallest_gap(rows, 0.5),
        "smallest_gap_ms_p99": smallest_gap(rows, 0.99),
        "first_sound_ms": stats(first_ms),
        "full_pad_ms": stats(full_ms),
        "first_sound_ms_all": first_ms,
        "full_pad_ms_all": full_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="per kind and D")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument(
        "--kinds",
        default=",".join([*KINDS, "midi_cc"]),
        help="which kinds, comma separated (default: all)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "latent_e2e.json")
    args = parser.parse_args()
    started = time.monotonic()
    cond = conditions()
    out: dict[str, Any] = {"kinds": {}}
    with bench_jack_server(PERIOD) as server, tempfile.TemporaryDirectory() as tmp:
        model, model_desc = choose_model(Path(tmp), args.model)
        print(f"latent change -> next hit, end to end; {model_desc}", flush=True)
        daemon = Daemon(model, "--host-api", "JACK", "--kit", str(kit_with_cc(Path(tmp))))
        xruns_before = 0
        midi: MidiSenderProcess | None = None
        try:
            daemon.wait_ready(timeout=60)
            # rtmidi's client before the captures (see trigger.py: opening a JACK client
            # waits for the process cycle, which a capture's Python callback may hold)
            midi = MidiSenderProcess(daemon.midi_port)
            xruns_before = int(daemon.osc.status()["xruns"])
            kinds = args.kinds.split(",")
            for name, (note, settings, what) in KINDS.items():
                if name not in kinds:
                    continue
                print(f"  {name}: {what}", flush=True)
                for address, value in settings:
                    daemon.osc.send(address, note, value)
                base = pad_latent(daemon, note)
                far = [v + (1.5 if i % 2 == 0 else -1.5) for i, v in enumerate(base)]
                latents = (base, far)

                def change(which: int, note: int = note, latents: Any = latents) -> None:
                    daemon.osc.send("/dkvae/pad/latent", note, *latents[which])

                def trigger(note: int = note) -> None:
                    daemon.osc.send("/dkvae/trigger", note, VELOCITY)

                with capturing(daemon, args.trials) as capture:
                    trials = Trials(daemon, capture, change, trigger)
                    out["kinds"][name] = {
                        "pad": what,
                        "change": "OSC /dkvae/pad/latent",
                        **measure_kind(trials, daemon, args.trials),
                    }
                if out["kinds"][name]["stalled"]:
                    break
            if any(k["stalled"] for k in out["kinds"].values()):
                raise CaptureStalled("the JACK graph stalled: the results so far follow")
            if "midi_cc" in kinds:
                print(f"  midi_cc: controller {CC} -> pad 36 dim {CC_DIM}", flush=True)
                daemon.osc.send("/dkvae/pad/reset", 36)
                sender = midi  # not None here: a name the closures below can rely on

                def cc(which: int) -> None:
                    sender.send([0xB9, CC, 127 * which])

                def note_on() -> None:
                    sender.note_on(36, VELOCITY)

                with capturing(daemon, args.trials) as capture:
                    out["kinds"]["midi_cc"] = {
                        "pad": f"pad 36 as shipped, controller {CC} -> dimension {CC_DIM} "
                        f"({CC_MIN} at 0, {CC_MAX} at 127)",
                        "change": "JACK MIDI control change, then a JACK MIDI note-on",
                        **measure_kind(Trials(daemon, capture, cc, note_on), daemon, args.trials),
                    }
        except CaptureStalled as error:
            print(error, flush=True)
        finally:
            try:
                xruns = int(daemon.osc.status()["xruns"]) - xruns_before
            except Exception:  # the daemon is gone or mute: the count is unknown
                xruns = -1
            if midi is not None:
                midi.close()
            daemon.stop()
    out["conditions"] = {
        **cond,
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
        "driver": f"JACK dummy, own server {server['server']!r}, period {PERIOD}",
        "model": model_desc,
        "kit": "shipped default (+ one [[cc]] mapping)",
        "velocity": VELOCITY,
        "trials_per_gap": args.trials,
        "daemon_xruns": xruns,
        "seconds": round(time.monotonic() - started, 1),
    }
    out["targets"] = {
        "new_at_5_ms_in_99_percent": {
            name: any(r["gap_ms"] == TARGET_D_MS and r["fraction_new"] >= 0.99 for r in k["gaps"])
            for name, k in out["kinds"].items()
        },
        "full_pad_p99_under_30_ms": {
            name: bool(k["full_pad_ms"]["count"] and k["full_pad_ms"]["p99"] <= TARGET_FULL_P99_MS)
            for name, k in out["kinds"].items()
        },
    }
    print_result(out)
    write_json(args.json, out)
    return 0


def print_result(out: dict[str, Any]) -> None:
    c = out["conditions"]
    print(
        f"\nLatent change -> next hit new, end to end (OSC or MIDI CC, JACK capture); "
        f"{c['model']}; {c['driver']}; {c['trials_per_gap']} trials per D; load "
        f"{c['load_average_1_5_15']} -> {c['load_at_end']}; daemon xruns {c['daemon_xruns']}"
    )

    def gap(value: float | None) -> str:
        return "> 30" if value is None else f"{value:g}"

    rows = []
    for name, k in out["kinds"].items():
        rows.append(
            [
                name,
                *[f"{r['new']}/{r['trials']}" for r in k["gaps"]],
                *["-"] * (len(GAPS_MS) - len(k["gaps"])),  # a stalled run
                gap(k["smallest_gap_ms_median"]),
                gap(k["smallest_gap_ms_p99"]),
            ]
        )
    print(
        table(
            ["new hits at D (ms)", *[f"{g:g}" for g in GAPS_MS], "D median", "D p99"],
            rows,
        )
    )
    rows = []
    for name, k in out["kinds"].items():
        f, p = k["first_sound_ms"], k["full_pad_ms"]
        rows.append(
            [
                name,
                f"{f['median']:.1f}",
                f"{f['p99']:.1f}",
                f"{p['median']:.1f}",
                f"{p['p99']:.1f}",
                f"{p['max']:.1f}",
                f"{k['reference_similarity_a_b']:.2f} / {k['reference_similarity_within']:.2f}",
                f"{sum(r['cut'] for r in k['gaps'])}/{sum(r['trials'] for r in k['gaps'])}",
            ]
        )
    print(
        table(
            [
                "render worker, ms",
                "first sound median",
                "p99",
                "full pad median",
                "p99",
                "max",
                "A~B / A~A similarity",
                "hits cut",
            ],
            rows,
        )
    )
    t = out["targets"]
    for name in out["kinds"]:
        print(
            f"target {name}: new at D = 5 ms in >= 99 %: "
            f"{'met' if t['new_at_5_ms_in_99_percent'][name] else 'MISSED'}; "
            f"full pad p99 <= 30 ms: {'met' if t['full_pad_p99_under_30_ms'][name] else 'MISSED'}"
        )


if __name__ == "__main__":
    sys.exit(main())
