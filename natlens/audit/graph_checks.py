"""Checks on the chain graph: loops, unused and unreachable chains, jumps to chains that do not
exist, and accepts in FORWARD that come before Docker's DOCKER-USER hook.

A jump to an undeclared chain is reported as ``ineffective`` (the rule can never send packets
where it says), not as ``unreachable-chain``: there is no chain to be unreachable. Docker's
contract for DOCKER-USER (docs "Packet filtering and firewalls"): FORWARD jumps to it first, so
user rules there see every forwarded packet before Docker's own accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from natlens.audit._index import TableIndex
from natlens.audit._rules import chain_ref, unconditional
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, delete_at, retarget, tool
from natlens.errors import closest
from natlens.graph import loops
from natlens.model import Chain, Interface, Rule, Ruleset, Table, TableName

__all__ = [
    "check_docker_user_order",
    "check_loops",
    "check_missing_chains",
    "check_unreachable_chains",
    "check_unused_chains",
]


def check_loops(ctx: AuditContext) -> Iterator[Finding]:
    """Chains that jump to each other in a cycle (the kernel refuses one a built-in chain reaches).

    >>> from natlens.audit import audit_text
    >>> [f.message for f in audit_text('''*filter
    ... :INPUT ACCEPT [0:0]
    ... :A - [0:0]
    ... :B - [0:0]
    ... -A INPUT -j A
    ... -A A -j B
    ... -A B -j A
    ... COMMIT
    ... ''', check_loops)]
    ['chains jump in a loop: A -> B -> A (iptables-restore refuses this table)']
    """
    for rs in ctx.rulesets():
        index = ctx.index(rs.family)
        for table in rs.tables:
            j = index[table.name.value]
            core = j.core()  # None: no cycle (networkx never sees a big table whole)
            if core is None:
                continue
            live = j.reachable()
            for cycle in loops(core):
                refs: list[RuleRef] = []
                for i, src in enumerate(cycle):
                    dst = cycle[(i + 1) % len(cycle)]
                    position = min(core[src][dst])
                    rule = table[src].rules[position - 1]
                    refs.append(RuleRef.of(rule, table.name, position, rs.family))
                path = " -> ".join((*cycle, cycle[0]))
                reached = any(c in live for c in cycle)
                why = ("iptables-restore refuses this table" if reached else
                       "no built-in chain reaches it yet; the kernel refuses the first jump "
                       "into it from one")
                yield Finding(
                    kind="loop", severity=Severity.HIGH,
                    message=f"chains jump in a loop: {path} ({why})",
                    rule=refs[-1], related=tuple(refs[:-1]),
                    fix=command(delete_at(refs[-1])) if reached else _remove_chains(
                        tool(rs.family), table, j, cycle),
                )


def _orphaned(j: TableIndex, name: str) -> list[str]:
    """``name`` and the chains that only it (directly or through others of the list) jumps to:
    deleting ``name`` alone would leave them unused."""
    doomed = [name]
    grew = True
    while grew:
        grew = False
        for d in {v for u in doomed for v in j.succ.get(u, ())} - set(doomed):
            if all(u in doomed for u in j.pred[d]):
                doomed.append(d)
                grew = True
    return doomed


def _remove_chains(program: str, table: Table, j: TableIndex,
                   names: Sequence[str]) -> str | None:
    """``iptables -t T -F A && ... && iptables -t T -X A && ...``: flush, then delete, the chains
    ``names`` (which no built-in chain reaches) and every chain that leads to them (all as
    unreachable: a chain a reached one jumps to is reached). None when one of them is Docker's
    or ufw's own chain (their daemon writes them back), or not declared in ``table``."""
    doomed = sorted({*names, *(a for n in names for a in j.ancestors(n))})
    if any(_docker_own(n) or _UFW_CHAIN.fullmatch(n) or n not in table for n in doomed):
        return None
    t = table.name.value
    return command(*([program, "-t", t, "-F", n] for n in doomed),
                   *([program, "-t", t, "-X", n] for n in doomed))


def _has_effect(chain: Chain) -> bool:
    """Whether a chain does anything besides an unconditional final RETURN."""
    rules = chain.rules
    if rules and rules[-1].target_name == "RETURN" and unconditional(rules[-1]):
        rules = rules[:-1]
    return bool(rules)


