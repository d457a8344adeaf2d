"""The DrumSynth (.ds) renderer and importer, on small presets written here and on LMMS's own.

LMMS's 764 presets come from the Debian package ``lmms-common`` in ``$DKVAE_TEST_KITS`` (as
``apt-get download lmms-common`` leaves it, unpacked here on first use); the tests that need it
skip, saying so, when it is not there. The noise is random, so the tests measure spectra and
envelopes, never samples.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from dkvae_training.bank import SoundSource
from dkvae_training.bank_cli import fetch_package
from dkvae_training.importers.drumsynth import (
    DrumSynthError,
    Preset,
    iter_drumsynth,
    read_preset,
    render,
)
from scipy.signal import freqz

RATE = 44100
DRUMSYNTH = Path("usr/share/lmms/samples/drumsynth")


@pytest.fixture(scope="module")
def presets() -> Path:
    """LMMS's DrumSynth preset folder from $DKVAE_TEST_KITS, or skip."""
    kits = os.environ.get("DKVAE_TEST_KITS")
    hint = (
        "needs Debian package lmms-common: set DKVAE_TEST_KITS to a folder holding it "
        "(cd $DKVAE_TEST_KITS && apt-get download lmms-common)"
    )
    if not kits:
        pytest.skip(hint)
    folder = Path(kits)
    if not (folder / "lmms-common" / ".unpacked").exists() and not list(
        folder.glob("lmms-common_*.deb")
    ):
        pytest.skip(hint)
    return fetch_package("lmms-common", folder) / DRUMSYNTH


# ------------------------------------------------------------------------------- measurements


def write_ds(folder: Path, name: str, body: str, version: str = "2.0") -> Path:
    path = folder / name
    path.write_text(f"[General]\r\nVersion=DrumSynth v{version}\r\n{body}", encoding="latin-1")
    return path


def end_60db(x: np.ndarray) -> int:
    """Samples until the sound stays 60 dB below its peak."""
    return int(np.flatnonzero(np.abs(x) >= np.abs(x).max() * 1e-3)[-1]) + 1


def peak_hz(x: np.ndarray) -> float:
    """Strongest frequency, refined by a parabola through the three top bins."""
    n = 1 << 18
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    k = int(np.argmax(spec[1:-1])) + 1
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-30)
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + shift) * RATE / n


def centroid(x: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    return float((np.fft.rfftfreq(len(x), 1 / RATE) * power).sum() / power.sum())


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-30))


TONE = """[Tone]
On=1
Level=100
F1=440
F2=440
Droop=0
Phase=90
Envelope=0,100 8820,100 8821,0
"""


# ------------------------------------------------------------------------------------ parsing


def test_parse_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    bad_number = write_ds(tmp_path, "bad_number.ds", TONE.replace("F1=440", "F1=loud"))
    with pytest.raises(DrumSynthError, match=r"bad_number\.ds: \[Tone\] F1='loud'"):
        read_preset(bad_number)
    bad_env = write_ds(tmp_path, "bad_env.ds", TONE.replace("8820,100", "8820;100"))
    with pytest.raises(DrumSynthError, match=r"bad_env\.ds: \[Tone\] Envelope: .*'8820;100'"):
        read_preset(bad_env)
    not_ds = tmp_path / "not_ds.ds"
    not_ds.write_text("[General]\nVersion=SomethingElse 3\n")
    with pytest.raises(DrumSynthError, match=r"not_ds\.ds: \[General\] Version"):
        read_preset(not_ds)
    with pytest.raises(DrumSynthError, match=r"missing\.ds: cannot read"):
        read_preset(tmp_path / "missing.ds")


def test_missing_keys_take_drumsynths_defaults(tmp_path: Path) -> None:
    p = read_preset(write_ds(tmp_path, "Old_File.ds", "[Tone]\nOn=1\n", version="1.0"))
    assert p.name == "Old File" and p.version == 1
    assert (p.tone.on, p.tone.level, p.tone.f1, p.tone.f2, p.tone.phase) == (
        True,
        128,
        200.0,
        120.0,
        90.0,
    )
    assert p.tone.envelope.points == ((0.0, 0.0), (100.0, 0.0))
    assert (p.noise.on, p.noise.level, p.overtones.method, p.overtones.param) == (False, 0, 2, 50)
    assert (p.band1.f, p.band1.df, p.band2.level, p.general.stretch) == (1000.0, 50, 128, 100.0)
    assert not p.distortion.on and p.stretch == 1.0 and p.tune == 1.0


