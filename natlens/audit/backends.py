"""Split backends: rules in both iptables-legacy (x_tables) and iptables-nft (nf_tables).

The kernel runs both rule sets, one after the other at each hook, but ``iptables`` shows only the
backend it is built for. ``natlens snapshot`` saves the other backend's rules next to the main
ones (``iptables-legacy-save.txt`` or ``iptables-nft-save.txt``, and the ip6tables ones; older
snapshots: ``iptables-save.other-backend.txt``) and records in ``meta.json`` which backend that
is (``other_backend``) and whether it holds rules (``other_backend_has_rules``); the loader reads
them into ``Snapshot.other_backend``. The finding says what those rules do to packets
(``natlens.audit.backend_effects``: the same packets traced with and without them). Without
the dumps, iptables-nft's own warning (``# Warning: iptables-legacy tables present, use
iptables-legacy to see them``) still tells.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from natlens.audit.backend_effects import BackendEffect, backend_effects
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, tool
from natlens.model import BUILTIN_CHAINS, Family, Ruleset
from natlens.netfilter import Simulator
from natlens.snapshot import Snapshot

__all__ = ["OTHER_BACKEND_FILES", "check_split_backend", "holds_rules"]

OTHER_BACKEND_FILES = {
    Family.IPV4: "iptables-save.other-backend.txt",
    Family.IPV6: "ip6tables-save.other-backend.txt",
}
"""Files ``natlens snapshot`` writes for the other backend (``natlens.capture``)."""


def holds_rules(ruleset: Ruleset) -> bool:
    """Whether a ruleset does anything: a rule, a user chain, or a policy other than ACCEPT.

    >>> from natlens import parse_save
    >>> holds_rules(parse_save("*filter\\n:INPUT ACCEPT [0:0]\\nCOMMIT\\n"))
    False
    >>> holds_rules(parse_save("*filter\\n:INPUT DROP [0:0]\\nCOMMIT\\n"))
    True
    """
    for table in ruleset.tables:
        for chain in table.chains:
            if chain.rules or not chain.builtin or chain.policy not in (None, "ACCEPT"):
                return True
            if chain.name not in BUILTIN_CHAINS[table.name]:
                return True
    return False


def _other_backend(meta: dict[str, object], ruleset: Ruleset) -> str:
    other = meta.get("other_backend")
    if isinstance(other, str) and other:
        return other
    if ruleset.backend == "nf_tables":
        return "legacy"
    if ruleset.backend == "legacy":
        return "nf_tables"
    return "other"


def _first_rule(ruleset: Ruleset) -> RuleRef | None:
    for table in ruleset.tables:
        for chain in table.chains:
            if chain.rules:
                return RuleRef.of(chain.rules[0], table.name, 1, ruleset.family)
    return None


def _flush(ruleset: Ruleset, program: str) -> list[list[str]]:
    """The commands that empty every table of ``ruleset``: built-in policies back to ACCEPT,
    then ``-F`` (flush every chain) and ``-X`` (delete every user chain), per iptables(8)."""
    argvs: list[list[str]] = []
    for table in ruleset.tables:
        t = table.name.value
        argvs.extend([program, "-t", t, "-P", c.name, "ACCEPT"] for c in table.chains
                     if c.builtin and c.policy not in (None, "ACCEPT"))
        argvs.append([program, "-t", t, "-F"])
        argvs.append([program, "-t", t, "-X"])
    return argvs


def check_split_backend(ctx: AuditContext) -> Iterator[Finding]:
    """Rules in the backend the main dump does not show (high), or iptables-nft's warning that
    legacy tables exist when their rules were not captured (medium).

    >>> from natlens.audit import audit_text
    >>> found = audit_text('''# Warning: iptables-legacy tables present, use iptables-legacy
    ... *filter
    ... :INPUT ACCEPT [0:0]
    ... COMMIT
    ... ''', check_split_backend)
    >>> for f in found: print(f)  # doctest: +NORMALIZE_WHITESPACE
    [medium] split-backend: iptables-legacy tables are present besides these iptables rules;
    natlens has not seen them
    """
    snap = ctx.snapshot
    meta = snap.meta
    copies = {f: r for f, r in ((Family.IPV4, snap.other_backend),
                                (Family.IPV6, snap.other_backend6)) if r is not None}
    for family in (Family.IPV4, Family.IPV6):
        main = snap.rules_for(family)
        name = "ip6tables" if family is Family.IPV6 else "iptables"
        other = copies.get(family)
        if other is not None and holds_rules(other):
            backend = snap.other_backend_name or _other_backend(meta, main)
            count = other.rule_count
            effects = _effects(snap, other, backend)
            what = ("; " + "; ".join(e.describe() for e in effects)) if effects else \
                "; natlens found no packet whose fate they change (they may still mark, count " \
                "or log)"
            yield Finding(
                kind="split-backend", severity=Severity.HIGH,
                message=f"the {backend} backend holds {name} rules too ({count} "
                        f"rule{'' if count == 1 else 's'} in {Path(other.source).name}): "
                        f"the kernel applies both rule sets, iptables shows only one{what}",
                rule=_first_rule(other),
                fix=command(*_flush(other, tool(family, backend))),
                packet=effects[0].packet.to_dict() if effects else None,
            )
        elif main.legacy_tables_present and other is None:
            yield Finding(
                kind="split-backend", severity=Severity.MEDIUM,
                message=f"iptables-legacy tables are present besides these {name} rules; "
                        "natlens has not seen them",
            )
    if meta.get("other_backend_has_rules") is True and not copies:
        backend = _other_backend(meta, snap.ruleset)
        yield Finding(
            kind="split-backend", severity=Severity.HIGH,
            message=f"meta.json says the {backend} backend holds rules too, but the snapshot "
                    "has no copy of them: the kernel applies both rule sets",
        )


def _effects(snap: Snapshot, other: Ruleset, backend: str) -> list[BackendEffect]:
    """Packets the other backend's tables change (natlens.audit.backend_effects)."""
    full = snap.simulator
    alone = Simulator(full.host, snap.ruleset, snap.ruleset6, backend=snap.backend,
                      nft=snap.nft)
    source = "iptables-legacy" if backend == "legacy" else "iptables-nft"
    return list(backend_effects(full, alone, other, source))
