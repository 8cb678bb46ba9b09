"""Make text from the input safe for each output channel: terminals, shell lines, JSON text.

natlens prints names and comments that come from other people's machines (chain names, rule
comments, container and interface names). Such text may hold escape sequences that drive a
terminal (``ESC ] 0;title BEL``, ``ESC [2J``), bidi controls that reorder what a reader sees
(Unicode TR #9; "Trojan Source", CVE-2021-42574), line separators that forge extra lines, and lone
surrogates (a JSON ``\\ud800`` escape) that no encoder accepts.

- ``terminal(text)``: every such character shown as a Python-style escape (``\\x1b``,
  ``\\u202e``); for tables and plain-text output. The result is printable, one line, and
  encodable as UTF-8; it is also well-formed XML 1.0 character data (``Char`` production).
- ``shell_word(word)`` / ``shell_line(*argvs)``: a command line for POSIX shells, every word
  ``shlex.quote``d; words holding unsafe characters use bash's ``$'...'`` form with the UTF-8
  bytes as ``\\xHH`` escapes, so the line itself stays printable and still gives the exact argv.
- ``json_text(text)``: JSON text (from ``json.dumps(..., ensure_ascii=False)``) with every
  ``UNSAFE`` character that ``json.dumps`` leaves raw (DEL, C1 controls, bidi and zero-width
  controls, U+2028/U+2029, lone surrogates...) written as a ``\\uXXXX`` escape: the same JSON
  value (RFC 8259 section 7), encodable as UTF-8, and safe to show on a terminal (``cat
  report.json``); other non-ASCII text (names in any script) stays readable.

Structured output (JSON, SARIF) keeps values exact; only the channels that show text escape it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["UNSAFE", "json_text", "shell_line", "shell_word", "terminal"]

UNSAFE = re.compile(
    "["
    "\x00-\x1f\x7f-\x9f"  # C0 (tab and newline included: a value is one line), DEL, C1
    "\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069"  # bidi, zero-width, invisible
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff"  # lone surrogates (JSON escapes, surrogateescape'd bytes)
    "\ufeff\ufff9-\ufffb\ufffe\uffff"  # BOM, interlinear annotations, non-characters
    "]"
)
"""Characters ``terminal`` escapes: C0 and C1 controls, DEL, bidi and zero-width controls,
U+2028/U+2029, lone surrogates, U+FEFF, U+FFF9-U+FFFB and the non-characters U+FFFE/U+FFFF."""


@lru_cache(maxsize=512)
def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _sub(match: re.Match[str]) -> str:
    return _escape(match.group())


def terminal(text: str) -> str:
    """``text`` with every ``UNSAFE`` character written as ``\\xHH`` or ``\\uHHHH``.

    Backslashes are kept as they are (the result is for reading, not for parsing back).

    >>> terminal("\\x1b[31mRED\\u202e\\ud800 ok")
    '\\\\x1b[31mRED\\\\u202e\\\\ud800 ok'
    >>> terminal("DOCKER-USER")
    'DOCKER-USER'
    """
    if UNSAFE.search(text) is None:
        return text
    return UNSAFE.sub(_sub, text)


def _utf8(char: str) -> bytes:
    """The bytes a character stands for: surrogateescape'd bytes map back to themselves."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return bytes((code - 0xDC00,))
    return char.encode("utf-8", errors="surrogatepass")


def _ansi_c(word: str) -> str:
    out = ["$'"]
    for char in word:
        if char in "\\'":
            out.append("\\" + char)
        elif UNSAFE.fullmatch(char):
            out.append("".join(f"\\x{b:02x}" for b in _utf8(char)))
        else:
            out.append(char)
    out.append("'")
    return "".join(out)


def shell_word(word: str) -> str:
    """One shell word that stands for exactly ``word``.

    ``shlex.quote`` for printable words; bash's ANSI-C quoting (``$'...'``, also in zsh, ksh and
    POSIX.1-2024 sh) with ``\\xHH`` UTF-8 bytes for words that hold ``UNSAFE`` characters.

    >>> shell_word("$(touch${IFS}x)")
    "'$(touch${IFS}x)'"
    >>> shell_word("\\x1b[31mRED")
    "$'\\\\x1b[31mRED'"
    >>> shell_word("DOCKER")
    'DOCKER'
    """
    if word == "!":
        return word  # iptables' negation; literal as an argument, never history expansion
    if UNSAFE.search(word) is None:
        return shlex.quote(word)
    return _ansi_c(word)


def shell_line(*argvs: Sequence[str]) -> str:
    """One shell command line running each argv in turn, stopping at the first failure (``&&``).

    >>> shell_line(["iptables", "-t", "filter", "-F", "a b"], ["iptables", "-X", "a b"])
    "iptables -t filter -F 'a b' && iptables -X 'a b'"
    """
    if not argvs or not all(argvs):
        raise ValueError("shell_line needs at least one non-empty argv")
    return " && ".join(" ".join(shell_word(w) for w in argv) for argv in argvs)


_JSON_RAW = re.compile(UNSAFE.pattern.replace("\x00-\x1f", "", 1))
"""``UNSAFE`` but C0: ``json.dumps`` escapes C0 controls in strings itself, and the newlines
between values of indented JSON are whitespace, not text."""


def json_text(text: str) -> str:
    """JSON text with every ``UNSAFE`` character but C0 escaped (``\\u202e``, ``\\u0085``,
    ``\\ud800``): the same value, encodable as UTF-8, and no raw control or bidi character
    reaches a terminal that shows it (module docstring).

    These characters only occur inside JSON strings (``json.dumps`` writes nothing else but
    ASCII), where the escape means the same code point.

    >>> import json
    >>> json_text(json.dumps({"name": "a\\u202eb\\x85"}, ensure_ascii=False))
    '{"name": "a\\\\u202eb\\\\u0085"}'
    >>> s = json_text(json.dumps({"name": "a\\ud800"}, ensure_ascii=False))
    >>> s.encode("utf-8") == b'{"name": "a\\\\ud800"}' and json.loads(s) == {"name": "a\\ud800"}
    True
    """
    if _JSON_RAW.search(text) is None:
        return text
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
