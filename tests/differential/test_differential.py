"""Kernel differential: random rulesets, one packet at a time, natlens against the real kernel.

For each iptables backend (iptables-nft, iptables-legacy) the seeds ``SEEDS`` each give a random
ruleset over raw, mangle, nat, filter and sometimes security (``diff_gen``) and ``PACKETS``
probes. One reused namespace topology (``diff_harness.Lab``) loads each ruleset with
iptables-restore and answers each probe with per-rule counters and per-hook observations;
natlens traces the same probe on the namespace's capture. Random kernel choices (NAT port or
address) agree only when the kernel's outcome is among natlens's branches.

A disagreement is minimised (delta debugging over the rules) and written as a ready-to-run case
folder under ``$NATLENS_DIFF_OUT`` (default: the test's temporary folder), whose path and
kernel-vs-natlens comparison the failure message prints. The long run for releases is
``scripts/fuzz-differential.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from diff_run import run

pytestmark = pytest.mark.kernel

SEEDS = range(1000)
PACKETS = 5


def _require(backend: str) -> None:
    if os.geteuid() != 0:
        pytest.fail("the kernel differential needs root (network namespaces)")
    for tool in (f"iptables-{backend}-restore", f"iptables-{backend}-save", "nft", "conntrack",
                 "nsenter", "ip"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: the kernel differential needs it")


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_random_rulesets_agree_with_kernel(backend: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _require(backend)
    out = Path(os.environ.get("NATLENS_DIFF_OUT") or tmp_path / "cases")
    tally = run(backend, SEEDS, PACKETS, out_dir=out)
    with capsys.disabled():
        print(f"\n[differential] {tally.line()}")
    assert tally.rulesets >= 0.95 * len(SEEDS), tally.line()
    assert tally.packets == tally.rulesets * PACKETS
    assert tally.branch_agreements > 0, "no probe met a random kernel choice: generator drifted"
    report = [f"{d.folder}:\n{d.agreement.explain()}" for d in tally.disagreements]
    assert not tally.disagreements, f"{tally.line()}\n" + "\n".join(report)
