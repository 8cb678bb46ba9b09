"""Read ``iptables [-t TABLE] -L`` listings (with any of ``-n -v -x --line-numbers``).

A listing is a sequence of chains::

    Chain DOCKER (2 references)
    num  pkts bytes target prot opt in       out source    destination
    1      42  2520 DNAT   tcp  --  !docker0 *   0.0.0.0/0 0.0.0.0/0   tcp dpt:8080 to:172.17.0.4:80

The fixed columns come from ``print_header``/``print_rule_details`` in iptables' ``xshared.c``
(``iptables.c`` before 1.8): line number, counters (``xtables_print_num``: K/M/G/T suffixes,
rounded, unless ``-x``), target (``%-9s``, empty for a rule without target), ``[!]prot`` (name,
or number with ``-n`` since 1.8.9), ``opt`` (``--``, ``-f``, ``!f``), interfaces (with ``-v``;
``*``/``any`` is none), source and destination (``anywhere``, host and network names without
``-n``). What follows is ``[goto]`` and each match's ``print`` function, then the target's; their
formats are those of ``extensions/libxt_*.c`` / ``libipt_*.c`` (iptables 1.4 to 1.8.11), e.g.
``libxt_tcp.c`` ``tcp_print`` (``tcp spt:1 dpts:2:3 flags:0x17/0x02``), ``libxt_conntrack.c``
``conntrack_dump`` (``! ctstate NEW``), ``libxt_NAT.c`` (``to:ADDR``), ``libxt_MARK.c``
``mark_tg_print_v2`` (``MARK or 0x4000`` for ``--set-xmark 0x4000/0x4000``), ``libxt_LOG.c``.

Each decoded match and target is rebuilt in iptables-save's form (option names of
``natlens.parse.modules``, values through ``natlens.parse.values``, defaults that iptables-save
prints or omits restored), so a rule equals what ``parse_save`` makes of the same rule.

What a listing cannot tell is named in ``Rule.unknown``, never guessed: ``"in_interface"``,
``"out_interface"`` and ``"counters"`` without ``-v``; ``"counters"`` when rounded;
``"source"``/``"destination"`` for host names that cannot be resolved with certainty;
``"matches"`` when some text could not be decoded (kept verbatim as
``Match("?", (Option("--text", (raw,)),), known=False)``); ``"target_options"`` when the
target's options could not be read. Port and protocol names are resolved through the services
and protocols databases; ``anywhere``, ``localhost`` and the ``loopback`` network by their
standard meaning (said in ``Ruleset.notes``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from natlens.errors import ParseError
from natlens.model import (
    BUILTIN_CHAINS,
    VERDICT_TARGETS,
    Address,
    Chain,
    Counters,
    Family,
    Interface,
    Match,
    Option,
    Origin,
    Protocol,
    Rule,
    Ruleset,
    Table,
    TableName,
    Target,
    TargetKind,
)
from natlens.parse.canonical import CANONICAL_MATCH, CANONICAL_TARGET
from natlens.parse.infer import infer_table
from natlens.parse.modules import MATCHES, TARGETS
from natlens.parse.rule import PROTOCOL_NAMES
from natlens.parse.values import ICMP4_TYPES, ICMP6_TYPES, canonical_args, parse_port

__all__ = ["parse_listing"]

_POLICIES = frozenset({"ACCEPT", "DROP", "QUEUE", "RETURN"})
_OPT = {"--": None, "-f": True, "!f": False}
_SUFFIX = {"K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}
_ALL_BUILTIN = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_NO_IFACE = frozenset({"*", "any"})
_ANY = frozenset({"anywhere", "0.0.0.0/0", "::/0"})
# Names whose meaning is fixed by convention (RFC 6761, Debian's /etc/hosts and /etc/networks).
_WELL_KNOWN = {
    (4, "localhost"): "127.0.0.1",
    (6, "localhost"): "::1",
    (6, "ip6-localhost"): "::1",
    (6, "ip6-loopback"): "::1",
    (4, "loopback"): "127.0.0.0",
    (4, "link-local"): "169.254.0.0",
}
_TCP_FLAGS = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10),
              ("URG", 0x20), ("ECE", 0x40), ("CWR", 0x80))
_LOG_LEVELS = {"emerg": "0", "panic": "0", "alert": "1", "crit": "2", "err": "3", "error": "3",
               "warn": "4", "warning": "4", "notice": "5", "info": "6", "debug": "7"}
_LOG_FLAGS = (("tcp-sequence", 0x01, "--log-tcp-sequence"),
              ("tcp-options", 0x02, "--log-tcp-options"),
              ("ip-options", 0x04, "--log-ip-options"), ("uid", 0x08, "--log-uid"),
              ("macdecode", 0x20, "--log-macdecode"))
_TOS_NAMES = {"Minimize-Delay": "0x10/0x3f", "Maximize-Throughput": "0x08/0x3f",
              "Maximize-Reliability": "0x04/0x3f", "Minimize-Cost": "0x02/0x3f",
              "Normal-Service": "0x00/0x3f"}
_CT_KEYS = frozenset({"ctstate", "ctproto", "ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst",
                      "ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport",
                      "ctstatus", "ctexpire", "ctdir"})
_RECENT_CMDS = {"SET": "--set", "CHECK": "--rcheck", "UPDATE": "--update", "REMOVE": "--remove"}
_FULL = 0xFFFFFFFF



class _UndecodableError(Exception):
    """The text at the cursor is not what a decoder expected."""


# -- small value helpers -----------------------------------------------------------------------


def _service(name: str, proto: str) -> int:
    """A port number or service name (as ``getservbyport`` printed it) → number."""
    if name.isdigit():
        value = int(name)
        if value > 65535:
            raise _UndecodableError
        return value
    return _service_name(name, proto)


@lru_cache(maxsize=1024)
def _service_name(name: str, proto: str) -> int:
    if proto:
        try:
            return socket.getservbyname(name, proto)
        except OSError:
            pass
    try:
        return parse_port(name)  # without protocol, and the names some services files lack
    except ValueError:
        raise _UndecodableError from None


def _ports(text: str, proto: str) -> str:
    """``http``, ``1024:65535``, ``tcpmux:1023`` → ``80``, ``1024:65535``, ``1:1023``."""
    low, sep, high = text.partition(":")
    a = _service(low, proto)
    if not sep:
        return str(a)
    b = _service(high, proto)
    return str(a) if a == b else f"{a}:{b}"


def _bang(word: str) -> tuple[str, bool]:
    return (word[1:], True) if word.startswith("!") else (word, False)


def _hex(value: int) -> str:
    return f"0x{value:x}"


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise _UndecodableError from None


@lru_cache(maxsize=4096)
def _interface(text: str) -> Interface | None:
    """``[!]NAME`` → Interface, or None for a name the kernel would refuse."""
    name, negated = _bang(text)
    if not name or len(name) > 15:
        return None
    return Interface(name, negated)


@lru_cache(maxsize=1024)
def _protocol(text: str) -> Protocol | Literal[False] | None:
    """The prot column → Protocol (None for ``all``/``0``, False when malformed)."""
    name, negated = _bang(text.lower())
    if not name:
        return False
    if name in ("all", "0") and not negated:
        return None
    name = PROTOCOL_NAMES.get(name, name)
    if name.isdigit():
        if int(name) > 255:
            return False
    elif not all(ch.isalnum() or ch in "-_." for ch in name):
        return False
    return Protocol(name, negated)


@lru_cache(maxsize=65536)
def _address(text: str, version: int) -> tuple[Address | None, str]:
    """Source/destination column → (address, status); status is ``""``, ``"unknown"`` (a name
    natlens cannot resolve with certainty) or ``"NAME = ADDRESS"`` (a well-known name)."""
    body, negated = _bang(text)
    if body in _ANY and not negated:
        return None, ""
    if body == "anywhere":
        body = "0.0.0.0/0" if version == 4 else "::/0"
    host, slash, mask = body.partition("/")
    status = ""
    if host and ":" not in host and host.strip("0123456789."):  # a host or network name
        known = _WELL_KNOWN.get((version, host))
        if known is None:
            return None, "unknown"
        status = f"{host} = {known}"
        host = known
    if not slash:
        mask = "128" if ":" in host else "32"
    if not mask.isdigit():
        # A non-contiguous mask (10.0.0.0/255.0.255.0) or a network name as the mask.
        try:
            addr = ipaddress.ip_address(host)
            netmask = ipaddress.ip_address(mask)
        except ValueError:
            return None, "unknown"
        if addr.version != netmask.version:
            raise ValueError(f"bad netmask in {text!r}")
        masked = ipaddress.ip_address(int(addr) & int(netmask))
        try:
            contiguous = ipaddress.ip_network(f"{masked}/{netmask}")
        except ValueError:
            return Address(ipaddress.ip_network(masked), negated, netmask), status
        network = contiguous
    else:
        try:
            network = ipaddress.ip_network(f"{host}/{mask}", strict=False)
        except ValueError:
            raise ValueError(f"bad address {text!r}") from None
    if network.version != version:
        raise ValueError(f"IPv{network.version} address {text!r} in an IPv{version} listing")
    return Address(network, negated), status


def _tcp_flag_names(value: int) -> str:
    names = [name for name, bit in _TCP_FLAGS if value & bit]
    return ",".join(names) if names else "NONE"


def _option(module: str, name: str, args: tuple[str, ...], negated: bool = False,
            targets: bool = False) -> Option:
    """An option under its iptables-save name (``_match``/``_target_options`` canonicalise)."""
    spec = (TARGETS if targets else MATCHES)[module].by_name[name]
    return Option(spec.name, args, negated)


@lru_cache(maxsize=16384)
def _canonical(kind: str, args: tuple[str, ...]) -> tuple[str, ...] | None:
    try:
        return canonical_args(kind, args)
    except ValueError:
        return None


def _match(module: str, options: list[Option]) -> Match:
    """A match built as ``parse_save`` builds it: values canonical, options in spec order,
    then the module's whole-match rewrite (``natlens.parse.canonical``)."""
    by = MATCHES[module].by_name
    opts = sorted((_canonical_option(by[o.name].kind, o) for o in options),
                  key=lambda o: by[o.name].order)
    rewrite = CANONICAL_MATCH.get(module)
    try:
        return Match(module, rewrite(tuple(opts)) if rewrite else tuple(opts))
    except (ValueError, LookupError):
        raise _UndecodableError from None


