"""What every benchmark shares: its own JACK server, the model to play, conditions, tables, JSON.

Benchmarks never use (or stop) the default JACK server, which other people's tests share: each
run starts a dummy-driver server of its own, named `dkvae-bench`, and points its JACK clients and
the daemon at it with JACK_DEFAULT_SERVER. Call `use_bench_server()` before anything imports
jack, rtmidi or sounddevice.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# As in the daemon (dkvae_live/cli.py): numpy's BLAS on one thread, set before numpy loads; the
# render worker's resampling is a matrix product, and a BLAS thread pool beside its real-time
# thread slows it down on 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from harness.live import jackd_command

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SERVER_NAME = "dkvae-bench"
# The benchmarks' JACK period: the daemon's own default (the tests run at
# harness.live.TEST_PERIOD, which is larger).
PERIOD = 64
DEFAULT_MODEL_DIR = ROOT / "dkvae_live" / "models" / "default"


def use_bench_server(name: str = SERVER_NAME) -> None:
    """Make this process and its children talk to our own JACK server, not the default one."""
    for module in ("jack", "rtmidi", "sounddevice"):
        if module in sys.modules:
            raise RuntimeError(f"{module} was imported before JACK_DEFAULT_SERVER was set")
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"  # never start a server by accident
    # SIGTERM (run_all's timeout) unwinds like Ctrl-C, so our server and daemon are stopped.
    signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _server_running(name: str) -> bool:
    result = subprocess.run(
        ["jack_lsp", "-s", name], capture_output=True, timeout=10, env={**os.environ}
    )
    return result.returncode == 0


@contextmanager
def bench_jack_server(
    period: int, rate: int = 48000, name: str = SERVER_NAME
) -> Iterator[dict[str, Any]]:
    """A JACK dummy server of our own for the duration; stopped by its PID afterwards."""
    if shutil.which("jackd") is None:
        raise RuntimeError("jackd is not installed (apt-get install jackd2)")
    if _server_running(name):
        raise RuntimeError(
            f"a JACK server named {name!r} already runs; a benchmark left it behind? "
            f"stop it (pgrep -af 'jackd -n {name}') and run again"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / f"jackd-{name}-{period}.log"
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        jackd_command(rate, period, name), stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    pid_file = RESULTS / f"jackd-{name}.pid"  # for run_all, should this process be killed
    pid_file.write_text(str(proc.pid))
    try:
        subprocess.run(["jack_wait", "-s", name, "-w", "-t", "10"], capture_output=True, timeout=15)
        if proc.poll() is not None or not _server_running(name):
            raise RuntimeError(f"jackd did not start; see {log_path}")
        yield {"server": name, "period": period, "rate": rate, "pid": proc.pid, "log": log_path}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        pid_file.unlink(missing_ok=True)
        time.sleep(1.2)  # JACK needs a moment before another server can start


def stop_leftover_server(name: str = SERVER_NAME) -> bool:
    """Stop the server a killed benchmark left behind, by the PID it wrote (only if that PID
    is still a `jackd -n NAME`). True if one was stopped."""
    pid_file = RESULTS / f"jackd-{name}.pid"
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return False
    pid_file.unlink(missing_ok=True)
    if not cmdline or not cmdline[0].endswith(b"jackd") or name.encode() not in cmdline:
        return False
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    time.sleep(1.2)
    return True


def shipped_models() -> list[Path]:
    """Model folders shipped in dkvae_live/models/ (each with a decoder.onnx)."""
    base = ROOT / "dkvae_live" / "models"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / "decoder.onnx").exists())


def choose_model(tmp: Path, requested: Path | None = None) -> tuple[Path, str]:
    """(model path, description): the one asked for, else the shipped default, else the sine
    test model from harness/synth_models.py (built in `tmp`)."""
    if requested is not None:
        return requested, f"{requested} (asked for)"
    if (DEFAULT_MODEL_DIR / "decoder.onnx").exists():
        return DEFAULT_MODEL_DIR, f"shipped default model ({DEFAULT_MODEL_DIR.relative_to(ROOT)})"
    return sine_model(tmp), "sine test model (harness/synth_models.py; no shipped model yet)"


def sine_model(tmp: Path) -> Path:
    from harness.synth_models import sine_decoder

    return sine_decoder(tmp / "sine" / "decoder.onnx").parent


def two_model_folders(root: Path, which: str, second_hz: float) -> list[Path]:
    """Two model folders in `root` to swap between: two sine test models (the second at
    `second_hz`) for "sine", else two copies of the shipped model ("default") or of the folder
    `which` names."""
    if which == "sine":
        from harness.synth_models import sine_decoder

        return [
            sine_decoder(root / "a" / "decoder.onnx").parent,
            sine_decoder(root / "b" / "decoder.onnx", base_hz=second_hz).parent,
        ]
    source = DEFAULT_MODEL_DIR if which == "default" else Path(which)
    return [Path(shutil.copytree(source, root / name)) for name in ("a", "b")]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def conditions(**extra: Any) -> dict[str, Any]:
    """The conditions of a run: when, where, what else was loading the machine."""
    load = os.getloadavg()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git_commit(),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}",
        "python": platform.python_version(),
        "load_average_1_5_15": [round(x, 2) for x in load],
        **extra,
    }


def stats(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """count, median, p99, max (and min) of a list of numbers; NaN when empty."""
    a = np.asarray(values, float)
    if a.size == 0:
        nan = float("nan")
        return {"count": 0, "median": nan, "p99": nan, "max": nan, "min": nan}
    return {
        "count": int(a.size),
        "median": float(np.median(a)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "min": float(a.min()),
    }


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain text table, columns as wide as their widest cell."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"(written to {path})")


class ProcessMeter:
    """CPU time and memory of one process, from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks  # utime + stime

    def memory_mib(self) -> dict[str, float]:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
        return {"rss_mib": out.get("VmRSS", 0.0), "peak_rss_mib": out.get("VmHWM", 0.0)}

    def cpu_percent_over(self, seconds: float) -> float:
        """Percent of one core used over the next `seconds` (sleeps)."""
        start_cpu, start = self.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        return 100.0 * (self.cpu_seconds() - start_cpu) / (time.monotonic() - start)


