"""``dkvae-bank``: import drum kits into a bank, summarise a bank, build the default bank.

dkvae-bank import BANK SOURCE [SOURCE ...]   # Hydrogen kits, .sf2, DrumSynth, GUS patches, folders
dkvae-bank summary BANK
dkvae-bank kits BANK [--write-doc docs/banks.md]   # the kit table (Markdown)
dkvae-bank build-default BANK [--debs DIR]   # from Debian's drum kit packages
import and build-default take --licences CC0,MIT,... (or a group: permissive, compatible) to
import only sounds under those licences.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dkvae_live.labels import LabelRules, LabelRulesError, load_rules

from .bank_duplicates import cross_split_duplicates
from .bank_import import ImportReport, SoundSource, import_sources
from .bank_manifest import BankError
from .bank_summary import kits_markdown, summarize
from .default_splits import DEFAULT_BANK_SPLITS
from .licences import GROUPS, WEIGHTS_LICENCE, allowed, parse_licences

log = logging.getLogger("dkvae_training.bank_cli")

DRUMKITS = "usr/share/hydrogen/data/drumkits"
SF2_DIR = "usr/share/sounds/sf2"
LMMS_SAMPLES = "usr/share/lmms/samples"
SONIC_PI_SAMPLES = "usr/share/sonic-pi/samples"
FREEPATS_DRUMS = "usr/share/midi/freepats/Drum_000"
# `dkvae-bank kits --write-doc` replaces what lies between these lines (docs/banks.md).
DOC_BEGIN = "<!-- dkvae-bank kits: begin -->"
DOC_END = "<!-- dkvae-bank kits: end -->"

# Licences of the Hydrogen kits in Debian's hydrogen-drumkits, from its debian/copyright (the
# kits' own drumkit.xml often just says "GPL" or nothing).
HYDROGEN_DRUMKITS_LICENCES: dict[str, str] = {
    "ElectricEmpireKit": "GPL-2+",
    "HardElectro1": "GPL-2+",
    "VariBreaks": "GPL-2+",
    "Millo-Drums_v.1": "GPL-2",
    "Millo_MultiLayered2": "GPL-2",
    "Millo_MultiLayered3": "GPL-2",
    "ColomboAcousticDrumkit": "GPL-2+ with composition exception",
    "circAfrique v4": "CC-BY-SA-3.0",
    "BJA_Pacific": "CC-BY-SA-3.0-us",
    "rumpf_kit_z01_h2": "CC-BY-3.0",
    "Audiophob": "CC0",
}


# Sonic Pi's drum one-shots by file-name prefix: the kit each family makes and its style. Its
# other samples (loops, ambient, bass, guitar, vinyl, glitch, misc) are not drum one-shots.
# bd_ are dance-music kicks and sn_ their snares (several freesound authors); drum_ is one
# recorded kit (menegass); elec_ one set of electronic drums and blips (looppool).
SONIC_PI_KITS: dict[str, tuple[str, str]] = {
    "bd": ("Sonic Pi kicks", "electronic"),
    "sn": ("Sonic Pi snares", "electronic"),
    "elec": ("Sonic Pi electronic", "electronic"),
    "drum": ("Sonic Pi drum kit", "acoustic"),
    "tabla": ("Sonic Pi tabla", "acoustic"),
    "perc": ("Sonic Pi percussion", "acoustic"),
}
# Where the package's debian/copyright finds the samples (upstream's tree, not the installed one).
SONIC_PI_UPSTREAM = "etc/samples"


@dataclass(frozen=True)
class DebianSource:
    """A Debian package holding drum kits, and how to import what it unpacks to."""

    package: str
    # "hydrogen", "sf2", "lmms" (its drum one-shots and DrumSynth presets), "sonic-pi" or
    # "gus" (a folder of GUS patches, FreePats' drum set)
    kind: str
    path: str  # inside the unpacked package
    default_licence: str
    licences: dict[str, str] | None = None  # per kit folder name


DEFAULT_PACKAGES: tuple[DebianSource, ...] = (
    DebianSource("hydrogen-drumkits", "hydrogen", DRUMKITS, "GPL-2", HYDROGEN_DRUMKITS_LICENCES),
    DebianSource("hydrogen-data", "hydrogen", DRUMKITS, "GPL-2+"),
    DebianSource("avldrums.lv2-soundfont", "sf2", SF2_DIR, "CC-BY-SA-3.0"),
    DebianSource("fluid-soundfont-gm", "sf2", SF2_DIR, "MIT"),
    DebianSource("lmms-common", "lmms", LMMS_SAMPLES, "GPL-2+"),
    DebianSource("musescore-general-soundfont-lossless", "sf2", SF2_DIR, "MIT"),
    DebianSource("timgm6mb-soundfont", "sf2", SF2_DIR, "GPL-2"),
    DebianSource("csound-soundfont", "sf2", SF2_DIR, "LGPL-2.1+"),
    # One FM-synthesised GM drum kit (an OPL-3 chip's sounds); debian/copyright: CC-BY-SA-4.0.
    DebianSource("opl3-soundfont", "sf2", SF2_DIR, "CC-BY-SA-4.0"),
    # Per-file licences (mostly CC0, a few MIT) come from the package's debian/copyright.
    DebianSource("sonic-pi-samples", "sonic-pi", SONIC_PI_SAMPLES, "CC0"),
    # A recorded GM drum set as GUS patches; a few recordings are GFDL (see importers/gus.py).
    DebianSource("freepats", "gus", FREEPATS_DRUMS, "GPL-2+ with composition exception"),
)


class CliError(Exception):
    """A problem the user can fix; main() prints it and exits with status 2."""


# --------------------------------------------------------------------------------------------
# Sources


def sources_for(
    path: Path, kind: str, *, kit: str | None, licence: str | None, package: str = ""
) -> Iterator[SoundSource]:
    """The sounds of one import argument: a Hydrogen kit (or a folder of kits), an SF2 file
    (or a folder of them), a folder of DrumSynth presets (``.ds``, in sub-folders or not), or a
    folder of loose files. ``kind`` "auto" guesses which."""
    from .importers import folder, hydrogen, sf2

    if not path.exists():
        raise CliError(f"{path}: no such file or folder")
    if kind == "auto":
        if path.is_file() and path.suffix.lower() == ".sf2":
            kind = "sf2"
        elif path.is_dir() and hydrogen.find_kits(path):
            kind = "hydrogen"
        elif path.is_dir() and any(path.glob("*.sf2")):
            kind = "sf2"
        elif path.is_dir() and any(path.rglob("*.ds")):
            kind = "drumsynth"
        elif path.is_dir() and any(path.glob("*.pat")):
            kind = "gus"
        elif path.is_dir():
            kind = "folder"
        else:
            raise CliError(f"{path}: not a kit folder, an .sf2 file or a folder of samples")
    if kind == "hydrogen":
        for kit_dir in hydrogen.find_kits(path):
            try:
                yield from hydrogen.iter_kit(kit_dir, licence=licence, package=package)
            except hydrogen.HydrogenError as exc:
                log.warning("skip kit %s: %s", kit_dir, exc)
    elif kind == "sf2":
        files = [path] if path.is_file() else sorted(path.glob("*.sf2"))
        for file in files:
            try:
                yield from sf2.iter_sf2(file, kit=kit, licence=licence or "", package=package)
            except (OSError, sf2.Sf2Error) as exc:
                log.warning("skip soundfont %s: %s", file, exc)
    elif kind == "drumsynth":
        for src in _drumsynth_kits(path, licence or "", package):
            yield replace(src, kit=kit or src.kit)
    elif kind == "folder":
        yield from folder.iter_folder(path, kit=kit, licence=licence or "", package=package)
    elif kind == "gus":
        from .importers import gus

        yield from gus.iter_gus_folder(
            path, kit=kit or path.resolve().name, licence=licence or "", package=package
        )
    else:
        raise CliError(f"unknown kind {kind!r}")


def debian_sources(spec: DebianSource, root: Path) -> Iterator[SoundSource]:
    """The sounds of one unpacked Debian package, with the per-kit licences we know."""
    from .importers import hydrogen, sf2

    base = root / spec.path
    if spec.kind == "lmms":
        from .importers import folder

        # The one-shots are one kit; each DrumSynth folder (tr808, linn, misc_hats...) another.
        for src in folder.iter_folder(base / "drums", kit="LMMS samples", package=spec.package):
            yield replace(src, licence=spec.default_licence, split_group="")
        yield from _drumsynth_kits(base / "drumsynth", spec.default_licence, spec.package)
    elif spec.kind == "sonic-pi":
        by_file = copyright_licences(root / "usr/share/doc" / spec.package / "copyright")
        yield from _sonic_pi_kits(base, spec, by_file)
    elif spec.kind == "gus":
        from .importers import gus

        yield from gus.iter_gus_folder(
            base, kit="FreePats drums", licence=spec.default_licence, package=spec.package
        )
    elif spec.kind == "hydrogen":
        for kit_dir in hydrogen.find_kits(base):
            licences = spec.licences or {}
            licence = licences.get(kit_dir.name, spec.default_licence)
            try:
                yield from hydrogen.iter_kit(kit_dir, licence=licence, package=spec.package)
            except hydrogen.HydrogenError as exc:
                log.warning("skip kit %s: %s", kit_dir, exc)
    else:
        # Only real files: avldrums also links its SF2s from usr/lib/lv2.
        for file in sorted(p for p in base.glob("*.sf2") if not p.is_symlink()):
            try:
                yield from sf2.iter_sf2(file, licence=spec.default_licence, package=spec.package)
            except (OSError, sf2.Sf2Error) as exc:
                log.warning("skip soundfont %s: %s", file, exc)


def _drumsynth_kits(root: Path, licence: str, package: str) -> Iterator[SoundSource]:
    """DrumSynth presets, each folder its own kit and split group (:func:`kit_family` would
    merge tr808, tr909 and tr606 into one family)."""
    from .importers import drumsynth

    for src in drumsynth.iter_drumsynth(root, licence=licence, package=package):
        yield replace(src, split_group=src.split_group or src.kit.lower())


def _sonic_pi_kits(
    base: Path, spec: DebianSource, licences: list[tuple[list[str], str]]
) -> Iterator[SoundSource]:
    """Sonic Pi's drum one-shots (:data:`SONIC_PI_KITS`), one kit and split group per family."""
    from .importers import folder

    for src in folder.iter_folder(base, package=spec.package):
        family = src.file_name.split("_", 1)[0]
        if family not in SONIC_PI_KITS or Path(src.source).parent != base:
            continue
        kit, style = SONIC_PI_KITS[family]
        licence = licence_of(f"{SONIC_PI_UPSTREAM}/{src.file_name}", licences)
        yield replace(
            src,
            kit=kit,
            style=style,
            licence=licence or spec.default_licence,
            split_group=kit.lower(),
        )


