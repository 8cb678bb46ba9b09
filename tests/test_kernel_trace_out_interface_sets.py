"""An nft set of output interface names on a path whose output interface the snapshot lacks:
each branch natlens gives is what the kernel does for one interface.

A router forwards a UDP datagram to 1.1.1.1. Its ``table ip t`` (forward, priority -10) sends
``oifname { "dk0", "br-1" }`` to chain ``inner`` (``dk0`` dropped, ``br-1`` accepted, a final
drop no interface can reach); iptables' filter FORWARD (priority 0) drops ``-o br-1``; an
observer chain in postrouting counts what leaves. natlens traces the datagram on the router's
rules without its routes (the output interface unknown): one branch per reading of the
interface (dk0, br-1, neither). The kernel then routes 1.1.1.1 out of each of dk0, br-1 and a
third interface in turn, and the outcome it gives for each (read from the rule counters) must
be the outcome of the branch reading that interface, and no branch may be left over.

Needs root (``kernel`` marker). About 3 s.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from netns_helpers import chained, needs_root, run

from natlens.model import Family
from natlens.netfilter import Host, Packet, Simulator
from natlens.nft import loads as nft_loads
from natlens.parse import parse_save

pytestmark = pytest.mark.kernel

_NFT = """table ip t {
    chain forward {
        type filter hook forward priority -10; policy accept;
        oifname { "dk0", "br-1" } jump inner
    }
    chain inner {
        oifname "dk0" counter drop
        oifname "br-1" counter accept
        counter drop
    }
}
table ip obs {
    chain post {
        type filter hook postrouting priority 300; policy accept;
        udp dport 443 counter
    }
}
"""

_IPTABLES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -o br-1 -j DROP
COMMIT
"""

_SEND = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.64.1.2", 40000))
s.sendto(b"x", ("1.1.1.1", 443))
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[str, str]]:
    """(client, router): the router has ``rc`` towards the client and dk0, br-1, up0 (veth
    pairs of its own: a datagram sent out of one waits for a neighbour that never answers)."""
    needs_root("nft", "nftables")
    needs_root("iptables-restore", "iptables")
    with chained(("nlo-c-", "c0"), ("nlo-r-", "rc")) as (client, router):
        run("ip", "addr", "add", "10.64.1.2/24", "dev", "c0", ns=client)
        run("ip", "route", "add", "default", "via", "10.64.1.1", ns=client)
        run("ip", "addr", "add", "10.64.1.1/24", "dev", "rc", ns=router)
        for dev in ("dk0", "br-1", "up0"):
            run("ip", "link", "add", dev, "type", "veth", "peer", "name", f"{dev}p", ns=router)
            run("ip", "link", "set", dev, "up", ns=router)
            run("ip", "link", "set", f"{dev}p", "up", ns=router)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=router)
        run("nft", "-f", "-", ns=router, stdin=_NFT)
        run("iptables-restore", "--noflush", ns=router, stdin=_IPTABLES)
        yield client, router


def _counters(router: str) -> dict[str, int]:
    """Packets per counted rule: the nft rule's text (``oifname "dk0" ... drop``), ``post``
    (the observer), ``-o br-1`` (iptables)."""
    out: dict[str, int] = {}
    doc = json.loads(run("nft", "-j", "list", "ruleset", ns=router))
    for item in doc["nftables"]:
        rule = item.get("rule")
        if not rule or rule["table"] not in ("t", "obs"):
            continue
        exprs = rule["expr"]
        packets = next((e["counter"]["packets"] for e in exprs if "counter" in e), None)
        if packets is None:
            continue
        name = "post" if rule["table"] == "obs" else next(
            (str(e["match"]["right"]) for e in exprs if "match" in e), "final drop")
        out[name] = packets
    listing = run("iptables", "-t", "filter", "-L", "FORWARD", "-v", "-x", "-n", ns=router)
    out["-o br-1"] = int(listing.splitlines()[2].split()[0])
    return out


def _kernel_outcome(client: str, router: str, dev: str) -> tuple[str, str]:
    """(verdict, the counter of the rule that decided: ``dk0``, ``-o br-1``, ``post`` for a
    datagram that left) when the router routes 1.1.1.1 out of ``dev``."""
    run("ip", "route", "replace", "1.1.1.1/32", "dev", dev, ns=router)
    before = _counters(router)
    run(sys.executable, "-c", _SEND, ns=client)
    moved = {k for k, v in _counters(router).items() if v > before[k]}
    found = {frozenset({"post"}): ("ACCEPT", "post"), frozenset({"dk0"}): ("DROP", "dk0"),
             frozenset({"br-1", "-o br-1"}): ("DROP", "-o br-1")}
    return found.get(frozenset(moved), ("?", ", ".join(sorted(moved))))


def _decider(step: Any) -> str:
    """The counter name of the step that ended a branch (``_kernel_outcome``'s words)."""
    if step.source == "nft" and step.text.startswith('oifname "dk0"'):
        return "dk0"
    if step.text == "-A FORWARD -o br-1 -j DROP":
        return "-o br-1"
    return "post" if step.rule is None else f"? {step.text}"


def _branches(router: str) -> dict[str, tuple[str, str]]:
    """natlens's branches without routes, by the interface each reads (``up0``: neither)."""
    nft = nft_loads(run("nft", "-j", "list", "ruleset", ns=router), "nft.json")
    rules = parse_save(run("iptables-save", ns=router), source="iptables-save")
    sim = Simulator(Host.from_json(None, None), rules,
                    parse_save("", source="ip6tables-save", family=Family.IPV6), nft=nft)
    trace = sim.trace(Packet(in_interface="rc", src="10.64.1.2", dst="1.1.1.1", proto="udp",
                             sport=40000, dport=443), dst_local=False)
    found: dict[str, tuple[str, str]] = {}
    for b in trace.branches:
        name = next((n for a in b.assumed for n in ("dk0", "br-1")
                     if a.endswith(f"output interface {n})")), "up0")
        last = [s for s in b.steps if s.table is not None][-1]
        found[name] = (b.verdict.value, _decider(last))
    assert len(found) == len(trace.branches), [b.assumed for b in trace.branches]
    return found


def test_each_branch_is_the_kernels_outcome_for_its_interface(lab: tuple[str, str]) -> None:
    client, router = lab
    branches = _branches(router)
    kernel = {dev: _kernel_outcome(client, router, dev) for dev in ("dk0", "br-1", "up0")}
    assert branches == kernel
