"""Faults a new-user trial found (helper H3): each pinned by the behaviour the docs promise.

1. ``--host-addr`` adds an address to what the snapshot knows: the interface warning of
   ``trace`` still lists ip-addr.json's interfaces (not only those the rules name), and never
   the pseudo interface ``host-addr`` that holds the stated addresses.
2. An ``ineffective`` finding for a jump to an undeclared chain whose name is close to a
   declared one ("did you mean 'my-chain'?") fixes the jump (``iptables -R``) instead of
   creating the misspelt chain (``-N``, kept when no name is close).
3. ``Branch.chance`` is what the JSON ``probability`` gives (null for a branch of doubt);
   ``Branch.probability`` stays the arithmetic product (docs/api.md).
4. ``trace`` exits 0 as soon as one outcome delivers the packet, even when the headline outcome
   rejects it (README, docs/cli.md, docs/tracing.md).

All in-process; about 1 s together.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT

import natlens
from natlens.audit import audit_text
from natlens.audit.graph_checks import check_missing_chains
from natlens.cli import main
from natlens.parse.tokens import split_args

FIXTURE = str(REPO_ROOT / "fixtures" / "default-bridge-8080")
OUTSIDE = ["--src", "198.51.100.7", "--dst", "192.0.2.99", "--proto", "tcp", "--dport", "8080"]


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    got = capsys.readouterr()
    return status, got.out, got.err


def _addr_names(folder: str) -> list[str]:
    return [e["ifname"] for e in json.loads((Path(folder) / "ip-addr.json").read_text())]


# -- 1. --host-addr adds to the interfaces the snapshot knows ---------------------------------


@pytest.mark.parametrize("stated", [[], ["--host-addr", "192.0.2.99"],
                                    ["--host-addr", "192.0.2.99", "--host-addr", "fd00::99"],
                                    ["--iface", "eth0=192.0.2.99/24"]])
def test_stated_addresses_keep_the_snapshots_interfaces(stated: list[str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # a known interface: no warning, with or without stated addresses
    _, _, err = _run(["trace", FIXTURE, *stated, "--in", "eth0", *OUTSIDE], capsys)
    assert "warning: interface" not in err
    # an unknown one: the warning lists every interface of ip-addr.json, and no pseudo interface
    _, _, err = _run(["trace", FIXTURE, *stated, "--in", "eth9", *OUTSIDE], capsys)
    line = next(x for x in err.splitlines() if "interface 'eth9'" in x)
    known = line.split("(known: ", 1)[1].split(")", 1)[0].split(", ")
    assert known[:len(_addr_names(FIXTURE))] == _addr_names(FIXTURE)
    assert "host-addr" not in known


def test_host_addr_alone_names_no_interface(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Without ip-addr.json, --host-addr names no interface: the known ones are the rules'."""
    rules = tmp_path / "rules.txt"
    rules.write_text("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                     "-A INPUT -i wan0 -j ACCEPT\nCOMMIT\n")
    _, _, err = _run(["trace", str(rules), "--host-addr", "192.0.2.99", "--in", "eth9",
                      *OUTSIDE], capsys)
    assert "interface 'eth9' is not in the snapshot (known: wan0)" in err


# -- 2. a typo of a chain's name is fixed by pointing the jump at that chain -------------------


_TYPO = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:my-chain - [0:0]
-A INPUT -p tcp -m comment --comment "jump here" -j ACCEPT
-A INPUT -s 10.0.0.0/8 {jump} {target}
-A my-chain -j RETURN
COMMIT
"""


@pytest.mark.parametrize("jump", ["-j", "-g"])
@pytest.mark.parametrize(("target", "near"), [("my-chian", "my-chain"), ("my-chan", "my-chain"),
                                              ("elsewhere", None), ("x", None)])
def test_missing_chain_fix_follows_its_hint(jump: str, target: str, near: str | None) -> None:
    (f,) = audit_text(_TYPO.format(jump=jump, target=target), check_missing_chains)
    assert f.kind == "ineffective"
    assert f.rule is not None
    assert f.fix is not None
    argv = shlex.split(f.fix)
    if near is None:
        assert "did you mean" not in f.message
        assert argv == ["iptables", "-t", "filter", "-N", target]
        return
    assert f.message.endswith(f"(did you mean {near!r}?)")
    # the rule at its place, its own words with the target replaced: nothing named `target` made
    spec = split_args(f.rule.text)[0][2:]
    assert argv == ["iptables", "-t", "filter", "-R", "INPUT", "2",
                    *[near if w == target else w for w in spec]]
    assert target not in argv
    assert "-N" not in argv
    # and the fixed rules have no such finding left
    fixed = _TYPO.format(jump=jump, target=near)
    assert audit_text(fixed, check_missing_chains) == []


# -- 3. Branch.chance is the JSON probability ---------------------------------------------------


def _doubt_trace() -> natlens.Trace:
    rules = natlens.parse_save("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\nCOMMIT\n")
    return natlens.simulate(rules, natlens.Packet(in_interface="eth0", src="198.51.100.7",
                                                  dst="192.0.2.10", proto="tcp", dport=22))


def _chance_trace() -> natlens.Trace:
    snap = natlens.load(str(REPO_ROOT / "docs" / "examples" / "kube-svc.txt"))
    return natlens.simulate(snap, natlens.Packet(in_interface="eth0", src="203.0.113.9",
                                                 dst="10.96.0.10", proto="tcp", dport=80))


@pytest.mark.parametrize(("make", "chances"), [(_doubt_trace, [None, None]),
                                               (_chance_trace, [0.5, 0.5])])
def test_branch_chance_is_the_json_probability(make: object, chances: list[float | None]) -> None:
    assert callable(make)
    trace = make()
    assert [b.chance for b in trace.branches] == chances
    assert [b["probability"] for b in trace.to_dict()["branches"]] == chances
    # the arithmetic field: the product of the chances, 1.0 when none lies on the path
    assert [b.probability for b in trace.branches] == [1.0 if c is None else c for c in chances]


# -- 4. the exit status: any delivering outcome -------------------------------------------------


def test_trace_exit_0_when_headline_rejects_but_a_branch_delivers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    golden = REPO_ROOT / "tests" / "netfilter" / "golden" / \
        "kube-clusterip-no-endpoints-not-local-headline.json"
    case = json.loads(golden.read_text())
    rules = tmp_path / "kube.rules"
    rules.write_text("\n".join(case["rules"]) + "\n")
    p = case["packet"]
    argv = ["trace", str(rules), "--in", p["in_interface"], "--src", p["src"], "--dst", p["dst"],
            "--proto", "tcp", "--sport", str(p["sport"]), "--dport", str(p["dport"])]
    status, out, _ = _run(argv, capsys)
    assert "=> REJECT (forward)" in out  # the headline rejects it ...
    assert status == 0  # ... but branch 2 (the local reading) delivers it
    # stated host addresses settle the doubt: then the only outcome rejects it, exit 1
    status, out, _ = _run([*argv, "--host-addr", "192.0.2.2"], capsys)
    assert "=> REJECT (forward)" in out
    assert status == 1


def test_readme_states_the_exit_rule() -> None:
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    assert "0 as soon as one outcome delivers it, even if the headline outcome does not" in readme


# -- 1b. exposure with --host-addr: the stated address is no ingress of its own ----------------


def _ingresses(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["exposure", *argv, "--format", "json"]) in (0, 1)
    cells = json.loads(capsys.readouterr().out)["cells"]
    return sorted({c["ingress"] for c in cells})


def test_exposure_host_addr_is_no_ingress(capsys: pytest.CaptureFixture[str]) -> None:
    plain = _ingresses([FIXTURE], capsys)
    assert _ingresses([FIXTURE, "--host-addr", "192.0.2.99"], capsys) == plain


def test_exposure_stated_addresses_alone_sit_on_an_assumed_outside_interface(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without ip-addr.json, --host-addr's addresses are the outside interface's (assumed
    eth0): the published port answers there, where the pseudo interface refused it all."""
    snap = tmp_path / "snap"
    shutil.copytree(FIXTURE, snap)
    (snap / "ip-addr.json").unlink()
    assert main(["exposure", str(snap), "--host-addr", "192.0.2.99", "--format", "json",
                 "--no-cache"]) in (0, 1)
    found = json.loads(capsys.readouterr().out)
    cells = found["cells"]
    assert sorted({c["ingress"] for c in cells}) == ["docker0", "eth0", "local"]
    published = [c for c in cells if c["ingress"] == "eth0" and c["port"] == 8080
                 and c["dst"] == "192.0.2.99"]
    assert published
    assert all(c["reachable"] and c["target"]["kind"] == "container" for c in published)
    assert any("--host-addr" in note for note in found["notes"])
