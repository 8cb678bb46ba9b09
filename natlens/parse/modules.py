"""Option specs of the match modules and targets natlens knows (iptables-extensions(8)).

Supporting a module is one entry in ``MATCHES`` or ``TARGETS``. An option is written
``"--name|--alias=NARGS:kind"``: the first name is the one iptables-save prints, ``NARGS``
(default 1) is how many arguments follow it, and ``kind`` names a value check/canonicaliser in
``natlens.parse.values`` (default: kept as written; ``u8``/``u16``/``u32``: a number in that
range, as the extension's ``xtables_strtoui`` bound refuses the rest). Options are listed in the
order the module's save function prints them.

Modules and targets not listed here are kept verbatim (``Match.known``/``TargetKind.UNKNOWN``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["ABSENT_MATCHES", "MATCHES", "PROTOCOL_MATCHES", "TARGETS", "ModuleSpec", "OptSpec"]


@dataclass(frozen=True, slots=True)
class OptSpec:
    """One option: canonical name, accepted aliases, argument count and value kind."""

    name: str
    nargs: int = 1
    aliases: tuple[str, ...] = ()
    kind: str = "str"
    order: int = 0


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """A match module or target with its options."""

    name: str
    options: tuple[OptSpec, ...]
    by_name: Mapping[str, OptSpec] = field(
        default_factory=lambda: MappingProxyType({}), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[str, OptSpec] = {}
        for spec in self.options:
            for name in (spec.name, *spec.aliases):
                index[name] = spec
        object.__setattr__(self, "by_name", MappingProxyType(index))

    def lookup(self, name: str) -> OptSpec | None:
        """The option ``name`` or, as getopt_long allows, a unique prefix of one."""
        spec = self.by_name.get(name)
        if spec is not None or not name.startswith("--") or len(name) < 4:
            return spec
        found = {s for n, s in self.by_name.items() if n.startswith(name)}
        return found.pop() if len(found) == 1 else None


def _spec(name: str, *options: str) -> ModuleSpec:
    parsed: list[OptSpec] = []
    for order, text in enumerate(options):
        kind = "str"
        nargs = 1
        if ":" in text:
            text, kind = text.split(":", 1)
        if "=" in text:
            text, count = text.split("=", 1)
            nargs = int(count)
        names = text.split("|")
        parsed.append(OptSpec(names[0], nargs, tuple(names[1:]), kind, order))
    return ModuleSpec(name, tuple(parsed))


_PORTS = ("--sport|--source-port:port", "--dport|--destination-port:port")

_MATCH_LIST = (
    _spec("tcp", *_PORTS, "--tcp-flags=2:tcpflags", "--syn=0", "--tcp-option:u8"),
    _spec("udp", *_PORTS),
    _spec("sctp", *_PORTS, "--chunk-types=2"),
    _spec("dccp", *_PORTS, "--dccp-types", "--dccp-option:u8"),
    _spec("icmp", "--icmp-type:icmptype"),
    _spec("icmp6", "--icmpv6-type:icmp6type"),
    _spec("multiport", "--sports|--source-ports:ports", "--dports|--destination-ports:ports",
          "--ports:ports"),
    _spec("addrtype", "--src-type:addrtypes", "--dst-type:addrtypes", "--limit-iface-in=0",
          "--limit-iface-out=0"),
    _spec("conntrack", "--ctstate:ctstates", "--ctproto", "--ctorigsrc:ctaddr",
          "--ctorigdst:ctaddr", "--ctreplsrc:ctaddr", "--ctrepldst:ctaddr",
          "--ctorigsrcport:ctport", "--ctorigdstport:ctport",
          "--ctreplsrcport:ctport", "--ctrepldstport:ctport", "--ctstatus:ctstatus",
          "--ctexpire:range32", "--ctdir:ctdir"),
    _spec("state", "--state:states"),
    _spec("comment", "--comment:string"),
    _spec("mark", "--mark:mark"),
    _spec("connmark", "--mark:mark"),
    _spec("statistic", "--mode", "--probability:probability", "--every:u32", "--packet:u32"),
    _spec("iprange", "--src-range:iprange", "--dst-range:iprange"),
    _spec("set", "--match-set=2", "--return-nomatch=0", "--update-counters=0",
          "--update-subcounters=0", "--packets-eq:int", "--packets-lt:int", "--packets-gt:int",
          "--bytes-eq:int", "--bytes-lt:int", "--bytes-gt:int"),
    _spec("physdev", "--physdev-is-in=0", "--physdev-in", "--physdev-is-out=0",
          "--physdev-out", "--physdev-is-bridged=0"),
    _spec("limit", "--limit:rate", "--limit-burst:limitburst"),
    _spec("owner", "--uid-owner", "--gid-owner", "--suppl-groups=0", "--socket-exists=0"),
    _spec("pkttype", "--pkt-type"),
    _spec("recent", "--set=0", "--rcheck=0", "--update=0", "--remove=0", "--seconds:u32min1",
          "--reap=0", "--hitcount:u32", "--rttl=0", "--name", "--mask", "--rsource=0",
          "--rdest=0"),
    _spec("mac", "--mac-source"),
    _spec("hashlimit", "--hashlimit-upto|--hashlimit:hlrate", "--hashlimit-above:hlrate",
          "--hashlimit-burst:hlburst", "--hashlimit-mode", "--hashlimit-name",
          "--hashlimit-htable-size:u32", "--hashlimit-htable-max:u32",
          "--hashlimit-htable-gcinterval:u32", "--hashlimit-htable-expire:u32",
          "--hashlimit-srcmask:plen", "--hashlimit-dstmask:plen", "--hashlimit-rate-match=0",
          "--hashlimit-rate-interval:atoipos"),
    _spec("string", "--string:string", "--hex-string", "--algo", "--from:u16", "--to:u16",
          "--icase=0"),
    _spec("ttl", "--ttl-eq:u8", "--ttl-gt:u8", "--ttl-lt:u8"),
    _spec("esp", "--espspi:range32"),
    _spec("ah", "--ahspi:range32"),
    _spec("length", "--length:range16"),
    _spec("hl", "--hl-eq:u8", "--hl-gt:u8", "--hl-lt:u8"),
    _spec("tos", "--tos:tosmask"),
    _spec("dscp", "--dscp:dscp", "--dscp-class"),
    _spec("helper", "--helper:string"),
    _spec("connlimit", "--connlimit-upto:u32", "--connlimit-above:u32", "--connlimit-mask:u8",
          "--connlimit-saddr=0", "--connlimit-daddr=0"),
    _spec("devgroup", "--src-group", "--dst-group"),
    _spec("socket", "--transparent=0", "--nowildcard=0", "--restore-skmark=0"),
    _spec("rpfilter", "--loose=0", "--validmark=0", "--accept-local=0", "--invert=0"),
)

MATCHES: Mapping[str, ModuleSpec] = MappingProxyType({m.name: m for m in _MATCH_LIST})

PROTOCOL_MATCHES = frozenset({"tcp", "udp", "sctp", "dccp", "icmp", "icmp6"})
"""Matches that ``-p PROTO`` loads implicitly when one of their options follows."""

ABSENT_MATCHES = frozenset({"udplite"})
"""Matches iptables 1.8.9 has no extension for (``-p udplite`` is a protocol, but there is no
libxt_udplite): iptables-restore says "Couldn't load match", so natlens refuses them rather
than keep them as unknown modules."""

_MARK = ("--set-xmark:mark", "--set-mark:mark", "--and-mark:mark", "--or-mark:mark",
         "--xor-mark:mark")

_TARGET_LIST = (
    _spec("REJECT", "--reject-with"),
    _spec("DNAT", "--to-destination|--to:natrange", "--random=0", "--persistent=0"),
    _spec("SNAT", "--to-source|--to:natrange", "--random=0", "--random-fully=0",
          "--persistent=0"),
    _spec("MASQUERADE", "--to-ports:natports", "--random=0", "--random-fully=0"),
    _spec("REDIRECT", "--to-ports:natports", "--random=0"),
    _spec("NETMAP", "--to:cidr"),
    _spec("MARK", *_MARK),
    _spec("CONNMARK", *_MARK, "--save-mark=0", "--restore-mark=0", "--nfmask:mark",
          "--ctmask:mark", "--mask:mark"),
    _spec("LOG", "--log-prefix:prefix", "--log-level:loglevel", "--log-tcp-sequence=0",
          "--log-tcp-options=0", "--log-ip-options=0", "--log-uid=0", "--log-macdecode=0"),
    _spec("NFLOG", "--nflog-prefix:prefix", "--nflog-group:u16", "--nflog-size:u32",
          "--nflog-range:u32", "--nflog-threshold:u32"),
    _spec("CT", "--notrack=0", "--helper:string", "--ctevents", "--expevents", "--zone-orig",
          "--zone-reply", "--zone", "--timeout:string"),
    _spec("NOTRACK"),
    _spec("TRACE"),
    _spec("TPROXY", "--on-port:u16", "--on-ip", "--tproxy-mark:mark"),
    _spec("TCPMSS", "--set-mss:u16", "--clamp-mss-to-pmtu=0"),
    _spec("CHECKSUM", "--checksum-fill=0"),
    _spec("NFQUEUE", "--queue-num:u16", "--queue-balance:qbalance", "--queue-bypass=0",
          "--queue-cpu-fanout=0"),
    _spec("CLASSIFY", "--set-class"),
    _spec("DSCP", "--set-dscp:dscp", "--set-dscp-class"),
    _spec("TOS", "--set-tos:tosmask", "--and-tos:tosbits", "--or-tos:tosbits",
          "--xor-tos:tosbits"),
    _spec("TTL", "--ttl-set:u8", "--ttl-dec:u8", "--ttl-inc:u8"),
    _spec("HL", "--hl-set:u8", "--hl-dec:u8", "--hl-inc:u8"),
    _spec("AUDIT", "--type"),
    _spec("SET", "--add-set=2", "--del-set=2", "--map-set=2", "--timeout:u32", "--exist=0",
          "--map-mark=0", "--map-prio=0", "--map-queue=0"),
)

TARGETS: Mapping[str, ModuleSpec] = MappingProxyType({t.name: t for t in _TARGET_LIST})
