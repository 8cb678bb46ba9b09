"""``iptables -L`` listings: real captures compared with iptables-save, the corpus, and errors.

``tests/data/listings/`` holds listings captured from a real kernel by ``capture.sh`` (both
backends, IPv4 and IPv6, ``-L -n``, ``-L -n -v``, ``-L -n -v -x --line-numbers``, ``-L -v``,
``-L``) next to the ``iptables-save -c`` of the same rules. Each listing is parsed and compared
with ``parse_save`` of the save file on everything the listing can tell.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlens import Family, ParseError, TableName, TargetKind, load_rules, parse_save
from natlens.model import Chain, Match, Rule, Ruleset, Table
from natlens.parse.listing import parse_listing

DATA = Path(__file__).parent / "data" / "listings"
CAPTURED = sorted(p for p in DATA.glob("*.txt") if not p.name.startswith("rules-"))


def _save_of(listing: Path) -> tuple[Ruleset, str]:
    """The parsed iptables-save capture that belongs to a captured listing, and its table."""
    backend, family, rest = listing.name.split("-", 2)
    table = rest.split(".", 1)[0]
    text = (DATA / f"{backend}-{family}.save").read_text()
    return parse_save(text, source=f"{backend}-{family}.save"), table


def _is_subsequence(part: list[Match], whole: list[Match]) -> bool:
    it = iter(whole)
    return all(any(m == w for w in it) for m in part)


def assert_rule_agrees(expected: Rule, got: Rule, *, counters: bool) -> None:
    """``got`` (from a listing) equals ``expected`` (from iptables-save) where it can tell."""
    __tracebackhide__ = True
    where = f"{got.origin.source}:{got.origin.line}: {got.origin.text.strip()}" \
        if got.origin else repr(got)
    for name in ("source", "destination", "protocol", "fragment", "goto"):
        if name not in got.unknown:
            assert getattr(got, name) == getattr(expected, name), f"{name} differs at {where}"
    for name in ("in_interface", "out_interface"):
        if name not in got.unknown:
            assert getattr(got, name) == getattr(expected, name), f"{name} differs at {where}"
    if counters and "counters" not in got.unknown:
        assert got.counters == expected.counters, f"counters differ at {where}"
    known = [m for m in got.matches if m.known]
    want = [m for m in expected.matches if m.known]
    if "matches" in got.unknown:
        assert any(not m.known for m in got.matches), where
        assert _is_subsequence(known, want), f"matches differ at {where}:\n{known}\n{want}"
    else:
        assert known == want, f"matches differ at {where}"
        assert not any(not m.known for m in expected.matches), f"unknown match lost at {where}"
    if "target_options" in got.unknown:
        assert got.target is not None, where
        assert expected.target is not None, where
        assert got.target.name == expected.target.name, where
    else:
        assert got.target == expected.target, f"target differs at {where}"


def assert_chains_agree(expected: Table, got: Table, *, counters: bool) -> None:
    """Every chain of ``got`` exists in ``expected`` with the same rules."""
    __tracebackhide__ = True
    for chain in got.chains:
        want: Chain = expected[chain.name]
        assert chain.builtin == want.builtin, chain.name
        assert chain.policy == want.policy, chain.name
        assert len(chain.rules) == len(want.rules), chain.name
        for want_rule, got_rule in zip(want.rules, chain.rules, strict=True):
            assert_rule_agrees(want_rule, got_rule, counters=counters)


# -- real captures -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CAPTURED, ids=[p.name for p in CAPTURED])
def test_captured_listing_matches_iptables_save(path: Path) -> None:
    save, table = _save_of(path)
    ruleset = parse_listing(path.read_text(), source=path.name)
    assert ruleset.format == "listing"
    assert [t.name.value for t in ruleset.tables] == [table]  # inferred, not given
    assert ruleset.family is (Family.IPV6 if "-v6-" in path.name else Family.IPV4)
    listed = ruleset.tables[0]
    expected = save[table]
    assert [c.name for c in listed.chains] == [c.name for c in expected.chains]
    exact = ".L-n-v-x-num." in path.name
    assert_chains_agree(expected, listed, counters=True)
    verbose = "-v" in path.name.split(".")[1]
    for rule in listed.rules:
        assert ("in_interface" in rule.unknown) is not verbose
        if exact:
            assert "counters" not in rule.unknown
    if exact:
        for chain in listed.chains:
            if chain.builtin:
                assert chain.counters == expected[chain.name].counters


def test_captured_listings_cover_both_backends_and_all_variants() -> None:
    names = {p.name for p in CAPTURED}
    for backend in ("nft", "legacy"):
        for variant in ("L-n", "L-n-v", "L-n-v-x-num", "L-v", "L"):
            assert f"{backend}-v4-nat.{variant}.txt" in names
            assert f"{backend}-v6-filter.{variant}.txt" in names


# What the captures may leave undecoded: hashlimit does not print its name, time and quota have
# no spec, and without -n owner prints user and group names of the capturing host.
UNDECODABLE = {
    "limit: up to 50/min burst 10 mode srcip",
    "TIME from 09:00:00 to 17:00:00 UTC",
    "quota: 1000000 bytes",
    "owner UID match cloudsdk",
    "owner UID match root owner GID match users",
}


def test_captured_listings_decode_everything_decodable() -> None:
    seen: set[str] = set()
    for path in CAPTURED:
        for rule in parse_listing(path.read_text()).tables[0].rules:
            assert not rule.unknown & {"source", "destination", "target_options"}, rule.origin
            seen.update(m.options[0].args[0] for m in rule.matches if not m.known)
    assert seen == UNDECODABLE


def _rule(ruleset: Ruleset, table: str, chain: str, index: int) -> Rule:
    return ruleset[table][chain].rules[index - 1]


def test_numeric_protocols_and_rounded_counters() -> None:
    ruleset = parse_listing((DATA / "nft-v4-filter.L-n-v.txt").read_text())
    rule = _rule(ruleset, "filter", "INPUT", 2)  # "1235K 1235M ACCEPT 0 -- * * ... ctstate"
    assert rule.protocol is None
    assert "counters" in rule.unknown
    assert rule.counters is not None
    assert rule.counters.packets == 1_235_000
    assert ruleset["filter"]["INPUT"].counters is not None
    assert any("rounded" in note for note in ruleset.notes)
    gre = _rule(ruleset, "filter", "INPUT", 30)
    assert gre.protocol is not None
    assert gre.protocol.name == "gre"
    not_tcp = _rule(ruleset, "filter", "INPUT", 27)
    assert not_tcp.protocol is not None
    assert not_tcp.protocol.negated


def test_without_v_interfaces_are_unknown_and_noted() -> None:
    ruleset = parse_listing((DATA / "legacy-v4-nat.L-n.txt").read_text())
    dnat = _rule(ruleset, "nat", "DOCKER", 3)
    assert dnat.in_interface is None
    assert {"in_interface", "out_interface"} <= dnat.unknown
    assert dnat.counters is None
    assert any("without -v" in note for note in ruleset.notes)


def test_names_resolved_only_when_certain() -> None:
    ruleset = parse_listing((DATA / "legacy-v4-nat.L.txt").read_text())
    lo = _rule(ruleset, "nat", "DOCKER", 4)  # "anywhere localhost tcp dpt:tproxy"
    assert lo.destination is not None
    assert lo.destination.network == ipaddress.ip_network("127.0.0.1/32")
    assert lo.option("--dport") is not None
    assert lo.option("--dport").args == ("8081",)  # type: ignore[union-attr]
    output = _rule(ruleset, "nat", "OUTPUT", 1)  # "!loopback/8"
    assert output.destination is not None
    assert output.destination.negated
    assert output.destination.network == ipaddress.ip_network("127.0.0.0/8")
    assert any("standard meaning" in note for note in ruleset.notes)
    owners = parse_listing((DATA / "legacy-v4-filter.L-v.txt").read_text())
    by_name = _rule(owners, "filter", "OUTPUT", 1)  # "owner UID match <user name>"
    assert "matches" in by_name.unknown
    assert by_name.matches[0].module == "?"
    assert by_name.matches[0].options[0].args[0].startswith("owner UID match ")


def test_goto_empty_target_and_notrack() -> None:
    filt = parse_listing((DATA / "legacy-v4-filter.L-n.txt").read_text())
    goto = _rule(filt, "filter", "DOCKER-FORWARD", 3)
    assert goto.goto
    assert goto.target is not None
    assert goto.target.kind is TargetKind.CHAIN
    no_target = _rule(filt, "filter", "INPUT", 4)  # recent --set without -j
    assert no_target.target is None
    assert no_target.match("recent") is not None
    raw = parse_listing((DATA / "nft-v4-raw.L-n-v.txt").read_text())
    notrack = _rule(raw, "raw", "OUTPUT", 1)
    assert notrack.target is not None
    assert notrack.target.name == "NOTRACK"


# -- small hand-written listings -------------------------------------------------------------------

SEED = """\
Chain PREROUTING (policy ACCEPT)
target     prot opt source               destination
DOCKER     all  --  0.0.0.0/0            0.0.0.0/0            ADDRTYPE match dst-type LOCAL

