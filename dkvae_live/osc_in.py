"""OSC in: one UDP socket read by one thread; python-osc parses, we check and dispatch.

A plain blocking socket on its own thread (python-osc's `BlockingOSCUDPServer` design) with a
4 MiB receive buffer, so bursts are not lost. We read the socket ourselves rather than through
python-osc's dispatcher because every datagram that is malformed, from a sender not allowed,
for an unknown address or with wrong arguments must be counted, and the sender told why.

Each address is registered with a signature such as `note:i velocity:i?`: `i` an integer (an
integral float is accepted, as Pd sends floats), `f` a finite float (an int is accepted), `s` a
string, `n` an integer or a string; `?` marks an optional last argument, `*` any number of them.
docs/osc.md lists every address with its signature; a test checks the two agree.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from .rt import name_current_thread

log = logging.getLogger(__name__)

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
MAX_DATAGRAM = 65536
MAX_REPLIES_PER_SECOND = 200
MAX_REPLY_TARGETS = 64
THREAD_NAME = "dkvae-osc"

Sender = tuple[str, int]
Handler = Callable[[list[Any], Sender], None]


MAX_BUNDLE_DEPTH = 32


def bundle_is_sane(data: bytes, depth: int = 0) -> bool:
    """Walk a bundle's element sizes before python-osc parses it: a negative or oversized size
    sends python-osc's parser into an endless loop, and deep nesting into deep recursion."""
    if not data.startswith(b"#bundle\x00"):
        return True
    if depth >= MAX_BUNDLE_DEPTH or len(data) < 16:
        return False
    index = 16
    while index < len(data):
        if index + 4 > len(data):
            return False
        size = int.from_bytes(data[index : index + 4], "big", signed=True)
        index += 4
        if size <= 0 or size % 4 or index + size > len(data):
            return False
        if not bundle_is_sane(data[index : index + size], depth + 1):
            return False
        index += size
    return True


class OscError(Exception):
    """The OSC socket cannot be opened (port taken, bad address)."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # i, f, s or n
    repeat: str  # "", "?" or "*"


def parse_signature(signature: str) -> tuple[Param, ...]:
    params = []
    for token in signature.split():
        name, _, kind = token.partition(":")
        repeat = kind[1:] if len(kind) > 1 else ""
        if kind[:1] not in ("i", "f", "s", "n") or repeat not in ("", "?", "*"):
            raise ValueError(f"bad signature token {token!r}")
        params.append(Param(name, kind[0], repeat))
    return tuple(params)


def _convert(value: Any, kind: str, name: str) -> Any:
    if kind == "s":
        if isinstance(value, str):
            return value
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        if kind == "n" and isinstance(value, str):
            return value
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if kind == "f":
        return float(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value}")
        return int(value)
    return value


def check_arguments(params: Sequence[Param], args: Sequence[Any]) -> list[Any]:
    """Convert `args` to what `params` asks for, or raise ValueError saying what is wrong."""
    out: list[Any] = []
    index = 0
    for param in params:
        if param.repeat == "*":
            out.extend(_convert(v, param.kind, param.name) for v in args[index:])
            index = len(args)
        elif index < len(args):
            out.append(_convert(args[index], param.kind, param.name))
            index += 1
        elif param.repeat != "?":
            raise ValueError(f"missing argument {param.name}")
    if index < len(args):
        raise ValueError(f"too many arguments: expected at most {index}, got {len(args)}")
    return out


class OscServer:
    """Receives OSC on `host:port` on its own thread and dispatches to registered handlers."""

    def __init__(
        self,
        host: str,
        port: int,
        on_drop: Callable[[str, str], None],
        allowed_senders: Sequence[str] = (),
    ) -> None:
        self._on_drop = on_drop
        self._allowed = set(allowed_senders)
        self._routes: dict[str, tuple[tuple[Param, ...], Handler]] = {}
        self.signatures: dict[str, str] = {}
        self._reply_ports: dict[Sender, int] = {}
        self._reply_window = (0.0, 0)
        self.received = 0
        self._stopping = False
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            hint = " (is another dkvae-live running?)" if exc.errno == 98 else ""
            raise OscError(f"cannot listen for OSC on {host}:{port}: {exc.strerror}{hint}") from exc
        self.address = self._socket.getsockname()
        self._thread = threading.Thread(target=self._serve, name=THREAD_NAME, daemon=True)

    def add(self, address: str, signature: str, handler: Handler) -> None:
        self._routes[address] = (parse_signature(signature), handler)
        self.signatures[address] = signature

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        # The thread sleeps in recvfrom (no timeout: it wakes for datagrams only). Linux ends
        # that wait when the socket is shut down, though an unconnected UDP socket reports
        # ENOTCONN for it.
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
        self._socket.close()

    def set_reply_port(self, sender: Sender, port: int) -> None:
        """Replies to this sender go to `port` on its host from now on (Pd sends from one
        socket and listens on another). The oldest of too many senders is forgotten."""
        if not 1 <= port <= 65535:
            raise ValueError(f"port must be in range 1..65535, got {port}")
        self._reply_ports.pop(sender, None)
        if len(self._reply_ports) >= MAX_REPLY_TARGETS:
            del self._reply_ports[next(iter(self._reply_ports))]
        self._reply_ports[sender] = port

    def reply(self, sender: Sender, address: str, *args: Any) -> None:
        """Send one message back to the sender (or to its reply port), rate-limited."""
        now = time.monotonic()
        start, sent = self._reply_window
        if now - start >= 1.0:
            start, sent = now, 0
        if sent >= MAX_REPLIES_PER_SECOND:
            self._on_drop("osc.reply_rate", address)
            return
        self._reply_window = (start, sent + 1)
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        target = (sender[0], self._reply_ports.get(sender, sender[1]))
        try:
            self._socket.sendto(builder.build().dgram, target)
        except OSError as exc:
            self._on_drop("osc.reply_failed", f"{target}: {exc.strerror}")

    def _serve(self) -> None:
        # Not real-time: a flood of datagrams must not let this thread starve the machine.
        name_current_thread(THREAD_NAME)
        while not self._stopping:
            try:
                data, sender = self._socket.recvfrom(MAX_DATAGRAM)
            except OSError:
                if self._stopping:
                    return
                continue
            if self._stopping:
                return
            try:
                self.handle_datagram(data, sender)
            except Exception as exc:  # never let one datagram end the thread
                self._on_drop("osc.error", f"{exc!r}")

    def handle_datagram(self, data: bytes, sender: Sender) -> None:
        self.received += 1
        if self._allowed and sender[0] not in self._allowed:
            self._on_drop("osc.not_allowed", sender[0])
            return
        if not bundle_is_sane(data):
            self._on_drop("osc.malformed", f"{len(data)} bytes from {sender[0]}: bad bundle")
            return
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as exc:  # ParseError, and RecursionError for deep bundles
            self._on_drop("osc.malformed", f"{len(data)} bytes from {sender[0]}: {exc}")
            return
        for message in messages:
            self._dispatch(message.address, list(message.params), sender)

    def _dispatch(self, address: str, args: list[Any], sender: Sender) -> None:
        route = self._routes.get(address)
        if route is None:
            self._on_drop("osc.unknown_address", address)
            self.reply(sender, "/dkvae/error", address, "unknown address")
            return
        params, handler = route
        try:
            handler(check_arguments(params, args), sender)
        except (ValueError, KeyError) as exc:
            reason = exc.args[0] if exc.args else str(exc)
            self._on_drop("osc.invalid", f"{address}: {reason}")
            self.reply(sender, "/dkvae/error", address, str(reason))
