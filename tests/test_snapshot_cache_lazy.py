"""The snapshot cache reads chains lazily (natlens.cache_pickle, issue 13): a command answered
from the cache says byte for byte what it says after a parse, reads only the chains it uses,
survives a damaged chain, and does not rewrite its entry for nothing; ``prepare`` is lazy too."""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import shutil
from pathlib import Path

import pytest
from cache_helpers import Parses

import natlens
from natlens import cache_pickle, snapshot_cache, trace_hints
from natlens.cli import main
from natlens.model import Chain, Rule
from natlens.netfilter import Packet, Trace, prepare
from natlens.snapshot import Snapshot

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
KUBE_PACKET = Packet(in_interface="eth0", src="198.51.100.7", dst="10.96.0.10", dport=80)



def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _commands(path: Path) -> list[list[str]]:
    trace = ["trace", str(path), "--in", "eth0", "--src", "198.51.100.7", "--dst",
             "10.96.0.10" if path.name == "snap" else "192.0.2.10", "--dport", "80"]
    return [trace, [*trace, "--format", "json"], ["report", str(path)],
            ["report", str(path), "--format", "json"], ["exposure", str(path)]]


def _all_chains(snap: Snapshot) -> list[tuple[str, str, Chain]]:
    return [(role, table.name.value, chain) for role in cache_pickle.ROLES
            if (rs := getattr(snap, role)) is not None
            for table in rs.tables for chain in table.chains]


def _entry(home: Path) -> Path:
    [entry] = sorted(home.glob("*.snapshot"))
    return entry


@pytest.mark.parametrize("name", ["default-bridge-8080", "split-legacy-nft", "ipv6",
                                  "docker29-nftables", "planted-faults", "multi-interface-ufw",
                                  "kube"])
