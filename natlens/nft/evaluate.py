"""Evaluate nft rules against a packet: matches, lookups, verdicts, NAT, marks.

Semantics: nft(8) "STATEMENTS", "VERDICT STATEMENT", "NAT STATEMENTS", "OVERALL EVALUATION OF
THE RULESET"; kernel ``nf_tables_core.c`` (``nft_do_chain``: statements run in order, a failed
match or a missed lookup is ``NFT_BREAK`` = on to the next rule; ``jump`` pushes a return
position, ``goto`` does not, ``return`` or the end of a regular chain pops, the end of a base
chain applies its policy; the jump stack holds 16 levels, ``NFT_JUMP_STACK_SIZE``), ``nft_nat.c``
(a NAT statement ends the rule with accept; ``dnat ip to`` in an inet table does nothing to an
IPv6 packet), ``nft_lookup.c``/``nft_objref.c`` (a verdict map without the key does nothing).

Statements run in order, so a statement before a failing match has already acted
(``meta mark set 1 ip saddr 10.0.0.1 drop`` sets the mark of every packet). A rule's result is
a ``RuleOutcome``: ``matched`` True (every match held: its verdict, if any, applies), False
(a match failed: the next rule runs, with the flow as the earlier statements left it) or None
(uncertain: ``branches`` lists the possible outcomes, each saying what it assumed). Uncertain
are: ``limit``, ``quota``, ``ct count``, ``queue``, ``xt`` (iptables-nft compat without its
arguments), values the snapshot cannot tell (TTL, a ``jhash``/``symhash`` of the packet, an
existing connection's connmark) and anything unknown. A ``numgen`` value is chance, not doubt:
the statement runs once per value it can draw and each outcome gets its share as
``RuleOutcome.probability`` (``_draw``; nft(8) "NUMGEN EXPRESSION", ``nft_numgen.c``), as
iptables' ``-m statistic`` forks in ``natlens.netfilter.walk``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING

from natlens.model import Interface, Option, Target
from natlens.nft.lookup import (
    Interval,
    KeyPart,
    Scalar,
    SetIndex,
    UnnormalisableError,
    build_index,
    normalise,
)
from natlens.nft.model import MAPPINGS, Element, Json, NftSet, Rule, Table
from natlens.nft.outiface import condition, conditions, is_out_key, noted, read
from natlens.nft.render import key_type, render_expr
from natlens.nft.values import Draw, Getter, Missing, Unknown, Value, Where, compile_getter

if TYPE_CHECKING:  # natlens.netfilter imports natlens.nft: no runtime import back
    from natlens.netfilter.flow import Flow
    from natlens.netfilter.host import Host
    from natlens.netfilter.packet import Packet
    from natlens.netfilter.targets import Effect

__all__ = [
    "NftVerdict", "RuleOutcome", "NftContext", "CompiledTable", "ChainResult", "ChainStep",
    "compile_table", "evaluate_rule", "walk_chain", "MAX_BRANCHES", "JUMP_STACK",
]

MAX_BRANCHES = 64
"""At most this many outcomes per rule; beyond, the rest are folded into one uncertain branch."""
JUMP_STACK = 16
"""NFT_JUMP_STACK_SIZE: deeper jumps make the kernel drop the packet (a ruleset loop)."""
_BITMASK_TYPES = frozenset({"ct_state", "ct_status", "tcp_flag"})
_HOOK_NAMES = {"prerouting": "PREROUTING", "input": "INPUT", "forward": "FORWARD",
               "output": "OUTPUT", "postrouting": "POSTROUTING"}


class NftVerdict(str, Enum):
    """How a rule (or a chain) ends: nft(8) "VERDICT STATEMENT" plus reject and queue."""

    ACCEPT = "accept"
    DROP = "drop"
    REJECT = "reject"
    QUEUE = "queue"
    CONTINUE = "continue"
    RETURN = "return"
    JUMP = "jump"
    GOTO = "goto"


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What a rule did to a packet.

    ``matched``: True, False or None (uncertain, see ``branches``). ``flow`` is the packet after
    the statements that ran (NAT rewrites, ``meta mark set``, ``notrack``). ``verdict`` is None
    when the rule let the packet go on to the next rule; ``target`` names the chain of a jump
    or goto. ``effects`` say what the statements did (``dnat 10.0.0.1:80 -> ...``,
    ``counter``, ``log prefix "x"``); ``why_not`` the first failed match; ``uncertain`` what
    was assumed (for a branch) or doubted.
    """

    matched: bool | None
    flow: Flow
    verdict: NftVerdict | None = None
    target: str | None = None
    effects: tuple[str, ...] = ()
    why_not: str = ""
    uncertain: tuple[str, ...] = ()
    branches: tuple[RuleOutcome, ...] = ()
    probability: float = 1.0
    """The chance of this outcome when a ``numgen`` decided it (1.0 otherwise; for a branch,
    its share: the ``numgen`` values that give it over all it may draw)."""


@dataclass(frozen=True, slots=True)
class NftContext:
    """Where rules are evaluated: the host, the nft hook (``prerouting``, ``input``,
    ``forward``, ``output``, ``postrouting``), the compiled table (its sets and chains) and the
    priority of the base chain being walked (``ct state`` reads invalid below -200)."""

    host: Host
    hook: str
    table: CompiledTable
    priority: int = 0
    draws: tuple[tuple[int, int], ...] = ()
    """``Where.draws``: the numgen values fixed while ``_run`` weighs a statement."""

    @property
    def where(self) -> Where:
        return Where(self.host, self.hook, self.priority, self.draws)


# -- step results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Go:
    flow: Flow
    effect: str = ""
    doubt: str = ""


@dataclass(frozen=True, slots=True)
class _Stop:
    why: str
    flow: Flow | None = None


@dataclass(frozen=True, slots=True)
class _End:
    verdict: NftVerdict
    flow: Flow
    target: str | None = None
    effect: str = ""
    doubt: str = ""


@dataclass(frozen=True, slots=True)
class _Doubt:
    why: str
    options: tuple[tuple[str, _Go | _Stop | _End], ...]
    draw: Draw | None = None
    """Set when the doubt is only a ``numgen``'s value: ``_run`` then evaluates the statement
    for each value it may draw (chance, with probabilities) instead of taking ``options``."""


