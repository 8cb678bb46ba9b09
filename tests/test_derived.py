"""``natlens.derived``: facts computed once per snapshot and kept with it, computed on each
call without one; the simulator's index of routing rules and ``trace``'s hints both go
through it (one route to ``Snapshot.derived``)."""

from __future__ import annotations

from pathlib import Path

import natlens
from natlens import trace_hints
from natlens.derived import derived
from natlens.netfilter import Simulator

DUMP = """\
-P FORWARD DROP
-N DOCKER
-A DOCKER -d 172.22.0.2/32 ! -i br0 -o br0 -p udp -m udp --dport 1900 -j ACCEPT
"""
PACKET = natlens.Packet(in_interface="eth0", src="203.0.113.9", dst="172.22.0.2", proto="udp",
                        dport=1900)


def _snapshot(tmp_path: Path) -> natlens.Snapshot:
    path = tmp_path / "iptables-S.txt"
    path.write_text(DUMP)
    return natlens.load(path)


def test_without_an_owner_each_call_computes() -> None:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert [derived(None, "n", compute), derived(None, "n", compute)] == [1, 2]


def test_with_a_snapshot_the_first_value_is_kept_by_name(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    assert derived(snap, "test.n", lambda: 1) == 1
    assert derived(snap, "test.n", lambda: 2) == 1
    assert derived(snap, "test.other", lambda: 3) == 3
    assert {"test.n", "test.other"} <= snap.derived_names()


def test_the_simulator_and_the_hints_keep_their_facts_with_the_snapshot(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    trace = natlens.simulate(snap, PACKET)  # addresses unknown: the routing index is asked
    assert trace.path.value == "forward"
    assert trace_hints.protocol_hint(snap, PACKET) is None
    assert {"engine.routing_rules/1", "trace_hints.rule_facts"} <= snap.derived_names()


def test_a_what_if_reads_the_same_index_as_its_snapshot(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    # the what-if asks first: what it keeps is the index of the snapshot's whole rules
    what_if = snap.simulator.without(4, {("filter", "DOCKER"): [1]})
    assert what_if.trace(PACKET).path.value == "forward"
    assert snap.simulator.trace(PACKET).path.value == "forward"
    alone = Simulator(snap.host, snap.ruleset)  # no snapshot: computed, nothing kept
    assert alone.trace(PACKET).path.value == "forward"
