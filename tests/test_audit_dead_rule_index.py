"""The dead-rule check's index (natlens/audit/coverage.py) finds what the pairwise scan finds,
with a number of rule comparisons that grows linearly on block lists (issue 11, item 5).

Complexity is guarded by counting ``covers`` calls, never by wall-clock time; the timings are in
benchmarks/bench_worst.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlens import ParseError, ParseWarning, parse_save
from natlens.audit import audit_text, coverage
from natlens.audit.coverage import check_dead_rules, covers
from natlens.model import Rule

SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Pieces of rules chosen so that many pairs nest: networks inside networks, interface prefixes,
# port ranges around single ports, negations, exact-match modules and ones that never cover.
SOURCES = ("", "-s 10.0.0.0/8", "-s 10.1.0.0/16", "-s 10.1.2.0/24", "-s 10.1.2.3/32",
           "! -s 10.1.0.0/16", "-s 10.0.0.1/255.0.255.0", "-s 192.168.0.0/16", "-s 0.0.0.0/1")
DESTINATIONS = ("", "-d 192.0.2.0/24", "-d 192.0.2.7/32", "! -d 192.0.2.0/25")
IN = ("", "-i eth0", "-i eth+", "-i e+", "! -i docker0", "-i docker0", "-i +")
OUT = ("", "-o eth0", "-o br+")
PROTOCOLS = ("", "-p tcp", "-p udp", "! -p tcp", "-p tcp -m tcp --dport 80",
             "-p tcp -m tcp --dport 1:1024", "-p tcp -m tcp --dport 80:90",
             "-p tcp -m tcp --sport 1024:65535", "-p tcp -m multiport --dports 22,80,443",
             "-p tcp -m tcp ! --dport 22", "-p tcp -m tcp --sport 1000:2000 --dport 80",
             "-p udp -m udp --dport 53", "-p tcp -m multiport --sports 80,8000:9000")
MATCHES = ("", "-m conntrack --ctstate NEW", "-m conntrack --ctstate NEW,ESTABLISHED",
           "-m conntrack ! --ctstate INVALID", "-m state --state NEW", "-m mark --mark 0x1",
           "-m mark --mark 0x2", '-m comment --comment "x"', "-m limit --limit 5/sec",
           "-m addrtype --dst-type LOCAL", "-m iprange --src-range 10.0.0.1-10.0.0.9",
           "-m pkttype --pkt-type broadcast", "-m mark --mark 0x1 -m addrtype --dst-type LOCAL")
TARGETS = ("-j ACCEPT", "-j DROP", "-j RETURN", "-j LOG", "-j REJECT", "-j X", "-g X")

rule_text = st.tuples(*(st.sampled_from(p) for p in (SOURCES, DESTINATIONS, IN, OUT, PROTOCOLS,
                                                     MATCHES, TARGETS)))


def _chain(lines: Sequence[str]) -> list[Rule]:
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\n"
            + "".join(f"-A INPUT {line}\n" for line in lines) + "COMMIT\n")
    return list(parse_save(text)["filter"]["INPUT"].rules)


def _pairwise(rules: Sequence[Rule]) -> list[tuple[int, int]]:
    """The reference: each rule against every earlier terminating rule, first cover wins."""
    found = []
    for j, b in enumerate(rules, 1):
        for i, a in enumerate(rules[:j - 1], 1):
            if coverage._terminates(a) and coverage._body(a) != coverage._body(b) \
                    and covers(a, b):
                found.append((j, i))
                break
    return found


def _indexed(rules: Sequence[Rule]) -> list[tuple[int, int]]:
    return [(j, i) for j, i, _, _ in coverage._dead_in_chain(rules)]


@SETTINGS
@given(st.lists(rule_text, min_size=2, max_size=40))
def test_index_finds_what_the_pairwise_scan_finds(parts: list[tuple[str, ...]]) -> None:
    rules = _chain([" ".join(p for p in part if p) for part in parts])
    assert _indexed(rules) == _pairwise(rules)


@SETTINGS
@given(st.lists(rule_text, min_size=2, max_size=12))
def test_check_finds_what_the_pairwise_scan_finds(parts: list[tuple[str, ...]]) -> None:
    """The check itself, with its skip of chains where no rule but the last terminates."""
    lines = [" ".join(p for p in part if p) for part in parts]
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\n"
            + "".join(f"-A INPUT {line}\n" for line in lines) + "COMMIT\n")
    found = [(f.rule.index, f.related[0].index) for f in audit_text(text, check_dead_rules)
             if f.rule is not None]
    assert sorted(found) == _pairwise(_chain(lines))


def test_index_finds_what_the_pairwise_scan_finds_on_corpus(corpus: Path) -> None:
    checked = 0
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        if "COMMIT" not in text:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ParseWarning)
                ruleset = parse_save(text, strict=False)
        except ParseError:
            continue
        for table in ruleset.tables:
            for chain in table.chains:
                if len(chain.rules) <= 400:
                    assert _indexed(chain.rules) == _pairwise(chain.rules), (path, chain.name)
                    checked += len(chain.rules)
    assert checked > 1000


@pytest.fixture
def count_covers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls of ``covers`` the dead-rule check makes."""
    calls = [0]

    def counting(a: Rule, b: Rule) -> bool:
        calls[0] += 1
        return covers(a, b)

    monkeypatch.setattr(coverage, "covers", counting)
    return calls


