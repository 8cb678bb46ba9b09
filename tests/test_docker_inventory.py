"""``Inventory.from_docker`` against a real daemon, checked against the ``docker`` CLI's JSON.

Needs a running dockerd (``scripts/start-dockerd.sh``) and the image ``natlens-busybox:latest``
(built here with ``scripts/make-busybox-image.sh`` when missing). Without a daemon these tests
skip, except in CI (``CI=true``), where the daemon is part of the contract and they fail.
Containers and networks are named ``natlens-test-<pid>-*`` and removed in teardown.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import unavailable as _unavailable

from natlens.docker import DockerError, Inventory, PortProto, connect

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "natlens-busybox:latest"
PREFIX = f"natlens-test-{os.getpid()}"
SUBNET = "10.98.0.0/24"
# Host ports away from the fixtures' 8080/9000/5353/7000 so a developer's containers don't clash.
WEB, LOOP, UDP, RANGE, STOPPED, USER = 18080, 19000, 15353, 17000, 18082, 18081


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False,
                          timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A Docker SDK client for the daemon under test (skip/fail when there is none)."""
    if shutil.which("docker") is None:
        _unavailable("the docker CLI is not installed")
    try:
        sdk = connect()
    except DockerError as exc:
        _unavailable(str(exc))
        raise  # pragma: no cover  (_unavailable does not return)
    yield sdk
    sdk.close()


@dataclass(frozen=True)
class Scene:
    """Names of what the ``scene`` fixture started."""

    web: str
    loop: str
    udp: str
    range: str
    user: str
    stopped: str
    created: str
    network: str


