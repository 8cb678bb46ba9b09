"""``natlens graph --format svg`` warns before a layout too big for Graphviz, and its hint names
only what the user did not give yet (never "use --table" to someone who gave --table)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hostile_input import run_command

from natlens.graph_families import MAX_LAYOUT_NODES

NO_LAYOUT = "write --format dot or mermaid instead (no layout)"


@pytest.fixture(scope="module")
def many_chains(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A filter table of more chains than ``MAX_LAYOUT_NODES``, each its own family (names
    without digits: never collapsed), none jumped to (laid out quickly all the same)."""
    names = ["U" + "".join(t) for t in itertools.product("ghjkmnpqrstuvwxyz", repeat=3)]
    chains = "".join(f":{n} - [0:0]\n" for n in names[:MAX_LAYOUT_NODES + 10])
    path = tmp_path_factory.mktemp("graph") / "many.rules"
    path.write_text(f"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                    f":OUTPUT ACCEPT [0:0]\n{chains}COMMIT\n")
    return path


@pytest.mark.parametrize(("given", "hint"), [
    ([], f"draw fewer chains (--table TABLE) or {NO_LAYOUT}"),
    (["--table", "filter"], NO_LAYOUT),
    (["--expand"], f"draw fewer chains (--table TABLE, no --expand) or {NO_LAYOUT}"),
    (["--table", "filter", "--expand"], f"draw fewer chains (no --expand) or {NO_LAYOUT}"),
    (["--table", "filter", "--chain", "Ug*"], f"draw fewer chains (fewer --chain) or {NO_LAYOUT}"),
    (["--chain", "Ug*", "--expand", "-o", "{out}"],
     "draw fewer chains (--table TABLE, fewer --chain, no --expand) or write a .dot or .mmd "
     "file instead (no layout)"),
])
def test_hint_names_what_was_not_given(many_chains: Path, tmp_path: Path, given: list[str],
                                       hint: str) -> None:
    args = [a.replace("{out}", str(tmp_path / "g.svg")) for a in given]
    run = run_command(["graph", str(many_chains), "--format", "svg", *args])
    assert run.status == 0, run.err
    (warning,) = [line for line in run.err_lines if line.startswith("natlens: warning: ")]
    assert warning.endswith(f"to lay out: Graphviz may take a very long time: {hint}"), warning
    said = warning.partition("very long time: ")[2]
    if "--table" in given:
        assert "--table" not in said
    if "--expand" not in given:
        assert "--expand" not in said
    if "--chain" not in given:
        assert "--chain" not in said