def copyright_licences(path: Path) -> list[tuple[list[str], str]]:
    """The ``Files:`` patterns of a machine-readable debian/copyright and each paragraph's
    licence, in file order; [] when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out: list[tuple[list[str], str]] = []
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in paragraph.splitlines():
            if line[:1].isspace() and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Files" in fields and fields.get("License"):
            out.append((fields["Files"].split(), fields["License"].split()[0]))
    return out


def licence_of(upstream_path: str, licences: list[tuple[list[str], str]]) -> str:
    """The licence debian/copyright gives a file: its last paragraph whose pattern matches."""
    found = ""
    for patterns, licence in licences:
        if any(fnmatch.fnmatchcase(upstream_path, p) for p in patterns):
            found = licence
    return found


def fetch_package(package: str, debs: Path) -> Path:
    """Unpack a Debian package under ``debs/<package>`` (``apt-get download`` + ``dpkg-deb -x``)
    unless that was done before; return the unpacked root."""
    root = debs / package
    marker = root / ".unpacked"
    if marker.exists():
        return root
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        if shutil.which("apt-get") is None:
            raise CliError(f"{package}: no .deb in {debs} and no apt-get to download it")
        log.info("downloading %s", package)
        result = subprocess.run(
            ["apt-get", "download", package], cwd=debs, capture_output=True, text=True
        )
        found = sorted(debs.glob(f"{package}_*.deb"))
        if result.returncode != 0 or not found:
            raise CliError(f"apt-get download {package} failed: {result.stderr.strip()}")
    if shutil.which("dpkg-deb") is None:
        raise CliError(f"{package}: dpkg-deb is needed to unpack {found[-1].name}")
    log.info("unpacking %s", found[-1].name)
    root.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["dpkg-deb", "-x", str(found[-1]), str(root)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise CliError(f"dpkg-deb -x {found[-1]} failed: {result.stderr.strip()}")
    marker.write_text(found[-1].name + "\n", encoding="utf-8")
    return root


def installed_root(spec: DebianSource) -> Path | None:
    """``/`` when the package's files are installed on this machine, else None."""
    return Path("/") if (Path("/") / spec.path).is_dir() and _dpkg_has(spec.package) else None


