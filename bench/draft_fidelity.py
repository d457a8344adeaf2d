"""How near a model's drafts come to the sounds it keeps: its draft decoder's (draft.onnx,
dkvae-draft) against its own decoder's drafts (issue 21).

For LATENTS latents per class, drawn where the daemon plays (dkvae_training.draft.draw_latents,
a seed the draft never trained on), three renders: the sound kept (the decoder, its phase
refined), the decoder's own draft (its phase unrefined) and the draft decoder's draft. Printed per
class: issue 18's mel distance (dB, training/yardstick.py) of each draft from the sound kept,
median and 90th percentile, and the waveform similarity bench/latent_e2e.py judges hits by, and
the render time of each draft on one core. `--png F` draws one latent per class, the three
spectrograms side by side, to look at.

    .venv/bin/python bench/draft_fidelity.py [MODEL_DIR] [--latents 40] [--png F] [--json F]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the daemon; before numpy loads

import numpy as np
from common import DEFAULT_MODEL_DIR, RESULTS, conditions, similarity, stats, table, write_json
from dkvae_training.draft import draw_latents
from dkvae_training.yardstick import mel_distance

from dkvae_live.model import Decoder
from dkvae_live.renderer import SILENCE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="?", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--latents", type=int, default=40, help="per class")
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=RESULTS / "draft_fidelity.json")
    args = parser.parse_args()
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    with_draft = Decoder(args.model)
    own = Decoder(args.model, use_draft=False)
    if with_draft.draft_path is None:
        raise SystemExit(f"{args.model} has no draft.onnx (dkvae-draft makes one)")
    info = own.info
    rng = np.random.default_rng([7, 7])  # dkvae-draft trains on [seed, 0, epoch], checks [seed, 1]
    z, classes = draw_latents(info, rng, args.latents * len(info.class_names))
    order = np.argsort(classes, kind="stable")
    z, classes = z[order], classes[order]
    kept = own.render(z, classes, floor=SILENCE)
    renders: dict[str, np.ndarray] = {}
    times: dict[str, list[float]] = {"decoder's draft": [], "draft decoder's": []}
    for name, decoder in (("decoder's draft", own), ("draft decoder's", with_draft)):
        out = []
        for row in range(len(z)):
            start = time.perf_counter()
            out.append(
                decoder.render(z[row : row + 1], classes[row : row + 1], True, None, SILENCE)
            )
            times[name].append((time.perf_counter() - start) * 1000)
        renders[name] = np.concatenate(out)
    rows, result = [], {"conditions": conditions(model=str(args.model)), "classes": {}}
    for c, class_name in enumerate(info.class_names):
        mine = classes == c
        entry: dict[str, Any] = {}
        cells: list[Any] = [class_name]
        for name, audio in renders.items():
            mel = mel_distance(kept[mine], audio[mine], info.sample_rate)
            sim = [similarity(a, b) for a, b in zip(kept[mine], audio[mine], strict=True)]
            entry[name] = {"mel_db": stats(mel), "similarity": stats(sim)}
            cells += [
                f"{np.median(mel):.2f} / {np.percentile(mel, 90):.2f}",
                f"{np.median(sim):.2f}",
            ]
        result["classes"][class_name] = entry
        rows.append(cells)
    heads = ["class"]
    for name in renders:
        heads += [f"{name}: mel dB med / p90", "similarity"]
    print(table(heads, rows))
    for name, values in times.items():
        s = stats(values)
        print(f"{name} render, one core: median {s['median']:.2f} ms, p99 {s['p99']:.2f} ms")
        result[f"{name} render ms"] = s
    if args.png:
        draw(args.png, kept, renders, classes, info)
    write_json(args.json, result)
    return 0


def draw(
    path: Path, kept: np.ndarray, renders: dict[str, np.ndarray], classes: Any, info: Any
) -> None:
    """One latent per class: the sound kept and both drafts as log spectrograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = {"kept": kept, **renders}
    fig, axes = plt.subplots(len(info.class_names), 3, figsize=(11, 2.2 * len(info.class_names)))
    for c, class_name in enumerate(info.class_names):
        row = int(np.flatnonzero(classes == c)[0])
        for j, (name, audio) in enumerate(columns.items()):
            ax = axes[c, j]
            ax.specgram(audio[row] + 1e-9, NFFT=1024, Fs=info.sample_rate, noverlap=768, vmin=-140)
            ax.set_title(f"{class_name}: {name}", fontsize=8)
            ax.set_xlim(0, 0.6)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    raise SystemExit(main())
