"""Audit: run every check over a snapshot and collect what is wrong.

A check is a plain function ``check_x(ctx: AuditContext) -> Iterator[Finding]``, one family of
checks per module; ``CHECKS`` lists them all, in the order they run. ``audit`` returns the
findings sorted by severity (high first), then table, chain and rule index.

Families here read the rules only: ``graph_checks`` (loops, unused/unreachable chains, jumps to
missing chains, accepts before DOCKER-USER), ``duplicates``, ``coverage`` (dead rules),
``backends`` (split legacy/nft backends) and ``nft_chains`` (loops, unused and unreachable
chains, duplicates and accepts before DOCKER-USER in native nftables tables). Families that
correlate with Docker decide by simulation: ``docker_checks`` (stale, shadowed, mismatch,
missing, ineffective) and ``exposure`` (exposed, bypass); they read iptables and native nft
rules alike (``nft_refs`` names an nft rule and writes its fixes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from natlens.audit.backends import check_split_backend
from natlens.audit.connections import (
    check_hairpin_from_network,
    check_loopback_dnat,
    check_published_connections,
)
from natlens.audit.coverage import check_dead_rules
from natlens.audit.docker_checks import (
    check_docker_user_ports,
    check_published_ports,
    check_stale_dnat,
    check_unknown_interfaces,
)
from natlens.audit.duplicates import check_duplicate_nat, check_duplicate_rules
from natlens.audit.exposure import check_bypass, check_exposed
from natlens.audit.findings import KINDS, AuditContext, Finding, KindInfo, RuleRef, Severity
from natlens.audit.graph_checks import (
    check_docker_user_order,
    check_loops,
    check_missing_chains,
    check_unreachable_chains,
    check_unused_chains,
)
from natlens.audit.host_port_rules import check_input_allows, check_nft_forward_ports
from natlens.audit.leftovers import check_dead_dnat_first, check_leftover_masquerade
from natlens.audit.nft_chains import (
    check_nft_dead_rules,
    check_nft_docker_user_order,
    check_nft_duplicates,
    check_nft_loops,
    check_nft_unreachable_chains,
    check_nft_unused_chains,
)
from natlens.audit.reconcile import reconcile
from natlens.audit.unserved import check_raw_dropped_allows, check_unserved_requests
from natlens.model import Family, Ruleset
from natlens.parse.collector import collector_off
from natlens.snapshot import Snapshot, load_rules

__all__ = [
    "CHECKS",
    "DOCKER_CHECKS",
    "KINDS",
    "AuditContext",
    "Check",
    "Finding",
    "KindInfo",
    "RULE_CHECKS",
    "RuleRef",
    "Severity",
    "audit",
    "audit_text",
]

Check = Callable[[AuditContext], Iterator[Finding]]

RULE_CHECKS: tuple[Check, ...] = (
    check_split_backend,
    check_loops,
    check_missing_chains,
    check_unused_chains,
    check_unreachable_chains,
    check_docker_user_order,
    check_duplicate_rules,
    check_duplicate_nat,
    check_dead_rules,
    check_nft_loops,
    check_nft_unused_chains,
    check_nft_unreachable_chains,
    check_nft_docker_user_order,
    check_nft_duplicates,
    check_nft_dead_rules,
)
"""Checks that read the rules alone (iptables tables; native nft tables: ``nft_chains``)."""

DOCKER_CHECKS: tuple[Check, ...] = (
    check_stale_dnat,
    check_published_ports,
    check_docker_user_ports,
    check_nft_forward_ports,
    check_input_allows,
    check_unknown_interfaces,
    check_exposed,
    check_bypass,
    check_loopback_dnat,
    check_published_connections,
    check_hairpin_from_network,
    check_unserved_requests,
    check_raw_dropped_allows,
    check_leftover_masquerade,
    check_dead_dnat_first,
)
"""Checks that correlate the rules with Docker's inventory, by simulation."""

CHECKS: tuple[Check, ...] = RULE_CHECKS + DOCKER_CHECKS
"""Every check, in the order ``audit`` runs them."""


def audit(snapshot: Snapshot, checks: Iterable[Check] = CHECKS, *,
          inventory: object | None = None, exposure: object | None = None) -> list[Finding]:
    """Run ``checks`` over ``snapshot``; the findings sorted by severity, then rule position.
    ``exposure``: the snapshot's ``natlens.exposure.ExposureMap`` when the caller has it
    (checks that read the map build it otherwise)."""
    ctx = AuditContext(snapshot, inventory=inventory)
    if exposure is not None:
        ctx.derived["exposure"] = exposure
    findings: list[Finding] = []
    # The checks allocate millions of small acyclic objects (traces, steps, refs) next to the
    # snapshot's: without this, full collections that walk the whole ruleset take a third of
    # the time on big hosts (as in the parser, ``feed``).
    with collector_off():
        try:
            for check in checks:
                findings.extend(check(ctx))
        finally:
            # what the checks shared (indexes, traces) goes by reference counting, before the
            # collector is back on and would walk it once more
            del ctx
    return reconcile(sorted(findings, key=Finding.sort_key))


def audit_text(text: str, *checks: Check, strict: bool = True) -> list[Finding]:
    """Audit rule text (iptables-save, ``-S`` or a listing) with ``checks`` (default: all).

    Meant for examples and tests: the text is the whole snapshot (no host or Docker data).
    """
    ruleset = load_rules(text, strict=strict)
    if ruleset.family is Family.IPV6:
        snap = Snapshot(ruleset=Ruleset(Family.IPV4), ruleset6=ruleset)
    else:
        snap = Snapshot(ruleset=ruleset)
    return audit(snap, checks or CHECKS)
