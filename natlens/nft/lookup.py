"""Set and map lookups without expanding the set: a dict for exact keys, sorted interval arrays
searched with ``bisect`` for prefixes and ranges.

Semantics (nft(8) "SETS", "MAPS"; kernel ``nft_set_hash.c``, ``nft_set_rbtree.c``,
``nft_set_pipapo.c``): an element is a value, a prefix (``10.0.0.0/8``) or a range
(``1000-2000``), per component for a concatenation (``ip daddr . tcp dport``); ``*`` is the
catch-all element that answers when nothing else does; interface names ending in ``*`` match by
prefix. Values are normalised to integers (addresses, ports, protocol numbers, marks, flag bits)
or strings (interface names, symbols natlens has no number for) by ``normalise``.

Cost per lookup: O(1) for exact keys, O(log n) for intervals of a one-component set; for a
concatenation with intervals, O(log n + k) where k is the number of elements whose first
component covers the value (the remaining components are then compared one by one).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from natlens.nft.datatypes import (
    CT_STATE_BITS,
    CT_STATUS_BITS,
    NFPROTO,
    PKTTYPES,
    PROTOCOL_NUMBERS,
    TCP_FLAG_BITS,
)
from natlens.nft.model import MAPPINGS, Element, Json

__all__ = ["Scalar", "Interval", "KeyPart", "SetIndex", "normalise", "build_index"]

Scalar = int | str
"""A normalised value: an integer (addresses, ports, marks...) or a string (names)."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A closed range of normalised integers (a prefix or an ``a-b`` range)."""

    low: int
    high: int


KeyPart = Scalar | Interval
"""One component of a normalised element key."""

ICMP_TYPES = {
    "echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5,
    "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10,
    "time-exceeded": 11, "parameter-problem": 12, "timestamp-request": 13,
    "timestamp-reply": 14, "info-request": 15, "info-reply": 16, "address-mask-request": 17,
    "address-mask-reply": 18,
}
"""nft's icmp_type names (nft(8) "ICMP TYPE TYPE"; ``src/proto.c`` icmp_type_tbl)."""

ICMPV6_NFT_NAMES = {
    "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
    "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
    "nd-router-solicit": 133, "nd-router-advert": 134, "nd-neighbor-solicit": 135,
    "nd-neighbor-advert": 136, "nd-redirect": 137, "mld-listener-query": 130,
    "mld-listener-report": 131, "mld-listener-done": 132, "mld-listener-reduction": 132,
    "mld2-listener-report": 143, "router-renumbering": 138, "ind-neighbor-solicit": 141,
    "ind-neighbor-advert": 142,
}
"""nft's icmpv6_type names (``src/proto.c`` icmp6_type_tbl)."""
_SYMBOLS: dict[str | None, Mapping[str, int]] = {
    "inet_proto": PROTOCOL_NUMBERS,
    "ct_state": CT_STATE_BITS,
    "ct_status": CT_STATUS_BITS,
    "tcp_flag": TCP_FLAG_BITS,
    "pkt_type": PKTTYPES,
    "nfproto": NFPROTO,
    "icmp_type": ICMP_TYPES,
    "icmpv6_type": ICMPV6_NFT_NAMES,
    "ct_dir": {"original": 0, "reply": 1},
    "ether_type": {"ip": 0x0800, "ip6": 0x86DD, "arp": 0x0806, "vlan": 0x8100},
}
_SERVICES = {
    "ssh": 22, "http": 80, "https": 443, "domain": 53, "smtp": 25, "ftp": 21, "telnet": 23,
    "ntp": 123, "bootps": 67, "bootpc": 68, "snmp": 161, "imap": 143, "pop3": 110,
    "submission": 587, "imaps": 993, "pop3s": 995, "ldap": 389, "ldaps": 636,
    "mysql": 3306, "postgresql": 5432, "http-alt": 8080, "dhcpv6-client": 546,
    "dhcpv6-server": 547, "mdns": 5353, "syslog": 514, "tftp": 69, "kerberos": 88,
}


class UnnormalisableError(ValueError):
    """A constant natlens cannot turn into a comparable value (the lookup is uncertain)."""