def test_keys_are_case_insensitive_and_int_keys_take_the_leading_integer(tmp_path: Path) -> None:
    body = TONE.replace("Level=100", "level=100.0").replace("On=1", "ON=1")
    p = read_preset(write_ds(tmp_path, "case.ds", body))
    assert p.tone.on and p.tone.level == 100


# ----------------------------------------------------------------------- synthetic components


def test_a_lone_tone_has_the_frequency_level_and_length_its_parameters_say(
    tmp_path: Path,
) -> None:
    x = render(read_preset(write_ds(tmp_path, "tone.ds", TONE)))
    assert x.dtype == np.float32 and x.ndim == 1
    assert peak_hz(x) == pytest.approx(440, abs=0.5)
    assert np.abs(x).max() == pytest.approx(100 * 100 / 32768, rel=0.01)  # Level squared
    assert end_60db(x) == pytest.approx(8821, abs=2)  # the envelope's last point


def test_tuning_shifts_pitch_by_semitones(tmp_path: Path) -> None:
    base = read_preset(write_ds(tmp_path, "tone.ds", TONE))
    for semitones in (12, -5, 7):
        tuned = dataclasses.replace(
            base, general=dataclasses.replace(base.general, tuning=semitones)
        )
        x = render(tuned)
        assert peak_hz(x) == pytest.approx(440 * 2 ** (semitones / 12), rel=0.002)
        assert end_60db(x) == pytest.approx(8821, abs=2)  # time does not change


def test_stretch_scales_the_envelope_times(tmp_path: Path) -> None:
    body = TONE.replace("0,100 8820,100 8821,0", "0,100 4410,50 8820,0")
    base = read_preset(write_ds(tmp_path, "tone.ds", body))
    lengths = {}
    for stretch in (50, 100, 250):
        p = dataclasses.replace(base, general=dataclasses.replace(base.general, stretch=stretch))
        x = render(p)
        lengths[stretch] = end_60db(x)
        assert peak_hz(x) == pytest.approx(440, abs=2)  # pitch does not change
    assert lengths[50] == pytest.approx(0.5 * lengths[100], rel=0.02)
    assert lengths[250] == pytest.approx(2.5 * lengths[100], rel=0.02)
    assert lengths[100] == pytest.approx(8820, rel=0.01)


def test_the_pitch_falls_from_f1_to_f2(tmp_path: Path) -> None:
    body = TONE.replace("F1=440", "F1=880").replace("F2=440", "F2=220")
    x = render(read_preset(write_ds(tmp_path, "sweep.ds", body)))
    assert peak_hz(x[:1000]) == pytest.approx(880, rel=0.05)  # first 23 ms: near F1
    assert peak_hz(x[7800:8800]) == pytest.approx(220 + 660 * 700 / 8820, rel=0.05)


def noise_preset(folder: Path, slope: int) -> Preset:
    body = f"[Noise]\nOn=1\nLevel=60\nSlope={slope}\nEnvelope=0,100 22050,100 22051,0\n"
    return read_preset(write_ds(folder, f"noise{slope}.ds", body))


def expected_centroid(b: list[float], a: list[float]) -> float:
    """Spectral centroid of white noise through the filter ``b / a``."""
    freqs, h = freqz(b, a, worN=4096, fs=RATE)
    power = np.abs(h) ** 2
    return float((freqs * power).sum() / power.sum())


def test_noise_slope_tilts_the_spectrum(tmp_path: Path) -> None:
    c = {s: centroid(render(noise_preset(tmp_path, s))) for s in (-80, 0, 80)}
    assert c[0] == pytest.approx(RATE / 4, rel=0.05)  # white
    assert c[-80] < 0.5 * c[0]  # darker: a one-pole low-pass
    assert c[-80] == pytest.approx(expected_centroid([25 / 105], [1, -80 / 105]), rel=0.08)
    assert c[80] > 1.3 * c[0]  # brighter: two zeros below 1
    assert c[80] == pytest.approx(expected_centroid([1, -1.6, 0.8], [1]), rel=0.05)
    x = render(noise_preset(tmp_path, 0))
    assert end_60db(x) == pytest.approx(22051, abs=60)


