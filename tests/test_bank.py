"""The bank: cleaning, deduplication, splits, the cache, skipping bad files (generated sounds)."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from dkvae_training import bank as bank_mod
from dkvae_training.bank import (
    CleanSettings,
    ManifestRow,
    SkipSound,
    SoundSource,
    assign_splits,
    clean,
    cross_split_duplicates,
    import_sources,
    kit_family,
    kits_markdown,
    load_bank,
    load_split,
    read_manifest,
    summarize,
    write_manifest,
)
from hypothesis import given, settings
from hypothesis import strategies as st

SR = 22050


def drum(seed: int, seconds: float = 0.3, rate: int = SR, decay: float = 20.0) -> np.ndarray:
    """A noisy decaying hit, different for every seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * rng.uniform(60, 400) * t)
    return (0.5 * (tone + 0.5 * rng.normal(size=t.size)) * np.exp(-decay * t)).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int = SR, **kw: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, **kw)
    return path


def folder_bank(root: Path, per_class: int = 10) -> Path:
    for c, label in enumerate(("kick", "snare", "hihat")):
        for i in range(per_class):
            write(root / label / f"{label}{i}.wav", drum(100 * c + i))
    return root


# ------------------------------------------------------------------------------------ cleaning


def test_clean_trims_leading_silence_and_keeps_the_gain() -> None:
    hit = drum(1)
    audio = np.concatenate([np.zeros(1000, np.float32), 0.25 * hit])
    out = clean(audio, SR, CleanSettings(sample_rate=SR, num_samples=SR))
    assert out.audio.shape == (SR,) and out.audio.dtype == np.float32
    assert np.max(np.abs(out.audio)) == pytest.approx(1.0)
    assert out.gain == pytest.approx(0.25 * np.max(np.abs(hit)), rel=1e-5)
    # the first kept sample is the onset, not one of the 1000 zeros
    assert abs(out.audio[0]) >= 10 ** (-40 / 20) - 1e-6
    np.testing.assert_allclose(out.audio[:100] * out.gain, 0.25 * hit[:100], atol=1e-6)


def test_clean_downmixes_stereo_and_resamples() -> None:
    left = drum(2, rate=48000)
    stereo = np.stack([left, -0.5 * left], axis=1)
    out = clean(stereo, 48000, CleanSettings(sample_rate=22050, num_samples=4096))
    assert out.audio.shape == (4096,)
    mono = clean(0.25 * left, 48000, CleanSettings(sample_rate=22050, num_samples=4096))
    np.testing.assert_allclose(out.audio, mono.audio, atol=1e-5)
    assert out.duration_s == pytest.approx(mono.duration_s)


