"""Walk a packet through the netfilter hooks of a host, table by table, rule by rule.

Hook and table order is the kernel's (priorities in ``include/uapi/linux/netfilter_ipv4.h``:
raw -300, mangle -150, nat DNAT -100, filter 0, security 50, nat SNAT 100):

* PREROUTING: raw, mangle, nat — then the routing decision (local address? else route lookup)
* INPUT: mangle, filter, security, nat
* FORWARD: mangle, filter, security
* OUTPUT: raw, mangle, nat, filter, security — re-routed when nat or mangle changed the packet
* POSTROUTING: mangle, nat

The nat table sees only the first packet of a connection and each NAT manip (destination in
PREROUTING/OUTPUT, source in INPUT/POSTROUTING) once (``nf_nat_inet_fn``). Within a table:
``-j CHAIN`` returns to the next rule, ``-g CHAIN`` does not; RETURN or the end of a built-in
chain applies its policy; ACCEPT ends only this table's chain for this hook (iptables(8)).
A locally generated packet to a local address loops back through ``lo`` (PREROUTING, INPUT).

Matches the snapshot cannot decide, and ``-m statistic``, fork the walk; each outcome becomes a
``Branch`` of the trace. ``prepare`` compiles a ruleset once (checks per rule, an index per long
chain on protocol, destination address and destination port) so each trace only looks at the
rules that can match.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
from collections import ChainMap
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import overload

from natlens.model import Family, Rule, Ruleset, TargetKind
from natlens.netfilter.flow import Flow, MatchContext
from natlens.netfilter.host import Host, IPAddress, Route, with_assumed
from natlens.netfilter.matches import (
    PROTOCOL_ALIASES,
    Check,
    Evaluation,
    compile_rule,
    run_checks,
)
from natlens.netfilter.packet import Packet, endpoint
from natlens.netfilter.targets import Action, apply_target
from natlens.netfilter.trace import Branch, Path, Step, StepKind, Trace, Verdict
from natlens.serialize import rule_to_save
from natlens.snapshot import Snapshot

__all__ = [
    "HOOK_TABLES",
    "PreparedChain",
    "PreparedRuleset",
    "Simulator",
    "prepare",
    "simulate",
]

HOOK_TABLES: dict[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "security", "nat"),
    "FORWARD": ("mangle", "filter", "security"),
    "OUTPUT": ("raw", "mangle", "nat", "filter", "security"),
    "POSTROUTING": ("mangle", "nat"),
}
"""Tables of each hook in the order the kernel runs them."""

_NAT_MANIP = {"PREROUTING": "dst", "OUTPUT": "dst", "INPUT": "src", "POSTROUTING": "src"}
_INDEX_MIN_RULES = 16
_MAX_OUTCOMES = 512
_MAX_RULE_VISITS = 2_000_000
_LOOPBACK4 = ipaddress.ip_network("127.0.0.0/8")
_ZERONET = ipaddress.ip_network("0.0.0.0/8")
_LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")

IndexKey = tuple[str | None, object, int | None]


# -- preparation --------------------------------------------------------------------------------


class CompiledRule:
    """A rule with its checks compiled and its text rendered on first use."""

    __slots__ = ("_checks", "_text", "index", "rule")

    def __init__(self, rule: Rule, index: int) -> None:
        self.rule = rule
        self.index = index
        self._checks: tuple[Check, ...] | None = None
        self._text: str | None = None

    @property
    def checks(self) -> tuple[Check, ...]:
        """The rule's compiled checks (compiled when the walk first reaches the rule)."""
        if self._checks is None:
            self._checks = compile_rule(self.rule)
        return self._checks

    @property
    def text(self) -> str:
        """The rule as iptables-save prints it (without counters)."""
        if self._text is None:
            self._text = rule_to_save(self.rule, counters=False)
        return self._text

    @property
    def where(self) -> str | None:
        """``file:line`` of the rule when known."""
        o = self.rule.origin
        return f"{o.source}:{o.line}" if o is not None else None

    def renumbered(self, index: int) -> CompiledRule:
        """The same rule at another position (compiled checks and text shared)."""
        moved = CompiledRule(self.rule, index)
        moved._checks = self._checks
        moved._text = self._text
        return moved


def _index_key(rule: Rule) -> IndexKey:
    proto: str | None = None
    if rule.protocol is not None and not rule.protocol.negated:
        for name, aliases in PROTOCOL_ALIASES.items():
            if rule.protocol.name in aliases:
                proto = name
    dst: object = None
    d = rule.destination
    if d is not None and not d.negated and d.network.prefixlen == d.network.max_prefixlen:
        dst = d.network.network_address
    dport: int | None = None
    if proto in ("tcp", "udp", "sctp"):
        for m in rule.matches:
            if m.module == proto:
                opt = m.get("--dport")
                if opt is not None and not opt.negated and opt.value.isdigit():
                    dport = int(opt.value)
    return proto, dst, dport


