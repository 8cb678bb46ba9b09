"""Shared test helpers: where the corpus of real dumps lives.

The corpus (third-party iptables dumps, see its README.md) sits outside the repository, at
``$NATLENS_CORPUS`` or, by default, ``../shared/corpus`` relative to the repository root.
Tests that need it take the ``corpus`` fixture, which fails loudly when it is missing: a
silently skipped corpus would let those tests pass without testing anything.

With ``CI`` set (``CI=true``), the Hypothesis tests run derandomized (profile ``natlens-ci``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

REPO_ROOT = Path(__file__).resolve().parent.parent

# Hypothesis in CI: the same examples on every run (derandomize: the seed comes from each test's
# own source), so a rare random input cannot fail one submission and pass the next; no deadline
# (wall-clock), no example database. Each test keeps its own budget (max_examples given in its
# @settings wins over the profile). Local runs stay random and hunt for new failures. Loaded
# here, before the test modules build their settings objects, which inherit from it.
settings.register_profile("natlens-ci", derandomize=True, deadline=None, database=None,
                          print_blob=True)
if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
    settings.load_profile("natlens-ci")


def corpus_path() -> Path:
    """The corpus folder: ``$NATLENS_CORPUS`` or ``<repo>/../shared/corpus`` (may not exist)."""
    env = os.environ.get("NATLENS_CORPUS")
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "corpus").resolve()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The corpus folder; the test fails (not skips) when it is missing."""
    path = corpus_path()
    if not (path / "README.md").is_file():
        pytest.fail(
            f"natlens corpus not found at {path} (set NATLENS_CORPUS to the folder holding "
            "README.md, kube-proxy/, real-world/ ...)",
            pytrace=False,
        )
    return path


def cases_path() -> Path:
    """The fault cases folder: ``$NATLENS_CASES`` or ``<repo>/../shared/cases`` (may not exist)."""
    env = os.environ.get("NATLENS_CASES")
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "cases").resolve()


@pytest.fixture(scope="session")
def cases() -> Path:
    """The cases folder (``hostile/``, ``kernel/``, ``real-world/``); fails when missing."""
    path = cases_path()
    if not (path / "README.md").is_file():
        pytest.fail(
            f"natlens cases not found at {path} (set NATLENS_CASES to the folder holding "
            "README.md, hostile/, kernel/, real-world/)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The snapshot cache (natlens.snapshot_cache) of this test session lives in a temporary
    folder, never in the user's ~/.cache (commands the tests run inherit it)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private snapshot-cache home for one test (``XDG_CACHE_HOME`` under ``tmp_path``, the
    cache written in the background as the CLI does unless the test asks otherwise); yields
    the cache directory natlens uses under it, and forgets what the test left pending."""
    from natlens import snapshot_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NATLENS_CACHE_FOREGROUND", raising=False)
    yield tmp_path / "xdg" / "natlens"
    snapshot_cache.forget_pending()


@pytest.fixture
def snap_dir(tmp_path: Path) -> Path:
    """A copy of the bundled sample snapshot (fixtures/default-bridge-8080) to change."""
    target = tmp_path / "snap"
    shutil.copytree(REPO_ROOT / "fixtures" / "default-bridge-8080", target)
    return target


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kube-proxy snapshot folder made by benchmarks/gen_kube.py: 150 services of 3 endpoints
    (about 1,000 chains, families of chains that ``graph`` collapses)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        from gen_kube import generate
    finally:
        sys.path.pop(0)
    folder = tmp_path_factory.mktemp("kube") / "snap"
    folder.mkdir()
    (folder / "iptables-save.txt").write_text(generate(150, 3))
    return folder
