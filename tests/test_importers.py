"""Importers on real kits (Debian packages, when present) and on small generated files.

Real kits come from ``$DKVAE_TEST_KITS``: a folder holding Debian packages as downloaded by
``apt-get download hydrogen-data avldrums.lv2-soundfont lmms-common timgm6mb-soundfont
csound-soundfont sonic-pi-samples freepats`` (scripts/test.sh does; the .deb files, unpacked
here on first use with ``dpkg-deb -x``) or already unpacked by ``dkvae-bank build-default
--debs``. Tests that need a package skip, saying which, when it is not there.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from dkvae_training.bank import (
    SPLITS,
    cross_split_duplicates,
    import_sources,
    load_bank,
    read_manifest,
)
from dkvae_training.bank_cli import (
    DEFAULT_PACKAGES,
    DRUMKITS,
    SF2_DIR,
    copyright_licences,
    debian_sources,
    fetch_package,
    licence_of,
)
from dkvae_training.importers.folder import iter_folder, layer_stem
from dkvae_training.importers.gus import GusError, iter_gus_folder, read_patch
from dkvae_training.importers.hydrogen import HydrogenError, find_kits, iter_kit, read_kit
from dkvae_training.importers.sf2 import Sf2Error, iter_sf2, read_sf2


def debian_package(package: str) -> Path:
    """The unpacked root of a Debian package from $DKVAE_TEST_KITS, or skip."""
    kits = os.environ.get("DKVAE_TEST_KITS")
    hint = (
        f"needs Debian package {package}: set DKVAE_TEST_KITS to a folder holding it "
        f"(cd $DKVAE_TEST_KITS && apt-get download {package})"
    )
    if not kits:
        pytest.skip(hint)
    folder = Path(kits)
    if not (folder / package / ".unpacked").exists() and not list(folder.glob(f"{package}_*.deb")):
        pytest.skip(hint)
    return fetch_package(package, folder)


@pytest.fixture(scope="module")
def hydrogen_data() -> Path:
    return debian_package("hydrogen-data") / DRUMKITS


@pytest.fixture(scope="module")
def avl_black_pearl() -> Path:
    return debian_package("avldrums.lv2-soundfont") / SF2_DIR / "Black_Pearl_4_LV2.sf2"


# ------------------------------------------------------------------------ Hydrogen, real kits


def test_hydrogen_kit_layers_are_ordered_softest_first(hydrogen_data: Path) -> None:
    assert [p.name for p in find_kits(hydrogen_data)] == ["GMRockKit", "TR808EmulationKit"]
    kit = read_kit(hydrogen_data / "GMRockKit")
    assert kit.name == "GMRockKit" and kit.licence == "GPL"
    kick = [layer for layer in kit.layers if layer.instrument == "Kick"]
    assert [layer.filename for layer in kick] == [
        "Kick-Softest.wav",
        "Kick-Soft.wav",
        "Kick-Med.wav",
        "Kick-Hard.wav",
        "Kick-Hardest.wav",
    ]
    assert [layer.layer for layer in kick] == [0, 1, 2, 3, 4]
    assert all(a.velocity_min < b.velocity_min for a, b in itertools.pairwise(kick))


def test_hydrogen_sources_load_the_kit_audio(hydrogen_data: Path) -> None:
    sources = list(iter_kit(hydrogen_data / "TR808EmulationKit", licence="GPL-2+"))
    assert len(sources) == 16
    assert {s.licence for s in sources} == {"GPL-2+"}
    clap = next(s for s in sources if s.instrument == "Clap")
    audio, rate = clap.load()
    expected, expected_rate = sf.read(str(clap.copy_from), dtype="float32", always_2d=True)
    assert rate == expected_rate and np.array_equal(audio, expected)


def test_import_hydrogen_data_labels_splits_and_dedups(hydrogen_data: Path, tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    sources = [s for kit in find_kits(hydrogen_data) for s in iter_kit(kit)]
    report = import_sources(bank, sources)
    rows = read_manifest(bank)
    assert len(rows) == sum(report.added.values()) >= 90
    # GMRockKit's softer "layers" of a few instruments are one sample at other gains.
    assert report.near_duplicates > 0
    assert set(report.added) == {"kick", "snare", "hihat", "tom", "cymbal", "perc"}
    by_file = {Path(r.source).name: r for r in rows if r.kit == "GMRockKit"}
    assert by_file["Kick-Hard.wav"].label == "kick"
    assert by_file["HatPedal-Soft.wav"].label == "hihat"
    assert by_file["SnareRimshot-Med.wav"].label == "snare"
    assert by_file["TomFloor-Softest.wav"].label == "tom"
    assert by_file["Splash-Hardest.wav"].label == "cymbal"
    assert by_file["Cowbell-Softest.wav"].label == "perc"  # the others: it at other gains
    for row in rows:
        assert (bank / row.path).read_bytes() == Path(row.source).read_bytes()
        assert row.path.startswith(f"{row.label}/") and row.split in SPLITS
    # No instrument's velocity layers on two sides of the split.
    sides = defaultdict(set)
    for row in rows:
        sides[(row.kit, row.instrument)].add(row.split)
    assert all(len(s) == 1 for s in sides.values())
    # Importing the same kits again adds nothing: every sound is an exact duplicate.
    again = import_sources(bank, sources)
    assert sum(again.added.values()) == 0 and again.duplicates == len(rows)


def test_a_reencoded_copy_in_another_kit_is_dropped(hydrogen_data: Path, tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    import_sources(bank, iter_kit(hydrogen_data / "TR808EmulationKit"))
    original = hydrogen_data / "TR808EmulationKit" / "808_Cowbell.flac"
    audio, rate = sf.read(str(original), dtype="float32")
    copy_dir = tmp_path / "MyKit" / "perc"
    copy_dir.mkdir(parents=True)
    # the same samples as a float WAV with 300 samples of silence in front: other bytes
    sf.write(
        str(copy_dir / "bell.wav"),
        np.concatenate([np.zeros(300, audio.dtype), audio]),
        rate,
        subtype="FLOAT",
    )
    report = import_sources(bank, iter_folder(tmp_path / "MyKit"))
    assert report.duplicates == 1 and sum(report.added.values()) == 0


def test_broken_drumkit_xml_is_an_error_with_the_path(tmp_path: Path) -> None:
    (tmp_path / "drumkit.xml").write_text("<drumkit_info><name>x</name>")
    with pytest.raises(HydrogenError, match=r"drumkit\.xml"):
        read_kit(tmp_path)


def test_old_format_kit_and_missing_files(tmp_path: Path) -> None:
    """A pre-0.9.4 drumkit.xml (one <filename> per instrument) naming a file the kit lacks."""
    sf.write(str(tmp_path / "kick.wav"), np.sin(np.arange(4000) / 10).astype(np.float32), 44100)
    (tmp_path / "drumkit.xml").write_text(
        "<drumkit_info><name>Old</name><license>CC0</license><instrumentList>"
        "<instrument><name>Kick</name><filename>kick.wav</filename></instrument>"
        "<instrument><name>Snare</name><filename>gone.wav</filename></instrument>"
        "</instrumentList></drumkit_info>"
    )
    report = import_sources(tmp_path / "bank", iter_kit(tmp_path))
    assert report.added == {"kick": 1}
    assert report.skipped == {"unreadable": 1}


# ----------------------------------------------------------------------------- SF2, generated


def _sf2(
    path: Path,
    samples: list[tuple[str, np.ndarray, int, int, int]],
    presets: list[tuple[str, int, list[tuple[int, ...]]]],
) -> Path:
    """A minimal SoundFont 2: samples (name, int16 data, rate, link, type) and presets (name,
    MIDI bank, zones of (key low, key high, sample index[, root key[, coarse tune]])), one
    instrument per preset; the samples' recorded pitch is note 60."""

    def chunk(cid: bytes, data: bytes) -> bytes:
        return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    def name(text: str) -> bytes:
        return text.encode()[:20].ljust(20, b"\0")

    smpl = b""
    shdr = b""
    pos = 0
    for sname, data, rate, link, kind in samples:
        smpl += data.astype("<i2").tobytes() + b"\0" * 92
        shdr += struct.pack(
            "<20sIIIIIBbHH",
            name(sname),
            pos,
            pos + len(data),
            pos,
            pos + 1,
            rate,
            60,
            0,
            link,
            kind,
        )
        pos += len(data) + 46
    shdr += struct.pack("<20sIIIIIBbHH", name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)
    phdr = pbag = pgen = inst = ibag = igen = b""
    nz = ng = 0
    for i, (pname, bank, zones) in enumerate(presets):
        phdr += struct.pack("<20sHHHIII", name(pname), i, bank, i, 0, 0, 0)
        pbag += struct.pack("<HH", i, 0)
        pgen += struct.pack("<HH", 41, i)
        inst += struct.pack("<20sH", name(f"inst{i}"), nz)
        for lo, hi, sample, *tuning in zones:
            ibag += struct.pack("<HH", ng, 0)
            igen += struct.pack("<HBB", 43, lo, hi)
            # root key and coarse tune; without them scale tuning 0: every key plays the
            # sample at its recorded pitch, as drum kits often do
            gens = list(zip((58, 51), tuning, strict=False)) or [(56, 0)]
            for op, amount in gens:
                igen += struct.pack("<Hh", op, amount)
            igen += struct.pack("<HH", 53, sample)
            nz += 1
            ng += 2 + len(gens)
    phdr += struct.pack("<20sHHHIII", name("EOP"), 0, 0, len(presets), 0, 0, 0)
    pbag += struct.pack("<HH", len(presets), 0)
    pgen += struct.pack("<HH", 0, 0)
    inst += struct.pack("<20sH", name("EOI"), nz)
    ibag += struct.pack("<HH", ng, 0)
    igen += struct.pack("<HH", 0, 0)
    info = chunk(b"ifil", struct.pack("<HH", 2, 1)) + chunk(b"INAM", b"Test\0")
    info += chunk(b"ICOP", b"CC0 test\0")
    pdta = b"".join(
        chunk(c, d)
        for c, d in [
            (b"phdr", phdr),
            (b"pbag", pbag),
            (b"pmod", b"\0" * 10),
            (b"pgen", pgen),
            (b"inst", inst),
            (b"ibag", ibag),
            (b"imod", b"\0" * 10),
            (b"igen", igen),
            (b"shdr", shdr),
        ]
    )
    body = b"sfbk" + chunk(b"LIST", b"INFO" + info) + chunk(b"LIST", b"sdta" + chunk(b"smpl", smpl))
    body += chunk(b"LIST", b"pdta" + pdta)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _tone(seed: int, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (
        (rng.normal(size=n) * 8000 * np.exp(-np.arange(n) / 600))
        .clip(-32768, 32767)
        .astype(np.int16)
    )


@pytest.fixture
def small_sf2(tmp_path: Path) -> Path:
    kick, left, right, piano, odd = (_tone(i) for i in range(5))
    return _sf2(
        tmp_path / "Small_Kit.sf2",
        samples=[
            ("Kick-1", kick, 44100, 0, 1),
            ("Snare(L)", left, 32000, 2, 4),  # linked stereo pair
            ("Snare(R)", right, 32000, 1, 2),
            ("Piano C4", piano, 44100, 0, 1),  # only in a melodic preset: never imported
            ("Odd", odd, 22050, 0, 1),  # on a tom note and a cymbal note: names decide
        ],
        presets=[
            ("Drums", 128, [(35, 36, 0), (38, 38, 1), (38, 38, 2), (45, 45, 4)]),
            ("Piano", 0, [(0, 127, 3)]),
            ("More drums", 128, [(49, 49, 4)]),
        ],
    )


def test_sf2_reader_finds_drum_samples_and_their_notes(small_sf2: Path) -> None:
    sfont = read_sf2(small_sf2)
    assert sfont.name == "Test" and sfont.copyright == "CC0 test"
    assert sfont.drum_presets == ["Drums", "More drums"]
    notes = {s.name: sorted(s.notes) for s in sfont.samples}
    assert notes == {
        "Kick-1": [35, 36],
        "Snare(L)": [38],
        "Snare(R)": [38],
        "Piano C4": [],
        "Odd": [45, 49],
    }
    np.testing.assert_array_equal(sfont.audio(sfont.samples[0]), _tone(0) / 32768.0)


def test_sf2_sources_join_stereo_pairs_and_carry_gm_notes(small_sf2: Path) -> None:
    sources = {s.instrument: s for s in iter_sf2(small_sf2)}
    assert set(sources) == {"Kick", "Snare", "Odd"}
    snare = sources["Snare"]
    audio, rate = snare.load()
    assert rate == 32000 and audio.shape == (3000, 2)
    np.testing.assert_array_equal(audio[:, 0], _tone(1) / 32768.0)
    np.testing.assert_array_equal(audio[:, 1], _tone(2) / 32768.0)
    assert snare.gm_notes == (38,) and snare.kit == "Small_Kit Drums"
    assert snare.licence == "CC0 test"
    assert sources["Kick"].gm_notes == (35, 36) and sources["Kick"].load()[0].shape == (3000, 1)


def test_sf2_import_labels_by_gm_note(small_sf2: Path, tmp_path: Path) -> None:
    report = import_sources(tmp_path / "bank", iter_sf2(small_sf2))
    assert report.added == {"kick": 1, "snare": 1}
    # "Odd" is on a tom note and a cymbal note, and its name says nothing: left out.
    assert report.unlabeled == ["Small_Kit Drums: Odd (Odd)"]
    rows = read_manifest(tmp_path / "bank")
    snare = next(r for r in rows if r.label == "snare")
    assert snare.channels == 2 and snare.source_sample_rate == 32000
    assert snare.source == "Small_Kit.sf2#Snare(L)+Snare(R)"
    data, rate = sf.read(str(tmp_path / "bank" / snare.path), dtype="float32")
    assert rate == 32000
    np.testing.assert_allclose(data[:, 1], _tone(2) / 32768.0, atol=1e-6)


def test_sf2_presets_are_kits_and_a_sample_is_a_sound_per_pitch(tmp_path: Path) -> None:
    kick, clap, boom, sfx = (_tone(i, 4000) for i in range(10, 14))
    t = np.arange(4000) / 22050
    tom = (20000 * np.sin(2 * np.pi * 441 * t) * np.exp(-t / 0.05)).astype(np.int16)
    path = _sf2(
        tmp_path / "GM.sf2",
        samples=[(n, d, 22050, 0, 1) for n, d in [("Tom", tom), ("Kick", kick), ("Clap", clap)]]
        + [("808 Boom", boom, 22050, 0, 1), ("Gunshot", sfx, 22050, 0, 1)],
        presets=[
            # program order decides a shared sample's kit, not file order
            ("TR-808", 128, [(36, 36, 3), (39, 39, 2)]),
            # one tom sample over three keys, recorded at note 43: three toms
            ("Standard", 128, [(41, 41, 0, 43), (43, 43, 0, 43), (45, 45, 0, 43), (36, 36, 1)]),
            ("SFX", 128, [(36, 36, 4)]),  # not a kit
            ("Room", 128, [(43, 43, 0, 43), (41, 41, 0, 41, 12)]),  # tuned an octave up
        ],
    )
    sources = list(iter_sf2(path))
    kits = {(s.kit, s.instrument, s.source.split("@")[-1]) for s in sources}
    assert kits == {
        ("GM TR-808", "808 Boom", "GM.sf2#808 Boom"),
        ("GM TR-808", "Clap", "GM.sf2#Clap"),
        ("GM Standard", "Kick", "GM.sf2#Kick"),
        ("GM Standard", "Tom", "GM.sf2#Tom"),
        ("GM Standard", "Tom", "-200c"),
        ("GM Standard", "Tom", "+200c"),
        ("GM Room", "Tom", "+1200c"),
    }
    toms = {s.source.split("@")[-1]: s for s in sources if s.instrument == "Tom"}
    assert toms["-200c"].gm_notes == (41,) and toms["GM.sf2#Tom"].gm_notes == (43,)
    assert len({s.split_group for s in toms.values()}) == 1  # all pitches on one side
    # A sound played 2 semitones up lasts 2^(-2/12) as long, at the sample's own rate.
    audio, rate = toms["+200c"].load()
    assert rate == 22050
    assert audio.shape[0] == pytest.approx(4000 * 2 ** (-200 / 1200), abs=2)
    for pitch, semitones in [("-200c", -2), ("GM.sf2#Tom", 0), ("+200c", 2), ("+1200c", 12)]:
        audio, _ = toms[pitch].load()
        spectrum = np.abs(np.fft.rfft(audio[:, 0], 1 << 16))
        peak = np.argmax(spectrum) * rate / (1 << 16)
        assert peak == pytest.approx(441 * 2 ** (semitones / 12), rel=0.01), pitch


def test_not_a_soundfont(tmp_path: Path) -> None:
    (tmp_path / "x.sf2").write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(Sf2Error, match="not a SoundFont 2"):
        read_sf2(tmp_path / "x.sf2")


# --------------------------------------------------------------------------------- SF2, real


def test_avl_black_pearl_sf2(avl_black_pearl: Path, tmp_path: Path) -> None:
    sources = list(iter_sf2(avl_black_pearl, licence="CC-BY-SA-3.0"))
    assert len(sources) == 118
    kicks = [s for s in sources if s.instrument == "36-Pearl22Kick"]
    assert [s.layer for s in kicks] == [0, 1, 2, 3, 4] and all(s.gm_notes == (36,) for s in kicks)
    report = import_sources(tmp_path / "bank", sources)
    rows = read_manifest(tmp_path / "bank")
    assert sum(report.added.values()) == len(rows) >= 100
    assert report.near_duplicates == len(sources) - len(rows)  # layers that are gain copies
    labels = Counter(r.label for r in rows)
    assert set(labels) == {"kick", "snare", "hihat", "tom", "cymbal", "perc"}
    assert labels["kick"] == 5
    for row in rows:
        note = int(row.instrument.split("-")[0])
        if note in (35, 36):
            assert row.label == "kick"
        elif note in (42, 44, 46):
            assert row.label == "hihat"
    # GM 58 is the vibraslap, but this kit puts a crash choke there: the name decides.
    assert {r.label for r in rows if r.instrument.startswith("58-")} == {"cymbal"}
    arrays, splits, _ = load_bank(tmp_path / "bank", num_samples=8192)
    assert len(arrays) == len(rows) and set(splits) <= set(SPLITS)


# ------------------------------------------------ GM SoundFonts and LMMS, real (CI fetches them)


@pytest.fixture(scope="module")
def timgm6mb() -> Path:
    return debian_package("timgm6mb-soundfont") / SF2_DIR / "TimGM6mb.sf2"


@pytest.fixture(scope="module")
def csound_gm() -> Path:
    return debian_package("csound-soundfont") / SF2_DIR / "sf_GMbank.sf2"


@pytest.fixture(scope="module")
def lmms_common() -> Path:
    return debian_package("lmms-common")


def test_every_drum_preset_of_a_gm_soundfont_is_a_kit(timgm6mb: Path, tmp_path: Path) -> None:
    sources = list(iter_sf2(timgm6mb, licence="GPL-2"))
    kits = Counter(s.kit for s in sources)
    # Eight drum presets; not only bank 128 preset 0 ("Standard").
    assert {"TimGM6mb Standard", "TimGM6mb TR 808", "TimGM6mb Electronic"} <= set(kits)
    assert len(kits) >= 6
    # Samples a preset plays at several pitches are several sounds, one per pitch.
    pitches = Counter(s.source.split("@")[0] for s in sources)
    assert sum(1 for n in pitches.values() if n > 1) >= 10
    report = import_sources(tmp_path / "bank", sources)
    rows = read_manifest(tmp_path / "bank")
    assert sum(report.added.values()) == len(rows) >= 100
    styles = {r.kit: r.style for r in rows}
    assert styles["TimGM6mb TR 808"] == styles["TimGM6mb Electronic"] == "electronic"
    assert styles["TimGM6mb Standard"] == "acoustic"
    claps = [r for r in rows if r.instrument_type == "clap"]
    assert claps and all(r.label == "perc" for r in claps)


def test_a_second_gm_soundfont_merges_its_copies_and_keeps_splits_clean(
    timgm6mb: Path, csound_gm: Path, tmp_path: Path
) -> None:
    bank = tmp_path / "bank"
    import_sources(bank, iter_sf2(timgm6mb))
    sources = list(iter_sf2(csound_gm))
    assert not any("SFX" in s.kit for s in sources)  # a sound-effects set is not a kit
    assert any(s.kit == "sf_GMbank CM-64/32 Set" for s in sources)
    report = import_sources(bank, sources)
    # The two fonts share samples: as exact copies and as near-copies (edited or resampled).
    assert report.duplicates > 0 and report.near_duplicates > 0
    assert cross_split_duplicates(bank) == (0, 0)


def test_lmms_one_shots_and_drumsynth_presets(lmms_common: Path, tmp_path: Path) -> None:
    spec = next(s for s in DEFAULT_PACKAGES if s.package == "lmms-common")
    sources = list(debian_sources(spec, lmms_common))
    by_kit = Counter(s.kit for s in sources)
    assert by_kit["LMMS samples"] >= 70  # usr/share/lmms/samples/drums/*.ogg
    assert by_kit["LMMS DrumSynth tr808"] == 15 and len(by_kit) >= 20
    wanted = [
        s
        for s in sources
        if s.kit in ("LMMS samples", "LMMS DrumSynth tr808", "LMMS DrumSynth misc_fx")
    ]
    report = import_sources(tmp_path / "bank", wanted)
    rows = {(r.kit, r.instrument): r for r in read_manifest(tmp_path / "bank")}
    tr808 = {i: r for (k, i), r in rows.items() if k == "LMMS DrumSynth tr808"}
    assert tr808["Kick"].label == "kick" and tr808["Snare"].label == "snare"
    assert tr808["Hat c"].label == "hihat" and tr808["Tom hi"].label == "tom"
    assert tr808["Handclap"].label == "perc" and tr808["Handclap"].instrument_type == "clap"
    assert tr808["Cowbell"].instrument_type == "cowbell"
    assert {r.style for r in tr808.values()} == {"electronic"}
    assert len({r.split_group for r in tr808.values()}) == 1
    assert not any(k == "LMMS DrumSynth misc_fx" for k, _ in rows)  # sound effects: left out
    assert any(e.startswith("LMMS DrumSynth misc_fx: ") for e in report.excluded)
    samples = {i: r for (k, i), r in rows.items() if k == "LMMS samples"}
    assert samples["kick01"].label == "kick" and samples["kick01"].path.endswith(".ogg")
    assert samples["bassdrum_acoustic01"].style == "acoustic"
    assert samples["snare_electro01"].style == "electronic"


def test_sonic_pi_drum_one_shots(tmp_path: Path) -> None:
    root = debian_package("sonic-pi-samples")
    spec = next(s for s in DEFAULT_PACKAGES if s.package == "sonic-pi-samples")
    sources = list(debian_sources(spec, root))
    by_name = {s.instrument: s for s in sources}
    # Drum families only: no loops, ambient pads, guitars or vinyl noises.
    assert not any(n.startswith(("loop_", "ambi_", "guit_", "vinyl_")) for n in by_name)
    assert len(sources) >= 90 and len({s.kit for s in sources}) == 6
    # Licences per file from debian/copyright: CC0, and MIT where only its "Files: *" covers it.
    assert by_name["bd_808"].licence == "CC0" and by_name["bd_mehackit"].licence == "MIT"
    report = import_sources(tmp_path / "bank", sources)
    rows = {r.instrument: r for r in read_manifest(tmp_path / "bank")}
    assert rows["bd_haus"].label == rows["drum_bass_hard"].label == "kick"
    assert rows["drum_cymbal_closed"].label == rows["drum_cymbal_pedal"].label == "hihat"
    assert rows["drum_cymbal_hard"].label == "cymbal" and rows["drum_tom_lo_hard"].label == "tom"
    assert rows["elec_hi_snare"].label == rows["sn_dub"].label == "snare"
    assert rows["elec_bell"].label == rows["perc_bell"].label == rows["tabla_na"].label == "perc"
    assert rows["bd_haus"].style == rows["elec_blip"].style == "electronic"
    assert rows["drum_snare_hard"].style == rows["tabla_na"].style == "acoustic"
    assert "perc_till" not in rows and "drum_roll" not in rows  # a cash register, a roll
    assert any(e.startswith("Sonic Pi percussion: perc_till") for e in report.excluded)
    kits: dict[str, set[str]] = defaultdict(set)
    for r in rows.values():
        kits[r.kit].add(r.split)
    assert all(len(s) == 1 for s in kits.values())  # each family on one side of the split


def test_debian_copyright_licences_last_matching_paragraph_wins(tmp_path: Path) -> None:
    path = tmp_path / "copyright"
    path.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: MIT\n\n"
        "Files: etc/samples/a.flac\n etc/samples/b*.flac\nLicense: CC0\n text\n .\n more\n\n"
        "License: CC0\n The licence's text, in a paragraph of its own.\n"
    )
    licences = copyright_licences(path)
    assert licences == [(["*"], "MIT"), (["etc/samples/a.flac", "etc/samples/b*.flac"], "CC0")]
    assert licence_of("etc/samples/bd_1.flac", licences) == "CC0"
    assert licence_of("etc/samples/c.flac", licences) == "MIT"
    assert licence_of("x", copyright_licences(tmp_path / "missing")) == ""