class PreparedChain:
    """A chain's compiled rules, with an index on (protocol, destination, port) when long."""

    __slots__ = ("builtin", "index", "name", "policy", "rules")

    def __init__(self, name: str, builtin: bool, policy: str | None, rules: Sequence[Rule],
                 *, index: bool = True):
        self.name = name
        self.builtin = builtin
        self.policy = policy
        self.rules: Sequence[CompiledRule] = tuple(CompiledRule(r, i)
                                                   for i, r in enumerate(rules, 1))
        self.index: dict[IndexKey, list[int]] | None = None
        if index and len(self.rules) >= _INDEX_MIN_RULES:
            by_key: dict[IndexKey, list[int]] = {}
            for pos, cr in enumerate(self.rules):
                by_key.setdefault(_index_key(cr.rule), []).append(pos)
            self.index = by_key

    def candidates(self, flow: Flow) -> list[int] | None:
        """Positions (0-based, ascending) of the rules that may match ``flow``; None: all."""
        index = self.index
        if index is None or (flow.dport is None and flow.proto in ("tcp", "udp", "sctp")):
            return None
        found: list[list[int]] = []
        for key in itertools.product((flow.proto, None), (flow.dst, None), (flow.dport, None)):
            hit = index.get(key)
            if hit:
                found.append(hit)
        if len(found) == 1:
            return found[0]
        return sorted(set().union(*found)) if found else []

    def without(self, positions: Collection[int]) -> PreparedChain:
        """This chain with the rules at ``positions`` (1-based) deleted: the rules after them
        move up, as if the chain had been prepared without them. Built in O(deleted rules):
        the rules are renumbered when a walk reaches them, the index is the original one."""
        removed = sorted({p - 1 for p in positions if 1 <= p <= len(self.rules)})
        if not removed:
            return self
        return _PrunedChain(self, removed)


class _PrunedRules(Sequence[CompiledRule]):
    """The rules of a chain minus some positions, renumbered on access."""

    __slots__ = ("_base", "_moved", "_removed")

    def __init__(self, base: Sequence[CompiledRule], removed: list[int]) -> None:
        self._base = base
        self._removed = removed  # 0-based positions in ``base``, ascending
        self._moved: dict[int, CompiledRule] = {}

    def __len__(self) -> int:
        return len(self._base) - len(self._removed)

    def _at(self, i: int) -> CompiledRule:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("rule position out of range")
        old = i
        for r in self._removed:
            if r > old:
                break
            old += 1
        cr = self._base[old]
        if old == i:
            return cr
        moved = self._moved.get(i)
        if moved is None:
            moved = self._moved[i] = cr.renumbered(i + 1)
        return moved

    @overload
    def __getitem__(self, i: int) -> CompiledRule: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[CompiledRule, ...]: ...

    def __getitem__(self, i: int | slice) -> CompiledRule | tuple[CompiledRule, ...]:
        if isinstance(i, slice):
            return tuple(self._at(k) for k in range(*i.indices(len(self))))
        return self._at(i)

    def __iter__(self) -> Iterator[CompiledRule]:
        for k in range(len(self)):
            yield self._at(k)


class _PrunedChain(PreparedChain):
    """``PreparedChain.without``: the base chain's rules and index, minus some positions."""

    __slots__ = ("_base", "_gone", "_removed")

    def __init__(self, base: PreparedChain, removed: list[int]) -> None:
        # no super().__init__: nothing is compiled or indexed again
        self.name = base.name
        self.builtin = base.builtin
        self.policy = base.policy
        self.index = None
        self.rules = _PrunedRules(base.rules, removed)
        self._base = base
        self._removed = removed
        self._gone = frozenset(removed)

    def candidates(self, flow: Flow) -> list[int] | None:
        found = self._base.candidates(flow)
        if found is None:
            return None
        removed, gone = self._removed, self._gone
        return [p - bisect.bisect_left(removed, p) for p in found if p not in gone]


