"""python-iptables sees only the legacy backend; natlens uses it there, and says so elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_helpers import namespaces, needs_root

from natlens import parse_save
from natlens.legacy_check import compare_counts

pytestmark = pytest.mark.kernel

COUNT = ("import json; from natlens.legacy_check import iptc_rule_counts; "
         "print(json.dumps(iptc_rule_counts()))")


@pytest.fixture
def netns() -> Iterator[str]:
    needs_root("iptables-legacy", "iptables")
    with namespaces("nl-iptc-") as (name,):
        yield name


def _in(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True,
                          text=True).stdout


def test_python_iptables_agrees_with_iptables_legacy_save(netns: str) -> None:
    _in(netns, "iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "80",
        "-j", "REDIRECT", "--to-ports", "81")
    _in(netns, "iptables-legacy", "-N", "DOCKER-USER")
    _in(netns, "iptables-legacy", "-A", "DOCKER-USER", "-s", "10.0.0.0/8", "-j", "DROP")
    _in(netns, "iptables-legacy", "-A", "DOCKER-USER", "-j", "RETURN")
    counts = json.loads(_in(netns, sys.executable, "-c", COUNT))
    assert counts["filter"]["DOCKER-USER"] == 2
    assert counts["nat"]["PREROUTING"] == 1
    saved = parse_save(_in(netns, "iptables-legacy-save"))
    assert compare_counts(saved, counts) == []
    # and a disagreement is reported: one rule more in the "saved" text than libiptc sees
    counts["filter"]["DOCKER-USER"] = 1
    assert compare_counts(saved, counts) == [
        "filter DOCKER-USER: iptables-save 2 rules, python-iptables 1"]


def test_python_iptables_sees_nothing_of_nftables(netns: str) -> None:
    if shutil.which("iptables-nft") is None:
        pytest.skip("needs iptables-nft")
    _in(netns, "iptables-nft", "-A", "INPUT", "-s", "10.0.0.0/8", "-j", "DROP")
    counts = json.loads(_in(netns, sys.executable, "-c", COUNT))
    assert counts.get("filter", {}).get("INPUT", 0) == 0  # why natlens reads iptables-save


def test_capture_says_when_python_iptables_was_not_used(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("natlens snapshot needs root")
    from natlens.capture import capture

    result = capture(tmp_path / "snap", docker=False)
    meta = json.loads((tmp_path / "snap" / "meta.json").read_text())
    info = meta["python_iptables"]
    if result.meta.get("iptables_backend") == "legacy":
        assert info["used"] is True
        assert info["agrees"] is True
    else:
        assert info == {"used": False, "why": "python-iptables reads only the legacy backend; "
                        f"iptables uses {result.meta.get('iptables_backend')} here"}
