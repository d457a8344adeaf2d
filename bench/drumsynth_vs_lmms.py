"""Compare our DrumSynth renderer with LMMS's own engine, and time it on every preset.

Needs LMMS (``apt-get install --no-install-recommends lmms``: 1.2.2 on Debian 12) and the
presets of ``lmms-common`` (``usr/share/lmms/samples/drumsynth``). LMMS plays a ``.ds`` file as
a sample in its AudioFileProcessor; a one-note project is rendered headless with
``lmms render``. For every preset it prints:

- ``len60``: seconds from the onset until the sound stays 60 dB below its peak;
- ``centroid``: spectral centroid in Hz over that span;
- ``peak Hz``: the strongest frequency of the spectrum;
- ``mel dB``: mean absolute difference of the log-mel spectrograms (64 bands, 23 ms frames,
  floor -80 dB) after peak normalisation and onset alignment, ours vs LMMS;
- ``env r``: correlation of the two amplitude envelopes (5 ms RMS frames, in dB above -60);
- ``level``: peak, on the engine's 16-bit full scale.

Each column holds three renders: ours at 44.1 kHz (``render``'s default), ours with the engine
at 88.2 kHz keeping every second sample, and LMMS. ``lmms render`` (1.2.2) runs DrumSynth at its
processing rate, 88.2 kHz with its default 2x oversampling, and its AudioFileProcessor then
plays the 88.2 kHz buffer at 44.1 kHz by taking every second sample (linear interpolation at
whole positions). Times and pitches survive that, but DrumSynth's per-sample filters (noise
slope, resonant filter, cymbal band-pass) then act an octave higher: LMMS's render of a preset
with a positive noise slope is darker, and its filtered presets brighter, than DrumSynth at
44.1 kHz, the rate the presets were made at. The middle column shows that the difference is
that and nothing else. The spectrograms (``--png``) show the three side by side.

The noise is random, so two renders never agree sample by sample; the spectrogram and envelope
numbers are what to look at. ``--png`` writes the spectrograms side by side.

    .venv/bin/python bench/drumsynth_vs_lmms.py [--root DIR] [--png /tmp/ds.png] [--all-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import soundfile as sf
from dkvae_training.importers.drumsynth import read_preset, render
from scipy.signal import stft

RATE = 44100
DEFAULT_ROOT = "/usr/share/lmms/samples/drumsynth"
PRESETS = [
    "tr808/Kick.ds",  # v1.0 file, droop
    "tr808/Tom_mid.ds",
    "tr808/Cowbell.ds",
    "tr808/Hat_o.ds",  # distortion
    "tr909/Snare.ds",
    "tr909/Hat-c.ds",
    "misc_claps/clap.ds",
    "misc_hats/q_ride.ds",
    "misc_electro/" + "",  # first preset of the folder, filled in at run time
    "cr78/Tamb.ds",  # v1.0, noise bands
    "linn/linn_snr.ds",  # distortion
    "linn/linn_tom1.ds",  # tuning, stretch, distortion
    "misc/crusty_snare.ds",  # resonant filter
    "misc/cymbal.ds",  # 808-cymbal overtones
]

PROJECT = """<?xml version="1.0"?>
<!DOCTYPE lmms-project>
<lmms-project version="1.0" creator="LMMS" creatorversion="1.2.2" type="song">
  <head timesig_numerator="4" mastervol="100" timesig_denominator="4" bpm="120" masterpitch="0"/>
  <song>
    <trackcontainer type="song">
      <track muted="0" type="0" name="ds" solo="0">
        <instrumenttrack pan="0" fxch="0" pitchrange="1" pitch="0" basenote="57" vol="100">
          <instrument name="audiofileprocessor">
            <audiofileprocessor reversed="0" amp="100" looped="0" sframe="0" src={src}
             eframe="1" interp="1" stutter="0" lframe="0"/>
          </instrument>
        </instrumenttrack>
        <pattern muted="0" type="0" name="ds" pos="0" len="384" steps="16">
          <note pan="0" key="57" vol="100" pos="0" len="384"/>
        </pattern>
      </track>
    </trackcontainer>
  </song>
