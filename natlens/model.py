"""The rule model every part of natlens shares: Ruleset → Table → Chain → Rule.

The shapes follow iptables itself (iptables(8), iptables-extensions(8)): a rule has the fixed
IP part (``-s -d -i -o -p -f``, each negatable), a sequence of matches (``-m MODULE --opt ARG``)
and at most one target (``-j``/``-g``). Options of matches and targets are kept as parsed tokens
with their negation, in iptables-save order; what they mean is decided by the simulator.

All values are frozen, slotted dataclasses; collections are tuples. Every rule and chain remembers
where it came from (file, line, original text).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

__all__ = [
    "BUILTIN_CHAINS",
    "IPNetwork",
    "VERDICT_TARGETS",
    "Address",
    "Chain",
    "Counters",
    "Family",
    "Interface",
    "Match",
    "Option",
    "Origin",
    "Protocol",
    "Rule",
    "Ruleset",
    "Table",
    "TableName",
    "Target",
    "TargetKind",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Family(str, Enum):
    """Address family of a ruleset: iptables (IPv4) or ip6tables (IPv6)."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"


class TableName(str, Enum):
    """The five netfilter tables, in the order iptables-save prints them for a fresh host."""

    RAW = "raw"
    MANGLE = "mangle"
    NAT = "nat"
    FILTER = "filter"
    SECURITY = "security"


BUILTIN_CHAINS: Mapping[TableName, tuple[str, ...]] = MappingProxyType(
    {
        TableName.RAW: ("PREROUTING", "OUTPUT"),
        TableName.MANGLE: ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
        TableName.NAT: ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
        TableName.FILTER: ("INPUT", "FORWARD", "OUTPUT"),
        TableName.SECURITY: ("INPUT", "FORWARD", "OUTPUT"),
    }
)

VERDICT_TARGETS = frozenset({"ACCEPT", "DROP", "RETURN", "QUEUE"})


class TargetKind(str, Enum):
    """What a rule's target is: a verdict, a user chain, a known extension, or unknown."""

    VERDICT = "verdict"
    CHAIN = "chain"
    EXTENSION = "extension"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a rule or chain was read: file name, 1-based line number and the line's text."""

    source: str
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class Counters:
    """Packet and byte counters (``[packets:bytes]``)."""

    packets: int
    bytes: int

    def __str__(self) -> str:
        return f"[{self.packets}:{self.bytes}]"


