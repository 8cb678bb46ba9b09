"""Network namespaces: create, enter (per thread, with ``setns(2)``), run commands, remove.

Every namespace natlens makes is called ``nlv-<pid>-<token>-<role>`` and lives in ``/run/netns``
(made by ``ip netns add``); ``runs`` records them per run and finds what a killed run left.

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
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from natlens.errors import NatlensError
from natlens.sysctls import kernel_value
from natlens.verify.kernel_names import printable, sysctl_path
from natlens.verify.signals import shielded

__all__ = [
    "NETNS_DIR",
    "PREFIX",
    "CommandError",
    "add",
    "delete",
    "entered",
    "exists",
    "listing",
    "run",
    "write_sysctl",
]

PREFIX = "nlv-"
"""Every namespace natlens verify creates starts with this (then ``<pid>-<token>-``)."""

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class CommandError(NatlensError):
    """A command the topology needs failed: the message is one line (the command and the first
    line of its error output); ``stderr`` holds all of it."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


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
    switched = False
    try:
        # a signal (signals.Interrupted) between setns and the try below would strand the
        # thread in the namespace: the switch is shielded, and a pending signal is raised
        # where the finally already covers it
        with shielded():
            target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
                switched = True
            finally:
                os.close(target)
        yield
    finally:
        if switched:
            with shielded():
                _setns(home)
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
        output = done.stderr if done.stderr.strip() else done.stdout
        first = next((ln.strip() for ln in output.splitlines() if ln.strip()), "")
        raise CommandError(f"{shlex.join(argv)}{where} failed with status {done.returncode}: "
                           f"{printable(first, 200)[1:-1]}", stderr=output)
    return done.stdout


def write_sysctl(ns: str, key: str, value: str) -> bool:
    """Set ``key`` (dotted, e.g. ``net.ipv4.ip_forward``) in ``ns``; False when it has no such
    key (e.g. a per-interface key of an interface the namespace does not have).

    Only the per-network-namespace keys of ``kernel_names.SYSCTL_KEYS`` (a namespace shares
    every other sysctl, ``kernel.*``, with the host) and values the kernel takes for the key
    (``natlens.sysctls.kernel_value``); ``ValueError`` otherwise.
    """
    path = sysctl_path(key)
    try:
        kernel_value(key, value)
    except ValueError as exc:
        raise ValueError(f"sysctl {key}: {exc}") from None
    with entered(ns):
        try:
            path.write_text(f"{value}\n")
        except (FileNotFoundError, PermissionError, OSError):
            return False
    return True