Chain OUTPUT (policy ACCEPT)
target     prot opt source               destination
DOCKER     all  --  0.0.0.0/0           !127.0.0.0/8          ADDRTYPE match dst-type LOCAL

Chain DOCKER (2 references)
target     prot opt source               destination
DNAT       tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:8080 to:172.17.0.4:80
"""

SEED_SAVE = """\
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.4:80
COMMIT
"""


def test_seed_example() -> None:
    ruleset = parse_listing(SEED, source="seed.txt")
    table = ruleset["nat"]
    dnat = table["DOCKER"].rules[0]
    assert dnat.target is not None
    assert dnat.target.get("--to-destination") is not None
    assert dnat.option("--dport").args == ("8080",)  # type: ignore[union-attr]
    assert_chains_agree(parse_save(SEED_SAVE)["nat"], table, counters=False)
    assert dnat.origin is not None
    assert dnat.origin.line == 11
    assert table["PREROUTING"].rules[0].target.kind is TargetKind.CHAIN  # type: ignore[union-attr]


def test_load_rules_detects_a_listing() -> None:
    ruleset = load_rules(SEED, source="seed.txt")
    assert ruleset.format == "listing"


def test_table_argument_and_separators() -> None:
    ruleset = parse_listing(SEED, table="nat", family="ipv4")
    assert ruleset.tables[0].name is TableName.NAT
    assert not any("inferred" in note for note in ruleset.notes)
    filt = "Chain INPUT (policy DROP)\ntarget     prot opt source               destination\n"
    two = f"# table nat\n{SEED}\n# table filter\n{filt}"
    both = parse_listing(two)
    assert [t.name for t in both.tables] == [TableName.NAT, TableName.FILTER]
    assert both["filter"]["INPUT"].policy == "DROP"


def test_legacy_warning_and_old_iptables_formats() -> None:
    text = """\
