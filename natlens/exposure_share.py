"""Sharing the exposure map's decisions between containers the rules cannot tell apart.

On a host with many containers set up alike (Docker writes the same rules for each: a DNAT per
published port, a filter ACCEPT and a hairpin MASQUERADE per container port), the cells of one
container are those of another with the two containers' *values* (addresses, published host
ports) exchanged. ``Sharing`` proves that for classes of containers once per map; a cell then
reuses the decision of a cell of another container of its class whose packet is the same up to
that exchange (``swap``: each value of ``C`` to the value of ``D`` at the same position, and
back). The proof, per IP family:

1. *Keyed values.* Each container's addresses and host ports are its own: no other container,
   host address, gateway, network or broadcast address, no other row's port nor the map's
   source port is one of them. A conflict takes the container out of sharing (its cells are
   traced one by one).
2. *Owned rules.* A rule naming a keyed value exactly (``-s``/``-d`` a full-length prefix, one
   port of ``--dport``/``--sport``/``--dports``, a NAT target's address or port) is *owned* by
   that container; a rule naming two containers' values takes both out. Every owned rule must
   be *exclusive*: it requires, not negated, one of its owner's addresses as source or
   destination, or one of its owner's host ports as the destination port. The others are
   *common*.
3. *Nothing else reads a value.* The simulator reads a packet's addresses and ports through the
   rules' matches and targets and the host's addresses and routes only. Every match module and
   target option of the ruleset is one whose values 2 reads, or one that reads none
   (``_VALUE_FREE``, ``_PLAIN_TARGETS``); anything else, a NAT target with an address or port
   range, native nftables rules or a second iptables backend switch sharing off for the family.
   The ranges (prefixes shorter than an address, port ranges) of every rule and of the host,
   and the special ranges of the family, cut the values into intervals: ``C`` and ``D`` have
   each value in the interval of its counterpart (every range holds both or neither) and the
   same intrinsic properties (``is_private``, ...).
4. *The same rules up to swap.* ``C``'s owned rules, each with its chain and the number of
   common rules before it there, written with ``C``'s values as their positions, are ``D``'s.

A walk of a packet carrying ``C``'s values and no other container's never matches a rule owned
by another container: its flow gains values only from rules that match it (common rules name
no keyed value, ``C``'s name ``C``'s; MASQUERADE takes a host address; the reply undoes the
mapping). So it is the walk through the common rules and ``C``'s own, in their order; by 3 and
4 that ruleset and host, swapped, are the ones ``D``'s packets walk, so the trace of
``swap(packet)`` is the swapped trace with the steps of ``C``'s rules moved to ``D``'s. Only
what a cell reads is shared (verdict, path, final destination, the deciding rule), and only
from traces without doubt, branches or a connection that is not established; every other cell
is traced.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from natlens.inputs import is_decimal
from natlens.model import Address, Rule, Table
from natlens.netfilter import Packet, Simulator, Step, StepKind, Trace, Verdict
from natlens.netfilter.packet import endpoint
from natlens.parse.values import parse_port_range
from natlens.serialize import rule_to_save

__all__ = ["Sharing", "Summary", "Values"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Values = tuple[tuple[str, ...], tuple[IPAddress, ...], tuple[int, ...]]
"""A container's values in one family: its networks' names, its addresses on them (in that
order) and its published host ports."""

_PORT_OPTIONS = frozenset({"--dport", "--sport", "--destination-port", "--source-port",
                           "--dports", "--sports", "--ports", "--destination-ports",
                           "--source-ports"})
_PORT_MODULES = frozenset({"tcp", "udp", "sctp", "udplite", "multiport"})
_VALUE_FREE: dict[str, frozenset[str] | None] = {
    "comment": None, "addrtype": None, "state": None, "mark": None, "connmark": None,
    "statistic": None, "limit": None, "physdev": None, "pkttype": None, "icmp": None,
    "icmp6": None, "conntrack": frozenset({"--ctstate", "--ctstatus", "--ctdir"}),
}
"""Match modules (and, where given, the only options) that read no address or port."""
_PLAIN_TARGETS = frozenset({"ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "NFLOG", "MARK",
                            "CONNMARK", "CT", "NOTRACK", "TRACE", "CHECKSUM", "TCPMSS", "AUDIT",
                            "CLASSIFY", "DSCP", "TOS", "TTL", "HL", "NFQUEUE", "QUEUE"})
"""Targets whose options name no address or port."""
_NAT_TARGETS = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT"})
_SPECIAL: dict[int, tuple[str, ...]] = {
    4: ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"),
    6: ("::/128", "::1/128", "ff00::/8", "fe80::/10", "fc00::/7", "::ffff:0:0/96",
        "2001:db8::/32"),
}
_PACKET_FIELDS = tuple(f.name for f in fields(Packet))
_KNOWN_FIELDS = ("src", "dst", "proto", "in_interface", "local_origin", "sport", "dport",
                 "icmp_type", "state", "mark")
_RANDOM_PORTS = ((1, 511), (600, 1023), (1024, 65535))
_PROPERTIES = ("is_private", "is_global", "is_loopback", "is_link_local", "is_multicast",
               "is_reserved", "is_unspecified")


class _UnprovenError(Exception):
    """Sharing is not proven for the family (its rules read values some other way)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """What a cell reads of a trace, with the container's values as positions."""

    verdict: Verdict
    path: str
    final_ip: Any
    final_port: Any
    decider: Any
    """``("own", k, source)`` for the container's k-th owned rule, else the deciding step
    (or None); ``final_ip``/``final_port``: ``("a", i)``/``("p", i)`` for the container's i-th
    address/host port, else the value."""