@pytest.mark.usefixtures("home")
def test_cached_snapshot_answers_byte_for_byte_like_a_parse(
        name: str, kube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = kube if name == "kube" else tmp_path / name
    if name != "kube":
        shutil.copytree(FIXTURES / name, path)
    parses = Parses(monkeypatch)
    for argv in _commands(path):
        fresh = _cli([*argv, "--no-cache"], capsys)
        for _ in range(2):  # the first run may store (what it derived), the second reads
            assert _cli(argv, capsys) == fresh, argv
    assert parses.count == len(_commands(path)) + 1  # each --no-cache run, one cached parse


def test_warm_trace_reads_only_the_chains_it_walks(home: Path, kube: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cache_pickle, "GROUP_RULES", 0)  # a blob per chain: exact counts
    argv = ["trace", str(kube), "--in", "eth0", "--src", "198.51.100.7", "--dst",
            "10.96.0.10", "--dport", "80"]
    first = _cli(argv, capsys)  # parse, trace, store (with the trace's hints)
    read = cache_pickle.STATS["chains"]
    assert _cli(argv, capsys) == first
    total = len(_all_chains(snapshot_cache.load_cached(kube)))
    snapshot_cache.forget_pending()
    assert 0 < cache_pickle.STATS["chains"] - read < total // 20

    snap = snapshot_cache.load_cached(kube)
    trace = snap.simulator.trace(KUBE_PACKET)
    assert trace_hints.interface_warning(snap, KUBE_PACKET) is None
    assert trace_hints.protocol_hint(snap, KUBE_PACKET) is None
    read_chains = {(t, c.name) for _, t, c in _all_chains(snap) if cache_pickle.is_loaded(c)}
    walked = {(s.table, s.chain) for steps in (trace.steps, *(b.steps for b in trace.branches))
              for s in steps if s.table is not None}
    builtin = {(t, c.name) for _, t, c in _all_chains(snap) if c.builtin}
    assert walked <= read_chains
    # besides the chains walked and the built-in ones (base chains of the pipeline), only the
    # first chains the conntrack check reads before it meets a conntrack rule
    assert len(read_chains - walked - builtin) <= 3, read_chains - walked - builtin
    assert len(read_chains) < total // 20


def test_lazy_chain_behaves_as_the_chain(home: Path, kube: Path) -> None:
    fresh = snapshot_cache.load_cached(kube, use_cache=False)
    snapshot_cache.load_cached(kube)
    snapshot_cache.save_pending()
    cached = snapshot_cache.load_cached(kube)
    snapshot_cache.forget_pending()
    lazy = cached.ruleset["nat"]["KUBE-SERVICES"]
    plain = fresh.ruleset["nat"]["KUBE-SERVICES"]
    assert isinstance(lazy, cache_pickle.LazyChain)
    assert isinstance(lazy, Chain)
    assert not cache_pickle.is_loaded(lazy)
    assert lazy.name == "KUBE-SERVICES"
    assert not cache_pickle.is_loaded(lazy)
    assert lazy == plain
    assert plain == lazy
    assert cache_pickle.is_loaded(lazy)
    assert hash(lazy) == hash(plain)
    assert repr(lazy) == repr(plain)
    assert lazy.origin == plain.origin
    assert lazy.counters == plain.counters
    assert len(lazy) == len(plain)
    assert list(lazy) == list(plain)
    assert all(isinstance(r, Rule) for r in lazy.rules)
    for other in (copy.copy(lazy), copy.deepcopy(lazy), pickle.loads(pickle.dumps(lazy))):
        assert type(other) is Chain
        assert other == plain
    changed = dataclasses.replace(lazy, policy="DROP")
    assert changed != plain
    assert changed == dataclasses.replace(plain, policy="DROP")
    unread = cached.ruleset["nat"]["KUBE-NODEPORTS"]
    assert not cache_pickle.is_loaded(unread)
    assert dataclasses.replace(unread, rules=()).rules == ()

    table, plain_table = cached.ruleset["filter"], fresh.ruleset["filter"]
    assert isinstance(table, cache_pickle.LazyTable)
    assert table.get("KUBE-FORWARD") == plain_table.get("KUBE-FORWARD")
    assert "KUBE-FORWARD" in table
    assert table.get("NO-SUCH-CHAIN") is None
    assert table == plain_table
    assert plain_table == table
    assert hash(table) == hash(plain_table)
    assert repr(table) == repr(plain_table)
    assert list(table.rules) == list(plain_table.rules)
    for other_table in (copy.copy(table), pickle.loads(pickle.dumps(table))):
        assert type(other_table) is type(plain_table)
        assert other_table == plain_table
    assert dataclasses.replace(table, chains=table.chains[:1]).chains == plain_table.chains[:1]
    assert cached.ruleset == fresh.ruleset


def _blob_area(entry: Path) -> tuple[bytearray, int]:
    """The entry's bytes and where its blobs start (natlens.cache_pickle.write_entry)."""
    data = bytearray(entry.read_bytes())
    key_end = data.index(b"\n", data.index(b"\n") + 1)  # magic line, key line
    header_end = data.index(b"\n", key_end + 1) + 1  # the info line (natlens.cache_list)
    layout_end = data.index(b"\n", header_end)
    _, size, _ = data[header_end:layout_end].split()
    return data, layout_end + 1 + int(size)


def test_damaged_chain_is_parsed_again_with_a_warning(home: Path, kube: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str],
                                                      ) -> None:
    parses = Parses(monkeypatch)
    argv = ["trace", str(kube), "--in", "eth0", "--src", "198.51.100.7", "--dst",
            "10.96.0.10", "--dport", "80", "--format", "json"]
    fresh = _cli(argv, capsys)
    entry = _entry(home)
    data, blobs = _blob_area(entry)
    for i in range(blobs, len(data), 97):  # damage every blob (a byte each 97)
        data[i] ^= 0xFF
    entry.write_bytes(bytes(data))
    status, out, err = _cli(argv, capsys)
    assert (status, out) == fresh[:2]
    assert "damaged" in err
    assert "parsed again" in err
    assert "Traceback" not in err
    assert err.count("\n") == 1
    assert parses.count == 2
    assert not entry.exists(), "the damaged entry is removed, not stored again"
    assert _cli(argv, capsys) == fresh  # parsed and stored again
    assert parses.count == 3
    assert _cli(argv, capsys) == fresh
    assert parses.count == 3


