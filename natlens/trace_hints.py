"""What ``natlens trace`` says besides the trace: its exit status and hints about the packet.

- ``exit_status``: 0 when the packet is delivered, 1 when it is dropped or rejected (like
  ``grep``: "found" / "not found"), the CLI's 2 for bad input comes from the error path. With
  several outcomes (``-m statistic`` or doubt) the status is 0 when **any** outcome delivers
  the packet: exit 1 then promises that no reading of the rules lets it through, which is what a
  script that checks "is this blocked?" relies on (docs/cli.md).
- ``interface_warning``: an ``--in`` interface that neither the host's addresses nor any rule
  names (a typo, ``eth9``), with the known ones listed.
- ``protocol_hint``: a destination port that Docker publishes, or the rules match, only for
  another protocol ("did you mean --proto udp?").

What these read from every rule (the interfaces rules name, the ports they match per protocol)
is computed once per snapshot (``Snapshot.derived``) and stored with it by the snapshot cache:
a warm ``trace`` on a 100k-rule host does not read every chain again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

from natlens.derived import derived
from natlens.inputs import is_decimal
from natlens.model import Interface, Option, Rule, Ruleset
from natlens.netfilter import Packet, Step, Trace, Verdict
from natlens.snapshot import STATED_ADDRESSES, Snapshot

__all__ = [
    "RuleFacts", "exit_status", "interface_warning", "known_interfaces", "protocol_hint",
    "relative_to_snapshot", "rule_facts",
]

EXIT_DELIVERED = 0
EXIT_DROPPED = 1

_PORT_OPTIONS = ("--dport", "--destination-port", "--dports", "--destination-ports")


def exit_status(trace: Trace) -> int:
    """0 when the headline or any branch ends in ACCEPT, 1 when every outcome is DROP or
    REJECT."""
    verdicts = {trace.verdict, *(b.verdict for b in trace.branches)}
    return EXIT_DELIVERED if Verdict.ACCEPT in verdicts else EXIT_DROPPED


def _rules(snap: Snapshot) -> Iterator[Rule]:
    rulesets: list[Ruleset] = [snap.ruleset, snap.ruleset6]
    for rs in rulesets:
        for table in rs.tables:
            for chain in table.chains:
                yield from chain.rules


@dataclass(frozen=True, slots=True)
class RuleFacts:
    """What the hints need from every rule of a snapshot (IPv4 then IPv6, in rule order).

    ``interfaces``: the names rules give with ``-i``/``-o``; ``prefixes``: their wildcards
    (``eth+`` → ``eth``); ``ports``: each distinct ``(protocol, first port, last port)`` of an
    unnegated destination port (``--dport``, ``--dports`` ranges and lists) of a rule with an
    unnegated ``-p``, in the order of the first rule giving it.
    """

    interfaces: tuple[str, ...]
    prefixes: tuple[str, ...]
    ports: tuple[tuple[str, int, int], ...]


def rule_facts(snap: Snapshot) -> RuleFacts:
    """The ``RuleFacts`` of ``snap``, computed on first use and kept with it."""
    return derived(snap, "trace_hints.rule_facts", lambda: _rule_facts(snap))


def _rule_facts(snap: Snapshot) -> RuleFacts:
    names: dict[str, None] = {}
    prefixes: dict[str, None] = {}
    ports: dict[tuple[str, int, int], None] = {}
    for rule in _rules(snap):
        for iface in (rule.in_interface, rule.out_interface):
            if isinstance(iface, Interface):
                if iface.name.endswith("+"):
                    prefixes.setdefault(iface.name[:-1], None)
                else:
                    names.setdefault(iface.name, None)
        if rule.protocol is not None and not rule.protocol.negated and rule.matches:
            proto = rule.protocol.name
            for lo, hi in _ports(rule):
                ports.setdefault((proto, lo, hi), None)
    return RuleFacts(tuple(names), tuple(prefixes), tuple(ports))


def known_interfaces(snap: Snapshot) -> tuple[list[str], list[str]]:
    """(names, wildcard prefixes): the host's interfaces (when ip-addr.json or --iface gives
    them) and every interface a rule names with ``-i``/``-o`` (``eth+``: the prefix ``eth``)."""
    names: dict[str, None] = {}
    # ip-addr.json and --iface name the host's interfaces; --host-addr adds an address to them
    # on the pseudo interface "host-addr" (natlens.snapshot.with_stated_host), which is no name
    # a packet can arrive on: alone, it names no interface
    if any(entry.get("ifname") != STATED_ADDRESSES for entry in snap.addresses or ()):
        names.update((name, None) for name in snap.host.interfaces if name != STATED_ADDRESSES)
    facts = rule_facts(snap)
    names.update((name, None) for name in facts.interfaces if name not in names)
    return list(names), list(facts.prefixes)


def interface_warning(snap: Snapshot, packet: Packet) -> str | None:
    """A warning when ``packet`` arrives on an interface the snapshot does not know; None when
    it is known, matched by a rule's wildcard, or nothing names any interface."""
    name = packet.in_interface
    if name is None:
        return None
    names, prefixes = known_interfaces(snap)
    if not names or name in names or any(name.startswith(p) for p in prefixes):
        return None
    return (f"interface {name!r} is not in the snapshot (known: {', '.join(names)}): the rules "
            "treat it as an unknown outside interface")


