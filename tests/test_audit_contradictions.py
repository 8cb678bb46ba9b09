"""Finding kinds never contradict each other (issue 9): no ``dead-rule`` on a rule that a
``stale``/``shadowed``/``mismatch``/``duplicate`` finding blames the other way, and no finding
said twice.

"The other way": the dead rule's covering rule (its ``related``) is the rule the other finding
blames, or the dead rule is the one the other finding protects (its ``related``, e.g. the
container's own DNAT a shadowing rule hides). Fixing one would then undo the other's advice.

Run over every fixture, the faults snapshot of the report tests and variants of the seed's
host with a fault planted ahead of Docker's DNAT (the case that once gave a ``dead-rule`` on the
live container's DNAT next to ``stale`` on the rule hiding it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT

import natlens
from natlens.audit import Finding, audit

FIXTURES = REPO_ROOT / "fixtures"
FOLDERS = [*sorted(p for p in FIXTURES.iterdir() if (p / "iptables-save.txt").is_file()),
           REPO_ROOT / "tests" / "golden" / "report" / "faults"]
BLAMING = ("stale", "shadowed", "mismatch", "duplicate")

PLANTED = {
    # a stale DNAT for the published port, ahead of Docker's own in nat DOCKER
    "stale-before-live": "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT "
                         "--to-destination 172.17.0.99:80",
    # a copy of Docker's DNAT ahead of it
    "copy-before-live": "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT "
                        "--to-destination 172.17.0.2:80",
    # a DNAT of the published port to the container's wrong port
    "wrong-port-before-live": "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT "
                              "--to-destination 172.17.0.2:81",
}


def _where(f: Finding) -> tuple[object, ...] | None:
    r = f.rule
    return None if r is None else (r.family, r.table, r.chain, r.index, r.text)


def _assert_consistent(findings: list[Finding]) -> None:
    blamed = {_where(f) for f in findings if f.kind in BLAMING}
    protected = {(r.family, r.table, r.chain, r.index, r.text)
                 for f in findings if f.kind in BLAMING for r in f.related}
    for d in findings:
        if d.kind != "dead-rule":
            continue
        covering = {(r.family, r.table, r.chain, r.index, r.text) for r in d.related}
        assert not covering & blamed, f"dead-rule blames what another finding blames: {d}"
        assert _where(d) not in protected, f"dead-rule on the rule another protects: {d}"
    said = [(f.kind, _where(f), f.host_port, f.container, f.fix) for f in findings
            if f.rule is not None]
    assert len(said) == len(set(said)), "a finding said twice"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_fixture_findings_do_not_contradict(folder: Path) -> None:
    _assert_consistent(audit(natlens.load(folder)))


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_dnat_before_docker_does_not_contradict(name: str, tmp_path: Path) -> None:
    folder = tmp_path / name
    shutil.copytree(FIXTURES / "default-bridge-8080", folder)
    save = folder / "iptables-save.txt"
    lines = save.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.endswith("-A DOCKER -i docker0 -j RETURN"))
    lines.insert(at + 1, PLANTED[name])
    save.write_text("\n".join(lines) + "\n")
    found = audit(natlens.load(folder))
    assert {f.kind for f in found} & set(BLAMING), [str(f) for f in found]
    _assert_consistent(found)
    # Docker's own DNAT of the live container is never the rule to delete
    assert not [f for f in found if f.kind == "dead-rule" and f.rule is not None
                and "172.17.0.2:80" in f.rule.text and f.rule.chain == "DOCKER"]