_Result = _Go | _Stop | _End | _Doubt
_Step = Callable[["Flow", "NftContext"], _Result]


# -- constants and lookups ----------------------------------------------------------------------


def _constant(value: Json, dtype: str | None) -> Value:
    try:
        part = normalise(value, dtype)
    except UnnormalisableError as err:
        return Unknown(str(err))
    if isinstance(part, Interval):
        return Unknown("a range where a value is expected")
    return part


def _const_value(value: Json, dtype: str | None) -> KeyPart | Unknown:
    """A right-hand constant: a value, a prefix/range (Interval), a flag list (OR of bits) or
    a binary operation of constants (``syn | ack``)."""
    if isinstance(value, tuple):
        bits = 0
        for item in value:
            part = _const_value(item, dtype)
            if not isinstance(part, int):
                return Unknown(f"flag list with {item!r}")
            bits |= part
        return bits
    if isinstance(value, MAPPINGS) and len(value) == 1:
        ((kind, body),) = value.items()
        if kind in ("|", "&", "^") and isinstance(body, tuple):
            parts = [_const_value(b, dtype) for b in body]
            if not all(isinstance(p, int) for p in parts):
                return Unknown(f"{kind} of non-numbers")
            acc = parts[0]
            assert isinstance(acc, int)
            for p in parts[1:]:
                assert isinstance(p, int)
                acc = acc | p if kind == "|" else acc & p if kind == "&" else acc ^ p
            return acc
    try:
        return normalise(value, dtype)
    except UnnormalisableError as err:
        return Unknown(str(err))


def _types_of(left: Json) -> tuple[str | None, ...]:
    text = key_type(left)
    if text is None:
        return (None,)
    return tuple(None if t == "?" else t for t in text.split(" . "))


def _set_types(nft_set: NftSet, left_types: tuple[str | None, ...]) -> tuple[str | None, ...]:
    if nft_set.typeof or len(nft_set.key_type) != len(left_types):
        return left_types
    return tuple(declared if declared != "inet_addr" else lt
                 for declared, lt in zip(nft_set.key_type, left_types, strict=True))


def _anonymous(items: Json, map_form: bool) -> tuple[Element, ...]:
    seq = items if isinstance(items, tuple) else (items,)
    elements: list[Element] = []
    for item in seq:
        data: Json = None
        if map_form and isinstance(item, tuple) and len(item) == 2:
            item, data = item
        if isinstance(item, MAPPINGS) and "elem" in item and isinstance(item["elem"], MAPPINGS):
            item = item["elem"].get("val")
        elements.append(Element(key=item, data=data))
    return tuple(elements)


@dataclass(frozen=True, slots=True)
class _Hit:
    element: Element | None
    runtime: bool = False  # a dynamic/timeout set: a miss may be runtime state




def _key_tuple(value: Value) -> tuple[Scalar, ...] | None:
    if isinstance(value, tuple):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        return (value,)
    return None


def _compile_lookup(ref: Json, left: Json, *, map_form: bool) -> Callable[
        [Value, NftContext], _Hit | Unknown]:
    """A lookup into ``@name`` or an anonymous set/map literal, keyed by ``left``'s value."""
    left_types = _types_of(left)
    if isinstance(ref, str) and ref.startswith("@"):
        name = ref[1:]

        def named(value: Value, ctx: NftContext) -> _Hit | Unknown:
            found = ctx.table.index(name, left_types)
            if found is None:
                return Unknown(f"set @{name} is not in table {ctx.table.table.label}")
            nft_set, index = found
            key = _key_tuple(value)
            if key is None:
                return Unknown(f"@{name}: key {value!r} cannot be looked up")
            pos = index.find(key)
            hit = index.elements[pos] if pos is not None else None
            return _Hit(hit, runtime=nft_set.runtime_filled)

        return named
    body = ref["set"] if isinstance(ref, MAPPINGS) and "set" in ref else ref
    index = build_index(_anonymous(body, map_form), left_types)

    def anonymous(value: Value, ctx: NftContext) -> _Hit | Unknown:
        key = _key_tuple(value)
        if key is None:
            return Unknown(f"key {value!r} cannot be looked up")
        pos = index.find(key)
        return _Hit(index.elements[pos] if pos is not None else None)

    return anonymous


def _is_set_ref(right: Json) -> bool:
    return (isinstance(right, str) and right.startswith("@")) or \
        (isinstance(right, MAPPINGS) and "set" in right)


# -- matches ------------------------------------------------------------------------------------


def _compare(op: str, left: KeyPart, right: KeyPart) -> bool:
    if isinstance(right, Interval):
        inside = isinstance(left, int) and right.low <= left <= right.high
        return inside if op in ("==", "in") else not inside if op == "!=" else False
    if isinstance(right, str) and isinstance(left, str) and right.endswith("*") \
            and not right.endswith("\\*"):
        hit = left.startswith(right[:-1])
    else:
        hit = left == right
    if op in ("==", "in"):
        return hit
    if op in ("!=", "!"):
        return not hit
    if isinstance(left, int) and isinstance(right, int):
        return {"<": left < right, ">": left > right, "<=": left <= right,
                ">=": left >= right}[op]
    return False


def _operand(get: Getter, flow: Flow, ctx: NftContext, text: str
             ) -> Scalar | tuple[Scalar, ...] | bool | _Stop | _Doubt:
    """A match's left operand read from ``flow``; when it cannot be read, what the match does:
    stop when the packet lacks it (``Missing``), doubt both ways when it is ``Unknown``."""
    value = get(flow, ctx.where)
    if isinstance(value, Missing):
        return _Stop(f"{text}: {value.why}")
    if isinstance(value, Unknown):
        return _doubt_match(flow, f"{text}: {value.why}", value.draw)
    return value


