"""Read ``nft -j list ruleset`` (libnftables-json(5)) into an ``NftRuleset``.

Accepted: the JSON dialect of nft 0.9.1 to 1.1.x (``metainfo.json_schema_version`` 1). Version
differences tolerated (nftables ``src/json.c`` history): every ``flags``/``dev``/``elem``/set
``type`` may be a scalar or an array; ``xt`` is ``null`` before 1.0.6 and ``{"type", "name"}``
after; objects come in any order (rules before or after their chain, sets after rules); set
``type`` may be ``{"typeof": EXPR}`` (1.1.2); a chain ``prio`` may be a number or a standard
name (``"dstnat"``, ``"filter + 10"``). Refused: the 0.9.0 dialect (``match`` without ``op``,
``{"meta": "key"}``, payload ``name``, ``map`` with ``left``/``right``), which nft 0.9.1
replaced, and a ``json_schema_version`` other than 1.

Every statement, expression and object is checked as nft's own JSON parser reads it
(nftables ``src/parser_json.c``; the vocabulary, required keys and value types are in
``natlens.nft.shapes``): a name nft does not know, a value of the wrong type (a fraction, an
integer beyond 64 bits, a string where an integer is needed, an array where an object is), a
missing required key, an address or port that is none, an ``integer``-typed constant that is not
a number. Keys nft does not read are ignored, as nft ignores them.

Every refusal is an ``NftParseError`` whose one line names the file and the JSON path:
``nft-ruleset.json: $.nftables[12].rule.expr[3].match.right: ...``. In lenient mode
(``strict=False``), a statement holding a name nft does not read is kept opaque
(``Statement.opaque``; the simulator treats it as uncertain) and an unknown top-level object is
left out, each with a line in ``NftRuleset.warnings``; wrong types are refused in both modes.
Each rule keeps its JSON path (``Rule.path``) for trace steps and findings.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
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
from natlens.nft.shapes import (
    EXPRESSIONS,
    LIST_EXPRESSIONS,
    NULL_BODIES,
    OBJECTS,
    REF_STATEMENTS,
    STATEMENTS,
    TYPE_NAMES,
    Shape,
)
from natlens.parse.collector import collector_off

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


_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
"""The integers nft reads: jansson's ``json_int_t`` (``long long``); larger ones fail to load."""


class _Opaque(Exception):  # noqa: N818 (not an error: lenient mode keeps the statement)
    """An unknown statement or expression met in lenient mode: the statement holding it is
    kept as an opaque one (``error`` is what strict mode raises)."""

    def __init__(self, error: NftParseError) -> None:
        super().__init__(str(error))
        self.error = error


