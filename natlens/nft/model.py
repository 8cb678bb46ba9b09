"""nftables ruleset values: tables, chains, rules, sets and maps, stateful objects.

All values are frozen and slotted.

The shapes follow libnftables-json(5) (``nft -j list ruleset``) and nft(8) "TABLES", "CHAINS",
"SETS", "MAPS" and "STATEFUL OBJECTS". A rule keeps its statements as read-only JSON
(``Statement.body``: tuples, read-only mappings, strings, numbers, booleans, None) plus the nft
text rendered from them (``Rule.text``, see ``render.py``); the evaluator (``evaluate.py``)
compiles the JSON once per rule.

Priorities are numbers. Names (``filter``, ``dstnat + 10``) resolve as nft does
(``src/rule.c``: ``std_prios`` and ``bridge_std_prios``, ``std_prio_family_hook_compat``):
ip/ip6/inet raw -300, mangle -150, dstnat -100, filter 0, security 50, srcnat 100; bridge
dstnat -300, filter -200, out 100, srcnat 300.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from natlens.inputs import is_decimal
from natlens.nft.jsonvalue import MAPPINGS, Json
from natlens.nft.render import render_statement

__all__ = [
    "Json", "MAPPINGS", "Family", "HOOKS", "STD_PRIORITIES", "BRIDGE_STD_PRIORITIES",
    "Statement", "Rule", "Chain", "Element", "NftSet", "StatefulObject", "Flowtable", "Table",
    "NftRuleset",
    "priority_name", "resolve_priority",
]


class Family(str, Enum):
    """nftables address families (nft(8) "ADDRESS FAMILIES")."""

    IP = "ip"
    IP6 = "ip6"
    INET = "inet"
    BRIDGE = "bridge"
    ARP = "arp"
    NETDEV = "netdev"

    @property
    def simulated(self) -> bool:
        """ip, ip6 and inet tables take part in the IPv4/IPv6 hooks natlens simulates."""
        return self in (Family.IP, Family.IP6, Family.INET)

    def sees(self, version: int) -> bool:
        """Whether a table of this family sees IPv4 (4) or IPv6 (6) packets."""
        if self is Family.INET:
            return version in (4, 6)
        return (self is Family.IP and version == 4) or (self is Family.IP6 and version == 6)


HOOKS = ("prerouting", "input", "forward", "output", "postrouting", "ingress", "egress")

STD_PRIORITIES: tuple[tuple[str, int], ...] = (
    ("raw", -300), ("mangle", -150), ("dstnat", -100), ("filter", 0), ("security", 50),
    ("srcnat", 100),
)
BRIDGE_STD_PRIORITIES: tuple[tuple[str, int], ...] = (
    ("dstnat", -300), ("filter", -200), ("out", 100), ("srcnat", 300),
)
_L3 = frozenset({"ip", "ip6", "inet"})


def _name_allowed(name: str, family: str, hook: str | None) -> bool:
    """``std_prio_family_hook_compat`` (nft >= 1.0.9: dstnat on output, srcnat on input)."""
    if family == "bridge":
        return True
    if name == "filter":
        return family in _L3 or family in ("arp", "netdev")
    if name in ("raw", "mangle", "security"):
        return family in _L3
    if name == "dstnat":
        return family in _L3 and hook in ("prerouting", "output")
    if name == "srcnat":
        return family in _L3 and hook in ("postrouting", "input")
    return False


def priority_name(family: str, hook: str | None, priority: int) -> str:
    """How ``nft list`` prints a base chain priority: ``filter``, ``mangle + 10`` or ``-90``.

    >>> priority_name("inet", "prerouting", -140)
    'mangle + 10'
    >>> priority_name("ip", "output", -90)
    'dstnat + 10'
    """
    table = BRIDGE_STD_PRIORITIES if family == "bridge" else STD_PRIORITIES
    for name, value in table:
        if abs(priority - value) <= 10:
            if not _name_allowed(name, family, hook):
                break
            offset = priority - value
            if offset > 0:
                return f"{name} + {offset}"
            if offset < 0:
                return f"{name} - {-offset}"
            return name
    return str(priority)


def resolve_priority(text: str | int, family: str, hook: str | None) -> int:
    """A priority given as a number or a name with offset (``"dstnat"``, ``"filter + 10"``).

    Raises ``ValueError`` for an unknown name or a name not allowed for the family and hook.

    >>> resolve_priority("srcnat - 5", "inet", "postrouting")
    95
    """
    if isinstance(text, int):
        return text
    words = text.replace("+", " + ").replace("-", " - ").split()
    if not words:
        raise ValueError("empty priority")
    try:
        return int(text)
    except ValueError:
        pass
    name, rest = words[0], words[1:]
    table = dict(BRIDGE_STD_PRIORITIES if family == "bridge" else STD_PRIORITIES)
    if name not in table:
        raise ValueError(f"unknown priority name {name!r} (one of {', '.join(table)})")
    if not _name_allowed(name, family, hook):
        raise ValueError(f"priority {name!r} is not allowed in family {family} hook {hook}")
    value = table[name]
    if rest:
        if len(rest) != 2 or rest[0] not in "+-" or not is_decimal(rest[1]):
            raise ValueError(f"bad priority offset in {text!r}")
        value += int(rest[1]) if rest[0] == "+" else -int(rest[1])
    return value


@dataclass(frozen=True, slots=True)
class Statement:
    """One element of a rule's ``expr`` array: ``kind`` is its only key (``match``, ``jump``,
    ``dnat``, ``counter``...), ``body`` the value (None for ``{"accept": null}``). ``opaque``
    says why the statement was kept unread (lenient mode: a statement or expression nft does not
    read, ``unknown expression 'frob'``); the simulator treats it as uncertain."""

    kind: str
    body: Json = field(hash=False)
    opaque: str | None = None

    @property
    def text(self) -> str:
        """The statement as nft prints it (rendered on demand)."""
        return render_statement({self.kind: self.body})


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule of a chain. ``index`` is its 0-based position in the chain (evaluation order);
    ``handle`` the kernel's id (0 in normalised dumps); ``path`` its JSON path
    (``$.nftables[12].rule``) for error messages."""

    family: Family
    table: str
    chain: str
    index: int
    handle: int
    statements: tuple[Statement, ...]
    comment: str | None = None
    path: str = ""

    @property
    def text(self) -> str:
        """The rule as ``nft list ruleset`` prints it, comment included (rendered on demand:
        reading a 100k-rule ruleset does not pay for it)."""
        text = " ".join(s.text for s in self.statements)
        return f'{text} comment "{self.comment}"' if self.comment is not None else text

    @property
    def has_xt(self) -> bool:
        """True for iptables-nft compat expressions (arguments are not in the JSON)."""
        return any(s.kind == "xt" for s in self.statements)


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain. Base chains have ``type`` (filter, nat, route), ``hook``, ``priority`` (a
    number) and ``policy`` (accept, drop); regular chains have none of them."""

    family: Family
    table: str
    name: str
    handle: int
    rules: tuple[Rule, ...] = ()
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    devices: tuple[str, ...] = ()
    comment: str | None = None

    @property
    def is_base(self) -> bool:
        """A base chain is attached to a hook; a regular chain is reached by jump/goto."""
        return self.hook is not None

    @property
    def priority_text(self) -> str:
        """The priority as ``nft list`` prints it (``filter + 10``)."""
        if self.priority is None:
            return ""
        return priority_name(self.family.value, self.hook, self.priority)


@dataclass(frozen=True, slots=True)
class Element:
    """One set element: ``key`` is a value, ``{"prefix": …}``, ``{"range": […]}``,
    ``{"concat": […]}`` or ``"*"`` (catch-all); ``data`` the map value (a verdict for vmaps).
    ``timeout``/``expires`` are in seconds."""

    key: Json = field(hash=False)
    data: Json = field(default=None, hash=False)
    timeout: float | None = None
    expires: float | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class NftSet:
    """A named set or map (``map`` is its data type; ``"verdict"`` makes a verdict map).

    ``key_type`` holds one type name, or several for a concatenation
    (``("ipv4_addr", "inet_proto", "inet_service")``); with ``typeof`` sets it holds the
    expressions' rendered text. ``flags`` ⊂ {constant, interval, timeout, dynamic}."""

    family: Family
    table: str
    name: str
    handle: int
    key_type: tuple[str, ...]
    map: str | None = None
    flags: frozenset[str] = frozenset()
    elements: tuple[Element, ...] = ()
    timeout: float | None = None
    gc_interval: float | None = None
    size: int | None = None
    policy: str | None = None
    comment: str | None = None
    typeof: bool = False
    kind: str = "set"
    path: str = ""

    @property
    def is_map(self) -> bool:
        return self.map is not None

    @property
    def is_vmap(self) -> bool:
        return self.map == "verdict"

    @property
    def runtime_filled(self) -> bool:
        """Dynamic/timeout sets are filled by the packet path: their contents are runtime
        state, so a lookup that misses is not a real answer."""
        return bool(self.flags & {"dynamic", "timeout"})