def test_the_noise_is_reproducible_by_seed(tmp_path: Path) -> None:
    p = noise_preset(tmp_path, 0)
    assert np.array_equal(render(p), render(p))
    assert not np.array_equal(render(p, seed=1), render(p, seed=2))


def test_a_noise_band_sits_at_its_frequency(tmp_path: Path) -> None:
    body = "[NoiseBand]\nOn=1\nLevel=100\nF=3000\ndF=20\nEnvelope=0,100 8000,100 8001,0\n"
    x = render(read_preset(write_ds(tmp_path, "band.ds", body)))
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    near = spec[(freqs > 2000) & (freqs < 4000)].sum() / spec.sum()
    assert near > 0.9
    assert centroid(x) == pytest.approx(3000, rel=0.1)


def test_overtones_mix_two_oscillators_by_param(tmp_path: Path) -> None:
    def overtone(param: int) -> np.ndarray:
        body = (
            "[Overtones]\nOn=1\nLevel=100\nF1=1000\nF2=3000\nWave1=0\nWave2=0\nMethod=0\n"
            f"Param={param}\nEnvelope1=0,100 6000,100 6001,0\nEnvelope2=0,100 3000,100 3001,0\n"
        )
        return render(read_preset(write_ds(tmp_path, f"ot{param}.ds", body)))

    only_first, only_second = overtone(0), overtone(100)
    assert peak_hz(only_first) == pytest.approx(1000, abs=2)
    assert end_60db(only_first) == pytest.approx(6001, abs=2)
    assert peak_hz(only_second) == pytest.approx(3000, abs=3)
    assert end_60db(only_second) == pytest.approx(3001, abs=2)


def test_components_stop_as_the_engine_stops_them(tmp_path: Path) -> None:
    """An envelope ending above zero: the tone sounds to the end of the engine's 1200-sample
    block, the overtones stop at the last point."""
    held = TONE.replace("0,100 8820,100 8821,0", "0,100 3000,100")
    tone = render(read_preset(write_ds(tmp_path, "held_tone.ds", held)))
    assert end_60db(tone) == pytest.approx(3600, abs=2)
    body = (
        "[Overtones]\nOn=1\nLevel=100\nF1=1000\nMethod=0\nParam=0\n"
        "Envelope1=0,100 3000,100\nEnvelope2=0,100 3000,100\n"
    )
    overtone = render(read_preset(write_ds(tmp_path, "held_overtone.ds", body)))
    assert end_60db(overtone) == pytest.approx(3000, abs=2)


def test_distortion_reduces_bits_and_rate(tmp_path: Path) -> None:
    body = TONE + "[Distortion]\nOn=1\nClipping=0\nBits=3\nRate=3\n"
    x = render(read_preset(write_ds(tmp_path, "crushed.ds", body))) * 32768
    step = 2.0 ** (2 * 3)
    held = x[:8800].reshape(-1, 4)  # Rate 3: 4 samples held
    assert np.all(held == held[:, :1])
    # each value is the mean of 4 multiples of the step
    assert np.allclose(np.round(x * 4 / step), x * 4 / step, atol=1e-3)
    assert np.abs(x).max() <= 100 * 100  # clipped at the loudest component's level


def test_the_resonant_filter_follows_its_envelope(tmp_path: Path) -> None:
    high = TONE.replace("F1=440", "F1=6000").replace("F2=440", "F2=6000")
    open_ = render(read_preset(write_ds(tmp_path, "open.ds", high)))
    closed_body = "Filter=1\nResonance=0\nFilterEnv=0,10 50000,10\n" + high
    closed = render(read_preset(write_ds(tmp_path, "closed.ds", closed_body)))
    assert rms_db(closed) < rms_db(open_) - 20  # a 6 kHz tone through a low cut-off
    low = TONE.replace("F1=440", "F1=100").replace("F2=440", "F2=100")
    passed = render(read_preset(write_ds(tmp_path, "low.ds", closed_body.replace(high, low))))
    reference = render(read_preset(write_ds(tmp_path, "low_open.ds", low)))
    assert rms_db(passed) == pytest.approx(rms_db(reference), abs=3)  # 100 Hz passes
    hp_body = closed_body.replace("Filter=1", "Filter=1\nHighPass=1").replace(high, low)
    removed = render(read_preset(write_ds(tmp_path, "hp.ds", hp_body)))
    assert rms_db(removed) < rms_db(reference) - 8  # HighPass subtracts what passed