def _match(body: Mapping[str, Json], text: str) -> _Step:
    op = str(body.get("op"))
    left, right = body.get("left"), body.get("right")
    dtype = key_type(left)
    get = compile_getter(left, _constant, dtype)
    if isinstance(right, bool):
        def exists(flow: Flow, ctx: NftContext) -> _Result:
            value = _operand(get, flow, ctx, text)
            if isinstance(value, _Stop | _Doubt):
                return value
            present = value not in (False, 0, "")
            ok = present == right if op in ("==", "in") else present != right
            return _Go(flow) if ok else _Stop(f"{text}: {'found' if present else 'missing'}")

        return exists
    out = is_out_key(left)
    if _is_set_ref(right):
        lookup = _compile_lookup(right, left, map_form=False)
        negate = op in ("!=", "!")

        def member(flow: Flow, ctx: NftContext) -> _Result:
            if out and not flow.out_known:
                unknown = get(flow, ctx.where)
                elements = _elements(right, left, ctx) if isinstance(unknown, Unknown) else None
                conds = conditions(elements) if elements is not None else None
                if isinstance(unknown, Unknown) and conds:
                    return _out_member(conds, negate, flow, f"{text}: {unknown.why}", text)
            value = _operand(get, flow, ctx, text)
            if isinstance(value, _Stop | _Doubt):
                return value
            hit = lookup(value, ctx)
            if isinstance(hit, Unknown):
                return _doubt_match(flow, f"{text}: {hit.why}")
            found = hit.element is not None
            if found != negate:
                return _Go(flow)
            if hit.runtime:
                return _doubt_match(flow, f"{text}: the set is filled at run time")
            return _Stop(f"{text}: {_show(value, dtype)} is {'' if found else 'not '}in the set")

        return member
    bitmask = dtype in _BITMASK_TYPES and op in ("in", "!")
    const = _const_value(right, dtype)
    if dtype == "iface_index" and isinstance(const, int):
        # meta iif/oif printed as a number: an interface the listing host could not name
        const = Unknown(f"interface index {const}: its name is not in the snapshot")
    cond = condition(const) if out and op in ("==", "!=") and isinstance(const, str) else None

    def compare(flow: Flow, ctx: NftContext) -> _Result:
        if cond is not None and not flow.out_known:
            unknown = get(flow, ctx.where)
            if isinstance(unknown, Unknown):
                return _out_member((cond,), op == "!=", flow, f"{text}: {unknown.why}", text)
        value = _operand(get, flow, ctx, text)
        if isinstance(value, _Stop | _Doubt):
            return value
        if isinstance(const, Unknown):
            return _doubt_match(flow, f"{text}: {const.why}")
        if isinstance(value, tuple | bool):
            return _doubt_match(flow, f"{text}: cannot compare {value!r}")
        if bitmask and isinstance(value, int) and isinstance(const, int):
            ok = ((value & const) != 0) == (op == "in")
        else:
            ok = _compare(op, value, const)
        return _Go(flow) if ok else _Stop(f"{text}: {_show(value, dtype)} does not match")

    return compare


def _show(value: Value, dtype: str | None) -> str:
    if isinstance(value, tuple):
        return " . ".join(_show(v, None) for v in value)
    if isinstance(value, int) and dtype in ("ipv4_addr",):
        return str(ipaddress.IPv4Address(value))
    if isinstance(value, int) and dtype in ("ipv6_addr",):
        return str(ipaddress.IPv6Address(value))
    if isinstance(value, int) and dtype == "mark":
        return f"0x{value:08x}"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _elements(ref: Json, left: Json, ctx: NftContext) -> tuple[Element, ...] | None:
    """The elements of set ``ref`` (``@name`` or a literal), None for a set filled at run
    time or not in the table."""
    if isinstance(ref, MAPPINGS) and "set" in ref:
        return _anonymous(ref["set"], False)
    if not isinstance(ref, str):
        return None
    found = ctx.table.index(ref[1:], _types_of(left))
    if found is None or found[0].runtime_filled:
        return None
    return found[0].elements


def _out_member(conds: tuple[Interface, ...], negate: bool, flow: Flow, why: str, text: str
                ) -> _Result:
    """``oifname [!=] { NAME, ... }`` (one name for a comparison) on an unknown output
    interface: decided by the path's earlier readings (``natlens.nft.outiface``), else a doubt
    whose branches add their readings, as iptables' ``-o`` does (one interface for the whole
    path): "in the set" one branch per name left open, each reading the interface as that
    name; "not in the set" one branch reading it as none of them."""
    reads = [read(c, flow) for c in conds]
    if True in reads or all(r is False for r in reads):
        found = True in reads
        if found != negate:
            return _Go(flow)
        return _Stop(f"{text}: the output interface (unknown) is {'' if found else 'not '}"
                     "what the condition needs, as this path assumed earlier", flow)
    open_ = [c.name for c, r in zip(conds, reads, strict=True) if r is None]
    outside = noted(flow, [(n, False) for n in open_])
    label = "assumed not to match" if negate else "assumed to match"
    insides: list[tuple[str, _Go | _Stop | _End]] = []
    for name in open_ if len(open_) <= MAX_BRANCHES else ():  # else: no reading, a plain doubt
        inside = noted(flow, [(name, True)])
        said = label if len(open_) == 1 else f"{label}: output interface {name}"
        insides.append((said, _Stop(why, inside) if negate else _Go(inside)))
    if not insides:
        insides.append((label, _Stop(why, flow) if negate else _Go(flow)))
    if negate:
        return _Doubt(why, (("assumed to match", _Go(outside)), *insides))
    return _Doubt(why, (*insides, ("assumed not to match", _Stop(why, outside))))


def _out_vmap(elements: tuple[Element, ...], key: Json, flow: Flow, why: str, text: str
              ) -> _Result | None:
    """``oifname vmap { NAME : VERDICT, ... }`` on an unknown output interface: the element
    the path's earlier readings choose, else one branch per element they leave open (each
    reading its name) and one for none (reading none of them); None when the elements are not
    all plain names with verdicts."""
    conds = conditions(elements)
    if not conds or len(elements) > MAX_BRANCHES:
        return None
    reads = [read(c, flow) for c in conds]
    options: list[tuple[str, _Go | _Stop | _End]] = []
    for element, c, r in zip(elements, conds, reads, strict=True):
        end = _verdict_of(element.data, flow if r else noted(flow, [(c.name, True)]))
        if end is None:
            return None
        if r:
            return end
        if r is None:
            options.append((f"{render_expr(key)} chose {render_expr(element.key)}", end))
    none = noted(flow, [(c.name, False) for c, r in zip(conds, reads, strict=True) if r is None])
    if not options:
        return _Stop(f"{text}: the output interface (unknown) is in none of the map's keys, as "
                     "this path assumed earlier", flow)
    options.append(("no element of the map chosen", _Stop(text, none)))
    return _Doubt(why, tuple(options))


