"""The ``connection`` part of a trace against the kernel: real TCP connections in namespaces.

A host namespace with a bridge ``br0`` (172.30.0.1/24) and a container namespace behind it
(172.30.0.2, a TCP server on port 80 answering ``ok``). Each scenario loads nat rules shaped as
Docker writes them into the host, sets ``route_localnet``, opens a real connection and compares
whether it was established with what natlens says (``Trace.connection``) for the same packet,
simulated on the host's own ``ip -j addr``/``ip -j route``/``iptables-save``/``ss -ltnup``:

* hairpin: the container connects to its own published port through the host's DNAT, without
  and with Docker's hairpin MASQUERADE (the layout without the userland proxy);
* the userland proxy layout: the DNAT skips traffic from the bridge (``! -i br0``) and a proxy
  on the host forwards it;
* loopback DNAT: a host process connects to 127.0.0.1 and OUTPUT DNATs it to the container,
  with ``route_localnet`` 0 and 1, with and without Docker's ``--src-type LOCAL`` MASQUERADE.

Needs root (``kernel`` marker). About 10 s.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from netns_helpers import namespaces, needs_root, run

from natlens.netfilter import Packet
from natlens.parse import parse_save
from natlens.parse.hostfiles import parse_ss
from natlens.snapshot import Snapshot

pytestmark = pytest.mark.kernel

_SERVER = r"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(16)
while True:
    c, _ = s.accept()
    c.sendall(b"ok")
    c.close()
"""

_PROXY = r"""
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(16)
def serve(c):
    up = socket.create_connection(("172.30.0.2", 80), timeout=2)
    c.sendall(up.recv(16))
    up.close(); c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

_CLIENT = r"""
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
    s.settimeout(1.5)
    print("ok" if s.recv(16) == b"ok" else "bad")
except OSError as exc:
    print("failed", exc)
"""

_DOCKER_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.30.0.0/24 ! -o br0 -j MASQUERADE
{extra}COMMIT
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    rules: str
    route_localnet: str
    from_container: bool
    dst: str
    expected: bool
    proxy: bool = False


_HAIRPIN_MASQ = "-A POSTROUTING -s 172.30.0.2/32 -d 172.30.0.2/32 -p tcp -m tcp --dport 80 " \
    "-j MASQUERADE\n"
_DNAT = "-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.30.0.2:80\n"
_LOCAL_MASQ = "-A POSTROUTING -o br0 -m addrtype --src-type LOCAL -j MASQUERADE\n"

SCENARIOS = [
    Scenario("hairpin-without-masquerade", _DNAT, "0", True, "172.30.0.1", False),
    Scenario("hairpin-with-masquerade", _DNAT + _HAIRPIN_MASQ, "0", True, "172.30.0.1", True),
    Scenario("own-port-via-userland-proxy",
             "-A DOCKER ! -i br0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination "
             "172.30.0.2:80\n", "0", True, "172.30.0.1", True, proxy=True),
    Scenario("loopback-dnat-route-localnet-0", _DNAT + _LOCAL_MASQ, "0", False, "127.0.0.1",
             False),
    Scenario("loopback-dnat-route-localnet-1-no-masquerade", _DNAT, "1", False, "127.0.0.1",
             False),
    Scenario("loopback-dnat-route-localnet-1-masquerade", _DNAT + _LOCAL_MASQ, "1", False,
             "127.0.0.1", True),
]


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """(host namespace, container namespace), linked by br0; removed afterwards."""
    needs_root("iptables-restore", "iptables")
    veth = f"vc{secrets.token_hex(3)}"
    with namespaces("nlc-h-", "nlc-c-") as (host, ctr):
        run("ip", "link", "add", "br0", "type", "bridge", ns=host)
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ctr,
            ns=host)
        run("ip", "link", "set", veth, "master", "br0", ns=host)
        # as dockerd does without the userland proxy: with br_netfilter, a DNATed frame goes
        # back out of the port it came in by (br_nf_pre_routing_finish_bridge)
        run("ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on", ns=host)
        for dev in ("lo", "br0", veth):
            run("ip", "link", "set", dev, "up", ns=host)
        run("ip", "addr", "add", "172.30.0.1/24", "dev", "br0", ns=host)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=host)
        for dev in ("lo", "eth0"):
            run("ip", "link", "set", dev, "up", ns=ctr)
        run("ip", "addr", "add", "172.30.0.2/24", "dev", "eth0", ns=ctr)
        run("ip", "route", "add", "default", "via", "172.30.0.1", ns=ctr)
        yield host, ctr


def _start(ns: str, script: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return proc


def _bridge_nf(host: str) -> str:
    """``net.bridge.bridge-nf-call-iptables`` in the namespace (``0`` without br_netfilter)."""
    done = subprocess.run(["ip", "netns", "exec", host, "sysctl", "-n",
                           "net.bridge.bridge-nf-call-iptables"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() if done.returncode == 0 else "0"


def _snapshot(host: str, localnet: str, ss: str) -> Snapshot:
    text = run("iptables-save", ns=host)
    return Snapshot(ruleset=parse_save(text, source="iptables-save"), sockets=parse_ss(ss),
                    addresses=json.loads(run("ip", "-j", "addr", ns=host)),
                    routes=json.loads(run("ip", "-j", "route", ns=host)),
                    # hairpin mode is on for the port, as dockerd sets it without the proxy
                    meta={"userland_proxy": False,
                          "sysctl": {"net.ipv4.ip_forward": "1",
                                     "net.ipv4.conf.all.route_localnet": localnet,
                                     "net.ipv4.conf.br0.route_localnet": localnet,
                                     "net.bridge.bridge-nf-call-iptables": _bridge_nf(host)}},
                    path=host)


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_connection_part_agrees_with_the_kernel(pair: tuple[str, str], sc: Scenario) -> None:
    host, ctr = pair
    run("iptables-restore", ns=host, stdin=_DOCKER_NAT.format(extra=sc.rules))
    for key in ("all", "br0"):
        run("sysctl", "-qw", f"net.ipv4.conf.{key}.route_localnet={sc.route_localnet}",
             ns=host)
    procs = [_start(ctr, _SERVER)]
    if sc.proxy:
        procs.append(_start(host, _PROXY))
    try:
        where = ctr if sc.from_container else host
        said = run(sys.executable, "-c", _CLIENT, sc.dst, "8080", ns=where).strip()
        ss = run("ss", "-ltnup", ns=host)  # the host's sockets (the proxy's), as ss.txt
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=5)
    established = said == "ok"
    assert established == sc.expected, f"kernel: {said}"
    snap = _snapshot(host, sc.route_localnet, ss)
    if sc.from_container:
        packet = Packet(in_interface="br0", src="172.30.0.2", dst=sc.dst, dport=8080,
                        sport=40000)
    else:
        packet = Packet(local_origin=True, src="127.0.0.1", dst=sc.dst, dport=8080,
                        sport=40000)
    trace = snap.simulator.trace(packet)
    assert trace.connection is not None
    assert trace.connection.established is established, str(trace)
