"""A training run's resume state in one small file, to carry a run to another machine.

A run folder's checkpoint (float32 weights and the optimizer's moments) is several times the
20 MB that the repository takes for a run that must go on in a later session. The resume file
keeps what going on needs and can be small: the last finished epoch's weights in float16, the
config, ``run.json``, the state and the history. It leaves out the optimizer's moments: the run
goes on with a new optimizer, at the saved learning rate.

    dkvae-train runs/r5a --pack training/checkpoints/r5a.h5     # write it
    dkvae-train runs/r5a --unpack training/checkpoints/r5a.h5   # a run folder again, and on

The file is HDF5: the weights file's groups and datasets as they were, float32 datasets stored
as float16 (marked, to be read back as float32), the text files as attributes of its root.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .run_folder import (
    BEST_WEIGHTS,
    CHECKPOINT_DIR,
    CONFIG,
    HISTORY,
    LAST_WEIGHTS,
    RUN_INFO,
    STATE,
    read_state,
    write_json,
    written,
)

logger = logging.getLogger(__name__)

# what the repository takes for one run's resume file (the developers' brief)
COMMIT_LIMIT_BYTES = 20 * 1024 * 1024
_TEXTS = (CONFIG, RUN_INFO, STATE, HISTORY)
_STORED_AS = "dkvae.float32_as_float16"


def _copy(src: Any, dst: Any, *, pack: bool) -> None:
    """Groups, datasets and attributes of ``src`` into ``dst``: float32 to float16 (``pack``) or
    back. Packing leaves out the optimizers' state, which a Keras weights file holds too: a
    second moment under float16's range would come back as 0 and blow up its weight's step."""
    import h5py

    for key, value in src.attrs.items():
        if key != _STORED_AS:
            dst.attrs[key] = value
    for name, item in src.items():
        if pack and src.name == "/" and name.endswith("optimizer"):
            continue
        if isinstance(item, h5py.Group):
            _copy(item, dst.create_group(name), pack=pack)
            continue
        data = item[()]
        narrowed = pack and data.dtype == np.float32
        if not pack and item.attrs.get(_STORED_AS, False):
            data = data.astype(np.float32)
        if narrowed:
            data = data.astype(np.float16)
        options = {"compression": "gzip"} if pack and data.ndim > 0 else {}
        out = dst.create_dataset(name, data=data, **options)
        for key, value in item.attrs.items():
            if key != _STORED_AS:
                out.attrs[key] = value
        if narrowed:
            out.attrs[_STORED_AS] = True


def pack(run_dir: Path, path: Path) -> int:
    """Write ``run_dir``'s resume file to ``path``; returns its size in bytes."""
    import h5py

    run_dir, path = Path(run_dir), Path(path)
    for name in (LAST_WEIGHTS, *_TEXTS[:3]):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir} is not a run to pack: it has no {name}")

    def write(tmp: Path) -> None:
        with h5py.File(run_dir / LAST_WEIGHTS, "r") as src, h5py.File(tmp, "w") as dst:
            _copy(src, dst, pack=True)
            for name in _TEXTS:
                if (run_dir / name).exists():
                    dst.attrs[f"dkvae.{name}"] = (run_dir / name).read_text()

    path.parent.mkdir(parents=True, exist_ok=True)
    written(path, write)
    size = path.stat().st_size
    state = read_state(run_dir)
    logger.info("%s: %s at epoch %d, %.1f MB", path, run_dir, int(state["epoch"]), size / 2**20)
    if size > COMMIT_LIMIT_BYTES:
        limit = COMMIT_LIMIT_BYTES // 2**20
        logger.warning("%s is over the %d MB a committed resume file may take", path, limit)
    return size


def unpack(path: Path, run_dir: Path) -> None:
    """Make ``run_dir`` a run folder again from the resume file at ``path``: ``--resume`` goes on
    from its last finished epoch with a new optimizer. Its weights are also the run's best
    weights until a better epoch comes (the file keeps one set)."""
    import h5py

    path, run_dir = Path(path), Path(run_dir)
    if (run_dir / STATE).exists():
        raise FileExistsError(f"{run_dir} already holds a run; unpack into a new folder")
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "r") as src:
        texts = {n: src.attrs[f"dkvae.{n}"] for n in _TEXTS if f"dkvae.{n}" in src.attrs}
        if set(_TEXTS[:3]) - set(texts):
            raise ValueError(f"{path} is not a resume file (dkvae-train --pack writes one)")

        def write(tmp: Path) -> None:
            with h5py.File(tmp, "w") as dst:
                _copy(src, dst, pack=False)

        written(run_dir / LAST_WEIGHTS, write)
    weights = (run_dir / LAST_WEIGHTS).read_bytes()
    written(run_dir / BEST_WEIGHTS, lambda tmp: tmp.write_bytes(weights))
    for name in (CONFIG, HISTORY):
        if name in texts:
            (run_dir / name).write_text(str(texts[name]))
    info = json.loads(str(texts[RUN_INFO]))
    state = json.loads(str(texts[STATE]))
    info["unpacked_from"] = {"file": str(path.resolve()), "epoch": int(state["epoch"])}
    write_json(run_dir / RUN_INFO, info)
    write_json(run_dir / STATE, state)
    logger.info("unpacked %s into %s at epoch %d", path, run_dir, int(state["epoch"]))