@dataclass(frozen=True, slots=True)
class PreparedRuleset:
    """All chains of a ruleset, compiled: ``tables[table][chain]``."""

    family: Family
    tables: Mapping[str, Mapping[str, PreparedChain]]
    source: Ruleset

    def chain(self, table: str, name: str) -> PreparedChain | None:
        """The chain ``name`` of ``table``, or None."""
        t = self.tables.get(table)
        return None if t is None else t.get(name)

    def without(self, gone: Mapping[tuple[str, str], Collection[int]]) -> PreparedRuleset:
        """The ruleset with the rules ``gone[(table, chain)]`` (1-based positions) deleted,
        exactly as ``prepare`` of the ruleset without them would compile it; the chains left
        alone are shared (``source`` stays this ruleset's)."""
        changed: dict[str, dict[str, PreparedChain]] = {}
        for (table, name), positions in gone.items():
            chains = self.tables.get(table)
            if chains is None or name not in chains:
                continue
            changed.setdefault(table, {})[name] = chains[name].without(positions)
        # the changed chains over the shared ones (no copy of a table's thousands of chains)
        tables: dict[str, Mapping[str, PreparedChain]] = dict(self.tables)
        for table, chains in changed.items():
            base = self.tables[table]
            tables[table] = ChainMap(chains, base if isinstance(base, dict) else dict(base))
        return PreparedRuleset(self.family, tables, self.source)


_PREPARED: dict[tuple[int, bool], PreparedRuleset] = {}


def prepare(ruleset: Ruleset, *, index: bool = True) -> PreparedRuleset:
    """Compile ``ruleset`` once (cached for the last few rulesets seen).

    Rules are indexed per long chain; their checks are compiled when a walk first reaches them.
    ``index=False`` gives the naive rule-by-rule walk (for benchmarks and cross-checks).
    """
    cached = _PREPARED.get((id(ruleset), index))
    if cached is not None and cached.source is ruleset:
        return cached
    tables = {
        table.name.value: {c.name: PreparedChain(c.name, c.builtin, c.policy, c.rules,
                                                 index=index)
                           for c in table.chains}
        for table in ruleset.tables
    }
    prepared = PreparedRuleset(ruleset.family, tables, ruleset)
    if len(_PREPARED) >= 8:
        _PREPARED.pop(next(iter(_PREPARED)))
    _PREPARED[(id(ruleset), index)] = prepared
    return prepared


# -- the walk -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Path:
    """One way the packet may go, as far as walked."""

    flow: Flow
    steps: tuple[Step, ...] = ()
    prob: float = 1.0
    assumed: tuple[str, ...] = ()
    kind: Path | None = None
    routed_dst: object = None
    routed_mark: int = 0
    nat_dst_done: bool = False
    nat_src_done: bool = False

    def but(self, *, flow: Flow | None = None, steps: tuple[Step, ...] | None = None,
            prob: float | None = None, assumed: tuple[str, ...] | None = None,
            nat_dst_done: bool | None = None, nat_src_done: bool | None = None) -> _Path:
        """A copy with some fields changed (``dataclasses.replace`` is slow on the hot path)."""
        return _Path(
            self.flow if flow is None else flow,
            self.steps if steps is None else steps,
            self.prob if prob is None else prob,
            self.assumed if assumed is None else assumed,
            self.kind, self.routed_dst, self.routed_mark,
            self.nat_dst_done if nat_dst_done is None else nat_dst_done,
            self.nat_src_done if nat_src_done is None else nat_src_done,
        )


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: Verdict
    path: _Path


@dataclass(frozen=True, slots=True)
class _Cursor:
    path: _Path
    chain: str
    pos: int
    stack: tuple[tuple[str, int, tuple[str, ...]], ...]  # (chain, next position, active)
    active: tuple[str, ...]  # chains on the way here, gotos included (loop detection)


Stage = tuple[str, ...]


@dataclass(slots=True)
class _Run:
    """Per-trace mutable bookkeeping."""

    uncertain: dict[str, None] = field(default_factory=dict)
    assumptions: dict[str, None] = field(default_factory=dict)
    outcomes: int = 1
    visits: int = 0

    def doubt(self, what: str) -> None:
        self.uncertain.setdefault(what, None)

    def assume(self, what: str) -> None:
        self.assumptions.setdefault(what, None)


def _note(path: _Path, hook: str, text: str) -> _Path:
    step = Step(hook, None, None, None, "", text, kind=StepKind.NOTE)
    return path.but(steps=(*path.steps, step))


_TERMINAL = {Action.DROP: Verdict.DROP, Action.REJECT: Verdict.REJECT}


