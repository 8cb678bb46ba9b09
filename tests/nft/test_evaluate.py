"""nft rule evaluation: one expression kind at a time, statements, chain walks, set lookups.

Expected answers come from nft(8) and the kernel sources cited in ``natlens.nft.evaluate``; the
implicit dependencies from nftables' ``tests/py/**/*.payload*`` bytecode (``tcp dport`` loads
``meta l4proto`` first; ``ip …`` in inet loads ``meta nfproto`` first).
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import nft_kernel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from netns_helpers import run
from nft_build import (
    ACCEPT,
    COUNTER,
    DROP,
    RETURN,
    aset,
    concat,
    ct,
    flow,
    goto,
    host,
    jump,
    load_doc,
    match,
    meta,
    one_rule,
    payload,
    prefix,
    rng,
    ruleset,
)

from natlens.netfilter.flow import Flow
from natlens.netfilter.host import Host
from natlens.netfilter.packet import Packet
from natlens.nft import NftContext, NftVerdict, compile_table, loads, walk_chain
from natlens.nft import load as nft_load
from natlens.nft.lookup import Interval, build_index, normalise
from natlens.nft.model import Element
from natlens.nft.values import MAX_DRAWS

TCP_DPORT = payload("tcp", "dport")
IP_SADDR = payload("ip", "saddr")
IP_DADDR = payload("ip", "daddr")


def outcome_of(expr: list[Any], **kw: Any) -> bool | None:
    return one_rule(expr, **kw).matched


# -- payload ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "expected"), [
    ([match(IP_SADDR, "198.51.100.7")], True),
    ([match(IP_SADDR, "198.51.100.8")], False),
    ([match(IP_SADDR, prefix("198.51.100.0", 24))], True),
    ([match(IP_SADDR, prefix("198.51.100.0", 24), "!=")], False),
    ([match(IP_SADDR, rng("198.51.100.1", "198.51.100.6"))], False),
    ([match(IP_DADDR, aset("10.0.0.1", prefix("192.0.2.0", 28)))], True),
    ([match(IP_DADDR, aset("10.0.0.1", prefix("192.0.2.0", 28)), "!=")], False),
    ([match(payload("ip", "protocol"), "tcp")], True),
    ([match(payload("ip", "protocol"), aset("udp", "icmp"))], False),
    ([match(TCP_DPORT, 80)], True),
    ([match(TCP_DPORT, rng(1, 79))], False),
    ([match(TCP_DPORT, 1024, "<")], True),
    ([match(TCP_DPORT, 80, ">=")], True),
    ([match(payload("tcp", "sport"), 40000)], True),
    ([match(payload("th", "dport"), aset(22, 80))], True),
    ([match(payload("udp", "dport"), 80)], False),        # implicit meta l4proto udp
    ([match(payload("udp", "dport"), 53, "!=")], False),  # ... even with !=
    ([match(payload("ip6", "saddr"), prefix("::", 0))], False),  # IPv4 packet in inet
])
def test_payload_ipv4_tcp(expr: list[Any], expected: bool) -> None:
    assert outcome_of(expr) is expected


def test_ip_match_never_matches_ipv6_in_inet() -> None:
    """``ip daddr != 127.0.0.0/8`` starts with ``meta nfproto ipv4`` (tests/py/inet/ip.t)."""
    f6 = flow(src="2001:db8::7", dst="2001:db8::2")
    assert outcome_of([match(IP_DADDR, prefix("127.0.0.0", 8), "!=")], fl=f6) is False
    assert outcome_of([match(payload("ip6", "daddr"), "2001:db8::2")], fl=f6) is True
    assert outcome_of([match(payload("ip6", "nexthdr"), "tcp")], fl=f6) is True


@pytest.mark.parametrize(("proto", "expr", "expected"), [
    ("icmp", [match(payload("icmp", "type"), "echo-request")], True),
    ("icmp", [match(payload("icmp", "type"), aset("echo-reply", "destination-unreachable"))],
     False),
    ("icmp", [match(payload("tcp", "dport"), 80, "!=")], False),
    ("udp", [match(payload("udp", "dport"), 80)], True),
    ("udp", [match(payload("tcp", "dport"), 80)], False),
])
def test_payload_other_protocols(proto: str, expr: list[Any], expected: bool) -> None:
    assert outcome_of(expr, fl=flow(proto=proto)) is expected


def test_icmpv6_type_names_as_nft_writes_them() -> None:
    f6 = flow(src="fe80::1", dst="ff02::1", proto="icmpv6", icmp_type="router-advertisement")
    assert outcome_of([match(payload("icmpv6", "type"), aset("nd-router-advert",
                                                               "nd-neighbor-solicit"))],
                      fl=f6) is True


def test_th_dport_of_icmp_is_uncertain_and_raw_payload_too() -> None:
    assert outcome_of([match(payload("th", "dport"), 80)], fl=flow(proto="icmp")) is None
    raw = {"payload": {"base": "nh", "offset": 64, "len": 8}}
    assert outcome_of([match(raw, 64)]) is None
    assert outcome_of([match(payload("ip", "ttl"), 64)]) is None


# -- meta ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "hook", "expected"), [
    ([match(meta("iifname"), "eth0")], "input", True),
    ([match(meta("iifname"), "eth*")], "input", True),
    ([match(meta("iifname"), "docker*")], "input", False),
    ([match(meta("iifname"), aset("lo", "eth0"))], "input", True),
    ([match(meta("iif"), "eth0")], "input", True),
    ([match(meta("iif"), 2)], "input", None),  # an interface index: name unknown
    ([match(meta("oifname"), "eth0", "!=")], "prerouting", True),  # no output interface yet
    ([match(meta("oifname"), "")], "input", True),
    ([match(meta("l4proto"), "tcp")], "input", True),
    ([match(meta("l4proto"), aset("udp", "sctp"))], "input", False),
    ([match(meta("nfproto"), "ipv4")], "input", True),
    ([match(meta("nfproto"), "ipv6")], "input", False),
    ([match(meta("pkttype"), "host")], "input", True),
    ([match(meta("mark"), 0)], "input", True),
    ([match({"&": [meta("mark"), 0x4000]}, 0)], "input", True),
    ([match(meta("skuid"), 0)], "input", False),  # no local socket: the rule breaks
])
def test_meta(expr: list[Any], hook: str, expected: bool | None) -> None:
    assert outcome_of(expr, hook=hook) is expected


def test_meta_oifname_after_routing_and_unknown_routes() -> None:
    routed = replace(flow(dst="203.0.113.9"), out_iface="eth0")
    assert outcome_of([match(meta("oifname"), "eth0")], fl=routed, hook="forward") is True
    unknown = replace(routed, out_known=False)
    assert outcome_of([match(meta("oifname"), "eth0")], fl=unknown, hook="forward") is None


def test_meta_mark_set_then_matched() -> None:
    rule = [{"mangle": {"key": meta("mark"), "value": {"|": [meta("mark"), 0x4000]}}},
            match({"&": [meta("mark"), 0x4000]}, 0, "!="), ACCEPT]
    out = one_rule(rule, fl=replace(flow(), mark=0x1))
    assert out.matched is True
    assert out.verdict is NftVerdict.ACCEPT
    assert out.flow.mark == 0x4001


def test_statements_before_a_failing_match_have_acted() -> None:
    rule = [{"mangle": {"key": meta("mark"), "value": 7}}, match(IP_SADDR, "10.9.9.9"), DROP]
    out = one_rule(rule)
    assert out.matched is False
    assert out.flow.mark == 7
    assert "ip saddr 10.9.9.9" in out.why_not


# -- ct -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "expr", "expected"), [
    ("new", [match(ct("state"), "new", "in")], True),
    ("new", [match(ct("state"), ["established", "related"], "in")], False),
    ("established", [match(ct("state"), ["established", "related"], "in")], True),
    ("established", [match(ct("state"), aset("established", "related"))], True),
    ("related", [match(ct("state"), "invalid", "in")], False),
    ("new", [match(ct("direction"), "original")], True),
    ("new", [match(ct("status"), "dnat", "in")], False),
    ("new", [match(ct("status"), "dnat", "!")], True),
    ("new", [match(ct("saddr", "original"), "198.51.100.7")], True),
    ("new", [match(ct("proto-dst", "original"), 80)], True),
    ("new", [match(ct("mark"), 0)], True),
    ("established", [match(ct("mark"), 0)], None),        # connmark of an old connection
    ("established", [match(ct("status"), "assured", "in")], None),
])
def test_ct(state: str, expr: list[Any], expected: bool | None) -> None:
    assert outcome_of(expr, fl=flow(state=state)) is expected


def test_ct_status_dnat_after_dnat_and_reply_tuple() -> None:
    dnated = replace(flow(dst="192.0.2.2", dport=8080), dst=ipaddress.ip_address("172.17.0.2"),
                     dport=80, dnat=True)
    assert outcome_of([match(ct("status"), "dnat", "in")], fl=dnated, hook="forward") is True
    assert outcome_of([match(ct("saddr", "reply"), "172.17.0.2")], fl=dnated) is True
    assert outcome_of([match(ct("daddr", "original"), "192.0.2.2")], fl=dnated) is True
    assert outcome_of([match(ct("proto-src", "reply"), 80)], fl=dnated) is True


def test_ct_before_conntrack_and_untracked() -> None:
    """Below priority -200 there is no conntrack entry: ct state reads invalid, other ct keys
    break the rule, even with != (kernel nft_ct.c)."""
    est = flow(state="established")
    kw: dict[str, Any] = {"fl": est, "hook": "prerouting", "priority": -300}
    assert outcome_of([match(ct("state"), "invalid", "in")], **kw) is True
    assert outcome_of([match(ct("state"), "established", "in")], **kw) is False
    assert outcome_of([match(ct("mark"), 1, "!=")], **kw) is False
    out = one_rule([{"notrack": None}, match(ct("state"), "untracked", "in"), ACCEPT])
    assert out.matched is True
    assert out.flow.ctstate == "UNTRACKED"
    assert outcome_of([{"notrack": None}, match(ct("mark"), 0)]) is False


def test_ct_mark_set() -> None:
    out = one_rule([{"mangle": {"key": ct("mark"), "value": meta("mark")}}],
                   fl=replace(flow(state="established"), mark=5))
    assert out.matched is True
    assert (out.flow.ctmark, out.flow.ctmark_known) == (5, True)


# -- fib ----------------------------------------------------------------------------------------


def _fib(result: str, *flags: str) -> dict[str, Any]:
    return {"fib": {"result": result, "flags": list(flags)}}


@pytest.mark.parametrize(("dst", "expected"), [
    ("192.0.2.2", True), ("172.17.0.1", True), ("127.0.0.1", True), ("203.0.113.5", False),
])
def test_fib_daddr_type_local(dst: str, expected: bool) -> None:
    assert outcome_of([match(_fib("type", "daddr"), "local")], fl=flow(dst=dst),
                      hook="prerouting") is expected


def test_fib_without_host_addresses_is_uncertain() -> None:
    unknown = Host(known_addresses=False)
    assert outcome_of([match(_fib("type", "daddr"), "local")], fl=flow(dst="203.0.113.5"),
                      h=unknown) is None


def test_fib_rpfilter_oif_missing() -> None:
    """firewalld: ``fib saddr . mark . iif oif missing drop``."""
    rule = [match(_fib("oif", "saddr", "mark", "iif"), False), DROP]
    # 198.51.100.7 is routed via eth0 (default route): the packet came in on eth0, fine
    assert outcome_of(rule, hook="prerouting") is False
    # the same source arriving on docker0 fails reverse path filtering
    assert outcome_of(rule, fl=flow(in_interface="docker0"), hook="prerouting") is True


# -- sets and maps ------------------------------------------------------------------------------


_SETS: list[dict[str, Any]] = [
    {"name": "blocked", "type": "ipv4_addr", "flags": ["interval"],
     "elem": [prefix("10.0.0.0", 8), rng("198.51.100.5", "198.51.100.9"), "203.0.113.1"]},
    {"name": "svc", "type": ["ipv4_addr", "inet_proto", "inet_service"],
     "elem": [concat("192.0.2.2", "tcp", 80), concat("192.0.2.2", "udp", 53)]},
    {"name": "ranges", "type": ["ipv4_addr", "inet_service"], "flags": "interval",
     "elem": [concat(prefix("198.51.100.0", 24), rng(70, 90))]},
    {"name": "ifs", "type": "ifname", "flags": ["interval"], "elem": ["br-*", "docker0"]},
    {"name": "dyn", "type": "ipv4_addr", "flags": ["dynamic", "timeout"], "timeout": 60},
    {"name": "ports", "type": "inet_service", "map": "verdict",
     "elem": [[80, jump("web")], [rng(1000, 2000), DROP], ["*", ACCEPT]]},
    {"name": "marks", "type": "ipv4_addr", "map": "mark", "elem": [["198.51.100.7", 42]]},
]


@pytest.mark.parametrize(("expr", "kw", "expected"), [
    ([match(IP_SADDR, "@blocked")], {}, True),
    ([match(IP_SADDR, "@blocked", "!=")], {}, False),
    ([match(IP_SADDR, "@blocked")], {"src": "198.51.100.10"}, False),
    ([match(IP_SADDR, "@blocked")], {"src": "10.200.3.4"}, True),
    ([match(concat(IP_DADDR, meta("l4proto"), payload("th", "dport")), "@svc")], {}, True),
    ([match(concat(IP_DADDR, meta("l4proto"), payload("th", "dport")), "@svc")],
     {"dport": 53}, False),
    ([match(concat(IP_SADDR, TCP_DPORT), "@ranges")], {}, True),
    ([match(concat(IP_SADDR, TCP_DPORT), "@ranges")], {"dport": 91}, False),
    ([match(meta("iifname"), "@ifs")], {"in_interface": "br-0123"}, True),
    ([match(meta("iifname"), "@ifs")], {}, False),
    ([match(IP_SADDR, "@dyn")], {}, None),  # a dynamic set is runtime state
    ([match(IP_SADDR, "@nosuchset")], {}, None),
])
def test_named_sets(expr: list[Any], kw: dict[str, Any], expected: bool | None) -> None:
    assert outcome_of(expr, fl=flow(**kw), sets=_SETS) is expected


@pytest.mark.parametrize(("dport", "verdict", "target"), [
    (80, NftVerdict.JUMP, "web"), (1500, NftVerdict.DROP, None), (22, NftVerdict.ACCEPT, None),
])
def test_verdict_map_with_ranges_and_catch_all(dport: int, verdict: NftVerdict,
                                               target: str | None) -> None:
    out = one_rule([{"vmap": {"key": TCP_DPORT, "data": "@ports"}}], fl=flow(dport=dport),
                   sets=_SETS)
    assert (out.matched, out.verdict, out.target) == (True, verdict, target)


def test_anonymous_vmap_miss_goes_on() -> None:
    out = one_rule([{"vmap": {"key": meta("iifname"), "data": aset(["docker0", DROP])}}])
    assert out.matched is False
    assert out.verdict is None


def test_map_value_for_mark() -> None:
    out = one_rule([{"mangle": {"key": meta("mark"), "value": {"map": {
        "key": IP_SADDR, "data": "@marks"}}}}], sets=_SETS)
    assert out.flow.mark == 42


def numgen(mode: str, mod: int, offset: int = 0) -> dict[str, Any]:
    return {"numgen": {"mode": mode, "mod": mod, "offset": offset}}


@pytest.mark.parametrize(("rule", "expected"), [
    # kube-proxy's nftables mode: numgen random mod 2 vmap { 0 : goto a, 1 : goto b }
    ([{"vmap": {"key": numgen("random", 2), "data": aset([0, goto("a")], [1, goto("b")])}}],
     {"goto a": 0.5, "goto b": 0.5}),
    # a value the map lacks goes on to the next rule, with its share
    ([{"vmap": {"key": numgen("random", 4), "data": aset([0, goto("a")], [1, goto("b")])}}],
     {"goto a": 0.25, "goto b": 0.25, "next rule": 0.5}),
    # round robin with an offset; an interval element takes every value it holds
    ([{"vmap": {"key": numgen("inc", 4, 1), "data": aset([rng(1, 3), goto("a")],
                                                          [4, goto("b")])}}],
     {"goto a": 0.75, "goto b": 0.25}),
    # a comparison: the values below 3 of 0..9
    ([match(numgen("random", 10), 3, "<"), ACCEPT], {"accept": 0.3, "next rule": 0.7}),
    ([match(numgen("random", 4), aset(0, 1)), DROP], {"drop": 0.5, "next rule": 0.5}),
    # nft's load balancing: dnat to numgen inc mod 2 map { 0 : A, 1 : B }
    ([{"dnat": {"addr": {"map": {"key": numgen("inc", 2),
                                 "data": aset([0, "10.0.0.1"], [1, "10.0.0.2"])}}}}],
     {"accept 10.0.0.1": 0.5, "accept 10.0.0.2": 0.5}),
    # two numgens in one key: each pair of values once
    ([{"vmap": {"key": concat(numgen("random", 2), numgen("inc", 2)),
                "data": aset([concat(0, 0), goto("a")], [concat(1, 1), goto("b")])}}],
     {"goto a": 0.25, "goto b": 0.25, "next rule": 0.5}),
])
def test_numgen_forks_by_chance(rule: list[dict[str, Any]], expected: dict[str, float]) -> None:
    """``numgen random`` draws uniformly (``nft_ng_random_eval``) and ``numgen inc`` counts
    round robin (``nft_ng_inc_eval``): a new connection meets each value with chance 1/N, as
    ``-m statistic`` in iptables. The branches carry probabilities and no assumption."""
    out = one_rule(rule)
    assert out.matched is None
    got: dict[str, float] = {}
    for b in out.branches:
        assert b.uncertain == ()
        if not b.matched:
            name = "next rule"
        else:
            name = (b.verdict.value if b.verdict else "continue") + (
                f" {b.target}" if b.target else "")
            if b.flow.dnat:
                name += f" {b.flow.dst}"
        got[name] = got.get(name, 0.0) + b.probability
    assert got == pytest.approx(expected)


def test_numgen_beyond_the_draw_limit_is_doubt() -> None:
    """A numgen with more values than ``MAX_DRAWS`` is not weighed: doubt, as for jhash."""
    rule = [match(numgen("random", MAX_DRAWS + 1), 3, "<"), ACCEPT]
    out = one_rule(rule)
    assert out.matched is None
    assert all(b.uncertain and b.probability == 1.0 for b in out.branches)


def test_jhash_vmap_is_doubt_over_every_element() -> None:
    """``jhash`` is a function of the packet with an unknown seed: one element for a given
    connection, which one unknown (doubt, not chance)."""
    key = {"jhash": {"mod": 2, "seed": 0, "offset": 0, "expr": payload("ip", "saddr")}}
    out = one_rule([{"vmap": {"key": key, "data": aset([0, goto("a")], [1, goto("b")])}}])
    assert out.matched is None
    assert sorted(b.target or "" for b in out.branches) == ["a", "b"]
    assert all(b.uncertain and b.probability == 1.0 for b in out.branches)


# -- statements ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("stmt", "matched", "verdict"), [
    (ACCEPT, True, NftVerdict.ACCEPT),
    (DROP, True, NftVerdict.DROP),
    ({"reject": {"type": "tcp reset"}}, True, NftVerdict.REJECT),
    ({"continue": None}, True, NftVerdict.CONTINUE),
    (RETURN, True, NftVerdict.RETURN),
    (COUNTER, True, None),
    ({"log": {"prefix": "x "}}, True, None),
    ({"limit": {"rate": 3, "per": "second"}}, None, None),
    ({"quota": {"val": 10, "val_unit": "mbytes"}}, None, None),
    ({"xt": {"type": "match", "name": "addrtype"}}, None, None),
    ({"xt": None}, None, None),
    ({"fwd": {"dev": "eth0"}}, None, None),  # read by nft, not simulated: uncertain
])
def test_statement_kinds(stmt: dict[str, Any], matched: bool | None,
                         verdict: NftVerdict | None) -> None:
    out = one_rule([stmt])
    assert out.matched is matched
    if matched is not None:
        assert out.verdict is verdict
    else:
        assert len(out.branches) >= 1
        assert all(b.uncertain for b in out.branches)


def test_queue_is_an_uncertain_verdict() -> None:
    out = one_rule([{"queue": {"num": 1}}])
    assert out.verdict is NftVerdict.QUEUE
    assert out.uncertain


# An iptables-nft rule seen only in nft JSON: its xt target's arguments are not there. The
# outcome is never sure: one assumed ending (kept as a doubt) or several branches.
@pytest.mark.parametrize(("name", "endings"), [
    ("DNAT", [NftVerdict.ACCEPT]),
    ("MASQUERADE", [NftVerdict.ACCEPT]),
    ("REJECT", [NftVerdict.REJECT]),
    ("LOG", [None]),
    ("MARK", [None]),
    ("SOMETHING", [None, NftVerdict.ACCEPT, NftVerdict.DROP]),
])
def test_xt_target_is_never_sure(name: str, endings: list[NftVerdict | None]) -> None:
    out = one_rule([match(TCP_DPORT, 8080), {"xt": {"type": "target", "name": name}}],
                   fl=flow(dport=8080), hook="prerouting", priority=-100)
    outcomes = list(out.branches) if out.matched is None else [out]
    assert [o.verdict for o in outcomes] == endings
    assert all(o.matched is True for o in outcomes)
    assert all(any(f"xt target {name}" in u for u in o.uncertain) for o in outcomes)


@pytest.mark.parametrize(("name", "verdict"), [("DNAT", "accept"), ("LOG", "accept"),
                                                ("REJECT", "reject")])
def test_walk_keeps_the_doubt_of_a_one_option_xt_target(name: str, verdict: str) -> None:
    """walk_chain must carry a rule's doubt even when it has one option (the rule looks sure
    but rests on an assumption): ``xt target "DNAT"`` in a chain jumped to, then accept."""
    doc = ruleset("ip", {"pre": [[jump("docker")], [ACCEPT]],
                         "docker": [[match(TCP_DPORT, 8080),
                                     {"xt": {"type": "target", "name": name}}]]},
                  base={"pre": {"type": "nat", "hook": "prerouting", "prio": -100,
                                "policy": "accept"}})
    table = load_doc(doc).tables[0]
    ctable = compile_table(table)
    results = walk_chain(ctable, "pre", flow(dport=8080),
                         NftContext(host(), "prerouting", ctable, -100))
    assert [r.verdict.value for r in results] == [verdict]
    assert any(f"xt target {name}" in u for u in results[0].uncertain), results[0]
    # the same chain for a packet the rule does not match: nothing assumed
    sure = walk_chain(ctable, "pre", flow(dport=22), NftContext(host(), "prerouting", ctable,
                                                                -100))
    assert [(r.verdict.value, r.uncertain) for r in sure] == [("accept", ())]


@pytest.mark.parametrize(("stmt", "packet", "expected"), [
    ({"dnat": {"addr": "172.17.0.2", "port": 80}}, {"dport": 8080}, ("172.17.0.2", 80)),
    ({"dnat": {"family": "ip", "addr": "172.17.0.2"}}, {"dport": 8080}, ("172.17.0.2", 8080)),
    ({"dnat": {"addr": rng("172.17.0.2", "172.17.0.9"), "port": rng(80, 90)}}, {},
     ("172.17.0.2", 80)),
    ({"dnat": {"family": "ip", "addr": {"map": {"key": TCP_DPORT, "data": aset(
        [8080, concat("172.17.0.3", 8000)])}}}}, {"dport": 8080}, ("172.17.0.3", 8000)),
    ({"redirect": {"port": 3128}}, {}, ("192.0.2.2", 3128)),
    ({"dnat": {"family": "ip6", "addr": "fd00::2"}}, {"dport": 8080}, ("192.0.2.2", 8080)),
])
def test_destination_nat(stmt: dict[str, Any], packet: dict[str, Any],
                         expected: tuple[str, int]) -> None:
    out = one_rule([stmt], fl=flow(**packet), hook="prerouting", priority=-100)
    assert (str(out.flow.dst), out.flow.dport) == expected
    if "ip6" not in str(stmt):
        assert out.verdict is NftVerdict.ACCEPT
        assert out.flow.dnat
    else:
        assert out.verdict is None  # dnat ip6 to … does nothing to an IPv4 packet


def test_dnat_map_miss_ends_the_rule() -> None:
    stmt = {"dnat": {"family": "ip", "addr": {"map": {"key": TCP_DPORT, "data": aset(
        ["8080", "172.17.0.3"])}}}}
    out = one_rule([stmt], fl=flow(dport=9999), hook="prerouting")
    assert out.matched is False
    assert not out.flow.dnat


@pytest.mark.parametrize(("stmt", "expected"), [
    ({"snat": {"addr": "192.0.2.2"}}, "192.0.2.2"),
    ({"masquerade": None}, "192.0.2.2"),
    ({"masquerade": {"flags": "fully-random"}}, "192.0.2.2"),
    ({"snat": {"family": "ip", "addr": prefix("192.0.2.0", 24)}}, "192.0.2.0"),  # first
])
def test_source_nat(stmt: dict[str, Any], expected: str) -> None:
    fl = replace(flow(src="172.17.0.2", dst="203.0.113.9", in_interface="docker0"),
                 out_iface="eth0")
    out = one_rule([stmt], fl=fl, hook="postrouting", priority=100)
    assert out.verdict is NftVerdict.ACCEPT
    assert str(out.flow.src) == expected
    assert out.flow.snat


def test_netmap_prefix_keeps_host_bits() -> None:
    stmt = {"snat": {"family": "ip", "addr": prefix("10.99.0.0", 16),
                     "type_flags": ["prefix"]}}
    fl = replace(flow(src="172.17.3.4", dst="203.0.113.9", in_interface="docker0"),
                 out_iface="eth0")
    assert str(one_rule([stmt], fl=fl, hook="postrouting").flow.src) == "10.99.3.4"


# -- chain walks --------------------------------------------------------------------------------


def _walk(doc: dict[str, Any], chain: str = "in", **packet: Any) -> list[tuple[str, tuple[
        str, ...]]]:
    rs = load_doc(doc)
    table = rs.tables[0]
    base = table.chain(chain)
    assert base is not None
    ctable = compile_table(table)
    ctx = NftContext(host(), base.hook or "input", ctable, base.priority or 0)
    return [(r.verdict.value, tuple(s.text if s.index is None and s.text else s.verdict
                                    for s in r.steps))
            for r in walk_chain(ctable, chain, flow(**packet), ctx)]


_BASE = {"in": {"type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}


def test_jump_returns_goto_does_not_and_policy_applies() -> None:
    doc = ruleset("inet", {
        "in": [[jump("a")], [match(TCP_DPORT, 80), goto("b")], [ACCEPT]],
        "a": [[match(TCP_DPORT, 22), DROP], [RETURN]],
        "b": [[match(IP_SADDR, "10.0.0.1"), ACCEPT]],
    }, base=_BASE)
    assert _walk(doc, dport=22) == [("drop", ("jump a", "drop"))]
    assert _walk(doc, dport=443) == [("accept", ("jump a", "return", "accept"))]
    # goto b: b ends without a verdict, and nothing returns to "in": the policy applies
    assert _walk(doc, dport=80) == [("drop", ("jump a", "return", "goto b", "policy drop"))]


def test_walk_forks_on_uncertain_rules() -> None:
    doc = ruleset("inet", {"in": [[{"limit": {"rate": 1, "per": "second"}}, ACCEPT]]},
                  base=_BASE)
    results = _walk(doc)
    assert sorted(v for v, _ in results) == ["accept", "drop"]


def test_jump_loop_overflows_the_stack() -> None:
    doc = ruleset("inet", {"in": [[jump("a")]], "a": [[jump("a")]]}, base=_BASE)
    assert _walk(doc)[0][0] == "drop"


# -- set lookups: bisect index vs brute force ---------------------------------------------------


def _brute(elements: list[tuple[int, int]], value: int) -> int | None:
    for pos, (low, high) in enumerate(elements):
        if low <= value <= high:
            return pos
    return None


_intervals = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 300)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(_intervals, st.lists(st.integers(0, (1 << 16) + 400), min_size=1, max_size=30))
def test_interval_lookup_equals_brute_force(raw: list[tuple[int, int]], probes: list[int]
                                            ) -> None:
    # nft interval sets never overlap (the kernel refuses overlaps): keep the disjoint ones
    disjoint: list[tuple[int, int]] = []
    for low, width in raw:
        high = low + width
        if all(high < lo or low > hi for lo, hi in disjoint):
            disjoint.append((low, high))
    elements = [Element(key={"range": (low, high)} if low != high else low)
                for low, high in disjoint]
    index = build_index(elements, ("inet_service",))
    for value in probes:
        pos = index.find((value,))
        assert pos == _brute(disjoint, value)


_ips = st.integers(0, (1 << 32) - 1)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_ips, st.integers(16, 32), st.integers(0, 3)), max_size=40),
       st.lists(st.tuples(_ips, st.integers(0, 3)), min_size=1, max_size=20))
def test_concatenated_prefix_lookup_equals_brute_force(
        raw: list[tuple[int, int, int]], probes: list[tuple[int, int]]) -> None:
    protos = ("tcp", "udp", "icmp", "sctp")
    elements = []
    brute: list[tuple[Interval, int]] = []
    for addr, length, proto in raw:
        net = ipaddress.ip_network((addr, length), strict=False)
        key = concat(prefix(str(net.network_address), length), protos[proto])
        elements.append(Element(key=_frozen(key)))
        brute.append((Interval(int(net.network_address), int(net.broadcast_address)),
                      normalise(protos[proto], "inet_proto")))  # type: ignore[arg-type]
    index = build_index(elements, ("ipv4_addr", "inet_proto"))
    for addr, proto in probes:
        proto_n = normalise(protos[proto], "inet_proto")
        assert isinstance(proto_n, int)
        expected = next((pos for pos, (iv, p) in enumerate(brute)
                         if iv.low <= addr <= iv.high and p == proto_n), None)
        assert index.find((addr, proto_n)) == expected


def _frozen(value: Any) -> Any:
    from natlens.nft.json_reader import freeze
    return freeze(value)


def test_exact_lookup_of_100k_elements_does_not_expand() -> None:
    elements = [Element(key=_frozen(concat(str(ipaddress.IPv4Address(0x0A000000 + i)), "tcp",
                                           80))) for i in range(100_000)]
    index = build_index(elements, ("ipv4_addr", "inet_proto", "inet_service"))
    assert len(index.exact) == 100_000
    assert index.find((0x0A000000 + 99_999, 6, 80)) == 99_999
    assert index.find((0x0A000000 + 99_999, 17, 80)) is None


# -- kernel differential ------------------------------------------------------------------------

KERNEL_SEEDS = range(24)


@pytest.fixture(scope="module")
def nft_lab() -> Iterator[dict[str, str]]:
    yield from nft_kernel.lab()


def _simulate(doc: dict[str, Any], h: Host, fl: Flow) -> tuple[set[tuple[str, int]], bool]:
    """Walk the router's base chains in hook order (raw -300, nat -100 for a new connection,
    input 0, the observer 10): (rules that matched, whether the observer saw the packet)."""
    rs = load_doc(doc)
    matched: set[tuple[str, int]] = set()
    for table_name, chain, hook in (("t", "raw", "prerouting"), ("t", "nat", "prerouting"),
                                    ("t", "in", "input"), ("obs", "seen", "input")):
        table = rs.table("inet", table_name)
        assert table is not None
        base = table.chain(chain)
        assert base is not None
        assert base.priority is not None
        ctable = compile_table(table)
        results = walk_chain(ctable, chain, fl, NftContext(h, hook, ctable, base.priority))
        assert len(results) == 1, [r.uncertain for r in results]
        (result,) = results
        if table_name == "t":
            matched |= {(s.chain, s.index) for s in result.steps if s.index is not None
                        and any(e.startswith("counter") for e in s.effects)}
        if table_name == "obs":
            return matched, bool(result.steps)
        if result.verdict is not NftVerdict.ACCEPT:
            return matched, False
        fl = result.flow
    raise AssertionError("unreachable")


def _kernel_counters(listing: str) -> tuple[set[tuple[str, int]], bool]:
    rs = loads(listing, source="nft -j list ruleset")
    moved: set[tuple[str, int]] = set()
    seen = False
    for rule in rs.rules():
        packets = 0
        for stmt in rule.statements:
            if stmt.kind == "counter" and isinstance(stmt.body, Mapping):
                count = stmt.body.get("packets", 0)
                packets += count if isinstance(count, int) else 0
        if packets and rule.table == "t":
            moved.add((rule.chain, rule.index))
        if packets and rule.table == "obs" and rule.chain == "seen":
            seen = True
    return moved, seen


@pytest.mark.kernel
@pytest.mark.parametrize("seed", KERNEL_SEEDS)
def test_kernel_agrees_on_random_rulesets(nft_lab: dict[str, str], seed: int) -> None:
    """Load a random ruleset with ``nft -j -f`` into a namespace, send UDP packets (three
    IPv4, one IPv6 through the same inet tables), compare every rule counter and whether the
    packet got through with the evaluator's walk."""
    doc = nft_kernel.random_ruleset(seed)
    rtr = nft_lab["rtr"]
    h = Host.from_json(json.loads(run("ip", "-j", "addr", "show", ns=rtr)),
                       json.loads(run("ip", "-j", "route", "show", ns=rtr)),
                       routes6=json.loads(run("ip", "-j", "-6", "route", "show",
                                                         ns=rtr)))
    rnd = random.Random(seed)
    for k in range(4):
        if k == 3:  # IPv6 through the same inet tables: ip matches never match it
            src, dst = rnd.choice(nft_kernel.SOURCES6), rnd.choice(nft_kernel.LOCAL6)
        else:
            src, dst = rnd.choice(nft_kernel.SOURCES), rnd.choice(nft_kernel.LOCAL)
        sport, dport = 20000 + seed * 10 + k, rnd.choice(nft_kernel.PORTS)
        listing = nft_kernel.load_and_send(nft_lab, doc, src=src, dst=dst, sport=sport,
                                           dport=dport)
        kernel = _kernel_counters(listing)
        fl = Flow.from_packet(Packet(in_interface="eth0", src=src, dst=dst, proto="udp",
                                     sport=sport, dport=dport))
        simulated = _simulate(doc, h, fl)
        assert simulated == kernel, (
            f"seed {seed}, udp {src}:{sport} -> {dst}:{dport}\n"
            f"kernel (moved, accepted): {kernel}\nnatlens: {simulated}\n"
            + "\n".join(r.chain + ": " + r.text for r in load_doc(doc).rules()))


