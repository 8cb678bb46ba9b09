"""The audit's loopback-DNAT check and the trace read ``route_localnet`` from the same evidence.

Without the sysctl in the snapshot, kube-proxy's guard rule (``! -s 127.0.0.0/8 -d 127.0.0.0/8
-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP``, written when it sets
``route_localnet=1``) tells the trace that route_localnet is on (``Simulator.localnet``, found by
``natlens.netfilter.routing.localnet_guard``); the audit's ``check_loopback_dnat`` asks the same
simulator, so a ``hairpin-blocked`` finding for ``127.0.0.1:PORT`` is reported exactly when
the trace of that connection says it cannot be established, for the same reason.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT

import natlens
from natlens.audit import audit
from natlens.netfilter import Packet

_GUARD = ('-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block '
          'incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT '
          '-j DROP')
_LOCAL_MASQ = "-A POSTROUTING -o docker0 -m addrtype --src-type LOCAL -j MASQUERADE"


def _snapshot(tmp_path: Path, *, guard: bool, masquerade: bool) -> Path:
    """fixtures/no-userland-proxy (its loopback DNAT to 172.17.0.2:80) without the
    route_localnet sysctls, with kube-proxy's guard and/or Docker's MASQUERADE of local
    sources."""
    folder = tmp_path / "snap"
    shutil.copytree(REPO_ROOT / "fixtures" / "no-userland-proxy", folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["sysctl"] = {k: v for k, v in meta["sysctl"].items() if "route_localnet" not in k}
    (folder / "meta.json").write_text(json.dumps(meta))
    lines = [line.split("] ", 1)[-1] for line in
             (folder / "iptables-save.txt").read_text().splitlines()]
    if guard:
        at = lines.index(":DOCKER-USER - [0:0]") + 1
        lines[at:at] = [":KUBE-FIREWALL - [0:0]", "-A OUTPUT -j KUBE-FIREWALL", _GUARD]
    if not masquerade:
        lines.remove(_LOCAL_MASQ)
    (folder / "iptables-save.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("masquerade", [True, False])
def test_audit_and_trace_agree_on_the_guard(tmp_path: Path, masquerade: bool) -> None:
    snap = natlens.load(_snapshot(tmp_path, guard=True, masquerade=masquerade))
    assert snap.simulator.localnet == "filter:KUBE-FIREWALL#1"
    trace = snap.simulator.trace(Packet(local_origin=True, src="127.0.0.1", dst="127.0.0.1",
                                        proto="tcp", sport=40000, dport=8080))
    assert trace.final_dst == "172.17.0.2:80"
    assert any(a.startswith("net.ipv4.conf.all.route_localnet=1: not in the snapshot; "
                            "inferred from filter:KUBE-FIREWALL#1") for a in trace.assumptions)
    assert trace.connection is not None
    assert trace.connection.established is masquerade
    found = [f for f in audit(snap) if f.kind == "hairpin-blocked" and "127.0.0.1" in f.message]
    if masquerade:
        assert found == []
    else:
        (finding,) = found
        assert finding.message.endswith(f"cannot be established: {trace.connection.why}")
        assert "route_localnet lets source 127.0.0.1 leave via docker0" in finding.message


def test_without_guard_or_sysctl_the_audit_stays_lenient(tmp_path: Path) -> None:
    """Without either, the trace assumes the kernel default 0 and the audit reports only what
    fails even with route_localnet on: Docker turns it on with this DNAT, so no finding."""
    snap = natlens.load(_snapshot(tmp_path, guard=False, masquerade=True))
    assert snap.simulator.localnet is None
    trace = snap.simulator.trace(Packet(local_origin=True, src="127.0.0.1", dst="127.0.0.1",
                                        proto="tcp", sport=40000, dport=8080))
    assert any("route_localnet=0 (the kernel default)" in a for a in trace.assumptions)
    assert [f for f in audit(snap) if f.kind == "hairpin-blocked"
            and "127.0.0.1" in f.message] == []
