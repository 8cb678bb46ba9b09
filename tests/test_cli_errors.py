"""The CLI's one error path (natlens.cli_errors): every failure is one bounded, escaped line on
standard error with exit 2 (130 for Ctrl-C, also during start-up), never a traceback."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hostile_input import NATLENS, assert_one_error, run_in_process

from natlens.cli_errors import MAX_LINE, Context, one_line, run
from natlens.errors import ParseError, SnapshotError, excerpt, shorten_words

FIXTURE = REPO_ROOT / "fixtures" / "planted-faults"


@pytest.mark.parametrize(("error", "line"), [
    (SnapshotError("snap/x.json: bad"), "natlens: error: snap/x.json: bad"),
    (FileNotFoundError(2, "No such file or directory", "out/dir"),
     "natlens: error: out/dir: No such file or directory"),
    (PermissionError(13, "Permission denied"), "natlens: error: snap: Permission denied"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
     "natlens: error: snap: text encoding error ('utf-8' codec can't decode byte 0xff in "
     "position 0: invalid start byte)"),
    (RecursionError("maximum recursion depth exceeded"),
     "natlens: error: snap: nested too deeply to analyse (recursion limit)"),
    (MemoryError(), "natlens: error: snap: out of memory (input too large? NATLENS_MAX_INPUT "
                    "lowers the size natlens reads)"),
    (ZeroDivisionError("division by zero"),
     "natlens: error: internal error: ZeroDivisionError: division by zero (a bug in natlens: "
     "please report it with the input; NATLENS_DEBUG=1 shows the traceback)"),
])
def test_every_failure_is_one_line_exit_2(capsys: pytest.CaptureFixture[str],
                                          error: BaseException, line: str) -> None:
    def body(context: Context) -> int:
        context.input_name = "snap"
        raise error

    assert run(body) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", line + "\n")


def test_ctrl_c_is_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    def body(context: Context) -> int:
        raise KeyboardInterrupt

    assert run(body) == 130
    assert capsys.readouterr().err == "natlens: interrupted\n"


def test_messages_are_bounded_and_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    def body(context: Context) -> int:
        raise SnapshotError("evil\x1b[2J\u202ename\n" + "x" * 1_000_000)

    assert run(body) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert len(err) <= MAX_LINE + len("\n")
    assert "\x1b" not in err
    assert "\u202e" not in err
    assert err.startswith("natlens: error: evil\\x1b[2J\\u202ename\\n")
    assert one_line("a\u2028b\ud800") == "a\\u2028b\\ud800"


def test_excerpt_and_shorten_words_bound_quoted_input() -> None:
    assert excerpt("a" * 1000) == repr("a" * 200) + "… (1,000 characters)"
    assert excerpt("\x1b[31m") == "'\\x1b[31m'"
    assert shorten_words("chain name 'C" + "C" * 10_000 + "' must be short") == \
        "chain name '" + "C" * 58 + "…' must be short"
    err = ParseError(f"unknown option {'-' * 5000!r}", source="f.txt", line_no=3)
    assert len(str(err)) < 120


def test_bad_file_name_is_escaped_in_the_message(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    name = tmp_path / "evil\x1b]0;owned\x07\nname"
    run_ = run_in_process(["parse", str(name)], capsys)
    line = assert_one_error(run_, "no such file or directory")
    assert "\x1b" not in run_.err
    assert "\\x1b]0;owned\\x07\\nname" in line


def test_usage_errors_stay_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    run_ = run_in_process(["trace", str(FIXTURE), "--in", "eth0", "--src", "1.2.3.4"], capsys)
    assert run_.status == 2
    assert len(run_.err_lines) == 1, run_.err


def _interrupt_after(delay: float) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.Popen([str(NATLENS), "report", str(FIXTURE)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, b"", err)


@pytest.mark.parametrize("delay", [0.1, 0.15, 0.2, 0.3, 0.45, 0.7])
def test_ctrl_c_at_any_time_of_start_up_is_one_line(delay: float) -> None:
    """SIGINT while Python imports natlens (or later, while it works) ends with
    ``natlens: interrupted`` and 130, or (when the report was already done) its normal status.

    Before Python installs its SIGINT handler (its first milliseconds) the signal kills the
    interpreter silently (-2); that is accepted too: what may never appear is a traceback.
    """
    proc = _interrupt_after(delay)
    err = proc.stderr.decode("utf-8", "backslashreplace")
    if "Traceback" in err:
        # Out of natlens's reach: the interpreter's own start-up (site, on a loaded machine
        # well past 0.1 s) and the console script's first lines, before natlens code runs;
        # no frame of natlens beyond its first import lines may show.
        package = str(REPO_ROOT / "natlens")
        frames = re.findall(r'File "([^"]+)"', err)
        early = [f for f in frames if f.startswith(package) and not f.endswith(
            ("natlens/__init__.py", "natlens/cli_errors.py"))]
        assert not early, err
        assert err.rstrip().endswith("KeyboardInterrupt"), err
        return
    assert proc.returncode in (130, 1, -signal.SIGINT), (proc.returncode, err)
    if proc.returncode == 130:
        assert err == "natlens: interrupted\n"


@pytest.mark.parametrize("module", ["natlens.errors", "natlens.cli_errors"])
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