# -- real rulesets from the corpus ------------------------------------------------------------


def _corpus_walk(corpus: Path, relative: str, table: tuple[str, str], chain: str, fl: Flow,
                 *, h: Host) -> list[tuple[str, str]]:
    rs = nft_load(corpus / "nftables" / relative)
    found = rs.table(*table)
    assert found is not None
    base = found.chain(chain)
    assert base is not None
    assert base.hook is not None
    ctable = compile_table(found)
    results = walk_chain(ctable, chain, fl, NftContext(h, base.hook, ctable, base.priority or 0))
    return [(r.verdict.value, r.steps[-1].text) for r in results]


_FIREWALLD = "generated-here/firewalld-1.3.3/firewalld-1.3.3.ruleset.json"


@pytest.mark.parametrize(("packet", "verdict", "text"), [
    ({"dport": 22}, "accept", "tcp dport 22 accept"),             # service ssh, zone public
    ({"dport": 8443}, "accept", "tcp dport 8443 accept"),         # --add-port 8443/tcp
    ({"dport": 9999}, "reject", "reject with icmpx admin-prohibited"),
    ({"dport": 9999, "src": "198.51.100.200"}, "reject", "reject with icmpx admin-prohibited"),
    ({"dport": 9999, "in_interface": "docker0", "src": "172.17.0.2"}, "accept", "accept"),
    ({"dport": 9999, "state": "established"}, "accept",
     "ct state { established, related } accept"),
])
def test_firewalld_zones(corpus: Path, packet: dict[str, Any], verdict: str, text: str) -> None:
    """firewalld 1.3.3: eth0 and 198.51.100.128/25 in zone public, docker0 in trusted."""
    assert _corpus_walk(corpus, _FIREWALLD, ("inet", "firewalld"), "filter_INPUT",
                        flow(**packet), h=host()) == [(verdict, text)]


