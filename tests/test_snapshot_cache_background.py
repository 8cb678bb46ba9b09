"""The ``natlens`` command writes its snapshot cache entry in the background (issue 13): the
answer is out and the command has exited (its pipes at their end) while a forked child still
writes; a load started meanwhile waits for that write instead of parsing again, and so does
``cache clear``; ``NATLENS_CACHE_FOREGROUND`` writes before exiting; the child's failures are
silent; the library writes in the foreground; what killed writers leave is removed. Commands
run as real ``python -m natlens`` processes; a write is held back by taking the entry's write
lock in the test (as another writer would), never by timing."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cache_helpers import Parses

from natlens import snapshot_cache
from natlens.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "default-bridge-8080"
TIMEOUT = 300  # seconds: a bound for a hung run, not a speed




def _report(snap: Path) -> list[str]:
    return [sys.executable, "-m", "natlens", "report", str(snap), "--format", "json"]


def _run(argv: list[str], env: dict[str, str],
         preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end, reading its output and error to their end (both pipes)."""
    return subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT, check=False,
                          timeout=TIMEOUT, preexec_fn=preexec_fn)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NATLENS_CACHE_FOREGROUND"}
    return {**env, **extra}


def _entries(home: Path) -> list[Path]:
    return sorted(home.glob("*.snapshot"))


def _seed(home: Path, snap: Path) -> tuple[str, int]:
    """Store the snapshot's entry as ``natlens parse`` leaves it (in this process: written in
    the foreground) → its key and inode. A ``report`` then reads it at once (no write to
    wait for) and stores it again, with the host model and the facts it derived."""
    assert main(["parse", str(snap), "-q"]) == 0
    [entry] = _entries(home)
    return entry.name.removesuffix(".snapshot"), entry.stat().st_ino


def _await_rewrite(home: Path, inode: int) -> None:
    """Until the entry is replaced (a bound on the wait, not a speed)."""
    deadline = time.monotonic() + TIMEOUT
    while [e.stat().st_ino for e in _entries(home)] in ([inode], []):
        assert time.monotonic() < deadline, "the entry was never stored again"
        time.sleep(0.05)