class _Family:
    """The proof of 1-4 for one family: container classes and owned rules."""

    def __init__(self, sim: Simulator, family: int,
                 containers: Sequence[tuple[str, tuple[str, ...], tuple[IPAddress, ...],
                                            tuple[int, ...]]],
                 other_ports: Iterable[int]) -> None:
        self.addr_owner: dict[IPAddress, tuple[str, int]] = {}
        self.port_owner: dict[int, tuple[str, int]] = {}
        self.values: dict[str, tuple[tuple[IPAddress, ...], tuple[int, ...]]] = {}
        self.owned: dict[str, list[_Owned]] = {}
        """Per container: its owned rules, in ruleset order."""
        self.by_rule: dict[tuple[str, str, int], tuple[str, int]] = {}
        self.klass: dict[str, int] = {}
        try:
            self._prove(sim, family, containers, set(other_ports))
        except _UnprovenError:
            self.klass = {}

    # -- 1: values ------------------------------------------------------------------------

    def _prove(self, sim: Simulator, family: int,
               containers: Sequence[tuple[str, tuple[str, ...], tuple[IPAddress, ...],
                                          tuple[int, ...]]],
               other_ports: set[int]) -> None:
        if sim.nft is not None or sim.other4 is not None or sim.other6 is not None:
            raise _UnprovenError
        prepared = sim.v4 if family == 4 else sim.v6
        host = sim.host_for(family)  # the host the walks see (routes inferred included)
        bad: set[str] = set()
        seen_a: dict[IPAddress, str] = {}
        seen_p: dict[int, str] = {}
        # two containers of one name (a malformed inventory): their values cannot be told apart
        bad.update(n for n, k in Counter(c[0] for c in containers).items() if k > 1)
        for name, _, addrs, ports in containers:
            for a in addrs:
                if seen_a.setdefault(a, name) != name or a.version != family:
                    bad.update((name, seen_a[a]))
            for p in ports:
                if seen_p.setdefault(p, name) != name or p in other_ports:
                    bad.update((name, seen_p[p]))
        points: set[IPAddress] = set(host.broadcasts) | set(host.not_local)
        ranges: list[tuple[int, int]] = []
        for addrs in host.addresses.values():
            for ifa in addrs:
                points.update((ifa.ip, ifa.network.network_address,
                               ifa.network.broadcast_address))
                ranges.append(_span(ifa.network))
        for r in (host.routes if family == 4 else host.routes6):
            ranges.append(_span(r.network))
            points.update(a for a in (r.gateway, r.prefsrc) if a is not None)
        for text in _SPECIAL[family]:
            ranges.append(_span(ipaddress.ip_network(text)))
        bad.update(seen_a[a] for a in points if a in seen_a)
        # 2 and 3: every rule
        port_ranges: list[tuple[int, int]] = []
        mentions: list[tuple[str, str, int, Rule, set[str]]] = []
        texts = {str(a): a for a in seen_a} if family == 4 else None
        every = list(_rules(prepared))
        for table, chain_name, index, rule in every:
            names = self._scan(rule, seen_a, seen_p, ranges, port_ranges, texts=texts)
            if names:
                mentions.append((table, chain_name, index, rule, names))
        for _, _, _, _, names in mentions:
            if len(names) > 1:
                bad.update(names)
        own_a: dict[str, set[IPAddress]] = {}
        own_p: dict[str, set[int]] = {}
        for a, o in seen_a.items():
            own_a.setdefault(o, set()).add(a)
        for p, o in seen_p.items():
            own_p.setdefault(o, set()).add(p)
        for _, _, _, rule, names in mentions:
            if len(names) != 1:
                continue
            (name,) = names
            if name not in bad and not _exclusive(
                    rule, own_a.get(name, set()), own_p.get(name, set())):
                bad.add(name)
        keyed = {n: (a, p) for n, _, a, p in containers if n not in bad}
        for n, (addrs, ports) in keyed.items():
            self.values[n] = (addrs, ports)
            for i, a in enumerate(addrs):
                self.addr_owner[a] = (n, i)
            for i, p in enumerate(ports):
                self.port_owner[p] = (n, i)
        # 4: slots of owned rules among the common ones, normalized
        bounds = sorted({b for lo, hi in ranges for b in (lo, hi + 1)})
        pbounds = sorted({b for lo, hi in port_ranges for b in (lo, hi + 1)})
        owner_of = {(t, c, i): next(iter(names)) for t, c, i, _, names in mentions
                    if len(names) == 1}
        layout: dict[str, list[tuple[str, str, int, Any]]] = {n: [] for n in keyed}
        common = 0
        where = None
        for table, chain_name, index, rule in every:
            if (table, chain_name) != where:
                where, common = (table, chain_name), 0
            owner = owner_of.get((table, chain_name, index))
            if owner is None or owner not in keyed:
                common += 1
                continue
            layout[owner].append((table, chain_name, common, self._normal(rule, owner)))
            self.owned.setdefault(owner, []).append(_Owned(table, chain_name, index, rule))
            self.by_rule[(table, chain_name, index)] = (owner, len(self.owned[owner]) - 1)
        classes: dict[tuple[Any, ...], int] = {}
        names_of = {n: nets for n, nets, _, _ in containers}
        for n, (addrs, ports) in keyed.items():
            sig = (names_of[n],
                   tuple((bisect.bisect_right(bounds, int(a)),
                          tuple(getattr(a, p) for p in _PROPERTIES)) for a in addrs),
                   tuple(bisect.bisect_right(pbounds, p) for p in ports),
                   tuple(layout[n]))
            self.klass[n] = classes.setdefault(sig, len(classes))

    def _scan(self, rule: Rule, addrs: dict[IPAddress, str], ports: dict[int, str],
              ranges: list[tuple[int, int]], port_ranges: list[tuple[int, int]], *,
              texts: dict[str, IPAddress] | None) -> set[str]:
        """The containers whose values ``rule`` names exactly; its ranges are added to
        ``ranges``/``port_ranges``; ``_UnprovenError`` when it reads values some other way.
        ``texts``: the keyed IPv4 addresses by their text (an IPv4 address has one text)."""
        names: set[str] = set()
        if rule.unknown:
            raise _UnprovenError
        for a in (rule.source, rule.destination):
            if a is None:
                continue
            if a.mask is not None:
                raise _UnprovenError
            net = a.network
            if net.prefixlen == net.max_prefixlen:
                owner = addrs.get(net.network_address)
                if owner is not None:
                    names.add(owner)
            else:
                ranges.append(_span(net))
        for m in rule.matches:
            if not m.known:
                raise _UnprovenError
            if m.module in _PORT_MODULES:
                for o in m.options:
                    if o.name not in _PORT_OPTIONS:
                        if m.module == "multiport" or o.name not in (
                                "--tcp-flags", "--syn", "--tcp-option"):
                            raise _UnprovenError
                        continue
                    for lo, hi in _ports(o.args):
                        if lo == hi:
                            if lo in ports:
                                names.add(ports[lo])
                        else:
                            port_ranges.append((lo, hi))
                continue
            if m.module not in _VALUE_FREE:
                raise _UnprovenError
            allowed = _VALUE_FREE[m.module]
            if allowed is not None and any(o.name not in allowed for o in m.options):
                raise _UnprovenError
        t = rule.target
        if t is None or t.kind.value in ("chain", "verdict") or (
                t.name in _PLAIN_TARGETS and t.name not in _NAT_TARGETS):
            return names
        if t.name not in _NAT_TARGETS:
            raise _UnprovenError
        for o in t.options:
            if o.name in ("--random", "--random-fully"):
                # a port drawn at random lies in one of these (natlens.netfilter.targets
                # ``_random_port_span``): each holds both values of a class or neither
                port_ranges.extend(_RANDOM_PORTS)
                continue
            if o.name == "--persistent":
                continue
            if o.name in ("--to-destination", "--to-source"):
                ip, port = _nat_to(o.value, texts)
                if ip is not None and ip in addrs:
                    names.add(addrs[ip])
                if port is not None and port in ports:
                    names.add(ports[port])
            elif o.name == "--to-ports":
                (lo, hi), = _ports(o.args)
                if lo != hi:
                    raise _UnprovenError
                if lo in ports:
                    names.add(ports[lo])
            else:
                raise _UnprovenError
        return names

    def _normal(self, rule: Rule, owner: str) -> tuple[Any, ...]:
        """``rule`` with ``owner``'s values as ("a", i) / ("p", i), every other field kept."""
        addrs, ports = self.values[owner]
        apos = {a: ("a", i) for i, a in enumerate(addrs)}
        ppos = {p: ("p", i) for i, p in enumerate(ports)}

        def addr(a: Address | None) -> Any:
            if a is None:
                return None
            net = a.network
            key = apos.get(net.network_address) if net.prefixlen == net.max_prefixlen else None
            return (key or net, a.negated)

        matches = []
        for m in rule.matches:
            opts = []
            for o in m.options:
                if m.module in _PORT_MODULES and o.name in _PORT_OPTIONS:
                    args: Any = tuple(ppos.get(lo, (lo,)) if lo == hi else (lo, hi)
                                      for lo, hi in _ports(o.args))
                else:
                    args = o.args
                opts.append((o.name, args, o.negated))
            matches.append((m.module, tuple(opts), m.known))
        target: Any = None
        t = rule.target
        if t is not None:
            topts = []
            for o in t.options:
                if o.name in ("--to-destination", "--to-source"):
                    ip, port = _nat_to(o.value)
                    targs: Any = (apos.get(ip, ip) if ip is not None else None,
                                  ppos.get(port, port) if port is not None else None)
                elif o.name == "--to-ports":
                    targs = tuple(ppos.get(lo, (lo, hi)) for lo, hi in _ports(o.args))
                else:
                    targs = o.args
                topts.append((o.name, targs, o.negated))
            target = (t.name, t.kind, tuple(topts))
        return (addr(rule.source), addr(rule.destination), rule.in_interface,
                rule.out_interface, rule.protocol, rule.fragment, tuple(matches), target,
                rule.goto, rule.unknown)


