"""The dkvae-bank command: import, summary, build-default, fetching Debian packages."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from dkvae_training.bank import SPLITS, load_split, read_manifest
from dkvae_training.bank_cli import DEFAULT_PACKAGES, DOC_BEGIN, DOC_END, fetch_package, main
from dkvae_training.licences import allowed, compatible_with_weights, parse_licences


def loose_kit(root: Path, seed: int = 0) -> Path:
    for i, name in enumerate(["Kicks/k1.wav", "Kicks/k2.wav", "Snares/s1.wav", "misc/ding.wav"]):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(seed + i).normal(size=4000) * np.exp(-np.arange(4000) / 400)
        sf.write(str(path), (0.3 * noise).astype(np.float32), 44100)
    return root


def test_import_then_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = tmp_path / "bank"
    assert main(["import", str(bank), str(loose_kit(tmp_path / "kit")), "--licence", "CC0"]) == 0
    out = capsys.readouterr().out
    assert "added 3 sounds: kick 2, snare 1" in out
    assert "1 that no rule labels" in out
    assert "kit: misc (ding.wav)" in (bank / "last-import.txt").read_text()
    assert main(["summary", str(bank)]) == 0
    out = capsys.readouterr().out
    assert "3 sounds, 1 kits" in out and "CC0 (3)" in out
    assert {r.licence for r in read_manifest(bank)} == {"CC0"}


def test_licences_filter_leaves_out_kits_under_other_licences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = tmp_path / "bank"
    kit, other = str(loose_kit(tmp_path / "kit")), str(loose_kit(tmp_path / "other", seed=10))
    gpl = ["import", str(bank), other, "--kit", "gpl", "--licence", "GPL-2+ with exception"]
    assert main([*gpl, "--licences", "compatible"]) == 0
    out = capsys.readouterr().out
    assert "left out by --licences: 4 sounds (GPL-2+ with exception 4)" in out
    assert not (bank / "manifest.csv").exists() or not read_manifest(bank)
    ported = ["import", str(bank), kit, "--kit", "sa", "--licence", "CC-BY-SA-3.0-us"]
    assert main([*ported, "--licences", "CC0, CC-BY-SA-3.0"]) == 0
    assert "added 3 sounds" in capsys.readouterr().out
    assert main([*gpl, "--licences", "GPL-2+"]) == 0  # a licence with an exception is the licence
    assert {r.kit for r in read_manifest(bank)} == {"sa", "gpl"}
    assert main([*gpl, "--licences", " , "]) == 2
    assert "no licence in" in capsys.readouterr().err


def test_licence_names_and_groups() -> None:
    assert parse_licences("permissive") < parse_licences("compatible")
    assert allowed("mit", parse_licences("MIT"))
    assert not allowed("CC-BY-SA-3.0", parse_licences("CC-BY-3.0"))  # no prefix matching
    assert not allowed("GPL-2+", parse_licences("GPL-2"))
    assert not allowed("", parse_licences("compatible"))
    assert compatible_with_weights("CC-BY-SA-3.0-us") and compatible_with_weights("CC0")
    assert not any(map(compatible_with_weights, ["GPL-2", "GPL-2+", "LGPL-2.1+", "GFDL-1.2+"]))


def test_import_with_custom_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\npattern = "misc"\nlabel = "perc"\n')
    bank = tmp_path / "bank"
    kit = loose_kit(tmp_path / "kit")
    assert main(["--rules", str(rules), "import", str(bank), str(kit)]) == 0
    assert "added 4 sounds" in capsys.readouterr().out


def test_errors_are_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(tmp_path / "bank"), str(tmp_path / "missing")]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert main(["summary", str(tmp_path / "nothing")]) == 2
    assert "no such bank folder" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_fetch_package_unpacks_a_local_deb_once(tmp_path: Path) -> None:
    pkg = tmp_path / "src"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: dkvae-fake\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: test\n"
    )
    (pkg / "usr" / "share").mkdir(parents=True)
    (pkg / "usr" / "share" / "hello.txt").write_text("hi")
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(
        ["dpkg-deb", "--build", str(pkg), str(debs / "dkvae-fake_1.0_all.deb")],
        check=True,
        capture_output=True,
    )
    root = fetch_package("dkvae-fake", debs)
    assert (root / "usr" / "share" / "hello.txt").read_text() == "hi"
    (debs / "dkvae-fake_1.0_all.deb").unlink()
    assert fetch_package("dkvae-fake", debs) == root  # unpacked before: no apt-get, no dpkg


def test_kits_table_is_written_into_a_markdown_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = tmp_path / "bank"
    assert main(["import", str(bank), str(loose_kit(tmp_path / "kit")), "--licence", "CC0"]) == 0
    doc = tmp_path / "banks.md"
    doc.write_text(f"# Banks\n\n{DOC_BEGIN}\nold table\n{DOC_END}\n\nmore text\n")
    capsys.readouterr()
    assert main(["kits", str(bank), "--write-doc", str(doc)]) == 0
    assert capsys.readouterr().out.startswith("wrote the kit table of ")
    text = doc.read_text()
    assert "old table" not in text and text.endswith(f"{DOC_END}\n\nmore text\n")
    assert "| kit | - | CC0 | acoustic | train | 3 | 2 | 1 |" in text
    assert main(["kits", str(bank)]) == 0  # without --write-doc: printed
    assert capsys.readouterr().out == text.split(DOC_BEGIN + "\n")[1].split(DOC_END)[0]
    doc.write_text("# no markers\n")
    assert main(["kits", str(bank), "--write-doc", str(doc)]) == 2
    assert "no <!-- dkvae-bank kits: begin --> ... " in capsys.readouterr().err


@pytest.mark.slow
def test_build_default_bank(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole default bank from its eleven Debian packages (about 790 MB of .debs)."""
    kits = os.environ.get("DKVAE_TEST_KITS")
    names = [spec.package for spec in DEFAULT_PACKAGES]
    have = kits and all(
        (Path(kits) / n / ".unpacked").exists() or list(Path(kits).glob(f"{n}_*.deb"))
        for n in names
    )
    if not have:
        pytest.skip(f"needs DKVAE_TEST_KITS holding the .debs of {', '.join(names)}")
    bank = tmp_path / "bank"
    assert main(["build-default", str(bank), "--debs", str(kits), "--no-installed"]) == 0
    out = capsys.readouterr().out
    assert "duplicates across splits: 0 by content hash, 0 near-copies" in out
    rows = read_manifest(bank)
    assert len(rows) >= 1800
    assert sum(r.style == "electronic" for r in rows) >= 0.3 * len(rows)
    labels = Counter(r.label for r in rows)
    assert set(labels) == {"kick", "snare", "hihat", "tom", "cymbal", "perc"}
    assert min(labels.values()) >= 150
    assert len({r.content_hash for r in rows}) == len(rows)
    sides = defaultdict(set)
    kit_sides = defaultdict(set)
    for r in rows:
        sides[r.split_group].add(r.split)
        kit_sides[(r.kit, r.style)].add(r.split)
    assert all(len(s) == 1 for s in sides.values())
    only_test = Counter(style for (_, style), s in kit_sides.items() if s == {"test"})
    assert only_test["acoustic"] >= 2 and only_test["electronic"] >= 2
    parts = [load_split(bank, s) for s in SPLITS]  # 1 s at 44.1 kHz: no new duplicates
    assert sum(len(p) for p in parts) == len(rows)
    assert all(len(set(p.labels.tolist())) == 6 for p in parts)
