"""Batch questions: many packets through one prepared snapshot (issue 13).

``simulate_many(snapshot, packets)`` traces each packet with the snapshot's one ``Simulator``
(rules prepared once, on first use). ``read_packets(path)`` reads the packet file of ``natlens
trace PATH --packets FILE``: one packet per line, either

- JSON lines: one object per line, keys as the ``trace`` options: ``in`` (or ``in_interface``),
  ``local_origin``, ``src``, ``dst``, ``proto``, ``sport``, ``dport``, ``icmp_type``,
  ``state``, ``mark``; or
- CSV: a header line naming some of these columns (``src,dst,in,dport``), then one packet per
  line; an empty cell is an unset option (``local_origin``: ``true``/``1``/``yes`` or empty).
  The columns are separated by ``,``, ``;`` (a spreadsheet's export where ``,`` is the decimal
  separator) or a tab, as ``csv.Sniffer`` tells from the header line; a header separated by
  anything else (``|``, blanks) is refused, naming what it saw.

Values read as the options do (``Packet``, ``natlens.services``): ``sport``/``dport`` a number or
a service name of ``/etc/services`` (``http``), ``proto`` a name or number in any case (``TCP``,
``17``).

The format is told by the first line that is not blank: ``{`` starts JSON lines. Blank lines and
lines starting with ``#`` are skipped, and so are CSV rows whose cells are all empty (``,,,,``:
the row a spreadsheet program may leave at the end); a UTF-8 byte-order mark at the start is
ignored (what spreadsheet programs put before a CSV file). A line that is not a packet raises
``PacketFileError`` naming the file and line (the CLI prints it as one line, exit status 2), and
so do a file that holds no packet at all and a JSON array (``[{...}, {...}]``: one object per
line is wanted, so that each packet has its line number).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from natlens.errors import InterfaceNameError, NatlensError, UsageError
from natlens.inputs import read_bytes
from natlens.netfilter.packet import Packet
from natlens.netfilter.trace import Trace
from natlens.textsafe import terminal

if TYPE_CHECKING:
    from natlens.api import SnapshotLike

__all__ = ["FIELDS", "PacketFileError", "packet_line", "read_packets", "simulate_many"]

FIELDS = {
    "in": "in_interface", "in_interface": "in_interface", "local_origin": "local_origin",
    "src": "src", "dst": "dst", "proto": "proto", "sport": "sport", "dport": "dport",
    "icmp_type": "icmp_type", "state": "state", "mark": "mark",
}
"""Key or column name → ``Packet`` keyword (``-`` in a name reads as ``_``: ``local-origin``)."""

_INTEGERS = ("sport", "dport")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")


class PacketFileError(NatlensError):
    """A line of a packet file that is not a packet: ``FILE:LINE: reason`` (``FILE: reason``
    when no line is to blame: ``line_no`` None)."""

    def __init__(self, reason: str, *, source: str, line_no: int | None) -> None:
        self.source, self.line_no, self.reason = source, line_no, reason
        where = source if line_no is None else f"{source}:{line_no}"
        super().__init__(f"{where}: {reason}")


def simulate_many(snapshot: SnapshotLike, packets: Iterable[Packet]) -> list[Trace]:
    """Trace every packet of ``packets`` through ``snapshot`` → one ``Trace`` per packet, in
    order, each what ``natlens.simulate(snapshot, packet)`` gives (notes included).

    ``snapshot`` is what ``natlens.simulate`` accepts (a ``Snapshot``, a path, a ``Ruleset``);
    it is loaded once and its rules prepared once (``Snapshot.simulator``), shared by every
    packet. Raises ``UsageError`` for a bad ``snapshot`` type or an item that is not a
    ``natlens.Packet``, and what loading a path raises.
    """
    from natlens.api import as_snapshot  # noqa: PLC0415
    from natlens.explain import proxy_notes  # noqa: PLC0415

    snap = as_snapshot(snapshot, caller="natlens.simulate_many")
    simulator = snap.simulator
    traces: list[Trace] = []
    for n, packet in enumerate(packets):
        if not isinstance(packet, Packet):
            raise UsageError(f"natlens.simulate_many: item {n}: expected a natlens.Packet, "
                             f"got {type(packet).__name__}")
        trace = simulator.trace(packet)
        notes = proxy_notes(snap, trace)
        traces.append(replace(trace, notes=tuple(notes)) if notes else trace)
    return traces


def _packet(values: dict[str, Any], source: str, line_no: int) -> Packet:
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = FIELDS.get(str(key).replace("-", "_").lower())
        if name is None:
            raise PacketFileError(f"unknown field {str(key)[:40]!r} (known: "
                                  f"{', '.join(sorted(FIELDS))})", source=source,
                                  line_no=line_no)
        if value is None or value == "":
            continue
        if name == "local_origin":
            if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
                value = value.lower() in _TRUE
            if not isinstance(value, bool):
                raise PacketFileError(f"local_origin: expected true or false, got {value!r}",
                                      source=source, line_no=line_no)
        elif name in _INTEGERS:
            # a number, or a service name Packet looks up for its protocol (as --dport reads it)
            if not isinstance(value, (int, str)) or isinstance(value, bool):
                raise PacketFileError(f"{name}: expected a port number or service name, got "
                                      f"{str(value)[:40]!r}", source=source, line_no=line_no)
            if isinstance(value, str) and value.isascii() and value.strip().isdecimal():
                value = int(value)
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            raise PacketFileError(f"{name}: expected a string, got {type(value).__name__}",
                                  source=source, line_no=line_no)
        kwargs[name] = value
    for needed in ("src", "dst"):
        if needed not in kwargs:
            hint = " (a packet file names every packet's source: give a src column; only " \
                "'natlens trace --local-origin' without --src infers it)" \
                if needed == "src" and kwargs.get("local_origin") else \
                f" (give a {needed} column or field)"
            raise PacketFileError(f"no {needed}{hint}", source=source, line_no=line_no)
    try:
        return Packet(**kwargs)
    except InterfaceNameError as exc:  # named as the field, as --in is on the command line
        raise PacketFileError(f"in {exc.name!r}: {exc.reason}", source=source,
                              line_no=line_no) from None
    except NatlensError as exc:
        raise PacketFileError(str(exc), source=source, line_no=line_no) from None


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if line.strip() and not line.lstrip().startswith("#"):
            yield n, line


DELIMITERS = ",;\t"
"""The CSV delimiters a packets file may use (a spreadsheet's export: ``;`` where ``,`` is the
decimal separator)."""


def _delimiter(header: str, source: str, line_no: int) -> str:
    """The delimiter of a CSV packets file, told by its header line (``csv.Sniffer`` restricted
    to ``DELIMITERS``); ``,`` for a header of one column. Raises ``PacketFileError`` naming the
    delimiter seen when the header separates its columns by another (``|``, blanks)."""
    sniffer = csv.Sniffer()
    try:
        return sniffer.sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:
        pass
    if FIELDS.get(header.strip().strip('"').replace("-", "_").lower()) is not None:
        return ","  # one column: nothing to separate
    try:
        seen = sniffer.sniff(header).delimiter
    except csv.Error:
        return ","  # the header's unknown column is named by the caller
    if seen.isalnum() or seen in "_-":
        return ","
    shown = "a blank" if seen == " " else repr(seen)
    raise PacketFileError(f"CSV header: columns separated by {shown}; natlens reads ',', ';' "
                          "or a tab between columns", source=source, line_no=line_no)


def _cells(line: str, source: str, line_no: int, delimiter: str = ",") -> list[str]:
    """The cells of one CSV line (``csv`` strict: an unterminated quote or a stray ``\\r`` is
    an error, not a cell running to the end of the line)."""
    try:
        return next(csv.reader([line], strict=True, delimiter=delimiter))
    except csv.Error as exc:
        raise PacketFileError(f"bad CSV: {exc}", source=source, line_no=line_no) from None


def read_packets(path: str) -> list[tuple[int, Packet]]:
    """The packets of the file at ``path`` (``-``: standard input) → ``(line number,
    packet)`` pairs, at least one. Raises ``PacketFileError`` (file and line) for a line that
    is not a packet, a JSON array, or a file without any packet, ``SnapshotError`` for a file
    that cannot be read."""
    data, source = read_bytes(path)
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line_no = data[:exc.start].count(b"\n") + 1
        raise PacketFileError("not UTF-8 text", source=source, line_no=line_no) from None
    lines = list(_lines(text))
    if not lines:
        raise PacketFileError("no packets given (the file is empty or holds only blank and "
                              "# lines)", source=source, line_no=None)
    if lines[0][1].lstrip().startswith("["):
        raise PacketFileError("expected one JSON object per line (JSON lines), got a JSON "
                              "array", source=source, line_no=lines[0][0])
    out: list[tuple[int, Packet]] = []
    if lines[0][1].lstrip().startswith("{"):
        for n, line in lines:
            try:
                value = json.loads(line)
            except (ValueError, RecursionError) as exc:
                # ValueError beyond JSONDecodeError: an integer of more digits than int() takes
                reason = (exc.msg if isinstance(exc, json.JSONDecodeError) else
                          "nested too deep" if isinstance(exc, RecursionError) else
                          "number too large")
                raise PacketFileError(f"not a JSON object: {reason}", source=source,
                                      line_no=n) from None
            if not isinstance(value, dict):
                raise PacketFileError(f"not a JSON object: {type(value).__name__}",
                                      source=source, line_no=n)
            out.append((n, _packet(value, source, n)))
        return out
    header_no, header = lines[0]
    delimiter = _delimiter(header, source, header_no)
    columns = [c.strip() for c in _cells(header, source, header_no, delimiter)]
    for c in columns:
        if FIELDS.get(c.replace("-", "_").lower()) is None:
            raise PacketFileError(f"CSV header: unknown column {c[:40]!r} (known: "
                                  f"{', '.join(sorted(FIELDS))})", source=source,
                                  line_no=header_no)
    for n, line in lines[1:]:
        cells = _cells(line, source, n, delimiter)
        if not any(c.strip() for c in cells):
            continue  # a row of empty cells (",,,,": a spreadsheet's trailing row)
        if len(cells) != len(columns):
            raise PacketFileError(f"{len(cells)} cells, the header has {len(columns)}",
                                  source=source, line_no=n)
        out.append((n, _packet(dict(zip(columns, (c.strip() for c in cells), strict=True)),
                               source, n)))
    if not out:
        raise PacketFileError("no packets given (only the CSV header line)", source=source,
                              line_no=None)
    return out


def packet_line(line_no: int, trace: Trace) -> str:
    """One line for a person: ``LINE: PACKET => VERDICT (PATH) SRC -> DST via IFACE``, then
    ``[N branches]`` when the outcome branches (``[N branches: ACCEPT, REJECT]`` when the branches
    end with different verdicts, so no verdict hides behind the first one) and the connection's
    state when known."""
    via = f" via {trace.out_interface}" if trace.out_interface else ""
    text = (f"{line_no}: {trace.packet!r} => {trace.verdict.value} ({trace.path.value}) "
            f"{trace.final_src} -> {trace.final_dst}{via}")
    if trace.branches:
        verdicts = dict.fromkeys(b.verdict.value for b in trace.branches)
        listed = f": {', '.join(verdicts)}" if len(verdicts) > 1 else ""
        text += f" [{len(trace.branches)} branches{listed}]"
    if trace.connection is not None and trace.connection.established is not None:
        text += "; connection " + ("established" if trace.connection.established
                                   else "NOT established")
    return terminal(text)
