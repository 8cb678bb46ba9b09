"""Parse the arguments of one rule (everything after ``-A CHAIN``) into a ``Rule``.

Grammar as iptables(8) and iptables-restore accept it: the IP part (``[!] -s/-d/-i/-o/-p/-f``)
may appear anywhere, ``-m MODULE`` opens a match whose options follow, ``-j``/``-g`` names the
target whose options follow, ``!`` negates the next option. Old iptables (< 1.4.3) wrote the ``!``
after the option (``-d ! 10.0.0.0/8``); that form is read and re-serialised in the modern order.
Long options may be abbreviated to a unique prefix, as getopt_long allows.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from natlens.errors import did_you_mean
from natlens.inputs import is_decimal as _decimal
from natlens.model import (
    VERDICT_TARGETS,
    Address,
    Counters,
    Interface,
    Match,
    Option,
    Origin,
    Protocol,
    Rule,
    Target,
    TargetKind,
)
from natlens.names import name_bytes
from natlens.parse.canonical import CANONICAL_MATCH, CANONICAL_TARGET
from natlens.parse.checks import MATCH_CHECKS, TARGET_CHECKS, refusal
from natlens.parse.construct import _Address, new_address
from natlens.parse.modules import ABSENT_MATCHES, MATCHES, PROTOCOL_MATCHES, TARGETS, ModuleSpec
from natlens.parse.networks import CompactIPv4Network, compact_network
from natlens.parse.reject import reject_families
from natlens.parse.values import c_scan_llu, canonical_address, canonical_args

__all__ = ["RuleSyntaxError", "parse_rule_args", "PROTOCOL_NAMES", "protocol_bound",
           "protocol_refusal"]


class RuleSyntaxError(ValueError):
    """A bad argument at ``index`` (or the rule as a whole when ``index`` is None)."""

    def __init__(self, reason: str, index: int | None = None, token: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index
        self.token = token


PROTOCOL_NAMES = {
    "0": "all", "1": "icmp", "2": "igmp", "4": "ipencap", "6": "tcp", "17": "udp", "33": "dccp",
    "41": "ipv6", "47": "gre", "50": "esp", "51": "ah", "58": "ipv6-icmp", "132": "sctp",
    "136": "udplite", "icmpv6": "ipv6-icmp",
}
_KNOWN_PROTOCOLS = frozenset(
    {"all", "tcp", "udp", "udplite", "icmp", "ipv6-icmp", "esp", "ah", "sctp", "mh", "gre",
     "dccp", "igmp", "ipencap", "ipv6", "ipip", "ospf", "vrrp", "pim", "l2tp", "rsvp",
     "ipv6-route", "ipv6-frag", "ipv6-nonxt", "ipv6-opts", "hopopt", "encap", "egp", "pup",
     "idp", "xtp", "ddp", "idpr-cmtp", "ipcomp", "etherip", "isis", "rspf", "vmtp", "mptcp"}
)
# Protocol names iptables-save prints for protocol numbers it does not name itself.
_PROTO_FOR_MATCH = {"ipv6-icmp": "icmp6", "icmpv6": "icmp6"}

_CORE_ADDR = {"-s": "source", "--source": "source", "--src": "source",
              "-d": "destination", "--destination": "destination", "--dst": "destination"}
_CORE_IFACE = {"-i": "in_interface", "--in-interface": "in_interface",
               "-o": "out_interface", "--out-interface": "out_interface"}
_CORE_PROTO = frozenset({"-p", "--protocol"})
_CORE_FRAG = frozenset({"-f", "--fragment"})
_MATCH = frozenset({"-m", "--match"})
_JUMP = frozenset({"-j", "--jump"})
_GOTO = frozenset({"-g", "--goto"})
_COUNTERS = frozenset({"-c", "--set-counters"})
_IFNAMSIZ = 15
_MAX_EXTENSION_NAME = 28
"""Longest match or target name iptables takes, in bytes (``XT_EXTENSION_MAXNAMELEN`` - 1;
xshared.c ``parse_target``, xtables.c ``xtables_find_match``: "Invalid target name ... (28
chars max)"); a chain name (a jump target) has the same bound."""
_ATTACHED = frozenset({"-s", "-d", "-i", "-o", "-p", "-j", "-g", "-m"})


@dataclass(slots=True)
class _MatchBuilder:
    module: str
    spec: ModuleSpec | None
    implicit: bool = False
    options: list[Option] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    """Index in the rule's arguments of each option's name (for errors)."""
    at: int | None = None
    """Index of the module's name (None: loaded by ``-p``)."""

    def build(self) -> Match:
        opts = self.options
        if self.spec is not None and len(opts) > 1:
            by = self.spec.by_name
            opts = sorted(opts, key=lambda o: by[o.name].order if o.name in by else 999)
        options = tuple(opts)
        rewrite = CANONICAL_MATCH.get(self.module)
        if rewrite is not None and self.spec is not None:
            options = rewrite(options)
        return Match(self.module, options, self.spec is not None, self.implicit)


