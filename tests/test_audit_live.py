"""The Docker-aware checks on this host's real daemon: a clean set of containers gives no finding
but the one Docker 20.10 really has (a loopback-only port reachable by routing to the container),
then faults planted by hand give exactly their findings.

Needs root, iptables and a running dockerd (``scripts/start-dockerd.sh``) with the image
``natlens-busybox:latest`` (``scripts/make-busybox-image.sh``, run here when missing). Skipped
without them, except in CI (``CI=true``), where they fail. Everything the test adds (containers,
a network, iptables rules) is removed again, and the rules are checked to be as before.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import docker as _docker
from docker_helpers import require_daemon_and_image
from docker_helpers import run as _run

from natlens.audit.docker_checks import (
    check_docker_user_ports,
    check_published_ports,
    check_stale_dnat,
    check_unknown_interfaces,
)
from natlens.audit.duplicates import check_duplicate_nat
from natlens.audit.exposure import check_bypass, check_exposed
from natlens.audit.findings import AuditContext, Finding, Severity
from natlens.capture import capture
from natlens.snapshot import load

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "natlens-busybox:latest"
PREFIX = f"natlens-audit-{os.getpid()}"
SUBNET = "10.97.31.0/24"
# Host ports away from the fixtures' and test_docker_inventory's.
WEB, API, APP, LOOP, UDP, RANGE, USER, STOPPED, STALE = (
    47080, 47081, 47082, 47090, 47053, 47100, 47083, 47099, 47070)

CHECKS: tuple[Callable[[AuditContext], Iterator[Finding]], ...] = (
    check_stale_dnat, check_published_ports, check_docker_user_ports, check_unknown_interfaces,
    check_exposed, check_bypass,
)


def _rules() -> str:
    """``iptables-save`` and ``ip6tables-save`` without counters and time-stamped comments."""
    out: list[str] = []
    for tool in ("iptables-save", "ip6tables-save"):
        text = _run(tool)
        out.extend(re.sub(r"\[\d+:\d+\]\s*", "", ln) for ln in text.splitlines()
                   if not ln.startswith("#"))
    return "\n".join(out)


@dataclass(frozen=True)
class Scene:
    """Names of what the ``scene`` fixture started, and the web containers' addresses."""

    web: str
    api: str
    app: str
    loop: str
    udp: str
    range: str
    user: str
    stopped: str
    network: str
    addresses: dict[str, str]


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    """Published ports of every kind on a real daemon (removed afterwards)."""
    require_daemon_and_image(IMAGE)
    before = _rules()
    names = [f"{PREFIX}-{n}" for n in
             ("web", "api", "app", "loop", "udp", "range", "user", "stopped", "net")]
    try:
        web, api, app, loop, udp, rng, user, stopped, net = names
        _docker("network", "create", "--subnet", SUBNET, net)
        _docker("run", "-d", "--name", web, "-p", f"{WEB}:80", IMAGE)
        _docker("run", "-d", "--name", api, "-p", f"{API}:80", IMAGE)
        _docker("run", "-d", "--name", app, "-p", f"{APP}:80", IMAGE)
        _docker("run", "-d", "--name", loop, "-p", f"127.0.0.1:{LOOP}:80", IMAGE)
        _docker("run", "-d", "--name", udp, "-p", f"{UDP}:53/udp", IMAGE)
        _docker("run", "-d", "--name", rng, "-p", f"{RANGE}-{RANGE + 2}:7000-7002", IMAGE,
                "httpd", "-f", "-p", "7000")
        _docker("run", "-d", "--name", user, "--network", net, "-p", f"{USER}:80", IMAGE)
        _docker("run", "-d", "--name", stopped, "-p", f"{STOPPED}:80", IMAGE)
        _docker("stop", "-t", "0", stopped)
        addresses = {n: _docker("inspect", "-f",
                                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                n).strip() for n in (web, api, app)}
        yield Scene(web, api, app, loop, udp, rng, user, stopped, net, addresses)
    finally:
        ids = _docker("ps", "-aq", "--filter", f"name=^/{PREFIX}-").split()
        if ids:
            _docker("rm", "-f", *ids)
        subprocess.run(["docker", "network", "rm", names[-1]], capture_output=True, check=False)
    assert _rules() == before, "the host's rules differ from before the test"