def _target_options(name: str, options: tuple[Option, ...]) -> tuple[Option, ...]:
    """Target options as ``parse_save`` builds them (values canonical, whole-target rewrite)."""
    by = TARGETS[name].by_name
    opts = tuple(_canonical_option(by[o.name].kind, o) for o in options)
    rewrite = CANONICAL_TARGET.get(name)
    try:
        return rewrite(opts) if rewrite else opts
    except (ValueError, LookupError):
        raise _UndecodableError from None


def _canonical_option(kind: str, option: Option) -> Option:
    if kind == "port" and option.args[0].isdigit() and len(option.args[0]) < 6 \
            and int(option.args[0]) <= 65535:
        return option  # a single port number is already in canonical form
    args = _canonical(kind, option.args)
    if args is None:
        raise _UndecodableError
    return option if args == option.args else Option(option.name, args, option.negated)


# -- the words of the match/target text ----------------------------------------------------------


def _split_words(text: str) -> list[str]:
    """Split on blanks, keeping ``/* comments */`` and ``"quoted strings"`` as one word."""
    words: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
            continue
        if text.startswith("/* ", i):
            end = text.find(" */", i + 2)
            if end >= 0:
                words.append(text[i:end + 3])
                i = end + 3
                continue
        if c == '"':
            end = i + 1
            while True:
                end = text.find('"', end)
                if end < 0 or end + 1 == n or text[end + 1] in " \t":
                    break
                end += 1
            if end >= 0:
                words.append(text[i:end + 1])
                i = end + 1
                continue
        j = i
        while j < n and text[j] not in " \t":
            j += 1
        words.append(text[i:j])
        i = j
    return words