@dataclass(slots=True)
class _TargetBuilder:
    name: str
    spec: ModuleSpec | None
    kind: TargetKind
    options: list[Option] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    at: int | None = None


def parse_rule_args(
    chain: str,
    args: list[str],
    *,
    quoted: frozenset[int] = frozenset(),
    origin: Origin | None = None,
    counters: Counters | None = None,
    chains: Container[str] = frozenset(),
    lenient: bool = False,
    warn: Callable[[str], None] | None = None,
) -> list[Rule]:
    """Parse ``args`` into rules (several when ``-s``/``-d`` list more than one address).

    ``chains`` are the names of the table's chains (a ``-j`` to one of them is a jump). In
    ``lenient`` mode, unquoted words after ``--comment`` are joined to the comment (kube-proxy's
    test fixtures write them so) and ``warn`` is told.
    """
    p = _RuleParser(args, quoted, chains, lenient, warn)
    p.run()
    return p.build(chain, origin, counters)


_ADDRESS_CACHE: tuple[dict[int | str, Address], dict[int | str, Address]] = ({}, {})
"""``_host_key`` of an address text -> its Address, plain and negated
(``_ADDRESS_CACHE[negated]``): one object per address of a parse, however many rules name it
(``forget_addresses`` empties it after a large parse)."""
_ADDRESSES_KEPT = 100_000
"""Addresses kept from one parse to the next (as many as a 100k-rule dump names: parsed
again, it finds them all)."""


def forget_addresses() -> None:
    """Empty the address cache when a parse left more than ``_ADDRESSES_KEPT`` addresses in it
    (a 700k-line dump names 180k: kept, they would outlive its rules by 50 MB)."""
    for cache in _ADDRESS_CACHE:
        if len(cache) > _ADDRESSES_KEPT:
            cache.clear()


_PREFIXES = {str(n): n for n in range(33)}
_NETMASKS: dict[int, tuple[ipaddress.IPv4Address, int]] = {
    n: getattr(ipaddress.IPv4Network, "_make_netmask")(n) for n in range(33)}  # noqa: B009
_SET_IP: Callable[[ipaddress.IPv4Address, int], None] = \
    vars(ipaddress.IPv4Address)["_ip"].__set__


def _build_ipv4_network(packed: int, prefix: int) -> ipaddress.IPv4Network:
    """``IPv4Network((packed, prefix), strict=False)`` without its argument parsing: the
    attributes its ``__init__`` sets (a quarter of the cost; one per service and endpoint on
    kube dumps). Used only when ``_check_ipv4_build`` finds it equal to the constructor.

    A ``CompactIPv4Network`` (natlens.parse.networks: no ``hosts`` function per /31 and /32
    network), its attributes set one by one (``vars(net)`` would give it a dict of its own;
    set so, they share the class's key table: 175 bytes a /32 network instead of 447)."""
    netmask, prefix = _NETMASKS[prefix]
    net = object.__new__(CompactIPv4Network)
    address = object.__new__(ipaddress.IPv4Address)
    _SET_IP(address, packed if prefix == 32 else packed & int(netmask))  # /32: the same int
    net.network_address = address
    net.netmask = netmask
    net._prefixlen = prefix  # type: ignore[attr-defined]  # what __init__ sets
    return net


def _check_ipv4_build() -> bool:
    """Whether ``_build_ipv4_network`` gives what this Python's ``IPv4Network`` gives."""
    for packed, prefix in ((0x0A000001, 32), (0x0A000001, 31), (0x0A000101, 24), (7, 0)):
        built = _build_ipv4_network(packed, prefix)
        real = ipaddress.IPv4Network((packed, prefix), strict=False)
        if vars(built).keys() != vars(real).keys() - {"hosts"} or built != real \
                or str(built) != str(real) or repr(built) != repr(real):
            return False
        if prefix >= 31 and list(built.hosts()) != list(real.hosts()):
            return False
        if any(getattr(built, k) != getattr(real, k) for k in vars(real) if k != "hosts"):
            return False
    return True


_IPV4_BUILT = _check_ipv4_build()
"""Whether ``_build_ipv4_network`` (and ``_host_address``) may stand for the constructor."""
_IPV4_NETWORK = _build_ipv4_network if _IPV4_BUILT else \
    (lambda packed, prefix: ipaddress.IPv4Network((packed, prefix), strict=False))
_NETMASK_32 = _NETMASKS[32][0]
_NEW: Callable[[type], Any] = object.__new__
_IPV4_ADDRESS = ipaddress.IPv4Address
_AF_INET = socket.AF_INET


