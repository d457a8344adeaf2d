"""The OSC boundary of dkvae_live/osc_in.py: signatures, malformed datagrams, senders."""

from __future__ import annotations

import pytest
from harness.live import osc_datagram

from dkvae_live.osc_in import OscServer, check_arguments, parse_signature


def test_osc_signatures_convert_or_say_what_is_wrong() -> None:
    params = parse_signature("note:i velocity:i?")
    assert check_arguments(params, [36.0]) == [36]
    assert check_arguments(params, [36, 90.0]) == [36, 90]
    wrong: list[tuple[list[object], str]] = [
        ([], "missing argument note"),
        ([36.5], "note must be a whole number"),
        (["36"], "note must be a number"),
        ([True], "note must be a number"),
        ([36, 1, 2], "too many arguments"),
        ([float("nan")], "finite"),
    ]
    for bad, message in wrong:
        with pytest.raises(ValueError, match=message):
            check_arguments(params, bad)
    latent = parse_signature("note:i values:f*")
    assert check_arguments(latent, [1, 2, 3.5]) == [1, 2.0, 3.5]
    with pytest.raises(ValueError, match="finite"):
        check_arguments(latent, [1, 0.0, float("inf")])
    cls = parse_signature("note:i class:n")
    assert check_arguments(cls, [1, "snare"]) == [1, "snare"]
    assert check_arguments(cls, [1, 2.0]) == [1, 2]


def test_osc_server_counts_malformed_and_unknown_and_replies_with_errors() -> None:
    dropped: list[str] = []
    server = OscServer("127.0.0.1", 0, lambda reason, detail: dropped.append(reason))
    got: list[list[object]] = []
    server.add("/x", "a:i", lambda args, sender: got.append(args))
    for data in [
        b"",
        b"\x00\x01",
        b"#bundle\x00" + b"\xff" * 7,
        osc_datagram("/x", 1),
        osc_datagram("/x", "no"),
        osc_datagram("/y"),
    ]:
        server.handle_datagram(data, ("127.0.0.1", 1))
    server.stop()
    assert got == [[1]]
    assert dropped.count("osc.malformed") == 3
    assert dropped.count("osc.invalid") == 1
    assert dropped.count("osc.unknown_address") == 1


def test_osc_allowlist_drops_other_senders() -> None:
    dropped: list[str] = []
    server = OscServer("127.0.0.1", 0, lambda r, d: dropped.append(r), ["10.0.0.2"])
    got: list[object] = []
    server.add("/x", "", lambda args, sender: got.append(sender))
    server.handle_datagram(osc_datagram("/x"), ("10.0.0.3", 5000))
    server.handle_datagram(osc_datagram("/x"), ("10.0.0.2", 5000))
    server.stop()
    assert dropped == ["osc.not_allowed"] and got == [("10.0.0.2", 5000)]


def test_second_server_on_the_same_port_says_so() -> None:
    from dkvae_live.osc_in import OscError

    first = OscServer("127.0.0.1", 0, lambda r, d: None)
    try:
        with pytest.raises(OscError, match="another dkvae-live"):
            OscServer("127.0.0.1", first.address[1], lambda r, d: None)
    finally:
        first.stop()


def test_bundles_with_lying_sizes_or_deep_nesting_are_dropped_not_parsed_forever() -> None:
    import struct

    dropped: list[str] = []
    server = OscServer("127.0.0.1", 0, lambda reason, detail: dropped.append(reason))
    message = osc_datagram("/x", 1)
    for size in (-5, -4, 0, 3, 1 << 20):
        server.handle_datagram(
            b"#bundle\x00" + bytes(8) + struct.pack(">i", size) + message, ("127.0.0.1", 1)
        )
    deep = message
    for _ in range(40):
        deep = b"#bundle\x00" + bytes(8) + struct.pack(">i", len(deep)) + deep
    server.handle_datagram(deep, ("127.0.0.1", 1))
    server.stop()
    assert dropped == ["osc.malformed"] * 6
