"""Old name of harness.live (bench/harness/live.py), kept only for tests/test_realtime_parts.py
until that file is split (issue 19); import harness.live instead."""

from harness.live import osc_datagram

__all__ = ["osc_datagram"]
