"""Write a Ruleset back out: iptables-save text, or a JSON-ready dict.

The save form follows iptables-save (iptables/iptables-save.c, ``print_rule4``): ``[p:b]`` counters,
``-A CHAIN``, then ``-s -d -i -o -p -f`` with ``!`` before the negated option, the matches in
order with their options in the module's print order, then ``-j``/``-g`` and the target's
options. Strings that need it are double-quoted with backslash escapes (``xtables_save_string``).
"""

from __future__ import annotations

from typing import Any

from natlens.model import Chain, Match, Option, Rule, Ruleset, Table, Target
from natlens.parse.tokens import needs_quotes, quote

__all__ = ["ip_part", "rule_to_save", "ruleset_to_dict", "rule_to_dict", "to_save"]

_STRING_OPTIONS = frozenset({"--comment", "--log-prefix", "--nflog-prefix", "--string",
                             "--hex-string", "--helper", "--timeout"})


def _option_text(opt: Option) -> str:
    parts = ["!", opt.name] if opt.negated else [opt.name]
    # Option.quoted tells of one argument: an unknown module's option named like a string
    # option may hold several, and forcing quotes on all of them would not be a fixpoint.
    force = opt.quoted and len(opt.args) == 1
    for arg in opt.args:
        if opt.name in _STRING_OPTIONS:
            parts.append(quote(arg, force=force))
        elif needs_quotes(arg) and (not arg or any(c in arg for c in " \t\"'\\")):
            parts.append(quote(arg))
        else:
            parts.append(arg)
    return " ".join(parts)


def _match_text(match: Match) -> str:
    head = f"-m {match.module}"
    if not match.options:
        return head
    if match.known and match.module == "string":
        return head + " " + " ".join(_pattern_text(o) if o.name in _PATTERNS
                                     and len(o.args) == 1 else _option_text(o)
                                     for o in match.options)
    return head + " " + " ".join(_option_text(o) for o in match.options)


_PATTERNS = frozenset({"--string", "--hex-string"})


def _pattern_text(opt: Option) -> str:
    """libxt_string.c ``print_string``/``print_hex_string``: the pattern always in double
    quotes, a backslash before ``"`` and ``\\`` only (not before ``'``, which
    ``xtables_save_string`` escapes)."""
    escaped = opt.args[0].replace("\\", "\\\\").replace('"', '\\"')
    return f'{"! " if opt.negated else ""}{opt.name} "{escaped}"'


def _target_text(target: Target, goto: bool) -> str:
    head = f"{'-g' if goto else '-j'} {target.name}"
    if not target.options:
        return head
    return head + " " + " ".join(_option_text(o) for o in target.options)


def ip_part(rule: Rule) -> list[str]:
    """The rule's ``-s -d -i -o -p -f`` options as iptables-save prints them."""
    parts: list[str] = []
    for flag, addr in (("-s", rule.source), ("-d", rule.destination)):
        if addr is not None:
            parts.append(f"{'! ' if addr.negated else ''}{flag} {addr.text}")
    for flag, iface in (("-i", rule.in_interface), ("-o", rule.out_interface)):
        if iface is not None:
            parts.append(f"{'! ' if iface.negated else ''}{flag} {iface.name}")
    if rule.protocol is not None and rule.protocol.name != "all":
        parts.append(f"{'! ' if rule.protocol.negated else ''}-p {rule.protocol.name}")
    if rule.fragment is not None:
        parts.append("-f" if rule.fragment else "! -f")
    return parts


def rule_to_save(rule: Rule, *, counters: bool = True) -> str:
    """One rule as iptables-save prints it (``[p:b] -A CHAIN ...``)."""
    parts: list[str] = []
    if counters and rule.counters is not None:
        parts.append(str(rule.counters))
    parts.append(f"-A {rule.chain}")
    parts.extend(ip_part(rule))
    parts.extend(_match_text(m) for m in rule.matches)
    if rule.target is not None:
        parts.append(_target_text(rule.target, rule.goto))
    return " ".join(parts)


def _chain_decl(chain: Chain, counters: bool) -> str | None:
    if chain.builtin and chain.policy is None and chain.origin is None:
        return None  # a built-in chain the input never declared: restore keeps its policy
    policy = chain.policy if chain.builtin and chain.policy else "-"
    if chain.counters is None:
        return f":{chain.name} {policy}"
    return f":{chain.name} {policy} {chain.counters if counters else '[0:0]'}"


