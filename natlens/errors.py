"""Exception tree of natlens.

::

    NatlensError                 base of everything natlens raises on purpose
     ├── ParseError              malformed rule text (source, line, column, token, reason)
     │    └── NftParseError      nft JSON natlens cannot read (source, JSON path, reason)
     ├── SnapshotError           a snapshot folder or one of its files is unusable: missing,
     │    │                      unreadable, a directory, binary, not UTF-8, over the size limit
     │    ├── SnapshotJsonError  a snapshot JSON file that does not decode or does not fit the
     │    │                      schema of what natlens reads (source, JSON path, reason)
     │    └── EmptyInputError    a rule source that holds no table at all (a failed capture?)
     ├── DockerError             the Docker daemon cannot be reached or answers nonsense
     ├── CaptureError            ``natlens snapshot`` cannot capture this host (not root, tool
     │                           missing or failing, target folder unusable)
     ├── OutputError             the output cannot be written (stdout closed, disk full, -o FILE)
     ├── UsageError              a caller asked for something impossible (bad packet, bad option)
     ├── VerifyError             (natlens.verify.compare) verify cannot run or compare
     ├── CommandError            (natlens.verify.ns) a command inside a namespace failed
     ├── ProbeError              (natlens.verify.probe) a probe packet cannot be sent or seen
     └── TopologyError           (natlens.verify.topology) the snapshot cannot be rebuilt in
                                 namespaces

Every error renders as one line naming the file and line (or JSON path), so the CLI can print it
and exit 2. Text quoted from the input is escaped and cut (``excerpt``, ``shorten_words``), so a
10 MB token gives a short message. The public API raises nothing else on bad input; the CLI turns
what the operating system raises (``OSError``, ``MemoryError``, ``KeyboardInterrupt``, ...) into
the same one-line form (``natlens.cli_errors``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = [
    "CaptureError", "DockerError", "EmptyInputError", "NatlensError", "NftParseError",
    "OutputError", "ParseError", "ParseWarning", "SnapshotError", "SnapshotJsonError",
    "UsageError", "closest", "did_you_mean", "excerpt", "shorten_words",
]

EXCERPT_LIMIT = 200
"""Characters of input text a message quotes at most (``excerpt``)."""
WORD_LIMIT = 60
"""Characters of one word (a token, a name) a message keeps (``shorten_words``)."""
_LONG_WORD = re.compile(rf"\S{{{WORD_LIMIT + 2},}}")


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """``text`` quoted for a one-line message: ``repr`` (so newlines, escape sequences, bidi and
    other non-printable characters are escaped), cut to ``limit`` characters with its length.

    >>> excerpt("a\\nb")
    "'a\\\\nb'"
    >>> excerpt("x" * 500, 5)
    "'xxxxx'… (500 characters)"
    """
    if len(text) > limit:
        return f"{text[:limit]!r}… ({len(text):,} characters)"
    return repr(text)


def shorten_words(text: str, limit: int = WORD_LIMIT) -> str:
    """``text`` with every run of more than ``limit`` non-blank characters cut to ``limit`` and
    ``…`` (a closing quote or bracket is kept), so a message echoing a huge token stays short.

    >>> shorten_words("bad name 'CCCCCCCCCC'", 4)
    "bad name 'CC…'"
    """
    if len(text) <= limit:
        return text

    def cut(m: re.Match[str]) -> str:
        word = m.group(0)
        tail = word[-1] if word[-1] in "'\")]" else ""
        return f"{word[:limit - 1]}…{tail}"

    pattern = _LONG_WORD if limit == WORD_LIMIT else re.compile(rf"\S{{{limit + 2},}}")
    return pattern.sub(cut, text)


class NatlensError(Exception):
    """Base class of every error natlens raises deliberately."""


class ParseError(NatlensError):
    """A line of rule text that natlens (and iptables-restore) would refuse.

    ``line_no`` is 1-based; ``column`` is the 1-based column of ``token`` in ``line`` (0 when the
    whole line is at fault).
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str = "<string>",
        line_no: int = 0,
        line: str = "",
        token: str | None = None,
        column: int = 0,
    ) -> None:
        self.reason = reason
        self.source = source
        self.line_no = line_no
        self.line = line
        self.token = token
        if token is not None and column == 0 and line:
            found = line.find(token)
            column = found + 1 if found >= 0 else 0
        self.column = column
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """``file:line:col: reason: 'line'`` — the form the CLI prints."""
        where = f"{self.source}:{self.line_no}" if self.line_no else self.source
        if self.column:
            where += f":{self.column}"
        text = self.line.strip()
        if len(text) > 160:
            text = text[:157] + "..."
        quoted = f": {text!r}" if text else ""
        return f"{where}: {shorten_words(self.reason)}{quoted}"

    def pointer(self) -> str:
        """The offending line with a caret under the bad token (sqlglot-style)."""
        if not self.line:
            return ""
        width = max(len(self.token or ""), 1)
        pad = " " * max(self.column - 1, 0)
        return f"{self.line.rstrip()}\n{pad}{'^' * width}"


