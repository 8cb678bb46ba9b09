"""Shared by the tests that drive the real Docker daemon: skip, or fail loudly in CI."""

from __future__ import annotations

import os
import subprocess

import pytest


def unavailable(reason: str) -> None:
    """Skip (a developer without a daemon) or, with CI=true, fail: CI must run these tests."""
    __tracebackhide__ = True
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason} (.ci/run starts dockerd with "
                    "scripts/start-dockerd.sh)", pytrace=False)
    pytest.skip(reason)


def run(*argv: str) -> str:
    """Run a command; its stdout, or an AssertionError quoting its stderr."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def docker(*args: str) -> str:
    """``docker ARGS`` → stdout."""
    return run("docker", *args)


def require_daemon_and_image(image: str) -> None:
    """Root, the docker CLI, iptables-save and a reachable daemon; then build ``image``."""
    import shutil
    from pathlib import Path

    from natlens.docker import DockerError, connect

    if os.geteuid() != 0:
        unavailable("the audit on a live host needs root")
    if shutil.which("docker") is None or shutil.which("iptables-save") is None:
        unavailable("the docker CLI or iptables-save is not installed")
    try:
        connect().close()
    except DockerError as exc:
        unavailable(str(exc))
    script = Path(__file__).resolve().parent.parent / "scripts" / "make-busybox-image.sh"
    proc = subprocess.run([str(script), image], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"make-busybox-image.sh failed: {proc.stderr}"