def _doubt_match(flow: Flow, why: str, draw: Draw | None = None) -> _Doubt:
    return _Doubt(why, (("assumed to match", _Go(flow)), ("assumed not to match",
                                                          _Stop(why, flow))), draw)


# -- verdicts, vmaps ----------------------------------------------------------------------------


def _verdict_of(data: Json, flow: Flow, effect: str = "") -> _End | None:
    if isinstance(data, MAPPINGS) and len(data) == 1:
        ((kind, body),) = data.items()
        if kind in ("jump", "goto") and isinstance(body, MAPPINGS):
            target = body.get("target")
            return _End(NftVerdict(kind), flow, str(target), effect)
        if kind in ("accept", "drop", "continue", "return"):
            return _End(NftVerdict(kind), flow, None, effect)
        if kind == "queue":
            return _End(NftVerdict.QUEUE, flow, None, effect, "queued to userspace: the "
                        "verdict is decided by a program (assumed accept)")
    return None


def _vmap(body: Mapping[str, Json], text: str) -> _Step:
    key = body.get("key")
    get = compile_getter(key, _constant, key_type(key))
    data = body.get("data")
    lookup = _compile_lookup(data, key, map_form=True)
    literal = _anonymous(data["set"], True) if isinstance(data, MAPPINGS) and "set" in data \
        else None

    def vmap(flow: Flow, ctx: NftContext) -> _Result:
        value = get(flow, ctx.where)
        if isinstance(value, Missing):
            return _Stop(f"{text}: {value.why}")
        if isinstance(value, Unknown):
            elements = literal
            if elements is None and isinstance(data, str):
                found = ctx.table.index(data[1:], _types_of(key))
                elements = found[0].elements if found else None
            options: list[tuple[str, _Go | _Stop | _End]] = []
            if is_out_key(key) and not value.random and elements is not None:
                chosen = _out_vmap(elements, key, flow, f"{text}: {value.why}", text)
                if chosen is not None:
                    return chosen
            if elements is not None and len(elements) <= MAX_BRANCHES:
                for element in elements:
                    end = _verdict_of(element.data, flow)
                    if end is not None:
                        options.append((f"{render_expr(key)} chose "
                                        f"{render_expr(element.key)}", end))
            if not value.random or not options:
                options.append(("no element of the map chosen", _Stop(text, flow)))
            return _Doubt(f"{text}: {value.why}", tuple(options), value.draw)
        hit = lookup(value, ctx)
        if isinstance(hit, Unknown):
            return _doubt_match(flow, f"{text}: {hit.why}")
        if hit.element is None:
            if hit.runtime:
                return _doubt_match(flow, f"{text}: the map is filled at run time")
            return _Stop(f"{text}: no element for {_show(value, key_type(key))}")
        end = _verdict_of(hit.element.data, flow)
        if end is None:
            return _Doubt(f"{text}: element data {hit.element.data!r} is not a verdict",
                          (("assumed to continue", _Go(flow)),))
        return end

    return vmap


# -- NAT ----------------------------------------------------------------------------------------


def _map_value(expr: Json, what: str) -> Callable[[Flow, NftContext], Json | Missing | Unknown]:
    """A NAT address/port or mangle value: a constant, or ``KEY map DATA`` looked up."""
    if isinstance(expr, MAPPINGS) and "map" in expr and isinstance(expr["map"], MAPPINGS):
        body = expr["map"]
        key = body.get("key")
        get = compile_getter(key, _constant, key_type(key))
        lookup = _compile_lookup(body.get("data"), key, map_form=True)

        def mapped(flow: Flow, ctx: NftContext) -> Json | Missing | Unknown:
            value = get(flow, ctx.where)
            if isinstance(value, Missing | Unknown):
                return value
            hit = lookup(value, ctx)
            if isinstance(hit, Unknown):
                return hit
            if hit.element is None:
                if hit.runtime:
                    return Unknown(f"{what}: the map is filled at run time")
                return Missing(f"{what}: no element for {_show(value, key_type(key))}")
            return hit.element.data

        return mapped
    return lambda flow, ctx: expr


def _first(value: Json) -> Json:
    """The first address or port of a range (``nf_nat_setup_info`` picks within it)."""
    if isinstance(value, MAPPINGS) and "range" in value:
        rng: Json = value["range"]
        if isinstance(rng, tuple) and rng:
            first: Json = rng[0]
            return first
    return value


def _netmap(prefix: Mapping[str, Json], old: ipaddress.IPv4Address | ipaddress.IPv6Address
            ) -> str | None:
    try:
        net = ipaddress.ip_network(f"{prefix.get('addr')}/{prefix.get('len')}", strict=False)
    except ValueError:
        return None
    if net.version != old.version:
        return None
    mask = int(net.netmask)
    full = (1 << net.max_prefixlen) - 1
    return str(ipaddress.ip_address((int(old) & ~mask & full) | int(net.network_address)))


def _nat_value(got: Json | Missing | Unknown, what: str, flow: Flow, text: str
               ) -> Json | _Stop | _Doubt:
    """A NAT statement's address or port (``what``) as read for ``flow``: the value, a stop
    when the packet lacks what it reads, or a doubt whose one branch accepts untranslated."""
    if isinstance(got, Missing):
        return _Stop(got.why)
    if isinstance(got, Unknown):
        return _Doubt(got.why, ((f"NAT {what} unknown", _End(
            NftVerdict.ACCEPT, flow, None, text, got.why)),), got.draw)
    return got


