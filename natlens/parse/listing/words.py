"""The words of an ``iptables -L`` listing: column values and the match/target text.

Constants and helpers shared by the listing's decoders: service and protocol names (the
services and protocols databases), addresses as the listing prints them (``anywhere``, host
names, ``!`` negation), iptables-save's spelling of options (``natlens.parse.canonical``), and
``_Cursor``, the position in the words after the destination column.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from natlens.inputs import is_decimal as _decimal
from natlens.model import (
    Address,
    Interface,
    Match,
    Option,
    Protocol,
)
from natlens.names import name_bytes
from natlens.parse.canonical import CANONICAL_MATCH, CANONICAL_TARGET
from natlens.parse.construct import new_address
from natlens.parse.modules import MATCHES, TARGETS
from natlens.parse.networks import compact_network
from natlens.parse.rule import _IPV4_NETWORK, RuleSyntaxError, parse_rule_args
from natlens.parse.values import canonical_args, parse_port

_POLICIES = frozenset({"ACCEPT", "DROP", "QUEUE", "RETURN"})
_OPT = {"--": None, "-f": True, "!f": False}
_SUFFIX = {"K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}
_ALL_BUILTIN = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_NO_IFACE = frozenset({"*", "any"})
_ANY = frozenset({"anywhere", "0.0.0.0/0", "::/0"})
# Names whose meaning is fixed by convention (RFC 6761, Debian's /etc/hosts and /etc/networks).
_WELL_KNOWN = {
    (4, "localhost"): "127.0.0.1",
    (6, "localhost"): "::1",
    (6, "ip6-localhost"): "::1",
    (6, "ip6-loopback"): "::1",
    (4, "loopback"): "127.0.0.0",
    (4, "link-local"): "169.254.0.0",
}
_TCP_FLAGS = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10),
              ("URG", 0x20), ("ECE", 0x40), ("CWR", 0x80))
_LOG_LEVELS = {"emerg": "0", "panic": "0", "alert": "1", "crit": "2", "err": "3", "error": "3",
               "warn": "4", "warning": "4", "notice": "5", "info": "6", "debug": "7"}
_LOG_FLAGS = (("tcp-sequence", 0x01, "--log-tcp-sequence"),
              ("tcp-options", 0x02, "--log-tcp-options"),
              ("ip-options", 0x04, "--log-ip-options"), ("uid", 0x08, "--log-uid"),
              ("macdecode", 0x20, "--log-macdecode"))
_TOS_NAMES = {"Minimize-Delay": "0x10/0x3f", "Maximize-Throughput": "0x08/0x3f",
              "Maximize-Reliability": "0x04/0x3f", "Minimize-Cost": "0x02/0x3f",
              "Normal-Service": "0x00/0x3f"}
_CT_KEYS = frozenset({"ctstate", "ctproto", "ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst",
                      "ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport",
                      "ctstatus", "ctexpire", "ctdir"})
_RECENT_CMDS = {"SET": "--set", "CHECK": "--rcheck", "UPDATE": "--update", "REMOVE": "--remove"}
_FULL = 0xFFFFFFFF



class _UndecodableError(Exception):
    """The text at the cursor is not what a decoder expected."""


# -- small value helpers -----------------------------------------------------------------------


def _service(name: str, proto: str) -> int:
    """A port number or service name (as ``getservbyport`` printed it) → number."""
    if _decimal(name):
        value = int(name)
        if value > 65535:
            raise _UndecodableError
        return value
    return _service_name(name, proto)


@lru_cache(maxsize=1024)
def _service_name(name: str, proto: str) -> int:
    if proto:
        try:
            return socket.getservbyname(name, proto)
        except OSError:
            pass
    try:
        return parse_port(name)  # without protocol, and the names some services files lack
    except ValueError:
        raise _UndecodableError from None


def _ports(text: str, proto: str) -> str:
    """``http``, ``1024:65535``, ``tcpmux:1023`` → ``80``, ``1024:65535``, ``1:1023``."""
    low, sep, high = text.partition(":")
    a = _service(low, proto)
    if not sep:
        return str(a)
    b = _service(high, proto)
    return str(a) if a == b else f"{a}:{b}"


def _bang(word: str) -> tuple[str, bool]:
    return (word[1:], True) if word.startswith("!") else (word, False)


def _hex(value: int) -> str:
    return f"0x{value:x}"


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise _UndecodableError from None


@lru_cache(maxsize=4096)
def _interface(text: str) -> Interface | None:
    """``[!]NAME`` → Interface, or None for a name the kernel would refuse."""
    name, negated = _bang(text)
    if not name or (len(name) > 3 and name_bytes(name) > 15):  # IFNAMSIZ - 1 bytes
        return None
    return Interface(name, negated)


@lru_cache(maxsize=1024)
def _protocol(text: str) -> Protocol | Literal[False] | None:
    """The prot column → Protocol (None for ``all``/``0``, False for what the save parser
    refuses as ``-p``: ``unknown protocol``)."""
    name, negated = _bang(text.lower())
    if not name:
        return False
    if name in ("all", "0") and not negated:
        return None
    # what the save parser accepts for ``-p`` (numbers up to 255, the names iptables knows
    # and those of /etc/protocols, as iptables resolves them with getprotobyname(3))
    try:
        rules = parse_rule_args("INPUT", ["-p", name])
    except RuleSyntaxError:
        return False
    protocol = rules[0].protocol
    if protocol is None:
        return False
    return Protocol(protocol.name, negated)


@lru_cache(maxsize=65536)
def _address(text: str, version: int) -> tuple[Address | None, str]:
    """Source/destination column → (address, status); status is ``""``, ``"unknown"`` (a name
    natlens cannot resolve with certainty) or ``"NAME = ADDRESS"`` (a well-known name)."""
    body, negated = _bang(text)
    # the other family's "any" (ip6tables' ::/0 in an IPv4 listing) is that family's address
    if body in _ANY and not negated and (body == "anywhere" or (":" in body) == (version == 6)):
        return None, ""
    if body == "anywhere":
        body = "0.0.0.0/0" if version == 4 else "::/0"
    host, slash, mask = body.partition("/")
    status = ""
    if host and ":" not in host and host.strip("0123456789."):  # a host or network name
        known = _WELL_KNOWN.get((version, host))
        if known is None:
            return None, "unknown"
        status = f"{host} = {known}"
        host = known
    if not slash:
        mask = "128" if ":" in host else "32"
    if not _decimal(mask):
        # A non-contiguous mask (10.0.0.0/255.0.255.0) or a network name as the mask.
        try:
            addr = ipaddress.ip_address(host)
            netmask = ipaddress.ip_address(mask)
        except ValueError:
            return None, "unknown"
        if addr.version != netmask.version:
            raise ValueError(f"bad netmask in {text!r}")
        masked = ipaddress.ip_address(int(addr) & int(netmask))
        try:
            contiguous = ipaddress.ip_network(f"{masked}/{netmask}")
        except ValueError:
            return Address(compact_network(ipaddress.ip_network(masked)), negated,
                           netmask), status
        network = compact_network(contiguous)
    else:
        plain = _plain_ipv4(host, mask) if version == 4 else None
        if plain is not None:
            network = plain
        else:
            try:
                network = compact_network(ipaddress.ip_network(f"{host}/{mask}", strict=False))
            except ValueError:
                raise ValueError(f"bad address {text!r}") from None
    if network.version != version:
        raise ValueError(f"IPv{network.version} address {text!r} in an IPv{version} listing")
    return new_address(network, negated, None), status


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
"""A decimal number 0..255 without leading zeros."""
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
"""What ``ipaddress`` reads as an IPv4 address: four decimal octets, no leading zeros."""


def _plain_ipv4(host: str, mask: str) -> ipaddress.IPv4Network | None:
    """``ip_network(f"{host}/{mask}", strict=False)`` for a dotted quad without leading zeros
    and a prefix length of at most 32, without its string parsing (one distinct address per
    endpoint on kube-proxy hosts), built as ``parse_save`` builds it
    (``natlens.parse.rule._IPV4_NETWORK``); None for anything else (the caller asks
    ``ipaddress``)."""
    if len(mask) > 2 or not (mask.isascii() and mask.isdigit()) or int(mask) > 32 \
            or _DOTTED_QUAD.fullmatch(host) is None:
        return None
    return _IPV4_NETWORK(int.from_bytes(socket.inet_aton(host), "big"), int(mask))


def _tcp_flag_names(value: int) -> str:
    names = [name for name, bit in _TCP_FLAGS if value & bit]
    return ",".join(names) if names else "NONE"


def _option(module: str, name: str, args: tuple[str, ...], negated: bool = False,
            targets: bool = False) -> Option:
    """An option under its iptables-save name (``_match``/``_target_options`` canonicalise)."""
    spec = (TARGETS if targets else MATCHES)[module].by_name[name]
    return Option(spec.name, args, negated)


@lru_cache(maxsize=16384)
def _canonical(kind: str, args: tuple[str, ...]) -> tuple[str, ...] | None:
    try:
        return canonical_args(kind, args)
    except ValueError:
        return None


def _match(module: str, options: list[Option]) -> Match:
    """A match built as ``parse_save`` builds it: values canonical, options in spec order,
    then the module's whole-match rewrite (``natlens.parse.canonical``)."""
    by = MATCHES[module].by_name
    opts = sorted((_canonical_option(by[o.name].kind, o) for o in options),
                  key=lambda o: by[o.name].order)
    rewrite = CANONICAL_MATCH.get(module)
    try:
        return Match(module, rewrite(tuple(opts)) if rewrite else tuple(opts))
    except (ValueError, LookupError):
        raise _UndecodableError from None


