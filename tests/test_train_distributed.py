"""Distributed training: mirrored in one process, multi-worker with two local worker processes."""

from __future__ import annotations

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


def test_mirrored_strategy_trains_and_writes_a_run_folder(tmp_path: Path) -> None:
    from dkvae_training.train import main

    run = tmp_path / "run"
    assert main([str(run), *TINY, "--strategy", "mirrored"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["strategy"] == "mirrored" and summary["epochs_done"] == 2
    assert (run / "best.weights.h5").exists()


@pytest.mark.slow
def test_two_worker_processes_train_in_sync(tmp_path: Path) -> None:
    workers = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
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
    assert summary["replicas"] == 2
    assert not (tmp_path / "w1" / "summary.json").exists()  # only the chief writes the run
