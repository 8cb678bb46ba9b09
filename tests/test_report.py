"""Reports: golden JSON, the table, SARIF 2.1.0 against the OASIS schema, and the CLI's exit
codes (0 clean, 1 findings at or above --fail-on, 2 bad input with one line)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import REPO_ROOT

import natlens
from natlens import report
from natlens.audit import KINDS, audit
from natlens.cli import main

GOLDEN = REPO_ROOT / "tests" / "golden" / "report"
FAULTS = GOLDEN / "faults"
FIXTURES = REPO_ROOT / "fixtures"
SCHEMA = REPO_ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"


def _normalise(text: str, folder: Path) -> Any:
    """The JSON with the snapshot folder's path replaced by ``<snapshot>``."""
    return json.loads(text.replace(str(folder), "<snapshot>"))


def test_golden_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(FAULTS), "--format", "json"]) == 1
    got = _normalise(capsys.readouterr().out, FAULTS)
    expected_file = FAULTS / "expected.json"
    if os.environ.get("NATLENS_UPDATE_GOLDEN"):
        expected_file.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(expected_file.read_text())


def test_json_shape_and_summary() -> None:
    snap = natlens.load(FAULTS)
    data = report.to_json(audit(snap), snap)
    summary = data["summary"]
    assert summary["total"] == len(data["findings"]) == 6
    assert summary["by_severity"] == {"high": 1, "medium": 3, "low": 2}
    assert summary["by_kind"] == {"dead-rule": 2, "duplicate": 1, "ineffective": 1,
                                  "split-backend": 1, "unused-chain": 1}
    assert summary["snapshot"] == str(FAULTS)
    assert "ip-addr.json missing" in summary["notes"]
    for finding in data["findings"]:
        assert {"kind", "severity", "message", "proto", "host_port", "container",
                "rule"} <= finding.keys()
        if finding["rule"] is not None:
            assert {"table", "chain", "index", "text"} <= finding["rule"].keys()
    assert [f["severity"] for f in data["findings"]] == [
        "high", "medium", "medium", "medium", "low", "low"]


def test_table_groups_by_severity() -> None:
    snap = natlens.load(FAULTS)
    text = report.to_table(audit(snap), snap)
    lines = text.splitlines()
    assert lines[0] == f"natlens report for {FAULTS}"
    heads = [ln for ln in lines if ln.split(" (")[0] in ("HIGH", "MEDIUM", "LOW")]
    assert heads == ["HIGH (1)", "MEDIUM (3)", "LOW (2)"]
    assert "6 findings (1 high, 3 medium, 2 low)" in lines
    assert any(ln.startswith("duplicate     filter INPUT #2") for ln in lines)
    assert any("iptables-save.txt:10" in ln for ln in lines)
    assert any("fix: iptables -t filter -D INPUT 2" in ln for ln in lines)


def test_table_without_findings() -> None:
    snap = natlens.load(FIXTURES / "default-bridge-8080")
    text = report.to_table([], snap)
    assert "no findings" in text.splitlines()


def _validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def test_sarif_validates_against_the_schema() -> None:
    snap = natlens.load(FAULTS)
    sarif = report.to_sarif(audit(snap), snap)
    errors = sorted(_validator().iter_errors(sarif), key=lambda e: list(e.path))
    assert errors == [], "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_log() -> None:
    """The schema is strict enough to catch mistakes (so the test above can fail)."""
    snap = natlens.load(FAULTS)
    sarif = report.to_sarif(audit(snap), snap)
    sarif["runs"][0]["results"][0]["level"] = "high"
    assert not _validator().is_valid(sarif)


