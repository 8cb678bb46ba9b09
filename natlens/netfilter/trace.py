"""The result of a simulation: the packet's path through the hooks, rule by rule.

``Trace.to_dict`` is the ``natlens trace --format json`` object of DESIGN.md; ``kernel_lines``
renders the steps as the kernel's TRACE target logs them (``ipt_do_table`` → ``trace_packet``:
``TABLE:CHAIN:rule:N`` for a matched rule, ``TABLE:CHAIN:return:N`` at the end of a user chain,
``TABLE:CHAIN:policy:N`` for a built-in chain's policy, N counting the chain's rules from 1 with
the implicit tail entry last).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from natlens.netfilter.fastcopy import fast_init
from natlens.netfilter.packet import Packet
from natlens.textsafe import terminal

__all__ = ["Branch", "Connection", "Path", "Step", "StepKind", "Trace", "Verdict"]

_SHOWN_BRANCHES = 6

UNSEEN = "the trace cannot tell what its rules do"
"""Ends every ``uncertain`` line about a part of the ruleset the input does not show."""


class Verdict(str, Enum):
    """What finally happens to the packet."""

    ACCEPT = "ACCEPT"
    DROP = "DROP"
    REJECT = "REJECT"


class Path(str, Enum):
    """Where the packet goes: to a local socket, through the host, or out from a local process."""

    LOCAL = "local"
    FORWARD = "forward"
    OUTPUT = "output"


class StepKind(str, Enum):
    """A matched rule, the implicit end of a user chain, a policy, or a note (routing, skips)."""

    RULE = "rule"
    RETURN = "return"
    POLICY = "policy"
    NOTE = "note"


@fast_init
@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened to the packet.

    ``rule`` is the 1-based position of the matched rule in its chain (None for policies,
    implicit returns and notes); ``position`` is the kernel's rule number (for a policy or
    return the chain's rule count + 1). ``where`` is ``file:line`` of the rule when known.
    """

    hook: str
    table: str | None
    chain: str | None
    rule: int | None
    target: str
    text: str
    detail: str = ""
    kind: StepKind = StepKind.RULE
    position: int | None = None
    where: str | None = None
    source: str | None = None
    """Where the rule lives: ``iptables-nft``, ``iptables-legacy``, ``iptables`` (backend not
    known) or ``nft``; None for notes."""
    family: str | None = None
    """The nft family of the rule's table (``ip``, ``ip6``, ``inet``) for nft rules."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"hook","source","table","chain","rule","target","text"}`` (nft
        steps add ``family``; their ``rule`` is the rule's handle, and a rule's step adds
        ``where``, the file and JSON path of the rule object: ``nft-ruleset.json:
        $.nftables[12].rule``)."""
        out: dict[str, Any] = {"hook": self.hook, "source": self.source, "table": self.table,
                               "chain": self.chain, "rule": self.rule, "target": self.target,
                               "text": self.text}
        if self.family is not None:
            out["family"] = self.family
            if self.where is not None:
                out["where"] = self.where
        return out

    def kernel_line(self) -> str | None:
        """``nat:PREROUTING:rule:1``, ``nat:DOCKER:return:3``, ``filter:FORWARD:policy:DROP``;
        None for a note. Rules and returns are numbered as the TRACE target logs them;
        policies name their verdict, as ``xtables-monitor --trace`` prints them. An nft step reads
        as ``nft monitor trace`` names it: ``inet filter forward rule handle 4 (verdict accept)``,
        ``inet filter forward policy drop``."""
        if self.kind is StepKind.NOTE:
            return None
        if self.source == "nft":  # as ``nft monitor trace`` names them
            where = f"{self.family} {self.table} {self.chain}"
            if self.kind is StepKind.POLICY:
                return f"{where} policy {self.target}"
            if self.kind is StepKind.RETURN:
                return f"{where} return"
            return f"{where} rule handle {self.rule} (verdict {self.target})"
        if self.kind is StepKind.POLICY:
            return f"{self.table}:{self.chain}:policy:{self.target}"
        number = self.rule if self.kind is StepKind.RULE else self.position
        return f"{self.table}:{self.chain}:{self.kind.value}:{number}"

    def __str__(self) -> str:
        """One line (two with a ``detail``); names and rule text escaped for a terminal."""
        text = terminal(self.text)
        if self.kind is StepKind.NOTE:
            head = f"{self.hook:<11} {text}"
        else:
            where = terminal(f"{self.table}:{self.chain}")
            number = f"#{self.rule}"
            mark = " [legacy]" if self.source == "iptables-legacy" else ""
            if self.source == "nft":
                where = terminal(f"{self.family} {self.table} {self.chain}")
                number = f" handle {self.rule}"
            if self.kind is StepKind.RULE:
                source = f" ({terminal(self.where)})" if self.where else ""
                head = f"{self.hook:<11} {where}{number}{mark}{source}  {text}"
            elif self.kind is StepKind.RETURN:
                head = f"{self.hook:<11} {where}{mark}  end of chain, return"
            else:
                head = f"{self.hook:<11} {where}{mark}  policy {terminal(self.target)}"
        return f"{head}\n{'':<11}   -> {terminal(self.detail)}" if self.detail else head


