"""The shell lines a user pasted around a dump: the prompt line of the command that printed it
(``$ sudo iptables -t nat -L -n``, ``# iptables-save``, ``root@host:~# ip6tables -S``,
``[root@centos ~]# iptables -S``), sudo's password prompt, and the bare prompt a terminal shows
once the command is done.

``shell_command(line)`` → ``ShellCommand`` (the tool's family and the table ``-t``/``--table``
names; no family for a line that runs no iptables command) or None when the line is none of
these. The prompt shapes are the default prompts of bash (Debian ``user@host:~$``, RHEL and
Fedora ``[user@host ~]$``, Gentoo ``user@host ~ $``), fish (``user@host ~>``), oh-my-zsh
(``➜  ~``), each after a virtualenv's or conda's ``(env)``; sudo's and doas's options are those
of sudo(8) (``-u USER`` takes a value, ``-E`` none). The option spellings are iptables(8)'s
(``-t``, ``--table``, ``-tnat``, ``--table=nat``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from natlens.model import Family, TableName

__all__ = ["ShellCommand", "shell_command", "strip_nft_prompt"]

_PROMPT = (
    r"(?:\([^()\s]+\)\s+)?"  # a virtualenv's or conda's "(base) "
    r"(?:\[[^\]]*\]\s*[$#%]"  # RHEL / Fedora: "[root@centos ~]# "
    r"|[^\s@$#]+@[^\s$#]+(?:\s+[^\s$#]+)?\s*[$#%>]"  # Gentoo "user@host ~ $", fish "user@host ~>"
    r"|➜\s+\S+(?:\s+git:\(\S+\))?(?:\s+✗)?"  # oh-my-zsh: "➜  ~ "
    r"|[^\s$#]*[$#%>]"  # "$ ", "# ", "root@host:~# "
    r")"
)
_PROMPT_AT = re.compile(_PROMPT)
_SUDO_VALUE = re.compile(r"-[A-Za-z]*[CDghpRrTtUu]")
"""A sudo(8) / doas(1) option whose value is the next word (``-u USER``)."""
_TOOL = re.compile(r"(?P<tool>ip6?tables)(?:-legacy|-nft)?(?P<save>-save)?")
_NOISE = re.compile(
    rf"^(?:{_PROMPT}"  # a prompt and nothing after it: the command is done
    r"|\[sudo\] password for \S+:|Password:)$")  # sudo's (and doas's) password prompt
_SUDO_OPTIONS = 16
"""More options than this before the command: not a pasted command line."""
_HEAD = 4096
"""How far into a text a prompt line above ``nft`` output is looked for."""
_TABLE = re.compile(r"(?:^|\s)(?:-t\s*|--table[=\s]\s*)(?P<table>\S+)")


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """The command on a prompt line: ``family`` from the tool's name (ip6tables → IPv6; None:
    the line runs no iptables command, a bare prompt or sudo's password prompt), ``table``
    from ``-t`` (None when not named or not an iptables table), ``rules``: whether it is
    ``-S``/``--list-rules`` (rule commands follow, without a table header)."""

    family: Family | None
    table: TableName | None
    rules: bool


def _word(text: str) -> tuple[str, str]:
    """The first word of ``text`` and what follows it."""
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def _command(line: str) -> tuple[str, str] | None:
    """(the program's name without its directory, its arguments) that a prompt line runs,
    through sudo or doas; None when ``line`` does not open with a prompt. (Read word by word
    after the prompt's own match: no regular expression backtracks over a long line.)"""
    m = _PROMPT_AT.match(line)
    if m is None:
        return None
    word, rest = _word(line[m.end():])
    if word in ("sudo", "doas"):
        word, rest = _word(rest)
        for _ in range(_SUDO_OPTIONS):
            if not word.startswith("-"):
                break
            if _SUDO_VALUE.fullmatch(word):
                _, rest = _word(rest)
            word, rest = _word(rest)
        else:
            return None
    return word.rpartition("/")[2], rest


def shell_command(line: str) -> ShellCommand | None:
    """The iptables command a pasted prompt line ran, or None (not such a line).

    >>> shell_command("[root@centos8 ~]# iptables -t nat -S")
    ShellCommand(family=<Family.IPV4: 'ipv4'>, table=<TableName.NAT: 'nat'>, rules=True)
    >>> shell_command("(base) alice@box:~$ sudo -u root ip6tables-save").family
    <Family.IPV6: 'ipv6'>
    >>> shell_command("[sudo] password for alice:") == shell_command("alice@box:~$")
    True
    >>> shell_command("alice@box:~$")
    ShellCommand(family=None, table=None, rules=False)
    >>> shell_command("ACCEPT     all  --  0.0.0.0/0            0.0.0.0/0") is None
    True
    """
    stripped = line.strip()
    command = _command(stripped)
    tool = None if command is None else _TOOL.fullmatch(command[0])
    if command is None or tool is None:
        if _NOISE.match(stripped) is not None:
            return ShellCommand(None, None, False)
        return None
    family = Family.IPV6 if tool.group("tool") == "ip6tables" else Family.IPV4
    args = command[1]
    t = _TABLE.search(args)
    table = None
    if t is not None:
        try:
            table = TableName(t.group("table"))
        except ValueError:
            table = None
    rules = tool.group("save") is None and any(
        a in ("-S", "--list-rules") or (a.startswith("-S") and a[2:].isalnum())
        for a in args.split())
    return ShellCommand(family, table, rules)


def strip_nft_prompt(text: str) -> tuple[str, str | None]:
    """``text`` (a single nft file) with the prompt line of the ``nft`` command that printed it
    (``$ sudo nft -j list ruleset``), sudo's password prompt after it and the bare prompt after
    the output blanked (the lines above the output kept as empty ones: a JSON or nft error
    still names the right line); and that prompt line, or None when ``text`` does not start
    with one (``text`` returned as is).

    >>> strip_nft_prompt('[root@fw ~]# nft -j list ruleset\\n{"nftables": []}\\n[root@fw ~]#\\n')
    ('\\n{"nftables": []}\\n', '[root@fw ~]# nft -j list ruleset')
    >>> strip_nft_prompt('{"nftables": []}\\n')
    ('{"nftables": []}\\n', None)
    """
    head = text[:_HEAD].split("\n")[:-1]  # whole lines only
    first = next((n for n, line in enumerate(head) if line.strip()), None)
    command = None if first is None else _command(head[first].strip())
    if first is None or command is None or command[0] != "nft" or not command[1].strip():
        return text, None
    after = first + 1
    while after < len(head) and _NOISE.match(head[after].strip()) is not None:
        after += 1
    offset = sum(len(line) + 1 for line in head[:after])
    body = "\n" * after + text[offset:]
    kept = body.rstrip()
    cut = kept.rfind("\n") + 1
    if cut > after and _NOISE.match(kept[cut:].strip()) is not None:
        body = kept[:cut]
    return body, head[first].strip()
