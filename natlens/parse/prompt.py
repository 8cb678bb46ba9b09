"""The shell prompt line a user pasted above a dump: ``$ sudo iptables -t nat -L -n``,
``# iptables-save``, ``root@host:~# ip6tables -S``.

``shell_command(line)`` → ``ShellCommand`` (the tool's family and the table ``-t``/``--table``
names) or None when the line is not a prompt followed by an iptables command. The option
spellings are iptables(8)'s (``-t``, ``--table``, ``-tnat``, ``--table=nat``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from natlens.model import Family, TableName

__all__ = ["ShellCommand", "shell_command"]

_COMMAND = re.compile(
    r"^(?:[^\s$#]*[$#%>]\s*|[$#%>]\s*)"  # the prompt: "$ ", "# ", "root@host:~# "
    r"(?:sudo(?:\s+-\S+)*\s+)?"  # sudo and its options
    r"(?:\S*/)?(?P<tool>ip6?tables)(?:-legacy|-nft)?(?:-save)?(?=\s|$)(?P<args>.*)$")
_TABLE = re.compile(r"(?:^|\s)(?:-t\s*|--table[=\s]\s*)(?P<table>\S+)")


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """The command on a prompt line: ``family`` from the tool's name (ip6tables → IPv6),
    ``table`` from ``-t`` (None when not named or not an iptables table), ``rules``: whether
    it is ``-S``/``--list-rules`` (rule commands follow, without a table header)."""

    family: Family
    table: TableName | None
    rules: bool


def shell_command(line: str) -> ShellCommand | None:
    """The iptables command a pasted prompt line ran, or None (not such a line)."""
    m = _COMMAND.match(line.strip())
    if m is None:
        return None
    family = Family.IPV6 if m.group("tool") == "ip6tables" else Family.IPV4
    t = _TABLE.search(m.group("args"))
    table = None
    if t is not None:
        try:
            table = TableName(t.group("table"))
        except ValueError:
            table = None
    args = m.group("args").split()
    rules = any(a in ("-S", "--list-rules") or (a.startswith("-S") and a[2:].isalnum())
                for a in args) and "-save" not in line
    return ShellCommand(family, table, rules)
