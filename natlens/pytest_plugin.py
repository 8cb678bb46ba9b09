"""pytest plugin: fixtures that load saved rule dumps, so teams can unit-test their firewall.

Registered through the ``pytest11`` entry point (active once natlens is installed; ``-p natlens``
names it explicitly). Fixtures:

- ``natlens_snapshot``: a factory ``path -> Snapshot``; relative paths resolve against the
  ``natlens_fixtures`` ini option (relative to the rootdir) or, without it, the test file's folder.
- ``natlens_ruleset``: the IPv4 Ruleset of the snapshot named by ``@pytest.mark.natlens("path")``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from natlens.model import Ruleset
from natlens.snapshot import Snapshot, load

__all__ = ["natlens_ruleset", "natlens_snapshot"]

SnapshotFactory = Callable[[str | Path], Snapshot]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("natlens_fixtures", "folder that relative natlens snapshot paths resolve in",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "natlens(path, strict=True): snapshot folder or rule file for the natlens_ruleset fixture",
    )


def _base_dir(request: pytest.FixtureRequest) -> Path:
    configured = str(request.config.getini("natlens_fixtures"))
    if configured:
        return Path(request.config.rootpath) / configured
    return Path(request.path).parent


@pytest.fixture
def natlens_snapshot(request: pytest.FixtureRequest) -> SnapshotFactory:
    """Factory loading a snapshot folder or rule file; relative paths as the module says."""
    base = _base_dir(request)

    def factory(path: str | Path, *, strict: bool = True) -> Snapshot:
        p = Path(path)
        return load(p if p.is_absolute() else base / p, strict=strict)

    return factory


@pytest.fixture
def natlens_ruleset(request: pytest.FixtureRequest,
                    natlens_snapshot: SnapshotFactory) -> Ruleset:
    """The IPv4 rules of the snapshot given by ``@pytest.mark.natlens(path)``."""
    marker = request.node.get_closest_marker("natlens")
    if marker is None or not marker.args:
        raise pytest.UsageError("natlens_ruleset needs @pytest.mark.natlens('path/to/snapshot')")
    strict = bool(marker.kwargs.get("strict", True))
    return natlens_snapshot(marker.args[0], strict=strict).ruleset  # type: ignore[call-arg]
