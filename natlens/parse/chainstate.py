"""A chain as ``natlens.parse.save`` builds it: the list of its rules, with its declaration.

Kept out of ``save`` so that module can be compiled (natlens.native): a compiled module's classes
cannot derive from ``list``, and this one must stay a plain Python class.
"""

from __future__ import annotations

from natlens.model import Chain, Counters, Origin, Rule, Target

__all__ = ["ChainState"]


class _BareChain:
    """A Chain's slots without its frozen ``__init__``: ``ChainState.chain`` fills one and
    makes it a Chain (``__class__`` assignment, as natlens.parse.construct does)."""

    __slots__ = Chain.__slots__
    name: str
    builtin: bool
    policy: str | None
    counters: Counters | None
    rules: tuple[Rule, ...]
    origin: Origin | None


assert Chain.__slots__ == ("name", "builtin", "policy", "counters", "rules", "origin"), \
    "update ChainState.chain for Chain's fields"


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

    def chain(self, rules: tuple[Rule, ...]) -> Chain:
        """The Chain of this state with ``rules``: ``Chain(name, builtin, policy, counters,
        rules, origin)`` without a call of ``__init__`` (a 700k-line dump has 180k chains,
        issue 13). Plain Python on purpose, one call per chain: the interpreter specializes
        these slot reads and writes, which a compiled caller (natlens.native) makes as generic
        attribute calls (measured on the compiled core: a third fewer instructions per chain
        than ``construct._Chain(...)`` called from there, and fewer than one plain-Python loop
        over all chains)."""
        chain = _BareChain()
        chain.name = self.name
        chain.builtin = self.builtin
        chain.policy = self.policy
        chain.counters = self.counters
        chain.rules = rules
        chain.origin = self.origin
        chain.__class__ = Chain  # type: ignore[assignment]
        return chain  # type: ignore[return-value]
