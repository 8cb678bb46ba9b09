"""The base chains each hook runs, from every rule source, in the kernel's order.

At each hook the kernel runs every registered base chain by ascending priority, whatever its
table, family or tool (nft(8) "CHAINS", "OVERALL EVALUATION OF THE RULESET";
``net/netfilter/core.c``). iptables tables are base chains at fixed priorities
(``include/uapi/linux/netfilter_ipv4.h``, ``NF_IP_PRI_*``): raw -300, mangle -150, nat DNAT
-100, filter 0, security 50, nat SNAT 100, the same for iptables-legacy (x_tables) and
iptables-nft (nf_tables); native nftables base chains bring their own priority.

nat-type chains are not hooks of their own: the NAT core registers one hook per family at
-100 (PREROUTING, OUTPUT) and +100 (INPUT, POSTROUTING) and runs the nat chains from a private
list sorted by their priority, stopping at the first that sets up the connection's mapping
(``net/netfilter/nf_nat_core.c``, ``nf_nat_register_fn``, ``nf_nat_inet_fn``). A ``NatStep``
stands for that hook.

Among equal priorities the chain registered last runs first (``nf_hook_entries_grow``), which
a snapshot cannot tell. A ``Group`` holds the entries of one priority in the order guessed from
nft handles (a higher table, then chain, handle was registered later); the walk checks whether
the other order changes the outcome.

A walk is a sequence of ``Stage`` tuples: ``("hook", HOOK)`` runs a hook's pipeline;
``("route_in",)``, ``("route_out",)``, ``("reroute",)``, ``("after_post",)`` are routing decisions
(``natlens.netfilter.routing``); ``("deliver",)`` and ``("send",)`` end the walk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from natlens.model import Family
from natlens.netfilter.prepared import PreparedRuleset

__all__ = [
    "CONNTRACK_HOOKS",
    "CONNTRACK_PRIORITY",
    "HOOKS",
    "HOOK_TABLES",
    "NAT_MANIP",
    "BaseChain",
    "Entry",
    "Group",
    "HookPipeline",
    "NatStep",
    "Pipeline",
    "Source",
    "Stage",
    "build",
    "hook_stages",
    "iptables_base_chains",
    "iptables_priority",
    "iptables_source",
]

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")

HOOK_TABLES: dict[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "security", "nat"),
    "FORWARD": ("mangle", "filter", "security"),
    "OUTPUT": ("raw", "mangle", "nat", "filter", "security"),
    "POSTROUTING": ("mangle", "nat"),
}
"""iptables tables of each hook in the order the kernel runs them."""

NAT_MANIP = {"PREROUTING": "dst", "OUTPUT": "dst", "INPUT": "src", "POSTROUTING": "src"}
"""Which side of the connection the NAT step of a hook maps."""

NAT_PRIORITY = {"PREROUTING": -100, "OUTPUT": -100, "INPUT": 100, "POSTROUTING": 100}
"""Priority of the NAT core's hook (``NF_IP_PRI_NAT_DST`` / ``NF_IP_PRI_NAT_SRC``)."""

_TABLE_PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}

CONNTRACK_PRIORITY = -200
"""``NF_IP_PRI_CONNTRACK``: chains below it in PREROUTING and OUTPUT run before the packet has a
conntrack entry (``ct state`` / ``--ctstate`` read INVALID there)."""

CONNTRACK_HOOKS = ("PREROUTING", "OUTPUT")

Stage = tuple[str, ...]


class Source(str, Enum):
    """Where a base chain comes from (the ``source`` of a trace step, DESIGN.md)."""

    IPTABLES_NFT = "iptables-nft"
    IPTABLES_LEGACY = "iptables-legacy"
    IPTABLES = "iptables"
    """An iptables dump that does not say its backend."""
    NFT = "nft"


def iptables_source(backend: str | None) -> Source:
    """The source of an iptables dump from its backend (``Ruleset.backend``: ``nf_tables``,
    ``legacy`` or None)."""
    if backend == "nf_tables":
        return Source.IPTABLES_NFT
    if backend == "legacy":
        return Source.IPTABLES_LEGACY
    return Source.IPTABLES


NFT_SECURITY_PRIORITY = 150
"""iptables-nft registers the security table's chains at priority 150, not NF_IP_PRI_SECURITY
(50): iptables ``nft.c`` table definitions; ``nft list table ip security`` shows it. At INPUT
the security table then runs after nat's source NAT (100), not before it."""


def iptables_priority(table: str, hook: str, source: Source | None = None) -> int:
    """The priority of iptables table ``table`` at ``hook`` (``NF_IP_PRI_*``; the security table
    of ``Source.IPTABLES_NFT`` at ``NFT_SECURITY_PRIORITY``)."""
    if table == "nat":
        return NAT_PRIORITY[hook]
    if table == "security" and source is Source.IPTABLES_NFT:
        return NFT_SECURITY_PRIORITY
    return _TABLE_PRIORITY[table]


