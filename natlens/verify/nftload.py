"""A snapshot's native nftables tables, ready for ``nft -j -f`` in the verify router, with one
named counter per rule so the kernel says which rules a probe matched.

The JSON of ``nft -j list ruleset`` is loaded back (libnftables-json(5): objects without a
command are added) after these changes:

* the tables an nf_tables iptables dump names are left out: they are loaded from that dump with
  ``iptables-nft-restore`` (their JSON hides xtables matches behind ``xt``);
* handles are dropped (the kernel gives new ones) and the ``owner`` table flag is removed (an
  owned table would vanish when ``nft`` exits);
* each rule gets a counter statement referring to a named counter ``natlens_verify_N``, right
  after its leading ``match`` expressions: it counts the packets that matched them, which is
  what a natlens step says; ``Mapping`` back from the counter name to the snapshot's
  (family table, chain, handle) is kept in ``NftLoad.counters``;
* the tables are loaded in the snapshot's order where it matters: native tables before the
  iptables-nft dumps when their handles are all lower (``NftLoad.first``);
* objects are sorted so that what a statement refers to exists first: tables, chains, named
  objects (the counters), sets and maps (verdict maps name chains), flowtables, rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from natlens.errors import NatlensError

__all__ = ["COUNTER_PREFIX", "NftLoad", "nft_counter_hits", "nft_load"]

COUNTER_PREFIX = "natlens_verify_"
_RANK = {"table": 0, "chain": 1, "counter": 2, "quota": 2, "limit": 2, "ct helper": 2,
         "ct timeout": 2, "ct expectation": 2, "secmark": 2, "synproxy": 2, "set": 3, "map": 3,
         "flowtable": 4, "rule": 5, "element": 6}

CounterKey = tuple[str, str, int | None]


@dataclass(frozen=True, slots=True)
class NftLoad:
    """What to give ``nft -j -f`` (``text``) and the rule each counter stands for:
    ``counters[name] = ("nft/inet filter", chain, handle)``."""

    text: str
    counters: Mapping[str, CounterKey]
    first: bool = False
    """True when every native table is older (lower handle) than every iptables-nft table:
    load them before the iptables-nft dumps, so equal priorities run in the snapshot's order
    (the chain registered last runs first)."""
    uncounted: frozenset[str] = frozenset()
    """Labels (``nft/inet t:chain#HANDLE``) of rules a counter cannot follow exactly: a
    verdict map or map lookup after the matches ends the rule when it hits and breaks it when
    it misses, so no one place counts "the rule matched"."""


def _table_of(kind: str, body: Mapping[str, Any]) -> tuple[str, str]:
    name = body.get("name") if kind == "table" else body.get("table")
    return str(body.get("family", "")), str(name)


def nft_load(json_text: str, dropped: Iterable[tuple[str, str]]) -> NftLoad:
    """The loadable JSON of ``json_text`` minus the (family, table) pairs in ``dropped``.

    Raises ``NatlensError`` when the text is not ``nft -j`` JSON (it was read once already, so
    this means the snapshot changed under us).
    """
    try:
        data = json.loads(json_text)
        objects = data["nftables"]
    except (ValueError, KeyError, TypeError):
        raise NatlensError("nft JSON of the snapshot is not readable any more") from None
    skip = set(dropped)
    out: list[dict[str, Any]] = []
    counters: dict[str, CounterKey] = {}
    uncounted: set[str] = set()
    owned: list[int] = []
    native: list[int] = []
    for obj in objects:
        if not isinstance(obj, dict) or len(obj) != 1:
            continue
        ((kind, body),) = obj.items()
        if kind == "metainfo" or not isinstance(body, dict):
            continue
        family, table = _table_of(kind, body)
        if kind == "table" and isinstance(body.get("handle"), int):
            (owned if (family, table) in skip else native).append(body["handle"])
        if (family, table) in skip:
            continue
        body = {k: v for k, v in body.items() if k != "handle"}
        if kind == "table" and body.get("flags"):
            flags = body["flags"] if isinstance(body["flags"], list) else [body["flags"]]
            body["flags"] = [f for f in flags if f != "owner"]
            if not body["flags"]:
                del body["flags"]
        if kind == "rule":
            name = f"{COUNTER_PREFIX}{len(counters)}"
            handle = obj[kind].get("handle")
            counters[name] = (f"nft/{family} {table}", str(body.get("chain")),
                              handle if isinstance(handle, int) else None)
            out.append({"counter": {"family": family, "table": table, "name": name}})
            expr = list(body.get("expr") or [])
            at = 0
            while at < len(expr) and isinstance(expr[at], dict) and "match" in expr[at]:
                at += 1
            expr.insert(at, {"counter": name})
            body["expr"] = expr
            if any(_has_map(e) for e in expr[at + 1:]):
                uncounted.add(f"nft/{family} {table}:{body.get('chain')}#{handle}")
        out.append({kind: body})
    out.sort(key=lambda o: _RANK.get(next(iter(o)), 2))
    first = bool(owned and native and max(native) < min(owned))
    return NftLoad(json.dumps({"nftables": out}), counters, first, frozenset(uncounted))


def _has_map(expr: Any) -> bool:
    """Whether a statement looks a key up in a map or verdict map."""
    if isinstance(expr, dict):
        return any(k in ("vmap", "map") or _has_map(v) for k, v in expr.items())
    if isinstance(expr, list):
        return any(_has_map(v) for v in expr)
    return False


def nft_counter_hits(listing: str, load: NftLoad) -> dict[CounterKey, int]:
    """Packets per rule from ``nft -j list counters`` output, keyed like ``NftLoad.counters``
    (several snapshot rules never share a key: each has its own counter)."""
    try:
        objects = json.loads(listing)["nftables"]
    except (ValueError, KeyError, TypeError):
        raise NatlensError("nft -j list counters printed no JSON") from None
    out: dict[CounterKey, int] = {}
    for obj in objects:
        body = obj.get("counter") if isinstance(obj, dict) else None
        if not isinstance(body, dict):
            continue
        key = load.counters.get(str(body.get("name")))
        if key is not None:
            out[key] = out.get(key, 0) + int(body.get("packets", 0))
    return out
