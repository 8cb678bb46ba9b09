"""The public API is exactly natlens.__all__ (sorted), and the README's commands are CI's."""

from __future__ import annotations

from pathlib import Path

import natlens

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_complete() -> None:
    assert natlens.__all__ == sorted(natlens.__all__)
    for name in natlens.__all__:
        assert hasattr(natlens, name), name
    public = {n for n in vars(natlens) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(natlens, n)).__name__ == "module"}
    assert public - modules - {"annotations"} == set(natlens.__all__)


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in readme[:12] if line.startswith("python3 -m venv")]
    assert len(commands) == 2, "README must open with the demo and the test command"
    assert commands[1] in ci.splitlines()


def test_py_typed_is_shipped() -> None:
    assert (ROOT / "natlens" / "py.typed").is_file()
