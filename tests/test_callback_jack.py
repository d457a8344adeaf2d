"""The audio callback on a real JACK server: it never allocates, frees or locks, and every
thread of the daemon carries a name (ps -L, top -H) that the status lists."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from harness.live import Daemon

pytestmark = pytest.mark.jack

COUNTER_SOURCE = Path(__file__).with_name("alloc_counter.c")
# The rows of alloc_counter.c's table: a thread id, then one count per kind of call.
KINDS = ("allocs", "frees", "maps", "unmaps", "locks")
ROW = np.dtype([("tid", "i4"), ("pad", "i4"), ("count", "u8", len(KINDS))])
REPLACEMENTS = 200
RINGING_LATENT = [0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # z1 = 3: the sine rings 0.5 s


def build_counter(folder: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build tests/alloc_counter.c")
    library = folder / "alloc_counter.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(COUNTER_SOURCE), "-ldl"],
        check=True,
    )
    return library


def counts_by_thread(table: Path, pid: int) -> dict[str, dict[str, int]]:
    """{thread name: {kind: count}} of the threads alive now, summed over equal names; a
    thread that never made a counted call has a row of zeros."""
    rows = {int(row["tid"]): row["count"] for row in np.fromfile(table, dtype=ROW)}
    out: dict[str, dict[str, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:  # a thread that ended
            continue
        total = out.setdefault(name, dict.fromkeys(KINDS, 0))
        for kind, value in zip(KINDS, rows.get(int(task.name), [0] * len(KINDS)), strict=True):
            total[kind] += int(value)
    return out


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.parametrize("outputs", ["stereo", "per-class"])
def test_the_audio_thread_never_allocates_frees_or_locks_while_ringing_sounds_are_replaced(
    jack: None,
    sine_model: Path,
    gm_kit: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    outputs: str,
) -> None:
    library = build_counter(tmp_path)
    table = tmp_path / "counts"
    monkeypatch.setenv("LD_PRELOAD", str(library))
    monkeypatch.setenv("DKVAE_ALLOC_COUNTS", str(table))
    daemon = Daemon(sine_model, "--kit", str(gm_kit), "--outputs", outputs)
    monkeypatch.delenv("LD_PRELOAD")  # the daemon has it; this process and its tools do not
    try:
        daemon.wait_ready()
        osc = daemon.osc
        if outputs == "per-class":  # the kick's own pair is mixed too, the others are not
            for channel in ("1", "2"):
                subprocess.run(
                    ["jack_connect", f"{daemon.client_name}:kick_{channel}", "system:playback_1"],
                    check=True,
                    capture_output=True,
                )
        osc.send("/dkvae/pad/latent", 36, *RINGING_LATENT)
        time.sleep(0.5)
        before = counts_by_thread(table, daemon.proc.pid)
        assert "dkvae-audio" in before, before
        status = osc.status()
        played, freed = int(status["notes_played"]), int(status["sounds_freed"])
        ringing = 0
        for i in range(REPLACEMENTS):
            osc.send("/dkvae/trigger", 36, 127)
            time.sleep(0.01)
            # Another pitch each time: a new sound replaces the one the voices are playing.
            osc.send("/dkvae/pad/latent", 36, (i % 10) / 10, *RINGING_LATENT[1:])
            time.sleep(0.01)
            if i % 50 == 25:
                ringing = max(ringing, int(osc.status()["voices_active"]))
        wait_for(
            lambda: int(osc.status()["sounds_freed"]) - freed >= REPLACEMENTS // 4,
            10.0,
            f"replaced sounds were not freed: {osc.status()}",
        )
        after = counts_by_thread(table, daemon.proc.pid)
        status = osc.status()
    finally:
        daemon.stop()
    assert int(status["notes_played"]) - played == REPLACEMENTS
    assert ringing >= 2  # hits rang over each other while their sounds were replaced
    audio = {kind: after["dkvae-audio"][kind] - before["dkvae-audio"][kind] for kind in KINDS}
    assert audio == dict.fromkeys(KINDS, 0), audio
    # The counter counts: the replaced sounds were freed, by the daemon's other threads.
    others = sum(counts["frees"] for name, counts in after.items() if name != "dkvae-audio")
    assert others > 0


def test_every_thread_of_the_daemon_has_a_name_and_the_status_lists_them(
    daemon: Daemon,
) -> None:
    tasks = Path(f"/proc/{daemon.proc.pid}/task")
    names = sorted((task / "comm").read_text().strip() for task in tasks.iterdir())
    for wanted in (
        "dkvae-live",
        "dkvae-audio",
        "dkvae-osc",
        "dkvae-midi",
        "dkvae-render",
        "dkvae-sweep",
    ):
        assert wanted in names, names
    assert all(name.startswith("dkvae-") for name in names), names
    assert daemon.osc.status()["threads"].split() == names
    listed = subprocess.run(
        ["ps", "-L", "-o", "comm=", "-p", str(daemon.proc.pid)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(listed) == names
