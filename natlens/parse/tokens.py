"""Split rule text into lines, and one rule line into arguments, the way iptables-restore does.

Lines end at ``\\n`` only (iptables-restore reads with ``fgets``): a comment may hold U+2028,
U+0085, ``\\x1c``-``\\x1f``, ``\\v``, ``\\f`` or a lone ``\\r``, which ``str.splitlines`` would
take for line ends. One ``\\r`` before the ``\\n`` is dropped (a file saved with CRLF ends).

Arguments (``add_param_to_argv`` in iptables/xshared.c): blanks are space, tab and newline only
(Python's ``str.split()`` also splits at the characters above and at every Unicode space). A
double quote opens a quoted stretch, which is glued to the characters before it in the same word
(``a"b c"`` is ``ab c``); inside it a backslash escapes the next character; the closing quote ends
the argument, whatever follows (``"x"y`` is two arguments, ``x`` and ``y``; ``""`` is one empty
argument). Single quotes and backslashes outside quotes are ordinary characters.

Every function here is linear in the length of its input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "TokenizeError", "Tokens", "column_of", "needs_quotes", "odd_blanks", "quote", "split_args",
    "split_lines", "tokenize",
]

_NO_QUOTE = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_BLANKS = " \t\n"
_BLANK_RUN = re.compile(r"[ \t\n]+")
_WORD = re.compile(r"[^ \t\n]+")
# One argument: an optional bare prefix glued to a quoted stretch (ended by its closing quote),
# or a bare word.
_ARG = re.compile(r'([^ \t\n"]*)"((?:[^"\\]|\\.)*)"|[^ \t\n"]+', re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ODD_BLANK = re.compile(r"[^\S \t\n]")
_ASCII_ODD = "\v\f\r\x1c\x1d\x1e\x1f"


class TokenizeError(ValueError):
    """Unterminated quote; ``column`` is 1-based."""

    def __init__(self, reason: str, column: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


@dataclass(frozen=True, slots=True)
class Tokens:
    """Arguments of one line, with the 1-based start column of each and which were quoted."""

    args: tuple[str, ...]
    columns: tuple[int, ...]
    quoted: frozenset[int]


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` as iptables-restore reads them: split at ``\\n`` only, one ``\\r``
    before it dropped, no empty last line for a final ``\\n``.

    >>> split_lines('-A INPUT -m comment --comment "a\\u2028b\\x0cc" -j DROP\\r\\nCOMMIT\\n')
    ['-A INPUT -m comment --comment "a\\u2028b\\x0cc" -j DROP', 'COMMIT']
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines


def odd_blanks(text: str) -> bool:
    """Whether ``text`` holds a character ``str.split()`` takes for a blank and iptables does
    not (``\\v``, ``\\f``, ``\\r``, ``\\x1c``-``\\x1f``, U+0085, U+2028, Unicode spaces).

    >>> odd_blanks("-A INPUT -j DROP"), odd_blanks("a\u2028b"), odd_blanks("a\\tb")
    (False, True, False)
    """
    if text.isascii():
        return any(ch in text for ch in _ASCII_ODD)
    return _ODD_BLANK.search(text) is not None


def _plain(text: str) -> bool:
    """Whether ``str.split()`` splits ``text`` exactly at iptables' blanks (printable ASCII,
    where the only blank is the space)."""
    return text.isascii() and text.isprintable()


def _words(text: str) -> list[str]:
    """``text`` split at runs of blanks (space, tab, newline)."""
    if _plain(text):
        return text.split()
    return [w for w in _BLANK_RUN.split(text) if w]


def split_args(line: str) -> tuple[list[str], frozenset[int]]:
    """Fast path: the arguments of ``line`` and the indexes of those that were quoted.

    >>> split_args('-A INPUT -m comment --comment "a ""b" -j DROP')
    (['-A', 'INPUT', '-m', 'comment', '--comment', 'a ', 'b', '-j', 'DROP'], frozenset({5, 6}))
    """
    if '"' not in line:
        return _words(line), frozenset()
    if "\\" not in line and line.count('"') == 2:
        pre, inside, post = line.split('"')
        if not pre or pre[-1] in _BLANKS:
            args = _words(pre)
            index = len(args)
            args.append(inside)
            args.extend(_words(post))
            return args, frozenset((index,))
    tokens = _tokenize_quoted(line)
    return list(tokens.args), tokens.quoted


def column_of(line: str, index: int) -> int:
    """1-based column where argument ``index`` of ``line`` starts (0 when out of range)."""
    try:
        columns = tokenize(line).columns
    except TokenizeError:
        return 0
    return columns[index] if 0 <= index < len(columns) else 0


def tokenize(line: str) -> Tokens:
    """Split ``line`` into arguments with their columns (see module docstring).

    >>> t = tokenize('-j LOG --log-prefix "in: "x')
    >>> t.args, t.columns, t.quoted
    (('-j', 'LOG', '--log-prefix', 'in: ', 'x'), (1, 4, 8, 21, 27), frozenset({3}))
    """
    if '"' not in line:
        args: list[str] = []
        columns: list[int] = []
        for m in _WORD.finditer(line):
            args.append(m.group())
            columns.append(m.start() + 1)
        return Tokens(tuple(args), tuple(columns), frozenset())
    return _tokenize_quoted(line)


def _tokenize_quoted(line: str) -> Tokens:
    args: list[str] = []
    columns: list[int] = []
    quoted: set[int] = set()
    pos, end = 0, len(line)
    match_arg, match_blanks = _ARG.match, _BLANK_RUN.match
    while pos < end:
        blanks = match_blanks(line, pos)
        if blanks is not None:
            pos = blanks.end()
            continue
        m = match_arg(line, pos)
        if m is None:  # a quote that never closes
            raise TokenizeError("unterminated quoted string", line.index('"', pos) + 1)
        inside = m.group(2)
        if inside is None:
            args.append(m.group())
        else:
            if "\\" in inside:
                inside = _ESCAPE.sub(r"\1", inside)
            quoted.add(len(args))
            args.append(m.group(1) + inside)
        columns.append(pos + 1)
        pos = m.end()
    return Tokens(tuple(args), tuple(columns), frozenset(quoted))


def needs_quotes(value: str) -> bool:
    """Whether iptables-save would quote ``value`` (``xtables_save_string``)."""
    return not value or any(ch not in _NO_QUOTE for ch in value)


def quote(value: str, *, force: bool = False) -> str:
    """Render ``value`` as iptables-save does: bare when safe, else double-quoted with escapes."""
    if not force and not needs_quotes(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    return f'"{escaped}"'
