"""The rules-only checks on native nft tables (``natlens.audit.nft_chains``), case by case.

Each case is a small ``nft -j list ruleset`` document (one table ``ip t``) audited alone, with
the kinds (and blamed chains) it must give; the twin of each iptables check's own cases. The
kernel side (the same faults loaded with nft, fixes applied) is ``test_audit_nft_parity.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from natlens.audit import RULE_CHECKS, audit
from natlens.model import Family, Ruleset
from natlens.nft import loads
from natlens.snapshot import Snapshot

J = dict[str, Any]
ACCEPT: J = {"accept": None}
DROP: J = {"drop": None}
COUNTER: J = {"counter": {"packets": 0, "bytes": 0}}
FORWARD: J = {"type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}


def _jump(chain: str) -> J:
    return {"jump": {"target": chain}}


def _port(port: int, proto: str = "tcp") -> J:
    return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}},
                      "right": port}}


def _l4(proto: str) -> J:
    return {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": proto}}


def _saddr(addr: str, length: int) -> J:
    return {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                      "right": {"prefix": {"addr": addr, "len": length}}}}


def _iif(name: str) -> J:
    return {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": name}}


_ESTABLISHED: J = {"match": {"op": "in", "left": {"ct": {"key": "state"}},
                             "right": ["established", "related"]}}
_LIMIT: J = {"limit": {"rate": 10, "per": "second"}}


def _doc(chains: dict[str, list[list[J]]], base: dict[str, J] | None = None,
         sets: list[J] | None = None) -> str:
    items: list[J] = [{"table": {"family": "ip", "name": "t", "handle": 1}}]
    handle = 1
    for name in chains:
        handle += 1
        items.append({"chain": {"family": "ip", "table": "t", "name": name, "handle": handle,
                                **(base or {}).get(name, {})}})
    items.extend({"map": {"family": "ip", "table": "t", **s}} for s in sets or [])
    for name, rules in chains.items():
        for expr in rules:
            handle += 1
            items.append({"rule": {"family": "ip", "table": "t", "chain": name,
                                   "handle": handle, "expr": expr}})
    return json.dumps({"nftables": items})


def _found(text: str) -> list[tuple[str, str]]:
    snap = Snapshot(ruleset=Ruleset(Family.IPV4), nft=loads(text, source="t.json"))
    return sorted((f.kind, f.rule.chain if f.rule else "") for f in audit(snap, RULE_CHECKS))


CASES = [
    pytest.param(_doc({"fwd": [[_jump("a")]], "a": [[ACCEPT]], "old": [[DROP]]},
                      {"fwd": FORWARD}),
                 [("unused-chain", "old")], id="unused"),
    pytest.param(_doc({"fwd": [[{"vmap": {"key": {"meta": {"key": "iifname"}}, "data": {
        "set": [["eth0", _jump("a")]]}}}]], "a": [[ACCEPT]]}, {"fwd": FORWARD}),
                 [], id="vmap-is-a-jump"),
    pytest.param(_doc({"fwd": [[{"vmap": {"key": {"meta": {"key": "iifname"}},
                                          "data": "@m"}}]], "a": [[ACCEPT]]},
                      {"fwd": FORWARD},
                      [{"name": "m", "handle": 9, "type": "ifname", "map": "verdict",
                        "elem": [["eth0", _jump("a")]]}]),
                 [], id="named-verdict-map-is-a-jump"),
    pytest.param(_doc({"fwd": [[ACCEPT]], "a": [[_jump("b")]], "b": [[DROP]]},
                      {"fwd": FORWARD}),
                 [("unreachable-chain", "b"), ("unused-chain", "a")], id="unreachable"),
    pytest.param(_doc({"fwd": [[ACCEPT]], "a": [[_jump("b")]], "b": [[_jump("a")]],
                       "c": [[_jump("a")]]}, {"fwd": FORWARD}),
                 [("loop", "b"), ("unreachable-chain", "a"), ("unreachable-chain", "b"),
                  ("unused-chain", "c")], id="loop-unreached"),
    pytest.param(_doc({"fwd": [[_port(22), COUNTER, ACCEPT], [_port(22), ACCEPT]]},
                      {"fwd": FORWARD}),
                 [("duplicate", "fwd")], id="duplicate-counters-ignored"),
    pytest.param(_doc({"fwd": [[_port(22), _LIMIT, ACCEPT], [_port(22), _LIMIT, ACCEPT]]},
                      {"fwd": FORWARD}),
                 [], id="stateful-not-duplicate"),
    # an allow after a catch-all drop of its protocol: the protocol a port match implies
    pytest.param(_doc({"fwd": [[_iif("eth0"), _l4("udp"), DROP],
                               [_iif("eth0"), _port(51820, "udp"), ACCEPT]]}, {"fwd": FORWARD}),
                 [("dead-rule", "fwd")], id="dead-after-catch-all"),
    pytest.param(_doc({"fwd": [[_saddr("10.0.0.0", 8), ACCEPT],
                               [_saddr("10.1.0.0", 16), _port(22), DROP]]}, {"fwd": FORWARD}),
                 [("dead-rule", "fwd")], id="dead-inside-prefix"),
    pytest.param(_doc({"fwd": [[_saddr("10.1.0.0", 16), ACCEPT],
                               [_saddr("10.0.0.0", 8), DROP]]}, {"fwd": FORWARD}),
                 [], id="wider-prefix-not-dead"),
    pytest.param(_doc({"fwd": [[_port(22), _LIMIT, ACCEPT], [_port(22), DROP]]},
                      {"fwd": FORWARD}),
                 [], id="after-rate-limit-not-dead"),
    pytest.param(_doc({"fwd": [[_port(22), _jump("a")], [_port(22), DROP]], "a": [[ACCEPT]]},
                      {"fwd": FORWARD}),
                 [], id="after-jump-not-dead"),
    pytest.param(_doc({"fwd": [[_iif("eth0"), ACCEPT], [_jump("DOCKER-USER")]],
                       "DOCKER-USER": [[_port(8080), DROP]]}, {"fwd": FORWARD}),
                 [("ineffective", "fwd")], id="accept-before-docker-user"),
    pytest.param(_doc({"fwd": [[_ESTABLISHED, ACCEPT], [_jump("DOCKER-USER")]],
                       "DOCKER-USER": [[_port(8080), DROP]]}, {"fwd": FORWARD}),
                 [], id="established-accept-before-docker-user"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_nft_rules_only_checks(text: str, expected: list[tuple[str, str]]) -> None:
    assert _found(text) == expected