def test_the_command_exits_and_closes_its_output_before_the_write(
        home: Path, snap_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, inode = _seed(home, snap_dir)
    fresh = _run([*_report(snap_dir), "--no-cache"], _env())
    lock = snapshot_cache._lock(home, key, wait=0.0)  # the write cannot start while we hold it
    assert lock is not None
    try:
        # capture_output reads both pipes to their end: a child holding them would hang here
        warm = _run(_report(snap_dir), _env())
        assert (warm.returncode, warm.stdout, warm.stderr) == \
            (fresh.returncode, fresh.stdout, fresh.stderr)
        assert [e.stat().st_ino for e in _entries(home)] == [inode], \
            "stored again before the command ended"
    finally:
        snapshot_cache._unlock(home, key, lock)
    _await_rewrite(home, inode)
    snapshot_cache.wait_for_writes()
    assert not list(home.glob(".tmp-*")), "a temporary file was left behind"
    assert not list(home.glob("*.lock")), "the write lock was left behind"


def test_a_load_right_after_a_cold_command_reads_its_entry(
        home: Path, snap_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    _run(_report(snap_dir), _env())
    # the entry is written, or being written under its lock, taken before the command ended
    # (the wait itself: test_a_load_waits_for_a_write_under_way)
    snapshot_cache.load_cached(snap_dir)
    assert parses.count == 0, "parsed again instead of reading the command's entry"


def test_a_load_waits_for_a_write_under_way(home: Path, snap_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    snap = snapshot_cache.load_cached(snap_dir)
    snapshot_cache.save_pending()
    [entry] = _entries(home)
    key = entry.name.removesuffix(".snapshot")
    entry.unlink()
    parses = Parses(monkeypatch)
    lock = snapshot_cache._lock(home, key, wait=0.0)  # a writer at work
    assert lock is not None
    loaded: list[object] = []
    reader = threading.Thread(target=lambda: loaded.append(snapshot_cache.load_cached(snap_dir)))
    try:
        reader.start()
        reader.join(timeout=1)
        assert reader.is_alive(), "the load did not wait for the write under way"
        snapshot_cache._write(home, entry, key, snap, ())
    finally:
        snapshot_cache._unlock(home, key, lock)
    reader.join(timeout=TIMEOUT)
    assert loaded == [snap]
    assert parses.count == 0, "parsed again instead of reading what was written"


def test_cache_clear_waits_for_a_write_under_way(home: Path, snap_dir: Path) -> None:
    snap = snapshot_cache.load_cached(snap_dir)
    snapshot_cache.save_pending()
    [entry] = _entries(home)
    key = entry.name.removesuffix(".snapshot")
    entry.unlink()
    lock = snapshot_cache._lock(home, key, wait=0.0)  # a writer at work
    assert lock is not None
    removed: list[int] = []
    clearing = threading.Thread(target=lambda: removed.append(snapshot_cache.clear()))
    try:
        clearing.start()
        clearing.join(timeout=1)
        assert clearing.is_alive(), "the clear did not wait for the write under way"
        snapshot_cache._write(home, entry, key, snap, ())
    finally:
        snapshot_cache._unlock(home, key, lock)
    clearing.join(timeout=TIMEOUT)
    assert removed == [1]
    assert _entries(home) == []


def test_foreground_write_on_request(home: Path, snap_dir: Path) -> None:
    key, inode = _seed(home, snap_dir)
    lock = snapshot_cache._lock(home, key, wait=0.0)
    assert lock is not None
    run = subprocess.Popen(_report(snap_dir), env=_env(NATLENS_CACHE_FOREGROUND="1"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        with pytest.raises(subprocess.TimeoutExpired):  # it waits for our lock to write
            run.communicate(timeout=2)
    finally:
        snapshot_cache._unlock(home, key, lock)
    _, err = run.communicate(timeout=TIMEOUT)
    assert run.returncode == 0, err
    assert [e.stat().st_ino for e in _entries(home)] not in ([inode], []), \
        "the command ended before it stored the entry"
    assert not list(home.glob("*.lock"))


def _no_file_writes() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # writing a file fails (EFBIG)


@pytest.mark.parametrize("foreground", [False, True], ids=["background", "foreground"])
def test_a_failed_write_is_silent_in_the_background(home: Path, snap_dir: Path,
                                                    foreground: bool) -> None:
    env = _env(NATLENS_CACHE_FOREGROUND="1") if foreground else _env()
    run = _run(_report(snap_dir), env, preexec_fn=_no_file_writes)
    snapshot_cache.wait_for_writes()
    assert run.returncode == 0
    assert '"findings"' in run.stdout
    if foreground:
        assert run.stderr.startswith("natlens: warning: snapshot cache: "), run.stderr
        assert "cannot write an entry" in run.stderr
    else:
        assert run.stderr == ""
    assert _entries(home) == []
    assert not list(home.glob(".tmp-*"))
    assert not list(home.glob("*.lock"))


def test_the_library_writes_in_the_foreground(home: Path, snap_dir: Path) -> None:
    snapshot_cache.load_cached(snap_dir)
    snapshot_cache.save_pending()
    assert len(_entries(home)) == 1
    assert not list(home.glob("*.lock"))


def test_what_killed_writers_left_is_removed(home: Path, snap_dir: Path) -> None:
    home.mkdir(parents=True, mode=0o700)
    old = time.time() - 2 * snapshot_cache._STALE
    left = [home / ".tmp-killed.snapshot", home / f"{'0' * 64}.lock"]
    recent = [home / ".tmp-writing.snapshot", home / f"{'1' * 64}.lock"]
    for path in [*left, *recent]:
        path.write_bytes(b"")
    held = snapshot_cache._lock(home, "2" * 64, wait=0.0)  # a writer still at work
    assert held is not None
    try:
        for path in [*left, home / f"{'2' * 64}.lock"]:
            os.utime(path, (old, old))
        snapshot_cache.load_cached(snap_dir)
        snapshot_cache.save_pending()  # a write prunes the folder
        assert not any(p.exists() for p in left)
        assert all(p.exists() for p in recent)
        assert (home / f"{'2' * 64}.lock").exists(), "removed a lock a writer holds"
    finally:
        snapshot_cache._unlock(home, "2" * 64, held)
    assert len([e for e in _entries(home) if not e.name.startswith(".tmp-")]) == 1
