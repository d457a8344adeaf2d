"""Import a folder of loose drum samples (WAV, FLAC, AIFF), in any layout.

The instrument name of a file is the path of its folder below the root (``Kicks/Acoustic``), or
its file name when it lies in the root itself; the label rules try the instrument name first and
the file name second, so both ``Kicks/k01.wav`` and ``misc/808 kick.wav`` are kicks. Files of one
folder are numbered as layers in name order. The split group is the kit, the folder and the
file name without trailing velocity/layer words (``soft``, ``hard``, ``v3``, ``vel2``, ``rr1``,
``L``...), so that ``snare_soft.wav`` and ``snare_hard.wav`` land on the same side of a split.
Plain numbers are kept (``kick01``, ``kick02`` of a sample pack are different drums).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from dkvae_live.labels import folder_instrument

from ..bank_cleaning import read_audio
from ..bank_import import SoundSource
from ..bank_manifest import AUDIO_SUFFIXES
from ..bank_splits import kit_family

__all__ = ["iter_folder", "layer_stem"]

_LAYER_WORDS = re.compile(
    r"([\s_.-]+(v\d+|vel\d*|velocity\d*|layer\d*|rr\d*|softest|soft|medium|med|hardest|hard|loud"
    r"|quiet|pp|p|mp|mf|f|ff|l|r|left|right)(?![a-z]))+$",
    re.IGNORECASE,
)


def layer_stem(stem: str) -> str:
    """A file name without velocity/layer suffixes: ``Snare-Hard`` -> ``Snare``,
    ``tom_soft_v2`` -> ``tom``; ``kick01`` stays."""
    return _LAYER_WORDS.sub("", stem) or stem


def iter_folder(
    root: str | Path,
    *,
    kit: str | None = None,
    licence: str = "",
    package: str = "",
) -> Iterator[SoundSource]:
    """One :class:`SoundSource` per audio file under ``root`` (recursively, hidden folders
    skipped). ``kit`` defaults to the root folder's name."""
    root = Path(root)
    kit_name = kit or root.resolve().name
    by_folder: dict[Path, list[Path]] = defaultdict(list)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            by_folder[rel.parent].append(path)
    for folder, files in sorted(by_folder.items()):
        for i, path in enumerate(files):
            yield SoundSource(
                kit=kit_name,
                instrument=folder_instrument(path.relative_to(root)),
                layer=i,
                source=str(path),
                load=partial(read_audio, path),
                file_name=path.name,
                licence=licence,
                package=package,
                copy_from=path,
                split_group=f"{kit_family(kit_name)}|{folder.as_posix()}|"
                f"{layer_stem(path.stem).lower()}",
            )
