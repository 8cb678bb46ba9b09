"""Command results kept with a cached snapshot (natlens.derived_results, natlens.cache_derived;
issue 13, "parse once, answer many"): a warm ``report``, ``exposure`` or ``graph`` prints byte
for byte what a cold one prints without reading a rule; a changed input byte or another option
set never reuses a stored result; a result the cache's loader would refuse, or too big, is not
stored; a damaged one is computed again and stored again."""

from __future__ import annotations

import pickle
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from cache_helpers import Parses

from natlens import cache_derived, cache_pickle, derived_results, snapshot_cache
from natlens.cli import main
from natlens.netfilter import Packet

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
HAS_DOT = shutil.which("dot") is not None
PACKET = Packet(in_interface="eth0", src="198.51.100.7", dst="10.96.0.10", dport=80)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _commands(path: Path) -> list[list[str]]:
    p = str(path)
    return [["report", p], ["report", p, "--format", "json"], ["report", p, "--format", "sarif"],
            ["exposure", p], ["exposure", p, "--format", "json"], ["graph", p],
            ["graph", p, "--format", "json"], ["graph", p, "--format", "mermaid"],
            *([["graph", p, "--format", "svg"]] if HAS_DOT else [])]


def _cold_store_warm(argv: list[str], capsys: pytest.CaptureFixture[str],
                     parses: Parses) -> tuple[int, str, str]:
    """The answer without the cache; checks that the command storing its result and the warm
    command answered from it (no parse; no chain read but for a ``--trace``) print the same,
    byte for byte. (Input
    refused, exit status 2, is parsed, and refused, each time.)"""
    fresh = _cli([*argv, "--no-cache"], capsys)
    assert _cli(argv, capsys) == fresh, argv  # parsed (or read) and stored
    count, chains = parses.count, cache_pickle.STATS["chains"]
    assert _cli(argv, capsys) == fresh, argv  # read from the stored result
    assert parses.count == count + (fresh[0] == 2), argv
    if "--trace" not in argv:  # a traced packet walks its chains, as a warm trace does
        assert cache_pickle.STATS["chains"] == chains, f"{argv}: the warm command read rules"
    return fresh


@pytest.mark.parametrize("name", ["default-bridge-8080", "planted-faults", "planted-rules",
                                  "split-legacy-nft", "ipv6", "docker29-nftables",
                                  "multi-interface-ufw", "firewalld-docker", "kube"])
