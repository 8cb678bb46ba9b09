"""The exposure map (``natlens.exposure``), its table and JSON forms, and correlation
(``natlens.correlate``): golden maps per fixture, the contract of DESIGN.md, source classes,
and (kernel) every cell's representative connection replayed through ``natlens verify``.

Regenerate the golden maps with ``NATLENS_UPDATE_GOLDEN=1`` and review them against each
fixture's README.md.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

import natlens
from natlens.cli import main
from natlens.correlate import correlate, dnat_target
from natlens.docker import inventory_from_snapshot
from natlens.exposure import ExposureMap, exposure, source_classes
from natlens.exposure_render import WIDTH, render_table
from natlens.model import Family

FIXTURES = REPO_ROOT / "fixtures"
GOLDEN = REPO_ROOT / "tests" / "golden" / "exposure"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "iptables-save.txt").is_file())

_MAPS: dict[str, ExposureMap] = {}


def _map(name: str) -> ExposureMap:
    if name not in _MAPS:
        _MAPS[name] = exposure(natlens.load(FIXTURES / name))
    return _MAPS[name]


# -- JSON contract and golden maps ---------------------------------------------------------------

_CELL_KEYS = ["ingress", "family", "sources", "dst", "proto", "port", "reachable", "lands",
              "target", "decided_by"]


@pytest.mark.parametrize("name", NAMES)
def test_golden_map(name: str, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert main(["exposure", f"fixtures/{name}", "--format", "json"]) == 0
    out = capsys.readouterr().out
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("NATLENS_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(out)
    assert out == golden.read_text(), f"exposure map of fixtures/{name} differs"
    got = json.loads(out)
    assert list(got) == ["cells", "notes"]
    assert got["cells"], "every fixture has a published or container port"
    for cell in got["cells"]:
        assert list(cell) == _CELL_KEYS
        assert cell["family"] in (4, 6)
        assert cell["reachable"] in (True, False, None)
        ipaddress.ip_address(cell["dst"])
        for cidr in cell["sources"]:
            assert ipaddress.ip_network(cidr).version == cell["family"]
        if cell["reachable"]:
            assert cell["lands"] is not None
            assert cell["target"]["kind"] in (
                "container", "proxy", "host")
        if cell["decided_by"] is not None:
            assert list(cell["decided_by"]) == ["source", "table", "chain", "index", "text"]


@pytest.mark.parametrize("name", NAMES)
def test_table_fits_80_columns(name: str) -> None:
    text = render_table(_map(name))
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "legend:" in text
    emap = _map(name)
    body = text.split("\n\n")[0].splitlines()
    assert len(body) == 1 + len(emap.rows), "one line per port under the header"


def test_seed_host_published_port() -> None:
    """The seed host (-p 8080:80, userland proxy on): 8080 reaches the container from every
    interface, and the host's own 127.0.0.1:8080 is served by docker-proxy."""
    emap = _map("default-bridge-8080")
    row = next(r for r in emap.rows if r.kind == "published" and r.port == 8080)
    eth0 = emap.cells_of(row, "eth0")
    assert eth0
    assert all(c.reachable and c.target is not None
                        and c.target.kind == "container" and c.lands == "172.17.0.2:80"
                        for c in eth0)
    assert eth0[0].decided_by is not None
    assert eth0[0].decided_by.chain == "DOCKER"
    lo = [c for c in emap.cells_of(row, "local") if str(c.dst) == "127.0.0.1"]
    assert [(c.reachable, c.target.kind if c.target else None) for c in lo] == [(True, "proxy")]
    # an unpublished port is not reachable from outside on this host
    other = next(r for r in emap.rows if r.kind == "container" and not r.published)
    assert [c.reachable for c in emap.cells_of(other, "eth0")] == [False]


def test_allow_list_gives_two_source_classes() -> None:
    """docker-user-policy drops 203.0.113.0/24 in DOCKER-USER: that class is refused by that
    rule, every other source reaches the container."""
    emap = _map("docker-user-policy")
    row = next(r for r in emap.rows if r.kind == "published")
    cells = [c for c in emap.cells_of(row, "eth0") if str(c.dst) != "127.0.0.1"]
    blocked = [c for c in cells if c.sources == ("203.0.113.0/24",)]
    assert [c.reachable for c in blocked] == [False]
    assert blocked[0].decided_by is not None
    assert blocked[0].decided_by.chain == "DOCKER-USER"
    others = [c for c in cells if c not in blocked]
    assert others
    assert all(c.reachable for c in others)
    assert ipaddress.ip_address(str(others[0].packet.src)) not in ipaddress.ip_network(
        "203.0.113.0/24")


