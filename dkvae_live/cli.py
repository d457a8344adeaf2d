"""`dkvae-live`: run the daemon, list what it could use, or render a MIDI file offline.

dkvae-live [OPTIONS]                       # the daemon
dkvae-live render SONG.mid -o OUT.wav      # a MIDI file through a kit, offline
dkvae-live render --demo -o demo.flac      # the shipped demo groove through a kit
dkvae-live export-kit KIT -o DIR           # a kit as WAVs, an SFZ and a Hydrogen kit
dkvae-live kit-from-folder DIR -o KIT.toml # a kit of your own sound files
"""

from __future__ import annotations

import argparse
import faulthandler
import ipaddress
import logging
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

# numpy does small work here, on the render thread: its BLAS needs no pool of threads that
# would sit idle all day. Set before numpy loads (the imports below load it).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .audio import AudioDeviceError
from .engine import Engine
from .kit import DEFAULT_KIT, KitError, load_kit
from .kit_export import FORMATS, ExportError, export_kit, parse_formats
from .latent_fit import FIT_STEPS
from .midi_in import MidiError, available_apis, list_input_ports
from .mixer import exit_after
from .model import DEFAULT_MODEL_DIR, Decoder, ModelError
from .osc_in import OscError
from .outputs import OUTPUT_MODES, PER_CLASS, PER_PAD, STEREO
from .rt import current_thread_name, map_large_buffers_apart, name_current_thread, rename_threads
from .settings import Settings
from .space_map import add_arguments as add_map_arguments
from .space_map import main as map_main

log = logging.getLogger("dkvae_live")

MAIN_THREAD = "dkvae-live"  # also what ps and top show as the process's name
LIBRARY_THREAD = "dkvae-lib"  # a thread a library made as it loaded (onnxruntime has one)
# A stop signal ends the process within a second, whatever hangs: the parts stop in turn
# (most in milliseconds), and what is not done after this long is left to the kernel. Closing
# a JACK client waits on the server, which may be stopping at the same moment (a systemd stop
# or Ctrl-C in a terminal signals both).
STOP_SECONDS = 0.6
LAST_RESORT_SECONDS = 0.9  # even a thread that holds the GIL cannot keep us past this
_deadline_set = False


def _leave(code: int) -> NoReturn:
    """End the process now, without finalizing: logs flushed, nothing else."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _stop_deadline() -> None:
    """Past STOP_SECONDS after the stop began, leave as stopped, logs flushed; should that
    timer's thread not run in time (a thread holds the GIL, or a busy machine runs it late),
    faulthandler dumps every thread's stack to the log and a C thread ends the process at
    LAST_RESORT_SECONDS, still as stopped."""

    def overdue() -> None:
        log.warning("not stopped after %.1f s: leaving the rest to the system", STOP_SECONDS)
        _leave(0)

    global _deadline_set
    if _deadline_set:
        return
    _deadline_set = True
    timer = threading.Timer(STOP_SECONDS, overdue)
    timer.daemon = True
    timer.start()
    faulthandler.dump_traceback_later(LAST_RESORT_SECONDS - 0.1, exit=False)
    exit_after(LAST_RESORT_SECONDS)


def add_midi_channel(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--midi-channel 1..16``, the same for the daemon and ``render``; :func:`midi_channel`
    reads it."""
    p.add_argument(
        "--midi-channel",
        type=int,
        choices=range(1, 17),
        metavar="1..16",
        help="play the notes of one channel only (default: all)",
    )


def midi_channel(args: argparse.Namespace) -> int | None:
    """``--midi-channel`` as the 0-based channel the MIDI readers take; None for all."""
    return None if args.midi_channel is None else int(args.midi_channel) - 1


