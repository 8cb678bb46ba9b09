"""A cell dropped by the routing code (not by a rule) names the routing decision as its
``decided_by``, not the last policy the packet passed (docs/exposure.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import natlens

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "loopback-9000"

SS = ("Netid State Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
      "tcp   LISTEN 0      4096   127.0.0.1:5432      0.0.0.0:*    "
      'users:(("postgres",pid=11,fd=4))\n')


def _snapshot(tmp_path: Path) -> Path:
    """loopback-9000 plus a host service on 127.0.0.1:5432 (no DNAT for it)."""
    folder = tmp_path / "snap"
    shutil.copytree(FIXTURE, folder)
    (folder / "ss.txt").write_text(SS)
    return folder


def _cell(cells: list[dict[str, object]], ingress: str) -> dict[str, object]:
    return next(c for c in cells
                if c["ingress"] == ingress and c["dst"] == "127.0.0.1" and c["port"] == 5432)


def test_martian_destination_is_decided_by_routing(tmp_path: Path) -> None:
    folder = _snapshot(tmp_path)
    snap = natlens.load(str(folder))
    emap = natlens.exposure(snap)
    cells = emap.to_dict()["cells"]
    eth0 = _cell(cells, "eth0")
    assert eth0["reachable"] is False
    assert eth0["decided_by"] == {
        "source": None, "table": None, "chain": None, "index": None,
        "text": "martian destination 127.0.0.1 on eth0: dropped by the routing code"}
    # the same packet traced: the routing note is what ends it
    trace = snap.simulator.trace(emap.cells[cells.index(eth0)].packet)
    assert trace.steps[-1].text == "martian destination 127.0.0.1 on eth0: dropped by the " \
        "routing code"
    assert any(s.text == "policy ACCEPT" for s in trace.steps)  # a policy it passed first
    # the host itself still reaches postgres, decided by a filtering policy
    local = _cell(cells, "local")
    assert local["reachable"] is True
    assert local["decided_by"]["chain"] == "INPUT"  # type: ignore[index]


def test_cli_names_routing_not_policy(tmp_path: Path) -> None:
    folder = _snapshot(tmp_path)
    out = subprocess.run([sys.executable, "-m", "natlens", "exposure", "--format", "json",
                          str(folder)], capture_output=True, text=True, check=True).stdout
    eth0 = _cell(json.loads(out)["cells"], "eth0")
    decided = eth0["decided_by"]
    assert isinstance(decided, dict)
    assert decided["chain"] is None
    assert "policy" not in decided["text"]
    assert "routing code" in decided["text"]
