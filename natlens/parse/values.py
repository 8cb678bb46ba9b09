"""Check and canonicalise option values the way iptables-save prints them back.

Each checker takes the option's arguments and returns them in iptables-save's form
(``1024:`` → ``1024:65535``, ``http`` → ``80``, ``0x1`` marks in hex, conntrack states in kernel
bit order) or raises ``ValueError`` naming the bad value. Kinds not listed pass through unchanged.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from collections.abc import Callable, Mapping
from functools import lru_cache

from natlens.inputs import is_decimal as _decimal

__all__ = [
    "CANONICAL", "ICMP4_TYPES", "ICMP6_TYPES", "ICMP6_TYPES_LATER", "c_atoi", "c_scan_llu",
    "c_strtod", "c_strtoul",
    "c_strtoul_prefix", "canonical_address", "canonical_args", "rate_parts", "rate_text",
    "icmp_type_range", "parse_port", "parse_port_range", "xt_parse_port",
]

_CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
_ADDR_TYPES = frozenset(
    ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
     "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")
)
# Names some /etc/services files (Debian 12) no longer carry.
_FALLBACK_SERVICES = {"ftp-data": 20, "http-alt": 8080, "webcache": 8080}
_TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")


@lru_cache(maxsize=4096)
def parse_port(text: str) -> int:
    """A port number or /etc/services name → number (0..65535)."""
    if _decimal(text):
        value = int(text)
        if value > 65535:
            raise ValueError(f"port {text} out of range")
        return value
    return _service_port(text)


def _service_port(text: str) -> int:
    """The port of service ``text`` (/etc/services, then names some files lack)."""
    try:
        return socket.getservbyname(text)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        if text in _FALLBACK_SERVICES:
            return _FALLBACK_SERVICES[text]
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
    return _bounds(text, low_text, high_text, parse_port)


@lru_cache(maxsize=4096)
def xt_parse_port(text: str) -> int:
    """libxtables ``xtables_parse_port`` (the tcp, udp, sctp, dccp and multiport matches): a
    number 0..65535 as C strtoul reads it (base 0: ``010`` is 8, ``0x50`` is 80, ``080``
    nothing), else a service name. ``parse_port`` reads decimal only, as ``getaddrinfo``
    does for conntrack's ports.

    >>> xt_parse_port("010"), xt_parse_port("0x50"), xt_parse_port("+80")
    (8, 80, 80)
    """
    value = c_strtoul(text)
    if value is not None:
        if not 0 <= value <= 65535:
            raise ValueError(f"port {text} out of range")
        return value
    return _service_port(text)


def _xt_port_range(text: str) -> tuple[int, int]:
    """libxt_tcp.c ``parse_tcp_ports`` / libxt_multiport.c: ``PORT`` or ``[LOW]:[HIGH]`` (no
    ``-`` form), each through ``xt_parse_port``; LOW above HIGH is refused."""
    low_text, colon, high_text = text.partition(":")
    if not colon:
        port = xt_parse_port(text)
        return port, port
    return _bounds(text, low_text, high_text, xt_parse_port)


def _bounds(text: str, low_text: str, high_text: str,
            read: Callable[[str], int]) -> tuple[int, int]:
    """(low, high) of a port range whose ends ``read`` reads; an empty end is 0 / 65535;
    LOW above HIGH is refused."""
    low = read(low_text) if low_text else 0
    high = read(high_text) if high_text else 65535
    if low > high:
        raise ValueError(f"invalid port range {text!r} (start above end)")
    return low, high


def _format_range(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}:{high}"


def _port(args: tuple[str, ...]) -> tuple[str, ...]:
    return (_format_range(*_xt_port_range(args[0])),)


def _ctport(args: tuple[str, ...]) -> tuple[str, ...]:
    """conntrack's ``--ctorigsrcport``-style ports (``XTTYPE_PORTRC``: ``getaddrinfo`` reads
    decimal numbers or service names)."""
    return (_format_range(*parse_port_range(args[0])),)


def _ports(args: tuple[str, ...]) -> tuple[str, ...]:
    parts = args[0].split(",")
    if not all(parts):
        raise ValueError(f"invalid port list {args[0]!r}")
    if len(parts) > 15:
        raise ValueError("too many ports specified (at most 15)")
    out: list[str] = []
    for part in parts:
        low, high = _xt_port_range(part)
        if ":" in part and low >= high:
            # libxt_multiport: a range needs its start below its end ("invalid portrange")
            raise ValueError(f"invalid portrange {part!r} (start must be below end)")
        out.append(_format_range(low, high))
    return (",".join(out),)


def _prefix(args: tuple[str, ...]) -> tuple[str, ...]:
    """LOG/NFLOG prefixes: 1 to 29 (NFLOG: 63) characters, as libxt_LOG checks."""
    if not args[0]:
        raise ValueError("the prefix must have a minimum length of 1 character")
    return args


def _int(args: tuple[str, ...]) -> tuple[str, ...]:
    text = args[0]
    try:
        int(text, 0)
    except ValueError:
        raise ValueError(f"invalid number {text!r}") from None
    return args


_STRTOUL = re.compile(r"[ \t\n\v\f\r]*[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_STRTOD = re.compile(
    r"[ \t\n\v\f\r]*[+-]?(?:"
    r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
    r"|(?i:inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?))"
)


def c_strtoul(text: str) -> int | None:
    """The number C ``strtoul(text, &end, 0)`` reads when it reads all of ``text`` (decimal,
    ``0x`` hex, ``0`` octal, leading blanks and a sign), else None: what libxtables
    ``xtables_strtoui`` accepts. A minus sign, which strtoul reads (wrapping around), libxtables
    refuses (xtables.c ``xtables_strtoul_base``: "Since strtoul allows leading minus, we have
    to check for ourself"; ``--dport -0`` is refused by both backends): given as -1, out of any
    range. Python's ``int(text, 0)`` differs: it refuses ``010`` and takes ``0o10``, ``0b1``
    and ``1_000``.

    >>> c_strtoul("010"), c_strtoul("0x1f"), c_strtoul("0o10"), c_strtoul("1_0"), c_strtoul("-0")
    (8, 31, None, None, -1)
    """
    if _STRTOUL.fullmatch(text) is None:
        return None
    body = text.lstrip(" \t\n\v\f\r")
    minus = body.startswith("-")
    body = body.lstrip("+-")
    if body[:2] in ("0x", "0X"):
        value = int(body, 16)
    else:
        value = int(body, 8) if body.startswith("0") else int(body)
    return -1 if minus else value


_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]*)")
_STRTOUL_PREFIX = re.compile(r"[ \t\n\v\f\r]*[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def c_atoi(text: str) -> int:
    """The number C ``atoi``/``atoll`` reads at the start of ``text``: blanks, a sign, then
    ASCII digits up to the first other character (``3abc`` is 3); 0 when there are none
    (``²``, ``0x10`` and ``abc`` are 0). Python's ``int`` takes other scripts' digits
    (``int("٣") == 3``) and refuses trailing text.

    >>> c_atoi("3abc/sec"), c_atoi(" +12"), c_atoi("0x10"), c_atoi("²"), c_atoi("-4")
    (3, 12, 0, 0, -4)
    """
    found = _ATOI.match(text)
    assert found is not None  # the pattern matches the empty string
    digits = found[2]
    if not digits:
        return 0
    return -int(digits) if found[1] == "-" else int(digits)


_SCAN_LLU = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)")


def c_scan_llu(text: str) -> int | None:
    """The number C ``sscanf(text, "%llu", ...)`` reads at the start of ``text`` (blanks, a
    sign, ASCII decimal digits; what follows is ignored), or None when it reads none: how
    iptables reads ``-c PACKETS BYTES`` (xshared.c). A minus sign wraps around; a number past
    64 bits is the largest (``strtoull``).

    >>> c_scan_llu("3abc"), c_scan_llu(" 12"), c_scan_llu("٣"), c_scan_llu("0x3")
    (3, 12, None, 0)
    """
    found = _SCAN_LLU.match(text)
    if found is None:
        return None
    value = min(int(found[2]), 2**64 - 1)
    return (-value) % 2**64 if found[1] == "-" else value


def c_strtoul_prefix(text: str) -> tuple[int, str] | None:
    """(number, rest) that C ``strtoul(text, &end, 0)`` reads at the start of ``text`` and
    the text after it, or None when it reads no digits (libxtables ``xtables_strtoul`` with an
    end pointer: the caller looks at what follows). A minus sign gives -1 as ``c_strtoul``.

    >>> c_strtoul_prefix("0x1f:2"), c_strtoul_prefix("3/1"), c_strtoul_prefix(":2")
    ((31, ':2'), (3, '/1'), None)
    """
    found = _STRTOUL_PREFIX.match(text)
    if found is None:
        return None
    value = c_strtoul(found[0])
    assert value is not None
    return value, text[found.end():]


def c_strtod(text: str) -> float | None:
    """The value C ``strtod`` reads when it reads all of ``text`` (decimal, hex float, ``inf``,
    ``nan``, leading blanks), else None (libxtables ``xtopt_parse_float`` then refuses it).
    Python's ``float`` differs: it takes ``1_0`` and trailing blanks and refuses hex floats.

    >>> c_strtod("0x1p-1"), c_strtod(".5e1"), c_strtod("1_0")
    (0.5, 5.0, None)
    """
    if _STRTOD.fullmatch(text) is None:
        return None
    body = text.lstrip(" \t\n\v\f\r")
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body[:2] in ("0x", "0X"):
        return sign * float.fromhex(body if "p" in body.lower() else body + "p0")
    if body.lower().startswith("nan"):
        return math.nan
    return sign * float(body)


def _bounded(high: int, decimal: bool = False,
             low: int = 0) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    """A checker for a number ``low``..``high`` as C ``strtoul`` reads it (``c_strtoul``), as
    the ``xtables_strtoui(..., low, high)`` of the extension's parser (or an option's ``.min``)
    refuses the rest; with ``decimal`` the number is given back in decimal, as iptables-save
    prints it (``%u``)."""

    def check(args: tuple[str, ...]) -> tuple[str, ...]:
        text = args[0]
        value = c_strtoul(text)
        if value is None:
            raise ValueError(f"invalid number {text!r}")
        if not low <= value <= high:
            raise ValueError(f"{text} out of range ({low}-{high})")
        if decimal and text != str(value):
            return (str(value),)
        return args

    return check


_LOG_LEVELS = frozenset({"emerg", "panic", "alert", "crit", "error", "warning", "warn",
                         "notice", "info", "debug"})


def _loglevel(args: tuple[str, ...]) -> tuple[str, ...]:
    """``--log-level``: 0..7 or a syslog name (libxt_LOG.c ``log_names``)."""
    if args[0].lower() in _LOG_LEVELS:
        return args
    return _bounded(7)(args)


def _mark(args: tuple[str, ...]) -> tuple[str, ...]:
    """``VALUE[/MASK]`` as libxtables ``xtopt_parse_markmask`` reads it: each a 32-bit number
    as C strtoul (base 0) reads it (``010`` is 8; ``1_0``, ``0o10``, ``٣`` are refused).
    A number Python's ``int(x, 0)`` would read otherwise is given back in hex (the canonical
    forms read the marks with it)."""
    text = args[0]
    value_text, slash, mask_text = text.partition("/")
    parts = [value_text, mask_text] if slash else [value_text]
    out: list[str] = []
    for part in parts:
        value = c_strtoul(part)
        if value is None:
            raise ValueError(f"invalid mark {text!r}")
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"mark {text!r} out of range")
        try:
            same = int(part, 0) == value
        except ValueError:
            same = False
        out.append(part if same else f"{value:#x}")
    joined = "/".join(out)
    return args if joined == text else (joined,)


TOS_NAMES = {"minimize-delay": 0x10, "maximize-throughput": 0x08,
             "maximize-reliability": 0x04, "minimize-cost": 0x02, "normal-service": 0x00}
"""The TOS names libxtables reads in any case (xtoptions.c ``xtopt_parse_tosmask``, the
``tos_symbol_names`` of libxt_tos_helper.c); a name has mask 0x3f."""


def _xt_u8(text: str) -> int | None:
    """A number 0..255 as libxtables ``xtables_strtoui(text, NULL, ..., 0, UINT8_MAX)`` reads
    it (C strtoul, base 0, the whole text), or None: it refuses any minus sign (``-0``)."""
    value = c_strtoul(text)
    if value is None or not 0 <= value <= 0xFF or text.lstrip(" \t\n\v\f\r").startswith("-"):
        return None
    return value


def tos_value(text: str) -> tuple[int, int]:
    """(value, mask) of a TOS ``VALUE[/MASK]`` (``-m tos --tos``, ``-j TOS --set-tos``) as
    libxtables ``xtopt_parse_tosmask`` reads it: numbers 0..255 read by ``xtables_strtoui``
    (``0x10``, ``16``, ``020``; mask 0xff when none is given), else a symbolic name of
    ``TOS_NAMES`` alone (mask 0x3f). Raises ``ValueError`` for the rest (``0x1ff``, ``0x²``,
    ``5x``, ``0x10/``, ``Minimize-Delay/0x3f``), as iptables does."""
    value_text, slash, mask_text = text.partition("/")
    value = _xt_u8(value_text)
    mask = _xt_u8(mask_text) if slash else 0xFF
    if value is not None and mask is not None:
        return value, mask
    named = TOS_NAMES.get(text.lower())
    if named is not None:
        return named, 0x3F
    raise ValueError(f"invalid TOS value {text!r} (a number 0-255 with an optional /mask, "
                     "or a name such as Minimize-Delay)")


def _tosmask(args: tuple[str, ...]) -> tuple[str, ...]:
    tos_value(args[0])
    return args


def _tos_u8(args: tuple[str, ...]) -> tuple[str, ...]:
    """``--and-tos``/``--or-tos``/``--xor-tos``: a number 0..255 (libxt_TOS.c ``XTTYPE_UINT8``;
    no name, no mask)."""
    if _xt_u8(args[0]) is None:
        raise ValueError(f"invalid TOS bits {args[0]!r} (a number 0-255)")
    return args


def _ctstates(args: tuple[str, ...]) -> tuple[str, ...]:
    names = [s.upper() for s in args[0].split(",")]
    for name in names:
        if name not in _CT_STATES:
            raise ValueError(f"bad ctstate {name!r}")
    return (",".join(s for s in _CT_STATES if s in names),)


_CT_STATUS = ("EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED")
_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED")


def _states(args: tuple[str, ...]) -> tuple[str, ...]:
    """``-m state --state``: the conntrack states without SNAT/DNAT (libxt_state.c
    ``state_parse_states`` refuses them: ``Bad state "DNAT"``)."""
    names = [s.upper() for s in args[0].split(",")]
    for name in names:
        if name not in _STATES:
            raise ValueError(f"bad state {name!r}")
    return (",".join(s for s in _STATES if s in names),)


def _ctstatus(args: tuple[str, ...]) -> tuple[str, ...]:
    """``--ctstatus``: NONE, EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED, any case
    (libxt_conntrack.c ``conntrack_ps_status``; ``--ctstatus DNAT`` is refused); saved in
    this order, NONE only when alone."""
    names = [s.upper() for s in args[0].split(",")]
    for name in names:
        if name not in (*_CT_STATUS, "NONE"):
            raise ValueError(f"bad ctstatus {name!r}")
    return (",".join(s for s in _CT_STATUS if s in names) or "NONE",)


def _ctdir(args: tuple[str, ...]) -> tuple[str, ...]:
    """``--ctdir ORIGINAL|REPLY``, any case (libxt_conntrack.c)."""
    name = args[0].upper()
    if name not in ("ORIGINAL", "REPLY"):
        raise ValueError(f"bad ctdir {args[0]!r}")
    return (name,)


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
    """``--probability``: a number 0..1 as C ``strtod`` reads it (libxtables ``XTTYPE_DOUBLE``,
    ``nan`` included: it passes the range check). A spelling Python's ``float`` does not read
    the same way (hex, ``nan``, blanks) is given back as iptables-save prints the value the
    kernel keeps (libxt_statistic.c: ``lround(0x80000000 * p)``, printed ``%.11f``)."""
    text = args[0]
    value = c_strtod(text)
    if value is None:
        raise ValueError(f"invalid probability {text!r}")
    if not 0.0 <= value <= 1.0 and not math.isnan(value):
        raise ValueError(f"probability {text!r} outside 0..1")
    if _PLAIN_FLOAT.fullmatch(text):
        return args
    kept = 0 if math.isnan(value) else math.floor(0x80000000 * value + 0.5)
    return (f"{kept / 0x80000000:.11f}",)


_PLAIN_FLOAT = re.compile(r"\+?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


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


def _is_plain_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(
        _decimal(p) and len(p) <= 3 and int(p) <= 255 and (p == "0" or p[0] != "0") for p in parts
    )


def _natrange(args: tuple[str, ...]) -> tuple[str, ...]:
    """``ADDR[-ADDR][:PORT[-PORT][/BASE]]`` (IPv6 in brackets) with service names resolved."""
    text = args[0]
    if text.startswith("["):
        addr_part, _, port_part = text[1:].partition("]")
        port_part = port_part[1:] if port_part.startswith(":") else port_part
        _check_addr_range(addr_part, text)
        head = f"[{addr_part}]"
    elif text.count(":") > 1:
        _check_addr_range(text, text)  # bare IPv6 address (range), no port
        return args
    else:
        addr_part, _, port_part = text.partition(":")
        if addr_part:
            _check_addr_range(addr_part, text)
        head = addr_part
    if not port_part:
        return args
    return (f"{head}:{_check_nat_ports(port_part, text)}",)


def _check_addr_range(part: str, whole: str) -> None:
    if _is_plain_ipv4(part):
        return
    for addr in part.split("-"):
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise ValueError(f"bad IP address in {whole!r}") from None


def _check_nat_ports(part: str, whole: str) -> str:
    ports, _, base = part.partition("/")
    try:
        try:
            low = high = parse_port(ports)  # a service name may contain '-' (ftp-data)
        except ValueError:
            low_s, _, high_s = ports.partition("-")
            low = parse_port(low_s)
            high = parse_port(high_s) if high_s else low
        if base:
            parse_port(base)
    except ValueError:
        raise ValueError(f"bad port range in {whole!r}") from None
    if low > high:
        raise ValueError(f"bad port range in {whole!r} (start above end)")
    text = str(low) if low == high else f"{low}-{high}"
    return f"{text}/{parse_port(base)}" if base else text


def _natports(args: tuple[str, ...]) -> tuple[str, ...]:
    return (_check_nat_ports(args[0], args[0]),)


CANONICAL: dict[str, Callable[[tuple[str, ...]], tuple[str, ...]]] = {
    "port": _port,
    "ctport": _ctport,
    "ports": _ports,
    "int": _int,
    "mark": _mark,
    "ctstates": _ctstates,
    "states": _states,
    "ctstatus": _ctstatus,
    "ctdir": _ctdir,
    "addrtypes": _addrtypes,
    "tcpflags": _tcpflags,
    "probability": _probability,
    "prefix": _prefix,
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
    addr, slash, mask = text.partition("/")
    if slash and ("." in mask or (":" in mask)):
        # A dotted netmask must be contiguous ones; ipaddress would also take a hostmask.
        mask_value = int(ipaddress.ip_address(mask))
        bits = ipaddress.ip_address(mask).max_prefixlen
        prefix = bin(mask_value).count("1")
        if mask_value != ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1):
            raise ValueError(f"non-contiguous netmask {mask}")
        text = f"{addr}/{prefix}"
    return str(ipaddress.ip_network(text, strict=False))


# ICMP type names as iptables 1.8.9's libipt_icmp.c / libip6t_icmp6.c know them (what
# ``iptables -p icmp -h`` / ``ip6tables -p icmpv6 -h`` list; tests/test_parse_icmp_names.py
# compares them): name -> (type, code range).
ICMP4_TYPES: Mapping[str, tuple[int, int, int]] = {
    "any": (255, 0, 255), "echo-reply": (0, 0, 255), "pong": (0, 0, 255),
    "destination-unreachable": (3, 0, 255), "network-unreachable": (3, 0, 0),
    "host-unreachable": (3, 1, 1), "protocol-unreachable": (3, 2, 2),
    "port-unreachable": (3, 3, 3), "fragmentation-needed": (3, 4, 4),
    "source-route-failed": (3, 5, 5), "network-unknown": (3, 6, 6), "host-unknown": (3, 7, 7),
    "network-prohibited": (3, 9, 9), "host-prohibited": (3, 10, 10),
    "TOS-network-unreachable": (3, 11, 11), "TOS-host-unreachable": (3, 12, 12),
    "communication-prohibited": (3, 13, 13), "host-precedence-violation": (3, 14, 14),
    "precedence-cutoff": (3, 15, 15), "source-quench": (4, 0, 255), "redirect": (5, 0, 255),
    "network-redirect": (5, 0, 0), "host-redirect": (5, 1, 1), "TOS-network-redirect": (5, 2, 2),
    "TOS-host-redirect": (5, 3, 3), "echo-request": (8, 0, 255), "ping": (8, 0, 255),
    "router-advertisement": (9, 0, 255), "router-solicitation": (10, 0, 255),
    "time-exceeded": (11, 0, 255), "ttl-exceeded": (11, 0, 255),
    "ttl-zero-during-transit": (11, 0, 0), "ttl-zero-during-reassembly": (11, 1, 1),
    "parameter-problem": (12, 0, 255), "ip-header-bad": (12, 0, 0),
    "required-option-missing": (12, 1, 1), "timestamp-request": (13, 0, 255),
    "timestamp-reply": (14, 0, 255), "address-mask-request": (17, 0, 255),
    "address-mask-reply": (18, 0, 255),
}
ICMP6_TYPES: Mapping[str, tuple[int, int, int]] = {
    "destination-unreachable": (1, 0, 255), "no-route": (1, 0, 0),
    "communication-prohibited": (1, 1, 1), "beyond-scope": (1, 2, 2),
    "address-unreachable": (1, 3, 3), "port-unreachable": (1, 4, 4), "failed-policy": (1, 5, 5),
    "reject-route": (1, 6, 6), "packet-too-big": (2, 0, 255), "time-exceeded": (3, 0, 255),
    "ttl-exceeded": (3, 0, 255), "ttl-zero-during-transit": (3, 0, 0),
    "ttl-zero-during-reassembly": (3, 1, 1), "parameter-problem": (4, 0, 255),
    "bad-header": (4, 0, 0), "unknown-header-type": (4, 1, 1), "unknown-option": (4, 2, 2),
    "echo-request": (128, 0, 255), "ping": (128, 0, 255), "echo-reply": (129, 0, 255),
    "pong": (129, 0, 255), "router-solicitation": (133, 0, 255),
    "router-advertisement": (134, 0, 255), "neighbour-solicitation": (135, 0, 255),
    "neighbor-solicitation": (135, 0, 255), "neighbour-advertisement": (136, 0, 255),
    "neighbor-advertisement": (136, 0, 255), "redirect": (137, 0, 255),
}
ICMP6_TYPES_LATER: Mapping[str, tuple[int, int, int]] = {
    "mld-listener-query": (130, 0, 255), "mld-listener-report": (131, 0, 255),
    "mld-listener-done": (132, 0, 255), "mld-listener-reduction": (132, 0, 255),
}
"""ICMPv6 names iptables 1.8.10 and later add: ip6tables 1.8.9 refuses them in rules (natlens
too), but a later ``ip6tables -L`` may print them (natlens.parse.listing reads them)."""


def icmp_type_range(text: str, v6: bool = False) -> tuple[int, int, int]:
    """``echo-request`` / ``8`` / ``3/1`` / ``255/0:255`` → (type, code low, code high).

    A name may be any unique case-insensitive prefix of one of the table's names (``echo-req``),
    as libxt_icmp.h / libip6t_icmp6.c ``parse_icmp*`` read it (``strncasecmp`` over the table,
    aliases ``ping``/``pong`` entries of their own). Raises ValueError for an ambiguous prefix
    (``echo``) or a value that is neither a name nor numbers."""
    names = ICMP6_TYPES if v6 else ICMP4_TYPES
    if text:
        low_text = text.lower()
        found = [name for name in names if name.lower().startswith(low_text)]
        if len(found) > 1:
            raise ValueError(f"ambiguous ICMP{'v6' if v6 else ''} type {text!r}: "
                             f"{found[0]!r} or {found[1]!r}?")
        if found:
            return names[found[0]]
    # libxt_icmp.h __parse_icmp/parse_range: TYPE[:TYPE][/CODE[:CODE]], each number as
    # xtables_strtoui(.., 0, 255) reads it (C strtoul, base 0); both types the same
    types = _icmp_numbers(text)
    if types is None or types[0] != types[1]:
        raise ValueError(f"invalid ICMP{'v6' if v6 else ''} type {text!r}")
    rest = types[2]
    if not rest:
        return types[0], 0, 255
    codes = _icmp_numbers(rest[1:]) if rest[0] == "/" else None
    if codes is None or codes[2] or codes[0] > codes[1]:
        raise ValueError(f"invalid ICMP{'v6' if v6 else ''} type {text!r}")
    return types[0], codes[0], codes[1]


def _icmp_numbers(text: str) -> tuple[int, int, str] | None:
    """libxt_icmp.h ``parse_range``: (low, high, the text after them) of ``N[:M]``, each 0..255
    as C strtoul (base 0) reads it, or None."""
    first = c_strtoul_prefix(text)
    if first is None or not 0 <= first[0] <= 255:
        return None
    low, rest = first
    if not rest.startswith(":"):
        return low, low, rest
    second = c_strtoul_prefix(rest[1:])
    if second is None or not 0 <= second[0] <= 255:
        return None
    return low, second[0], second[1]


def _icmp_text(args: tuple[str, ...], v6: bool) -> tuple[str, ...]:
    icmp_type, low, high = icmp_type_range(args[0], v6)
    if not v6 and (icmp_type, low, high) == (255, 0, 255):
        return ("any",)
    if (low, high) == (0, 255):
        return (str(icmp_type),)
    return (f"{icmp_type}/{low}" if low == high else f"{icmp_type}/{low}:{high}",)


_RATE_UNITS = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))
_LIMIT_SCALE = 10000


def rate_parts(text: str, bits: int = 32) -> tuple[int, int] | None:
    """(count, seconds per unit) of a packet rate ``N[/unit]`` as libxt_limit.c (``bits``
    32: ``uint32_t r = atoi(rate)``) and libxt_hashlimit.c (64: ``uint64_t r = atoll(rate)``)
    ``parse_rate`` read it, or None when they refuse it: the unit after the first ``/`` is a
    non-empty prefix of second, minute, hour or day in any case (none: second); the count is
    what C ``atoi`` reads at the start (``3abc/sec`` is 3; ``²``, ``0x10``: 0, refused),
    wrapped to an unsigned ``bits``-bit number (``-1``: the largest).

    >>> rate_parts("3/MIN"), rate_parts("3abc/s"), rate_parts("²/sec"), rate_parts("3/")
    ((3, 60), (3, 1), None, None)
    """
    slash = text.find("/")
    mult = 1
    if slash >= 0:
        unit = text[slash + 1:].lower()
        found = next((sec for full, sec in _RATE_UNITS if unit and full.startswith(unit)), None)
        if found is None:
            return None
        mult = found
    # strtol saturates at the 64-bit long's bounds; the assignment wraps
    count = max(-(2**63), min(c_atoi(text), 2**63 - 1)) % 2**bits
    if count == 0:
        return None
    return count, mult


def _rate(args: tuple[str, ...]) -> tuple[str, ...]:
    """``--limit 3/minute`` → ``3/min`` exactly as libxt_limit's print_rate does; refused as
    its ``parse_rate`` refuses (``rate_parts``; "Rate too fast" when the period in 1/10000 s is
    0)."""
    parts = rate_parts(args[0])
    if parts is None:
        raise ValueError(f"bad rate {args[0]!r}")
    count, mult = parts
    period = _LIMIT_SCALE * mult // count
    if period == 0:
        raise ValueError(f"rate too fast {args[0]!r}")
    return (rate_text(period, _LIMIT_SCALE)[0],)


def rate_text(period: int, scale: int) -> tuple[str, int]:
    """(``N/unit`` as xtables' ``print_rate`` prints a ``period`` in 1/``scale`` s, that
    unit in 1/``scale`` s): the longest unit that gives a whole enough count (libxt_limit.c,
    libxt_hashlimit.c)."""
    units = (("day", scale * 86400), ("hour", scale * 3600), ("min", scale * 60),
             ("sec", scale))
    i = 1
    while i < len(units):
        m = units[i][1]
        if period > m or m // period < m % period:
            break
        i += 1
    name, m = units[i - 1]
    return f"{m // period}/{name}", m


_HL_SCALE = 1_000_000  # XT_HASHLIMIT_SCALE_v2: iptables 1.8.9 uses revision 3
_HL_BURST_MAX = 1_000_000  # XT_HASHLIMIT_BURST_MAX
_UINT64 = 2**64 - 1


def _hashlimit_rate(args: tuple[str, ...]) -> tuple[str, ...]:
    """``--hashlimit-upto/-above``: a byte rate (``b/s`` after something: libxt_hashlimit.c
    ``parse_bytes``, a non-zero ``atoll`` count) or a packet rate (``parse_rate``: see
    ``rate_parts``; "Rate too fast" when 10^6 * seconds per unit / count is 0). Given back as
    written (natlens.parse.canonical prints it)."""
    text = args[0]
    mode = text.find("b/s")
    if mode > 0 and max(-(2**63), min(c_atoi(text), 2**63 - 1)) % 2**64:
        return args
    parts = rate_parts(text, 64)
    if parts is None:
        raise ValueError(f"bad rate {text!r}")
    if _HL_SCALE * parts[1] // parts[0] == 0:
        raise ValueError(f"rate too fast {text!r}")
    return args


def _hashlimit_burst(args: tuple[str, ...]) -> tuple[str, ...]:
    """``--hashlimit-burst``: libxt_hashlimit.c ``parse_burst``: a number from 1 as C strtoul
    (base 0) reads it, at most 10^6 when nothing follows it; a ``k``/``m`` after it multiplies
    it by 1024 / 1024² (for byte rates)."""
    text = args[0]
    found = c_strtoul_prefix(text)
    if found is None or not 1 <= found[0] <= _UINT64 or (not found[1] and found[0] > _HL_BURST_MAX):
        raise ValueError(f"bad burst {text!r} (1-{_HL_BURST_MAX})")
    return args


def _positive_atoi(args: tuple[str, ...]) -> tuple[str, ...]:
    """A count read with C ``atoi`` that must be above 0 (libxt_hashlimit.c
    ``parse_interval``: ``--hashlimit-rate-interval``); given back in decimal, as printed."""
    value = max(-(2**63), min(c_atoi(args[0]), 2**63 - 1))
    value = (value + 2**31) % 2**32 - 2**31  # int r = atoi(...)
    if value <= 0:
        raise ValueError(f"bad value {args[0]!r} (a number above 0)")
    return (str(value),)


def _mint(text: str, top: int) -> list[int]:
    """libxtables ``xtopt_parse_mint`` (``XTTYPE_UINT16RC``/``UINT32RC``): up to two numbers
    0..``top`` separated by ``:``, each as C strtoul (base 0) reads it; an empty first is 0 and
    an empty second ``top``. Raises ValueError as it refuses."""
    values: list[int] = []
    rest = text
    while True:
        if len(values) == 2:
            raise ValueError(f"too many components in {text!r} (max: 2)")
        if not rest or rest[0] == ":":
            values.append(top if len(values) == 1 else 0)
        else:
            found = c_strtoul_prefix(rest)
            if found is None or not 0 <= found[0] <= top:
                raise ValueError(f"bad value {text!r}, or out of range (0-{top})")
            if found[1] and found[1][0] != ":":
                raise ValueError(f"unexpected characters in {text!r}")
            values.append(found[0])
            rest = found[1]
        if not rest:
            return values
        rest = rest[1:]


def _queue_balance(args: tuple[str, ...]) -> tuple[str, ...]:
    """NFQUEUE ``--queue-balance FIRST:LAST``: libxt_NFQUEUE.c ``NFQUEUE_parse_v1``: two
    16-bit numbers (``xtopt_parse_mint``), FIRST below LAST; printed ``%u:%u``."""
    values = _mint(args[0], 0xFFFF)
    if len(values) != 2:
        raise ValueError(f"bad range {args[0]!r} (FIRST:LAST)")
    if values[0] >= values[1]:
        raise ValueError(f"{values[0]} should be less than {values[1]}")
    return (f"{values[0]}:{values[1]}",)


def _ctaddr(args: tuple[str, ...]) -> tuple[str, ...]:
    net = ipaddress.ip_network(canonical_address(args[0]))
    if net.prefixlen == net.max_prefixlen:
        return (str(net.network_address),)
    return (str(net),)


def _range(top: int) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    """``N`` or ``LOW:HIGH`` within 0..``top`` (``--length``: 16 bits; ``--ctexpire``,
    ``--espspi``: 32 bits), printed ``LOW:HIGH`` (``N`` when both are equal)."""

    def check(args: tuple[str, ...]) -> tuple[str, ...]:
        values = _mint(args[0], top)  # numbers as C strtoul reads them: 0x10, 010
        low = values[0]
        high = values[-1]
        return (str(low) if low == high else f"{low}:{high}",)

    return check


CANONICAL.update(
    {
        "icmptype": lambda a: _icmp_text(a, False),
        "icmp6type": lambda a: _icmp_text(a, True),
        "rate": _rate,
        "ctaddr": _ctaddr,
        "range32": _range(0xFFFFFFFF),
        "range16": _range(0xFFFF),
        "u8": _bounded(0xFF, decimal=True),
        # a prefix length: 0-128 here, 0-32 in iptables (IPv4) rules checked by
        # natlens.parse.families (libxt_hashlimit.c XTTYPE_PLEN; hashlimit_mt_check refuses
        # an IPv4 mask above 32)
        "plen": _bounded(128, decimal=True),
        "u16": _bounded(0xFFFF, decimal=True),
        "u32": _bounded(0xFFFFFFFF, decimal=True),
        "u32min1": _bounded(0xFFFFFFFF, decimal=True, low=1),
        "limitburst": _bounded(10000, decimal=True),  # libxt_limit.c: .max = 10000
        "hlrate": _hashlimit_rate,
        "hlburst": _hashlimit_burst,
        "atoipos": _positive_atoi,
        "qbalance": _queue_balance,
        "dscp": _bounded(0x3F),
        "loglevel": _loglevel,
        "tosmask": _tosmask,
        "tosbits": _tos_u8,
    }
)
