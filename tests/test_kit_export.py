"""`dkvae-live export-kit`: a kit out as WAVs, an SFZ and a Hydrogen kit, read back by an SFZ
parser (sfzen) and the project's own Hydrogen importer, the WAVs compared with what the daemon
publishes for the same pads; and the demo groove of `dkvae-live render --demo`."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from dkvae_training.bank_cli import DRUMKITS, fetch_package
from dkvae_training.importers.hydrogen import iter_kit, read_kit
from harness.synth_models import CLASSES

from dkvae_live.cli import main
from dkvae_live.kit import DEFAULT_KIT, Kit, load_kit, save_kit
from dkvae_live.kit_export import (
    EXPORT_JSON,
    HYDROGEN_ARCHIVE,
    ExportError,
    export_kit,
    layer_centres,
    parse_formats,
)
from dkvae_live.mixer import Mixer
from dkvae_live.model import Decoder
from dkvae_live.offline import DEMO_GROOVE, midi_notes, render_midi
from dkvae_live.pad_sound import FULL_SCALE
from dkvae_live.pads import GM_DRUMS, Pad, PadBank
from dkvae_live.renderer import VARIANTS, VELOCITY_LAYERS, RenderWorker, prepare_sound, stack_layers

RATE = 16000
LSB = 2.0**-23  # 24-bit rounding, and libsndfile's 0x7FFFFF scale
DIRECTION = (1.0, 0.5, 0, 0, 0, 0, 0, 0)


def pad(note: int, class_name: str, **fields: object) -> Pad:
    latent = tuple(round(0.1 * ((note * (i + 3)) % 7 - 3), 3) for i in range(8))
    return Pad(note, class_name, latent, **fields)  # type: ignore[arg-type]


# A pad of each shape: plain; velocity layers; variants; both; choked, panned, curved, loud.
KIT = Kit(
    "test kit",
    {
        36: pad(36, "kick", gain=2.5, velocity_curve=2.0),
        38: pad(38, "snare", timbre_direction=DIRECTION, timbre_amount=0.8, pan=-0.5),
        42: pad(42, "hihat", variation=0.3, choke_group=1, polyphony=2),
        46: pad(
            46,
            "hihat",
            variation=0.2,
            timbre_direction=DIRECTION,
            timbre_amount=0.5,
            choke_group=1,
            pan=0.25,
            gain=0.5,
        ),
    },
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, sine_model: Path) -> Path:
    out = tmp_path_factory.mktemp("export") / "kit"
    export_kit(Decoder(sine_model), KIT, out, samplerate=RATE)
    return out


def shape(p: Pad) -> tuple[int, int]:
    """(variants, layers) the daemon renders for a pad."""
    return (VARIANTS if p.variation else 1), (VELOCITY_LAYERS if p.timbre_amount else 1)


def expected_files(p: Pad) -> set[str]:
    variants, layers = shape(p)
    return {
        f"{p.note}-{p.class_name}-v{layer}-rr{rr}.wav"
        for layer in range(1, layers + 1)
        for rr in range(1, variants + 1)
    }


def test_the_folder_holds_every_sample_and_the_mappings(exported: Path) -> None:
    wavs = {p.name for p in exported.glob("*.wav")}
    assert wavs == set().union(*(expected_files(p) for p in KIT.pads.values()))
    assert len(wavs) == 1 + 5 + 8 + 40
    assert {p.name for p in exported.iterdir()} - wavs == {
        "test_kit.sfz",
        "drumkit.xml",
        HYDROGEN_ARCHIVE,
        EXPORT_JSON,
    }
    info = sf.info(str(exported / "36-kick-v1-rr1.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_24")
    assert not list(exported.parent.glob(".*.tmp"))  # the temporary folder was renamed


def daemon_weight(velocity: int, layer: int, layers: int) -> float:
    """The mixer's crossfade weight of a layer at a velocity (_mixer.c, note_on)."""
    if layers == 1:
        return 1.0
    position = (velocity - 1) / 126 * (layers - 1)
    return max(0.0, 1.0 - abs(position - layer))