class Simulator:
    """A prepared host + rulesets; ``trace(packet)`` runs one packet."""

    def __init__(self, host: Host, ruleset: Ruleset, ruleset6: Ruleset | None = None, *,
                 index: bool = True) -> None:
        self.host = host
        self.v4 = prepare(ruleset, index=index)
        self.v6 = prepare(ruleset6 if ruleset6 is not None else Ruleset(Family.IPV6),
                          index=index)
        self._hosts = {4: self._with_inferred_routes(host, self.v4),
                       6: self._with_inferred_routes(host, self.v6)}

    def without(self, family: int, gone: Mapping[tuple[str, str], Collection[int]]) -> Simulator:
        """A simulator of the same host with the ``family`` rules ``gone[(table, chain)]``
        (1-based positions) deleted: what ``Simulator(host, ruleset minus those rules)`` does,
        without compiling the ruleset again (a what-if costs O(deleted rules))."""
        sim = Simulator.__new__(Simulator)
        sim.host = self.host
        sim.v4 = self.v4.without(gone) if family == 4 else self.v4
        sim.v6 = self.v6.without(gone) if family == 6 else self.v6
        sim._hosts = {4: sim._with_inferred_routes(self.host, sim.v4),
                      6: sim._with_inferred_routes(self.host, sim.v6)}
        return sim

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> Simulator:
        """Prepare the simulator of a ``natlens.snapshot.Snapshot``."""
        return cls(Host.from_snapshot(snap), snap.ruleset, snap.ruleset6)

    @staticmethod
    def _with_inferred_routes(host: Host, prepared: PreparedRuleset) -> Host:
        """Without ip-route.json, Docker's ``-s NET ! -o BRIDGE -j MASQUERADE`` rules name the
        bridge networks; use them as connected routes (and say so)."""
        known_routes = host.known_routes if prepared.family is Family.IPV4 else host.known_routes6
        post = prepared.chain("nat", "POSTROUTING")
        if known_routes or post is None:
            return host
        have = {r.network for r in (host.routes + host.routes6)}
        for cr in post.rules:
            r = cr.rule
            if (r.target_name == "MASQUERADE" and r.source is not None and not r.source.negated
                    and r.out_interface is not None and r.out_interface.negated
                    and not r.out_interface.name.endswith("+")
                    and r.source.network not in have):
                route = Route(r.source.network, r.out_interface.name)
                host = with_assumed(host, routes=(route,), note=(
                    f"route {r.source.network} dev {r.out_interface.name} inferred from "
                    f"nat:POSTROUTING rule {cr.index} (Docker's MASQUERADE rule)"))
                have.add(r.source.network)
        return host

    # -- public ---------------------------------------------------------------------------------

    def trace(self, packet: Packet) -> Trace:
        """Simulate ``packet``; see the module docstring for the semantics."""
        prepared = self.v4 if packet.family == 4 else self.v6
        host = self._hosts[packet.family]
        run = _Run()
        for a in host.assumptions:
            run.assume(a)
        if packet.family == 6 and not host.known_routes6 and host.known_addresses:
            run.assume("IPv6 routes derived from interface addresses (ip-route.json holds IPv4 "
                       "routes only)")
        host = self._assume_destination(host, packet, run)
        if not prepared.tables:
            run.assume(f"no {'ip6tables' if packet.family == 6 else 'iptables'} rules in the "
                       "snapshot: every hook accepts")
        flow = Flow.from_packet(packet)
        start = _Path(flow)
        if packet.local_origin:
            todo: tuple[Stage, ...] = (("route_out",),)
        else:
            todo = (*_hook("PREROUTING"), ("route_in",))
        outcomes = _Walker(prepared, host, run).run(start, todo)
        return _assemble(packet, outcomes, run)

    @staticmethod
    def _assume_destination(host: Host, packet: Packet, run: _Run) -> Host:
        if host.known_addresses or packet.local_origin or host.is_local(packet.dst):
            return host
        if packet.dst.is_multicast or packet.dst == ipaddress.ip_address("255.255.255.255"):
            return host
        r = host.route(packet.dst)
        if r is not None and r.network.prefixlen > 0:
            return host
        assert packet.in_interface is not None
        note = (f"host addresses unknown: destination {packet.dst} assumed to be an address of "
                f"this host on {packet.in_interface}")
        run.assume(note)
        return with_assumed(host, local=(packet.dst, packet.in_interface))


def _hook(name: str) -> tuple[Stage, ...]:
    return tuple(("table", name, t) for t in HOOK_TABLES[name])