@dataclass(slots=True)
class _Owned:
    """An owned rule: where it is, and its text as a trace step shows it (made when asked)."""

    table: str
    chain: str
    index: int
    rule: Rule
    _text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = rule_to_save(self.rule, counters=False)
        return self._text


def _rules(prepared: Any) -> Iterable[tuple[str, str, int, Rule]]:
    """(table, chain, 1-based position, rule) of every rule the simulator walks, in order:
    from the model tables a lazily prepared ruleset keeps (no chain is compiled for this),
    else from the prepared chains."""
    for table, chains in prepared.tables.items():
        model = getattr(chains, "table", None)
        if isinstance(model, Table):
            for name in dict.fromkeys(c.name for c in model.chains):
                chain = model.get(name)  # the one the prepared table compiles for the name
                if chain is not None:
                    for i, rule in enumerate(chain.rules, 1):
                        yield table, name, i, rule
            continue
        for name in chains:
            for cr in chains[name].rules:
                yield table, name, cr.index, cr.rule


def _span(net: Any) -> tuple[int, int]:
    return int(net.network_address), int(net.broadcast_address)


def _ports(args: Sequence[str]) -> list[tuple[int, int]]:
    out = []
    for part in ",".join(args).split(","):
        try:
            out.append(parse_port_range(part))
        except ValueError:
            raise _UnprovenError from None
    return out


