"""Whole-module canonical forms: what iptables-save prints for options written another way.

Each entry rewrites the option tuple of one match or target the way its save function does
(extensions/libxt_*.c, iptables 1.8.9): ``--syn`` → ``--tcp-flags FIN,SYN,RST,ACK SYN``; a full
port range vanishes; MARK's ``--set-mark/--or-mark/--and-mark/--xor-mark`` become ``--set-xmark
value/mask``; marks print in hex; CONNMARK save/restore show their default masks; defaults
that save omits are dropped and defaults it prints are added (``-m limit`` → ``--limit
3/hour``, recent's ``--name DEFAULT --rsource``, hashlimit's burst, connlimit's
``--connlimit-saddr``); string patterns print as ``--string`` when printable, else as
``--hex-string``.

``CANONICAL_MATCH``/``CANONICAL_TARGET`` hold what does not depend on the address family (the
parsers apply them to every rule); natlens.parse.family_defaults adds what does once the parse
knows the family, so the model holds what iptables-save prints and natlens.serialize prints it
as it is.
tests/test_kernel_save_form.py compares the printed form with ``iptables-save`` on both
backends for every module natlens knows.
"""

from __future__ import annotations

import ipaddress
import string
from collections.abc import Callable

from natlens.model import Option
from natlens.parse.modules import MATCHES, TARGETS, ModuleSpec
from natlens.parse.ratelimits import hashlimit_saved
from natlens.parse.reject import reject_families
from natlens.parse.values import c_strtoul, tos_value

__all__ = ["CANONICAL_MATCH", "CANONICAL_TARGET", "ordered"]

Options = tuple[Option, ...]
_FULL = 0xFFFFFFFF


def _split_mark(text: str) -> tuple[int, int | None]:
    value, _, mask = text.partition("/")
    return int(value, 0), (int(mask, 0) if mask else None)


def _tcp_udp(options: Options) -> Options:
    out: list[Option] = []
    for opt in options:
        if opt.name in ("--sport", "--dport") and opt.args == ("0:65535",) and not opt.negated:
            continue
        if opt.name == "--syn":
            opt = Option("--tcp-flags", ("FIN,SYN,RST,ACK", "SYN"), opt.negated)
        out.append(opt)
    return tuple(out)


def _mark_match(options: Options) -> Options:
    out: list[Option] = []
    for opt in options:
        if opt.name == "--mark":
            value, mask = _split_mark(opt.args[0])
            text = f"{value:#x}" if mask in (None, _FULL) else f"{value:#x}/{mask:#x}"
            opt = Option(opt.name, (text,), opt.negated)
        out.append(opt)
    return tuple(out)


def _xmark(opt: Option) -> Option:
    value, mask = _split_mark(opt.args[0])
    full = _FULL if mask is None else mask
    if opt.name == "--set-xmark":
        mark, new_mask = value, full
    elif opt.name == "--set-mark":
        mark, new_mask = value, value | full
    elif opt.name == "--and-mark":
        mark, new_mask = 0, ~value & _FULL
    elif opt.name == "--or-mark":
        mark, new_mask = value, value
    else:  # --xor-mark
        mark, new_mask = value, 0
    return Option("--set-xmark", (f"{mark:#x}/{new_mask:#x}",), opt.negated)


_XMARK_NAMES = frozenset({"--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark"})


def _mark_target(options: Options) -> Options:
    return tuple(_xmark(o) if o.name in _XMARK_NAMES else o for o in options)


def _connmark_target(options: Options) -> Options:
    names = {o.name for o in options}
    if names & _XMARK_NAMES:
        return tuple(_xmark(o) if o.name in _XMARK_NAMES else o for o in options)
    mode = next((o for o in options if o.name in ("--save-mark", "--restore-mark")), None)
    if mode is None:
        return options
    mask = next((o.args[0] for o in options if o.name == "--mask"), None)
    nfmask = next((o.args[0] for o in options if o.name == "--nfmask"), mask)
    ctmask = next((o.args[0] for o in options if o.name == "--ctmask"), mask)
    nf = int(nfmask, 0) if nfmask else _FULL
    ct = int(ctmask, 0) if ctmask else _FULL
    return (mode, Option("--nfmask", (f"{nf:#x}",)), Option("--ctmask", (f"{ct:#x}",)))


