"""``natlens verify`` leaves nothing behind: interrupted at every phase by every signal.

Hostile case 03: a verify run interrupted while its namespaces were being made, or by SIGHUP /
SIGQUIT, or killed, left namespaces (with veths, bridges and rules) behind. Here a real
``natlens verify`` runs in a subprocess and is interrupted

* in **setup** (as soon as its first namespace exists),
* in **load** (while ``iptables-restore`` runs: a PATH shim marks the moment and lingers), and
* while **probing** (a ``conntrack`` shim marks the first probe),

by SIGINT (sent to the whole process group, as a terminal's Ctrl-C is, so the ``ip`` child
gets it too), SIGTERM, SIGHUP, SIGQUIT (to the process) and SIGKILL. Afterwards no namespace
of the run and no state file is left; the exit status is 128 + the signal and stderr is one
line. A killed run's namespaces are removed by ``natlens verify --cleanup`` or by the next run,
which says so. ``--cleanup`` never touches a live run's namespaces. Needs root (``kernel``);
~1-3 s per case.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import natlens
import natlens.verify
from natlens.verify import ns as netns
from natlens.verify.runs import RUN_DIR

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "fixtures" / "default-bridge-8080"
SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGKILL")
PHASES = ("setup", "load", "probing")
SHIM = """#!/bin/sh
touch "{mark}"
{linger}
exec "{real}" "$@"
"""


def _needs_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the kernel tests as root", pytrace=False)
        pytest.skip("needs root for network namespaces")


def _of(pid: int) -> list[str]:
    return [n for n in netns.listing() if n.startswith(f"{netns.PREFIX}{pid}-")]


def _states(pid: int) -> list[str]:
    return sorted(p.name for p in RUN_DIR.glob(f"verify-{pid}-*")) if RUN_DIR.is_dir() else []


def _env(tmp: Path) -> dict[str, str]:
    """PATH shims: restore commands touch ``load`` and linger, ``conntrack`` touches
    ``probing``; everything else is the real tool."""
    shims = tmp / "shims"
    shims.mkdir()
    for tool, mark, linger in (("iptables-nft-restore", "load", "sleep 0.3"),
                               ("ip6tables-nft-restore", "load", "sleep 0.3"),
                               ("conntrack", "probing", "")):
        real = shutil.which(tool)
        assert real is not None, tool
        path = shims / tool
        path.write_text(SHIM.format(mark=tmp / mark, linger=linger, real=real))
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}


def _wait(what: Callable[[], bool], proc: subprocess.Popen[str], limit: float = 30) -> None:
    end = time.monotonic() + limit
    while not what():
        assert proc.poll() is None, f"verify ended before the phase: {proc.communicate()}"
        assert time.monotonic() < end, "phase never reached"
        time.sleep(0.005)


def _interrupt(tmp: Path, phase: str, signame: str) -> tuple[int, int, str]:
    """Run verify, interrupt it in ``phase`` with ``signame``; (pid, status, stderr)."""
    env = _env(tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "natlens.cli", "verify", str(FIXTURE), "--packets", "200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True)
    try:
        if phase == "setup":
            _wait(lambda: bool(_of(proc.pid)), proc)
        else:
            _wait((tmp / phase).exists, proc)
        sig = getattr(signal, signame)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # a terminal's Ctrl-C: the whole foreground group
        else:
            os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.pid, proc.returncode, err


@pytest.mark.parametrize("signame", SIGNALS)
@pytest.mark.parametrize("phase", PHASES)
def test_interrupted_verify_leaves_nothing(tmp_path: Path, phase: str, signame: str) -> None:
    _needs_root()
    pid, status, err = _interrupt(tmp_path, phase, signame)
    signum = int(getattr(signal, signame))
    try:
        if signame == "SIGKILL":
            assert status == -signum
            left = _of(pid)
            assert left, "a killed run in this phase has namespaces to clean up"
            assert _states(pid), "a killed run keeps its state file"
            done = subprocess.run([sys.executable, "-m", "natlens.cli", "verify", "--cleanup"],
                                  capture_output=True, text=True, check=False,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
            assert done.returncode == 0, done.stderr
            assert f"pid {pid}: " in done.stdout
            assert all(name in done.stdout for name in left)
        else:
            assert status == 128 + signum, err
            assert err.count("\n") == 1, err
            assert "Traceback" not in err
            assert f"interrupted ({signame})" in err
        assert _of(pid) == []
        assert _states(pid) == []
    finally:
        for name in _of(pid):
            netns.delete(name)


def test_next_run_removes_and_reports_a_killed_run(tmp_path: Path) -> None:
    _needs_root()
    pid, status, _ = _interrupt(tmp_path, "probing", "SIGKILL")
    try:
        assert status == -signal.SIGKILL
        left = _of(pid)
        assert left
        report = natlens.verify.verify(natlens.load(FIXTURE), packets=1)
        assert _of(pid) == []
        assert _states(pid) == []
        note = next(n for n in report.notes if f"pid {pid}:" in n)
        assert all(name in note for name in left)
    finally:
        for name in _of(pid):
            netns.delete(name)


def test_cleanup_spares_a_live_run(tmp_path: Path) -> None:
    """``--cleanup`` (and another run's start) while a run is probing: its namespaces stay
    and it finishes normally."""
    _needs_root()
    env = _env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "natlens.cli", "verify", str(FIXTURE), "--packets", "80"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait((tmp_path / "probing").exists, proc)
        mine = _of(proc.pid)
        assert len(mine) >= 3
        assert all(name.startswith(mine[0].rsplit("-", 1)[0]) for name in mine)  # one marker
        removed = natlens.verify.cleanup()
        assert all(r.pid != proc.pid for r in removed)
        other = natlens.verify.verify(natlens.load(FIXTURE), packets=1)
        assert not any(f"pid {proc.pid}:" in n for n in other.notes)
        assert _of(proc.pid) == mine
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "0 disagree" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for name in _of(proc.pid):
            netns.delete(name)
    assert _of(proc.pid) == []
