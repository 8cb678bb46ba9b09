"""Read ``nft -j list ruleset`` (libnftables-json(5)) into an ``NftRuleset``.

Accepted: the JSON dialect of nft 0.9.1 to 1.1.x (``metainfo.json_schema_version`` 1). Version
differences tolerated (nftables ``src/json.c`` history): every ``flags``/``dev``/``elem``/set
``type`` may be a scalar or an array; ``xt`` is ``null`` before 1.0.6 and ``{"type", "name"}``
after; objects come in any order (rules before or after their chain, sets after rules); set
``type`` may be ``{"typeof": EXPR}`` (1.1.2); a chain ``prio`` may be a number or a standard
name (``"dstnat"``, ``"filter + 10"``). Refused: the 0.9.0 dialect (``match`` without ``op``,
``{"meta": "key"}``, payload ``name``, ``map`` with ``left``/``right``), which nft 0.9.1
replaced, and a ``json_schema_version`` other than 1.

Every refusal is an ``NftParseError`` whose one line names the file and the JSON path:
``nft-ruleset.json: $.nftables[12].rule.expr[3].match.right: ...``.
"""

from __future__ import annotations

import gc
import json
import re
import socket
from pathlib import Path
from types import MappingProxyType
from typing import Any, Union

from natlens.errors import NftParseError, SnapshotJsonError
from natlens.inputs import decode_json
from natlens.nft.datatypes import expr_type
from natlens.nft.jsonvalue import freeze
from natlens.nft.model import (
    HOOKS,
    MAPPINGS,
    Chain,
    Element,
    Family,
    Flowtable,
    Json,
    NftRuleset,
    NftSet,
    Rule,
    StatefulObject,
    Statement,
    Table,
    resolve_priority,
)
from natlens.nft.render import render_expr

__all__ = ["load", "loads", "read_ruleset", "freeze", "OLD_DIALECT"]

OLD_DIALECT = "the nft 0.9.0 JSON dialect is not supported (use nft >= 0.9.1)"
_OBJECT_KINDS = frozenset({
    "counter", "quota", "limit", "ct helper", "ct timeout", "ct expectation", "secmark",
    "synproxy", "tunnel",
})
_IGNORED = frozenset({"element", "meter"})
_LISTED = frozenset({"chain", "rule", "set", "map", "flowtable"})
_MATCH_OPS = frozenset({"==", "!=", "<", ">", "<=", ">=", "in", "!"})
_CHAIN_TYPES = frozenset({"filter", "nat", "route"})
_LEAF_KINDS = frozenset({"payload", "meta", "ct", "fib"})
_BINOPS = frozenset({"&", "|", "^", "<<", ">>"})
_FAMILIES = {f.value: f for f in Family}


_Path = Union[str, tuple["_Path", Union[str, int]]]  # noqa: UP007 (recursive alias)
"""A JSON path, built lazily as (parent, key or index) pairs: rendered only for an error."""


