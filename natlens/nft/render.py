"""nft text for a rule, rendered from its libnftables JSON, as ``nft list ruleset`` prints it.

The printing conventions follow nft's own printers (nftables ``src/statement.c``,
``src/expression.c``, ``src/payload.c``, ``src/meta.c``, ``src/ct.c``, ``src/fib.c``): ``==``
is implicit, ``in`` on a flag list prints ``a,b``, anonymous sets ``{ a, b }``, concatenations
``a . b``, map elements ``k : v``, marks as ``0x%08x``, interface names quoted. Statements with
no printer here print as ``<kind> …`` so a trace still shows that something was there.

``render_rule(statements, comment, family)`` → one line; ``render_expr(json)`` → an expression.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from natlens.nft.datatypes import expr_type, format_value
from natlens.nft.jsonvalue import MAPPINGS, Json, to_text

__all__ = ["render_expr", "render_rule", "render_statement", "render_element"]

_BINOPS = ("&", "|", "^", "<<", ">>")
_UNQUALIFIED_META = frozenset({"iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"})
_VERDICTS = frozenset({"accept", "drop", "continue", "return", "queue"})


def _q(text: Json) -> str:
    return f'"{text}"'


def _one(expr: Json) -> tuple[str, Json] | None:
    if isinstance(expr, MAPPINGS) and len(expr) == 1:
        ((kind, body),) = expr.items()
        return kind, body
    return None


def _items(value: Json) -> tuple[Json, ...]:
    """A scalar-or-array field (flags, dev, elem) as a tuple."""
    if value is None:
        return ()
    if isinstance(value, tuple | list):
        return tuple(value)
    return (value,)


def _time(seconds: Json) -> str:
    """nft's time format: ``1d2h3m4s``, ``500ms`` (``src/datatype.c:time_print``)."""
    if not isinstance(seconds, int | float):
        return str(seconds)
    ms_total = round(float(seconds) * 1000)
    days, rest = divmod(ms_total, 86400_000)
    hours, rest = divmod(rest, 3600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    out = ""
    for value, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s"), (ms, "ms")):
        if value:
            out += f"{value}{unit}"
    return out or "0s"


# -- expressions -----------------------------------------------------------------------------


def _payload(body: Mapping[str, Json]) -> str:
    if "base" in body:
        return f"@{body['base']},{body.get('offset')},{body.get('len')}"
    proto, field = body.get("protocol"), body.get("field")
    return f"{proto} {field}"


def _meta(body: Mapping[str, Json]) -> str:
    key = str(body.get("key"))
    return key if key in _UNQUALIFIED_META else f"meta {key}"


def _ct(body: Mapping[str, Json]) -> str:
    parts = ["ct"]
    if body.get("dir"):
        parts.append(str(body["dir"]))
    if body.get("family"):
        parts.append(str(body["family"]))
    parts.append(str(body.get("key")))
    return " ".join(parts)


def _fib(body: Mapping[str, Json]) -> str:
    flags = " . ".join(str(f) for f in _items(body.get("flags")))
    return f"fib {flags} {body.get('result')}"


def _numgen(body: Mapping[str, Json]) -> str:
    text = f"numgen {body.get('mode')} mod {body.get('mod')}"
    if body.get("offset"):
        text += f" offset {body['offset']}"
    return text


def _hash(kind: str, body: Mapping[str, Json]) -> str:
    text = kind
    if kind == "jhash":
        text += f" {render_expr(body.get('expr'))}"
    text += f" mod {body.get('mod')}"
    if body.get("seed") is not None:
        text += f" seed 0x{int(str(body['seed']), 0):x}" if not isinstance(body["seed"], int) \
            else f" seed 0x{body['seed']:x}"
    if body.get("offset"):
        text += f" offset {body['offset']}"
    return text


def _exthdr(body: Mapping[str, Json]) -> str:
    name, field = body.get("name"), body.get("field")
    return f"exthdr {name} {field}" if field else f"exthdr {name}"


def _tcp_option(body: Mapping[str, Json]) -> str:
    name, field = body.get("name"), body.get("field")
    return f"tcp option {name} {field}" if field else f"tcp option {name}"


def _set_items(values: Json, dtype: str | None, data_type: str | None) -> str:
    items = _items(values)
    parts = [render_element(item, dtype, data_type) for item in items]
    return "{ " + ", ".join(parts) + " }"


def render_element(item: Json, dtype: str | None = None, data_type: str | None = None) -> str:
    """One set/map element: ``10.0.0.1``, ``80 : accept``, ``1.2.3.4 . tcp . 80 : goto x``,
    ``{"elem": {"val": …, "timeout": 3}}`` → ``… timeout 3s``."""
    if isinstance(item, tuple | list) and len(item) == 2:
        key, data = item
        return f"{render_element(key, dtype)} : {_value(data, data_type)}"
    one = _one(item)
    if one and one[0] == "elem" and isinstance(one[1], MAPPINGS):
        body = one[1]
        text = _value(body.get("val"), dtype)
        if body.get("timeout") is not None:
            text += f" timeout {_time(body['timeout'])}"
        if body.get("expires") is not None:
            text += f" expires {_time(body['expires'])}"
        if isinstance(body.get("counter"), Mapping):
            text += " " + _counter(body.get("counter"))
        if body.get("comment") is not None:
            text += f" comment {_q(body['comment'])}"
        return text
    return _value(item, dtype)


def _value(value: Json, dtype: str | None) -> str:
    """A right-hand side or element value, formatted for ``dtype``."""
    one = _one(value)
    if one is not None:
        kind, body = one
        if kind in _VERDICTS or kind in ("jump", "goto"):
            return render_statement(value)
        if kind == "concat" and isinstance(body, tuple | list):
            types = (dtype or "").split(" . ")
            return " . ".join(_value(part, types[i] if i < len(types) else None)
                              for i, part in enumerate(body))
        return render_expr(value, dtype)
    if isinstance(value, tuple | list):
        return _set_items(value, dtype, None)
    if isinstance(value, str) and value.startswith("@"):
        return value
    return format_value(dtype, value)


def key_type(expr: Json) -> str | None:
    """The type of a lookup key; ``"a . b"`` for a concatenation."""
    one = _one(expr)
    if one is not None and one[0] == "concat" and isinstance(one[1], tuple | list):
        return " . ".join(key_type(part) or "?" for part in one[1])
    return binop_type(expr)


def render_expr(expr: Json, dtype: str | None = None) -> str:
    """An expression as nft prints it. ``dtype`` formats bare constants (``mark`` → hex)."""
    one = _one(expr)
    if one is None:
        if isinstance(expr, tuple | list):
            return ",".join(_value(v, dtype) for v in expr)
        if isinstance(expr, str) and expr.startswith("@"):
            return expr
        return format_value(dtype, expr)
    kind, body = one
    if isinstance(body, MAPPINGS):
        printer = _EXPR_PRINTERS.get(kind)
        if printer is not None:
            return printer(body)
        if kind in ("jhash", "symhash"):
            return _hash(kind, body)
        if kind == "map":
            key = body.get("key")
            return (f"{render_expr(key)} map "
                    f"{_map_data(body.get('data'), key_type(key), dtype)}")
        if kind == "elem":
            return render_element(expr, dtype)
    if kind in _BINOPS and isinstance(body, tuple | list) and body:
        return _binop(kind, body, dtype)
    if kind == "prefix" and isinstance(body, MAPPINGS):
        return f"{_value(body.get('addr'), dtype)}/{body.get('len')}"
    if kind == "range" and isinstance(body, tuple | list) and len(body) == 2:
        return f"{_value(body[0], dtype)}-{_value(body[1], dtype)}"
    if kind == "concat" and isinstance(body, tuple | list):
        return " . ".join(render_expr(part) for part in body)
    if kind == "set":
        return _set_items(body, dtype, None)
    if kind in _VERDICTS or kind in ("jump", "goto"):
        return render_statement(expr)
    return f"{kind} {to_text(body)}"


_PRECEDENCE = {"<<": 4, ">>": 4, "&": 3, "^": 2, "|": 1}


def binop_type(expr: Json) -> str | None:
    """The type of a binary operation's constants: the left side's type until a shift makes
    it a plain integer (``meta mark >> 8 & 0xf``)."""
    one = _one(expr)
    if one is None:
        return None
    kind, body = one
    if kind in ("<<", ">>"):
        return "integer"
    if kind in _BINOPS and isinstance(body, tuple | list) and body:
        return binop_type(body[0])
    return expr_type(expr) or ("raw" if kind == "payload" and isinstance(body, MAPPINGS)
                               and "base" in body else None)


def _binop(kind: str, body: Sequence[Json], dtype: str | None) -> str:
    """``a & b | c``; parentheses where C precedence needs them, as nft prints them."""
    const_type = "integer" if kind in ("<<", ">>") else (binop_type(body[0]) or dtype)
    parts = [_operand(body[0], kind, dtype, left=True)]
    for operand in body[1:]:
        if kind in ("<<", ">>"):
            parts.append(render_expr(operand))
        else:
            parts.append(_operand(operand, kind, _hex_type(const_type), left=False))
    return f" {kind} ".join(parts)


def _hex_type(dtype: str | None) -> str | None:
    return "hex" if dtype in ("integer", "raw", None) else dtype


def _operand(expr: Json, parent: str, dtype: str | None, *, left: bool) -> str:
    one = _one(expr)
    text = render_expr(expr, dtype)
    if one is not None and one[0] in _BINOPS:
        mine, theirs = _PRECEDENCE[one[0]], _PRECEDENCE[parent]
        if mine < theirs or (not left and mine == theirs):
            return f"({text})"
    return text


def _map_data(data: Json, key_type: str | None, data_type: str | None = None) -> str:
    if isinstance(data, str):
        return data
    one = _one(data)
    if one and one[0] == "set":
        items = _items(one[1])
        return "{ " + ", ".join(render_element(item, key_type, data_type)
                                for item in items) + " }"
    return render_expr(data)


_EXPR_PRINTERS: dict[str, Callable[[Mapping[str, Json]], str]] = {
    "payload": _payload,
    "meta": _meta,
    "ct": _ct,
    "fib": _fib,
    "numgen": _numgen,
    "exthdr": _exthdr,
    "tcp option": _tcp_option,
    "rt": lambda b: f"rt {str(b['family']) + ' ' if b.get('family') else ''}{b.get('key')}",
    "socket": lambda b: f"socket {b.get('key')}",
    "osf": lambda b: f"osf {'ttl ' + str(b['ttl']) + ' ' if b.get('ttl') else ''}{b.get('key')}",
    "ipsec": lambda b: f"ipsec {b.get('dir')} {b.get('key')}",
    "sctp chunk": lambda b: f"sctp chunk {b.get('name')} {b.get('field') or ''}".rstrip(),
    "dccp option": lambda b: f"dccp option {b.get('type')}",
    "ip option": lambda b: f"ip option {b.get('name')} {b.get('field') or ''}".rstrip(),
}


# -- statements ------------------------------------------------------------------------------


def _match(body: Mapping[str, Json]) -> str:
    left, right, op = body.get("left"), body.get("right"), str(body.get("op"))
    dtype = key_type(left)
    left_text = render_expr(left)
    if isinstance(right, bool) and _one(left) and _one(left)[0] in ("fib", "exthdr",  # type: ignore[index]
                                                                    "tcp option", "ip option",
                                                                    "sctp chunk", "dccp option"):
        return f"{left_text} {'exists' if right else 'missing'}"
    right_text = _value(right, dtype)
    if isinstance(right, tuple | list) and op in ("in", "=="):
        right_text = ",".join(_value(v, dtype) for v in right)
    left_one = _one(left)
    if op in ("==", "in"):
        if left_one and left_one[0] in _BINOPS and op == "==":
            return f"{left_text} == {right_text}"
        return f"{left_text} {right_text}"
    return f"{left_text} {op} {right_text}"


def _counter(body: Json) -> str:
    if body is None:
        return "counter"
    if isinstance(body, str):
        return f"counter name {_q(body)}"
    if isinstance(body, MAPPINGS):
        return f"counter packets {body.get('packets', 0)} bytes {body.get('bytes', 0)}"
    return "counter"


def _nat(kind: str, body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return kind
    text = kind
    if body.get("family") and kind in ("dnat", "snat"):
        text += f" {body['family']}"
    type_flags = _items(body.get("type_flags"))
    if "prefix" in type_flags:
        text += " prefix"
    addr, port = body.get("addr"), body.get("port")
    if addr is not None or port is not None:
        text += " to "
        addr_type = "ipv6_addr" if body.get("family") == "ip6" else None
        if addr is not None:
            addr_text = render_expr(addr, addr_type)
            if port is not None and ":" in addr_text and _one(addr) is None:
                addr_text = f"[{addr_text}]"
            text += addr_text
        if port is not None:
            text += f":{render_expr(port)}"
    flags = [f for f in _items(body.get("flags")) if not (f == "netmap" and "prefix" in type_flags)]
    if flags:
        text += " " + ",".join(str(f) for f in flags)
    return text


def _reject(body: Json) -> str:
    if not isinstance(body, MAPPINGS) or not body:
        return "reject"
    kind, what = body.get("type"), body.get("expr")
    if kind in ("icmp", "icmpv6", "icmpx") and what == "port-unreachable":
        return "reject"
    if kind == "tcp reset":
        return "reject with tcp reset"
    if what is None:
        return f"reject with {kind}" if kind else "reject"
    return f"reject with {kind} {what}" if kind else f"reject with {what}"


def _log(body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return "log"
    text = "log"
    if body.get("prefix") is not None:
        text += f" prefix {_q(body['prefix'])}"
    if body.get("group") is not None:
        text += f" group {body['group']}"
    if body.get("snaplen") is not None:
        text += f" snaplen {body['snaplen']}"
    if body.get("queue-threshold") is not None:
        text += f" queue-threshold {body['queue-threshold']}"
    if body.get("level") is not None:
        text += f" level {body['level']}"
    flags = _items(body.get("flags"))
    if flags:
        text += " flags " + ("all" if "all" in flags else ",".join(str(f) for f in flags))
    return text


def _limit(body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return "limit"
    inv = " over" if body.get("inv") else ""
    unit = body.get("rate_unit")
    rate = f"{body.get('rate')}"
    if unit and unit != "packets":
        rate += f" {unit}"
    text = f"limit rate{inv} {rate}/{body.get('per')}"
    burst = body.get("burst")
    if burst:
        burst_unit = body.get("burst_unit") or "packets"
        text += f" burst {burst} {burst_unit}"
    return text


def _quota(body: Json) -> str:
    if not isinstance(body, MAPPINGS):  # a named reference is rendered by render_statement
        return "quota"
    text = "quota"
    if body.get("inv"):
        text += " over"
    text += f" {body.get('val')} {body.get('val_unit', 'bytes')}"
    if body.get("used"):
        text += f" used {body.get('used')} {body.get('used_unit', 'bytes')}"
    return text


def _queue(body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return "queue"
    text = "queue"
    flags = _items(body.get("flags"))
    if flags:
        text += " flags " + ",".join(str(f) for f in flags)
    if body.get("num") is not None:
        text += f" to {render_expr(body['num'])}"
    return text


def _mangle(body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return "mangle"
    key = body.get("key")
    return f"{render_expr(key)} set {render_expr(body.get('value'), expr_type(key))}"


def _set_stmt(body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return "set"
    elem = render_expr(body.get("elem"))
    stmts = " ".join(render_statement(s) for s in _items(body.get("stmt")))
    inner = f"{elem} {stmts}" if stmts else elem
    return f"{body.get('op')} {body.get('set')} {{ {inner} }}"


def _map_stmt(body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return "map"
    return (f"{body.get('op')} {body.get('map')} {{ {render_expr(body.get('elem'))} : "
            f"{render_expr(body.get('data'))} }}")


def _vmap(body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return "vmap"
    key = body.get("key")
    return f"{render_expr(key)} vmap {_map_data(body.get('data'), key_type(key))}"


def _xt(body: Json) -> str:
    if isinstance(body, MAPPINGS):
        return f"xt {body.get('type')} {_q(body.get('name'))}"
    return "xt"


def _tproxy(body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return "tproxy"
    text = "tproxy"
    if body.get("family"):
        text += f" {body['family']}"
    text += " to "
    if body.get("addr") is not None:
        addr = render_expr(body["addr"])
        text += f"[{addr}]" if ":" in addr and body.get("port") is not None else addr
    if body.get("port") is not None:
        text += f":{render_expr(body['port'])}"
    return text


def _dup_fwd(kind: str, body: Json) -> str:
    if not isinstance(body, MAPPINGS):
        return kind
    text = f"{kind} to {render_expr(body.get('addr'))}" if body.get("addr") is not None \
        else f"{kind} to"
    if body.get("dev") is not None:
        dev = render_expr(body["dev"], "ifname")
        text += f" device {dev}" if body.get("addr") is not None else f" {dev}"
    return text


def _synproxy(body: Json) -> str:
    if not isinstance(body, MAPPINGS):  # a named reference is rendered by render_statement
        return "synproxy"
    text = "synproxy"
    if body.get("mss") is not None:
        text += f" mss {body['mss']}"
    if body.get("wscale") is not None:
        text += f" wscale {body['wscale']}"
    for flag in _items(body.get("flags")):
        text += f" {flag}"
    return text


def _ct_object(kind: str, body: Json) -> str:
    return f"{kind} set {render_expr(body, 'string')}"


def _last(body: Json) -> str:
    if isinstance(body, MAPPINGS) and body.get("used") is not None:
        return f"last used {_time(body['used'])}"
    return "last used never"


_STMT_PRINTERS: dict[str, Callable[[Json], str]] = {
    "counter": _counter,
    "dnat": lambda b: _nat("dnat", b),
    "snat": lambda b: _nat("snat", b),
    "masquerade": lambda b: _nat("masquerade", b),
    "redirect": lambda b: _nat("redirect", b),
    "reject": _reject,
    "log": _log,
    "limit": _limit,
    "quota": _quota,
    "queue": _queue,
    "mangle": _mangle,
    "set": _set_stmt,
    "map": _map_stmt,
    "vmap": _vmap,
    "xt": _xt,
    "tproxy": _tproxy,
    "dup": lambda b: _dup_fwd("dup", b),
    "fwd": lambda b: _dup_fwd("fwd", b),
    "synproxy": _synproxy,
    "notrack": lambda b: "notrack",
    "ct helper": lambda b: _ct_object("ct helper", b),
    "ct timeout": lambda b: _ct_object("ct timeout", b),
    "ct expectation": lambda b: _ct_object("ct expectation", b),
    "ct count": lambda b: (f"ct count {'over ' if isinstance(b, MAPPINGS) and b.get('inv') else ''}"
                           f"{b.get('val') if isinstance(b, MAPPINGS) else b}"),
    "secmark": lambda b: f"meta secmark set {_q(b)}",
    "flow": lambda b: f"flow add {b.get('flowtable')}" if isinstance(b, MAPPINGS) else "flow",
    "last": _last,
    "match": lambda b: _match(b) if isinstance(b, MAPPINGS) else "match",
}


_NAMED = frozenset({"counter", "quota", "limit", "synproxy", "tunnel"})


def render_statement(stmt: Json) -> str:
    """One statement (an element of a rule's ``expr`` array)."""
    one = _one(stmt)
    if one is None:
        return str(stmt)
    kind, body = one
    if kind in _NAMED and isinstance(body, MAPPINGS) and set(body) == {"map"}:
        return f"{kind} name {render_expr(body, 'string')}"
    if kind in _NAMED and isinstance(body, str):
        return f"{kind} name {_q(body)}"
    if kind in ("jump", "goto") and isinstance(body, MAPPINGS):
        return f"{kind} {body.get('target')}"
    if kind in ("accept", "drop", "continue", "return"):
        return kind
    printer = _STMT_PRINTERS.get(kind)
    if printer is not None:
        return printer(body)
    return f"{kind} {to_text(body)}" if body is not None else kind


def render_rule(statements: Sequence[Json], comment: str | None = None) -> str:
    """The whole rule on one line, with its ``comment "…"`` at the end as nft prints it."""
    text = " ".join(render_statement(s) for s in statements)
    if comment is not None:
        text += f" comment {_q(comment)}"
    return text
