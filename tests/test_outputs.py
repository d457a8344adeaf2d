"""--outputs without an audio server: which pair each pad plays on, and the stereo mix that
PortAudio and the offline render play, whatever the pairs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dkvae_live.mixer import OUTPUT_PAIRS, Mixer
from dkvae_live.outputs import OUTPUT_MODES, pairs_wanted, router, usable
from dkvae_live.pad_sound import PadSound
from dkvae_live.pads import default_pads

CLASSES = ("kick", "snare", "hihat", "tom", "cymbal", "perc")


def test_each_mode_routes_a_pad_to_its_pair_and_wants_those_pairs() -> None:
    pads = default_pads(CLASSES, 8)
    pads[41] = replace(pads[41], output="toms")
    pads[43] = replace(pads[43], output="toms")
    pads[49] = replace(pads[49], output="overheads")
    assert pairs_wanted("stereo", CLASSES, pads.values()) == []
    assert pairs_wanted("per-class", CLASSES, pads.values()) == list(CLASSES)
    assert pairs_wanted("per-pad", CLASSES, pads.values()) == ["overheads", "toms"]
    assert [router(mode)(pads[41]) for mode in OUTPUT_MODES] == ["", "tom", "toms"]
    assert [router(mode)(pads[36]) for mode in OUTPUT_MODES] == ["", "kick", ""]
    with pytest.raises(ValueError, match="outputs must be one of stereo, per-class, per-pad"):
        router("surround")


def test_a_class_name_that_cannot_name_ports_gets_no_pair() -> None:
    assert usable("kick") and usable("hi-hat_2")
    assert not usable("out") and not usable("hi hat") and not usable("a:b") and not usable("")


def test_the_mixer_has_room_for_a_pair_per_class_and_refuses_past_it() -> None:
    mixer = Mixer(4)
    mixer.configure(48000)
    names = [f"pair{i}" for i in range(1, OUTPUT_PAIRS)]
    assert [mixer.add_pair(name) for name in names] == list(range(1, OUTPUT_PAIRS))
    assert mixer.add_pair("pair3") == 3  # made already
    assert mixer.add_pair("") == 0  # the main pair
    with pytest.raises(ValueError, match=f"at most {OUTPUT_PAIRS - 1} besides the main one"):
        mixer.add_pair("one-too-many")
    assert mixer.pair_names == ["", *names]


def test_the_stereo_mix_holds_every_pad_whatever_pair_it_also_plays_on() -> None:
    """PortAudio and the offline render call Mixer.process: the main pair, all pads summed,
    sample for sample as without pairs."""
    rng = np.random.default_rng(0)
    tones = {note: rng.uniform(-0.3, 0.3, (1, 3000)).astype(np.float32) for note in (36, 38)}

    def play(outputs: dict[int, str]) -> np.ndarray:
        mixer = Mixer(4, master_gain=0.5)
        mixer.configure(48000)
        mixer.add_pair("kick")
        for note, tone in tones.items():
            mixer.publish(PadSound.from_audio(note, (tone,), 0.9, 0.6, 0, 4, output=outputs[note]))
        out = np.zeros((4000, 2), np.float32)
        mixer.note_on(36, 127)
        mixer.process(out[:100])
        mixer.note_on(38, 90)
        for start in range(100, 4000, 256):
            mixer.process(out[start : start + 256])
        return out

    plain = play({36: "", 38: ""})
    assert np.max(np.abs(plain)) > 0.1
    np.testing.assert_array_equal(play({36: "kick", 38: "no-such-pair"}), plain)