def _fast_ipv4_network(text: str) -> ipaddress.IPv4Network | None:
    """An IPv4 address or network (host bits cleared, as iptables does); None otherwise."""
    addr, slash, prefix_text = text.partition("/")
    prefix = _PREFIXES.get(prefix_text) if slash else 32
    if prefix is not None:
        try:
            packed = socket.inet_pton(_AF_INET, addr)
        except (OSError, ValueError):
            packed = b""
        # the round trip keeps only the canonical dotted-decimal spelling, which ipaddress
        # reads the same way whatever the C library's inet_pton accepts
        if packed and socket.inet_ntop(_AF_INET, packed) == addr:
            return _IPV4_NETWORK(int.from_bytes(packed, "big"), prefix)
    if ":" in text or "." in text.partition("/")[2]:
        return None  # dotted masks go the careful way (ipaddress reads 0.0.0.255 as a hostmask)
    try:
        return compact_network(ipaddress.IPv4Network(text, strict=False))
    except ValueError:
        return None


_OCTETS: dict[str, int] = {str(n): n for n in range(256)}
"""An octet in its canonical decimal spelling (no sign, no leading zero) -> its value."""
_LAST_OCTETS: dict[str, int] = {**_OCTETS, **{f"{n}/32": n for n in range(256)}}
"""The last octet of a host address as ``_host_key`` reads it, with or without ``/32``."""
_HEADS: dict[str, int] = {}
"""The first three octets of a host address in canonical spelling (``10.128.38``) -> their
value shifted into place (``0x0A802600``): a few hundred of them on a kube dump, where 180k
addresses share them."""
_HEADS_KEPT = 4096
"""Most entries ``_HEADS`` takes (about 400 kB); beyond it heads are read each time."""


def _head_value(head: str) -> int:
    """``A.B.C`` (three canonical octets) shifted as the top 24 bits of an address, or -1."""
    parts = head.split(".")
    if len(parts) != 3:
        return -1
    a = _OCTETS.get(parts[0])
    b = _OCTETS.get(parts[1])
    c = _OCTETS.get(parts[2])
    if a is None or b is None or c is None:
        return -1
    return (a << 24) | (b << 16) | (c << 8)


def _host_key(text: str) -> int | str:
    """The address cache's key for ``text``: an IPv4 host in its canonical spelling
    (``10.0.0.1/32``, ``10.0.0.1``: four octets in decimal without leading zeros, what
    ``inet_ntop`` prints; 180k of them on a 700k-line kube dump) as its integer, which its
    network then holds (no key string kept beside it while the parse runs: 11 MB there),
    anything else as the text.

    The octets are read by table (``_OCTETS``, ``_HEADS``): the same canonical spellings the
    ``inet_pton``/``inet_ntop`` round trip kept, at a third of its cost (issue 13)."""
    dot = text.rfind(".")
    last = _LAST_OCTETS.get(text[dot + 1:])
    if last is None or dot <= 0:
        return text
    head = text[:dot]
    base = _HEADS.get(head)
    if base is None:
        base = _head_value(head)
        if base < 0:
            return text
        if len(_HEADS) < _HEADS_KEPT:
            _HEADS[head] = base
    return base | last


def _host_address(packed: int, negated: bool) -> Address:
    """``Address(IPv4Network((packed, 32)), negated)`` in one step, as
    ``_build_ipv4_network`` and ``new_address`` build it (one per service and endpoint
    address on kube dumps). Used only when ``_check_ipv4_build`` passed."""
    net = _NEW(CompactIPv4Network)
    address = _NEW(_IPV4_ADDRESS)
    _SET_IP(address, packed)
    net.network_address = address
    net.netmask = _NETMASK_32
    net._prefixlen = 32  # what __init__ sets
    built = _Address(net, negated, None)
    built.__class__ = Address  # type: ignore[assignment]
    return built  # type: ignore[return-value]


def _parse_address(part: str, negated: bool, index: int, value: str) -> Address:
    """The Address ``part`` names (``[!] -s/-d`` and the like), one object per text and
    negation in a parse (``_ADDRESS_CACHE``). Raises RuleSyntaxError (at ``index``, naming
    ``value``) for what iptables refuses: a host name, a bad prefix length or netmask."""
    key = _host_key(part)
    cached = _ADDRESS_CACHE[negated].get(key)
    if cached is not None:
        return cached
    return _new_address(key, part, negated, index, value)


def _ipv4_address(part: str, negated: bool) -> Address | None:
    """What ``_parse_address`` gives for ``part`` when it is an IPv4 address or network
    written with digits, dots and a slash only; None for anything else (another family, a
    name, a list, an error: the full parser decides)."""
    key = _host_key(part)
    if type(key) is not int and (not part or part.strip("0123456789./")):
        return None
    cached = _ADDRESS_CACHE[negated].get(key)
    if cached is not None:
        return cached
    try:
        return _new_address(key, part, negated, 0, part)
    except RuleSyntaxError:
        return None


