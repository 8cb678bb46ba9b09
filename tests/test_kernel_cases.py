"""Every case under ``cases/kernel/``: natlens agrees with what the kernel did.

Each case holds the namespace's capture (``snap/``), the probes (``packets.json``) and the
kernel's observations per probe (``kernel-observed.json``: per-rule counters, per-hook packet
observations). natlens traces each probe on the snapshot; it agrees when its answer — or one of
its branches, for the kernel's random choices — has the kernel's verdict, path, final addresses,
output interface and exactly the rules the counters moved (``differential/diff_oracle.py``).
``data/kernel-regressions/`` holds, in the same layout, the disagreements the in-repo
differential found and that were fixed.
The backend-specific semantics are chosen by natlens from the snapshot, never by the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import cases_path

import natlens

sys.path.insert(0, str(Path(__file__).resolve().parent / "differential"))
from diff_oracle import compare, packet_of

REGRESSIONS = Path(__file__).resolve().parent / "data" / "kernel-regressions"


def _case_names() -> list[str]:
    root = cases_path() / "kernel"
    if not root.is_dir():
        return ["(cases missing)"]
    return sorted(p.name for p in root.iterdir() if (p / "kernel-observed.json").is_file())


def _regressions() -> list[str]:
    return sorted(p.name for p in REGRESSIONS.iterdir() if (p / "kernel-observed.json").is_file())


def _agrees(folder: Path) -> None:
    snap = natlens.load(folder / "snap")
    probes = json.loads((folder / "packets.json").read_text())
    observed = json.loads((folder / "kernel-observed.json").read_text())
    assert len(probes) == len(observed), f"{folder}: packets.json and kernel-observed.json differ"
    failures = []
    for n, (probe, seen) in enumerate(zip(probes, observed, strict=True), 1):
        trace = natlens.simulate(snap, packet_of(probe))
        result = compare(trace, probe, seen)
        if not result.agrees:
            failures.append(f"probe {n} {probe}:\n{result.explain()}")
    assert not failures, f"{folder.name}: natlens disagrees with the kernel\n" + "\n".join(
        failures)


@pytest.mark.parametrize("name", _case_names())
def test_kernel_case_agrees(cases: Path, name: str) -> None:
    _agrees(cases / "kernel" / name)


@pytest.mark.parametrize("name", _regressions())
def test_kernel_regression_agrees(name: str) -> None:
    """Disagreements the differential found (tests/differential), fixed, kept as golden
    case folders in the same layout."""
    _agrees(REGRESSIONS / name)


def test_regressions_exist() -> None:
    assert len(_regressions()) >= 4
