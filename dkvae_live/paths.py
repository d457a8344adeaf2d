"""Paths that arrive over the network are confined to folders the user allowed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def confine(name: str, base: Path, allowed: Sequence[Path], suffix: str = "") -> Path:
    """Resolve `name` (relative to `base`, or absolute) and refuse it unless it lies inside one
    of the `allowed` folders after following every symlink. `suffix` is added when missing."""
    if not name or "\x00" in name:
        raise ValueError("empty or invalid path")
    path = Path(name).expanduser()
    if suffix and path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    resolved = (path if path.is_absolute() else base / path).resolve()
    for folder in allowed:
        if resolved.is_relative_to(folder.resolve()):
            return resolved
    folders = ", ".join(str(f) for f in allowed) or "none (start with --allow-dir DIR)"
    raise ValueError(f"{name}: outside the folders allowed for files: {folders}")