def _new_address(key: int | str, part: str, negated: bool, index: int, value: str) -> Address:
    """The Address of ``part`` (``_host_key`` gave ``key``), built and kept in the cache."""
    if type(key) is int:
        address = _host_address(key, negated) if _IPV4_BUILT else \
            new_address(_IPV4_NETWORK(key, 32), negated, None)
        _ADDRESS_CACHE[negated][key] = address
        return address
    net = _fast_ipv4_network(part)
    if net is not None:
        address = new_address(net, negated, None)
    else:
        try:
            address = Address(compact_network(ipaddress.ip_network(canonical_address(part))),
                              negated)
        except ValueError:
            address = _parse_masked_address(part, negated, index, value)
    _ADDRESS_CACHE[negated][key] = address
    return address


def _bad_address(addr_text: str, mask_text: str, part: str) -> str:
    """Why ``part`` is not an address: a prefix length out of range, a bad mask, or (neither
    an address nor a network) a host name, which natlens does not resolve."""
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        return f"bad address {part!r} (natlens does not resolve host names)"
    if mask_text.isdecimal():
        return (f"bad prefix length in {part!r}: IPv{addr.version} allows 0 to "
                f"{addr.max_prefixlen}")
    return f"bad netmask in {part!r}"


def _parse_masked_address(part: str, negated: bool, index: int, value: str) -> Address:
    addr_text, _, mask_text = part.partition("/")
    try:
        addr = ipaddress.ip_address(addr_text)
        mask = ipaddress.ip_address(mask_text)
    except ValueError:
        raise RuleSyntaxError(_bad_address(addr_text, mask_text, part), index, value) from None
    if addr.version != mask.version:
        raise RuleSyntaxError(f"bad netmask in {part!r}", index, value)
    masked = ipaddress.ip_address(int(addr) & int(mask))
    return Address(compact_network(ipaddress.ip_network(masked)), negated, mask)


_PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp", "dccp"})
NAT_PORT_PROTOCOLS = _PORT_PROTOCOLS | {"icmp", "1", "ipv6-icmp", "icmpv6", "58"}
"""Protocols with which DNAT/SNAT/MASQUERADE/REDIRECT accept a port (libxt_DNAT.c ``portok``:
TCP, UDP, SCTP, DCCP and ICMP, where the "port" is the echo id the kernel maps; not UDP-Lite)."""


def _names_ports(target: Target) -> bool:
    """Whether a NAT target names ports (which iptables allows only with a port protocol)."""
    if target.name in ("MASQUERADE", "REDIRECT"):
        return target.get("--to-ports") is not None
    if target.name in ("DNAT", "SNAT"):
        for opt in target.options:
            if opt.name in ("--to-destination", "--to-source"):
                text = opt.args[0]
                tail = text.rsplit("]", 1)[1] if text.startswith("[") else (
                    "" if text.count(":") > 1 else text.partition(":")[1])
                if ":" in tail:
                    return True
    return False


_PROTOCOL_BOUND_OPTIONS = frozenset({"--to-destination", "--to-source", "--to-ports",
                                     "--reject-with"})


def _resets_tcp(target: Target) -> bool:
    """Whether ``target`` is REJECT ``--reject-with`` a value that names ``tcp-reset`` in
    either family (natlens.parse.reject: ``tcp-rst``, ``tcp``, ``t`` too; no other type
    starts with "t", so a value is tcp-reset in one family only when the other refuses it)."""
    if target.name != "REJECT" or target.kind is not TargetKind.EXTENSION:
        return False
    option = target.get("--reject-with")
    return option is not None and len(option.args) == 1 \
        and "tcp-reset" in reject_families(option.args[0])


def protocol_bound(target: Target) -> bool:
    """Whether ``target`` takes only some ``-p`` values (then ``protocol_refusal`` says
    which): NAT targets naming ports, REJECT with tcp-reset."""
    return _names_ports(target) or _resets_tcp(target)