_DOCKER_FORWARD_CHAINS = ("DOCKER-USER", "DOCKER-FORWARD")
"""Chains Docker's FORWARD jumps to, in this order (Docker 28+: ``-j DOCKER-USER``, ``-j
DOCKER-FORWARD``; before: DOCKER-USER then Docker's per-bridge rules): orphaned, they leave
containers' forwarded traffic to FORWARD alone."""


_UNUSED_BY_DESIGN = frozenset({"KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY", "KUBE-IPTABLES-HINT"})
"""Empty chains kube-proxy and the kubelet create and never jump to: canaries whose
disappearance tells them the tables were flushed (Kubernetes KEP-3178 "iptables chains
cleanup"), and the hint chain that says which backend they use. Never reported."""

_UFW_CHAIN = re.compile(r"ufw6?-[a-z-]+")
"""ufw's chains (``ufw-user-limit``, ``ufw6-logging-allow``, ...): ufw creates its whole set
on every start and jumps to some only when a rule needs them (``ufw limit``, logging levels;
/usr/share/ufw/iptables/*.rules, ufw-framework(8)). Unused ones are by design, never reported."""


UNUSED_BY_DESIGN = _UNUSED_BY_DESIGN
UFW_CHAIN = _UFW_CHAIN
"""Shared with ``nft_chains`` (the same chains in native nft tables)."""


def _docker_own(name: str) -> bool:
    """Docker's own chains besides DOCKER-USER/DOCKER-FORWARD: DOCKER, DOCKER-ISOLATION-STAGE-*,
    Docker 28's DOCKER-CT, DOCKER-BRIDGE, DOCKER-INTERNAL (reached from DOCKER-FORWARD)."""
    return name.startswith("DOCKER") and name not in ("DOCKER-USER", "DOCKER-FORWARD")


docker_own = _docker_own


def _unreferenced(rs: Ruleset, table: Table, name: str) -> bool:
    """Whether no rule jumps to ``name``, as far as the input tells: a ``-L`` header's
    ``(N references)`` decides; else a table shown in part (or with chains shown in part) may
    jump to it from what it does not show."""
    cov = rs.coverage
    refs = cov.reference_count(table.name, name)
    if refs is not None:
        return refs == 0
    if cov.chains_shown(table.name) is not None:
        return False
    return not any(t is table.name for t, _, _ in cov.incomplete)


def _docker_forward_fix(program: str, table: Table, name: str) -> str:
    """``iptables -t filter -I FORWARD N -j NAME``: Docker's place for the jump (DOCKER-USER
    first, DOCKER-FORWARD right after the DOCKER-USER jump)."""
    position = 1
    forward = table.get("FORWARD")
    if name == "DOCKER-FORWARD" and forward is not None:
        position = next((i + 1 for i, r in enumerate(forward.rules, 1)
                         if r.target_name == "DOCKER-USER"), 1)
    return command([program, "-t", "filter", "-I", "FORWARD", str(position), "-j", name])


def check_unused_chains(ctx: AuditContext) -> Iterator[Finding]:
    """User chains that no rule jumps or goes to (medium for Docker's DOCKER-USER or
    DOCKER-FORWARD with rules in it: the jump from FORWARD is missing). A chain the input may
    reference from what it does not show is not reported; a ``-L`` header's ``(N
    references)`` counts.

    >>> from natlens.audit import audit_text
    >>> [str(f) for f in audit_text('''*filter
    ... :INPUT ACCEPT [0:0]
    ... :OLD - [0:0]
    ... -A OLD -j DROP
    ... COMMIT
    ... ''', check_unused_chains)]
    ['[low] unused-chain: filter OLD #0: chain OLD has 1 rule but no rule jumps to it']
    """
    for rs in ctx.rulesets():
        index = ctx.index(rs.family)
        program = tool(rs.family)
        for table in rs.tables:
            t = table.name.value
            j = index[t]
            jumped = j.jumped
            for name in j.nodes:
                if name in jumped or name in j.missing or name in j.builtin:
                    continue
                if name in _UNUSED_BY_DESIGN or _UFW_CHAIN.fullmatch(name) \
                        or not _unreferenced(rs, table, name):
                    continue
                chain = table[name]
                n = len(chain.rules)
                docker = t == "filter" and name in _DOCKER_FORWARD_CHAINS and _has_effect(chain)
                refs = rs.coverage.reference_count(table.name, name)
                said = " (its listing header says 0 references)" if refs == 0 else ""
                message = (f"chain {name} has {n} rule{'' if n == 1 else 's'} but no rule "
                           f"jumps to it{said}")
                own = _docker_own(name)
                if docker:
                    message += (f": Docker's {name} is not reached from FORWARD, so its rules "
                                "never see containers' forwarded traffic (FORWARD's own rules "
                                "and policy decide alone)")
                elif own:
                    message += (f": {name} is Docker's own chain (Docker jumps to it from "
                                "FORWARD, DOCKER-FORWARD or PREROUTING): do not delete it; "
                                "restart dockerd so it rewrites its jumps")
                yield Finding(
                    kind="unused-chain", severity=Severity.MEDIUM if docker else Severity.LOW,
                    message=message,
                    rule=chain_ref(chain, table, rs.family),
                    fix=(_docker_forward_fix(program, table, name) if docker else None if own
                         else _remove_chains(program, table, j, _orphaned(j, name))
                         or command([program, "-t", t, "-F", name],
                                    [program, "-t", t, "-X", name])),
                )