def sfz_weight(velocity: int, ops: dict[str, float]) -> float:
    """A region's gain at a velocity: its range, and its linear (xf_velcurve=gain) fades."""
    if not ops["lovel"] <= velocity <= ops["hivel"]:
        return 0.0
    weight = 1.0
    if "xfin_lovel" in ops:
        low, high = ops["xfin_lovel"], ops["xfin_hivel"]
        weight *= min(1.0, max(0.0, (velocity - low) / (high - low)))
    if "xfout_lovel" in ops:
        low, high = ops["xfout_lovel"], ops["xfout_hivel"]
        weight *= min(1.0, max(0.0, (high - velocity) / (high - low)))
    return weight


def test_the_sfz_maps_every_pad_layer_and_round_robin_as_the_daemon_plays_them(
    exported: Path,
) -> None:
    sfzen = pytest.importorskip("sfzen")
    sfz = sfzen.SFZ(str(exported / "test_kit.sfz"))
    regions: dict[int, list[dict[str, float | str]]] = {}
    for region in sfz.regions():
        ops = {name: op.value for name, op in region.inherited_opcodes().items()}
        regions.setdefault(int(ops["key"]), []).append(ops)
        assert (exported / str(ops["sample"])).is_file()
    assert sorted(regions) == sorted(KIT.pads)
    for note, p in KIT.pads.items():
        variants, layers = shape(p)
        found = regions[note]
        assert {r["sample"] for r in found} == expected_files(p)
        for r in found:
            assert r["pan"] == pytest.approx(100 * p.pan)
            assert 10 ** (float(r["volume"]) / 20) == pytest.approx(p.gain, rel=1e-4)
            assert r["note_polyphony"] == p.polyphony
            for v in (1, 8, 64, 127):
                assert r[f"amp_velcurve_{v}"] == pytest.approx((v / 127) ** p.velocity_curve, 1e-4)
            if p.choke_group:
                assert (r["group"], r["off_by"]) == (p.choke_group, p.choke_group)
            else:
                assert "group" not in r and "off_by" not in r
            rr = int(str(r["sample"]).rsplit("-rr", 1)[1].split(".")[0])
            if variants > 1:
                assert (r["seq_length"], r["seq_position"]) == (variants, rr)
            else:
                assert "seq_length" not in r
        # At every velocity, the layers sound with the daemon's crossfade weights (the SFZ's
        # crossfade points are whole velocities: within a 32nd).
        for rr in range(1, variants + 1):
            for velocity in range(1, 128):
                for layer in range(layers):
                    (ops,) = [
                        r for r in found if str(r["sample"]).endswith(f"-v{layer + 1}-rr{rr}.wav")
                    ]
                    got = sfz_weight(velocity, ops)  # type: ignore[arg-type]
                    want = daemon_weight(velocity, layer, layers)
                    assert got == pytest.approx(want, abs=1 / 31), (note, velocity, layer)


def published_sounds(sine_model: Path, kit: Kit) -> Mixer:
    """What the daemon plays for a kit: its render worker publishing into its mixer."""
    decoder = Decoder(sine_model)
    info = decoder.info
    mixer = Mixer(8)
    mixer.configure(RATE)
    bank = PadBank(kit.pads, info.class_names, info.latent_size)
    RenderWorker(decoder, bank, RATE, mixer.publish).render_now(bank.notes())
    return mixer


