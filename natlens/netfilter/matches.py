"""Does a rule match a packet, and if not, why not? Table-driven, one entry per match module.

Semantics follow iptables(8) for the fixed part (``-s -d -i -o -p -f``) and
iptables-extensions(8) for the modules: ``tcp``/``udp``/``sctp`` ports, ``multiport``, ``icmp``,
``addrtype`` (the host's ``local`` routing table, see ``host.py``), ``conntrack``/``state``
(states incl. the virtual SNAT/DNAT states, original and reply tuples), ``mark``/``connmark``
(``(mark & mask) == value``), ``iprange``, ``physdev``, ``pkttype`` and ``statistic``.

Each rule is compiled once into a tuple of checks; a check returns None (satisfied), a reason
string (not satisfied), ``Uncertain`` (the snapshot cannot tell: ipsets, rate limits, unknown
modules, ...) or ``Chance`` (``statistic``: satisfied with a probability). ``mismatches`` and the
simulator use the same checks, so a trace's "why not" is the simulator's own reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from natlens.inputs import is_decimal as _decimal
from natlens.model import Interface, Match, Option, Rule
from natlens.netfilter.fastcopy import fast_init
from natlens.netfilter.flow import Flow, MatchContext
from natlens.netfilter.packet import ICMP_TYPES, ICMPV6_TYPES, Packet

__all__ = [
    "COMPILERS",
    "EXTENSION_HEADER_MODULES",
    "UNCERTAIN_MODULES",
    "Chance",
    "Check",
    "CheckResult",
    "Evaluation",
    "Uncertain",
    "compile_rule",
    "evaluate",
    "mismatches",
    "read_out",
    "run_checks",
]


@dataclass(frozen=True, slots=True)
class Uncertain:
    """The snapshot cannot tell whether this part of the rule matches; ``out`` is the rule's
    ``-o`` when that is the part (the output interface is unknown)."""

    what: str
    out: Interface | None = None


@dataclass(frozen=True, slots=True)
class Chance:
    """This part of the rule matches with ``probability`` (``-m statistic``)."""

    probability: float
    what: str


CheckResult = str | Uncertain | Chance | None
Check = Callable[[Flow, MatchContext], CheckResult]

PROTOCOL_ALIASES = {
    "tcp": frozenset({"tcp", "6"}),
    "udp": frozenset({"udp", "17"}),
    "icmp": frozenset({"icmp", "1"}),
    "icmpv6": frozenset({"ipv6-icmp", "icmpv6", "icmp6", "58"}),
    "sctp": frozenset({"sctp", "132"}),
}
_ANY_PROTOCOL = frozenset({"all", "0"})


def _canonical_proto(name: str) -> str | None:
    for proto, names in PROTOCOL_ALIASES.items():
        if name in names:
            return proto
    return None


@fast_init
@dataclass(frozen=True, slots=True)
class Evaluation:
    """The verdict of all checks of one rule on one flow."""

    mismatches: tuple[str, ...] = ()
    uncertain: tuple[str, ...] = ()
    chances: tuple[Chance, ...] = ()
    outs: tuple[Interface, ...] = ()
    """The ``-o`` conditions among ``uncertain`` (``Uncertain.out``)."""

    @property
    def matched(self) -> bool:
        """True when nothing failed and nothing is left to chance or doubt."""
        return not self.mismatches and not self.uncertain and not self.chances

    @property
    def probability(self) -> float:
        """Product of the statistic probabilities (1.0 without any)."""
        p = 1.0
        for c in self.chances:
            p *= c.probability
        return p


# -- helpers ------------------------------------------------------------------------------------


def _opt_text(module: str, opt: Option) -> str:
    neg = "! " if opt.negated else ""
    return f"-m {module} {neg}{opt.name} {opt.value}".rstrip()


def _port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    if not sep:
        return int(text), int(text)
    return int(low or 0), int(high or 65535)


def _ranges(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(_port_range(part) for part in text.split(","))


def _in(value: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= value <= hi for lo, hi in ranges)


def _mark_spec(text: str) -> tuple[int, int]:
    value, _, mask = text.partition("/")
    return int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF


def _uncertain(what: str) -> Check:
    result = Uncertain(what)
    return lambda flow, ctx: result


# -- the fixed part of a rule -------------------------------------------------------------------


_ALL_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_UNKNOWN_MATTERS = {
    # rule field a listing may not show -> hooks where it can decide a match
    "in_interface": frozenset({"PREROUTING", "INPUT", "FORWARD"}),
    "out_interface": frozenset({"FORWARD", "OUTPUT", "POSTROUTING"}),
    "matches": _ALL_HOOKS,
    "source": _ALL_HOOKS,
    "destination": _ALL_HOOKS,
}


def _unknown_field(name: str) -> Check:
    hooks = _UNKNOWN_MATTERS[name]
    if name in ("source", "destination"):
        # a listing always has both columns: unknown only when it showed a host name
        result = Uncertain(f"{name} shown as a host name natlens cannot resolve (list with -n)")
    else:
        result = Uncertain(f"{name.replace('_', '-')} not shown by the listing")

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        return result if ctx.hook in hooks else None

    return check


def _core_checks(rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for field_name in sorted(rule.unknown & _UNKNOWN_MATTERS.keys()):
        checks.append(_unknown_field(field_name))
    if rule.protocol is not None and rule.protocol.name not in _ANY_PROTOCOL:
        proto = rule.protocol
        wanted = _canonical_proto(proto.name)

        def check_proto(flow: Flow, ctx: MatchContext) -> CheckResult:
            hit = flow.proto == wanted
            if hit != proto.negated:
                return None
            return f"protocol {flow.proto} is {'' if hit else 'not '}{proto.name}"

        checks.append(check_proto)
    elif rule.protocol is not None and rule.protocol.negated:
        checks.append(lambda flow, ctx: "! -p all matches no packet")
    if rule.source is not None:
        src = rule.source

        def check_src(flow: Flow, ctx: MatchContext) -> CheckResult:
            return None if src.contains(flow.src) else f"source {flow.src} is not in {src}"

        checks.append(check_src)
    if rule.destination is not None:
        dst = rule.destination

        def check_dst(flow: Flow, ctx: MatchContext) -> CheckResult:
            if flow.dst_unknown is not None:
                return Uncertain(f"-d {dst}: the destination is {flow.dst_unknown} (unknown)")
            return None if dst.contains(flow.dst) else f"destination {flow.dst} is not in {dst}"

        checks.append(check_dst)
    if rule.in_interface is not None:
        iin = rule.in_interface

        def check_in(flow: Flow, ctx: MatchContext) -> CheckResult:
            if iin.matches(flow.in_iface):
                return None
            return f"in-interface {flow.in_iface or '(none)'} is not {iin}"

        checks.append(check_in)
    if rule.out_interface is not None:
        iout = rule.out_interface

        def check_out(flow: Flow, ctx: MatchContext) -> CheckResult:
            if not flow.out_known and ctx.hook in ("FORWARD", "OUTPUT", "POSTROUTING"):
                read = read_out(iout, flow.out_readings)
                if read is None:
                    return Uncertain(f"-o {iout}: output interface unknown (no route in "
                                     "snapshot)", out=iout)
                if read:
                    return None
                return f"out-interface (unknown) is not {iout}, as this path assumed earlier"
            if iout.matches(flow.out_iface):
                return None
            return f"out-interface {flow.out_iface or '(none)'} is not {iout}"

        checks.append(check_out)
    if rule.fragment is True:
        checks.append(lambda flow, ctx: "-f matches only non-first fragments")
    return checks


# -- match modules ------------------------------------------------------------------------------

Compiler = Callable[[Match, Rule], list[Check]]


def _ports_module(match: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    module = match.module
    wanted = {"tcp": "tcp", "udp": "udp", "udplite": "udplite", "sctp": "sctp",
              "dccp": "dccp"}[module]

    def check_proto(flow: Flow, ctx: MatchContext) -> CheckResult:
        return None if flow.proto == wanted else f"-m {module}: protocol is {flow.proto}"

    checks.append(check_proto)
    single = {o.name: o for o in match.options if o.name in ("--sport", "--dport")
              and o.negated and _decimal(o.args[0])}
    pair = len(single) == 2 and module in ("tcp", "udp")
    if pair:
        checks.append(_negated_port_pair(module, single["--sport"], single["--dport"]))
    for opt in match.options:
        if pair and opt.name in single:
            continue
        if opt.name in ("--sport", "--dport"):
            checks.append(_port_check(module, opt, opt.name == "--sport"))
        elif opt.name in ("--tcp-flags", "--syn"):
            checks.append(_tcp_flags_check(opt))
        else:
            checks.append(_uncertain(_opt_text(module, opt)))
    return checks


def _port_check(module: str, opt: Option, source: bool) -> Check:
    lo, hi = _port_range(opt.args[0])
    what = "source" if source else "destination"
    text = _opt_text(module, opt)

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        port = flow.sport if source else flow.dport
        if port is None:
            return Uncertain(f"{text}: packet has no {what} port given")
        span = flow.sport_range if source else flow.dport_range
        if span is not None and not (lo <= span[0] and span[1] <= hi) and \
                not (span[1] < lo or span[0] > hi):
            return Uncertain(f"{text}: {what} port chosen at random in {span[0]}-{span[1]}")
        if (lo <= port <= hi) != opt.negated:
            return None
        return f"{what} port {port} is {'' if opt.negated else 'not '}{opt.args[0]}"

    return check


def _negated_port_pair(module: str, sport: Option, dport: Option) -> Check:
    """``! --sport A ! --dport B`` with single ports: iptables(8) means both negations (AND);
    iptables-nft 1.8.x loads one merged compare of the 4-byte port pair, so the rule matches
    unless both ports equal (``MatchContext.merged_negated_ports`` says which applies)."""
    a, b = int(sport.args[0]), int(dport.args[0])
    text = f"-m {module} ! --sport {a} ! --dport {b}"
    both = (_port_check(module, sport, True), _port_check(module, dport, False))

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        legacy: CheckResult = None
        for c in both:
            legacy = c(flow, ctx)
            if legacy is not None:
                break
        merged: CheckResult = None if (flow.sport, flow.dport) != (a, b) else \
            f"ports {a},{b} equal the pair {text} excludes"
        mode = ctx.merged_negated_ports
        if mode is True:
            return merged
        if mode is False or isinstance(legacy, Uncertain) or (legacy is None) == (merged is None):
            return legacy
        return Uncertain(f"{text}: iptables-nft 1.8.x matches unless both ports are equal, "
                         "iptables-legacy only when neither is (backend version unknown)")

    return check


_TCP_FLAGS_ALL = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")


def _flag_set(text: str) -> frozenset[str]:
    if text == "ALL":
        return frozenset(_TCP_FLAGS_ALL)
    if text == "NONE":
        return frozenset()
    return frozenset(text.split(","))


def _tcp_flags_check(opt: Option) -> Check:
    if opt.name == "--syn":
        mask, comp = frozenset({"FIN", "SYN", "RST", "ACK"}), frozenset({"SYN"})
    else:
        mask, comp = _flag_set(opt.args[0]), _flag_set(opt.args[1])
    text = _opt_text("tcp", opt)

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        flags = flow.tcp_flags
        if flags is None and flow.ctstate == "NEW":
            flags = frozenset({"SYN"})
        elif flags is None and flow.ctstate == "ESTABLISHED":
            flags = frozenset({"ACK"})
        elif flags is None:
            return Uncertain(f"{text}: TCP flags of a {flow.ctstate.lower()} packet unknown")
        if ((flags & mask) == comp) != opt.negated:
            return None
        return f"TCP flags {','.join(sorted(flags))} of a {flow.ctstate.lower()} packet fail {text}"

    return check


def _multiport(match: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for opt in match.options:
        ranges = _ranges(opt.args[0])
        text = _opt_text("multiport", opt)

        def check(flow: Flow, ctx: MatchContext, *, opt: Option = opt,
                  ranges: tuple[tuple[int, int], ...] = ranges, text: str = text) -> CheckResult:
            if opt.name == "--sports":
                ports = [flow.sport]
            elif opt.name == "--dports":
                ports = [flow.dport]
            else:
                ports = [flow.sport, flow.dport]
            if any(p is None for p in ports) and opt.name != "--ports":
                return Uncertain(f"{text}: packet port not given")
            hit = any(p is not None and _in(p, ranges) for p in ports)
            if hit != opt.negated:
                return None
            shown = "/".join(str(p) for p in ports if p is not None) or "(none)"
            return f"port {shown} {'is' if hit else 'is not'} in {opt.args[0]}"

        checks.append(check)
    return checks


def _icmp(match: Match, rule: Rule) -> list[Check]:
    names = ICMP_TYPES if match.module == "icmp" else ICMPV6_TYPES
    wanted = "icmp" if match.module == "icmp" else "icmpv6"
    checks: list[Check] = []
    for opt in match.options:
        text = opt.args[0]
        if text == "any":
            type_, code = None, None
        else:
            type_text, _, code_text = text.partition("/")
            type_ = int(type_text) if _decimal(type_text) else names.get(type_text)
            code = int(code_text) if _decimal(code_text) else None
            if type_ is None:
                checks.append(_uncertain(f"{_opt_text(match.module, opt)}: unknown type name"))
                continue

        def check(flow: Flow, ctx: MatchContext, *, opt: Option = opt, type_: int | None = type_,
                  code: int | None = code) -> CheckResult:
            if flow.proto != wanted:
                return f"-m {match.module}: protocol is {flow.proto}"
            hit = type_ is None or (flow.icmp_type == type_ and code in (None, 0))
            if hit != opt.negated:
                return None
            return f"ICMP type {flow.icmp_type} is {'' if hit else 'not '}{opt.args[0]}"

        checks.append(check)
    return checks


def _addrtype(match: Match, rule: Rule) -> list[Check]:
    limit_in = match.get("--limit-iface-in") is not None
    limit_out = match.get("--limit-iface-out") is not None
    checks: list[Check] = []
    for opt in match.options:
        if opt.name not in ("--src-type", "--dst-type"):
            continue
        types = frozenset(opt.args[0].split(","))
        source = opt.name == "--src-type"
        text = _opt_text("addrtype", opt)

        def check(flow: Flow, ctx: MatchContext, *, opt: Option = opt,
                  types: frozenset[str] = types, source: bool = source,
                  text: str = text) -> CheckResult:
            ip = flow.src if source else flow.dst
            dev = flow.in_iface if limit_in else flow.out_iface if limit_out else None
            if not source and flow.dst_unknown is not None:
                # an address the host's source NAT took: LOCAL, on a device not known
                if dev is not None:
                    return Uncertain(f"{text}: the destination is {flow.dst_unknown} "
                                     "(unknown)")
                return None if ("LOCAL" in types) != opt.negated else \
                    f"destination {flow.dst_unknown} is LOCAL"
            kind = ctx.host.address_type(ip, dev)
            if kind == "UNICAST" and "LOCAL" in types and ctx.host.may_be_local(ip):
                return Uncertain(f"{text}: host addresses unknown, {ip} may be local")
            if (kind in types) != opt.negated:
                return None
            where = f" on {dev}" if dev else ""
            return f"{'source' if source else 'destination'} {ip} is {kind}{where}"

        checks.append(check)
    return checks


_CT_VIRTUAL = frozenset({"SNAT", "DNAT"})


def _ct_states(flow: Flow, ctx: MatchContext) -> frozenset[str] | None:
    """The states ``--ctstate`` sees; None when DNAT/SNAT status of an old connection is unknown.

    Without a conntrack entry (raw table, untracked packet) the state is UNTRACKED after a
    NOTRACK, else INVALID (xt_conntrack.c ``conntrack_mt``, xt_state.c).
    """
    if flow.ctstate == "UNTRACKED":
        return frozenset({"UNTRACKED"})
    if not ctx.has_conntrack(flow):
        return frozenset({"INVALID"})
    states = {flow.ctstate}
    if flow.dnat:
        states.add("DNAT")
    if flow.snat:
        states.add("SNAT")
    return frozenset(states)


def _ctstate_check(module: str, opt: Option) -> Check:
    wanted = frozenset(opt.args[0].split(","))
    text = _opt_text(module, opt)

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        states = _ct_states(flow, ctx)
        assert states is not None
        hit = bool(states & wanted)
        if not hit and wanted & _CT_VIRTUAL and flow.ctstate in ("ESTABLISHED", "RELATED") \
                and ctx.has_conntrack(flow):
            return Uncertain(f"{text}: NAT status of the existing connection unknown")
        if hit != opt.negated:
            return None
        return f"state {','.join(sorted(states))} is {'' if hit else 'not '}{opt.args[0]}"

    return check


def _state(match: Match, rule: Rule) -> list[Check]:
    return [_ctstate_check("state", opt) for opt in match.options if opt.name == "--state"]


def _without_ct(check: Check, text: str, has_state: bool) -> Check:
    """A ``-m conntrack`` option other than ``--ctstate``: without a conntrack entry the match
    is decided by ``--ctstate`` alone when present, else it fails, ``!`` or not
    (xt_conntrack.c ``conntrack_mt``: ``if (ct == NULL) return match_flags & STATE``)."""

    def guarded(flow: Flow, ctx: MatchContext) -> CheckResult:
        if ctx.has_conntrack(flow):
            return check(flow, ctx)
        return None if has_state else f"{text}: no conntrack entry here"

    return guarded


def _conntrack(match: Match, rule: Rule) -> list[Check]:
    has_state = any(o.name == "--ctstate" for o in match.options)
    return [c if o.name == "--ctstate" else _without_ct(c, _opt_text("conntrack", o), has_state)
            for o, c in zip(match.options, _conntrack_options(match), strict=True)]


def _conntrack_options(match: Match) -> list[Check]:
    checks: list[Check] = []
    for opt in match.options:
        text = _opt_text("conntrack", opt)
        name = opt.name
        if name == "--ctstate":
            checks.append(_ctstate_check("conntrack", opt))
        elif name == "--ctproto":
            checks.append(_ctproto_check(opt, text))
        elif name in ("--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"):
            checks.append(_ct_addr_check(opt, text))
        elif name in ("--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport"):
            checks.append(_ct_port_check(opt, text))
        elif name == "--ctdir":
            checks.append(_ctdir_check(opt, text))
        elif name == "--ctstatus":
            checks.append(_ctstatus_check(opt, text))
        else:
            checks.append(_uncertain(text))
    return checks


def _untracked(flow: Flow, text: str) -> CheckResult:
    return f"{text}: packet is untracked" if flow.ctstate == "UNTRACKED" else None


def _ctproto_check(opt: Option, text: str) -> Check:
    wanted = _canonical_proto(opt.args[0])

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        if (why := _untracked(flow, text)) is not None:
            return why
        hit = flow.proto == wanted
        return None if hit != opt.negated else f"conntrack protocol {flow.proto} fails {text}"

    return check


def _ct_addr_check(opt: Option, text: str) -> Check:
    net = ipaddress.ip_network(opt.args[0], strict=False)
    name = opt.name

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        if (why := _untracked(flow, text)) is not None:
            return why
        # Original tuple: the packet as first seen. Reply tuple: source = where the packet
        # goes now (after DNAT), destination = where the reply goes (after SNAT).
        ip = {"--ctorigsrc": flow.orig_src, "--ctorigdst": flow.orig_dst,
              "--ctreplsrc": flow.dst, "--ctrepldst": flow.src}[name]
        if ip is None:
            return Uncertain(f"{text}: original tuple unknown")
        hit = ip.version == net.version and ip in net
        if hit != opt.negated:
            return None
        return f"conntrack {name[4:]} {ip} is {'' if hit else 'not '}in {net}"

    return check


def _ct_port_check(opt: Option, text: str) -> Check:
    lo, hi = _port_range(opt.args[0])
    name = opt.name

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        if (why := _untracked(flow, text)) is not None:
            return why
        port = {"--ctorigsrcport": flow.orig_sport, "--ctorigdstport": flow.orig_dport,
                "--ctreplsrcport": flow.dport, "--ctrepldstport": flow.sport}[name]
        if port is None:
            return Uncertain(f"{text}: port not given")
        hit = lo <= port <= hi
        if hit != opt.negated:
            return None
        return f"conntrack {name[4:]} {port} is {'' if hit else 'not '}{opt.args[0]}"

    return check


def _ctdir_check(opt: Option, text: str) -> Check:
    wanted = opt.args[0].upper()

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        if flow.ctstate != "NEW":
            return Uncertain(f"{text}: direction of a {flow.ctstate.lower()} packet unknown")
        hit = wanted == "ORIGINAL"
        return None if hit != opt.negated else "a new packet is in the ORIGINAL direction"

    return check


def _ctstatus_check(opt: Option, text: str) -> Check:
    wanted = frozenset(opt.args[0].upper().split(","))

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        if flow.ctstate != "NEW":
            return Uncertain(f"{text}: status of an existing connection unknown")
        hit = "NONE" in wanted  # a new, unconfirmed connection has no status bits yet
        return None if hit != opt.negated else f"new connection has no status {opt.args[0]}"

    return check


def _mark_module(match: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    conn = match.module == "connmark"
    for opt in match.options:
        value, mask = _mark_spec(opt.args[0])
        text = _opt_text(match.module, opt)

        def check(flow: Flow, ctx: MatchContext, *, opt: Option = opt, value: int = value,
                  mask: int = mask, text: str = text) -> CheckResult:
            if conn and not ctx.has_conntrack(flow):  # xt_connmark.c: no ct, no match
                return f"{text}: no conntrack entry here (fails, '!' or not)"
            if conn and not flow.ctmark_known:
                return Uncertain(f"{text}: connmark of the existing connection unknown")
            mark = flow.ctmark if conn else flow.mark
            hit = (mark & mask) == value
            if hit != opt.negated:
                return None
            return f"{'connmark' if conn else 'mark'} {mark:#x} fails {text}"

        checks.append(check)
    return checks


def _iprange(match: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for opt in match.options:
        low_text, _, high_text = opt.args[0].partition("-")
        low, high = ipaddress.ip_address(low_text), ipaddress.ip_address(high_text or low_text)
        source = opt.name == "--src-range"

        def check(flow: Flow, ctx: MatchContext, *, opt: Option = opt,
                  low: ipaddress.IPv4Address | ipaddress.IPv6Address = low,
                  high: ipaddress.IPv4Address | ipaddress.IPv6Address = high,
                  source: bool = source) -> CheckResult:
            ip = flow.src if source else flow.dst
            if not source and flow.dst_unknown is not None:
                return Uncertain(f"iprange --dst-range {opt.args[0]}: the destination is "
                                 f"{flow.dst_unknown} (unknown)")
            hit = ip.version == low.version and low <= ip <= high  # type: ignore[operator]
            if hit != opt.negated:
                return None
            return f"{'source' if source else 'destination'} {ip} is {'' if hit else 'not '}" \
                   f"in {opt.args[0]}"

        checks.append(check)
    return checks


def _physdev(match: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for opt in match.options:
        text = _opt_text("physdev", opt)
        inbound = opt.name in ("--physdev-in", "--physdev-is-in")

        def check(flow: Flow, ctx: MatchContext, *, opt: Option = opt, text: str = text,
                  inbound: bool = inbound) -> CheckResult:
            iface = flow.in_iface if inbound else flow.out_iface
            bridged = ctx.host.is_bridge(iface) or iface in ctx.host.masters
            if opt.name == "--physdev-is-bridged":
                both = ctx.host.is_bridge(flow.in_iface) and flow.in_iface == flow.out_iface
                if both:
                    return Uncertain(f"{text}: traffic within bridge {flow.in_iface} may be "
                                     "bridged")
                return None if opt.negated else "packet is routed, not bridged"
            if bridged:
                return Uncertain(f"{text}: bridge port of {iface} unknown")
            if iface is None or ctx.host.known_addresses:
                # Not a bridge (and the snapshot knows the interfaces): no bridge port at all.
                return None if opt.negated else f"{iface or 'packet'} is not a bridge port"
            return Uncertain(f"{text}: interfaces unknown")

        checks.append(check)
    return checks


def _packet_type(flow: Flow, ctx: MatchContext) -> str:
    """``skb->pkt_type`` as xt_pkttype names it: set from the link-layer frame when the packet
    was received (a packet first addressed to a broadcast or multicast address came in such a
    frame, whatever NAT did since), PACKET_HOST ("unicast") for one a local process sends."""
    if flow.local_origin and flow.in_iface != "lo":
        return "unicast"
    kind = ctx.host.address_type(flow.orig_dst or flow.dst)
    return {"BROADCAST": "broadcast", "MULTICAST": "multicast"}.get(kind, "unicast")


def _pkttype(match: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for opt in match.options:
        wanted = opt.args[0].lower()

        def check(flow: Flow, ctx: MatchContext, *, opt: Option = opt,
                  wanted: str = wanted) -> CheckResult:
            pkt = _packet_type(flow, ctx)
            hit = pkt == wanted or (wanted == "host" and pkt == "unicast")
            if hit != opt.negated:
                return None
            return f"packet type {pkt} is {'' if hit else 'not '}{wanted}"

        checks.append(check)
    return checks


def _statistic(match: Match, rule: Rule) -> list[Check]:
    mode = match.get("--mode")
    text = " ".join(_opt_text("statistic", o).removeprefix("-m statistic ")
                    for o in match.options)
    text = f"-m statistic {text}"
    if mode is not None and mode.value == "nth":
        every = match.get("--every")
        p = 1.0 / int(every.value) if every is not None else 1.0
        negated = every is not None and every.negated
    else:
        prob = match.get("--probability")
        p = float(prob.value) if prob is not None else 1.0
        negated = prob is not None and prob.negated
    if negated:
        p = 1.0 - p
    if p >= 1.0:
        return []
    if p <= 0.0:
        return [lambda flow, ctx: f"{text} never matches"]
    result = Chance(p, text)
    return [lambda flow, ctx: result]


def _comment(match: Match, rule: Rule) -> list[Check]:
    return []


def _owner(match: Match, rule: Rule) -> list[Check]:
    text = " ".join(_opt_text("owner", o) for o in match.options)
    all_negated = all(o.negated for o in match.options if o.name != "--suppl-groups")

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        if not flow.local_origin:
            # No local socket: xt_owner matches only when every given test is negated.
            return None if all_negated else f"{text}: packet has no local socket"
        return Uncertain(f"{text}: socket owner unknown")

    return [check]


UNCERTAIN_MODULES = frozenset({
    "set", "limit", "recent", "hashlimit", "string", "mac", "length", "ttl", "hl", "tos",
    "dscp", "helper", "connlimit", "devgroup", "socket", "rpfilter", "connbytes", "quota",
    "time", "u32", "bpf", "cgroup", "nfacct", "policy", "realm", "ecn", "esp", "ah",
    "cluster", "cpu", "ipvs", "osf", "rateest",
})
"""Modules whose outcome depends on state outside the snapshot (sets, rates, payload, ...)."""

COMPILERS: dict[str, Compiler] = {
    "tcp": _ports_module,
    "udp": _ports_module,
    "udplite": _ports_module,
    "sctp": _ports_module,
    "dccp": _ports_module,
    "multiport": _multiport,
    "icmp": _icmp,
    "icmp6": _icmp,
    "addrtype": _addrtype,
    "conntrack": _conntrack,
    "state": _state,
    "comment": _comment,
    "mark": _mark_module,
    "connmark": _mark_module,
    "iprange": _iprange,
    "physdev": _physdev,
    "pkttype": _pkttype,
    "statistic": _statistic,
    "owner": _owner,
}
"""Supporting a match module is one entry here (plus its golden cases)."""


EXTENSION_HEADER_MODULES: Mapping[str, str] = MappingProxyType({
    "rt": "routing header",
    "frag": "fragment header",
    "hbh": "hop-by-hop options header",
    "dst": "destination options header",
})
"""ip6tables matches on an IPv6 extension header, by the header they look for."""


def _extension_header(match: Match) -> list[Check]:
    """``-m rt``/``frag``/``hbh``/``dst``: the packets natlens simulates carry no IPv6
    extension header, and these matches never match a packet without theirs, whatever their
    options or ``!`` (net/ipv6/netfilter/ip6t_rt.c, ip6t_frag.c, ip6t_hbh.c: ``ipv6_find_hdr``
    fails, the match returns false)."""
    reason = f"{_match_text(match)}: the packet has no IPv6 " \
             f"{EXTENSION_HEADER_MODULES[match.module]}"

    def check(flow: Flow, ctx: MatchContext) -> CheckResult:
        return reason

    return [check]


def _match_text(match: Match) -> str:
    opts = " ".join(f"{'! ' if o.negated else ''}{o.name} {o.value}".rstrip()
                    for o in match.options)
    return f"-m {match.module} {opts}".rstrip()


def compile_rule(rule: Rule) -> tuple[Check, ...]:
    """All checks of ``rule``: the fixed part first, then each match in order."""
    checks = _core_checks(rule)
    for match in rule.matches:
        if match.module in EXTENSION_HEADER_MODULES:
            checks.extend(_extension_header(match))
            continue
        compiler = COMPILERS.get(match.module) if match.known else None
        if compiler is None:
            reason = "module not understood" if match.module not in UNCERTAIN_MODULES else \
                "depends on state outside the snapshot"
            checks.append(_uncertain(f"{_match_text(match)} ({reason})"))
            continue
        try:
            checks.extend(compiler(match, rule))
        except (ValueError, IndexError, KeyError):
            checks.append(_uncertain(f"{_match_text(match)} (options not understood)"))
    return tuple(checks)


def run_checks(checks: tuple[Check, ...], flow: Flow, ctx: MatchContext, *,
               why: bool = True) -> Evaluation:
    """Run compiled checks; stops at the first definite mismatch. ``why=False``: a mismatch
    gives one shared ``Evaluation`` whose reason is empty (for a walk, which only asks
    whether the rule matched)."""
    uncertain: list[str] = []
    chances: list[Chance] = []
    outs: tuple[Interface, ...] = ()  # rare: only where an ``-o`` is doubt
    for check in checks:
        result = check(flow, ctx)
        if result is None:
            continue
        if isinstance(result, str):
            return Evaluation(mismatches=(result,)) if why else _MISMATCHED
        if isinstance(result, Uncertain):
            uncertain.append(result.what)
            if result.out is not None:
                outs += (result.out,)
        else:
            chances.append(result)
    if not uncertain and not chances:
        return _MATCHED
    return Evaluation(uncertain=tuple(uncertain), chances=tuple(chances), outs=outs)


def read_out(cond: Interface, readings: tuple[tuple[str, bool], ...]) -> bool | None:
    """Whether an output interface of which only ``readings`` are known (``Flow.out_readings``:
    ``(NAME, hit)``, ``NAME`` with ``+`` a prefix wildcard as in iptables(8)) satisfies
    ``cond`` (``[!] -o NAME``, negation applied), or None when they do not tell."""
    name = cond.name
    wild = name.endswith("+")
    for known, hit in readings:
        prefix = known[:-1] if known.endswith("+") else None
        if known == name:
            return hit != cond.negated
        if hit and prefix is None:  # the interface is ``known`` itself
            return cond.matches(known)
        if prefix is None:
            continue
        if name.startswith(prefix) and not hit:  # ``name`` names no interface ``known`` allows
            return cond.negated
        if hit and not name.startswith(prefix) and not (wild and prefix.startswith(name[:-1])):
            return cond.negated  # ``known`` and ``name`` share no interface
    return None


_MATCHED = Evaluation()
_MISMATCHED = Evaluation(mismatches=("",))


def _flow_of(packet: Packet | Flow) -> Flow:
    return Flow.from_packet(packet) if isinstance(packet, Packet) else packet


def evaluate(rule: Rule, packet: Packet | Flow, ctx: MatchContext) -> Evaluation:
    """Evaluate every check of ``rule`` (all mismatches, not just the first)."""
    flow = _flow_of(packet)
    found: list[str] = []
    uncertain: list[str] = []
    chances: list[Chance] = []
    for check in compile_rule(rule):
        result = check(flow, ctx)
        if isinstance(result, str):
            found.append(result)
        elif isinstance(result, Uncertain):
            uncertain.append(result.what)
        elif isinstance(result, Chance):
            chances.append(result)
    return Evaluation(tuple(found), tuple(uncertain), tuple(chances))


def mismatches(rule: Rule, packet: Packet | Flow, ctx: MatchContext) -> tuple[str, ...]:
    """Why ``rule`` does not match ``packet``; empty when it matches (or might: see ``evaluate``).

    >>> from natlens import parse_save
    >>> from natlens.netfilter.host import Host
    >>> rule = parse_save("*nat\\n:DOCKER - [0:0]\\n-A DOCKER ! -i docker0 -p tcp -m tcp "
    ...                   "--dport 8080 -j DNAT --to-destination 172.17.0.2:80\\nCOMMIT\\n"
    ...                   )["nat"]["DOCKER"].rules[0]
    >>> ctx = MatchContext(Host.from_json([], []), "PREROUTING", "nat")
    >>> mismatches(rule, Packet(in_interface="docker0", src="172.17.0.3", dst="172.17.0.1",
    ...                         dport=8080), ctx)
    ('in-interface docker0 is not !docker0',)
    """
    return evaluate(rule, packet, ctx).mismatches
