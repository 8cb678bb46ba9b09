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
