"""Which network namespaces belong to which ``natlens verify`` run, and removing them whatever
happens: an error, Ctrl-C, SIGTERM, SIGHUP, SIGQUIT, or a SIGKILL (then by the next run or
``natlens verify --cleanup``).

Every run has a marker, ``nlv-<pid>-<token>-`` (``token``: 6 random hex digits), that starts
the name of each namespace it makes, so two runs never touch each other's namespaces. Before it
creates anything, a run writes its state file ``/run/natlens/verify-<pid>-<token>.json``
(``{"pid", "start_time", "prefix", "namespaces", "responders"}``; ``start_time`` is field 22
of ``/proc/<pid>/stat``, so a reused pid is not taken for the run). A run is *dead* when its
process is gone or is another process now; ``cleanup()`` removes the namespaces of dead runs only.
Interfaces (veths, bridges, dummies) live inside those namespaces and go with them.

``responders`` (``[{"pid", "start_time"}]``) are the echo servers of the connection check
(``connect``), recorded as soon as they start. A process keeps a namespace alive after
``ip netns del``, so removal kills them first (SIGKILL, only a process whose pid *and* start
time match the record). They also exit by themselves when their standard input, a pipe from the
run, reaches end of file: when the run dies.

Removal runs with the handled signals held back (``signals.shielded``), so a second Ctrl-C
cannot cut it short, and is redone when a signal slipped in just before the shield went up.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from natlens.verify import ns as netns
from natlens.verify.signals import Interrupted, shielded

__all__ = ["RUN_DIR", "Removed", "Run", "cleanup", "kill_recorded", "start_time"]

RUN_DIR = Path("/run/natlens")
"""Where runs keep their state files (tmpfs: gone after a reboot, as the namespaces are)."""

_STATE = re.compile(r"verify-(\d+)-([0-9a-f]+)\.json")
_NAME = re.compile(r"nlv-(\d+)-(?:([0-9a-f]{6})-)?[a-z0-9]+")


def start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks after boot), None when no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(text.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _alive(pid: int, started: int | None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def kill_recorded(pid: int, started: int | None) -> bool:
    """SIGKILL process ``pid`` if it is still the one recorded (same ``start_time``); False when
    it is gone, is another process now, or no start time was recorded (then it cannot be told
    from a process that reused the pid, and is left alone)."""
    if started is None or start_time(pid) != started:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass
class Run:
    """One verify run: its namespace prefix and state file."""

    pid: int
    token: str
    started: int | None
    namespaces: list[str] = field(default_factory=list)
    responders: list[tuple[int, int | None]] = field(default_factory=list)
    """(pid, start_time) of the run's responder processes (``connect``)."""

    @classmethod
    def new(cls) -> Run:
        """A run of this process with a fresh token (nothing written yet)."""
        pid = os.getpid()
        return cls(pid, secrets.token_hex(3), start_time(pid))

    @classmethod
    def from_prefix(cls, prefix: str) -> Run:
        """The run of this process whose marker is ``prefix`` (``nlv-<pid>-<token>-``)."""
        m = re.fullmatch(r"nlv-(\d+)-([0-9a-f]{6})-", prefix)
        if m is None or int(m.group(1)) != os.getpid():
            raise ValueError(f"{prefix!r} is not a namespace marker of this process "
                             f"(nlv-{os.getpid()}-<6 hex digits>-)")
        return cls(os.getpid(), m.group(2), start_time(os.getpid()))

    @property
    def prefix(self) -> str:
        """``nlv-<pid>-<token>-``: every namespace of the run starts with it."""
        return f"{netns.PREFIX}{self.pid}-{self.token}-"

    @property
    def state(self) -> Path:
        """The state file."""
        return RUN_DIR / f"verify-{self.pid}-{self.token}.json"

    def record(self, names: list[str] | tuple[str, ...]) -> None:
        """Write the state file naming ``names`` (before they are created)."""
        bad = [n for n in names if not n.startswith(self.prefix)]
        if bad:
            raise ValueError(f"namespace {bad[0]!r} lacks the run's marker {self.prefix!r}")
        self.namespaces = list(names)
        self._write()

    def record_responder(self, pid: int) -> None:
        """Add process ``pid`` (a responder just started) to the state file."""
        self.responders.append((pid, start_time(pid)))
        self._write()

    def _write(self) -> None:
        RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = {"pid": self.pid, "start_time": self.started, "prefix": self.prefix,
                "namespaces": self.namespaces,
                "responders": [{"pid": p, "start_time": t} for p, t in self.responders]}
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, self.state)

    def remove(self) -> list[str]:
        """Kill the run's recorded responders, delete every namespace of the run (recorded or
        carrying its marker), then the state file; returns the names that existed. Shielded
        from the handled signals; a signal that arrives meanwhile is raised (``Interrupted``)
        once everything is removed."""
        removed: list[str] = []

        def once() -> None:
            for pid, started in self.responders:
                kill_recorded(pid, started)
            names = {*self.namespaces, *(n for n in netns.listing()
                                         if n.startswith(self.prefix))}
            for name in sorted(names):
                if netns.exists(name):
                    netns.delete(name)
                    removed.append(name)
            with contextlib.suppress(FileNotFoundError):
                self.state.unlink()
            with contextlib.suppress(FileNotFoundError):
                self.state.with_suffix(".tmp").unlink()

        _until_done(once)
        return removed