def protocol_refusal(target: Target, protocol: Protocol | None) -> str | None:
    """Why iptables or the kernel refuses ``target`` in a rule with ``-p protocol`` (None:
    no ``-p``), or None.

    A NAT target naming ports needs a non-negated port protocol (libxt_DNAT.c ``portok``:
    "Need TCP, UDP, SCTP or DCCP with port specification", userspace). REJECT tcp-reset needs
    ``-p tcp``, not negated: the kernel's ``reject_tg_check`` (net/ipv4/netfilter/ipt_REJECT.c,
    net/ipv6/netfilter/ip6t_REJECT.c) says EINVAL when the rule is committed, which
    ``iptables-restore --test`` does not see.

    >>> reject = Target("REJECT", (Option("--reject-with", ("tcp-reset",)),),
    ...                 TargetKind.EXTENSION)
    >>> protocol_refusal(reject, Protocol("tcp", False)) is None
    True
    >>> protocol_refusal(reject, Protocol("tcp", True))
    'REJECT --reject-with tcp-reset needs -p tcp (the kernel refuses it otherwise)'
    """
    plain = protocol.name if protocol is not None and not protocol.negated else ""
    if _names_ports(target) and plain not in NAT_PORT_PROTOCOLS:
        return (f"{target.name} with a port needs -p tcp, udp, sctp or dccp (iptables: 'Need "
                "TCP, UDP, SCTP or DCCP with port specification')")
    if _resets_tcp(target) and plain != "tcp":
        return "REJECT --reject-with tcp-reset needs -p tcp (the kernel refuses it otherwise)"
    return None


def _is_name(text: str) -> bool:
    """Module, target, chain and interface names: non-empty, no blanks or quotes."""
    return bool(text) and not any(c.isspace() or c in "\"'" for c in text)


