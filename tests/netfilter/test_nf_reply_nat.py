"""A connection's reply meets the hooks as it arrives and is un-NATed at the NAT step's place.

The kernel rewrites every packet of a NATed connection from its conntrack entry in the NAT
core's hook (``nf_nat_inet_fn`` → ``nf_nat_packet``, net/netfilter/nf_nat_core.c): the reply's
destination (undoing source NAT) at priority -100 in PREROUTING, after raw (-300) and mangle
(-150); its source (undoing destination NAT) at +100 in POSTROUTING, after mangle and filter.
So Docker 28's ``raw PREROUTING -d CONTAINER ! -i BRIDGE -j DROP`` never sees the reply of a
MASQUERADEd container connection addressed to the container. ``test_verify.py`` checks the
same against real connections on the fixtures (docker28-raw-drop, docker29-nftables).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nf_helpers import STANDARD_HOST, ip_json, rules, standard_host

import natlens
from natlens.netfilter import Host, Packet, Simulator
from natlens.netfilter.connection import reply_packet
from natlens.netfilter.trace import StepKind, Trace
from natlens.nft import loads

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

EGRESS = Packet(in_interface="docker0", src="172.17.0.2", dst="203.0.113.9", proto="tcp",
                sport=40000, dport=443)
PUBLISHED = Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", proto="tcp",
                   sport=40000, dport=8080)


def _reply(sim: Simulator, trace: Trace) -> Trace:
    found = reply_packet(trace)
    assert found is not None
    reply, mapping = found
    return sim.trace(reply, dst_local=trace.packet.local_origin,
                     via=trace.packet.in_interface, reverse_nat=mapping)


def _where(trace: Trace) -> list[str]:
    """The reply's steps, short: ``raw:PREROUTING``, ``NAT@PREROUTING`` for the un-NAT."""
    out = []
    for s in trace.steps:
        if s.kind is StepKind.NOTE and s.text.startswith("NAT: reply"):
            out.append(f"NAT@{s.hook}")
        elif s.table is not None:
            out.append(f"{s.table}:{s.chain}")
    return out


def _nft(*chains: tuple[str, str, int, str, list[list[dict[str, Any]]]]) -> str:
    """An ``nft -j list ruleset`` of table ``ip t``: (name, hook, prio, type, rules)."""
    items: list[dict[str, Any]] = [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "t", "handle": 1}}]
    handle = 1
    for name, hook, prio, kind, exprs in chains:
        handle += 1
        items.append({"chain": {"family": "ip", "table": "t", "name": name, "handle": handle,
                                "type": kind, "hook": hook, "prio": prio,
                                "policy": "accept"}})
        for expr in exprs:
            handle += 1
            items.append({"rule": {"family": "ip", "table": "t", "chain": name,
                                   "handle": handle, "expr": expr}})
    return json.dumps({"nftables": items})