class NftParseError(ParseError):
    """``nft -j list ruleset`` output natlens cannot read: ``path`` is the JSON path of the
    offending value (``$.nftables[12].rule.expr[3].match.right``); for JSON that does not parse,
    ``line_no`` and ``column`` say where instead."""

    def __init__(self, reason: str, *, source: str = "<string>", path: str = "",
                 line_no: int = 0, column: int = 0) -> None:
        self.path = path
        super().__init__(reason, source=source, line_no=line_no, column=column)

    def one_line(self) -> str:
        """``file: $.json.path: reason`` (or ``file:line:col: reason`` for bad JSON syntax)."""
        if self.path:
            # the file name whole (a long folder path is no echoed token to cut), the JSON
            # path and the reason with their long words cut
            return f"{self.source}: {shorten_words(f'{self.path}: {self.reason}')}"
        return super().one_line()


class ParseWarning(Warning):
    """Something lenient parsing accepted although iptables-restore would not (or would differ)."""

    def __init__(self, reason: str, *, source: str = "<string>", line_no: int = 0) -> None:
        self.reason = reason
        self.source = source
        self.line_no = line_no
        super().__init__(f"{source}:{line_no}: {reason}")


class SnapshotError(NatlensError):
    """A snapshot folder, or one of its files, cannot be used."""


class SnapshotJsonError(SnapshotError):
    """A snapshot JSON file that does not decode (encoding, syntax, nesting, number size) or has a
    value natlens cannot use (wrong type, null, out of range, not an address).

    ``path`` is the JSON path of the value (``$[0].NetworkSettings.Ports["80/tcp"][0].HostPort``;
    empty when the file does not decode), ``line_no`` and ``column`` where a syntax error is (0
    otherwise).
    """

    def __init__(self, reason: str, *, source: str, path: str = "", line_no: int = 0,
                 column: int = 0) -> None:
        self.reason = reason
        self.source = source
        self.path = path
        self.line_no = line_no
        self.column = column
        where = f"{source}:{line_no}" if line_no else source
        if line_no and column:
            where += f":{column}"
        super().__init__(f"{where}: {path}: {reason}" if path else f"{where}: {reason}")


class EmptyInputError(SnapshotError):
    """A rule source with no table at all: an empty file or pipe, or only comments.

    ``iptables-save`` always prints at least one ``*table ... COMMIT`` block for a host with
    rules, so this is usually a failed capture (not run as root); callers that expect it pass
    ``allow_empty=True`` (``--allow-empty``).
    """


class CaptureError(NatlensError):
    """``natlens snapshot`` cannot capture this host (not root, a tool missing or failing)."""


class OutputError(NatlensError):
    """The output cannot be written: standard output closed, a full disk, an unwritable file."""


class DockerError(NatlensError):
    """The Docker daemon cannot be reached, or its answer is unusable."""


class UsageError(NatlensError):
    """The caller asked for something that cannot be done (unknown option value, bad packet)."""


class InterfaceNameError(UsageError, ValueError):
    """A name the kernel refuses for a network device (``natlens.names.interface_problem``):
    ``name`` as given, ``reason`` the rule it breaks. A ``UsageError`` for the CLI and a
    ``ValueError`` for library callers."""

    def __init__(self, message: str, *, name: str, reason: str) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:  # keyword-only arguments: pickle by hand
        return (_interface_name_error, (str(self), self.name, self.reason))


def _interface_name_error(message: str, name: str, reason: str) -> InterfaceNameError:
    return InterfaceNameError(message, name=name, reason=reason)


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (``difflib`` ratio at least 0.7), or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice (``closest``), or an empty
    string."""
    close = closest(word, choices)
    return f" (did you mean {close!r}?)" if close is not None else ""