def _nat_to(text: str, texts: dict[str, IPAddress] | None = None,
            ) -> tuple[IPAddress | None, int | None]:
    """``--to-destination``/``--to-source`` as (address, port); ``_UnprovenError`` for ranges. With
    ``texts`` (IPv4), an address not among them is not parsed (None: no keyed value)."""
    if text.startswith("["):
        ip_text, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        ip_text, _, port_text = text.partition(":")
    elif text.count(":") == 0:
        ip_text, port_text = text, ""
    else:
        ip_text, port_text = text, ""
    if "-" in ip_text or "-" in port_text or "/" in ip_text:
        raise _UnprovenError
    try:
        port = int(port_text) if port_text else None
        if texts is not None:
            return texts.get(ip_text), port
        ip = ipaddress.ip_address(ip_text) if ip_text else None
    except ValueError:
        raise _UnprovenError from None
    return ip, port


def _exclusive(rule: Rule, addrs: set[IPAddress], ports: set[int]) -> bool:
    """Whether ``rule`` requires one of ``addrs`` as source/destination or one of ``ports`` as
    the one destination port."""
    for a in (rule.source, rule.destination):
        if a is not None and not a.negated and a.mask is None \
                and a.network.prefixlen == a.network.max_prefixlen \
                and a.network.network_address in addrs:
            return True
    p = rule.protocol
    if p is None or p.negated or p.name not in ("tcp", "udp", "6", "17"):
        return False
    for m in rule.matches:
        if m.module not in ("tcp", "udp"):
            continue
        for name in ("--dport", "--destination-port"):
            o = m.get(name)
            if o is not None and not o.negated and len(o.args) == 1 and is_decimal(o.args[0]) \
                    and int(o.args[0]) in ports:
                return True
    return False