def check_unreachable_chains(ctx: AuditContext) -> Iterator[Finding]:
    """Chains that rules jump to, but only from chains no built-in chain reaches.

    >>> from natlens.audit import audit_text
    >>> [f.message for f in audit_text('''*filter
    ... :INPUT ACCEPT [0:0]
    ... :A - [0:0]
    ... :B - [0:0]
    ... -A A -j B
    ... COMMIT
    ... ''', check_unreachable_chains)]
    ['chain B is only jumped to from chains no packet reaches (A)']
    """
    for rs in ctx.rulesets():
        index = ctx.index(rs.family)
        for table in rs.tables:
            if rs.coverage.chains_shown(table.name) is not None:
                continue  # the chains not shown may reach them
            j = index[table.name.value]
            live, jumped = j.reachable(), j.jumped
            for name in j.nodes:
                if name in live or name not in jumped or name in j.missing:
                    continue  # (built-in chains are live)
                callers = j.pred[name]
                if not _unreferenced(rs, table, min(callers)):
                    continue
                related = tuple(
                    RuleRef.of(table[u].rules[k - 1], table.name, k, rs.family)
                    for u, k in sorted((u, k) for u, ks in callers.items() for k in ks)
                    if u in table)
                yield Finding(
                    kind="unreachable-chain", severity=Severity.LOW,
                    message=f"chain {name} is only jumped to from chains no packet reaches "
                            f"({', '.join(sorted(callers))})",
                    rule=chain_ref(table[name], table, rs.family), related=related,
                    fix=_remove_chains(tool(rs.family), table, j, [name]),
                )


def check_missing_chains(ctx: AuditContext) -> Iterator[Finding]:
    """Rules that jump (``-j``/``-g``) to a chain the table does not declare (kind
    ``ineffective``: the rule never sends packets there, and iptables-restore refuses the file).
    The fix points the rule at the table's chain closest in name (``iptables -R``: a typo) when
    one is close (``natlens.errors.closest``), else creates the chain (``iptables -N``).

    >>> from natlens.audit import audit_text
    >>> [f.message for f in audit_text('''*filter
    ... :INPUT ACCEPT [0:0]
    ... :DOCKER-USER - [0:0]
    ... -A INPUT -j DOCKER-USR
    ... COMMIT
    ... ''', check_missing_chains, strict=False)]
    ["jumps to chain DOCKER-USR, which table filter does not declare (did you mean 'DOCKER-USER'?)"]
    """
    for rs in ctx.rulesets():
        index = ctx.index(rs.family)
        for table in rs.tables:
            if rs.coverage.chains_shown(table.name) is not None:
                continue  # a chain a paste does not show is not in the input, not missing
            for source, target, position, goto, _ in index[table.name.value].missing_jumps:
                rule = table[source].rules[position - 1]
                ref = RuleRef.of(rule, table.name, position, rs.family)
                near = closest(target, [c.name for c in table.chains])
                # a close name is most likely a typo: point the rule at the existing chain
                # rather than create the misspelt one
                fix = ([tool(rs.family), "-t", table.name.value, "-N", target] if near is None
                       else retarget(ref, target, near))
                yield Finding(
                    kind="ineffective", severity=Severity.HIGH,
                    message=f"{'goes' if goto else 'jumps'} to chain {target}, which "
                            f"table {table.name.value} does not declare"
                            + (f" (did you mean {near!r}?)" if near is not None else ""),
                    rule=ref, fix=command(fix),
                )


