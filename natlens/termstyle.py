"""Terminal width and colour for the CLI's human-readable output.

- Width: ``COLUMNS`` when set (as shells export it and ``shutil.get_terminal_size`` reads it),
  else the terminal's width when standard output is one, else None (a pipe or file: lines are
  not wrapped, so ``grep`` sees whole lines). ``terminal_width`` is the one place that decides
  it: every table, legend and note the CLI prints (report, exposure, trace, ``trace
  --packets``, ``cache list``) fits that width; with None, tables keep their own fixed layout
  (the exposure map 80 columns, the finding column 72).
- Colour (``--color auto|always|never``): ``auto`` colours only a terminal and never when
  ``NO_COLOR`` is set to a non-empty value (https://no-color.org); ``always`` colours even a
  pipe; ``never`` never. Colours are SGR escape sequences (ECMA-48).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from typing import TextIO

from natlens.inputs import is_decimal

__all__ = ["COLORS", "paint", "terminal_width", "use_color", "wrap_line"]

COLORS = {"red": "31", "green": "32", "yellow": "33", "bold": "1"}
"""SGR codes natlens uses."""

MIN_WIDTH = 40
"""Narrowest width natlens wraps to (a smaller COLUMNS is read as this)."""


def terminal_width(stream: TextIO) -> int | None:
    """Columns to wrap human-readable output at, or None for no wrapping (see module)."""
    columns = os.environ.get("COLUMNS", "").strip()
    if is_decimal(columns, max_digits=6) and int(columns) > 0:  # not '²', nor 5,000 digits
        return max(MIN_WIDTH, int(columns))
    try:
        tty = stream.isatty()
    except (ValueError, OSError):
        tty = False
    if not tty:
        return None
    return max(MIN_WIDTH, shutil.get_terminal_size().columns)


def use_color(choice: str, stream: TextIO) -> bool:
    """Whether to colour output written to ``stream`` for ``--color choice``."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (ValueError, OSError):
        return False


def paint(text: str, color: str, enabled: bool) -> str:
    """``text`` in ``color`` (a ``COLORS`` key) when ``enabled``, else unchanged."""
    return f"\x1b[{COLORS[color]}m{text}\x1b[0m" if enabled else text


def wrap_line(line: str, width: int | None, indent: int) -> list[str]:
    """``line`` cut at blanks into lines of at most ``width`` characters (words longer than the
    width are broken), continuation lines indented by ``indent`` blanks; ``[line]`` when
    ``width`` is None or the line fits."""
    if width is None or len(line) <= width:
        return [line]
    return textwrap.wrap(line, width, subsequent_indent=" " * min(indent, width // 2),
                         break_on_hyphens=False, drop_whitespace=True) or [line]
