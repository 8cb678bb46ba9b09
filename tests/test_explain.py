"""The seed's point: from the host, 127.0.0.1:8080 is served by docker-proxy, not by NAT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import natlens
from natlens.cli import main
from natlens.explain import proxy_notes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _local(dst: str, port: int) -> natlens.Packet:
    return natlens.Packet(local_origin=True, src="127.0.0.1" if dst.startswith("127.") else dst,
                          dst=dst, proto="tcp", dport=port)


def test_loopback_to_published_port_is_docker_proxy() -> None:
    snap = natlens.load(FIXTURES / "default-bridge-8080")
    trace = natlens.simulate(snap, _local("127.0.0.1", 8080))
    assert trace.final_dst == "127.0.0.1:8080"
    assert trace.path.value == "local"
    notes = proxy_notes(snap, trace)
    assert len(notes) == 1
    assert "published by natlens-web (0.0.0.0:8080->80/tcp)" in notes[0]
    assert "docker-proxy (userland proxy on)" in notes[0]
    assert "172.17.0.2:80" in notes[0]


def test_no_note_when_nat_handles_it() -> None:
    snap = natlens.load(FIXTURES / "default-bridge-8080")
    trace = natlens.simulate(snap, _local("192.0.2.2", 8080))
    assert trace.final_dst == "172.17.0.2:80"
    assert proxy_notes(snap, trace) == []


def test_no_note_for_unpublished_port() -> None:
    snap = natlens.load(FIXTURES / "default-bridge-8080")
    trace = natlens.simulate(snap, _local("127.0.0.1", 8081))
    assert proxy_notes(snap, trace) == []


def test_cli_prints_the_note_in_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["trace", str(FIXTURES / "default-bridge-8080"), "--local-origin", "--src",
            "127.0.0.1", "--dst", "127.0.0.1", "--proto", "tcp", "--dport", "8080"]
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "note: 127.0.0.1:8080/tcp is published by natlens-web")
    assert main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["final_dst"] == "127.0.0.1:8080"
    assert len(data["notes"]) == 1