</lmms-project>
"""


def render_lmms(preset: Path, work: Path) -> np.ndarray:
    """LMMS's render of a preset, mono (LMMS writes the same sound on both channels)."""
    project, out = work / "p.mmp", work / "out.wav"
    project.write_text(PROJECT.format(src=quoteattr(str(preset))))
    out.unlink(missing_ok=True)
    cmd = ["lmms", "render", str(project), "-f", "wav", "-s", str(RATE), "-o", str(out)]
    if os.geteuid() == 0:
        cmd.insert(1, "--allowroot")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=120)
    audio, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == RATE
    return audio.mean(axis=1)


def onset(x: np.ndarray) -> int:
    """First sample within 40 dB of the peak (the bank's own onset rule)."""
    return int(np.argmax(np.abs(x) >= np.abs(x).max() * 0.01))


def length60(x: np.ndarray) -> float:
    above = np.flatnonzero(np.abs(x) >= np.abs(x).max() * 1e-3)
    return (above[-1] + 1 - onset(x)) / RATE


def aligned(x: np.ndarray) -> np.ndarray:
    x = x[onset(x) :]
    return x / np.abs(x).max()


def spectrum(x: np.ndarray) -> tuple[float, float]:
    """Spectral centroid and strongest frequency over the sound's -60 dB span."""
    x = aligned(x)
    x = x[: max(1024, int(length60(x) * RATE))]
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    return float((freqs * power).sum() / power.sum()), float(freqs[np.argmax(power)])


def mel_filters(n_fft: int, bands: int = 64) -> np.ndarray:
    def mel(f: np.ndarray) -> np.ndarray:
        return 2595 * np.log10(1 + f / 700)

    edges_mel = np.linspace(mel(np.array(30.0)), mel(np.array(RATE / 2)), bands + 2)
    edges = 700 * (10 ** (edges_mel / 2595) - 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / RATE)
    bank = np.zeros((bands, len(freqs)))
    for i in range(bands):
        lo, mid, hi = edges[i : i + 3]
        bank[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return bank


def log_mel(x: np.ndarray, frames: int) -> np.ndarray:
    n_fft = 1024
    x = np.pad(x, (0, max(0, frames * 512 + n_fft - len(x))))
    _, _, z = stft(x, RATE, nperseg=n_fft, noverlap=n_fft - 512, boundary=None, padded=False)
    mel = mel_filters(n_fft) @ (np.abs(z[:, :frames]) ** 2)
    return np.maximum(10 * np.log10(mel + 1e-12), -80.0)


def mel_distance(a: np.ndarray, b: np.ndarray) -> float:
    a, b = aligned(a), aligned(b)
    frames = max(1, int(max(length60(a), length60(b)) * RATE) // 512)
    ma, mb = log_mel(a, frames), log_mel(b, frames)
    top = max(ma.max(), mb.max())
    ma, mb = ma - top, mb - top  # one reference for both: levels already peak-normalised
    ma, mb = np.maximum(ma, -80), np.maximum(mb, -80)
    loud = (ma > -80) | (mb > -80)
    return float(np.abs(ma - mb)[loud].mean())


def envelope_db(x: np.ndarray, frames: int) -> np.ndarray:
    hop = RATE // 200
    x = np.pad(x, (0, max(0, frames * hop - len(x))))[: frames * hop]
    rms = np.sqrt((x.reshape(frames, hop) ** 2).mean(axis=1))
    return np.maximum(20 * np.log10(rms + 1e-12), -60.0)


def envelope_r(a: np.ndarray, b: np.ndarray) -> float:
    a, b = aligned(a), aligned(b)
    frames = max(2, int(max(length60(a), length60(b)) * 200))
    ea, eb = envelope_db(a, frames), envelope_db(b, frames)
    if ea.std() == 0 or eb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ea, eb)[0, 1])