class _Walker:
    """One trace's walk: the stages (hooks, routing decisions) and, per table, the rules."""

    def __init__(self, prepared: PreparedRuleset, host: Host, run: _Run):
        self.prepared = prepared
        self.host = host
        self.run_ = run
        self._ctx: dict[tuple[str, str], MatchContext] = {}

    def ctx(self, hook: str, table: str) -> MatchContext:
        key = (hook, table)
        ctx = self._ctx.get(key)
        if ctx is None:
            ctx = self._ctx[key] = MatchContext(self.host, hook, table)
        return ctx

    # -- stages ---------------------------------------------------------------------------------

    def run(self, path: _Path, todo: tuple[Stage, ...]) -> list[_Outcome]:
        while todo:
            stage, todo = todo[0], todo[1:]
            kind = stage[0]
            if kind == "table":
                results = self.table(path, stage[1], stage[2])
                if len(results) == 1:
                    action, path = results[0]
                    if action in _TERMINAL:
                        return [_Outcome(_TERMINAL[action], path)]
                    continue
                out: list[_Outcome] = []
                for action, p in results:
                    if action in _TERMINAL:
                        out.append(_Outcome(_TERMINAL[action], p))
                    else:
                        out.extend(self.run(p, todo))
                return out
            if kind == "route_in":
                result = self.route_in(path)
            elif kind == "route_out":
                result = self.route_out(path)
            elif kind == "reroute":
                result = self.reroute(path)
            elif kind == "after_post":
                result = self.after_post(path)
            else:  # "deliver" / "send"
                return [_Outcome(Verdict.ACCEPT, path)]
            if isinstance(result, _Outcome):
                return [result]
            path, more = result
            todo = more + todo
        return [_Outcome(Verdict.ACCEPT, path)]

    def _martian_source(self, src: IPAddress, in_iface: str | None) -> str | None:
        """Why the input route lookup refuses a packet's source (``ip_route_input_slow``,
        ``fib_validate_source`` with accept_local=0; ``ipv6_rcv`` for IPv6), or None."""
        if in_iface in (None, "lo"):
            return None
        if src.is_multicast:
            return "multicast source"
        if src.version == 6:
            return "loopback source" if src.is_loopback else None
        if src in _ZERONET:
            return "zero network source"
        if src == _LIMITED_BROADCAST:
            return "broadcast source"
        if src in _LOOPBACK4:
            self.run_.assume("net.ipv4.conf.*.route_localnet=0 (the kernel default)")
            return "loopback source"
        if self.host.known_addresses and self.host.address_type(src) == "LOCAL":
            self.run_.assume("net.ipv4.conf.*.accept_local=0 (the kernel default)")
            return "a local address of this host"
        return None

    def _routes_known(self, version: int) -> bool:
        return self.host.known_routes if version == 4 else self.host.known_routes6

    def route_in(self, path: _Path) -> _Outcome | tuple[_Path, tuple[Stage, ...]]:
        flow, host = path.flow, self.host
        hook = "ROUTING"
        dst = flow.dst
        martian = self._martian_source(flow.src, flow.in_iface)
        if martian is not None:
            p = _note(path, hook, f"martian source {flow.src} on {flow.in_iface} ({martian}): "
                                  "dropped by the routing code")
            where = Path.LOCAL if host.address_type(dst) == "LOCAL" else Path.FORWARD
            return _Outcome(Verdict.DROP, replace(p, kind=where))
        if dst.version == 4 and dst in _LOOPBACK4 and flow.in_iface != "lo":
            self.run_.assume("net.ipv4.conf.*.route_localnet=0 (the kernel default)")
            p = _note(path, hook, f"martian destination {dst} on {flow.in_iface}: dropped by "
                                  "the routing code")
            return _Outcome(Verdict.DROP, replace(p, kind=Path.LOCAL))
        kind = host.address_type(dst)
        if kind in ("LOCAL", "BROADCAST", "MULTICAST"):
            p = _note(path, hook, f"{dst} is {'a local address' if kind == 'LOCAL' else kind}: "
                                  "deliver locally (INPUT)")
            return replace(p, kind=Path.LOCAL), (*_hook("INPUT"), ("deliver",))
        route = host.route(dst)
        if route is None:
            if self._routes_known(dst.version):
                p = _note(path, hook, f"no route to {dst}: dropped (ICMP unreachable)")
                return _Outcome(Verdict.DROP, replace(p, kind=Path.FORWARD))
            self.run_.doubt(f"route to {dst}: not in the snapshot (output interface unknown)")
            p = _note(path, hook, f"{dst}: no route known, forwarded via an unknown interface")
            p = replace(p, kind=Path.FORWARD, flow=replace(flow, out_known=False))
            return p, (*_hook("FORWARD"), *_hook("POSTROUTING"), ("send",))
        if route.kind in ("blackhole", "unreachable", "prohibit"):
            p = _note(path, hook, f"route {route}: {route.kind}")
            verdict = Verdict.DROP if route.kind == "blackhole" else Verdict.REJECT
            return _Outcome(verdict, replace(p, kind=Path.FORWARD))
        sysctl = (f"net.ipv{dst.version}."
                  f"{'ip_forward' if dst.version == 4 else 'conf.all.forwarding'}")
        forwarding = host.forwarding.get(dst.version)
        if forwarding is False:
            p = _note(path, hook, f"forward {dst}: {sysctl}=0 (forwarding off): dropped")
            return _Outcome(Verdict.DROP, replace(p, kind=Path.FORWARD))
        if forwarding is None:
            self.run_.assume(f"IP forwarding enabled ({sysctl}=1, as Docker sets it)")
        p = _note(path, hook, f"forward {dst}: route {route}")
        p = replace(p, kind=Path.FORWARD, flow=replace(flow, out_iface=route.dev))
        return p, (*_hook("FORWARD"), *_hook("POSTROUTING"), ("send",))

    def _output_route(self, path: _Path, hook: str) -> _Outcome | _Path:
        flow, host = path.flow, self.host
        dst = flow.dst
        if host.is_local(dst):
            p = _note(path, hook, f"{dst} is a local address: output via lo")
            return replace(p, kind=Path.LOCAL, flow=replace(flow, out_iface="lo", out_known=True),
                           routed_dst=dst, routed_mark=flow.mark)
        route = host.route(dst)
        if route is None:
            if self._routes_known(dst.version):
                p = _note(path, hook, f"no route to {dst}: the sender gets 'network unreachable'")
                return _Outcome(Verdict.DROP, replace(p, kind=Path.OUTPUT))
            self.run_.doubt(f"route to {dst}: not in the snapshot (output interface unknown)")
            p = _note(path, hook, f"{dst}: no route known, output interface unknown")
            return replace(p, kind=Path.OUTPUT, flow=replace(flow, out_iface=None,
                                                             out_known=False),
                           routed_dst=dst, routed_mark=flow.mark)
        if route.kind in ("blackhole", "unreachable", "prohibit"):
            p = _note(path, hook, f"route {route}: {route.kind}")
            verdict = Verdict.DROP if route.kind == "blackhole" else Verdict.REJECT
            return _Outcome(verdict, replace(p, kind=Path.OUTPUT))
        p = _note(path, hook, f"output {dst}: route {route}")
        return replace(p, kind=Path.OUTPUT, flow=replace(flow, out_iface=route.dev,
                                                         out_known=True),
                       routed_dst=dst, routed_mark=flow.mark)

    def route_out(self, path: _Path) -> _Outcome | tuple[_Path, tuple[Stage, ...]]:
        result = self._output_route(path, "ROUTING")
        if isinstance(result, _Outcome):
            return result
        return result, (*_hook("OUTPUT"), ("reroute",), *_hook("POSTROUTING"), ("after_post",))

    def reroute(self, path: _Path) -> _Outcome | tuple[_Path, tuple[Stage, ...]]:
        flow = path.flow
        if flow.dst == path.routed_dst and flow.mark == path.routed_mark:
            return path, ()
        result = self._output_route(path, "REROUTE")
        if isinstance(result, _Outcome):
            return result
        return result, ()

    def after_post(self, path: _Path) -> _Outcome | tuple[_Path, tuple[Stage, ...]]:
        if path.kind is not Path.LOCAL:
            return path, (("send",),)
        p = _note(path, "LOOPBACK", "looped back through lo: PREROUTING and INPUT again")
        p = replace(p, flow=replace(p.flow, in_iface="lo", out_iface=None))
        return p, (*_hook("PREROUTING"), *_hook("INPUT"), ("deliver",))

    # -- one table of one hook ------------------------------------------------------------------

    def table(self, path: _Path, hook: str, table: str) -> list[tuple[Action, _Path]]:
        chains = self.prepared.tables.get(table)
        if chains is None:
            return [(Action.ACCEPT, path)]
        base = chains.get(hook)
        if base is None:
            return [(Action.ACCEPT, path)]
        flow = path.flow
        if table == "nat":
            manip = _NAT_MANIP[hook]
            if flow.ctstate == "UNTRACKED":
                return [(Action.ACCEPT, _note(path, hook, "nat skipped: packet is untracked"))]
            if flow.ctstate == "RELATED" and flow.proto not in ("icmp", "icmpv6"):
                # The first packet of an expected connection (FTP data, ...) meets the nat
                # chains unless its helper already set the mapping up (nf_nat_inet_fn).
                self.run_.doubt(f"nat:{hook}: a conntrack helper may have set up NAT for this "
                                "related connection already")
            elif flow.ctstate != "NEW":
                what = "ICMP error of an existing connection (translated like it)" \
                    if flow.ctstate == "RELATED" else "packet of an existing connection (its " \
                    "NAT mapping was set up by the first packet)"
                return [(Action.ACCEPT, _note(path, hook, f"nat:{hook} not consulted: {what}"))]
            if (path.nat_dst_done if manip == "dst" else path.nat_src_done):
                return [(Action.ACCEPT, path)]
        results = self.walk(_Cursor(path, hook, 0, (), (hook,)), hook, table, chains)
        if table == "nat":
            dst_side = _NAT_MANIP[hook] == "dst"
            results = [(a, p.but(nat_dst_done=True) if dst_side else p.but(nat_src_done=True))
                       for a, p in results]
        return results

    def walk(self, start: _Cursor, hook: str, table: str,
             chains: Mapping[str, PreparedChain]) -> list[tuple[Action, _Path]]:
        run = self.run_
        ctx = self.ctx(hook, table)
        pending = [start]
        results: list[tuple[Action, _Path]] = []
        while pending:
            cur = pending.pop()
            path, chain_name, pos, stack, active = cur.path, cur.chain, cur.pos, cur.stack, \
                cur.active
            flow = path.flow
            steps = list(path.steps)
            finished: tuple[Action, _Path] | None = None
            while finished is None:
                chain = chains[chain_name]
                rules = chain.rules
                cands = chain.candidates(flow)
                if cands is None:
                    order: Sequence[int] = range(pos, len(rules))
                else:
                    order = cands[bisect.bisect_left(cands, pos):]
                jumped = False
                for i in order:
                    run.visits += 1
                    if run.visits > _MAX_RULE_VISITS:
                        run.doubt(f"walk stopped after {_MAX_RULE_VISITS} rule visits "
                                  f"(chain loop through -g?) in {table}:{chain_name}")
                        finished = (Action.ACCEPT, path.but(flow=flow, steps=tuple(steps)))
                        break
                    cr = rules[i]
                    ev = run_checks(cr.checks, flow, ctx)
                    if ev.mismatches:
                        continue
                    if not ev.matched:  # chance or doubt: follow "matches" now, queue the rest
                        matched, unmatched = self._fork(
                            ev, cr, table=table, chain=chain_name,
                            path=path.but(flow=flow, steps=tuple(steps)))
                        if unmatched is not None:
                            pending.append(_Cursor(unmatched, chain_name, i + 1, stack, active))
                        path = matched
                        steps = list(path.steps)
                    target = cr.rule.target
                    if target is None:
                        steps.append(Step(hook, table, chain_name, cr.index, "", cr.text,
                                          where=cr.where))
                        continue
                    if target.kind is TargetKind.CHAIN or (
                            target.name in chains and target.kind is TargetKind.UNKNOWN):
                        detail, follow = "", False
                        if target.name not in chains:
                            run.doubt(f"{table}:{chain_name}#{cr.index}: jump to undefined "
                                      f"chain {target.name}")
                            detail = "undefined chain: skipped"
                        elif target.name in active:
                            run.doubt(f"{table}:{chain_name}#{cr.index}: chain loop into "
                                      f"{target.name} (the kernel refuses such rulesets)")
                            detail = "loop: not followed"
                        else:
                            follow = True
                            detail = f"goto {target.name}" if cr.rule.goto else ""
                        steps.append(Step(hook, table, chain_name, cr.index, target.name,
                                          cr.text, detail, where=cr.where))
                        if not follow:
                            continue
                        if not cr.rule.goto:
                            stack = (*stack, (chain_name, i + 1, active))
                        chain_name, pos, active = target.name, 0, (*active, target.name)
                        jumped = True
                        break
                    effect = apply_target(cr.rule, flow, ctx)
                    if effect.uncertain:
                        run.doubt(f"{table}:{chain_name}#{cr.index}: {effect.uncertain}")
                    steps.append(Step(hook, table, chain_name, cr.index, target.name, cr.text,
                                      effect.detail, where=cr.where))
                    old = flow
                    flow = effect.flow
                    action = effect.action
                    if action is Action.CONTINUE:
                        if (old.dst, old.dport, old.proto) != (flow.dst, flow.dport, flow.proto):
                            # The index was computed for the old packet: re-enter here.
                            pos = i + 1
                            jumped = True
                            break
                        continue
                    if action is Action.RETURN:
                        if stack:
                            (chain_name, pos, active), stack = stack[-1], stack[:-1]
                            jumped = True
                            break
                        finished = self._policy(hook, table, chains, flow=flow, steps=steps,
                                                path=path)
                        break
                    finished = (action, path.but(flow=flow, steps=tuple(steps)))
                    break
                if finished is not None or jumped:
                    continue
                # End of the chain: implicit return (user chain) or policy (built-in).
                if chain.builtin and not stack and chain_name == hook:
                    finished = self._policy(hook, table, chains, flow=flow, steps=steps, path=path)
                    continue
                steps.append(Step(hook, table, chain_name, None, "RETURN", "end of chain",
                                  kind=StepKind.RETURN, position=len(rules) + 1))
                if stack:
                    (chain_name, pos, active), stack = stack[-1], stack[:-1]
                else:  # end of a chain entered by -g from the built-in chain
                    finished = self._policy(hook, table, chains, flow=flow, steps=steps, path=path)
            results.append(finished)
        return results

    def _policy(self, hook: str, table: str, chains: Mapping[str, PreparedChain], *, flow: Flow,
                steps: list[Step], path: _Path) -> tuple[Action, _Path]:
        base = chains[hook]
        policy = base.policy
        if policy is None:
            self.run_.assume(f"{table}:{hook} has no policy in the dump ('-'): ACCEPT assumed "
                             "(the kernel's default)")
            policy = "ACCEPT"
        steps.append(Step(hook, table, hook, None, policy, f"policy {policy}",
                          kind=StepKind.POLICY, position=len(base.rules) + 1))
        action = {"ACCEPT": Action.ACCEPT, "DROP": Action.DROP}.get(policy, Action.ACCEPT)
        if policy not in ("ACCEPT", "DROP"):
            self.run_.doubt(f"{table}:{hook} policy {policy}: decided by userspace (assumed "
                            "ACCEPT)")
        return action, path.but(flow=flow, steps=tuple(steps))

    def _fork(self, ev: Evaluation, cr: CompiledRule, *, table: str, chain: str,
              path: _Path) -> tuple[_Path, _Path | None]:
        """Split ``path`` at a rule that matches only by chance or maybe: (matches, does not;
        None when too many outcomes already)."""
        run = self.run_
        where = f"{table}:{chain}#{cr.index}"
        for what in ev.uncertain:
            run.doubt(f"{where}: {what}")
        p = ev.probability
        assumed_yes = tuple(f"{where} matches ({w})" for w in ev.uncertain)
        assumed_no = tuple(f"{where} does not match ({w})" for w in ev.uncertain)
        matched = path.but(prob=path.prob * p, assumed=path.assumed + assumed_yes)
        no_prob = path.prob * (1.0 - p) if ev.chances else path.prob
        unmatched = path.but(prob=no_prob, assumed=path.assumed + assumed_no)
        if run.outcomes >= _MAX_OUTCOMES:
            run.doubt(f"more than {_MAX_OUTCOMES} outcomes: later forks follow the matching "
                      "side only")
            return matched, None
        run.outcomes += 1
        return matched, unmatched