def test_remote_packet_to_loopback_reaches_loopback_binding() -> None:
    """-p 127.0.0.1:9000:80 on Docker 20.10: a LAN machine sending to 127.0.0.1:9000 via
    the host is DNATed to the container (Docker's DNAT matches any input interface)."""
    emap = _map("loopback-9000")
    row = next(r for r in emap.rows if r.kind == "published")
    cell = next(c for c in emap.cells_of(row, "eth0") if str(c.dst) == "127.0.0.1")
    assert cell.reachable is True
    assert cell.target is not None
    assert cell.target.kind == "container"


def test_report_starts_with_the_map(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(REPO_ROOT)
    main(["report", "fixtures/default-bridge-8080", "--format", "json"])
    got: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert list(got) == ["exposure", "findings", "summary"]
    assert got["exposure"] == _map("default-bridge-8080").to_dict()
    main(["report", "fixtures/default-bridge-8080"])
    text = capsys.readouterr().out
    assert text.index("EXPOSURE") < text.index("no findings")
    assert "8080/tcp -> natlens-web:80" in text


def test_one_simulator_for_the_whole_map() -> None:
    snap = natlens.load(FIXTURES / "user-network")
    sim = snap.simulator
    emap = exposure(snap)
    assert snap.simulator is sim
    assert len(emap.cells) > len(emap.rows)


# -- correlation ---------------------------------------------------------------------------------


def test_correlate_finds_the_rules_of_each_binding() -> None:
    snap = natlens.load(FIXTURES / "default-bridge-8080")
    inv = inventory_from_snapshot(snap)
    assert inv is not None
    corr = correlate(inv, snap.rules_for(Family.IPV4), snap.rules_for(Family.IPV6))
    [b] = corr.bindings
    assert (b.container.name, b.family, b.host_port, b.container_port, b.proto) == (
        "natlens-web", 4, 8080, 80, "tcp")
    assert [(r.table, r.chain) for r in b.dnat] == [("nat", "DOCKER")]
    assert [(r.table, r.chain) for r in b.accept] == [("filter", "DOCKER")]
    assert b.masquerade
    assert b.masquerade[0].rule.target_name == "MASQUERADE"
    assert {(u.proto, u.port, u.exposed) for u in corr.unpublished} == {("tcp", 22, False)}


@pytest.mark.parametrize("name", NAMES)
def test_correlation_matches_the_audit_view(name: str) -> None:
    """Every binding's DNAT really is a DNAT to one of its container's addresses."""
    snap = natlens.load(FIXTURES / name)
    inv = inventory_from_snapshot(snap)
    assert inv is not None
    corr = correlate(inv, snap.rules_for(Family.IPV4), snap.rules_for(Family.IPV6))
    for b in corr.bindings:
        for r in b.dnat:
            assert r.rule.target_name == "DNAT"
            assert r.family == b.family
            dest = dnat_target(r.rule, b.family)
            assert dest is not None
            assert dest[0] in b.targets
            assert (dest[1] or b.host_port) == b.container_port
        for r in b.accept:
            assert r.rule.target_name == "ACCEPT"
            assert r.table == "filter"


# -- source classes ------------------------------------------------------------------------------

_V4 = st.builds(lambda a, n: ipaddress.ip_network((a, n), strict=False),
                st.integers(0, 2**32 - 1), st.integers(0, 32))


@given(st.lists(_V4, max_size=6))
@settings(max_examples=150, deadline=None)
def test_source_classes_partition_the_universe(prefixes: list[ipaddress.IPv4Network]) -> None:
    universe = [ipaddress.IPv4Network("0.0.0.0/1"), ipaddress.IPv4Network("192.0.0.0/2")]
    classes = [[ipaddress.IPv4Network(n) for n in c]
               for c in source_classes(list(universe), prefixes)]
    size = sum(n.num_addresses for c in classes for n in c)
    assert size == sum(n.num_addresses for n in universe)
    flat = [n for c in classes for n in c]
    for i, a in enumerate(flat):
        assert any(u.supernet_of(a) for u in universe)
        assert not any(a.overlaps(b) for b in flat[i + 1:])
    # every prefix contains a class wholly or not at all, and two classes differ in some prefix
    sigs = []
    for c in classes:
        sig = set()
        for p in prefixes:
            inside = [p.supernet_of(n) for n in c]
            assert all(inside) or not any(n.overlaps(p) for n in c)
            if all(inside):
                sig.add(p)
        sigs.append(frozenset(sig))
    assert len(set(sigs)) == len(sigs)


@pytest.mark.parametrize(("prefixes", "count"), [
    ([], 1),
    (["10.0.0.0/8"], 2),
    (["10.0.0.0/8", "10.1.0.0/16"], 3),
    (["10.0.0.0/8", "10.0.0.0/8"], 2),
    (["2001:db8::/32"], 1),  # another family: no split
])
def test_source_classes_counts(prefixes: list[str], count: int) -> None:
    universe = [ipaddress.ip_network("0.0.0.0/0")]
    nets = [ipaddress.ip_network(p) for p in prefixes]
    assert len(source_classes(universe, nets)) == count


# -- the kernel agrees ---------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("name", NAMES)
def test_map_agrees_with_kernel(name: str) -> None:
    """Each cell's representative connection, replayed in namespaces by ``natlens verify``,
    gets the outcome the map's trace says (verdict, path, final destination, steps)."""
    from test_verify import _mine, _needs_root

    from natlens.verify.compare import verify
    from natlens.verify.generate import Probe

    _needs_root()
    snap = natlens.load(FIXTURES / name)
    emap = exposure(snap)
    inv = inventory_from_snapshot(snap)
    assert inv is not None
    # verify's topology sends a Docker network's packets from a container's namespace on it
    peopled = {n.bridge for n in inv.networks
               if any(c.network(n.name) for c in inv.running)}
    seen: dict[Any, None] = {}
    probes = []
    for n, cell in enumerate(emap.cells):
        pkt = cell.packet
        if pkt in seen or (cell.ingress in emap.networks and cell.ingress not in peopled):
            continue
        seen[pkt] = None
        kind = "host" if cell.ingress == "local" else (
            "container" if cell.ingress in emap.networks else "outside")
        probes.append(Probe(pkt, kind, f"exposure cell {n}: {cell.row.label} from "
                                       f"{cell.ingress}"))
    report = verify(snap, probes=probes)
    assert _mine() == [], "namespaces left behind"
    assert report.tried == len(probes)
    # The map's question: does the first packet get through, and to where. A refusal the
    # harness cannot see as a REJECT (the ICMP error to a source on the host's own subnet)
    # still counts as a refusal; any other difference fails.
    wrong = [r for r in report.disagreements
             if (r.trace.verdict.value == "ACCEPT") != (r.observation.verdict.value == "ACCEPT")
             or (r.trace.verdict.value == "ACCEPT"
                 and r.trace.final_dst != r.observation.final_dst)]
    assert wrong == [], report.render()
    refused = {"DROP", "REJECT"}
    for r in report.disagreements:
        if r.trace.verdict is not r.observation.verdict:
            assert {r.trace.verdict.value, r.observation.verdict.value} <= refused, (
                report.render())


def test_paths_are_relative(tmp_path: Path) -> None:
    """The golden maps carry nothing of this machine."""
    for golden in GOLDEN.glob("*.json"):
        assert str(REPO_ROOT) not in golden.read_text()


def test_ipv6_loopback_from_another_interface_never_reaches_prerouting() -> None:
    """ip6_rcv_core drops ::1 received on eth0 before PREROUTING (found by the kernel replay
    of the ipv6 fixture's map: Docker's DNAT would otherwise take it)."""
    snap = natlens.load(FIXTURES / "ipv6")
    trace = natlens.simulate(snap, natlens.Packet(in_interface="eth0", src="2001:db8:7::7",
                                                  dst="::1", dport=8080))
    assert trace.verdict.value == "DROP"
    assert [s.hook for s in trace.steps] == ["ROUTING"]
    emap = _map("ipv6")
    cells = [c for c in emap.cells if c.ingress == "eth0" and str(c.dst) == "::1"]
    assert cells
    assert all(c.reachable is False for c in cells)
