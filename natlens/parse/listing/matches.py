"""Match decoders of ``iptables -L`` listings: each reads one match's ``print`` text.

Formats are those of the ``print`` functions in ``extensions/libxt_*.c`` / ``libipt_*.c``
(iptables 1.4 to 1.8.11), e.g. ``libxt_tcp.c`` ``tcp_print`` (``tcp spt:1 dpts:2:3
flags:0x17/0x02``), ``libxt_conntrack.c`` ``conntrack_dump`` (``! ctstate NEW``). Each decoder
takes the cursor (negation already read) and returns the ``Match`` iptables-save would print, or
raises ``_UndecodableError`` / ``ValueError`` when the text is not its format.
"""

from __future__ import annotations

from collections.abc import Callable

from natlens.inputs import is_decimal
from natlens.model import (
    Match,
    Option,
)
from natlens.parse.canonical import CANONICAL_MATCH
from natlens.parse.construct import new_match, new_option
from natlens.parse.listing.words import (
    _CT_KEYS,
    _RECENT_CMDS,
    _TOS_NAMES,
    _bang,
    _Cursor,
    _int,
    _match,
    _option,
    _ports,
    _service,
    _tcp_flag_names,
    _UndecodableError,
)
from natlens.parse.modules import MATCHES
from natlens.parse.values import CANONICAL, ICMP4_TYPES, ICMP6_TYPES, ICMP6_TYPES_LATER

# -- match decoders: each reads one match at the cursor (negation already taken) ----------------


def _proto_match(c: _Cursor, neg: bool) -> Match:
    word = c.take()
    module = word
    opts: list[Option] = []
    pending: list[str] = []
    if word.endswith("flags:"):  # iptables < 1.4.11 printed "tcpflags: 0x17/0x02"
        module = word[:-6]
        pending.append("flags:")
    if neg or module not in ("tcp", "udp", "udplite", "sctp", "dccp"):
        raise _UndecodableError
    while True:
        if pending:
            w = pending.pop(0)
        else:
            w = c.peek()
            head = w.partition(":")[0]
            if head not in ("spt", "spts", "dpt", "dpts", "flags") and not w.startswith("option="):
                break
            c.i += 1
        if w.startswith("option="):
            value, inv = _bang(w[7:])
            opts.append(_option(module, "--tcp-option", (value,), inv))
            continue
        head, _, value = w.partition(":")
        if head == "flags":
            if not value:
                value = c.take()
            value, inv = _bang(value)
            mask_text, _, comp_text = value.partition("/")
            if mask_text.startswith("0x"):
                mask_text = _tcp_flag_names(_int(mask_text))
                comp_text = _tcp_flag_names(_int(comp_text))
            opts.append(_option(module, "--tcp-flags", (mask_text, comp_text), inv))
            continue
        if "flags:" in value:  # "dpt:9050flags: ..." (old iptables forgot the blank)
            value, rest = value.split("flags:", 1)
            pending.append("flags:" + rest)
        value, inv = _bang(value)
        name = "--sport" if head.startswith("s") else "--dport"
        if head.endswith("s"):
            low, sep, high = value.partition(":")
            a, b = _service(low, module), _service(high, module)
            if not sep or a > b:
                raise _UndecodableError
            ports = str(a) if a == b else f"{a}:{b}"
        else:
            ports = str(_service(value, module))
        opts.append(Option(name, (ports,), inv))
    if not opts:
        raise _UndecodableError
    return _match(module, opts)


_LISTED_ICMP6_TYPES = {**ICMP6_TYPES, **ICMP6_TYPES_LATER}
"""The names an ``ip6tables -L`` of any version prints (1.8.10 added the MLD ones)."""


def _icmp_match(c: _Cursor, neg: bool) -> Match:
    word = c.take()
    v6 = word.startswith("ipv6-icmp")
    module, option, names = ("icmp6", "--icmpv6-type", _LISTED_ICMP6_TYPES) if v6 else \
        ("icmp", "--icmp-type", ICMP4_TYPES)
    rest = word[9:] if v6 else word[4:]
    if neg or rest not in ("", "type"):
        raise _UndecodableError
    if rest == "":
        w = c.take()
        if w == "!":
            neg, w = True, c.take()
        elif w.startswith("!"):
            neg, w = True, w[1:]
        if w == "type":
            rest = "type"
        elif w in names:
            kind, low, high = names[w]
            return _match(module, [_option(module, option, (_icmp_value(kind, low, high),), neg)])
        elif w.startswith("type"):
            raise _UndecodableError
        else:
            raise _UndecodableError
    kind = _int(c.take())
    low, high = 0, 255
    if c.peek() == "code":
        c.i += 1
        low = high = _int(c.take())
    elif c.peek() == "codes":
        raise _UndecodableError  # a code range has no iptables-save form
    return _match(module, [_option(module, option, (_icmp_value(kind, low, high),), neg)])