_KUBE = "kube-proxy-nftables/overall-nftables-rules.loaded-by-nft-1.0.6.json"


def test_kube_proxy_service_dnat_and_firewall(corpus: Path) -> None:
    h = host()
    [(verdict, _)] = _corpus_walk(corpus, _KUBE, ("ip", "kube-proxy"), "nat-prerouting",
                                  flow(dst="172.30.0.41", dport=80), h=h)
    assert verdict == "accept"
    rs = nft_load(corpus / "nftables" / _KUBE)
    table = rs.table("ip", "kube-proxy")
    assert table is not None
    ctable = compile_table(table)
    [result] = walk_chain(ctable, "nat-prerouting", flow(dst="172.30.0.41", dport=80),
                          NftContext(h, "prerouting", ctable, -100))
    assert (str(result.flow.dst), result.flow.dport) == ("10.180.0.1", 80)
    # LoadBalancerSourceRanges: 5.6.7.8 only from 203.0.113.0/25
    assert _corpus_walk(corpus, _KUBE, ("ip", "kube-proxy"), "filter-prerouting-pre-dnat",
                        flow(dst="5.6.7.8", dport=80), h=h)[0][0] == "drop"
    assert _corpus_walk(corpus, _KUBE, ("ip", "kube-proxy"), "filter-prerouting-pre-dnat",
                        flow(src="203.0.113.9", dst="5.6.7.8", dport=80), h=h)[0][0] == "accept"
    # a service without endpoints is rejected in filter-forward
    forward = replace(flow(dst="172.30.0.46", dport=80), out_iface="eth0")
    rejected = _corpus_walk(corpus, _KUBE, ("ip", "kube-proxy"), "filter-forward", forward, h=h)
    assert rejected[0][0] == "reject"