def plot(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(rows[0][1])
    fig, axes = plt.subplots(len(rows), cols, figsize=(5 * cols, 2.1 * len(rows)), squeeze=False)
    for row, (name, renders) in enumerate(rows):
        frames = max(4, int(max(length60(aligned(x)) for _, x in renders) * RATE) // 512)
        for col, (who, x) in enumerate(renders):
            ax = axes[row, col]
            ax.imshow(
                log_mel(aligned(x), frames),
                origin="lower",
                aspect="auto",
                vmin=-80,
                vmax=0,
                extent=(0, frames * 512 / RATE, 0, 64),
            )
            ax.set_title(f"{name} ({who})", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def time_all(root: Path) -> None:
    files = sorted(root.glob("*/*.ds"))
    start = time.perf_counter()
    seconds = 0.0
    failed = []
    for path in files:
        try:
            audio = render(read_preset(path))
            if not np.all(np.isfinite(audio)) or not np.any(audio):
                failed.append(f"{path.relative_to(root)}: silent or not finite")
            seconds += len(audio) / RATE
        except ValueError as exc:
            failed.append(f"{path.relative_to(root)}: {exc}")
    took = time.perf_counter() - start
    print(
        f"\nrendered {len(files)} presets ({seconds:.0f} s of audio) in {took:.1f} s "
        f"({1000 * took / max(1, len(files)):.1f} ms each); {len(failed)} failed"
    )
    for line in failed:
        print("  FAIL", line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=DEFAULT_ROOT, help="the drumsynth preset folder")
    ap.add_argument("--png", default="", help="write spectrograms side by side here")
    ap.add_argument("--all-only", action="store_true", help="only time all presets")
    ap.add_argument("presets", nargs="*", help="folder/file.ds to compare (default: a set)")
    args = ap.parse_args()
    root = Path(args.root)
    if not args.all_only:
        if shutil.which("lmms") is None:
            sys.exit("needs lmms: apt-get install --no-install-recommends lmms")
        chosen = args.presets or list(PRESETS)
        for i, name in enumerate(chosen):
            if name.endswith("/"):
                chosen[i] = sorted(root.glob(name + "*.ds"))[0].relative_to(root).as_posix()
        print(
            "columns: ours at 44.1 kHz (the default: the rate the presets were made at) / ours "
            "with the engine at 88.2 kHz, every 2nd sample kept (what `lmms render` does, with "
            "its default 2x oversampling) / LMMS 1.2.2"
        )
        head = (
            f"{'preset':30} {'v':>1} {'len60 s':>17} {'centroid Hz':>17} {'peak Hz':>17} "
            f"{'mel dB':>11} {'env r':>11} {'level':>17}"
        )
        print(head)
        print("-" * len(head))
        pairs = []
        with tempfile.TemporaryDirectory() as tmp:
            for name in chosen:
                path = root / name
                preset = read_preset(path)
                ours = render(preset)
                like_lmms = render(preset, 88200, engine_rate=88200)[::2]
                theirs = render_lmms(path, Path(tmp))
                trio = (ours, like_lmms, theirs)
                spec = [spectrum(x) for x in trio]
                print(
                    f"{name[:30]:30} {preset.version:1} "
                    + "/".join(f"{length60(x):5.3f}" for x in trio)
                    + " "
                    + "/".join(f"{c:5.0f}" for c, _ in spec)
                    + " "
                    + "/".join(f"{p:5.0f}" for _, p in spec)
                    + f" {mel_distance(ours, theirs):5.2f}/{mel_distance(like_lmms, theirs):5.2f}"
                    + f" {envelope_r(ours, theirs):5.3f}/{envelope_r(like_lmms, theirs):5.3f}"
                    + " "
                    + "/".join(f"{np.abs(x).max():5.3f}" for x in trio)
                )
                pairs.append(
                    (name, [("ours", ours), ("ours at 88.2k", like_lmms), ("LMMS", theirs)])
                )
        if args.png:
            plot(pairs, args.png)
            print(f"spectrograms: {args.png}")
    time_all(root)


if __name__ == "__main__":
    main()
