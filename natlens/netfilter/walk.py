"""The walk through one hook's tables, chain by chain and rule by rule.

Within a table: ``-j CHAIN`` returns to the next rule, ``-g CHAIN`` does not; RETURN or the end
of a built-in chain applies its policy; ACCEPT ends only this table's chain for this hook
(iptables(8)). The nat table sees only the first packet of a connection and each NAT manip
(destination in PREROUTING/OUTPUT, source in INPUT/POSTROUTING) once (``nf_nat_inet_fn``); the
reply of a traced connection is rewritten back by the same NAT step (``Flow.reverse_nat``).
Matches the snapshot cannot decide, and ``-m statistic``, fork the walk (``Walker._fork``); nft
chains fork inside ``natlens.nft.walk_chain``, by chance where a ``numgen`` chooses (each result's
``probability`` multiplies the path's). A chain an iptables-nft dump shows in part goes on,
after its rules, with the rest of its nft copy (``PreparedChain.tail``,
``natlens.netfilter.nftcomplete``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TypeVar

from natlens.model import TargetKind
from natlens.netfilter.fastcopy import replace
from natlens.netfilter.flow import Flow, MatchContext, ReverseNat
from natlens.netfilter.host import Host
from natlens.netfilter.matches import Evaluation, run_checks
from natlens.netfilter.packet import endpoint
from natlens.netfilter.pipeline import (
    CONNTRACK_HOOKS,
    CONNTRACK_PRIORITY,
    NAT_MANIP,
    BaseChain,
    Entry,
    NatStep,
    Pipeline,
    Source,
    Stage,
    iptables_priority,
)
from natlens.netfilter.prepared import CompiledRule, PreparedChain
from natlens.netfilter.routing import Router
from natlens.netfilter.targets import Action, apply_target
from natlens.netfilter.trace import UNSEEN, Step, StepKind, Verdict
from natlens.netfilter.walkstate import (
    TERMINAL,
    Active,
    Cursor,
    Frame,
    Outcome,
    Run,
    WalkPath,
    note,
)
from natlens.nft import ChainResult, CompiledTable, NftContext, NftVerdict, walk_chain

__all__ = ["ContextKey", "Walker"]

_MAX_OUTCOMES = 512
_MAX_RULE_VISITS = 2_000_000
_ENDING_WORDS = {Action.CONTINUE: "lets the packet go on", Action.DROP: "drops the packet",
                 Action.REJECT: "rejects the packet", Action.ACCEPT: "accepts the packet (ends "
                 "the table)", Action.RETURN: "returns from the chain"}
_NFT_JUMP_STACK = 16  # nf_tables refuses a chain this many jumps deep (NFT_JUMP_STACK_SIZE)

E = TypeVar("E", bound=BaseChain | NatStep)
Results = list[tuple[Action, WalkPath]]
ContextKey = tuple[str, str, bool | None, bool | None]
"""(hook, table, before conntrack, merged negated ports): what a ``MatchContext`` depends on
besides the host."""

_NFT_ACTIONS = {NftVerdict.ACCEPT: Action.ACCEPT, NftVerdict.DROP: Action.DROP,
                NftVerdict.REJECT: Action.REJECT, NftVerdict.QUEUE: Action.ACCEPT}


def _return(frame: Frame, active: Active,
            on_way: dict[str, int]) -> tuple[str, int, Active, Frame | None]:
    """Pop ``frame``: the chain and position to go on from, its active chains, the frame below;
    the names entered since ``frame`` was pushed leave ``on_way``."""
    node: Active | None = active
    while node is not None and node is not frame.active:
        left = on_way[node.name] - 1
        if left:
            on_way[node.name] = left
        else:
            del on_way[node.name]
        node = node.up
    return frame.chain, frame.pos, frame.active, frame.below


def _reroutes(entry: BaseChain | NatStep) -> bool:
    """Whether the kernel re-routes a locally generated packet right after ``entry`` in OUTPUT:
    the NAT step, iptables' mangle table and nft chains of type route."""
    if isinstance(entry, NatStep):
        return True
    return entry.type == "route" or (entry.table == "mangle" and entry.source in (
        Source.IPTABLES_NFT, Source.IPTABLES_LEGACY, Source.IPTABLES))


