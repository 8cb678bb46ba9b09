"""Target decoders of ``iptables -L`` listings: the options of a rule's target.

Formats are those of the targets' ``print`` functions: ``libxt_NAT.c`` (``to:ADDR``),
``libxt_MARK.c`` ``mark_tg_print_v2`` (``MARK or 0x4000``), ``libxt_LOG.c``, ``libxt_REJECT.c``
... Each decoder takes the target name and the cursor and returns the options in iptables-save
form, or raises ``_UndecodableError`` / ``ValueError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from natlens.inputs import is_decimal
from natlens.model import (
    Option,
)
from natlens.parse.canonical import CANONICAL_TARGET
from natlens.parse.construct import new_option
from natlens.parse.listing.words import (
    _FULL,
    _LOG_FLAGS,
    _LOG_LEVELS,
    _OCTET,
    _Cursor,
    _hex,
    _int,
    _option,
    _UndecodableError,
)
from natlens.parse.modules import TARGETS

# -- target decoders: read the target's text at the cursor, return its options ------------------


def _keyword_options(c: _Cursor, words: Mapping[str, tuple[str, bool]]) -> tuple[Option, ...]:
    """The options printed as ``word`` or ``word VALUE`` (``words``: ``word → (option, whether a
    value follows)``), read while the next word is one of ``words``, in printed order."""
    opts: list[Option] = []
    while c.peek() in words:
        option, valued = words[c.take()]
        opts.append(Option(option, (c.take(),)) if valued else Option(option))
    return tuple(opts)


def _nat_target(name: str, c: _Cursor) -> tuple[Option, ...]:
    opts: list[Option] = []
    flags: list[str] = []
    option = _NAT_OPTIONS[name]
    while True:
        w = c.peek()
        if w.startswith("to:"):
            if opts:
                raise _UndecodableError  # several ranges (iptables < 1.4.19) have no single form
            c.i += 1
            opts.append(_option(name, option, (w[3:],), targets=True))
        elif w in ("random", "random-fully", "persistent") and name != "NETMAP":
            c.i += 1
            flags.append(w)
        else:
            break
    if not opts:
        raise _UndecodableError
    for flag in ("random", "random-fully", "persistent"):
        if flag in flags:
            opts.append(Option("--" + flag))
    return tuple(opts)


_NAT_OPTIONS = {"DNAT": "--to-destination", "SNAT": "--to-source", "NETMAP": "--to"}
_PORT = (r"(?:0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
         r"|6553[0-5])")  # 0 to 65535, no leading zero
_PLAIN_NAT = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?::{_PORT})?")
"""A DNAT/SNAT address as iptables prints it: a dotted quad without leading zeros
(``values._is_plain_ipv4``), then maybe a port number without leading zeros: what
``canonical_args("natrange", ...)`` returns unchanged."""
_PLAIN_NAT_NAMES = {name: TARGETS[name].by_name[_NAT_OPTIONS[name]].name
                    for name in ("DNAT", "SNAT") if name not in CANONICAL_TARGET}
"""The targets whose ``to:ADDRESS`` ``_plain_nat_options`` reads, with the option's name."""


def _plain_nat_options(name: str, word: str) -> tuple[Option, ...] | None:
    """``_target_options(name, _nat_target(name, cursor at word))`` for a DNAT or SNAT target
    whose only word is ``to:ADDRESS`` with a plain IPv4 address (``_PLAIN_NAT``; unique per
    endpoint on kube-proxy hosts), without the general decoding; None for any other."""
    option = _PLAIN_NAT_NAMES.get(name)
    if option is None or not word.startswith("to:") or _PLAIN_NAT.fullmatch(word, 3) is None:
        return None
    return (new_option(option, (word[3:],), False, False),)


def _ports_target(name: str, c: _Cursor) -> tuple[Option, ...]:
    opts: list[Option] = []
    if (c.peek(), c.peek(1)) in (("masq", "ports:"), ("redir", "ports")):
        c.i += 2
        opts.append(_option(name, "--to-ports", (c.take(),), targets=True))
    flags = []
    while c.peek() in ("random", "random-fully"):
        flags.append(c.take())
    for flag in ("random", "random-fully"):
        if flag in flags:
            opts.append(Option("--" + flag))
    if not opts:
        raise _UndecodableError
    return tuple(opts)


def _reject(name: str, c: _Cursor) -> tuple[Option, ...]:
    c.expect("reject-with")
    return (Option("--reject-with", (c.take(),)),)


def _xmark(c: _Cursor) -> Option:
    """``MARK set/or/and/xor/xset`` → ``--set-xmark VALUE/MASK`` (libxt_MARK.c print v2)."""
    verb = c.take()
    value_text = c.take()
    if verb == "xset":
        v_text, _, m_text = value_text.partition("/")
        value, mask = _int(v_text), _int(m_text) if m_text else _FULL
    else:
        v = _int(value_text)
        if verb == "set":
            value, mask = v, _FULL
        elif verb == "or":
            value, mask = v, v
        elif verb == "and":
            value, mask = 0, ~v & _FULL
        elif verb == "xor":
            value, mask = v, 0
        else:
            raise _UndecodableError
    return Option("--set-xmark", (f"{_hex(value)}/{_hex(mask)}",))


