"""What an audit reports: ``Finding`` (with ``Severity`` and a ``RuleRef`` to blame), the stable
finding kinds of DESIGN.md with their help texts, and the ``AuditContext`` checks read from.

A check is a plain function ``check_x(ctx: AuditContext) -> Iterator[Finding]``; the registry of
checks (``CHECKS``) and ``audit()`` live in ``natlens.audit``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from natlens.audit._index import TableIndex, ruleset_index
from natlens.graph import ChainGraph, build
from natlens.model import Family, Rule, Ruleset, TableName
from natlens.serialize import rule_to_save
from natlens.snapshot import Snapshot
from natlens.textsafe import terminal

__all__ = ["KINDS", "AuditContext", "Finding", "KindInfo", "RuleRef", "Severity"]


class Severity(str, Enum):
    """How bad a finding is; ordered ``LOW < MEDIUM < HIGH``.

    >>> Severity.HIGH > Severity.MEDIUM > Severity.LOW
    True
    >>> max([Severity.LOW, Severity.HIGH]).value
    'high'
    """

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """0 for low, 1 for medium, 2 for high."""
        return _RANK[self.value]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_RANK = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True, slots=True)
class KindInfo:
    """A finding kind: one-line title and the help text reports show (SARIF rule help)."""

    title: str
    help: str


KINDS: Mapping[str, KindInfo] = MappingProxyType({
    "stale": KindInfo(
        "DNAT to an address no container holds",
        "A DNAT rule sends traffic to an address that no container (running or stopped) has: "
        "usually left behind by a removed container or a daemon crash. Delete the rule or "
        "restart the Docker daemon so it rewrites its chains. Also a MASQUERADE left behind "
        "for a Docker bridge that no longer exists: its '! -o BRIDGE' then matches every "
        "interface and rewrites whatever traffic now comes from the network."),
    "shadowed": KindInfo(
        "Published port caught first by another rule",
        "Traffic for a published port meets an earlier rule (DNAT, REDIRECT, DROP, ...) before "
        "Docker's own rule, so it never reaches the container. Remove or narrow the earlier rule."),
    "mismatch": KindInfo(
        "DNAT for a published port points elsewhere",
        "The DNAT serving a container's published port sends it to another address or port than "
        "the container publishes. Recreate the container or fix the rule."),
    "missing": KindInfo(
        "Published port without rules",
        "A running container publishes a port but no DNAT (or no FORWARD accept) serves it, so "
        "connections fail from every interface it is published to (one that another "
        "interface still reaches is filtered, not missing). Restart the Docker daemon or "
        "recreate the container, or accept the DNATed connection in the forward policy that "
        "drops it. "
        "Low: a port the container asks for (HostConfig.PortBindings) that Docker never "
        "published, as on an --internal network, and that nothing serves."),
    "ineffective": KindInfo(
        "Rule never sees the traffic it is written for",
        "The rule cannot apply as intended: it sits where the packets it names never arrive "
        "(e.g. a DOCKER-USER or nft forward rule on a host port, which the forward hook only "
        "sees after DNAT rewrote it; an INPUT allow for a published port, whose packets are "
        "forwarded and never reach INPUT; or an ACCEPT that a raw-table DROP such as Docker "
        "28's direct-routing drop refuses first), is passed over by earlier accepts, or jumps "
        "to a chain that does not exist. "
        "Match the port before DNAT (-m conntrack --ctorigdstport, nft ct original "
        "proto-dst), move the rule into DOCKER-USER (or below the jump to it), declare the "
        "chain, or delete rules for an interface that is gone for good. An allow placed after "
        "a catch-all drop of the same chain is a dead-rule, not this."),
    "exposed": KindInfo(
        "Container port reachable from outside",
        "A container port is reachable from other hosts although it is published on loopback "
        "only or not published at all: by routing to the container's address, or (loopback "
        "bindings) by sending to 127.0.0.1 through this host, which Docker's DNAT accepts from "
        "any interface. Drop direct routing to containers in raw PREROUTING (as Docker 28+ "
        "does), drop 127.0.0.0/8 from other interfaces in raw PREROUTING, remove "
        "the DNAT that serves it, or publish it on purpose; a container on the host network "
        "belongs on a bridge network."),
    "bypass": KindInfo(
        "Published port bypasses INPUT rules",
        "A published port is reachable although INPUT rules would refuse the host port: DNAT "
        "sends the traffic through FORWARD, never INPUT. Filter it in DOCKER-USER instead. "
        "Also a port that a rule refuses in one family (IPv4) and that the other family's "
        "binding serves from the same interface."),
    "duplicate": KindInfo(
        "Rule repeated",
        "The same rule appears more than once; the later copy never matches anything the first "
        "did not. Daemon restarts and scripts re-run without checking pile such copies up. "
        "Delete the extra copies."),
    "unreachable-chain": KindInfo(
        "Chain that no packet can reach",
        "Rules jump to this chain, but only from chains that no built-in chain reaches, so no "
        "packet ever enters it. Jump to its callers from a built-in chain, or delete the "
        "unused chains."),
    "loop": KindInfo(
        "Chains jump in a loop",
        "The chains jump to each other in a cycle. The kernel refuses such a table once a "
        "built-in chain reaches the cycle (iptables-restore fails with 'Too many levels of "
        "links'); an unreached cycle loads, and breaks the first jump into it. Break the "
        "cycle."),
    "unused-chain": KindInfo(
        "Chain no rule jumps to",
        "A user-defined chain no rule jumps or goes to: its rules never run. Delete it or add "
        "the missing jump."),
    "dead-rule": KindInfo(
        "Rule fully covered by an earlier rule",
        "An earlier rule of the same chain matches every packet this rule would match and ends "
        "their way through the chain, so this rule never matches. Delete it or move it up."),
    "hairpin-blocked": KindInfo(
        "Connection the rules let start but that cannot be established",
        "The first packet gets through, but the reply cannot come back through the same "
        "conntrack entry: a host process's connection to 127.0.0.1 or ::1 that OUTPUT's DNAT "
        "sends off the host keeps its loopback source (never routed off lo for IPv6; for IPv4 "
        "only with route_localnet=1 and a MASQUERADE), or a container reaches itself through "
        "the host's DNAT without SNAT. Use the container's address, the host's address, or "
        "the userland proxy; for IPv4 Docker's route_localnet + MASQUERADE setup. Also a "
        "published port that other hosts reach but the containers of its own network cannot "
        "(the exposure map refuses every cell from that network): INPUT refusing the bridge's "
        "hairpin to docker-proxy, --icc=false without the userland proxy, isolation rules."),
    "split-backend": KindInfo(
        "Rules in both iptables-legacy and iptables-nft",
        "The host has rules in both netfilter backends (legacy x_tables and nf_tables). The "
        "kernel runs both rule sets, but each iptables command shows only one of them. Move all "
        "rules to one backend (the one Docker uses) and flush the other."),
})
"""The stable finding kinds (DESIGN.md) with their titles and help texts."""


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule to blame: table, chain, 1-based index, its text and where it was read.

    Index 0 stands for the chain itself (for chain-level findings such as ``unused-chain``):
    ``text`` and ``line`` are then those of the chain's declaration (``:NAME - [0:0]``).
    """

    table: str
    chain: str
    index: int
    text: str
    source: str | None = None
    line: int | None = None
    family: str = Family.IPV4.value
    json_path: str | None = None
    """An nft rule's place in ``nft -j list ruleset`` (``$.nftables[12].rule``), None else."""

    @classmethod
    def of(cls, rule: Rule, table: TableName | str, index: int,
           family: Family = Family.IPV4) -> RuleRef:
        """The reference for ``rule`` at ``index`` (1-based) in its chain of ``table``."""
        origin = rule.origin
        return cls(
            table=TableName(table).value,
            chain=rule.chain,
            index=index,
            text=rule_to_save(rule, counters=False),
            source=origin.source if origin is not None else None,
            line=origin.line if origin is not None else None,
            family=family.value,
        )

    @property
    def where(self) -> str:
        """``nat PREROUTING #2`` (``ip6 nat PREROUTING #2`` for an IPv6 rule; ``#0``: the chain;
        an nft rule: ``inet filter forward #12``, its table's family named, the index its
        handle)."""
        head = "ip6 " if self.family == Family.IPV6.value and " " not in self.table else ""
        return f"{head}{self.table} {self.chain} #{self.index}"

    def to_dict(self) -> dict[str, Any]:
        """``{"table", "chain", "index", "text", "family", "source", "line"}``, plus
        ``json_path`` for an nft rule."""
        out = {"table": self.table, "chain": self.chain, "index": self.index,
               "text": self.text, "family": self.family, "source": self.source,
               "line": self.line}
        if self.json_path is not None:
            out["json_path"] = self.json_path
        return out


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong, with the rule to blame (if one is) and a one-line fix."""

    kind: str
    severity: Severity
    message: str
    proto: str | None = None
    host_port: int | None = None
    container: str | None = None
    rule: RuleRef | None = None
    related: tuple[RuleRef, ...] = ()
    fix: str | None = None
    cis: str | None = None
    packet: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r} (known: {', '.join(KINDS)})")

    def sort_key(self) -> tuple[Any, ...]:
        """Severity (high first), then family, table, chain, rule index; global findings first."""
        r = self.rule
        where: tuple[Any, ...] = ((0, "", 0, "", 0) if r is None else
                                  (1, r.family, _TABLE_ORDER.get(r.table, 9), r.chain, r.index))
        return (-self.severity.rank, *where, self.kind, self.message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (DESIGN.md): ``kind, severity, message, proto, host_port, container,
        rule`` plus ``related, fix, cis, packet``."""
        return {
            "kind": self.kind,
            "severity": self.severity.value,
            "message": self.message,
            "proto": self.proto,
            "host_port": self.host_port,
            "container": self.container,
            "rule": None if self.rule is None else self.rule.to_dict(),
            "related": [r.to_dict() for r in self.related],
            "fix": self.fix,
            "cis": self.cis,
            "packet": None if self.packet is None else dict(self.packet),
        }

    def __str__(self) -> str:
        """``[high] stale: nat DOCKER #1: message``, escaped for a terminal."""
        where = f"{self.rule.where}: " if self.rule is not None else ""
        return terminal(f"[{self.severity.value}] {self.kind}: {where}{self.message}")


