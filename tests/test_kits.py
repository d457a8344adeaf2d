"""Kit files, path confinement and velocity layers, without an audio server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from dkvae_live.kit import DEFAULT_KIT, CcMapping, Kit, KitError, load_kit, save_kit
from dkvae_live.model import Decoder
from dkvae_live.pads import Pad, default_pads
from dkvae_live.paths import confine

CLASSES = ("kick", "snare", "hihat", "tom", "cymbal", "perc")


def a_kit(value: float = 0.5) -> Kit:
    pads = default_pads(CLASSES, 8)
    pads[36] = replace(
        pads[36],
        latent=(value,) * 8,
        timbre_direction=(1.0,) + (0.0,) * 7,
        timbre_amount=0.5,
        variation=0.1,
        velocity_curve=1.5,
        pan=-0.25,
        output="kick-in",
    )
    return Kit("test kit", pads, (CcMapping(21, 36, 0, -2.0, 2.0, channel=9),))


def test_a_saved_kit_loads_back_the_same(tmp_path: Path) -> None:
    kit = a_kit()
    save_kit(kit, tmp_path / "k.toml")
    assert load_kit(tmp_path / "k.toml", CLASSES, 8) == kit


def test_the_shipped_default_kit_fits_the_shipped_model() -> None:
    info = Decoder().info
    kit = load_kit(DEFAULT_KIT, info.class_names, info.latent_size)
    assert {36, 38, 42, 46}.issubset(kit.pads)
    assert kit.pads[42].choke_group == kit.pads[46].choke_group == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = [", "not a valid TOML kit"),
        ("name = 'x'", "no [[pad]] tables"),
        ("[[pad]]\nnote = 36\nclass = 'kick'\nlatent = [0.0]", "latent needs 8 values, got 1"),
        ("[[pad]]\nnote = 36\nclass = 'gong'\nlatent = [0,0,0,0,0,0,0,0]", "unknown class 'gong'"),
        (
            "[[pad]]\nnote = 36\nclass = 'kick'\nlatent = [0,0,0,0,0,0,0,0]\ngian = 1",
            "pad #1: unknown key(s) gian",
        ),
        ("[[pad]]\nnote = 36\nclass = 'kick'", "pad #1: 'latent' is missing"),
        (
            "[[pad]]\nnote = 36\nclass = 'kick'\nlatent = [0,0,0,0,0,0,0,0]\ngain = 'loud'",
            "gain must be a number",
        ),
        (
            "[[pad]]\nnote = 36\nclass = 'kick'\nlatent = [0,0,0,0,0,0,0,0]\ngain = 9.0",
            "gain must be in range 0..4",
        ),
        (
            "[[pad]]\nnote = 36\nclass = 'kick'\nlatent = [0,0,0,0,0,0,0,nan]",
            "latent must be in range",
        ),
        (
            "[[pad]]\nnote = 36\nclass = 'kick'\nlatent = [0,0,0,0,0,0,0,0]\n"
            "[[pad]]\nnote = 36\nclass = 'kick'\nlatent = [0,0,0,0,0,0,0,0]",
            "note 36 appears twice",
        ),
        (
            "[[pad]]\nnote = 36\nclass = 'kick'\nlatent = [0,0,0,0,0,0,0,0]\n"
            "[[cc]]\ncontroller = 1\nnote = 38\ndim = 0",
            "note 38, which has no pad",
        ),
    ],
)
def test_a_bad_kit_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(KitError) as err:
        load_kit(path, CLASSES, 8)
    assert message in str(err.value) and str(path) in str(err.value)


PAD = "[[pad]]\nnote = 41\nclass = 'tom'\nlatent = [0,0,0,0,0,0,0,0]\n"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("'to:ms'", "pad #1 (note 41): output 'to:ms' cannot name a pair of JACK ports"),
        ("'toms 1'", "output 'toms 1' cannot name a pair of JACK ports: use 1 to 32 letters"),
        ("'-toms'", "the first a letter or digit"),
        (f"'{'t' * 33}'", "use 1 to 32 letters"),
        ("'out'", "output 'out' is the main pair (out_1/out_2), which every pad plays on"),
        ("3", "pad #1: output must be a string"),
        ("['toms']", "pad #1: output must be a string"),
    ],
)
def test_a_pads_output_must_name_a_pair_of_jack_ports(
    tmp_path: Path, output: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"{PAD}output = {output}\n")
    with pytest.raises(KitError) as err:
        load_kit(path, CLASSES, 8)
    assert message in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("output", ["toms", "Toms_2", "overheads-L", "t" * 32, "9"])
def test_a_pads_output_loads_and_saves(tmp_path: Path, output: str) -> None:
    path = tmp_path / "good.toml"
    path.write_text(f"{PAD}output = '{output}'\n")
    kit = load_kit(path, CLASSES, 8)
    assert kit.pads[41].output == output
    save_kit(kit, tmp_path / "again.toml")
    assert f'output = "{output}"' in (tmp_path / "again.toml").read_text()
    assert load_kit(tmp_path / "again.toml", CLASSES, 8) == kit


def test_missing_and_binary_kit_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KitError, match="no such kit file"):
        load_kit(tmp_path / "none.toml", CLASSES, 8)
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(KitError, match="cannot read the kit"):
        load_kit(tmp_path / "bin.toml", CLASSES, 8)


# Saves the two kits it is given, in turn, as fast as it can, into the first path.
SAVER = """
import sys
from pathlib import Path
from dkvae_live.kit import load_kit, save_kit
path, *given = map(Path, sys.argv[1:])
kits = [load_kit(p, {classes!r}, 8) for p in given]
print("saving", flush=True)
i = 0
while True:
    save_kit(kits[i % 2], path)
    i += 1