def _nat(kind: str, body: Json, text: str) -> _Step:
    spec = body if isinstance(body, MAPPINGS) else {}
    family = spec.get("family")
    addr_of = _map_value(spec.get("addr"), text) if spec.get("addr") is not None else None
    port_of = _map_value(spec.get("port"), text) if spec.get("port") is not None else None
    type_flags = spec.get("type_flags")
    prefix_mode = "prefix" in (type_flags if isinstance(type_flags, tuple) else (type_flags,))
    destination = kind in ("dnat", "redirect")

    def nat(flow: Flow, ctx: NftContext) -> _Result:
        version = flow.dst.version
        if family in ("ip", "ip6") and (4 if family == "ip" else 6) != version:
            return _Go(flow, f"{text}: not an {family} packet, nothing done")
        addr: Json = None
        port: Json = None
        if addr_of is not None:
            got = _nat_value(addr_of(flow, ctx), "address", flow, text)
            if isinstance(got, _Stop | _Doubt):
                return got
            addr = got
            if isinstance(addr, MAPPINGS) and "concat" in addr:
                parts = addr["concat"]
                if isinstance(parts, tuple) and len(parts) == 2:
                    addr, port = parts
        if port_of is not None:
            got_port = _nat_value(port_of(flow, ctx), "port", flow, text)
            if isinstance(got_port, _Stop | _Doubt):
                return got_port
            port = got_port
        addr = _first(addr)
        port = _first(port)
        if isinstance(addr, MAPPINGS) and "prefix" in addr and isinstance(addr["prefix"],
                                                                           Mapping):
            old = flow.dst if destination else flow.src
            mapped = _netmap(addr["prefix"], old) if prefix_mode else None
            addr = mapped if mapped is not None else addr["prefix"].get("addr")
        options: list[Option] = []
        if kind in ("dnat", "snat"):
            if addr is None and port is None:
                return _Doubt(f"{text}: no address", (("assumed accept", _End(
                    NftVerdict.ACCEPT, flow, None, text)),))
            if addr is not None:
                try:
                    ip = ipaddress.ip_address(str(addr))
                except ValueError:
                    return _Doubt(f"{text}: address {addr!r} not understood",
                                  (("assumed accept", _End(NftVerdict.ACCEPT, flow, None,
                                                           text)),))
                if ip.version != version:
                    return _Go(flow, f"{text}: not an IPv{ip.version} packet, nothing done")
                where = f"[{ip}]" if ip.version == 6 else str(ip)
            else:
                old = flow.dst if destination else flow.src
                where = f"[{old}]" if old.version == 6 else str(old)
            to = f"{where}:{port}" if port is not None else where
            name = "DNAT" if kind == "dnat" else "SNAT"
            options.append(Option("--to-destination" if kind == "dnat" else "--to-source",
                                  (to,)))
        else:
            name = "MASQUERADE" if kind == "masquerade" else "REDIRECT"
            if port is not None:
                options.append(Option("--to-ports", (str(port),)))
        # natlens.netfilter imports this package: import its NAT rewrite when first used
        from natlens.netfilter.flow import MatchContext  # noqa: PLC0415
        from natlens.netfilter.targets import TARGETS, Action  # noqa: PLC0415

        handler = TARGETS[name]
        mctx = MatchContext(ctx.host, _HOOK_NAMES.get(ctx.hook, ctx.hook.upper()), "nat")
        effect: Effect = handler(Target(name, tuple(options)), flow, mctx)
        detail = effect.detail.replace(name, kind, 1) if effect.detail else kind
        if effect.action is Action.DROP:
            return _End(NftVerdict.DROP, effect.flow, None, detail, effect.uncertain or "")
        return _End(NftVerdict.ACCEPT, effect.flow, None, detail, effect.uncertain or "")

    return nat


# -- other statements -------------------------------------------------------------------------


def _mangle(body: Mapping[str, Json], text: str) -> _Step:
    key = body.get("key")
    value_expr = body.get("value")
    target = key.get("meta") if isinstance(key, MAPPINGS) and "meta" in key else \
        key.get("ct") if isinstance(key, MAPPINGS) and "ct" in key else None
    name = target.get("key") if isinstance(target, MAPPINGS) else None
    is_meta = isinstance(key, MAPPINGS) and "meta" in key
    if name != "mark":
        return lambda flow, ctx: _Go(flow, text)
    if isinstance(value_expr, MAPPINGS) and "map" in value_expr:
        mapped = _map_value(value_expr, text)

        def get(flow: Flow, ctx: NftContext) -> Value:
            data = mapped(flow, ctx)
            if isinstance(data, Missing | Unknown):
                return data
            return _constant(data, "mark")
    else:
        getter = compile_getter(value_expr, _constant, "mark")

        def get(flow: Flow, ctx: NftContext) -> Value:
            return getter(flow, ctx.where)

    def mangle(flow: Flow, ctx: NftContext) -> _Result:
        value = get(flow, ctx)
        if isinstance(value, Missing):
            return _Stop(f"{text}: {value.why}")
        if isinstance(value, Unknown) or not isinstance(value, int) or isinstance(value, bool):
            why = value.why if isinstance(value, Unknown) else f"value {value!r}"
            if is_meta:
                go = _Go(flow, text, f"{text}: {why} (mark left unchanged)")
            else:
                go = _Go(replace(flow, ctmark_known=False), text, f"{text}: {why}")
            if isinstance(value, Unknown) and value.draw is not None:
                return _Doubt(why, (("unknown value", go),), value.draw)
            return go
        value &= 0xFFFFFFFF
        if is_meta:
            return _Go(replace(flow, mark=value), f"mark {flow.mark:#x} -> {value:#x}")
        return _Go(replace(flow, ctmark=value, ctmark_known=True),
                   f"ct mark {flow.ctmark:#x} -> {value:#x}")

    return mangle


_XT_GOES_ON = frozenset({"LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "CT", "NOTRACK", "TRACE",
                         "TCPMSS", "TOS", "DSCP", "TTL", "HL", "CHECKSUM", "CLASSIFY", "SET",
                         "AUDIT", "SECMARK", "CONNSECMARK", "IDLETIMER", "LED", "TEE",
                         "TCPOPTSTRIP", "RATEEST", "HMARK", "SYNPROXY"})
"""xtables targets that return XT_CONTINUE (their man section in iptables-extensions(8) says
"non-terminating"; SYNPROXY continues for packets it does not handle)."""
_XT_NAT = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"})
"""xtables NAT targets: NF_ACCEPT with a mapping (``xt_nat.c``, ``xt_MASQUERADE.c``)."""


