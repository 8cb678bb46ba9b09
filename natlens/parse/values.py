"""Check and canonicalise option values the way iptables-save prints them back.

Each checker takes the option's arguments and returns them in iptables-save's form
(``1024:`` → ``1024:65535``, ``http`` → ``80``, ``0x1`` marks in hex, conntrack states in kernel
bit order) or raises ``ValueError`` naming the bad value. Kinds not listed pass through unchanged.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from functools import lru_cache

__all__ = ["CANONICAL", "canonical_address", "canonical_args", "parse_port", "parse_port_range"]

_CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
_ADDR_TYPES = frozenset(
    "UNSPEC UNICAST LOCAL BROADCAST ANYCAST MULTICAST BLACKHOLE UNREACHABLE PROHIBIT THROW NAT "
    "XRESOLVE".split()
)
_TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")


@lru_cache(maxsize=4096)
def parse_port(text: str) -> int:
    """A port number or /etc/services name → number (0..65535)."""
    if text.isdigit():
        value = int(text)
        if value > 65535:
            raise ValueError(f"port {text} out of range")
        return value
    try:
        return socket.getservbyname(text)
    except OSError:
        raise ValueError(f"invalid port/service {text!r}") from None


@lru_cache(maxsize=4096)
def parse_port_range(text: str) -> tuple[int, int]:
    """``80``, ``1024:``, ``:1023``, ``1:2`` (also ``1-2``) → (low, high)."""
    if ":" in text:
        low_text, high_text = text.split(":", 1)
    elif "-" in text and not text.startswith("-") and all(p.isdigit() for p in text.split("-")):
        low_text, high_text = text.split("-", 1)
    else:
        port = parse_port(text)
        return port, port
    low = parse_port(low_text) if low_text else 0
    high = parse_port(high_text) if high_text else 65535
    if low > high:
        raise ValueError(f"invalid port range {text!r} (start above end)")
    return low, high


def _format_range(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}:{high}"


def _port(args: tuple[str, ...]) -> tuple[str, ...]:
    return (_format_range(*parse_port_range(args[0])),)


def _ports(args: tuple[str, ...]) -> tuple[str, ...]:
    parts = [p for p in args[0].split(",")]
    if not all(parts):
        raise ValueError(f"invalid port list {args[0]!r}")
    if len(parts) > 15:
        raise ValueError("too many ports specified (at most 15)")
    return (",".join(_format_range(*parse_port_range(p)) for p in parts),)


def _int(args: tuple[str, ...]) -> tuple[str, ...]:
    text = args[0]
    try:
        int(text, 0)
    except ValueError:
        raise ValueError(f"invalid number {text!r}") from None
    return args


def _mark(args: tuple[str, ...]) -> tuple[str, ...]:
    text = args[0]
    value_text, _, mask_text = text.partition("/")
    try:
        value = int(value_text, 0)
        mask = int(mask_text, 0) if mask_text else None
    except ValueError:
        raise ValueError(f"invalid mark {text!r}") from None
    if value > 0xFFFFFFFF or (mask is not None and mask > 0xFFFFFFFF):
        raise ValueError(f"mark {text!r} out of range")
    return args


def _ctstates(args: tuple[str, ...]) -> tuple[str, ...]:
    names = [s.upper() for s in args[0].split(",")]
    for name in names:
        if name not in _CT_STATES:
            raise ValueError(f"bad ctstate {name!r}")
    return (",".join(s for s in _CT_STATES if s in names),)


def _addrtypes(args: tuple[str, ...]) -> tuple[str, ...]:
    names = [s.upper() for s in args[0].split(",")]
    for name in names:
        if name not in _ADDR_TYPES:
            raise ValueError(f"invalid address type {name!r}")
    return (",".join(names),)


def _tcpflags(args: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for arg in args:
        flags = [f.upper() for f in arg.split(",")]
        if flags == ["ALL"]:
            flags = list(_TCP_FLAGS[:6])
        for flag in flags:
            if flag not in (*_TCP_FLAGS, "NONE", "ALL"):
                raise ValueError(f"unknown TCP flag {flag!r}")
        out.append(",".join(flags))
    return tuple(out)


def _probability(args: tuple[str, ...]) -> tuple[str, ...]:
    try:
        value = float(args[0])
    except ValueError:
        raise ValueError(f"invalid probability {args[0]!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"probability {args[0]!r} outside 0..1")
    return args


def _cidr(args: tuple[str, ...]) -> tuple[str, ...]:
    return (canonical_address(args[0]),)


def _iprange(args: tuple[str, ...]) -> tuple[str, ...]:
    low, sep, high = args[0].partition("-")
    try:
        a = ipaddress.ip_address(low)
        b = ipaddress.ip_address(high) if sep else a
    except ValueError:
        raise ValueError(f"invalid address range {args[0]!r}") from None
    if a.version != b.version:
        raise ValueError(f"mixed address families in range {args[0]!r}")
    return (f"{a}-{b}",)


def _natrange(args: tuple[str, ...]) -> tuple[str, ...]:
    text = args[0]
    if text.startswith("["):
        addr_part, _, port_part = text[1:].partition("]")
        port_part = port_part[1:] if port_part.startswith(":") else port_part
        _check_addr_range(addr_part, text)
    else:
        addr_part, _, port_part = text.partition(":")
        if addr_part.count(":") or text.count(":") > 1 and "." not in addr_part:
            _check_addr_range(text, text)
            return args
        if addr_part:
            _check_addr_range(addr_part, text)
    if port_part:
        _check_nat_ports(port_part, text)
    return args


def _check_addr_range(part: str, whole: str) -> None:
    for addr in part.split("-"):
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise ValueError(f"bad IP address in {whole!r}") from None


def _check_nat_ports(part: str, whole: str) -> None:
    low_s, _, rest = part.partition("-")
    high_s = rest.split("/")[0] if rest else low_s
    if not (low_s.isdigit() and high_s.isdigit()) or int(low_s) > int(high_s):
        raise ValueError(f"bad port range in {whole!r}")
    if int(high_s) > 65535 or int(low_s) == 0:
        raise ValueError(f"port out of range in {whole!r}")


def _natports(args: tuple[str, ...]) -> tuple[str, ...]:
    _check_nat_ports(args[0], args[0])
    return args


CANONICAL: dict[str, Callable[[tuple[str, ...]], tuple[str, ...]]] = {
    "port": _port,
    "ports": _ports,
    "int": _int,
    "mark": _mark,
    "ctstates": _ctstates,
    "addrtypes": _addrtypes,
    "tcpflags": _tcpflags,
    "probability": _probability,
    "cidr": _cidr,
    "iprange": _iprange,
    "natrange": _natrange,
    "natports": _natports,
}


def canonical_args(kind: str, args: tuple[str, ...]) -> tuple[str, ...]:
    """Check ``args`` for an option of ``kind``; return iptables-save's form."""
    check = CANONICAL.get(kind)
    return check(args) if check else args


@lru_cache(maxsize=65536)
def canonical_address(text: str) -> str:
    """``10.0.0.1`` → ``10.0.0.1/32``; ``10.0.0.0/255.255.255.0`` → ``10.0.0.0/24``.

    Host bits are cleared as the kernel does (iptables stores address and mask). Raises
    ``ValueError`` for anything that is not an address or network.
    """
    return str(ipaddress.ip_network(text, strict=False))
