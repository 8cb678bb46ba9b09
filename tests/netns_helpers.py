"""Shared by the kernel tests that build network namespaces (``kernel`` marker).

``needs_root`` skips (or, with ``CI=true``, fails); ``run`` runs a command, in a namespace or
not, and returns its stdout; ``namespaces`` makes uniquely named namespaces (the pid and a random
suffix) and always removes them, with the processes left in them; ``veth`` links two of them;
``chained`` makes namespaces linked in a line (client, router, server); ``backend_env`` is an
environment whose ``iptables`` commands are one backend's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def needs_root(command: str | tuple[str, ...], package: str) -> None:
    """Skip unless root with ``ip`` and ``command`` (or each of several, from ``package``)
    installed; with ``CI=true`` fail instead: CI must run the kernel tests."""
    commands = (command,) if isinstance(command, str) else command
    reason = None
    if os.geteuid() != 0:
        reason = "needs root for network namespaces"
    elif any(shutil.which(c) is None for c in ("ip", *commands)):
        reason = f"needs iproute2 and {package}"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def run(*args: str, ns: str | None = None, stdin: str | None = None,
        timeout: float = 30) -> str:
    """``args`` (inside ``ip netns exec ns`` when ``ns`` is given) → stdout; an AssertionError
    quoting stderr when it fails, ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False,
                          timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def namespaces(*prefixes: str) -> Iterator[list[str]]:
    """One new namespace per prefix, named ``<prefix><pid>-<hex>``; on exit the processes
    still in them are killed and the namespaces (with their interfaces) deleted."""
    tag = f"{os.getpid() % 100000}-{secrets.token_hex(2)}"
    names = [f"{prefix}{tag}" for prefix in prefixes]
    try:
        for ns in names:
            run("ip", "netns", "add", ns)
        yield names
    finally:
        for ns in names:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                  check=False).stdout.split()
            for pid in pids:
                subprocess.run(["kill", pid], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def veth(ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
    """A veth pair: ``dev_a`` in ``ns_a``, ``dev_b`` in ``ns_b``, both up."""
    run("ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b,
        "netns", ns_b)
    run("ip", "link", "set", dev_a, "up", ns=ns_a)
    run("ip", "link", "set", dev_b, "up", ns=ns_b)


@contextmanager
def chained(*hosts: tuple[str, ...]) -> Iterator[list[str]]:
    """Namespaces in a line, each linked to the next by a veth pair, every loopback up, removed
    as ``namespaces`` removes them. ``hosts``: per namespace its prefix and its devices, the one
    towards the previous namespace first: ``("nl-c-", "c0"), ("nl-r-", "ra", "rb"),
    ("nl-s-", "s0")`` links c0 to ra and rb to s0."""
    with namespaces(*(host[0] for host in hosts)) as names:
        for n in range(len(names) - 1):
            veth(names[n], hosts[n][-1], names[n + 1], hosts[n + 1][1])
        for ns in names:
            run("ip", "link", "set", "lo", "up", ns=ns)
        yield names


def backend_env(tmp: Path, backend: str) -> dict[str, str]:
    """An environment whose ``iptables``, ``ip6tables`` and their ``-save``/``-restore`` are
    ``backend``'s (``nf_tables`` or ``legacy``: links in ``tmp`` first on ``PATH``, as on such a
    host), with this checkout's natlens importable."""
    shim = tmp / f"shim-{backend}"
    shim.mkdir()
    suffix = "nft" if backend == "nf_tables" else "legacy"
    for family in ("iptables", "ip6tables"):
        for verb in ("", "-save", "-restore"):
            real = shutil.which(f"{family}-{suffix}{verb}")
            assert real is not None
            (shim / f"{family}{verb}").symlink_to(real)
    return {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
