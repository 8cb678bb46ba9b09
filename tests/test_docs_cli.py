"""docs/cli.md is exactly what the argument parser says (regenerate: python -m natlens.clidoc)."""

from __future__ import annotations

from pathlib import Path

from natlens.clidoc import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    assert DOC.read_text() == render(), "run: python -m natlens.clidoc > docs/cli.md"


def test_every_design_command_is_documented() -> None:
    text = DOC.read_text()
    for command in ("report", "trace", "graph", "parse", "snapshot", "verify"):
        assert f"## natlens {command}\n" in text, command


def test_every_finding_kind_is_documented_with_an_example() -> None:
    from natlens.audit import KINDS

    text = (DOC.parent / "findings.md").read_text()
    for kind in KINDS:
        assert f"## `{kind}`:" in text, kind
    assert text.count("$ natlens report ") >= 7
