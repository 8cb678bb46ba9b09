"""Shared decisions in the exposure map (``natlens.exposure_share``): the map built with
sharing equals the map built cell by cell, on every fixture and on generated many-container
hosts, including hosts whose rules tell some containers apart (ranges, a rule between two
containers' blocks, a port of one container named elsewhere, a container-specific drop)."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import natlens
from natlens.docker import inventory_from_snapshot
from natlens.exposure import ExposureMap, build

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from bench_exposure import write_snapshot
from gen_kube import generate

FIXTURES = REPO_ROOT / "fixtures"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "iptables-save.txt").is_file())
CONTAINERS = 8


def _everything(emap: ExposureMap) -> list[Any]:
    """Every field of every cell (the JSON form and what it leaves out), rows and notes."""
    return [emap.to_dict(), [r.label for r in emap.rows], list(emap.ingresses),
            dict(emap.networks),
            [(c.row.label, c.why, c.packet.to_dict(), c.target, c.decided_by)
             for c in emap.cells]]


def _both(folder: Path) -> tuple[ExposureMap, ExposureMap, Any]:
    snap = natlens.load(folder)
    inv = inventory_from_snapshot(snap)
    shared = build(snap, inv, snap.simulator)
    alone = build(snap, inv, snap.simulator, share=False)
    return shared, alone, snap


@pytest.mark.parametrize("name", NAMES)
def test_fixture_maps_are_the_same_with_sharing(name: str) -> None:
    shared, alone, _ = _both(FIXTURES / name)
    assert _everything(shared) == _everything(alone)


_TWISTS: dict[str, list[tuple[str, str]]] = {
    # (a line the twist goes after, the line added)
    "plain": [],
    "range-drop": [(r"^-A FORWARD -j DOCKER-USER$", "-A FORWARD -d 172.17.0.4/31 -j DROP")],
    "port-drop": [(r"^-A FORWARD -j DOCKER-USER$",
                   "-A FORWARD -p tcp -m tcp --dport 10004 -j DROP")],
    "port-range": [(r"^-A FORWARD -j DOCKER-USER$",
                    "-A INPUT -p tcp -m tcp --dport 10003:10007 -j REJECT")],
    "source-drop": [(r"^-A FORWARD -j DOCKER-USER$", "-A FORWARD -s 172.17.0.3/32 -j DROP")],
    "between-blocks": [(r"^-A DOCKER -d 172\.17\.0\.4/32 .*--dport 8080 -j ACCEPT$",
                        "-A DOCKER -p tcp -m tcp --dport 443 -j DROP")],
    "negated-between-blocks": [(r"^-A DOCKER -d 172\.17\.0\.4/32 .*--dport 8080 -j ACCEPT$",
                                "-A DOCKER ! -d 172.17.0.7/32 -p tcp -m tcp --dport 443 -j DROP")],
    "nat-between-blocks": [(r"^-A DOCKER ! -i docker0 -p tcp -m tcp --dport 10005 ",
                            "-A DOCKER -p tcp -m tcp --dport 10007 -j DNAT "
                            "--to-destination 172.17.0.2:80")],
    "shared-value": [(r"^-A FORWARD -j DOCKER-USER$",
                      "-A FORWARD -d 172.17.0.5/32 -p tcp -m tcp --dport 10010 -j DROP")],
    "random-masquerade": [(r"^-A POSTROUTING -s 172\.17\.0\.0/16 ! -o docker0 -j MASQUERADE$",
                           "-A POSTROUTING -s 10.8.0.0/24 -j MASQUERADE --random-fully")],
    "dnat-range": [(r"^-A DOCKER ! -i docker0 -p tcp -m tcp --dport 10005 ",
                    "-A DOCKER -p tcp -m tcp --dport 9999 -j DNAT "
                    "--to-destination 172.17.0.2-172.17.0.5:80")],
    "dnat-to-a-container": [(r"^-A DOCKER ! -i docker0 -p tcp -m tcp --dport 10005 ",
                             "-A DOCKER -p tcp -m tcp --dport 9999 -j DNAT "
                             "--to-destination 172.17.0.5:80")],
    "negated-address": [(r"^-A FORWARD -j DOCKER-USER$",
                         "-A FORWARD -i wg0 ! -d 172.17.0.5/32 -j DROP")],
    "unknown-module": [(r"^-A FORWARD -j DOCKER-USER$",
                        "-A FORWARD -m iprange --dst-range 172.17.0.3-172.17.0.6 -j DROP")],
}


@pytest.fixture(scope="module")
def kube_text() -> str:
    return generate(40, 2)


@pytest.mark.parametrize("twist", sorted(_TWISTS))
def test_generated_host_maps_are_the_same_with_sharing(twist: str, kube_text: str,
                                                       tmp_path: Path) -> None:
    write_snapshot(tmp_path, CONTAINERS, kube_text)
    save = tmp_path / "iptables-save.txt"
    lines = save.read_text().splitlines()
    for after, line in _TWISTS[twist]:
        at = next(i for i, t in enumerate(lines) if re.search(after, t))
        lines.insert(at + 1, line)
    save.write_text("\n".join(lines) + "\n")
    shared, alone, _ = _both(tmp_path)
    assert len(shared.cells) > 50 * CONTAINERS
    assert _everything(shared) == _everything(alone)


def test_alike_containers_share_and_a_told_apart_one_does_not(kube_text: str,
                                                              tmp_path: Path) -> None:
    write_snapshot(tmp_path, CONTAINERS, kube_text)
    save = tmp_path / "iptables-save.txt"
    save.write_text(save.read_text().replace(
        "-A FORWARD -j DOCKER-USER\n",
        "-A FORWARD -j DOCKER-USER\n-A FORWARD -s 172.17.0.3/32 -j DROP\n", 1))
    snap = natlens.load(tmp_path)
    inv = inventory_from_snapshot(snap)
    sim = snap.simulator
    traced: list[int] = []
    original = sim.trace

    def counting(packet: natlens.Packet, **kw: Any) -> natlens.Trace:
        traced.append(1)
        return original(packet, **kw)

    sim.trace = counting  # type: ignore[method-assign]
    shared = build(snap, inv, sim)
    with_sharing = len(traced)
    traced.clear()
    alone = build(snap, inv, sim, share=False)
    assert _everything(shared) == _everything(alone)
    assert with_sharing * 3 < len(traced)  # the alike containers share
    one = [c for c in shared.cells if c.row.container == "bench-0001" and c.family == 4
           and c.ingress == "docker0" and c.row.kind == "container"]
    assert one
    assert all(c.reachable is False for c in one)  # the told-apart one is its own


_ADDRS = [f"172.17.0.{i}" for i in range(2, 2 + CONTAINERS)]
_NETS = ["172.17.0.0/30", "172.17.0.4/31", "172.17.0.8/29", "172.17.0.0/28", "10.8.0.0/24"]
_PORTS = [str(p) for p in range(10000, 10000 + 3 * CONTAINERS)] + [
    "10002:10006", "10010:10030", "80", "443", "8080"]
_RULE = st.one_of(
    st.builds(lambda neg, where, verdict: ("FORWARD", f"-A FORWARD {neg}-d {where} -j {verdict}"),
              st.sampled_from(["", "! "]), st.sampled_from(_ADDRS + _NETS),
              st.sampled_from(["DROP", "ACCEPT", "REJECT"])),
    st.builds(lambda where: ("FORWARD", f"-A FORWARD -s {where} -j DROP"),
              st.sampled_from(_ADDRS + _NETS)),
    st.builds(lambda port: ("FORWARD", f"-A FORWARD -p tcp -m tcp --dport {port} -j DROP"),
              st.sampled_from(_PORTS)),
    st.builds(lambda port: ("INPUT", f"-A INPUT -p tcp -m tcp --dport {port} -j REJECT"),
              st.sampled_from(_PORTS)),
    st.builds(lambda port, addr: ("nat", f"-A DOCKER -p tcp -m tcp --dport {port} -j DNAT "
                                         f"--to-destination {addr}:80"),
              st.sampled_from(_PORTS[:3 * CONTAINERS]), st.sampled_from(_ADDRS)),
    st.builds(lambda port: ("filter", f"-A DOCKER -p tcp -m tcp --dport {port} -j DROP"),
              st.sampled_from(["80", "443", "8080"])),
    st.builds(lambda addr, port: ("filter", f"-A DOCKER ! -d {addr}/32 -p tcp -m tcp "
                                            f"--dport {port} -j DROP"),
              st.sampled_from(_ADDRS), st.sampled_from(["80", "443", "8080"])),
)
_ANCHORS = {"FORWARD": r"^-A FORWARD -j DOCKER-USER$", "INPUT": r"^-A FORWARD -j DOCKER-USER$",
            "nat": r"^-A DOCKER ! -i docker0 -p tcp -m tcp --dport \d+ -j DNAT",
            "filter": r"^-A DOCKER -d 172\.17\.0\.\d+/32 ! -i docker0"}


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_RULE, st.integers(0, 3 * CONTAINERS)), min_size=1, max_size=3))
def test_random_rules_never_change_the_map(kube_text: str,
                                           rules: list[tuple[tuple[str, str], int]]) -> None:
    """Rules naming containers' addresses, ports and ranges, inserted at random places of
    Docker's chains: sharing or not, the same map."""
    with tempfile.TemporaryDirectory(prefix="natlens-share-") as tmp:
        folder = Path(tmp)
        write_snapshot(folder, CONTAINERS, kube_text)
        save = folder / "iptables-save.txt"
        lines = save.read_text().splitlines()
        for (where, line), pick in rules:
            spots = [i for i, t in enumerate(lines) if re.search(_ANCHORS[where], t)]
            lines.insert(spots[pick % len(spots)] + 1, line)
        save.write_text("\n".join(lines) + "\n")
        shared, alone, _ = _both(folder)
        assert _everything(shared) == _everything(alone)
