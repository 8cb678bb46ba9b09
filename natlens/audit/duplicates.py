"""Duplicate rules: the same rule twice in a chain, or the same NAT rewrite in a chain and in a
chain it jumps to.

Rules are compared as iptables-save prints them, ignoring counters and where they were read.
Rules with stateful or random matches (``statistic``, ``limit``, ``hashlimit``, ``recent``,
``connlimit``, ``quota``, ...) are never duplicates: each copy keeps its own state or draws its
own chance, so two copies do differ. Daemon restarts and re-run scripts that use ``-A``/``-I``
without ``-C`` pile copies up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import networkx as nx

from natlens.audit._rules import dport_of, proto_of
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.model import Family, Rule, Table

__all__ = ["STATEFUL_MATCHES", "check_duplicate_rules", "check_duplicate_nat"]

STATEFUL_MATCHES = frozenset({
    "statistic", "limit", "hashlimit", "recent", "connlimit", "quota", "quota2", "nth",
    "random", "connbytes", "rateest", "time", "cluster", "bpf", "u32",
})
"""Matches whose result depends on state, chance or time (two copies of a rule differ)."""

_NAT_REWRITES = frozenset({"DNAT", "SNAT", "REDIRECT", "NETMAP", "MASQUERADE"})


def _body(rule: Rule) -> tuple[object, ...]:
    """The rule without counters and chain: what makes two rules the same rule (the fields
    ``Rule`` equality compares, matches as ``normalised`` has them, in a tuple: building a new
    ``Rule`` per rule is slow on big rulesets)."""
    return (rule.source, rule.destination, rule.in_interface, rule.out_interface, rule.protocol,
            rule.fragment, tuple(replace(m, implicit=False) if m.implicit else m
                                 for m in rule.matches),
            rule.target, rule.goto, rule.unknown)


def _comparable(rule: Rule) -> bool:
    return not rule.unknown and all(
        m.known and m.module not in STATEFUL_MATCHES for m in rule.matches)


def _nat_port(rule: Rule, table: Table) -> tuple[str | None, int | None]:
    if table.name.value == "nat" and rule.target_name in ("DNAT", "REDIRECT"):
        return proto_of(rule), dport_of(rule)
    return proto_of(rule), None


def check_duplicate_rules(ctx: AuditContext) -> Iterator[Finding]:
    """A rule that repeats an earlier rule of the same chain (low: the copy is redundant).

    >>> from natlens.audit import audit_text
    >>> [str(f) for f in audit_text('''*filter
    ... :INPUT ACCEPT [0:0]
    ... [5:300] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
    ... [0:0] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
    ... COMMIT
    ... ''', check_duplicate_rules)]
    ['[low] duplicate: filter INPUT #2: repeats filter INPUT #1']
    """
    for rs in ctx.rulesets():
        tool = "ip6tables" if rs.family is Family.IPV6 else "iptables"
        for table in rs.tables:
            for chain in table.chains:
                first: dict[tuple[object, ...], int] = {}
                for index, rule in enumerate(chain.rules, 1):
                    if not _comparable(rule):
                        continue
                    body = _body(rule)
                    earlier = first.setdefault(body, index)
                    if earlier == index:
                        continue
                    original = RuleRef.of(chain.rules[earlier - 1], table.name, earlier,
                                          rs.family)
                    proto, port = _nat_port(rule, table)
                    yield Finding(
                        kind="duplicate", severity=Severity.LOW,
                        message=f"repeats {original.where}",
                        proto=proto, host_port=port,
                        rule=RuleRef.of(rule, table.name, index, rs.family),
                        related=(original,),
                        fix=f"delete the copy: {tool} -t {table.name.value} -D {chain.name} "
                            f"{index}",
                    )


def _docker_chain(name: str) -> bool:
    return name.startswith("DOCKER") and name != "DOCKER-USER"


def check_duplicate_nat(ctx: AuditContext) -> Iterator[Finding]:
    """The same NAT rewrite (DNAT, SNAT, REDIRECT, ...) in a chain and in a chain it reaches,
    e.g. a hand-made PREROUTING DNAT repeating Docker's DNAT in chain DOCKER. The copy outside
    Docker's chains is blamed (else the one evaluated first); the other never sees the first
    packet of a connection.

    >>> from natlens.audit import audit_text
    >>> [str(f) for f in audit_text('''*nat
    ... :PREROUTING ACCEPT [0:0]
    ... :DOCKER - [0:0]
    ... -A PREROUTING -p tcp -m tcp --dport 8082 -j DNAT --to-destination 172.17.0.4:80
    ... -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
    ... -A DOCKER -p tcp -m tcp --dport 8082 -j DNAT --to-destination 172.17.0.4:80
    ... COMMIT
    ... ''', check_duplicate_nat)]
    ['[low] duplicate: nat PREROUTING #1: repeats the DNAT of nat DOCKER #1 (tcp/8082)']
    """
    for rs in ctx.rulesets():
        graph = ctx.graph(rs.family)
        for table in rs.tables:
            g = graph[table.name.value]
            seen: dict[tuple[object, ...], list[tuple[str, int, Rule]]] = {}
            for chain in table.chains:
                for index, rule in enumerate(chain.rules, 1):
                    if rule.target_name in _NAT_REWRITES and _comparable(rule):
                        seen.setdefault(_body(rule), []).append((chain.name, index, rule))
            for copies in seen.values():
                chains_of = [c for c, _, _ in copies]
                if len(set(chains_of)) < 2:
                    continue
                # pairs (a, b): a's chain reaches b's chain (a is evaluated first)
                for ca, ia, ra in copies:
                    for cb, ib, rb in copies:
                        if ca == cb or not (ca in g and cb in g and nx.has_path(g, ca, cb)):
                            continue
                        blame, other = ((cb, ib, rb), (ca, ia, ra)) if (
                            _docker_chain(ca) and not _docker_chain(cb)) else (
                            (ca, ia, ra), (cb, ib, rb))
                        other_ref = RuleRef.of(other[2], table.name, other[1], rs.family)
                        proto, port = _nat_port(blame[2], table)
                        what = f" ({proto}/{port})" if proto and port else ""
                        yield Finding(
                            kind="duplicate", severity=Severity.LOW,
                            message=f"repeats the {blame[2].target_name} of {other_ref.where}"
                                    f"{what}",
                            proto=proto, host_port=port,
                            rule=RuleRef.of(blame[2], table.name, blame[1], rs.family),
                            related=(other_ref,),
                            fix=f"delete the copy in {blame[0]} (-t {table.name.value} -D "
                                f"{blame[0]} {blame[1]})",
                        )
