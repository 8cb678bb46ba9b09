"""The ``connection`` part of a trace on this host's real daemon: a container connects to its
own published port through the host's address (its network's gateway), and natlens, reading a
snapshot of the host, must say the same as the real connection.

With the userland proxy (dockerd's default) Docker's DNAT skips traffic from the bridge
(``! -i docker0``) and docker-proxy on the host answers: the connection works. Then a DNAT that
does apply to the bridge, without the hairpin MASQUERADE Docker adds when it runs without the
proxy, is planted: the container answers itself and the connection fails. (The layout without
the proxy, hairpin MASQUERADE included, is replayed in namespaces by test_connection_kernel.py:
dockerd's own setting cannot change under a running daemon.)

Needs root, iptables and a running dockerd with ``natlens-busybox:latest``; everything added is
removed and the rules are checked to be as before.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_helpers import docker as _docker
from docker_helpers import require_daemon_and_image
from docker_helpers import run as _run

from natlens.capture import capture
from natlens.netfilter import Packet
from natlens.snapshot import load

pytestmark = pytest.mark.docker

IMAGE = "natlens-busybox:latest"
NAME = f"natlens-conn-{os.getpid()}"
PORT = 47180


def _rules() -> str:
    text = _run("iptables-save")
    return "\n".join(re.sub(r"\[\d+:\d+\]\s*", "", ln) for ln in text.splitlines()
                     if not ln.startswith("#"))


@pytest.fixture(scope="module")
def web() -> Iterator[tuple[str, str]]:
    """(container address, gateway address) of a container publishing PORT -> 80."""
    require_daemon_and_image(IMAGE)
    before = _rules()
    try:
        _docker("run", "-d", "--name", NAME, "-p", f"{PORT}:80", IMAGE)
        ip = _docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", NAME).strip()
        gateway = _docker("inspect", "-f", "{{.NetworkSettings.Gateway}}", NAME).strip()
        assert ip, "the container has no address on the default bridge"
        assert gateway, "the default bridge has no gateway"
        yield ip, gateway
    finally:
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    assert _rules() == before, "the host's rules differ from before the test"


def _connects(gateway: str) -> bool:
    """Whether an HTTP request from inside the container to GATEWAY:PORT is answered (busybox
    nc: the static busybox's wget cannot resolve without NSS)."""
    proc = subprocess.run(["docker", "exec", NAME, "sh", "-c",
                           f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {gateway} {PORT}"],
                          capture_output=True, text=True, check=False, timeout=30)
    return proc.returncode == 0 and "200 OK" in proc.stdout


def _natlens_says(tmp: Path, ip: str, gateway: str) -> bool | None:
    capture(tmp / "snap", docker=True)
    snap = load(tmp / "snap")
    bridge = next((n["Options"].get("com.docker.network.bridge.name", "docker0")
                   for n in snap.networks or () if n.get("Name") == "bridge"), "docker0")
    trace = snap.simulator.trace(Packet(in_interface=bridge, src=ip, dst=gateway,
                                        dport=PORT, sport=40000))
    assert trace.connection is not None
    return trace.connection.established


def test_own_published_port_through_the_userland_proxy(web: tuple[str, str],
                                                       tmp_path: Path) -> None:
    ip, gateway = web
    proxy = "! -i docker0" in _rules()
    if not proxy:
        pytest.skip("dockerd runs without the userland proxy here")
    real = _connects(gateway)
    assert real is True
    assert _natlens_says(tmp_path, ip, gateway) is real


def test_own_published_port_dnated_without_hairpin_masquerade(web: tuple[str, str],
                                                              tmp_path: Path) -> None:
    ip, gateway = web
    rule = ["-t", "nat", "-I", "DOCKER", "1", "-i", "docker0", "-p", "tcp", "-m", "tcp",
            "--dport", str(PORT), "-j", "DNAT", "--to-destination", f"{ip}:80"]
    _run("iptables", *rule)
    try:
        real = _connects(gateway)
        said = _natlens_says(tmp_path, ip, gateway)
    finally:
        _run("iptables", *[("-D" if a == "-I" else a) for a in rule if a != "1"])
    assert real is False
    assert said is real
