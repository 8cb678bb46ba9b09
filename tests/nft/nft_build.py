"""Test helpers: libnftables JSON built from Python, and the packets and host the tests use."""

from __future__ import annotations

from typing import Any

from natlens.netfilter.flow import Flow
from natlens.netfilter.host import Host
from natlens.netfilter.packet import Packet
from natlens.nft import NftContext, NftRuleset, compile_table, read_ruleset
from natlens.nft.evaluate import RuleOutcome, evaluate_rule

J = dict[str, Any]


def payload(protocol: str, field: str) -> J:
    return {"payload": {"protocol": protocol, "field": field}}


def meta(key: str) -> J:
    return {"meta": {"key": key}}


def ct(key: str, direction: str | None = None) -> J:
    body: J = {"key": key}
    if direction:
        body["dir"] = direction
    return {"ct": body}


def match(left: Any, right: Any, op: str = "==") -> J:
    return {"match": {"op": op, "left": left, "right": right}}


def prefix(addr: str, length: int) -> J:
    return {"prefix": {"addr": addr, "len": length}}


def rng(low: Any, high: Any) -> J:
    return {"range": [low, high]}


def aset(*items: Any) -> J:
    return {"set": list(items)}


def concat(*parts: Any) -> J:
    return {"concat": list(parts)}


def jump(target: str) -> J:
    return {"jump": {"target": target}}


def goto(target: str) -> J:
    return {"goto": {"target": target}}


ACCEPT: J = {"accept": None}
DROP: J = {"drop": None}
RETURN: J = {"return": None}
COUNTER: J = {"counter": {"packets": 0, "bytes": 0}}


def ruleset(family: str, chains: dict[str, list[list[J]]], *, base: dict[str, J] | None = None,
            sets: list[J] | None = None, table: str = "t") -> J:
    """A whole ruleset document: ``chains`` maps a chain name to its rules (statement lists);
    ``base`` gives the base chain properties (``{"type", "hook", "prio", "policy"}``)."""
    items: list[J] = [{"table": {"family": family, "name": table}}]
    for name in chains:
        body: J = {"family": family, "table": table, "name": name}
        body.update((base or {}).get(name, {}))
        items.append({"chain": body})
    for s in sets or []:
        kind = "map" if "map" in s else "set"
        items.append({kind: {"family": family, "table": table, **s}})
    for name, rules in chains.items():
        for expr in rules:
            items.append({"rule": {"family": family, "table": table, "chain": name,
                                   "expr": expr}})
    return {"nftables": items}


def host() -> Host:
    """A host with eth0 192.0.2.2/24 (2001:db8::2/64), docker0 172.17.0.1/16, default via eth0."""
    addrs = [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8},
                                       {"family": "inet6", "local": "::1", "prefixlen": 128}]},
        {"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "192.0.2.2", "prefixlen": 24,
             "broadcast": "192.0.2.255"},
            {"family": "inet6", "local": "2001:db8::2", "prefixlen": 64}]},
        {"ifname": "docker0", "addr_info": [
            {"family": "inet", "local": "172.17.0.1", "prefixlen": 16,
             "broadcast": "172.17.255.255"}]},
    ]
    routes = [
        {"dst": "default", "dev": "eth0", "gateway": "192.0.2.1"},
        {"dst": "192.0.2.0/24", "dev": "eth0", "prefsrc": "192.0.2.2"},
        {"dst": "172.17.0.0/16", "dev": "docker0", "prefsrc": "172.17.0.1"},
    ]
    return Host.from_json(addrs, routes)


def flow(**packet: Any) -> Flow:
    """The flow of a packet (``Packet`` keywords; default: tcp from 198.51.100.7 on eth0 to
    192.0.2.2:80)."""
    spec: dict[str, Any] = {"src": "198.51.100.7", "dst": "192.0.2.2", "proto": "tcp",
                            "in_interface": "eth0", "dport": 80, "sport": 40000}
    spec.update(packet)
    if spec.get("local_origin"):
        spec.pop("in_interface", None)
    if spec["proto"] not in ("tcp", "udp", "sctp"):
        spec.pop("dport", None)
        spec.pop("sport", None)
    return Flow.from_packet(Packet(**spec))


def load_doc(doc: J) -> NftRuleset:
    return read_ruleset(doc, source="test.json")


def one_rule(expr: list[J], fl: Flow | None = None, *, family: str = "inet",
             hook: str = "input", priority: int = 0, sets: list[J] | None = None,
             h: Host | None = None) -> RuleOutcome:
    """Evaluate a single rule ``expr`` of a table of ``family``."""
    rs = load_doc(ruleset(family, {"c": [expr]}, sets=sets))
    table = rs.tables[0]
    ctable = compile_table(table)
    ctx = NftContext(h or host(), hook, ctable, priority)
    return evaluate_rule(table.chains[0].rules[0], fl or flow(), ctx)