def _nat_ports(options: Options) -> Options:
    out: list[Option] = []
    for opt in options:
        if opt.name == "--to-ports" and "-" in opt.args[0]:
            low, _, high = opt.args[0].partition("-")
            if low == high:
                opt = Option(opt.name, (low,), opt.negated)
        out.append(opt)
    return tuple(out)


def _drop_defaults(defaults: dict[str, tuple[str, ...]]) -> Callable[[Options], Options]:
    def rewrite(options: Options) -> Options:
        return tuple(o for o in options if defaults.get(o.name) != o.args or o.negated)

    return rewrite


def ordered(spec: ModuleSpec, options: list[Option]) -> Options:
    """``options`` in the order the module's save function prints them."""
    by = spec.by_name
    return tuple(sorted(options, key=lambda o: by[o.name].order if o.name in by else 999))


def _limit(options: Options) -> Options:
    """libxt_limit.c: the rate defaults to 3/hour and is always printed; burst 5 is not."""
    out = [o for o in options if not (o.name == "--limit-burst" and o.args == ("5",))]
    if not any(o.name == "--limit" for o in out):
        out.insert(0, Option("--limit", ("3/hour",)))
    return tuple(out)


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _recent(options: Options) -> Options:
    """libxt_recent.c ``recent_save``: the name (default ``DEFAULT``) and the side (default
    ``--rsource``) are always printed."""
    out: list[Option] = []
    for opt in options:
        if opt.name == "--mask" and opt.args:
            opt = Option(opt.name, (_address(opt.args[0]),), opt.negated)
        out.append(opt)
    names = {o.name for o in out}
    if "--name" not in names:
        out.append(Option("--name", ("DEFAULT",)))
    if not names & {"--rsource", "--rdest"}:
        out.append(Option("--rsource"))
    return ordered(MATCHES["recent"], out)


_HL_MODES = ("srcip", "srcport", "dstip", "dstport")
_HL_DEFAULTS = {"--hashlimit-htable-gcinterval": ("1000",), "--hashlimit-htable-size": ("0",),
                "--hashlimit-htable-max": ("0",)}


def _hashlimit_mode(text: str) -> str:
    words = text.replace("|", ",").split(",")
    if not set(words) <= set(_HL_MODES):
        return text
    return ",".join(m for m in _HL_MODES if m in words)


def _hashlimit(options: Options) -> Options:
    """libxt_hashlimit.c ``hashlimit_mt_save`` (revision 3): rate, burst (default 5 always
    printed), expiry and rate interval as natlens.parse.ratelimits ``hashlimit_saved`` gives
    them, the mode in srcip,srcport,dstip,dstport order, the gc interval unless 1000, sizes
    unless 0."""
    saved = hashlimit_saved(options)
    out: list[Option] = []
    for opt in options if saved is None else saved:
        if opt.name == "--hashlimit-mode" and opt.args:
            opt = Option(opt.name, (_hashlimit_mode(opt.args[0]),), opt.negated)
        elif opt.args == _HL_DEFAULTS.get(opt.name):
            continue
        out.append(opt)
    return ordered(MATCHES["hashlimit"], out)


def _connlimit(options: Options) -> Options:
    """libxt_connlimit.c ``connlimit_save``: ``! --connlimit-upto N`` is ``--connlimit-above
    N`` (and the reverse); the side (default ``--connlimit-saddr``) is always printed."""
    out: list[Option] = []
    for opt in options:
        if opt.name in ("--connlimit-upto", "--connlimit-above") and opt.negated:
            other = "--connlimit-above" if opt.name == "--connlimit-upto" else "--connlimit-upto"
            opt = Option(other, opt.args)
        out.append(opt)
    if not {o.name for o in out} & {"--connlimit-saddr", "--connlimit-daddr"}:
        out.append(Option("--connlimit-saddr"))
    return ordered(MATCHES["connlimit"], out)


_PRINTABLE = frozenset(range(0x20, 0x7F))


