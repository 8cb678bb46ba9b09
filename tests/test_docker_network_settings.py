"""A ``docker-containers.json`` container must carry ``NetworkSettings`` (``docker inspect``
prints it for every container): without it, or with null, the snapshot is refused with one line
naming the file and JSON path (exit 2) instead of reading the container as on no network; a
created or stopped container's ``"Ports": null`` / ``{}`` is still accepted."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import natlens
from natlens.cli import main
from natlens.docker import inventory_from_snapshot

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "default-bridge-8080"


def _snapshot(tmp_path: Path, edit: Any) -> Path:
    snap = tmp_path / "snap"
    shutil.copytree(FIXTURE, snap)
    path = snap / "docker-containers.json"
    containers = json.loads(path.read_text())
    edit(containers[0])
    path.write_text(json.dumps(containers))
    return snap


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c.pop("NetworkSettings"), "$[0]: no 'NetworkSettings' field"),
    (lambda c: c.update(NetworkSettings=None), "$[0].NetworkSettings: expected an object, got "
                                               "null"),
], ids=["missing", "null"])
def test_container_without_network_settings_is_refused(
        tmp_path: Path, edit: Any, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    snap = _snapshot(tmp_path, edit)
    assert main(["report", str(snap), "--no-cache"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"natlens: error: {snap / 'docker-containers.json'}: {message}\n"


@pytest.mark.parametrize("ports", [None, {}], ids=["null", "empty"])
def test_stopped_container_with_no_ports_is_read(tmp_path: Path, ports: Any) -> None:
    def stop(c: dict[str, Any]) -> None:
        c["State"] = {"Status": "exited", "Running": False}
        c["NetworkSettings"]["Ports"] = ports

    inventory = inventory_from_snapshot(natlens.load(_snapshot(tmp_path, stop)))
    assert inventory is not None
    first = inventory.containers[0]
    assert first.state == "exited"
    assert first.ports == first.requested  # a stopped container: HostConfig.PortBindings
    assert first.networks  # still on its network, read from NetworkSettings.Networks
