"""Guess what a text does not say: the table of ``-S``/``-L`` output, the address family.

A table is told by its built-in chains (nat has PREROUTING, INPUT, OUTPUT and POSTROUTING; raw
only PREROUTING and OUTPUT; mangle all five; filter INPUT, FORWARD and OUTPUT) and by targets
valid only in it (DNAT, SNAT, MASQUERADE and REDIRECT need nat; NOTRACK and CT need raw; TPROXY,
TOS, TTL... need mangle). MARK, TCPMSS and CLASSIFY are mangle's usual targets but valid in any
table: beside filter's three built-in chains alone they do not make the table mangle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from natlens.model import Family, Table, TableName
from natlens.parse.families import extension_family

__all__ = ["infer_family", "infer_table"]

_NAT_TARGETS = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"})
_RAW_TARGETS = frozenset({"NOTRACK", "CT", "TRACE"})
_MANGLE_TARGETS = frozenset({"MARK", "TPROXY", "TCPMSS", "TOS", "TTL", "HL", "DSCP", "ECN",
                             "CHECKSUM", "CLASSIFY"})
_ANY_TABLE_TARGETS = frozenset({"MARK", "TCPMSS", "CLASSIFY"})
"""Mangle's usual targets that the kernel takes in any table (xt_MARK.c, xt_TCPMSS.c and
xt_CLASSIFY.c register them without ``.table``): Tailscale MARKs in filter's ts-forward, and
``-A FORWARD ... -j TCPMSS --clamp-mss-to-pmtu`` is common in filter. The others are
registered with ``.table = "mangle"``."""
_FILTER_CHAINS = frozenset({"INPUT", "FORWARD", "OUTPUT"})


def infer_table(builtin_chains: Iterable[str], targets: Iterable[str]) -> TableName:
    """The table whose built-in chains and targets fit best (filter when nothing tells).

    Nat when a target needs it, even beside a ``DROP``, which nat refuses: the caller says so."""
    chains = set(builtin_chains)
    names = set(targets)
    if names & _NAT_TARGETS:
        return TableName.NAT
    if "FORWARD" in chains and ("PREROUTING" in chains or "POSTROUTING" in chains):
        return TableName.MANGLE
    if "POSTROUTING" in chains or ("PREROUTING" in chains and "INPUT" in chains):
        # nat refuses DROP (iptables: "the nat table is not intended for filtering")
        return TableName.MANGLE if "DROP" in names else TableName.NAT
    if "PREROUTING" in chains:
        return TableName.MANGLE if names & _MANGLE_TARGETS else TableName.RAW
    if names & _RAW_TARGETS and "INPUT" not in chains:
        return TableName.RAW
    if names & (_MANGLE_TARGETS - _ANY_TABLE_TARGETS):
        return TableName.MANGLE
    if names & _MANGLE_TARGETS and not chains >= _FILTER_CHAINS:
        # a whole table listed with INPUT, FORWARD and OUTPUT but neither PREROUTING nor
        # POSTROUTING is not mangle (``-t mangle -L``/``-S`` shows all five)
        return TableName.MANGLE
    return TableName.FILTER


def infer_family(tool: str | None, tables: Sequence[Table]) -> Family:
    """IPv6 when the header names ip6tables-save or the first rule that tells (an address, the
    ``ipv6-icmp`` protocol, an extension of one family) is IPv6's, else IPv4."""
    if tool == "ip6tables":
        return Family.IPV6
    if tool == "iptables":
        return Family.IPV4
    for table in tables:
        for rule in table.rules:
            for addr in (rule.source, rule.destination):
                if addr is not None:
                    return Family.IPV6 if addr.network.version == 6 else Family.IPV4
            if rule.protocol is not None and rule.protocol.name == "ipv6-icmp":
                return Family.IPV6
            extension = extension_family(rule)  # -m hl, -m icmp6, -j HL: IPv6; -m ttl: IPv4
            if extension is not None:
                return Family.IPV6 if extension[0] == 6 else Family.IPV4
    return Family.IPV4
