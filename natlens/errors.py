"""Exception tree of natlens.

::

    NatlensError                 base of everything natlens raises on purpose
     ├── ParseError              malformed rule text (source, line, column, token, reason)
     ├── SnapshotError           a snapshot folder or one of its files is unusable
     ├── DockerError             the Docker daemon cannot be reached or answers nonsense
     └── UsageError              a caller asked for something impossible (bad packet, bad option)

Every error renders as one line naming the file and line, so the CLI can print it and exit 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "DockerError", "NatlensError", "ParseError", "ParseWarning", "SnapshotError", "UsageError",
    "did_you_mean",
]


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
        return f"{where}: {self.reason}{quoted}"

    def pointer(self) -> str:
        """The offending line with a caret under the bad token (sqlglot-style)."""
        if not self.line:
            return ""
        width = max(len(self.token or ""), 1)
        pad = " " * max(self.column - 1, 0)
        return f"{self.line.rstrip()}\n{pad}{'^' * width}"


class ParseWarning(Warning):
    """Something lenient parsing accepted although iptables-restore would not (or would differ)."""

    def __init__(self, reason: str, *, source: str = "<string>", line_no: int = 0) -> None:
        self.reason = reason
        self.source = source
        self.line_no = line_no
        super().__init__(f"{source}:{line_no}: {reason}")


class SnapshotError(NatlensError):
    """A snapshot folder, or one of its files, cannot be used."""


class DockerError(NatlensError):
    """The Docker daemon cannot be reached, or its answer is unusable."""


class UsageError(NatlensError):
    """The caller asked for something that cannot be done (unknown option value, bad packet)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""