@dataclass(frozen=True, slots=True)
class Removed:
    """Namespaces of one dead run that ``cleanup`` removed."""

    pid: int
    names: tuple[str, ...]

    def describe(self) -> str:
        """``pid 1234: nlv-1234-ab12cd-r, nlv-1234-ab12cd-x0``."""
        return f"pid {self.pid}: {', '.join(self.names)}"


def _read_state(path: Path) -> Run | None:
    m = _STATE.fullmatch(path.name)
    if m is None:
        return None
    pid, token = int(m.group(1)), m.group(2)
    started: int | None = None
    names: list[str] = []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("start_time"), int):
            started = data["start_time"]
        if isinstance(data.get("namespaces"), list):
            names = [n for n in data["namespaces"] if isinstance(n, str)]
    run = Run(pid, token, started)
    if isinstance(data, dict) and isinstance(data.get("responders"), list):
        run.responders = [(r["pid"], r["start_time"]) for r in data["responders"]
                          if isinstance(r, dict) and type(r.get("pid")) is int
                          and r["pid"] > 1 and type(r.get("start_time")) is int]
    run.namespaces = [n for n in names if n.startswith(run.prefix) and "/" not in n]
    return run


def cleanup() -> list[Removed]:
    """Remove the namespaces (and state files) of dead verify runs; a live run's are left alone.

    Namespaces named ``nlv-<pid>-...`` without a state file (made by a natlens before state
    files, or a state file removed by hand) are removed when that pid is gone.
    """
    out: list[Removed] = []
    live: list[str] = []
    try:
        states = sorted(RUN_DIR.iterdir())
    except FileNotFoundError:
        states = []
    for path in states:
        if path.suffix != ".json":
            continue
        run = _read_state(path)
        if run is None:
            continue
        if run.pid == os.getpid() or _alive(run.pid, run.started):
            live.append(run.prefix)
            continue
        names = run.remove()
        if names:
            out.append(Removed(run.pid, tuple(names)))
    orphans: dict[int, list[str]] = {}
    for name in netns.listing():
        m = _NAME.fullmatch(name)
        if m is None:
            continue
        pid = int(m.group(1))
        if name.startswith(tuple(live)) or pid == os.getpid() or _alive(pid, None):
            continue
        orphans.setdefault(pid, []).append(name)
    for pid, names in sorted(orphans.items()):
        for name in names:
            _until_done(functools.partial(netns.delete, name))
        out.append(Removed(pid, tuple(names)))
    return out


def _until_done(work: Callable[[], object]) -> None:
    """Run idempotent cleanup ``work`` with the handled signals held back; when a signal got
    through (just before the shield, or pending when it comes down), run it again, then raise
    that signal's ``Interrupted``."""
    pending: Interrupted | None = None
    while True:
        try:
            with shielded():
                work()
            break
        except Interrupted as exc:
            pending = exc
    if pending is not None:
        raise pending
