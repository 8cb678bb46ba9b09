"""Real-world case 12's kind in IPv6 (docker-ipv6nat): host -> [::1]:PORT DNATed into a bridge.

Each variant builds a host namespace (``eth0`` 2001:db8::10/64 towards a LAN namespace, a
bridge link ``br-...`` to a container namespace holding the container's address and a TCP
listener), loads the variant's ``ip6tables`` nat rules with one backend and connects from the
host, as a user does, to ``[::1]:PORT`` and to ``[2001:db8::10]:PORT``. The kernel is the
referee: the loopback connection is DNATed and never answered (a ``::1`` source cannot leave
through the bridge), the host address's is answered when the rules DNAT it. natlens, on the
namespace's capture, must say the same: the ``::1`` trace is DNATed to the container and its
connection is not established (loopback), the host address's is, and the report flags the
loopback DNAT (``hairpin-blocked``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from netns_helpers import namespaces, needs_root, run, veth

from natlens.cli import main

pytestmark = pytest.mark.kernel

_SERVER = ("import socket,sys\ns=socket.socket(socket.AF_INET6)\n"
           "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
           "s.bind(('::',int(sys.argv[1])))\ns.listen(5)\n"
           "while True:\n c,_=s.accept()\n c.sendall(b'hi')\n c.close()\n")
_CLIENT = ("import socket,sys\ntry:\n"
           " c=socket.create_connection((sys.argv[1],int(sys.argv[2])),"
           "timeout=float(sys.argv[3]))\n"
           " print('answered' if c.recv(2)==b'hi' else 'other')\n"
           "except OSError as e:\n print('failed', e)\n")


@dataclass(frozen=True)
class V6Variant:
    name: str
    backend: str
    bridge: str
    container: str
    cport: int
    hport: int
    dnat_match: str
    """What precedes ``-j DOCKER`` in nat OUTPUT (no ``! -d ::1/128``: loopback included)."""
    host_address_dnat: bool
    """Whether the host's own address is DNATed too (then its connection is answered)."""


VARIANTS = [
    V6Variant("addrtype-local", "nft", "br-86aa00000001", "fd01::2", 80, 8000,
              "-m addrtype --dst-type LOCAL", True),
    V6Variant("loopback-named", "legacy", "br-4f00d0000002", "fd02::5", 8080, 9000,
              "-d ::1/128", False),
]


def _rules(v: V6Variant) -> str:
    return ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n"
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
            f"-A OUTPUT {v.dnat_match} -j DOCKER\n"
            f"-A POSTROUTING -s {v.container.rsplit(':', 1)[0]}:/64 ! -o {v.bridge} "
            "-j MASQUERADE\n"
            f"-A DOCKER -i {v.bridge} -j RETURN\n"
            f"-A DOCKER ! -i {v.bridge} -p tcp -m tcp --dport {v.hport} -j DNAT "
            f"--to-destination [{v.container}]:{v.cport}\nCOMMIT\n")


def _connect(ns: str, dst: str, port: int, timeout: float = 1.0) -> str:
    """Connect from ``ns`` to ``[dst]:port``: ``answered`` or ``failed <why>``."""
    return run(sys.executable, "-c", _CLIENT, dst, str(port), str(timeout), ns=ns).strip()


@pytest.mark.parametrize("v", VARIANTS, ids=[f"{v.name}-{v.backend}" for v in VARIANTS])
def test_ipv6_loopback_dnat_variant(v: V6Variant, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    needs_root(f"ip6tables-{v.backend}-restore", "iptables")
    needs_root("conntrack", "conntrack")
    net = v.container.rsplit(":", 1)[0] + ":"
    with namespaces("nl6h", "nl6c", "nl6l") as (host, ctr, lan):
        veth(host, v.bridge, ctr, "eth0")
        veth(host, "eth0", lan, "eth0")
        run("ip", "link", "set", "lo", "up", ns=host)
        run("ip", "link", "set", "lo", "up", ns=ctr)
        run("ip", "-6", "addr", "add", "2001:db8::10/64", "dev", "eth0", "nodad", ns=host)
        run("ip", "-6", "addr", "add", f"{net}1/64", "dev", v.bridge, "nodad", ns=host)
        run("ip", "-6", "addr", "add", f"{v.container}/64", "dev", "eth0", "nodad", ns=ctr)
        run("ip", "-6", "route", "add", "default", "via", f"{net}1", ns=ctr)
        run("sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1", ns=host)
        run(f"ip6tables-{v.backend}-restore", ns=host, stdin=_rules(v))
        server = subprocess.Popen(["ip", "netns", "exec", ctr, sys.executable, "-c", _SERVER,
                                   str(v.cport)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):  # the listener is up once the container answers itself
                if _connect(ctr, v.container, v.cport) == "answered":
                    break
                time.sleep(0.1)
            loopback = _connect(host, "::1", v.hport)
            # (3 s: the first answer waits for neighbour discovery on the fresh links)
            own_address = _connect(host, "2001:db8::10", v.hport, 3.0)
            tracked = run("conntrack", "-L", "-f", "ipv6", "-p", "tcp", "--orig-dst", "::1",
                          ns=host)
            snap = tmp_path / "snap"
            snap.mkdir()
            (snap / "ip6tables-save.txt").write_text(
                run(f"ip6tables-{v.backend}-save", "-c", ns=host))
            (snap / "iptables-save.txt").write_text("*filter\n:INPUT ACCEPT [0:0]\n"
                                                    ":FORWARD ACCEPT [0:0]\n"
                                                    ":OUTPUT ACCEPT [0:0]\nCOMMIT\n")
            (snap / "ip-addr.json").write_text(run("ip", "-j", "addr", "show", ns=host))
            (snap / "ip-route.json").write_text(run("ip", "-j", "route", "show", ns=host))
            (snap / "ip-route6.json").write_text(run("ip", "-j", "-6", "route", "show",
                                                     ns=host))
        finally:
            server.kill()
            server.wait()
    # the kernel: ::1 is not answered (the variant is of the kind)
    assert loopback.startswith("failed"), loopback
    assert f"src={v.container} dst=::1 sport={v.cport}" in tracked, tracked  # DNATed
    assert (own_address == "answered") is v.host_address_dnat, own_address

    def natlens_json(*argv: str) -> tuple[int, dict[str, object]]:
        status = main([*argv, "--format", "json"])
        return status, json.loads(capsys.readouterr().out)

    _, lo = natlens_json("trace", str(snap), "--local-origin", "--src", "::1", "--dst", "::1",
                         "--proto", "tcp", "--dport", str(v.hport))
    assert lo["final_dst"] == f"[{v.container}]:{v.cport}"
    connection = lo["connection"]
    assert isinstance(connection, dict)
    assert connection["established"] is False, connection
    assert "loopback" in connection["why"]
    if v.host_address_dnat:
        _, own = natlens_json("trace", str(snap), "--local-origin", "--src", "2001:db8::10",
                              "--dst", "2001:db8::10", "--proto", "tcp", "--dport",
                              str(v.hport))
        assert own["final_dst"] == f"[{v.container}]:{v.cport}"
        assert isinstance(own["connection"], dict)
        assert own["connection"]["established"] is True, own["connection"]
    status, data = natlens_json("report", str(snap))
    findings = data["findings"]
    assert isinstance(findings, list)
    flagged = [f for f in findings if f["kind"] == "hairpin-blocked"]
    assert flagged, findings
    assert all("::1" in f["message"] for f in flagged)
    assert status == 1