def _hex_pattern(text: str) -> bytes | None:
    """The bytes of ``--hex-string text`` as libxt_string.c ``parse_hex_string`` reads them
    (``|61 62|`` blocks, ``\\x`` literals outside them); None where it refuses the text."""
    data = text.encode()
    out = bytearray()
    i, n, in_hex, literal = 0, len(data), False, False
    if n == 0:
        return None
    while i < n:
        c = data[i]
        if c == 0x5C and not in_hex:
            literal = True
        elif c == 0x5C:
            return None
        elif c == 0x7C:
            in_hex = not in_hex
            if in_hex:
                while i + 1 < n and data[i + 1] == 0x20:
                    i += 1
            if i + 1 >= n:
                break
            i += 1
        if literal:
            if i + 1 >= n:
                return None
            out.append(data[i + 1])
            i += 2
            literal = False
        elif in_hex:
            pair = data[i:i + 2].decode("latin-1")
            if i + 2 >= n or len(pair) < 2 or not all(ch in string.hexdigits for ch in pair):
                return None
            out.append(int(pair, 16))
            i += 3 if data[i + 2] == 0x20 else 2
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def _pattern_option(opt: Option) -> Option:
    """libxt_string.c ``string_save``: a pattern of printable characters not ending in a
    backslash prints as ``--string "..."``, any other as ``--hex-string "|..|"``."""
    pattern = opt.args[0].encode() if opt.name == "--string" else _hex_pattern(opt.args[0])
    if not pattern:
        return opt
    if all(b in _PRINTABLE for b in pattern) and pattern[-1:] != b"\\":
        return Option("--string", (pattern.decode(),), opt.negated, True)
    return Option("--hex-string", (f"|{pattern.hex()}|",), opt.negated, True)


def _string(options: Options) -> Options:
    out: list[Option] = []
    for opt in options:
        if opt.name in ("--from", "--to") and not opt.negated and \
                opt.args == ("0" if opt.name == "--from" else "65535",):
            continue
        if opt.name in ("--string", "--hex-string") and len(opt.args) == 1:
            opt = _pattern_option(opt)
        out.append(opt)
    return ordered(MATCHES["string"], out)


def _probability(options: Options) -> Options:
    """libxt_statistic.c: the kernel keeps ``lround(0x80000000 * p)``, printed ``%.11f``."""
    out: list[Option] = []
    for opt in options:
        if opt.name == "--probability" and opt.args:
            try:
                kept = int(float(opt.args[0]) * 0x80000000 + 0.5)
            except ValueError:
                kept = None
            if kept is not None:
                opt = Option(opt.name, (f"{kept / 0x80000000:.11f}",), opt.negated)
        out.append(opt)
    return tuple(out)


_DSCP_CLASSES = {"CS0": 0, "CS1": 8, "CS2": 16, "CS3": 24, "CS4": 32, "CS5": 40, "CS6": 48,
                 "CS7": 56, "BE": 0, "AF11": 10, "AF12": 12, "AF13": 14, "AF21": 18, "AF22": 20,
                 "AF23": 22, "AF31": 26, "AF32": 28, "AF33": 30, "AF41": 34, "AF42": 36,
                 "AF43": 38, "EF": 46}
"""libxt_dscp_helper.c ``ds_classes`` (names compared without case)."""


def _dscp(value: str, klass: str) -> Callable[[Options], Options]:
    """libxt_dscp.c / libxt_DSCP.c: a class is stored as its value; saved ``0x%02x``."""

    def rewrite(options: Options) -> Options:
        out: list[Option] = []
        for opt in options:
            number: int | None = None
            if opt.name == klass and opt.args:
                number = _DSCP_CLASSES.get(opt.args[0].upper())
            elif opt.name == value and opt.args:
                try:
                    number = int(opt.args[0], 0)
                except ValueError:
                    number = None
            if number is not None:
                opt = Option(value, (f"{number:#04x}",), opt.negated)
            out.append(opt)
        return tuple(out)

    return rewrite


def _tos_value(text: str) -> tuple[int, int] | None:
    """(value, mask) as libxtables reads a TOS value (``natlens.parse.values.tos_value``),
    None when it does not (the option check refuses it)."""
    try:
        return tos_value(text)
    except ValueError:
        return None