@dataclass(slots=True)
class _Cursor:
    words: list[str]
    i: int = 0
    proto: str = ""

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.words[j] if j < len(self.words) else ""

    def take(self) -> str:
        if self.i >= len(self.words):
            raise _UndecodableError
        w = self.words[self.i]
        self.i += 1
        return w

    def expect(self, word: str) -> None:
        if self.take() != word:
            raise _UndecodableError

    def negation(self) -> bool:
        """Consume a standalone ``!`` (printed before the value)."""
        if self.peek() == "!":
            self.i += 1
            return True
        return False


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


def _icmp_match(c: _Cursor, neg: bool) -> Match:
    word = c.take()
    v6 = word.startswith("ipv6-icmp")
    module, option, names = ("icmp6", "--icmpv6-type", ICMP6_TYPES) if v6 else \
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
                if not value.replace("-", "").isdigit():
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
    if neg or not value.replace(":", "").isdigit():
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
    if neg or side not in ("src", "dst") or op not in (">", "<=") or not mask.isdigit():
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


# -- target decoders: read the target's text at the cursor, return its options ------------------


def _nat_target(name: str, c: _Cursor) -> tuple[Option, ...]:
    opts: list[Option] = []
    flags: list[str] = []
    option = {"DNAT": "--to-destination", "SNAT": "--to-source", "NETMAP": "--to"}[name]
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
            level = text if text.isdigit() else _LOG_LEVELS.get(text, "")
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


