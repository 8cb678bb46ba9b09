"""REJECT's ``--reject-with`` types, per address family, as iptables reads and prints them.

iptables 1.8.9 extensions/libipt_REJECT.c and libip6t_REJECT.c: each family has a table of
(name, alias) pairs in kernel-value order (``IPT_ICMP_*`` / ``IP6T_ICMP6_*``; the ``#if 0`` echo
and not-neighbour entries are gaps). ``REJECT_parse`` takes the first entry whose name or alias
starts with the argument, compared without case (``strncasecmp(name, arg, strlen(arg))``), so
``icmp-h`` is ``icmp-host-unreachable``, ``adm`` (IPv6) ``icmp6-adm-prohibited`` and the empty
string the first entry; anything else is "unknown reject type". ``REJECT_save`` prints the
entry's name; without ``--reject-with`` the type is port-unreachable (``REJECT_init``).
"""

from __future__ import annotations

__all__ = ["REJECT_DEFAULT", "REJECT_TYPES", "reject_families", "reject_type"]

REJECT_TYPES: dict[int, tuple[tuple[str, str], ...]] = {
    4: (("icmp-net-unreachable", "net-unreach"), ("icmp-host-unreachable", "host-unreach"),
        ("icmp-proto-unreachable", "proto-unreach"), ("icmp-port-unreachable", "port-unreach"),
        ("icmp-net-prohibited", "net-prohib"), ("icmp-host-prohibited", "host-prohib"),
        ("tcp-reset", "tcp-rst"), ("icmp-admin-prohibited", "admin-prohib")),
    6: (("icmp6-no-route", "no-route"), ("icmp6-adm-prohibited", "adm-prohibited"),
        ("icmp6-addr-unreachable", "addr-unreach"), ("icmp6-port-unreachable", "port-unreach"),
        ("tcp-reset", "tcp-reset"), ("icmp6-policy-fail", "policy-fail"),
        ("icmp6-reject-route", "reject-route")),
}
"""IP version -> (name, alias) pairs in the order ``REJECT_parse`` tries them."""

REJECT_DEFAULT = {4: "icmp-port-unreachable", 6: "icmp6-port-unreachable"}
"""IP version -> the type of a REJECT without ``--reject-with``."""


def reject_type(text: str, version: int) -> str | None:
    """The type name iptables-save prints for ``--reject-with text`` in IP ``version`` (4 or
    6) rules, or None when that family's iptables refuses it.

    >>> reject_type("net-unreach", 4), reject_type("ADM", 6), reject_type("icmp", 6)
    ('icmp-net-unreachable', 'icmp6-adm-prohibited', 'icmp6-no-route')
    >>> reject_type("foo", 4) is None, reject_type("tcp-rst", 6) is None
    (True, True)
    """
    lowered = text.lower()
    for name, alias in REJECT_TYPES[version]:
        if name.startswith(lowered) or alias.startswith(lowered):
            return name
    return None


def reject_families(text: str) -> tuple[str | None, str | None]:
    """(IPv4 type, IPv6 type) that ``--reject-with text`` names (None: that family refuses)."""
    return reject_type(text, 4), reject_type(text, 6)
