"""The exposure map as text: one row per port, one column per ingress, a legend and one line
per cell that depends on the source or the destination address, every line at most ``width``
columns (the terminal's, ``natlens.termstyle.terminal_width``; ``WIDTH`` by default), but for a
single word longer than that.

Each column shows what a new connection from that ingress gets, over every source class and
destination address of the cell group: the letters of where it lands (``C`` container, ``P``
docker-proxy, ``H`` host service), ``-`` refused or nothing listens, ``x`` the first packet is
let through but the connection cannot be established, ``?`` the snapshot cannot tell; a ``*``
after the letters means only some sources or destinations get through (the lines under the
table say which).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from natlens.exposure import Cell, ExposureMap, Row
from natlens.textsafe import terminal

__all__ = ["LEGEND", "render_table", "summary"]

WIDTH = 80
"""Columns of the table when no width is given (output to a pipe or file, COLUMNS unset)."""
LEGEND = ("C container  P docker-proxy  H host service  - refused / nothing listens  "
          "x let through, cannot be established  ? cannot tell  * only some sources or "
          "destinations (below)")
_KIND = {"container": "C", "proxy": "P", "host": "H"}


def summary(cells: Sequence[Cell]) -> str:
    """The symbol of a group of cells (see the module docstring); empty when there are none."""
    if not cells:
        return ""
    letters = "".join(dict.fromkeys(_KIND[c.target.kind] for c in cells
                                    if c.reachable and c.target is not None))
    if any(c.reachable and c.target is None for c in cells):
        letters += "C"
    unknown = any(c.reachable is None for c in cells)
    refused = [c for c in cells if c.reachable is False]
    if not letters:
        if unknown:
            return "?"
        blocked = all(c.lands is not None for c in refused)
        return "x" if blocked else "-"
    if refused:
        return letters + "*"
    return letters + ("?" if unknown else "")


def _headers(emap: ExposureMap) -> list[str]:
    out = []
    for i in emap.ingresses:
        name = terminal(emap.networks.get(i, i))
        out.append(name if len(name) <= 12 else name[:11] + "~")
    return out


def render_table(emap: ExposureMap, width: int = WIDTH) -> str:
    """The map as a text table of at most ``width`` columns (see the module docstring)."""
    if not emap.rows:
        empty = [_wrap("exposure: nothing to map: the map covers Docker published ports, "
                       "container ports (docker-containers.json) and host services (ss.txt), "
                       "and the input shows none", " ", width)]
        empty += [_wrap(f"note: {terminal(n)}", " ", width) for n in emap.notes]
        return "\n".join(empty)
    heads = _headers(emap)
    widths = [max(len(h), 4) + 1 for h in heads]
    label_width = max(len("port"), *(len(terminal(_label(r))) for r in emap.rows))
    # as many ingress columns as fit next to a label of at least 24 characters; the rest in
    # another block
    blocks: list[list[int]] = [[]]
    used = 0
    for k, w in enumerate(widths):
        if blocks[-1] and used + w > width - 25:
            blocks.append([])
            used = 0
        blocks[-1].append(k)
        used += w
    by_row: dict[int, dict[str, list[Cell]]] = {}
    for c in emap.cells:
        by_row.setdefault(id(c.row), {}).setdefault(c.ingress, []).append(c)
    lines: list[str] = []
    for cols in blocks:
        room = width - 1 - sum(widths[k] for k in cols)
        lw = min(label_width, room)
        lines.append(f"{'port':<{lw}} " + "".join(f"{heads[k]:>{widths[k]}}" for k in cols))
        for row in emap.rows:
            groups = by_row.get(id(row), {})
            label = terminal(_label(row))
            if len(label) > lw:
                label = label[:lw - 1] + "~"
            lines.append(f"{label:<{lw}} " + "".join(
                f"{summary(groups.get(emap.ingresses[k], [])) or '.':>{widths[k]}}"
                for k in cols))
        lines.append("")
    lines.append(_wrap("legend: " + LEGEND + "  . not asked", "  ", width))
    details = _details(emap, by_row, width)
    if details:
        lines.append("")
        lines.append(_wrap("where it depends on the source or destination:", " ", width))
        lines += details
    lines += [_wrap(f"note: {terminal(n)}", " ", width) for n in emap.notes]
    return "\n".join(lines)


def _label(row: Row) -> str:
    return row.label + (" v6" if row.family == 6 else "")


def _wrap(text: str, sep: str, width: int, indent: str = "") -> str:
    """``text`` cut at ``sep`` into lines of at most ``width`` characters (a longer word stays
    whole), the first line indented by ``indent``, the others by two more blanks."""
    out: list[str] = []
    line = indent
    words = text.split(sep)
    if sep != " ":  # an item wider than a line (a legend's at 40 columns) is cut at blanks
        room = width - len(indent) - 2
        words = [part for word in words
                 for part in (textwrap.wrap(word, room, break_long_words=False)
                              if len(word) > room else [word])]
    for word in words:
        if line.strip() and len(line) + len(sep) + len(word) > width:
            out.append(line)
            line = indent + "  " + word
        else:
            line = f"{line}{sep}{word}" if line.strip() else line + word
    out.append(line)
    return "\n".join(out)


def _who(c: Cell) -> str:
    if c.ingress == "local":
        src = "the host"
    elif len(c.sources) > 3:
        src = f"{c.ingress} from the other sources ({len(c.sources)} prefixes)"
    elif c.sources:
        src = f"{c.ingress} from {', '.join(c.sources)}"
    else:
        src = c.ingress
    return f"{src} to {c.dst}"


def _details(emap: ExposureMap, by_row: dict[int, dict[str, list[Cell]]],
             width: int) -> list[str]:
    out: list[str] = []
    for row in emap.rows:
        for _ingress, cells in by_row.get(id(row), {}).items():
            if not summary(cells).endswith("*"):
                continue
            for c in cells:
                fate = (f"reaches {c.target.kind} {c.target.name} at {c.lands}"
                        if c.reachable and c.target is not None
                        else "cannot tell" if c.reachable is None
                        else f"refused ({c.why})" if c.lands is None else f"fails ({c.why})")
                out.append(_wrap(terminal(f"{_label(row)}: {_who(c)}: {fate}"), " ", width,
                                 "  "))
    return out