def _icmp_value(kind: int, low: int, high: int) -> str:
    if kind == 255 and low == 0 and high == 255:
        return "any"
    if low == 0 and high == 255:
        return str(kind)
    if low != high:
        raise _UndecodableError
    return f"{kind}/{low}"


def _multiport(c: _Cursor, neg: bool) -> Match:
    c.expect("multiport")
    which = c.take()
    name = {"sports": "--sports", "dports": "--dports", "ports": "--ports"}.get(which)
    if name is None or neg:
        raise _UndecodableError
    inv = c.negation()
    value, bang = _bang(c.take())
    proto = c.proto or "tcp"
    ports = ",".join(_ports(p, proto) for p in value.split(","))
    return _match("multiport", [_option("multiport", name, (ports,), inv or bang)])


def _addrtype(c: _Cursor, neg: bool) -> Match:
    c.expect("ADDRTYPE")
    c.expect("match")
    if neg:
        raise _UndecodableError
    opts: list[Option] = []
    while True:
        w = c.peek()
        if w in ("src-type", "dst-type"):
            c.i += 1
            inv = c.negation()
            value, bang = _bang(c.take())
            opts.append(_option("addrtype", "--" + w, (value,), inv or bang))
        elif w in ("limit-in", "limit-out"):
            c.i += 1
            opts.append(Option("--limit-iface-" + w[6:]))
        else:
            break
    if not opts:
        raise _UndecodableError
    return _match("addrtype", opts)


def _conntrack(c: _Cursor, neg: bool) -> Match:
    module = "state" if c.peek() == "state" else "conntrack"
    opts: list[Option] = []
    while True:
        w = c.peek()
        if w == "!" and not opts:
            raise _UndecodableError
        if w == "!" and c.peek(1) in _CT_KEYS and module == "conntrack":
            c.i += 1
            neg = True
            w = c.peek()
        if module == "state":
            if opts or w != "state":
                break
        elif w not in _CT_KEYS:
            break
        c.i += 1
        value, bang = _bang(c.take())
        if w in ("ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst") and not value[:1].isdigit() \
                and ":" not in value:
            raise _UndecodableError  # a host name
        opts.append(_option(module, "--" + w, (value,), neg or bang))
        neg = False
    if not opts:
        raise _UndecodableError
    return _match(module, opts)


def _comment(c: _Cursor, neg: bool) -> Match:
    w = c.take()
    if neg or not (w.startswith("/* ") and w.endswith(" */")):
        raise _UndecodableError
    return _match("comment", [Option("--comment", (w[3:-3],))])


def _comment_match(text: str) -> Match | None:
    """The match of the word ``/* text */`` as ``_comment`` decodes it, or None where the
    decoding loop would keep it verbatim (a comment ``--comment`` refuses)."""
    if _COMMENT_VERBATIM:  # what _match makes of one verbatim option, without the lookups
        return new_match("comment", (new_option("--comment", (text,), False, False),), True,
                         False)
    try:
        return _match("comment", [Option("--comment", (text,))])
    except (_UndecodableError, ValueError, LookupError):
        return None


# Whether parse_save keeps a --comment value as written (no value check, no whole-match
# rewrite): then the comment of each rule (unique per rule on kube-proxy hosts) is built
# directly.
_COMMENT_VERBATIM = (len(MATCHES["comment"].options) == 1
                     and MATCHES["comment"].by_name["--comment"].kind not in CANONICAL
                     and "comment" not in CANONICAL_MATCH)


def _mark(c: _Cursor, neg: bool) -> Match:
    module = c.take()
    c.expect("match")
    if neg:
        raise _UndecodableError
    inv = c.negation()
    value, bang = _bang(c.take())
    return _match(module, [_option(module, "--mark", (value,), inv or bang)])


def _statistic(c: _Cursor, neg: bool) -> Match:
    c.expect("statistic")
    c.expect("mode")
    mode = c.take()
    inv = c.negation()
    if neg:
        raise _UndecodableError
    opts = [Option("--mode", (mode,))]
    if mode == "random":
        c.expect("probability")
        opts.append(_option("statistic", "--probability", (c.take(),), inv))
    elif mode == "nth":
        c.expect("every")
        opts.append(_option("statistic", "--every", (c.take(),), inv))
        packet = "0"
        if c.peek() == "packet":
            c.i += 1
            packet = c.take()
        opts.append(_option("statistic", "--packet", (packet,)))
    else:
        raise _UndecodableError
    return _match("statistic", opts)