# ------------------------------------------------------------------------------ GUS patches


def gus_patch(samples: list[tuple[bytes, int, int]]) -> bytes:
    """A GUS patch holding (data, rate, mode) samples; mode bit 0: 16-bit, bit 1: unsigned."""
    head = bytearray(239)
    head[:22] = b"GF1PATCH110\0ID#000002\0"
    head[198] = len(samples)
    out = bytes(head)
    for data, rate, mode in samples:
        sample = bytearray(96)
        struct.pack_into("<I", sample, 8, len(data))
        struct.pack_into("<H", sample, 20, rate)
        sample[55] = mode
        out += bytes(sample) + data
    return out


def test_gus_patch_reader_decodes_8_and_16_bit_samples(tmp_path: Path) -> None:
    signed16 = np.array([0, 16384, -32768], dtype="<i2").tobytes()
    unsigned8 = np.array([128, 192, 0], dtype=np.uint8).tobytes()
    path = tmp_path / "035_Kick_1.pat"
    path.write_bytes(gus_patch([(signed16, 22050, 0x01), (unsigned8, 8000, 0x02)]))
    (a, rate_a), (b, rate_b) = read_patch(path)
    assert rate_a == 22050 and np.allclose(a, [0.0, 0.5, -1.0])
    assert rate_b == 8000 and np.allclose(b, [0.0, 0.5, -1.0])
    (tmp_path / "035_Kick_1.txt").write_text("under the GNU Free\nDocumentation License")
    sources = list(iter_gus_folder(tmp_path, kit="Pats", licence="GPL-2+"))
    assert [(s.instrument, s.gm_notes, s.layer) for s in sources] == [
        ("Kick_1", (35,), 0),
        ("Kick_1", (35,), 1),
    ]
    assert {s.licence for s in sources} == {"GFDL-1.2+"}
    audio, rate = sources[1].load()
    assert audio.shape == (3, 1) and rate == 8000
    bad = tmp_path / "bad.pat"
    bad.write_bytes(gus_patch([(signed16, 22050, 0x01)])[:-2])  # data cut short
    with pytest.raises(GusError, match="do not fit"):
        read_patch(bad)
    with pytest.raises(GusError, match="not a GUS patch"):
        read_patch(tmp_path / "035_Kick_1.txt")


