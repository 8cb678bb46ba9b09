"""Checks that read the exposure map: ``bypass`` from every host interface and across
families, ``exposed`` at 127.0.0.1 through Docker's DNAT, ``hairpin-blocked`` from the
container's own network. Each case is a real fixture (or docs example) with one change made
the way a host gets it (a second interface, a hand-written rule, ip-route6.json), and each
finding's fix, applied to the rules, removes it without a new finding.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT

import natlens
from natlens.audit import Finding, audit

FIXTURES = REPO_ROOT / "fixtures"
EXAMPLES = REPO_ROOT / "docs" / "examples"


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def _add_rule(folder: Path, table: str, rule: str, *, first: bool = False,
              name: str = "iptables-save.txt") -> None:
    """Add ``rule`` (``-A CHAIN ...``, or ``-I CHAIN ...`` to put it first) to ``table`` of the
    dump, as iptables -A/-I then iptables-save would print it."""
    path = folder / name
    lines = path.read_text().splitlines()
    if f"*{table}" not in lines:
        lines += [f"*{table}", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", "COMMIT"]
    start = lines.index(f"*{table}")
    end = next(i for i in range(start, len(lines)) if lines[i] == "COMMIT")
    chain = rule.split()[1]
    text = "-A " + rule.split(None, 1)[1]
    if first:
        at = next((i for i in range(start, end)
                   if lines[i].split("] ", 1)[-1].startswith(f"-A {chain} ")), end)
    else:
        at = end
    lines.insert(at, text)
    path.write_text("\n".join(lines) + "\n")


def _of(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def _key(f: Finding) -> tuple[object, ...]:
    return (f.kind, f.container, f.host_port, f.proto, f.message)


# -- bypass from an interface that is not the default route ---------------------------------------


def _with_wg0(tmp_path: Path) -> Path:
    folder = _copy(FIXTURES / "default-bridge-8080", tmp_path)
    addrs = json.loads((folder / "ip-addr.json").read_text())
    addrs.append({"ifindex": 99, "ifname": "wg0", "flags": ["POINTOPOINT", "NOARP", "UP",
                                                            "LOWER_UP"],
                  "mtu": 1420, "operstate": "UNKNOWN", "link_type": "none",
                  "addr_info": [{"family": "inet", "local": "10.8.0.1", "prefixlen": 24,
                                 "scope": "global", "label": "wg0"}]})
    (folder / "ip-addr.json").write_text(json.dumps(addrs))
    routes = json.loads((folder / "ip-route.json").read_text())
    routes.append({"dst": "10.8.0.0/24", "dev": "wg0", "protocol": "kernel", "scope": "link",
                   "prefsrc": "10.8.0.1", "flags": []})
    (folder / "ip-route.json").write_text(json.dumps(routes))
    return folder


def test_bypass_on_a_second_interface(tmp_path: Path) -> None:
    """ufw-style INPUT drop on wg0 only: the map's wg0 column shows 8080 reaching the
    container anyway; eth0 (nothing refused there) has no bypass."""
    folder = _with_wg0(tmp_path)
    _add_rule(folder, "filter", "-A INPUT -i wg0 -p tcp -m tcp --dport 8080 -j DROP")
    snap = natlens.load(folder)
    emap = natlens.exposure(snap)
    assert "wg0" in emap.ingresses
    found = _of(audit(snap), "bypass")
    assert [f.message.split(" although")[0] for f in found] == [
        "natlens-web's 8080/tcp is reachable from wg0"]
    assert found[0].rule is not None
    assert found[0].rule.chain == "INPUT"
    assert found[0].severity.value == "high"  # the refusing rule names the port
    assert found[0].fix is not None
    assert "-i wg0" in found[0].fix
    # the fix, applied: no bypass, nothing new
    before = {_key(f) for f in audit(snap) if f.kind != "bypass"}
    _add_rule(folder, "filter", "-I DOCKER-USER -i wg0 -p tcp -m conntrack --ctorigdstport "
              "8080 --ctdir ORIGINAL -j DROP", first=True)
    after = audit(natlens.load(folder))
    assert _of(after, "bypass") == []
    assert {_key(f) for f in after} <= before


# -- bypass across families ------------------------------------------------------------------------


def _ipv6_routed(tmp_path: Path) -> Path:
    folder = _copy(FIXTURES / "ipv6", tmp_path)
    routes6 = [
        {"dst": "fd00::/64", "dev": "eth0", "protocol": "kernel", "metric": 256, "flags": []},
        {"dst": "fd00:dead:beef::/48", "dev": "docker0", "protocol": "kernel", "metric": 256,
         "flags": []},
        {"dst": "default", "gateway": "fd00::1", "dev": "eth0", "metric": 1024, "flags": []},
    ]
    (folder / "ip-route6.json").write_text(json.dumps(routes6))
    return folder


def test_ipv4_only_block_is_walked_around_on_ipv6(tmp_path: Path) -> None:
    """A DOCKER-USER drop written with iptables only: IPv4 refuses the port from eth0, the
    IPv6 binding of the same container port serves every source."""
    folder = _ipv6_routed(tmp_path)
    _add_rule(folder, "filter", "-I DOCKER-USER -i eth0 -p tcp -m tcp --dport 80 -j DROP",
              first=True)
    snap = natlens.load(folder)
    found = [f for f in _of(audit(snap), "bypass") if "no IPv6 counterpart" in f.message]
    assert len(found) == 1
    f = found[0]
    assert f.rule is not None
    assert (f.rule.table, f.rule.chain, f.rule.index) == ("filter", "DOCKER-USER", 1)
    assert f.fix is not None
    assert f.fix.startswith("ip6tables ")
    # the fix, applied with ip6tables: gone, nothing new
    before = {_key(x) for x in audit(snap) if x is not f}
    assert f.fix.startswith("ip6tables -t filter -I FORWARD -i eth0 ")
    _add_rule(folder, "filter", "-I FORWARD -i eth0 -p tcp -m conntrack --ctorigdstport "
              "8080 --ctdir ORIGINAL -j DROP", first=True, name="ip6tables-save.txt")
    after = audit(natlens.load(folder))
    assert [x for x in _of(after, "bypass") if "no IPv6 counterpart" in x.message] == []
    assert {_key(x) for x in after} <= before


def test_same_block_on_both_families_is_no_bypass(tmp_path: Path) -> None:
    folder = _ipv6_routed(tmp_path)
    _add_rule(folder, "filter", "-I DOCKER-USER -i eth0 -p tcp -m tcp --dport 80 -j DROP",
              first=True)
    # Docker 20.10 writes no DOCKER-USER for IPv6: the same block goes first in FORWARD
    _add_rule(folder, "filter", "-I FORWARD -i eth0 -p tcp -m tcp --dport 80 -j DROP",
              first=True, name="ip6tables-save.txt")
    assert _of(audit(natlens.load(folder)), "bypass") == []


# -- exposed: a loopback binding reached at 127.0.0.1 from another host ---------------------------


def test_loopback_binding_via_remote_127_and_its_fix(tmp_path: Path) -> None:
    folder = _copy(FIXTURES / "loopback-9000", tmp_path)
    snap = natlens.load(folder)
    via = [f for f in _of(audit(snap), "exposed") if f.packet and f.packet["dst"] == "127.0.0.1"]
    assert len(via) == 1
    assert via[0].rule is not None
    assert "DNAT" in via[0].rule.text
    fix = via[0].fix
    assert fix == "iptables -t raw -I PREROUTING ! -i lo -d 127.0.0.0/8 -j DROP"
    before = {_key(f) for f in audit(snap) if f is not via[0]}
    _add_rule(folder, "raw", "-I PREROUTING ! -i lo -d 127.0.0.0/8 -j DROP", first=True)
    after = audit(natlens.load(folder))
    assert [f for f in _of(after, "exposed") if f.packet and f.packet["dst"] == "127.0.0.1"] == []
    assert {_key(f) for f in after} <= before
    # and the map agrees: eth0 to 127.0.0.1:9000 is refused in raw PREROUTING
    emap = natlens.exposure(natlens.load(folder))
    cells = [c for c in emap.cells if c.ingress == "eth0" and str(c.dst) == "127.0.0.1"
             and c.port == 9000]
    assert cells
    assert all(c.reachable is False for c in cells)
    assert all(c.decided_by is not None and c.decided_by.table == "raw" for c in cells)


# -- hairpin-blocked from the container's own network ---------------------------------------------


def test_hairpin_from_own_network_and_its_fix(tmp_path: Path) -> None:
    """docs/examples/bypass: INPUT's policy DROP refuses docker0's hairpin to docker-proxy at
    192.0.2.2:8080, while other hosts reach the container."""
    folder = _copy(EXAMPLES / "bypass", tmp_path)
    snap = natlens.load(folder)
    found = [f for f in _of(audit(snap), "hairpin-blocked") if "own network" in f.message]
    assert len(found) == 1
    f = found[0]
    assert f.packet is not None
    assert f.packet["in_interface"] == "docker0"
    assert f.fix == "iptables -t filter -I INPUT -i docker0 -p tcp -m tcp --dport 8080 -j ACCEPT"
    before = {_key(x) for x in audit(snap) if x is not f}
    _add_rule(folder, "filter", "-I INPUT -i docker0 -p tcp -m tcp --dport 8080 -j ACCEPT",
              first=True)
    after = audit(natlens.load(folder))
    assert [x for x in _of(after, "hairpin-blocked") if "own network" in x.message] == []
    assert {_key(x) for x in after} <= before


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()
                                        if (p / "iptables-save.txt").is_file()))
def test_map_checks_do_not_contradict(name: str) -> None:
    """No container port is both ``exposed`` (reachable from outside) and, for the same
    binding, ``missing`` (unreachable from everywhere)."""
    findings = audit(natlens.load(FIXTURES / name))
    exposed = {(f.container, f.host_port) for f in _of(findings, "exposed")}
    missing = {(f.container, f.host_port) for f in _of(findings, "missing")}
    assert not exposed & missing


# -- missing: asked for, never published ---------------------------------------------------------


def test_port_requested_on_internal_network_is_low_missing() -> None:
    findings = audit(natlens.load(FIXTURES / "internal-network"))
    assert [(f.kind, f.severity.value, f.container, f.host_port) for f in findings] == [
        ("missing", "low", "natlens-db", 8083)]
    assert "internal network natlens-internal" in findings[0].message


# -- ineffective: an allow behind Docker 28's raw drop -------------------------------------------


def test_docker_user_allow_behind_raw_drop(tmp_path: Path) -> None:
    """Docker 28 drops direct routing to a container in raw PREROUTING; a DOCKER-USER ACCEPT
    meant to let a VPN reach the container's port 22 never sees a packet."""
    folder = _copy(FIXTURES / "default-bridge-8080", tmp_path)
    _add_rule(folder, "raw", "-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP")
    _add_rule(folder, "filter", "-I DOCKER-USER -s 10.8.0.0/24 -d 172.17.0.2/32 -p tcp -m tcp "
              "--dport 22 -j ACCEPT", first=True)
    snap = natlens.load(folder)
    found = [f for f in _of(audit(snap), "ineffective") if "raw" in f.message]
    assert len(found) == 1
    f = found[0]
    assert f.rule is not None
    assert (f.rule.chain, f.rule.index) == ("DOCKER-USER", 1)
    assert [(r.table, r.chain) for r in f.related] == [("raw", "PREROUTING")]
    assert f.fix == ("iptables -t filter -D DOCKER-USER -s 10.8.0.0/24 -d 172.17.0.2/32 -p tcp "
                     "-m tcp --dport 22 -j ACCEPT")
    before = {_key(x) for x in audit(snap) if x is not f}
    dump = folder / "iptables-save.txt"
    dump.write_text(dump.read_text().replace(
        "-A DOCKER-USER -s 10.8.0.0/24 -d 172.17.0.2/32 -p tcp -m tcp --dport 22 -j ACCEPT\n", ""))
    after = audit(natlens.load(folder))
    assert [x for x in _of(after, "ineffective") if "raw" in x.message] == []
    assert {_key(x) for x in after} <= before