def _xt_target(name: str, why: str) -> _Step:
    """An ``xt`` target whose arguments only iptables-save knows: never a sure outcome. A NAT
    target ends the base chain with an unknown mapping, but MASQUERADE's address does not
    depend on them (the out interface's, ``xt_MASQUERADE.c``; only ``--to-ports`` and
    ``--random`` are unknown, the source port assumed kept); REJECT rejects, a
    non-terminating target goes on (each still marked uncertain: the arguments may matter);
    any other may continue, accept or drop."""
    masquerade = _nat("masquerade", {}, "masquerade") if name == "MASQUERADE" else None

    def step(flow: Flow, ctx: NftContext) -> _Result:
        options: tuple[tuple[str, _Go | _Stop | _End], ...]
        done = masquerade(flow, ctx) if masquerade is not None else None
        if isinstance(done, _End):
            options = (("assumed to masquerade without --to-ports", done),)
        elif name in _XT_NAT:
            options = (("assumed to accept, the mapping unknown", _End(NftVerdict.ACCEPT, flow)),)
        elif name == "REJECT":
            options = (("assumed to reject", _End(NftVerdict.REJECT, flow)),)
        elif name in _XT_GOES_ON:
            options = (("assumed to continue", _Go(flow)),)
        else:
            options = (("assumed to continue", _Go(flow)),
                       ("assumed to accept", _End(NftVerdict.ACCEPT, flow)),
                       ("assumed to drop", _End(NftVerdict.DROP, flow)))
        return _Doubt(why, options)

    return step


def _uncertain_statement(why: str) -> _Step:
    def doubt(flow: Flow, ctx: NftContext) -> _Result:
        return _Doubt(why, (("assumed to pass", _Go(flow)), ("assumed to stop the rule",
                                                             _Stop(why, flow))))

    return doubt


def _compile_statement(kind: str, body: Json, text: str) -> _Step:
    if kind == "match" and isinstance(body, MAPPINGS):
        return _match(body, text)
    if kind in ("accept", "drop", "continue", "return"):
        verdict = NftVerdict(kind)
        return lambda flow, ctx: _End(verdict, flow)
    if kind in ("jump", "goto") and isinstance(body, MAPPINGS):
        verdict, target = NftVerdict(kind), str(body.get("target"))
        return lambda flow, ctx: _End(verdict, flow, target)
    if kind == "reject":
        return lambda flow, ctx: _End(NftVerdict.REJECT, flow, None, text)
    if kind == "vmap" and isinstance(body, MAPPINGS):
        return _vmap(body, text)
    if kind in ("dnat", "snat", "masquerade", "redirect"):
        return _nat(kind, body, text)
    if kind == "mangle" and isinstance(body, MAPPINGS):
        return _mangle(body, text)
    if kind == "notrack":
        return lambda flow, ctx: _Go(replace(flow, ctstate="UNTRACKED"),
                                     "notrack: no conntrack, no nat")
    if kind in ("counter", "log", "last", "set", "map", "secmark", "ct helper",
                "ct timeout", "ct expectation", "flow", "dup", "meter", "synproxy"):
        return lambda flow, ctx: _Go(flow, text)
    if kind in ("limit", "quota", "ct count"):
        return _uncertain_statement(f"{text}: depends on the traffic rate or volume")
    if kind == "queue":
        return lambda flow, ctx: _End(NftVerdict.QUEUE, flow, None, text,
                                      "queued to userspace: the verdict is decided by a "
                                      "program (assumed accept)")
    if kind == "tproxy":
        return lambda flow, ctx: _End(NftVerdict.ACCEPT, flow, None, text,
                                      "tproxy: depends on a local transparent socket")
    if kind == "xt":
        name = body.get("name") if isinstance(body, MAPPINGS) else None
        xt_kind = body.get("type") if isinstance(body, MAPPINGS) else None
        why = (f"xt {xt_kind or ''} {name or ''}".replace("  ", " ").strip()
               + ": iptables-nft extension, its arguments are not in the JSON "
               "(read iptables-save)")
        if xt_kind == "target":
            return _xt_target(str(name or "").upper(), why)
        return _uncertain_statement(why)
    return _uncertain_statement(f"{text}: statement {kind!r} not simulated")


# -- compiled rules and tables ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    steps: tuple[_Step, ...]
    text: str


def _compile_rule(rule: Rule) -> _CompiledRule:
    texts = [s.text for s in rule.statements]
    # an opaque statement (lenient reading: something nft does not read) may pass or stop
    # the rule, as an unknown iptables match
    steps = tuple(_uncertain_statement(f"{text}: {s.opaque}") if s.opaque is not None
                  else _compile_statement(s.kind, s.body, text)
                  for s, text in zip(rule.statements, texts, strict=True))
    text = " ".join(texts)
    if rule.comment is not None:
        text += f' comment "{rule.comment}"'
    return _CompiledRule(rule, steps, text)


