"""``natlens exposure`` with nothing to map: the message says what the map covers, and a note
counts the nat DNAT rules it does not cover (kube-proxy's NodePorts) with a port to trace."""
from __future__ import annotations

from pathlib import Path

import pytest

import natlens
from natlens.cli import main
from natlens.exposure import exposure

KUBE = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
-A PREROUTING -j KUBE-NODEPORTS
-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080 -j KUBE-SEP-A
-A KUBE-NODEPORTS -p udp -m udp --dport 30053 -j KUBE-SEP-B
-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.128.0.5:8080
-A KUBE-SEP-B -p udp -m udp -j DNAT --to-destination 10.128.0.6:53
COMMIT
"""
PLAIN = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"""


@pytest.mark.parametrize(("rules", "note"), [
    (KUBE, "the nat table has 2 DNAT rules the map does not cover (it maps the ports "
           "docker-containers.json publishes and the services ss.txt lists, not e.g. kube-proxy "
           "NodePorts): check a port with `natlens trace PATH --in eth0 --src 198.51.100.7 --dst "
           "203.0.113.2 --proto tcp --dport 30080`"),
    (PLAIN, None),
], ids=["kube", "no-dnat"])
def test_empty_map_says_what_it_covers_and_counts_other_dnat(
        tmp_path: Path, rules: str, note: str | None,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "iptables-save.txt"
    path.write_text(rules)
    emap = exposure(natlens.load(path))
    assert emap.rows == ()
    assert [n for n in emap.notes if "DNAT" in n] == ([] if note is None else [note])
    assert main(["exposure", str(path), "--no-cache"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert " ".join(out.split()).startswith(
        "exposure: nothing to map: the map covers Docker published ports, container ports "
        "(docker-containers.json) and host services (ss.txt)")
    assert ("2 DNAT rules" in " ".join(out.split())) == (note is not None)