def test_freepats_drum_set(tmp_path: Path) -> None:
    root = debian_package("freepats")
    spec = next(s for s in DEFAULT_PACKAGES if s.package == "freepats")
    sources = list(debian_sources(spec, root))
    assert len(sources) >= 50 and {s.kit for s in sources} == {"FreePats drums"}
    report = import_sources(tmp_path / "bank", sources)
    rows = {r.instrument: r for r in read_manifest(tmp_path / "bank")}
    assert sum(report.added.values()) >= 45
    assert rows["Kick_2"].label == "kick" and rows["Hi-Hat_Open"].label == "hihat"
    assert rows["Tom_Low_1"].label == "tom" and rows["Cymbal_Ride_1"].label == "cymbal"
    # The GM note labels it, not the name: "Tombourine" is a tambourine, not a tom.
    assert rows["Tombourine"].label == "perc" and rows["Tombourine"].instrument_type == (
        "tambourine"
    )
    assert "Metronome_Click" not in rows and "Whistle_1_High_Short" not in rows
    assert rows["Kick_1"].licence == "GFDL-1.2+"
    assert rows["Kick_2"].licence == "GPL-2+ with composition exception"
    assert {r.style for r in rows.values()} == {"acoustic"}


# ------------------------------------------------------------------------------ folders


