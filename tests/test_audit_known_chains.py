"""Chains others own are known by name: kube's canaries are never reported, Docker's own
chains are never "delete it" (issue 9: findings never tell to delete Docker's chains)."""

from __future__ import annotations

import pytest

from natlens.audit import audit_text
from natlens.audit.graph_checks import check_unused_chains

_DUMP = """*{table}
:{builtin} ACCEPT [0:0]
:{chain} - [0:0]
{rules}COMMIT
"""


@pytest.mark.parametrize(("table", "builtin", "chain"), [
    ("filter", "INPUT", "KUBE-KUBELET-CANARY"),
    ("nat", "PREROUTING", "KUBE-KUBELET-CANARY"),
    ("mangle", "PREROUTING", "KUBE-PROXY-CANARY"),
    ("mangle", "PREROUTING", "KUBE-IPTABLES-HINT"),
])
def test_kube_canaries_are_not_findings(table: str, builtin: str, chain: str) -> None:
    text = _DUMP.format(table=table, builtin=builtin, chain=chain, rules="")
    assert audit_text(text, check_unused_chains) == []


@pytest.mark.parametrize(("chain", "rules"), [
    ("DOCKER-CT", "-A DOCKER-CT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED "
                  "-j ACCEPT\n"),
    ("DOCKER-BRIDGE", ""),
    ("DOCKER-INTERNAL", ""),
    ("DOCKER-ISOLATION-STAGE-1", "-A DOCKER-ISOLATION-STAGE-1 -j RETURN\n"),
])
def test_docker_chains_are_never_deleted(chain: str, rules: str) -> None:
    text = _DUMP.format(table="filter", builtin="FORWARD", chain=chain, rules=rules)
    [finding] = audit_text(text, check_unused_chains)
    assert finding.fix is None
    assert "do not delete it" in finding.message


def test_other_unused_chains_keep_their_fix() -> None:
    text = _DUMP.format(table="filter", builtin="INPUT", chain="OLD", rules="-A OLD -j DROP\n")
    [finding] = audit_text(text, check_unused_chains)
    assert finding.fix == "iptables -t filter -F OLD && iptables -t filter -X OLD"