def build_parser() -> argparse.ArgumentParser:
    """The daemon's options, and the ``render`` command."""
    p = argparse.ArgumentParser(
        prog="dkvae-live",
        description="Play a neural drum model live from MIDI notes and OSC messages. "
        "Without a command, run the daemon.",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help=f"model folder or decoder .onnx (default: the shipped model in {DEFAULT_MODEL_DIR})",
    )
    p.add_argument(
        "--kit",
        type=Path,
        default=None,
        help="kit file (TOML, docs/kits.md) to play; it is reloaded when it changes on disk "
        "or on SIGHUP (default: the shipped default kit)",
    )
    p.add_argument(
        "--kit-dir",
        type=Path,
        default=None,
        help="folder for kits saved and loaded over OSC (default: the --kit file's folder, "
        "else ~/.local/share/dkvae-live/kits)",
    )
    p.add_argument(
        "--allow-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder whose files OSC may name (sounds to encode, models, kits); repeat for "
        "several. The kit folder is always allowed",
    )
    audio = p.add_argument_group("audio")
    audio.add_argument(
        "--device",
        help="output device name, or part of it (default: the host API's default output)",
    )
    audio.add_argument(
        "--host-api",
        help="host API name, or part of it, e.g. JACK or ALSA "
        "(default: JACK when a JACK server runs)",
    )
    audio.add_argument("--samplerate", type=int, help="Hz (default: the device's rate)")
    audio.add_argument(
        "--blocksize",
        type=int,
        default=0,
        help="frames per audio callback; 0 lets the host choose (JACK: its "
        "period), the lowest latency (default: 0)",
    )
    audio.add_argument(
        "--outputs",
        choices=OUTPUT_MODES,
        default=STEREO,
        help=f"{STEREO}: out_1/out_2, the whole mix; {PER_CLASS}: also a pair per drum class "
        f"of the model (kick_1/kick_2, ...), each pad on its class's; {PER_PAD}: also a pair "
        'per name a pad\'s `output` gives in the kit (output = "toms": toms_1/toms_2). '
        "out_1/out_2 always carry every pad; the other pairs are not connected by us, and one "
        "that nothing is connected to costs nothing. JACK only (default: stereo)",
    )
    audio.add_argument(
        "--polyphony",
        type=int,
        default=32,
        help="voices sounding at once before the oldest is stolen (default: 32)",
    )
    audio.add_argument(
        "--master-gain",
        type=float,
        default=0.5,
        help="linear gain on the mix, headroom for many hits (default: 0.5)",
    )
    midi = p.add_argument_group("MIDI")
    midi.add_argument("--no-midi", action="store_true", help="do not open a MIDI input")
    midi.add_argument(
        "--midi-api",
        choices=["auto", "alsa", "jack"],
        default="auto",
        help="auto: JACK when the audio runs on JACK, else ALSA (default: auto)",
    )
    midi.add_argument(
        "--midi-port",
        help="connect only the MIDI sources whose name contains this, as they appear; none: "
        "connect none (default: every physical source, e.g. a USB pad, at the start and "
        "when plugged in)",
    )
    add_midi_channel(midi)
    midi.add_argument(
        "--client-name",
        default="dkvae",
        help="MIDI client name; the virtual port is CLIENT:midi_in",
    )
    osc = p.add_argument_group("OSC")
    osc.add_argument(
        "--osc-host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    osc.add_argument("--osc-port", type=int, default=9000, help="UDP port (default: 9000)")
    osc.add_argument(
        "--osc-allow",
        action="append",
        default=[],
        metavar="IP",
        help="a sender allowed to talk to the daemon; required when --osc-host "
        "is not a loopback address (repeat for several)",
    )
    p.add_argument("--list-devices", action="store_true", help="list audio outputs and exit")
    p.add_argument("--list-midi-ports", action="store_true", help="list MIDI inputs and exit")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = p.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    add_render_arguments(
        commands.add_parser(
            "render",
            help="play a MIDI file through a kit offline, with the live voice engine",
            description="Play a MIDI file through a kit offline, with the live voice engine. "
            "Its options are its own: give them after `render`.",
        )
    )
    add_export_arguments(
        commands.add_parser(
            "export-kit",
            help="render a kit to WAV samples with an SFZ and a Hydrogen kit, for any sampler",
            description="Render every pad of a kit as the daemon plays it and write a sample "
            "kit: 24-bit WAVs, an SFZ (sfizz, Carla, LinuxSampler, DAW samplers), a Hydrogen "
            "drumkit.xml and .h2drumkit, and dkvae-export.json (model, kit, latents).",
        )
    )
    add_folder_arguments(
        commands.add_parser(
            "kit-from-folder",
            help="make a kit of a folder of sound files, each a pad the model can morph",
            description="Make a kit of every sound file in a folder (and its subfolders): each "
            "becomes a pad with the encoder's latent of that sound, its class from the file's "
            "name (else from the sound, by the encoder), on the General MIDI note of its "
            "class (the rest above the GM range). Unreadable files are named and skipped.",
        )
    )
    add_map_arguments(
        commands.add_parser(
            "map",
            help="draw each class's sound region with the kit's pads on it (PNG)",
            description="Draw a 2-D map per class: its sounds projected on its two main "
            "directions, its timbre axes, and the kit's pads labelled by note.",
        )
    )
    return p


def _settings(args: argparse.Namespace) -> Settings:
    host = ipaddress.ip_address(args.osc_host) if args.osc_host != "localhost" else None
    if host is not None and not host.is_loopback and not args.osc_allow:
        raise SystemExit(
            f"dkvae-live: --osc-host {args.osc_host} would let other machines play and load "
            "files; name the senders allowed with --osc-allow IP"
        )
    return Settings(
        model=args.model,
        kit=args.kit,
        kit_dir=args.kit_dir,
        allow_dirs=tuple(args.allow_dir),
        device=args.device,
        host_api=args.host_api,
        samplerate=args.samplerate,
        blocksize=args.blocksize,
        polyphony=args.polyphony,
        master_gain=args.master_gain,
        outputs=args.outputs,
        midi=not args.no_midi,
        midi_api=args.midi_api,
        midi_port=args.midi_port,
        midi_channel=midi_channel(args),
        client_name=args.client_name,
        osc_host=args.osc_host,
        osc_port=args.osc_port,
        osc_allow=tuple(args.osc_allow),
    )


def _list(args: argparse.Namespace) -> None:
    if args.list_devices:
        import sounddevice

        print(sounddevice.query_devices())
    if args.list_midi_ports:
        for api in available_apis():
            try:
                ports = list_input_ports(api)
            except MidiError as exc:
                print(f"{api}: {exc}")
                continue
            print(f"{api}: {', '.join(ports) or '(no ports)'}")


def add_render_arguments(p: argparse.ArgumentParser) -> None:
    song = p.add_mutually_exclusive_group(required=True)
    song.add_argument("midi", type=Path, nargs="?", help="a standard MIDI file")
    song.add_argument(
        "--demo",
        action="store_true",
        help="play the shipped General MIDI demo groove (a few bars, every drum class)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="audio file to write: .wav (32-bit float) or .flac (24-bit)",
    )
    p.add_argument("--kit", type=Path, default=DEFAULT_KIT, help="kit file (default: shipped)")
    p.add_argument("--model", type=Path, default=None, help="model (default: shipped)")
    p.add_argument("--samplerate", type=int, default=48000, help="Hz (default: 48000)")
    p.add_argument("--polyphony", type=int, default=32)
    p.add_argument("--master-gain", type=float, default=0.5)
    add_midi_channel(p)


def render_main(args: argparse.Namespace) -> int:
    from .offline import DEMO_GROOVE, midi_notes, render_midi

    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    try:
        import soundfile

        decoder = Decoder(args.model)
        kit = load_kit(args.kit, decoder.info.class_names, decoder.info.latent_size)
        notes = midi_notes(DEMO_GROOVE if args.demo else args.midi, midi_channel(args))
        started = time.perf_counter()
        audio, skipped = render_midi(
            notes, decoder, kit, args.samplerate, args.polyphony, args.master_gain
        )
        elapsed = time.perf_counter() - started
        flac = args.output.suffix.lower() == ".flac"
        subtype = "PCM_24" if flac else "FLOAT"
        soundfile.write(str(args.output), audio, args.samplerate, subtype=subtype)
    except (ModelError, KitError, ValueError, OSError) as exc:
        print(f"dkvae-live render: {exc}", file=sys.stderr)
        return 2
    seconds = audio.shape[0] / args.samplerate
    log.info(
        "%d notes (%d without a pad, skipped), %.1f s of audio rendered in %.2f s "
        "(%.0fx real time) to %s",
        len(notes),
        skipped,
        seconds,
        elapsed,
        seconds / max(elapsed, 1e-9),
        args.output,
    )
    return 0


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kit", type=Path, help="kit file (TOML)")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder to write")
    p.add_argument(
        "--format",
        default=",".join(FORMATS),
        help=f"what to write, comma separated, of {','.join(FORMATS)} (default: all; the WAVs "
        "are always written)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace the folder if it holds an earlier export"
    )
    p.add_argument("--model", type=Path, default=None, help="model (default: shipped)")
    p.add_argument("--samplerate", type=int, default=48000, help="Hz (default: 48000)")
    p.add_argument(
        "--seed", type=int, default=0, help="draws the variants of pads that vary (default: 0)"
    )