# Warning: iptables-legacy tables present, use iptables-legacy to see them
Chain OUTPUT (policy DROP 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
    0     0 ACCEPT     tcp  --  *      lo      0.0.0.0/0   127.0.0.1   \
tcp dpt:9050flags: 0x17/0x02 owner UID match 0
   19   988 ACCEPT     tcp  --  *      lo      0.0.0.0/0   127.0.0.1   \
tcpflags: 0x17/0x02 multiport dports 9050,9061 owner UID match 1000
"""
    ruleset = parse_listing(text)
    assert ruleset.legacy_tables_present
    assert ruleset.backend == "nf_tables"
    first, second = ruleset["filter"]["OUTPUT"].rules
    tcp = first.match("tcp")
    assert tcp is not None
    assert tcp.get("--dport").args == ("9050",)  # type: ignore[union-attr]
    assert tcp.get("--tcp-flags").args == ("FIN,SYN,RST,ACK", "SYN")  # type: ignore[union-attr]
    assert first.option("--uid-owner").args == ("0",)  # type: ignore[union-attr]
    assert second.match("tcp").get("--tcp-flags") is not None  # type: ignore[union-attr]
    assert second.option("--dports").args == ("9050,9061",)  # type: ignore[union-attr]
    assert not first.unknown
    assert not second.unknown


def test_undecodable_text_is_kept_and_marked() -> None:
    text = """\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0  0.0.0.0/0  \
TIME from 09:00:00 to 17:00:00 UTC
    0     0 FOO        0    --  *      *       0.0.0.0/0            0.0.0.0/0            foo bar
"""
    ruleset = parse_listing(text)
    time_rule, foo = ruleset["filter"]["INPUT"].rules
    assert time_rule.matches == (Match("?", time_rule.matches[0].options, known=False),)
    assert time_rule.matches[0].options[0].args == ("TIME from 09:00:00 to 17:00:00 UTC",)
    assert time_rule.unknown == {"matches"}
    assert foo.target is not None
    assert foo.target.kind is TargetKind.UNKNOWN
    assert {"matches", "target_options"} <= foo.unknown


@pytest.mark.parametrize(
    ("text", "line_no", "reason"),
    [
        ("ACCEPT all -- 0.0.0.0/0 0.0.0.0/0\n", 1, "before the first 'Chain' line"),
        ("Chain INPUT policy ACCEPT\n", 1, "bad chain line"),
        ("Chain INPUT (policy MAYBE)\n", 1, "bad policy"),
        ("Chain INPUT (policy ACCEPT)\ntarget prot opt source destination\nACCEPT all\n", 3,
         "columns"),
        ("Chain INPUT (policy ACCEPT)\ntarget prot opt source destination\n"
         "ACCEPT all xx 0.0.0.0/0 0.0.0.0/0\n", 3, "bad opt column"),
        ("Chain INPUT (policy ACCEPT 1X packets, 0 bytes)\n", 1, "bad counter"),
        ("Chain INPUT (policy ACCEPT)\nChain INPUT (policy ACCEPT)\n", 2, "listed twice"),
        ("Chain INPUT (policy ACCEPT)\ntarget prot opt source destination\n"
         "ACCEPT all -- 300.1.2.3 0.0.0.0/0\n", 3, "bad address"),
        ("Chain INPUT (policy ACCEPT)\nfoo bar\n", 2, "column header"),
        ("", 0, "not an iptables -L listing"),
    ],
)
def test_errors_name_the_line(text: str, line_no: int, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_listing(text, source="bad.txt")
    assert info.value.line_no == line_no
    assert reason in info.value.reason
    assert str(info.value).startswith("bad.txt")


def _docker_listing(count: int) -> str:
    """A DOCKER chain of ``count`` DNAT rows, each with its own addresses and counters."""
    line = "{n:<8} {n:>6} {b:>7} DNAT       6    --  !docker0 *       0.0.0.0/0            " \
           "10.{x}.{y}.1          tcp dpt:{p} to:172.17.{x}.{y}:80\n"
    rows = "".join(line.format(n=i + 1, b=i * 60, x=i // 250 % 250, y=i % 250, p=1024 + i % 60000)
                   for i in range(count))
    return "Chain DOCKER (1 references)\nnum      pkts      bytes target     prot opt in     " \
           "out     source               destination\n" + rows


def test_large_listing_parses_every_row() -> None:
    """5,000 rows (the time is measured by benchmarks/bench_worst.py, not here)."""
    ruleset = parse_listing(_docker_listing(5_000), table="nat")
    assert ruleset.rule_count == 5_000
    last = ruleset["nat"]["DOCKER"].rules[-1]
    assert last.target is not None
    assert last.target.options[0].value == "172.17.19.249:80"


# -- the corpus ------------------------------------------------------------------------------------


def _corpus_listings(corpus: Path) -> list[Path]:
    return sorted([
        *corpus.glob("docker/*/extracted/*L-v-line-numbers.txt"),
        *corpus.glob("real-world/permissive/*-Lnv*"),
        *corpus.glob("real-world/permissive/*-Lv"),
        *corpus.glob("iptables-t/listings/*"),
    ])


def test_every_corpus_listing_parses(corpus: Path) -> None:
    paths = _corpus_listings(corpus)
    assert len(paths) >= 60
    for path in paths:
        ruleset = parse_listing(path.read_text(), source=str(path.relative_to(corpus)))
        assert ruleset.rule_count >= 0
        assert ruleset.format == "listing"


def test_docker_listings_match_their_s_rules(corpus: Path) -> None:
    pairs = 0
    for path in corpus.glob("docker/*/extracted/*.L-v-line-numbers.txt"):
        rules = path.with_name(path.name.replace(".L-v-line-numbers.txt", ".S.rules"))
        table = path.name.split(".")[1].split("-")[0]
        if not rules.is_file():
            continue
        expected = parse_save(rules.read_text(), source=rules.name, table=table, strict=False)
        got = parse_listing(path.read_text(), source=path.name, table=table)
        assert_chains_agree(expected[table], got[table], counters=False)
        pairs += 1
    assert pairs >= 60


def test_docker_v29_published_port(corpus: Path) -> None:
    folder = corpus / "docker" / "iptablesdoc-docker-v29.7.2" / "extracted"
    path = folder / "usernet-portmap.nat.L-v-line-numbers.txt"
    ruleset = parse_listing(path.read_text())
    dnat = ruleset["nat"]["DOCKER"].rules[0]  # "tcp dpt:http-alt to:192.0.2.2:80"
    assert dnat.option("--dport").args == ("8080",)  # type: ignore[union-attr]
    assert dnat.target is not None
    assert dnat.target.get("--to-destination").args == ("192.0.2.2:80",)  # type: ignore[union-attr]
    assert dnat.in_interface is not None
    assert dnat.in_interface.negated
    assert not dnat.unknown
    lo = folder / "usernet-portmap-lo.nat.L-v-line-numbers.txt"
    bound = parse_listing(lo.read_text())["nat"]["DOCKER"].rules[0]
    assert bound.destination is not None
    assert str(bound.destination) == "127.0.0.1/32"


@pytest.mark.parametrize(
    ("listing", "save"),
    [
        ("configs_openlab__stettenstr__doku__iptables-Lnv.txt",
         "configs_openlab__stettenstr__doku__iptables-save.txt"),
        ("configs_tails_os__2015-aug-tails-i386-1.4.1-iptables-Lnv",
         "configs_tails_os__2015-aug-tails-i386-1.4.1-iptables-save"),
        ("configs_tails_os__2015-aug-tails-i386-1.4.1-iptables-Lv",
         "configs_tails_os__2015-aug-tails-i386-1.4.1-iptables-save"),
    ],
)
def test_real_world_listing_matches_its_save(corpus: Path, listing: str, save: str) -> None:
    folder = corpus / "real-world" / "permissive"
    got = parse_listing((folder / listing).read_text(), source=listing, table="filter")
    expected = parse_save((folder / save).read_text(), source=save, strict=False)
    assert_chains_agree(expected["filter"], got["filter"], counters=False)


def test_old_ip6tables_blank_opt_column_and_family() -> None:
    text = """\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
    0     0 ACCEPT     all      eth0   *       ::/0                 ::/0
    0     0 ACCEPT     tcp      *      *       2001:db8::/32        ::/0                 tcp dpt:22
"""
    ruleset = parse_listing(text)
    assert ruleset.family is Family.IPV6
    first, second = ruleset["filter"]["INPUT"].rules
    assert first.in_interface is not None
    assert first.in_interface.name == "eth0"
    assert str(second.source) == "2001:db8::/32"
    assert second.option("--dport").args == ("22",)  # type: ignore[union-attr]
    names_only = parse_listing("Chain INPUT (policy ACCEPT)\n"
                               "target     prot opt source               destination\n"
                               "ACCEPT     all  --  anywhere             anywhere\n")
    assert names_only.family is Family.IPV4
    assert any("address family" in note for note in names_only.notes)
    six = parse_listing(SEED.replace("0.0.0.0/0", "anywhere").replace("!127.0.0.0/8", "!::1")
                        .replace("to:172.17.0.4:80", "to:[fd00::4]:80"), family="ipv6")
    assert six.family is Family.IPV6
    with pytest.raises(ParseError, match="IPv4 address"):
        parse_listing(SEED, family="ipv6")


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_captured_listings_raise_only_parse_error(data: st.DataObject) -> None:
    lines = data.draw(st.sampled_from(CAPTURED)).read_text().splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        words = lines[i].split(" ")
        op = data.draw(st.sampled_from(("drop", "dup", "bang", "junk", "cut", "swap")))
        j = data.draw(st.integers(0, len(words) - 1))
        if op == "drop":
            del words[j]
        elif op == "dup":
            words.insert(j, words[j])
        elif op == "bang":
            words[j] = "!" + words[j]
        elif op == "junk":
            words[j] = data.draw(st.text(max_size=12))
        elif op == "cut":
            words = words[:j]
        else:
            k = data.draw(st.integers(0, len(words) - 1))
            words[j], words[k] = words[k], words[j]
        lines[i] = " ".join(words)
    text = "\n".join(lines)
    try:
        ruleset = parse_listing(text, source="mutant")
    except ParseError as exc:
        error = exc
    else:
        assert ruleset.format == "listing"
        return
    assert error.reason
    assert str(error).startswith("mutant")
