"""A chain as ``natlens.parse.save`` builds it: the list of its rules, with its declaration.

Kept out of ``save`` so that module can be compiled (natlens.native): a compiled module's classes
cannot derive from ``list``, and this one must stay a plain Python class.
"""

from __future__ import annotations

from natlens.model import Counters, Origin, Rule, Target

__all__ = ["ChainState"]


class ChainState(list[Rule]):
    """A chain as the parser builds it; the list of its rules is the object itself (``rules``):
    no list beside each of a 700k-line dump's 180k chains (7 MB at the parse's peak, issue
    13). Compare ``is None``, never by truth (an empty chain is a false list)."""

    __slots__ = ("builtin", "counters", "jump", "name", "origin", "policy")

    def __init__(self, name: str, builtin: bool, policy: str | None,
                 counters: Counters | None, origin: Origin | None) -> None:
        # list.__new__ made the empty list: list.__init__ would only empty it again
        self.name = name
        self.builtin = builtin
        self.policy = policy
        self.counters = counters
        self.origin = origin
        self.jump: Target | None = None
        """The Target of a jump to this chain, made by the first (natlens.parse.fastrule):
        no dict of 180k chain names beside the table's (issue 13)."""

    @property
    def rules(self) -> list[Rule]:
        """The chain's rules, in order (this list)."""
        return self
