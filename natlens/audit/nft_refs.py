"""Native nftables rules in findings: the rule to blame for an nft trace step, the NAT rewrite
a step made (either backend), the DNAT rules of the nft tables, and the ``nft`` commands that
delete or rewrite one rule.

The audit's checks decide by simulation, and the simulator walks iptables and native nftables
rules alike; what differs is how a finding names the rule and how its fix edits it. An nft rule
is named as ``nft monitor trace`` names it: table ``FAMILY NAME`` (``ip nat``, ``inet filter``),
chain, and the rule's handle as its index (nft(8) "RULES": ``delete rule``/``replace rule``
address a rule by ``handle``). iptables table names never hold a space, so ``is_nft`` tells the
two apart on a ``RuleRef`` without a second field.

Fixes are argv lists made into one shell line by ``natlens.audit.fixes.command`` (every word
quoted); the rule text goes to ``nft`` as one argument: nft joins its arguments with blanks and
parses them as one command (nft(8) "COMMAND LINE"), so quotes inside the text stay nft's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace

from natlens.audit.findings import RuleRef
from natlens.audit.fixes import command, delete_spec
from natlens.model import Family
from natlens.netfilter import Step, StepKind
from natlens.netfilter.nftchains import iptables_nft_tables, nft_holds_iptables
from natlens.nft import NftRuleset
from natlens.nft.jsonvalue import MAPPINGS, Json
from natlens.nft.model import Chain, Table
from natlens.nft.model import Rule as NftRule
from natlens.snapshot import Snapshot

__all__ = [
    "NftDnat",
    "NftMatches",
    "delete_rule",
    "nft_network",
    "is_nft",
    "native_only",
    "native_tables",
    "nft_matches",
    "nft_prerouting_drop",
    "nft_dnats",
    "nft_ref",
    "replace_rule",
    "rewrite_kind",
    "step_ref",
    "unknown_rewrite",
    "without_rules",
]

_QUOTED = re.compile(r'"[^"]*"')
_IPTABLES_REWRITES = frozenset({"DNAT", "REDIRECT", "NETMAP"})
_NFT_REWRITES = {"dnat": "DNAT", "redirect": "REDIRECT"}
"""nft statements that rewrite the destination (nft(8) "NAT STATEMENTS"; ``dnat ip prefix to``
is NETMAP's form), as the iptables target with the same effect."""

_NOT_A_STATEMENT = frozenset({"jump", "goto", "status", "state", "&", "|", "!=", "==", ","})
"""Words before ``dnat``/``redirect`` that make it a value (``ct status dnat``) or a chain."""
_NEXT = {"dnat": frozenset({"to", "ip", "ip6"}),
         "redirect": frozenset({None, "to", "random", "persistent", "fully-random", "comment"})}
"""What follows the statement's keyword (nft's grammar, ``src/parser_bison.y`` nat_stmt)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_nft(ref: RuleRef) -> bool:
    """Whether ``ref`` names a native nft rule (its table is ``FAMILY NAME``).

    >>> is_nft(RuleRef("ip nat", "PREROUTING", 7, "tcp dport 80 drop")), is_nft(
    ...     RuleRef("nat", "PREROUTING", 1, "-A PREROUTING -j DROP"))
    (True, False)
    """
    return " " in ref.table


def step_ref(step: Step, family: int, source: str | None) -> RuleRef | None:
    """The RuleRef of an nft trace ``step`` (a rule: index its handle; a policy: index 0 and
    text ``policy drop``); None for a step of no nft rule. ``source`` is the file it was read
    from (the snapshot's path)."""
    if step.source != "nft" or step.family is None or step.table is None or step.chain is None:
        return None
    if step.kind is StepKind.RULE and step.rule is None:
        return None
    if step.kind not in (StepKind.RULE, StepKind.POLICY):
        return None
    fam = Family.IPV4 if family == 4 else Family.IPV6
    file, _, path = (step.where or "").rpartition(": $")  # nft-ruleset.json: $.nftables[3].rule
    return RuleRef(table=f"{step.family} {step.table}", chain=step.chain,
                   index=step.rule or 0, text=step.text, source=source, family=fam.value,
                   json_path=f"${path}" if file else None)


def nft_ref(rule: NftRule, family: int, source: str | None) -> RuleRef:
    """The RuleRef of an nft model rule (index: its handle)."""
    fam = Family.IPV4 if family == 4 else Family.IPV6
    return RuleRef(table=f"{rule.family.value} {rule.table}", chain=rule.chain,
                   index=rule.handle, text=rule.text, source=source, family=fam.value,
                   json_path=rule.path or None)


def rewrite_kind(step: Step) -> str | None:
    """``DNAT``, ``REDIRECT`` or ``NETMAP`` when ``step`` is a rule that rewrote the packet's
    destination, else None: an iptables nat rule by its target, an nft rule by its statement
    (its text holds the word ``dnat``/``redirect`` outside quoted strings, not as a jump's
    chain name; the kernel accepts those statements in nat chains only, nft_nat_validate).

    >>> rewrite_kind(Step("PREROUTING", "nat", "PREROUTING", 7, "accept",
    ...     'iifname "dnat" tcp dport 81 redirect to :3128', source="nft", family="ip"))
    'REDIRECT'
    >>> [rewrite_kind(Step("FORWARD", "f", "c", 2, "accept", text, source="nft", family="ip"))
    ...  for text in ("jump dnat", "ct status dnat accept", "dnat ip to 10.0.0.2:80",
    ...               "redirect")]
    [None, None, 'DNAT', 'REDIRECT']
    """
    if step.kind is not StepKind.RULE:
        return None
    if step.source != "nft":
        return step.target if step.table == "nat" and step.target in _IPTABLES_REWRITES \
            else None
    words = _QUOTED.sub('""', step.text).split()
    for i, word in enumerate(words):
        kind = _NFT_REWRITES.get(word)
        after = words[i + 1] if i + 1 < len(words) else None
        if kind is not None and (i == 0 or words[i - 1] not in _NOT_A_STATEMENT) \
                and after in _NEXT[word]:
            return kind
    return None


_XT_NAT = re.compile(r'\bxt target "(DNAT|REDIRECT|NETMAP|SNAT|MASQUERADE)"')


def unknown_rewrite(step: Step) -> bool:
    """Whether ``step`` is an iptables-nft NAT target seen through ``nft -j`` (``xt target
    "DNAT"``): libnftables-json(5) leaves its arguments out, so where the packet goes after it
    is not known (the trace assumes no rewrite).

    >>> unknown_rewrite(Step("PREROUTING", "nat", "DOCKER", 11, "accept",
    ...     'tcp dport 8080 counter packets 0 bytes 0 xt target "DNAT"', source="nft"))
    True
    """
    return step.source == "nft" and step.kind is StepKind.RULE \
        and _XT_NAT.search(step.text) is not None


def _family_table_chain(ref: RuleRef) -> list[str]:
    family, _, table = ref.table.partition(" ")
    return [family, table, ref.chain]


def delete_rule(ref: RuleRef) -> str:
    """The shell line deleting the rule ``ref`` names: ``nft delete rule FAMILY TABLE CHAIN
    handle N`` for an nft rule, ``iptables -t TABLE -D CHAIN SPEC...`` for an iptables one.

    >>> delete_rule(RuleRef("ip nat", "my chain", 7, "tcp dport 80 drop"))
    "nft delete rule ip nat 'my chain' handle 7"
    """
    if is_nft(ref):
        return command(["nft", "delete", "rule", *_family_table_chain(ref), "handle",
                        str(ref.index)])
    return command(delete_spec(ref))


def replace_rule(ref: RuleRef, text: str) -> str:
    """``nft replace rule FAMILY TABLE CHAIN handle N TEXT`` (nft rule ``ref`` becomes ``text``,
    given to nft as one argument).

    >>> replace_rule(RuleRef("ip nat", "DOCKER", 9, ""), 'iifname "eth0" dnat to 10.0.0.2:80')
    'nft replace rule ip nat DOCKER handle 9 \\'iifname "eth0" dnat to 10.0.0.2:80\\''
    """
    return command(["nft", "replace", "rule", *_family_table_chain(ref), "handle",
                    str(ref.index), text])


def native_tables(snap: Snapshot) -> list[Table]:
    """The snapshot's native nft tables: those no nf_tables iptables dump shows (the engine's
    choice, ``natlens.netfilter.nftchains``: a dump of unknown backend whose tables are all in
    the nft ruleset is iptables-nft's)."""
    nft = snap.nft
    if nft is None:
        return []
    backend = snap.backend
    if backend is None and nft_holds_iptables(nft, snap.ruleset, snap.ruleset6):
        backend = "nf_tables"
    owned = iptables_nft_tables(backend, snap.ruleset, snap.ruleset6, snap.other_backend,
                                snap.other_backend6)
    # an ``ip filter`` the nf_tables dump of that family does not show although it shows
    # others: iptables-nft's table left out of a partial dump (a native table of that name
    # would be the same kernel table), not checked as native
    shown = {fam for fam, rs in (("ip", snap.ruleset), ("ip6", snap.ruleset6))
             if rs.tables and (rs.backend or backend) == "nf_tables"}
    return [t for t in nft.tables if (t.family.value, t.name) not in owned
            and not (t.family.value in shown and t.name in _IPTABLES_TABLES)]


def _covers(table: Table, family: int) -> bool:
    return table.family.value in ("inet", "ip" if family == 4 else "ip6")


def native_only(snap: Snapshot, family: int) -> bool:
    """Whether the ``family`` (4/6) rules are all native nft: no iptables table of the family,
    and a native nft table that sees its packets (``ip``/``ip6`` or ``inet``)."""
    rules = snap.ruleset if family == 4 else snap.ruleset6
    return not rules.tables and any(_covers(t, family) for t in native_tables(snap))


_IPTABLES_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security"})

_RAW_PRIORITY = -300
"""NF_IP_PRI_RAW: before conntrack (-200) and DNAT (-100), so only packets sent to the address
itself match (nft(8) "CHAINS", priority ``raw``)."""


def nft_prerouting_drop(snap: Snapshot, family: int, matches: Sequence[str]) -> str:
    """An ``nft`` command line that drops, at prerouting before DNAT, what ``matches`` (nft
    match words, values quoted as nft wants them) names: inserted at the top of the first
    native prerouting filter chain of priority raw or earlier when the ruleset has one, else
    in a table and chain of its own (``natlens-raw``, made by the same line)."""
    l3 = "ip" if family == 4 else "ip6"
    for table in native_tables(snap):
        if not _covers(table, family):
            continue
        for chain in table.chains:
            if chain.hook == "prerouting" and chain.type == "filter" \
                    and chain.priority is not None and chain.priority <= _RAW_PRIORITY:
                return command(["nft", "insert", "rule", table.family.value, table.name,
                                chain.name, *matches, "drop"])
    return command(["nft", "add", "table", l3, "natlens-raw"],
                   ["nft", "add", "chain", l3, "natlens-raw", "prerouting",
                    f"{{ type filter hook prerouting priority {_RAW_PRIORITY}; }}"],
                   ["nft", "add", "rule", l3, "natlens-raw", "prerouting", *matches, "drop"])


def without_rules(nft: NftRuleset, handles: Collection[tuple[str, str, int]]) -> NftRuleset:
    """``nft`` with the rules ``handles`` names (``("FAMILY TABLE", chain, handle)``, as a
    RuleRef names them) deleted, as ``nft delete rule ... handle N`` leaves it: the other rules
    keep their handles and order."""
    drop = set(handles)

    def kept(chain: Chain) -> Chain:
        rules = tuple(r for r in chain.rules
                      if (f"{r.family.value} {r.table}", r.chain, r.handle) not in drop)
        return chain if len(rules) == len(chain.rules) else replace(chain, rules=rules)

    return replace(nft, tables=tuple(replace(t, chains=tuple(kept(c) for c in t.chains))
                                     for t in nft.tables))


@dataclass(frozen=True, slots=True)
class NftDnat:
    """A native nft rule with a ``dnat to ADDR[:PORT]`` statement of a literal address:
    ``family`` 4/6 of the address, ``proto`` and ``dport`` its plain ``tcp dport N`` match
    (None when it has none), ``in_interface`` its ``iifname`` match as (name, negated)."""

    rule: NftRule
    family: int
    address: IPAddress
    port: int | None
    proto: str | None
    dport: int | None
    in_interface: tuple[str, bool] | None
    daddr: IPAddress | None


def _literal_int(value: Json) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class NftMatches:
    """What a rule's plain matches say (``==`` on a literal, ``!=`` on an interface name):
    ``proto``/``dport`` from ``tcp dport N``, ``iif``/``oif`` as (name, negated), ``saddr``
    and ``daddr`` as networks (an address or a ``prefix``); None where the rule says nothing
    plain. ``other`` counts the matches it holds besides those (a set, a range, ct state)."""

    proto: str | None = None
    dport: int | None = None
    iif: tuple[str, bool] | None = None
    oif: tuple[str, bool] | None = None
    saddr: IPNetwork | None = None
    daddr: IPNetwork | None = None
    other: int = 0


def nft_network(value: Json) -> IPNetwork | None:
    """The network an nft JSON value names (``"10.0.0.0/8"``, ``"10.0.0.1"`` or ``{"prefix":
    {"addr": ..., "len": ...}}``), host bits cleared; None for anything else."""
    if isinstance(value, MAPPINGS):
        prefix = value.get("prefix")
        if isinstance(prefix, MAPPINGS):
            value = f"{prefix.get('addr')}/{prefix.get('len')}"
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def nft_matches(rule: NftRule) -> NftMatches:
    """The plain matches of ``rule`` (``NftMatches``; libnftables-json(5) ``match``:
    ``left`` a ``payload`` or ``meta`` expression, ``right`` the value)."""
    found: dict[str, object] = {}
    other = 0
    for st in rule.statements:
        if st.kind != "match" or not isinstance(st.body, MAPPINGS):
            continue
        op, left, right = str(st.body.get("op", "==")), st.body.get("left"), \
            st.body.get("right")
        payload = left.get("payload") if isinstance(left, MAPPINGS) else None
        meta = left.get("meta") if isinstance(left, MAPPINGS) else None
        if isinstance(payload, MAPPINGS) and op == "==":
            field, protocol = payload.get("field"), payload.get("protocol")
            if field == "dport" and protocol in ("tcp", "udp", "sctp") \
                    and _literal_int(right) is not None:
                found["proto"], found["dport"] = str(protocol), _literal_int(right)
                continue
            if field in ("saddr", "daddr") and protocol in ("ip", "ip6") \
                    and nft_network(right) is not None:
                found[field] = nft_network(right)
                continue
        if isinstance(meta, MAPPINGS) and meta.get("key") in ("iifname", "oifname") \
                and isinstance(right, str) and op in ("==", "!="):
            found["iif" if meta.get("key") == "iifname" else "oif"] = (right, op == "!=")
            continue
        if isinstance(meta, MAPPINGS) and meta.get("key") == "l4proto" and op == "==" \
                and right in ("tcp", "udp", "sctp"):
            found.setdefault("proto", str(right))
            continue
        other += 1
    return NftMatches(other=other, **found)  # type: ignore[arg-type]


def _dnat_of(rule: NftRule) -> NftDnat | None:
    found: tuple[IPAddress, int | None] | None = None
    for st in rule.statements:
        if st.kind == "dnat" and isinstance(st.body, MAPPINGS):
            addr = st.body.get("addr")
            if not isinstance(addr, str) or "prefix" in st.body.get("flags", ()):
                return None  # a map, an expression or a prefix (NETMAP): not one address
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                return None
            found = (ip, _literal_int(st.body.get("port")))
    if found is None:
        return None
    m = nft_matches(rule)
    daddr = m.daddr.network_address if m.daddr is not None and \
        m.daddr.num_addresses == 1 else None
    return NftDnat(rule, found[0].version, found[0], found[1], m.proto, m.dport, m.iif, daddr)


def nft_dnats(snap: Snapshot) -> Iterator[NftDnat]:
    """Every rule of the native nft tables (``native_tables``) that DNATs to one literal
    address (``NftDnat``), in table, chain and rule order (libnftables-json(5) ``dnat``:
    ``addr``, ``port``)."""
    for table in native_tables(snap):
        for chain in table.chains:
            for rule in chain.rules:
                if any(s.kind == "dnat" for s in rule.statements):
                    found = _dnat_of(rule)
                    if found is not None:
                        yield found
