"""nftables: the model of ``nft -j list ruleset``, its JSON reader, rule text and evaluation.

Modules (data flows top to bottom; none imports the snapshot loader or the engine):

* ``model``      — ``NftRuleset`` > ``Table`` > ``Chain`` > ``Rule`` > ``Statement``; ``NftSet``
  (named sets and maps), ``Element``, ``StatefulObject``, ``Flowtable``; ``Family``;
  ``priority_name`` / ``resolve_priority`` (nft's standard priority names).
* ``json_reader`` — ``load(path)`` / ``loads(text, source)`` / ``read_ruleset(data, source)``
  → ``NftRuleset``; bad input raises ``natlens.errors.NftParseError`` whose one line names the
  file and the JSON path (``nft-ruleset.json: $.nftables[12].rule.expr[3].match.right: ...``);
  ``strict=False`` keeps a statement nft does not read as an opaque one, with a warning.
* ``shapes``     — the statements, expressions and objects nft's JSON parser reads, with the
  keys and value types of each (what ``json_reader`` checks).
* ``render``     — ``render_rule`` / ``render_statement`` / ``render_expr``: nft text as
  ``nft list ruleset`` prints it (``Rule.text`` renders on demand; 98.7% of the corpus's
  rules print exactly as nft lists them).
* ``jsonvalue``, ``datatypes``, ``lookup``, ``values`` — read-only JSON, data types, set/map
  indexes (dict + bisect, never expanded), what an expression reads from a ``Flow``.

Nothing here imports ``natlens.netfilter`` at import time (it imports this package); the NAT
rewrite of ``natlens.netfilter.targets`` is imported when a NAT statement is first compiled.
* ``evaluate``   — rules against a packet.
* ``masquerade`` — a plain ``masquerade`` rule's ``ip saddr``/``oifname`` as iptables'
  ``-s``/``-o`` (the engine reads Docker 29's networks from them).

API for the hook pipeline (the engine keeps the hook order; this package runs one table)::

    from natlens.nft import load, compile_table, NftContext, evaluate_rule, walk_chain

    ruleset = load("nft-ruleset.json")                 # NftRuleset
    for table in ruleset.tables:                       # table.simulated: ip/ip6/inet, not dormant
        ctable = compile_table(table)                  # once per snapshot (owns its caches)
        for chain in table.base_chains():              # chain.hook, chain.type, chain.priority
            ctx = NftContext(host, "prerouting", ctable, chain.priority or 0)
            # flow: a natlens.netfilter Flow (the packet as the hook sees it) or a Packet
            results = walk_chain(ctable, chain.name, flow, ctx)   # tuple[ChainResult, ...]
            # each: .verdict (NftVerdict ACCEPT/DROP/REJECT/QUEUE), .flow (after NAT/marks),
            # .steps (ChainStep: chain, index, handle, text, verdict, effects, matched —
            #   matched False: the rule acted, e.g. counted or set a mark, then a later match
            #   stopped it; index None: the policy or an implicit return), .uncertain, .policy,
            #   .probability (the product of the numgen chances on the way; 1.0 without)

    outcome = evaluate_rule(rule, flow, ctx)           # one rule -> RuleOutcome
    # outcome.matched: True | False | None (uncertain: outcome.branches, each with the
    # assumption it made in .uncertain, or its chance in .probability when a numgen chose);
    # .verdict: NftVerdict | None (None = next rule);
    # .target: chain of jump/goto; .flow: after the statements that ran; .effects; .why_not

Semantics the caller must keep (see ``evaluate``): accept ends only the current base chain;
drop/reject end the packet; nat-type chains run only for a connection's first packet and the
first NAT statement that binds wins (the pipeline orders them); ``ctx.priority`` below -200 in
prerouting/output makes ``ct state`` read invalid (other ct keys stop the rule); a family's
table sees only its packets (``Family.sees(version)``); bridge, arp, netdev and dormant tables
are read but not simulated (``NftRuleset.not_simulated``).
"""

from __future__ import annotations

from natlens.nft.evaluate import (
    ChainResult,
    ChainStep,
    CompiledTable,
    NftContext,
    NftVerdict,
    RuleOutcome,
    compile_table,
    evaluate_rule,
    walk_chain,
)
from natlens.nft.json_reader import load, loads, read_ruleset
from natlens.nft.model import (
    Chain,
    Element,
    Family,
    Flowtable,
    NftRuleset,
    NftSet,
    Rule,
    StatefulObject,
    Statement,
    Table,
    priority_name,
    resolve_priority,
)
from natlens.nft.render import render_rule

__all__ = [
    "Chain",
    "ChainResult",
    "ChainStep",
    "CompiledTable",
    "Element",
    "Family",
    "Flowtable",
    "NftContext",
    "NftRuleset",
    "NftSet",
    "NftVerdict",
    "Rule",
    "RuleOutcome",
    "StatefulObject",
    "Statement",
    "Table",
    "compile_table",
    "evaluate_rule",
    "load",
    "loads",
    "priority_name",
    "read_ruleset",
    "render_rule",
    "resolve_priority",
    "walk_chain",
]
