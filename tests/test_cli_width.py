"""Every table, legend and note the CLI prints fits the terminal's width, decided in one place
(``natlens.termstyle.terminal_width``: ``COLUMNS``, else the terminal's): the findings, the
exposure map and its legend, the report's notes, trace steps and ``--packets`` result lines.

Golden files (tests/golden/width/, at COLUMNS=60 and 120) show what a person sees; regenerate
them with ``NATLENS_UPDATE_GOLDEN=1`` and review the diff. Without COLUMNS and without a
terminal nothing changes (pipes keep their layout: tests/test_report.py, docs examples)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hostile_input import run_command, run_in_process

GOLDEN = Path(__file__).resolve().parent / "golden" / "width"
FIXTURES = sorted(p.name for p in (REPO_ROOT / "fixtures").iterdir() if p.is_dir())
PACKET = ["--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.2", "--dport", "8080"]

CASES = {
    "report-planted-faults": ["report", "fixtures/planted-faults"],
    "report-multi-interface-ufw": ["report", "fixtures/multi-interface-ufw"],
    "exposure-planted-faults": ["exposure", "fixtures/planted-faults"],
    "exposure-user-network": ["exposure", "fixtures/user-network"],
    "trace-default-bridge-8080": ["trace", "fixtures/default-bridge-8080", *PACKET],
    "packets-default-bridge-8080": ["trace", "fixtures/default-bridge-8080", "--packets",
                                    "tests/data/width-packets.csv"],
}


@pytest.fixture
def at_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.mark.usefixtures("at_repo")
@pytest.mark.parametrize("columns", [60, 120])
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_at_width(case: str, columns: int, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    run = run_in_process([*CASES[case], "--color", "never"], capsys)
    assert run.status in (0, 1), run.err
    too_wide = [line for line in run.out.splitlines() if len(line) > columns]
    assert not too_wide, too_wide[:3]
    golden = GOLDEN / f"{case}-{columns}.txt"
    if os.environ.get("NATLENS_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(run.out)
    assert run.out == golden.read_text(), f"{case} at COLUMNS={columns} differs from {golden}"


@pytest.mark.usefixtures("at_repo")
@pytest.mark.parametrize("command", ["report", "exposure"])
@pytest.mark.parametrize("fixture", FIXTURES)
def test_every_line_fits_60_columns(fixture: str, command: str, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The narrowest width the layout promises (below about 56 columns the finding table keeps
    a 16-character finding column: docs/cli.md, "Output width")."""
    monkeypatch.setenv("COLUMNS", "60")
    run = run_in_process([command, f"fixtures/{fixture}"], capsys)
    assert run.status in (0, 1), run.err
    too_wide = [line for line in run.out.splitlines() if len(line) > 60]
    assert not too_wide, too_wide[:3]


@pytest.mark.usefixtures("at_repo")
def test_legend_follows_the_width(capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The stumble of the user trial: at COLUMNS=60 the findings wrapped but the legend kept
    80 columns."""
    legends = {}
    for columns in (60, 80, 120):
        monkeypatch.setenv("COLUMNS", str(columns))
        out = run_in_process(["exposure", "fixtures/default-bridge-8080"], capsys).out
        legend = out[out.index("legend:"):].split("\n\n")[0].splitlines()
        assert max(map(len, legend)) <= columns
        legends[columns] = legend
    assert len(legends[60]) > len(legends[80]) > len(legends[120])


def test_console_script_reads_columns() -> None:
    """The same through the ``natlens`` command (a pipe: only COLUMNS gives a width), and
    without COLUMNS a pipe keeps the 80-column map."""
    snap = str(REPO_ROOT / "fixtures" / "planted-faults")
    narrow = run_command(["exposure", snap], env={"COLUMNS": "60"})
    assert narrow.status == 0, narrow.err
    assert max(map(len, narrow.out.splitlines())) <= 60
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = run_command(["exposure", snap], env={**env, "COLUMNS": ""})
    assert 60 < max(map(len, piped.out.splitlines())) <= 80
