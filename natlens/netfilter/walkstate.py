"""The state of one trace's walk: the paths a packet may take and the run's bookkeeping.

``WalkPath`` is one way the packet may go as far as walked (its flow as rewritten so far, the
steps, probability and assumptions); ``Cursor`` a position inside a table's chains; ``Outcome``
a finished path with its verdict; ``Run`` collects what the trace is uncertain about.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from natlens.netfilter.fastcopy import fast_init
from natlens.netfilter.flow import Flow
from natlens.netfilter.targets import Action
from natlens.netfilter.trace import Path, Step, StepKind, Verdict

__all__ = ["TERMINAL", "Active", "Cursor", "Frame", "Outcome", "Run", "WalkPath", "note"]


@fast_init
@dataclass(frozen=True, slots=True)
class WalkPath:
    """One way the packet may go, as far as walked."""

    flow: Flow
    steps: tuple[Step, ...] = ()
    prob: float = 1.0
    assumed: tuple[str, ...] = ()
    kind: Path | None = None
    routed_dst: object = None
    routed_mark: int = 0
    nat_dst_done: bool = False
    nat_src_done: bool = False
    unlikely: int = 0
    """How many of ``assumed`` contradict what the snapshot tells (``Host.unlikely_out``): the
    engine puts the paths with fewer first, so the headline is the likeliest reading."""

    def but(self, *, flow: Flow | None = None, steps: tuple[Step, ...] | None = None,
            prob: float | None = None, assumed: tuple[str, ...] | None = None,
            nat_dst_done: bool | None = None, nat_src_done: bool | None = None,
            unlikely: int | None = None) -> WalkPath:
        """A copy with some fields changed (``dataclasses.replace`` is slow on the hot path)."""
        return WalkPath(
            self.flow if flow is None else flow,
            self.steps if steps is None else steps,
            self.prob if prob is None else prob,
            self.assumed if assumed is None else assumed,
            self.kind, self.routed_dst, self.routed_mark,
            self.nat_dst_done if nat_dst_done is None else nat_dst_done,
            self.nat_src_done if nat_src_done is None else nat_src_done,
            self.unlikely if unlikely is None else unlikely,
        )


@fast_init
@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    path: WalkPath


@fast_init
@dataclass(frozen=True, slots=True)
class Active:
    """The chains on the way to a rule, gotos included, as a linked list (newest first):
    entering a chain adds one node and shares the rest, so a walk N jumps deep holds N nodes,
    not the N²/2 names of a tuple copied per jump. ``depth`` counts the jumps and gotos from
    the base chain (nf_tables refuses a ruleset 16 deep: ``NFT_JUMP_STACK_SIZE``)."""

    name: str
    up: Active | None = None
    depth: int = 0

    def names(self) -> Iterator[str]:
        """The chain names, newest first."""
        node: Active | None = self
        while node is not None:
            yield node.name
            node = node.up


@fast_init
@dataclass(frozen=True, slots=True)
class Frame:
    """A return address pushed by ``-j CHAIN`` (``-g`` pushes none): the chain and position to
    go on from, the chains active there, and the frame below (a linked stack: push and pop are
    O(1) and share the frames below)."""

    chain: str
    pos: int
    active: Active
    below: Frame | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Cursor:
    path: WalkPath
    chain: str
    pos: int
    stack: Frame | None  # where RETURN goes (None: the base chain's policy)
    active: Active  # chains on the way here, gotos included (loop detection)




@dataclass(slots=True)
class Run:
    """Per-trace mutable bookkeeping."""

    uncertain: dict[str, None] = field(default_factory=dict)
    assumptions: dict[str, None] = field(default_factory=dict)
    outcomes: int = 1
    visits: int = 0

    def doubt(self, what: str) -> None:
        self.uncertain.setdefault(what, None)

    def assume(self, what: str) -> None:
        self.assumptions.setdefault(what, None)


def note(path: WalkPath, hook: str, text: str) -> WalkPath:
    step = Step(hook, None, None, None, "", text, kind=StepKind.NOTE)
    return path.but(steps=(*path.steps, step))


TERMINAL = {Action.DROP: Verdict.DROP, Action.REJECT: Verdict.REJECT}
