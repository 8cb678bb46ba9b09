"""Split backends: rules in both iptables-legacy (x_tables) and iptables-nft (nf_tables).

The kernel runs both rule sets, one after the other at each hook, but ``iptables`` shows only the
backend it is built for. ``natlens snapshot`` saves the other backend's rules next to the main
ones (``iptables-save.other-backend.txt``, ``ip6tables-save.other-backend.txt``) and records in
``meta.json`` which backend that is (``other_backend``) and whether it holds rules
(``other_backend_has_rules``). Without those, iptables-nft's own warning
(``# Warning: iptables-legacy tables present, use iptables-legacy to see them``) still tells.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.errors import NatlensError
from natlens.model import BUILTIN_CHAINS, Family, Ruleset
from natlens.snapshot import load_rules, read_text

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


def _tool(family: Family, backend: str) -> str:
    base = "ip6tables" if family is Family.IPV6 else "iptables"
    return f"{base}-{'legacy' if backend == 'legacy' else 'nft'}-save"


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
    folder = Path(snap.path) if snap.path not in ("", "-", "<string>", "<stdin>") else None
    if folder is not None and not folder.is_dir():
        folder = None
    meta = snap.meta
    copies = {f: folder / n for f, n in OTHER_BACKEND_FILES.items()
              if folder is not None and (folder / n).is_file()}
    for family in (Family.IPV4, Family.IPV6):
        main = snap.rules_for(family)
        name = "ip6tables" if family is Family.IPV6 else "iptables"
        path = copies.get(family)
        other = _read_other(path, family) if path is not None else None
        if other is not None and holds_rules(other):
            backend = _other_backend(meta, main)
            count = other.rule_count
            tool = _tool(family, backend).removesuffix("-save")
            yield Finding(
                kind="split-backend", severity=Severity.HIGH,
                message=f"the {backend} backend holds {name} rules too ({count} "
                        f"rule{'' if count == 1 else 's'} in {path.name if path else '?'}): "
                        "the kernel applies both rule sets, iptables shows only one",
                rule=_first_rule(other),
                fix=f"move the rules to one backend and flush the other ({tool} -t TABLE -F, "
                    "then -X, for each table)",
            )
        elif main.legacy_tables_present and other is None:
            yield Finding(
                kind="split-backend", severity=Severity.MEDIUM,
                message=f"iptables-legacy tables are present besides these {name} rules; "
                        "natlens has not seen them",
                fix=f"check {_tool(family, 'legacy')}; keep one backend only",
            )
    if meta.get("other_backend_has_rules") is True and not copies:
        backend = _other_backend(meta, snap.ruleset)
        yield Finding(
            kind="split-backend", severity=Severity.HIGH,
            message=f"meta.json says the {backend} backend holds rules too, but the snapshot "
                    "has no copy of them: the kernel applies both rule sets",
            fix=f"inspect them with {_tool(Family.IPV4, backend)}; keep one backend only",
        )


def _read_other(path: Path, family: Family) -> Ruleset:
    text, source = read_text(path)
    try:
        return load_rules(text, source=source, strict=False, family=family)
    except NatlensError as exc:
        raise NatlensError(f"{path}: {exc}") from None