def _iprange(c: _Cursor, neg: bool) -> Match:
    if neg:
        raise _UndecodableError
    opts: list[Option] = []
    while c.peek() in ("source", "destination") and c.peek(1) == "IP" and c.peek(2) == "range":
        which = c.take()
        c.i += 2
        inv = c.negation()
        value, bang = _bang(c.take())
        name = "--src-range" if which == "source" else "--dst-range"
        opts.append(_option("iprange", name, (value,), inv or bang))
    if not opts:
        raise _UndecodableError
    return _match("iprange", opts)


def _set(c: _Cursor, neg: bool) -> Match:
    c.expect("match-set")
    name = c.take()
    flags = c.take()
    if not flags or not all(f in ("src", "dst") for f in flags.split(",")):
        raise _UndecodableError
    opts = [Option("--match-set", (name, flags), neg)]
    if c.peek() == "return-nomatch":
        c.i += 1
        opts.append(Option("--return-nomatch"))
    return _match("set", opts)


def _physdev(c: _Cursor, neg: bool) -> Match:
    c.expect("PHYSDEV")
    c.expect("match")
    if neg:
        raise _UndecodableError
    spec = MATCHES["physdev"]
    opts: list[Option] = []
    while True:
        inv = c.peek() == "!" and c.peek(1).startswith("--physdev")
        w = c.peek(1 if inv else 0)
        opt = spec.by_name.get(w)
        if opt is None:
            break
        c.i += 2 if inv else 1
        args = (c.take(),) if opt.nargs else ()
        opts.append(Option(opt.name, args, inv))
    if not opts:
        raise _UndecodableError
    return _match("physdev", opts)


def _limit(c: _Cursor, neg: bool) -> Match:
    c.expect("limit:")
    if neg or c.peek() != "avg":
        raise _UndecodableError  # hashlimit ("limit: up to ...") does not print its name
    c.i += 1
    opts = [Option("--limit", (c.take(),))]
    c.expect("burst")
    burst = c.take()
    if burst != "5":
        opts.append(_option("limit", "--limit-burst", (burst,)))
    if c.peek() == "mode":
        raise _UndecodableError
    return _match("limit", opts)


def _owner(c: _Cursor, neg: bool) -> Match:
    opts: list[Option] = []
    while True:
        inv = neg if not opts else c.negation()
        w = c.peek()
        if w == "owner":
            kind = c.peek(1)
            if kind in ("UID", "GID") and c.peek(2) == "match":
                c.i += 3
                name = "--uid-owner" if kind == "UID" else "--gid-owner"
                value = c.take()
                if not is_decimal(value.replace("-", ""), max_digits=21):
                    raise _UndecodableError  # a user or group name of the listing's host
                opts.append(Option(name, (value,), inv))
            elif kind == "socket" and c.peek(2) == "exists":
                c.i += 3
                opts.append(Option("--socket-exists", (), inv))
            else:
                raise _UndecodableError
        elif w == "incl." and c.peek(1) == "suppl." and c.peek(2) == "groups":
            c.i += 3
            opts.append(Option("--suppl-groups", (), inv))
        else:
            if inv:
                c.i -= 1
            break
    if not opts:
        raise _UndecodableError
    return _match("owner", opts)


def _pkttype(c: _Cursor, neg: bool) -> Match:
    c.expect("PKTTYPE")
    op = c.take()
    if neg or op not in ("=", "!="):
        raise _UndecodableError
    return _match("pkttype", [Option("--pkt-type", (c.take(),), op == "!=")])


def _recent(c: _Cursor, neg: bool) -> Match:
    c.expect("recent:")
    cmd = _RECENT_CMDS.get(c.take())
    if cmd is None:
        raise _UndecodableError
    opts = [Option(cmd, (), neg)]
    while True:
        w = c.peek()
        if w in ("seconds:", "hit_count:"):
            c.i += 1
            name = "--seconds" if w == "seconds:" else "--hitcount"
            opts.append(_option("recent", name, (c.take(),)))
        elif w == "reap":
            c.i += 1
            opts.append(Option("--reap"))
        elif w == "TTL-Match":
            c.i += 1
            opts.append(Option("--rttl"))
        elif w == "name:":
            c.i += 1
            opts.append(Option("--name", (c.take(),)))
        elif w == "side:":
            c.i += 1
            side = c.take()
            if side not in ("source", "dest"):
                raise _UndecodableError
            opts.append(Option("--rsource" if side == "source" else "--rdest"))
        elif w == "mask:":
            c.i += 1
            opts.append(Option("--mask", (c.take(),)))
        else:
            break
    return _match("recent", opts)


def _mac(c: _Cursor, neg: bool) -> Match:
    c.expect("MAC")
    inv = c.negation()
    if neg:
        raise _UndecodableError
    value = c.take()
    if value.count(":") != 5:
        raise _UndecodableError
    return _match("mac", [Option("--mac-source", (value,), inv)])


