"""What an nft expression reads from the packet (``Flow``) at a hook: payload, meta, ct, fib.

Semantics: nft(8) "PAYLOAD EXPRESSION", "META EXPRESSIONS", "CONNTRACK EXPRESSIONS", "FIB
EXPRESSIONS"; the kernel's ``nft_payload.c``, ``nft_meta.c``, ``nft_ct.c``, ``nft_fib.c``.

A getter returns a normalised value (``int`` or ``str``, a tuple for a concatenation),
``Missing`` when the kernel could not load it and ends the rule (``NFT_BREAK``: the implicit
protocol dependency failed — ``tcp dport`` on a UDP packet, ``ip saddr`` on IPv6 in an inet
table —, no conntrack entry for a ct key other than ``state``, no route for a ``fib`` ``oif``
is *not* Missing but the value 0), or ``Unknown`` when the snapshot cannot tell (the TTL, the
connmark of an existing connection, a random number).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from natlens.nft.datatypes import CT_STATE_BITS, CT_STATUS_BITS, NFPROTO, TCP_FLAG_BITS
from natlens.nft.jsonvalue import MAPPINGS, Json
from natlens.nft.lookup import Scalar

if TYPE_CHECKING:  # natlens.netfilter imports natlens.nft: no runtime import back
    from natlens.netfilter.flow import Flow
    from natlens.netfilter.host import Host

__all__ = ["Draw", "Missing", "Unknown", "Value", "Getter", "Where", "compile_getter",
           "PROTO_NUMBERS", "CONNTRACK_PRIORITY"]

CONNTRACK_PRIORITY = -200
"""NF_IP_PRI_CONNTRACK: base chains of prerouting/output below it run before conntrack."""

PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}
_PORTED = frozenset({"tcp", "udp", "sctp", "udplite", "dccp"})


@dataclass(frozen=True, slots=True)
class Missing:
    """The expression cannot be loaded for this packet: the rule stops here (no match)."""

    why: str


@dataclass(frozen=True, slots=True)
class Draw:
    """A number ``numgen`` generates per packet: one of ``first``..``first + count - 1``, each
    as likely as the others for a new connection (``mode random``: ``nft_ng_random_eval``,
    uniform; ``mode inc``: ``nft_ng_inc_eval``, a counter every packet that reaches the
    expression advances, so which value a given connection's first packet meets depends on
    the traffic before it: 1/count each over time, as natlens reads iptables' ``-m statistic
    --mode nth``). ``ident`` names the expression: ``Where.draws`` fixes its value."""

    ident: int
    first: int
    count: int


@dataclass(frozen=True, slots=True)
class Unknown:
    """The snapshot cannot tell the value. ``random`` marks numgen/jhash (every element of a
    map it keys can be chosen); ``draw`` a numgen whose values can be weighed (``Draw``)."""

    why: str
    random: bool = False
    draw: Draw | None = None


Value = Scalar | tuple[Scalar, ...] | bool | Missing | Unknown


@dataclass(frozen=True, slots=True)
class Where:
    """Where an expression is evaluated: the host, the nft hook (``prerouting``…), the table
    family (``ip``, ``ip6``, ``inet``) and the priority of the base chain being walked."""

    host: Host
    hook: str
    priority: int = 0
    draws: tuple[tuple[int, int], ...] = ()
    """(``Draw.ident``, value): numgen expressions whose value this evaluation fixes."""

    @property
    def before_conntrack(self) -> bool:
        return self.hook in ("prerouting", "output") and self.priority < CONNTRACK_PRIORITY


Getter = Callable[["Flow", Where], Value]

MAX_DRAWS = 1024
"""A numgen with more values than this stays a doubt (each value is evaluated once)."""
_DRAW_IDS = itertools.count()


def _numgen(body: Mapping[str, Json]) -> Getter:
    """``numgen random|inc mod N [offset O]``: a ``Draw`` of O..O+N-1 (nft(8) "NUMGEN
    EXPRESSION"; ``nft_numgen.c``), or the value ``Where.draws`` fixes for it."""
    mod, offset, mode = body.get("mod"), body.get("offset") or 0, body.get("mode")
    why = f"numgen {mode}: a number chosen per packet"
    if not (isinstance(mod, int) and isinstance(offset, int) and mode in ("random", "inc")
            and 0 < mod <= MAX_DRAWS):
        return _const(Unknown(why, random=True))
    draw = Draw(next(_DRAW_IDS), offset, mod)
    unknown = Unknown(why, random=True, draw=draw)

    def numgen(flow: Flow, where: Where) -> Value:
        for ident, value in where.draws:
            if ident == draw.ident:
                return value
        return unknown

    return numgen


def _const(value: Value) -> Getter:
    return lambda flow, where: value


def _payload(body: Mapping[str, Json]) -> Getter:
    if "base" in body:
        return _const(Unknown(f"raw payload @{body.get('base')},{body.get('offset')},"
                              f"{body.get('len')}"))
    proto, fld = str(body.get("protocol")), str(body.get("field"))
    text = f"{proto} {fld}"
    if proto in ("ip", "ip6"):
        version = 4 if proto == "ip" else 6
        other = f"not an IPv{version} packet"

        def l3(flow: Flow, where: Where) -> Value:
            if flow.dst.version != version:
                return Missing(other)
            if fld == "saddr":
                return int(flow.src)
            if fld == "daddr":
                if flow.dst_unknown is not None:
                    return Unknown(f"{text}: the destination is {flow.dst_unknown} (unknown)")
                return int(flow.dst)
            if fld in ("protocol", "nexthdr"):
                return PROTO_NUMBERS.get(flow.proto, 0)
            if fld == "version":
                return version
            return Unknown(f"{text} of the packet")

        return l3
    if proto == "th":
        def th(flow: Flow, where: Where) -> Value:
            if flow.proto not in _PORTED:
                return Unknown(f"th {fld} of a {flow.proto} packet reads its header bytes")
            value = flow.sport if fld == "sport" else flow.dport if fld == "dport" else None
            return value if value is not None else Unknown(f"{text} not given")

        return th
    if proto in _PORTED:
        def l4(flow: Flow, where: Where) -> Value:
            if flow.proto != proto:
                return Missing(f"not a {proto} packet")
            if fld in ("sport", "dport"):
                value = flow.sport if fld == "sport" else flow.dport
                return value if value is not None else Unknown(f"{text} not given")
            if fld == "flags" and proto == "tcp":
                if flow.ctstate == "NEW":
                    return TCP_FLAG_BITS["syn"]
                return Unknown("tcp flags of a packet of an existing connection")
            return Unknown(f"{text} of the packet")

        return l4
    if proto in ("icmp", "icmpv6"):
        def icmp(flow: Flow, where: Where) -> Value:
            if flow.proto != proto:
                return Missing(f"not an {proto} packet")
            if fld == "type":
                return flow.icmp_type if flow.icmp_type is not None else Unknown("icmp type")
            if fld == "code" and flow.icmp_type in (0, 8, 128, 129):
                return 0
            return Unknown(f"{text} of the packet")

        return icmp
    return _const(Unknown(f"{text} (not simulated)"))


def _meta(body: Mapping[str, Json]) -> Getter:
    key = str(body.get("key"))
    if key in ("iifname", "iif"):
        return lambda flow, where: flow.in_iface or ""
    if key in ("oifname", "oif"):
        def out(flow: Flow, where: Where) -> Value:
            if where.hook in ("prerouting", "input", "ingress"):
                return ""
            if not flow.out_known:
                return Unknown("output interface unknown (no routes in the snapshot)")
            return flow.out_iface or ""

        return out
    if key == "l4proto":
        return lambda flow, where: PROTO_NUMBERS.get(flow.proto, 0)
    if key == "nfproto":
        return lambda flow, where: NFPROTO["ipv4" if flow.dst.version == 4 else "ipv6"]
    if key == "protocol":
        return lambda flow, where: 0x0800 if flow.dst.version == 4 else 0x86DD
    if key == "mark":
        return lambda flow, where: flow.mark
    if key == "pkttype":
        def pkttype(flow: Flow, where: Where) -> Value:
            kind = where.host.address_type(flow.dst)
            return {"BROADCAST": 1, "MULTICAST": 2}.get(kind, 0)

        return pkttype
    if key in ("skuid", "skgid", "cgroup"):
        def socket(flow: Flow, where: Where) -> Value:
            if flow.local_origin and where.hook in ("output", "postrouting"):
                return Unknown(f"meta {key} of the local socket")
            return Missing(f"meta {key}: the packet has no local socket")

        return socket
    return _const(Unknown(f"meta {key} (not simulated)"))


def _ct(body: Mapping[str, Json]) -> Getter:
    key = str(body.get("key"))
    direction = body.get("dir")
    family = body.get("family")
    text = " ".join(str(p) for p in ("ct", direction, family, key) if p)

    def ct(flow: Flow, where: Where) -> Value:
        untracked = flow.ctstate == "UNTRACKED"
        if key == "state":
            if untracked:
                return CT_STATE_BITS["untracked"]
            if where.before_conntrack:
                return CT_STATE_BITS["invalid"]
            return CT_STATE_BITS.get(flow.ctstate.lower(), CT_STATE_BITS["invalid"])
        if untracked:
            return Missing(f"{text}: the packet is untracked")
        if where.before_conntrack:
            return Missing(f"{text}: no conntrack entry before priority {CONNTRACK_PRIORITY}")
        new = flow.ctstate == "NEW"
        if key == "status":
            if not new:
                return Unknown(f"{text} of an existing connection")
            return (CT_STATUS_BITS["dnat"] if flow.dnat else 0) | \
                (CT_STATUS_BITS["snat"] if flow.snat else 0)
        if key == "direction":
            return 0 if new else Unknown(f"{text} of a {flow.ctstate.lower()} packet")
        if key == "mark":
            return flow.ctmark if flow.ctmark_known else Unknown(f"{text} of an existing "
                                                                  "connection")
        if key == "l3proto":
            return NFPROTO["ipv4" if flow.dst.version == 4 else "ipv6"]
        if key == "protocol":
            return PROTO_NUMBERS.get(flow.proto, 0)
        if key in ("saddr", "daddr", "ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr"):
            fam = family or (key.split(maxsplit=1)[0] if " " in key else None)
            if fam is not None and (4 if fam == "ip" else 6) != flow.dst.version:
                return Missing(f"{text}: not an {fam} connection")
            src = key.endswith("saddr")
            if direction == "reply":
                return int(flow.dst if src else flow.src)
            orig = flow.orig_src if src else flow.orig_dst
            return int(orig) if orig is not None else Unknown(f"{text}: original tuple unknown")
        if key in ("proto-src", "proto-dst"):
            src = key == "proto-src"
            if direction == "reply":
                port = flow.dport if src else flow.sport
            else:
                port = flow.orig_sport if src else flow.orig_dport
            return port if port is not None else Unknown(f"{text}: port not given")
        return Unknown(f"{text} (not simulated)")

    return ct


def _fib(body: Mapping[str, Json]) -> Getter:
    raw_flags = body.get("flags")
    flags = tuple(str(f) for f in (raw_flags if isinstance(raw_flags, tuple) else
                                   (raw_flags,) if raw_flags is not None else ()))
    result = str(body.get("result"))
    source = "saddr" in flags
    text = f"fib {' . '.join(flags)} {result}"

    def fib(flow: Flow, where: Where) -> Value:
        host = where.host
        ip = flow.src if source else flow.dst
        if result == "type":
            dev = flow.in_iface if "iif" in flags else flow.out_iface if "oif" in flags else None
            if not source and flow.dst_unknown is not None:  # an address source NAT took
                return "local" if dev is None else Unknown(
                    f"{text}: the destination is {flow.dst_unknown} (unknown)")
            kind = host.address_type(ip, dev).lower()
            if kind == "unicast" and not host.known_addresses:
                return Unknown(f"{text}: host addresses unknown, {ip} may be local")
            return kind
        if result in ("oif", "oifname"):
            if not source and flow.dst_unknown is not None:
                return Unknown(f"{text}: the destination is {flow.dst_unknown} (unknown)")
            known = host.known_routes if ip.version == 4 else host.known_routes6
            if not known or not (host.routes if ip.version == 4 else host.routes6):
                return Unknown(f"{text}: no routes in the snapshot")
            local = host.local_interface(ip)
            out: str | None = local
            if local is None:
                route = host.route(ip)
                out = route.dev if route is not None and route.kind == "unicast" else None
            if out is not None and "iif" in flags and flow.in_iface not in (None, out) \
                    and local is None:
                out = None
            return out if out is not None else False
        return Unknown(f"{text} (not simulated)")

    return fib


_BINOP_FNS: dict[str, Callable[[int, int], int]] = {
    "&": lambda a, b: a & b,
    "|": lambda a, b: a | b,
    "^": lambda a, b: a ^ b,
    "<<": lambda a, b: (a << b) & 0xFFFFFFFF,
    ">>": lambda a, b: a >> b,
}


def compile_getter(expr: Json, constant: Callable[[Json, str | None], Value],
                   dtype: str | None = None) -> Getter:
    """A getter for a left-hand side expression; ``constant`` normalises literal operands
    (``constant(json, dtype)``)."""
    if not isinstance(expr, MAPPINGS) or len(expr) != 1:
        value = constant(expr, dtype)
        return _const(value)
    ((kind, body),) = expr.items()
    if kind == "payload" and isinstance(body, MAPPINGS):
        return _payload(body)
    if kind == "meta" and isinstance(body, MAPPINGS):
        return _meta(body)
    if kind == "ct" and isinstance(body, MAPPINGS):
        return _ct(body)
    if kind == "fib" and isinstance(body, MAPPINGS):
        return _fib(body)
    if kind == "numgen" and isinstance(body, MAPPINGS):
        return _numgen(body)
    if kind in ("numgen", "jhash", "symhash"):
        return _const(Unknown(f"{kind}: a number chosen per packet", random=True))
    if kind == "concat" and isinstance(body, tuple):
        parts = tuple(compile_getter(p, constant) for p in body)

        def concat(flow: Flow, where: Where) -> Value:
            values: list[Scalar] = []
            for get in parts:
                v = get(flow, where)
                if isinstance(v, Missing | Unknown):
                    return v
                if isinstance(v, tuple | bool):
                    return Unknown("nested concatenation")
                values.append(v)
            return tuple(values)

        return concat
    if kind in _BINOP_FNS and isinstance(body, tuple) and body:
        fn = _BINOP_FNS[kind]
        first = compile_getter(body[0], constant, dtype)
        rest = tuple(compile_getter(b, constant, "integer") for b in body[1:])

        def binop(flow: Flow, where: Where) -> Value:
            acc = first(flow, where)
            if isinstance(acc, Missing | Unknown):
                return acc
            for get in rest:
                v = get(flow, where)
                if isinstance(v, Missing | Unknown):
                    return v
                if not isinstance(acc, int) or not isinstance(v, int) \
                        or isinstance(acc, bool) or isinstance(v, bool):
                    return Unknown(f"{kind} on a non-number")
                acc = fn(acc, v)
            return acc

        return binop
    return _const(Unknown(f"{kind} expression (not simulated)"))