class _RuleParser:
    __slots__ = (
        "args",
        "chains",
        "context",
        "counters",
        "destinations",
        "fragment",
        "goto",
        "i",
        "in_iface",
        "joined",
        "lenient",
        "matches",
        "negate",
        "negate_index",
        "out_iface",
        "protocol",
        "quoted",
        "sources",
        "target",
        "warn",
    )

    def __init__(
        self,
        args: list[str],
        quoted: frozenset[int],
        chains: Container[str],
        lenient: bool,
        warn: Callable[[str], None] | None,
    ) -> None:
        self.args = args
        self.quoted = quoted
        self.chains = chains
        self.lenient = lenient
        self.warn = warn
        self.i = 0
        self.negate = False
        self.negate_index = -1
        self.sources: list[Address] = []
        self.destinations: list[Address] = []
        self.in_iface: Interface | None = None
        self.out_iface: Interface | None = None
        self.protocol: Protocol | None = None
        self.fragment: bool | None = None
        self.matches: list[_MatchBuilder] = []
        self.target: _TargetBuilder | None = None
        self.goto = False
        self.counters: Counters | None = None
        self.context: _MatchBuilder | _TargetBuilder | None = None
        # lenient: unquoted words joined to a comment, per (builder, option index); joined once
        # at the end of the rule (joining word by word copies the comment each time: quadratic)
        self.joined: list[tuple[_MatchBuilder | _TargetBuilder, int, list[str]]] = []

    # -- helpers -------------------------------------------------------------------------------

    def _take_negation(self) -> bool:
        neg = self.negate
        self.negate = False
        return neg

    def _value(self, option: str) -> tuple[str, bool]:
        """The single argument after ``option`` (at self.i), with old-style ``!`` handled."""
        args = self.args
        i = self.i
        negated = self._take_negation()
        if i < len(args) and args[i] == "!" and i not in self.quoted:
            if negated:
                raise RuleSyntaxError("multiple '!' flags not allowed", i, "!")
            negated = True
            i += 1
        if i >= len(args):
            raise RuleSyntaxError(f"option {option!r} requires an argument", i - 1, option)
        self.i = i + 1
        return args[i], negated

    def _is_option_token(self, index: int) -> bool:
        tok = self.args[index]
        if index in self.quoted or not tok.startswith("-") or tok == "-":
            return False
        return not tok[1:].replace(".", "", 1).isdigit()

    def _split_token(self, index: int, name: str, value: str) -> None:
        """``--opt=value`` / ``-pvalue`` (getopt forms) → two arguments."""
        self.args = [*self.args[:index], name, value, *self.args[index + 1:]]
        self.quoted = frozenset(q + 1 if q > index else q for q in self.quoted)

    # -- main loop -----------------------------------------------------------------------------

    def run(self) -> None:
        while self.i < len(self.args):
            index = self.i
            tok = self.args[index]
            self.i += 1
            if tok == "!" and index not in self.quoted:
                if self.negate:
                    raise RuleSyntaxError("multiple '!' flags not allowed", index, tok)
                self.negate = True
                self.negate_index = index
                continue
            if index in self.quoted or not tok.startswith("-"):
                self._stray(index, tok)
                continue
            if "=" in tok and tok.startswith("--"):
                name, _, value = tok.partition("=")
                self._split_token(index, name, value)
                tok = name
            elif len(tok) > 2 and tok[1] in "sdiopjgm" and tok[:2] in _ATTACHED:
                self._split_token(index, tok[:2], tok[2:])
                tok = tok[:2]
            handler = _DISPATCH.get(tok)
            if handler is None:
                self._option(tok, index)
            else:
                handler(self, tok, index)
        for builder, at, words in self.joined:
            opt = builder.options[at]
            builder.options[at] = Option(opt.name, (" ".join((opt.args[0], *words)),),
                                         opt.negated)
        if self.negate:
            raise RuleSyntaxError("'!' not followed by an option", self.negate_index, "!")

    def _stray(self, index: int, tok: str) -> None:
        last = self.context.options[-1] if self.context and self.context.options else None
        # Only the comment match's --comment (one argument); an unknown module's option of
        # that name takes any number of words (possibly none), as below.
        if self.lenient and last is not None and last.name == "--comment" and \
                self.context is not None and self.context.spec is not None:
            assert self.context is not None
            at = len(self.context.options) - 1
            if self.joined and self.joined[-1][0] is self.context and self.joined[-1][1] == at:
                self.joined[-1][2].append(tok)
                return
            self.joined.append((self.context, at, [tok]))
            if self.warn:
                self.warn(f"unquoted word {tok!r} joined to the comment "
                          "(quote multi-word comments)")
            return
        if self.context is not None and self.context.spec is None and self.context.options:
            # An unknown module's option taking another argument.
            opt = self.context.options[-1]
            self.context.options[-1] = Option(opt.name, (*opt.args, tok), opt.negated)
            return
        raise RuleSyntaxError(f"bad argument {tok!r}", index, tok)

    def _address(self, tok: str, index: int) -> None:
        value, negated = self._value(tok)
        field_name = _CORE_ADDR[tok]
        target = self.sources if field_name == "source" else self.destinations
        if target:
            raise RuleSyntaxError(f"multiple {tok} flags not allowed", index, tok)
        for part in value.split(","):
            target.append(_parse_address(part, negated, index + 1, value))
        if negated and len(target) > 1:
            raise RuleSyntaxError("! not allowed with multiple source or destination IP addresses",
                                  index + 1, value)

    def _fragment(self, tok: str, index: int) -> None:
        self.fragment = not self._take_negation()

    def _interface(self, tok: str, index: int) -> None:
        value, negated = self._value(tok)
        if not _is_name(value.lstrip("!")) or "/" in value:
            raise RuleSyntaxError(f"bad interface name {value!r}", index + 1, value)
        if len(value) > _IFNAMSIZ // 4 and name_bytes(value) > _IFNAMSIZ:  # UTF-8: 1-4 bytes
            raise RuleSyntaxError(f"interface name {value!r} must be shorter than 16 bytes",
                                  index + 1, value)
        iface: Interface | None = Interface(value, negated)
        if value == "+" and not negated:
            iface = None  # matches every interface; iptables-save omits it
        if _CORE_IFACE[tok] == "in_interface":
            if self.in_iface is not None:
                raise RuleSyntaxError(f"multiple {tok} flags not allowed", index, tok)
            self.in_iface = iface
        else:
            if self.out_iface is not None:
                raise RuleSyntaxError(f"multiple {tok} flags not allowed", index, tok)
            self.out_iface = iface

    def _protocol(self, tok: str, index: int) -> None:
        value, negated = self._value(tok)
        if self.protocol is not None:
            raise RuleSyntaxError(f"multiple {tok} flags not allowed", index, tok)
        name = value.lower()
        name = PROTOCOL_NAMES.get(name, name)
        if name not in _KNOWN_PROTOCOLS and not (_decimal(name) and int(name) < 256):
            try:
                socket.getprotobyname(name)
            except (OSError, ValueError):
                raise RuleSyntaxError(f"unknown protocol {value!r}", index + 1, value) from None
        self.protocol = Protocol(name, negated)

    def _match(self, tok: str, index: int) -> None:
        if self.negate:
            raise RuleSyntaxError("'!' cannot negate -m", self.negate_index, "!")
        if self.i >= len(self.args):
            raise RuleSyntaxError(f"option {tok!r} requires an argument", index, tok)
        module = self.args[self.i]
        if not _is_name(module) or module.startswith(("-", "!")):
            # iptables: "Couldn't load match `-j'" (an option word is no module name)
            raise RuleSyntaxError(f"bad match module name {module!r} after {tok}", self.i,
                                  module)
        if len(module) > _MAX_EXTENSION_NAME // 4 and name_bytes(module) > _MAX_EXTENSION_NAME:
            raise RuleSyntaxError(f"invalid match name {module!r} ({_MAX_EXTENSION_NAME} "
                                  "bytes max)", self.i, module)
        if module in ABSENT_MATCHES:
            raise RuleSyntaxError(f"Couldn't load match {module!r} (iptables 1.8.9 has no such "
                                  "extension)", self.i, module)
        self.i += 1
        spec = MATCHES.get(module)
        builder = _MatchBuilder(module, spec, at=self.i - 1)
        self.matches.append(builder)
        self.context = builder

    def _target(self, tok: str, index: int) -> None:
        if self.negate:
            raise RuleSyntaxError(f"'!' cannot negate {tok}", self.negate_index, "!")
        if self.target is not None:
            raise RuleSyntaxError("multiple -j flags not allowed", index, tok)
        if self.i >= len(self.args):
            raise RuleSyntaxError(f"option {tok!r} requires an argument", index, tok)
        name = self.args[self.i]
        if not _is_name(name) or name.startswith(("-", "!")):
            raise RuleSyntaxError(f"bad target name {name!r} after {tok}", self.i, name)
        if len(name) > _MAX_EXTENSION_NAME // 4 and name_bytes(name) > _MAX_EXTENSION_NAME:
            raise RuleSyntaxError(f"invalid target name {name!r} ({_MAX_EXTENSION_NAME} bytes "
                                  "max)", self.i, name)
        self.i += 1
        self.goto = tok in _GOTO
        spec: ModuleSpec | None = None
        if name in self.chains:
            kind = TargetKind.CHAIN
        elif name in VERDICT_TARGETS:
            kind = TargetKind.VERDICT
        elif name in TARGETS:
            kind = TargetKind.EXTENSION
            spec = TARGETS[name]
        else:
            kind = TargetKind.UNKNOWN
        if self.goto and kind is not TargetKind.CHAIN and kind is not TargetKind.UNKNOWN:
            raise RuleSyntaxError(f"-g needs a user-defined chain, not {name!r}", index + 1, name)
        self.target = _TargetBuilder(name, spec, kind, at=self.i - 1)
        self.context = self.target

    def _set_counters(self, tok: str, index: int) -> None:
        """``-c PACKETS BYTES`` or ``-c PACKETS,BYTES``, each read as iptables' xshared.c
        reads it (``sscanf("%llu")``: ``3abc`` is 3, ``٣`` is no number; ``c_scan_llu``)."""
        args = self.args
        if self.i < len(args) and "," in args[self.i][1:]:
            packet_text, byte_text = args[self.i].split(",", 1)
            self.i += 1
        elif self.i + 1 < len(args) and not args[self.i + 1].startswith(("-", "!")):
            # xshared.c xs_has_arg: the byte count is no option word
            packet_text, byte_text = args[self.i], args[self.i + 1]
            self.i += 2
        else:
            raise RuleSyntaxError(f"{tok} needs packet and byte counts", index, tok)
        packets, byte_count = c_scan_llu(packet_text), c_scan_llu(byte_text)
        if packets is None or byte_count is None:
            raise RuleSyntaxError(f"{tok} needs packet and byte counts", index, tok)
        self.counters = Counters(packets, byte_count)

    def _option(self, tok: str, index: int) -> None:
        owner, spec_name, nargs, kind = self._find_owner(tok, index)
        negated = self._take_negation()
        args = self.args
        values: list[str] = []
        i = self.i
        if nargs >= 0:
            if nargs > 0 and i < len(args) and args[i] == "!" and i not in self.quoted:
                if negated:
                    raise RuleSyntaxError("multiple '!' flags not allowed", i, "!")
                negated = True
                i += 1
            if i + nargs > len(args):
                raise RuleSyntaxError(f"option {tok!r} requires an argument", index, tok)
            values = args[i:i + nargs]
            i += nargs
        else:  # unknown module: arguments up to the next option
            if i < len(args) and args[i] == "!" and i + 1 < len(args) and not \
                    self._is_option_token(i + 1) and i not in self.quoted:
                negated = True
                i += 1
            while i < len(args) and not self._is_option_token(i) and not (
                args[i] == "!" and i not in self.quoted
            ):
                values.append(args[i])
                i += 1
        self.i = i
        try:
            canon = canonical_args(kind, tuple(values))
        except ValueError as exc:
            raise RuleSyntaxError(str(exc), index + 1, values[0] if values else tok) from None
        quoted = any(j in self.quoted for j in range(i - len(values), i))
        owner.options.append(Option(spec_name, canon, negated, quoted))
        owner.positions.append(index)

    def _find_owner(
        self, tok: str, index: int
    ) -> tuple[_MatchBuilder | _TargetBuilder, str, int, str]:
        context = self.context
        if context is not None and context.spec is not None:
            spec = context.spec.lookup(tok)
            if spec is not None:
                return context, spec.name, spec.nargs, spec.kind
        for builder in reversed(self.matches):
            if builder.spec is not None and builder is not context:
                spec = builder.spec.lookup(tok)
                if spec is not None:
                    return builder, spec.name, spec.nargs, spec.kind
        # iptables loads the protocol's match implicitly only for a non-negated -p.
        proto = self.protocol.name if self.protocol and not self.protocol.negated else None
        module = _PROTO_FOR_MATCH.get(proto, proto) if proto else None
        if module in PROTOCOL_MATCHES:
            spec_m = MATCHES[module]
            spec = spec_m.lookup(tok)
            if spec is not None:
                builder = _MatchBuilder(module, spec_m, implicit=True)
                self.matches.append(builder)
                return builder, spec.name, spec.nargs, spec.kind
        if context is not None and context.spec is None:
            return context, tok, -1, "str"
        if context is None and not self.matches:
            raise RuleSyntaxError(f"unknown option {tok!r}", index, tok)
        names: list[str] = []
        for known in (b.spec for b in self.matches):
            if known is not None:
                names.extend(known.by_name)
        if self.target is not None and self.target.spec is not None:
            names.extend(self.target.spec.by_name)
        where = ""
        if isinstance(context, _TargetBuilder):
            where = f" for {context.name}"
        elif context is not None:
            where = f" for -m {context.module}"
        raise RuleSyntaxError(f"unknown option {tok!r}{where}{did_you_mean(tok, names)}",
                              index, tok)

    def _check_module(self, built: _MatchBuilder | _TargetBuilder) -> None:
        """Raise what iptables says of the module's options as a whole (natlens.parse.checks:
        repeated, excluded, missing options, the extension's final check)."""
        if isinstance(built, _MatchBuilder):
            name, checks = built.module, MATCH_CHECKS.get(built.module)
        else:
            name, checks = built.name, TARGET_CHECKS.get(built.name)
        found = refusal(name, built.options, checks)
        if found is None:
            return
        at = built.at
        if found.option is not None:
            at = next((pos for opt, pos in zip(built.options, built.positions, strict=True)
                       if opt.name == found.option), at)
            if found.reason.endswith("can only be used once"):  # point at the repeat
                at = [pos for opt, pos in zip(built.options, built.positions, strict=True)
                      if opt.name == found.option][1]
        raise RuleSyntaxError(found.reason, at, self.args[at] if at is not None else None)

    # -- result --------------------------------------------------------------------------------

    def build(self, chain: str, origin: Origin | None, counters: Counters | None) -> list[Rule]:
        for builder in self.matches:
            if builder.module in PROTOCOL_MATCHES and not builder.implicit:
                proto = self.protocol.name if self.protocol else None
                want = "ipv6-icmp" if builder.module == "icmp6" else builder.module
                if proto != want or (self.protocol and self.protocol.negated):
                    raise RuleSyntaxError(f"-m {builder.module} requires -p {want}", builder.at,
                                          builder.module)
        for built in (*self.matches, self.target):
            if built is not None and built.spec is not None:
                self._check_module(built)
        matches = tuple(b.build() for b in self.matches)
        target: Target | None = None
        if self.target is not None:
            options = tuple(self.target.options)
            rewrite = CANONICAL_TARGET.get(self.target.name)
            if rewrite is not None and self.target.kind is TargetKind.EXTENSION:
                try:
                    options = rewrite(options)
                except ValueError as exc:
                    raise RuleSyntaxError(str(exc)) from None
            target = Target(self.target.name, options, self.target.kind)
            refused = protocol_refusal(target, self.protocol)
            if refused is not None:
                # point at the value that asks for the protocol (a port, tcp-reset)
                at = next((pos + 1 for opt, pos in zip(self.target.options,
                                                       self.target.positions, strict=True)
                           if opt.name in _PROTOCOL_BOUND_OPTIONS), self.target.at)
                raise RuleSyntaxError(refused, at, self.args[at] if at is not None else None)
        rules: list[Rule] = []
        sources: list[Address | None] = [*self.sources] or [None]
        destinations: list[Address | None] = [*self.destinations] or [None]
        for src in sources:
            for dst in destinations:
                rules.append(
                    Rule(
                        chain=chain,
                        source=src,
                        destination=dst,
                        in_interface=self.in_iface,
                        out_interface=self.out_iface,
                        protocol=self.protocol,
                        fragment=self.fragment,
                        matches=matches,
                        target=target,
                        goto=self.goto,
                        counters=self.counters if self.counters is not None else counters,
                        origin=origin,
                    )
                )
        return rules


_Handler = Callable[[_RuleParser, str, int], None]
_DISPATCH: dict[str, _Handler] = {
    **dict.fromkeys(_CORE_ADDR, _RuleParser._address),
    **dict.fromkeys(_CORE_IFACE, _RuleParser._interface),
    **dict.fromkeys(_CORE_PROTO, _RuleParser._protocol),
    **dict.fromkeys(_CORE_FRAG, _RuleParser._fragment),
    **dict.fromkeys(_MATCH, _RuleParser._match),
    **dict.fromkeys(_JUMP | _GOTO, _RuleParser._target),
    **dict.fromkeys(_COUNTERS, _RuleParser._set_counters),
}
