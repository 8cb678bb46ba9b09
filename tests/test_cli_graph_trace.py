"""`natlens graph --trace` highlights the chains and jumps one packet takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from natlens.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = str(ROOT / "fixtures" / "default-bridge-8080")
PACKET = ["--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.2", "--dport", "8080"]


def test_graph_json_path_follows_the_trace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", SAMPLE, "--format", "json", "--trace", *PACKET]) == 0
    data = json.loads(capsys.readouterr().out)
    path = [tuple(step) for step in data["path"]]
    assert path[:2] == [("nat", "PREROUTING", 1), ("nat", "DOCKER", 2)]
    assert ("filter", "DOCKER", 1) in path
    assert path[-1] == ("nat", "POSTROUTING", None)


def test_graph_dot_marks_the_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", SAMPLE, "--format", "dot", "--trace", *PACKET]) == 0
    with_path = capsys.readouterr().out
    assert main(["graph", SAMPLE, "--format", "dot"]) == 0
    without = capsys.readouterr().out
    assert '"filter:FORWARD" -> "filter:DOCKER-USER" [label="#1", color="#cc0000"' in with_path
    assert 'fillcolor="#ffd6d6"' not in without  # the legend's red is not a path
    assert "penwidth" not in without


def test_graph_trace_needs_a_packet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", SAMPLE, "--trace", "--src", "1.2.3.4"]) == 2
    err = capsys.readouterr().err
    assert err == ("natlens: error: --trace needs --in IFACE and --src, or --local-origin, and "
                   "--dst\n")


def test_docs_picture_shows_the_seed_path() -> None:
    svg = (ROOT / "docs" / "images" / "default-bridge-all.svg").read_text()
    assert svg.startswith("<?xml")
    assert "DOCKER&#45;USER" in svg
    assert "#cc0000" in svg