def test_clean_fades_where_the_tail_is_cut() -> None:
    long_hit = drum(3, seconds=2.0, decay=1.0)
    out = clean(long_hit, SR, CleanSettings(sample_rate=SR, num_samples=SR // 2))
    assert out.audio[-1] == 0.0
    fade = round(0.010 * SR)
    assert np.max(np.abs(out.audio[-fade // 8 :])) < 0.2 * np.max(
        np.abs(out.audio[-2 * fade : -fade])
    )
    assert out.duration_s > 1.0  # the duration before the length cap is recorded


def test_clean_pads_short_sounds_with_zeros() -> None:
    out = clean(drum(4, seconds=0.05, decay=5), SR, CleanSettings(sample_rate=SR, num_samples=SR))
    assert np.all(out.audio[int(0.06 * SR) :] == 0.0)


@pytest.mark.parametrize(
    ("audio", "reason"),
    [
        (np.zeros(SR, np.float32), "silent"),
        (np.full(SR, 1e-6, np.float32), "silent"),
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.5, 0.5, 0.0, 0.0], np.float32), "too short"),
        (np.array([np.nan, 0.5] * 200, np.float32), "non-finite"),
    ],
)
def test_clean_rejects_unusable_sounds(audio: np.ndarray, reason: str) -> None:
    with pytest.raises(SkipSound, match=reason):
        clean(audio, SR, CleanSettings(sample_rate=SR, num_samples=SR))


# ------------------------------------------------------------------------- loading and skipping


def test_load_split_on_a_folder_bank_partitions_the_sounds(tmp_path: Path) -> None:
    bank = folder_bank(tmp_path / "bank")
    parts = {s: load_split(bank, s, sample_rate=SR, num_samples=4096) for s in bank_mod.SPLITS}
    everything = load_split(bank, "all", sample_rate=SR, num_samples=4096)
    assert len(everything) == 30
    assert everything.class_names[:3] == ("kick", "snare", "hihat")
    ids = [set(p.ids) for p in parts.values()]
    assert set().union(*ids) == set(everything.ids)
    assert sum(len(i) for i in ids) == 30  # disjoint
    for p in parts.values():
        assert p.audio.shape == (len(p), 4096) and p.audio.dtype == np.float32
        assert p.labels.dtype == np.int64 and p.gains.dtype == np.float32
        for sound_id, label in zip(p.ids, p.labels, strict=True):
            assert sound_id.split("/")[0] == p.class_names[label]
    assert len(parts["train"]) > len(parts["validation"]) > 0


def test_load_split_rejects_an_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(folder_bank(tmp_path / "bank", 2), "training")


def test_unreadable_silent_and_short_files_are_skipped_with_one_line_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bank = folder_bank(tmp_path / "bank", 4)
    (bank / "kick" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    write(bank / "snare" / "silent.flac", np.zeros(SR, np.float32))
    write(bank / "hihat" / "tick.wav", np.array([0.9, -0.9, 0.0], np.float32))
    caplog.set_level(logging.INFO, logger="dkvae_training.bank")
    arrays, _, report = load_bank(bank, sample_rate=SR, num_samples=2048)
    assert len(arrays) == 12
    assert report.skipped == {"unreadable": 1, "silent": 1, "too short": 1}
    skips = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skip ")]
    assert len(skips) == 3
    assert any("kick/broken.wav: unreadable" in m for m in skips)
    assert any("snare/silent.flac: silent" in m for m in skips)
    assert any("hihat/tick.wav: too short" in m for m in skips)


def test_exact_duplicates_of_processed_audio_are_dropped(tmp_path: Path) -> None:
    bank = folder_bank(tmp_path / "bank", 5)
    original, _ = sf.read(str(bank / "kick" / "kick0.wav"), dtype="float32")
    # The same sample data in other containers, one with leading silence: different bytes,
    # same processed audio.
    write(bank / "kick" / "copy.flac", original)
    padded = np.concatenate([np.zeros(500, np.float32), original])
    write(bank / "snare" / "padded_copy.wav", padded, subtype="FLOAT")
    # Not a duplicate: the same sound, but quieter tail cut differently.
    write(bank / "kick" / "other.wav", original[: len(original) // 2])
    arrays, _, report = load_bank(bank, sample_rate=SR, num_samples=SR)
    assert report.duplicates == 2
    assert len(arrays) == 16
    assert "kick/other" in arrays.ids
    copies = ("kick/kick0", "kick/copy", "snare/padded_copy")
    assert sum(c in arrays.ids for c in copies) == 1
    assert len({a.tobytes() for a in arrays.audio}) == len(arrays)


# ------------------------------------------------------------------------------------- cache


def test_cache_is_reused_when_nothing_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank = folder_bank(tmp_path / "bank", 3)
    first, _, report = load_bank(bank, sample_rate=SR, num_samples=2048)
    assert not report.cache_hit and report.cache_path.exists()

    def no_reading(path: object) -> None:
        raise AssertionError(f"read {path} although the cache is valid")

    monkeypatch.setattr(bank_mod, "read_audio", no_reading)
    again, _, report2 = load_bank(bank, sample_rate=SR, num_samples=2048)
    assert report2.cache_hit and report2.cache_path == report.cache_path
    np.testing.assert_array_equal(first.audio, again.audio)
    assert first.ids == again.ids and first.class_names == again.class_names


def test_cache_is_rebuilt_when_a_source_file_or_the_settings_change(tmp_path: Path) -> None:
    bank = folder_bank(tmp_path / "bank", 3)
    cache = tmp_path / "cache"
    _, _, r1 = load_bank(bank, sample_rate=SR, num_samples=2048, cache_dir=cache)
    target = bank / "snare" / "snare1.wav"
    write(target, drum(999))
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    arrays, _, r2 = load_bank(bank, sample_rate=SR, num_samples=2048, cache_dir=cache)
    assert not r2.cache_hit and r2.cache_path != r1.cache_path
    i = arrays.ids.index("snare/snare1")
    expected = clean(drum(999), SR, CleanSettings(sample_rate=SR, num_samples=2048)).audio
    np.testing.assert_allclose(arrays.audio[i], expected, atol=1e-4)
    _, _, r3 = load_bank(bank, sample_rate=44100, num_samples=2048, cache_dir=cache)
    assert not r3.cache_hit and r3.cache_path != r2.cache_path
    _, _, r4 = load_bank(bank, sample_rate=SR, num_samples=2048, cache_dir=cache)
    assert r4.cache_hit and r4.cache_path == r2.cache_path
    (bank / "kick" / "kick0.wav").unlink()
    arrays5, _, r5 = load_bank(bank, sample_rate=SR, num_samples=2048, cache_dir=cache)
    assert not r5.cache_hit and "kick/kick0" not in arrays5.ids


# ------------------------------------------------------------------------------------- splits


@st.composite
def manifest_rows(draw: st.DrawFn) -> list[ManifestRow]:
    n = draw(st.integers(1, 60))
    labels = draw(st.lists(st.sampled_from(["kick", "snare", "tom"]), min_size=n, max_size=n))
    groups = draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))
    return [
        ManifestRow(id=f"s{i}", path=f"{lbl}/s{i}.wav", label=lbl, split_group=f"g{g}")
        for i, (lbl, g) in enumerate(zip(labels, groups, strict=True))
    ]


@settings(max_examples=200, deadline=None)
@given(manifest_rows(), st.randoms(use_true_random=False))
def test_splits_never_cut_a_group_and_do_not_depend_on_row_order(
    rows: list[ManifestRow], rnd: object
) -> None:
    out = assign_splits(rows)
    sides: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in out:
        assert row.split in bank_mod.SPLITS
        sides[(row.label, row.split_group)].add(row.split)
    assert all(len(s) == 1 for s in sides.values())
    shuffled = list(rows)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    again = {r.id: r.split for r in assign_splits(shuffled)}
    assert again == {r.id: r.split for r in out}


def test_splits_follow_the_target_shares_when_groups_allow() -> None:
    rows = [
        ManifestRow(id=f"s{i}", path=f"kick/s{i}.wav", label="kick", split_group=f"g{i}")
        for i in range(100)
    ]
    counts = {s: 0 for s in bank_mod.SPLITS}
    for row in assign_splits(rows):
        counts[row.split] += 1
    assert counts == {"train": 80, "validation": 10, "test": 10}


def test_pinned_groups_keep_their_split_and_the_others_fill_in_around_them() -> None:
    rows = [
        ManifestRow(id=f"s{i}", path=f"kick/s{i}.wav", label="kick", split_group=f"g{i}")
        for i in range(100)
    ]
    free = {r.split_group: r.split for r in assign_splits(rows)}
    moved = next(g for g, split in free.items() if split == "train")
    pinned = {moved: "test", "a group with no sounds": "validation"}
    out = {r.split_group: r.split for r in assign_splits(rows, pinned=pinned)}
    assert out[moved] == "test"
    counts = {s: list(out.values()).count(s) for s in bank_mod.SPLITS}
    assert counts == {"train": 80, "validation": 10, "test": 10}  # one fewer other test group
    with pytest.raises(ValueError, match="pinned"):
        assign_splits(rows, pinned={moved: "holdout"})


def test_kit_family_unifies_releases_of_the_same_recordings() -> None:
    assert kit_family("The Black Pearl 1.0") == kit_family("Black_Pearl_4_LV2")
    assert kit_family("GMRockKit") == kit_family("The Black Pearl 1.0")
    assert kit_family("Millo_MultiLayered2") == kit_family("Millo-Drums_v.1")
    assert kit_family("Red_Zeppelin_4_LV2") != kit_family("Black_Pearl_4_LV2")


# ------------------------------------------------------------------------------------ imports


def source(kit: str, instrument: str, layer: int, audio: np.ndarray, **kw: object) -> SoundSource:
    loader = partial(lambda a: (a[:, None], 44100), audio)
    return SoundSource(kit=kit, instrument=instrument, layer=layer, source="gen", load=loader, **kw)


def test_import_labels_dedups_and_reports(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    kick = drum(1)
    sources = [
        source("KitA", "Kick", 0, kick, licence="CC0"),
        source("KitA", "Kick", 1, 0.5 * drum(2)),
        source("KitA", "Snare Rimshot", 0, drum(3)),
        source("KitB", "Bass Drum", 0, kick),  # the same recording in another kit
        source("KitB", "Whistle", 0, drum(4)),  # excluded by a rule
        source("KitB", "Thing 7", 0, drum(5)),  # no rule labels it
        source("KitB", "Snare", 0, np.zeros(SR, np.float32)),  # silent
        source("KitB", "Tom", 0, drum(6), file_name="t.wav"),
    ]
    report = import_sources(bank, sources)
    assert report.added == {"kick": 2, "snare": 1, "tom": 1}
    assert report.duplicates == 1
    assert report.excluded == ["KitB: Whistle (gen)"]
    assert report.unlabeled == ["KitB: Thing 7 (gen)"]
    assert report.skipped == {"silent": 1}
    rows = read_manifest(bank)
    assert [r.id for r in rows] == [
        "KitA__Kick__0",
        "KitA__Kick__1",
        "KitA__Snare_Rimshot__0",
        "KitB__Tom__0",
    ]
    first = rows[0]
    assert first.path == "kick/KitA__Kick__0.flac" and (bank / first.path).is_file()
    assert first.licence == "CC0" and first.split in bank_mod.SPLITS
    assert first.gain == pytest.approx(float(np.max(np.abs(kick))), rel=1e-4)
    assert first.duration_s > 0.05 and first.source_sample_rate == 44100 and first.channels == 1
    # Velocity layers of one kit's kicks share a split group, hence a split.
    assert rows[0].split_group == rows[1].split_group and rows[0].split == rows[1].split
    # Importing the same sounds again adds nothing.
    again = import_sources(bank, sources)
    assert sum(again.added.values()) == 0 and again.duplicates == 5
    assert len(read_manifest(bank)) == 4


def test_near_copies_are_merged_into_the_sound_they_copy(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    clap = drum(7)
    rng = np.random.default_rng(0)
    edited = (clap + 0.002 * rng.normal(size=clap.size)).astype(np.float32)
    quieter = (0.3 * clap + 0.001 * rng.normal(size=clap.size)).astype(np.float32)
    other = drum(8)
    report = import_sources(
        bank,
        [
            source("Gimme", "Hand Clap", 0, clap),
            source("Pearl", "Hand Clap", 0, edited),  # edited: a near-copy
            source("GM", "Hand Clap", 0, quieter),  # another gain: a near-copy
            source("GM", "Hand Clap", 1, other),  # another clap
        ],
    )
    assert report.near_duplicates == 2 and report.added == {"perc": 2}
    assert [r.kit for r in read_manifest(bank)] == ["Gimme", "GM"]
    assert "merged 2 near-copies" in "\n".join(report.lines())


def test_two_alike_hits_of_one_kit_stay_two_sounds(tmp_path: Path) -> None:
    hit = drum(9)
    # Another hit of the same drum: 97 % alike (cosine), not the first at another gain.
    other = drum(10)
    other -= hit * float(other @ hit) / float(hit @ hit)
    alike = 0.97 * hit / np.linalg.norm(hit) + 0.243 * other / np.linalg.norm(other)
    bank = tmp_path / "bank"
    report = import_sources(
        bank, [source("KitA", "Snare", 0, hit), source("KitA", "Snare", 1, 0.5 * alike)]
    )
    assert report.added == {"snare": 2} and report.near_duplicates == 0
    # The same pair across two kits is one recording, edited: merged.
    report = import_sources(
        tmp_path / "b2", [source("KitA", "Snare", 0, hit), source("KitB", "Snare", 0, alike)]
    )
    assert report.added == {"snare": 1} and report.near_duplicates == 1


def test_import_records_style_and_named_percussion(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    sources = [
        source("TR808EmulationKit", "Hand Clap", 0, drum(1)),
        source("The Black Pearl 1.0", "Cowbell", 0, drum(2)),
        source("FluidR3_GM Standard", "Kick", 0, drum(3)),
        source("My Kit", "Perc 7", 0, drum(4), gm_notes=(56,)),  # GM's cowbell note
        source(
            "My Kit", "Odd", 0, drum(5), file_name="odd.wav", style="electronic", gm_notes=(36,)
        ),
    ]
    import_sources(bank, sources)
    rows = {r.kit + "/" + r.instrument: r for r in read_manifest(bank)}
    assert rows["TR808EmulationKit/Hand Clap"].style == "electronic"
    assert rows["TR808EmulationKit/Hand Clap"].instrument_type == "clap"
    assert rows["The Black Pearl 1.0/Cowbell"].style == "acoustic"
    assert rows["The Black Pearl 1.0/Cowbell"].instrument_type == "cowbell"
    assert rows["FluidR3_GM Standard/Kick"].instrument_type == ""
    assert rows["My Kit/Perc 7"].instrument_type == "cowbell"
    assert rows["My Kit/Odd"].style == "electronic"  # the importer's word wins
    text = summarize(bank)
    perc = [line for line in text.splitlines() if line.startswith("perc ")][-1]  # by style
    assert perc.split()[1:] == ["2", "1", "33.3"]  # acoustic, electronic, electronic %


def _kit_rows(kits: dict[str, tuple[str, int]]) -> list[ManifestRow]:
    """Rows for kits named to their (style, n): n kicks, 2n snares, n // 2 + 1 hihats."""
    rows = []
    for kit, (style, size) in kits.items():
        for label, n in (("kick", size), ("snare", 2 * size), ("hihat", size // 2 + 1)):
            rows += [
                ManifestRow(
                    id=f"{kit}-{label}-{i}",
                    path=f"{label}/{kit}-{i}.wav",
                    label=label,
                    kit=kit,
                    split_group=kit_family(kit),
                    style=style,
                )
                for i in range(n)
            ]
    return rows


def test_splits_keep_whole_kits_and_give_the_test_split_kits_of_both_styles() -> None:
    kits = {f"Acoustic{chr(65 + i)}": ("acoustic", 4 + i) for i in range(10)}
    kits |= {f"Machine{chr(65 + i)}": ("electronic", 3 + 2 * i) for i in range(10)}
    rows = assign_splits(_kit_rows(kits))
    sides: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        sides[row.kit].add(row.split)
    assert all(len(s) == 1 for s in sides.values()), "a kit was cut across splits"
    for style in ("acoustic", "electronic"):
        for split in ("test", "validation"):
            assert any(sides[k] == {split} for k, (st_, _) in kits.items() if st_ == style)
    # Every class keeps roughly its share in every split.
    for label in ("kick", "snare", "hihat"):
        n = sum(1 for r in rows if r.label == label)
        test = sum(1 for r in rows if r.label == label and r.split == "test")
        assert 0.05 * n <= test <= 0.2 * n


def test_cross_split_duplicates_finds_copies_on_two_sides(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    import_sources(bank, [source("A", "Kick", 0, drum(1)), source("B", "Snare", 0, drum(2))])
    rows = read_manifest(bank)
    assert cross_split_duplicates(bank) == (0, 0)
    # A near-copy of A's kick and an exact copy of B's snare planted in the other splits.
    rng = np.random.default_rng(1)
    near = (drum(1) + 0.002 * rng.normal(size=drum(1).size)).astype(np.float32)
    write(bank / "kick" / "near.wav", near, rate=44100)
    sf.write(str(bank / "snare" / "copy.flac"), drum(2), 44100, subtype="PCM_24")
    other = {"train": "test", "validation": "test", "test": "train"}
    rows += [
        replace(rows[0], id="near", path="kick/near.wav", split=other[rows[0].split]),
        replace(rows[1], id="copy", path="snare/copy.flac", split=other[rows[1].split]),
    ]
    write_manifest(bank, rows)
    assert cross_split_duplicates(bank) == (1, 2)  # the exact copy is near as well


def test_kits_markdown_lists_every_kit(tmp_path: Path) -> None:
    rows = assign_splits(_kit_rows({"Kit A": ("acoustic", 2), "TR-8 B": ("electronic", 1)}))
    rows = [replace(r, package="pkg", licence="MIT") for r in rows]
    write_manifest(tmp_path, rows)
    lines = kits_markdown(tmp_path).splitlines()
    assert lines[0] == "| kit | package | licence | style | split | sounds | kick | snare | hihat |"
    assert lines[2].startswith("| Kit A | pkg | MIT | acoustic | ") and lines[2].endswith(
        " | 8 | 2 | 4 | 2 |"
    )
    assert lines[3].startswith("| TR-8 B | pkg | MIT | electronic | ")
    assert len(lines) == 4


def test_manifest_round_trip_and_summary(tmp_path: Path) -> None:
    rows = [
        ManifestRow(
            id="k1",
            path="kick/k1.wav",
            label="kick",
            kit="K",
            split="train",
            gain=0.5,
            duration_s=0.25,
            licence="MIT",
        ),
        ManifestRow(id="s1", path="snare/s1.wav", label="snare", kit="K", split="test"),
    ]
    write_manifest(tmp_path, rows)
    assert read_manifest(tmp_path) == rows
    text = summarize(tmp_path)
    assert "2 sounds, 1 kits" in text
    assert "MIT (1)" in text and "unknown (1)" in text
    kick_line = next(line for line in text.splitlines() if line.startswith("kick"))
    assert kick_line.split()[1:5] == ["1", "0", "0", "1"]


def test_manifest_without_required_columns_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("id,label\nx,kick\n")
    with pytest.raises(bank_mod.BankError, match="missing columns"):
        read_manifest(tmp_path)