class Sharing:
    """Shared cell decisions of one map (see the module docstring)."""

    def __init__(self, sim: Simulator, containers: Sequence[tuple[str, Mapping[int, Values]]],
                 other_ports: Iterable[int]) -> None:
        """``containers``: (name, its ``Values`` per family) per running container;
        ``other_ports``: every port a cell's packet may carry that is not a published host
        port (container and service rows, the source port)."""
        others = set(other_ports)
        self.families = {
            f: _Family(sim, f, [(name, *per[f]) for name, per in containers], others)
            for f in (4, 6)}
        self.done: dict[tuple[Any, ...], Summary] = {}

    def key(self, container: str | None, packet: Packet) -> tuple[Any, ...] | None:
        """The packet with ``container``'s values as positions, and its class; None when
        the cell cannot be shared."""
        version = packet.family
        fam = self.families[version]
        if container is None or container not in fam.klass:
            return None
        if _PACKET_FIELDS == _KNOWN_FIELDS:  # the same as below, spelled out (the hot path)
            src, dst, sport, dport = packet.src, packet.dst, packet.sport, packet.dport
            owners = fam.addr_owner
            o = owners.get(src)
            if o is not None:
                if o[0] != container:
                    return None
                src = ("a", o[1])  # type: ignore[assignment]
            o = owners.get(dst)
            if o is not None:
                if o[0] != container:
                    return None
                dst = ("a", o[1])  # type: ignore[assignment]
            ports = fam.port_owner
            o = ports.get(sport) if sport is not None else None
            if o is not None:
                if o[0] != container:
                    return None
                sport = ("p", o[1])  # type: ignore[assignment]
            o = ports.get(dport) if dport is not None else None
            if o is not None:
                if o[0] != container:
                    return None
                dport = ("p", o[1])  # type: ignore[assignment]
            return (version, fam.klass[container], src, dst, packet.proto, packet.in_interface,
                    packet.local_origin, sport, dport, packet.icmp_type, packet.state,
                    packet.mark)
        out: list[Any] = [version, fam.klass[container]]
        for name in _PACKET_FIELDS:
            v = getattr(packet, name)
            if name in ("src", "dst"):
                o = fam.addr_owner.get(v)
                if o is not None:
                    if o[0] != container:
                        return None
                    v = ("a", o[1])
            elif name in ("sport", "dport") and v is not None:
                o = fam.port_owner.get(v)
                if o is not None:
                    if o[0] != container:
                        return None
                    v = ("p", o[1])
            out.append(v)
        return tuple(out)

    def summarize(self, container: str, packet: Packet, trace: Trace, *, verdict: Verdict,
                  final_dst: str, path: str, decider: Step | None) -> Summary | None:
        """What the cell read of ``trace`` with ``container``'s values as positions; None when
        it cannot be shared."""
        if trace.branches or trace.uncertain or trace.rests_on_unseen:
            return None
        if verdict is Verdict.ACCEPT:
            conn = trace.connection
            if conn is not None and conn.established is not True:
                return None
        fam = self.families[packet.family]
        ip_text, _, port_text = final_dst.rpartition(":")
        try:
            ip: Any = ipaddress.ip_address(ip_text.strip("[]"))
            port: Any = int(port_text)
        except ValueError:
            return None
        if endpoint(ip, port) != final_dst:
            return None
        o = fam.addr_owner.get(ip)
        if o is not None:
            if o[0] != container:
                return None
            ip = ("a", o[1])
        po = fam.port_owner.get(port)
        if po is not None:
            if po[0] != container:
                return None
            port = ("p", po[1])
        d: Any = decider
        if decider is not None and decider.kind is StepKind.RULE and decider.table is not None:
            owned = fam.by_rule.get((decider.table, decider.chain or "", decider.rule or 0))
            if owned is not None:
                if owned[0] != container:
                    return None
                mine = fam.owned[container][owned[1]]
                if decider.text != mine.text or decider.rule != mine.index:
                    return None
                d = ("own", owned[1], decider.source)
        return Summary(verdict, path, ip, port, d)

    def unpack(self, container: str, family: int, s: Summary
               ) -> tuple[Verdict, str, str, tuple[Any, ...] | Step | None]:
        """(verdict, final destination, path, decider) of ``s`` for ``container``: the
        decider as (source, table, chain, index, text) for an owned rule, else the step."""
        addrs, ports = self.families[family].values[container]
        ip = addrs[s.final_ip[1]] if isinstance(s.final_ip, tuple) else s.final_ip
        port = ports[s.final_port[1]] if isinstance(s.final_port, tuple) else s.final_port
        d = s.decider
        if isinstance(d, tuple):
            o = self.families[family].owned[container][d[1]]
            d = (d[2], o.table, o.chain, o.index, o.text)
        return s.verdict, endpoint(ip, port), s.path, d