def _mark_target(name: str, c: _Cursor) -> tuple[Option, ...]:
    c.expect(name)
    if name == "CONNMARK" and c.peek() in ("save", "restore"):
        verb = c.take()
        nfmask = ctmask = _FULL
        if c.peek() == "mask":
            c.i += 1
            nfmask = ctmask = _int(c.take())
        elif c.peek() == "nfmask":
            raise _UndecodableError
        return (Option(f"--{verb}-mark"), Option("--nfmask", (_hex(nfmask),)),
                Option("--ctmask", (_hex(ctmask),)))
    return (_xmark(c),)


def _log(name: str, c: _Cursor) -> tuple[Option, ...]:
    c.expect("LOG")
    level = "4"
    flags = 0
    prefix: str | None = None
    while True:
        w = c.peek()
        if w == "flags":
            c.i += 1
            flags = _int(c.take())
        elif w == "level":
            c.i += 1
            text = c.take()
            level = text if is_decimal(text) else _LOG_LEVELS.get(text, "")
            if not level:
                raise _UndecodableError
        elif w == "prefix":
            c.i += 1
            text = c.take()
            if len(text) < 2 or text[0] != '"' or text[-1] != '"':
                raise _UndecodableError
            prefix = text[1:-1]
        elif any(w == word for word, _, _ in _LOG_FLAGS):
            c.i += 1
            flags |= next(bit for word, bit, _ in _LOG_FLAGS if word == w)
        else:
            break
    opts: list[Option] = []
    if prefix is not None:
        opts.append(Option("--log-prefix", (prefix,)))
    if level != "4":
        opts.append(Option("--log-level", (level,)))
    opts.extend(Option(option) for _, bit, option in _LOG_FLAGS if flags & bit)
    return tuple(opts)


def _nflog(name: str, c: _Cursor) -> tuple[Option, ...]:
    opts: list[Option] = []
    while c.peek() in ("nflog-prefix", "nflog-group", "nflog-range", "nflog-size",
                       "nflog-threshold"):
        w = c.take()
        value = c.take()
        if w == "nflog-prefix" and value.startswith('"') and value.endswith('"') and len(value) > 1:
            value = value[1:-1]
        opts.append(Option("--" + w, (value,)))
    if not opts:
        raise _UndecodableError
    return tuple(opts)


_CT_WORDS: dict[str, tuple[str, bool]] = {
    "notrack": ("--notrack", False),
    **{w: (f"--{w}", True) for w in ("helper", "ctevents", "expevents", "zone", "zone-orig",
                                     "zone-reply", "timeout")},
}
"""CT's printed words: ``word → (option, whether a value follows)``."""


def _ct(name: str, c: _Cursor) -> tuple[Option, ...]:
    if c.peek() == "NOTRACK":
        c.i += 1
        return ()
    c.expect("CT")
    return _keyword_options(c, _CT_WORDS)


def _tcpmss(name: str, c: _Cursor) -> tuple[Option, ...]:
    c.expect("TCPMSS")
    w = c.take()
    if w == "clamp":
        c.expect("to")
        c.expect("PMTU")
        return (Option("--clamp-mss-to-pmtu"),)
    if w == "set":
        return (Option("--set-mss", (c.take(),)),)
    raise _UndecodableError


def _ttl_target(name: str, c: _Cursor) -> tuple[Option, ...]:
    c.expect(name)
    verb = c.take()
    c.take()  # "to" / "by"
    suffix = {"set": "set", "decrement": "dec", "increment": "inc"}.get(verb)
    if suffix is None:
        raise _UndecodableError
    return (Option(f"--{name.lower()}-{suffix}", (c.take(),)),)


_NFQUEUE_WORDS = {"num": ("--queue-num", True), "balance": ("--queue-balance", True),
                  "bypass": ("--queue-bypass", False), "cpu-fanout": ("--queue-cpu-fanout", False)}
"""NFQUEUE's printed words: ``word → (option, whether a value follows)``."""


def _nfqueue(name: str, c: _Cursor) -> tuple[Option, ...]:
    c.expect("NFQUEUE")
    return _keyword_options(c, _NFQUEUE_WORDS)


def _simple_target(name: str, c: _Cursor) -> tuple[Option, ...]:
    words = {"CLASSIFY": ("CLASSIFY", "set", "--set-class"),
             "DSCP": ("DSCP", "set", "--set-dscp")}[name]
    c.expect(words[0])
    c.expect(words[1])
    return (Option(words[2], (c.take(),)),)


def _checksum(name: str, c: _Cursor) -> tuple[Option, ...]:
    c.expect("CHECKSUM")
    c.expect("fill")
    return (Option("--checksum-fill"),)


_TargetDecoder = Callable[[str, _Cursor], tuple[Option, ...]]

_TARGET_DECODERS: dict[str, _TargetDecoder] = {
    "DNAT": _nat_target, "SNAT": _nat_target, "NETMAP": _nat_target,
    "MASQUERADE": _ports_target, "REDIRECT": _ports_target, "REJECT": _reject,
    "MARK": _mark_target, "CONNMARK": _mark_target, "LOG": _log, "NFLOG": _nflog, "CT": _ct,
    "TCPMSS": _tcpmss, "TTL": _ttl_target, "HL": _ttl_target, "NFQUEUE": _nfqueue,
    "CLASSIFY": _simple_target, "DSCP": _simple_target, "CHECKSUM": _checksum,
}
