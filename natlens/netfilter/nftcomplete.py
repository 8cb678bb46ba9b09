"""The rules an iptables-nft dump could not show, read from the snapshot's nft JSON.

iptables-nft keeps its tables in nf_tables: ``nft -j list ruleset`` lists them as ordinary
tables (``ip filter``, ``ip nat``, ``ip6 filter``...) with the rules iptables wrote (native
expressions where iptables-nft translates the match, ``xt`` ones where it does not) and any rule
another program added with nft (Tailscale's nftables mode). iptables-nft-save stops at a rule it
cannot print (``Parsing nftables rule failed``), a pasted dump may be cut short (no COMMIT), an
``iptables -S`` paste may show some chains only: ``Ruleset.coverage`` marks those chains shown in
part (``incomplete``) or not shown (``partial``).

The kernel runs what the nft ruleset holds (nf_tables has one copy of the table), so when the
snapshot's ``nft-ruleset.json`` holds the same table and chain, the chain is completed: the
dump's rules first, then the nft chain's rules after them (``NftTail``, walked by
``natlens.nft.walk_chain`` with ``fall_through``; the dump prints a chain's rules in order, so
its N rules are the nft chain's first N). Before that the rules both show are compared (their
count and each rule's verdict or target: ``accept``/``-j ACCEPT``, ``jump X``/``-j X``,
``xt target MASQUERADE``/``-j MASQUERADE``...): where they disagree (the files were taken at
different times) natlens does not choose, the chain stays shown in part and a note says why.

Only the tables of an nf_tables dump are completed (an iptables-legacy dump's tables are not in
nf_tables) and only ip and ip6 tables (iptables-nft's families).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from natlens.model import Family, Ruleset, TableName
from natlens.model import Rule as IptRule
from natlens.netfilter.nftchains import iptables_nft_tables, nft_holds_iptables
from natlens.nft import CompiledTable, NftRuleset, compile_table
from natlens.nft.model import Chain as NftChain
from natlens.nft.model import Rule as NftRule

__all__ = ["Completions", "NftTail", "complete_from_nft", "completion_notes", "dump_backend"]

SOURCE_FILE = "nft-ruleset.json"
"""How notes name the nft JSON (``natlens snapshot``'s file name)."""

_VERDICTS = {"accept": "ACCEPT", "drop": "DROP", "return": "RETURN", "reject": "REJECT",
             "queue": "NFQUEUE", "masquerade": "MASQUERADE", "redirect": "REDIRECT",
             "dnat": "DNAT", "snat": "SNAT", "log": "LOG"}
"""nft statements that end an iptables-nft rule, by the iptables target they come from
(iptables ``nft-ruleparse.c``/``xlate``: ``-j ACCEPT`` is ``accept``, ``-j LOG`` ``log``...)."""


@dataclass(frozen=True, slots=True)
class NftTail:
    """The rules of ``chain`` of the compiled nft ``table`` from ``start`` (0-based) on: what
    the dump did not show of an iptables chain."""

    table: CompiledTable
    chain: str
    start: int


@dataclass(frozen=True, slots=True)
class Completions:
    """``tails[(table, chain)]``: the chains of one dump completed from the nft JSON;
    ``elsewhere``: the tables the dumping tool did not print (it stopped before them, or found
    them incompatible) that the nft JSON holds, simulated from it as native tables
    (``nftchains.nft_parts`` leaves out only the tables a dump names);
    ``notes``: what was completed, and why some chains were not (one line each)."""

    tails: Mapping[tuple[str, str], NftTail]
    notes: tuple[str, ...]
    elsewhere: frozenset[str] = frozenset()


def complete_from_nft(ruleset: Ruleset, nft: NftRuleset, backend: str | None,
                      owned: Collection[tuple[str, str]],
                      compiled: dict[tuple[str, str], CompiledTable] | None = None,
                      ) -> Completions:
    """The chains of ``ruleset`` (an iptables dump of ``backend``, ``dump_backend``) that its
    coverage shows in part, completed from ``nft`` where the dump's tables are
    iptables-nft's (``owned``: ``("ip", "filter")``-like pairs,
    ``nftchains.iptables_nft_tables``) and the rules both show agree. ``compiled`` caches
    compiled nft tables by (family, table) between calls."""
    family = "ip6" if ruleset.family is Family.IPV6 else "ip"
    if (ruleset.backend or backend) != "nf_tables" or ruleset.coverage.whole:
        return Completions({}, ())
    cache = {} if compiled is None else compiled
    tails: dict[tuple[str, str], NftTail] = {}
    completed: list[str] = []
    notes: list[str] = []
    for name, chain, why in _not_shown(ruleset):
        if (family, name.value) not in owned:
            continue
        table = nft.table(family, name.value)
        found = table.chain(chain) if table is not None else None
        where = f"{family} {name.value} {chain}"
        if table is None or found is None:
            notes.append(f"{ruleset.source}: chain {name.value} {chain} is shown in part "
                         f"({why}) and {SOURCE_FILE} has no chain {where} to complete it")
            continue
        dumped = ruleset.get(name)
        shown = dumped.get(chain) if dumped is not None else None
        rules = shown.rules if shown is not None else ()
        differs = _disagreement(rules, found)
        if differs is not None:
            notes.append(f"{ruleset.source}: chain {name.value} {chain} is shown in part and "
                         f"{SOURCE_FILE} disagrees with the rules the dump shows ({differs}): "
                         "not completed from it (taken at different times?); the rules it "
                         "does not show stay unknown")
            continue
        key = (family, name.value)
        ctable = cache.get(key)
        if ctable is None:
            ctable = cache[key] = compile_table(table)
        tails[(name.value, chain)] = NftTail(ctable, chain, len(rules))
        completed.append(f"{name.value} {chain} ({len(rules)} rules shown, "
                         f"{len(found.rules) - len(rules)} read from {SOURCE_FILE})")
    if completed:
        notes.insert(0, f"{ruleset.source}: chains the dump shows in part, completed from "
                        f"{SOURCE_FILE} (the rules the kernel runs): " + "; ".join(completed))
    cov = ruleset.coverage
    stopped = bool(cov.incomplete or cov.unknown_tables)  # the tool failed, not a paste
    elsewhere = frozenset(
        t.value for t in TableName
        if stopped and t not in ruleset and (family, t.value) not in owned
        and (found_table := nft.table(family, t.value)) is not None and found_table.simulated)
    if elsewhere:
        notes.append(f"{ruleset.source}: tables the dump does not show, simulated from "
                     f"{SOURCE_FILE}: " + ", ".join(
                         f"{family} {t.value}" for t in TableName if t.value in elsewhere))
    return Completions(tails, tuple(notes), elsewhere)


def _not_shown(ruleset: Ruleset) -> Iterator[tuple[TableName, str, str]]:
    """(table, chain, why) of the chains of shown tables whose rules the dumping tool did not
    all print (``Coverage.incomplete``: it stopped, or the text was cut). A paste of some
    chains or tables (``Coverage.partial``, ``-t nat -S``) is not completed: iptables could
    print what was left out, with the xtables arguments the nft copy lacks (``xt`` statements
    are opaque in ``nft -j``): the rules natlens cannot see stay unknown, the trace says so."""
    cov = ruleset.coverage
    seen: set[tuple[TableName, str]] = set()
    for name, chain, why in cov.incomplete:
        if cov.shows_table(name) and (name, chain) not in seen:
            seen.add((name, chain))
            yield name, chain, why


def _disagreement(rules: Sequence[IptRule], chain: NftChain) -> str | None:
    """Why the dump's ``rules`` are not the first rules of the nft ``chain``, or None: more
    rules than the nft chain holds, or a rule whose verdict or target differs."""
    if len(rules) > len(chain.rules):
        return (f"the dump shows {len(rules)} rules, {SOURCE_FILE} holds {len(chain.rules)}")
    for n, (ipt, nft) in enumerate(zip(rules, chain.rules, strict=False), 1):
        want = _iptables_end(ipt)
        got = _nft_end(nft)
        if want is not None and got is not None and want != got:
            return (f"rule {n}: the dump has {want}, {SOURCE_FILE} {got} "
                    f"(handle {nft.handle}: {nft.text})")
    return None


def _iptables_end(rule: IptRule) -> str | None:
    """``-j X`` / ``-g X`` of an iptables rule (``-j`` for none: a rule without a target)."""
    target = rule.target
    if target is None:
        return "no target"
    return f"{'-g' if rule.goto else '-j'} {target.name}"


def _nft_end(rule: NftRule) -> str | None:
    """The iptables target the nft rule's last verdict-like statement stands for (``-j X``),
    None when it has none natlens can read that way."""
    for st in reversed(rule.statements):
        if st.kind in ("jump", "goto") and isinstance(st.body, Mapping):
            return f"{'-g' if st.kind == 'goto' else '-j'} {st.body.get('target')}"
        if st.kind == "xt" and isinstance(st.body, Mapping) and st.body.get("type") == "target":
            return f"-j {st.body.get('name')}"
        if st.kind in _VERDICTS:
            return f"-j {_VERDICTS[st.kind]}"
        if st.kind in ("counter", "comment"):
            continue
        if st.kind in {"match", "xt"}:
            return "no target"
        return None
    return "no target"


def dump_backend(backend: str | None, ruleset: Ruleset, ruleset6: Ruleset | None,
                 nft: NftRuleset | None) -> str | None:
    """The backend of the main dumps: ``backend`` (the snapshot's ``meta.json``), else what
    their header says, else ``nf_tables`` when ``nft`` holds their tables with the built-in
    chains (``nftchains.nft_holds_iptables``: the dump was iptables-nft's), else None."""
    main = backend or ruleset.backend or (ruleset6.backend if ruleset6 is not None else None)
    if main is None and nft is not None and nft_holds_iptables(nft, ruleset, ruleset6):
        main = "nf_tables"
    return main



def completion_notes(nft: NftRuleset, backend: str | None,
                     dumps: tuple[Ruleset, Ruleset | None, Ruleset | None, Ruleset | None],
                     ) -> tuple[str, ...]:
    """What the simulator of a snapshot completes from ``nft`` (``complete_from_nft`` of the
    main dumps, ``backend`` the snapshot's), as the snapshot's notes say it. ``dumps``: the
    main IPv4 and IPv6 dumps, the other backend's IPv4 and IPv6 dumps."""
    ruleset, ruleset6, other, other6 = dumps
    if ruleset.coverage.whole and (ruleset6 is None or ruleset6.coverage.whole):
        return ()  # the common case: nothing to complete
    main = dump_backend(backend, ruleset, ruleset6, nft)
    owned = iptables_nft_tables(main, ruleset, ruleset6, other, other6)
    return tuple(note for rs in (ruleset, ruleset6) if rs is not None
                 for note in complete_from_nft(rs, nft, main, owned).notes)
