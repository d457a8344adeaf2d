"""``dkvae-live map``: a picture of each class's sound region with the kit's pads on it.

Each class gets a panel: latents drawn from where its real sounds lie (``dkvae.class_latents``,
else the prior), projected on the class's two main directions (the plane of its two best-fitted
timbre axes, ``dkvae.axes``, else the two widest directions of its sounds), the timbre axes as
arrows, and the kit's pads of that class as labelled points. Two pads close together sound alike.
matplotlib is needed (``pip install dkvae-live[map]``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from .contract import AXIS_NAMES
from .kit import DEFAULT_KIT, KitError, load_kit
from .model import Decoder, ModelError, ModelInfo
from .pads import Pad

POINTS = 400  # latents drawn per class
LABEL_MERGE = 0.06  # pads closer than this part of a panel's width share a label


def plane(info: ModelInfo, class_name: str) -> np.ndarray:
    """[2, latent_size]: an orthonormal basis of the class's main plane."""
    axes = info.axes.get(class_name)
    if axes is not None:
        return axes.main_directions()
    where = info.class_latents.get(class_name)
    if where is not None:
        _, vectors = np.linalg.eigh(where.scale @ where.scale.T)
        return np.asarray(vectors[:, ::-1][:, :2].T)
    return np.eye(2, info.latent_size)


def draw_map(
    info: ModelInfo, pads: dict[int, Pad], out: Path, seed: int = 0
) -> dict[int, tuple[float, float]]:
    """Write the map to ``out`` (PNG); returns where each pad was drawn in its panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = [c for c in info.class_names if any(p.class_name == c for p in pads.values())]
    columns = min(3, len(classes))
    rows = math.ceil(len(classes) / columns)
    fig, panels = plt.subplots(rows, columns, figsize=(5 * columns, 4.5 * rows), squeeze=False)
    rng = np.random.default_rng(seed)
    placed: dict[int, tuple[float, float]] = {}
    for panel, name in zip(panels.flat, classes, strict=False):
        basis = plane(info, name)
        where = info.class_latents.get(name)
        if where is not None:
            cloud = np.array([where.sample(rng) for _ in range(POINTS)])
            centre = where.mean
        else:
            cloud = rng.standard_normal((POINTS, info.latent_size))
            centre = np.zeros(info.latent_size)
        xy = (cloud - centre) @ basis.T
        panel.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.25, color="tab:gray", label="class sounds")
        axes = info.axes.get(name)
        if axes is not None:
            for axis, direction in zip(AXIS_NAMES, axes.directions, strict=True):
                dx, dy = basis @ direction
                panel.annotate(
                    "",
                    xy=(dx, dy),
                    xytext=(0.0, 0.0),
                    arrowprops={"arrowstyle": "->", "color": "tab:blue"},
                )
                panel.text(dx, dy, f"+1 {axis}", color="tab:blue", fontsize=8)
                panel.update_datalim([(dx, dy)])  # the arrow and its label inside the panel
        # pads that sit (nearly) on one spot share one label, "35, 36", not two on top
        near = LABEL_MERGE * float(np.ptp(xy, axis=0).max() or 1.0)
        labels: list[tuple[float, float, list[str]]] = []
        for note, pad in sorted(pads.items()):
            if pad.class_name != name:
                continue
            x, y = (np.asarray(pad.latent) - centre) @ basis.T
            panel.scatter([x], [y], s=40, color="tab:red", zorder=3)
            placed[note] = (float(x), float(y))
            for lx, ly, notes in labels:
                if math.hypot(x - lx, y - ly) < near:
                    notes.append(str(note))
                    break
            else:
                labels.append((float(x), float(y), [str(note)]))
        for x, y, notes in labels:
            panel.annotate(", ".join(notes), (x, y), xytext=(4, 4), textcoords="offset points")
        panel.set_title(name)
        panel.set_xlabel("main direction 1")
        panel.set_ylabel("main direction 2")
    for panel in list(panels.flat)[len(classes) :]:
        panel.axis("off")
    fig.suptitle(f"{info.name}: where the pads sit among each class's sounds")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return placed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="model folder or decoder .onnx (default: shipped)")
    p.add_argument("--kit", type=Path, default=DEFAULT_KIT, help="kit file (default: shipped)")
    p.add_argument("-o", "--output", type=Path, default=Path("map.png"), help="PNG to write")


def main(args: argparse.Namespace) -> int:
    try:
        info = Decoder(args.model).info
        kit = load_kit(args.kit, info.class_names, info.latent_size)
    except (ModelError, KitError) as exc:
        print(f"dkvae-live map: {exc}")
        return 2
    try:
        placed = draw_map(info, kit.pads, args.output)
    except ImportError:
        print("dkvae-live map: needs matplotlib (pip install 'dkvae-live[map]')")
        return 2
    print(f"{args.output}: {len(placed)} pads of kit {kit.name!r} on model {info.name}")
    return 0
