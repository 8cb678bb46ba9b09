"""The statements, expressions and objects of ``nft -j list ruleset`` as nft itself reads them.

Source: libnftables' JSON parser, nftables ``src/parser_json.c`` (``json_parse_stmt``'s
``stmt_parser_tbl``, ``json_parse_expr``'s ``cb_tbl``, the ``json_unpack`` formats of each
``json_parse_*`` function and ``json_parse_cmd_add_object``), v0.9.1 to v1.1.6: the names are
the union over those versions (``last`` and the ``map`` statement from 1.0.9, ``dccp option``
1.0.9, ``tunnel`` 1.1.6...). ``vmap`` is read by ``json_parse_stmt`` itself; ``xt`` is what nft
prints for an iptables-nft compat expression (nft refuses to load it back, natlens reads it as
an opaque statement).

A ``Shape`` lists the keys of an object body and the type of each value, in ``json_unpack``'s
terms: ``s`` a string, ``i`` an integer (a JSON integer: jansson's ``i``/``I``, never a number
with a fraction), ``n`` a number (element and set timeouts, which some versions print with a
fraction), ``b`` a boolean, ``S`` a string or an array of strings (``flags``, which printers
write either way), ``e`` an expression, ``t`` a statement, ``T`` an array of statements, ``a``
anything. Keys nft does not read are ignored, as jansson's ``json_unpack`` ignores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "Shape", "STATEMENTS", "EXPRESSIONS", "OBJECTS", "REF_STATEMENTS", "NULL_BODIES",
    "LIST_EXPRESSIONS", "VERDICTS", "TYPE_NAMES",
]


@dataclass(frozen=True, slots=True)
class Shape:
    """An object body: ``required`` keys, and ``keys``: every key nft reads (required or not),
    each with its type letter."""

    required: Mapping[str, str] = field(default_factory=dict)
    keys: Mapping[str, str] = field(default_factory=dict)


def _shape(required: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None,
           **optional: str) -> Shape:
    """``_shape({"key": "s"}, dir="s")``; ``extra``: optional keys that are not Python names."""
    needed = dict(required or {})
    return Shape(MappingProxyType(needed),
                 MappingProxyType({**needed, **optional, **(extra or {})}))


_NAT = _shape(addr="e", port="e", family="s", flags="S", type_flags="S")

VERDICTS = frozenset({"accept", "drop", "continue", "return", "jump", "goto"})
"""Verdicts: statements, and expressions in a verdict map's data (``json_parse_verdict_expr``
reads ``target`` for jump and goto and nothing else)."""

STATEMENTS: Mapping[str, Shape | None] = MappingProxyType({
    **dict.fromkeys(("accept", "drop", "continue", "return", "notrack")),
    "jump": _shape({"target": "s"}),
    "goto": _shape({"target": "s"}),
    "match": _shape({"op": "s", "left": "e", "right": "e"}),
    "counter": _shape({"packets": "i", "bytes": "i"}),
    "mangle": _shape({"key": "e", "value": "e"}),
    "quota": _shape({"val": "i"}, inv="b", val_unit="s", used="i", used_unit="s"),
    "last": _shape(used="i"),
    "limit": _shape({"rate": "i", "per": "s"}, rate_unit="s", inv="b", burst="i",
                    burst_unit="s"),
    "flow": _shape({"op": "s", "flowtable": "s"}),
    "fwd": _shape({"dev": "e"}, family="s", addr="e"),
    "dup": _shape({"addr": "e"}, dev="e"),
    "snat": _NAT, "dnat": _NAT, "masquerade": _NAT, "redirect": _NAT,
    "reject": _shape(type="s", expr="a"),
    "set": _shape({"op": "s", "elem": "e", "set": "s"}, stmt="T"),
    "map": _shape({"op": "s", "elem": "e", "data": "e", "map": "s"}, stmt="T"),
    "log": _shape(None, {"queue-threshold": "i"}, prefix="s", group="i", snaplen="i",
                  level="s", flags="S"),
    # nft requires "name" when reading, but prints it only when the meter has its set
    "meter": _shape({"key": "e", "stmt": "t"}, name="s", size="i"),
    "queue": _shape(num="e", flags="S"),
    "ct count": _shape({"val": "i"}, inv="b"),
    "tproxy": _shape(family="s", addr="e", port="e"),
    "synproxy": _shape(mss="i", wscale="i", flags="S"),
    "vmap": _shape({"key": "e", "data": "e"}),
    "xt": _shape(type="s", name="s"),
    # an object reference (``counter name "c"``, ``ct helper set "ftp"``): an expression
    **dict.fromkeys(("ct helper", "ct timeout", "ct expectation", "secmark", "tunnel",
                     "reset")),
})
"""Every statement nft reads (``None``: the body is an expression or not read at all)."""

REF_STATEMENTS = frozenset({"counter", "quota", "limit", "synproxy", "ct helper", "ct timeout",
                            "ct expectation", "secmark", "tunnel", "reset"})
"""Statements whose body, when it is not their object form (an object with one of the shape's
keys: ``{"packets", "bytes"}``...), is an expression: a named object (``"c"``) or a map to one
(``json_parse_stmt_expr``; json.c ``objref_stmt_json`` prints them so); ``reset`` takes a
``tcp option`` expression."""

NULL_BODIES = frozenset({"accept", "drop", "continue", "return", "notrack", "counter", "last",
                         "snat", "dnat", "masquerade", "redirect", "reject", "log", "queue",
                         "synproxy", "xt"})
"""Statements nft prints (or reads) with a ``null`` body (``{"masquerade": null}``; ``xt``
before nft 1.0.6)."""

EXPRESSIONS: Mapping[str, Shape | None] = MappingProxyType({
    "payload": _shape(protocol="s", field="s", base="s", offset="i", len="i", tunnel="s",
                      header="s"),
    "exthdr": _shape({"name": "s"}, field="s", offset="i"),
    "tcp option": _shape(name="s", field="s", base="i", offset="i", len="i"),
    "ip option": _shape({"name": "s"}, field="s"),
    "sctp chunk": _shape({"name": "s"}, field="s"),
    "dccp option": _shape({"type": "i"}),
    "meta": _shape({"key": "s"}),
    "osf": _shape({"key": "s"}, ttl="s"),
    "ipsec": _shape({"key": "s"}, dir="s", spnum="i", family="s"),
    "socket": _shape({"key": "s"}, level="i"),
    "rt": _shape({"key": "s"}, family="s"),
    "ct": _shape({"key": "s"}, dir="s", family="s"),
    "tunnel": _shape({"key": "s"}),
    "numgen": _shape({"mode": "s", "mod": "i"}, offset="i"),
    "jhash": _shape({"mod": "i", "expr": "e"}, offset="i", seed="i"),
    "symhash": _shape({"mod": "i"}, offset="i"),
    "fib": _shape({"result": "s"}, flags="S"),
    "prefix": _shape({"addr": "e", "len": "i"}),
    "map": _shape({"key": "e", "data": "e"}),
    "elem": _shape({"val": "e"}, timeout="n", expires="n", comment="s", counter="a"),
    **dict.fromkeys(("accept", "drop", "continue", "return")),
    "jump": _shape({"target": "s"}),
    "goto": _shape({"target": "s"}),
    # array bodies, checked by the reader
    **dict.fromkeys(("concat", "set", "range", "&", "|", "^", "<<", ">>")),
})
"""Every expression nft reads; ``None``: an array body or one that is not read."""

LIST_EXPRESSIONS = frozenset({"concat", "range", "&", "|", "^", "<<", ">>"})
"""Expressions whose body is an array (``range``: two items; binary operators: two or more,
from nft 1.1.0; ``concat``: at least one)."""

OBJECTS: Mapping[str, Shape] = MappingProxyType({
    "counter": _shape(packets="i", bytes="i"),
    "quota": _shape(bytes="i", used="i", inv="b"),
    "limit": _shape({"rate": "i", "per": "s"}, rate_unit="s", burst_unit="s", burst="i",
                    inv="b"),
    "ct helper": _shape(type="s", protocol="s", l3proto="s"),
    "ct timeout": _shape(protocol="s", l3proto="s", policy="a"),
    "ct expectation": _shape(protocol="s", l3proto="s", dport="i", timeout="i", size="i"),
    "secmark": _shape(context="s"),
    "synproxy": _shape(mss="i", wscale="i", flags="S"),
    "tunnel": _shape(id="i", sport="i", dport="i", ttl="i", tos="i", type="s"),
})
"""Stateful objects (``json_parse_cmd_add_object``); each also has ``family``, ``table``,
``name``, ``handle`` and ``comment``."""

TYPE_NAMES = MappingProxyType({
    "s": "a string", "i": "an integer", "n": "a number", "b": "a boolean",
    "S": "a string or an array of strings", "e": "an expression", "t": "a statement",
    "T": "an array of statements", "a": "a value",
})
"""What each type letter reads as in an error message (``expected an integer, got ...``)."""