def _show_path(path: _Path) -> str:
    """``$.nftables[3].rule``; a key that is not a plain word is quoted: ``["x\\ny"]``."""
    parts: list[str] = []
    while isinstance(path, tuple):
        path, part = path
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            parts.append(f".{part}")
        else:
            parts.append(f"[{json.dumps(part)}]")
    return path + "".join(reversed(parts))


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self._leaves: dict[tuple[str, tuple[tuple[str, Any], ...]], Json] = {}

    def fail(self, path: _Path, reason: str) -> NftParseError:
        return NftParseError(reason, source=self.source, path=_show_path(path))

    # -- scalar helpers ---------------------------------------------------------------------

    def obj(self, value: Any, path: _Path) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {_kind(value)}")
        return value

    def string(self, body: dict[str, Any], key: str, path: _Path, *,
               required: bool = True) -> str | None:
        value = body.get(key)
        if value is None:
            if required:
                raise self.fail(path, f"missing {key!r}")
            return None
        if not isinstance(value, str):
            raise self.fail((path, key), f"expected a string, got {_kind(value)}")
        return value

    def integer(self, body: dict[str, Any], key: str, path: _Path, *, default: int = 0) -> int:
        value = body.get(key, default)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail((path, key), f"expected an integer, got {_kind(value)}")
        return value

    def number(self, body: dict[str, Any], key: str, path: _Path) -> float | None:
        value = body.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail((path, key), f"expected a number, got {_kind(value)}")
        return float(value)

    def strings(self, body: dict[str, Any], key: str, path: _Path) -> tuple[str, ...]:
        """A scalar-or-array string field (``flags``, ``dev``)."""
        value = body.get(key)
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if not isinstance(item, str):
                where = ((path, key), i) if isinstance(value, list) else (path, key)
                raise self.fail(where, f"expected a string, got {_kind(item)}")
        return tuple(items)

    def family(self, body: dict[str, Any], path: _Path) -> Family:
        found = _FAMILIES.get(body.get("family"))  # type: ignore[arg-type]
        if found is not None:
            return found
        name = self.string(body, "family", path)
        try:
            return Family(name)
        except ValueError:
            known = ", ".join(f.value for f in Family)
            raise self.fail((path, "family"), f"unknown family {name!r} (one of {known})") \
                from None

    # -- the document -----------------------------------------------------------------------

    def read(self, data: Any) -> NftRuleset:
        root = self.obj(data, "$")
        items = root.get("nftables")
        if not isinstance(items, list):
            raise self.fail("$", 'expected {"nftables": [...]} (nft -j list ruleset output)')
        version: str | None = None
        schema: int | None = None
        tables: dict[tuple[Family, str], dict[str, Any]] = {}
        order: list[tuple[Family, str]] = []
        pending: list[tuple[str, _Path, Any]] = []
        for i, item in enumerate(items):
            where: _Path = (("$", "nftables"), i)
            entry = self.obj(item, where)
            if len(entry) != 1:
                raise self.fail(where, f"expected one key per object, got {sorted(entry)}")
            ((kind, body),) = entry.items()
            path: _Path = (where, kind)
            if kind == "metainfo":
                meta = self.obj(body, path)
                raw_version = meta.get("version")
                version = str(raw_version) if raw_version is not None else None
                schema = self.integer(meta, "json_schema_version", path, default=1)
                if schema != 1:
                    raise self.fail((path, "json_schema_version"),
                                    f"json_schema_version {schema} is not supported (natlens "
                                    "reads version 1, printed by nft 0.9.1 to 1.1.x)")
                continue
            if kind == "table":
                body = self.obj(body, path)
                fam = self.family(body, path)
                name = self.string(body, "name", path)
                assert name is not None
                key = (fam, name)
                if key not in tables:
                    order.append(key)
                    tables[key] = {"body": body, "path": path, "chains": {}, "rules": {},
                                   "sets": [], "objects": [], "flowtables": []}
                continue
            if kind in _IGNORED:
                continue
            if kind not in _OBJECT_KINDS and kind not in _LISTED:
                raise self.fail(path, f"unknown object {kind!r}")
            pending.append((kind, path, body))
        for kind, path, raw in pending:
            body = self.obj(raw, path)
            fam = self.family(body, path)
            table_name = self.string(body, "table", path)
            assert table_name is not None
            slot = tables.get((fam, table_name))
            if slot is None:
                raise self.fail((path, "table"),
                                f"table {fam.value} {table_name} is not in the ruleset")
            if kind == "chain":
                chain_name = self.string(body, "name", path)
                slot["chains"][chain_name] = (body, path)
            elif kind == "rule":
                chain_name = self.string(body, "chain", path)
                slot["rules"].setdefault(chain_name, []).append((body, path))
            elif kind in ("set", "map"):
                slot["sets"].append(self.set(kind, fam, table_name, body, path))
            elif kind in _OBJECT_KINDS:
                slot["objects"].append(self.stateful(kind, fam, table_name, body, path))
            elif kind == "flowtable":
                slot["flowtables"].append(self.flowtable(fam, table_name, body, path))
            else:
                raise self.fail(path, f"unknown object {kind!r}")
        built = tuple(self.table(key, tables[key]) for key in order)
        return NftRuleset(tables=built, version=version, schema_version=schema,
                          source=self.source)

    def table(self, key: tuple[Family, str], slot: dict[str, Any]) -> Table:
        fam, name = key
        body, path = slot["body"], slot["path"]
        chains: list[Chain] = []
        for chain_name, (chain_body, chain_path) in slot["chains"].items():
            rules = tuple(self.rule(fam, name, chain_name, index=index, body=rbody, path=rpath)
                          for index, (rbody, rpath) in
                          enumerate(slot["rules"].pop(chain_name, [])))
            chains.append(self.chain(fam, name, chain_body, chain_path, rules))
        for chain_name, entries in slot["rules"].items():
            raise self.fail((entries[0][1], "chain"),
                            f"chain {chain_name!r} is not in table {fam.value} {name}")
        return Table(
            family=fam, name=name, handle=self.integer(body, "handle", path),
            chains=tuple(chains), sets=tuple(slot["sets"]), objects=tuple(slot["objects"]),
            flowtables=tuple(slot["flowtables"]),
            flags=frozenset(self.strings(body, "flags", path)),
            comment=self.string(body, "comment", path, required=False),
        )

    def chain(self, fam: Family, table: str, body: dict[str, Any], path: _Path,
              rules: tuple[Rule, ...]) -> Chain:
        name = self.string(body, "name", path)
        assert name is not None
        hook = self.string(body, "hook", path, required=False)
        ctype = self.string(body, "type", path, required=False)
        priority: int | None = None
        policy = self.string(body, "policy", path, required=False)
        if hook is not None:
            if hook not in HOOKS:
                raise self.fail((path, "hook"), f"unknown hook {hook!r} (one of "
                                f"{', '.join(HOOKS)})")
            if ctype is not None and ctype not in _CHAIN_TYPES:
                raise self.fail((path, "type"), f"unknown chain type {ctype!r}")
            prio = body.get("prio", 0)
            if isinstance(prio, bool) or not isinstance(prio, int | str):
                raise self.fail((path, "prio"), f"expected a number or a priority name, got "
                                f"{_kind(prio)}")
            try:
                priority = resolve_priority(prio, fam.value, hook)
            except ValueError as err:
                raise self.fail((path, "prio"), str(err)) from None
            if policy is not None and policy not in ("accept", "drop"):
                raise self.fail((path, "policy"), f"policy must be accept or drop, not "
                                f"{policy!r}")
            policy = policy or "accept"
            ctype = ctype or "filter"
        return Chain(
            family=fam, table=table, name=name, handle=self.integer(body, "handle", path),
            rules=rules, type=ctype if hook else None, hook=hook, priority=priority,
            policy=policy if hook else None, devices=self.strings(body, "dev", path),
            comment=self.string(body, "comment", path, required=False),
        )

    def rule(self, fam: Family, table: str, chain: str, *, index: int, body: dict[str, Any],
             path: _Path) -> Rule:
        exprs = body.get("expr")
        if type(exprs) is not list:
            raise self.fail((path, "expr"), f"expected an array of statements, got "
                            f"{_kind(exprs)}")
        statements: list[Statement] = []
        for i, stmt in enumerate(exprs):
            if type(stmt) is not dict or len(stmt) != 1:
                spath = ((path, "expr"), i)
                entry = self.obj(stmt, spath)
                raise self.fail(spath, f"expected one key per statement, got {sorted(entry)}")
            ((kind, sbody),) = stmt.items()
            frozen = self.statement(kind, sbody, (((path, "expr"), i), kind), fam)
            statements.append(Statement(kind, frozen))
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise self.fail((path, "comment"), f"expected a string, got {_kind(comment)}")
        handle = body.get("handle", 0)
        if type(handle) is not int:
            handle = self.integer(body, "handle", path)
        parent = path[0] if isinstance(path, tuple) else None
        shown = f"$.nftables[{parent[1]}].rule" if isinstance(parent, tuple) \
            and parent[0] == ("$", "nftables") else _show_path(path)  # the usual place, quickly
        return Rule(family=fam, table=table, chain=chain, index=index, handle=handle,
                    statements=tuple(statements), comment=comment, path=shown)

    # -- statements and expressions ---------------------------------------------------------

    def statement(self, kind: str, body: Any, path: _Path, fam: Family) -> Json:
        """Check one statement and return it frozen."""
        if kind == "match":
            match = self.obj(body, path)
            if "op" not in match and ("left" in match or "right" in match):
                raise self.fail(path, f'"match" without "op": {OLD_DIALECT}')
            for key in ("op", "left", "right"):
                if key not in match:
                    raise self.fail(path, f"missing {key!r}")
            op = match["op"]
            if op not in _MATCH_OPS:
                raise self.fail((path, "op"), f"unknown operator {op!r} (one of "
                                f"{' '.join(sorted(_MATCH_OPS))})")
            left = self.expr(match["left"], (path, "left"))
            right = self.expr(match["right"], (path, "right"))
            self.check_value(match["left"], match["right"], (path, "right"), fam)
            return MappingProxyType({"op": op, "left": left, "right": right})
        if kind == "map" and isinstance(body, dict) and "left" in body:
            raise self.fail(path, f'"map" with "left"/"right": {OLD_DIALECT}')
        if kind in ("jump", "goto"):
            target = self.obj(body, path).get("target")
            if not isinstance(target, str):
                raise self.fail((path, "target"), f"expected a chain name, got {_kind(target)}")
        elif kind in ("vmap", "mangle"):
            spec = self.obj(body, path)
            keys = ("key", "data") if kind == "vmap" else ("key", "value")
            for key in keys:
                if key not in spec:
                    raise self.fail(path, f"missing {key!r}")
            return MappingProxyType({key: self.expr(value, (path, key)) if key in keys
                                     else freeze(value) for key, value in spec.items()})
        elif kind in ("dnat", "snat", "masquerade", "redirect") and body is not None:
            nat = self.obj(body, path)
            return MappingProxyType({key: self.expr(value, (path, key))
                                     if key in ("addr", "port") else freeze(value)
                                     for key, value in nat.items()})
        return freeze(body)

    def expr(self, value: Any, path: _Path) -> Json:
        """Check an expression's shape (recursively) and return it frozen; constant values
        are checked by ``check_value``."""
        kind_of = type(value)
        if kind_of is str or kind_of is int or value is None or kind_of is bool \
                or kind_of is float:
            return value  # type: ignore[no-any-return]
        if kind_of is list:
            return tuple([self.expr(item, (path, i)) for i, item in enumerate(value)])
        if kind_of is not dict:
            raise self.fail(path, f"unexpected {_kind(value)}")
        if len(value) != 1:
            raise self.fail(path, f"expected one key per expression, got {sorted(value)}")
        ((kind, body),) = value.items()
        if kind in _LEAF_KINDS and type(body) is dict:
            # payload/meta/ct/fib repeat across rules: check and freeze each shape once
            try:
                key = (kind, tuple(body.items()))
                return self._leaves[key]
            except KeyError:
                leaf = self._leaves[key] = self._expr(kind, body, path)
                return leaf
            except TypeError:  # an unhashable value (fib flags list)
                pass
        return self._expr(kind, body, path)

    def _expr(self, kind: str, body: Any, path: _Path) -> Json:
        sub = (path, kind)
        frozen: Json
        if kind == "payload":
            payload = self.obj(body, sub)
            if "name" in payload and "protocol" not in payload:
                raise self.fail(sub, f'payload "name": {OLD_DIALECT}')
            if "base" not in payload and not ("protocol" in payload and "field" in payload):
                raise self.fail(sub, 'expected "protocol" and "field" (or "base", "offset", '
                                '"len")')
            frozen = freeze(payload)
        elif kind in ("meta", "ct", "rt", "socket"):
            if isinstance(body, str):
                raise self.fail(sub, f'{{"{kind}": "{body}"}}: {OLD_DIALECT}')
            self.string(self.obj(body, sub), "key", sub)
            frozen = freeze(body)
        elif kind == "fib":
            self.string(self.obj(body, sub), "result", sub)
            frozen = freeze(body)
        elif kind == "prefix":
            prefix = self.obj(body, sub)
            length = prefix.get("len")
            if type(length) is not int or length < 0:
                raise self.fail((sub, "len"), f"expected a prefix length, got {_kind(length)}")
            frozen = MappingProxyType({"addr": self.expr(prefix.get("addr"), (sub, "addr")),
                                       "len": length})
        elif kind == "range":
            if not isinstance(body, list) or len(body) != 2:
                raise self.fail(sub, "expected [low, high]")
            frozen = self.expr(body, sub)
        elif kind in ("concat", "&", "|", "^", "<<", ">>"):
            if not isinstance(body, list) or not body:
                raise self.fail(sub, "expected a non-empty array")
            frozen = self.expr(body, sub)
        elif kind == "set":
            frozen = self.expr(body, sub)
        elif kind == "map":
            mapping = self.obj(body, sub)
            if "left" in mapping:
                raise self.fail(sub, f'"map" with "left"/"right": {OLD_DIALECT}')
            for key in ("key", "data"):
                if key not in mapping:
                    raise self.fail(sub, f"missing {key!r}")
            frozen = MappingProxyType({key: self.expr(item, (sub, key))
                                       for key, item in mapping.items()})
        elif kind == "elem":
            elem = self.obj(body, sub)
            frozen = MappingProxyType({key: self.expr(item, (sub, key)) if key == "val"
                                       else freeze(item) for key, item in elem.items()})
        else:
            frozen = freeze(body)
        return MappingProxyType({kind: frozen})

    def check_value(self, left: Any, right: Any, path: _Path, fam: Family) -> None:
        """Constants compared with an address or a port must be one."""
        if type(left) is dict and not left.keys().isdisjoint(_BINOPS):
            return
        dtype = expr_type(left, fam.value)
        if dtype in ("ipv4_addr", "ipv6_addr"):
            self.address_values(right, path, 4 if dtype == "ipv4_addr" else 6)
        elif dtype == "inet_service":
            self.port_values(right, path)

    def address_values(self, value: Any, path: _Path, version: int) -> None:
        if isinstance(value, str):
            if value.startswith(("@", "$")):
                return
            try:
                socket.inet_pton(socket.AF_INET if version == 4 else socket.AF_INET6, value)
            except (OSError, ValueError):
                raise self.fail(path, f"{value!r} is not an IPv{version} address") from None
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.address_values(item, (path, i), version)
        elif isinstance(value, dict) and len(value) == 1:
            ((kind, body),) = value.items()
            if kind == "prefix" and isinstance(body, dict):
                self.address_values(body.get("addr"), ((path, "prefix"), "addr"), version)
            elif kind in ("range", "set"):
                self.address_values(body, (path, kind), version)
            elif kind == "elem" and isinstance(body, dict):
                self.address_values(body.get("val"), ((path, "elem"), "val"), version)
        elif isinstance(value, int | bool) or value is None:
            raise self.fail(path, f"{value!r} is not an IPv{version} address")

    def port_values(self, value: Any, path: _Path) -> None:
        if isinstance(value, bool) or (isinstance(value, int) and not 0 <= value <= 65535):
            raise self.fail(path, f"{value!r} is not a port number (0..65535)")
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.port_values(item, (path, i))
        elif isinstance(value, dict) and len(value) == 1:
            ((kind, body),) = value.items()
            if kind in ("range", "set"):
                self.port_values(body, (path, kind))
            elif kind == "elem" and isinstance(body, dict):
                self.port_values(body.get("val"), ((path, "elem"), "val"))

    # -- sets, objects, flowtables ----------------------------------------------------------

    def set(self, kind: str, fam: Family, table: str, body: Any, path: _Path) -> NftSet:
        body = self.obj(body, path)
        name = self.string(body, "name", path)
        assert name is not None
        raw_type = body.get("type")
        typeof = False
        if isinstance(raw_type, dict) and "typeof" in raw_type:
            typeof = True
            parts = _concat_parts(freeze(raw_type["typeof"]))
            key_type = tuple(render_expr(part) for part in parts)
        elif isinstance(raw_type, str):
            key_type = (raw_type,)
        elif isinstance(raw_type, list) and raw_type and all(isinstance(t, str) for t in raw_type):
            key_type = tuple(raw_type)
        else:
            raise self.fail((path, "type"), f"expected a type name, an array of them or "
                            f"{{\"typeof\": …}}, got {_kind(raw_type)}")
        data = body.get("map")
        map_type: str | None
        if data is None:
            map_type = None
        elif isinstance(data, str):
            map_type = data
        elif isinstance(data, list):
            map_type = " . ".join(str(d) for d in data)
        elif isinstance(data, dict) and "typeof" in data:
            map_type = render_expr(freeze(data["typeof"]))
        else:
            raise self.fail((path, "map"), f"expected a data type, got {_kind(data)}")
        if kind == "map" and map_type is None:
            raise self.fail(path, 'a map needs "map" (its data type)')
        elements = tuple(self.element(item, ((path, "elem"), i), map_type is not None)
                         for i, item in enumerate(_as_list(body.get("elem"))))
        size = body.get("size")
        return NftSet(
            family=fam, table=table, name=name, handle=self.integer(body, "handle", path),
            key_type=key_type, map=map_type, flags=frozenset(self.strings(body, "flags", path)),
            elements=elements, timeout=self.number(body, "timeout", path),
            gc_interval=self.number(body, "gc-interval", path),
            size=size if isinstance(size, int) else None,
            policy=self.string(body, "policy", path, required=False),
            comment=self.string(body, "comment", path, required=False),
            typeof=typeof, kind=kind, path=_show_path(path),
        )

    def element(self, item: Any, path: _Path, is_map: bool) -> Element:
        data: Any = None
        if is_map:
            if not isinstance(item, list) or len(item) != 2:
                raise self.fail(path, "expected [key, value] in a map")
            item, data = item
        timeout = expires = None
        comment = None
        if isinstance(item, dict) and "elem" in item:
            elem = self.obj(item["elem"], (path, "elem"))
            timeout = self.number(elem, "timeout", (path, "elem"))
            expires = self.number(elem, "expires", (path, "elem"))
            comment = self.string(elem, "comment", (path, "elem"), required=False)
            item = elem.get("val")
        return Element(key=self.expr(item, path), data=self.expr(data, (path, 1)) if is_map
                       else None, timeout=timeout, expires=expires, comment=comment)

    def stateful(self, kind: str, fam: Family, table: str, body: Any,
                 path: _Path) -> StatefulObject:
        body = self.obj(body, path)
        name = self.string(body, "name", path)
        assert name is not None
        frozen = freeze(body)
        assert isinstance(frozen, MAPPINGS)
        return StatefulObject(kind=kind, family=fam, table=table, name=name,
                              handle=self.integer(body, "handle", path), attrs=frozen)

    def flowtable(self, fam: Family, table: str, body: Any, path: _Path) -> Flowtable:
        body = self.obj(body, path)
        name = self.string(body, "name", path)
        assert name is not None
        prio = body.get("prio")
        return Flowtable(family=fam, table=table, name=name,
                         handle=self.integer(body, "handle", path),
                         hook=self.string(body, "hook", path, required=False),
                         priority=prio if isinstance(prio, int) else None,
                         devices=self.strings(body, "dev", path))


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_ -]{0,40}")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _concat_parts(expr: Json) -> tuple[Json, ...]:
    if isinstance(expr, MAPPINGS) and "concat" in expr:
        parts = expr["concat"]
        if isinstance(parts, tuple):
            return parts
    return (expr,)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    return "an object"