def _tos_match(options: Options) -> Options:
    """libxt_tos.c ``tos_mt_save``: ``--tos 0x%02x/0x%02x``."""
    out: list[Option] = []
    for opt in options:
        parsed = _tos_value(opt.args[0]) if opt.name == "--tos" and opt.args else None
        if parsed is not None:
            opt = Option(opt.name, (f"{parsed[0]:#04x}/{parsed[1]:#04x}",), opt.negated)
        out.append(opt)
    return tuple(out)


def _tos_target(options: Options) -> Options:
    """libxt_TOS.c ``tos_tg_save``: every form as ``--set-tos value/mask`` (and: value 0,
    mask ~x; or: x/x; xor: x/0)."""
    out: list[Option] = []
    for opt in options:
        parsed = _tos_value(opt.args[0]) if opt.args else None
        if parsed is not None and opt.name != "--set-tos":
            number = c_strtoul(opt.args[0])  # checked 0..255 (values.tos_value)
            parsed = None if number is None else {
                "--and-tos": (0, ~number & 0xFF), "--or-tos": (number, number),
                "--xor-tos": (number, 0)}.get(opt.name)
        if parsed is not None:
            opt = Option("--set-tos", (f"{parsed[0]:#04x}/{parsed[1]:#04x}",), opt.negated)
        out.append(opt)
    return tuple(out)


def _lower(name: str) -> Callable[[Options], Options]:
    def rewrite(options: Options) -> Options:
        return tuple(Option(o.name, (o.args[0].lower(),), o.negated)
                     if o.name == name and len(o.args) == 1 else o for o in options)

    return rewrite


def _devgroup(options: Options) -> Options:
    """libxt_devgroup.c: ``0x%x`` and ``/0x%x`` unless the mask is all ones."""
    out: list[Option] = []
    for opt in options:
        if opt.name in ("--src-group", "--dst-group") and opt.args:
            try:
                value, mask = _split_mark(opt.args[0])
            except ValueError:
                value, mask = -1, None
            if value >= 0:
                text = f"{value:#x}" if mask in (None, _FULL) else f"{value:#x}/{mask:#x}"
                opt = Option(opt.name, (text,), opt.negated)
        out.append(opt)
    return tuple(out)


_PKTTYPES = {"host": "unicast"}
"""libxt_pkttype.c ``supported_types``: ``host`` is PACKET_HOST, printed ``unicast``."""


def _pkttype(options: Options) -> Options:
    return tuple(Option(o.name, (_PKTTYPES.get(o.args[0].lower(), o.args[0].lower()),),
                        o.negated) if o.name == "--pkt-type" and len(o.args) == 1 else o
                 for o in options)


_PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
              "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "udplite": 136, "dccp": 33}
"""libxtables ``xtables_chain_protos`` (and /etc/protocols): conntrack prints a number."""


def _conntrack(options: Options) -> Options:
    return tuple(Option(o.name, (str(_PROTOCOLS[o.args[0].lower()]),), o.negated)
                 if o.name == "--ctproto" and len(o.args) == 1
                 and o.args[0].lower() in _PROTOCOLS else o for o in options)


