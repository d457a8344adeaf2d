"""Import Hydrogen drum kits: a folder with ``drumkit.xml`` and the samples it names.

``drumkit.xml`` lists instruments by name; each has one or more velocity layers (``<layer>`` with
``<filename>``, ``<min>`` and ``<max>`` velocity), directly under ``<instrument>`` in old kits or
under ``<instrumentComponent>`` in kits saved by Hydrogen 0.9.7 and later. Every layer becomes
one sound; the layer number counts from the softest. Files the XML names but the kit lacks (the
Millo kits' ``emptySample.flac``) are reported and skipped by the bank, like any unreadable file.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..bank_cleaning import read_audio
from ..bank_import import SoundSource

__all__ = ["HydrogenError", "HydrogenKit", "find_kits", "iter_kit", "read_kit"]

log = logging.getLogger(__name__)


class HydrogenError(ValueError):
    """A ``drumkit.xml`` that cannot be parsed."""


@dataclass(frozen=True)
class HydrogenLayer:
    instrument: str
    filename: str
    velocity_min: float
    layer: int


@dataclass(frozen=True)
class HydrogenKit:
    folder: Path
    name: str
    licence: str
    layers: tuple[HydrogenLayer, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(elem: ET.Element, name: str) -> str:
    for child in elem:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


def read_kit(folder: str | Path) -> HydrogenKit:
    """Parse ``<folder>/drumkit.xml``."""
    folder = Path(folder)
    xml_path = folder / "drumkit.xml"
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise HydrogenError(f"{xml_path}: {exc}") from exc
    if _local(root.tag) != "drumkit_info":
        raise HydrogenError(f"{xml_path}: root element is <{_local(root.tag)}>, not <drumkit_info>")
    layers: list[HydrogenLayer] = []
    for elem in root.iter():
        if _local(elem.tag) != "instrument":
            continue
        name = _child_text(elem, "name")
        found: list[tuple[float, str]] = []
        for sub in elem.iter():
            if _local(sub.tag) != "layer":
                continue
            filename = _child_text(sub, "filename")
            if not filename:
                continue
            try:
                vmin = float(_child_text(sub, "min") or 0.0)
            except ValueError:
                vmin = 0.0
            found.append((vmin, filename))
        # Old kits (format of Hydrogen < 0.9.4) give one <filename> right under <instrument>.
        direct = _child_text(elem, "filename")
        if direct and not found:
            found.append((0.0, direct))
        found.sort()
        layers.extend(
            HydrogenLayer(name, filename, vmin, i) for i, (vmin, filename) in enumerate(found)
        )
    return HydrogenKit(
        folder=folder,
        name=_child_text(root, "name") or folder.name,
        licence=_child_text(root, "license"),
        layers=tuple(layers),
    )


def find_kits(root: str | Path) -> list[Path]:
    """Folders under ``root`` (or ``root`` itself) that hold a ``drumkit.xml``, sorted."""
    root = Path(root)
    return sorted(p.parent for p in root.rglob("drumkit.xml"))


def iter_kit(
    folder: str | Path,
    *,
    licence: str | None = None,
    package: str = "",
) -> Iterator[SoundSource]:
    """One :class:`SoundSource` per velocity layer of every instrument of the kit.

    ``licence`` overrides the kit's ``<license>`` (which is often vague, e.g. "GPL"; a
    distribution's copyright file is more precise).
    """
    kit = read_kit(folder)
    for layer in kit.layers:
        path = kit.folder / layer.filename
        yield SoundSource(
            kit=kit.name,
            instrument=layer.instrument or Path(layer.filename).stem,
            layer=layer.layer,
            source=str(path),
            load=partial(read_audio, path),
            file_name=Path(layer.filename).name,
            licence=licence if licence is not None else kit.licence,
            package=package,
            copy_from=path,
        )
