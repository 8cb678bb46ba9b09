"""Golden traces: one small rule dump + packet per semantic point, expected trace as JSON.

Each file in ``golden/`` holds ``description``, ``rules`` (iptables-save lines), optionally
``rules6`` and ``host`` (a compact host spec as ``nf_helpers.STANDARD_HOST``, or ``"unknown"``:
no ip-addr.json nor ip-route.json; default the standard host), the ``packet`` and the expected
``trace`` (``Trace.to_dict()``) and ``kernel`` lines.
Regenerate after an intended change with ``NATLENS_UPDATE_GOLDEN=1 pytest tests/netfilter`` and
review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from nf_helpers import case_host, golden_cases, load_case, packet, simulator

CASES = golden_cases()


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_trace(path: Path) -> None:
    case = load_case(path)
    sim = simulator(case["rules"], case.get("rules6"), host=case_host(case))
    trace = sim.trace(packet(case["packet"]))
    got = trace.to_dict()
    if os.environ.get("NATLENS_UPDATE_GOLDEN"):
        case["trace"] = got
        case["kernel"] = list(trace.kernel_lines())
        path.write_text(json.dumps(case, indent=2) + "\n")
    assert "trace" in case, f"{path.name} has no expected trace (run with NATLENS_UPDATE_GOLDEN=1)"
    assert got == case["trace"], str(trace)
    assert list(trace.kernel_lines()) == case["kernel"]
    assert str(trace).count("\n") >= len(trace.steps)