@pytest.mark.usefixtures("home")
def test_warm_answer_is_the_cold_answer_without_reading_rules(
        name: str, kube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = kube if name == "kube" else tmp_path / name
    if name != "kube":
        shutil.copytree(FIXTURES / name, path)
    parses = Parses(monkeypatch)
    for argv in _commands(path):
        _cold_store_warm(argv, capsys, parses)


@pytest.mark.usefixtures("home")
def test_warm_answer_is_the_cold_answer_on_every_case_snapshot(
        cases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    folders = sorted({p.parent for p in cases.rglob("iptables-save.txt")})
    assert folders, f"no snapshot folder under {cases}"
    parses = Parses(monkeypatch)
    for n, folder in enumerate(folders):
        path = tmp_path / f"case-{n}"
        shutil.copytree(folder, path)
        # the JSON report holds the exposure map too
        for argv in (["report", str(path), "--format", "json"], ["graph", str(path)]):
            _cold_store_warm([*argv, "--lenient"], capsys, parses)


@pytest.mark.usefixtures("home")
def test_a_changed_input_byte_never_reuses_a_stored_result(
        snap_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argvs = [["report", str(snap_dir)], ["graph", str(snap_dir), "--format", "json"]]
    before = [_cli(argv, capsys) for argv in argvs for _ in range(2)]
    dump = snap_dir / "iptables-save.txt"
    text = dump.read_text()
    dump.write_text(text.replace(":DOCKER-USER - [0:0]\n",
                                 ":DOCKER-USER - [0:0]\n:LEFTOVER - [0:0]\n", 1))
    for argv, old in zip(argvs, before[::2], strict=True):
        fresh = _cli([*argv, "--no-cache"], capsys)
        assert fresh != old, argv  # the change shows (an unused chain)
        assert "LEFTOVER" in fresh[1]
        assert _cli(argv, capsys) == fresh
        assert _cli(argv, capsys) == fresh


GRAPH_OPTIONS = [
    [],
    ["--chain", "KUBE-SVC-*"],
    ["--chain", "KUBE-SEP-*"],
    ["--expand"],
    ["--table", "nat"],
    ["--table", "filter"],
    ["--trace", "--in", "eth0", "--src", "198.51.100.7", "--dst", "10.96.0.10", "--dport", "80"],
    ["--trace", "--in", "eth0", "--src", "198.51.100.7", "--dst", "10.96.0.11", "--dport", "80"],
]


@pytest.mark.usefixtures("home")
def test_another_option_set_never_reuses_a_stored_graph(
        kube: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    parses = Parses(monkeypatch)
    seen: dict[str, list[str]] = {}
    for fmt in ("dot", "json"):
        for options in GRAPH_OPTIONS:
            argv = ["graph", str(kube), "--format", fmt, *options]
            status, out, _ = _cold_store_warm(argv, capsys, parses)
            assert status == 0
            assert out not in seen, f"{options} draws what {seen.get(out)} draws"
            seen[out] = options
    # every option set of both rounds answered again from what it stored, none from another's
    for fmt in ("dot", "json"):
        for options in GRAPH_OPTIONS:
            argv = ["graph", str(kube), "--format", fmt, *options]
            assert seen[_cli(argv, capsys)[1]] == options
    # a report's exit status follows --fail-on, its findings are the stored ones
    for fail_on in ("high", "low"):
        fresh = _cli(["report", str(kube), "--fail-on", fail_on, "--no-cache"], capsys)
        assert _cli(["report", str(kube), "--fail-on", fail_on], capsys) == fresh


def test_graph_of_another_format_reuses_the_stored_graph(home: Path, kube: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          ) -> None:
    _cli(["graph", str(kube), "--format", "dot"], capsys)
    snap = snapshot_cache.load_cached(kube)
    snapshot_cache.forget_pending()
    graphs = [n for n in snap.derived_names() if n.startswith(derived_results.GRAPH)]
    texts = [n for n in snap.derived_names() if n.startswith(derived_results.TEXT)]
    assert len(graphs) == 1
    assert len(texts) == 1
    fresh = _cli(["graph", str(kube), "--format", "mermaid", "--no-cache"], capsys)
    read = cache_pickle.STATS["chains"]
    assert _cli(["graph", str(kube), "--format", "mermaid"], capsys) == fresh
    assert cache_pickle.STATS["chains"] == read  # drawn from the stored graph


def test_a_graph_too_big_to_keep_is_drawn_again(home: Path, kube: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(derived_results, "MAX_GRAPH_ELEMENTS", 5)
    argv = ["graph", str(kube), "--expand"]
    fresh = _cli([*argv, "--no-cache"], capsys)
    assert _cli(argv, capsys) == fresh
    stored = next(home.glob("*.snapshot")).stat().st_ino
    read = cache_pickle.STATS["chains"]
    assert _cli(argv, capsys) == fresh
    assert cache_pickle.STATS["chains"] > read  # built again from the rules
    assert next(home.glob("*.snapshot")).stat().st_ino == stored  # its name known: not rewritten


def _library_round(path: Path, results: dict[str, object]) -> None:
    snap = snapshot_cache.load_cached(path)
    for name, value in results.items():

        def compute(_: object, value: object = value) -> object:
            return value

        snap.derived(name, compute)
    snapshot_cache.save_pending()


def test_a_result_the_loader_refuses_or_too_big_is_not_stored(
        home: Path, snap_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_derived, "MAX_RESULT_BYTES", 1000)
    results = {"test.foreign/1": Fraction(1, 3), "test.big/1": "x" * 2000,
               "test.kept/1": ("kept", 1)}
    _library_round(snap_dir, results)
    [entry] = home.glob("*.snapshot")
    stored = entry.stat().st_ino
    assert b"fractions" not in entry.read_bytes()
    snap = snapshot_cache.load_cached(snap_dir)
    assert set(results) <= snap.derived_names()
    computed: list[str] = []

    def again(name: str) -> object:
        def compute(_: object) -> object:
            computed.append(name)
            return results[name]
        return snap.derived(name, compute)

    assert [again(name) for name in results] == list(results.values())
    assert computed == ["test.foreign/1", "test.big/1"]  # not stored: computed again
    snapshot_cache.save_pending()
    assert entry.stat().st_ino == stored  # known names: the entry is not written again


def test_a_big_result_is_stored_compressed(home: Path, snap_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_derived, "COMPRESS_BYTES", 100)
    text = "natlens-test-compressed " * 1000
    _library_round(snap_dir, {"test.big/1": text, "test.small/1": "natlens-test-plain"})
    [entry] = home.glob("*.snapshot")
    data = entry.read_bytes()
    assert b"natlens-test-compressed " * 2 not in data
    assert b"natlens-test-plain" in data
    snap = snapshot_cache.load_cached(snap_dir)
    snapshot_cache.forget_pending()
    assert snap.derived("test.big/1", lambda _: "computed") == text
    assert snap.derived("test.small/1", lambda _: "computed") == "natlens-test-plain"


def test_a_damaged_result_is_computed_again_and_stored_again(
        home: Path, snap_dir: Path) -> None:
    marker = "natlens-test-marker " * 20
    _library_round(snap_dir, {"test.marked/1": marker})
    [entry] = home.glob("*.snapshot")
    data = bytearray(entry.read_bytes())
    at = data.index(marker.encode())
    data[at + 5] ^= 0xFF
    entry.write_bytes(bytes(data))
    stored = entry.stat().st_ino
    snap = snapshot_cache.load_cached(snap_dir)
    computed: list[str] = []

    def compute(_: object) -> str:
        computed.append("x")
        return marker

    assert snap.derived("test.marked/1", compute) == marker
    assert computed == ["x"]
    assert snap.ruleset == snapshot_cache.load_cached(snap_dir, use_cache=False).ruleset
    snapshot_cache.save_pending()  # stored again, whole
    assert entry.stat().st_ino != stored
    again = snapshot_cache.load_cached(snap_dir)
    snapshot_cache.forget_pending()
    assert again.derived("test.marked/1", lambda _: "computed") == marker


def test_results_are_read_only_when_asked_for(home: Path, kube: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _cli(["report", str(kube)], capsys)
    _cli(["graph", str(kube)], capsys)
    trace = ["trace", str(kube), "--in", "eth0", "--src", "198.51.100.7", "--dst",
             "10.96.0.10", "--dport", "80"]
    _cli(trace, capsys)
    snap = snapshot_cache.load_cached(kube)
    derived = snap._derived
    assert isinstance(derived, cache_derived.StoredResults)
    names = set(derived)
    assert {derived_results.AUDIT, derived_results.EXPOSURE} <= names
    assert not any(derived.is_read(name) for name in names)
    snap.simulator.trace(PACKET)  # a warm trace reads none of them
    assert not any(derived.is_read(name) for name in names)
    assert derived_results.audit_findings(snap) == []
    assert derived.is_read(derived_results.AUDIT)
    # copied or pickled outside the cache: a plain dict of the results
    copy = pickle.loads(pickle.dumps(snap))
    assert type(copy._derived) is dict
    assert copy._derived[derived_results.AUDIT] == ()
    assert set(copy._derived) == names
    snapshot_cache.forget_pending()
