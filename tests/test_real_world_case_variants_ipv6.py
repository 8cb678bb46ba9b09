"""IPv6 inputs of two real-world kinds (cases 07 and 09), as ``ip6tables-save`` snapshots.

The IPv4 variants of these kinds are checked against the kernel in
tests/differential/test_real_world_case_variants.py (same rules, the kernel as referee); here
the same faults sit in ``ip6tables-save.txt`` (docker-ipv6nat, Docker's ``--ipv6``), where the
report must name them as for IPv4 and give the ``ip6tables`` command that fixes them:

* 07: a leftover MASQUERADE for a bridge that does not exist (``! -o docker0`` matches every
  interface) rewrites a routed client subnet's traffic: ``stale`` HIGH, fix ``ip6tables -t nat
  -D POSTROUTING ...``; the trace shows the MASQUERADE;
* 09: DOCKER-USER declared with the user's rules but FORWARD does not jump to it:
  ``unused-chain`` MEDIUM, fix ``ip6tables -t filter -I FORWARD 1 -j DOCKER-USER``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from natlens.cli import main

_EMPTY_NAT = ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
              ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n")


def _host(folder: Path, subnet_iface: tuple[str, str]) -> None:
    addr = [{"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "addr_info": [
        {"family": "inet", "local": "127.0.0.1", "prefixlen": 8},
        {"family": "inet6", "local": "::1", "prefixlen": 128}]},
        {"ifindex": 2, "ifname": "eth0", "flags": ["UP"], "addr_info": [
            {"family": "inet6", "local": "2001:db8:10::21", "prefixlen": 64}]},
        {"ifindex": 3, "ifname": subnet_iface[1], "flags": ["UP"], "addr_info": [
            {"family": "inet6", "local": subnet_iface[0], "prefixlen": 64}]}]
    routes6 = [{"dst": "default", "gateway": "2001:db8:10::1", "dev": "eth0"},
               {"dst": "2001:db8:10::/64", "dev": "eth0"},
               {"dst": subnet_iface[0].rsplit(":", 2)[0] + "::/64", "dev": subnet_iface[1]}]
    (folder / "ip-addr.json").write_text(json.dumps(addr))
    (folder / "ip-route.json").write_text("[]")
    (folder / "ip-route6.json").write_text(json.dumps(routes6))
    (folder / "docker-networks.json").write_text("[]")
    (folder / "docker-containers.json").write_text("[]")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    status = main([*argv, "--format", "json"])
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("bridge", "subnet", "client"), [
    ("docker0", "fd00:dead:beef::/48", "fd00:dead:beef:1::10"),
    ("br-0123456789ab", "fd42:17::/32", "fd42:17:0:9::5"),
], ids=["docker0", "user-bridge"])
def test_07_ipv6_leftover_masquerade(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     bridge: str, subnet: str, client: str) -> None:
    (tmp_path / "ip6tables-save.txt").write_text(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n"
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
        "-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER\n"
        f"-A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE\n"
        f"-A DOCKER -i {bridge} -j RETURN\nCOMMIT\n")
    (tmp_path / "iptables-save.txt").write_text(_EMPTY_NAT)
    gateway = client.rsplit(":", 2)[0] + "::1"
    _host(tmp_path, (gateway, "eth1"))
    _, report = _run(capsys, "report", str(tmp_path))
    findings = report["findings"]
    assert isinstance(findings, list)
    masq = [f for f in findings if f["rule"] and f["rule"]["chain"] == "POSTROUTING"]
    assert [(f["kind"], f["severity"]) for f in masq] == [("stale", "high")], findings
    assert masq[0]["fix"] == (f"ip6tables -t nat -D POSTROUTING -s {subnet} ! -o {bridge} "
                              "-j MASQUERADE")
    _, trace = _run(capsys, "trace", str(tmp_path), "--in", "eth1", "--src", client, "--dst",
                    "2001:db8:99::5", "--proto", "tcp", "--dport", "443")
    assert trace["verdict"] == "ACCEPT"
    steps = trace["steps"]
    assert isinstance(steps, list)
    assert [s["chain"] for s in steps if s["target"] == "MASQUERADE"] == ["POSTROUTING"]
    assert trace["final_src"] == "2001:db8:10::21"  # eth0's address (no --sport given)


@pytest.mark.parametrize("user_rules", [
    ["-A DOCKER-USER -d fd00::/8 -j REJECT --reject-with icmp6-port-unreachable",
     "-A DOCKER-USER -j RETURN"],
    ["-A DOCKER-USER -i eth0 -p tcp -m tcp --dport 22 -j DROP"],
], ids=["reject-ula", "drop-ssh"])
def test_09_ipv6_unjumped_docker_user(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      user_rules: list[str]) -> None:
    (tmp_path / "ip6tables-save.txt").write_text(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":DOCKER - [0:0]\n:DOCKER-ISOLATION-STAGE-1 - [0:0]\n:DOCKER-ISOLATION-STAGE-2 - [0:0]\n"
        ":DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n"
        "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        "-A FORWARD -o docker0 -j DOCKER\n-A FORWARD -i docker0 ! -o docker0 -j ACCEPT\n"
        "-A FORWARD -i docker0 -o docker0 -j ACCEPT\n"
        "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2\n"
        "-A DOCKER-ISOLATION-STAGE-1 -j RETURN\n-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP\n"
        "-A DOCKER-ISOLATION-STAGE-2 -j RETURN\n" + "\n".join(user_rules) + "\nCOMMIT\n")
    (tmp_path / "iptables-save.txt").write_text(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j RETURN\nCOMMIT\n")
    _host(tmp_path, ("fd00:17::1", "docker0"))
    _, report = _run(capsys, "report", str(tmp_path))
    findings = report["findings"]
    assert isinstance(findings, list)
    unused = [f for f in findings if f["kind"] == "unused-chain"]
    assert [(f["rule"]["chain"], f["rule"]["family"], f["severity"]) for f in unused] == [
        ("DOCKER-USER", "ipv6", "medium")], findings
    assert unused[0]["fix"] == "ip6tables -t filter -I FORWARD 1 -j DOCKER-USER"