def test_sarif_content() -> None:
    snap = natlens.load(FAULTS)
    sarif = report.to_sarif(audit(snap), snap)
    assert sarif["version"] == "2.1.0"
    (run,) = sarif["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "natlens"
    assert [r["id"] for r in driver["rules"]] == list(KINDS)
    assert all(r["help"]["text"] for r in driver["rules"])
    assert run["originalUriBaseIds"]["SNAPSHOT"]["uri"] == FAULTS.resolve().as_uri() + "/"
    levels = [r["level"] for r in run["results"]]
    assert levels == ["error", "warning", "warning", "warning", "note", "note"]
    dup = next(r for r in run["results"] if r["ruleId"] == "duplicate")
    assert driver["rules"][dup["ruleIndex"]]["id"] == "duplicate"
    (loc,) = dup["locations"]
    assert loc["physicalLocation"]["artifactLocation"] == {"uri": "iptables-save.txt",
                                                          "uriBaseId": "SNAPSHOT"}
    assert loc["physicalLocation"]["region"]["startLine"] == 10
    assert loc["logicalLocations"][0]["fullyQualifiedName"] == "filter/INPUT/2"
    assert dup["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 9
    ip6 = next(r for r in run["results"] if "ip6 " in r["message"]["text"])
    assert ip6["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "ip6/filter/INPUT/2"


def test_sarif_for_a_single_file_without_findings(tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    snap = natlens.load(rules)
    sarif = report.to_sarif(audit(snap), snap)
    assert sarif["runs"][0]["results"] == []
    assert _validator().is_valid(sarif)


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_clean_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(FIXTURES / "default-bridge-8080")]) == 0
    out = capsys.readouterr().out
    assert "no findings" in out.splitlines()


def test_cli_findings_exit_1_at_or_above_fail_on(capsys: pytest.CaptureFixture[str]) -> None:
    planted = str(FIXTURES / "planted-faults")
    # planted-faults: high stale/shadowed, medium ineffective, low duplicate
    assert main(["report", planted]) == 1
    assert main(["report", str(FIXTURES / "default-bridge-8080"), "--fail-on", "low"]) == 0
    assert main(["report", planted, "--fail-on", "high"]) == 1
    assert main(["report", str(FAULTS), "--fail-on", "high", "--format", "sarif"]) == 1
    capsys.readouterr()


def test_cli_sarif_output_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    main(["report", str(FAULTS), "--format", "sarif"])
    assert _validator().is_valid(json.loads(capsys.readouterr().out))


def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT --bogus-option 1 -j ACCEPT\nCOMMIT\n")
    assert main(["report", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"natlens: error: {bad}:3")
    assert "Traceback" not in captured.err


def test_cli_missing_path_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "/nonexistent/snapshot"]) == 2
    assert capsys.readouterr().err == (
        "natlens: error: /nonexistent/snapshot: no such file or directory\n")


def test_cli_bad_fail_on_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", str(FAULTS), "--fail-on", "critical"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--fail-on" in err


def test_cli_lenient(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loose = tmp_path / "loose.txt"
    loose.write_text("*filter\n:INPUT ACCEPT [0:0]\n"
                     "-A INPUT -m comment --comment two words -j ACCEPT\nCOMMIT\n")
    assert main(["report", str(loose)]) == 2
    assert main(["report", str(loose), "--lenient"]) == 0
    assert "warning" in capsys.readouterr().err


def test_table_names_container_and_port() -> None:
    from natlens.audit import Finding, Severity

    finding = Finding("missing", Severity.HIGH, "no DNAT serves it", proto="tcp", host_port=8080,
                      container="web")
    lines = report.to_table([finding]).splitlines()
    assert lines[0] == "HIGH (1)"
    assert any(ln.startswith("missing  -") and ln.endswith("[container web, tcp/8080]")
               for ln in lines)
    assert any(ln.strip() == "no DNAT serves it" for ln in lines)


def test_cli_report_live_captures_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("live capture needs root")
    status = main(["report", "--live", "--format", "json", "--fail-on", "high"])
    data = json.loads(capsys.readouterr().out)
    assert status in (0, 1)
    assert data["summary"]["snapshot"] == "live host"
    assert any("backend" in note for note in data["summary"]["notes"])


def test_cli_report_needs_path_or_live(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report"]) == 2
    assert capsys.readouterr().err == (
        "natlens: error: report needs a PATH, --example, or --live to capture this host\n")
    assert main(["report", str(FIXTURES / "default-bridge-8080"), "--live"]) == 2