def _steps_text(steps: tuple[Step, ...], indent: str = "") -> list[str]:
    width = len(str(len(steps)))
    lines: list[str] = []
    for n, step in enumerate(steps, 1):
        first, *rest = str(step).split("\n")
        lines.append(f"{indent}{n:>{width}}. {first}")
        lines.extend(f"{indent}{'':>{width}}  {r}" for r in rest)
    return lines


@fast_init
@dataclass(frozen=True, slots=True)
class Branch:
    """One possible outcome when a match is left to chance (statistic) or doubt (uncertain).

    ``probability`` multiplies the statistic probabilities along this path (1.0 when no chance
    lies on it); uncertain matches do not change it and are named in ``assumed`` instead. It is
    the arithmetic field: ``chance`` is the probability as JSON and docs/tracing.md give it
    (None for a branch of doubt alone, docs/api.md).
    """

    probability: float
    verdict: Verdict
    path: Path
    final_dst: str
    final_src: str
    out_interface: str | None
    steps: tuple[Step, ...]
    assumed: tuple[str, ...] = ()

    @property
    def chance(self) -> float | None:
        """The branch's probability when ``-m statistic`` decided it, else None: a branch
        left open by doubt (a match or a part of the ruleset the input does not show) has no
        probability."""
        return self.probability if self.probability < 1.0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form of one branch (``probability`` null for a branch of doubt, not chance)."""
        chance = self.chance
        return {
            "probability": None if chance is None else round(chance, 10),
            "verdict": self.verdict.value,
            "path": self.path.value,
            "final_dst": self.final_dst,
            "final_src": self.final_src,
            "out_interface": self.out_interface,
            "steps": [s.to_dict() for s in self.steps if s.kind is not StepKind.NOTE],
            "assumed": list(self.assumed),
        }

    def summary(self) -> str:
        """``p=0.5 ACCEPT forward 10.0.0.1:80 via eth1`` (``p=`` only for chance)."""
        chance = "" if self.chance is None else f"p={self.chance:.4g} "
        return f"{chance}{self.outcome()}"

    def outcome(self) -> str:
        """``ACCEPT forward 10.0.0.1 -> 10.0.0.2:80 via eth1``."""
        via = f" via {self.out_interface}" if self.out_interface else ""
        return (f"{self.verdict.value} {self.path.value} {self.final_src} -> "
                f"{self.final_dst}{via}")


@fast_init
@dataclass(frozen=True, slots=True)
class Connection:
    """Whether the reply of a traced connection can come back through the same conntrack
    entry (DESIGN.md ``connection``): ``established`` True, False, or None when the snapshot
    cannot tell; ``why`` says what decides it."""

    established: bool | None
    why: str

    def to_dict(self) -> dict[str, Any]:
        """``{"established": true|false|null, "why": "..."}``."""
        return {"established": self.established, "why": self.why}

    def __str__(self) -> str:
        word = {True: "established", False: "NOT established", None: "unknown"}[
            self.established]
        return f"connection: {word}: {self.why}"


@fast_init
@dataclass(frozen=True, slots=True)
class Trace:
    """A packet's way through the host; ``branches`` lists every outcome when there are several
    (the top-level fields then describe the first one)."""

    packet: Packet
    verdict: Verdict
    path: Path
    final_dst: str
    final_src: str
    out_interface: str | None
    steps: tuple[Step, ...]
    branches: tuple[Branch, ...] = ()
    uncertain: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    connection: Connection | None = None
    """Whether the connection can be established (None: not asked, e.g. for a reply)."""
    notes: tuple[str, ...] = ()
    """Plain-language notes the rules alone do not show (docker-proxy serving a published port,
    ``natlens.explain``); filled by ``natlens.simulate``, printed as ``note:`` lines."""

    @property
    def rests_on_unseen(self) -> bool:
        """Whether the walk met a chain or table the input does not show (or shows in part):
        its outcome is then not certain even when every branch ends alike."""
        return any(u.endswith(UNSEEN) for u in self.uncertain)

    @property
    def final_dsts(self) -> tuple[str, ...]:
        """Every distinct final destination over all branches (just one without branches)."""
        if not self.branches:
            return (self.final_dst,)
        seen: dict[str, None] = {}
        for b in self.branches:
            seen.setdefault(b.final_dst, None)
        return tuple(seen)

    def to_dict(self) -> dict[str, Any]:
        """The ``natlens trace --format json`` object (DESIGN.md)."""
        return {
            "packet": self.packet.to_dict(),
            "verdict": self.verdict.value,
            "path": self.path.value,
            "final_dst": self.final_dst,
            "final_src": self.final_src,
            "out_interface": self.out_interface,
            "steps": [s.to_dict() for s in self.steps if s.kind is not StepKind.NOTE],
            "branches": [b.to_dict() for b in self.branches],
            "uncertain": list(self.uncertain),
            "assumptions": list(self.assumptions),
            "connection": self.connection.to_dict() if self.connection is not None else None,
            "notes": list(self.notes),
        }

    def _branch_lines(self) -> list[str]:
        """Branches for people: with chance, each with its probability; with doubt only, one
        line per distinct outcome, how many ways lead there and what sets its first way apart
        from the headline. Each listed branch names every assumption it rests on: those all
        branches share once, in the heading (``each assuming: ...``), the rest on its line."""
        common = set(self.branches[0].assumed).intersection(
            *(b.assumed for b in self.branches[1:]))
        shared = [a for a in self.branches[0].assumed if a in common]
        each = f", each assuming: {'; '.join(shared)}" if shared else ""
        if any(b.chance is not None for b in self.branches) or \
                len(self.branches) <= _SHOWN_BRANCHES:
            lines = [f"branches ({len(self.branches)}{each}):"]
            for n, b in enumerate(self.branches, 1):
                own = tuple(a for a in b.assumed if a not in common)
                assumed = f"  [assumed: {'; '.join(own)}]" if own else ""
                lines.append(f"  {n}. {b.summary()}{assumed}")
            return lines
        head = set(self.branches[0].assumed)
        groups: dict[str, list[Branch]] = {}
        for b in self.branches:
            groups.setdefault(b.outcome(), []).append(b)
        lines = [f"possible outcomes ({len(groups)}, from {len(self.branches)} branches; "
                 "the first is the headline):"]
        for n, (outcome, members) in enumerate(groups.items(), 1):
            first = members[0]
            ways = f" ({len(members)} ways)" if len(members) > 1 else ""
            # an outcome's "e.g." way: what sets it apart from the headline (every way's
            # assumptions are in the branches of --format json)
            own = first.assumed if n == 1 else tuple(a for a in first.assumed if a not in head)
            assumed = f"  [{'' if n == 1 else 'e.g. '}assumed: {'; '.join(own)}]" if own else ""
            lines.append(f"  {n}. {outcome}{ways}{assumed}")
        return lines

    def kernel_lines(self) -> tuple[str, ...]:
        """The steps as the kernel's TRACE target would log them (``nat:PREROUTING:rule:1``)."""
        return tuple(line for s in self.steps if (line := s.kernel_line()) is not None)

    def __str__(self) -> str:
        via = f" via {self.out_interface}" if self.out_interface else ""
        lines = [f"packet: {self.packet!r}"]
        lines.extend(_steps_text(self.steps))
        lines.append(f"=> {self.verdict.value} ({self.path.value}) {self.final_src} -> "
                     f"{self.final_dst}{via}")
        if self.connection is not None:
            lines.append(str(self.connection))
        if self.branches:
            lines.extend(self._branch_lines())
        if any("not shown by the listing" in u for u in self.uncertain):
            lines.append("hint: the listing has no -v, so interfaces are unknown and the outcome "
                         "forks on them: list with 'iptables -L -n -v' for one answer")
        missing = [w for w in ("destination", "source")
                   if any(u.endswith(f"packet has no {w} port given") for u in self.uncertain)]
        if missing:
            flags = " and ".join("--dport" if w == "destination" else "--sport" for w in missing)
            lines.append(f"hint: no {' or '.join(missing)} port given, so every rule matching "
                         f"one forks the trace: give {flags} for one answer")
        lines.extend(f"uncertain: {u}" for u in self.uncertain)
        lines.extend(f"assumption: {a}" for a in self.assumptions)
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(terminal(line) for line in lines)