@pytest.mark.parametrize("where", ["skeleton", "layout", "blob-size"])
def test_damaged_entry_is_ignored_before_anything_is_read(where: str, home: Path, kube: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    parses = Parses(monkeypatch)
    first = snapshot_cache.load_cached(kube)
    snapshot_cache.save_pending()
    entry = _entry(home)
    data, blobs = _blob_area(entry)
    if where == "skeleton":
        data[blobs - 10] ^= 0xFF
    elif where == "layout":
        key_end = data.index(b"\n", data.index(b"\n") + 1)
        at = data.index(b"\n", key_end + 1) + 3  # in the layout line, after the info line
        data[at] = ord("x")
    else:
        data += b"\0"
    entry.write_bytes(bytes(data))
    with pytest.warns(snapshot_cache.CacheWarning, match="corrupted"):
        again = snapshot_cache.load_cached(kube)
    assert parses.count == 2
    assert again.ruleset == first.ruleset


def test_entry_of_a_previous_format_is_ignored(home: Path, kube: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    parses = Parses(monkeypatch)
    snapshot_cache.load_cached(kube)
    snapshot_cache.save_pending()
    entry = _entry(home)
    magic, rest = entry.read_bytes().split(b"\n", 1)
    assert magic == snapshot_cache._MAGIC.rstrip(b"\n")
    entry.write_bytes(b"natlens-snapshot-cache 1\n" + rest)
    with pytest.warns(snapshot_cache.CacheWarning, match="not a natlens cache entry"):
        snapshot_cache.load_cached(kube)
    assert parses.count == 2



def test_warm_exposure_without_rows_reads_few_chains(home: Path, kube: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A kube host's exposure map has no row; its note counting the nat table's DNAT rules is
    kept with the snapshot, so the warm command reads only the chains the simulator's set-up
    looks at (the localnet guard, POSTROUTING's masquerades), not every nat chain."""
    monkeypatch.setattr(cache_pickle, "GROUP_RULES", 0)  # a blob per chain: exact counts
    argv = ["exposure", str(kube)]
    first = _cli(argv, capsys)  # parse, count the DNAT rules, store the count
    assert "DNAT rules the map does not cover" in first[1]
    read = cache_pickle.STATS["chains"]
    assert _cli(argv, capsys) == first
    total = len(_all_chains(snapshot_cache.load_cached(kube)))
    snapshot_cache.forget_pending()
    assert cache_pickle.STATS["chains"] - read < total // 20

def test_warm_command_rewrites_its_entry_only_for_something_new(
        home: Path, kube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cli(["parse", str(kube)], capsys)  # stores the parsed snapshot, nothing derived
    stored = _entry(home).stat().st_ino
    snap = snapshot_cache.load_cached(kube)
    assert snap._host is None
    assert snap.host.interfaces is not None  # derived now: the entry is written again ...
    read = dict(cache_pickle.STATS)
    snapshot_cache.save_pending()
    assert read == cache_pickle.STATS  # ... without reading a chain
    assert _entry(home).stat().st_ino != stored
    again = snapshot_cache.load_cached(kube)
    snapshot_cache.forget_pending()
    assert again._host == snap._host
    assert again.ruleset == snapshot_cache.load_cached(kube, use_cache=False).ruleset

    trace = ["trace", str(kube), "--in", "eth0", "--src", "198.51.100.7", "--dst",
             "10.96.0.10", "--dport", "80"]
    expected = _cli([*trace, "--no-cache"], capsys)
    stored = _entry(home).stat().st_ino
    assert _cli(trace, capsys) == expected  # derives the trace hints: written again
    assert _entry(home).stat().st_ino != stored
    stored = _entry(home).stat().st_ino
    assert _cli(trace, capsys) == expected  # nothing new: not written
    assert _entry(home).stat().st_ino == stored


def test_prepare_reads_no_chain_until_asked(home: Path, kube: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_pickle, "GROUP_RULES", 0)  # a blob per chain: exact counts
    snapshot_cache.load_cached(kube)
    snapshot_cache.save_pending()
    snap = snapshot_cache.load_cached(kube)
    snapshot_cache.forget_pending()
    fresh = snapshot_cache.load_cached(kube, use_cache=False)
    chains = _all_chains(snap)
    prepared = prepare(snap.ruleset)
    nat = prepared.tables["nat"]
    names = [c.name for c in snap.ruleset["nat"].chains]
    assert list(nat) == names
    assert len(nat) == len(names)
    assert "KUBE-SERVICES" in nat
    assert not any(cache_pickle.is_loaded(c) for _, _, c in chains)
    services = nat["KUBE-SERVICES"]
    assert [cr.rule for cr in services.rules] == list(fresh.ruleset["nat"]["KUBE-SERVICES"])
    assert services.index is not None
    assert nat["KUBE-SERVICES"] is services
    assert nat.get("NO-SUCH-CHAIN") is None
    assert "NO-SUCH-CHAIN" not in nat
    what_if = prepared.without({("nat", "KUBE-SERVICES"): [1]})
    assert len(what_if.tables["nat"]["KUBE-SERVICES"].rules) == len(services.rules) - 1
    assert list(what_if.tables["nat"]) == names
    assert sum(cache_pickle.is_loaded(c) for _, _, c in chains) == 1


def test_trace_of_a_cached_snapshot_equals_a_parsed_one(home: Path, kube: Path) -> None:
    fresh = snapshot_cache.load_cached(kube, use_cache=False)
    snapshot_cache.load_cached(kube)
    snapshot_cache.save_pending()
    cached = snapshot_cache.load_cached(kube)
    snapshot_cache.forget_pending()
    packets = [KUBE_PACKET, Packet(in_interface="eth0", src="198.51.100.7",
                                   dst="10.96.0.40", dport=81, proto="udp"),
               Packet(local_origin=True, src="10.0.0.1", dst="10.96.0.11", dport=82)]
    for packet in packets:
        found: Trace = cached.simulator.trace(packet)
        assert found == fresh.simulator.trace(packet)
    assert os.path.isdir(cached.path)


def test_prepare_marks_what_a_paste_does_not_show() -> None:
    """``prepare`` of a ruleset that does not show everything (an ``-S`` paste cut by an nft
    error, a ``-L`` paste of one chain): the stand-ins and ``unseen`` reasons the walk forks on,
    whether the chain is prepared before or after the marks."""
    paste = natlens.load(ROOT / "docs" / "examples" / "paste" / "iptables-S-nft-error.txt")
    filter_ = prepare(paste.ruleset).tables["filter"]
    vpn = filter_["vpn-forward"]
    assert vpn.unseen is not None
    assert vpn.unseen.startswith("chain vpn-forward is shown in part (Error: meta sreg")
    assert filter_["FORWARD"].unseen is None
    nat = prepare(paste.ruleset).tables["nat"]
    assert [c.name for c in nat.values()] == ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]
    assert all(c.unseen == "table nat is not in the input" and c.builtin for c in nat.values())

    listing = natlens.load(ROOT / "docs" / "examples" / "paste" / "docker-user-L.txt")
    tables = prepare(listing.ruleset).tables
    shown = [name for name, chain in tables["filter"].items() if chain.unseen is None]
    assert shown == [c.name for c in listing.ruleset["filter"].chains]
    missing = {name: chain.unseen for name, chain in tables["filter"].items()
               if chain.unseen is not None}
    assert missing
    assert all(why == f"chain {name} of table filter is not in the input"
               for name, why in missing.items())
