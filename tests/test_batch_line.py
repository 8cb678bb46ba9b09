"""``natlens trace --packets`` one-liners (natlens.batch.packet_line): a branching outcome lists
its distinct verdicts so that no verdict hides behind the first branch's."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from natlens.cli import main

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 5432 -m statistic --mode random --probability 0.5 -j REJECT
-A INPUT -p tcp --dport 22 -m statistic --mode random --probability 0.5 -j ACCEPT
COMMIT
"""
PACKETS = [
    '{"in": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "dport": 5432}',
    '{"in": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "dport": 22}',
]


def _trace(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    (tmp_path / "iptables-save.txt").write_text(RULES)
    (tmp_path / "packets").write_text("\n".join(PACKETS) + "\n")
    status = main(["trace", str(tmp_path / "iptables-save.txt"), "--packets",
                   str(tmp_path / "packets"), *extra])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    return out


def test_branches_that_end_differently_list_their_verdicts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _trace(tmp_path, capsys).splitlines()
    records = [json.loads(line) for line in _trace(tmp_path, capsys, "--format",
                                                   "json").splitlines()]
    assert len(lines) == len(records) == 2
    for line, record in zip(lines, records, strict=True):
        verdicts = list(dict.fromkeys(b["verdict"] for b in record["branches"]))
        assert len(record["branches"]) >= 2
        suffix = f": {', '.join(verdicts)}" if len(verdicts) > 1 else ""
        assert f" [{len(record['branches'])} branches{suffix}]" in line
    rejects, accepts = records
    assert {"REJECT", "ACCEPT"} <= {b["verdict"] for b in rejects["branches"]}
    assert "REJECT" in lines[0]
    assert "ACCEPT]" in lines[0]
    assert {b["verdict"] for b in accepts["branches"]} == {"ACCEPT"}
    assert lines[1].split(" [")[1].startswith(f"{len(accepts['branches'])} branches]")