@dataclass(frozen=True, slots=True)
class StatefulObject:
    """A named stateful object: ``kind`` is ``counter``, ``quota``, ``limit``, ``ct helper``,
    ``ct timeout``, ``ct expectation``, ``secmark``, ``synproxy``, ``tunnel``; ``attrs`` its
    JSON properties (``{"packets": 0, "bytes": 0}``, ``{"rate": 3, "per": "minute"}``)."""

    kind: str
    family: Family
    table: str
    name: str
    handle: int
    attrs: Mapping[str, Json] = field(hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Flowtable:
    """A flowtable (``flow add @ft`` offloads established flows past the forward hook)."""

    family: Family
    table: str
    name: str
    handle: int
    hook: str | None
    priority: int | None
    devices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Table:
    """A table with everything it holds. ``flags`` ⊂ {dormant, owner, persist}."""

    family: Family
    name: str
    handle: int
    chains: tuple[Chain, ...] = ()
    sets: tuple[NftSet, ...] = ()
    objects: tuple[StatefulObject, ...] = ()
    flowtables: tuple[Flowtable, ...] = ()
    flags: frozenset[str] = frozenset()
    comment: str | None = None
    source: str = ""
    """The file the table was read from (``nft-ruleset.json``), as ``NftRuleset.source``."""

    @property
    def simulated(self) -> bool:
        """ip/ip6/inet tables that are not dormant take part in the simulation."""
        return self.family.simulated and "dormant" not in self.flags

    @property
    def label(self) -> str:
        """``inet firewalld``: how traces name a table."""
        return f"{self.family.value} {self.name}"

    def chain(self, name: str) -> Chain | None:
        """The chain called ``name``, or None."""
        return next((c for c in self.chains if c.name == name), None)

    def set(self, name: str) -> NftSet | None:
        """The set or map called ``name`` (without ``@``), or None."""
        return next((s for s in self.sets if s.name == name), None)

    def base_chains(self) -> tuple[Chain, ...]:
        return tuple(c for c in self.chains if c.is_base)


@dataclass(frozen=True, slots=True)
class NftRuleset:
    """A whole ``nft -j list ruleset``: the tables in listing order, the nft version that
    printed it (None when unknown) and the ``json_schema_version`` (1 for every 0.9.1..1.1.x).
    ``warnings``: one line each (file and JSON path) for what lenient reading kept opaque or
    left out."""

    tables: tuple[Table, ...] = ()
    version: str | None = None
    schema_version: int | None = None
    source: str = "<string>"
    warnings: tuple[str, ...] = ()

    def table(self, family: str | Family, name: str) -> Table | None:
        fam = Family(family)
        return next((t for t in self.tables if t.family is fam and t.name == name), None)

    @property
    def not_simulated(self) -> tuple[Table, ...]:
        """Tables read but not simulated (bridge, arp, netdev, dormant)."""
        return tuple(t for t in self.tables if not t.simulated)

    def rules(self) -> tuple[Rule, ...]:
        """Every rule, table by table, chain by chain."""
        return tuple(r for t in self.tables for c in t.chains for r in c.rules)
