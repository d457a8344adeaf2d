"""Hot model swap: xruns per swap against idle windows of the same length (issue 6).

Method: the daemon on a JACK dummy server of our own (48 kHz, --period frames) plays a kit of
24 pads. Then, --swaps times: an idle window of --window seconds, then a window of the same
length that starts with `/dkvae/model/load` (alternating between two models) and holds the
reply and the re-render of every pad. The daemon's xrun count is read at each window's edges
(one status query in each window, so both pay the same), and the windows alternate, so a busy
machine's noise falls on both alike. A swap window that shows more xruns than the idle windows
is the swap's cost.

    .venv/bin/python bench/swap.py [--swaps 20] [--model sine|default|PATH] [--period 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    PERIOD,
    bench_jack_server,
    conditions,
    two_model_folders,
    use_bench_server,
    write_json,
)

use_bench_server()

from harness.live import Daemon, LateClients  # noqa: E402
from harness.synth_models import CLASSES  # noqa: E402
from harness.xruns import compare_xruns  # noqa: E402

from dkvae_live.kit import Kit, save_kit  # noqa: E402
from dkvae_live.pads import default_pads  # noqa: E402


def two_models(root: Path, which: str) -> tuple[list[Path], list[str]]:
    """Two model folders to swap between, and the daemon arguments that fit them."""
    models = two_model_folders(root, which, second_hz=400.0)
    if which != "sine":
        return models, []
    kit = root / "kit.toml"
    save_kit(Kit("swap", default_pads(CLASSES, 8)), kit)
    return models, ["--kit", str(kit)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--model", default="sine", help="sine (test model), default, or a path")
    parser.add_argument("--period", type=int, default=PERIOD)
    parser.add_argument("--window", type=float, default=1.0, help="seconds per window")
    parser.add_argument("--json", type=Path, default=Path("bench/results/swap.json"))
    args = parser.parse_args()
    idle: list[int] = []
    swap: list[int] = []
    reply_ms: list[float] = []
    with bench_jack_server(args.period), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models, extra = two_models(root, args.model)
        daemon = Daemon(models[0], "--allow-dir", str(root), *extra)
        try:
            daemon.wait_ready()
            osc = daemon.osc
            time.sleep(2.0)  # let start-up settle
            late = LateClients()
            for i in range(args.swaps):
                x0 = osc.status()["xruns"]
                time.sleep(args.window)
                x1 = osc.status()["xruns"]
                sent = time.monotonic()
                osc.send("/dkvae/model/load", str(models[(i + 1) % 2]))
                osc.reply("/dkvae/model/loaded")
                reply_ms.append(1000 * (time.monotonic() - sent))
                time.sleep(max(0.0, args.window - (time.monotonic() - sent)))
                x2 = osc.status()["xruns"]
                idle.append(x1 - x0)
                swap.append(x2 - x1)
            alive = daemon.proc.poll() is None
            late_clients = late.counts(daemon.client_name)
        finally:
            daemon.stop()
    result: dict[str, Any] = {
        "conditions": conditions(period=args.period, model=args.model),
        "swaps": args.swaps,
        "window_s": args.window,
        "xruns_in_swap_windows": sum(swap),
        "xruns_in_idle_windows": sum(idle),
        "xruns_per_swap": round(sum(swap) / args.swaps, 2),
        "xruns_per_idle_window": round(sum(idle) / args.swaps, 2),
        "swap_windows_with_xruns": sum(1 for x in swap if x),
        "idle_windows_with_xruns": sum(1 for x in idle if x),
        "swap_against_idle": compare_xruns(
            [(x, args.window) for x in swap], [(x, args.window) for x in idle]
        ),
        "swap_reply_ms_median": round(sorted(reply_ms)[len(reply_ms) // 2], 1),
        "swap_reply_ms_max": round(max(reply_ms), 1),
        "late_clients": late_clients,  # whom JACK named late, over all the windows
        "per_swap": swap,
        "per_idle": idle,
        "daemon_alive": alive,
    }
    for key, value in result.items():
        if key != "conditions":
            print(f"{key:26} {value}")
    print(f"{'load average':26} {result['conditions']['load_average_1_5_15']}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