def _length(c: _Cursor, neg: bool) -> Match:
    c.expect("length")
    value, inv = _bang(c.take())
    if neg or not is_decimal(value.replace(":", "")):
        raise _UndecodableError
    return _match("length", [Option("--length", (value,), inv)])


def _ttl(c: _Cursor, neg: bool) -> Match:
    module = c.take()
    c.expect("match")
    c.expect(module)
    op = c.take()
    value = c.take()
    prefix = "--ttl-" if module == "TTL" else "--hl-"
    name = {"==": "eq", "!=": "eq", "<": "lt", ">": "gt"}.get(op)
    if name is None or neg:
        raise _UndecodableError
    mod = module.lower()
    return _match(mod, [_option(mod, prefix + name, (value,), op == "!=")])


def _helper(c: _Cursor, neg: bool) -> Match:
    c.expect("helper")
    c.expect("match")
    inv = c.negation()
    value = c.take()
    if neg or len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise _UndecodableError
    return _match("helper", [Option("--helper", (value[1:-1],), inv)])


def _dscp(c: _Cursor, neg: bool) -> Match:
    c.expect("DSCP")
    c.expect("match")
    value, inv = _bang(c.take())
    if neg or not value.startswith("0x"):
        raise _UndecodableError
    return _match("dscp", [Option("--dscp", (value,), inv)])


def _tos(c: _Cursor, neg: bool) -> Match:
    c.expect("tos")
    w = c.take()
    if w == "match":
        value = c.take()
    elif w.startswith("match"):  # libxt_tos.c prints "tos match0x10/0x3f" with -n
        value = w[5:]
    else:
        raise _UndecodableError
    value, inv = _bang(value)
    value = _TOS_NAMES.get(value, value)
    if not value.startswith("0x") or neg:
        raise _UndecodableError
    return _match("tos", [Option("--tos", (value,), inv)])


def _connlimit(c: _Cursor, neg: bool) -> Match:
    c.expect("#conn")
    side, _, mask = c.take().partition("/")
    op = c.take()
    value = c.take()
    if neg or side not in ("src", "dst") or op not in (">", "<=") or not is_decimal(mask):
        raise _UndecodableError
    opts = [
        _option("connlimit", "--connlimit-above" if op == ">" else "--connlimit-upto", (value,)),
        Option("--connlimit-mask", (mask,)),
        Option("--connlimit-saddr" if side == "src" else "--connlimit-daddr"),
    ]
    return _match("connlimit", opts)


def _string(c: _Cursor, neg: bool) -> Match:
    c.expect("STRING")
    c.expect("match")
    inv = c.negation()
    pattern = c.take()
    if neg or len(pattern) < 2 or pattern[0] != '"' or pattern[-1] != '"' or "|" in pattern:
        raise _UndecodableError
    opts = [Option("--string", (pattern[1:-1],), inv)]
    c.expect("ALGO")
    c.expect("name")
    opts.append(Option("--algo", (c.take(),)))
    while c.peek() in ("FROM", "TO", "ICASE"):
        w = c.take()
        if w == "ICASE":
            opts.append(Option("--icase"))
        else:
            opts.append(_option("string", "--" + w.lower(), (c.take(),)))
    return _match("string", opts)


def _rpfilter(c: _Cursor, neg: bool) -> Match:
    c.expect("rpfilter")
    if neg:
        raise _UndecodableError
    opts: list[Option] = []
    while c.peek() in ("loose", "validmark", "accept-local", "invert"):
        opts.append(Option("--" + c.take()))
    return _match("rpfilter", opts)


_Decoder = Callable[[_Cursor, bool], Match]

_MATCH_DECODERS: dict[str, _Decoder] = {
    "tcp": _proto_match, "udp": _proto_match, "udplite": _proto_match, "sctp": _proto_match,
    "dccp": _proto_match, "tcpflags:": _proto_match,
    "icmp": _icmp_match, "icmptype": _icmp_match, "ipv6-icmp": _icmp_match,
    "ipv6-icmptype": _icmp_match,
    "multiport": _multiport, "ADDRTYPE": _addrtype, "state": _conntrack,
    "statistic": _statistic, "source": _iprange, "destination": _iprange,
    "match-set": _set, "PHYSDEV": _physdev, "limit:": _limit, "owner": _owner,
    "incl.": _owner, "PKTTYPE": _pkttype, "recent:": _recent, "MAC": _mac, "length": _length,
    "TTL": _ttl, "HL": _ttl, "helper": _helper, "DSCP": _dscp, "tos": _tos, "#conn": _connlimit,
    "STRING": _string, "rpfilter": _rpfilter, "mark": _mark, "connmark": _mark,
}
for _key in _CT_KEYS:
    _MATCH_DECODERS[_key] = _conntrack
