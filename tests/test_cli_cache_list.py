"""``natlens cache list``: what the snapshot cache holds (snapshot, size, age, natlens, state,
whether a background write is under way), read from each entry's first lines, never by loading
(unpickling) it. Entries are made by real commands (``NATLENS_CACHE_FOREGROUND=1``: stored
before the command exits)."""

from __future__ import annotations

import fcntl
import json
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostile_input import assert_one_error, run_command

import natlens
from natlens.snapshot import SNAPSHOT_FILES

TRACE = ["--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.2", "--dport", "8080"]
RULES = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


def _stored(*args: str) -> None:
    """Run a command that loads a snapshot, its cache entry written before it exits."""
    run = run_command(list(args), env={"NATLENS_CACHE_FOREGROUND": "1"})
    assert run.status in (0, 1), run.err
    assert run.err == "", run.err


def _listing() -> list[dict[str, object]]:
    run = run_command(["cache", "list", "--json"])
    assert (run.status, run.err) == (0, ""), run.err
    entries = json.loads(run.out)["entries"]
    assert isinstance(entries, list)
    return entries


def _entries(home: Path) -> list[Path]:
    return sorted(p for p in home.glob("*.snapshot") if not p.name.startswith(".tmp-"))


def test_empty_cache(home: Path) -> None:
    run = run_command(["cache", "list"])
    assert (run.status, run.err) == (0, "")
    assert run.out == f"natlens cache: {home}: 0 entries, 0 B\n"
    assert json.loads(run_command(["cache", "list", "--format", "json"]).out) == {
        "directory": str(home), "entries": []}


def test_lists_what_commands_stored(home: Path, snap_dir: Path, tmp_path: Path) -> None:
    rules = tmp_path / "host.rules"
    rules.write_text(RULES)
    _stored("trace", str(snap_dir), *TRACE)
    _stored("parse", str(rules))
    entries = _listing()
    by_path = {e["path"]: e for e in entries}
    assert set(by_path) == {str(snap_dir), str(rules)}
    assert entries[0]["path"] == str(rules), "most recently used first"
    files = {p.name: p for p in _entries(home)}
    for e in entries:
        assert f"{e['key']}.snapshot" in files
        assert e["bytes"] == files[f"{e['key']}.snapshot"].stat().st_size
        assert (e["natlens"], e["state"], e["writing"]) == (natlens.__version__, "ready", False)
        assert isinstance(e["age_seconds"], float)
        assert 0 <= e["age_seconds"] < 600
        assert str(e["written"]).endswith("+00:00")
    assert by_path[str(rules)]["files"] == []
    assert by_path[str(snap_dir)]["files"] == sorted(
        set(SNAPSHOT_FILES.values()) & {p.name for p in snap_dir.iterdir()})
    table = run_command(["cache", "list"], env={"COLUMNS": "200"}).out.splitlines()
    assert table[0] == f"natlens cache: {home}: 2 entries, " + table[0].rsplit(", ", 1)[1]
    assert table[1].split() == ["size", "age", "natlens", "state", "writing", "snapshot"]
    assert [line.split()[-1] for line in table[2:]] == [str(rules), str(snap_dir)]
    assert all(f" {natlens.__version__} " in line and " ready " in line for line in table[2:])


def test_a_warm_command_is_listed_as_used(home: Path, snap_dir: Path) -> None:
    _stored("trace", str(snap_dir), *TRACE)
    [entry] = _entries(home)
    os.utime(entry, (1_000_000_000, 1_000_000_000))  # as if last used in 2001
    assert _listing()[0]["used"] == "2001-09-09T01:46:40+00:00"
    _stored("trace", str(snap_dir), *TRACE)  # a cache hit touches the entry
    assert 0 <= float(str(_listing()[0]["used_seconds_ago"])) < 600