def read_ruleset(data: Any, source: str = "<string>") -> NftRuleset:
    """An ``NftRuleset`` from already-decoded JSON. Raises ``NftParseError``."""
    return _Reader(source).read(data)


def loads(text: str, source: str = "<string>") -> NftRuleset:
    """An ``NftRuleset`` from ``nft -j list ruleset`` text. Raises ``NftParseError`` (with
    line and column when the text is not JSON)."""
    # Decoding and reading allocate one object graph that lives on; collecting it midway is
    # wasted work that grows with the ruleset (as in parse_save).
    collect = gc.isenabled()
    gc.disable()
    try:
        try:  # within natlens.inputs' bounds: nesting depth, number length, no NaN
            data = decode_json(text.encode("utf-8", "surrogatepass"), source)
        except SnapshotJsonError as err:
            reason = err.reason.removeprefix("invalid JSON: ")
            raise NftParseError(f"not JSON: {reason}" if err.line_no else reason,
                                source=source, line_no=err.line_no, column=err.column) from None
        return read_ruleset(data, source)
    finally:
        if collect:
            gc.enable()


def load(path: str | Path) -> NftRuleset:
    """Read a file written by ``nft -j list ruleset``. Raises ``NftParseError``;
    ``OSError`` when the file cannot be read."""
    p = Path(path)
    return loads(p.read_text(encoding="utf-8"), source=p.name)
