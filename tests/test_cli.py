"""`dkvae-live`'s command line: the daemon's options and the `render` command, parsed once."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from dkvae_live.cli import build_parser, main, midi_channel


def test_help_lists_the_render_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert re.search(r"^\s+render\s+play a MIDI file", capsys.readouterr().out, re.MULTILINE)


def test_daemon_invocations_parse_as_before() -> None:
    args = build_parser().parse_args(["--model", "m", "--no-midi", "--midi-channel", "10"])
    assert (args.command, args.model, args.no_midi, midi_channel(args)) == (
        None,
        Path("m"),
        True,
        9,
    )
    assert midi_channel(build_parser().parse_args([])) is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--midi-channel", "17"])


def test_render_plays_a_midi_file_on_the_channel_asked_for(
    tmp_path: Path, sine_model: Path, gm_kit: Path, caplog: pytest.LogCaptureFixture
) -> None:
    song = mido.MidiFile()
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.Message("note_on", channel=0, note=36, velocity=100, time=0))
    track.append(
        mido.Message("note_on", channel=9, note=38, velocity=100, time=song.ticks_per_beat)
    )
    track.append(mido.Message("note_on", channel=9, note=42, velocity=100, time=0))
    song.save(str(tmp_path / "song.mid"))
    out = tmp_path / "out.wav"
    command = ["render", str(tmp_path / "song.mid"), "-o", str(out), "--model", str(sine_model)]
    command += ["--kit", str(gm_kit), "--samplerate", "16000"]
    with caplog.at_level(logging.INFO, logger="dkvae_live"):
        assert main([*command, "--midi-channel", "10"]) == 0
    assert re.search(r"^2 notes \(0 without a pad", caplog.messages[-1])
    audio, rate = sf.read(str(out))
    assert rate == 16000
    assert np.max(np.abs(audio[: rate // 4])) == 0.0  # the channel-1 kick at 0 s is not played
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dkvae_live"):
        assert main(command) == 0
    assert re.search(r"^3 notes \(0 without a pad", caplog.messages[-1])
    assert np.max(np.abs(sf.read(str(out))[0][: 16000 // 4])) > 0.0
