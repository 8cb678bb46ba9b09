"""Kernel differential helpers: random nft rulesets (JSON), a two-namespace lab, counters.

The router namespace holds ``inet t`` with a prerouting chain before conntrack (raw, -300:
``ct state`` reads invalid there), a nat prerouting chain (DNAT to its second address), an
input filter chain with regular chains, named sets, a verdict map and marks, and an observer
table ``inet obs`` (input, priority 10, ``udp counter``) that counts the packets every earlier
base chain accepted (its output chain only makes the kernel track IPv6 connections too). Every
generated rule puts ``counter`` right after its matches, so a rule's counter moves exactly when
all its matches held; each base chain starts with ``meta l4proto != udp accept`` so that
neighbour discovery and other background packets touch no counter.

Conntrack is enabled per namespace and family on demand (``nf_ct_netns_get``): a ``dnat ip``
statement asks for IPv4 only, so without the observer's ct expression IPv6 packets would pass
untracked and skip the nat chains. Real hosts (firewalld, Docker) always track both.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

from netns_helpers import chained, needs_root, run
from nft_build import (
    ACCEPT,
    COUNTER,
    DROP,
    RETURN,
    aset,
    concat,
    ct,
    goto,
    jump,
    match,
    meta,
    payload,
    prefix,
    rng,
)

J = dict[str, Any]

SOURCES = ("198.51.100.7", "198.51.100.8", "198.51.100.9")
LOCAL = ("198.51.100.1", "192.0.2.2")
SOURCES6 = ("2001:db8:1::7", "2001:db8:1::8")
LOCAL6 = ("2001:db8:1::1", "2001:db8:2::2")
PORTS = (22, 53, 80, 5000, 6000, 7000)

SEND = r"""
import socket, sys
src, dst, sport, dport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport))
s.sendto(b"natlens", (dst, dport))
"""


_EXCLUSIVE = ('"tcp"', '"ip6"', '"ipv6"')
"""Matches nft refuses to combine with udp/ip ones in a rule ("conflicting protocols")."""


def _matches(rnd: random.Random, hook: str) -> list[J]:
    chosen: list[J] = []
    for _ in range(rnd.randint(0, 2)):
        candidate = _match_pool(rnd, hook)
        exclusive = any(tag in json.dumps(candidate) for tag in _EXCLUSIVE)
        if exclusive and chosen:
            continue
        chosen.append(candidate)
        if exclusive:
            break
    return chosen


def _match_pool(rnd: random.Random, hook: str) -> J:
    udp_dport = payload("udp", "dport")
    saddr = payload("ip", "saddr")
    choices: list[J] = [
        match(saddr, rnd.choice(SOURCES)),
        match(saddr, rnd.choice(SOURCES), "!="),
        match(saddr, prefix("198.51.100.8", 31)),
        match(saddr, aset(*rnd.sample(SOURCES, 2))),
        match(udp_dport, rnd.choice(PORTS)),
        match(udp_dport, rng(50, 5500)),
        match(udp_dport, aset(*rnd.sample(PORTS, 3))),
        match(udp_dport, rnd.choice(PORTS), "!="),
        match(payload("tcp", "dport"), 80, "!="),          # never true for UDP
        match(payload("ip6", "saddr"), prefix("::", 0)),   # never true for IPv4
        match(payload("ip6", "saddr"), prefix("2001:db8:1::", 64)),
        match(meta("nfproto"), "ipv6"),
        match(meta("l4proto"), rnd.choice(("udp", "tcp"))),
        match(meta("iifname"), rnd.choice(("eth0", "eth*", "docker0"))),
        match({"&": [meta("mark"), 0xF]}, rnd.choice((0, 1, 2))),
        match(concat(saddr, udp_dport), "@pairs"),
        match(payload("ip", "daddr"), "@locals"),
        match(ct("state"), rnd.choice(("new", "invalid", ["established", "related"])), "in"),
        match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"),
    ]
    if hook == "input":
        choices.append(match(ct("status"), "dnat", rnd.choice(("in", "!"))))
    return rnd.choice(choices)


def _rule(rnd: random.Random, hook: str, targets: tuple[str, ...], *, regular: bool) -> list[J]:
    expr = _matches(rnd, hook)
    expr.append(COUNTER)
    action = rnd.choice(("accept", "drop", "none", "none", "mark", "jump", "goto", "vmap",
                         "return"))
    if action == "accept":
        expr.append(ACCEPT)
    elif action == "drop":
        expr.append(DROP)
    elif action == "mark":
        expr.append({"mangle": {"key": meta("mark"), "value": rnd.choice((1, 2, 0x11))}})
    elif action in ("jump", "goto") and targets:
        expr.append((jump if action == "jump" else goto)(rnd.choice(targets)))
    elif action == "vmap" and targets and not any(
            tag in json.dumps(expr) for tag in _EXCLUSIVE):
        expr.append({"vmap": {"key": payload("udp", "dport"), "data": aset(
            [rnd.choice(PORTS), jump(rnd.choice(targets))], [rnd.choice(PORTS), DROP],
            [rnd.choice(PORTS), ACCEPT])}})
    elif action == "return" and regular:
        expr.append(RETURN)
    return _dedupe_vmap(expr)


def _dedupe_vmap(expr: list[J]) -> list[J]:
    """A literal map may not repeat a key (nft refuses it): keep the first of each."""
    for stmt in expr:
        if "vmap" in stmt:
            seen: set[int] = set()
            kept = []
            for key, value in stmt["vmap"]["data"]["set"]:
                if key not in seen:
                    seen.add(key)
                    kept.append([key, value])
            stmt["vmap"]["data"]["set"] = kept
    return expr


def random_ruleset(seed: int) -> J:
    """A random ``inet t`` ruleset (see the module docstring) and the observer table."""
    rnd = random.Random(seed)
    fam, tab = "inet", "t"
    chains: dict[str, J] = {
        "raw": {"type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"},
        "nat": {"type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"},
        "in": {"type": "filter", "hook": "input", "prio": 0,
               "policy": rnd.choice(("accept", "drop"))},
        "x": {}, "y": {},
    }
    rules: dict[str, list[list[J]]] = {
        "raw": [_rule(rnd, "prerouting", (), regular=False) for _ in range(rnd.randint(0, 2))],
        "nat": [[match(payload("udp", "dport"), 5000), COUNTER,
                 {"dnat": {"family": "ip", "addr": "192.0.2.2", "port": 6000}}]]
        if rnd.random() < 0.6 else [],
        "in": [_rule(rnd, "input", ("x", "y"), regular=False) for _ in range(rnd.randint(2, 6))],
        "x": [_rule(rnd, "input", ("y",), regular=True) for _ in range(rnd.randint(1, 3))],
        "y": [_rule(rnd, "input", (), regular=True) for _ in range(rnd.randint(1, 3))],
    }
    # Only the test's UDP datagrams may touch the rules: neighbour discovery, MLD and other
    # background packets leave each base chain at once.
    guard = [match(meta("l4proto"), "udp", "!="), ACCEPT]
    for name in ("raw", "nat", "in"):
        rules[name].insert(0, guard)
    items: list[J] = [{"table": {"family": fam, "name": tab}}]
    for name, props in chains.items():
        items.append({"chain": {"family": fam, "table": tab, "name": name, **props}})
    items.append({"set": {"family": fam, "table": tab, "name": "pairs",
                          "type": ["ipv4_addr", "inet_service"],
                          "elem": [concat(rnd.choice(SOURCES), rnd.choice(PORTS))
                                   for _ in range(3)]}})
    items.append({"set": {"family": fam, "table": tab, "name": "locals", "type": "ipv4_addr",
                          "flags": ["interval"], "elem": [prefix("192.0.2.0", 24)]}})
    for name, chain_rules in rules.items():
        for expr in chain_rules:
            items.append({"rule": {"family": fam, "table": tab, "chain": name, "expr": expr}})
    items += [
        {"table": {"family": "inet", "name": "obs"}},
        {"chain": {"family": "inet", "table": "obs", "name": "seen", "type": "filter",
                   "hook": "input", "prio": 10, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "obs", "chain": "seen",
                  "expr": [match(meta("l4proto"), "udp"), COUNTER]}},
        # conntrack is enabled per netns and family on demand (nf_ct_netns_get): ``dnat ip``
        # asks for IPv4 only. A ct expression in an inet table asks for both, as on real hosts
        # (firewalld, Docker), where IPv6 packets are tracked too.
        {"chain": {"family": "inet", "table": "obs", "name": "wake", "type": "filter",
                   "hook": "output", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "obs", "chain": "wake",
                  "expr": [match(ct("state"), "untracked", "in")]}},
    ]
    return {"nftables": items}


def lab() -> Iterator[dict[str, str]]:
    """Namespaces ``cli`` (198.51.100.7-9, 2001:db8:1::7-8) and ``rtr`` (198.51.100.1,
    192.0.2.2, 2001:db8:1::1, 2001:db8:2::2) on a veth."""
    needs_root("nft", "nft")
    with chained(("nftc", "eth0"), ("nftr", "eth0")) as (cli, rtr):
        run("ip", "addr", "add", "198.51.100.1/24", "dev", "eth0", ns=rtr)
        run("ip", "addr", "add", "192.0.2.2/24", "dev", "eth0", ns=rtr)
        run("ip", "addr", "add", "2001:db8:1::1/64", "dev", "eth0", "nodad", ns=rtr)
        run("ip", "addr", "add", "2001:db8:2::2/64", "dev", "eth0", "nodad", ns=rtr)
        for src in SOURCES:
            run("ip", "addr", "add", f"{src}/24", "dev", "eth0", ns=cli)
        for src in SOURCES6:
            run("ip", "addr", "add", f"{src}/64", "dev", "eth0", "nodad", ns=cli)
        run("ip", "route", "add", "192.0.2.0/24", "via", "198.51.100.1", ns=cli)
        run("ip", "-6", "route", "add", "2001:db8:2::/64", "via", "2001:db8:1::1", ns=cli)
        for dst in (*LOCAL, *LOCAL6):  # resolve neighbours before the first test datagram
            src = SOURCES6[0] if ":" in dst else SOURCES[0]
            run(sys.executable, "-c", SEND, src, dst, "9", "9", ns=cli)
        time.sleep(0.3)
        yield {"cli": cli, "rtr": rtr}


def load_and_send(names: dict[str, str], doc: J, *, src: str, dst: str, sport: int,
                  dport: int) -> str:
    """Load ``doc`` into the router (fresh), send one UDP datagram, return ``nft -j list``."""
    rtr, cli = names["rtr"], names["cli"]
    run("nft", "flush", "ruleset", ns=rtr)
    run("nft", "-j", "-f", "-", ns=rtr, stdin=json.dumps(doc))
    run(sys.executable, "-c", SEND, src, dst, str(sport), str(dport), ns=cli)
    time.sleep(0.05)
    return run("nft", "-j", "list", "ruleset", ns=rtr)