def udp_receive_errors() -> int:
    """The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets)."""
    lines = Path("/proc/net/snmp").read_text().splitlines()
    udp = [line.split() for line in lines if line.startswith("Udp:")]
    header, values = udp[0], udp[1]
    return int(values[header.index("RcvbufErrors")])


def py_spy(
    pid: int, seconds: float, out: Path, gil: bool = True, rate: int = 500
) -> subprocess.Popen[bytes]:
    """py-spy recording a process's threads for `seconds`, as collapsed stacks in `out`
    (`.venv/bin/pip install py-spy`). gil: only samples of the thread holding the GIL; else
    every thread that is running (not idle)."""
    exe = Path(sys.executable).with_name("py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(exe if exe.exists() else "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            str(rate),
            "--threads",
            *(["--gil"] if gil else []),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def spy_summary(
    path: Path, seconds: float, rate: int = 500, top: int = 12, what: str = "running"
) -> str:
    """From py-spy's collapsed stacks: share of wall time per thread, and the lines seen most."""
    threads: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for row in path.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        frames = stack.split(";")
        name = frames[0].split(":")[-1].strip() if ":" in frames[0] else "audio (JACK thread)"
        threads[name] += int(count)
        lines[f"{name}: {frames[-1]}"] += int(count)
    possible = seconds * rate
    out = [f"{what}: % of wall time, by thread (a lower bound: py-spy misses samples under load):"]
    out += [f"  {100 * n / possible:5.1f} %  {name}" for name, n in threads.most_common()]
    out.append("lines seen most (% of wall time):")
    out += [f"  {100 * n / possible:5.1f} %  {name}" for name, n in lines.most_common(top)]
    return "\n".join(out)


def similarity(a: np.ndarray, b: np.ndarray, max_lag: int = 32) -> float:
    """Largest normalised cross-correlation of a and b within +-max_lag samples."""
    n = min(a.shape[0], b.shape[0])
    a, b = a[:n], b[:n]
    norm = float(np.linalg.norm(a) * np.linalg.norm(b)) or 1.0
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lags = np.concatenate([corr[: max_lag + 1], corr[-max_lag:]])
    return float(lags.max() / norm)


def wait_precisely(start: float, seconds: float) -> float:
    """Wait until perf_counter() - start >= seconds (sleep, then spin the last ms)."""
    if seconds > 0.0015:
        time.sleep(seconds - 0.001)
    while time.perf_counter() - start < seconds:
        pass
    return time.perf_counter() - start
