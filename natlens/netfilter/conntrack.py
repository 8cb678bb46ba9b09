"""Whether connection tracking runs at all in the namespace a snapshot describes.

Since Linux 4.10 conntrack's hooks are registered in a network namespace only while something
needs them (``nf_ct_netns_get``): a NAT target, a conntrack-based match or target, an nft ``ct``
expression or NAT statement. The nat table itself does not (``iptable_nat``/``nft_chain_nat``
register the NAT core's hooks only), and without a conntrack entry the NAT core skips every nat
chain (``nf_nat_inet_fn``: no ct, nothing to map). So a snapshot whose rules need no conntrack
has nat chains that never see a packet — unless something outside it (other nft tables, IPVS,
Open vSwitch) turns conntrack on, which is why natlens states this as an assumption.

Each iptables family counts for itself (``par->family``); native nftables rules count for the
families their table sees (``natlens.netfilter.nftchains.nft_needs_conntrack``: ``ct``
expressions, NAT statements...; an inet table for both).
"""

from __future__ import annotations

from collections.abc import Iterable

from natlens.model import Ruleset, TableName, TargetKind
from natlens.netfilter.pipeline import HookPipeline, NatStep, Pipeline

__all__ = ["CONNTRACK_MATCHES", "CONNTRACK_TARGETS", "needs_conntrack", "without_nat"]

CONNTRACK_MATCHES = frozenset({"conntrack", "state", "connmark", "connbytes", "connlimit",
                               "connlabel", "helper", "cluster"})
"""Match modules whose checkentry calls ``nf_ct_netns_get`` (net/netfilter/xt_*.c)."""

CONNTRACK_TARGETS = frozenset({"SNAT", "DNAT", "MASQUERADE", "REDIRECT", "NETMAP", "CONNMARK",
                               "CONNSECMARK", "SYNPROXY", "CLUSTERIP"})
"""Targets whose checkentry calls ``nf_ct_netns_get`` (``CT`` does too, unless ``--notrack``)."""


def _rule_needs(rule_matches: Iterable[str], target: str | None, notrack: bool) -> bool:
    if any(m in CONNTRACK_MATCHES for m in rule_matches):
        return True
    if target in CONNTRACK_TARGETS:
        return True
    return target == "CT" and not notrack


def needs_conntrack(rulesets: Iterable[Ruleset | None]) -> bool:
    """Whether any rule of ``rulesets`` (one IP family's rule sources) turns conntrack on, or
    may: a ruleset that does not show every table and chain (``Ruleset.coverage``, a paste)
    may hold such a rule where it is not shown, and a target natlens does not know in the nat
    table is a NAT extension (xtables-addons' FULLCONENAT, DNETMAP), whose checkentry needs
    conntrack as NAT targets do."""
    for ruleset in rulesets:
        if ruleset is None:
            continue
        if not ruleset.coverage.whole:
            return True
        for table in ruleset.tables:
            nat = table.name is TableName.NAT
            for chain in table.chains:
                for rule in chain.rules:
                    target = rule.target
                    if _rule_needs((m.module for m in rule.matches),
                                   target.name if target is not None else None,
                                   target is not None and target.get("--notrack") is not None):
                        return True
                    if nat and target is not None and target.kind is TargetKind.UNKNOWN:
                        return True  # a NAT extension natlens does not know (FULLCONENAT...)
    return False


def without_nat(pipeline: Pipeline) -> Pipeline:
    """``pipeline`` without its NAT steps (what runs when conntrack is off)."""
    hooks = {}
    for name, hp in pipeline.hooks.items():
        groups = tuple(g for g in (tuple(e for e in group if not isinstance(e, NatStep))
                                   for group in hp.groups) if g)
        hooks[name] = HookPipeline(hp.hook, groups)
    return Pipeline(pipeline.version, hooks)
