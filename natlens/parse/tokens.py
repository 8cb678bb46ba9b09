"""Split one rule line into arguments the way iptables-restore does.

iptables-restore (``add_param_to_argv`` in iptables/xshared.c) splits on blanks; a double quote
opens and closes a quoted stretch (quotes may sit inside a word: ``a"b c"d`` is ``ab cd``); inside
quotes a backslash escapes the next character. Single quotes are ordinary characters.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TokenizeError", "Tokens", "column_of", "needs_quotes", "quote", "split_args", "tokenize",
]

_NO_QUOTE = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


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


def split_args(line: str) -> tuple[list[str], frozenset[int]]:
    """Fast path: the arguments of ``line`` and the indexes of those that were quoted."""
    if '"' not in line:
        return line.split(), frozenset()
    if "\\" not in line:
        if line.count('"') == 2:
            pre, inside, post = line.split('"')
            if (not pre or pre[-1] in _BLANKS) and (not post or post[0] in _BLANKS):
                args = pre.split()
                index = len(args)
                args.append(inside)
                args.extend(post.split())
                return args, frozenset((index,))
        return _split_simple_quotes(line)
    tokens = _tokenize_quoted(line)
    return list(tokens.args), tokens.quoted


_BLANKS = " \t\r\n\f\v"


def _split_simple_quotes(line: str) -> tuple[list[str], frozenset[int]]:
    """Quotes without backslashes: even pieces of ``line.split('"')`` are outside quotes."""
    pieces = line.split('"')
    if len(pieces) % 2 == 0:
        raise TokenizeError("unterminated quoted string", line.rfind('"') + 1)
    args: list[str] = []
    quoted: set[int] = set()
    open_token = False  # the last argument may still grow (no blank since it started)
    for i, piece in enumerate(pieces):
        if i % 2:  # inside quotes: glue to the current argument
            if open_token:
                args[-1] += piece
            else:
                args.append(piece)
                open_token = True
            quoted.add(len(args) - 1)
            continue
        if not piece:
            continue
        words = piece.split()
        if not words:
            open_token = False
            continue
        start = 0
        if open_token and piece[0] not in _BLANKS:
            args[-1] += words[0]
            start = 1
        args.extend(words[start:])
        open_token = piece[-1] not in _BLANKS
    return args, frozenset(quoted)


def column_of(line: str, index: int) -> int:
    """1-based column where argument ``index`` of ``line`` starts (0 when out of range)."""
    try:
        columns = tokenize(line).columns
    except TokenizeError:
        return 0
    return columns[index] if 0 <= index < len(columns) else 0


def tokenize(line: str) -> Tokens:
    """Split ``line`` into arguments with their columns (see module docstring)."""
    if '"' not in line:
        args: list[str] = []
        columns: list[int] = []
        pos = 0
        for word in line.split():
            pos = line.index(word, pos)
            args.append(word)
            columns.append(pos + 1)
            pos += len(word)
        return Tokens(tuple(args), tuple(columns), frozenset())
    return _tokenize_quoted(line)


def _tokenize_quoted(line: str) -> Tokens:
    args: list[str] = []
    columns: list[int] = []
    quoted: set[int] = set()
    buf: list[str] = []
    start = -1
    in_quote = False
    was_quoted = False
    escaped = False
    quote_col = 0
    for i, ch in enumerate(line):
        if in_quote:
            if escaped:
                buf.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
            else:
                buf.append(ch)
            continue
        if ch == '"':
            in_quote = True
            was_quoted = True
            quote_col = i + 1
            if start < 0:
                start = i
            continue
        if ch in " \t\r\n\f\v":
            if start >= 0:
                if was_quoted:
                    quoted.add(len(args))
                args.append("".join(buf))
                columns.append(start + 1)
                buf.clear()
                start = -1
                was_quoted = False
            continue
        if start < 0:
            start = i
        buf.append(ch)
    if in_quote:
        raise TokenizeError("unterminated quoted string", quote_col)
    if start >= 0:
        if was_quoted:
            quoted.add(len(args))
        args.append("".join(buf))
        columns.append(start + 1)
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