def _reverse_nat(path: WalkPath, hook: str, dst_side: bool) -> WalkPath:
    """Apply the side of a reply's ``Flow.reverse_nat`` that the NAT step of ``hook`` handles:
    the destination at PREROUTING/OUTPUT, the source at INPUT/POSTROUTING. The kernel does it
    for every packet of the connection from its conntrack entry, in the NAT core's hook at
    priority -100 / +100 (``nf_nat_inet_fn`` → ``nf_nat_packet``, net/netfilter/nf_nat_core.c;
    the header rewrite is ``nf_nat_manip_pkt``, net/netfilter/nf_nat_proto.c), so the base
    chains before it (raw, mangle) see the reply as it came on the wire."""
    flow = path.flow
    rev = flow.reverse_nat
    to = None if rev is None else rev.dst if dst_side else rev.src
    assert rev is not None
    assert to is not None
    addr, port = to
    if dst_side:
        was = endpoint(flow.dst, flow.dport) if flow.dst_unknown is None else (
            f"{flow.dst_unknown} (unknown)")
        flow = replace(flow, dst=addr, dport=port if port is not None else flow.dport,
                       reverse_nat=replace(rev, dst=None, dst_unknown=None), dst_unknown=None)
        now, what = endpoint(flow.dst, flow.dport), "destination"
    else:
        was = endpoint(flow.src, flow.sport)
        flow = replace(flow, src=addr, sport=port if port is not None else flow.sport,
                       reverse_nat=replace(rev, src=None))
        now, what = endpoint(flow.src, flow.sport), "source"
    if flow.reverse_nat == ReverseNat():
        flow = replace(flow, reverse_nat=None)
    undone = "source" if dst_side else "destination"
    return note(path.but(flow=flow), hook,
                f"NAT: reply {what} {was} -> {now} (undoes the connection's {undone} NAT, "
                "from its conntrack entry)")


def _bind(run_one: Callable[[WalkPath, E], Results], entry: E) -> Callable[[WalkPath], Results]:
    return lambda p: run_one(p, entry)


