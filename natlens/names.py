"""The length of a name as the kernel and iptables count it: bytes, not characters.

iptables measures chain, interface and extension names with ``strlen`` (chain names at most 28
bytes, iptables-restore's chain check; interface names at most 15, libxtables
``xtables_parse_interface``; extension names at most 28, ``XT_EXTENSION_MAXNAMELEN - 1``): UTF-8
bytes. A name that ``natlens snapshot`` captured holds ``\\xNN`` for each byte that was not
UTF-8 (natlens.capture_encoding), which counts as the one byte it stands for.

A module of its own so that the parsers, the CLI's option checks and the snapshot schemas share
one rule without importing the capture's code (the parser's start-up, issue 13).
"""

from __future__ import annotations

import re

__all__ = ["escaped_bytes", "name_bytes"]

_ESCAPED = re.compile(r"\\x[0-9a-f]{2}")


def escaped_bytes(name: str) -> int:
    """How many ``\\xNN`` escapes ``name`` holds: each stands for one byte of the kernel's name
    in 4 characters, so length limits (28 for a chain, 15 for an interface) subtract 3 for each.

    >>> escaped_bytes(r"GR\\xdcNE"), escaped_bytes("eth0"), escaped_bytes(r"a\\x4")
    (1, 0, 0)
    """
    return len(_ESCAPED.findall(name)) if "\\x" in name else 0


def name_bytes(name: str) -> int:
    """The length in bytes of the kernel's name that ``name`` spells, as iptables measures it
    (``strlen``): UTF-8 bytes (a lone surrogate, from API text, counted as UTF-8 would encode
    it), each ``\\xNN`` escape written by the capture counting as the one byte it stands for.

    >>> name_bytes("eth0"), name_bytes("ü" * 8), name_bytes("et" + chr(92) + "xe9")
    (4, 16, 3)
    """
    return len(name.encode("utf-8", "surrogatepass")) - 3 * escaped_bytes(name)
