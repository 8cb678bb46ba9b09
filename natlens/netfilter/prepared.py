"""Rules compiled for the walk: per rule its checks and text, per long chain an index.

``prepare(ruleset)`` gives a ``PreparedRuleset`` (``tables[table][chain]`` of ``PreparedChain``);
a chain of 16 rules or more is indexed on (protocol, destination address, destination port) so a
walk only looks at the rules that can match its packet (``PreparedChain.candidates``). Everything
is prepared on first use: a chain when something first asks the table for it (a walk meets it;
``prepare`` itself reads no rule of a ruleset that shows every table, so a warm ``trace`` of a
36,000-chain table prepares, and reads from the snapshot cache, the ten chains it walks), a
rule's checks (``natlens.netfilter.matches.compile_rule``) when a walk first reaches it.
``without`` deletes rules in O(deleted rules), for what-if questions.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

from natlens.inputs import is_decimal as _decimal
from natlens.model import BUILTIN_CHAINS, Family, Rule, Ruleset, Table, TableName, TargetKind
from natlens.netfilter.flow import Flow
from natlens.netfilter.matches import PROTOCOL_ALIASES, Check, compile_rule
from natlens.netfilter.trace import Step
from natlens.serialize import rule_to_save

if TYPE_CHECKING:
    from natlens.netfilter.nftcomplete import NftTail

__all__ = ["CompiledRule", "IndexKey", "PreparedChain", "PreparedRuleset", "prepare"]

_INDEX_MIN_RULES = 16
_MAX_STEPS = 16

IndexKey = tuple[str | None, int | None, int | None]
"""(protocol, destination address as an integer, destination port); None where the rule does
not fix it. (A chain holds one family's rules; an integer hashes faster than an address.)"""


class CompiledRule:
    """A rule with its checks compiled and its text rendered on first use."""

    __slots__ = ("_checks", "_steps", "_text", "index", "rule")

    def __init__(self, rule: Rule, index: int) -> None:
        self.rule = rule
        self.index = index
        self._checks: tuple[Check, ...] | None = None
        self._text: str | None = None
        self._steps: dict[tuple[str, str, str, str, str, str | None], Step] | None = None

    @property
    def checks(self) -> tuple[Check, ...]:
        """The rule's compiled checks (compiled when the walk first reaches the rule)."""
        if self._checks is None:
            self._checks = compile_rule(self.rule)
        return self._checks

    @property
    def text(self) -> str:
        """The rule as iptables-save prints it (without counters)."""
        if self._text is None:
            self._text = rule_to_save(self.rule, counters=False)
        return self._text

    @property
    def where(self) -> str | None:
        """``file:line`` of the rule when known."""
        o = self.rule.origin
        return f"{o.source}:{o.line}" if o is not None else None

    def step(self, hook: str, table: str, chain: str, target: str, *, detail: str = "",
             source: str | None = None) -> Step:
        """The trace step of this rule matched at ``hook`` (a ``Step`` is immutable: the same
        one serves every trace; at most ``_MAX_STEPS`` kept per rule, for details that name
        the packet)."""
        key = (hook, table, chain, target, detail, source)
        steps = self._steps
        if steps is None:
            steps = self._steps = {}
        found = steps.get(key)
        if found is None:
            found = Step(hook, table, chain, self.index, target, self.text, detail,
                         where=self.where, source=source)
            if len(steps) < _MAX_STEPS:
                steps[key] = found
        return found

    def renumbered(self, index: int) -> CompiledRule:
        """The same rule at another position (compiled checks and text shared)."""
        moved = CompiledRule(self.rule, index)
        moved._checks = self._checks
        moved._text = self._text
        return moved


_PROTOCOL_OF = {alias: name for name, aliases in PROTOCOL_ALIASES.items() for alias in aliases}
"""``-p`` name or number → the protocol it stands for (``PROTOCOL_ALIASES`` reversed)."""


def _index_key(rule: Rule) -> IndexKey:
    p = rule.protocol
    proto = _PROTOCOL_OF.get(p.name) if p is not None and not p.negated else None
    dst: int | None = None
    d = rule.destination
    if d is not None and not d.negated and d.network.prefixlen == d.network.max_prefixlen:
        dst = int(d.network.network_address)
    dport: int | None = None
    if proto in ("tcp", "udp", "sctp"):
        for m in rule.matches:
            if m.module == proto:
                opt = m.get("--dport")
                if opt is not None and not opt.negated and _decimal(opt.value):
                    dport = int(opt.value)
    return proto, dst, dport


class PreparedChain:
    """A chain's compiled rules, with an index on (protocol, destination, port) when long."""

    __slots__ = ("builtin", "index", "name", "policy", "rules", "tail", "unseen")

    def __init__(self, name: str, builtin: bool, policy: str | None, rules: Sequence[Rule],
                 *, index: bool = True, unseen: str | None = None):
        self.name = name
        self.builtin = builtin
        self.policy = policy
        self.unseen = unseen  # why the input does not show (all) its rules; None: it does
        self.tail: NftTail | None = None
        """The rules after these that the input does not show, from the nft JSON
        (``natlens.netfilter.nftcomplete``); the walk runs them at the end of ``rules``."""
        self.rules: Sequence[CompiledRule] = tuple(CompiledRule(r, i)
                                                   for i, r in enumerate(rules, 1))
        self.index: dict[IndexKey, list[int]] | None = None
        if index and len(self.rules) >= _INDEX_MIN_RULES:
            by_key: dict[IndexKey, list[int]] = {}
            for pos, cr in enumerate(self.rules):
                by_key.setdefault(_index_key(cr.rule), []).append(pos)
            self.index = by_key

    def candidates(self, flow: Flow) -> list[int] | None:
        """Positions (0-based, ascending) of the rules that may match ``flow``; None: all."""
        index = self.index
        if index is None or (flow.dport is None and flow.proto in ("tcp", "udp", "sctp")) \
                or flow.dst_unknown is not None:  # any destination rule may match
            return None
        found: list[list[int]] = []
        proto, dst, dport = flow.proto, int(flow.dst), flow.dport
        get = index.get
        for key in ((proto, dst, dport), (proto, dst, None), (proto, None, dport),
                    (proto, None, None), (None, dst, dport), (None, dst, None),
                    (None, None, dport), (None, None, None)):
            hit = get(key)
            if hit:
                found.append(hit)
        if len(found) == 1:
            return found[0]
        return sorted(set().union(*found)) if found else []

    def without(self, positions: Collection[int]) -> PreparedChain:
        """This chain with the rules at ``positions`` (1-based) deleted: the rules after them
        move up, as if the chain had been prepared without them. Built in O(deleted rules):
        the rules are renumbered when a walk reaches them, the index is the original one."""
        removed = sorted({p - 1 for p in positions if 1 <= p <= len(self.rules)})
        if not removed:
            return self
        return _PrunedChain(self, removed)


class _PrunedRules(Sequence[CompiledRule]):
    """The rules of a chain minus some positions, renumbered on access."""

    __slots__ = ("_base", "_moved", "_removed")

    def __init__(self, base: Sequence[CompiledRule], removed: list[int]) -> None:
        self._base = base
        self._removed = removed  # 0-based positions in ``base``, ascending
        self._moved: dict[int, CompiledRule] = {}

    def __len__(self) -> int:
        return len(self._base) - len(self._removed)

    def _at(self, i: int) -> CompiledRule:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("rule position out of range")
        old = i
        for r in self._removed:
            if r > old:
                break
            old += 1
        cr = self._base[old]
        if old == i:
            return cr
        moved = self._moved.get(i)
        if moved is None:
            moved = self._moved[i] = cr.renumbered(i + 1)
        return moved

    @overload
    def __getitem__(self, i: int) -> CompiledRule: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[CompiledRule, ...]: ...

    def __getitem__(self, i: int | slice) -> CompiledRule | tuple[CompiledRule, ...]:
        if isinstance(i, slice):
            return tuple(self._at(k) for k in range(*i.indices(len(self))))
        return self._at(i)

    def __iter__(self) -> Iterator[CompiledRule]:
        for k in range(len(self)):
            yield self._at(k)


class _PrunedChain(PreparedChain):
    """``PreparedChain.without``: the base chain's rules and index, minus some positions."""

    __slots__ = ("_base", "_gone", "_removed")

    def __init__(self, base: PreparedChain, removed: list[int]) -> None:
        # no super().__init__: nothing is compiled or indexed again
        self.name = base.name
        self.builtin = base.builtin
        self.policy = base.policy
        self.unseen = base.unseen
        self.tail = base.tail
        self.index = None
        self.rules = _PrunedRules(base.rules, removed)
        self._base = base
        self._removed = removed
        self._gone = frozenset(removed)

    def candidates(self, flow: Flow) -> list[int] | None:
        found = self._base.candidates(flow)
        if found is None:
            return None
        removed, gone = self._removed, self._gone
        return [p - bisect.bisect_left(removed, p) for p in found if p not in gone]


class _PreparedTable(Mapping[str, PreparedChain]):
    """A table's chains by name, each prepared when first asked for (then kept); iterated in
    the table's order, then the stand-ins for chains the input does not show (``add``)."""

    __slots__ = ("_built", "_extra", "_index", "_table", "_tails", "_unseen")

    def __init__(self, table: Table, *, index: bool) -> None:
        self._table = table
        self._index = index
        self._built: dict[str, PreparedChain] = {}
        self._extra: dict[str, PreparedChain] = {}  # names the table does not have
        self._unseen: dict[str, str] = {}  # why, for chains not prepared yet
        self._tails: dict[str, NftTail] = {}  # ``complete``, for chains not prepared yet

    def __getitem__(self, name: str) -> PreparedChain:
        try:
            return self._built[name]
        except KeyError:
            pass
        chain = self._table.get(name)
        if chain is None:
            return self._extra[name]
        found = self._built[name] = PreparedChain(chain.name, chain.builtin, chain.policy,
                                                  chain.rules, index=self._index,
                                                  unseen=self._unseen.get(name))
        found.tail = self._tails.get(name)
        return found

    def get(self, name: str, default: PreparedChain | None = None,  # type: ignore[override]
            ) -> PreparedChain | None:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return name in self._table or name in self._extra

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for chain in self._table.chains:
            if chain.name not in seen:
                seen.add(chain.name)
                yield chain.name
        yield from self._extra

    def __len__(self) -> int:
        return len({c.name for c in self._table.chains}) + len(self._extra)

    @property
    def table(self) -> Table:
        """The table the chains come from."""
        return self._table

    def add(self, chain: PreparedChain) -> None:
        """A stand-in for a chain the table does not have."""
        self._extra[chain.name] = chain

    def mark_unseen(self, name: str, why: str) -> None:
        """Chain ``name`` (if any) does not show all its rules, because ``why``."""
        chain = self._built.get(name) or self._extra.get(name)
        if chain is not None:
            chain.unseen = why
        elif name in self._table:
            self._unseen[name] = why

    def complete(self, name: str, tail: NftTail) -> None:
        """Chain ``name`` (shown in part) goes on with ``tail``: no longer unseen."""
        self._unseen.pop(name, None)
        chain = self._built.get(name) or self._extra.get(name)
        if chain is None:
            if name in self._table:
                self._tails[name] = tail
            return
        chain.unseen = None
        chain.tail = tail


class _Overlay(Mapping[str, PreparedChain]):
    """``changed`` chains over a table's (``PreparedRuleset.without``): the table is shared,
    not copied, and stays lazy."""

    __slots__ = ("_base", "_changed")

    def __init__(self, changed: dict[str, PreparedChain],
                 base: Mapping[str, PreparedChain]) -> None:
        self._changed = changed
        self._base = base

    def __getitem__(self, name: str) -> PreparedChain:
        found = self._changed.get(name)
        return found if found is not None else self._base[name]

    def __contains__(self, name: object) -> bool:
        return name in self._changed or name in self._base

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        yield from (n for n in self._changed if n not in self._base)

    def __len__(self) -> int:
        return len(self._base) + sum(1 for n in self._changed if n not in self._base)


@dataclass(frozen=True, slots=True)
class PreparedRuleset:
    """All chains of a ruleset, compiled: ``tables[table][chain]``."""

    family: Family
    tables: Mapping[str, Mapping[str, PreparedChain]]
    source: Ruleset

    def chain(self, table: str, name: str) -> PreparedChain | None:
        """The chain ``name`` of ``table``, or None."""
        t = self.tables.get(table)
        return None if t is None else t.get(name)

    def complete(self, tails: Mapping[tuple[str, str], NftTail]) -> None:
        """Chains the input shows in part go on with the rules ``tails[(table, chain)]`` reads
        from the nft JSON (``natlens.netfilter.nftcomplete``), in place (``prepare``'s
        caller does it once, before any walk)."""
        for (table, name), tail in tails.items():
            chains = self.tables.get(table)
            if isinstance(chains, _PreparedTable):
                chains.complete(name, tail)

    def without(self, gone: Mapping[tuple[str, str], Collection[int]]) -> PreparedRuleset:
        """The ruleset with the rules ``gone[(table, chain)]`` (1-based positions) deleted,
        exactly as ``prepare`` of the ruleset without them would compile it; the chains left
        alone are shared (``source`` stays this ruleset's)."""
        changed: dict[str, dict[str, PreparedChain]] = {}
        for (table, name), positions in gone.items():
            chains = self.tables.get(table)
            if chains is None or name not in chains:
                continue
            changed.setdefault(table, {})[name] = chains[name].without(positions)
        # the changed chains over the shared ones (no copy of a table's thousands of chains)
        tables: dict[str, Mapping[str, PreparedChain]] = dict(self.tables)
        for table, chains in changed.items():
            tables[table] = _Overlay(chains, self.tables[table])
        return PreparedRuleset(self.family, tables, self.source)


def prepare(ruleset: Ruleset, *, index: bool = True,
            shown_elsewhere: Collection[str] = ()) -> PreparedRuleset:
    """Compile ``ruleset``: a ``PreparedChain`` per chain, made when first asked for (the
    caller keeps the result; a ``Simulator`` owns the prepared rulesets of its host).

    Rules are indexed per long chain; their checks are compiled when a walk first reaches them.
    ``index=False`` gives the naive rule-by-rule walk (for benchmarks and cross-checks).
    ``shown_elsewhere`` names tables the input does not show that the caller simulates from
    another source (iptables-nft's tables in the nft JSON): they get no unseen stand-in.
    """
    tables = {table.name.value: _PreparedTable(table, index=index) for table in ruleset.tables}
    if not ruleset.coverage.whole:
        _mark_unseen(ruleset, tables, index=index, shown_elsewhere=shown_elsewhere)
    return PreparedRuleset(ruleset.family, dict(tables), ruleset)


def _mark_unseen(ruleset: Ruleset, tables: dict[str, _PreparedTable], *, index: bool,
                 shown_elsewhere: Collection[str] = ()) -> None:
    """Chains the input does not show (``Ruleset.coverage``): an empty stand-in, marked
    ``unseen``, for each built-in chain of a table not pasted (unless in ``shown_elsewhere``),
    each built-in chain missing from a table pasted in part and each chain such a table jumps
    to without showing; chains shown in part are marked too. The walk forks where it meets
    them."""
    cov = ruleset.coverage
    for name in TableName:
        t = name.value
        if not cov.shows_table(name) and t in shown_elsewhere and t not in tables:
            continue
        if not cov.shows_table(name):
            why = next((w for n, w in cov.unknown_tables if n is name),
                       f"table {t} is not in the input")
            chains = tables.get(t)
            if chains is None:
                chains = tables[t] = _PreparedTable(Table(name), index=index)
            for builtin in BUILTIN_CHAINS[name]:
                if builtin in chains:
                    chains.mark_unseen(builtin, why)
                else:
                    chains.add(PreparedChain(builtin, True, "ACCEPT", (), unseen=why))
            continue
        shown = cov.chains_shown(name)
        table_chains = tables.get(t)
        if shown is None or table_chains is None:
            continue
        chains = table_chains
        for builtin in BUILTIN_CHAINS[name]:
            if builtin not in chains:
                chains.add(PreparedChain(
                    builtin, True, "ACCEPT", (), unseen=f"chain {builtin} of table {t} is not in "
                    "the input"))
        targets = {rule.target.name for rule in chains.table.rules
                   if rule.target is not None
                   and rule.target.kind in (TargetKind.CHAIN, TargetKind.UNKNOWN)}
        for target in sorted(targets - set(chains)):
            chains.add(PreparedChain(target, False, None, (), unseen=(
                f"chain {target} of table {t} is not in the input")))
    for name, chain_name, why in cov.incomplete:
        found = tables.get(name.value)
        if found is not None:
            found.mark_unseen(chain_name, f"chain {chain_name} is shown in part ({why})")
