"""The real-world cases (``../shared/cases/real-world/``): pastes from public bug reports, each
with the right answer its README gives (trace verdict, final destination, connection outcome,
findings and their absence). Each case is read through the ``cases`` fixture and run through the
command line, as a user would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from natlens.cli import main

Run = tuple[int, Any]


def _case(cases: Path, prefix: str) -> Path:
    found = sorted((cases / "real-world").glob(f"{prefix}-*"))
    assert len(found) == 1, f"real-world case {prefix} not found (or ambiguous)"
    return found[0]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Any:
    """``run(*argv)`` → (exit status, parsed JSON output or the text)."""

    def _run(*argv: str | Path) -> Run:
        status = main([str(a) for a in argv])
        out = capsys.readouterr().out
        try:
            return status, json.loads(out)
        except json.JSONDecodeError:
            return status, out

    return _run


def _trace(run: Any, path: Path, *args: str) -> dict[str, Any]:
    status, data = run("trace", path, *args, "--format", "json")
    assert status in (0, 1), data  # 1: the packet does not get through
    assert isinstance(data, dict)
    return data


def _report(run: Any, path: Path, *args: str) -> tuple[int, list[dict[str, Any]], Any]:
    status, data = run("report", path, *args, "--format", "json")
    assert isinstance(data, dict), data
    return status, data["findings"], data["summary"]


def _verdicts(trace: dict[str, Any]) -> set[str]:
    return {b["verdict"] for b in trace["branches"]} or {trace["verdict"]}


def _last_rule(trace: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = trace["steps"][-1]
    return step


# -- 01: DOCKER-FORWARD has 0 references ----------------------------------------------------------


def test_01_orphaned_docker_forward_traces_drop_by_forward_policy(cases: Path, run: Any) -> None:
    folder = _case(cases, "01")
    egress = _trace(run, folder, "--in", "docker0", "--src", "172.17.0.2", "--dst",
                    "198.51.100.10", "--proto", "tcp", "--dport", "443")
    assert (egress["verdict"], egress["path"]) == ("DROP", "forward")
    assert (_last_rule(egress)["table"], _last_rule(egress)["chain"],
            _last_rule(egress)["target"]) == ("filter", "FORWARD", "DROP")
    assert _verdicts(egress) == {"DROP"}  # whatever the tables not pasted do
    lan = _trace(run, folder, "--in", "eth0", "--src", "192.168.1.50", "--dst", "172.17.0.2",
                 "--proto", "tcp", "--dport", "80")
    assert (lan["verdict"], _last_rule(lan)["chain"]) == ("DROP", "FORWARD")
    assert egress["connection"]["established"] is False


def test_01_without_host_addresses_egress_is_not_assumed_local(cases: Path, run: Any) -> None:
    single = _case(cases, "01") / "iptables-save.txt"
    egress = _trace(run, single, "--in", "docker0", "--src", "172.17.0.2", "--dst",
                    "198.51.100.10", "--proto", "tcp", "--dport", "443")
    # headline: forwarded and dropped; "delivered locally" is only one reading among others
    assert (egress["verdict"], egress["path"]) == ("DROP", "forward")
    assert any("whether 198.51.100.10 is an address of this host" in u
               for u in egress["uncertain"])
    assert not any("assumed to be an address of this host" in a
                   for a in egress["assumptions"])
    assert all(b["probability"] is None for b in egress["branches"])  # doubt, not chance
    stated = _trace(run, single, "--in", "docker0", "--src", "172.17.0.2", "--dst",
                    "198.51.100.10", "--dport", "443", "--iface", "eth0=192.168.1.10/24",
                    "--iface", "docker0=172.17.0.1/16")
    assert not any("is an address of this host" in u for u in stated["uncertain"])
    assert {b["path"] for b in stated["branches"]} <= {"forward"}


@pytest.mark.parametrize("variant", [
    ("",), ("docker28-save-form",), ("literal-paste.txt", "--lenient")],
    ids=["listing-folder", "docker28-save-form", "literal-paste"])
def test_01_orphaned_docker_forward_is_a_medium_finding_with_the_jump_as_fix(
        cases: Path, run: Any, variant: tuple[str, ...]) -> None:
    where = _case(cases, "01") / variant[0] if variant[0] else _case(cases, "01")
    status, findings, _ = _report(run, where, *variant[1:])
    orphan = [f for f in findings if f["rule"] and f["rule"]["chain"] == "DOCKER-FORWARD"
              and f["kind"] == "unused-chain"]
    assert len(orphan) == 1
    assert orphan[0]["severity"] == "medium"
    assert "-I FORWARD" in orphan[0]["fix"]
    assert orphan[0]["fix"].endswith("-j DOCKER-FORWARD")
    assert "-X" not in orphan[0]["fix"]
    assert status == 1  # --fail-on medium (the default)


def test_01_literal_paste_is_refused_strict_and_read_lenient(cases: Path, run: Any) -> None:
    paste = _case(cases, "01") / "literal-paste.txt"
    status, out = run("parse", paste)
    assert status == 2
    status, out = run("parse", paste, "--lenient", "--format", "json")
    assert status == 0
    assert [c["name"] for t in out["tables"] for c in t["chains"]] == ["FORWARD",
                                                                       "DOCKER-FORWARD"]


# -- 03: stale DNAT ahead of the live one, a nat listing without -n ------------------------------


def test_03_traces_follow_the_first_dnat_and_loopback_goes_to_the_proxy(cases: Path,
                                                                         run: Any) -> None:
    folder = _case(cases, "03")
    # a listing without -n: read as far as it tells, with a warning saying to list with -n
    host = _trace(run, folder, "--local-origin", "--src", "10.0.1.20", "--dst", "10.0.1.20",
                  "--dport", "1336")
    assert host["final_dst"] == "172.17.0.154:8080"
    assert all(b["probability"] is None for b in host["branches"])
    lo = _trace(run, folder, "--local-origin", "--src", "127.0.0.1", "--dst", "127.0.0.1",
                "--dport", "1336")
    assert (lo["path"], lo["final_dst"]) == ("local", "127.0.0.1:1336")
    assert not any(s["target"] == "DNAT" for s in lo["steps"])
    assert any("docker-proxy" in n for n in lo["notes"])
    _status, text = run("trace", folder, "--local-origin", "--src", "10.0.1.20", "--dst",
                        "10.0.1.20", "--dport", "1336")
    assert "p=1" not in text
    assert "-v" in text


def test_03_listing_without_n_warns_once_with_what_to_run(cases: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    paste = _case(cases, "03") / "iptables-save.txt"
    status = main(["report", str(paste), "--format", "json"])
    err = capsys.readouterr().err.splitlines()
    assert status in (0, 1)
    assert [line for line in err if "listing without -n" in line] == [
        f"natlens: warning: {paste}:3: listing without -n: names instead of addresses "
        "('anywhere'), host names read as unknown; list again with 'iptables -L -n -v' "
        "(add -x for exact counters)"]


def test_03_report_has_stale_and_nothing_from_the_filter_table(cases: Path, run: Any) -> None:
    _status, findings, summary = _report(run, _case(cases, "03"))
    kinds = [(f["kind"], f["severity"]) for f in findings]
    assert ("stale", "high") in kinds
    stale = next(f for f in findings if f["kind"] == "stale")
    assert "172.17.0.154" in stale["message"]
    assert not any(f["kind"] == "exposed" for f in findings)  # filter was not pasted
    shadowed = [f for f in findings if f["kind"] == "shadowed"]
    assert [(f["container"], f["host_port"], f["rule"]["index"]) for f in shadowed] == [
        ("app_web_1", 1336, 1)]
    judged = summary["judged_from"]["ipv4"]
    assert judged["tables"] == ["nat"]
    assert "filter" in judged["not_in_input"]


# -- 06: iptables -S interrupted by "Parsing nftables rule failed" -------------------------------


def test_06_interrupted_dump_is_read_and_said_incomplete(cases: Path, run: Any) -> None:
    paste = _case(cases, "06") / "iptables-S.txt"
    status, _out = run("parse", paste, "--format", "json")
    assert status == 0
    status, _findings, summary = _report(run, paste)
    judged = summary["judged_from"]["ipv4"]
    assert {(i["table"], i["chain"]) for i in judged["incomplete"]} == {
        ("filter", "ts-forward"), ("filter", "ts-input")}
    assert any("nft list ruleset" in n for n in summary["notes"])
    trace = _trace(run, paste, "--in", "docker0", "--src", "172.17.0.2", "--dst",
                   "100.101.102.103", "--dport", "443")
    assert any("ts-forward" in u and "shown in part" in u for u in trace["uncertain"])
    assert {"ACCEPT", "DROP"} <= _verdicts(trace)  # ts-forward may drop what the rest accepts
    assert any(any("ts-forward" in a and "drops it" in a for a in b["assumed"])
               for b in trace["branches"])


def test_06_error_lines_removed_does_not_assume_a_local_destination(cases: Path,
                                                                   run: Any) -> None:
    paste = _case(cases, "06") / "iptables-S-error-lines-removed.txt"
    trace = _trace(run, paste, "--in", "docker0", "--src", "172.17.0.2", "--dst",
                   "100.101.102.103", "--dport", "443")
    assert trace["path"] == "forward"
    assert not any("assumed to be an address of this host" in a for a in trace["assumptions"])


# -- 07: leftover Docker MASQUERADE -------------------------------------------------------------


def test_07_client_traffic_is_masqueraded_by_the_leftover_rule(cases: Path, run: Any) -> None:
    folder = _case(cases, "07")
    trace = _trace(run, folder, "--in", "eth0", "--src", "172.17.252.10", "--dst",
                   "10.233.70.5", "--dport", "80")
    masq = [s for s in trace["steps"] if s["target"] == "MASQUERADE"]
    assert [(s["table"], s["chain"], s["rule"]) for s in masq] == [("nat", "POSTROUTING", 1)]
    assert not trace["final_src"].startswith("172.17.252.10")
    assert "address of None" not in json.dumps(trace)


def test_07_report_flags_the_leftover_masquerade(cases: Path, run: Any) -> None:
    _status, findings, _ = _report(run, _case(cases, "07"))
    masq = [f for f in findings if f["rule"] and f["rule"]["chain"] == "POSTROUTING"]
    assert [(f["kind"], f["severity"]) for f in masq] == [("stale", "high")]
    assert "docker0" in masq[0]["message"]
    assert "172.17.252.0/24" in masq[0]["message"]
    assert masq[0]["fix"] == "iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j " \
        "MASQUERADE"


# -- 09: DOCKER-USER restored before dockerd: no jump -------------------------------------------


def test_09_unjumped_docker_user(cases: Path, run: Any) -> None:
    folder = _case(cases, "09")
    _status, findings, _ = _report(run, folder)
    unused = [f for f in findings if f["kind"] == "unused-chain"]
    assert [(f["rule"]["chain"], f["severity"]) for f in unused] == [("DOCKER-USER", "medium")]
    assert unused[0]["fix"] == "iptables -t filter -I FORWARD 1 -j DOCKER-USER"
    trace = _trace(run, folder, "--in", "docker0", "--src", "172.17.0.2", "--dst",
                   "192.168.1.10", "--dport", "22")
    assert trace["verdict"] == "ACCEPT"
    accept = [s for s in trace["steps"] if s["table"] == "filter" and s["target"] == "ACCEPT"]
    assert accept[-1]["chain"] == "FORWARD"
    assert "-i docker0 ! -o docker0" in accept[-1]["text"]
    assert trace["connection"]["established"] is True


# -- 10: a single-chain listing -----------------------------------------------------------------


def test_10_single_chain_listing_reports_only_the_zero_references(cases: Path,
                                                                  run: Any) -> None:
    case = _case(cases, "10")
    status, findings, summary = _report(run, case / "iptables-L-DOCKER-USER.txt")
    assert [(f["kind"], f["rule"]["chain"], f["severity"]) for f in findings] == [
        ("unused-chain", "DOCKER-USER", "medium")]
    assert findings[0]["fix"].endswith("-I FORWARD 1 -j DOCKER-USER")
    assert summary["judged_from"]["ipv4"]["partial"] == {"filter": ["DOCKER-USER"]}
    status, findings, _ = _report(run, case / "iptables-L-DOCKER-USER-1-reference.txt")
    assert findings == []
    assert status == 0


# -- 11: ufw-docker blocks a published port; repeated *filter sections ---------------------------


@pytest.mark.parametrize("where", ["", "two-blocks"])
def test_11_published_port_is_logged_and_dropped(cases: Path, run: Any, where: str) -> None:
    folder = _case(cases, "11") / where if where else _case(cases, "11")
    trace = _trace(run, folder, "--in", "enp6s0", "--src", "198.51.100.7", "--dst",
                   "203.0.113.10", "--dport", "81")
    chains = [(s["chain"], s["target"]) for s in trace["steps"] if s["table"] == "filter"]
    assert ("DOCKER-USER", "ufw-docker-logging-deny") in chains
    assert chains[-2:] == [("ufw-docker-logging-deny", "LOG"), ("ufw-docker-logging-deny",
                                                                "DROP")]
    assert (trace["verdict"], trace["final_dst"]) == ("DROP", "172.19.0.4:80")
    status, _findings, _ = _report(run, folder)  # no crash on the merged sections
    assert status in (0, 1)


def test_11_repeated_table_merges_like_noflush(cases: Path, run: Any) -> None:
    case = _case(cases, "11")
    status, out = run("parse", case / "dup-table-semantics.txt")
    assert status == 0
    assert "-A X -j Y" in out
    assert "-A FORWARD -j X" in out
    assert ":Y - [0:0]" in out
    status, _ = run("parse", case / "dup-table-semantics.txt", "--restore-flush")
    assert status == 2  # iptables-restore without -n refuses it too
    status, _findings, _ = _report(run, case / "crash-min-lenient-duplicate-table.txt")
    assert status in (0, 1)


# -- 12: host -> [::1]:8000 DNATed out of the bridge --------------------------------------------


def test_12_loopback_dnat_off_host_cannot_connect(cases: Path, run: Any) -> None:
    folder = _case(cases, "12")
    lan = _trace(run, folder, "--in", "eth0", "--src", "2001:db8::99", "--dst", "2001:db8::10",
                 "--dport", "8000")
    assert (lan["verdict"], lan["final_dst"]) == ("ACCEPT", "[fd01::2]:80")
    assert lan["connection"]["established"] is True
    host = _trace(run, folder, "--local-origin", "--src", "2001:db8::10", "--dst",
                  "2001:db8::10", "--dport", "8000")
    assert (host["verdict"], host["final_dst"]) == ("ACCEPT", "[fd01::2]:80")
    assert host["connection"]["established"] is True
    lo = _trace(run, folder, "--local-origin", "--src", "::1", "--dst", "::1", "--dport",
                "8000")
    assert lo["final_dst"] == "[fd01::2]:80"
    assert lo["connection"]["established"] is False
    assert "loopback" in lo["connection"]["why"]
    v4 = _trace(run, folder / "ipv4-analogue", "--local-origin", "--src", "127.0.0.1", "--dst",
                "127.0.0.1", "--dport", "8000")
    assert v4["connection"]["established"] is False


def test_12_report_flags_loopback_dnat(cases: Path, run: Any) -> None:
    status, findings, _ = _report(run, _case(cases, "12"))
    flagged = [f for f in findings if f["kind"] == "hairpin-blocked"]
    assert flagged
    assert all("::1" in f["message"] or "127.0.0.1" in f["message"]
                           for f in flagged)
    assert status == 1


# -- 13: Tailscale stateful filtering drops container -> tailnet ---------------------------------


def test_13_stateful_filter_drops_and_workaround_accepts(cases: Path, run: Any) -> None:
    case = _case(cases, "13")
    args = ("--in", "docker0", "--src", "172.17.0.2", "--dst", "100.101.102.103", "--dport",
            "443")
    dropped = _trace(run, case, *args)
    assert dropped["verdict"] == "DROP"
    assert (_last_rule(dropped)["chain"], _last_rule(dropped)["rule"]) == ("ts-forward", 4)
    assert dropped["connection"]["established"] is False
    fixed = _trace(run, case / "workaround", *args)
    assert fixed["verdict"] == "ACCEPT"
    assert fixed["final_src"] == "100.101.1.1"
    assert any(s["target"] == "MASQUERADE" for s in fixed["steps"])
