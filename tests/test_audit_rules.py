"""Rule-only audit checks: each kind has a small dump that triggers it and one that must not;
real layouts (Docker's documented rule sets, the snapshot fixtures) must stay quiet."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import natlens
from natlens import graph
from natlens.audit import (
    CHECKS,
    KINDS,
    RULE_CHECKS,
    AuditContext,
    Finding,
    RuleRef,
    Severity,
    audit,
    audit_text,
    backends,
    coverage,
    duplicates,
    findings,
    graph_checks,
)
from natlens.audit.backends import OTHER_BACKEND_FILES, check_split_backend
from natlens.audit.coverage import check_dead_rules, covers
from natlens.audit.duplicates import check_duplicate_nat, check_duplicate_rules
from natlens.audit.graph_checks import (
    check_docker_user_order,
    check_loops,
    check_missing_chains,
    check_unreachable_chains,
    check_unused_chains,
)
from natlens.model import Family

FIXTURES = REPO_ROOT / "fixtures"


def _filter(*rules: str, chains: str = "", policy: str = "ACCEPT") -> str:
    decl = "".join(f":{c} - [0:0]\n" for c in chains.split())
    body = "".join(f"-A {r}\n" for r in rules)
    return (f"*filter\n:INPUT {policy} [0:0]\n:FORWARD {policy} [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f"{decl}{body}COMMIT\n")


def _where(findings: list[Finding]) -> list[tuple[str, str, str | None, int | None]]:
    return [(f.kind, f.severity.value, f.rule.chain if f.rule else None,
             f.rule.index if f.rule else None) for f in findings]


@pytest.mark.parametrize("module", [graph, findings, graph_checks, duplicates, coverage, backends],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, verbose=False)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


# -- findings -----------------------------------------------------------------------------------


def test_severity_is_ordered() -> None:
    assert Severity.LOW < Severity.MEDIUM < Severity.HIGH
    assert Severity.HIGH >= Severity.HIGH
    assert sorted([Severity.HIGH, Severity.LOW, Severity.MEDIUM]) == [
        Severity.LOW, Severity.MEDIUM, Severity.HIGH]
    assert Severity("medium") is Severity.MEDIUM


def test_finding_kind_must_be_known() -> None:
    with pytest.raises(ValueError, match="unknown finding kind 'dupe'"):
        Finding("dupe", Severity.LOW, "x")


def test_kinds_are_design_kinds() -> None:
    assert set(KINDS) == {"stale", "shadowed", "mismatch", "missing", "ineffective", "exposed",
                          "bypass", "duplicate", "unreachable-chain", "loop", "unused-chain",
                          "dead-rule", "split-backend", "hairpin-blocked"}


def test_finding_json_form() -> None:
    ref = RuleRef("nat", "DOCKER", 3, "-A DOCKER -j RETURN", "x.txt", 40)
    f = Finding("stale", Severity.HIGH, "m", proto="tcp", host_port=8090, rule=ref,
                packet={"dport": 8090})
    assert f.to_dict() == {
        "kind": "stale", "severity": "high", "message": "m", "proto": "tcp", "host_port": 8090,
        "container": None,
        "rule": {"table": "nat", "chain": "DOCKER", "index": 3, "text": "-A DOCKER -j RETURN",
                 "family": "ipv4", "source": "x.txt", "line": 40},
        "related": [], "fix": None, "cis": None, "packet": {"dport": 8090}}
    json.dumps(f.to_dict())
    hash(f)


def test_audit_sorts_by_severity_then_position() -> None:
    findings = audit_text(_filter("INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
                                  "INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
                                  "INPUT -s 10.0.0.0/8 -j DROP",
                                  "INPUT -s 10.1.0.0/16 -j ACCEPT",
                                  "FORWARD -j nowhere", chains="UNUSED"))
    assert _where(findings) == [
        ("ineffective", "high", "FORWARD", 1),
        ("dead-rule", "medium", "INPUT", 4),
        ("duplicate", "low", "INPUT", 2),
        ("unused-chain", "low", "UNUSED", 0),
    ]


def test_audit_runs_only_the_given_checks() -> None:
    text = _filter("INPUT -j ACCEPT", "INPUT -j ACCEPT", chains="UNUSED")
    assert {f.kind for f in audit_text(text, check_unused_chains)} == {"unused-chain"}
    assert {f.kind for f in audit_text(text)} == {"unused-chain", "duplicate"}


def test_context_builds_graph_once() -> None:
    ctx = AuditContext(natlens.load(FIXTURES / "planted-faults"))
    assert ctx.graph(Family.IPV4) is ctx.graph(Family.IPV4)
    assert ctx.inventory is None
    assert [rs.family for rs in ctx.rulesets()] == [Family.IPV4]  # ip6tables-save.txt is empty


# -- graph checks -------------------------------------------------------------------------------


def test_loop() -> None:
    text = _filter("INPUT -j A", "A -p tcp -j B", "B -j C", "C -j A", chains="A B C")
    (f,) = audit_text(text, check_loops)
    assert f.kind == "loop"
    assert f.severity is Severity.HIGH
    assert f.message == ("chains jump in a loop: A -> B -> C -> A (iptables-restore refuses "
                         "this table)")
    assert f.rule is not None
    assert (f.rule.chain, f.rule.index, f.rule.text) == ("C", 1, "-A C -j A")
    assert [(r.chain, r.index) for r in f.related] == [("A", 1), ("B", 1)]


def test_no_loop_in_a_diamond() -> None:
    text = _filter("INPUT -j A", "INPUT -j B", "A -j C", "B -j C", chains="A B C")
    assert audit_text(text, check_loops) == []


def test_unused_chain() -> None:
    (f,) = audit_text(_filter("OLD -j DROP", chains="OLD"), check_unused_chains)
    assert (f.kind, f.severity, f.message) == (
        "unused-chain", Severity.LOW, "chain OLD has 1 rule but no rule jumps to it")
    assert f.rule is not None
    assert (f.rule.index, f.rule.text, f.rule.line) == (0, ":OLD - [0:0]", 5)


def test_unused_docker_user_with_rules_is_medium() -> None:
    text = _filter("DOCKER-USER -s 10.0.0.0/8 -j DROP", "DOCKER-USER -j RETURN",
                   chains="DOCKER-USER")
    (f,) = audit_text(text, check_unused_chains)
    assert f.severity is Severity.MEDIUM
    assert f.fix == "iptables -t filter -I FORWARD 1 -j DOCKER-USER"
    empty = _filter("DOCKER-USER -j RETURN", chains="DOCKER-USER")
    assert [g.severity for g in audit_text(empty, check_unused_chains)] == [Severity.LOW]


def test_used_chain_is_not_unused() -> None:
    assert audit_text(_filter("INPUT -j OLD", "OLD -j DROP", chains="OLD"),
                      check_unused_chains) == []


def test_unreachable_chain() -> None:
    text = _filter("A -j B", "B -j C", chains="A B C")
    findings = audit_text(text, check_unreachable_chains)
    assert [(f.kind, f.rule.chain if f.rule else None) for f in findings] == [
        ("unreachable-chain", "B"), ("unreachable-chain", "C")]
    assert findings[0].message == "chain B is only jumped to from chains no packet reaches (A)"
    assert [(r.chain, r.index) for r in findings[0].related] == [("A", 1)]
    # A itself is unused, not unreachable
    assert [f.rule.chain for f in audit_text(text, check_unused_chains) if f.rule] == ["A"]


def test_reachable_chains_are_not_unreachable() -> None:
    assert audit_text(_filter("OUTPUT -j A", "A -j B", chains="A B"),
                      check_unreachable_chains) == []


def test_jump_to_missing_chain() -> None:
    text = _filter("FORWARD -j DOCKER-USR", "FORWARD -g ufw-input", "INPUT -j LOGDROP",
                   chains="DOCKER-USER")
    findings = audit_text(text, check_missing_chains)
    assert [(f.kind, f.severity, f.rule.chain if f.rule else None, f.rule.index if f.rule else 0)
            for f in findings] == [("ineffective", Severity.HIGH, "FORWARD", 1),
                                   ("ineffective", Severity.HIGH, "FORWARD", 2)]
    assert findings[0].message == ("jumps to chain DOCKER-USR, which table filter does not "
                                   "declare (did you mean 'DOCKER-USER'?)")
    assert findings[1].message == "goes to chain ufw-input, which table filter does not declare"


def test_unknown_extension_target_is_not_a_missing_chain() -> None:
    text = _filter("INPUT -p tcp -j SYNPROXY --sack-perm", "INPUT -j TARPIT", "INPUT -j LOGDROP")
    assert audit_text(text, check_missing_chains) == []


DOCKER_FORWARD = ("FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                  "FORWARD -o docker0 -j DOCKER",
                  "FORWARD -i docker0 ! -o docker0 -j ACCEPT",
                  "DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 "
                  "-j ACCEPT",
                  "DOCKER-USER -s 203.0.113.0/24 -j DROP",
                  "DOCKER-USER -j RETURN")


def test_docker_chain_accepting_before_docker_user() -> None:
    text = _filter("FORWARD -o docker0 -j DOCKER", "FORWARD -j DOCKER-USER", *DOCKER_FORWARD,
                   chains="DOCKER DOCKER-USER", policy="DROP")
    (f,) = audit_text(text, check_docker_user_order)
    assert (f.kind, f.severity) == ("ineffective", Severity.MEDIUM)
    assert f.message.startswith("jumps to DOCKER, which accepts forwarded packets before "
                                "FORWARD #2 jumps to DOCKER-USER")
    assert f.rule is not None
    assert (f.rule.chain, f.rule.index) == ("FORWARD", 1)
    assert [(r.chain, r.index) for r in f.related] == [("FORWARD", 2)]


def test_empty_docker_user_behind_accept_is_low() -> None:
    text = _filter("FORWARD -i docker0 -j ACCEPT", "FORWARD -j DOCKER-USER",
                   "DOCKER -o docker0 -j DROP", "DOCKER-USER -j RETURN",
                   chains="DOCKER DOCKER-USER")
    (f,) = audit_text(text, check_docker_user_order)
    assert f.severity is Severity.LOW
    assert f.message.endswith("(DOCKER-USER is empty now)")


@pytest.mark.parametrize("first", [
    "FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",  # DOCKER-USER sees NEW
    "FORWARD -i wg0 -o eth1 -j ACCEPT",  # names no Docker bridge
    "FORWARD -p tcp -j LOG",  # does not accept
    "FORWARD -s 10.0.0.0/8 -j DROP",  # refusing early is no bypass
])
def test_harmless_rules_before_docker_user(first: str) -> None:
    text = _filter(first, "FORWARD -j DOCKER-USER", *DOCKER_FORWARD,
                   chains="DOCKER DOCKER-USER", policy="DROP")
    assert audit_text(text, check_docker_user_order) == []


def test_docker_user_first_is_clean() -> None:
    text = (FIXTURES / "docker-user-policy" / "iptables-save.txt").read_text()
    assert audit_text(text, check_docker_user_order) == []


# -- duplicates ---------------------------------------------------------------------------------


def test_duplicate_with_implicit_and_explicit_protocol_match() -> None:
    text = _filter("INPUT -p tcp --dport 22 -j ACCEPT", "INPUT -p tcp -m tcp --dport 22 -j ACCEPT")
    assert [f.kind for f in audit_text(text)] == ["duplicate"]


def test_duplicate_in_chain_ignores_counters() -> None:
    text = ("*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n"
            "-A PREROUTING -j DOCKER\n"
            "[3:180] -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT "
            "--to-destination 172.17.0.2:80\n"
            "[0:0] -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT "
            "--to-destination 172.17.0.2:80\n"
            "[0:0] -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT "
            "--to-destination 172.17.0.2:80\nCOMMIT\n")
    findings = audit_text(text, check_duplicate_rules)
    assert [(f.rule.index if f.rule else 0, f.related[0].index) for f in findings] == [
        (2, 1), (3, 1)]
    assert (findings[0].proto, findings[0].host_port) == ("tcp", 8080)
    assert findings[0].fix == "iptables -t nat -D DOCKER 2"


@pytest.mark.parametrize("rules", [
    ("INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "INPUT -p tcp -m tcp --dport 23 -j ACCEPT"),
    ("INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "INPUT -p tcp -m tcp --dport 22 -j DROP"),
    ("INPUT -m statistic --mode random --probability 0.5 -j DROP",
     "INPUT -m statistic --mode random --probability 0.5 -j DROP"),
    ("INPUT -m limit --limit 5/min -j LOG", "INPUT -m limit --limit 5/min -j LOG"),
])
def test_not_duplicates(rules: tuple[str, ...]) -> None:
    assert audit_text(_filter(*rules), check_duplicate_rules) == []


def test_duplicate_nat_across_chains() -> None:
    findings = audit(natlens.load(FIXTURES / "planted-faults"), (check_duplicate_nat,))
    (f,) = findings
    assert f.rule is not None
    assert (f.kind, f.rule.chain, f.rule.index, f.related[0].chain, f.related[0].index) == (
        "duplicate", "PREROUTING", 1, "DOCKER", 5)
    assert (f.proto, f.host_port) == ("tcp", 8082)


def test_same_nat_in_unrelated_chains_is_not_duplicate() -> None:
    text = ("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            "-A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128\n"
            "-A OUTPUT -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128\nCOMMIT\n")
    assert audit_text(text, check_duplicate_nat) == []


# -- dead rules ---------------------------------------------------------------------------------


COVERED = [
    # (earlier, later)
    ("-s 10.0.0.0/8 -j DROP", "-s 10.1.2.3/32 -p tcp -m tcp --dport 22 -j ACCEPT"),
    ("-j ACCEPT", "-i eth0 -j DROP"),
    ("-i eth+ -j DROP", "-i eth0 -j ACCEPT"),
    ("-i eth+ -j DROP", "-i eth0+ -j ACCEPT"),
    ("! -i docker0 -j DROP", "-i eth0 -j ACCEPT"),
    ("! -i docker0+ -j DROP", "! -i docker+ -j ACCEPT"),
    ("! -s 10.0.0.0/8 -j DROP", "-s 192.168.0.0/16 -j ACCEPT"),
    ("! -s 10.0.0.0/16 -j DROP", "! -s 10.0.0.0/8 -j ACCEPT"),
    ("! -p tcp -j DROP", "-p udp -j ACCEPT"),
    ("-p tcp -m tcp --dport 1000:2000 -j DROP", "-p tcp -m tcp --dport 1500 -j ACCEPT"),
    ("-p tcp -m multiport --dports 80,443,8000:9000 -j DROP",
     "-p tcp -m multiport --dports 443,8080 -j ACCEPT"),
    ("-p tcp -m tcp ! --dport 22 -j DROP", "-p tcp -m tcp --dport 80 -j ACCEPT"),
    ("-p tcp -m tcp --dport 80 -j DROP",
     "-p tcp -m tcp --dport 80 -m tcp --sport 1024:65535 -j ACCEPT"),
    ("-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
     "-m state --state ESTABLISHED -j DROP"),
    ("-m conntrack ! --ctstate NEW -j ACCEPT", "-m conntrack ! --ctstate NEW,INVALID -j DROP"),
    ("-m addrtype --dst-type LOCAL,BROADCAST -j DROP",
     "-m addrtype --dst-type LOCAL -p udp -j ACCEPT"),
    ("-m mark --mark 0x1/0x1 -j RETURN", "-s 10.0.0.1/32 -m mark --mark 0x1/0x1 -j DROP"),
    ("-m comment --comment x -j DROP", "-p icmp -j ACCEPT"),
    ("-p tcp -j DROP", "-p tcp -m recent --rcheck -j ACCEPT"),  # later may be stateful
    ("-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP",
     "-p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT"),
]

NOT_COVERED = [
    ("-s 10.1.0.0/16 -j DROP", "-s 10.0.0.0/8 -j ACCEPT"),
    ("-s 10.0.0.0/8 -j DROP", "-j ACCEPT"),
    ("-i eth0 -j DROP", "-i eth+ -j ACCEPT"),
    ("! -i docker0 -j DROP", "! -i eth0 -j ACCEPT"),
    ("! -i eth+ -j DROP", "-i eth0 -j ACCEPT"),
    ("! -i docker+ -j DROP", "! -i docker0+ -j ACCEPT"),
    ("! -s 10.0.0.0/8 -j DROP", "-s 10.1.0.0/16 -j ACCEPT"),
    ("! -s 10.0.0.0/8 -j DROP", "! -s 10.0.0.0/16 -j ACCEPT"),
    ("-p tcp -j DROP", "-j ACCEPT"),
    ("-p tcp -j DROP", "! -p udp -j ACCEPT"),
    ("-p tcp -m tcp --dport 1000:2000 -j DROP", "-p tcp -m tcp --dport 1500:2500 -j ACCEPT"),
    ("-p tcp -m multiport --dports 80,443 -j DROP", "-p tcp -j ACCEPT"),
    ("-p tcp -m tcp --dport 80 -j DROP", "-p tcp -m tcp ! --dport 22 -j ACCEPT"),
    ("-m conntrack --ctstate ESTABLISHED -j ACCEPT", "-m conntrack --ctstate NEW -j DROP"),
    ("-m conntrack ! --ctstate NEW,INVALID -j ACCEPT", "-m conntrack ! --ctstate NEW -j DROP"),
    ("-m conntrack ! --ctstate DNAT -j ACCEPT", "-m conntrack --ctstate NEW -j DROP"),
    ("-m mark --mark 0x1/0x1 -j RETURN", "-m mark --mark 0x3/0x3 -j DROP"),
    # stateful, random or unknown matches never cover
    ("-m statistic --mode random --probability 0.5 -j DROP", "-j ACCEPT"),
    ("-m limit --limit 5/min -j ACCEPT", "-m limit --limit 5/min -j DROP"),
    ("-m recent --name x --rcheck -j DROP", "-m recent --name x --rcheck -p tcp -j ACCEPT"),
    ("-m set --match-set bad src -j DROP", "-m set --match-set bad src -p tcp -j ACCEPT"),
    # not terminating
    ("-j LOG", "-p tcp -j ACCEPT"),
    ("-j MARK --set-xmark 0x1/0xffffffff", "-p tcp -j ACCEPT"),
    ("-j LOGGING", "-p tcp -j ACCEPT"),  # -j CHAIN may return
]


@pytest.mark.parametrize(("earlier", "later"), COVERED)
def test_dead_rule(earlier: str, later: str) -> None:
    text = _filter(f"INPUT {earlier}", f"INPUT {later}", chains="LOGGING")
    (f,) = (f for f in audit_text(text, check_dead_rules))
    assert f.kind == "dead-rule"
    assert f.rule is not None
    assert (f.rule.chain, f.rule.index, f.related[0].index) == ("INPUT", 2, 1)


@pytest.mark.parametrize(("earlier", "later"), NOT_COVERED)
def test_not_dead(earlier: str, later: str) -> None:
    text = _filter(f"INPUT {earlier}", f"INPUT {later}", "LOGGING -j RETURN", chains="LOGGING")
    assert audit_text(text, check_dead_rules) == []


def test_goto_ends_the_chain() -> None:
    text = _filter("INPUT -i eth0 -g LOGGING", "INPUT -i eth0 -p tcp -j ACCEPT",
                   "LOGGING -j LOG", chains="LOGGING")
    (f,) = audit_text(text, check_dead_rules)
    assert f.message == "never matches: filter INPUT #1 (-g LOGGING) catches all its packets first"


def test_same_target_is_low_different_target_medium() -> None:
    text = _filter("INPUT -s 10.0.0.0/8 -j DROP", "INPUT -s 10.1.0.0/16 -j DROP",
                   "INPUT -s 10.2.0.0/16 -j ACCEPT")
    assert sorted((f.rule.index if f.rule else 0, f.severity)
                  for f in audit_text(text, check_dead_rules)) == [
        (2, Severity.LOW), (3, Severity.MEDIUM)]


def test_exact_copy_is_left_to_duplicate() -> None:
    text = _filter("INPUT -p tcp -j DROP", "INPUT -p tcp -j DROP")
    assert audit_text(text, check_dead_rules) == []
    assert len(audit_text(text, check_duplicate_rules)) == 1


def test_listing_without_interfaces_never_covers() -> None:
    listing = """\