# -- assembling the trace -----------------------------------------------------------------------


def _result_of(o: _Outcome) -> Branch:
    f = o.path.flow
    kind = o.path.kind
    if kind is None:
        kind = Path.OUTPUT if f.local_origin else Path.FORWARD
    out = f.out_iface if kind is not Path.LOCAL or f.local_origin else None
    if kind is Path.LOCAL and f.local_origin:
        out = "lo"
    return Branch(
        probability=o.path.prob,
        verdict=o.verdict,
        path=kind,
        final_dst=endpoint(f.dst, f.dport),
        final_src=endpoint(f.src, f.sport),
        out_interface=out,
        steps=o.path.steps,
        assumed=o.path.assumed,
    )


def _assemble(packet: Packet, outcomes: list[_Outcome], run: _Run) -> Trace:
    branches = [_result_of(o) for o in outcomes]
    first = branches[0]
    signatures = {(b.verdict, b.path, b.final_dst, b.final_src, b.out_interface)
                  for b in branches}
    merged: list[Branch] = []
    if len(signatures) > 1:
        groups: dict[tuple[object, ...], Branch] = {}
        for b in branches:
            key = (b.verdict, b.path, b.final_dst, b.final_src, b.out_interface, b.assumed)
            if key in groups:
                g = groups[key]
                groups[key] = replace(g, probability=g.probability + b.probability)
            else:
                groups[key] = b
        merged = list(groups.values())
    return Trace(
        packet=packet,
        verdict=first.verdict,
        path=first.path,
        final_dst=first.final_dst,
        final_src=first.final_src,
        out_interface=first.out_interface,
        steps=first.steps,
        branches=tuple(merged),
        uncertain=tuple(run.uncertain),
        assumptions=tuple(run.assumptions),
    )


# -- entry point --------------------------------------------------------------------------------

_SIMULATORS: dict[int, tuple[Snapshot, Simulator]] = {}


def simulate(snapshot: Snapshot, packet: Packet) -> Trace:
    """Trace ``packet`` through ``snapshot`` (a ``Snapshot``; IPv6 packets walk ``ruleset6``).

    The snapshot's rules are compiled on first use and reused for later packets.
    """
    cached = _SIMULATORS.get(id(snapshot))
    if cached is not None and cached[0] is snapshot:
        sim = cached[1]
    else:
        sim = Simulator.from_snapshot(snapshot)
        if len(_SIMULATORS) >= 8:
            _SIMULATORS.pop(next(iter(_SIMULATORS)))
        _SIMULATORS[id(snapshot)] = (snapshot, sim)
    return sim.trace(packet)

