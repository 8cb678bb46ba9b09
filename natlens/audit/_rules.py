"""Small helpers the check families share: walking chains, references, ports of a rule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from natlens.audit.findings import AuditContext, RuleRef
from natlens.inputs import is_decimal as _decimal
from natlens.model import Chain, Family, Rule, Ruleset, Table

__all__ = ["chain_ref", "chains", "dport_of", "normalised", "proto_of", "unconditional"]


def chains(ctx: AuditContext) -> Iterator[tuple[Ruleset, Table, Chain]]:
    """Every chain of every table of the IPv4 and IPv6 rulesets."""
    for rs in ctx.rulesets():
        for table in rs.tables:
            for chain in table.chains:
                yield rs, table, chain


def chain_ref(chain: Chain, table: Table, family: Family) -> RuleRef:
    """A reference to the chain itself: index 0, the text and line of its declaration."""
    origin = chain.origin
    text = origin.text.strip() if origin is not None else f":{chain.name} - [0:0]"
    return RuleRef(table=table.name.value, chain=chain.name, index=0, text=text,
                   source=origin.source if origin is not None else None,
                   line=origin.line if origin is not None else None, family=family.value)


def proto_of(rule: Rule) -> str | None:
    """The rule's ``-p`` protocol when it is positive (``tcp``), else None."""
    if rule.protocol is None or rule.protocol.negated or rule.protocol.name == "all":
        return None
    return rule.protocol.name


def dport_of(rule: Rule) -> int | None:
    """The single destination port a rule names (``--dport 8080``), else None."""
    opt = rule.option("--dport")
    if opt is None or opt.negated or len(opt.args) != 1 or not _decimal(opt.args[0]):
        return None
    return int(opt.args[0])


def unconditional(rule: Rule) -> bool:
    """Whether the rule matches every packet (no address, interface, protocol or match; comments
    do not count)."""
    return (rule.source is None and rule.destination is None and rule.in_interface is None
            and rule.out_interface is None and rule.fragment is None and not rule.unknown
            and (rule.protocol is None or rule.protocol.name == "all")
            and all(m.module == "comment" for m in rule.matches))


def normalised(rule: Rule) -> Rule:
    """The rule as a comparison key: no counters, and ``-p tcp --dport 80`` (implicit tcp match)
    equal to ``-p tcp -m tcp --dport 80`` (iptables-save prints both the same way)."""
    matches = tuple(replace(m, implicit=False) if m.implicit else m for m in rule.matches)
    return replace(rule, counters=None, matches=matches)
