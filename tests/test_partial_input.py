"""Partial input is partial: what a paste shows (``Ruleset.coverage``), what it does not, and the
two properties of issue 10 over the captured fixtures: removing a table or a chain from a dump
never adds a finding at or above medium, and never turns a trace into a certain wrong one (the
partial input's outcomes contain the full input's outcome)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import natlens
from natlens import report
from natlens.audit import Severity, audit
from natlens.model import BUILTIN_CHAINS, Ruleset, TableName
from natlens.netfilter import Packet, Trace
from natlens.parse import load_rules, parse_listing, parse_save
from natlens.serialize import rule_to_save

FIXTURES = REPO_ROOT / "fixtures"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "iptables-save.txt").is_file())

# -- what a text shows ------------------------------------------------------------------------


def test_a_save_dump_shows_every_table() -> None:
    rs = parse_save("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                    "COMMIT\n")
    assert rs.coverage.whole
    assert rs.coverage.shows_table("nat")  # a full dump without nat: there is no nat table


def test_iptables_s_of_several_tables_is_split_and_shows_only_those() -> None:
    text = ("-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n"
            "-N DOCKER\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
            "-A DOCKER -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80\n"
            "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N DOCKER-USER\n"
            "-A FORWARD -j DOCKER-USER\n-A FORWARD -j ufw-user-forward\n")
    rs = parse_save(text)
    assert [t.name for t in rs.tables] == [TableName.NAT, TableName.FILTER]
    cov = rs.coverage
    assert cov.tables == frozenset({TableName.NAT, TableName.FILTER})
    assert not cov.shows_table("raw")
    assert cov.chains_shown("nat") is None  # every built-in chain, every jump target
    assert cov.chains_shown("filter") == frozenset({"INPUT", "FORWARD", "OUTPUT", "DOCKER-USER"})
    assert not cov.shows_chain("filter", "ufw-user-forward")
    named = parse_save("# table nat\n-A PREROUTING -j DOCKER\n-N DOCKER\n"
                       "# table filter\n-A FORWARD -j DOCKER-USER\n")
    assert [t.name for t in named.tables] == [TableName.NAT, TableName.FILTER]


def test_a_paste_of_some_lines_is_not_refused() -> None:
    rs = parse_save("-A DOCKER-USER -j RETURN\n-A FORWARD -j DOCKER-USER\n")  # strict
    assert rs.coverage.chains_shown("filter") is not None


def test_noflush_merge_and_flush_replace() -> None:
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":X - [0:0]\n-A X -j DROP\n-A FORWARD -j X\nCOMMIT\n"
            "*filter\n:X - [0:0]\n:FORWARD ACCEPT [0:0]\n-A X -j ACCEPT\nCOMMIT\n")
    merged = parse_save(text)
    filt = merged["filter"]
    # --noflush: re-declaring user chain X flushes it; FORWARD keeps its rules, gets the policy
    assert [r.target_name for r in filt["X"].rules] == ["ACCEPT"]
    assert [r.target_name for r in filt["FORWARD"].rules] == ["X"]
    assert filt["FORWARD"].policy == "ACCEPT"
    assert any("--noflush" in n for n in merged.notes)
    flushed = parse_save(text, restore_flush=True)
    assert [c.name for c in flushed["filter"].chains] == ["FORWARD", "X"]
    assert flushed["filter"]["FORWARD"].rules == ()


@pytest.mark.parametrize(("lines", "incomplete"), [
    (["Error: meta sreg is not an immediate",
      "iptables v1.8.10 (nf_tables): Parsing nftables rule failed",
      "Perhaps iptables or your kernel needs to be upgraded."], {"ts-forward", "ts-input"}),
    (["iptables v1.8.7 (nf_tables): chain `FORWARD' in table `filter' is incompatible, use "
      "'nft' tool."], {"FORWARD"}),
])
def test_tool_diagnostics_mark_chains_incomplete(lines: list[str], incomplete: set[str]) -> None:
    text = ("-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N DOCKER-USER\n-N ts-forward\n"
            "-N ts-input\n-A FORWARD -j ts-forward\n-A FORWARD -j DOCKER-USER\n"
            "-A DOCKER-USER -j RETURN\n" + "\n".join(lines) + "\n")
    rs = parse_save(text)
    assert {c for _, c, _ in rs.coverage.incomplete} == incomplete
    assert len(rs.coverage.diagnostics) == len(lines)


def test_incompatible_table_is_not_in_the_input() -> None:
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            "COMMIT\n# Table `nat' is incompatible, use 'nft' tool.\n"
            "# Table `firewalld' is incompatible, use 'nft' tool.\n")
    rs = parse_save(text)
    assert not rs.coverage.shows_table("nat")
    assert any("firewalld" in n and "nft list ruleset" in n for n in rs.notes)


def test_warning_written_into_a_rule_line_is_cut_out() -> None:
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            "-A INPUT -p tcp -m comment --comment \"web# Warning: iptables-legacy tables "
            "present, use iptables-legacy to see them\n"
            " server\" -j ACCEPT\nCOMMIT\n")
    rs = parse_save(text)
    rule = rs["filter"]["INPUT"].rules[0]
    assert rule.option("--comment").value == "web server"  # type: ignore[union-attr]
    assert rs.legacy_tables_present


def test_listing_keeps_reference_counts_and_what_it_lists() -> None:
    text = ("Chain DOCKER-USER (0 references)\n"
            "target     prot opt source               destination\n"
            "ufw-user-forward  all  --  0.0.0.0/0            0.0.0.0/0\n"
            "RETURN     all  --  0.0.0.0/0            0.0.0.0/0\n")
    rs = parse_listing(text)
    assert rs.coverage.reference_count("filter", "DOCKER-USER") == 0
    assert rs.coverage.chains_shown("filter") == frozenset({"DOCKER-USER"})
    assert "not in the input" in rs.coverage.describe((TableName.FILTER,))


def test_lenient_listing_skips_annotations_and_marks_the_chain() -> None:
    text = "Chain FORWARD (policy DROP)\n(empty - no rules)\n"
    with pytest.raises(natlens.ParseError):
        parse_listing(text)
    rs = parse_listing(text, strict=False)
    assert rs.coverage.why_incomplete("filter", "FORWARD") is not None


# -- the properties -----------------------------------------------------------------------------


def _as_commands(rs: Ruleset, drop_table: str | None = None,
                 drop_chain: tuple[str, str] | None = None) -> str:
    """The ruleset as pasted ``iptables -t T -S`` outputs, ``# table T`` before each, without
    one table or one chain (its declaration and rules; the jumps to it stay)."""
    out: list[str] = []
    for table in rs.tables:
        t = table.name.value
        if t == drop_table:
            continue
        out.append(f"# table {t}")
        chains = [c for c in table.chains if (t, c.name) != drop_chain]
        out.extend(f"-P {c.name} {c.policy or 'ACCEPT'}" for c in chains if c.builtin)
        out.extend(f"-N {c.name}" for c in chains if not c.builtin)
        out.extend(rule_to_save(r, counters=False) for c in chains for r in c.rules)
    return "\n".join(out) + "\n"


def _packets(snap: natlens.Snapshot) -> list[Packet]:
    ipv6 = not snap.ruleset.tables
    if ipv6:
        return []
    ports = sorted({int(r.option("--dport").value)  # type: ignore[union-attr]
                    for t in snap.ruleset.tables if t.name is TableName.NAT
                    for r in t.rules if r.target_name == "DNAT" and r.option("--dport")
                    and r.option("--dport").value.isdigit()})[:2]  # type: ignore[union-attr]
    packets = [Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", sport=40000,
                      dport=p) for p in ports or [8080]]
    packets.append(Packet(in_interface="docker0", src="172.17.0.2", dst="198.51.100.7",
                          sport=40000, dport=443))
    packets.append(Packet(local_origin=True, src="192.0.2.2", dst="192.0.2.2",
                          dport=(ports or [8080])[0], sport=40000))
    return packets


def _outcomes(trace: Trace) -> tuple[set[tuple[bool, str, str]], str | None]:
    """(accepted?, path, final destination) of every outcome, and what a NAT chain the input
    does not show may have rewritten: ``"dst"`` (PREROUTING/OUTPUT: the packet may go anywhere,
    any outcome), ``"src"`` (its destination and path stay), or None."""
    branches = trace.branches or (trace,)
    found = {(b.verdict.value == "ACCEPT", b.path.value, b.final_dst) for b in branches}
    said = [a for b in trace.branches for a in b.assumed if "may rewrite the packet" in a]
    if not trace.branches and trace.rests_on_unseen:  # one outcome, so no branch says why
        said += [u for u in trace.uncertain if u.startswith(("table nat", "nat:"))]
    if any("destination" in a or (a.startswith(("table nat", "nat:")) and a in trace.uncertain)
           for a in said):
        return found, "dst"
    return found, "src" if said else None


def _serious(findings: list[Any]) -> set[tuple[Any, ...]]:
    return {(f.kind, f.container, f.host_port, f.rule.table if f.rule else None,
             f.rule.chain if f.rule else None, f.rule.text if f.rule else None)
            for f in findings if f.severity >= Severity.MEDIUM}


_FULL: dict[str, tuple[natlens.Snapshot, set[tuple[Any, ...]], list[tuple[Packet, Trace]]]] = {}


def _full(name: str) -> tuple[natlens.Snapshot, set[tuple[Any, ...]], list[tuple[Packet, Trace]]]:
    if name not in _FULL:
        snap = natlens.load(FIXTURES / name)
        traces = [(p, natlens.simulate(snap, p)) for p in _packets(snap)]
        _FULL[name] = (snap, _serious(audit(snap)), traces)
    return _FULL[name]


def _check_partial(name: str, text: str, what: str) -> None:
    snap, serious, traces = _full(name)
    partial_rs = load_rules(text, source=f"{name} without {what}", family=snap.ruleset.family)
    partial = dataclasses.replace(snap, ruleset=partial_rs)
    added = _serious(audit(partial)) - serious
    assert not added, f"{name} without {what}: new findings {added}"
    for packet, full in traces:
        got, rewrite = _outcomes(natlens.simulate(partial, packet))
        want = (full.verdict.value == "ACCEPT", full.path.value, full.final_dst)
        if rewrite == "dst":
            continue  # an unseen DNAT may send it anywhere: the trace says so, nothing certain
        if rewrite == "src":
            assert want[0] in {g[0] for g in got}, f"{name} without {what}: {packet!r}"
        else:
            assert want in got, f"{name} without {what}: {packet!r}: {want} not in {got}"


@pytest.mark.parametrize("name", NAMES)
def test_removing_a_table_adds_no_finding_and_no_certain_wrong_trace(name: str) -> None:
    snap, _, _ = _full(name)
    for table in snap.ruleset.tables:
        _check_partial(name, _as_commands(snap.ruleset, drop_table=table.name.value),
                       f"table {table.name.value}")
    _check_partial(name, _as_commands(snap.ruleset), "nothing (as -S)")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_removing_a_chain_adds_no_finding_and_no_certain_wrong_trace(data: st.DataObject,
                                                                     ) -> None:
    name = data.draw(st.sampled_from(NAMES))
    snap, _, _ = _full(name)
    chains = [(t.name.value, c.name) for t in snap.ruleset.tables for c in t.chains
              if c.name not in BUILTIN_CHAINS[t.name] or c.rules]
    if not chains:
        return
    drop = data.draw(st.sampled_from(chains))
    _check_partial(name, _as_commands(snap.ruleset, drop_chain=drop), f"chain {drop}")


def test_report_says_what_it_judged_from(tmp_path: Path) -> None:
    snap, _, _ = _full("default-bridge-8080")
    paste = tmp_path / "nat.txt"
    paste.write_text(_as_commands(snap.ruleset, drop_table="filter"))
    data = report.to_json([], natlens.load(paste))
    judged = data["summary"]["judged_from"]["ipv4"]
    assert judged["tables"] == ["nat"]
    assert "filter" in judged["not_in_input"]


_NAT_LISTING = """Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
    0     0 DOCKER     all  --  *      *    0.0.0.0/0  0.0.0.0/0  ADDRTYPE match dst-type LOCAL
{output}
Chain POSTROUTING (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination

Chain DOCKER (1 references)
 pkts bytes target     prot opt in     out     source               destination
    0     0 DNAT       tcp  --  !docker0 *  0.0.0.0/0  0.0.0.0/0  tcp dpt:8080 to:172.17.0.2:80
"""
_EMPTY_OUTPUT = """Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
"""


def test_a_listing_without_an_empty_chain_gives_the_same_headline() -> None:
    """nat OUTPUT omitted from the paste: the local connection is not DNATed by PREROUTING on
    its way back through lo (its NAT was decided at OUTPUT), the same as with OUTPUT shown."""
    packet = Packet(local_origin=True, src="127.0.0.1", dst="127.0.0.1", dport=8080,
                    sport=40000)
    with_output = load_rules(_NAT_LISTING.format(output=_EMPTY_OUTPUT), table="nat")
    without = load_rules(_NAT_LISTING.format(output=""), table="nat")
    assert not without.coverage.shows_chain("nat", "OUTPUT")
    full = natlens.simulate(natlens.Snapshot(ruleset=with_output), packet)
    part = natlens.simulate(natlens.Snapshot(ruleset=without), packet)
    assert (part.verdict, part.path, part.final_dst) == (full.verdict, full.path,
                                                         full.final_dst)
    assert part.final_dst == "127.0.0.1:8080"
    assert not any(s.target == "DNAT" for s in part.steps)
    assert any("nat:OUTPUT" in u for u in part.uncertain)


def test_stated_host_addresses_decide_local_or_forward(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from natlens.cli import main

    paste = tmp_path / "forward.txt"
    paste.write_text("-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n"
                     "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT\n")
    args = ["trace", str(paste), "--in", "docker0", "--src", "172.17.0.2", "--dst",
            "192.0.2.10", "--dport", "443", "--format", "json"]
    assert main(args) == 0
    unknown = json.loads(capsys.readouterr().out)
    accepted = {b["path"] for b in unknown["branches"] if b["verdict"] == "ACCEPT"}
    assert accepted == {"local", "forward"}
    assert main([*args, "--host-addr", "192.0.2.10"]) == 0
    stated = json.loads(capsys.readouterr().out)
    assert {b["path"] for b in stated["branches"] if b["verdict"] == "ACCEPT"} == {"local"}
    assert main([*args, "--iface", "eth0"]) == 2  # NAME=IP/PREFIX


def test_with_assumed_keeps_every_other_field() -> None:
    """``with_assumed`` copies the host with ``dataclasses.replace``: ``ip_forward=0`` from
    meta.json survives a route inferred later (it used to be dropped)."""
    import ipaddress
    from types import MappingProxyType

    from natlens.netfilter.host import Host, Route, with_assumed

    host = dataclasses.replace(Host(), forwarding=MappingProxyType({4: False}),
                               sysctls=MappingProxyType({"net.ipv4.ip_forward": "0"}))
    grown = with_assumed(host, routes=(Route(ipaddress.ip_network("10.0.0.0/8"), "eth1"),),
                         note="inferred")
    assert grown.forwarding == {4: False}
    assert grown.sysctls == host.sysctls
    assert grown.route(ipaddress.ip_address("10.1.2.3")) is not None
