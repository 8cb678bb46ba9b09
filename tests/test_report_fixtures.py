"""Golden reports of the real-daemon fixtures: ``natlens report fixtures/NAME --format json``
must print exactly ``tests/golden/report/fixtures/NAME.json``.

The command runs from the repository root with the folder's relative path, as a user would type
it, so the report holds no absolute path (``summary.snapshot`` and each rule's ``source`` are
``fixtures/NAME/...``) and no time. Regenerate with ``NATLENS_UPDATE_GOLDEN=1`` and review each
file against the folder's README.md ("What natlens should say") before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

import natlens
from natlens.audit import Severity, audit
from natlens.cli import main

FIXTURES = REPO_ROOT / "fixtures"
GOLDEN = REPO_ROOT / "tests" / "golden" / "report" / "fixtures"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "iptables-save.txt").is_file())


def _report(name: str, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.chdir(REPO_ROOT)
    code = main(["report", f"fixtures/{name}", "--format", "json"])
    return code, capsys.readouterr().out


def test_every_fixture_has_a_golden() -> None:
    assert NAMES, f"no fixture folders in {FIXTURES}"
    if os.environ.get("NATLENS_UPDATE_GOLDEN"):
        return
    goldens = sorted(p.stem for p in GOLDEN.glob("*.json"))
    assert goldens == NAMES, "a golden report per fixture folder, and none for a missing one"


@pytest.mark.parametrize("name", NAMES)
def test_fixture_report_matches_golden(name: str, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _report(name, monkeypatch, capsys)
    got: dict[str, Any] = json.loads(out)
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("NATLENS_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(out)
    assert golden.is_file(), f"no golden report for fixtures/{name} (NATLENS_UPDATE_GOLDEN=1)"
    assert out == golden.read_text(), f"report of fixtures/{name} differs from {golden.name}"
    # stable: nothing of this machine or this moment in it
    assert str(REPO_ROOT) not in out
    assert got["summary"]["snapshot"] == f"fixtures/{name}"
    for finding in got["findings"]:
        for ref in [finding["rule"], *finding["related"]]:
            if ref is not None and ref["source"] is not None:
                assert ref["source"].startswith(f"fixtures/{name}/"), ref
    # exit status follows the default --fail-on medium
    severe = any(f["severity"] in ("medium", "high") for f in got["findings"])
    assert code == (1 if severe else 0)


def test_report_is_the_same_run_twice(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """No set ordering or time leaks into the JSON."""
    name = "planted-faults" if "planted-faults" in NAMES else NAMES[0]
    first = _report(name, monkeypatch, capsys)
    second = _report(name, monkeypatch, capsys)
    assert first == second


def _kinds(name: str) -> list[tuple[str, str]]:
    data = json.loads((GOLDEN / f"{name}.json").read_text())
    return sorted((f["kind"], f["severity"]) for f in data["findings"])


SOURCE_FINDINGS: dict[str, list[tuple[Any, ...]]] = {
    # firewalld's zone public rejects 8080 in INPUT, but Docker's DNAT sends it through
    # FORWARD, where firewalld accepts DNATed traffic (ct status dnat accept)
    # (the nft rule named as nft names it: table FAMILY NAME, index its handle)
    "firewalld-docker": [("bypass", "medium", 8080, ("inet firewalld", "filter_IN_public", 169,
                                                     "nft-ruleset.json"))],
    # inet filter forward's policy drop: the published port never reaches the container
    "nftables-conf-docker": [("missing", "high", 8080, ("inet filter", "forward", 0,
                                                        "nft-ruleset.json"))],
    # the legacy FORWARD policy drops the published port; the legacy rules, shown as such
    "split-legacy-nft": [("missing", "high", 8080, ("filter", "FORWARD", 0,
                                                    "iptables-legacy-save.txt")),
                         ("split-backend", "high", None, ("filter", "INPUT", 1,
                                                          "iptables-legacy-save.txt"))],
    # Docker 29's own nftables table: clean
    "docker29-nftables": [],
}
"""The findings each README of the fixtures built by scripts/fixtures-netns.sh lists: (kind,
severity, host port, blamed rule as (table, chain, index, file))."""


@pytest.mark.parametrize("name", sorted(SOURCE_FINDINGS))
def test_findings_across_sources_as_the_readme_says(name: str) -> None:
    """The rule blamed is in the file that holds it (the legacy dump for a legacy rule)."""
    if name not in NAMES:
        pytest.skip("fixture absent")
    data = json.loads((GOLDEN / f"{name}.json").read_text())
    got = [(f["kind"], f["severity"], f["host_port"],
            None if f["rule"] is None else (f["rule"]["table"], f["rule"]["chain"],
                                            f["rule"]["index"], Path(f["rule"]["source"]).name))
           for f in data["findings"]]
    assert sorted(got, key=str) == sorted(SOURCE_FINDINGS[name], key=str)
    for f in data["findings"]:
        if f["kind"] in ("bypass", "missing"):
            assert f["container"] == "natlens-web"
            assert f["packet"]["in_interface"] == "eth0"
            assert f["packet"]["final_dst"] == "172.17.0.2:80"
            assert [(r["table"], r["chain"], r["index"]) for r in f["related"]] == [
                ("nat", "DOCKER", 2)]


EXPOSURE_FINDINGS: dict[str, list[tuple[Any, ...]]] = {
    # ufw guards eth0 only: its deny refuses 8080 in INPUT, Docker's DNAT forwards it anyway
    # (from wg0 ufw accepts: no bypass there); ufw's allow for 8443 is never met
    "multi-interface-ufw": [("bypass", "medium", 8080, ("filter", "ufw-user-input", 3)),
                            ("ineffective", "low", 8443, ("filter", "ufw-user-input", 2))],
    # Docker 28's raw drop of direct access comes before the DOCKER-USER allow for wg0
    "docker28-raw-drop": [("ineffective", "medium", None, ("filter", "DOCKER-USER", 1))],
    # --icc=false without docker-proxy: the hairpin is DNATed back into docker0 and dropped
    "icc-no-proxy": [("hairpin-blocked", "medium", 8080, ("filter", "FORWARD", 6))],
    # the IPv4 DOCKER-USER block has no IPv6 counterpart
    "ipv6-docker-user-v4only": [("bypass", "high", 8080, ("filter", "DOCKER-USER", 1))],
    # rule-level faults planted next to Docker's rules
    "planted-rules": [("mismatch", "high", 8081, ("nat", "DOCKER", 3)),
                      ("loop", "high", None, ("filter", "OLD-B", 1)),
                      ("dead-rule", "medium", None, ("filter", "INPUT", 2)),
                      ("unreachable-chain", "low", None, ("filter", "OLD-A", 0)),
                      ("unreachable-chain", "low", None, ("filter", "OLD-B", 0)),
                      ("unreachable-chain", "low", None, ("filter", "OLD-DROP", 0)),
                      ("unused-chain", "low", None, ("filter", "OLD-LOG", 0))],
    # a remote packet to 127.0.0.1 is DNATed to the loopback-only port; direct routing too
    "loopback-9000": [("exposed", "high", 9000, ("filter", "DOCKER", 1)),
                      ("exposed", "high", 9000, ("nat", "DOCKER", 2))],
}
"""The findings each README of the fixtures of scripts/fixtures-exposure.sh (and
loopback-9000) lists: (kind, severity, host port, blamed rule as (table, chain, index))."""


@pytest.mark.parametrize("name", sorted(EXPOSURE_FINDINGS))
def test_exposure_fixtures_as_the_readme_says(name: str) -> None:
    data = json.loads((GOLDEN / f"{name}.json").read_text())
    got = [(f["kind"], f["severity"], f["host_port"],
            None if f["rule"] is None else (f["rule"]["table"], f["rule"]["chain"],
                                            f["rule"]["index"]))
           for f in data["findings"]]
    assert sorted(got, key=str) == sorted(EXPOSURE_FINDINGS[name], key=str)


def test_clean_default_host_has_nothing_at_or_above_medium() -> None:
    """The seed's host (``-p 8080:80`` on the default bridge): no finding of medium or high
    severity, audited now (not read from the golden file)."""
    found = audit(natlens.load(FIXTURES / "default-bridge-8080"))
    assert [str(f) for f in found if f.severity.rank >= Severity.MEDIUM.rank] == []


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("planted-faults",
                                                               "loopback-9000",
                                                               "internal-network",
                                                               *SOURCE_FINDINGS,
                                                               *EXPOSURE_FINDINGS)])
def test_clean_fixtures_have_no_findings(name: str) -> None:
    """Each README says "No findings" for these folders (Docker's own rules are clean)."""
    assert _kinds(name) == []


def test_internal_network_request_is_only_noted() -> None:
    """fixtures/internal-network/README.md: the -p asked for on an internal network is served
    by nothing, said once at low severity (Docker's rules are fine)."""
    assert _kinds("internal-network") == [("missing", "low")]


@pytest.mark.skipif("planted-faults" not in NAMES, reason="fixture absent")
def test_planted_faults_as_the_readme_says() -> None:
    """fixtures/planted-faults/README.md: stale 8090, shadowed 8081, duplicate 8082,
    ineffective DOCKER-USER 8080; no missing."""
    data = json.loads((GOLDEN / "planted-faults.json").read_text())
    found = {(f["kind"], f["host_port"], f["rule"]["table"], f["rule"]["chain"],
              f["rule"]["index"]) for f in data["findings"]}
    assert found == {
        ("stale", 8090, "nat", "DOCKER", 1),
        ("shadowed", 8081, "nat", "PREROUTING", 2),
        ("duplicate", 8082, "nat", "PREROUTING", 1),
        ("ineffective", 8080, "filter", "DOCKER-USER", 1),
    }


@pytest.mark.skipif("loopback-9000" not in NAMES, reason="fixture absent")
def test_loopback_fixture_is_exposed_as_the_readme_says() -> None:
    """fixtures/loopback-9000/README.md: the container port is reachable by address from
    outside although published on 127.0.0.1 only, and from outside at 127.0.0.1 itself
    through Docker's DNAT; no stale, missing or shadowed."""
    assert _kinds("loopback-9000") == [("exposed", "high"), ("exposed", "high")]
    data = json.loads((GOLDEN / "loopback-9000.json").read_text())
    via_dnat, finding = sorted(data["findings"], key=lambda f: f["packet"]["dst"])
    assert via_dnat["packet"]["dst"] == "127.0.0.1"
    assert via_dnat["packet"]["in_interface"] == "eth0"
    assert via_dnat["fix"] == "iptables -t raw -I PREROUTING ! -i lo -d 127.0.0.0/8 -j DROP"
    assert finding["container"] == "natlens-web"
    assert finding["host_port"] == 9000
    assert finding["packet"]["dst"] == "172.17.0.2"
    assert finding["packet"]["in_interface"] == "eth0"
    assert (finding["packet"]["verdict"], finding["packet"]["final_dst"]) == ("ACCEPT",
                                                                             "172.17.0.2:80")


def test_goldens_name_existing_folders() -> None:
    for path in GOLDEN.glob("*.json"):
        assert (FIXTURES / path.stem).is_dir(), f"{path.name}: no fixtures/{path.stem}"
        assert Path(path).read_text().endswith("\n")


def test_firewalld_zone_is_bypassed_by_the_published_port() -> None:
    """fixtures/firewalld-docker: zone public (eth0) does not open 8080, yet Docker's DNAT
    sends it through FORWARD, where firewalld's `ct status dnat accept` lets it pass: the
    exposure map's eth0 cell reaches the container, and the audit says bypass."""
    data = json.loads((GOLDEN / "firewalld-docker.json").read_text())
    bypass = [f for f in data["findings"] if f["kind"] == "bypass"]
    assert [(f["container"], f["host_port"]) for f in bypass] == [("natlens-web", 8080)]
    assert "inet firewalld filter_IN_public" in bypass[0]["message"]  # the refusing nft chain
    cells = [c for c in data["exposure"]["cells"] if c["ingress"] == "eth0"
             and c["port"] == 8080 and c["dst"] == "192.0.2.2"]
    assert cells
    assert all(c["reachable"] for c in cells)

