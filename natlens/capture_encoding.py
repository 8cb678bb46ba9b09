"""Bytes that are not UTF-8 in what ``natlens snapshot`` captures, written as ``\\xNN`` text.

The kernel keeps names and comments as bytes, and the tools print them raw: ``iptables-save``
writes a comment (``xt_comment``), a log prefix, a chain name or an interface name byte for byte
(``xtables_save_string`` escapes only ``"`` and ``\\``; names are printed unquoted), ``ip -j``
puts interface names raw inside JSON strings, ``ss -p`` prints process names raw. A host with a
Latin-1 comment (``iptables -m comment --comment "$(printf 'caf\\xe9')"``) thus gives a dump that
is not UTF-8, which natlens refuses when it is read (``natlens.inputs.decode_text``: a pasted file
is nearly always one re-saved by an editor). The capture, which knows the bytes came from the
kernel, writes each byte that is not part of a UTF-8 sequence as the four characters ``\\xNN``
(two lower-case hex digits), so the files are UTF-8 and every reader of the snapshot sees the
same name for the same bytes:

- in iptables-save text outside quotes (chain, interface and set names) as ``\\xNN``; inside a
  quoted stretch as ``\\\\xNN``, which iptables-restore and natlens read back as ``\\xNN`` (a
  backslash escapes the next character there: ``add_param_to_argv``, iptables/xshared.c);
- the string match's pattern is the one place where such bytes decide a verdict. libxt_string
  never prints them raw (``string_save`` writes the whole pattern as ``--hex-string "|..|"`` as
  soon as one byte is not ``isprint`` in the C locale, checked on iptables 1.8.9, both
  backends); should a ``--string`` argument still hold one, it is rewritten the same way, so
  its bytes stay exact;
- in JSON (``ip -j``) inside the decoded string values (written back by ``json.dumps``);
- in other text (``ss``) as ``\\xNN``.

The escape is not undone when the snapshot is read: ``caf\\xe9`` is the comment natlens shows,
and ``et\\xe9`` names the same interface in the rules and in ``ip-addr.json``. It is ambiguous
only with names already holding the text ``\\xNN``; the capture says so when the output held
such text (``ambiguous``). ``meta.json`` records every file escaped (``non_utf8``), and
``natlens.snapshot`` turns that record into notes (``meta_notes``). docs/snapshots.md
("Bytes that are not UTF-8").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ESCAPE", "Escaped", "escape_json", "escape_save", "escape_text",
    "meta_notes",
]

ESCAPE = "\\xNN"
"""How a byte that is not UTF-8 is written (meta.json's ``non_utf8.escape``)."""

_MAX_LINES = 20
_MAX_VALUES = 10
_SURROGATE = re.compile("[\udc80-\udcff]")
_LITERAL = re.compile(rb"\\x[0-9a-fA-F]{2}")
# One argument as iptables-restore splits a line (natlens.parse.tokens): an optional bare
# prefix glued to a quoted stretch, or a bare word.
_ARG = re.compile(r'([^ \t\n"]*)"((?:[^"\\]|\\.)*)"|[^ \t\n"]+', re.DOTALL)
_BLANKS = re.compile(r"[ \t\n]+")
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Escaped:
    """One captured output made UTF-8: ``text``; ``count`` bytes escaped; ``lines`` (1-based,
    the first 20) or ``values`` (JSON strings holding an escape, the first 10) where they
    were; ``strings`` string-match patterns rewritten as ``--hex-string``; ``ambiguous`` when
    the output already held the text ``\\xNN``."""

    text: str
    count: int = 0
    lines: tuple[int, ...] = ()
    values: tuple[str, ...] = ()
    strings: int = 0
    ambiguous: bool = False

    def record(self) -> dict[str, Any]:
        """The ``meta.json`` entry: ``{"bytes", "lines" | "values", ...}``."""
        out: dict[str, Any] = {"bytes": self.count}
        if self.lines:
            out["lines"] = list(self.lines)
        if self.values:
            out["values"] = list(self.values)
        if self.strings:
            out["string_patterns_as_hex"] = self.strings
        if self.ambiguous:
            out["ambiguous"] = True
        return out


def _hex(ch: str) -> str:
    return f"\\x{ord(ch) - 0xDC00:02x}"


def _plain(text: str) -> str:
    """Every surrogateescape'd byte of ``text`` as ``\\xNN``."""
    return _SURROGATE.sub(lambda m: _hex(m.group()), text)


def escape_text(data: bytes) -> Escaped:
    """Text output (``ss``): each byte that is not UTF-8 as ``\\xNN``.

    >>> e = escape_text(b"users:((\\"caf\\xe9\\",pid=1))\\n")
    >>> e.text, e.count, e.lines
    ('users:(("caf\\\\xe9",pid=1))\\n', 1, (1,))
    """
    return _escape_lines(data, lambda text: (_plain(text), 0))


def escape_save(data: bytes) -> Escaped:
    """iptables-save text: bytes that are not UTF-8 as ``\\xNN`` outside quotes and ``\\\\xNN``
    inside (read back as ``\\xNN``); a ``--string`` pattern holding one becomes
    ``--hex-string "|..|"`` with its exact bytes.

    >>> e = escape_save(b'-A INPUT -i et\\xe9 -m comment --comment "caf\\xe9" -j ACCEPT\\n')
    >>> print(e.text, end="")
    -A INPUT -i et\\xe9 -m comment --comment "caf\\\\xe9" -j ACCEPT
    >>> print(escape_save(b'-A INPUT -m string --string "a\\xff" --algo bm -j DROP').text)
    -A INPUT -m string --hex-string "|61ff|" --algo bm -j DROP
    """
    return _escape_lines(data, _escape_rule_line)


def _escape_lines(data: bytes, escape_line: Callable[[str], tuple[str, int]]) -> Escaped:
    """``data`` decoded as UTF-8, each line holding bytes that are not (surrogateescape'd)
    rewritten by ``escape_line`` (-> its escaped form, string patterns rewritten)."""
    try:
        return Escaped(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    count = strings = 0
    lines: list[int] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        text = line.decode("utf-8", "surrogateescape")
        found = len(_SURROGATE.findall(text))
        if found:
            count += found
            if len(lines) < _MAX_LINES:
                lines.append(number)
            text, rewritten = escape_line(text)
            strings += rewritten
        out.append(text)
    return Escaped("\n".join(out), count, tuple(lines), strings=strings,
                   ambiguous=_LITERAL.search(data) is not None)


def _escape_rule_line(line: str) -> tuple[str, int]:
    """One line with surrogateescape'd bytes → (its escaped form, string patterns rewritten)."""
    if line.startswith("#"):
        return _plain(line), 0
    pieces: list[str] = []
    previous = ""  # the last argument, unescaped
    previous_at = -1  # its index in pieces
    rewritten = 0
    pos, end = 0, len(line)
    while pos < end:
        blanks = _BLANKS.match(line, pos)
        if blanks is not None:
            pieces.append(blanks.group())
            pos = blanks.end()
            continue
        m = _ARG.match(line, pos)
        if m is None:  # an unterminated quote (never printed by iptables-save): plain escapes
            pieces.append(_plain(line[pos:]))
            break
        inside = m.group(2)
        raw = m.group()
        if inside is None:
            value = raw
            pieces.append(_plain(raw))
        else:
            value = m.group(1) + _UNESCAPE.sub(r"\1", inside)
            if previous == "--string" and _SURROGATE.search(value):
                pattern = value.encode("utf-8", "surrogateescape")
                pieces[previous_at] = "--hex-string"
                pieces.append(f'"|{pattern.hex()}|"')
                rewritten += 1
            else:
                pieces.append(f'{_plain(m.group(1))}"'
                              + _SURROGATE.sub(lambda c: "\\" + _hex(c.group()), inside) + '"')
        previous, previous_at = value, len(pieces) - 1
        pos = m.end()
    return "".join(pieces), rewritten


def escape_json(data: bytes) -> tuple[Any, Escaped]:
    """JSON output (``ip -j``): → (the decoded value with ``\\xNN`` in its strings, what was
    escaped; ``Escaped.text`` is empty). Raises ``ValueError`` for output that is not JSON.

    >>> value, e = escape_json(b'[{"ifname": "et\\xe9"}]')
    >>> value, e.count, e.values
    ([{'ifname': 'et\\\\xe9'}], 1, ('et\\\\xe9',))
    """
    try:
        return json.loads(data.decode("utf-8")), Escaped("")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "surrogateescape")
    value = json.loads(text)
    values: list[str] = []

    def fix(node: Any) -> Any:
        if isinstance(node, str):
            if _SURROGATE.search(node) is None:
                return node
            fixed = _plain(node)
            if fixed not in values and len(values) < _MAX_VALUES:
                values.append(fixed)
            return fixed
        if isinstance(node, list):
            return [fix(item) for item in node]
        if isinstance(node, dict):
            return {fix(key): fix(item) for key, item in node.items()}
        return node

    return fix(value), Escaped("", len(_SURROGATE.findall(text)), values=tuple(values),
                               ambiguous=_LITERAL.search(data) is not None)


def meta_notes(meta: Mapping[str, Any]) -> list[str]:
    """Notes for a snapshot whose ``meta.json`` records escaped bytes (``non_utf8.files``) or
    nftables tables nft could not print as JSON (``nft_tables_missing``); fields of the wrong
    shape (a hand-edited meta.json) are skipped.

    >>> print(*meta_notes({"non_utf8": {"escape": "\\\\xNN", "files": {
    ...     "iptables-save.txt": {"bytes": 2, "lines": [6, 9]}}}}))
    iptables-save.txt: 2 bytes that are not UTF-8 written as \\xNN by natlens snapshot (lines 6, 9)
    """
    notes: list[str] = []
    record = meta.get("non_utf8")
    files = record.get("files") if isinstance(record, dict) else None
    if isinstance(files, dict):
        for name, entry in sorted(files.items()):
            if not isinstance(entry, dict) or type(entry.get("bytes")) is not int:
                continue
            where = ""
            lines = entry.get("lines")
            if isinstance(lines, list) and lines and all(type(n) is int for n in lines):
                where = f" (line{'s' if len(lines) > 1 else ''} " \
                        f"{', '.join(map(str, lines[:_MAX_LINES]))})"
            count = entry["bytes"]
            odd = "; the output held such text already: ambiguous" \
                if entry.get("ambiguous") is True else ""
            notes.append(f"{str(name)[:100]}: {count} byte{'s' if count != 1 else ''} that "
                         f"{'are' if count != 1 else 'is'} not UTF-8 written as {ESCAPE} by "
                         f"natlens snapshot{where}{odd}")
    missing = meta.get("nft_tables_missing")
    if isinstance(missing, list):
        for item in missing[:_MAX_VALUES]:
            if isinstance(item, dict) and isinstance(item.get("table"), str):
                notes.append(f"nftables table {item['table'][:100]}: not captured ("
                             f"{str(item.get('why', ''))[:200]})")
    return notes
