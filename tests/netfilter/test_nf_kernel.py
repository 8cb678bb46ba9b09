"""The simulator against the kernel: replay golden cases in network namespaces, compare counters.

Three namespaces: a client (198.51.100.7 on its eth0), a router that loads the case's rules with
iptables-restore (eth0 192.0.2.2/24 + 198.51.100.1/24, docker0 172.17.0.1/16, forwarding on) and
a silent peer behind docker0 (no address: forwarded packets pass POSTROUTING, then die in ARP).
The client sends the case's packet; every rule whose packet counter moved must be a rule the
simulated trace (on the router's own ``ip -j addr``/``ip -j route``) says the packet matched, and
the other way round. Docker's documented layouts (v28.5.2, v29) are replayed the same way.
Needs root (``kernel`` marker): skipped otherwise, failing when ``CI=true``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netns_helpers import namespaces, needs_root, run, veth
from nf_helpers import GOLDEN, load_case, packet

from natlens.netfilter import Host, Packet, Simulator, StepKind, Trace
from natlens.netfilter.trace import Step
from natlens.parse.save import parse_save
from natlens.serialize import to_save

REPLAYED = (
    "docker-seed-published-port",
    "docker-seed-direct-to-container-dropped",
    "jump-returns-goto-does-not",
    "user-chain-end-returns",
    "return-in-builtin-applies-policy",
    "connmark-save-restore",
    "notrack-skips-nat",
    "accept-ends-table-only",
    "log-is-not-terminating",
    "dnat-ranges-take-first",
    "dnat-address-keeps-port",
    "snat-in-input",
    "conntrack-dnat-state-and-origdst",
)

_SEND = r"""
import socket, sys
proto, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
sport, dport = int(sys.argv[4]), int(sys.argv[5])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport))
s.settimeout(0.3)
try:
    if proto == "tcp":
        s.connect((dst, dport))
    else:
        s.sendto(b"natlens", (dst, dport))
except OSError:
    pass
"""


GOLDEN_LAB: dict[str, list[Any]] = {
    "rtr": [["addr", "add", "192.0.2.2/24", "dev", "eth0"],
            ["addr", "add", "198.51.100.1/24", "dev", "eth0"],
            ["addr", "add", "172.17.0.1/16", "dev", "docker0"]],
    "cli": [["addr", "add", "198.51.100.7/24", "dev", "eth0"],
            ["route", "add", "default", "via", "198.51.100.1"]],
    "silent": ["docker0"],
}
"""The golden cases' host: eth0 192.0.2.2/24 (+ the client's 198.51.100.0/24), docker0."""

DOCKER_LAB: dict[str, list[Any]] = {
    "rtr": [["addr", "add", "198.51.100.2/24", "dev", "eth0"],
            ["addr", "add", "203.0.113.1/24", "dev", "eth0"],
            ["addr", "add", "172.17.0.1/16", "dev", "docker0"],
            ["addr", "add", "192.0.2.1/24", "dev", "bridge1"]],
    "cli": [["addr", "add", "203.0.113.7/24", "dev", "eth0"],
            ["route", "add", "default", "via", "203.0.113.1"]],
    "silent": ["docker0", "bridge1"],
}
"""Docker's iptablesdoc daemon: eth0 198.51.100.2, docker0, bridge1 192.0.2.0/24 (c1 .2)."""


def _lab(plan: dict[str, list[Any]]) -> Iterator[dict[str, str]]:
    needs_root("iptables-restore", "iptables")
    with namespaces("nlc", "nlr", "nlk") as (cli, rtr, ctr):
        veth(rtr, "eth0", cli, "eth0")
        for n, dev in enumerate(plan["silent"]):  # peers without address: ARP goes unanswered
            veth(rtr, dev, ctr, f"p{n}")
        for ns in (rtr, cli):
            run("ip", "link", "set", "lo", "up", ns=ns)
        for cmd in plan["rtr"]:
            run("ip", *cmd, ns=rtr)
        for cmd in plan["cli"]:
            run("ip", *cmd, ns=cli)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=rtr)
        yield {"cli": cli, "rtr": rtr, "ctr": ctr}


@pytest.fixture
def lab() -> Iterator[dict[str, str]]:
    yield from _lab(GOLDEN_LAB)


