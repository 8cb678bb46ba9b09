"""Service names and protocol numbers, read as iptables reads them.

iptables resolves ``--dport http`` with ``getservbyname(name, proto)`` (libxtables
``xtables_parse_port`` → ``service_to_port``) and ``-p 17`` / ``-p udp`` through
``getprotobynumber``/``getprotobyname`` (``xtables_parse_protocol``), i.e. from
``/etc/services`` and ``/etc/protocols``. natlens does the same, and falls back to a small
bundled table (IANA assignments) on systems without those files (slim containers).
"""

from __future__ import annotations

import socket
from pathlib import Path

from natlens.inputs import is_decimal
from natlens.parse.hostfiles import split_fields
from natlens.parse.tokens import split_lines

__all__ = ["PROTOCOL_NUMBERS", "SERVICES", "port_number", "protocol_name"]

PROTOCOL_NUMBERS: dict[int, str] = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
"""IANA protocol numbers of the protocols a packet may have (natlens names ipv6-icmp
``icmpv6``)."""

_PROTOCOL_ALIASES = {"ipv6-icmp": "icmpv6", "icmp6": "icmpv6"}

SERVICES: dict[str, int] = {
    "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "dns": 53, "http": 80,
    "www": 80, "kerberos": 88, "pop3": 110, "ntp": 123, "imap": 143, "imap2": 143,
    "snmp": 161, "ldap": 389, "https": 443, "submissions": 465, "syslog": 514,
    "submission": 587, "ldaps": 636, "imaps": 993, "pop3s": 995, "mysql": 3306,
    "postgresql": 5432, "mdns": 5353, "http-alt": 8080, "webcache": 8080,
}
"""Well-known services (IANA port numbers) used when ``/etc/services`` has no entry or is
missing."""


def _etc_protocols(path: Path = Path("/etc/protocols")) -> dict[str, int]:
    """``/etc/protocols`` as name/alias → number (empty when the file is missing)."""
    names: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return names
    for line in split_lines(text):  # as glibc reads it: lines at "\n", fields at blanks
        fields = split_fields(line.split("#", 1)[0])
        if len(fields) >= 2 and is_decimal(fields[1]):
            for name in (fields[0], *fields[2:]):
                names.setdefault(name.lower(), int(fields[1]))
    return names


def protocol_name(text: str) -> str:
    """The protocol ``text`` names, as natlens spells it: ``"TCP"`` → ``"tcp"``, ``"17"`` →
    ``"udp"``, ``"ipv6-icmp"``/``"58"`` → ``"icmpv6"``. Case-insensitive. A name or number
    natlens does not model comes back lower-cased as given (``Packet`` then refuses it with
    the list of protocols it knows)."""
    word = text.strip().lower()
    if word in _PROTOCOL_ALIASES:
        return _PROTOCOL_ALIASES[word]
    if word.isascii() and word.isdigit():
        return PROTOCOL_NUMBERS.get(int(word), word)
    if word in PROTOCOL_NUMBERS.values():
        return word
    number = _etc_protocols().get(word)
    if number is not None and number in PROTOCOL_NUMBERS:
        return PROTOCOL_NUMBERS[number]
    return word


def port_number(text: str, proto: str) -> int | None:
    """The port ``text`` names for ``proto``: digits as a number, else a service name from
    ``/etc/services`` (``getservbyname``), else from ``SERVICES``; None when unknown.
    Case-insensitive, as glibc's lookup is not (iptables would refuse ``HTTP``; natlens accepts
    it)."""
    word = text.strip()
    if word.isascii() and word.isdigit():
        return int(word)
    for name in dict.fromkeys((word, word.lower())):
        try:
            return socket.getservbyname(name, proto)
        except (OSError, UnicodeError):
            continue
    return SERVICES.get(word.lower())
