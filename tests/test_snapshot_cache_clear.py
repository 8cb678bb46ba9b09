"""``natlens cache clear`` on a cache folder natlens does not use (another owner, access for
group or others, not a directory): one line saying why and how to remove it by hand, exit 2,
and the entries left alone; and a clear that removes entries."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from natlens import snapshot_cache
from natlens.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "default-bridge-8080"



def _store(tmp_path: Path, home: Path) -> list[Path]:
    snap = tmp_path / "snap"
    shutil.copytree(FIXTURE, snap)
    snapshot_cache.load_cached(snap)
    snapshot_cache.save_pending()
    entries = sorted(home.glob("*.snapshot"))
    assert len(entries) == 1
    return entries


@pytest.mark.parametrize(("change", "why"), [
    ("owner", f"owned by uid {os.geteuid() + 4242} with mode 700 (needs uid {os.geteuid()}"),
    ("mode", f"owned by uid {os.geteuid()} with mode 755 (needs uid {os.geteuid()}"),
], ids=["owner", "mode"])
def test_clear_on_a_folder_not_used_says_why_and_keeps_its_entries(
        tmp_path: Path, home: Path, change: str, why: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    entries = _store(tmp_path, home)
    if change == "owner":
        os.chown(home, os.geteuid() + 4242, -1)
    else:
        home.chmod(0o755)
    assert main(["cache", "clear"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"natlens: error: {home}: the cache folder is not used because it is {why}, "
                   f"mode 700); natlens leaves it alone, remove it by hand: rm -r {home}\n")
    assert all(e.exists() for e in entries)


def test_clear_removes_entries_and_a_missing_folder_is_empty(
        tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == f"natlens: removed 0 cache entries from {home}\n"
    entries = _store(tmp_path, home)
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == f"natlens: removed 1 cache entry from {home}\n"
    assert not any(e.exists() for e in entries)


@pytest.mark.parametrize("page", ["docs/security.md", "docs/index.md", "docs/cli.md"])
def test_docs_say_how_big_the_cache_grows(page: str) -> None:
    text = " ".join((ROOT / page).read_text().split())
    assert f"at most {snapshot_cache.MAX_ENTRIES} entries" in text
    assert "--host-addr" in text
    assert "2.5 times" in text
