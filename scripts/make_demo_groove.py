"""Write dkvae_live/demo/groove.mid: the demo groove that `dkvae-live render --demo` plays.

Three bars of a General MIDI drum groove (channel 10) that touch every drum class of the
default kit: kick, snare (with ghost notes), closed, pedal and open hi-hat, toms in a fill,
crash and ride cymbals, tambourine and cowbell, at velocities across the whole range so each
velocity layer is heard. Written by the project; deterministic, so running this again gives the
same bytes.

    .venv/bin/python scripts/make_demo_groove.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mido

OUT = Path(__file__).resolve().parents[1] / "dkvae_live" / "demo" / "groove.mid"
TEMPO_BPM = 120
BARS = 3  # and the last hit: with its ring, 7 s, so the rendered demo FLAC stays under 500 kB
TICKS = 480  # per quarter note
STEP = TICKS // 4  # a sixteenth
CHANNEL = 9  # General MIDI drums: channel 10
GATE = STEP // 2
KICK, SIDE_STICK, SNARE, CLAP = 36, 37, 38, 39
HAT, PEDAL_HAT, OPEN_HAT = 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM = 45, 47, 50
CRASH, RIDE, TAMBOURINE, COWBELL = 49, 51, 54, 56


def groove() -> list[tuple[int, int, int]]:
    """(sixteenth, note, velocity) of every hit: BARS bars of 16 sixteenths, then a last hit."""
    hits: list[tuple[int, int, int]] = []
    for bar in range(BARS):
        at = 16 * bar
        fill = bar == BARS - 1
        # hats: sixteenths, accented on the beat; the second bar moves to the ride; the open
        # hat on the last eighth of the first bar, cut by the pedal hat
        for step in range(12 if fill else 16):
            accent = step % 4 == 0
            if bar == 1:
                if step % 2 == 0:
                    hits.append((at + step, RIDE, 100 if accent else 70))
            elif step == 14 and bar == 0:
                hits.append((at + step, OPEN_HAT, 96))
            elif step != 15 or bar != 0:
                hits.append((at + step, HAT, 104 if accent else 40 + 6 * (step % 4)))
        if bar == 0:
            hits.append((at + 16, PEDAL_HAT, 80))  # closes the open hat on the next downbeat
        # kick and snare
        for step, velocity in ((0, 120), (7, 70), (10, 100)) if not fill else ((0, 120),):
            hits.append((at + step, KICK, velocity))
        hits.append((at + 4, SNARE, 112))
        if not fill:
            hits += [(at + 12, SNARE, 118), (at + 9, SNARE, 28), (at + 15, SNARE, 22)]
        # percussion: tambourine on the off-beats, a cowbell and a clap now and then
        for step in (2, 6, 10, 14) if not fill else (2, 6):
            hits.append((at + step, TAMBOURINE, 50 + 10 * (step // 4)))
        if bar == 1:
            hits += [(at + 3, COWBELL, 64), (at + 11, COWBELL, 90), (at + 12, CLAP, 84)]
            hits.append((at + 13, SIDE_STICK, 72))
        if fill:  # a tom fill into the crash of the bar after
            for step, note, velocity in (
                (8, HIGH_TOM, 90),
                (9, HIGH_TOM, 60),
                (10, MID_TOM, 100),
                (11, MID_TOM, 70),
                (12, LOW_TOM, 110),
                (13, LOW_TOM, 80),
                (14, SNARE, 120),
                (15, SNARE, 127),
            ):
                hits.append((at + step, note, velocity))
    end = 16 * BARS
    hits += [(0, CRASH, 110), (end, CRASH, 127), (end, KICK, 127)]  # in, and the last hit
    return hits


def midi_file(hits: list[tuple[int, int, int]]) -> mido.MidiFile:
    events: list[tuple[int, int, mido.Message]] = []
    for step, note, velocity in hits:
        on = step * STEP
        hit = mido.Message("note_on", channel=CHANNEL, note=note, velocity=velocity)
        events.append((on, 1, hit))
        events.append((on + GATE, 0, mido.Message("note_off", channel=CHANNEL, note=note)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="DK·VAE Live demo groove", time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(TEMPO_BPM), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=TICKS))
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    midi.tracks.append(track)
    return midi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    midi_file(groove()).save(str(args.output))
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