_LOG_LEVELS = {"emerg": 0, "panic": 0, "alert": 1, "crit": 2, "error": 3,
               "warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7}


def _log(options: Options) -> Options:
    """libxt_LOG.c ``LOG_save``: the level as a number, unless it is the default 4."""
    out: list[Option] = []
    for opt in options:
        if opt.name == "--log-level" and len(opt.args) == 1:
            level = _LOG_LEVELS.get(opt.args[0].lower())
            text = str(level) if level is not None else opt.args[0]
            if text == "4":
                continue
            opt = Option(opt.name, (text,), opt.negated)
        out.append(opt)
    return ordered(TARGETS["LOG"], out)


_NFLOG_DEFAULTS = _drop_defaults({"--nflog-group": ("0",), "--nflog-range": ("0",),
                                  "--nflog-threshold": ("0",)})


def _nflog(options: Options) -> Options:
    """libxt_NFLOG.c ``nflog_print``: prefix, group, size or range, threshold; group,
    range and threshold 0 are not printed."""
    return ordered(TARGETS["NFLOG"], list(_NFLOG_DEFAULTS(options)))


def _nfqueue(options: Options) -> Options:
    """libxt_NFQUEUE.c ``NFQUEUE_save``: ``--queue-num 0`` unless a queue or balance is
    given."""
    out = list(options)
    if not {o.name for o in out} & {"--queue-num", "--queue-balance"}:
        out.insert(0, Option("--queue-num", ("0",)))
    return ordered(TARGETS["NFQUEUE"], out)


def _classify(options: Options) -> Options:
    """libxt_CLASSIFY.c: ``--set-class %04x:%04x``."""
    out: list[Option] = []
    for opt in options:
        if opt.name == "--set-class" and opt.args:
            major, colon, minor = opt.args[0].partition(":")
            if colon and all(c in string.hexdigits for c in major + minor) and major and minor:
                opt = Option(opt.name, (f"{int(major, 16):04x}:{int(minor, 16):04x}",),
                             opt.negated)
        out.append(opt)
    return tuple(out)


def _tproxy(options: Options) -> Options:
    """libxt_TPROXY.c ``tproxy_tg_save``: ``--tproxy-mark 0x%x/0x%x`` always (0x0/0x0 when
    not given, a mark without mask has mask 0xffffffff)."""
    out: list[Option] = []
    for opt in options:
        if opt.name == "--tproxy-mark" and opt.args:
            value, mask = _split_mark(opt.args[0])
            opt = Option(opt.name, (f"{value:#x}/{_FULL if mask is None else mask:#x}",),
                         opt.negated)
        elif opt.name == "--on-ip" and opt.args:
            opt = Option(opt.name, (_address(opt.args[0]),), opt.negated)
        out.append(opt)
    if not any(o.name == "--tproxy-mark" for o in out):
        out.append(Option("--tproxy-mark", ("0x0/0x0",)))
    return ordered(TARGETS["TPROXY"], out)


def _reject(options: Options) -> Options:
    """``--reject-with`` under the name iptables-save prints, when that does not depend on
    the family and the name still tells the families that take the value (IPv4's
    ``tcp-rst`` stays: ``tcp-reset`` would pass in IPv6 rules too); ``FAMILY_TARGET`` does
    the rest when printing (natlens.parse.reject)."""
    out: list[Option] = []
    for opt in options:
        if opt.name == "--reject-with" and len(opt.args) == 1:
            families = reject_families(opt.args[0])
            name = families[0] or families[1]
            if name is not None and None not in families and families[0] != families[1]:
                name = None
            if name is not None and _takers(reject_families(name)) == _takers(families):
                opt = Option(opt.name, (name,), opt.negated)
        out.append(opt)
    return tuple(out)


def _takers(families: tuple[str | None, str | None]) -> tuple[bool, bool]:
    return families[0] is not None, families[1] is not None


CANONICAL_MATCH: dict[str, Callable[[Options], Options]] = {
    "tcp": _tcp_udp,
    "udp": _tcp_udp,
    "udplite": _tcp_udp,
    "sctp": _tcp_udp,
    "dccp": _tcp_udp,
    "mark": _mark_match,
    "connmark": _mark_match,
    "limit": _limit,
    "recent": _recent,
    "hashlimit": _hashlimit,
    "connlimit": _connlimit,
    "string": _string,
    "statistic": _probability,
    "dscp": _dscp("--dscp", "--dscp-class"),
    "tos": _tos_match,
    "mac": _lower("--mac-source"),
    "devgroup": _devgroup,
    "pkttype": _pkttype,
    "conntrack": _conntrack,
}

CANONICAL_TARGET: dict[str, Callable[[Options], Options]] = {
    "MARK": _mark_target,
    "CONNMARK": _connmark_target,
    "REDIRECT": _nat_ports,
    "MASQUERADE": _nat_ports,
    "NFLOG": _nflog,
    "LOG": _log,
    "NFQUEUE": _nfqueue,
    "DSCP": _dscp("--set-dscp", "--set-dscp-class"),
    "TOS": _tos_target,
    "CLASSIFY": _classify,
    "AUDIT": _lower("--type"),
    "TPROXY": _tproxy,
    "REJECT": _reject,
}