def _docker_host() -> Host:
    addrs = [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
        {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "198.51.100.2",
                                          "prefixlen": 24, "broadcast": "198.51.100.255"}]},
        {"ifname": "bridge1", "addr_info": [{"family": "inet", "local": "192.0.2.1",
                                             "prefixlen": 24, "broadcast": "192.0.2.255"}]},
    ]
    routes = [{"dst": "198.51.100.0/24", "dev": "eth0"}, {"dst": "192.0.2.0/24", "dev": "bridge1"}]
    return Host.from_json(addrs, routes)


_DOCKER = "docker-v29-nftables/usernet-portmap.loaded-by-nft-1.0.6.json"


def test_docker_29_published_port(corpus: Path) -> None:
    """Docker 29's nftables backend: 8080 published to c1 192.0.2.2:80 on bridge1."""
    h = _docker_host()
    table = ("ip", "docker-bridges")
    outside = {"src": "203.0.113.7", "in_interface": "eth0"}
    assert _corpus_walk(corpus, _DOCKER, table, "raw-PREROUTING",
                        flow(dst="192.0.2.2", dport=80, **outside), h=h) == [
        ("drop", 'ip daddr 192.0.2.2 iifname != "bridge1" counter packets 0 bytes 0 drop '
                 'comment "DROP DIRECT ACCESS"')]
    rs = nft_load(corpus / "nftables" / _DOCKER)
    found = rs.table(*table)
    assert found is not None
    ctable = compile_table(found)
    [nat] = walk_chain(ctable, "nat-PREROUTING", flow(dst="198.51.100.2", dport=8080, **outside),
                       NftContext(h, "prerouting", ctable, -100))
    assert (str(nat.flow.dst), nat.flow.dport) == ("192.0.2.2", 80)
    published = replace(nat.flow, out_iface="bridge1")
    assert _corpus_walk(corpus, _DOCKER, table, "filter-FORWARD", published, h=h)[0][0] == "accept"
    unpublished = replace(flow(dst="192.0.2.2", dport=81, **outside), out_iface="bridge1")
    assert _corpus_walk(corpus, _DOCKER, table, "filter-FORWARD", unpublished, h=h) == [
        ("drop", 'counter packets 0 bytes 0 drop comment "UNPUBLISHED PORT DROP"')]
