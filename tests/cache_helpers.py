"""Helpers shared by the snapshot cache tests."""

from __future__ import annotations

import pytest

from natlens import snapshot_cache
from natlens.snapshot import Snapshot


class Parses:
    """Counts the parses ``load_cached`` does (natlens.snapshot.load calls)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = snapshot_cache.load

        def counting(*args: object, **kwargs: object) -> Snapshot:
            self.count += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(snapshot_cache, "load", counting)