def test_layer_stem() -> None:
    assert layer_stem("Snare-Hard") == "Snare"
    assert layer_stem("tom_soft_v2") == "tom"
    assert layer_stem("Ride 3-rr2") == "Ride 3"
    assert layer_stem("kick01") == "kick01"
    assert layer_stem("hihat") == "hihat"  # "t" is not a layer word
    assert layer_stem("soft") == "soft"


def test_folder_import(tmp_path: Path) -> None:
    root = tmp_path / "Loose Kit"
    rng = np.random.default_rng(0)

    def put(rel: str, seed: int, **kw: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = np.random.default_rng(seed).normal(size=3000) * np.exp(-np.arange(3000) / 500)
        sf.write(str(path), (0.3 * audio).astype(np.float32), 44100, **kw)

    put("Kicks/k1.wav", 1)
    put("Kicks/k2.flac", 2)
    put("Toms/tom_soft.aiff", 3)
    put("Toms/tom_hard.aiff", 4)
    put("misc/808 snare.wav", 5)
    put("misc/thing.wav", 6)
    put(".trash/kick.wav", 7)
    (root / "notes.txt").write_text("not audio")
    del rng
    sources = list(iter_folder(root, licence="CC0"))
    assert len(sources) == 6 and all(s.kit == "Loose Kit" for s in sources)
    report = import_sources(tmp_path / "bank", sources)
    assert report.added == {"kick": 2, "tom": 2, "snare": 1}
    assert report.unlabeled == ["Loose Kit: misc (thing.wav)"]
    rows = {Path(r.source).name: r for r in read_manifest(tmp_path / "bank")}
    assert rows["tom_soft.aiff"].split_group == rows["tom_hard.aiff"].split_group
    assert rows["tom_soft.aiff"].split == rows["tom_hard.aiff"].split
    assert rows["k1.wav"].split_group != rows["k2.flac"].split_group
    assert rows["k2.flac"].path.endswith(".flac") and rows["tom_hard.aiff"].path.endswith(".aiff")