"""


def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_kit(tmp_path: Path) -> None:
    given = [tmp_path / "a.toml", tmp_path / "b.toml"]
    save_kit(a_kit(0.25), given[0])
    save_kit(a_kit(0.75), given[1])
    (tmp_path / "saves").mkdir()
    path = tmp_path / "saves" / "live.toml"
    save_kit(a_kit(0.25), path)
    script = SAVER.format(classes=CLASSES)
    for round_ in range(15):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(path), *map(str, given)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "saving\n"
        time.sleep(0.02 + 0.013 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kit = load_kit(path, CLASSES, 8)  # complete and loadable, every time
        assert kit.pads[36].latent in ((0.25,) * 8, (0.75,) * 8)
    leftovers = [p.name for p in path.parent.iterdir() if p.name != "live.toml"]
    assert all(name.endswith(".tmp") for name in leftovers)  # at most temp files, never a kit


def test_paths_from_the_network_stay_inside_the_allowed_folders(tmp_path: Path) -> None:
    kits = tmp_path / "kits"
    sounds = tmp_path / "sounds"
    kits.mkdir()
    sounds.mkdir()
    (sounds / "snare.wav").write_bytes(b"")
    (kits / "escape").symlink_to(tmp_path)
    allowed = (kits, sounds)
    assert confine("mine", kits, allowed, ".toml") == (kits / "mine.toml").resolve()
    assert confine(str(sounds / "snare.wav"), kits, allowed) == (sounds / "snare.wav").resolve()
    for bad in ("../secret.toml", "/etc/passwd", "escape/secret.toml", "", "a\x00b"):
        with pytest.raises(ValueError):
            confine(bad, kits, allowed, ".toml")


def test_velocity_layers_move_along_the_timbre_direction() -> None:
    pad = Pad(36, "kick", (0.0, 1.0), timbre_direction=(1.0, 0.0), timbre_amount=0.5)
    assert pad.velocity_latents(5) == [
        (-0.5, 1.0),
        (-0.25, 1.0),
        (0.0, 1.0),
        (0.25, 1.0),
        (0.5, 1.0),
    ]
    assert replace(pad, timbre_amount=0.0).velocity_latents(5) == [(0.0, 1.0)]
    # the layer nearest a hit, where the mixer crossfades them: the ends at 1 and 127; 110 lies
    # between the layers at 95.5 and 127, nearer the first
    assert [pad.layer_latent(v, 5) for v in (1, 64, 110, 127, 0, 200)] == [
        (-0.5, 1.0),
        (0.0, 1.0),
        (0.25, 1.0),
        (0.5, 1.0),
        (-0.5, 1.0),
        (0.5, 1.0),
    ]
    assert Pad(36, "kick", (0.0, 1.0)).layer_latent(127, 5) == (0.0, 1.0)  # no timbre set
