"""Helpers shared by the snapshot cache tests."""

from __future__ import annotations

from typing import Any

import pytest

from natlens import snapshot_cache
from natlens.snapshot import Snapshot, load


class Parses:
    """Counts the parses ``load_cached`` does (natlens.snapshot.load calls)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0

        def counting(*args: Any, **kwargs: Any) -> Snapshot:
            self.count += 1
            return load(*args, **kwargs)

        monkeypatch.setattr(snapshot_cache, "load", counting)
