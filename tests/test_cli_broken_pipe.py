"""A reader that closes the pipe early (``natlens ... | head -1``) is no error: no traceback, no
message, and the exit status documented in docs/cli.md ("Exit status"): the command's own when
it had decided it before the reader left, else 141 (128 + SIGPIPE).

Every case runs the console script with a real pipe whose reader takes one line and closes it;
the output of each is several times the pipe's buffer (64 KiB), so natlens is still writing
when the reader leaves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hostile_input import NATLENS

from natlens.cli_errors import EXIT_BROKEN_PIPE

RULES = 2000
"""Rules that every traced packet meets (a trace of about 220 kB as text, 1 MB as JSON)."""


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rule file whose INPUT chain holds ``RULES`` rules without a target, then policy DROP:
    a packet to the host meets each of them (one trace step each) and is dropped (status 1)."""
    path = tmp_path_factory.mktemp("pipe") / "long.rules"
    body = "".join(f'-A INPUT -p tcp -m comment --comment "counted {i}"\n'
                   for i in range(RULES))
    path.write_text("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n"
                    f":OUTPUT ACCEPT [0:0]\n{body}COMMIT\n")
    return path


BEYOND = 96 * 1024
"""Output longer than this cannot all sit in the pipe (64 KiB) and the reader's buffer (8 KiB)
when the reader leaves: natlens is still writing then."""

PACKET = ["--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.10", "--dport", "22",
          "--host-addr", "192.0.2.10"]


def _first_line_then_close(args: list[str], env: dict[str, str] | None = None,
                           ) -> tuple[int, bytes, bytes]:
    """Run ``natlens ARGS`` (``env`` added to the environment), read one line of its output,
    close the pipe → (exit status, the line, standard error)."""
    proc = subprocess.Popen([str(NATLENS), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**_environ(), **(env or {})})
    assert proc.stdout is not None
    assert proc.stderr is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    return proc.wait(timeout=120), line, err


def _whole(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(NATLENS), *args], capture_output=True, check=False, timeout=120,
                          env=_environ())


def _environ() -> dict[str, str]:
    """This environment without COLUMNS: lines as long as natlens makes them in a pipe."""
    return {k: v for k, v in os.environ.items() if k != "COLUMNS"}


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_trace_keeps_its_verdict_status(long_trace: Path, fmt: str) -> None:
    args = ["trace", str(long_trace), *PACKET, "--format", fmt, "--no-cache"]
    whole = _whole(args)
    assert whole.returncode == 1, whole.stderr  # dropped: status 1, as grep's "no match"
    assert len(whole.stdout) > BEYOND
    status, line, err = _first_line_then_close(args)
    assert (status, err) == (1, b"")
    assert whole.stdout.startswith(line)


@pytest.mark.parametrize("fmt", ["save", "json"])
def test_parse_keeps_its_status(long_trace: Path, fmt: str) -> None:
    args = ["parse", str(long_trace), "--format", fmt, "--no-cache"]
    assert len(_whole(args).stdout) > BEYOND
    assert _first_line_then_close(args)[::2] == (0, b"")


@pytest.fixture(scope="module")
def packets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packet file (JSON lines) whose batch writes far more than the pipe's buffer."""
    path = tmp_path_factory.mktemp("pipe") / "packets.jsonl"
    path.write_text("".join(
        json.dumps({"in": "eth0", "src": f"198.51.100.{1 + i % 250}", "dst": "192.0.2.10",
                    "dport": 8080}) + "\n" for i in range(3000)))
    return path


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_packets_batch_cut_short_exits_141(packets: Path, fmt: str) -> None:
    """The batch writes each result as it goes and has decided no status before the last one:
    the packets after the reader left are never traced, and the status says so."""
    snap = Path(__file__).resolve().parent.parent / "fixtures" / "default-bridge-8080"
    args = ["trace", str(snap), "--packets", str(packets), "--format", fmt]
    whole = _whole(args)
    assert whole.returncode == 0, whole.stderr
    assert len(whole.stdout) > BEYOND
    status, line, err = _first_line_then_close(args)
    assert (status, err) == (EXIT_BROKEN_PIPE, b"")
    assert status == 128 + 13  # SIGPIPE, signal(7)
    assert whole.stdout.startswith(line)


def test_closed_stdout_is_still_an_error(long_trace: Path) -> None:
    """Only a reader that left is quiet: no reader at all (stdout closed) stays an error."""
    proc = subprocess.run(f"{NATLENS} parse {long_trace} >&-", shell=True, capture_output=True,
                          check=False, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("natlens: error: cannot write output: ")


def test_snapshot_is_cached_all_the_same(home: Path, long_trace: Path) -> None:
    """The reader left, but the snapshot was parsed: the next command reads it from the
    cache (``natlens cache list`` shows it)."""
    args = ["trace", str(long_trace), *PACKET]
    foreground = {"NATLENS_CACHE_FOREGROUND": "1"}  # stored before the command exits
    assert _first_line_then_close(args, foreground)[::2] == (1, b"")
    listed = subprocess.run([str(NATLENS), "cache", "list", "--json"], capture_output=True,
                            check=True, timeout=120)
    assert [e["path"] for e in json.loads(listed.stdout)["entries"]] == [str(long_trace)]