class Walker(Router):
    """One trace's walk: the stages (hooks, routing decisions) and, per table, the rules."""

    def __init__(self, pipeline: Pipeline, host: Host, run: Run,
                 contexts: dict[ContextKey, MatchContext] | None = None, *,
                 docker: bool = False, localnet: str | None = None):
        """``contexts``: a cache of match contexts for ``host`` to share between walks (the
        simulator keeps one per family for its own hosts); None: this walk's own. ``docker``:
        whether the snapshot shows Docker (the routing assumptions name what dockerd sets);
        ``localnet``: the rule that tells ``route_localnet=1`` (``routing.localnet_guard``)."""
        self.pipeline = pipeline
        self.host = host
        self.run_ = run
        self.docker = docker
        self.localnet = localnet
        self._ctx: dict[ContextKey, MatchContext] = {} if contexts is None else contexts

    def ctx(self, hook: str, table: str, chain: BaseChain | None = None,
            flow: Flow | None = None) -> MatchContext:
        """The match context of ``table`` at ``hook``; with the base chain being walked, also
        whether conntrack has run yet and how the chain's backend compiles negated ports."""
        before: bool | None = None
        merged: bool | None = False
        if chain is not None:
            before = (chain.hook in CONNTRACK_HOOKS and chain.priority < CONNTRACK_PRIORITY
                      and not (flow is not None and flow.local_origin
                               and flow.in_iface == "lo"))
            if chain.source is Source.IPTABLES_NFT:
                merged = True
            elif chain.source is Source.IPTABLES:  # a dump that does not say its backend
                merged = None
        key = (hook, table, before, merged)
        ctx = self._ctx.get(key)
        if ctx is None:
            ctx = self._ctx[key] = MatchContext(self.host, hook, table,
                                                merged_negated_ports=merged,
                                                before_conntrack=before)
        return ctx

    # -- stages ---------------------------------------------------------------------------------

    def run(self, path: WalkPath, todo: tuple[Stage, ...]) -> list[Outcome]:
        while todo:
            stage, todo = todo[0], todo[1:]
            kind = stage[0]
            if kind == "hook":
                results = self.hook(path, stage[1])
                if len(results) == 1:
                    action, path = results[0]
                    if action in TERMINAL:
                        return [Outcome(TERMINAL[action], path)]
                    continue
                out: list[Outcome] = []
                for action, p in results:
                    if action in TERMINAL:
                        out.append(Outcome(TERMINAL[action], p))
                    else:
                        out.extend(self.run(p, todo))
                return out
            if kind == "route_in":
                result = self.route_in(path)
            elif kind == "route_out":
                result = self.route_out(path)
            elif kind == "reroute":
                result = self.reroute(path)
            elif kind == "after_post":
                result = self.after_post(path)
            else:  # "deliver" / "send"
                return [Outcome(Verdict.ACCEPT, path)]
            if isinstance(result, Outcome):
                return [result]
            path, more = result
            todo = more + todo
        return [Outcome(Verdict.ACCEPT, path)]

    # -- one hook: its base chains by priority ------------------------------------------------

    def hook(self, path: WalkPath, hook: str) -> list[tuple[Action, WalkPath]]:
        """Run every base chain of ``hook`` in priority order: ACCEPT ends one base chain,
        DROP/REJECT end the packet (nft(8), "OVERALL EVALUATION OF THE RULESET")."""
        hp = self.pipeline.hooks.get(hook)
        if hp is None:
            return [(Action.ACCEPT, path)]
        results = [(Action.ACCEPT, path)]
        for group in hp.groups:
            results = self._each(results, partial(self.group, hook=hook, members=group,
                                                  run_one=self.entry))
            if hook == "OUTPUT" and any(_reroutes(e) for e in group):
                results = self._rerouted(results)
        return results

    def _rerouted(self, results: list[tuple[Action, WalkPath]]
                  ) -> list[tuple[Action, WalkPath]]:
        """Re-route the paths whose destination or mark changed since their route, as the
        mangle table / nft route chains (``ipt_mangle_out``, ``nf_route_table_hook``) and the
        NAT step (``nf_nat_ipv4_local_fn``) do right after they ran in OUTPUT: a failed
        lookup drops the packet there (``ip_route_me_harder``). A new route changes only
        where the packet goes after OUTPUT: the rest of OUTPUT still matches ``-o`` against
        the first route's device (``nf_hook_state.out`` is fixed when the hook starts), so
        the path keeps it and the ``reroute`` stage after OUTPUT applies the new route."""
        out: list[tuple[Action, WalkPath]] = []
        for action, p in results:
            if action in TERMINAL:
                out.append((action, p))
                continue
            result = self.reroute(p)
            if isinstance(result, Outcome):
                out.append((Action.DROP if result.verdict is Verdict.DROP else Action.REJECT,
                            result.path))
            else:
                out.append((action, p))
        return out

    @staticmethod
    def _each(results: list[tuple[Action, WalkPath]],
              step: Callable[[WalkPath], list[tuple[Action, WalkPath]]],
              stop: Callable[[WalkPath], bool] | None = None) -> list[tuple[Action, WalkPath]]:
        """Apply ``step`` to every path still going (not dropped, not ``stop``ped)."""
        if len(results) == 1:
            action, p = results[0]
            if action in TERMINAL or (stop is not None and stop(p)):
                return results
            return step(p)
        out: list[tuple[Action, WalkPath]] = []
        for action, p in results:
            if action in TERMINAL or (stop is not None and stop(p)):
                out.append((action, p))
            else:
                out.extend(step(p))
        return out

    def group(self, path: WalkPath, hook: str, members: Sequence[E],
              run_one: Callable[[WalkPath, E], list[tuple[Action, WalkPath]]],
              stop: Callable[[WalkPath], bool] | None = None,
              ) -> list[tuple[Action, WalkPath]]:
        """Run entries of one priority. Their kernel order is the registration order, unknown
        offline: when the reverse order gives another outcome (verdict or packet), both are
        kept as branches, each with its order as an assumption."""
        if len(members) == 1:
            return run_one(path, members[0])
        results = [(Action.ACCEPT, path)]
        for m in members:
            results = self._each(results, _bind(run_one, m), stop)
        if sum(not m.trivial for m in members) < 2:
            return results
        other = [(Action.ACCEPT, path)]
        for m in reversed(members):
            other = self._each(other, _bind(run_one, m), stop)
        if {(a, p.flow) for a, p in results} == {(a, p.flow) for a, p in other}:
            return results
        names = [m.name for m in members]
        self.run_.doubt(f"{hook}: {', '.join(names)} share priority {members[0].priority}; "
                        "the kernel runs the one registered last first, which the snapshot "
                        "does not tell, and the outcome depends on that order")
        first = f"{hook}: {' before '.join(names)}"
        second = f"{hook}: {' before '.join(reversed(names))}"
        self.run_.outcomes += 1
        return ([(a, p.but(assumed=(*p.assumed, first))) for a, p in results]
                + [(a, p.but(assumed=(*p.assumed, second))) for a, p in other])

    def entry(self, path: WalkPath, entry: Entry) -> list[tuple[Action, WalkPath]]:
        """Run one pipeline entry: a base chain, or the NAT step."""
        if isinstance(entry, NatStep):
            return self.nat(path, entry)
        return self.base_chain(path, entry)

    def nat(self, path: WalkPath, step: NatStep) -> list[tuple[Action, WalkPath]]:
        """The NAT step of a hook: only a connection's first packet meets the nat chains, in
        their priority order, until one sets up the mapping (``nf_nat_inet_fn``); without a
        mapping the connection keeps its addresses (null binding). A reply carrying its
        connection's mapping (``Flow.reverse_nat``) is rewritten here instead, at the NAT
        step's priority (``_reverse_nat``)."""
        hook = step.hook
        flow = path.flow
        dst_side = NAT_MANIP[hook] == "dst"
        if flow.ctstate == "UNTRACKED":
            return [(Action.ACCEPT, note(path, hook, "nat skipped: packet is untracked"))]
        rev = flow.reverse_nat
        if rev is not None and (rev.dst if dst_side else rev.src) is not None:
            return [(Action.ACCEPT, _reverse_nat(path, hook, dst_side))]
        if not step.groups and flow.ctstate != "NEW":
            return [(Action.ACCEPT, path)]
        if flow.ctstate == "RELATED" and flow.proto not in ("icmp", "icmpv6"):
            # The first packet of an expected connection (FTP data, ...) meets the nat
            # chains unless its helper already set the mapping up (nf_nat_inet_fn).
            self.run_.doubt(f"nat:{hook}: a conntrack helper may have set up NAT for this "
                            "related connection already")
        elif flow.ctstate != "NEW":
            what = "ICMP error of an existing connection (translated like it)" \
                if flow.ctstate == "RELATED" else "packet of an existing connection (its " \
                "NAT mapping was set up by the first packet)"
            return [(Action.ACCEPT, note(path, hook, f"nat:{hook} not consulted: {what}"))]
        if path.nat_dst_done if dst_side else path.nat_src_done:
            return [(Action.ACCEPT, path)]

        def bound(p: WalkPath) -> bool:
            return p.nat_dst_done if dst_side else p.nat_src_done

        results = [(Action.ACCEPT, path)]
        for group in step.groups:
            results = self._each(results, partial(self.group, hook=hook, members=group,
                                                  run_one=self.nat_chain, stop=bound), bound)
        return [(a, p if bound(p) else p.but(nat_dst_done=True) if dst_side
                 else p.but(nat_src_done=True)) for a, p in results]

    def nat_chain(self, path: WalkPath, chain: BaseChain) -> list[tuple[Action, WalkPath]]:
        """One nat chain; a NAT target or statement that ran sets the mapping up."""
        dst_side = NAT_MANIP[chain.hook] == "dst"
        before = path.flow.dnat if dst_side else path.flow.snat
        out = []
        for a, p in self.base_chain(path, chain):
            now = p.flow.dnat if dst_side else p.flow.snat
            if now and not before:
                p = p.but(nat_dst_done=True) if dst_side else p.but(nat_src_done=True)
            out.append((a, p))
        return out

    def base_chain(self, path: WalkPath, chain: BaseChain) -> list[tuple[Action, WalkPath]]:
        """One base chain, from its first rule to a verdict or its policy."""
        if chain.nft is not None:
            return self.nft_chain(path, chain)
        assert chain.prepared is not None
        chains = chain.prepared.tables[chain.table]
        ctx = self.ctx(chain.hook, chain.table, chain, path.flow)
        return self.walk(Cursor(path, chain.chain, 0, None, Active(chain.chain)), chain.hook,
                         chain.table, chains, source=chain.source.value, ctx=ctx)

    def nft_chain(self, path: WalkPath, chain: BaseChain) -> list[tuple[Action, WalkPath]]:
        """An nft base chain, walked by ``natlens.nft.walk_chain`` (rules, jumps, verdict
        maps, NAT statements, policy); each way out becomes one result, its chance (a
        ``numgen``'s share) multiplying the path's probability. Steps name the rule by its
        handle and nft text; queue is decided in userspace (assumed to accept)."""
        assert isinstance(chain.nft, CompiledTable)
        ctx = NftContext(self.host, chain.hook.lower(), chain.nft, chain.priority)
        results = walk_chain(chain.nft, chain.chain, path.flow, ctx)
        return [(_NFT_ACTIONS[v], p) for v, p in self._nft_paths(
            path, results, chain.hook, (chain.family, chain.table, chain.chain))]

    def _nft_paths(self, path: WalkPath, results: Sequence[ChainResult], hook: str,
                   chain: tuple[str, str, str]) -> list[tuple[NftVerdict, WalkPath]]:
        """``walk_chain``'s ``results`` from nft ``chain`` (family, table, name) as paths
        going on from ``path``: each way out one path (its chance multiplying the path's
        probability), with steps naming the rules by handle and nft text."""
        run = self.run_
        family, table, _ = chain
        if len(results) > 1:
            run.outcomes += len(results) - 1
        out: list[tuple[NftVerdict, WalkPath]] = []
        where = " ".join(chain)
        for r in results:
            steps = list(path.steps)
            for cs in r.steps:
                if cs.index is None and cs.verdict == "return":
                    kind = StepKind.RETURN
                elif cs.index is None:
                    kind = StepKind.POLICY
                else:
                    kind = StepKind.RULE
                steps.append(Step(hook, table, cs.chain, cs.handle, cs.verdict,
                                  cs.text or ("end of chain" if kind is StepKind.RETURN
                                              else cs.verdict), kind=kind,
                                  position=None if cs.index is None else cs.index + 1,
                                  source=Source.NFT.value, family=family,
                                  where=cs.where))
            for u in r.uncertain:
                run.doubt(f"{where}: {u}")
            assumed = path.assumed + tuple(f"{where}: {u}" for u in r.uncertain) \
                if len(results) > 1 else path.assumed
            # ``oifname`` readings the chain took (``natlens.nft.outiface``), judged as -o's
            unlikely = self._unlikely(r.flow.out_readings[len(path.flow.out_readings):], r.flow)
            if r.verdict is NftVerdict.QUEUE:
                run.doubt(f"{where}: queue: verdict decided by a userspace program "
                          "(assumed accept)")
            out.append((r.verdict, path.but(flow=r.flow, steps=tuple(steps),
                                            assumed=assumed + unlikely,
                                            prob=path.prob * r.probability,
                                            unlikely=path.unlikely + len(unlikely))))
        return out

    def _tail(self, path: WalkPath, hook: str, table: str,
              chain: PreparedChain) -> list[tuple[Action | None, WalkPath]]:
        """The rules of ``chain`` the input does not show, read from the nft JSON
        (``chain.tail``, ``natlens.netfilter.nftcomplete``): each way out, None for one that
        leaves the chain (its end, a ``return``) and goes on as the chain's end does."""
        tail = chain.tail
        assert tail is not None
        family = tail.table.table.family.value
        ctx = NftContext(self.host, hook.lower(), tail.table, iptables_priority(table, hook))
        results = walk_chain(tail.table, tail.chain, path.flow, ctx, start=tail.start,
                             fall_through=True)
        return [(None if v is NftVerdict.RETURN else _NFT_ACTIONS[v], p) for v, p in
                self._nft_paths(path, results, hook, (family, table, chain.name))]

    def walk(self, start: Cursor, hook: str, table: str, chains: Mapping[str, PreparedChain],
             *, source: str | None = None, ctx: MatchContext | None = None,
             ) -> list[tuple[Action, WalkPath]]:
        """Walk an iptables table's chains from ``start`` (jumps, gotos, returns, policy)."""
        run = self.run_
        ctx = ctx or self.ctx(hook, table)
        pending = [start]
        results: list[tuple[Action, WalkPath]] = []
        unseen: list[tuple[Action, WalkPath]] = []  # outcomes of rules the input does not show
        forked: list[tuple[Action, WalkPath]] = []  # endings of targets natlens does not know
        while pending:
            cur = pending.pop()
            path, chain_name, pos, stack, active = cur.path, cur.chain, cur.pos, cur.stack, \
                cur.active
            on_way: dict[str, int] = {}  # the names of ``active``, counted (O(1) loop test)
            for name in active.names():
                on_way[name] = on_way.get(name, 0) + 1
            flow = path.flow
            steps = list(path.steps)
            finished: tuple[Action, WalkPath] | None = None
            while finished is None:
                chain = chains[chain_name]
                rules = chain.rules
                if pos == 0 and chain.unseen is not None:
                    path, others = self._unseen(path.but(flow=flow, steps=tuple(steps)), hook,
                                                table, chain)
                    unseen.extend(others)
                    steps = list(path.steps)
                cands = chain.candidates(flow)
                if cands is None:
                    order: Sequence[int] = range(pos, len(rules))
                else:
                    order = cands[bisect.bisect_left(cands, pos):]
                jumped = False
                for i in order:
                    run.visits += 1
                    if run.visits > _MAX_RULE_VISITS:
                        run.doubt(f"walk stopped after {_MAX_RULE_VISITS} rule visits "
                                  f"(chain loop through -g?) in {table}:{chain_name}")
                        finished = (Action.ACCEPT, path.but(flow=flow, steps=tuple(steps)))
                        break
                    cr = rules[i]
                    ev = run_checks(cr.checks, flow, ctx, why=False)
                    if ev.mismatches:
                        continue
                    if not ev.matched:  # chance or doubt: follow "matches" now, queue the rest
                        matched, unmatched = self._fork(
                            ev, cr, table=table, chain=chain_name,
                            path=path.but(flow=flow, steps=tuple(steps)))
                        pending.extend(Cursor(u, chain_name, i + 1, stack, active)
                                       for u in reversed(unmatched))
                        path = matched
                        flow = path.flow
                        steps = list(path.steps)
                    target = cr.rule.target
                    if target is None:
                        steps.append(cr.step(hook, table, chain_name, "", source=source))
                        continue
                    if target.kind is TargetKind.CHAIN or (
                            target.name in chains and target.kind is TargetKind.UNKNOWN):
                        detail, follow = "", False
                        if target.name not in chains:
                            run.doubt(f"{table}:{chain_name}#{cr.index}: jump to undefined "
                                      f"chain {target.name}")
                            detail = "undefined chain: skipped"
                        elif target.name in on_way:
                            run.doubt(f"{table}:{chain_name}#{cr.index}: chain loop into "
                                      f"{target.name} (the kernel refuses such rulesets)")
                            detail = "loop: not followed"
                        else:
                            follow = True
                            detail = f"goto {target.name}" if cr.rule.goto else ""
                        steps.append(cr.step(hook, table, chain_name, target.name,
                                             detail=detail, source=source))
                        if not follow:
                            continue
                        if not cr.rule.goto:
                            stack = Frame(chain_name, i + 1, active, stack)
                        if active.depth + 1 == _NFT_JUMP_STACK and source == "iptables-nft":
                            run.doubt(f"{table}:{chain_name}#{cr.index}: jump "
                                      f"{_NFT_JUMP_STACK} levels deep: nf_tables refuses such "
                                      "rulesets (iptables-nft-restore: Too many links)")
                        active = Active(target.name, active, active.depth + 1)
                        on_way[target.name] = on_way.get(target.name, 0) + 1
                        chain_name, pos = target.name, 0
                        jumped = True
                        break
                    effect = apply_target(cr.rule, flow, ctx)
                    if effect.uncertain:
                        run.doubt(f"{table}:{chain_name}#{cr.index}: {effect.uncertain}")
                    steps.append(cr.step(hook, table, chain_name, target.name,
                                         detail=effect.detail, source=source))
                    if effect.endings:  # an unknown target: it may also end the walk here
                        path, ended = self._endings(
                            effect.action, effect.endings, f"-j {target.name}",
                            f"{table}:{chain_name}#{cr.index}",
                            path.but(flow=flow, steps=tuple(steps)))
                        forked.extend(ended)  # after the walk's own outcome (the headline)
                    old = flow
                    flow = effect.flow
                    action = effect.action
                    if action is Action.CONTINUE:
                        if (old.dst, old.dport, old.proto) != (flow.dst, flow.dport, flow.proto):
                            # The index was computed for the old packet: re-enter here.
                            pos = i + 1
                            jumped = True
                            break
                        continue
                    if action is Action.RETURN:
                        if stack:
                            chain_name, pos, active, stack = _return(stack, active, on_way)
                            jumped = True
                            break
                        finished = self._policy(hook, table, chains, flow=flow, steps=steps,
                                                path=path, source=source)
                        break
                    finished = (action, path.but(flow=flow, steps=tuple(steps)))
                    if effect.alternatives:  # a NAT range: each address the kernel may pick
                        choices = self._choices(finished, effect.alternatives,
                                                f"{table}:{chain_name}#{cr.index}")
                        results.extend(choices[:-1])  # in order: the first choice first
                        finished = choices[-1]
                    break
                if finished is not None or jumped:
                    continue
                if chain.tail is not None and pos <= len(rules):
                    # the rules the input does not show, read from the nft JSON: they may end
                    # the walk, or leave the chain as its end does (then not run again)
                    ways = self._tail(path.but(flow=flow, steps=tuple(steps)), hook, table,
                                      chain)
                    for way_out, way in ways[1:]:
                        if way_out is None:
                            pending.append(Cursor(way, chain_name, len(rules) + 1, stack,
                                                  active))
                        else:
                            forked.append((way_out, way))
                    if ways:
                        first_out, path = ways[0]
                        flow, steps = path.flow, list(path.steps)
                        if first_out is not None:
                            finished = (first_out, path)
                            continue
                # End of the chain: implicit return (user chain) or policy (built-in).
                if chain.builtin and not stack and chain_name == hook:
                    finished = self._policy(hook, table, chains, flow=flow, steps=steps, path=path,
                                            source=source)
                    continue
                steps.append(Step(hook, table, chain_name, None, "RETURN", "end of chain",
                                  kind=StepKind.RETURN, position=len(rules) + 1, source=source))
                if stack:
                    chain_name, pos, active, stack = _return(stack, active, on_way)
                else:  # end of a chain entered by -g from the built-in chain
                    finished = self._policy(hook, table, chains, flow=flow, steps=steps, path=path,
                                            source=source)
            results.append(finished)
        return results + forked + unseen

    def _unseen(self, path: WalkPath, hook: str, table: str,
                chain: PreparedChain) -> tuple[WalkPath, list[tuple[Action, WalkPath]]]:
        """A chain whose rules the input does not show (all): the walk goes on through the rules
        shown (none for a chain not in the input) and forks where the unseen rules could end it
        instead: DROP, and ACCEPT for a user chain (for a built-in chain ACCEPT is the way on);
        nat chains cannot drop but may rewrite the packet, which is said on the way on, and a
        nat user chain's unseen rules may end the table's walk (ACCEPT, or a NAT rule: the
        rules after its jump do not run, iptables-extensions(8) SNAT/DNAT/MASQUERADE)."""
        why = chain.unseen or ""
        where = f"{table}:{chain.name}"
        self.run_.doubt(f"{why}: {UNSEEN}" if why.startswith("table ") else
                        f"{where}: {why}: {UNSEEN}")
        if table == "nat":
            main = note(path, hook, f"{where}: {why} (read as not rewriting the packet)")
            side = "destination" if hook in ("PREROUTING", "OUTPUT") else "source"
            main = main.but(assumed=(*main.assumed, f"{where} ({why}) may rewrite the packet's "
                                                    f"{side}"))
            if chain.builtin:
                return main, []
            self.run_.outcomes += 1
            return main, [(Action.ACCEPT, path.but(assumed=(
                *path.assumed, f"{where} ({why}) ends the nat table's walk (ACCEPT, or a NAT "
                               f"rule that may rewrite the packet's {side})")))]
        main = note(path, hook, f"{where}: {why} (read as letting the packet through)")
        main = main.but(assumed=(*main.assumed, f"{where} ({why}) lets it through"))
        others: list[tuple[Action, WalkPath]] = [
            (Action.DROP, path.but(assumed=(*path.assumed, f"{where} ({why}) drops it")))]
        if not chain.builtin:
            others.append((Action.ACCEPT, path.but(
                assumed=(*path.assumed, f"{where} ({why}) accepts it"))))
        self.run_.outcomes += len(others)
        return main, others

    def _policy(self, hook: str, table: str, chains: Mapping[str, PreparedChain], *, flow: Flow,
                steps: list[Step], path: WalkPath, source: str | None = None,
                ) -> tuple[Action, WalkPath]:
        base = chains[hook]
        policy = base.policy
        if policy is None:
            self.run_.assume(f"{table}:{hook} has no policy in the dump ('-'): ACCEPT assumed "
                             "(the kernel's default)")
            policy = "ACCEPT"
        if base.unseen is None or base.rules:  # a stand-in for a chain not in the input: no step
            steps.append(Step(hook, table, hook, None, policy, f"policy {policy}",
                              kind=StepKind.POLICY, position=len(base.rules) + 1, source=source))
        action = {"ACCEPT": Action.ACCEPT, "DROP": Action.DROP}.get(policy, Action.ACCEPT)
        if policy not in ("ACCEPT", "DROP"):
            self.run_.doubt(f"{table}:{hook} policy {policy}: decided by userspace (assumed "
                            "ACCEPT)")
        return action, path.but(flow=flow, steps=tuple(steps))

    def _choices(self, first: tuple[Action, WalkPath],
                 choices: tuple[tuple[Flow, str], ...],
                 where: str) -> list[tuple[Action, WalkPath]]:
        """One path per flow a target may give (``Effect.alternatives``, the first being the
        one ``first`` carries), probabilities split evenly, each labelled with its choice."""
        action, path = first
        share = 1.0 / len(choices)
        self.run_.outcomes += len(choices) - 1
        return [(action, path.but(flow=flow, prob=path.prob * share,
                                  assumed=(*path.assumed, f"{where}: {text}")))
                for flow, text in choices]

    def _endings(self, action: Action, endings: tuple[Action, ...], what: str, where: str,
                 path: WalkPath) -> tuple[WalkPath, list[tuple[Action, WalkPath]]]:
        """Split ``path`` at a target whose verdict is unknown: the walk goes on with
        ``action``; each of ``endings`` is a finished path. Each names its assumption."""
        run = self.run_
        if run.outcomes >= _MAX_OUTCOMES:
            run.doubt(f"more than {_MAX_OUTCOMES} outcomes: later forks follow the matching "
                      "side only")
            return path, []
        run.outcomes += len(endings)
        main = path.but(assumed=(*path.assumed, f"{where}: {what} {_ENDING_WORDS[action]}"))
        return main, [(a, path.but(assumed=(*path.assumed, f"{where}: {what} {_ENDING_WORDS[a]}")))
                      for a in endings]

    def _fork(self, ev: Evaluation, cr: CompiledRule, *, table: str, chain: str,
              path: WalkPath) -> tuple[WalkPath, list[WalkPath]]:
        """Split ``path`` at a rule that matches only by chance or maybe: (matches, the ways it
        does not; none when too many outcomes already).

        Chance (``-m statistic``) multiplies a branch's probability; doubt (a match the
        snapshot cannot decide) keeps it and names its reading in ``assumed``. A rule with
        both misses either way: by chance within the reading "the doubtful part matches"
        (probability ``1 - p``, same assumption as the matching branch) or by doubt (the
        reading "it does not", probability unchanged), so the chance branches of each reading
        sum to its probability. Past ``_MAX_OUTCOMES`` only the matching side is followed, and
        a chance taken for granted becomes an assumption (probability unchanged).

        An unknown output interface is one interface for the whole path: each reading of a
        ``-o`` (matches, or, when it is the rule's only doubt, does not) joins the flow's
        ``out_readings``, which later ``-o`` matches follow (``read_out``). A reading that
        puts the packet out of an interface ``Host.unlikely_out`` rules unlikely says why in
        its assumption and counts in ``WalkPath.unlikely``."""
        run = self.run_
        where = f"{table}:{chain}#{cr.index}"
        for what in ev.uncertain:
            run.doubt(f"{where}: {what}")
        yes_reads = tuple((o.name, not o.negated) for o in ev.outs)
        no_reads = tuple((o.name, o.negated) for o in ev.outs) \
            if len(ev.outs) == len(ev.uncertain) == 1 else ()
        yes_why = self._unlikely(yes_reads, path.flow)
        no_why = self._unlikely(no_reads, path.flow)
        assumed_yes = tuple(f"{where} matches ({w})" for w in ev.uncertain) + yes_why
        assumed_no = tuple(f"{where} does not match ({w})" for w in ev.uncertain) + no_why
        flow_yes = replace(path.flow, out_readings=path.flow.out_readings + yes_reads) \
            if yes_reads else path.flow
        if run.outcomes >= _MAX_OUTCOMES:
            run.doubt(f"more than {_MAX_OUTCOMES} outcomes: later forks follow the matching "
                      "side only")
            taken = tuple(f"{where} matches ({c.what}: its other outcome not followed)"
                          for c in ev.chances)
            return path.but(flow=flow_yes, assumed=path.assumed + assumed_yes + taken,
                            unlikely=path.unlikely + len(yes_why)), []
        p = ev.probability
        matched = path.but(flow=flow_yes, prob=path.prob * p, assumed=path.assumed + assumed_yes,
                           unlikely=path.unlikely + len(yes_why))
        unmatched: list[WalkPath] = []
        if ev.chances:
            unmatched.append(path.but(flow=flow_yes, prob=path.prob * (1.0 - p),
                                      assumed=path.assumed + assumed_yes,
                                      unlikely=path.unlikely + len(yes_why)))
        if ev.uncertain:
            flow_no = replace(path.flow, out_readings=path.flow.out_readings + no_reads) \
                if no_reads else path.flow
            unmatched.append(path.but(flow=flow_no, assumed=path.assumed + assumed_no,
                                      unlikely=path.unlikely + len(no_why)))
        run.outcomes += len(unmatched)
        return matched, unmatched

    def _unlikely(self, reads: tuple[tuple[str, bool], ...], flow: Flow) -> tuple[str, ...]:
        """The assumptions (``unlikely: WHY``) of the readings among ``reads`` that put
        ``flow`` out of an interface ``Host.unlikely_out`` rules unlikely."""
        found = []
        for name, hit in reads:
            why = self.host.unlikely_out(name, flow.dst) if hit else None
            if why is not None:
                found.append(f"unlikely: output interface {name}: {why}")
        return tuple(found)