def _table_lines(table: Table, counters: bool, comments: bool) -> list[str]:
    lines: list[str] = list(table.comments_before) if comments else []
    lines.append(f"*{table.name.value}")
    for chain in table.chains:
        decl = _chain_decl(chain, counters)
        if decl is not None:
            lines.append(decl)
    for chain in table.chains:
        for rule in chain.rules:
            missing = rule.unknown - {"counters"}  # counters are not part of the rule
            text = rule_to_save(rule, counters=counters and "counters" not in rule.unknown)
            if missing:
                # A listing did not show everything: restoring a guess would change the rule.
                unknown = ", ".join(sorted(missing))
                text = f"# natlens: not restorable, unknown {unknown}: {text}"
            elif counters and "counters" in rule.unknown:
                # Rounded (1234K) or absent counters: left out rather than guessed.
                lines.append("# natlens: counters of the next rule unknown (rounded or not "
                             "listed); left out")
            lines.append(text)
    lines.append("COMMIT")
    if comments:
        lines.extend(table.comments_after)
    return lines


def to_save(ruleset: Ruleset, *, counters: bool = True, comments: bool = True) -> str:
    """The ruleset as iptables-save text (``comments``: keep the ``#`` lines read with it).

    Rules with parts the source could not tell (``Rule.unknown``, from ``iptables -L``
    listings) are written as ``# natlens: not restorable ...`` comment lines, never guessed.
    """
    lines: list[str] = []
    if ruleset.format == "listing":
        partial = sum(1 for t in ruleset.tables for r in t.rules if r.unknown - {"counters"})
        noun = "rule" if partial == 1 else "rules"
        verb = "is" if partial == 1 else "are"
        lines.append(f"# natlens: converted from an iptables -L listing ({ruleset.source}); "
                     f"{partial} {noun} could not be reconstructed in full and {verb} "
                     "commented out")
    for table in ruleset.tables:
        lines.extend(_table_lines(table, counters, comments))
    if comments:
        lines.extend(ruleset.comments_after)
    return "\n".join(lines) + "\n" if lines else ""


def _options(options: tuple[Option, ...]) -> list[dict[str, Any]]:
    return [{"name": o.name, "args": list(o.args), "negated": o.negated} for o in options]


def rule_to_dict(rule: Rule, index: int | None = None) -> dict[str, Any]:
    """A JSON-ready dict of one rule (``index``: its 1-based position in the chain)."""

    def neg(value: object, negated: bool) -> dict[str, Any] | None:
        return None if value is None else {"value": str(value), "negated": negated}

    out: dict[str, Any] = {"chain": rule.chain}
    if index is not None:
        out["index"] = index
    out.update(
        source=neg(rule.source.text, rule.source.negated) if rule.source else None,
        destination=neg(rule.destination.text, rule.destination.negated)
        if rule.destination else None,
        in_interface=neg(rule.in_interface.name, rule.in_interface.negated)
        if rule.in_interface else None,
        out_interface=neg(rule.out_interface.name, rule.out_interface.negated)
        if rule.out_interface else None,
        protocol=neg(rule.protocol.name, rule.protocol.negated) if rule.protocol else None,
        fragment=rule.fragment,
        matches=[{"module": m.module, "known": m.known, "options": _options(m.options)}
                 for m in rule.matches],
        target=None if rule.target is None else {
            "name": rule.target.name, "kind": rule.target.kind.value,
            "options": _options(rule.target.options)},
        goto=rule.goto,
        counters=None if rule.counters is None else {
            "packets": rule.counters.packets, "bytes": rule.counters.bytes},
        unknown=sorted(rule.unknown),
        text=rule_to_save(rule, counters=False),
        origin=None if rule.origin is None else {
            "source": rule.origin.source, "line": rule.origin.line},
    )
    return out


def ruleset_to_dict(ruleset: Ruleset) -> dict[str, Any]:
    """A JSON-ready dict of the whole ruleset."""
    return {
        "family": ruleset.family.value,
        "source": ruleset.source,
        "format": ruleset.format,
        "backend": ruleset.backend,
        "version": ruleset.version,
        "legacy_tables_present": ruleset.legacy_tables_present,
        "notes": list(ruleset.notes),
        "tables": [
            {
                "name": table.name.value,
                "chains": [
                    {
                        "name": chain.name,
                        "builtin": chain.builtin,
                        "policy": chain.policy,
                        "counters": None if chain.counters is None else {
                            "packets": chain.counters.packets, "bytes": chain.counters.bytes},
                        "rules": [rule_to_dict(r, i) for i, r in enumerate(chain.rules, 1)],
                    }
                    for chain in table.chains
                ],
            }
            for table in ruleset.tables
        ],
    }