@pytest.fixture(scope="module")
def scene(client: Any) -> Iterator[Scene]:
    """Containers publishing ports in every way, a user network, a stopped and a created one."""
    del client
    proc = subprocess.run([str(ROOT / "scripts" / "make-busybox-image.sh"), IMAGE],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"make-busybox-image.sh failed: {proc.stderr}"
    s = Scene(*(f"{PREFIX}-{n}" for n in
                ("web", "loop", "udp", "range", "user", "stopped", "created", "net")))
    try:
        _docker("network", "create", "--subnet", SUBNET, s.network)
        _docker("run", "-d", "--name", s.web, "-p", f"{WEB}:80", IMAGE)
        _docker("run", "-d", "--name", s.loop, "-p", f"127.0.0.1:{LOOP}:80", IMAGE)
        _docker("run", "-d", "--name", s.udp, "-p", f"{UDP}:53/udp", IMAGE)
        _docker("run", "-d", "--name", s.range, "-p",
                f"{RANGE}-{RANGE + 2}:7000-7002", IMAGE, "httpd", "-f", "-p", "7000")
        _docker("run", "-d", "--name", s.user, "--network", s.network, "-p", f"{USER}:80", IMAGE)
        _docker("run", "-d", "--name", s.stopped, "-p", f"{STOPPED}:80", IMAGE)
        _docker("stop", "-t", "0", s.stopped)
        _docker("create", "--name", s.created, "-p", f"{STOPPED + 1}-{STOPPED + 3}:80", IMAGE)
        yield s
    finally:
        ids = _docker("ps", "-aq", "--filter", f"name=^/{PREFIX}-").split()
        if ids:
            _docker("rm", "-f", *ids)
        subprocess.run(["docker", "network", "rm", s.network], capture_output=True, check=False)


def _cli_json() -> tuple[list[Any], list[Any]]:
    """What ``docker inspect $(docker ps -aq)`` and ``docker network inspect ...`` print."""
    ids = _docker("ps", "-aq", "--no-trunc").split()
    containers = json.loads(_docker("inspect", *ids)) if ids else []
    nets = _docker("network", "ls", "-q", "--no-trunc").split()
    networks = json.loads(_docker("network", "inspect", *nets)) if nets else []
    return containers, networks


def _live_and_cli(client: Any) -> tuple[Inventory, Inventory]:
    # Other users of the daemon may add or remove objects between the two reads: retry then.
    for _ in range(5):
        live = Inventory.from_docker(client)
        containers, networks = _cli_json()
        cli = Inventory.from_json(containers, networks, live.daemon.to_meta())
        if {c.id for c in live.containers} == {c.id for c in cli.containers}:
            return live, cli
    return live, cli


def test_live_equals_cli_json(client: Any, scene: Scene) -> None:
    live, cli = _live_and_cli(client)
    assert live == cli
    assert live.source.startswith("docker:")
    names = {c.name for c in live.containers}
    assert {scene.web, scene.loop, scene.udp, scene.range, scene.user, scene.stopped,
            scene.created} <= names


def _get(inv: Inventory, name: str) -> Any:
    container = inv.container(name)
    assert container is not None, f"{name} not in inventory"
    return container


def test_published_ports(client: Any, scene: Scene) -> None:
    inv = Inventory.from_docker(client)
    web = _get(inv, scene.web)
    assert web.running
    assert f"0.0.0.0:{WEB}->80/tcp" in {str(p) for p in web.ports}
    assert {(p.proto, p.container_port, p.host_start, p.host_end) for p in web.ports} == {
        (PortProto.TCP, 80, WEB, WEB)}

    (loop,) = _get(inv, scene.loop).ports
    assert str(loop) == f"127.0.0.1:{LOOP}->80/tcp"
    assert loop.loopback_only

    udp = _get(inv, scene.udp)
    assert {(p.proto, p.container_port, p.host_start) for p in udp.ports} == {
        (PortProto.UDP, 53, UDP)}

    rng = _get(inv, scene.range)
    assert {(p.container_port, p.host_start, p.host_end) for p in rng.ports} == {
        (7000 + i, RANGE + i, RANGE + i) for i in range(3)}


def test_stopped_and_created(client: Any, scene: Scene) -> None:
    inv = Inventory.from_docker(client)
    stopped = _get(inv, scene.stopped)
    assert stopped.state == "exited"
    assert not stopped.running
    assert stopped.addresses == ()
    assert [str(p) for p in stopped.ports] == [f"{STOPPED}->80/tcp"]
    created = _get(inv, scene.created)
    assert created.state == "created"
    assert [str(p) for p in created.ports] == [f"{STOPPED + 1}-{STOPPED + 3}->80/tcp"]
    assert scene.stopped not in {c.name for c in inv.running}


def test_addresses_and_networks(client: Any, scene: Scene) -> None:
    inv = Inventory.from_docker(client)
    net = inv.network(scene.network)
    assert net is not None
    assert net.driver == "bridge"
    assert net.bridge == f"br-{net.id[:12]}"
    assert net.subnets == (ipaddress.ip_network(SUBNET),)
    assert net.gateways == (ipaddress.ip_address("10.98.0.1"),)
    user = _get(inv, scene.user)
    (endpoint,) = user.networks
    assert endpoint.name == scene.network
    assert endpoint.network_id == net.id
    assert endpoint.ipv4 in ipaddress.ip_network(SUBNET)
    assert endpoint.ipv4_prefix == 24
    assert endpoint.gateway == ipaddress.ip_address("10.98.0.1")
    assert endpoint.mac.count(":") == 5
    assert inv.holder(endpoint.ipv4) == user

    bridge = inv.network("bridge")
    assert bridge is not None
    assert bridge.bridge == "docker0"
    web = _get(inv, scene.web)
    (web_ep,) = web.networks
    assert web_ep.name == "bridge"
    assert any(web_ep.ipv4 in s for s in bridge.subnets)
    # the address docker inspect -f reports
    ip = _docker("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", scene.web)
    assert str(web_ep.ipv4) == ip.strip()


def test_daemon_facts(client: Any, scene: Scene) -> None:
    del scene  # running containers with published ports: docker-proxy runs if the proxy is on
    facts = Inventory.from_docker(client).daemon
    assert facts.version == _docker("version", "-f", "{{.Server.Version}}").strip()
    assert facts.iptables is True
    proxies = [p for p in Path("/proc").glob("[0-9]*/comm")
               if _read(p).strip() == "docker-proxy"]
    assert facts.userland_proxy is bool(proxies)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
