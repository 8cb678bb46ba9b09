"""Every natlens value survives ``pickle`` and ``copy.deepcopy`` (read-only mappings are
registered with ``copyreg`` in natlens.model; a ``Snapshot`` leaves its prepared simulator
behind): a parsed ``Ruleset``, a used ``Snapshot`` with its ``Host`` and nftables rules, and
what the analyses return."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import natlens

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ["default-bridge-8080", "docker29-nftables", "ipv6"]
RULES = """*nat
:PREROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
"""
COPIES: list[tuple[str, Callable[[Any], Any]]] = [
    ("pickle", lambda value: pickle.loads(pickle.dumps(value))),
    ("pickle-2", lambda value: pickle.loads(pickle.dumps(value, protocol=2))),
    ("deepcopy", copy.deepcopy),
    ("copy", copy.copy),
]


@pytest.mark.parametrize(("how", "again"), COPIES, ids=[h for h, _ in COPIES])
def test_parsed_ruleset(how: str, again: Callable[[Any], Any]) -> None:
    ruleset = natlens.parse_save(RULES, source="rules.txt")
    back = again(ruleset)
    assert back == ruleset
    assert back["nat"]["DOCKER"].rules == ruleset["nat"]["DOCKER"].rules
    assert "DOCKER" in back["nat"]
    assert back["nat"].get("NOPE") is None
    assert back.source == "rules.txt"


@pytest.mark.parametrize(("how", "again"), COPIES, ids=[h for h, _ in COPIES])
@pytest.mark.parametrize("name", FIXTURES)
def test_used_snapshot_and_what_it_holds(name: str, how: str,
                                         again: Callable[[Any], Any]) -> None:
    snap = natlens.load(ROOT / "fixtures" / name)
    exposure = natlens.exposure(snap)  # prepares the simulator, the host, derived facts
    findings = natlens.audit(snap)
    for value in (snap, snap.host, snap.nft, snap.ruleset, snap.ruleset6, exposure, findings):
        assert again(value) == value
    back = again(snap)
    assert natlens.exposure(back) == exposure
    assert natlens.audit(back) == findings


def test_a_read_only_mapping_stays_read_only() -> None:
    table = natlens.parse_save(RULES)["nat"]
    index = pickle.loads(pickle.dumps(table))._index
    assert isinstance(index, MappingProxyType)
    assert dict(index) == {"PREROUTING": 0, "DOCKER": 1}