def read(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float64")
    assert rate == RATE
    return audio


def test_the_wavs_are_what_the_daemon_plays(exported: Path, sine_model: Path) -> None:
    # The pads that do not vary: the very buffers the daemon's mixer holds.
    mixer = published_sounds(sine_model, KIT)
    for note in (36, 38):
        sound = mixer.sounds[note]
        assert sound is not None
        assert len(sound.variants) == 1
        layers = sound.audio(0)
        for layer, row in enumerate(layers):
            wav = read(exported / f"{note}-{KIT.pads[note].class_name}-v{layer + 1}-rr1.wav")
            np.testing.assert_allclose(wav, row, rtol=0, atol=2 * LSB)
        assert np.max(np.abs(layers)) > 0.1
    # The pads that vary: each variant is the render path's sound of the latent recorded.
    record = json.loads((exported / EXPORT_JSON).read_text())
    decoder = Decoder(sine_model)
    for entry in record["pads"]:
        p = KIT.pads[entry["note"]]
        latents = np.array(entry["latents"], np.float32)
        assert latents.shape == (*shape(p), 8)
        if p.variation:  # each variant its own point near the pad's latent
            assert len({tuple(v[0]) for v in entry["latents"]}) == VARIANTS
            assert np.abs(latents - np.array(p.latent)).max() < 6 * p.variation
        for variant, names in zip(latents, entry["files"], strict=True):
            classes = np.full(len(variant), CLASSES.index(p.class_name))
            audio = decoder.render(variant, classes)
            prepared = [prepare_sound(a, decoder.info.sample_rate, RATE) for a in audio]
            rows = stack_layers([s for s in prepared if s is not None])
            for row, name in zip(rows, names, strict=True):
                # the daemon keeps 16 bits of each variant, under its peak (<= 1)
                quantum = 1 / FULL_SCALE
                np.testing.assert_allclose(
                    read(exported / name), row, rtol=0, atol=2 * LSB + quantum
                )
    assert record["model"]["name"] == decoder.info.name and record["seed"] == 0
    assert record["samplerate"] == RATE
    assert record["kit"]["name"] == KIT.name and "[[pad]]" in record["kit"]["toml"]


def test_the_hydrogen_kit_reads_back_with_the_projects_importer(exported: Path) -> None:
    kit = read_kit(exported)
    assert kit.name == KIT.name
    by_instrument: dict[str, list[str]] = {}
    for layer in kit.layers:
        by_instrument.setdefault(layer.instrument, []).append(layer.filename)
    assert set(by_instrument) == {f"{p.class_name} {p.note}" for p in KIT.pads.values()}
    for p in KIT.pads.values():
        assert set(by_instrument[f"{p.class_name} {p.note}"]) == expected_files(p)
    # the sounds it loads are the exported samples
    for source in iter_kit(exported):
        audio, rate = source.load()
        assert rate == RATE
        np.testing.assert_array_equal(audio[:, 0], sf.read(source.source, dtype="float32")[0])
    # what the importer does not read: notes, mute groups, velocity ranges, round-robin
    ns = {"h": "http://www.hydrogen-music.org/drumkit"}
    root = ET.parse(exported / "drumkit.xml").getroot()
    for elem in root.iterfind("h:instrumentList/h:instrument", ns):
        p = KIT.pads[int(elem.findtext("h:midiOutNote", namespaces=ns) or -1)]
        assert int(elem.findtext("h:muteGroup", namespaces=ns) or 0) == (p.choke_group or -1)
        assert float(elem.findtext("h:gain", namespaces=ns) or 0) == pytest.approx(p.gain)
        assert float(elem.findtext("h:pan", namespaces=ns) or 0) == pytest.approx(p.pan)
        variants, layers = shape(p)
        algorithm = elem.findtext("h:sampleSelectionAlgo", namespaces=ns)
        assert algorithm == ("ROUND_ROBIN" if variants > 1 else "VELOCITY")
        centres = layer_centres(layers)
        for entry in elem.iterfind("h:instrumentComponent/h:layer", ns):
            name = entry.findtext("h:filename", namespaces=ns) or ""
            layer = int(name.rsplit("-v", 1)[1].split("-")[0]) - 1
            low = float(entry.findtext("h:min", namespaces=ns) or -1)
            high = float(entry.findtext("h:max", namespaces=ns) or -1)
            nearest = [  # the velocities nearest this layer's centre are its own
                v / 127
                for v in range(1, 128)
                if min(range(layers), key=lambda i: abs(centres[i] - v)) == layer
            ]
            assert low <= min(nearest) and max(nearest) <= high
            assert layer > 0 or low == 0.0
            assert layer < layers - 1 or high == 1.0


def test_the_h2drumkit_archive_is_the_kit_folder(exported: Path, tmp_path: Path) -> None:
    with tarfile.open(exported / HYDROGEN_ARCHIVE) as archive:
        names = archive.getnames()
        assert {n.split("/")[0] for n in names} == {"test_kit"}
        archive.extractall(tmp_path, filter="data")
    unpacked = read_kit(tmp_path / "test_kit")
    assert unpacked.layers == read_kit(exported).layers
    for layer in unpacked.layers:
        assert (tmp_path / "test_kit" / layer.filename).read_bytes() == (
            exported / layer.filename
        ).read_bytes()


def test_our_instruments_are_written_as_hydrogen_1_2_writes_them(exported: Path) -> None:
    """A real Hydrogen 1.2 kit (Debian's hydrogen-data) next to ours: the same elements, in the
    same order, for an instrument, its component and its layers."""
    kits = os.environ.get("DKVAE_TEST_KITS")
    if not kits or not list(Path(kits).glob("hydrogen-data_*.deb")):
        pytest.skip("needs Debian package hydrogen-data in $DKVAE_TEST_KITS (scripts/test.sh)")
    real = fetch_package("hydrogen-data", Path(kits)) / DRUMKITS / "GMRockKit" / "drumkit.xml"

    def tags(path: Path, where: str) -> list[str]:
        ns = {"h": "http://www.hydrogen-music.org/drumkit"}
        elem = ET.parse(path).getroot().find(where, ns)
        assert elem is not None
        return list(dict.fromkeys(child.tag.rsplit("}", 1)[1] for child in elem))

    instrument = "h:instrumentList/h:instrument"
    component = f"{instrument}/h:instrumentComponent"
    kit_component = "h:componentList/h:drumkitComponent"
    for where in (instrument, component, f"{component}/h:layer", kit_component):
        assert tags(exported / "drumkit.xml", where) == tags(real, where)
    assert ET.parse(exported / "drumkit.xml").getroot().tag == ET.parse(real).getroot().tag


@pytest.mark.slow
def test_hydrogen_itself_finds_the_kit_valid(exported: Path, tmp_path: Path) -> None:
    """h2cli (Debian's hydrogen) loads the archive headless and checks it against its schema."""
    h2cli = shutil.which("h2cli")
    if h2cli is None:
        pytest.skip("needs h2cli: apt-get install hydrogen (scripts/setup.sh dev)")
    result = subprocess.run(
        [h2cli, "-c", str(exported / HYDROGEN_ARCHIVE)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "HOME": str(tmp_path),  # its settings and logs go there
            # a check needs no audio: kept off the tests' JACK server, where it once hung
            "JACK_DEFAULT_SERVER": "dkvae-h2cli-none",
            "JACK_NO_START_SERVER": "1",
        },
        stdin=subprocess.DEVNULL,
    )
    assert "is valid" in result.stdout and result.returncode == 0, result.stdout[-2000:]


def test_an_export_is_not_overwritten_without_force(
    tmp_path: Path, sine_model: Path, gm_kit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gm"
    command = ["export-kit", str(gm_kit), "-o", str(out), "--model", str(sine_model)]
    command += ["--samplerate", str(RATE), "--format", "sfz"]
    assert main(command) == 0
    assert not (out / "drumkit.xml").exists() and (out / "gm.sfz").exists()
    stamp = (out / EXPORT_JSON).stat().st_mtime_ns
    assert main(command) == 2
    assert "exists; give another name, or --force" in capsys.readouterr().err
    assert (out / EXPORT_JSON).stat().st_mtime_ns == stamp
    assert main([*command, "--force", "--format", "hydrogen"]) == 0
    assert (out / "drumkit.xml").exists() and not (out / "gm.sfz").exists()
    # a folder that is not an export is never replaced, --force or not
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "song.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an earlier export"):
        export_kit(Decoder(sine_model), KIT, mine, samplerate=RATE, force=True)
    assert (mine / "song.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gm", "mine"]  # no temporaries left
    with pytest.raises(ValueError, match="unknown format flac"):
        parse_formats("sfz,flac")


def test_the_default_kit_exports(tmp_path: Path) -> None:
    """The shipped model and kit: every pad, all velocity layers; the SFZ names every file."""
    decoder = Decoder()
    kit = load_kit(DEFAULT_KIT, decoder.info.class_names, decoder.info.latent_size)
    pads = export_kit(decoder, kit, tmp_path / "default", formats=("sfz",), samplerate=RATE)
    assert [p.pad.note for p in pads] == sorted(kit.pads)
    text = (tmp_path / "default" / "default.sfz").read_text()
    for p in pads:
        assert p.layers == VELOCITY_LAYERS
        for names in p.files:
            for name in names:
                assert f"sample={name} " in text
                assert np.max(np.abs(read(tmp_path / "default" / name))) > 1e-3


# -- the demo groove --------------------------------------------------------------------
def test_the_demo_groove_is_small_and_plays_every_class(
    tmp_path: Path, sine_model: Path, gm_kit: Path
) -> None:
    assert DEMO_GROOVE.stat().st_size < 4096
    notes = midi_notes(DEMO_GROOVE)
    seconds = notes[-1][0]
    assert 4.0 < seconds < 10.0
    assert all(mido.MidiFile(str(DEMO_GROOVE)).tracks)
    played = {GM_DRUMS[note][0] for _, note, _ in notes}
    assert played == set(CLASSES)
    velocities = [v for _, _, v in notes]
    assert min(velocities) < 32 and max(velocities) == 127  # soft and hard layers
    # through the live voice engine: every class it plays sounds
    decoder = Decoder(sine_model)
    kit = load_kit(gm_kit, decoder.info.class_names, decoder.info.latent_size)
    for name in sorted(played):
        only = [n for n in notes if GM_DRUMS[n[1]][0] == name]
        audio, skipped = render_midi(only, decoder, kit, RATE)
        assert skipped == 0
        assert math.sqrt(float(np.mean(audio**2))) > 1e-3, name


def test_render_demo_writes_a_flac(tmp_path: Path, sine_model: Path, gm_kit: Path) -> None:
    out = tmp_path / "demo.flac"
    command = ["render", "--demo", "-o", str(out), "--model", str(sine_model)]
    assert main([*command, "--kit", str(gm_kit), "--samplerate", str(RATE)]) == 0
    info = sf.info(str(out))
    assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_24", RATE)
    assert info.duration > 4.0
    with pytest.raises(SystemExit):  # a song or --demo, not both
        main(["render", str(DEMO_GROOVE), "--demo", "-o", str(out)])


def test_kits_saved_and_exported_round_trip(tmp_path: Path, sine_model: Path) -> None:
    """The JSON's kit is the kit: saved as TOML it loads back to the same pads."""
    out = tmp_path / "x"
    export_kit(Decoder(sine_model), KIT, out, formats=("wav",), samplerate=RATE)
    (tmp_path / "k.toml").write_text(json.loads((out / EXPORT_JSON).read_text())["kit"]["toml"])
    assert load_kit(tmp_path / "k.toml", CLASSES, 8).pads == KIT.pads
    save_kit(KIT, tmp_path / "k2.toml")
    assert (tmp_path / "k2.toml").read_text() == (tmp_path / "k.toml").read_text()