class CompiledTable:
    """A table ready for evaluation: rules compiled and set indexes built on first use (so
    loading stays cheap), owned by this object (no global cache)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.chains = {c.name: c for c in table.chains}
        self._sets = {s.name: s for s in table.sets}
        self._rules: dict[tuple[str, int], _CompiledRule] = {}
        self._indexes: dict[tuple[str, tuple[str | None, ...]], SetIndex] = {}

    def compiled(self, rule: Rule) -> _CompiledRule:
        key = (rule.chain, rule.index)
        found = self._rules.get(key)
        if found is None or found.rule is not rule:
            found = self._rules[key] = _compile_rule(rule)
        return found

    def index(self, name: str, left_types: tuple[str | None, ...]
              ) -> tuple[NftSet, SetIndex] | None:
        """The set ``name`` and its lookup index for keys of ``left_types``."""
        nft_set = self._sets.get(name)
        if nft_set is None:
            return None
        types = _set_types(nft_set, left_types)
        key = (name, types)
        index = self._indexes.get(key)
        if index is None:
            index = self._indexes[key] = build_index(nft_set.elements, types)
        return nft_set, index


def compile_table(table: Table) -> CompiledTable:
    """Prepare ``table`` for ``evaluate_rule`` and ``walk_chain``."""
    return CompiledTable(table)


# -- running a rule -----------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    flow: Flow
    effects: list[str] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)
    prob: float = 1.0


def _run(steps: Sequence[_Step], start: int, state: _State, ctx: NftContext,
         out: list[RuleOutcome]) -> None:
    flow = state.flow
    for i in range(start, len(steps)):
        result = steps[i](flow, ctx)
        if isinstance(result, _Doubt):
            _fork(steps, i, result, state=state, flow=flow, ctx=ctx, out=out)
            return
        state.flow = flow
        if not _apply(result, state, out):
            return
        flow = state.flow
    out.append(RuleOutcome(True, flow, None, None, tuple(state.effects), "",
                           tuple(state.assumed), probability=state.prob))


def _fork(steps: Sequence[_Step], i: int, result: _Doubt, *, state: _State, flow: Flow,
          ctx: NftContext, out: list[RuleOutcome]) -> None:
    """Go on from statement ``i`` whose ``result`` is not sure: by chance when a ``numgen``
    decides it (``_draw``), else one branch per option, each naming what it assumed."""
    if result.draw is not None and all(ident != result.draw.ident for ident, _ in ctx.draws):
        _draw(steps, i, result.draw, state=state, flow=flow, ctx=ctx, out=out)
        return
    for label, option in result.options:
        if len(out) >= MAX_BRANCHES:
            return
        branch = _State(flow, list(state.effects),
                        [*state.assumed, f"{result.why} ({label})"], state.prob)
        if _apply(option, branch, out):
            _run(steps, i + 1, branch, ctx, out)


def _same_stop(one: _Result, other: _Result) -> bool:
    """Two stops that leave the same flow (their why-nots may name different values)."""
    return isinstance(one, _Stop) and isinstance(other, _Stop) and one.flow == other.flow


def _draw(steps: Sequence[_Step], i: int, draw: Draw, *, state: _State, flow: Flow,
          ctx: NftContext, out: list[RuleOutcome]) -> None:
    """Statement ``i`` evaluated once per value ``draw`` may take (``Where.draws`` fixes it),
    the values that give the same result one branch whose probability is their share, as
    iptables' ``-m statistic`` forks (``natlens.netfilter.walk.Walker._fork``): ``numgen
    random mod 2 vmap { 0 : goto a, 1 : goto b }`` goes to each chain with probability 1/2,
    and a value the map lacks goes on to the next rule with its share."""
    groups: list[tuple[_Result, int, NftContext]] = []
    for value in range(draw.first, draw.first + draw.count):
        fixed = replace(ctx, draws=(*ctx.draws, (draw.ident, value)))
        got = steps[i](flow, fixed)
        # a second numgen in the statement: its result depends on this value, kept apart
        alone = isinstance(got, _Doubt) and got.draw is not None
        for k, (seen, n, where) in enumerate(groups):
            if not alone and (seen == got or _same_stop(seen, got)):
                if isinstance(seen, _Stop) and seen != got:  # its why-not named one value
                    seen = _Stop("numgen drew a number that does not match", seen.flow)
                groups[k] = (seen, n + 1, where)
                break
        else:
            groups.append((got, 1, fixed))
    for got, n, fixed in groups:
        if len(out) >= MAX_BRANCHES:
            return
        branch = _State(flow, list(state.effects), list(state.assumed),
                        state.prob * n / draw.count)
        if isinstance(got, _Doubt):  # another unknown in the statement: doubt within chance
            _fork(steps, i, got, state=branch, flow=flow, ctx=fixed, out=out)
        elif _apply(got, branch, out):
            _run(steps, i + 1, branch, ctx, out)


def _apply(result: _Go | _Stop | _End | _Doubt, state: _State, out: list[RuleOutcome]) -> bool:
    """Apply one statement's result; True when the rule goes on."""
    if isinstance(result, _Go):
        state.flow = result.flow
        if result.effect:
            state.effects.append(result.effect)
        if result.doubt:
            state.assumed.append(result.doubt)
        return True
    if isinstance(result, _Stop):
        out.append(RuleOutcome(False, result.flow or state.flow, None, None,
                               tuple(state.effects), result.why, tuple(state.assumed),
                               probability=state.prob))
        return False
    if isinstance(result, _End):
        effects = [*state.effects, result.effect] if result.effect else state.effects
        assumed = [*state.assumed, result.doubt] if result.doubt else state.assumed
        out.append(RuleOutcome(True, result.flow, result.verdict, result.target,
                               tuple(effects), "", tuple(assumed), probability=state.prob))
        return False
    raise AssertionError("a doubt inside a doubt")  # pragma: no cover


def _as_flow(value: Flow | Packet) -> Flow:
    from natlens.netfilter.flow import Flow  # noqa: PLC0415 (natlens.netfilter imports us)

    return value if isinstance(value, Flow) else Flow.from_packet(value)


def evaluate_rule(rule: Rule, flow: Flow | Packet, ctx: NftContext) -> RuleOutcome:
    """Run ``rule``'s statements on ``flow`` (a ``Packet`` is taken as its flow before the
    first hook). The outcome is sure (``matched`` True/False) or uncertain (``matched`` None,
    one ``branches`` entry per possibility, each with its assumptions in ``uncertain``)."""
    return _evaluate(rule, _as_flow(flow), ctx)


def _evaluate(rule: Rule, flow: Flow, ctx: NftContext) -> RuleOutcome:
    compiled = ctx.table.compiled(rule)
    out: list[RuleOutcome] = []
    _run(compiled.steps, 0, _State(flow), ctx, out)
    if len(out) == 1 and not out[0].uncertain:
        return out[0]
    doubts = tuple(dict.fromkeys(a for o in out for a in o.uncertain))
    if len(out) == 1:
        return out[0]
    return RuleOutcome(None, flow, None, None, (), "", doubts, tuple(out))


# -- walking a base chain -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainStep:
    """A rule that matched, or that acted (``counter``, ``meta mark set``) before a later match
    stopped it (``matched`` False); or the policy / an implicit return (``index`` None).
    ``index`` is the 0-based rule position, ``text`` the nft text, ``verdict`` what happened,
    ``effects`` what its statements did, ``where`` the file and JSON path of the rule
    (``nft-ruleset.json: $.nftables[12].rule``; None for a policy or when unknown)."""

    chain: str
    index: int | None
    handle: int | None
    text: str
    verdict: str
    effects: tuple[str, ...] = ()
    matched: bool = True
    where: str | None = None


@dataclass(frozen=True, slots=True)
class ChainResult:
    """One possible end of a base chain: ``verdict`` is accept, drop, reject or queue (accept
    ends only this base chain; drop/reject end the packet; return only from a
    ``fall_through`` walk: the chain was left), with the flow after it, the steps taken and the
    assumptions made on the way."""

    verdict: NftVerdict
    flow: Flow
    steps: tuple[ChainStep, ...]
    uncertain: tuple[str, ...] = ()
    policy: bool = False
    probability: float = 1.0
    """The product of the chances (``RuleOutcome.probability``) on the way."""