def test_render_caps_length_and_resamples(tmp_path: Path) -> None:
    p = read_preset(write_ds(tmp_path, "tone.ds", TONE))
    assert len(render(p, max_seconds=0.1)) == pytest.approx(4410, abs=1)
    x48 = render(p, sample_rate=48000)
    assert len(x48) == pytest.approx(8821 * 48000 / RATE, abs=3)
    n = 1 << 18
    spec = np.abs(np.fft.rfft(x48 * np.hanning(len(x48)), n))
    assert np.argmax(spec) * 48000 / n == pytest.approx(440, abs=1)


# ----------------------------------------------------------------------------------- importer


def test_iter_drumsynth_yields_every_preset_sorted_and_skips_bad_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "drumsynth"
    (root / "b_kit").mkdir(parents=True)
    (root / "a_kit").mkdir()
    write_ds(root / "b_kit", "Zed_Tone.ds", TONE)
    write_ds(root / "b_kit", "Alpha_Tone.ds", TONE)
    write_ds(root / "a_kit", "Noise.ds", "[Noise]\nOn=1\nLevel=50\n")
    write_ds(root / "a_kit", "broken.ds", TONE.replace("Level=100", "Level=x"))
    write_ds(root / "a_kit", "all_off.ds", "[Tone]\nOn=0\n")
    with caplog.at_level(logging.WARNING):
        sources = list(iter_drumsynth(root, licence="GPL-2+", package="lmms-common"))
    assert [(s.kit, s.instrument, s.source) for s in sources] == [
        ("LMMS DrumSynth a_kit", "Noise", "a_kit/Noise.ds"),
        ("LMMS DrumSynth b_kit", "Alpha Tone", "b_kit/Alpha_Tone.ds"),
        ("LMMS DrumSynth b_kit", "Zed Tone", "b_kit/Zed_Tone.ds"),
    ]
    assert all(isinstance(s, SoundSource) for s in sources)
    assert {(s.layer, s.licence, s.package) for s in sources} == {(0, "GPL-2+", "lmms-common")}
    assert [s.file_name for s in sources] == ["Noise.ds", "Alpha_Tone.ds", "Zed_Tone.ds"]
    assert "broken.ds" in caplog.text and "all_off.ds" in caplog.text
    audio, rate = sources[1].load()
    assert rate == RATE and audio.dtype == np.float32 and audio.shape == (8821, 1)
    only_b = list(iter_drumsynth(root, licence="GPL-2+", folders=["b_kit"]))
    assert [s.instrument for s in only_b] == ["Alpha Tone", "Zed Tone"]


def test_load_refuses_a_silent_render(tmp_path: Path) -> None:
    root = tmp_path / "drumsynth"
    (root / "kit").mkdir(parents=True)
    write_ds(root / "kit", "Mute.ds", TONE.replace("Level=100", "Level=0"))
    (source,) = iter_drumsynth(root, licence="GPL-2+")
    with pytest.raises(DrumSynthError, match=r"Mute\.ds: renders silence"):
        source.load()


# ------------------------------------------------------------------------ LMMS's own presets


def test_every_lmms_preset_parses_and_a_sample_of_them_renders(presets: Path) -> None:
    files = sorted(presets.glob("*/*.ds"))
    assert len(files) == 764
    parsed = [read_preset(f) for f in files]
    assert sum(p.version == 1 for p in parsed) == 141
    for p in parsed[::25]:
        x = render(p)
        assert np.all(np.isfinite(x)) and np.abs(x).max() > 0.01, p.name
        assert np.abs(x).max() <= 32700 / 32768 + 1e-6
        assert len(x) <= p.length()


