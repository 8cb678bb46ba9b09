"""The rule model every part of natlens shares: Ruleset → Table → Chain → Rule.

The shapes follow iptables itself (iptables(8), iptables-extensions(8)): a rule has the fixed
IP part (``-s -d -i -o -p -f``, each negatable), a sequence of matches (``-m MODULE --opt ARG``)
and at most one target (``-j``/``-g``). Options of matches and targets are kept as parsed tokens
with their negation, in iptables-save order; what they mean is decided by the simulator.

All values are frozen, slotted dataclasses; collections are tuples. Every rule and chain remembers
where it came from (file, line, original text).

Read-only mappings (``types.MappingProxyType``: a table's chain index, a host's addresses, nft
expressions) are registered with ``copyreg`` here, so ``pickle`` and ``copy.deepcopy`` work on
every natlens value (a mappingproxy pickles as a plain dict wrapped again when loaded).
"""

from __future__ import annotations

import copyreg
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

__all__ = [
    "BUILTIN_CHAINS",
    "IPNetwork",
    "VERDICT_TARGETS",
    "Address",
    "Chain",
    "Counters",
    "Coverage",
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


def _read_only(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """A read-only view of ``items``: how a pickled or copied mappingproxy is rebuilt."""
    return MappingProxyType(items)


def _reduce_read_only(value: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _read_only, (dict(value),)


copyreg.pickle(MappingProxyType, _reduce_read_only)


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
    """Where a rule or chain was read: file name, 1-based line number and the line's text.

    The parser passes, in place of the text, the ``natlens.parse.lines.SourceLines`` of the
    whole input (anything with a ``line(number) -> str`` method): ``text`` then cuts the line
    out of it when read, so 700k origins share one text instead of holding 700k line strings
    (issue 13). Equality, hashing, ``repr``, ``replace`` and pickling all read ``text``: an
    origin made so is indistinguishable from one made with the string.
    """

    source: str
    line: int
    text: str


_ORIGIN_TEXT = Origin.__dict__["text"]  # the slot's member descriptor


def _origin_text(origin: Origin) -> str:
    text = _ORIGIN_TEXT.__get__(origin, Origin)
    return text if type(text) is str else text.line(origin.line)


setattr(Origin, "text", property(_origin_text, _ORIGIN_TEXT.__set__, doc="The line's text."))  # noqa: B010


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
class Coverage:
    """Which tables and chains a rule source shows, and what it says about the rest.

    A full ``iptables-save`` shows every table of its family (``tables`` None: a table it lacks
    does not exist). ``iptables -S`` and ``-L`` pastes show the tables they were run on
    (``tables``), sometimes only some chains of a table (``partial``: table name → the chains
    shown). A chain, or a table, that the input does not show is *not in the input*: neither
    empty nor missing. ``references`` keeps the reference counts of ``-L`` chain headers
    (``Chain X (N references)``, the kernel's count of jumps to the chain, whichever chains they
    are in); ``incomplete`` names chains whose rules the input shows only in part (the dumping
    tool failed to print some, ``diagnostics`` says why, as the tool printed it).
    """

    tables: frozenset[TableName] | None = None
    partial: tuple[tuple[TableName, frozenset[str]], ...] = ()
    references: tuple[tuple[TableName, str, int], ...] = ()
    incomplete: tuple[tuple[TableName, str, str], ...] = ()
    unknown_tables: tuple[tuple[TableName, str], ...] = ()
    """Tables the dumping tool could not print (``# Table `nat' is incompatible``), and why."""
    diagnostics: tuple[str, ...] = ()
    restore_tables: frozenset[TableName] | None = None
    """Restore text that iptables-save did not write (no ``# Generated by`` header or
    ``# Completed`` footer, not every table: ufw's ``user.rules``, a hand-written file): the
    tables it holds. Like a dump's, the tables it lacks are read as empty, but nothing says they
    are (iptables-save(8) prints every table that exists; this text need not): ``describe``
    names the tables shown and those read as empty instead of "every table"."""

    @property
    def whole(self) -> bool:
        """True when the input shows every table and chain in full (a plain iptables-save)."""
        return (self.tables is None and not self.partial and not self.incomplete
                and not self.unknown_tables)

    def shows_table(self, table: TableName | str) -> bool:
        """Whether the input tells what ``table`` holds (a full dump tells it for absent
        tables too: they do not exist)."""
        name = TableName(table)
        if any(t is name for t, _ in self.unknown_tables):
            return False
        return self.tables is None or name in self.tables

    def chains_shown(self, table: TableName | str) -> frozenset[str] | None:
        """The chains shown of a partly shown ``table``; None when every chain is shown."""
        name = TableName(table)
        for t, chains in self.partial:
            if t is name:
                return chains
        return None

    def shows_chain(self, table: TableName | str, chain: str) -> bool:
        """Whether the input tells what ``chain`` of ``table`` holds (False: not in the input,
        or only partly shown)."""
        if not self.shows_table(table):
            return False
        shown = self.chains_shown(table)
        if shown is not None and chain not in shown:
            return False
        return self.why_incomplete(table, chain) is None

    def why_incomplete(self, table: TableName | str, chain: str) -> str | None:
        """Why ``chain`` may hold rules the input does not show, or None."""
        name = TableName(table)
        for t, c, why in self.incomplete:
            if t is name and c == chain:
                return why
        return None

    def reference_count(self, table: TableName | str, chain: str) -> int | None:
        """The ``(N references)`` of the chain's ``-L`` header, when the input has one."""
        name = TableName(table)
        for t, c, n in self.references:
            if t is name and c == chain:
                return n
        return None

    def describe(self, present: tuple[TableName, ...] = ()) -> str:
        """One line: what the judgement rests on (``tables nat, filter (chains DOCKER-USER
        only); not in the input: raw, mangle, security``)."""
        if self.whole and self.restore_tables is not None:
            held = [t.value for t in TableName if t in self.restore_tables]
            empty = [t.value for t in TableName if t not in self.restore_tables]
            return (f"tables {', '.join(held) or 'none'} (restore text, not an iptables-save "
                    f"dump: {', '.join(empty)} read as empty)")
        if self.whole:
            return "every table (a full dump)"
        shown = sorted(self.tables, key=list(TableName).index) if self.tables is not None \
            else [t for t in TableName if t in present]
        parts = []
        for t in shown:
            chains = self.chains_shown(t)
            if chains is not None:
                parts.append(f"{t.value} (chains {', '.join(sorted(chains))} only)")
            else:
                parts.append(t.value)
        text = "tables " + (", ".join(parts) if parts else "none")
        if self.tables is not None:
            absent = [t.value for t in TableName if t not in self.tables]
            if absent:
                text += "; not in the input: " + ", ".join(absent)
        if self.unknown_tables:
            text += "; not printed by the dumping tool: " + ", ".join(
                t.value for t, _ in self.unknown_tables)
        if self.incomplete:
            text += "; shown in part: " + ", ".join(
                f"{t.value} {c}" for t, c, _ in self.incomplete)
        return text


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
    coverage: Coverage = field(default_factory=Coverage, compare=False)
    """Which tables and chains the input shows (``Coverage``; the default: all of them)."""

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
