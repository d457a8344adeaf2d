"""Distributed training: mirrored in one process, multi-worker with two local worker processes."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.train

TINY = [
    "--set",
    "sample_rate=8000",
    "--set",
    "num_samples=4096",
    "--set",
    "batch_size=4",
    "--set",
    "channels=[32,16,16,16]",
    "--set",
    "enc_channels=[16,16,16,16]",
    "--set",
    "enc_n_fft=256",
    "--set",
    "enc_hop_length=64",
    "--set",
    "stft_sizes=[512,128]",
    "--set",
    "epochs=2",
    "--synthetic",
    "2",
    "--verbose",
    "2",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def history(run: Path) -> tuple[list[str], list[str]]:
    """(columns, epochs) of a run folder's history.csv."""
    with (run / "history.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [row[0] for row in rows[1:]]


def test_mirrored_strategy_writes_the_run_folder_a_normal_run_writes(tmp_path: Path) -> None:
    from dkvae_training.train import main

    run, normal = tmp_path / "run", tmp_path / "normal"
    assert main([str(run), *TINY, "--strategy", "mirrored"]) == 0
    assert main([str(normal), *TINY]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["strategy"] == "mirrored" and summary["epochs_done"] == 2
    assert 1 <= summary["best_epoch"] <= 2
    assert set(json.loads((normal / "summary.json").read_text())) <= set(summary)
    assert history(run) == history(normal)  # one header, the same columns, epochs from 0
    assert history(run)[1] == ["0", "1"]
    for name in ("best.weights.h5", "config.json", "run.json", "checkpoints/state.json"):
        assert (run / name).exists(), name
    assert any((run / "tensorboard").rglob("*tfevents*"))
    # the run goes on without the strategy, from the state the distributed loop saved
    assert main([str(run), "--resume", "--epochs", "3", "--verbose", "0"]) == 0
    assert history(run)[1] == ["0", "1", "2"]


@pytest.mark.slow
def test_two_worker_processes_train_in_sync(tmp_path: Path) -> None:
    workers = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    scratch = tmp_path / "tmp"  # the workers' temporary folder: empty again when they end
    scratch.mkdir()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(scratch)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dkvae_training.train",
                str(tmp_path / f"w{i}"),
                *TINY,
                "--strategy",
                "multiworker",
                "--workers",
                workers,
                "--worker-index",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in (0, 1)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    losses = []
    for out in outputs:
        assert "2 replicas in sync" in out
        losses.append(re.findall(r"epoch \d+: loss ([0-9.]+)", out))
    assert len(losses[0]) == 2 and losses[0] == losses[1]  # the same model on both workers
    summary = json.loads((tmp_path / "w0" / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["best_epoch"] >= 1
    columns, epochs = history(tmp_path / "w0")
    assert columns[:2] == ["epoch", "beta"] and "val_loss" in columns and epochs == ["0", "1"]
    assert any((tmp_path / "w0" / "tensorboard").rglob("*tfevents*"))
    assert not (tmp_path / "w1" / "summary.json").exists()  # only the chief writes the run
    assert sorted(p.name for p in (tmp_path / "w1").iterdir()) == ["run.json", "train.log"]
    assert not list(scratch.glob("dkvae-worker-*"))