_TABLE_ORDER = {t.value: i for i, t in enumerate(TableName)}


@dataclass
class AuditContext:
    """What checks read: the snapshot, its table indexes and chain graphs (built on first use)
    and room for the Docker inventory and a prepared simulator (set by ``audit`` when
    available)."""

    snapshot: Snapshot
    inventory: object | None = None
    simulator: object | None = None
    _graphs: dict[Family, ChainGraph] = field(default_factory=dict, init=False, repr=False)
    _index: dict[Family, dict[str, TableIndex]] = field(default_factory=dict, init=False,
                                                         repr=False)
    derived: dict[str, object] = field(default_factory=dict, init=False, repr=False,
                                       compare=False)
    """Values checks derive from the context once and share (e.g. the Docker view)."""

    def rulesets(self) -> Iterator[Ruleset]:
        """The IPv4 then the IPv6 ruleset, each only when it has tables."""
        for rs in (self.snapshot.ruleset, self.snapshot.ruleset6):
            if rs.tables:
                yield rs

    def graph(self, family: Family) -> ChainGraph:
        """The networkx chain graph of the ``family`` ruleset (built once; the checks read the
        lighter ``index``)."""
        g = self._graphs.get(family)
        if g is None:
            g = self._graphs[family] = build(self.snapshot.rules_for(family), labels=False)
        return g

    def index(self, family: Family) -> Mapping[str, TableIndex]:
        """Table name → the index (rule targets, chain graph) of that table of the ``family``
        ruleset, built once for every check, in one pass over the rules."""
        found = self._index.get(family)
        if found is None:
            found = self._index[family] = ruleset_index(self.snapshot.rules_for(family))
        return found