def _ct(name: str, c: _Cursor) -> tuple[Option, ...]:
    if c.peek() == "NOTRACK":
        c.i += 1
        return ()
    c.expect("CT")
    opts: list[Option] = []
    while True:
        w = c.peek()
        if w == "notrack":
            c.i += 1
            opts.append(Option("--notrack"))
        elif w in ("helper", "ctevents", "expevents", "zone", "zone-orig", "zone-reply",
                   "timeout"):
            c.i += 1
            opts.append(Option("--" + w, (c.take(),)))
        else:
            break
    return tuple(opts)


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


def _nfqueue(name: str, c: _Cursor) -> tuple[Option, ...]:
    c.expect("NFQUEUE")
    opts: list[Option] = []
    while True:
        w = c.peek()
        if w == "num":
            c.i += 1
            opts.append(Option("--queue-num", (c.take(),)))
        elif w == "balance":
            c.i += 1
            opts.append(Option("--queue-balance", (c.take(),)))
        elif w == "bypass":
            c.i += 1
            opts.append(Option("--queue-bypass"))
        elif w == "cpu-fanout":
            c.i += 1
            opts.append(Option("--queue-cpu-fanout"))
        else:
            break
    return tuple(opts)


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


# -- the listing ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    """One rule line split into its columns (decoded once the family is known)."""

    line_no: int
    line: str
    counters: tuple[str, str] | None
    target: str
    prot: str
    opt: str
    in_interface: str | None
    out_interface: str | None
    source: str
    destination: str
    rest: str


@dataclass(slots=True)
class _ChainState:
    name: str
    builtin: bool
    policy: str | None
    counters: Counters | None
    approximate: bool
    origin: Origin
    rows: list[_Row] = field(default_factory=list)


@dataclass(slots=True)
class _Section:
    table: TableName | None
    chains: dict[str, _ChainState] = field(default_factory=dict)


@dataclass(slots=True)
class _Columns:
    num: bool
    counters: bool
    iface: bool
    count: int
    opt: int