def _ports(rule: Rule) -> Iterator[tuple[int, int]]:
    """Destination port ranges a rule matches (``80``, ``80:90``, ``80,443``), unnegated only:
    the first option of each name in ``_PORT_OPTIONS`` across the rule's matches."""
    first: dict[str, Option] = {}
    for m in rule.matches:
        for opt in m.options:
            if opt.name in _PORT_OPTIONS and opt.name not in first:
                first[opt.name] = opt
    for name in _PORT_OPTIONS:
        found = first.get(name)
        if found is None or found.negated:
            continue
        for part in found.value.split(","):
            lo, _, hi = part.partition(":")
            if is_decimal(lo) and (not hi or is_decimal(hi)):
                yield int(lo), int(hi or lo)


def protocol_hint(snap: Snapshot, packet: Packet) -> str | None:
    """"did you mean --proto udp?" when ``packet``'s destination port is published by Docker or
    matched by a rule for other protocols only; None otherwise (or without a port)."""
    port, proto = packet.dport, packet.proto
    if port is None:
        return None
    published: dict[str, None] = {}
    matched: dict[str, None] = {}
    inventory = snap.inventory
    if inventory is not None:
        for container in inventory.running:
            for binding in container.ports:
                if port in binding.host_ports:
                    published.setdefault(binding.proto.value, None)
    for name, lo, hi in rule_facts(snap).ports:
        if lo <= port <= hi:
            matched.setdefault(name, None)
    seen = {**published, **matched}
    if not seen or proto in seen:
        return None
    others = " or ".join(seen)
    what = "published" if published else "matched by the rules"
    return f"port {port} is {what} for {others} only, not {proto}: did you mean --proto {others}?"


def relative_to_snapshot(trace: Trace, snap: Snapshot) -> Trace:
    """``trace`` with each step's ``file:line`` relative to the snapshot folder
    (``iptables-save.txt:12`` after a header naming the folder); unchanged for a single file."""
    folder = snap.path
    if not os.path.isdir(folder):
        return trace
    prefix = os.path.join(folder, "")

    def cut(steps: tuple[Step, ...]) -> tuple[Step, ...]:
        return tuple(replace(s, where=s.where[len(prefix):])
                     if s.where is not None and s.where.startswith(prefix) else s
                     for s in steps)

    return replace(trace, steps=cut(trace.steps),
                   branches=tuple(replace(b, steps=cut(b.steps)) for b in trace.branches))
