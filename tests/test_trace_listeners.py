"""Which socket takes a connection delivered to the host, and what the trace's ``connection``
says of it (tests/test_kernel_trace_listeners.py checks the refusals against the kernel).

ss(8) prints a socket on ``::`` that takes IPv4 too as ``*``, and one with IPV6_V6ONLY as
``[::]``; a socket bound to a device (``%lo``) takes only packets arriving on it.
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest

import natlens
from natlens.netfilter import Packet
from natlens.netfilter.listeners import Listeners
from natlens.parse.hostfiles import parse_ss

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

_SS = """Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process
tcp   LISTEN 0      128     127.0.0.53%lo:53      0.0.0.0:*    users:(("resolved",pid=9,fd=6))
tcp   LISTEN 0      128          0.0.0.0:22       0.0.0.0:*    users:(("sshd",pid=3,fd=5))
tcp   LISTEN 0      128                *:80             *:*    users:(("web",pid=4,fd=3))
tcp   LISTEN 0      128             [::]:443         [::]:*    users:(("tls",pid=5,fd=4))
tcp   LISTEN 0      128        192.0.2.2:25       0.0.0.0:*    users:(("smtp",pid=6,fd=4))
udp   UNCONN 0      0            0.0.0.0:53       0.0.0.0:*    users:(("dns",pid=7,fd=4))
"""


@pytest.mark.parametrize(("proto", "ip", "port", "iface", "served"), [
    ("tcp", "192.0.2.2", 22, "eth0", True),  # 0.0.0.0: every IPv4 address
    ("tcp", "2001:db8::2", 22, "eth0", False),  # ... and no IPv6 one
    ("tcp", "192.0.2.2", 80, "eth0", True),  # *: both families
    ("tcp", "2001:db8::2", 80, "eth0", True),
    ("tcp", "192.0.2.2", 443, "eth0", False),  # [::] is IPv6 only (IPV6_V6ONLY)
    ("tcp", "2001:db8::2", 443, "eth0", True),
    ("tcp", "192.0.2.2", 25, "eth0", True),  # its own address
    ("tcp", "10.0.0.1", 25, "eth1", False),  # another one
    ("tcp", "127.0.0.53", 53, "lo", True),  # bound to lo: from lo only
    ("tcp", "127.0.0.53", 53, "eth0", False),
    ("udp", "192.0.2.2", 53, "eth0", True),
    ("udp", "192.0.2.2", 22, "eth0", False),  # tcp only
])
def test_which_socket_takes_it(proto: str, ip: str, port: int, iface: str,
                               served: bool) -> None:
    listeners = Listeners.of(parse_ss(_SS), None)
    assert listeners is not None
    found, why = listeners.serving(proto, ipaddress.ip_address(ip), port, iface)
    assert found is served, why
    if not served:
        assert why == f"nothing listens on {proto} {ip if ':' not in ip else f'[{ip}]'}:" \
            f"{port} (ss.txt)"


def _fixture(tmp_path: Path, ss: str | None) -> Path:
    folder = tmp_path / "snap"
    shutil.copytree(FIXTURES / "default-bridge-8080", folder)
    if ss is not None:
        (folder / "ss.txt").write_text(ss)
    return folder


def _local(snap: natlens.Snapshot, port: int, proto: str = "tcp") -> natlens.Trace:
    trace = snap.simulator.trace(Packet(in_interface="eth0", src="198.51.100.7",
                                        dst="192.0.2.2", proto=proto, sport=40000, dport=port))
    assert (trace.verdict.value, trace.path.value) == ("ACCEPT", "local"), str(trace)
    return trace


def test_without_ss_only_docker_proxy_is_known(tmp_path: Path) -> None:
    """No ss.txt, the userland proxy on: 127.0.0.1:8080 reaches docker-proxy (Docker's OUTPUT
    DNAT skips 127/8), port 22 is not known to have a socket."""
    snap = natlens.load(_fixture(tmp_path, None))
    proxied = snap.simulator.trace(Packet(local_origin=True, src="127.0.0.1",
                                          dst="127.0.0.1", sport=40000, dport=8080))
    assert proxied.connection is not None
    assert proxied.connection.established is True, str(proxied)
    ssh = _local(snap, 22).connection
    assert ssh is not None
    assert ssh.established is None
    assert ssh.why.startswith("whether anything listens on tcp 192.0.2.2:22 is not known "
                              "(no ss.txt); if something does, the reply")


@pytest.mark.parametrize(("proto", "refusal"), [("tcp", "a TCP RST"),
                                                ("udp", "an ICMP port unreachable")])
def test_with_ss_a_port_without_socket_is_refused(tmp_path: Path, proto: str,
                                                  refusal: str) -> None:
    snap = natlens.load(_fixture(tmp_path, _SS))
    ssh = _local(snap, 22).connection
    assert ssh is not None
    assert ssh.established is True
    conn = _local(snap, 2222, proto).connection
    assert conn is not None
    assert conn.established is False
    assert conn.why == (f"nothing listens on {proto} 192.0.2.2:2222 (ss.txt): the host "
                        f"answers the first packet with {refusal} (connection refused)")


def test_json_and_batch_forms(tmp_path: Path) -> None:
    snap = natlens.load(_fixture(tmp_path, _SS))
    trace = _local(snap, 2222)
    assert trace.to_dict()["connection"]["established"] is False
    assert "connection: NOT established: nothing listens on tcp 192.0.2.2:2222" in str(trace)