def _dpkg_has(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return result.returncode == 0 and "install ok installed" in result.stdout


# --------------------------------------------------------------------------------------------
# Commands


def _rules(args: argparse.Namespace) -> LabelRules:
    if args.rules is None:
        return LabelRules()
    try:
        return load_rules(args.rules)
    except LabelRulesError as exc:
        raise CliError(str(exc)) from exc


def keep_licences(
    sources: Sequence[SoundSource], names: frozenset[str] | None
) -> list[SoundSource]:
    """The sources whose licence is one of ``names`` (all of them when None); prints what it
    leaves out, per licence."""
    if names is None:
        return list(sources)
    kept = [s for s in sources if allowed(s.licence, names)]
    dropped = Counter(s.licence or "unknown" for s in sources if not allowed(s.licence, names))
    if dropped:
        print(
            f"left out by --licences: {sum(dropped.values())} sounds ("
            + ", ".join(f"{k} {v}" for k, v in dropped.most_common())
            + ")"
        )
    return kept


def _licences(args: argparse.Namespace) -> frozenset[str] | None:
    if args.licences is None:
        return None
    try:
        return parse_licences(args.licences)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _run_import(
    bank: Path,
    sources: Sequence[SoundSource],
    rules: LabelRules,
    pinned: Mapping[str, str] | None = None,
) -> ImportReport:
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        return import_sources(
            bank, sources, rules=rules, progress=True, total=len(sources), pinned=pinned
        )


def _report(bank: Path, report: ImportReport, seconds: float) -> None:
    lines = [*report.lines(), f"took {seconds:.1f} s"]
    for line in lines:
        print(line)
    detail = [*lines, "", "no rule labels:", *report.unlabeled, "", "excluded by a rule:"]
    detail += report.excluded
    (bank / "last-import.txt").write_text("\n".join(detail) + "\n", encoding="utf-8")
    if report.unlabeled:
        print(f"the {len(report.unlabeled)} unlabeled sounds are listed in {bank}/last-import.txt")


def cmd_import(args: argparse.Namespace) -> int:
    rules = _rules(args)
    licences = _licences(args)
    sources: list[SoundSource] = []
    for path in args.sources:
        sources.extend(sources_for(Path(path), args.kind, kit=args.kit, licence=args.licence))
    sources = keep_licences(sources, licences)
    start = time.monotonic()
    report = _run_import(args.bank, sources, rules)
    _report(args.bank, report, time.monotonic() - start)
    print(summarize(args.bank))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    print(summarize(args.bank))
    return 0


def cmd_build_default(args: argparse.Namespace) -> int:
    rules = _rules(args)
    licences = _licences(args)
    start = time.monotonic()
    sources: list[SoundSource] = []
    for spec in DEFAULT_PACKAGES:
        root = None if args.no_installed else installed_root(spec)
        if root is None:
            root = fetch_package(spec.package, args.debs)
        found = list(debian_sources(spec, root))
        log.info("%s: %d sounds in %s", spec.package, len(found), root / spec.path)
        print(f"{spec.package}: {len(found)} candidate sounds")
        sources.extend(found)
    sources = keep_licences(sources, licences)
    fetched = time.monotonic()
    report = _run_import(args.bank, sources, rules, DEFAULT_BANK_SPLITS)
    done = time.monotonic()
    _report(args.bank, report, done - start)
    print(f"fetch/unpack {fetched - start:.1f} s, import {done - fetched:.1f} s")
    exact, near = cross_split_duplicates(args.bank)
    print(f"duplicates across splits: {exact} by content hash, {near} near-copies")
    print(summarize(args.bank))
    return 0 if exact == near == 0 else 1


def cmd_kits(args: argparse.Namespace) -> int:
    table = kits_markdown(args.bank)
    if args.write_doc is None:
        print(table, end="")
        return 0
    text = args.write_doc.read_text(encoding="utf-8")
    if DOC_BEGIN not in text or DOC_END not in text:
        raise CliError(f"{args.write_doc}: no {DOC_BEGIN} ... {DOC_END} section to replace")
    head, rest = text.split(DOC_BEGIN, 1)
    tail = rest.split(DOC_END, 1)[1]
    args.write_doc.write_text(f"{head}{DOC_BEGIN}\n{table}{DOC_END}{tail}", encoding="utf-8")
    print(f"wrote the kit table of {args.bank} into {args.write_doc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dkvae-bank", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    parser.add_argument("--rules", type=Path, help="labelling rules (TOML, see docs/banks.md)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="import kits, SoundFonts or sample folders into a bank")
    p.add_argument("bank", type=Path, help="bank folder (created if missing)")
    p.add_argument("sources", nargs="+", help="Hydrogen kit folder, .sf2 file or sample folder")
    p.add_argument(
        "--kind", choices=("auto", "hydrogen", "sf2", "drumsynth", "folder", "gus"), default="auto"
    )
    p.add_argument("--kit", help="kit name (default: from the kit, file or folder)")
    p.add_argument("--licence", help="licence to record for these sounds")
    _add_licences_option(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("summary", help="counts per class and split, durations, licences")
    p.add_argument("bank", type=Path)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("kits", help="every kit: package, licence, style, split and counts")
    p.add_argument("bank", type=Path)
    p.add_argument(
        "--write-doc",
        type=Path,
        metavar="MD",
        help=f"replace the table between {DOC_BEGIN} and {DOC_END} in this Markdown file",
    )
    p.set_defaults(func=cmd_kits)

    p = sub.add_parser(
        "build-default",
        help="build the default training bank from Debian's drum kit packages",
        description="Imports "
        + ", ".join(spec.package for spec in DEFAULT_PACKAGES)
        + ": from this machine if installed, else apt-get download + dpkg-deb -x into --debs "
        "(kept for the next run). Exits with 1 if a duplicate crosses a split.",
    )
    p.add_argument("bank", type=Path, help="bank folder (created if missing)")
    p.add_argument(
        "--debs",
        type=Path,
        default=Path.home() / ".cache" / "dkvae" / "debs",
        help="where .debs are downloaded and unpacked (default: %(default)s)",
    )
    p.add_argument(
        "--no-installed", action="store_true", help="download even if a package is installed"
    )
    _add_licences_option(p)
    p.set_defaults(func=cmd_build_default)
    return parser


def _add_licences_option(p: argparse.ArgumentParser) -> None:
    groups = "; ".join(f"{k}: {','.join(v)}" for k, v in GROUPS.items())
    p.add_argument(
        "--licences",
        metavar="LIST",
        help="import only sounds under these licences, comma-separated (a port such as "
        "CC-BY-SA-3.0-us counts as CC-BY-SA-3.0; a licence 'with' an exception as the licence; "
        f"unknown never), or a group ({groups}). 'compatible': what a model's weights "
        f"({WEIGHTS_LICENCE}) can carry",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (CliError, BankError) as exc:
        print(f"dkvae-bank: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dkvae-bank summary BANK | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
