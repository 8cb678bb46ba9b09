"""Shared by the bad-input tests: run the ``natlens`` CLI and check the one-error-line promise.

DESIGN.md: exit 0 clean, 1 findings, 2 bad input or usage with one line naming the file and line
(or JSON path); never a traceback (``natlens.cli_errors``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from natlens.cli import main

NATLENS = Path(sys.executable).parent / "natlens"
"""The console script of this environment (``natlens.cli_errors:entry``)."""


@dataclass(frozen=True)
class Run:
    """One CLI run: exit status and the two output streams."""

    status: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> Run:
    """``natlens ARGS`` through ``natlens.cli.main`` (argparse usage errors end as status 2)."""
    capsys.readouterr()
    try:
        status = main(args)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        status = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return Run(status, out, err)


def run_command(args: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None,
                shell_redirect: str = "", timeout: float = 120) -> Run:
    """``natlens ARGS`` as a process (the console script), stdout and stderr decoded with
    ``backslashreplace``. ``shell_redirect`` (``>&-``, ``>/dev/full``) runs it through bash."""
    full_env = {**os.environ, **(env or {})}
    if shell_redirect:
        import shlex

        command = " ".join(shlex.quote(a) for a in (str(NATLENS), *args))
        argv = ["bash", "-c", f"{command} {shell_redirect}"]
    else:
        argv = [str(NATLENS), *args]
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=full_env, timeout=timeout,
                          check=False)
    return Run(proc.returncode, proc.stdout.decode("utf-8", "backslashreplace"),
               proc.stderr.decode("utf-8", "backslashreplace"))


def assert_one_error(run: Run, *must_contain: str) -> str:
    """Exit 2 with exactly one ``natlens: error: ...`` line on stderr (returned), no traceback,
    containing each of ``must_contain``."""
    __tracebackhide__ = True
    assert "Traceback" not in run.err, run.err
    assert run.status == 2, (run.status, run.err[-2000:])
    assert len(run.err_lines) == 1, run.err_lines[:5]
    line = run.err_lines[0]
    assert line.startswith("natlens: error: "), line
    assert "internal error" not in line, line
    for part in must_contain:
        assert part in line, (part, line)
    return line


def assert_no_crash(run: Run) -> None:
    """Exit 0, 1 or 2; on 2 exactly one error line; never a traceback or an internal error."""
    __tracebackhide__ = True
    assert "Traceback" not in run.err, run.err[-3000:]
    assert "internal error" not in run.err, run.err[-3000:]
    assert run.status in (0, 1, 2), (run.status, run.err[-2000:])
    if run.status == 2:
        errors = [ln for ln in run.err_lines if ln.startswith("natlens: error: ")]
        assert len(errors) == 1, run.err_lines[:5]
        assert all(ln.startswith("natlens: ") for ln in run.err_lines), run.err_lines[:5]
