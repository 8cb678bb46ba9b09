"""The reply of a MASQUERADEd connection as raw and mangle PREROUTING see it, against the kernel.

Three namespaces: a client (10.63.1.2) behind a router that MASQUERADEs what leaves by ``rb``
(10.63.2.1) towards a server (10.63.2.2, a UDP echo on port 5000). The reply comes back
addressed to the router's 10.63.2.1, and conntrack restores the client's address only at the
NAT step of PREROUTING (priority -100, ``nf_nat_inet_fn``): raw (-300) and mangle (-150) see
10.63.2.1. Each scenario adds a rule there on the reply's destination, the masqueraded address
or the client's; the kernel says whether the echo comes back.

natlens traces the client's datagram on the router's ``iptables-save``, ``ip -j addr`` and
``ip -j route``: its ``connection`` must agree with the kernel. Without ``ip-addr.json`` and with
no route naming a source address, the address MASQUERADE took is unknown: the reply walk then
reads a rule on the destination both ways, and the connection is unknown (it used to be walked
addressed to the client, so a drop of the masqueraded address went unseen).

Needs root (``kernel`` marker). About 4 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from netns_helpers import chained, needs_root, run

from natlens.netfilter import Packet
from natlens.parse import parse_save
from natlens.snapshot import Snapshot

pytestmark = pytest.mark.kernel

_ECHO = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(64)
    s.sendto(data, peer)
"""

_SEND = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.63.1.2", 40000))
s.connect(("10.63.2.2", 5000))
s.settimeout(0.5)
answer = "none"
for _ in range(4):
    s.send(b"x")
    try:
        s.recv(64)
        answer = "echo"
        break
    except (TimeoutError, ConnectionRefusedError):
        pass
print(answer)
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
    rules: str
    """iptables-restore input (``--noflush``) added to the NAT rule."""
    echo: bool
    """Whether the kernel brings the echo back."""


def _raw(dst: str) -> str:
    return (f"*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -d {dst}/32 "
            "-i rb -p udp -m udp --sport 5000 -j DROP\nCOMMIT\n")


def _mangle(dst: str) -> str:
    return (f"*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
            f":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -d {dst}/32 -i rb "
            "-j MARK --set-xmark 0x7/0xffffffff\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n"
            ":FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m mark --mark 0x7 -j DROP\n"
            "COMMIT\n")


SCENARIOS = [
    Scenario("raw-drops-masqueraded-address", _raw("10.63.2.1"), echo=False),
    Scenario("raw-rule-on-client-address", _raw("10.63.1.2"), echo=True),
    Scenario("mangle-marks-masqueraded-address", _mangle("10.63.2.1"), echo=False),
    Scenario("mangle-rule-on-client-address", _mangle("10.63.1.2"), echo=True),
]


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[str, str, str]]:
    """(client, router, server) namespaces, linked client—ra, rb—server, the echo running."""
    needs_root("iptables-restore", "iptables")
    with chained(("nrm-c-", "c0"), ("nrm-r-", "ra", "rb"), ("nrm-s-", "s0")) as (client, router,
                                                                              server):
        run("ip", "addr", "add", "10.63.1.2/24", "dev", "c0", ns=client)
        run("ip", "route", "add", "default", "via", "10.63.1.1", ns=client)
        run("ip", "addr", "add", "10.63.1.1/24", "dev", "ra", ns=router)
        run("ip", "addr", "add", "10.63.2.1/24", "dev", "rb", ns=router)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=router)
        run("ip", "addr", "add", "10.63.2.2/24", "dev", "s0", ns=server)
        echo = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-c", _ECHO],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert echo.stdout is not None
            assert echo.stdout.readline().strip() == "ready"
            yield client, router, server
        finally:
            echo.kill()
            echo.communicate()


def _echo_comes_back(client: str, router: str) -> bool:
    run("conntrack", "-F", ns=router)
    return run(sys.executable, "-c", _SEND, ns=client).strip() == "echo"


def _snapshot(router: str, *, addresses: bool) -> Snapshot:
    routes: list[dict[str, Any]] = json.loads(run("ip", "-j", "route", ns=router))
    if not addresses:  # a capture without ip-addr.json and routes that name no source
        routes = [{k: v for k, v in r.items() if k != "prefsrc"} for r in routes]
    return Snapshot(ruleset=parse_save(run("iptables-save", ns=router), source="iptables-save"),
                    addresses=json.loads(run("ip", "-j", "addr", ns=router)) if addresses
                    else None, routes=routes,
                    meta={"sysctl": {"net.ipv4.ip_forward": "1"}}, path=router)


PACKET = Packet(in_interface="ra", src="10.63.1.2", dst="10.63.2.2", proto="udp", sport=40000,
                dport=5000)


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_reply_before_the_nat_step_agrees_with_the_kernel(hosts: tuple[str, str, str],
                                                          sc: Scenario) -> None:
    client, router, _ = hosts
    run("iptables-restore", ns=router, stdin=_NAT)  # flushes the tables the last one loaded
    for table in ("raw", "mangle", "filter"):
        run("iptables", "-t", table, "-F", ns=router)
    run("iptables-restore", "--noflush", ns=router, stdin=sc.rules)
    deadline = time.monotonic() + 5
    seen = _echo_comes_back(client, router)
    while sc.echo and not seen and time.monotonic() < deadline:  # links settling
        seen = _echo_comes_back(client, router)
    assert seen is sc.echo, f"kernel: echo {'came back' if seen else 'lost'}"

    known = _snapshot(router, addresses=True).simulator.trace(PACKET)
    assert known.final_src == "10.63.2.1:40000", str(known)
    assert known.connection is not None
    assert known.connection.established is sc.echo, str(known)

    unknown = _snapshot(router, addresses=False).simulator.trace(PACKET)
    assert (unknown.verdict.value, unknown.final_src) == ("ACCEPT", "10.63.1.2:40000"), \
        str(unknown)
    conn = unknown.connection
    assert conn is not None
    assert conn.established is None, str(unknown)
    assert "the address MASQUERADE took on rb" in conn.why, conn.why
    assert "-d " in conn.why, conn.why
    assert "(unknown)" in conn.why, conn.why