def _reaches_verdict(j: TableIndex, table: Table, chain: str, verdict: str) -> bool:
    """Whether some rule in ``chain`` or a chain it reaches has target ``verdict`` (e.g. ACCEPT),
    as ``natlens.graph.can_reach_verdict``."""
    for name in {chain} | j.descendants(chain):
        c = table.get(name)
        if c is not None and any(r.target_name == verdict for r in c.rules):
            return True
    return False


_ESTABLISHED_ONLY = frozenset({"ESTABLISHED", "RELATED"})


def _established_only(rule: Rule) -> bool:
    """Whether the rule only matches packets of connections already seen (not the first one)."""
    for module, name in (("conntrack", "--ctstate"), ("state", "--state")):
        match = rule.match(module)
        opt = match.get(name) if match is not None else None
        if opt is not None and not opt.negated:
            states = {s.upper() for a in opt.args for s in a.split(",")}
            if states <= _ESTABLISHED_ONLY:
                return True
    return False


def _docker_interfaces(table: Table) -> set[str]:
    """Interfaces Docker's own chains (DOCKER*, but not DOCKER-USER) name: its bridges."""
    names: set[str] = set()
    for chain in table.chains:
        if chain.name.startswith("DOCKER") and chain.name != "DOCKER-USER":
            for rule in chain.rules:
                for iface in (rule.in_interface, rule.out_interface):
                    if iface is not None:
                        names.add(iface.name)
    return names


def _may_be_docker(iface: Interface | None, bridges: set[str]) -> bool:
    if iface is None or iface.negated or not bridges:
        return True
    if iface.name.endswith("+"):
        return any(b.startswith(iface.name[:-1]) for b in bridges)
    return iface.name in bridges


def check_docker_user_order(ctx: AuditContext) -> Iterator[Finding]:
    """Rules in filter FORWARD that can accept Docker traffic before FORWARD jumps to
    DOCKER-USER: DOCKER-USER's rules never see those packets (kind ``ineffective``).

    Rules that only accept established/related packets do not count (DOCKER-USER still sees the
    first packet of each connection), nor rules whose ``-i``/``-o`` names none of Docker's bridges.

    >>> from natlens.audit import audit_text
    >>> found = audit_text('''*filter
    ... :FORWARD DROP [0:0]
    ... :DOCKER-USER - [0:0]
    ... -A FORWARD -p tcp --dport 80 -j ACCEPT
    ... -A FORWARD -j DOCKER-USER
    ... -A DOCKER-USER -s 10.0.0.0/8 -j DROP
    ... COMMIT
    ... ''', check_docker_user_order)
    >>> for f in found: print(f)  # doctest: +NORMALIZE_WHITESPACE
    [medium] ineffective: filter FORWARD #1: accepts forwarded packets before FORWARD #2 jumps
    to DOCKER-USER: the rules in DOCKER-USER never see them
    """
    for rs in ctx.rulesets():
        table = rs.get(TableName.FILTER)
        if table is None or "DOCKER-USER" not in table or "FORWARD" not in table:
            continue
        forward = table["FORWARD"].rules
        hook = next((i for i, r in enumerate(forward, 1) if r.target_name == "DOCKER-USER"), None)
        if hook is None:
            continue
        j = ctx.index(rs.family)[table.name.value]
        bridges = _docker_interfaces(table)
        effect = _has_effect(table["DOCKER-USER"])
        hook_ref = RuleRef.of(forward[hook - 1], table.name, hook, rs.family)
        for index, rule in enumerate(forward[: hook - 1], 1):
            name = rule.target_name
            if name is None or rule.unknown:
                continue
            accepts = name == "ACCEPT" or (rule.jumps_to_chain
                                           and _reaches_verdict(j, table, name, "ACCEPT"))
            if not accepts or _established_only(rule):
                continue
            if not (_may_be_docker(rule.in_interface, bridges)
                    or _may_be_docker(rule.out_interface, bridges)):
                continue
            verb = "accepts" if name == "ACCEPT" else f"jumps to {name}, which accepts"
            yield Finding(
                kind="ineffective", severity=Severity.MEDIUM if effect else Severity.LOW,
                message=f"{verb} forwarded packets before FORWARD #{hook} jumps to DOCKER-USER: "
                        f"the rules in DOCKER-USER never see them"
                        + ("" if effect else " (DOCKER-USER is empty now)"),
                rule=RuleRef.of(rule, table.name, index, rs.family), related=(hook_ref,),
            )