def _audit(folder: Path) -> list[Finding]:
    capture(folder)
    ctx = AuditContext(load(folder))
    return [f for check in CHECKS for f in check(ctx)]


def _ours(findings: list[Finding], *ports: int) -> set[tuple[str, int | None, str | None]]:
    return {(f.kind, f.host_port, f.container) for f in findings
            if f.host_port in ports or (f.container or "").startswith(PREFIX)}


def test_clean_daemon(scene: Scene, tmp_path: Path) -> None:
    found = _audit(tmp_path / "clean")
    serious = [f for f in found if f.severity >= Severity.MEDIUM]
    # Docker 20.10 accepts the loopback-only container's port 80 in filter DOCKER for packets
    # from any interface: a neighbour routing 172.17.0.0/16 via this host reaches it.
    assert {(f.kind, f.host_port, f.container) for f in serious} == {
        ("exposed", LOOP, scene.loop)}, "\n".join(map(str, found))
    assert _ours(found, WEB, API, APP, UDP, RANGE, USER, STOPPED) == {
        ("exposed", LOOP, scene.loop)}


@dataclass
class Planted:
    """Rules added by the test (``iptables [-t TABLE] -I CHAIN SPEC``), deleted by ``remove``."""

    rules: list[tuple[str, str, list[str]]]

    def add(self, table: str, chain: str, *spec: str) -> None:
        _run("iptables", "-t", table, "-I", chain, *spec)
        self.rules.append((table, chain, list(spec)))

    def remove(self) -> None:
        errors = []
        for table, chain, spec in reversed(self.rules):
            proc = subprocess.run(["iptables", "-t", table, "-D", chain, *spec],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                errors.append(f"-t {table} -D {chain} {' '.join(spec)}: {proc.stderr.strip()}")
        self.rules.clear()
        assert not errors, errors


def test_planted_faults(scene: Scene, tmp_path: Path) -> None:
    before = _rules()
    planted = Planted([])
    app_ip = scene.addresses[scene.app]
    try:
        planted.add("nat", "DOCKER", "-p", "tcp", "-m", "tcp", "--dport", str(STALE), "-j",
                    "DNAT", "--to-destination", "172.17.0.250:80")
        planted.add("nat", "PREROUTING", "-p", "tcp", "-m", "tcp", "--dport", str(API), "-j",
                    "REDIRECT", "--to-ports", "1")
        planted.add("nat", "PREROUTING", "!", "-i", "docker0", "-p", "tcp", "-m", "tcp",
                    "--dport", str(APP), "-j", "DNAT", "--to-destination", f"{app_ip}:80")
        planted.add("filter", "DOCKER-USER", "-p", "tcp", "-m", "tcp", "--dport", str(WEB),
                    "-j", "DROP")
        planted.add("filter", "INPUT", "-p", "tcp", "-m", "tcp", "--dport", str(USER), "-j",
                    "DROP")
        found = _audit(tmp_path / "faults")
        text = "\n".join(map(str, found))
        assert _ours(found, WEB, API, APP, UDP, RANGE, USER, STOPPED, STALE) == {
            ("stale", STALE, None),
            ("shadowed", API, scene.api),
            ("ineffective", WEB, scene.web),
            ("bypass", USER, scene.user),
            ("exposed", LOOP, scene.loop),
        }, text
        by_kind: dict[str, Any] = {f.kind: f for f in found}
        assert by_kind["stale"].rule.where == "nat DOCKER #1"
        assert by_kind["shadowed"].rule.where == "nat PREROUTING #2"
        assert by_kind["shadowed"].related[0].chain == "DOCKER"
        assert by_kind["ineffective"].rule.where == "filter DOCKER-USER #1"
        assert by_kind["bypass"].rule.where == "filter INPUT #1"
        assert by_kind["bypass"].severity is Severity.HIGH
        # The copy of Docker's DNAT for APP still lands at the container: only a duplicate.
        ctx = AuditContext(load(tmp_path / "faults"))
        dups = [f for f in check_duplicate_nat(ctx) if f.host_port == APP]
        assert [(f.kind, f.rule.where if f.rule else None) for f in dups] == [
            ("duplicate", "nat PREROUTING #1")], text
    finally:
        planted.remove()
    assert _rules() == before, "planted rules were not all removed"
