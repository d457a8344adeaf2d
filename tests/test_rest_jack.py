"""A daemon you can forget is running: it sleeps at rest, serves its inputs from the start and
cleans up after a save that was cut short."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest
from harness.live import Daemon
from harness.osc_doc import documented_status_keys

from dkvae_live.kit import Kit, remove_stale_temporaries, save_kit
from dkvae_live.pads import default_pads

pytestmark = pytest.mark.jack

AUDIO_THREADS = ("dkvae-audio",)  # wakes every JACK period: that is the audio
MAX_WAKEUPS_PER_S = 3.0  # "a few times a second" at most, for every other thread
JACK_THREAD = "dkvae-jack"  # libjack's threads for the daemon's client


def wakeups(pid: int) -> dict[int, tuple[str, int]]:
    """Per thread id: its name and its voluntary context switches (times it slept, then woke)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            status = (task / "status").read_text().splitlines()
        except OSError:
            continue
        count = next(int(line.split()[1]) for line in status if line.startswith("voluntary_"))
        out[int(task.name)] = (name, count)
    return out


def test_at_rest_no_thread_but_the_audio_one_wakes_more_than_a_few_times_a_second(
    daemon: Daemon,
) -> None:
    time.sleep(1.0)  # the start-up's last renders and trims
    xruns = int(daemon.osc.status()["xruns"])
    time.sleep(0.2)  # the OSC thread is done with the status request
    seconds = 4.0
    before = wakeups(daemon.proc.pid)
    time.sleep(seconds)
    after = wakeups(daemon.proc.pid)
    # libjack's notification thread (one of the dkvae-jack ones) runs our xrun callback: on
    # this VM JACK misses cycles at rest too, and each one wakes it.
    xrun_rate = (int(daemon.osc.status()["xruns"]) - xruns) / seconds
    rates = {
        f"{name} ({tid})": (count - before[tid][1]) / seconds
        for tid, (name, count) in after.items()
        if tid in before and name not in AUDIO_THREADS
    }
    busy = {
        name: rate
        for name, rate in rates.items()
        if rate > MAX_WAKEUPS_PER_S + (xrun_rate if name.startswith(JACK_THREAD) else 0.0)
    }
    assert not busy, f"threads that wake often at rest: {busy}; all: {rates}"


def test_the_inputs_are_served_while_the_pads_are_still_rendering(
    jack: None, sine_model: Path, tmp_path: Path
) -> None:
    # Every pad varies per hit and moves timbre with velocity: 40 sounds a pad to render first.
    pads = {
        note: dataclasses.replace(
            pad, variation=0.3, timbre_direction=(0.0, 1.0) + (0.0,) * 6, timbre_amount=0.5
        )
        for note, pad in default_pads(
            ("kick", "snare", "hihat", "tom", "cymbal", "perc"), 8
        ).items()
    }
    kit_path = tmp_path / "slow.toml"
    save_kit(Kit("slow", pads), kit_path)
    daemon = Daemon(sine_model, "--kit", str(kit_path))
    try:
        first = None
        deadline = time.monotonic() + 60
        while first is None:
            assert time.monotonic() < deadline and daemon.proc.poll() is None, daemon.log()
            daemon.osc.send("/dkvae/pad/get", 36)
            try:
                first = daemon.osc.receive(timeout=0.02)
            except OSError:
                continue
        assert first.address == "/dkvae/pad", first.params
        # every pad may play its draft by now; their full renders (40 sounds a pad) take longer
        assert " full quality: " not in daemon.log(), "the first reply came only at the end"
        daemon.wait_ready(timeout=60)
        while " full quality: " not in daemon.log():
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.05)
        time.sleep(1.1)  # the status replies above count against the rate limit
        status = daemon.osc.status()
        assert int(status["pads_ready"]) == int(status["pads"]) == len(pads)
    finally:
        daemon.stop()


def test_a_started_daemon_removes_the_temporary_files_of_saves_cut_short(
    jack: None, sine_model: Path, gm_kit: Path, tmp_path: Path
) -> None:
    kit_path = tmp_path / "live.toml"
    kit_path.write_text(gm_kit.read_text())
    hour_ago = time.time() - 3600
    stale = [tmp_path / ".live.toml.k3j_x9a2.tmp", tmp_path / ".other.toml.AbCdEfGh.tmp"]
    kept = [
        tmp_path / "notes.tmp",  # not a name save_kit makes
        tmp_path / ".live.toml.k3j_x9a2.tmp.bak",
        tmp_path / ".live.txt.k3j_x9a2.tmp",
    ]
    for path in stale + kept:
        path.write_text("half a kit")
        os.utime(path, (hour_ago, hour_ago))
    daemon = Daemon(sine_model, "--kit", str(kit_path))
    try:
        daemon.wait_ready()
        assert not any(path.exists() for path in stale), daemon.log()
        assert all(path.exists() for path in kept)
        assert daemon.log().count("left by a save that was cut short") == len(stale)
    finally:
        daemon.stop()


def test_a_temporary_file_younger_than_the_start_is_left_alone(tmp_path: Path) -> None:
    # A save under way in another process, begun after this one started, is not ours to cut.
    started = time.time() - 10
    young = tmp_path / ".live.toml.AbCdEfGh.tmp"
    young.write_text("being written")
    assert remove_stale_temporaries(tmp_path, started) == []
    assert young.exists()
    assert remove_stale_temporaries(tmp_path / "missing", started) == []


def test_every_status_key_is_documented(daemon: Daemon) -> None:
    documented = documented_status_keys()
    # `dropped.<reason>`: the reason is what the document lists.
    keys = [key.removeprefix("dropped.") for key in daemon.osc.status()]
    missing = [key for key in keys if key not in documented]
    assert not missing, f"status keys not in docs/osc.md: {missing}"