@dataclass(frozen=True, slots=True)
class Address:
    """``[!] -s/-d NETWORK``."""

    network: IPNetwork
    negated: bool = False
    mask: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    """Only for a non-contiguous netmask (``10.0.0.1/255.0.255.0``); ``network`` is then the
    masked address as a host network."""

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether ``ip`` satisfies this condition (negation applied)."""
        if ip.version != self.network.version:
            inside = False
        elif self.mask is not None:
            mask = int(self.mask)
            inside = int(ip) & mask == int(self.network.network_address) & mask
        else:
            inside = ip in self.network
        return inside != self.negated

    @property
    def text(self) -> str:
        """The address as iptables-save prints it (``10.0.0.0/8``)."""
        if self.mask is not None:
            return f"{self.network.network_address}/{self.mask}"
        return str(self.network)

    def __str__(self) -> str:
        return f"{'!' if self.negated else ''}{self.text}"


@dataclass(frozen=True, slots=True)
class Interface:
    """``[!] -i/-o NAME``; a trailing ``+`` is a prefix wildcard."""

    name: str
    negated: bool = False

    def matches(self, iface: str | None) -> bool:
        """Whether a packet on ``iface`` satisfies this condition (negation applied)."""
        if iface is None:
            hit = False
        elif self.name.endswith("+"):
            hit = iface.startswith(self.name[:-1])
        else:
            hit = iface == self.name
        return hit != self.negated

    def __str__(self) -> str:
        return f"{'!' if self.negated else ''}{self.name}"


@dataclass(frozen=True, slots=True)
class Protocol:
    """``[!] -p NAME`` with the name as iptables-save prints it (``tcp``, ``udp``, ``47``)."""

    name: str
    negated: bool = False

    def __str__(self) -> str:
        return f"{'!' if self.negated else ''}{self.name}"


@dataclass(frozen=True, slots=True)
class Option:
    """One option of a match or target: ``[!] --name ARG...`` (name with its dashes)."""

    name: str
    args: tuple[str, ...] = ()
    negated: bool = False
    quoted: bool = field(default=False, compare=False)
    """Whether the source quoted the argument although it did not need quotes."""

    @property
    def value(self) -> str:
        """The arguments joined by a space (most options take exactly one)."""
        return " ".join(self.args)


def _find(options: tuple[Option, ...], name: str) -> Option | None:
    for opt in options:
        if opt.name == name:
            return opt
    return None


@dataclass(frozen=True, slots=True)
class Match:
    """``-m MODULE [options]``.

    ``known`` is False for a module natlens has no spec for (kept verbatim, uncertain when
    simulated). ``implicit`` marks a protocol match loaded by ``-p tcp --dport`` without ``-m``.
    """

    module: str
    options: tuple[Option, ...] = ()
    known: bool = True
    implicit: bool = field(default=False, compare=False)

    def get(self, name: str) -> Option | None:
        """The option called ``name`` (e.g. ``"--dport"``), or None."""
        return _find(self.options, name)


@dataclass(frozen=True, slots=True)
class Target:
    """``-j NAME [options]`` or ``-g NAME``; ``kind`` tells a verdict from a chain or extension."""

    name: str
    options: tuple[Option, ...] = ()
    kind: TargetKind = TargetKind.EXTENSION

    def get(self, name: str) -> Option | None:
        """The option called ``name`` (e.g. ``"--to-destination"``), or None."""
        return _find(self.options, name)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a chain.

    ``unknown`` names the fields the source could not tell (an ``iptables -L`` listing without
    ``-v`` does not show interfaces or counters): ``"in_interface"``, ``"out_interface"``,
    ``"counters"``, ``"source"``, ``"destination"`` (unresolvable host names), ``"matches"``,
    ``"target_options"``. A consumer must treat those as unknown, not as absent.
    """

    chain: str
    source: Address | None = None
    destination: Address | None = None
    in_interface: Interface | None = None
    out_interface: Interface | None = None
    protocol: Protocol | None = None
    fragment: bool | None = None
    """None: no ``-f``; True: ``-f``; False: ``! -f``."""
    matches: tuple[Match, ...] = ()
    target: Target | None = None
    goto: bool = False
    counters: Counters | None = None
    origin: Origin | None = field(default=None, compare=False)
    unknown: frozenset[str] = frozenset()

    def match(self, module: str) -> Match | None:
        """The first match of ``module``, or None."""
        for m in self.matches:
            if m.module == module:
                return m
        return None

    def option(self, name: str) -> Option | None:
        """The first match option called ``name`` across all matches, or None."""
        for m in self.matches:
            opt = m.get(name)
            if opt is not None:
                return opt
        return None

    @property
    def target_name(self) -> str | None:
        """The target's name, or None for a rule without target (counts only)."""
        return self.target.name if self.target else None

    @property
    def jumps_to_chain(self) -> bool:
        """True when the target is a user-defined chain (``-j CHAIN`` or ``-g CHAIN``)."""
        return self.target is not None and self.target.kind is TargetKind.CHAIN


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain: built-in (with a policy) or user-defined (policy None)."""

    name: str
    builtin: bool
    policy: str | None = None
    counters: Counters | None = None
    rules: tuple[Rule, ...] = ()
    origin: Origin | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)


@dataclass(frozen=True, slots=True)
class Table:
    """A table with its chains in the order they were declared.

    ``comments_before`` holds the ``#`` lines just before ``*table`` (e.g. ``# Generated by``);
    ``comments_after`` those after its ``COMMIT`` (``# Completed on``); ``comments_inside`` any
    comment lines within the table's body.
    """

    name: TableName
    chains: tuple[Chain, ...] = ()
    comments_before: tuple[str, ...] = field(default=(), compare=False)
    comments_after: tuple[str, ...] = field(default=(), compare=False)
    comments_inside: tuple[str, ...] = field(default=(), compare=False)
    _index: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({}), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index = {chain.name: i for i, chain in enumerate(self.chains)}
        object.__setattr__(self, "_index", MappingProxyType(index))

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Chain:
        return self.chains[self._index[name]]

    def get(self, name: str) -> Chain | None:
        """The chain called ``name``, or None."""
        i = self._index.get(name)
        return None if i is None else self.chains[i]

    def __iter__(self) -> Iterator[Chain]:
        return iter(self.chains)

    @property
    def rules(self) -> Iterator[Rule]:
        """Every rule of every chain, chain by chain."""
        for chain in self.chains:
            yield from chain.rules


@dataclass(frozen=True, slots=True)
class Ruleset:
    """All tables of one family, as one ``iptables-save`` (or listing) describes them.

    ``backend`` is ``"nf_tables"``, ``"legacy"`` or None when the text does not say;
    ``legacy_tables_present`` records iptables-nft's warning that legacy tables exist too.
    ``notes`` carries lenient-mode warnings and what a listing could not tell.
    """

    family: Family = Family.IPV4
    tables: tuple[Table, ...] = ()
    source: str = field(default="<string>", compare=False)
    format: str = field(default="save", compare=False)
    backend: str | None = field(default=None, compare=False)
    version: str | None = field(default=None, compare=False)
    legacy_tables_present: bool = field(default=False, compare=False)
    comments_after: tuple[str, ...] = field(default=(), compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __contains__(self, name: object) -> bool:
        return any(t.name == name for t in self.tables)

    def __getitem__(self, name: TableName | str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    def get(self, name: TableName | str) -> Table | None:
        """The table called ``name``, or None when the ruleset does not have it."""
        for table in self.tables:
            if table.name == name:
                return table
        return None

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables)

    @property
    def rule_count(self) -> int:
        """Number of rules in all tables."""
        return sum(len(chain.rules) for table in self.tables for chain in table.chains)
