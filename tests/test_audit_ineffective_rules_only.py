"""``ineffective`` for a DOCKER-USER rule written for a published host port, from rules alone
(no docker-containers.json): the published port is the DNAT rule's ``--dport``, the container's
port its ``--to-destination`` port. FORWARD sees the packet after nat PREROUTING's DNAT
(iptables-extensions(8) "DNAT", "conntrack --ctorigdstport")."""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT
from hostile_input import run_command

from natlens.audit import audit_text

NAT = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
"""

FILTER = """*filter
:FORWARD DROP [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j ACCEPT
-A DOCKER-USER {rule}
-A DOCKER-USER -j RETURN
COMMIT
"""


def _ineffective(rule: str) -> list[str]:
    found = audit_text(NAT + FILTER.format(rule=rule))
    return [f"{f.rule.where} {f.fix}" for f in found
            if f.kind == "ineffective" and f.rule is not None and f.rule.chain == "DOCKER-USER"]


def test_paste_on_stdin_gives_the_finding() -> None:
    """The new-user trial: ``natlens report -`` fed the planted-faults dump."""
    dump = (REPO_ROOT / "fixtures/planted-faults/iptables-save.txt").read_bytes()
    run = run_command(["report", "--format", "json", "-"], stdin=dump)
    assert run.status == 1, run.err
    doc = json.loads(run.out)
    findings = doc["findings"] if isinstance(doc, dict) else doc
    hits = [f for f in findings if f["kind"] == "ineffective"
            and "DOCKER-USER" in json.dumps(f.get("rule"))]
    assert len(hits) == 1, findings
    assert hits[0]["severity"] == "medium"
    assert "--ctorigdstport 8080" in hits[0]["fix"]
    assert "172.17.0.2:80" in hits[0]["message"]


@pytest.mark.parametrize(("rule", "expected"), [
    ("-p tcp -m tcp --dport 8080 -j DROP",
     ["filter DOCKER-USER #1 iptables -t filter -R DOCKER-USER 1 -p tcp -m conntrack "
      "--ctorigdstport 8080 --ctdir ORIGINAL -j DROP"]),
    ("-p tcp -m multiport --dports 8000:8090 -j DROP", ["filter DOCKER-USER #1 None"]),
    ("-p tcp -m tcp --dport 80 -j DROP", []),             # the container port: right
    ("-p tcp -m multiport --dports 80,8080 -j DROP", []),  # matches after DNAT too
    ("-p udp -m udp --dport 8080 -j DROP", []),            # other protocol
    ("-p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j DROP", []),  # right
])
def test_docker_user_rule_against_dnat_rules(rule: str, expected: list[str]) -> None:
    assert _ineffective(rule) == expected


def test_no_dnat_no_finding() -> None:
    found = audit_text(FILTER.format(rule="-p tcp -m tcp --dport 8080 -j DROP"))
    assert not [f for f in found if f.kind == "ineffective"]
