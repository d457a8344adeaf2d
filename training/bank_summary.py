"""Text about a bank from its manifest: a summary for the terminal, a Markdown table of kits."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from dkvae_live.labels import STYLES

from .bank_manifest import ManifestRow, bank_rows, class_names_of
from .bank_splits import SPLITS


def kits_markdown(bank_dir: str | Path) -> str:
    """A Markdown table of a bank's kits: package, licence, style, sounds per split and class.
    docs/banks.md and a model card's licence section are written from it."""
    rows = bank_rows(Path(bank_dir))
    by_kit: dict[str, list[ManifestRow]] = defaultdict(list)
    for r in rows:
        by_kit[r.kit or "-"].append(r)
    names = class_names_of((r.label for r in rows), None)
    names = tuple(n for n in names if any(r.label == n for r in rows))
    header = ["kit", "package", "licence", "style", "split", "sounds", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kit in sorted(by_kit, key=str.lower):
        members = by_kit[kit]
        labels = Counter(r.label for r in members)

        def common(column: str, members: list[ManifestRow] = members) -> str:
            values = Counter(getattr(r, column) or "-" for r in members)
            return ", ".join(v for v, _ in values.most_common())

        cells = [kit, common("package"), common("licence"), common("style"), common("split")]
        cells += [str(len(members)), *(str(labels[n]) for n in names)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def summarize(bank_dir: str | Path) -> str:
    """A text summary of a bank from its manifest: counts per class and split, durations,
    kits and licences."""
    bank = Path(bank_dir)
    rows = bank_rows(bank)
    labels = class_names_of((r.label for r in rows), None)
    labels = tuple(lbl for lbl in labels if any(r.label == lbl for r in rows))
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        table[r.label][r.split or "?"] += 1
    split_names = [*SPLITS] + (["?"] if any(not r.split for r in rows) else [])
    width = max([len("class"), *(len(lbl) for lbl in labels)])
    lines = [f"bank {bank}: {len(rows)} sounds, {len({r.kit for r in rows})} kits"]
    header = f"{'class':<{width}} " + " ".join(f"{s:>10}" for s in split_names)
    header += f" {'total':>7} {'median s':>9} {'max s':>7}"
    lines.append(header)
    for lbl in labels:
        durations = [r.duration_s for r in rows if r.label == lbl and r.duration_s > 0]
        med = f"{np.median(durations):9.2f}" if durations else f"{'-':>9}"
        top = f"{max(durations):7.2f}" if durations else f"{'-':>7}"
        counts = " ".join(f"{table[lbl][s]:>10}" for s in split_names)
        lines.append(f"{lbl:<{width}} {counts} {sum(table[lbl].values()):>7} {med} {top}")
    totals = Counter(r.split or "?" for r in rows)
    lines.append(
        f"{'all':<{width}} "
        + " ".join(f"{totals[s]:>10}" for s in split_names)
        + f" {len(rows):>7}"
    )
    styles = [*STYLES, *sorted({r.style or "?" for r in rows} - set(STYLES))]
    by_style = Counter((r.label, r.style or "?") for r in rows)
    lines.append("")
    lines.append(f"{'class':<{width}} " + " ".join(f"{s:>10}" for s in styles) + "  electronic %")
    for name in [*labels, "all"]:
        per_style = [
            sum(by_style[(x, s)] for x in labels) if name == "all" else by_style[(name, s)]
            for s in styles
        ]
        share = 100.0 * per_style[styles.index("electronic")] / max(1, sum(per_style))
        lines.append(
            f"{name:<{width}} " + " ".join(f"{c:>10}" for c in per_style) + f"  {share:11.1f}"
        )
    kit_splits: dict[str, set[str]] = defaultdict(set)
    kit_styles: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        kit_splits[r.kit or "-"].add(r.split or "?")
        kit_styles[r.kit or "-"][r.style or "?"] += 1
    for split in SPLITS:
        only = sorted(k for k, sides in kit_splits.items() if sides == {split})
        kits_by_style = Counter(kit_styles[k].most_common(1)[0][0] for k in only)
        lines.append(
            f"kits only in {split}: {len(only)} ("
            + ", ".join(f"{n} {st}" for st, n in sorted(kits_by_style.items()))
            + ")"
        )
    licences = Counter(r.licence or "unknown" for r in rows)
    lines.append("licences: " + ", ".join(f"{k} ({v})" for k, v in licences.most_common()))
    kits = Counter(r.kit or "-" for r in rows)
    lines.append("kits: " + ", ".join(f"{k} ({v})" for k, v in sorted(kits.items())))
    return "\n".join(lines)
