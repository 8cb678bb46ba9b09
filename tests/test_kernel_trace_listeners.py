"""A connection NATed to a port of the host itself completes only when a socket listens there.

Two namespaces: a client (10.62.1.2) and a server (10.62.1.1, and 10.62.9.1 on its ``lo``)
whose nat PREROUTING REDIRECTs or DNATs ports to local ones; only some of those have a socket
(TCP 9997, a UDP echo on 9995). The kernel refuses the others: TCP with a RST
(``tcp_v4_send_reset``), UDP with an ICMP port unreachable (a connected UDP socket reads
ECONNREFUSED). natlens traces the same packets on the server's ``iptables-save``, ``ip -j addr``,
``ip -j route`` and ``ss -ltnup``, and its ``connection`` must say the same; without ``ss.txt``
it must say it does not know.

Needs root (``kernel`` marker). About 3 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from netns_helpers import chained, needs_root, run

from natlens.netfilter import Packet
from natlens.parse import parse_save
from natlens.parse.hostfiles import parse_ss
from natlens.snapshot import Snapshot

pytestmark = pytest.mark.kernel

_RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9999
-A PREROUTING -p tcp -m tcp --dport 81 -j REDIRECT --to-ports 9997
-A PREROUTING -p tcp -m tcp --dport 82 -j DNAT --to-destination 10.62.9.1:9996
-A PREROUTING -p udp -m udp --dport 53 -j REDIRECT --to-ports 9998
-A PREROUTING -p udp -m udp --dport 54 -j REDIRECT --to-ports 9995
COMMIT
"""

# (proto, port the client connects to, what the kernel does)
CASES = [
    ("tcp", 80, "refused"),  # REDIRECT to a port nothing listens on
    ("tcp", 81, "open"),  # REDIRECT to a listening port
    ("tcp", 82, "refused"),  # DNAT to another local address, nothing there
    ("udp", 53, "refused"),  # ICMP port unreachable
    ("udp", 54, "open"),  # the echo answers
]

_SERVE = r"""
import socket, sys, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 9997)); t.listen(8)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 9995))
def echo():
    while True:
        data, peer = u.recvfrom(64)
        u.sendto(data, peer)
threading.Thread(target=echo, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""

_TRY = r"""
import json, socket, sys
out = {}
for proto, port in json.loads(sys.argv[1]):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(1.0)
    try:
        s.connect(("10.62.1.1", port))
        if proto == "udp":
            s.send(b"x")
            s.recv(64)
        out[f"{proto}/{port}"] = "open"
    except ConnectionRefusedError:
        out[f"{proto}/{port}"] = "refused"
    except OSError as e:
        out[f"{proto}/{port}"] = f"other: {e}"
    finally:
        s.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, str, str]]:
    """(client, server, the server's ``ss -ltnup``): linked, rules loaded, sockets open."""
    needs_root("iptables-restore", "iptables")
    with chained(("nls-c-", "c0"), ("nls-s-", "s0")) as (client, srv):
        run("ip", "addr", "add", "10.62.1.2/24", "dev", "c0", ns=client)
        run("ip", "addr", "add", "10.62.1.1/24", "dev", "s0", ns=srv)
        run("ip", "addr", "add", "10.62.9.1/32", "dev", "lo", ns=srv)
        run("iptables-restore", ns=srv, stdin=_RULES)
        serving = subprocess.Popen(["ip", "netns", "exec", srv, sys.executable, "-c", _SERVE],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert serving.stdout is not None
            assert serving.stdout.readline().strip() == "ready"
            yield client, srv, run("ss", "-ltnup", ns=srv)
        finally:
            serving.kill()
            serving.communicate()


@pytest.fixture(scope="module")
def kernel(server: tuple[str, str, str]) -> dict[str, str]:
    client, _, _ = server
    deadline = time.monotonic() + 10
    while True:  # the veth pair may take a moment to carry traffic
        seen: dict[str, str] = json.loads(run(sys.executable, "-c", _TRY, json.dumps(
            [[p, n] for p, n, _ in CASES]), ns=client))
        if not any(v.startswith("other") for v in seen.values()) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def _snapshot(srv: str, ss: str | None) -> Snapshot:
    return Snapshot(ruleset=parse_save(run("iptables-save", ns=srv), source="iptables-save"),
                    addresses=json.loads(run("ip", "-j", "addr", ns=srv)),
                    routes=json.loads(run("ip", "-j", "route", ns=srv)),
                    sockets=parse_ss(ss) if ss is not None else None, path=srv)


@pytest.mark.parametrize(("proto", "port", "expected"), CASES,
                         ids=[f"{p}-{n}" for p, n, _ in CASES])
def test_connection_agrees_with_the_kernel(server: tuple[str, str, str],
                                           kernel: dict[str, str], proto: str, port: int,
                                           expected: str) -> None:
    _, srv, ss = server
    assert kernel[f"{proto}/{port}"] == expected, kernel
    packet = Packet(in_interface="s0", src="10.62.1.2", dst="10.62.1.1", proto=proto,
                    sport=40000, dport=port)
    trace = _snapshot(srv, ss).simulator.trace(packet)
    assert (trace.verdict.value, trace.path.value) == ("ACCEPT", "local"), str(trace)
    conn = trace.connection
    assert conn is not None
    assert conn.established is (expected == "open"), str(trace)
    if expected == "refused":
        refusal = "a TCP RST" if proto == "tcp" else "an ICMP port unreachable"
        assert f"nothing listens on {proto} {trace.final_dst} (ss.txt)" in conn.why
        assert refusal in conn.why
    # without ss.txt natlens does not know whether a socket takes it
    unknown = _snapshot(srv, None).simulator.trace(packet).connection
    assert unknown is not None
    assert unknown.established is None
    assert f"whether anything listens on {proto} {trace.final_dst} is not known" in unknown.why
