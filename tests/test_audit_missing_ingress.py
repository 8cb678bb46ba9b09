"""``missing`` means published but unreachable from *every* ingress it is published to (issue 9):
a forward policy that only lets the LAN interface's traffic drop is ``missing``; one that lets a
VPN interface through is not (the port is filtered on eth0, which is the administrator's choice).

Built on fixtures/split-legacy-nft, whose legacy FORWARD (policy DROP) accepts only docker0's
traffic: the published 8080 is ``missing`` there. The variant adds a VPN interface wg0 to the
host's addresses and ``-A FORWARD -i wg0 -j ACCEPT`` to the legacy rules.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import REPO_ROOT

import natlens
from natlens.audit import audit

FIXTURE = REPO_ROOT / "fixtures" / "split-legacy-nft"


def _with_vpn(tmp_path: Path, rule: str) -> Path:
    folder = tmp_path / "vpn"
    shutil.copytree(FIXTURE, folder)
    addr = folder / "ip-addr.json"
    links = json.loads(addr.read_text())
    links.append({"ifindex": 9, "ifname": "wg0", "flags": ["POINTOPOINT", "UP", "LOWER_UP"],
                  "mtu": 1420, "operstate": "UNKNOWN", "link_type": "none",
                  "addr_info": [{"family": "inet", "local": "10.8.0.1", "prefixlen": 24,
                                 "scope": "global", "label": "wg0"}]})
    addr.write_text(json.dumps(links))
    legacy = folder / "iptables-legacy-save.txt"
    legacy.write_text(legacy.read_text().replace(
        "-A FORWARD -i docker0 -j ACCEPT\n", f"-A FORWARD -i docker0 -j ACCEPT\n{rule}\n"))
    return folder


def _missing(folder: Path) -> list[tuple[str, int | None]]:
    return [(f.severity.value, f.host_port) for f in audit(natlens.load(folder))
            if f.kind == "missing"]


def test_unreachable_from_every_ingress_is_missing() -> None:
    assert _missing(FIXTURE) == [("high", 8080)]


def test_reachable_from_the_vpn_is_not_missing(tmp_path: Path) -> None:
    folder = _with_vpn(tmp_path, "-A FORWARD -i wg0 -j ACCEPT")
    emap = natlens.exposure(natlens.load(folder))
    reach = {c.ingress: c.reachable for c in emap.cells
             if c.row.port == 8080 and c.family == 4 and not c.dst.is_loopback
             and c.ingress in ("eth0", "wg0")}
    assert reach["eth0"] is False
    assert reach["wg0"] is not False  # the first packet is accepted (the reply may be in doubt)
    assert _missing(folder) == []


def test_vpn_interface_that_is_refused_too_is_still_missing(tmp_path: Path) -> None:
    folder = _with_vpn(tmp_path, "-A FORWARD -i wg0 -p udp -j ACCEPT")
    assert _missing(folder) == [("high", 8080)]
