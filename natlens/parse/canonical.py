"""Whole-module canonical forms: what iptables-save prints for options written another way.

Each entry rewrites the option tuple of one match or target the way its save function does
(extensions/libxt_*.c): ``--syn`` → ``--tcp-flags FIN,SYN,RST,ACK SYN``; a full port range
vanishes; MARK's ``--set-mark/--or-mark/--and-mark/--xor-mark`` become ``--set-xmark value/mask``;
marks print in hex; CONNMARK save/restore show their default masks; defaults that save omits are
dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from natlens.model import Option

__all__ = ["CANONICAL_MATCH", "CANONICAL_TARGET"]

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


CANONICAL_MATCH: dict[str, Callable[[Options], Options]] = {
    "tcp": _tcp_udp,
    "udp": _tcp_udp,
    "udplite": _tcp_udp,
    "sctp": _tcp_udp,
    "dccp": _tcp_udp,
    "mark": _mark_match,
    "connmark": _mark_match,
    "limit": _drop_defaults({"--limit-burst": ("5",)}),
    "hashlimit": _drop_defaults({"--hashlimit-burst": ("5",)}),
    "string": _drop_defaults({"--from": ("0",), "--to": ("65535",)}),
}

CANONICAL_TARGET: dict[str, Callable[[Options], Options]] = {
    "MARK": _mark_target,
    "CONNMARK": _connmark_target,
    "REDIRECT": _nat_ports,
    "MASQUERADE": _nat_ports,
    "NFLOG": _drop_defaults({"--nflog-group": ("0",)}),
}