Chain INPUT (policy ACCEPT)
target     prot opt source               destination
DROP       all  --  0.0.0.0/0            0.0.0.0/0
ACCEPT     tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:22
"""
    assert audit_text(listing, check_dead_rules) == []


def test_covers_is_not_symmetric() -> None:
    rs = natlens.parse_save(_filter("INPUT -s 10.0.0.0/8 -j DROP",
                                    "INPUT -s 10.0.0.0/16 -j DROP"))
    a, b = rs["filter"]["INPUT"].rules
    assert covers(a, b)
    assert not covers(b, a)


def test_dead_rule_ipv6() -> None:
    text = ("*filter\n:INPUT ACCEPT [0:0]\n"
            "-A INPUT -s 2001:db8::/32 -j DROP\n"
            "-A INPUT -s 2001:db8:1::/48 -p tcp -m tcp --dport 22 -j ACCEPT\n"
            "-A INPUT -s 2001:db9::/32 -j ACCEPT\nCOMMIT\n")
    (f,) = audit_text(text, check_dead_rules)
    assert f.rule is not None
    assert (f.rule.family, f.rule.where) == ("ipv6", "ip6 filter INPUT #2")


# -- split backends -----------------------------------------------------------------------------


def _snapshot(tmp_path: Path, main: str, *, other: str | None = None,
              meta: dict[str, object] | None = None) -> Path:
    (tmp_path / "iptables-save.txt").write_text(main)
    if other is not None:
        (tmp_path / "iptables-save.other-backend.txt").write_text(other)
    if meta is not None:
        (tmp_path / "meta.json").write_text(json.dumps(meta))
    return tmp_path


def test_split_backend_from_other_backend_file(tmp_path: Path) -> None:
    folder = _snapshot(tmp_path, "# Generated by iptables-save v1.8.9 (nf_tables)\n"
                       + _filter(), other=_filter("FORWARD -i eth0 -j DROP"),
                       meta={"other_backend": "legacy", "other_backend_has_rules": True})
    (f,) = audit(natlens.load(folder), (check_split_backend,))
    assert (f.kind, f.severity) == ("split-backend", Severity.HIGH)
    assert f.message.startswith("the legacy backend holds iptables rules too (1 rule in "
                                "iptables-save.other-backend.txt)")
    assert f.rule is not None
    assert (f.rule.chain, f.rule.index, f.rule.line) == ("FORWARD", 1, 5)
    assert f.rule.source == str(folder / "iptables-save.other-backend.txt")


def test_split_backend_policy_only(tmp_path: Path) -> None:
    folder = _snapshot(tmp_path, _filter(), other=_filter(policy="DROP"))
    (f,) = audit(natlens.load(folder), (check_split_backend,))
    assert f.rule is None
    assert "(0 rules in" in f.message


def test_split_backend_from_meta_only(tmp_path: Path) -> None:
    folder = _snapshot(tmp_path, _filter(), meta={"other_backend": "nf_tables",
                                                  "other_backend_has_rules": True})
    (f,) = audit(natlens.load(folder), (check_split_backend,))
    assert f.severity is Severity.HIGH
    assert f.message.startswith("meta.json says the nf_tables backend holds rules too")
    assert f.fix is None  # no copy of those rules: nothing to name in a command


def test_split_backend_from_legacy_warning() -> None:
    text = ("# Warning: iptables-legacy tables present, use iptables-legacy to see them\n"
            + _filter())
    (f,) = audit_text(text, check_split_backend)
    assert f.severity is Severity.MEDIUM


def test_other_backend_empty_is_clean(tmp_path: Path) -> None:
    folder = _snapshot(tmp_path, _filter(), other=_filter(),
                       meta={"other_backend": "legacy", "other_backend_has_rules": False})
    assert audit(natlens.load(folder), (check_split_backend,)) == []


def test_other_backend_file_names_match_capture() -> None:
    from natlens.capture import OTHER_BACKEND_FILES as CAPTURED

    assert {f.value: n for f, n in OTHER_BACKEND_FILES.items()} == {
        "ipv4": CAPTURED["iptables"], "ipv6": CAPTURED["ip6tables"]}


# -- real layouts stay quiet --------------------------------------------------------------------


def _docker_docs(corpus: Path) -> list[Path]:
    return sorted(p for p in (corpus / "docker").glob("*/extracted/*.S.rules")
                  if "excerpt" not in p.name)


def test_docker_docs_layouts_have_no_findings(corpus: Path) -> None:
    files = _docker_docs(corpus)
    assert len(files) >= 40
    for path in files:
        table = path.name.split(".")[-3]
        rs = natlens.parse_save(path.read_text(), table=table, source=str(path))
        snap = natlens.Snapshot(ruleset=rs, path=str(path))
        assert audit(snap) == [], path


def test_docker_docs_filter_and_nat_together(corpus: Path) -> None:
    """Both tables of one layout in one ruleset (as iptables-save would print them)."""
    for filter_file in sorted((corpus / "docker").glob("*/extracted/*.filter.S.rules")):
        if "excerpt" in filter_file.name:
            continue
        nat_file = filter_file.with_name(filter_file.name.replace(".filter.", ".nat."))
        tables = [natlens.parse_save(f.read_text(), table=t)["filter" if t == "filter" else t]
                  for f, t in ((filter_file, "filter"), (nat_file, "nat"))]
        rs = natlens.Ruleset(tables=tuple(tables))
        assert audit(natlens.Snapshot(ruleset=rs)) == [], filter_file


@pytest.mark.parametrize("name", ["default-bridge-8080", "docker-user-policy", "internal-network",
                                  "ipv6", "loopback-9000", "no-icc", "no-userland-proxy",
                                  "port-range", "udp-5353", "user-network"])
def test_fixtures_have_no_rule_findings(name: str) -> None:
    assert audit(natlens.load(FIXTURES / name), RULE_CHECKS) == []


def test_planted_faults_rule_findings() -> None:
    findings = audit(natlens.load(FIXTURES / "planted-faults"), RULE_CHECKS)
    assert _where(findings) == [("duplicate", "low", "PREROUTING", 1)]


@pytest.mark.parametrize("name", ["configs_openlab__stettenstr__doku__iptables-save.txt"])
def test_real_world_dead_rules(corpus: Path, name: str) -> None:
    """A real firewall: ICMP accepts behind ``-d 10.10.0.0/16 ! -p tcp -j DROP`` are dead; a
    PPPSNAT jump behind ``-o eth4 -j SNAT`` too; repeated REJECTs are duplicates."""
    snap = natlens.load(corpus / "real-world" / "permissive" / name, strict=False)
    found = _where(audit(snap))
    assert ("dead-rule", "medium", "POSTROUTING", 15) in found
    assert ("dead-rule", "medium", "FORWARD", 300) in found
    assert ("duplicate", "low", "FORWARD", 279) in found
    assert {k for k, *_ in found} == {"dead-rule", "duplicate"}


def test_registry_is_a_tuple_of_functions() -> None:
    assert isinstance(CHECKS, tuple)
    assert all(callable(c) and c.__name__.startswith("check_") and c.__doc__ for c in CHECKS)


# -- soundness of `covers`, checked against the simulator's match semantics ---------------------

_SLOTS: tuple[tuple[str, ...], ...] = (
    ("", "-s 10.0.0.0/8", "-s 10.1.0.0/16", "-s 10.1.2.3/32", "! -s 10.0.0.0/8",
     "! -s 10.1.0.0/16"),
    ("", "-i eth0", "-i eth+", "! -i eth0", "! -i docker0", "-i docker0", "! -i eth+"),
    ("", "-o docker0", "! -o docker0", "-o br+", "! -o br+"),
    ("", "-p tcp", "-p udp", "! -p tcp", "-p tcp -m tcp --dport 80", "-p tcp -m tcp --dport 1:1024",
     "-p tcp -m tcp ! --dport 22", "-p tcp -m multiport --dports 22,80,443",
     "-p udp -m udp --dport 53", "-p tcp -m tcp --dport 80 -m multiport --dports 80,443"),
    ("", "-m conntrack --ctstate NEW", "-m conntrack --ctstate RELATED,ESTABLISHED",
     "-m state --state ESTABLISHED", "-m conntrack ! --ctstate NEW",
     "-m conntrack ! --ctstate NEW,INVALID"),
    ("", "-m mark --mark 0x1/0x1", "-m mark --mark 0x1"),
)


def _flows() -> list[object]:
    import ipaddress
    import itertools

    from natlens.netfilter.flow import Flow

    flows: list[object] = []
    for src, in_iface, out_iface, (proto, dport), state, mark in itertools.product(
            ("10.1.2.3", "10.1.9.9", "10.200.0.1", "192.0.2.1"),
            ("eth0", "eth1", "docker0"), ("docker0", "eth0", "br-a"),
            (("tcp", 22), ("tcp", 80), ("tcp", 443), ("tcp", 8080), ("udp", 53), ("icmp", None)),
            ("NEW", "ESTABLISHED", "RELATED", "INVALID"), (0, 1, 3)):
        flows.append(Flow(src=ipaddress.ip_address(src), dst=ipaddress.ip_address("192.0.2.2"),
                          proto=proto, sport=40000 if dport else None, dport=dport,
                          icmp_type=8 if proto == "icmp" else None, in_iface=in_iface,
                          out_iface=out_iface, local_origin=False, ctstate=state, mark=mark,
                          ctmark=mark))
    return flows


_FLOWS = _flows()


@st.composite
def _rule_pair(draw: st.DrawFn) -> tuple[str, str]:
    a = [draw(st.sampled_from(slot)) for slot in _SLOTS]
    b = [part if draw(st.booleans()) else draw(st.sampled_from(slot))
         for part, slot in zip(a, _SLOTS, strict=True)]
    return " ".join(p for p in a if p), " ".join(p for p in b if p)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rule_pair())
def test_covers_is_sound(pair: tuple[str, str]) -> None:
    """Whenever ``covers(a, b)``, every packet of a small universe that b matches, a matches."""
    from natlens.netfilter.flow import MatchContext
    from natlens.netfilter.host import Host
    from natlens.netfilter.matches import evaluate

    a_text, b_text = pair
    rs = natlens.parse_save(_filter(f"FORWARD {a_text} -j DROP", f"FORWARD {b_text} -j ACCEPT"))
    a, b = rs["filter"]["FORWARD"].rules
    if not covers(a, b):
        return
    ctx = MatchContext(Host.from_json([], []), "FORWARD", "filter")
    for flow in _FLOWS:
        eb = evaluate(b, flow, ctx)  # type: ignore[arg-type]
        if eb.matched:
            ea = evaluate(a, flow, ctx)  # type: ignore[arg-type]
            assert ea.matched, f"{a_text!r} should cover {b_text!r}, but not for {flow}: " \
                               f"{ea.mismatches or ea.uncertain}"


def test_covered_examples_agree_with_the_simulator() -> None:
    """The hand-written COVERED pairs hold packet by packet too (non-vacuously for most)."""
    from natlens.netfilter.flow import MatchContext
    from natlens.netfilter.host import Host
    from natlens.netfilter.matches import evaluate

    ctx = MatchContext(Host.from_json([], []), "INPUT", "filter")
    exercised = 0
    for earlier, later in COVERED:
        rs = natlens.parse_save(_filter(f"INPUT {earlier}", f"INPUT {later}", chains="LOGGING"))
        a, b = rs["filter"]["INPUT"].rules
        hits = [f for f in _FLOWS if evaluate(b, f, ctx).matched]  # type: ignore[arg-type]
        exercised += bool(hits)
        for flow in hits:
            assert evaluate(a, flow, ctx).matched, (earlier, later, flow)  # type: ignore[arg-type]
    assert exercised >= 12
