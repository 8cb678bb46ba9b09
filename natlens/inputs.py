"""Reading input within bounds: size, encoding, JSON nesting and number length.

Everything natlens reads from a file or standard input comes through here, so broken or hostile
input (``/dev/zero``, an endless pipe, a directory named like a file, UTF-16 from Windows
PowerShell, 100,000 nested ``[``, a 5,000-digit number) ends in one ``SnapshotError`` naming the
file, never in a traceback or an exhausted machine.

Limits (docs/snapshots.md, "Bad input"):

- ``MAX_INPUT_BYTES``: 1 GiB per file, or ``$NATLENS_MAX_INPUT`` (bytes, or a number with ``K``,
  ``M`` or ``G``). Input is read in blocks and refused as soon as it passes the limit.
- Binary input (a NUL byte in the first block) is refused at once.
- JSON: UTF-8 (a UTF-8 byte-order mark is accepted, as ``utf-8-sig`` decodes it); UTF-16/32 and
  other encodings are refused with a hint. At most ``MAX_JSON_DEPTH`` levels of nesting, numbers
  of at most ``MAX_NUMBER_DIGITS`` digits, no ``NaN``/``Infinity`` (not JSON, RFC 8259 section 6).
"""

from __future__ import annotations

import codecs
import errno
import json
import math
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from natlens.errors import SnapshotError, SnapshotJsonError, UsageError

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_DIGITS",
    "decode_json",
    "decode_text",
    "input_limit",
    "is_decimal",
    "open_regular",
    "read_bytes",
    "read_json",
    "special_file",
]

MAX_INPUT_BYTES = 1 << 30
"""Default size limit of one input file (1 GiB); ``$NATLENS_MAX_INPUT`` overrides it."""
MAX_JSON_DEPTH = 64
"""Deepest JSON nesting accepted (``docker inspect`` output nests about 6 levels)."""
MAX_NUMBER_DIGITS = 30
"""Longest JSON number accepted, in characters (a 64-bit value has 20)."""

_FIRST_BLOCK = 64 * 1024
_BLOCK = 1 << 20
_SIZE = re.compile(r"^\s*([0-9]{1,15})\s*([KMG]?)i?B?\s*$", re.IGNORECASE)
"""A size: ASCII digits only (``\\d`` takes any Unicode digit) and few enough for ``int``."""
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
)