@dataclass(frozen=True, slots=True)
class _Trail:
    """Where a walk is: the jump stack (chain, rule index), the flow, steps and assumptions."""

    stack: tuple[tuple[str, int], ...]
    flow: Flow
    steps: tuple[ChainStep, ...]
    assumed: tuple[str, ...]
    prob: float = 1.0


def walk_chain(table: CompiledTable, chain: str, packet: Flow | Packet, ctx: NftContext,
               *, max_results: int = 256, start: int = 0,
               fall_through: bool = False) -> tuple[ChainResult, ...]:
    """Every way ``flow`` can leave base chain ``chain`` of ``table`` (one result when nothing
    is uncertain; at most ``max_results``). Jumps, gotos, returns, verdict maps and the policy
    as in ``nft_do_chain``; more than ``JUMP_STACK`` nested jumps drop the packet, as the
    kernel does. Raises ``KeyError`` for an unknown chain.

    ``start`` (0-based) is the first rule run; with ``fall_through`` the walk is the rest of a
    chain entered elsewhere (the rules an iptables dump could not show,
    ``natlens.netfilter.nftcomplete``): leaving ``chain`` (its end or a ``return``) gives a
    ``return`` result instead of the policy, the caller going on after it."""
    flow = _as_flow(packet)
    results: list[ChainResult] = []
    base = table.chains.get(chain)
    if base is None:
        raise KeyError(f"chain {chain!r} is not in table {table.table.label}")
    policy = NftVerdict.DROP if base.policy == "drop" else NftVerdict.ACCEPT

    def end_of_chain(name: str, trail: _Trail, *, implicit: bool = True) -> None:
        """Pop the jump stack (an implicit return at the end of a regular chain, or a
        ``return`` verdict); at the bottom, the base chain's policy."""
        if trail.stack:
            (ret_chain, ret_index), rest = trail.stack[-1], trail.stack[:-1]
            steps = (*trail.steps, ChainStep(name, None, None, "", "return")) if implicit \
                else trail.steps
            go(ret_chain, ret_index + 1, _Trail(rest, trail.flow, steps, trail.assumed,
                                                trail.prob))
        elif fall_through:
            results.append(ChainResult(NftVerdict.RETURN, trail.flow, trail.steps,
                                       trail.assumed, probability=trail.prob))
        else:
            results.append(ChainResult(
                policy, trail.flow, (*trail.steps, ChainStep(
                    chain, None, None, f"policy {policy.value}", policy.value)),
                trail.assumed, True, trail.prob))

    def go(name: str, start: int, trail: _Trail) -> None:
        if len(results) >= max_results:
            return
        current = table.chains.get(name)
        if current is None:
            results.append(ChainResult(NftVerdict.DROP, trail.flow, trail.steps,
                                       (*trail.assumed, f"chain {name!r} does not exist"),
                                       probability=trail.prob))
            return
        rules = current.rules
        flow, steps, assumed = trail.flow, trail.steps, trail.assumed
        for i in range(start, len(rules)):
            outcome = _evaluate(rules[i], flow, ctx)
            if outcome.matched is None:
                for option in outcome.branches:
                    after(name, i, option, _Trail(trail.stack, flow, steps,
                                                  (*assumed, *option.uncertain),
                                                  trail.prob * option.probability))
                return
            # a sure outcome may still rest on an assumption (a doubt with one option: an xt
            # target, a mark set from an unknown value, queue): it stays in the trail
            if outcome.uncertain:
                assumed = (*assumed, *outcome.uncertain)
            if outcome.matched and outcome.verdict not in (None, NftVerdict.CONTINUE):
                after(name, i, outcome, _Trail(trail.stack, flow, steps, assumed, trail.prob))
                return
            if outcome.matched or outcome.effects:
                steps = (*steps, _step(table, rules[i], outcome))
            flow = outcome.flow
        end_of_chain(name, _Trail(trail.stack, flow, steps, assumed, trail.prob))

    def after(name: str, i: int, outcome: RuleOutcome, trail: _Trail) -> None:
        """Go on from rule ``i`` of chain ``name`` after ``outcome``."""
        rule = table.chains[name].rules[i]
        verdict = outcome.verdict
        steps = (*trail.steps, _step(table, rule, outcome)) if outcome.matched or outcome.effects \
            else trail.steps
        trail = _Trail(trail.stack, outcome.flow, steps, trail.assumed, trail.prob)
        if outcome.matched is not True or verdict in (None, NftVerdict.CONTINUE):
            go(name, i + 1, trail)
        elif verdict in (NftVerdict.ACCEPT, NftVerdict.DROP, NftVerdict.REJECT,
                         NftVerdict.QUEUE):
            assert verdict is not None
            results.append(ChainResult(verdict, trail.flow, trail.steps, trail.assumed,
                                       probability=trail.prob))
        elif verdict is NftVerdict.RETURN:
            end_of_chain(name, trail, implicit=False)
        else:
            assert outcome.target is not None
            stack = (*trail.stack, (name, i)) if verdict is NftVerdict.JUMP else trail.stack
            if len(stack) > JUMP_STACK:
                results.append(ChainResult(NftVerdict.DROP, trail.flow, trail.steps,
                                           (*trail.assumed, "jump stack overflow (a loop?)"),
                                           probability=trail.prob))
                return
            go(outcome.target, 0, _Trail(stack, trail.flow, trail.steps, trail.assumed,
                                         trail.prob))

    go(chain, start, _Trail((), flow, (), ()))
    return tuple(results)


def _step(table: CompiledTable, rule: Rule, outcome: RuleOutcome) -> ChainStep:
    source = table.table.source
    where = (f"{source}: {rule.path}" if source else rule.path) if rule.path else None
    return ChainStep(rule.chain, rule.index, rule.handle, table.compiled(rule).text,
                     _describe(outcome), outcome.effects, outcome.matched is True, where)


def _describe(outcome: RuleOutcome) -> str:
    if not outcome.matched:
        return f"no match ({outcome.why_not})" if outcome.why_not else "no match"
    verdict = outcome.verdict.value if outcome.verdict else "continue"
    if outcome.target:
        verdict += f" {outcome.target}"
    return verdict
