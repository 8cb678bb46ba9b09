"""Branch probabilities when a trace forks by chance (``-m statistic``) and by doubt (a fact the
snapshot does not show): docs/tracing.md "Branches: probabilities, not guesses".

A branch's probability is the product of the chances along its path, given the assumptions it
names: the chance branches of one reading (one set of assumptions) sum to 1, a branch that only
doubt opened has none (``"probability": null``), and every branch names every assumption it
rests on, in JSON and in the text.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from natlens.api import simulate
from natlens.netfilter import Packet, Trace
from natlens.snapshot import load

DST = "203.0.113.50"
LOCAL = f"{DST} is an address of this host"
NOT_LOCAL = f"{DST} is not an address of this host"
_SET = "-m set --match-set allowed src (depends on state outside the snapshot)"
_KUBE_P = {2: ["0.50000000000"], 3: ["0.33333333349", "0.50000000000"],
           4: ["0.25000000000", "0.33333333349", "0.50000000000"]}
"""kube-proxy's ``--probability`` values for n endpoints (1/n, 1/(n-1), ... as it prints them)."""


def _ruleset(endpoints: int, *, ipset: bool = False) -> str:
    """A NodePort service on 30000 spread over ``endpoints`` pods by ``-m statistic``, as
    kube-proxy writes it; ``ipset``: the first endpoint rule also needs ``-m set`` (doubt)."""
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]", ":SVC - [0:0]",
             "-A PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 30000 -j SVC"]
    for n, p in enumerate(_KUBE_P[endpoints], 1):
        match = "-m set --match-set allowed src " if ipset and n == 1 else ""
        lines.append(f"-A SVC -p tcp {match}-m statistic --mode random --probability {p} "
                     f"-j DNAT --to-destination 10.244.0.{n}:8080")
    lines += [f"-A SVC -p tcp -j DNAT --to-destination 10.244.0.{endpoints}:8080", "COMMIT", ""]
    return "\n".join(lines)


def _trace(tmp_path: Path, rules: str, dport: int | None = 30000) -> Trace:
    (tmp_path / "iptables-save.txt").write_text(rules)  # no ip-addr.json: addresses unknown
    return simulate(load(tmp_path), Packet(src="198.51.100.7", dst=DST, in_interface="eth0",
                                           dport=dport))


def _readings(branches: list[dict[str, Any]]) -> dict[tuple[str, ...], list[float | None]]:
    groups: dict[tuple[str, ...], list[float | None]] = defaultdict(list)
    for b in branches:
        groups[tuple(b["assumed"])].append(b["probability"])
    return groups


@pytest.mark.parametrize(("endpoints", "ipset", "expected"), [
    (2, False, {(LOCAL,): [0.5, 0.5], (NOT_LOCAL,): [None]}),
    (3, False, {(LOCAL,): [1 / 3] * 3, (NOT_LOCAL,): [None]}),
    (4, False, {(LOCAL,): [0.25] * 4, (NOT_LOCAL,): [None]}),
    # the rule's -m set part is doubt, its statistic part chance: within "the set matches"
    # the two endpoints share the chance; "it does not" leaves the second one, no chance
    (2, True, {(LOCAL, f"nat:SVC#1 matches ({_SET})"): [0.5, 0.5],
               (LOCAL, f"nat:SVC#1 does not match ({_SET})"): [None],
               (NOT_LOCAL,): [None]}),
    (3, True, {(LOCAL, f"nat:SVC#1 matches ({_SET})"): [1 / 3] * 3,
               (LOCAL, f"nat:SVC#1 does not match ({_SET})"): [0.5, 0.5],
               (NOT_LOCAL,): [None]}),
])
def test_chance_within_each_reading(tmp_path: Path, endpoints: int, ipset: bool,
                                    expected: dict[tuple[str, ...], list[float | None]]) -> None:
    trace = _trace(tmp_path, _ruleset(endpoints, ipset=ipset))
    groups = _readings(trace.to_dict()["branches"])
    assert groups.keys() == expected.keys()
    for reading, probs in expected.items():
        got = groups[reading]
        assert [p is None for p in got] == [p is None for p in probs], reading
        assert sorted(p for p in got if p is not None) == pytest.approx(
            sorted(p for p in probs if p is not None), abs=1e-6), reading
    for reading, probs in groups.items():
        if None in probs:  # opened by doubt only: one branch, no probability
            assert probs == [None], reading
        else:
            assert sum(p for p in probs if p is not None) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("endpoints", [2, 3, 4])
def test_every_branch_line_names_its_reading(tmp_path: Path, endpoints: int) -> None:
    trace = _trace(tmp_path, _ruleset(endpoints))
    text = str(trace).splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("branches ("))
    heading, lines = text[start], text[start + 1:start + 1 + len(trace.branches)]
    assert len(lines) == endpoints + 1
    for line, branch in zip(lines, trace.branches, strict=True):
        shown = line + heading
        assert all(a in shown for a in branch.assumed), (line, branch.assumed)
        assert (NOT_LOCAL in line) == (branch.chance is None), line
        assert (f"p={1 / endpoints:.4g} " in line) == (branch.chance is not None), line