@pytest.fixture
def docker_lab() -> Iterator[dict[str, str]]:
    yield from _lab(DOCKER_LAB)


def _replay(names: dict[str, str], rules: str, pkt: Packet) -> tuple[set[tuple[str, str, int]],
                                                                     Trace]:
    """Load ``rules`` into the router, simulate ``pkt`` there, send it: (moved counters, trace)."""
    rtr, cli = names["rtr"], names["cli"]
    run("iptables-restore", ns=rtr, stdin=rules)
    host = Host.from_json(json.loads(run("ip", "-j", "addr", "show", ns=rtr)),
                          json.loads(run("ip", "-j", "route", "show", ns=rtr)))
    trace = Simulator(host, parse_save(rules)).trace(pkt)
    run(sys.executable, "-c", _SEND, pkt.proto, str(pkt.src), str(pkt.dst), str(pkt.sport),
         str(pkt.dport), ns=cli)
    time.sleep(0.05)
    return _moved(run("iptables-save", "-c", ns=rtr)), trace


def _simulated(steps: tuple[Step, ...]) -> set[tuple[str, str, int]]:
    return {(s.table or "", s.chain or "", s.rule or 0) for s in steps
            if s.kind is StepKind.RULE}


def _moved(save_text: str) -> set[tuple[str, str, int]]:
    rs = parse_save(save_text, source="kernel")
    return {(t.name.value, c.name, i)
            for t in rs for c in t for i, r in enumerate(c.rules, 1)
            if r.counters is not None and r.counters.packets > 0}


@pytest.mark.kernel
@pytest.mark.parametrize("name", REPLAYED)
def test_kernel_counters_agree_with_trace(lab: dict[str, str], name: str) -> None:
    case = load_case(GOLDEN / f"{name}.json")
    pkt = packet(case["packet"])
    assert (pkt.in_interface, str(pkt.src)) == ("eth0", "198.51.100.7")
    kernel, trace = _replay(lab, "\n".join(case["rules"]) + "\n", pkt)
    assert kernel, "no rule counter moved: the packet did not reach the router"
    # a random kernel choice (a NAT address range) agrees when it is one of natlens's branches
    outcomes = [b.steps for b in trace.branches] or [trace.steps]
    assert any(kernel == _simulated(steps) for steps in outcomes), \
        f"kernel counters: {sorted(kernel)}\n{trace}"


DOCKER_REPLAYS = [
    (version, scenario, dst, dport, verdict)
    for version in ("iptablesdoc-v28.5.2", "iptablesdoc-docker-v29.7.2")
    for scenario, dst, dport, verdict in (
        ("usernet-portmap", "198.51.100.2", 8080, "ACCEPT"),  # published: DNAT + DOCKER ACCEPT
        ("usernet-portmap", "192.0.2.2", 80, "DROP"),  # routed straight to c1: raw DROP
        ("usernet-portmap-natunprot", "192.0.2.2", 80, "ACCEPT"),  # nat-unprotected
        ("usernet-portmap-noicc", "198.51.100.2", 8080, "ACCEPT"),
        ("usernet-portmap-lo", "198.51.100.2", 8080, "ACCEPT"),  # not DNAT'd: local
    )
]


@pytest.mark.kernel
@pytest.mark.parametrize("replay", DOCKER_REPLAYS, ids=[f"{v[13:]}-{s}-{d}:{p}"
                                                         for v, s, d, p, _ in DOCKER_REPLAYS])
def test_kernel_agrees_on_docker_doc_layouts(docker_lab: dict[str, str], corpus: Path,
                                             replay: tuple[str, str, str, int, str]) -> None:
    from test_nf_corpus import docker_ruleset

    version, scenario, dst, dport, verdict = replay
    rules = to_save(docker_ruleset(corpus, version, scenario), counters=False)
    pkt = Packet(in_interface="eth0", src="203.0.113.7", dst=dst, sport=40000, dport=dport)
    kernel, trace = _replay(docker_lab, rules, pkt)
    assert trace.verdict.value == verdict, str(trace)
    assert kernel == _simulated(trace.steps), f"kernel counters: {sorted(kernel)}\n{trace}"


def test_replayed_cases_exist() -> None:
    assert all((GOLDEN / f"{n}.json").is_file() for n in REPLAYED)
    assert Path(__file__).name.startswith("test_nf_")