def test_tr808_kick_is_a_decaying_tone_falling_to_f2(presets: Path) -> None:
    p = read_preset(presets / "tr808" / "Kick.ds")
    assert (p.version, p.tone.f2, p.tone.envelope.end) == (1, 48.0, 12813.0)
    x = render(p)
    assert 0.25 * RATE < end_60db(x) <= 12813  # the envelope ends at 12813 samples
    assert rms_db(x[: RATE // 20]) > rms_db(x[int(0.2 * RATE) : int(0.25 * RATE)]) + 15
    tail = x[int(0.1 * RATE) : int(0.25 * RATE)]
    assert peak_hz(tail) == pytest.approx(48, rel=0.05)  # after the drop: near F2
    head = x[:200]
    crossings = np.count_nonzero(np.diff(np.signbit(head)))
    assert crossings * RATE / (2 * len(head)) > 150  # the attack starts far above F2

    tuned = dataclasses.replace(p, general=dataclasses.replace(p.general, tuning=12))
    assert peak_hz(render(tuned)[int(0.1 * RATE) : int(0.25 * RATE)]) == pytest.approx(96, rel=0.05)
    stretched = dataclasses.replace(p, general=dataclasses.replace(p.general, stretch=200))
    assert end_60db(render(stretched)) == pytest.approx(2 * end_60db(x), rel=0.1)


def test_a_noise_only_hat_is_bright(presets: Path) -> None:
    p = read_preset(presets / "misc_hats" / "bright_808_hat.ds")
    assert p.noise.on and not (p.tone.on or p.overtones.on or p.band1.on or p.band2.on)
    x = render(p)
    assert centroid(x) > 10000
    kick = render(read_preset(presets / "tr808" / "Kick.ds"))
    assert centroid(kick) < 200


def test_iter_drumsynth_on_lmms(presets: Path) -> None:
    sources = list(
        iter_drumsynth(presets, licence="GPL-2+", package="lmms-common", folders=["tr808"])
    )
    assert len(sources) == 15
    assert {s.kit for s in sources} == {"LMMS DrumSynth tr808"}
    assert sources[0].instrument == "Clave" and sources[0].source == "tr808/Clave.ds"
    kick = next(s for s in sources if s.file_name == "Kick.ds")
    audio, rate = kick.load()
    assert rate == RATE and audio.shape[1] == 1 and 0.25 * RATE < len(audio) < 0.3 * RATE


# ------------------------------------------------------- the block-wise time-varying filters


def test_blockwise_filters_match_their_per_sample_recurrences() -> None:
    """The filters change coefficients per 32-sample block (lfilter) and carry their state;
    they must agree with the per-sample recurrences they implement, sweep and all."""
    from dkvae_training.importers.drumsynth import _CymbalBandPass, _per_block, _ResonantLowPass

    rng = np.random.default_rng(0)
    n = 6000
    x = rng.uniform(-1, 1, n)
    x[3000:] = 0.0  # the state must ring on, not click or drift, across coefficient changes
    sweep = np.interp(np.arange(n), [0, 2000, 4000, n], [0.9, 0.1, 0.6, 0.6])

    pole = 0.999 - 0.7824 * sweep
    feedback = 0.5 * (1 + 1 / pole)
    ref = np.zeros(n)
    v1 = v2 = 0.0
    for t in range(n):  # u = x + k (v1 - v2); v1 = p v1 + (1-p) u; v2 = p v2 + (1-p) v1
        p, k = pole[t], feedback[t]
        u = x[t] + k * (v1 - v2)
        v1 = p * v1 + (1 - p) * u
        v2 = p * v2 + (1 - p) * v1
        ref[t] = v2
    coefs = np.stack([_per_block(pole), _per_block(feedback)], axis=1)
    ours = _ResonantLowPass().run(x, coefs)
    assert np.abs(ours - ref).max() < 0.05 * np.abs(ref).max()

    f = 0.9 * sweep
    q = 0.5
    ref = np.zeros(n)
    s0 = s1 = x_prev = 0.0
    for t in range(n):  # s0 += f s1; s1 += f (x + x[-1] - q s1 - s0)
        s0 += f[t] * s1
        s1 += f[t] * (x[t] + x_prev - q * s1 - s0)
        x_prev = x[t]
        ref[t] = s1
    coefs = np.stack([_per_block(f), np.full(len(_per_block(f)), q)], axis=1)
    ours = _CymbalBandPass().run(x, coefs)
    assert np.abs(ours - ref).max() < 0.05 * np.abs(ref).max()