def test_listing_never_loads_an_entry(home: Path, snap_dir: Path, tmp_path: Path) -> None:
    """An entry whose pickle would run a command when loaded (and is damaged besides) is
    listed from its first lines: the command never runs, nothing is warned."""
    _stored("report", str(snap_dir))
    [entry] = _entries(home)
    marker = tmp_path / "pwned"
    magic, key, info, _ = entry.read_bytes().split(b"\n", 3)
    entry.write_bytes(b"\n".join((magic, key, info, b"")) + pickle.dumps(_Evil(str(marker))))
    listed = _listing()
    assert not marker.exists()
    assert [(e["path"], e["state"]) for e in listed] == [(str(snap_dir), "ready")]
    assert listed[0]["bytes"] == entry.stat().st_size


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.path}",))


@pytest.fixture
def held(home: Path) -> Iterator[Callable[[str], None]]:
    """A write lock held as a writer holds it (``snapshot_cache._lock``: an exclusive
    ``flock`` on ``KEY.lock``) for each key the test gives, until the test ends."""
    locks: list[int] = []

    def hold(key: str) -> None:
        fd = os.open(home / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        locks.append(fd)

    yield hold
    for fd in locks:
        os.close(fd)


def test_write_under_way(home: Path, snap_dir: Path, held: Callable[[str], None]) -> None:
    _stored("trace", str(snap_dir), *TRACE)
    [entry] = _entries(home)
    key = entry.name.removesuffix(".snapshot")
    (home / f"{'0' * 64}.lock").touch(mode=0o600)  # left over by a killed writer: not held
    assert [e["writing"] for e in _listing()] == [False]
    held(key)  # its entry being written again
    held("f" * 64)  # a first write: no entry yet
    listed = {e["key"]: e for e in _listing()}
    assert set(listed) == {key, "f" * 64}
    assert (listed[key]["state"], listed[key]["writing"]) == ("ready", True)
    assert listed["f" * 64]["state"] == "writing"
    assert listed["f" * 64]["path"] is None
    table = run_command(["cache", "list"]).out
    assert f"key {'f' * 64}" in table
    assert table.count(" yes ") == 2


def test_stale_and_ignored_entries(home: Path, snap_dir: Path, tmp_path: Path) -> None:
    rules = tmp_path / "host.rules"
    rules.write_text(RULES)
    _stored("parse", str(rules))
    _stored("parse", str(snap_dir))
    by_path = {e["path"]: e["key"] for e in _listing()}
    stale = home / f"{by_path[str(rules)]}.snapshot"
    magic, key, info, rest = stale.read_bytes().split(b"\n", 3)
    fields = json.loads(info)
    fields["stamp"], fields["natlens"] = "0" * 16, "0.0.9"  # written by another natlens
    stale.write_bytes(b"\n".join((magic, key, json.dumps(fields).encode(), rest)))
    (home / f"{by_path[str(snap_dir)]}.snapshot").chmod(0o644)  # open to others: never read
    states = {e["path"]: (e["state"], e["natlens"]) for e in _listing()}
    assert states == {str(rules): ("stale", "0.0.9"),
                      str(snap_dir): ("ignored", natlens.__version__)}


def test_fits_the_terminal_width(home: Path, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(["a-rather-long-folder-name"] * 6))
    deep.mkdir(parents=True)
    rules = deep / "host.rules"
    rules.write_text(RULES)
    _stored("parse", str(rules))
    for columns in (60, 120):
        out = run_command(["cache", "list"], env={"COLUMNS": str(columns)}).out
        assert max(map(len, out.splitlines())) <= columns, out
        assert out.splitlines()[-1].endswith("name/host.rules")
        assert "…" in out.splitlines()[-1]
    assert str(rules) in run_command(["cache", "list"], env={"COLUMNS": ""}).out


def test_folder_not_ours_is_refused(home: Path, snap_dir: Path) -> None:
    _stored("parse", str(snap_dir))
    home.chmod(0o755)
    assert_one_error(run_command(["cache", "list"]), f"natlens: error: {home}: the cache "
                     "folder is not used because it is owned by uid")


@pytest.mark.parametrize("args", [["dir", "--json"], ["clear", "--format", "json"]])
def test_format_only_for_list(home: Path, args: list[str]) -> None:
    assert_one_error(run_command(["cache", *args]), "only 'natlens cache list' has a format")