class _Reader:
    def __init__(self, source: str, strict: bool = True) -> None:
        self.source = source
        self.strict = strict
        self.warnings: list[str] = []
        self._leaves: dict[tuple[str, tuple[tuple[str, Any], ...]], Json] = {}

    def fail(self, path: _Path, reason: str) -> NftParseError:
        return NftParseError(reason, source=self.source, path=_show_path(path))

    def unknown(self, path: _Path, reason: str) -> Exception:
        """A name nft does not read: an error in strict mode; in lenient mode, the statement
        holding it is kept opaque (``_Opaque``, caught by ``rule``)."""
        error = self.fail(path, reason)
        return error if self.strict else _Opaque(error)

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
        value = body.get("family")
        found = _FAMILIES.get(value) if type(value) is str else None
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
                if self.strict:
                    raise self.fail(path, f"unknown object {kind!r}")
                self.warnings.append(f"{self.fail(path, f'unknown object {kind!r}')} "
                                     "(left out)")
                continue
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
                          source=self.source, warnings=tuple(self.warnings))

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
            comment=self.string(body, "comment", path, required=False), source=self.source,
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
            try:
                frozen = self.statement(kind, sbody, (((path, "expr"), i), kind), fam)
            except _Opaque as opaque:
                reason = opaque.error.reason
                self.warnings.append(f"{opaque.error}: statement kept, simulated as uncertain")
                statements.append(Statement(kind, freeze(sbody), opaque=reason))
                continue
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
        """Check one statement (``path`` ends with its kind) and return it frozen. Raises
        ``NftParseError`` naming the JSON path; ``_Opaque`` in lenient mode for a statement or
        expression nft does not read."""
        if kind == "match":
            match = self.obj(body, path)
            if "op" not in match and ("left" in match or "right" in match):
                raise self.fail(path, f'"match" without "op": {OLD_DIALECT}')
            for key in ("op", "left", "right"):
                if key not in match:
                    raise self.fail(path, f"missing {key!r}")
            op = match["op"]
            if not isinstance(op, str):
                raise self.fail((path, "op"), f"expected a string, got {_kind(op)}")
            if op not in _MATCH_OPS:
                raise self.fail((path, "op"), f"unknown operator {op!r} (one of "
                                f"{' '.join(sorted(_MATCH_OPS))})")
            left = self.expr(match["left"], (path, "left"))
            right = self.expr(match["right"], (path, "right"))
            self.check_value(match["left"], match["right"], (path, "right"), fam)
            return MappingProxyType({"op": op, "left": left, "right": right})
        if kind not in STATEMENTS:
            where = path[0] if isinstance(path, tuple) else path
            raise self.unknown(where, f"unknown statement {kind!r}")
        if kind == "map" and isinstance(body, dict) and "left" in body:
            raise self.fail(path, f'"map" with "left"/"right": {OLD_DIALECT}')
        if body is None and kind in NULL_BODIES:
            return None
        if kind in ("jump", "goto"):
            target = self.obj(body, path).get("target")
            if not isinstance(target, str):
                raise self.fail((path, "target"), f"expected a chain name, got {_kind(target)}")
            return freeze(body)
        shape = STATEMENTS[kind]
        if kind in REF_STATEMENTS and (shape is None or type(body) is not dict
                                       or shape.keys.keys().isdisjoint(body)):
            # a named object (counter "c"), a map to one, or reset's tcp option expression
            return self.expr(body, path)
        if shape is None:  # a verdict or notrack: nft reads nothing of the body
            return freeze(body)
        shaped = self.shaped(self.obj(body, path), shape, path, fam)
        if kind in _NAT_STATEMENTS:
            self.nat_values(body, path)
        return shaped

    def nat_values(self, body: dict[str, Any], path: _Path) -> None:
        """A NAT statement's ``addr`` and ``port`` constants: an address (IPv4 or IPv6; the
        statement's family decides which nft takes) and a port number 0..65535 (a decimal
        string is read as one), or an expression object (a map, a range, a symbol);
        ``null``, a bare number for an address, a list, or a word natlens cannot read as a
        port are refused with the JSON path (nft ``src/parser_json.c``, ``json_parse_nat_stmt``
        reads each as one expression)."""
        if "addr" in body:
            addr = body["addr"]
            if isinstance(addr, str):
                if not addr.startswith(("@", "$")) and not _is_address(addr):
                    raise self.fail((path, "addr"), f"{addr!r} is not an IP address")
            elif not isinstance(addr, dict):
                raise self.fail((path, "addr"), f"expected an address, got {_kind(addr)}")
        if "port" in body:
            port = body["port"]
            if isinstance(port, str) and port.isascii() and port.isdecimal():
                port = int(port)
            if isinstance(port, bool) or not isinstance(port, int | dict) or (
                    isinstance(port, int) and not 0 <= port <= 65535):
                raise self.fail((path, "port"), f"expected a port number 0..65535, got "
                                f"{_kind(port)}")
            if isinstance(port, dict):
                self.port_values(port, (path, "port"))

    def shaped(self, body: dict[str, Any], shape: Shape, path: _Path, fam: Family) -> Json:
        """An object body checked against ``shape`` (required keys, the type of every key nft
        reads; others are kept as they are, as nft ignores them) and frozen."""
        for key in shape.required:
            if key not in body:
                raise self.fail(path, f"missing {key!r}")
        types = shape.keys
        out: dict[str, Json] = {}
        for key, value in body.items():
            want = types.get(key)
            if want is None or want == "a":
                out[key] = freeze(value)
            elif want == "e":
                out[key] = self.expr(value, (path, key))
            elif want in {"t", "T"}:
                out[key] = self.statements(value, (path, key), fam, many=want == "T")
            else:
                self.check_type(value, want, (path, key))
                out[key] = freeze(value)
        return MappingProxyType(out)

    def statements(self, value: Any, path: _Path, fam: Family, *, many: bool) -> Json:
        """A nested statement (``meter``'s ``stmt``) or an array of them (a set statement's)."""
        items = value if many and type(value) is list else [value]
        if many and type(value) is not list:
            raise self.fail(path, f"expected an array of statements, got {_kind(value)}")
        frozen: list[Json] = []
        for i, item in enumerate(items):
            where: _Path = (path, i) if many else path
            stmt = self.obj(item, where)
            if len(stmt) != 1:
                raise self.fail(where, f"expected one key per statement, got {sorted(stmt)}")
            ((kind, body),) = stmt.items()
            frozen.append(MappingProxyType({kind: self.statement(kind, body, (where, kind),
                                                                 fam)}))
        return tuple(frozen) if many else frozen[0]

    def check_type(self, value: Any, want: str, path: _Path) -> None:
        """``value`` has the type of letter ``want`` (``natlens.nft.shapes``)."""
        kind = type(value)
        if want == "s":
            ok = kind is str
        elif want == "i":
            ok = kind is int
            if ok and not _INT_MIN <= value <= _INT_MAX:
                raise self.fail(path, f"integer out of range (nft reads 64 bits): {value}")
        elif want == "n":
            ok = kind is int or kind is float
        elif want == "b":
            ok = kind is bool
        elif want == "S":
            ok = kind is str or (kind is list and all(type(v) is str for v in value))
        else:
            ok = True
        if not ok:
            raise self.fail(path, f"expected {TYPE_NAMES[want]}, got {_kind(value)}")

    def expr(self, value: Any, path: _Path) -> Json:
        """Check an expression's shape (recursively) and return it frozen; constant values
        are checked by ``check_value``."""
        kind_of = type(value)
        if kind_of is str or value is None or kind_of is bool:
            return value  # type: ignore[no-any-return]
        if kind_of is int:
            if not _INT_MIN <= value <= _INT_MAX:
                raise self.fail(path, f"integer out of range (nft reads 64 bits): {value}")
            return value  # type: ignore[no-any-return]
        if kind_of is list:
            return tuple([self.expr(item, (path, i)) for i, item in enumerate(value)])
        if kind_of is not dict:
            # nft's json_parse_immediate reads strings, integers and booleans, no fractions
            raise self.fail(path, f"expected a string, an integer, an array or an object, got "
                            f"{_kind(value)}")
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
        if kind not in EXPRESSIONS:
            raise self.unknown(path, f"unknown expression {kind!r}")
        if kind == "payload":
            payload = self.obj(body, sub)
            if "name" in payload and "protocol" not in payload:
                raise self.fail(sub, f'payload "name": {OLD_DIALECT}')
            if "base" not in payload and not ("protocol" in payload and "field" in payload):
                raise self.fail(sub, 'expected "protocol" and "field" (or "base", "offset", '
                                '"len")')
        elif kind in ("meta", "ct", "rt", "socket") and isinstance(body, str):
            raise self.fail(sub, f'{{"{kind}": "{body}"}}: {OLD_DIALECT}')
        elif kind == "prefix":
            prefix = self.obj(body, sub)
            length = prefix.get("len")
            if type(length) is not int or length < 0:
                raise self.fail((sub, "len"), f"expected a prefix length, got {_kind(length)}")
        elif kind in LIST_EXPRESSIONS:
            least = 1 if kind == "concat" else 2
            if not isinstance(body, list) or len(body) < least or (kind == "range"
                                                                   and len(body) != 2):
                want = "[low, high]" if kind == "range" else "a non-empty array" \
                    if kind == "concat" else "an array of two or more operands"
                raise self.fail(sub, f"expected {want}, got "
                                f"{_kind(body) if not isinstance(body, list) else len(body)}"
                                f"{' items' if isinstance(body, list) else ''}")
            return MappingProxyType({kind: self.expr(body, sub)})
        elif kind == "set":
            return MappingProxyType({kind: self.expr(body, sub)})
        elif kind == "map" and isinstance(body, dict) and "left" in body:
            raise self.fail(sub, f'"map" with "left"/"right": {OLD_DIALECT}')
        shape = EXPRESSIONS[kind]
        if shape is None:  # accept/drop/continue/return in a verdict map: body not read
            frozen = freeze(body)
        elif kind in _LEAF_KINDS:
            frozen = self.leaf(self.obj(body, sub), shape, sub)
        else:
            frozen = self.shaped(self.obj(body, sub), shape, sub, Family.INET)
        return MappingProxyType({kind: frozen})

    def leaf(self, body: dict[str, Any], shape: Shape, path: _Path) -> Json:
        """A payload/meta/ct/fib body: only plain values, checked and frozen."""
        for key in shape.required:
            if key not in body:
                raise self.fail(path, f"missing {key!r}")
        types = shape.keys
        for key, value in body.items():
            want = types.get(key)
            if want is not None and want != "a":
                self.check_type(value, want, (path, key))
        return freeze(body)

    def check_value(self, left: Any, right: Any, path: _Path, fam: Family) -> None:
        """Constants compared with an address or a port must be one."""
        if type(left) is dict and not left.keys().isdisjoint(_BINOPS):
            return
        dtype = expr_type(left, fam.value)
        if dtype in ("ipv4_addr", "ipv6_addr"):
            self.address_values(right, path, 4 if dtype == "ipv4_addr" else 6)
        elif dtype == "inet_service":
            self.port_values(right, path)
        elif dtype == "integer":
            self.integer_values(right, path)

    def integer_values(self, value: Any, path: _Path) -> None:
        """Constants of nft's ``integer`` type (``meta length``, ``numgen``, ``ct zone``...):
        numbers, or strings nft reads as one (``"0x10"``); the type has no symbol names
        (nft ``src/datatype.c``: ``integer_type``)."""
        for leaf, where in _constants(value, path):
            if isinstance(leaf, bool) or (isinstance(leaf, str) and not leaf.startswith("@")
                                          and not _NUMBER.fullmatch(leaf)):
                raise self.fail(where, f"expected a number, got {_kind(leaf)}")

    def address_values(self, value: Any, path: _Path, version: int) -> None:
        for leaf, where in _constants(value, path, prefixes=True):
            if isinstance(leaf, str):
                if leaf.startswith(("@", "$")):
                    continue
                try:
                    socket.inet_pton(socket.AF_INET if version == 4 else socket.AF_INET6, leaf)
                except (OSError, ValueError):
                    raise self.fail(where, f"{leaf!r} is not an IPv{version} address") from None
            elif isinstance(leaf, int | bool) or leaf is None:
                raise self.fail(where, f"{leaf!r} is not an IPv{version} address")

    def port_values(self, value: Any, path: _Path) -> None:
        for leaf, where in _constants(value, path):
            if isinstance(leaf, bool) or (isinstance(leaf, int) and not 0 <= leaf <= 65535):
                raise self.fail(where, f"{leaf!r} is not a port number (0..65535)")

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
        if size is not None:
            self.check_type(size, "i", (path, "size"))
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
        try:
            key = self.expr(item, path)
            value = self.expr(data, (path, 1)) if is_map else None
        except _Opaque as opaque:  # a set element cannot be kept opaque: refused either way
            raise opaque.error from None
        return Element(key=key, data=value, timeout=timeout, expires=expires, comment=comment)

    def stateful(self, kind: str, fam: Family, table: str, body: Any,
                 path: _Path) -> StatefulObject:
        body = self.obj(body, path)
        name = self.string(body, "name", path)
        assert name is not None
        self.string(body, "comment", path, required=False)
        frozen = self.shaped(body, OBJECTS[kind], path, fam)
        assert isinstance(frozen, MAPPINGS)
        return StatefulObject(kind=kind, family=fam, table=table, name=name,
                              handle=self.integer(body, "handle", path), attrs=frozen)

    def flowtable(self, fam: Family, table: str, body: Any, path: _Path) -> Flowtable:
        body = self.obj(body, path)
        name = self.string(body, "name", path)
        assert name is not None
        prio = body.get("prio")
        if prio is not None:
            self.check_type(prio, "i", (path, "prio"))
        return Flowtable(family=fam, table=table, name=name,
                         handle=self.integer(body, "handle", path),
                         hook=self.string(body, "hook", path, required=False),
                         priority=prio if isinstance(prio, int) else None,
                         devices=self.strings(body, "dev", path))