def input_limit() -> int:
    """The size limit in bytes: ``$NATLENS_MAX_INPUT`` (``512M``, ``2G``, ``1000000``) or 1 GiB.

    Raises ``UsageError`` for a value that is not a size.
    """
    value = os.environ.get("NATLENS_MAX_INPUT")
    if not value:
        return MAX_INPUT_BYTES
    m = _SIZE.match(value)
    if m is None or int(m.group(1)) == 0:
        raise UsageError(f"NATLENS_MAX_INPUT={value[:40]!r}: not a size (e.g. 512M, 2G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def _human(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size:,} bytes"


def _wide_encoding(block: bytes) -> str | None:
    """``"UTF-16"``/``"UTF-32"`` when ``block`` starts with their byte-order mark or looks like
    ASCII text in UTF-16 (every other byte NUL), else None."""
    for bom, name in _WIDE_BOMS:
        if block.startswith(bom):
            return name
    sample = block[:200]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if half >= 2 and min(even, odd) == 0 and max(even, odd) >= half * 9 // 10:
        return "UTF-16"
    return None


def _read_stream(fh: BinaryIO | TextIO, name: str, limit: int) -> bytes:
    def read(size: int) -> bytes:
        block = fh.read(size)
        return block.encode("utf-8", "surrogateescape") if isinstance(block, str) else block

    first = read(_FIRST_BLOCK)
    wide = _wide_encoding(first)
    if wide is not None:
        raise SnapshotError(f"{name}: {wide} text, not UTF-8 (re-save it as UTF-8, e.g. "
                            f"iconv -f {wide} -t UTF-8)")
    if b"\0" in first:
        raise SnapshotError(f"{name}: binary file, not text")
    chunks = [first]
    size = len(first)
    while chunks[-1]:
        if size > limit:
            raise SnapshotError(f"{name}: larger than the {_human(limit)} input limit (set "
                                "NATLENS_MAX_INPUT to read it anyway)")
        chunk = read(min(_BLOCK, limit + 1 - size))
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def special_file(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is when it is neither a regular file nor a directory
    (``"a FIFO"``, ``"a character device"``, ``"a block device"``, ``"a socket"``, ``"not a
    file"`` for any other type), else None (inode(7), "The file type and mode")."""
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "not a file"


def open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only when it is a regular file (symbolic links followed): a
    file of a snapshot folder, which natlens reads unasked. A FIFO is never opened (``open``
    would wait for a writer for ever), a device never read (``/dev/urandom`` has no end): the
    file type is checked with ``stat`` before ``open``, and again with ``fstat`` on what was
    opened (``O_NONBLOCK``: a FIFO put in its place meanwhile does not block the ``open``).

    Raises ``SnapshotError`` ``PATH: not a regular file (a FIFO)``, ``IsADirectoryError`` for a
    directory, and ``OSError`` from ``stat``/``open`` (missing, unreadable).
    """
    _refuse_special(path, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        _refuse_special(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _refuse_special(path: Path, mode: int) -> None:
    why = special_file(mode)
    if why is not None:
        raise SnapshotError(f"{path}: not a regular file ({why})")
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))


def read_bytes(path: str | Path, *, limit: int | None = None,
               regular: bool = False) -> tuple[bytes, str]:
    """Read a file (``-`` is standard input) → (its bytes, the name used in messages).

    Reads block by block and stops at ``limit`` bytes (default ``input_limit()``). Raises
    ``SnapshotError`` when the file is missing, a directory, unreadable, binary, UTF-16/32, or
    over the limit; the message names the file and says why (``strerror``). ``regular``: refuse
    what is not a regular file (``open_regular``: the files of a snapshot folder); a file named
    on the command line may be a pipe (``<(iptables-save)``), as ``-`` may.
    """
    limit = input_limit() if limit is None else limit
    if str(path) == "-":
        stdin = sys.stdin
        if stdin is None:
            raise SnapshotError("<stdin>: standard input is closed")
        try:  # the bytes when there are any (a test's StringIO has text only)
            return _read_stream(getattr(stdin, "buffer", stdin), "<stdin>", limit), "<stdin>"
        except OSError as exc:
            raise SnapshotError(f"<stdin>: cannot read: {exc.strerror or exc}") from None
    p = Path(path)
    try:
        with open_regular(p) if regular else p.open("rb") as fh:
            return _read_stream(fh, str(p), limit), str(p)
    except FileNotFoundError:
        what = "broken symbolic link" if p.is_symlink() else "no such file or directory"
        raise SnapshotError(f"{p}: {what}") from None
    except IsADirectoryError:
        raise SnapshotError(f"{p}: is a directory, not a file") from None
    except OSError as exc:
        raise SnapshotError(f"{p}: cannot read: {exc.strerror or exc}") from None


def is_decimal(text: str, max_digits: int = 20) -> bool:
    """Whether ``int(text)`` reads ``text`` as a plain number: ASCII digits only (``'²'.isdigit()``
    holds but ``int`` refuses it) and at most ``max_digits`` of them (``int`` refuses more than
    4,300 digits, and no value natlens reads has more than 20).

    >>> is_decimal("8080"), is_decimal("²"), is_decimal("9" * 5000), is_decimal("")
    (True, False, False, False)
    """
    return text.isascii() and text.isdigit() and len(text) <= max_digits


def decode_text(data: bytes, name: str) -> str:
    """Rule text from bytes: UTF-8 (a byte-order mark dropped).

    Raises ``SnapshotError`` ``NAME:LINE:COLUMN: not UTF-8: byte 0xNN (Latin-1? ...iconv...)``
    at the first byte that is not UTF-8 (line and column from 1, the column in characters), as
    docs/snapshots.md promises: such a file is nearly always a dump re-saved by an editor in
    Latin-1 or Windows-1252, and replacing the bytes by U+FFFD would silently change the
    comments and names a report quotes. iptables-save writes comments byte for byte: a dump
    made by hand on a host whose comments hold other bytes needs converting (iconv), while
    ``natlens snapshot`` writes such bytes as ``\\xNN`` (``natlens.capture_encoding``)."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, start) + 1
        column = len(data[start:exc.start].decode("utf-8")) + 1
        raise SnapshotError(
            f"{name}:{line}:{column}: not UTF-8: byte 0x{data[exc.start]:02x} (Latin-1? re-save "
            "it as UTF-8, e.g. iconv -f LATIN1 -t UTF-8)") from None


class _NumberTooLongError(ValueError):
    pass


def _float(text: str) -> float:
    value = float(text)
    if len(text) > MAX_NUMBER_DIGITS or not math.isfinite(value):
        raise _NumberTooLongError(text)
    return value


def _constant(text: str) -> Any:
    raise _NumberTooLongError(text)


_BIG = 10 ** MAX_NUMBER_DIGITS


def _check_tree(value: Any) -> None:
    """Refuse a decoded tree nested deeper than ``MAX_JSON_DEPTH`` or holding an integer longer
    than ``MAX_NUMBER_DIGITS`` digits (iterative: one pass over the containers, early exit)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > MAX_JSON_DEPTH:
            raise _TooDeepError(depth)
        for item in (node.values() if type(node) is dict else node):
            kind = type(item)
            if kind is dict or kind is list:
                push((item, depth + 1))
            elif kind is int and not -_BIG < item < _BIG:
                raise _NumberTooLongError(str(item) if item.bit_length() < 10_000 else "…")


class _TooDeepError(Exception):
    pass


def decode_json(data: bytes, source: str) -> Any:
    """Parse JSON bytes within the limits of this module.

    Raises ``SnapshotJsonError`` naming ``source`` (and the line of a syntax error): not UTF-8
    (with the offending byte; UTF-16/32 named), invalid JSON, nested deeper than
    ``MAX_JSON_DEPTH``, a number longer than ``MAX_NUMBER_DIGITS``, ``NaN``/``Infinity``.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    wide = _wide_encoding(data)
    if wide is not None:
        raise SnapshotJsonError(f"{wide} text, not UTF-8 (re-save it as UTF-8, e.g. iconv -f "
                                f"{wide} -t UTF-8)", source=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SnapshotJsonError(
            f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (Latin-1? re-save "
            "it as UTF-8)", source=source, line_no=line) from None
    try:
        value = json.loads(text, parse_float=_float, parse_constant=_constant)
        if type(value) is dict or type(value) is list:
            _check_tree(value)
        return value
    except _TooDeepError as exc:
        raise SnapshotJsonError(f"nested too deeply ({exc} levels; at most {MAX_JSON_DEPTH})",
                                source=source) from None
    except _NumberTooLongError as exc:
        number = str(exc)
        shown = number if len(number) <= 40 else f"{number[:20]}…({len(number):,} characters)"
        raise SnapshotJsonError(f"number too large or not finite: {shown}",
                                source=source) from None
    except json.JSONDecodeError as exc:
        from natlens.snapshot_checks import json_mistake  # noqa: PLC0415  (only on a failure)

        hint = json_mistake(text, source)
        if hint is not None:
            raise SnapshotJsonError(hint, source=source) from None
        # json's msg may stop before its own " at line X column Y" tail ("Unterminated string
        # starting at"): drop a dangling "at", the position is given by line_no/column.
        msg = exc.msg.removesuffix(" starting at").removesuffix(" at")
        raise SnapshotJsonError(f"invalid JSON: {msg}", source=source,
                                line_no=exc.lineno,
                                column=exc.colno) from None
    except RecursionError:  # the C decoder's own limit, far above MAX_JSON_DEPTH
        raise SnapshotJsonError(f"nested too deeply (at most {MAX_JSON_DEPTH} levels)",
                                source=source) from None
    except ValueError as exc:  # int() refuses more than sys.get_int_max_str_digits() digits
        raise SnapshotJsonError(f"number too large ({exc})"[:200], source=source) from None


def read_json(path: str | Path, *, limit: int | None = None, regular: bool = False) -> Any:
    """Read and parse a JSON file within bounds (``read_bytes`` then ``decode_json``)."""
    data, name = read_bytes(path, limit=limit, regular=regular)
    return decode_json(data, name)
