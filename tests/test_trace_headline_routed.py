"""Without host addresses, a destination a rule routes out of an interface is headlined as
forwarded (real-world case 01's kind, in ``iptables -S`` form: DOCKER-FORWARD orphaned, so the
DOCKER chain's ``-d CONTAINER/32 -o BRIDGE`` rule is never reached, yet it says where the
container lives). The kernel's answer (tests/differential/test_real_world_case_variants.py,
``01-iptables-S-single-file``): forwarded, dropped by FORWARD's policy."""

from __future__ import annotations

from pathlib import Path

import natlens

BR = "br-0a1b2c3d4e5f"
DUMP = f"""\
-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-FORWARD
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A DOCKER -d 172.22.0.2/32 ! -i {BR} -o {BR} -p udp -m udp --dport 1900 -j ACCEPT
-A DOCKER ! -i {BR} -o {BR} -j DROP
-A DOCKER-FORWARD -o {BR} -j DOCKER
-A DOCKER-FORWARD -i {BR} -j ACCEPT
"""


def _trace(tmp_path: Path, dst: str) -> natlens.Trace:
    path = tmp_path / "iptables-S.txt"
    path.write_text(DUMP)
    snap = natlens.load(path)
    return natlens.simulate(snap, natlens.Packet(in_interface="eth0", src="203.0.113.9",
                                                 dst=dst, proto="udp", dport=1900))


def test_address_routed_by_a_rule_is_headlined_forwarded(tmp_path: Path) -> None:
    trace = _trace(tmp_path, "172.22.0.2")
    assert (trace.verdict.value, trace.path.value) == ("DROP", "forward")
    assert any("a rule naming it with an output interface (filter:DOCKER#1)" in u
               for u in trace.uncertain), trace.uncertain
    assert any(b.path.value == "local" for b in trace.branches)  # still a reading


def test_address_no_rule_names_keeps_the_host_reading_first(tmp_path: Path) -> None:
    trace = _trace(tmp_path, "172.22.0.9")
    assert trace.path.value == "local"
    assert not any("output interface (filter" in u for u in trace.uncertain)
