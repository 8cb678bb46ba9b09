"""The nft twins of ``tests/test_audit_nft_parity.py`` behave in the kernel as their iptables
originals do, so a finding natlens makes on one and not on the other is natlens's difference.

For each case the original iptables dump is loaded into one ``diff_harness.Lab`` (with
``iptables-nft-restore``) and its ``iptables-restore-translate`` form into another (with
``nft -f``, no iptables rules at all); both routers have the Docker host's links (``eth0``
192.0.2.2/24, ``docker0`` 172.17.0.1/16, a VPN's ``wg0`` 10.8.0.1/24, default route via
eth0). The same probes (the packets that show each finding: a published port from outside,
from the bridge, from the host, a stale DNAT's port, a direct route to a container) go through
both, and the kernel's outcome of each (verdict, path, final destination, out interface:
``diff_oracle.kernel_outcome``; rule counters left out, as they name iptables rules) must be
the same.

Needs root, iptables-nft, nft and conntrack (``kernel`` marker); about 1 s a case.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from diff_gen import Probe
from diff_harness import Lab, Topology
from diff_oracle import KernelOutcome, kernel_outcome

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
DOCKER_HOST = Topology({"eth0": "192.0.2.2/24", "docker0": "172.17.0.1/16",
                        "wg0": "10.8.0.1/24"}, ("192.0.2.1", "eth0"))
_OUT = "198.51.100.7"


def _tcp(ingress: str, src: str, dst: str, dport: int) -> Probe:
    return Probe(ingress, src, dst, "tcp", 40000, dport)


CASES = [
    pytest.param("fixtures/planted-faults", [
        _tcp("eth0", _OUT, "192.0.2.2", 8080),   # DOCKER-USER's drop on the host port
        _tcp("eth0", _OUT, "192.0.2.2", 8081),   # REDIRECT shadowing the published port
        _tcp("eth0", _OUT, "192.0.2.2", 8082),   # DNAT twice (duplicate)
        _tcp("eth0", _OUT, "192.0.2.2", 8090),   # stale DNAT
        _tcp("local", "192.0.2.2", "192.0.2.2", 8081),
    ], id="stale-shadowed-ineffective"),
    pytest.param("docs/examples/mismatch", [_tcp("eth0", _OUT, "192.0.2.2", 8080)],
                 id="mismatch"),
    pytest.param("fixtures/planted-rules", [
        _tcp("eth0", _OUT, "192.0.2.2", 8081),   # the DNAT edited to port 81
        _tcp("eth0", _OUT, "192.0.2.2", 8080),
    ], id="mismatch-loop-unreachable-unused"),
    pytest.param("docs/examples/missing", [_tcp("eth0", _OUT, "192.0.2.2", 8080)],
                 id="missing"),
    pytest.param("fixtures/multi-interface-ufw", [
        _tcp("eth0", _OUT, "192.0.2.2", 8080),   # ufw refuses it in INPUT, the DNAT bypasses
        _tcp("eth0", _OUT, "192.0.2.2", 8443),   # ufw's INPUT allow never sees it
        _tcp("eth0", _OUT, "192.0.2.2", 22),
        _tcp("wg0", "10.8.0.7", "192.0.2.2", 8080),
    ], id="bypass-ineffective"),
    pytest.param("fixtures/docker28-raw-drop", [
        _tcp("wg0", "10.8.0.7", "172.17.0.2", 80),  # raw drops it before DOCKER-USER's allow
        _tcp("eth0", _OUT, "192.0.2.2", 8080),
    ], id="raw-dropped-allow"),
    pytest.param("fixtures/icc-no-proxy", [
        _tcp("docker0", "172.17.0.3", "192.0.2.2", 8080),
        _tcp("eth0", _OUT, "192.0.2.2", 8080),
    ], id="hairpin-blocked"),
    pytest.param("fixtures/loopback-9000", [
        _tcp("eth0", _OUT, "172.17.0.2", 80),
        _tcp("local", "192.0.2.2", "192.0.2.2", 9000),
    ], id="exposed"),
]


def _outcome(lab: Lab, p: Probe) -> KernelOutcome:
    got = kernel_outcome(p.to_json(), lab.probe(p))
    return KernelOutcome(got.verdict, got.path, got.final_src, got.final_dst,
                         got.out_interface, {})


def _require() -> None:
    missing = [t for t in ("iptables-nft-restore", "iptables-restore-translate", "nft",
                           "conntrack") if shutil.which(t) is None]
    reason = "needs root" if os.geteuid() != 0 else (
        f"needs {', '.join(missing)}" if missing else None)
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.mark.parametrize(("case", "probes"), CASES)
def test_nft_twin_behaves_as_the_iptables_original(case: str, probes: list[Probe]) -> None:
    _require()
    dump = (ROOT / case / "iptables-save.txt").read_text()
    native = subprocess.run(["iptables-restore-translate", "-f",
                             str(ROOT / case / "iptables-save.txt")], capture_output=True,
                            text=True, check=True).stdout
    with Lab("nft", DOCKER_HOST) as ipt, Lab("nft", DOCKER_HOST) as nft:
        ipt.load(dump)
        nft.load("", nft=native)
        for p in probes:
            mine, theirs = _outcome(ipt, p), _outcome(nft, p)
            assert mine == theirs, f"{p}: iptables {mine.summary()} / nft {theirs.summary()}"
