"""The transport floor: a process that echoes triggers back out as JACK MIDI, doing nothing else.

It receives the way the daemon does (python-rtmidi JACK input, polled from a thread with
SCHED_FIFO priority 5 and the same poll interval; a UDP socket read by a thread of its own) and
sends every note-on, and every UDP datagram as a note-on, straight out of a JACK MIDI output
port `NAME:out`. Measured from a note sent to the echo's arrival at a JACK client, this is what
JACK MIDI (or UDP) plus a polling Python process cost before any sound is made.

    python bench/midi_echo.py NAME UDP_PORT    (prints "ready" when its ports exist)
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time

from dkvae_live.midi_in import POLL_INTERVAL, QUEUE_SIZE
from dkvae_live.rt import promote_current_thread


def main() -> int:
    import rtmidi

    name, udp_port = sys.argv[1], int(sys.argv[2])
    midi_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name, queue_size_limit=QUEUE_SIZE)
    midi_in.open_virtual_port("in")
    midi_out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
    midi_out.open_virtual_port("out")
    lock = threading.Lock()  # rtmidi output from two threads

    def poll_midi() -> None:
        promote_current_thread(5)
        while True:
            message = midi_in.get_message()
            if message is None:
                time.sleep(POLL_INTERVAL)
                continue
            data = message[0]
            if len(data) == 3 and data[0] & 0xF0 == 0x90 and data[2] > 0:
                with lock:
                    midi_out.send_message(data)

    def serve_udp() -> None:
        promote_current_thread(5)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", udp_port))
        while True:
            sock.recvfrom(65536)
            with lock:
                midi_out.send_message([0x99, 36, 127])

    threading.Thread(target=poll_midi, daemon=True).start()
    threading.Thread(target=serve_udp, daemon=True).start()
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # until our parent closes stdin or ends us
    return 0


if __name__ == "__main__":
    sys.exit(main())
