"""Where the time from a latent change to a playable sound goes, inside the render worker.

Method: in this process, the daemon's own parts without audio or OSC: a `PadBank` from the
shipped default kit (or the GM map), a `RenderWorker` on the model, started as in the daemon
(its thread asks for SCHED_FIFO 1). Each trial changes pad 36's latent with `PadBank.update`
(what the OSC handler calls) and waits for the worker to publish the pad's first sound (the
beginning of its draft, renderer.ONSET_SECONDS) and then its full pad (the whole draft that
carries the beginning on comes between); the time from the update to the first publication is
the worker's share of "latent change -> next hit new", to the full pad its full-pad time. The
next trial waits for the full pad, so each change finds the worker idle, as after a knob turned
once. The draft's beginning (the decoder and the phase of the frames it needs,
`Decoder.drafts_onset_first`) and its `prepare_sound` are then timed alone on the latents of
the trials, each after the pause a trial's change comes after, so the table splits the first
sound into those and the rest (waking the worker, the GIL, the checks, encoding and
publishing). The full pad is split the same way: its decoder runs (one a latent, as the worker
makes them), their phases (`Decoder.render` less the runs: the draft decoder's run for the
phase's start, the gradient phase, Griffin-Lim, the inverse transforms), and each sound's
check and `prepare_sound`; beside them, the least any phase could cost: one inverse transform a
sound. Runs, inverses, checks and preparations are what a full pad takes here with no phase
made at all. --busy N adds N threads that take the GIL in short numpy bursts, as the audio
callback, MIDI and OSC threads of the daemon do.

    .venv/bin/python bench/latent_path.py [--model DIR] [--trials 100] [--busy 1] [--json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the daemon; before numpy loads

import numpy as np
from common import RESULTS, choose_model, conditions, stats, table, write_json

from dkvae_live import contract
from dkvae_live.engine import SWITCH_INTERVAL_SECONDS
from dkvae_live.kit import DEFAULT_KIT, load_kit
from dkvae_live.model import Decoder
from dkvae_live.pad_sound import PadSound
from dkvae_live.pads import Pad, PadBank, default_pads
from dkvae_live.phase import invert
from dkvae_live.renderer import (
    ONSET_SECONDS,
    SETTLE_SECONDS,
    SILENCE,
    ULTRASONIC_LIMIT,
    VELOCITY_LAYERS,
    RenderWorker,
    prepare_sound,
    ultrasonic_rms,
)

PAD = 36
RATE = 48000
# between trials, after the full pad: longer than SETTLE_SECONDS, or the change is a sweep's and
# its draft is published whole, not its beginning first (half the trials were, at 50 ms). The
# parts timed alone are run after as long a pause, as a decoder run after one is slower than in
# a warm loop (docs/performance.md)
PAUSE_SECONDS = SETTLE_SECONDS + 0.05
FULL_PAD_PARTS = {
    "runs": "  its decoder runs, one a latent",
    "phases": "  their phases (Decoder.render less the runs)",
    "inverses": "    of which the least any phase takes: one inverse transform a sound",
    "prepare": "  the checks and prepare_sound of its sounds",
}


def busy_thread(stop: threading.Event) -> None:
    """Take the GIL for a short numpy job every 1.33 ms, like a 64-frame audio callback."""
    buffer = np.zeros((64, 2), np.float32)
    while not stop.is_set():
        for _ in range(20):
            np.clip(buffer * 0.5, -1.0, 1.0, out=buffer)
        time.sleep(0.00133)


def full_pad_parts(decoder: Decoder, pad: Pad) -> dict[str, float]:
    """Milliseconds of each part of a pad's full render, after a trial's pause: its decoder
    runs, their phases, the checks and preparations of its sounds, and the inverse transforms
    that any phase would need (a log-magnitude model's)."""
    info = decoder.info
    latents = np.array(pad.velocity_latents(VELOCITY_LAYERS), np.float32)
    classes = np.full(len(latents), info.class_index(pad.class_name), np.int64)
    time.sleep(PAUSE_SECONDS)
    t0 = time.perf_counter()
    for i in range(len(latents)):
        decoder.output(latents[i : i + 1], classes[i : i + 1])
    t1 = time.perf_counter()
    time.sleep(PAUSE_SECONDS)
    t2 = time.perf_counter()
    audio = decoder.render(
        latents, classes, floor=SILENCE, layers=len(latents), between=lambda: None
    )
    t3 = time.perf_counter()
    for raw in audio:
        if ultrasonic_rms(raw[None], info.sample_rate)[0] <= ULTRASONIC_LIMIT:
            prepare_sound(raw, info.sample_rate, RATE)
    t4 = time.perf_counter()
    parts = {"runs": t1 - t0, "phases": (t3 - t2) - (t1 - t0), "prepare": t4 - t3, "inverses": 0.0}
    if info.output_kind == contract.LOG_MAGNITUDE:
        magnitudes = [
            decoder.magnitudes(latents[i : i + 1], classes[i : i + 1]) for i in range(len(latents))
        ]
        unit = np.ones((1, *magnitudes[0].shape[1:]), np.complex64)
        time.sleep(PAUSE_SECONDS)
        t5 = time.perf_counter()
        for magnitude in magnitudes:
            invert(magnitude, info.n_fft, info.hop_length, info.num_samples, 0, SILENCE, start=unit)
        parts["inverses"] = time.perf_counter() - t5
    return {k: 1000 * v for k, v in parts.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--busy", type=int, default=1, help="GIL-taking threads beside")
    parser.add_argument("--json", type=Path, default=RESULTS / "latent_path.json")
    args = parser.parse_args()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)  # as the daemon has it
    cond = conditions()
    with tempfile.TemporaryDirectory() as tmp:
        model, model_desc = choose_model(Path(tmp), args.model)
        decoder = Decoder(model)
        info = decoder.info
        try:
            pads_init = load_kit(DEFAULT_KIT, info.class_names, info.latent_size).pads
        except Exception:
            pads_init = default_pads(info.class_names, info.latent_size)
        pads = PadBank(pads_init, info.class_names, info.latent_size)
        published: list[float] = []
        full = threading.Event()

        def publish(sound: PadSound) -> None:
            # the first sound (the draft's beginning), the whole draft that carries it on,
            # then the full pad: the first publication after the first that continues nothing
            if sound.note == PAD and not (published and sound.continues):
                published.append(time.perf_counter())
                if len(published) == 2:
                    full.set()

        worker = RenderWorker(decoder, pads, RATE, publish)
        worker.render_now(pads.notes())
        pads.on_change = worker.request
        worker.start()
        stop = threading.Event()
        helpers = [
            threading.Thread(target=busy_thread, args=(stop,), daemon=True)
            for _ in range(args.busy)
        ]
        for h in helpers:
            h.start()
        rng = np.random.default_rng(0)
        total, full_ms, latents = [], [], []
        for _ in range(args.trials):
            latent = rng.normal(0.0, 1.0, info.latent_size).round(3).tolist()
            full.clear()
            published.clear()
            start = time.perf_counter()
            pads.update(PAD, latent=latent)
            if not full.wait(2.0):
                continue
            total.append((published[0] - start) * 1000)
            full_ms.append((published[1] - start) * 1000)
            latents.append(latent)
            time.sleep(PAUSE_SECONDS)
        stop.set()
        worker.stop()
        pad = pads.get(PAD)
        assert pad is not None, f"the kit has no pad {PAD}"
        cls = np.array([info.class_index(pad.class_name)], np.int64)
        dec_ms, prep_ms = [], []
        onset = int(ONSET_SECONDS * info.sample_rate)
        for latent in latents:
            z = np.array([latent], np.float32)
            time.sleep(PAUSE_SECONDS)  # as idle as in the trials: a warm loop runs it faster
            t0 = time.perf_counter()
            raw = next(decoder.drafts_onset_first(z, cls, onset, SILENCE))
            t1 = time.perf_counter()
            prepare_sound(raw[0], info.sample_rate, RATE)
            t2 = time.perf_counter()
            dec_ms.append((t1 - t0) * 1000)
            prep_ms.append((t2 - t1) * 1000)
        parts = [
            full_pad_parts(decoder, dataclasses.replace(pad, latent=tuple(latent)))
            for latent in latents
        ]
    result = {
        "conditions": {
            **cond,
            "model": model_desc,
            "busy_threads": args.busy,
            "trials": args.trials,
        },
        "change_to_first_sound_ms": stats(total),
        "change_to_full_pad_ms": stats(full_ms),
        "draft_onset_render_ms": stats(dec_ms),
        "onset_prepare_sound_ms": stats(prep_ms),
        "full_pad_parts_ms": {k: stats([p[k] for p in parts]) for k in FULL_PAD_PARTS},
        "full_pad_without_phase_ms": stats(
            [p["runs"] + p["inverses"] + p["prepare"] for p in parts]
        ),
    }
    t, d, p = (
        result["change_to_first_sound_ms"],
        result["draft_onset_render_ms"],
        result["onset_prepare_sound_ms"],
    )
    print(
        f"\nLatent change -> first sound published by the render worker; {model_desc}; "
        f"{args.busy} GIL-taking thread(s) beside; load {cond['load_average_1_5_15']}"
    )
    rows = [
        [label, f"{s['median']:.2f}", f"{s['p99']:.2f}", f"{s['max']:.2f}"]
        for label, s in (
            ("change -> first sound published (whole)", t),
            ("  the draft's beginning: decoder.drafts_onset_first", d),
            ("  prepare_sound of the beginning", p),
        )
    ]
    rows.append(
        [
            "  the rest (wake, GIL, checks, encode, publish), medians",
            f"{t['median'] - d['median'] - p['median']:.2f}",
            "",
            "",
        ]
    )
    f = result["change_to_full_pad_ms"]
    rows.append(
        ["change -> full pad published", *(f"{f[k]:.2f}" for k in ("median", "p99", "max"))]
    )
    for key, label in FULL_PAD_PARTS.items():
        part = result["full_pad_parts_ms"][key]
        rows.append([label, *(f"{part[k]:.2f}" for k in ("median", "p99", "max"))])
    least = result["full_pad_without_phase_ms"]
    rows.append(
        [
            "the full pad with no phase made: runs, inverses, checks, preparations",
            *(f"{least[k]:.2f}" for k in ("median", "p99", "max")),
        ]
    )
    print(table(["ms", "median", "p99", "max"], rows))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
