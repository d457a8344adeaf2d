"""The fuzz's C MIDI sender (bench/harness/raw_midi.py) on a real JACK server: bytes arrive
as sent."""

from __future__ import annotations

import os
import time

from harness.live import MidiCapture, XrunWatch
from harness.raw_midi import RawMidiSender

MESSAGES = [
    bytes([0x99, 36, 100]),
    bytes([0x40, 0x10]),  # running status: data bytes alone
    bytes([0x90, 36, 127, 38, 90, 0x00]),  # six bytes, not SysEx: rtmidi refuses these
    bytes([0xF0, *range(60), 0xF7]),
    bytes([0xF8]),
    bytes([0xC5]),  # cut short
]


def test_every_message_arrives_as_sent_one_a_cycle_and_an_impossible_one_is_dropped(
    jack: None,
) -> None:
    """In a cycle in which a client is late JACK can lose that cycle's message (the soak
    counts such notes), so the messages are sent again, by a new sender into a new capture,
    while JACK reports an xrun: up to 8 times, then the last try is judged."""
    for _attempt in range(8):
        capture = MidiCapture()
        watch = XrunWatch(capture, daemon_client="")
        sender = RawMidiSender(f"dkvae-test-raw-{os.getpid()}", capture.port_name, per_cycle=1)
        try:
            sender.send(MESSAGES[:3])
            sender.send([bytes(0xFFFE)])  # over any JACK MIDI buffer of a 64-frame period
            sender.send(MESSAGES[3:])
            sent, dropped = sender.report()
            deadline = time.monotonic() + 2
            while len(capture.events) < len(MESSAGES) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            sender.close()
            clean = watch.clean()
            capture.close()
        if clean:
            break
    assert (sent, dropped) == (len(MESSAGES), 1)
    assert [data for _, data in capture.events] == MESSAGES
    frames = [frame for frame, _ in capture.events]
    assert len(set(frames)) == len(frames)  # one a cycle: each at the start of its own
    assert sender.proc.returncode == 0