class _ListingParser:
    def __init__(self, source: str, table: TableName | None) -> None:
        self.source = source
        self.sections: list[_Section] = [_Section(table)]
        self.chain: _ChainState | None = None
        self.columns: _Columns | None = None
        self.legacy_present = False
        self.line_no = 0
        self.line = ""
        self.notes: list[str] = []
        self.names_assumed: set[str] = set()
        self.counts = {"unknown_text": 0, "unknown_host": 0, "rounded": 0, "no_iface": 0}

    def error(self, reason: str, token: str | None = None) -> ParseError:
        return ParseError(reason, source=self.source, line_no=self.line_no, line=self.line,
                          token=token)

    # -- phase 1: lines --------------------------------------------------------------------

    def feed(self, text: str) -> None:
        for self.line_no, raw in enumerate(text.splitlines(), 1):
            self.line = raw
            line = raw.strip()
            if not line:
                continue
            if line[0] == "#":
                self.comment(line)
            elif line.startswith("Chain "):
                self.header(line)
            elif self.chain is None:
                word = line.split()[0]
                raise self.error(f"unexpected {word!r} before the first 'Chain' line "
                                 "(not an iptables -L listing?)", word)
            elif self.columns is None:  # the line after each 'Chain' line
                self.column_header(line)
            else:
                self.chain.rows.append(self.row(raw))

    def comment(self, line: str) -> None:
        if line.startswith(("# Warning: iptables-legacy tables present",
                            "# Warning: ip6tables-legacy tables present")):
            self.legacy_present = True
            return
        words = line[1:].split()
        if len(words) == 2 and words[0] == "table":
            try:
                table = TableName(words[1])
            except ValueError:
                raise self.error(f"unknown table {words[1]!r}", words[1]) from None
            current = self.sections[-1]
            if current.chains or (current.table is not None and current.table is not table):
                self.sections.append(_Section(table))
            else:
                current.table = table
            self.chain = None

    def header(self, line: str) -> None:
        rest = line[6:].strip()
        name, _, info = rest.partition(" ")
        info = info.strip()
        if not name or not info.startswith("(") or not info.endswith(")"):
            raise self.error("bad chain line (expected 'Chain NAME (policy P ...)' or "
                             "'Chain NAME (N references)')")
        words = info[1:-1].replace(",", " ").split()
        builtin = False
        policy: str | None = None
        counters: Counters | None = None
        approximate = False
        if words and words[0] == "policy":
            builtin = True
            if len(words) < 2 or words[1] not in _POLICIES:
                bad = words[1] if len(words) > 1 else None
                raise self.error(f"bad policy {bad!r}" if bad else "policy without a verdict",
                                 bad)
            policy = words[1]
            if len(words) > 2:
                if len(words) != 6 or words[3] != "packets" or words[5] != "bytes":
                    raise self.error("bad policy counters (expected 'N packets, M bytes')")
                packets, exact_p = self.count(words[2])
                byte_count, exact_b = self.count(words[4])
                counters = Counters(packets, byte_count)
                approximate = not (exact_p and exact_b)
        elif len(words) == 2 and words[1] == "references" and words[0].isdigit():
            pass
        else:
            raise self.error(f"bad chain line: {info!r}")
        section = self.sections[-1]
        if name in section.chains:
            raise self.error(f"chain {name!r} listed twice (separate the listings of several "
                             "tables with '# table NAME' lines)", name)
        state = _ChainState(name, builtin, policy, counters, approximate,
                            Origin(self.source, self.line_no, self.line))
        section.chains[name] = state
        self.chain = state
        self.columns = None

    def column_header(self, line: str) -> None:
        words = line.split()
        if "target" not in words or "source" not in words or words[-1] != "destination":
            raise self.error("expected the column header ('target prot opt source "
                             "destination') after the 'Chain' line", words[0])
        counters = "pkts" in words
        iface = "in" in words
        num = words[0] == "num"
        expect = ["num"] if num else []
        expect += ["pkts", "bytes"] if counters else []
        expect += ["target", "prot", "opt"] + (["in", "out"] if iface else [])
        expect += ["source", "destination"]
        if words != expect:
            raise self.error("unexpected column header", words[0])
        columns = _Columns(num, counters, iface, len(words), words.index("opt"))
        self.columns = columns

    def count(self, text: str) -> tuple[int, bool]:
        if text.isdigit():
            return int(text), True
        factor = _SUFFIX.get(text[-1:])
        if factor is None or not text[:-1].isdigit():
            raise self.error(f"bad counter {text!r}", text)
        return int(text[:-1]) * factor, False

    def row(self, raw: str) -> _Row:
        cols = self.columns
        assert cols is not None
        parts = raw.split(None, cols.count)
        opt_i = cols.opt
        if len(parts) > opt_i and parts[opt_i] not in _OPT:
            if parts[opt_i - 1] in _OPT:
                # Empty target column (a rule without -j): one column fewer.
                parts = raw.split(None, cols.count - 1)
                parts.insert(opt_i - 2, "")
            else:
                # ip6tables before 1.8 printed blanks in the opt column (no fragment flag).
                alt = raw.split(None, cols.count - 1)
                src = cols.count - 3
                if len(alt) > src and (":" in alt[src] or alt[src] == "anywhere"):
                    alt.insert(opt_i, "--")
                    parts = alt
        if len(parts) < cols.count:
            raise self.error(f"rule line with {len(parts)} columns, expected {cols.count}")
        i = 0
        if cols.num:
            if not parts[0].isdigit():
                raise self.error(f"bad rule number {parts[0]!r}", parts[0])
            i = 1
        counters: tuple[str, str] | None = None
        if cols.counters:
            counters = (parts[i], parts[i + 1])
            i += 2
        target, prot, opt = parts[i], parts[i + 1], parts[i + 2]
        if opt not in _OPT:
            raise self.error(f"bad opt column {opt!r} (expected '--', '-f' or '!f')", opt)
        i += 3
        in_iface = out_iface = None
        if cols.iface:
            in_iface, out_iface = parts[i], parts[i + 1]
            i += 2
        rest = parts[i + 2] if len(parts) > i + 2 else ""
        return _Row(self.line_no, raw, counters, target, prot, opt, in_iface, out_iface,
                    parts[i], parts[i + 1], rest)

    # -- phase 2: rules -----------------------------------------------------------------------

    def family_of(self) -> Family:
        family = self.family_evidence()
        if family is None:
            self.notes.append(f"{self.source}: the listing does not show its address family "
                              "(no numeric address); read as IPv4")
            return Family.IPV4
        return family

    def family_evidence(self) -> Family | None:
        for section in self.sections:
            for chain in section.chains.values():
                for row in chain.rows:
                    for addr in (row.source, row.destination):
                        text = addr.lstrip("!")
                        if ":" in text:
                            return Family.IPV6
                        if text[:1].isdigit():
                            return Family.IPV4
                    if row.prot.lstrip("!") in ("ipv6-icmp", "58", "icmpv6"):
                        return Family.IPV6
        return None

    def result(self, family: Family | None) -> Ruleset:
        if family is None:
            family = self.family_of()
        version = 6 if family is Family.IPV6 else 4
        tables: list[Table] = []
        for section in self.sections:
            if not section.chains and (section.table is None or len(self.sections) > 1):
                continue
            tables.append(self.table(section, version))
        # Only iptables-nft warns about legacy tables, so the warning tells the backend.
        return Ruleset(family=family, tables=tuple(tables), source=self.source, format="listing",
                       backend="nf_tables" if self.legacy_present else None,
                       legacy_tables_present=self.legacy_present, notes=tuple(self.make_notes()))

    def table(self, section: _Section, version: int) -> Table:
        name = section.table
        names = set(section.chains)
        if name is None:
            name = infer_table(
                [c.name for c in section.chains.values() if c.builtin],
                [r.target for c in section.chains.values() for r in c.rows],
            )
            self.notes.append(f"{self.source}: listing does not name its table; read as table "
                              f"{name.value} (inferred from its chains and targets)")
        builtins = BUILTIN_CHAINS[name]
        chains: list[Chain] = []
        for state in section.chains.values():
            if state.builtin and state.name not in builtins:
                raise ParseError(f"chain {state.name} has a policy but is not a built-in chain "
                                 f"of table {name.value}", source=self.source,
                                 line_no=state.origin.line, line=state.origin.text,
                                 token=state.name)
            if state.approximate:
                self.counts["rounded"] += 1
            rules = tuple(self.rule(state.name, row, names, version) for row in state.rows)
            chains.append(Chain(state.name, state.builtin, state.policy, state.counters, rules,
                                state.origin))
        return Table(name, tuple(chains))

    def rule(self, chain: str, row: _Row, chains: set[str], version: int) -> Rule:
        self.line_no, self.line = row.line_no, row.line
        unknown: set[str] = set()
        counters = None
        if row.counters is not None:
            packets, exact_p = self.count(row.counters[0])
            byte_count, exact_b = self.count(row.counters[1])
            counters = Counters(packets, byte_count)
            if not (exact_p and exact_b):
                unknown.add("counters")
                self.counts["rounded"] += 1
        if row.in_interface is None:
            unknown.update(("in_interface", "out_interface", "counters"))
            self.counts["no_iface"] += 1
        in_iface = self.interface(row.in_interface)
        out_iface = self.interface(row.out_interface)
        protocol = self.protocol(row.prot)
        source = self.address(row.source, version, "source", unknown)
        destination = self.address(row.destination, version, "destination", unknown)
        matches, target, goto = self.decode_rest(row, protocol, chains, version, unknown)
        return Rule(
            chain=chain, source=source, destination=destination, in_interface=in_iface,
            out_interface=out_iface, protocol=protocol, fragment=_OPT[row.opt],
            matches=matches, target=target, goto=goto, counters=counters,
            origin=Origin(self.source, row.line_no, row.line), unknown=frozenset(unknown),
        )

    def interface(self, text: str | None) -> Interface | None:
        if text is None or text in _NO_IFACE:
            return None
        iface = _interface(text)
        if iface is None:
            raise self.error(f"bad interface {text!r}", text)
        return iface

    def protocol(self, text: str) -> Protocol | None:
        protocol = _protocol(text)
        if protocol is False:
            raise self.error(f"bad protocol {text!r}", text)
        return protocol

    def address(self, text: str, version: int, which: str, unknown: set[str]) -> Address | None:
        try:
            address, status = _address(text, version)
        except ValueError as exc:
            raise self.error(str(exc), text) from None
        if status == "unknown":
            unknown.add(which)
            self.counts["unknown_host"] += 1
        elif status:
            self.names_assumed.add(status)
        return address

    def decode_rest(
        self, row: _Row, protocol: Protocol | None, chains: set[str], version: int,
        unknown: set[str],
    ) -> tuple[tuple[Match, ...], Target | None, bool]:
        name = row.target
        rest = row.rest
        words = (_split_words(rest) if '"' in rest or "/*" in rest else rest.split()) \
            if rest else []
        goto = False
        if words and words[0] == "[goto]":
            goto = True
            words = words[1:]
        c = _Cursor(words, 0, protocol.name if protocol and not protocol.negated else "")
        matches: list[Match] = []
        raw: list[str] = []
        target_opts: tuple[Option, ...] | None = None
        target_decoder = _TARGET_DECODERS.get(name)
        had_raw = False
        while c.i < len(words):
            start = c.i
            neg = c.negation()
            word = c.peek()
            decoder = _comment if word.startswith("/* ") else _MATCH_DECODERS.get(word)
            decoded: Match | None = None
            if decoder is not None:
                try:
                    decoded = decoder(c, neg)
                except (_UndecodableError, ValueError, LookupError):
                    c.i = start
            if decoded is not None:
                had_raw |= self.flush(raw, matches)
                matches.append(decoded)
                continue
            c.i = start
            if target_decoder is not None and target_opts is None:
                try:
                    opts = _target_options(name, target_decoder(name, c))
                except (_UndecodableError, ValueError, LookupError):
                    opts = None
                if opts is not None and c.i > start:
                    had_raw |= self.flush(raw, matches)
                    target_opts = opts
                    continue
                c.i = start
            raw.append(c.take())
        had_raw |= self.flush(raw, matches)
        if had_raw:
            unknown.add("matches")
            self.counts["unknown_text"] += 1
        target: Target | None = None
        if name:
            if name == "CT" and target_opts == () and "NOTRACK" in row.rest.split():
                name = "NOTRACK"
            if name in chains:
                target = Target(name, (), TargetKind.CHAIN)
            elif name in VERDICT_TARGETS:
                target = Target(name, (), TargetKind.VERDICT)
            elif name in TARGETS:
                target = Target(name, target_opts or (), TargetKind.EXTENSION)
                if target_opts is None and (had_raw or target_decoder is None) and \
                        TARGETS[name].options:
                    unknown.add("target_options")
            else:
                target = Target(name, (), TargetKind.UNKNOWN)
                if had_raw:
                    unknown.add("target_options")
        elif goto:
            raise self.error("[goto] without a target chain", "[goto]")
        return tuple(matches), target, goto

    @staticmethod
    def flush(raw: list[str], matches: list[Match]) -> bool:
        if not raw:
            return False
        matches.append(Match("?", (Option("--text", (" ".join(raw),)),), known=False))
        raw.clear()
        return True

    def make_notes(self) -> list[str]:
        notes = list(self.notes)
        counts = self.counts
        if counts["no_iface"]:
            notes.append(f"{self.source}: listing without -v: interfaces and counters of "
                         f"{counts['no_iface']} rules are unknown")
        if counts["rounded"]:
            notes.append(f"{self.source}: counters are rounded (K/M/G) in {counts['rounded']} "
                         "places; list with -x for exact counts")
        if counts["unknown_host"]:
            notes.append(f"{self.source}: {counts['unknown_host']} addresses are host or network "
                         "names that cannot be resolved with certainty (list with -n)")
        if self.names_assumed:
            notes.append(f"{self.source}: names read by their standard meaning: "
                         + ", ".join(sorted(self.names_assumed)))
        if counts["unknown_text"]:
            notes.append(f"{self.source}: {counts['unknown_text']} rules have match or target "
                         "text natlens cannot decode (kept verbatim as unknown matches)")
        return notes


def parse_listing(
    text: str,
    *,
    source: str = "<string>",
    family: Family | str | None = None,
    table: TableName | str | None = None,
) -> Ruleset:
    """Parse ``iptables [-t TABLE] -L [-n] [-v] [-x] [--line-numbers]`` output into a Ruleset.

    ``table`` names the listed table (inferred from built-in chains and targets when omitted;
    a text may hold several tables separated by ``# table NAME`` lines). ``family`` overrides
    what the addresses tell. The result has ``format == "listing"``; what the listing could not
    tell is in each ``Rule.unknown`` and summarised in ``Ruleset.notes``. Raises ``ParseError``
    for text that is not a listing.
    """
    try:
        forced = TableName(table) if table is not None else None
        fam = Family(family) if family is not None else None
    except ValueError as exc:
        raise ParseError(str(exc), source=source) from None
    parser = _ListingParser(source, forced)
    parser.feed(text)
    if not any(s.chains for s in parser.sections):
        raise ParseError("no 'Chain' line: not an iptables -L listing", source=source)
    return parser.result(fam)