_NUMBER = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]+")
"""A number written as a string, as nft's integer parser takes it (decimal or hex)."""
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_ -]{0,40}")


_NAT_STATEMENTS = frozenset({"snat", "dnat", "redirect", "masquerade"})


def _constants(value: Any, path: _Path, *, prefixes: bool = False) -> Iterator[tuple[Any, _Path]]:
    """Each constant of a match's right-hand side with its JSON path: the items of an array,
    of an anonymous ``set`` and of a ``range``, an ``elem``'s ``val`` and (``prefixes``) a
    ``prefix``'s ``addr``; other objects (symbols, expressions) yield nothing."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _constants(item, (path, i), prefixes=prefixes)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((kind, body),) = value.items()
            if kind in ("range", "set"):
                yield from _constants(body, (path, kind), prefixes=prefixes)
            elif kind == "elem" and isinstance(body, dict):
                yield from _constants(body.get("val"), ((path, "elem"), "val"),
                                      prefixes=prefixes)
            elif prefixes and kind == "prefix" and isinstance(body, dict):
                yield from _constants(body.get("addr"), ((path, "prefix"), "addr"),
                                      prefixes=prefixes)
    else:
        yield value, path


def _is_address(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address as inet_pton reads it."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except (OSError, ValueError):
            continue
        return True
    return False


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


def read_ruleset(data: Any, source: str = "<string>", *, strict: bool = True) -> NftRuleset:
    """An ``NftRuleset`` from already-decoded JSON. Raises ``NftParseError``.

    ``strict=False`` (``--lenient``): a statement or expression nft does not read is kept as an
    opaque statement (``Statement.opaque``; simulated as uncertain) and an unknown top-level
    object is left out, each with a line in ``NftRuleset.warnings``; wrong types and missing
    keys are refused in both modes."""
    return _Reader(source, strict).read(data)


def loads(text: str, source: str = "<string>", *, strict: bool = True) -> NftRuleset:
    """An ``NftRuleset`` from ``nft -j list ruleset`` text (``strict`` as ``read_ruleset``).
    Raises ``NftParseError`` (with line and column when the text is not JSON)."""
    # Decoding and reading allocate one object graph that lives on; collecting it midway is
    # wasted work that grows with the ruleset (as in parse_save).
    with collector_off():
        try:  # within natlens.inputs' bounds: nesting depth, number length, no NaN
            data = decode_json(text.encode("utf-8", "surrogatepass"), source)
        except SnapshotJsonError as err:
            reason = err.reason.removeprefix("invalid JSON: ")
            raise NftParseError(f"not JSON: {reason}" if err.line_no else reason,
                                source=source, line_no=err.line_no, column=err.column) from None
        return read_ruleset(data, source, strict=strict)


def load(path: str | Path, *, strict: bool = True) -> NftRuleset:
    """Read a file written by ``nft -j list ruleset`` (``strict`` as ``read_ruleset``). Raises
    ``NftParseError``; ``OSError`` when the file cannot be read."""
    p = Path(path)
    return loads(p.read_text(encoding="utf-8"), source=p.name, strict=strict)
