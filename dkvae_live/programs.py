"""Which kit a MIDI program change selects: the kits of the kit folder and their programs.

Program change N (0..127, the number in the message; many devices show it as N + 1) plays the
kit whose file says `program = N`, or else the N-th kit of the folder in file name order,
counted from 0. Listing reads each file's `name` and `program` only; a file that does not
parse is listed under its file name, and refused, with the reason, when it is loaded.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .kit import KIT_SUFFIX, check_program

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KitEntry:
    path: Path
    name: str
    declared: int | None  # the file's own `program`, if it says one
    program: int | None  # the program that selects it: its own, else its place if free


def _peek(path: Path) -> tuple[str, int | None]:
    """A kit file's name and program, without checking the rest."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        name = data.get("name", path.stem)
        return (name if isinstance(name, str) else path.stem), check_program(data.get("program"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError):
        return path.stem, None


def kit_folder(folder: Path) -> list[KitEntry]:
    """The kits in `folder`, in file name order, each with the program that selects it (None
    when its place is another kit's `program` and it says none itself, or a kit before it
    says the same)."""
    try:
        paths = sorted(
            p for p in folder.iterdir() if p.suffix == KIT_SUFFIX and not p.name.startswith(".")
        )
    except OSError:
        return []
    peeked = [(path, *_peek(path)) for path in paths]
    claimed: dict[int, Path] = {}
    for path, _, declared in peeked:
        if declared is not None:
            if declared in claimed:
                log.warning(
                    "%s and %s both say program = %d: the first one plays",
                    claimed[declared].name,
                    path.name,
                    declared,
                )
            claimed.setdefault(declared, path)
    entries = []
    for place, (path, name, declared) in enumerate(peeked):
        if declared is not None:
            program = declared if claimed[declared] == path else None
        else:
            program = place if place <= 127 and place not in claimed else None
        entries.append(KitEntry(path, name, declared, program))
    return entries


def kit_for_program(folder: Path, program: int) -> Path | None:
    """The kit file that program change `program` selects, or None."""
    entries = kit_folder(folder)
    for entry in entries:
        if entry.declared == program and entry.program == program:
            return entry.path
    return entries[program].path if program < len(entries) else None