def _target_options(name: str, options: tuple[Option, ...]) -> tuple[Option, ...]:
    """Target options as ``parse_save`` builds them (values canonical, whole-target rewrite)."""
    by = TARGETS[name].by_name
    opts = tuple(_canonical_option(by[o.name].kind, o) for o in options)
    rewrite = CANONICAL_TARGET.get(name)
    try:
        return rewrite(opts) if rewrite else opts
    except (ValueError, LookupError):
        raise _UndecodableError from None


def _canonical_option(kind: str, option: Option) -> Option:
    if kind == "port" and _decimal(option.args[0]) and len(option.args[0]) < 6 \
            and int(option.args[0]) <= 65535:
        return option  # a single port number is already in canonical form
    args = _canonical(kind, option.args)
    if args is None:
        raise _UndecodableError
    return option if args == option.args else Option(option.name, args, option.negated)


# -- the words of the match/target text ----------------------------------------------------------


def _split_words(text: str) -> list[str]:
    """Split on blanks, keeping ``/* comments */`` and ``"quoted strings"`` as one word."""
    words: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
            continue
        if text.startswith("/* ", i):
            end = text.find(" */", i + 2)
            if end >= 0:
                words.append(text[i:end + 3])
                i = end + 3
                continue
        if c == '"':
            end = i + 1
            while True:
                end = text.find('"', end)
                if end < 0 or end + 1 == n or text[end + 1] in " \t":
                    break
                end += 1
            if end >= 0:
                words.append(text[i:end + 1])
                i = end + 1
                continue
        j = i
        while j < n and text[j] not in " \t":
            j += 1
        words.append(text[i:j])
        i = j
    return words


@dataclass(slots=True)
class _Cursor:
    words: list[str]
    i: int = 0
    proto: str = ""

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.words[j] if j < len(self.words) else ""

    def take(self) -> str:
        if self.i >= len(self.words):
            raise _UndecodableError
        w = self.words[self.i]
        self.i += 1
        return w

    def expect(self, word: str) -> None:
        if self.take() != word:
            raise _UndecodableError

    def negation(self) -> bool:
        """Consume a standalone ``!`` (printed before the value)."""
        if self.peek() == "!":
            self.i += 1
            return True
        return False


@dataclass(slots=True)
class _TrackingCursor(_Cursor):
    """A cursor that records which words were taken while ``in_target`` was False (by the
    match decoders or kept verbatim), for ``_ListingParser.decode_nat``."""

    in_target: bool = False
    taken: set[int] = field(default_factory=set)
    target_span: tuple[int, int] | None = None
    """(first, end) of the words the target decoder read as the target's options."""

    def take(self) -> str:
        if not self.in_target:
            self.taken.add(self.i)
        if self.i >= len(self.words):
            raise _UndecodableError
        w = self.words[self.i]
        self.i += 1
        return w