def _integer(value: Json, dtype: str | None) -> int:
    if isinstance(value, bool):
        raise UnnormalisableError(f"boolean {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        symbols = _SYMBOLS.get(dtype)
        if symbols is not None and value in symbols:
            return symbols[value]
        if dtype == "inet_service" and value in _SERVICES:
            return _SERVICES[value]
        try:
            return int(value, 0)
        except ValueError:
            raise UnnormalisableError(f"{value!r} is not a {dtype or 'number'}") from None
    raise UnnormalisableError(f"{value!r} is not a {dtype or 'number'}")


def _address(value: Json, dtype: str | None) -> int:
    if not isinstance(value, str):
        raise UnnormalisableError(f"{value!r} is not an address")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise UnnormalisableError(f"{value!r} is not an address") from None
    return int(ip)


_ADDRESS_TYPES = frozenset({"ipv4_addr", "ipv6_addr", "inet_addr"})
_STRING_TYPES = frozenset({"ifname", "string", "iface_index", "fib_addrtype", "ether_addr",
                           "iface_type", "devgroup", "ct_label", "day", "verdict"})


def normalise(value: Json, dtype: str | None) -> KeyPart:
    """A constant, prefix or range as a comparable value for ``dtype``. Raises
    ``UnnormalisableError`` when natlens cannot compare it (uncertain)."""
    if isinstance(value, MAPPINGS) and len(value) == 1:
        ((kind, body),) = value.items()
        if kind == "prefix" and isinstance(body, MAPPINGS):
            addr = body.get("addr")
            length = body.get("len")
            if not isinstance(addr, str) or not isinstance(length, int):
                raise UnnormalisableError(f"bad prefix {value!r}")
            try:
                net = ipaddress.ip_network(f"{addr}/{length}", strict=False)
            except ValueError:
                raise UnnormalisableError(f"bad prefix {addr}/{length}") from None
            return Interval(int(net.network_address), int(net.broadcast_address))
        if kind == "range" and isinstance(body, tuple) and len(body) == 2:
            low, high = normalise(body[0], dtype), normalise(body[1], dtype)
            if not isinstance(low, int) or not isinstance(high, int):
                raise UnnormalisableError(f"range of names {value!r}")
            return Interval(low, high)
        raise UnnormalisableError(f"{kind} expression as a constant")
    if dtype in _ADDRESS_TYPES:
        return _address(value, dtype)
    if dtype in _STRING_TYPES:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UnnormalisableError(f"{value!r} is not a {dtype}")
    if isinstance(value, str) and dtype is None:
        try:
            return int(ipaddress.ip_address(value))
        except ValueError:
            pass
        try:
            return int(value, 0)
        except ValueError:
            return value
    return _integer(value, dtype)


def _contains(part: KeyPart, value: Scalar) -> bool:
    if isinstance(part, Interval):
        return isinstance(value, int) and part.low <= value <= part.high
    if isinstance(part, str) and isinstance(value, str) and part.endswith("*") \
            and not part.endswith("\\*"):
        return value.startswith(part[:-1])
    return part == value


@dataclass(slots=True)
class SetIndex:
    """The lookup structure of one set or map (built once, read many times).

    ``exact`` maps normalised keys to element positions; ``starts``/``ends``/``slots`` are the
    sorted intervals of a one-component set (positions in ``slots``); ``scan`` holds the
    elements that need component-wise comparison (interval concatenations, name wildcards),
    indexed by their first component's exact value (``scan_exact``) or interval
    (``scan_starts``...); ``catch_all`` is the position of ``*``.
    """

    elements: tuple[Element, ...]
    types: tuple[str | None, ...]
    exact: dict[tuple[Scalar, ...], int] = field(default_factory=dict)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    wild: list[tuple[tuple[KeyPart, ...], int]] = field(default_factory=list)
    scan_exact: dict[Scalar, list[tuple[tuple[KeyPart, ...], int]]] = field(default_factory=dict)
    scan_intervals: list[tuple[int, int, tuple[KeyPart, ...], int]] = field(default_factory=list)
    scan_starts: list[int] = field(default_factory=list)
    scan_max_end: list[int] = field(default_factory=list)
    catch_all: int | None = None
    skipped: tuple[str, ...] = ()

    def find(self, key: Sequence[Scalar]) -> int | None:
        """The position of the element that ``key`` (one normalised value per component) hits,
        or None."""
        pos = self.exact.get(tuple(key))
        if pos is not None:
            return pos
        if len(key) == 1 and self.starts:
            value = key[0]
            if isinstance(value, int):
                i = bisect.bisect_right(self.starts, value) - 1
                if i >= 0 and value <= self.ends[i]:
                    return self.slots[i]
        if self.scan_exact or self.scan_intervals:
            hit = self._scan(key)
            if hit is not None:
                return hit
        for parts, wpos in self.wild:
            if all(_contains(p, v) for p, v in zip(parts, key, strict=False)):
                return wpos
        return self.catch_all

    def _scan(self, key: Sequence[Scalar]) -> int | None:
        best: int | None = None
        for parts, pos in self.scan_exact.get(key[0], ()):
            if all(_contains(p, v) for p, v in zip(parts[1:], key[1:], strict=False)):
                best = pos if best is None else min(best, pos)
        first = key[0]
        if isinstance(first, int) and self.scan_intervals:
            # intervals sorted by start; scan_max_end[i] = max end of intervals[0..i]
            i = bisect.bisect_right(self.scan_starts, first) - 1
            while i >= 0 and self.scan_max_end[i] >= first:
                low, high, parts, pos = self.scan_intervals[i]
                if low <= first <= high and all(
                        _contains(p, v) for p, v in zip(parts[1:], key[1:], strict=False)):
                    best = pos if best is None else min(best, pos)
                i -= 1
        return best


def _key_parts(key: Json, types: tuple[str | None, ...]) -> tuple[KeyPart, ...]:
    if isinstance(key, MAPPINGS) and "concat" in key:
        parts = key["concat"]
        if not isinstance(parts, tuple):
            raise UnnormalisableError("bad concatenation")
        if len(parts) != len(types):
            raise UnnormalisableError(f"{len(parts)} components for a {len(types)}-part key")
        return tuple(normalise(p, t) for p, t in zip(parts, types, strict=True))
    if len(types) != 1:
        raise UnnormalisableError(f"one value for a {len(types)}-part key")
    return (normalise(key, types[0]),)


def _is_wild(part: KeyPart) -> bool:
    return isinstance(part, str) and part.endswith("*") and not part.endswith("\\*")


def build_index(elements: Sequence[Element], types: Sequence[str | None]) -> SetIndex:
    """Index ``elements`` of a set whose key components have ``types``."""
    index = SetIndex(tuple(elements), tuple(types))
    intervals: list[tuple[int, int, int]] = []
    scanned: list[tuple[tuple[KeyPart, ...], int]] = []
    skipped: list[str] = []
    for pos, element in enumerate(elements):
        if element.key == "*":
            index.catch_all = pos
            continue
        try:
            parts = _key_parts(element.key, index.types)
        except UnnormalisableError as err:
            skipped.append(str(err))
            continue
        if any(_is_wild(p) for p in parts):
            index.wild.append((parts, pos))
        elif all(not isinstance(p, Interval) for p in parts):
            index.exact.setdefault(parts, pos)  # type: ignore[arg-type]
        elif len(parts) == 1:
            iv = parts[0]
            assert isinstance(iv, Interval)
            intervals.append((iv.low, iv.high, pos))
        else:
            scanned.append((parts, pos))
    intervals.sort()
    for low, high, pos in intervals:
        if index.starts and low <= index.ends[-1]:
            # overlapping intervals (the kernel refuses them; auto-merge joins them): merge
            index.ends[-1] = max(index.ends[-1], high)
            continue
        index.starts.append(low)
        index.ends.append(high)
        index.slots.append(pos)
    by_interval: list[tuple[int, int, tuple[KeyPart, ...], int]] = []
    for parts, pos in scanned:
        first = parts[0]
        if isinstance(first, Interval):
            by_interval.append((first.low, first.high, parts, pos))
        else:
            index.scan_exact.setdefault(first, []).append((parts, pos))
    by_interval.sort(key=lambda item: (item[0], item[1], item[3]))
    running = -1
    for low, high, parts, pos in by_interval:
        running = max(running, high)
        index.scan_intervals.append((low, high, parts, pos))
        index.scan_starts.append(low)
        index.scan_max_end.append(running)
    index.skipped = tuple(skipped)
    return index
