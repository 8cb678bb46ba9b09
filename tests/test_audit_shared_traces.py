"""The audit's checks reuse outcomes between containers the rules cannot tell apart
(``natlens.audit._docker_view.SharedTraces``, on the exposure map's ``Sharing``): the findings
are the same as when every packet is traced, on generated many-container hosts whose rules
give no finding, a finding for every container (what-if traces refused or accepted in INPUT,
a port caught before Docker's DNAT), or tell some containers apart."""

from __future__ import annotations

import dataclasses
import functools
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
from natlens.audit import audit
from natlens.audit._docker_view import shared_traces
from natlens.audit.findings import AuditContext
from natlens.docker import inventory_from_snapshot
from natlens.exposure import build
from natlens.netfilter import Simulator

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from bench_exposure import write_snapshot
from gen_kube import generate

CONTAINERS = 6

_TWISTS: dict[str, list[tuple[str, str]]] = {
    # (a line the twist goes after, the line added); "^:INPUT ACCEPT" lines are replaced
    "plain": [],
    "input-drop": [(r"^:INPUT ACCEPT \[0:0\]$", ":INPUT DROP [0:0]")],
    "input-allows": [(r"^:INPUT ACCEPT \[0:0\]$", ":INPUT DROP [0:0]"),
                     (r"^-A INPUT -j KUBE-FIREWALL$",
                      "-A INPUT -p tcp -m tcp --dport 10000:10040 -j ACCEPT")],
    "input-allow-one": [(r"^-A INPUT -j KUBE-FIREWALL$",
                         "-A INPUT -p tcp -m tcp --dport 10004 -j ACCEPT")],
    "input-reject": [(r"^-A INPUT -j KUBE-FIREWALL$",
                      "-A INPUT -p tcp -m tcp --dport 10000:10040 -j REJECT")],
    "caught": [(r"^-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER$",
                "-A PREROUTING -p tcp -m tcp --dport 10000:10040 -j REDIRECT --to-ports 3128")],
    "caught-one": [(r"^-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER$",
                    "-A PREROUTING -p tcp -m tcp --dport 10003 -j REDIRECT --to-ports 3128")],
    "forward-drop": [(r"^-A FORWARD -j DOCKER-USER$", "-A FORWARD -d 172.17.0.4/31 -j DROP")],
    "user-drop": [(r"^-A FORWARD -j DOCKER-USER$",
                   "-A FORWARD -p tcp -m tcp --dport 443 -j DROP")],
    "hairpin-drop": [(r"^-A FORWARD -j DOCKER-USER$",
                      "-A FORWARD -i docker0 -o docker0 -j DROP")],
}


def _twisted(folder: Path, twists: list[tuple[str, str]]) -> None:
    for name in ("iptables-save.txt", "ip6tables-save.txt"):
        save = folder / name
        lines = save.read_text().splitlines()
        for after, line in twists:
            spots = [i for i, t in enumerate(lines) if re.search(after, t)]
            if after.startswith("^:"):
                for i in spots[:1]:  # the filter table's chain (the first table)
                    lines[i] = line
                continue
            if name.startswith("ip6") and "172.17." in line:
                continue  # an IPv4 address: the IPv4 rules only
            for i in reversed(spots):
                lines.insert(i + 1, line)
        save.write_text("\n".join(lines) + "\n")


def _findings(folder: Path) -> tuple[list[Any], list[Any], bool]:
    """(findings with shared outcomes, findings tracing every packet, whether any was shared)."""
    snap = natlens.load(folder)
    inv = inventory_from_snapshot(snap)
    alone = audit(snap, exposure=build(snap, inv, snap.simulator, share=False))
    ctx = AuditContext(snap)
    shared = shared_traces(ctx)
    used = shared is not None and any(f.klass for f in shared.sharing.families.values())
    return ([f.to_dict() for f in audit(snap)], [f.to_dict() for f in alone], used)


@functools.cache
def _kube() -> str:
    return generate(40, 2)


@pytest.fixture(scope="module")
def kube_text() -> str:
    return _kube()


@pytest.mark.parametrize("twist", sorted(_TWISTS))
def test_findings_are_the_same_with_shared_traces(twist: str, kube_text: str,
                                                  tmp_path: Path) -> None:
    write_snapshot(tmp_path, CONTAINERS, kube_text)
    _twisted(tmp_path, _TWISTS[twist])
    with_sharing, alone, used = _findings(tmp_path)
    assert used  # the alike containers form classes
    assert with_sharing == alone


@pytest.mark.parametrize(("twist", "kind", "least"), [
    ("input-drop", "bypass", CONTAINERS), ("input-allows", "ineffective", 1),
    ("caught", "shadowed", CONTAINERS)])
def test_a_finding_of_every_container_is_found_for_each(twist: str, kind: str, least: int,
                                                        kube_text: str, tmp_path: Path) -> None:
    write_snapshot(tmp_path, CONTAINERS, kube_text)
    _twisted(tmp_path, _TWISTS[twist])
    with_sharing, alone, _ = _findings(tmp_path)
    assert with_sharing == alone
    assert len({f["container"] for f in with_sharing if f["kind"] == kind}) >= least


_PORTS = [str(p) for p in range(10000, 10000 + 3 * CONTAINERS)] + ["10002:10006", "10010:10030"]
_RULE = st.one_of(
    st.builds(lambda port, verdict: (r"^-A INPUT -j KUBE-FIREWALL$",
                                     f"-A INPUT -p tcp -m tcp --dport {port} -j {verdict}"),
              st.sampled_from(_PORTS), st.sampled_from(["ACCEPT", "DROP", "REJECT"])),
    st.builds(lambda port: (r"^-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER$",
                            f"-A PREROUTING -p tcp -m tcp --dport {port} -j REDIRECT "
                            "--to-ports 3128"), st.sampled_from(_PORTS)),
    st.builds(lambda where: (r"^-A FORWARD -j DOCKER-USER$", f"-A FORWARD -d {where} -j DROP"),
              st.sampled_from(["172.17.0.3/32", "172.17.0.4/31", "172.17.0.0/28"])),
    st.just((r"^:INPUT ACCEPT \[0:0\]$", ":INPUT DROP [0:0]")),
)


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_RULE, min_size=1, max_size=3))
def test_random_rules_never_change_the_findings(rules: list[tuple[str, str]]) -> None:
    kube_text = _kube()
    with tempfile.TemporaryDirectory(prefix="natlens-shared-audit-") as tmp:
        folder = Path(tmp)
        write_snapshot(folder, CONTAINERS, kube_text)
        _twisted(folder, rules)
        with_sharing, alone, _ = _findings(folder)
        assert with_sharing == alone


def test_the_checks_trace_fewer_packets_with_shared_outcomes(
        kube_text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_snapshot(tmp_path, CONTAINERS, kube_text)
    snap = natlens.load(tmp_path)
    emap = build(snap, inventory_from_snapshot(snap), snap.simulator)
    assert emap.sharing is not None
    traced: list[int] = []
    original = Simulator.trace

    def counting(self: Simulator, packet: natlens.Packet, **kw: Any) -> natlens.Trace:
        traced.append(1)
        return original(self, packet, **kw)

    monkeypatch.setattr(Simulator, "trace", counting)  # what-if simulators (copies) count too
    with_sharing = [f.to_dict() for f in audit(snap, exposure=emap)]
    shared_count = len(traced)
    traced.clear()
    alone = [f.to_dict() for f in audit(snap, exposure=dataclasses.replace(emap, sharing=None))]
    assert with_sharing == alone
    assert shared_count * 2 < len(traced)
