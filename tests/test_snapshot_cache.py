"""The snapshot cache (natlens.snapshot_cache, issue 13): a second load of the same inputs skips
parsing; any changed input byte or natlens version misses; entries that are corrupted, not
ours or readable by others are ignored with a warning and never unpickled; concurrent runs are
safe; ``--no-cache`` and ``natlens cache clear``."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cache_helpers import Parses

import natlens
from natlens import cache_pickle, snapshot_cache
from natlens.cli import main
from natlens.netfilter import Packet
from natlens.snapshot import SNAPSHOT_FILES, Snapshot

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "default-bridge-8080"
PACKET = Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.10", dport=8080)




def _load_and_store(path: Path) -> Snapshot:
    snap = snapshot_cache.load_cached(path)
    snap.simulator.trace(PACKET)  # prepare, so the entry holds the prepared rules
    snapshot_cache.save_pending()
    return snap


def _entries(home: Path) -> list[Path]:
    return sorted(home.glob("*.snapshot"))


def test_second_load_is_read_from_the_cache(home: Path, snap_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    first = _load_and_store(snap_dir)
    second = snapshot_cache.load_cached(snap_dir)
    assert parses.count == 1
    assert second._host is not None  # the host model came with it
    # the simulator does not: it is prepared lazily, chain by chain, as walks need them
    assert second._simulator is None
    assert second.simulator.trace(PACKET) == first.simulator.trace(PACKET)
    assert second.ruleset == first.ruleset
    assert second.ruleset6 == first.ruleset6
    assert second.inventory == first.inventory


def test_cache_dir_and_entries_are_private(home: Path, snap_dir: Path) -> None:
    _load_and_store(snap_dir)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    [entry] = _entries(home)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert entry.stat().st_uid == os.geteuid()
    assert not list(snap_dir.glob("*.snapshot")), "nothing is written into the snapshot"


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURE.iterdir()
                                        if p.name in SNAPSHOT_FILES.values()))
def test_any_changed_input_byte_misses(home: Path, snap_dir: Path, name: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    _load_and_store(snap_dir)
    data = (snap_dir / name).read_bytes()
    (snap_dir / name).write_bytes(data + (b" " if name.endswith(".json") else b"#\n"))
    snapshot_cache.load_cached(snap_dir)
    assert parses.count == 2


def test_a_new_file_in_the_folder_misses(home: Path, snap_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    _load_and_store(snap_dir)
    (snap_dir / "ip6tables-save.txt").write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    snap = snapshot_cache.load_cached(snap_dir)
    assert parses.count == 2
    assert snap.ruleset6.tables


def test_another_natlens_version_misses(home: Path, snap_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    _load_and_store(snap_dir)
    monkeypatch.setattr(natlens, "__version__", "99.0.0")
    snapshot_cache.load_cached(snap_dir)
    assert parses.count == 2


def test_other_options_miss(home: Path, snap_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    _load_and_store(snap_dir)
    snap = snapshot_cache.load_cached(snap_dir, addresses=["192.0.2.99"])
    assert parses.count == 2
    assert any("192.0.2.99" in note for note in snap.notes)


@pytest.mark.parametrize("garbage", [b"", b"not a cache entry", None],
                         ids=["empty", "garbage", "cut-short"])
def test_corrupted_entry_is_ignored_with_a_warning(home: Path, snap_dir: Path,
                                                   garbage: bytes | None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    first = _load_and_store(snap_dir)
    [entry] = _entries(home)
    data = entry.read_bytes()
    entry.write_bytes(data[:len(data) // 2] if garbage is None else garbage)
    with pytest.warns(snapshot_cache.CacheWarning, match="ignored"):
        again = snapshot_cache.load_cached(snap_dir)
    assert parses.count == 2
    assert again.ruleset == first.ruleset
    snapshot_cache.save_pending()  # the broken entry is replaced by a good one
    assert snapshot_cache.load_cached(snap_dir).ruleset == first.ruleset
    assert parses.count == 2


def test_entry_naming_other_code_is_never_run(home: Path, snap_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    _load_and_store(snap_dir)
    [entry] = _entries(home)
    marker = tmp_path / "pwned"
    header = entry.read_bytes().split(b"\n", 3)  # magic, key, info line (cache_list)
    payload = pickle.dumps(_Evil(str(marker)))
    entry.write_bytes(b"\n".join(header[:3]) + b"\n" + payload)
    with pytest.warns(snapshot_cache.CacheWarning, match="corrupted"):
        snapshot_cache.load_cached(snap_dir)
    assert not marker.exists()
    assert parses.count == 2


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("change", ["owner", "group-readable", "symlink"])
def test_entry_not_private_to_us_is_never_loaded(home: Path, snap_dir: Path, tmp_path: Path,
                                                 change: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    _load_and_store(snap_dir)
    [entry] = _entries(home)
    if change == "owner":
        os.chown(entry, os.geteuid() + 4242, -1)
    elif change == "group-readable":
        entry.chmod(0o640)
    else:
        real = tmp_path / "elsewhere.snapshot"
        entry.rename(real)
        entry.symlink_to(real)
    loads: list[object] = []
    monkeypatch.setattr(cache_pickle.Unpickler, "load", loads.append)
    with pytest.warns(snapshot_cache.CacheWarning, match="ignored"):
        snapshot_cache.load_cached(snap_dir)
    assert loads == [], "an untrusted entry was unpickled"
    assert parses.count == 2


@pytest.mark.parametrize("change", ["owner", "mode"])
def test_cache_dir_not_private_to_us_is_not_used(home: Path, snap_dir: Path, change: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    _load_and_store(snap_dir)
    if change == "owner":
        os.chown(home, os.geteuid() + 4242, -1)
    else:
        home.chmod(0o755)
    with pytest.warns(snapshot_cache.CacheWarning, match="not used"):
        snapshot_cache.load_cached(snap_dir)
    assert parses.count == 2


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "natlens", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def test_concurrent_runs(home: Path, snap_dir: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(home.parent)}
    args = ("trace", str(snap_dir), "--in", "eth0", "--src", "198.51.100.7", "--dst",
            "192.0.2.10", "--dport", "8080", "--format", "json")
    outputs = []
    for _ in range(2):  # cold (all write at once), then warm (all read at once)
        runs = [_cli(*args, env=env) for _ in range(4)]
        try:
            for run in runs:
                out, err = run.communicate(timeout=300)
                assert "warning" not in err, err
                assert "error" not in err, err
                outputs.append((run.returncode, out))
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.communicate()
    assert len(set(outputs)) == 1
    assert outputs[0][0] == 1
    assert '"verdict": "DROP"' in outputs[0][1]
    assert len(_entries(home)) == 1
    assert not list(home.glob(".tmp-*")), "a temporary file was left behind"


def test_cli_no_cache_and_cache_clear(home: Path, snap_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    base = ["parse", str(snap_dir), "--format", "json"]
    assert main([*base, "--no-cache"]) == 0
    assert _entries(home) == []
    assert main(base) == 0
    assert len(_entries(home)) == 1
    capsys.readouterr()
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == f"natlens: removed 1 cache entry from {home}\n"
    assert _entries(home) == []
    assert main(["cache", "dir"]) == 0
    assert capsys.readouterr().out == f"{home}\n"


def test_stdin_is_not_cached(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert snapshot_cache.key_for("-", ()) is None


def test_a_hit_warns_what_the_parse_warned(home: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "rules.txt"
    dump.write_text("*filter\n:INPUT ACCEPT [0:0]\n"
                    "-A INPUT -m comment --comment unquoted words -j ACCEPT\nCOMMIT\n")
    runs = []
    for _ in range(2):  # parse, then cache hit
        status = main(["parse", str(dump), "--lenient"])
        runs.append((status, capsys.readouterr()))
    assert len(_entries(home)) == 1
    assert runs[0] == runs[1]
    status, (_, err) = runs[0]
    assert status == 0
    assert err.startswith(f"natlens: warning: {dump}:3: ")
