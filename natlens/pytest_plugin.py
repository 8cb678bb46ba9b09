"""pytest plugin: fixtures that load saved rule dumps, so teams can unit-test their firewall.

Registered through the ``pytest11`` entry point (active once natlens is installed; ``-p natlens``
names it explicitly, e.g. with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``). Fixtures (override them in
a ``conftest.py`` to load snapshots some other way):

- ``natlens_snapshot``: a factory ``path -> Snapshot``; relative paths resolve against the
  ``natlens_fixtures`` ini option (relative to the rootdir) or, without it, the test file's
  folder. Without a path it loads the one named by ``@pytest.mark.natlens(path, strict=True)``.
  Snapshots are loaded once per session (again when their files change), through the
  per-user snapshot cache (``natlens.snapshot_cache``: parsed and prepared snapshots shared by
  sessions, processes and the ``natlens`` command; ini option ``natlens_cache = false`` turns
  it off). What the session prepared is stored when it ends.
- ``natlens_ruleset``: the IPv4 Ruleset of the snapshot named by ``@pytest.mark.natlens(path)``.

A failed ``assert trace == other_trace`` shows where the two traces part
(``natlens.testing.diff_traces``) and both numbered traces. The assertions themselves
(``assert_reaches`` ...) live in ``natlens.testing``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Protocol

import pytest

from natlens.model import Ruleset
from natlens.netfilter.trace import Trace
from natlens.snapshot import Snapshot, load

__all__ = ["SnapshotFactory", "natlens_ruleset", "natlens_snapshot"]

MARKER = "natlens"

_Fingerprint = tuple[tuple[str, int, int], ...]
_CACHE = pytest.StashKey[dict[tuple[str, str, bool], tuple[_Fingerprint, Snapshot]]]()


class SnapshotFactory(Protocol):
    """What ``natlens_snapshot`` gives: call it with a path (or none, for the marker's)."""

    def __call__(self, path: str | Path | None = None, *,
                 strict: bool | None = None) -> Snapshot: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("natlens_fixtures", "folder that relative natlens snapshot paths resolve in",
                  default="")
    parser.addini("natlens_cache", "read and write the per-user natlens snapshot cache",
                  type="bool", default=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path, strict=True): snapshot folder or rule file for the natlens_snapshot "
        "and natlens_ruleset fixtures",
    )
    config.stash[_CACHE] = {}


def _base_dir(request: pytest.FixtureRequest) -> Path:
    configured = str(request.config.getini("natlens_fixtures"))
    if configured:
        return Path(request.config.rootpath) / configured
    return Path(request.path).parent


def _shortest(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it: traces and findings
    then name ``fixtures/x/iptables-save.txt:16``, not a long absolute path."""
    try:
        return Path(os.path.normpath(path.absolute())).relative_to(Path.cwd())
    except ValueError:
        return path


def _fingerprint(path: Path) -> _Fingerprint:
    """Names, sizes and modification times of the snapshot's files (a change reloads it)."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    out = []
    for f in files:
        st = f.stat()
        out.append((f.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _load_cached(config: pytest.Config, path: Path, strict: bool) -> Snapshot:
    cache = config.stash.get(_CACHE, None)
    if cache is None or not path.exists():
        return load(path, strict=strict)  # load() says what is wrong with the path
    key = (str(path.resolve()), str(path), strict)
    stamp = _fingerprint(path)
    hit = cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    if config.getini("natlens_cache"):
        from natlens.snapshot_cache import CacheWarning, load_cached  # noqa: PLC0415

        # The cache only saves time: an entry it cannot use must not fail a test session that
        # turns warnings into errors (``filterwarnings = error``); the snapshot is parsed anew.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheWarning)
            snap = load_cached(path, strict=strict)
    else:
        snap = load(path, strict=strict)
    cache[key] = (stamp, snap)
    return snap


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Store the snapshots of the session with what the tests prepared (traces' rules)."""
    import sys  # noqa: PLC0415

    cache = sys.modules.get("natlens.snapshot_cache")
    if cache is not None and session.config.getini("natlens_cache"):
        with warnings.catch_warnings():  # saving is best effort, as loading is
            warnings.simplefilter("ignore", cache.CacheWarning)
            cache.save_pending()


def _marked(request: pytest.FixtureRequest, fixture: str) -> pytest.Mark:
    marker: pytest.Mark | None = request.node.get_closest_marker(MARKER)
    if marker is None or not marker.args:
        pytest.fail(f"{fixture} needs @pytest.mark.{MARKER}('path/to/snapshot') on "
                    f"{request.node.nodeid}", pytrace=False)
    return marker


@pytest.fixture
def natlens_snapshot(request: pytest.FixtureRequest) -> SnapshotFactory:
    """Factory loading a snapshot folder or rule file; relative paths as the module says."""
    base = _base_dir(request)

    def factory(path: str | Path | None = None, *, strict: bool | None = None) -> Snapshot:
        if path is None:
            marker = _marked(request, "natlens_snapshot() without a path")
            path = marker.args[0]
            if strict is None:
                strict = bool(marker.kwargs.get("strict", True))
        p = Path(path)
        return _load_cached(request.config, _shortest(p if p.is_absolute() else base / p),
                            True if strict is None else strict)

    return factory


@pytest.fixture
def natlens_ruleset(request: pytest.FixtureRequest,
                    natlens_snapshot: SnapshotFactory) -> Ruleset:
    """The IPv4 rules of the snapshot given by ``@pytest.mark.natlens(path)``."""
    marker = _marked(request, "natlens_ruleset")
    strict = bool(marker.kwargs.get("strict", True))
    return natlens_snapshot(marker.args[0], strict=strict).ruleset


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object,
                              right: object) -> list[str] | None:
    """Explain ``trace == trace`` (where they part) and ``trace == "IP:PORT"`` (never equal)."""
    if op != "==":
        return None
    if isinstance(left, Trace) and isinstance(right, Trace):
        from natlens.testing import diff_traces  # noqa: PLC0415  (only when a comparison fails)

        lines = [f"{_short(left)} == {_short(right)}", *diff_traces(left, right)]
        lines.extend(["", "left trace:", *str(left).split("\n")])
        lines.extend(["", "right trace:", *str(right).split("\n")])
        return lines
    trace, other = (left, right) if isinstance(left, Trace) else (right, left)
    if isinstance(trace, Trace) and isinstance(other, str):
        pair = (_short(trace), repr(other))
        return [" == ".join(pair if trace is left else pair[::-1]),
                f"a Trace never equals a str: compare trace.final_dst ({trace.final_dst!r}) or "
                "use natlens.testing.assert_reaches", *str(trace).split("\n")]
    return None


def _short(trace: Trace) -> str:
    """``Trace(ACCEPT forward 172.17.0.2:80)``: the outcome, for the headline of a comparison."""
    return f"Trace({trace.verdict.value} {trace.path.value} {trace.final_dst})"
