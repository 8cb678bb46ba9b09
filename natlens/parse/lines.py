"""The lines of a rule text, read a chunk at a time, and any line's text again on demand.

A 700k-line dump split at once holds every line as its own string (about 155 bytes each, 108 MB,
more than the 76 MB text) for as long as the rules' origins keep them (issue 13). ``SourceLines``
gives the same lines as ``natlens.parse.tokens.split_lines`` (split at ``\\n`` only, one ``\\r``
before it dropped, no empty last line for a final ``\\n``: iptables-restore reads with
``fgets``) a chunk of about ``CHUNK`` characters at a time, and ``line(number)`` cuts one line
out of the text again: an ``Origin`` made with a ``SourceLines`` in place of its text reads its
text from it when asked (``natlens.model.Origin``), so the parse keeps one text, not one string
per line.
"""

from __future__ import annotations

import itertools
import operator
from array import array
from collections.abc import Iterator

__all__ = ["CHUNK", "ListedLines", "SourceLines"]

CHUNK = 1 << 16
"""Characters split at a time (the last line of a chunk runs to its end)."""


class SourceLines:
    """The lines of one text: iterate for the lines in order; ``line(n)`` for line ``n``
    (1-based), each as ``split_lines(text)`` gives it.

    >>> lines = SourceLines("*nat\\r\\n-A X -j Y\\nCOMMIT\\n")
    >>> list(lines), lines.line(2)
    (['*nat', '-A X -j Y', 'COMMIT'], '-A X -j Y')
    """

    __slots__ = ("_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: array[int] | None = None
        """Where each line starts in ``text`` (made on the first ``line`` call)."""

    def __iter__(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._chunks())

    def _chunks(self) -> Iterator[list[str]]:
        """Each chunk's lines, the chunk cut after a ``\\n``."""
        text = self.text
        size = len(text)
        carriage = "\r" in text
        pos = 0
        while pos < size:
            end = text.find("\n", pos + CHUNK)
            if end < 0:
                lines = text[pos:].split("\n")
                if lines[-1] == "":
                    lines.pop()
                pos = size
            else:
                lines = text[pos:end].split("\n")
                pos = end + 1
            if carriage:
                lines = [line[:-1] if line.endswith("\r") else line for line in lines]
            yield lines

    def _line_starts(self) -> array[int]:
        """The offset in ``text`` of each line's first character (chunk by chunk: the lines
        of one chunk at a time are alive)."""
        text = self.text
        starts = array("q", [0])
        pos = 0
        while pos < len(text):
            end = text.find("\n", pos + CHUNK)
            if end < 0:
                end = len(text)
            # line j+1 starts after line j and its "\n": pos + len(lines 0..j) + j + 1
            lengths = itertools.accumulate(map(len, text[pos:end].split("\n")))
            starts.extend(map(operator.add, lengths, itertools.count(pos + 1)))
            pos = end + 1
        return starts

    def line(self, number: int) -> str:
        """Line ``number`` (1-based). Raises IndexError when the text has no such line."""
        starts = self._starts
        if starts is None:
            starts = self._starts = self._line_starts()
        text = self.text
        start = starts[number - 1] if number >= 1 else len(text)
        if start >= len(text):
            raise IndexError(number)
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        return line[:-1] if line.endswith("\r") else line

    def __repr__(self) -> str:
        return f"SourceLines(<{len(self.text)} characters>)"


class ListedLines:
    """``SourceLines``'s interface over lines already split (and mended: a line stderr wrote
    into, natlens.parse.save): iterate for them, ``line(n)`` for line ``n`` (1-based)."""

    __slots__ = ("lines",)

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def line(self, number: int) -> str:
        """Line ``number`` (1-based). Raises IndexError when there is no such line."""
        if number < 1:
            raise IndexError(number)
        return self.lines[number - 1]

    def __repr__(self) -> str:
        return f"ListedLines(<{len(self.lines)} lines>)"
