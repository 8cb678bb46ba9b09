"""Every ``console`` and ``python`` block in docs/ and README.md runs, so docs cannot drift.

A block looks like::

    ```console
    $ natlens trace fixtures/default-bridge-8080 --in eth0 ...
    <expected output>
    ```

Commands run in-process (``natlens.cli.main``) from the repository root, with exit status
checked when the block says ``[exit N]`` after the output. Regenerate outputs with
``NATLENS_UPDATE_DOCS=1 pytest tests/test_docs_examples.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from natlens.cli import main

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```console\n(.*?)```", re.S)
EXIT = re.compile(r"^\[exit (\d+)\]$")


@dataclass
class Example:
    doc: Path
    command: str
    expected: str
    status: int


def _examples() -> list[Example]:
    found: list[Example] = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in BLOCK.findall(doc.read_text()):
            command = ""
            out: list[str] = []
            status = 0
            for line in block.splitlines():
                if line.startswith("$ "):
                    if command:
                        found.append(Example(doc, command, "\n".join(out), status))
                    command, out, status = line[2:], [], 0
                elif EXIT.match(line):
                    status = int(EXIT.match(line).group(1))  # type: ignore[union-attr]
                else:
                    out.append(line)
            if command:
                found.append(Example(doc, command, "\n".join(out), status))
    return found


def _run(command: str) -> tuple[str, int]:
    argv = shlex.split(command)
    assert argv[0] == "natlens", f"docs may only run natlens: {command}"
    buf = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    columns = os.environ.pop("COLUMNS", None)  # docs show output as a pipe gets it: unwrapped
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                status = main(argv[1:])
            except SystemExit as exc:
                status = int(exc.code or 0)
    finally:
        os.chdir(cwd)
        if columns is not None:
            os.environ["COLUMNS"] = columns
    return buf.getvalue().rstrip("\n"), status


EXAMPLES = _examples()


def test_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("example", EXAMPLES,
                         ids=[f"{e.doc.name}:{e.command[:60]}" for e in EXAMPLES])
def test_doc_example(example: Example) -> None:
    output, status = _run(example.command)
    if os.environ.get("NATLENS_UPDATE_DOCS"):
        _update(example, output, status)
        return
    assert output == example.expected.rstrip("\n"), f"{example.doc.name}: {example.command}"
    assert status == example.status


def _update(example: Example, output: str, status: int) -> None:
    text = example.doc.read_text()
    old = f"$ {example.command}\n{example.expected}"
    if example.status:
        old += f"\n[exit {example.status}]"
    new = f"$ {example.command}\n{output}"
    if status:
        new += f"\n[exit {status}]"
    example.doc.write_text(text.replace(old.rstrip("\n"), new, 1))


PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _python_blocks() -> list[tuple[str, str]]:
    blocks: list[tuple[str, str]] = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, code in enumerate(PYTHON_BLOCK.findall(doc.read_text()), 1):
            if "# not run" not in code:
                blocks.append((f"{doc.name}#{n}", code))
    return blocks


@pytest.mark.parametrize(("name", "code"), _python_blocks(), ids=[b[0] for b in _python_blocks()])
def test_doc_python_block(name: str, code: str, capsys: pytest.CaptureFixture[str]) -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, name, "exec"), {"__name__": "__docs__"})
    finally:
        os.chdir(cwd)
