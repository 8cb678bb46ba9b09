"""MASQUERADE's source address against the kernel: which address a forwarded packet leaves with.

Three namespaces: a client (10.61.1.2) behind a router, and a server (10.61.2.2, a UDP listener
printing the source address and port a datagram arrives from) on the router's other side. The router
MASQUERADEs everything leaving by ``rb`` (``-o rb -j MASQUERADE``); each scenario gives its
interfaces other addresses. The kernel (``nf_nat_masquerade_ipv4``,
net/netfilter/nf_nat_masquerade.c) takes ``inet_select_addr(rb, nexthop, RT_SCOPE_UNIVERSE)``
(net/ipv4/devinet.c): a global primary address of ``rb`` (the route's ``src`` plays no part),
else the first of any device, and drops the packet when the router has none. natlens traces
the same packet on the router's ``ip -j addr``, ``ip -j route`` and ``iptables-save``, and must
give the same source, or DROP.

Needs root (``kernel`` marker). About 5 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from netns_helpers import chained, needs_root, run

from natlens.netfilter import Packet
from natlens.parse import parse_save
from natlens.snapshot import Snapshot

pytestmark = pytest.mark.kernel

_LISTEN = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
s.settimeout(float(sys.argv[1]))
try:
    _, peer = s.recvfrom(64)
    print(f"{peer[0]}:{peer[1]}")
except TimeoutError:
    print("none")
"""

_SEND = r"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.61.1.2", 40000))
for _ in range(8):
    s.sendto(b"x", ("10.61.2.2", 5000))
    time.sleep(0.1)
"""

_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o rb -j MASQUERADE
COMMIT
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    router: tuple[tuple[str, ...], ...]
    """``ip`` commands run in the router after its links are up (``ra`` 10.61.1.1/24 scope
    link is always there, for the client's gateway)."""
    expected: str
    """The source (address:port) the server sees, or ``none`` (dropped)."""


_D0 = (("link", "add", "d0", "type", "veth", "peer", "name", "d1"), ("link", "set", "d0", "up"),
       ("link", "set", "d1", "up"))
"""Another device of the router (a veth pair of its own: no dummy module needed)."""

SCENARIOS = [
    Scenario("out-interface-address", (
        ("addr", "add", "10.61.2.1/24", "dev", "rb"),
        *_D0,
        ("addr", "add", "10.61.9.1/24", "dev", "d0")), "10.61.2.1:40000"),
    # the route names another address as its src: MASQUERADE ignores it
    Scenario("route-src-ignored", (
        ("addr", "add", "10.61.2.1/24", "dev", "rb"),
        *_D0,
        ("addr", "add", "10.61.9.1/24", "dev", "d0"),
        ("route", "replace", "10.61.2.0/24", "dev", "rb", "src", "10.61.9.1")), "10.61.2.1:40000"),
    # rb has no address of its own: the first global address of another device
    Scenario("other-interface-address", (
        *_D0,
        ("addr", "add", "10.61.9.1/24", "dev", "d0"),
        ("route", "add", "10.61.2.0/24", "dev", "rb")), "10.61.9.1:40000"),
    # no global address anywhere (ra's is scope link): "rb ate my IP address", dropped
    Scenario("no-address-drops", (
        ("route", "add", "10.61.2.0/24", "dev", "rb"),), "none"),
]


@pytest.fixture
def hosts() -> Iterator[tuple[str, str, str]]:
    """(client, router, server) namespaces, linked client—ra, rb—server; removed afterwards."""
    needs_root("iptables-restore", "iptables")
    with chained(("nlm-c-", "c0"), ("nlm-r-", "ra", "rb"), ("nlm-s-", "s0")) as (client, router,
                                                                              server):
        run("ip", "addr", "add", "10.61.1.2/24", "dev", "c0", ns=client)
        run("ip", "route", "add", "default", "via", "10.61.1.1", ns=client)
        run("ip", "addr", "add", "10.61.1.1/24", "dev", "ra", "scope", "link", ns=router)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=router)
        run("ip", "addr", "add", "10.61.2.2/24", "dev", "s0", ns=server)
        # the router may have no address to ARP from: its neighbour is written in
        mac = json.loads(run("ip", "-j", "link", "show", "s0", ns=server))[0]["address"]
        run("ip", "neigh", "replace", "10.61.2.2", "lladdr", mac, "dev", "rb", ns=router)
        yield client, router, server


def _seen_by_server(client: str, server: str) -> str:
    listener = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-c", _LISTEN,
                                 "2"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        run(sys.executable, "-c", _SEND, ns=client)
        out, _ = listener.communicate(timeout=10)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    return out.strip()


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_masquerade_source_agrees_with_the_kernel(hosts: tuple[str, str, str],
                                                  sc: Scenario) -> None:
    client, router, server = hosts
    for command in sc.router:
        run("ip", *command, ns=router)
    run("iptables-restore", ns=router, stdin=_NAT)
    seen = _seen_by_server(client, server)
    assert seen == sc.expected, f"kernel: the server saw {seen}"
    snap = Snapshot(ruleset=parse_save(run("iptables-save", ns=router), source="iptables-save"),
                    addresses=json.loads(run("ip", "-j", "addr", ns=router)),
                    routes=json.loads(run("ip", "-j", "route", ns=router)),
                    meta={"sysctl": {"net.ipv4.ip_forward": "1"}}, path=router)
    trace = snap.simulator.trace(Packet(in_interface="ra", src="10.61.1.2", dst="10.61.2.2",
                                        proto="udp", sport=40000, dport=5000))
    assert not trace.branches, str(trace)
    assert not trace.uncertain, str(trace)
    natlens = trace.final_src if trace.verdict.value == "ACCEPT" else "none"
    assert (trace.out_interface, natlens) == ("rb", seen), str(trace)