def export_main(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    try:
        formats = parse_formats(args.format)
        decoder = Decoder(args.model)
        kit = load_kit(args.kit, decoder.info.class_names, decoder.info.latent_size)
        started = time.perf_counter()
        pads = export_kit(
            decoder, kit, args.output, formats, args.samplerate, args.force, args.seed
        )
    except (ModelError, KitError, ExportError, ValueError, OSError) as exc:
        print(f"dkvae-live export-kit: {exc}", file=sys.stderr)
        return 2
    files = sum(p.layers * p.variants for p in pads)
    log.info(
        "kit %r: %d pads, %d samples (%s) in %s, %.1f s",
        kit.name,
        len(pads),
        files,
        ",".join(formats),
        args.output,
        time.perf_counter() - started,
    )
    return 0


def add_folder_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", type=Path, help="folder of sound files (WAV, FLAC, AIFF, Ogg...)")
    p.add_argument("-o", "--output", type=Path, required=True, help="kit file to write (.toml)")
    p.add_argument("--force", action="store_true", help="replace the kit file if it exists")
    p.add_argument("--model", type=Path, default=None, help="model (default: shipped)")
    p.add_argument(
        "--fit-steps",
        type=int,
        default=FIT_STEPS,
        help="steps that fit each pad's latent through the decoder to its file (default "
        f"{FIT_STEPS}; 0: the encoder's latent as it is)",
    )


def folder_main(args: argparse.Namespace) -> int:
    from .kit_from_folder import (
        FolderError,
        check_output,
        kit_from_folder,
        model_encoder,
        summary,
        write_kit,
    )

    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    if args.fit_steps < 0:
        print("dkvae-live kit-from-folder: --fit-steps must be 0 or more", file=sys.stderr)
        return 2
    try:
        check_output(args.output, args.force)  # before the work, not after it
        decoder = Decoder(args.model)
        encoder = model_encoder(decoder.info)
        made = kit_from_folder(args.folder, decoder, encoder, fit_steps=args.fit_steps)
        write_kit(made.kit, args.output, args.force)
    except (ModelError, FolderError, OSError) as exc:
        print(f"dkvae-live kit-from-folder: {exc}", file=sys.stderr)
        return 2
    print(summary(made, args.output))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "render":
        return render_main(args)
    if args.command == "export-kit":
        return export_main(args)
    if args.command == "kit-from-folder":
        return folder_main(args)
    if args.command == "map":
        return map_main(args)
    map_large_buffers_apart()
    rename_threads(current_thread_name(), LIBRARY_THREAD)
    name_current_thread(MAIN_THREAD)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # python-osc logs every datagram it cannot parse on the root logger; we count and report
    # those ourselves (rate-limited), so a flood of garbage cannot flood the log.
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: "pythonosc" not in record.pathname)
    if args.list_devices or args.list_midi_ports:
        _list(args)
        return 0
    settings = _settings(args)
    actions: queue.SimpleQueue[str] = queue.SimpleQueue()
    signal_actions = {
        signal.SIGINT: "stop",
        signal.SIGTERM: "stop",
        signal.SIGHUP: "reload kit",
        signal.SIGUSR1: "reload model",
    }

    def on_signal(signum: int, frame: object) -> None:
        action = signal_actions[signal.Signals(signum)]
        if action == "stop":
            _stop_deadline()  # from now: also when the signal came during the start-up
        actions.put(action)

    for sig in signal_actions:
        signal.signal(sig, on_signal)
    engine: Engine | None = None
    try:
        engine = Engine(settings, on_ready=lambda: actions.put("ready"))
        info = engine.decoder.info
        log.info(
            "model %s (%s, %s, %d Hz, latent %d, classes %s) from %s",
            info.name,
            info.model_kind,
            info.output_kind,
            info.sample_rate,
            info.latent_size,
            ", ".join(info.class_names),
            info.path,
        )
        log.info("kit %r from %s", engine.kit_name, engine.kit_path or "the shipped default")
        engine.start()
    except (ModelError, KitError, AudioDeviceError, MidiError, OscError) as exc:
        print(f"dkvae-live: {exc}", file=sys.stderr)
        if engine is not None:
            engine.stop()
        return 2
    status = engine.status()
    log.info(
        "audio out %r on %s at %d Hz, block %s, output latency %.2f ms",
        engine.device_name,
        engine.host_api,
        engine.samplerate,
        settings.blocksize or "host's",
        status["output_latency_ms"],
    )
    if engine.midi_port:
        log.info("MIDI in on %s", engine.midi_port)
    assert engine.osc is not None
    log.info(
        "OSC on %s:%d (address space: docs/osc.md); files allowed under %s",
        *engine.osc.address,
        ", ".join(str(d) for d in engine.allowed_dirs),
    )
    log.info("serving; rendering %d pads, each plays once rendered", len(engine.pads.notes()))
    while True:
        action = actions.get()  # asleep until a signal handler or the engine puts an action
        if action == "stop":
            break
        if action == "ready":
            notes = engine.pads.notes()
            log.info("ready: %d pads on notes %s", len(notes), ",".join(map(str, notes)))
        elif action == "reload kit":
            engine.reload_kit()
        elif action == "reload model":
            try:
                engine.load_model(engine.decoder.path)
            except ModelError as exc:
                log.error("model not reloaded, the old one keeps playing: %s", exc)
    log.info("stopping")
    engine.stop()
    log.info("stopped")
    # Leave without finalizing: everything is stopped and flushed, and finalizing would only
    # free memory and finalize the clients of a JACK server that may have died meanwhile,
    # which crashes libjack in their destructors.
    _leave(0)


if __name__ == "__main__":
    sys.exit(main())
