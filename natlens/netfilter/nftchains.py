"""Native nftables base chains as pipeline entries, without counting iptables-nft twice.

iptables-nft keeps its tables in nf_tables too, so ``nft -j list ruleset`` shows them, with
their xtables matches opaque (``xt``). When an iptables-save dump of the nf_tables backend is in
the snapshot, it is the source for the ip/ip6 tables it names and those tables are left out of
the nft JSON (their nft handles still tell when they were registered; a chain the dump shows
in part is completed from its JSON copy: ``natlens.netfilter.nftcomplete``). Every other table of
family ip, ip6 or inet becomes base chains at its own priority (nft(8) "CHAINS"); bridge, arp,
netdev and dormant tables, and hooks other than the five IP ones (``ingress``), are not
simulated and are reported as such (``NftPipelineParts.skipped``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from natlens.model import Family, Ruleset
from natlens.netfilter.pipeline import BaseChain, Source
from natlens.nft import CompiledTable, NftRuleset, compile_table

__all__ = ["NftPipelineParts", "iptables_nft_tables", "nft_holds_iptables", "nft_needs_conntrack",
           "nft_parts"]

_CT_STATEMENTS = frozenset({"dnat", "snat", "masquerade", "redirect", "ct helper",
                            "ct timeout", "ct expectation", "ct count", "flow", "synproxy"})
"""Statements whose init calls ``nf_ct_netns_get`` (net/netfilter/nft_nat.c, nft_ct.c,
nft_masq.c, nft_redir.c, nft_connlimit.c, nft_flow_offload.c, nft_synproxy.c)."""
_XT_CONNTRACK = frozenset({"conntrack", "state", "connmark", "connbytes", "connlimit",
                           "connlabel", "helper", "cluster", "SNAT", "DNAT", "MASQUERADE",
                           "REDIRECT", "NETMAP", "CONNMARK", "CONNSECMARK", "SYNPROXY", "CT"})

_HOOKS = {"prerouting": "PREROUTING", "input": "INPUT", "forward": "FORWARD",
          "output": "OUTPUT", "postrouting": "POSTROUTING"}


@dataclass(frozen=True, slots=True)
class NftPipelineParts:
    """What an nft ruleset adds to the pipelines.

    ``chains``: base chains to simulate. ``registered``: for each (family, table) that
    iptables-nft also dumps, its nft handle (the registration guess of the iptables chains).
    ``dropped``: ``family name`` of the tables read from iptables-save instead.
    ``skipped``: why other tables or chains are not simulated.
    """

    chains: tuple[BaseChain, ...]
    registered: Mapping[tuple[str, str], tuple[int, ...]]
    dropped: tuple[str, ...]
    skipped: tuple[str, ...]
    compiled: Mapping[tuple[str, str], CompiledTable]


def iptables_nft_tables(backend: str | None, ruleset: Ruleset | None,
                        ruleset6: Ruleset | None, other: Ruleset | None = None,
                        other6: Ruleset | None = None) -> set[tuple[str, str]]:
    """The (family, table) pairs the nf_tables iptables dumps name: the main dumps when
    ``backend`` (or their header) says nf_tables, the other backend's when theirs does."""
    other_backend = {"nf_tables": "legacy", "legacy": "nf_tables"}.get(backend or "")
    owned: set[tuple[str, str]] = set()
    for rs, fam, b in ((ruleset, "ip", backend), (ruleset6, "ip6", backend),
                       (other, "ip", other_backend), (other6, "ip6", other_backend)):
        if rs is not None and (rs.backend or b) == "nf_tables":
            owned.update((fam, t.name.value) for t in rs.tables)
    return owned


def nft_holds_iptables(ruleset: NftRuleset, *dumps: Ruleset | None) -> bool:
    """Whether every table of the iptables ``dumps`` (which do not say their backend) is in
    ``ruleset`` with its built-in chains: then the dumps are iptables-nft's, and their tables
    must not be counted twice."""
    shown = {(t.family.value, t.name, c.name) for t in ruleset.tables for c in t.chains}
    found = False
    for dump in dumps:
        if dump is None:
            continue
        fam = "ip6" if dump.family is Family.IPV6 else "ip"
        for table in dump.tables:
            builtin = [c.name for c in table.chains if c.builtin]
            if not builtin or any((fam, table.name.value, c) not in shown for c in builtin):
                return False
            found = True
    return found


def _mentions_ct(value: object) -> bool:
    if isinstance(value, Mapping):
        return any(k == "ct" or _mentions_ct(v) for k, v in value.items())
    if isinstance(value, tuple | list):
        return any(_mentions_ct(v) for v in value)
    return False


def nft_needs_conntrack(ruleset: NftRuleset, version: int,
                        skip: Iterable[tuple[str, str]] = ()) -> bool:
    """Whether a rule of a simulated table that sees IP ``version`` turns conntrack on for it:
    a ``ct`` expression (``ct state``, ``ct mark set``...), a NAT statement, a conntrack-based
    ``xt`` extension and the like (their init calls ``nf_ct_netns_get`` for the table's family;
    inet: both). Tables in ``skip`` (read from iptables-save instead) are not looked at."""
    left_out = set(skip)
    for table in ruleset.tables:
        if not table.simulated or not table.family.sees(version) \
                or (table.family.value, table.name) in left_out:
            continue
        for chain in table.chains:
            for rule in chain.rules:
                for st in rule.statements:
                    if st.kind in _CT_STATEMENTS or _mentions_ct(st.body):
                        return True
                    if st.kind == "xt" and isinstance(st.body, Mapping) \
                            and st.body.get("name") in _XT_CONNTRACK:
                        return True
    return False


def nft_parts(ruleset: NftRuleset, iptables_nft_tables: Iterable[tuple[str, str]],
              ) -> NftPipelineParts:
    """Base chains of ``ruleset`` minus the (family, table) pairs iptables-nft dumps.

    ``iptables_nft_tables`` holds ``("ip", "filter")``-like pairs of the iptables-save dumps
    made by the nf_tables backend. Tables are compiled once here (``natlens.nft.compile_table``).
    """
    owned = set(iptables_nft_tables)
    chains: list[BaseChain] = []
    registered: dict[tuple[str, str], tuple[int, ...]] = {}
    dropped: list[str] = []
    skipped: list[str] = []
    compiled: dict[tuple[str, str], CompiledTable] = {}
    for table in ruleset.tables:
        family = table.family.value
        key = (family, table.name)
        if key in owned:
            registered[key] = (table.handle,)
            dropped.append(f"{family} {table.name}")
            continue
        if not table.simulated:
            why = "dormant" if "dormant" in table.flags else f"family {family}"
            skipped.append(f"table {family} {table.name}: not simulated ({why})")
            continue
        ctable: CompiledTable | None = None
        for chain in table.base_chains():
            hook = _HOOKS.get(chain.hook or "")
            if hook is None:
                skipped.append(f"chain {family} {table.name} {chain.name}: hook {chain.hook} "
                               "not simulated")
                continue
            if ctable is None:
                ctable = compiled[key] = compile_table(table)
            chains.append(BaseChain(
                source=Source.NFT, family=family, table=table.name, chain=chain.name,
                hook=hook, priority=chain.priority if chain.priority is not None else 0,
                type=chain.type or "filter", registered=(table.handle, chain.handle),
                nft=ctable,
                trivial=not chain.rules and chain.policy != "drop",
            ))
    return NftPipelineParts(tuple(chains), registered, tuple(dropped), tuple(skipped), compiled)
