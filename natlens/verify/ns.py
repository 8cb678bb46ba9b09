"""Network namespaces: create, enter (per thread, with ``setns(2)``), run commands, remove.

Every namespace natlens makes is called ``nlv-<pid>-<role>`` and lives in ``/run/netns`` (made by
``ip netns add``), so ``cleanup()`` can find what a crashed run left behind by its prefix.

``entered(name)`` switches only the calling thread into the namespace (a network namespace may be
entered by one thread of a multi-threaded process, setns(2)); sockets made inside stay in it after
the thread has switched back, and a child started inside (``run``) inherits it. So one process
holds sockets in every namespace without ``ip netns exec`` per packet.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from natlens.errors import NatlensError

__all__ = [
    "NETNS_DIR",
    "PREFIX",
    "CommandError",
    "add",
    "cleanup",
    "delete",
    "entered",
    "exists",
    "listing",
    "run",
    "write_sysctl",
]

PREFIX = "nlv-"
"""Every namespace natlens verify creates starts with this (then ``<pid>-``)."""

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class CommandError(NatlensError):
    """A command the topology needs failed (its argv and stderr are in the message)."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def exists(name: str) -> bool:
    """Whether ``/run/netns/<name>`` exists."""
    return (NETNS_DIR / name).exists()


def listing() -> list[str]:
    """Names of the namespaces in ``/run/netns``."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def add(name: str) -> None:
    """``ip netns add NAME``."""
    run(["ip", "netns", "add", name])


def delete(name: str) -> None:
    """``ip netns del NAME``; a namespace that is already gone is fine."""
    if exists(name):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@contextlib.contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Run the body with the calling thread in namespace ``name`` (None: stay where we are)."""
    if name is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def run(argv: Sequence[str], *, ns: str | None = None, stdin: str | None = None,
        check: bool = True) -> str:
    """Run ``argv`` (inside namespace ``ns``) and return its standard output."""
    with entered(ns):
        try:
            done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                                  check=False)
        except FileNotFoundError:
            raise CommandError(f"{argv[0]}: command not found") from None
    if check and done.returncode != 0:
        where = f" (in {ns})" if ns else ""
        raise CommandError(f"{' '.join(argv)}{where} failed with status {done.returncode}: "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def write_sysctl(ns: str, key: str, value: str) -> bool:
    """Set ``key`` (dotted, e.g. ``net.ipv4.ip_forward``) in ``ns``; False when it has no such
    key (e.g. a per-interface key of an interface the namespace does not have)."""
    path = Path("/proc/sys") / key.replace(".", "/")
    with entered(ns):
        try:
            path.write_text(f"{value}\n")
        except (FileNotFoundError, PermissionError, OSError):
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup(*, pid: int | None = None, everything: bool = False) -> list[str]:
    """Remove natlens verify namespaces; returns the names removed.

    ``pid``: those of that run; default: those of this process and of runs whose process is
    gone (a crashed or killed run); ``everything``: every ``nlv-`` namespace.
    """
    removed: list[str] = []
    for name in listing():
        if not name.startswith(PREFIX):
            continue
        owner_text = name[len(PREFIX):].split("-", 1)[0]
        owner = int(owner_text) if owner_text.isdigit() else None
        if pid is not None:
            doomed = owner == pid
        elif everything:
            doomed = True
        else:
            doomed = owner is None or owner == os.getpid() or not _pid_alive(owner)
        if doomed:
            delete(name)
            removed.append(name)
    return removed