def test_no_port_hint(tmp_path: Path) -> None:
    trace = _trace(tmp_path, _ruleset(2), dport=None)
    assert "hint: no destination port given" in str(trace)
    assert "give --dport" in str(trace)
    assert "hint: no destination port" not in str(_trace(tmp_path, _ruleset(2)))


def test_past_the_outcome_cap_chance_is_assumed_not_lost(tmp_path: Path) -> None:
    """Ten undecidable ``-m set`` rules make 1024 readings, past the walk's cap of 512: a chance
    fork met after it follows the matching side as an assumption, its probability kept, so
    each reading's branches still sum to 1."""
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]", ":SVC - [0:0]"]
    lines += [f"-A PREROUTING -m set --match-set s{n} src -j MARK --set-xmark {1 << n:#x}"
              for n in range(10)]
    lines += ["-A PREROUTING -p tcp -m tcp --dport 30000 -j SVC",
              "-A SVC -p tcp -m statistic --mode random --probability 0.50000000000 "
              "-j DNAT --to-destination 10.244.0.1:8080",
              "-A SVC -p tcp -j DNAT --to-destination 10.244.0.2:8080", "COMMIT", ""]
    trace = _trace(tmp_path, "\n".join(lines))
    assert any(u.startswith("more than 512 outcomes") for u in trace.uncertain)
    groups: dict[tuple[str, ...], float] = defaultdict(float)
    for b in trace.to_dict()["branches"]:
        reading = tuple(a for a in b["assumed"] if not a.endswith("other outcome not followed)"))
        groups[reading] += 1.0 if b["probability"] is None else b["probability"]
    assert any(a.endswith("other outcome not followed)") for b in trace.branches
               for a in b.assumed)
    assert groups
    assert all(v == pytest.approx(1.0) for v in groups.values()), groups


def _nft_service(mode: str, endpoints: int) -> dict[str, Any]:
    """kube-proxy's nftables mode in small: a service on DST:80 whose chain picks an endpoint
    chain by ``numgen MODE mod N vmap { 0 : goto ep1, ... }``; each endpoint chain DNATs."""
    def chain(name: str, **base: Any) -> dict[str, Any]:
        return {"chain": {"family": "ip", "table": "kube-proxy", "name": name, **base}}

    def rule(chain: str, *expr: Any) -> dict[str, Any]:
        return {"rule": {"family": "ip", "table": "kube-proxy", "chain": chain,
                         "expr": list(expr)}}

    eps = [f"ep{n}" for n in range(1, endpoints + 1)]
    return {"nftables": [
        {"table": {"family": "ip", "name": "kube-proxy"}},
        chain("nat-prerouting", type="nat", hook="prerouting", prio=-100, policy="accept"),
        chain("svc"), *(chain(e) for e in eps),
        rule("nat-prerouting",
             {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                        "right": DST}},
             {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                        "right": 80}},
             {"jump": {"target": "svc"}}),
        rule("svc", {"vmap": {"key": {"numgen": {"mode": mode, "mod": endpoints, "offset": 0}},
                              "data": {"set": [[n, {"goto": {"target": e}}]
                                               for n, e in enumerate(eps)]}}}),
        *(rule(e, {"dnat": {"addr": f"10.244.0.{n}", "port": 8080}})
          for n, e in enumerate(eps, 1)),
    ]}


@pytest.mark.parametrize("mode", ["random", "inc"])
@pytest.mark.parametrize("endpoints", [2, 3])
def test_nft_numgen_forks_by_chance(tmp_path: Path, mode: str, endpoints: int) -> None:
    """nft's ``numgen random`` (uniform) and ``numgen inc`` (round robin) spread new connections
    over the endpoints as ``-m statistic --mode random`` / ``--mode nth`` do: one branch per
    endpoint with chance 1/N, no doubt, the chances summing to 1."""
    path = tmp_path / "nft-ruleset.json"
    path.write_text(json.dumps(_nft_service(mode, endpoints)))
    trace = simulate(load(path), Packet(src="198.51.100.7", dst=DST, in_interface="eth0",
                                            dport=80))
    assert sorted(b.final_dst for b in trace.branches) == [
        f"10.244.0.{n}:8080" for n in range(1, endpoints + 1)]
    assert [b.chance for b in trace.branches] == pytest.approx([1 / endpoints] * endpoints)
    assert not any(b.assumed for b in trace.branches)
    assert not any("numgen" in u for u in trace.uncertain)
    assert f"p={1 / endpoints:.4g} " in str(trace)
