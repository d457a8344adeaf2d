"""Ordered labelling rules: names from real kits, GM notes, configurable rules."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
from dkvae_training.bank import SoundSource, import_sources, read_manifest

from dkvae_live.labels import (
    CLASS_NAMES_DEFAULT,
    LabelRules,
    LabelRulesError,
    Rule,
    gm_note_class,
    instrument_type,
    kit_style,
    load_rules,
)

# Instrument names as they appear in the drum kits of Debian's hydrogen-drumkits/hydrogen-data
# and in the AVL SoundFonts, with the class a drummer would give them.
REAL_NAMES = [
    ('Kick (Tama Superstar 22")', "kick"),
    ("BassDrum", "kick"),
    ("c3 - bass drum 1", "kick"),
    ("Pearl Kick", "kick"),
    ("36-Pearl22Kick", "kick"),
    ("Snare Rimshot (Pearl Free Floating Maple 14x3.5)", "snare"),
    ("Pearl Side Stick", "snare"),
    ("Snare Jazz", "snare"),
    ("Brush Snr", "snare"),
    ('Hi-Hat Pedal (Paiste Alpha Metal edge 14")', "hihat"),
    ("Closed HH 3", "hihat"),
    ("Sabian Hat Semi-Open", "hihat"),
    ("VariBreaks Hat 1 Cl", "hihat"),
    ("Hi Hat Free", "hihat"),
    ("Floor Tom", "tom"),
    ("Pearl Tom 2", "tom"),
    ("b3 - low tom", "tom"),
    ('Crash/Ride Bell (Paiste Rude Crash/Ride 18")', "cymbal"),
    ('China (Paiste Alpha 18")', "cymbal"),
    ("Ride Bell", "cymbal"),
    ("crash16inch", "cymbal"),
    ("Cowbell", "perc"),
    ("Hand Clap", "perc"),
    ("Tambourine Pedal (Pearl PTM-10GH)", "perc"),
    ("Cajon Slap", "perc"),
    ("WaterglassHi", "perc"),
    ("Dununba1 Head Hit", "perc"),
]


@pytest.mark.parametrize(("name", "expected"), REAL_NAMES)
def test_default_rules_label_real_instrument_names(name: str, expected: str) -> None:
    assert LabelRules().classify(name) == (True, expected)


# A drum machine's sample files, named by the voice's code (Roland's TR-808 and TR-909 sets)
MACHINE_NAMES = [
    ("BD0010.WAV", "kick"),
    ("SD0000.WAV", "snare"),
    ("RS.WAV", "snare"),
    ("CH.WAV", "hihat"),
    ("OH00.WAV", "hihat"),
    ("HHO.wav", "hihat"),
    ("LT00.WAV", "tom"),
    ("HT 2.wav", "tom"),
    ("CY0000.WAV", "cymbal"),
    ("RID.wav", "cymbal"),
    ("CP.WAV", "perc"),
    ("CB.WAV", "perc"),
    ("HC00.WAV", "perc"),  # the 808's high conga
    ("MA.WAV", "perc"),
]


@pytest.mark.parametrize(("file_name", "expected"), MACHINE_NAMES)
def test_drum_machine_codes_label_their_voice(file_name: str, expected: str) -> None:
    assert LabelRules().classify("", file_name) == (True, expected)


@pytest.mark.parametrize("file_name", ["Oh yeah.wav", "chimes.wav", "market.wav"])
def test_a_code_inside_other_words_labels_nothing(file_name: str) -> None:
    assert LabelRules().classify("", file_name) == (False, None)


@pytest.mark.parametrize("name", ["Zap 1", "FX", "Whistle", "Snare Roll", "Metronome Click"])
def test_exclusion_rules_win_over_class_rules(name: str) -> None:
    rules = LabelRules()
    matched, label = rules.match(name)
    assert matched and label is None
    assert rules.classify(name) == (True, None)


def test_unlabeled_names_fall_back_to_the_file_name_then_stay_out() -> None:
    rules = LabelRules()
    assert rules.classify("17", "emptySample.flac") == (True, None)
    assert rules.match("emptySample") == (True, None)
    assert rules.classify("Sample: beats_06-38.flac") == (False, None)
    # nothing says what it is
    assert rules.classify("c5 - ", "beats_06-38.flac") == (False, None)
    assert rules.classify("c5 - ", "PowR_BD_1.flac") == (True, "kick")
    assert rules.classify("c5 - ", "BD_08.aiff") == (True, "kick")
    # the instrument name comes first
    assert rules.classify("Snare 1", "hihat.wav") == (True, "snare")


def test_kit_specific_rules_fix_known_mislabels() -> None:
    rules = LabelRules()
    assert rules.classify("Kick", kit="Audiophob") == (True, "tom")
    assert rules.classify("Pedal HH", kit="Audiophob") == (True, "perc")
    assert rules.classify("Kick", kit="GMRockKit") == (True, "kick")
    assert rules.classify("Pedal HH", kit="Millo-Drums_v.1") == (True, "hihat")
    assert rules.classify("Dununba1 Bell Mute", kit="circAfrique v4") == (True, "perc")
    assert rules.classify("Ride Bell", kit="GMRockKit") == (True, "cymbal")
    # the sample's name, not the General MIDI note it is played on
    lv2 = "Black_Pearl_4_LV2"
    assert rules.classify("48-SabianRockHatSw", kit=lv2, gm_notes=(48,)) == (True, "hihat")
    assert rules.classify("50-SabianAA16CrashCh", kit=lv2, gm_notes=(50,)) == (True, "cymbal")
    assert rules.classify("60-Paiste2002", kit=lv2, gm_notes=(60,)) == (True, "cymbal")
    assert rules.classify("45-Pearl12Tom", kit=lv2, gm_notes=(45,)) == (True, "tom")


def test_gm_notes() -> None:
    assert [gm_note_class(n) for n in (35, 36, 38, 42, 45, 49, 56)] == [
        "kick",
        "kick",
        "snare",
        "hihat",
        "tom",
        "cymbal",
        "perc",
    ]
    assert gm_note_class(71) is None  # short whistle
    assert gm_note_class(12) is None
    assert LabelRules().classify_note(36) == (True, "kick")
    assert LabelRules().classify_note(58) == (True, None)
    assert LabelRules().classify_note(12) == (False, None)


def test_rules_from_toml_come_before_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        'class_names = ["kick", "snare", "hihat", "tom", "cymbal", "perc", "clap"]\n'
        '[[rule]]\npattern = "clap"\nlabel = "clap"\n'
        '[[rule]]\npattern = "^Kick$"\nlabel = ""\nkit = "TR808"\n'
    )
    rules = load_rules(path)
    assert rules.class_names[-1] == "clap"
    assert rules.classify("Hand Clap") == (True, "clap")
    assert rules.classify("Kick", kit="TR808EmulationKit") == (True, None)
    assert rules.classify("Kick", kit="Other") == (True, "kick")
    assert rules.classify("Cowbell") == (True, "perc")


def test_rules_without_defaults_leave_everything_else_out(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        'class_names = ["kick"]\ninclude_default_rules = false\n'
        '[[rule]]\npattern = "bd"\nlabel = "kick"\n'
    )
    rules = load_rules(path)
    assert rules.classify("BD 1") == (True, "kick")
    assert rules.classify("Kick") == (False, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\npattern = "("\nlabel = "kick"\n', "bad regular expression"),
        ('[[rule]]\npattern = "x"\nlabel = "bongo"\n', "not one of"),
        ('[[rule]]\nlabel = "kick"\n', "needs a string 'pattern'"),
        ('class_names = ["a", "a"]\n', "without duplicates"),
        ("this is = not toml =", "cannot read rules"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(LabelRulesError, match=message):
        load_rules(path)


def test_a_rule_label_must_be_a_class() -> None:
    with pytest.raises(LabelRulesError, match="not one of"):
        LabelRules((Rule("x", "gong"),), CLASS_NAMES_DEFAULT)


# Preset names of LMMS's DrumSynth folders (kit "LMMS DrumSynth <folder>") and what they are.
DRUMSYNTH_NAMES = [
    ("tr808", "Kick", "kick"),
    ("tr808", "Snr_snap", "snare"),
    ("tr808", "Hat_o", "hihat"),
    ("tr909", "Hat-c2", "hihat"),
    ("electro", "K_8bit", "kick"),
    ("electro", "S_Linn", "snare"),
    ("electro", "H_closed", "hihat"),
    ("electro", "Syntom_1", "tom"),
    ("electro", "Hi-q", None),
    ("linn", "linn_kik", "kick"),
    ("linn", "linn_cga2", "perc"),
    ("linn", "linn_tom3", "tom"),
    ("r_n_b", "k_muffle", "kick"),
    ("misc_hats", "sleepy_1", "hihat"),
    ("misc_hats", "sandy_ride", "cymbal"),
    ("misc_claps", "u_don't_kno", "perc"),
    ("misc_perc", "super_tom", "tom"),
    ("misc_perc", "door_knock", "perc"),
    ("misc_bass", "jarre_bass_drum", "kick"),
    ("misc_bass", "warm_bass", None),
    ("misc_fx", "elekperc1", None),
    ("instrument", "Temple_Bell", None),
    ("misc", "bouncy809bd", "kick"),
    ("misc", "neo808", "kick"),
    ("misc", "909_hard_snare", "snare"),
    ("misc_electro", "electro_perc_short", "perc"),
    ("jorgensohn", "ramacymlong", "cymbal"),
]


@pytest.mark.parametrize(("folder", "name", "expected"), DRUMSYNTH_NAMES)
def test_drumsynth_presets_are_labelled_by_folder_and_name(
    folder: str, name: str, expected: str | None
) -> None:
    assert LabelRules().classify(name, kit=f"LMMS DrumSynth {folder}") == (True, expected)
    assert kit_style(f"LMMS DrumSynth {folder}", name) == "electronic"


@pytest.mark.parametrize(
    ("kit", "instrument", "style"),
    [
        ("TR808EmulationKit", "Kick", "electronic"),
        ("HardElectro1", "Snare", "electronic"),
        ("FluidR3_GM TR-808", "Bass Drum", "electronic"),
        ("TimGM6mb Electronic", "Snare", "electronic"),
        ("FluidR3_GM Standard 3", "Snare", "acoustic"),
        ("The Black Pearl 1.0", "Pearl Kick", "acoustic"),
        ("sf_GMbank CM-64/32 Set", "Kick", "acoustic"),
        ("LMMS samples", "snare_electro01", "electronic"),
        ("LMMS samples", "bassdrum_acoustic01", "acoustic"),
        ("OPL-3_FM_128M", "128", "electronic"),  # FM synthesis
        ("FluidR3_GM Room 3", "Floor Tom", "acoustic"),
    ],
)
def test_kit_style(kit: str, instrument: str, style: str) -> None:
    assert kit_style(kit, instrument) == style


# Sonic Pi's file names (kit "Sonic Pi <family>") and what they are.
SONIC_PI_NAMES = [
    ("drum kit", "drum_cymbal_closed", "hihat"),
    ("drum kit", "drum_cymbal_open", "hihat"),
    ("drum kit", "drum_cymbal_soft", "cymbal"),
    ("drum kit", "drum_bass_soft", "kick"),
    ("drum kit", "drum_heavy_kick", "kick"),
    ("drum kit", "drum_cowbell", "perc"),
    ("drum kit", "drum_roll", None),
    ("kicks", "bd_tek", "kick"),
    ("snares", "sn_generic", "snare"),
    ("electronic", "elec_fuzz_tom", "tom"),
    ("electronic", "elec_blip2", "perc"),
    ("electronic", "elec_bell", "perc"),
    ("electronic", "elec_twang", None),
    ("percussion", "perc_bell2", "perc"),
    ("percussion", "perc_snap", "perc"),
    ("percussion", "perc_swoosh", None),
    ("tabla", "tabla_ghe3", "perc"),
]


@pytest.mark.parametrize(("family", "name", "expected"), SONIC_PI_NAMES)
def test_sonic_pi_samples_are_labelled_by_file_name(
    family: str, name: str, expected: str | None
) -> None:
    assert LabelRules().classify(name, kit=f"Sonic Pi {family}") == (True, expected)


def test_named_percussion_keeps_its_name() -> None:
    assert instrument_type("Handclap") == "clap"
    assert instrument_type("linn_cow") == "cowbell"
    assert instrument_type("Snare Rimshot") == "rimshot"
    assert instrument_type("light_tamb_1") == "tambourine"
    assert instrument_type("Hi Conga") == "conga"
    assert instrument_type("Closed Hat") == ""
    assert instrument_type("Perc 7", gm_notes=(75,)) == "clave"  # GM claves
    assert instrument_type("Perc 7", gm_notes=(75, 56)) == ""  # two names: none


def test_kit_rules_win_over_general_midi_notes(tmp_path: Path) -> None:
    t = np.arange(8000) / 44100.0
    hit = (np.sin(2 * np.pi * 180 * t) * np.exp(-t / 0.05)).astype(np.float32)

    def source(kit: str, name: str, note: int, seed: int) -> SoundSource:
        audio = hit + 0.3 * np.random.default_rng(seed).normal(size=hit.size).astype(np.float32)
        load = partial(lambda a: (a[:, None], 44100), audio)
        return SoundSource(kit, name, 0, "gen", load, gm_notes=(note,))

    import_sources(
        tmp_path,
        [
            source("GM Marching Snare", "MSnr-hit", 49, 1),  # on GM's crash note
            source("GM Marching Snare", "MSnr-roll", 38, 2),  # a roll: left out
            source("GM Standard", "Odd", 49, 3),  # no kit rule: the note decides
            source("rumpf_kit_z01_gm", "d4 - high tom", 50, 4),  # names that lie: left out
        ],
    )
    assert {r.instrument: r.label for r in read_manifest(tmp_path)} == {
        "MSnr-hit": "snare",
        "Odd": "cymbal",
    }
