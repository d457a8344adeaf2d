"""Hypothesis strategies for hostile OSC datagrams and MIDI messages, and a runner that fires
them at a live daemon. Used by tests/test_fuzz_jack.py (a few thousand) and bench/fuzz.py
(100,000 and more)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness.live import osc_datagram
from harness.osc_doc import documented_addresses

# Every request address of docs/osc.md, in its order: a new address is fuzzed as soon as it is
# documented.
ADDRESSES = list(documented_addresses())
PATHS = [
    "../../etc/passwd",
    "/etc/shadow",
    "~/../../root",
    "a/../../b",
    "kit\x00.toml",
    "",
    "/dev/zero",
    "/proc/self/mem",
    "." * 300,
    "x" * 5000,
]

numbers = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0, 36, 38, 127, 128, -1, 1e30, -1e30, float("nan"), float("inf")]),
)
arguments = st.one_of(
    numbers,
    st.text(max_size=40),
    st.sampled_from(PATHS),
    st.binary(max_size=64),
    st.booleans(),
    st.none(),
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A well-formed OSC message with arguments of any type, count and value."""
    address = draw(
        st.one_of(
            st.sampled_from(ADDRESSES),
            st.text(min_size=1, max_size=30).map(lambda s: "/" + s.replace("\x00", "")),
        )
    )
    args = draw(st.lists(arguments, max_size=12))
    try:
        return osc_datagram(address, *args)
    except Exception:  # a value the builder cannot encode: send the bare address
        return osc_datagram(address)


def bundle(elements: list[bytes]) -> bytes:
    body = b"".join(struct.pack(">i", len(e)) + e for e in elements)
    return b"#bundle\x00" + b"\x00\x00\x00\x00\x00\x00\x00\x01" + body


@st.composite
def nested_bundles(draw: st.DrawFn) -> bytes:
    inner = draw(messages())
    for _ in range(draw(st.integers(1, 300))):
        inner = bundle([inner])
    return inner


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A valid message cut short, grown with garbage, or with a byte flipped."""
    data = bytearray(draw(messages()))
    how = draw(st.sampled_from(["cut", "grow", "flip", "size"]))
    if how == "cut":
        return bytes(data[: draw(st.integers(0, max(0, len(data) - 1)))])
    if how == "grow":
        return bytes(data) + draw(st.binary(min_size=1, max_size=64))
    if how == "size":  # a bundle element whose size field lies
        return b"#bundle\x00" + bytes(8) + struct.pack(">i", draw(st.integers(-5, 1 << 20))) + data
    if data:
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    return bytes(data)


datagrams = st.one_of(
    messages(),
    damaged(),
    nested_bundles(),
    st.binary(max_size=512),
    st.binary(min_size=8000, max_size=60000).map(lambda b: b"/dkvae/pad/latent\x00\x00\x00" + b),
)

midi_messages = st.one_of(
    st.lists(st.integers(0, 255), min_size=1, max_size=6),  # anything, running status too
    st.lists(st.integers(0, 127), min_size=1, max_size=64).map(lambda b: [0xF0, *b, 0xF7]),
    st.tuples(st.integers(0x80, 0xEF), st.integers(0, 255)).map(list),  # cut short
    st.tuples(
        st.sampled_from([0x90, 0x99, 0xB0, 0xB9]), st.integers(0, 127), st.integers(0, 127)
    ).map(list),
)


def fire(
    strategy: st.SearchStrategy,
    count: int,
    send: Callable[[object], None],
    pause_every: int = 0,
    pause: float = 0.0,
) -> int:
    """Draw `count` examples from `strategy` and `send` each; returns how many were sent."""
    sent = [0]

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(example: object) -> None:
        send(example)
        sent[0] += 1
        if pause_every and sent[0] % pause_every == 0:
            time.sleep(pause)

    run()
    return sent[0]


def draw_examples(strategy: st.SearchStrategy, count: int) -> list:
    """`count` examples drawn ahead: Hypothesis is CPU-hungry, and a test process whose JACK
    callbacks wait for the GIL behind it would make the very xruns it is looking for."""
    examples: list = []
    fire(strategy, count, examples.append)
    return examples


def caught_up_status(daemon: Any, attempts: int = 10) -> dict:
    """The status once the daemon has worked through the fuzz's backlog of datagrams (deep
    bundles take a while to parse) and the reply rate limit its error replies used up: asked
    again every 1.1 s, up to `attempts` times."""
    for _ in range(attempts):
        daemon.osc.send("/dkvae/reply_to", daemon.osc.sock.getsockname()[1])  # fuzz moved it
        time.sleep(1.1)
        try:
            return dict(daemon.osc.status())
        except TimeoutError:
            continue
    raise AssertionError(f"no status reply after {attempts} attempts:\n{daemon.log()[-2000:]}")


def send_examples(daemon: Any, osc_examples: list, midi_examples: list, pause: float) -> None:
    """Send the drawn datagrams (a `pause` every 200) and MIDI messages to a running daemon."""
    from harness.live import MidiSender

    for i, datagram in enumerate(osc_examples):
        daemon.osc.send_raw(datagram)
        if i % 200 == 199:
            time.sleep(pause)
    midi = MidiSender(daemon.midi_port, per_cycle=8)
    for message in midi_examples:
        midi.send(message)
    midi.flush(timeout=120)
    time.sleep(0.5)
    midi.close()