@dataclass(frozen=True, slots=True, eq=False)
class BaseChain:
    """One base chain registered at a hook.

    ``family`` is the table's nft family (``ip``, ``ip6``, ``inet``), ``type`` the chain type
    (``filter``, ``nat``, ``route``). ``registered`` guesses the registration order (greater:
    registered later, so run first among equal priorities). An iptables chain walks
    ``prepared.tables[table]`` starting at ``chain``; an nft chain carries its prepared nft
    table in ``nft``. ``trivial`` is True when the chain cannot change the packet or its fate
    (no rules, policy accept).
    """

    source: Source
    family: str
    table: str
    chain: str
    hook: str
    priority: int
    type: str
    registered: tuple[int, ...] = (0,)
    prepared: PreparedRuleset | None = None
    nft: object | None = None
    trivial: bool = False

    @property
    def name(self) -> str:
        """``ip filter FORWARD`` (nft's way to name a chain: family, table, chain)."""
        return f"{self.family} {self.table} {self.chain}"

    @property
    def label(self) -> str:
        """The name with its source: ``ip filter FORWARD (iptables-legacy)``."""
        return f"{self.name} ({self.source.value})"


@dataclass(frozen=True, slots=True)
class NatStep:
    """The NAT core's hook: the nat chains of ``hook`` in their own priority order (none at a
    hook that has no nat chain: the step then only applies existing connections' mappings)."""

    hook: str
    priority: int
    groups: tuple[tuple[BaseChain, ...], ...]

    @property
    def trivial(self) -> bool:
        """True when no nat chain can change anything."""
        return all(c.trivial for g in self.groups for c in g)

    @property
    def name(self) -> str:
        """``NAT (nat chains: ip nat PREROUTING, ...)``."""
        return "NAT (" + (", ".join(c.name for g in self.groups for c in g)
                          or "no nat chain") + ")"

    @property
    def chains(self) -> tuple[BaseChain, ...]:
        """All nat chains, in order."""
        return tuple(c for g in self.groups for c in g)


Entry = BaseChain | NatStep
Group = tuple[Entry, ...]
"""Entries of one priority, in the guessed kernel order (the later registered first)."""


@dataclass(frozen=True, slots=True)
class HookPipeline:
    """What one hook runs: groups of equal priority, by ascending priority."""

    hook: str
    groups: tuple[Group, ...]

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Every entry in order."""
        return tuple(e for g in self.groups for e in g)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The hook pipelines of one IP version (4 or 6)."""

    version: int
    hooks: Mapping[str, HookPipeline]

    def chains(self) -> Iterable[BaseChain]:
        """Every base chain (nat chains included), hook by hook."""
        for hp in self.hooks.values():
            for entry in hp.entries:
                if isinstance(entry, NatStep):
                    yield from entry.chains
                else:
                    yield entry


def _grouped(entries: Iterable[Entry]) -> tuple[Group, ...]:
    def order(e: Entry) -> tuple[int, tuple[int, ...]]:
        reg = e.registered if isinstance(e, BaseChain) else (0,)
        return e.priority, tuple(-r for r in reg)

    groups: list[list[Entry]] = []
    for e in sorted(entries, key=order):
        if groups and groups[-1][0].priority == e.priority:
            groups[-1].append(e)
        else:
            groups.append([e])
    return tuple(tuple(g) for g in groups)


def build(version: int, chains: Iterable[BaseChain]) -> Pipeline:
    """The pipeline of IP version ``version`` from base chains of any source (those of another
    family are left out; ``inet`` chains serve both)."""
    family = "ip" if version == 4 else "ip6"
    per_hook: dict[str, list[BaseChain]] = {h: [] for h in HOOKS}
    for c in chains:
        if c.family in (family, "inet") and c.hook in per_hook:
            per_hook[c.hook].append(c)
    hooks: dict[str, HookPipeline] = {}
    # The first nat chain of a family registers the NAT core at all four hooks
    # (``nf_nat_register_fn``): a hook without nat chains still un-NATs existing connections.
    any_nat = any(c.type == "nat" for found in per_hook.values() for c in found)
    for hook, found in per_hook.items():
        plain: list[Entry] = [c for c in found if c.type != "nat"]
        nat = [c for c in found if c.type == "nat"]
        if any_nat and hook in NAT_PRIORITY:
            groups = _grouped(nat)
            plain.append(NatStep(hook, NAT_PRIORITY[hook],
                                 tuple(tuple(c for c in g if isinstance(c, BaseChain))
                                       for g in groups)))
        hooks[hook] = HookPipeline(hook, _grouped(plain))
    return Pipeline(version, MappingProxyType(hooks))


def iptables_base_chains(prepared: PreparedRuleset, source: Source,
                         registered: Mapping[str, tuple[int, ...]] | None = None,
                         ) -> Iterable[BaseChain]:
    """The built-in chains of an iptables ruleset as base chains at their fixed priorities.

    ``registered`` maps a table name to its registration guess (from the nft handles of the
    same table in ``nft -j list ruleset``, for iptables-nft); iptables-legacy tables get the
    lowest guess (their modules load first on most hosts).
    """
    family = "ip6" if prepared.family is Family.IPV6 else "ip"
    for table, chains in prepared.tables.items():
        for hook in HOOKS:
            if table not in HOOK_TABLES[hook]:
                continue
            chain = chains.get(hook)
            if chain is None or not chain.builtin:
                continue
            yield BaseChain(
                source=source, family=family, table=table, chain=hook, hook=hook,
                priority=iptables_priority(table, hook, source),
                type="nat" if table == "nat" else "filter",
                registered=(registered or {}).get(table, (0,)),
                prepared=prepared,
                trivial=not chain.rules and chain.policy in (None, "ACCEPT"),
            )


def hook_stages(name: str) -> tuple[Stage, ...]:
    """The stages of hook ``name``."""
    return (("hook", name),)