def _eq(left: dict[str, Any], right: object, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
IIF = {"meta": {"key": "iifname"}}
OIF = {"meta": {"key": "oifname"}}

# Docker 28's direct-routing drop and a mangle mark read in FORWARD: both before the un-SNAT
IPT_EGRESS = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 192.0.2.2/32 -j MARK --set-xmark 0x1/0xffffffff
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -o docker0 -m mark --mark 0x1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"""

# the same in native nftables, with no nat chain in prerouting: the NAT core still un-SNATs
NFT_EGRESS = _nft(
    ("raw", "prerouting", -300, "filter",
     [[_eq(DADDR, "172.17.0.2"), _eq(IIF, "docker0", "!="), {"drop": None}]]),
    ("mangle", "prerouting", -150, "filter",
     [[_eq(DADDR, "192.0.2.2"), {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 1}}]]),
    ("post", "postrouting", 100, "nat",
     [[_eq(SADDR, {"prefix": {"addr": "172.17.0.0", "len": 16}}), _eq(OIF, "docker0", "!="),
       {"masquerade": None}]]),
    ("fwd", "forward", 0, "filter",
     [[_eq(IIF, "docker0"), _eq(OIF, "docker0", "!="), {"accept": None}],
      [_eq(OIF, "docker0"), _eq({"meta": {"key": "mark"}}, 1), {"accept": None}],
      [{"drop": None}]]),
)

# a published port: filter sees the reply from the container, mangle POSTROUTING (-150) too;
# only what runs after +100 sees the un-DNATed source
IPT_PUBLISHED = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 192.0.2.2/32 -p tcp -m tcp --sport 8080 -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 192.0.2.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d 172.17.0.2/32 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A FORWARD -s 172.17.0.2/32 -i docker0 -p tcp -m tcp --sport 80 -j ACCEPT
COMMIT
"""
NFT_LATE = _nft(("late", "postrouting", 200, "filter",
                 [[_eq(SADDR, "172.17.0.2"), {"drop": None}]]))


@pytest.mark.parametrize("source", ["iptables", "nft"])
def test_reply_is_unsnated_after_raw_and_mangle(source: str) -> None:
    sim = Simulator(standard_host(), rules(IPT_EGRESS)) if source == "iptables" else \
        Simulator(standard_host(), rules(""), nft=loads(NFT_EGRESS))
    trace = sim.trace(EGRESS)
    assert (trace.verdict.value, trace.final_src) == ("ACCEPT", "192.0.2.2:40000")
    reply = _reply(sim, trace)
    # raw and mangle see 192.0.2.2 (the drop does not match, the mark is set), then the NAT
    # step turns it into the container, which FORWARD accepts by the mark
    where = _where(reply)
    early = [i for i, w in enumerate(where) if w.endswith(("raw:PREROUTING", "mangle:PREROUTING",
                                                           "t:raw", "t:mangle"))]
    assert len(early) >= 2, where
    assert max(early) < where.index("NAT@PREROUTING"), where
    assert reply.verdict.value == "ACCEPT"
    assert (reply.final_dst, reply.out_interface) == ("172.17.0.2:40000", "docker0")
    assert trace.connection is not None
    assert trace.connection.established is True


def test_reply_is_undnated_after_filter_and_mangle() -> None:
    sim = Simulator(standard_host(), rules(IPT_PUBLISHED), nft=loads(NFT_LATE))
    trace = sim.trace(PUBLISHED)
    assert trace.final_dst == "172.17.0.2:80"
    reply = _reply(sim, trace)
    where = _where(reply)
    assert where.index("NAT@POSTROUTING") > where.index("filter:FORWARD")
    assert where.index("NAT@POSTROUTING") > where.index("mangle:POSTROUTING")
    assert where.index("NAT@POSTROUTING") < where.index("t:late")
    assert (reply.verdict.value, reply.final_src) == ("ACCEPT", "192.0.2.2:8080")
    assert trace.connection is not None
    assert trace.connection.established is True


@pytest.mark.parametrize("name", ["docker28-raw-drop", "docker29-nftables"])
def test_container_egress_survives_docker_direct_routing_drop(name: str) -> None:
    snap = natlens.load(FIXTURES / name)
    trace = snap.simulator.trace(EGRESS)
    assert trace.connection is not None
    assert trace.connection.established is True, trace.connection.why
    reply = _reply(snap.simulator, trace)
    where = _where(reply)
    raw = [i for i, w in enumerate(where) if "raw" in w.lower()]
    assert raw, where
    assert max(raw) < where.index("NAT@PREROUTING"), where


def test_reply_to_an_unknown_masquerade_address_is_undecided() -> None:
    # no ip-addr.json: MASQUERADE's address is unknown, so is what raw sees in the reply
    _, routes = ip_json(STANDARD_HOST)
    sim = Simulator(Host.from_json(None, routes), rules(IPT_EGRESS))
    trace = sim.trace(EGRESS)
    assert trace.final_src == "172.17.0.2:40000"
    assert trace.connection is not None
    assert trace.connection.established is None, trace.connection.why
    # the reply is walked addressed to that unknown address: raw's -d CONTAINER and mangle's
    # -d 192.0.2.2 before the NAT step are read both ways
    assert "-> the address MASQUERADE took on eth0 (unknown; de-NATed to 172.17.0.2:40000) " \
        "may be dropped" in trace.connection.why
    assert "-d 172.17.0.2/32: the destination is the address MASQUERADE took on eth0 " \
        "(unknown)" in trace.connection.why