def _blocklist(n: int) -> list[str]:  # the shape of cases/hostile/05 gen.sh
    return [f"-s {11 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24 -j DROP" for i in range(n)]


def _port_ranges(n: int) -> list[str]:
    return [f"-p tcp -m tcp --dport {2 * i}:{2 * i + 1} -j DROP" for i in range(n)]


def _hosts_by_interface(n: int) -> list[str]:
    return [f"-i veth{i} -s 10.{i >> 8}.{i & 255}.0/24 -j ACCEPT" for i in range(n)]


def _marks(n: int) -> list[str]:
    return [f"-m mark --mark {i:#x} -j ACCEPT" for i in range(n)]


def _nested(n: int) -> list[str]:  # /32 hosts after the /16 networks holding them: all dead
    return [f"-s 10.{i & 255}.0.0/16 -j DROP" for i in range(256)] + [
        f"-s 10.{i & 255}.{i >> 8}.1/32 -j DROP" for i in range(n)]


@pytest.mark.parametrize("shape", [_blocklist, _port_ranges, _hosts_by_interface, _marks,
                                   _nested])
def test_block_list_shapes_compare_a_bounded_number_of_pairs(
        shape: Callable[[int], list[str]], count_covers: list[int]) -> None:
    per_rule = []
    for n in (500, 4000):
        count_covers[0] = 0
        rules = _chain(shape(n))
        dead = _indexed(rules)
        per_rule.append(count_covers[0] / len(rules))
        if shape is _nested:
            assert len(dead) == n
        else:
            assert dead == []
    # the pairwise scan makes n/2 comparisons per rule on these shapes (250 and 2,000)
    assert per_rule[1] <= 2, per_rule


def test_case_05_block_list_report_stays_linear(cases: Path, count_covers: list[int]) -> None:
    """cases/hostile/05: 2,000 distinct /24 DROP rules; a covered host after them is found."""
    text = (cases / "hostile" / "05-report-quadratic-blocklist" / "blocklist-2000.txt").read_text()
    head, commit, tail = text.rpartition("COMMIT")
    planted = "-A INPUT -s 11.3.7.9/32 -p tcp -m tcp --dport 22 -j ACCEPT\n"
    findings = audit_text(head + planted + commit + tail, check_dead_rules)
    assert [(f.rule.index if f.rule else 0, f.related[0].index) for f in findings] == [
        (2001, 3 * 256 + 7 + 1)]
    assert count_covers[0] <= 10
