"""Suggested fixes: the argv of the iptables command that removes a finding, as one shell line.

A finding's ``fix`` (DESIGN.md) is one shell command line and nothing else, that the right tool
accepts. Every value in it comes from the input (chain names, rule text with its comments,
interface names, addresses) and is quoted by ``natlens.textsafe.shell_line``, so pasting a fix
into a root shell runs exactly the argv built here, never text from the rules.

Rule specifications are taken from the rule's iptables-save text, split the way iptables-restore
splits it (``natlens.parse.tokens``): iptables(8) reads the same words from its command line.
"""

from __future__ import annotations

from collections.abc import Sequence

from natlens.audit.findings import RuleRef
from natlens.model import Family
from natlens.parse.tokens import split_args
from natlens.textsafe import shell_line

__all__ = ["command", "delete_at", "delete_spec", "retarget", "rule_spec", "tool"]


def tool(family: Family | str | int, backend: str | None = None) -> str:
    """``iptables`` or ``ip6tables`` for ``family`` (a ``Family``, its value, or 4/6), with a
    ``-legacy`` or ``-nft`` suffix when ``backend`` names one.

    >>> tool(Family.IPV6), tool(4, "legacy")
    ('ip6tables', 'iptables-legacy')
    """
    six = family in (6, Family.IPV6, Family.IPV6.value)
    base = "ip6tables" if six else "iptables"
    if backend is None:
        return base
    return f"{base}-{'legacy' if backend == 'legacy' else 'nft'}"


def rule_spec(ref: RuleRef) -> list[str]:
    """The rule's words after ``-A CHAIN``, as iptables-restore splits its save text.

    >>> ref = RuleRef("filter", "INPUT", 1, '-A INPUT -m comment --comment "a $(b)" -j DROP')
    >>> rule_spec(ref)
    ['-m', 'comment', '--comment', 'a $(b)', '-j', 'DROP']
    """
    args, _ = split_args(ref.text)
    if len(args) < 2 or args[0] != "-A":
        raise ValueError(f"not an appended rule: {ref.text!r}")
    return args[2:]


def delete_spec(ref: RuleRef) -> list[str]:
    """``iptables -t TABLE -D CHAIN SPEC...``: delete the rule by its specification (safe to run
    twice: the second run fails instead of deleting another rule)."""
    return [tool(ref.family), "-t", ref.table, "-D", ref.chain, *rule_spec(ref)]


def delete_at(ref: RuleRef) -> list[str]:
    """``iptables -t TABLE -D CHAIN INDEX``: delete the rule at its 1-based position."""
    return [tool(ref.family), "-t", ref.table, "-D", ref.chain, str(ref.index)]


def retarget(ref: RuleRef, old: str, new: str) -> list[str]:
    """``iptables -t TABLE -R CHAIN INDEX SPEC...``: the rule at ``ref`` with its jump (``-j``,
    ``--jump``) or goto (``-g``, ``--goto``) to chain ``old`` sent to ``new`` instead
    (iptables(8) ``--replace``). Raises ``ValueError`` when the rule names no such target.

    >>> command(retarget(RuleRef("filter", "INPUT", 3, "-A INPUT -p tcp -j my-chian"),
    ...                  "my-chian", "my-chain"))
    'iptables -t filter -R INPUT 3 -p tcp -j my-chain'
    """
    spec = rule_spec(ref)
    for i in range(len(spec) - 2, -1, -1):
        if spec[i] in ("-j", "--jump", "-g", "--goto") and spec[i + 1] == old:
            spec[i + 1] = new
            return [tool(ref.family), "-t", ref.table, "-R", ref.chain, str(ref.index), *spec]
    raise ValueError(f"rule does not jump to {old!r}: {ref.text!r}")


def command(*argvs: Sequence[str]) -> str:
    """The shell line running ``argvs`` in turn (``&&``), every word quoted.

    >>> command(delete_at(RuleRef("filter", "$(touch${IFS}x)", 2, "-A ...")))
    "iptables -t filter -D '$(touch${IFS}x)' 2"
    """
    return shell_line(*argvs)
