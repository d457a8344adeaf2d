"""docs/osc.md read as data: its address table, its reply table and its status keys.

The document is the one place the OSC address space is written; the daemon's registered
signatures (tests/test_interfaces.py), its status (tests/test_rest_jack.py), the patches
(tests/test_patches.py) and the fuzz's addresses (harness/fuzzing.py) are held to what this
module reads from it, so all read it the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

OSC_DOC = Path(__file__).resolve().parents[2] / "docs" / "osc.md"


def _section(title: str) -> str:
    """The text of `## title` up to the next `## ` heading."""
    return OSC_DOC.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def documented_addresses() -> dict[str, str]:
    """Request address -> signature as written (`note:i velocity:i?`), from the address table."""
    rows = re.findall(r"^\| `(/[^`]+)` \| `([^`]*)` \|", _section("Addresses"), flags=re.MULTILINE)
    return dict(rows)


def documented_replies() -> list[re.Pattern[str]]:
    """The reply addresses of the reply table; `<key>` stands for any one part."""
    addresses = re.findall(r"^\| `(/[^`]+)` \|", _section("Replies"), flags=re.MULTILINE)
    return [re.compile(re.sub(r"<\w+>", "[^/]+", re.escape(a))) for a in addresses]


def documented_status_keys() -> set[str]:
    """Every name in backticks in the paragraph that begins `Status keys:`: the status keys and
    the reasons that `dropped.<reason>` stands for."""
    paragraph = _section("Replies").split("Status keys:", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`([^`]+)`", paragraph))
