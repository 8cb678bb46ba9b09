"""A match or target is refused as a whole where iptables refuses it (natlens.parse.checks):
an option given twice, options that exclude each other, a missing mandatory option, an option
that cannot be negated, the statistic module's nth/random rules; and a module or target name
that is an option word (``-m -j ACCEPT``). Numbers and probabilities are read as C's
``strtoul``/``strtod`` read them (``--every 010`` is 8, ``--probability 0x1p-1`` is 0.5).

Every case is checked against the real ``iptables-restore --test`` (nf_tables and legacy
backends) in a namespace of its own (``kernel`` marker), so the expectations cannot drift from
the tool; the constraint tables themselves are turned into cases (``_table_cases``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from netns_helpers import namespaces, needs_root

from natlens import ParseError, parse_save, to_save
from natlens.parse import save as save_module
from natlens.parse.checks import MATCH_CHECKS, TARGET_CHECKS, ModuleChecks
from natlens.parse.modules import MATCHES, TARGETS

CHAINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"),
          "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
          "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")}


def dump(rule: str, table: str = "filter", chain: str = "INPUT") -> str:
    """A one-rule iptables-save text: the rule is on line 2 + len(chains)."""
    head = "".join(f":{c} ACCEPT [0:0]\n" for c in CHAINS[table])
    return f"*{table}\n{head}-A {chain} {rule}\nCOMMIT\n"


# (rule, a word of the reason) for the filter table's INPUT chain: refused by iptables 1.8.9
REFUSED = [
    # -m statistic (libxt_statistic.c)
    ("-m statistic --mode nth --every 0 --packet 0 -j DROP", "--every 0"),
    ("-m statistic --mode nth --every 3 -j DROP", "also requires"),
    ("-m statistic --mode nth --packet 1 -j DROP", "--packet"),
    ("-m statistic --mode nth --every 3 --packet 3 -j DROP", "below --every 3"),
    ("-m statistic --mode nth --every 3 --packet 4 -j DROP", "below --every 3"),
    ("-m statistic --mode nth --every 0x3 --packet 03 -j DROP", "below --every 3"),
    ("-m statistic --mode nth -j DROP", "nth mode"),
    ("-m statistic --mode random -j DROP", "random mode"),
    ("-m statistic -j DROP", "random mode"),
    ("-m statistic --every 3 --packet 0 -j DROP", "random mode"),
    ("-m statistic --probability 0.5 -j DROP", '"--mode" must be specified'),
    ("-m statistic --mode foo -j DROP", "bad mode"),
    ("-m statistic --mode NTH --every 3 --packet 0 -j DROP", "bad mode"),
    ("-m statistic --mode random --probability 0.5 --every 3 -j DROP", "together"),
    ("-m statistic --mode random --probability 0.5 --packet 0 -j DROP", "together"),
    ("-m statistic --mode nth --every 3 --packet 0 --probability 0.5 -j DROP", "together"),
    ("-m statistic --mode random --mode random --probability 0.5 -j DROP", "only be used once"),
    ("-m statistic --mode random --probability 0.5 --probability 0.3 -j DROP", "once"),
    ("-m statistic ! --mode random --probability 0.5 -j DROP", "cannot be inverted"),
    ("-m statistic --mode nth --every 3 ! --packet 0 -j DROP", "cannot be inverted"),
    ("-m statistic --mode random --probability 1.0001 -j DROP", "1.0001"),
    ("-m statistic --mode random --probability -0.1 -j DROP", "-0.1"),
    ("-m statistic --mode random --probability inf -j DROP", "inf"),
    ("-m statistic --mode random --probability 1e999 -j DROP", "1e999"),
    ("-m statistic --mode random --probability 1_0 -j DROP", "1_0"),
    ("-m statistic --mode random --probability 0.5x -j DROP", "0.5x"),
    ('-m statistic --mode random --probability "0.5 " -j DROP', "0.5"),
    ("-m statistic --mode nth --every 4294967296 --packet 0 -j DROP", "4294967296"),
    ("-m statistic --mode nth --every 3 --packet -1 -j DROP", "-1"),
    ("-m statistic --mode nth --every 0o10 --packet 0 -j DROP", "0o10"),
    ("-m statistic --mode nth --every 08 --packet 0 -j DROP", "08"),
    ("-m statistic --mode nth --every 1_0 --packet 0 -j DROP", "1_0"),
    # a module or target name that is an option word
    ("-m -j ACCEPT", "'-j'"),
    ("-m --dport 80 -j ACCEPT", "'--dport'"),
    ("-m ! tcp -j ACCEPT", "'!'"),
    ("-p tcp -m -tcp -j ACCEPT", "'-tcp'"),
    ("-m", "requires an argument"),
    ("-j", "requires an argument"),
    # an option given twice (no known module's option is XTOPT_MULTI)
    ("-p tcp --dport 80 --dport 81 -j ACCEPT", "once"),
    ("-p tcp --dport 80 --destination-port 81 -j ACCEPT", "once"),
    ("-p tcp -m tcp --sport 1 -m comment --comment x --sport 2 -j ACCEPT", "once"),
    ("-m comment --comment a --comment b -j ACCEPT", "once"),
    ("-m conntrack --ctstate NEW --ctstate NEW -j ACCEPT", "once"),
    ("-j LOG --log-prefix a --log-prefix b", "once"),
    ("-j LOG --log-uid --log-uid", "once"),
    ("-j REJECT --reject-with icmp-port-unreachable --reject-with icmp-port-unreachable",
     "once"),
    ("-j MARK --set-xmark 1 --set-xmark 2", "once"),
    ("-m comment ! --comment a -j ACCEPT", "cannot be inverted"),
    ("-m limit ! --limit 5/sec -j ACCEPT", "cannot be inverted"),
    ("-m owner --uid-owner 0 --suppl-groups -j ACCEPT", "also requires"),
]

ACCEPTED = [
    "-m statistic --mode nth --every 3 --packet 2 -j DROP",
    "-m statistic --mode nth --every 1 --packet 0 -j DROP",
    "-m statistic --packet 0 --every 3 --mode nth -j DROP",
    "-m statistic --mode nth ! --every 3 --packet 0 -j DROP",
    "-m statistic --mode nth --every 010 --packet 0x2 -j DROP",
    "-m statistic --mode nth --every +3 --packet 0 -j DROP",
    "-m statistic --mode random --probability 0 -j DROP",
    "-m statistic --mode random --probability 1 -j DROP",
    "-m statistic --mode random ! --probability 0.5 -j DROP",
    "-m statistic --mode random --probability .5 -j DROP",
    "-m statistic --mode random --probability +0.5 -j DROP",
    "-m statistic --mode random --probability 1e-3 -j DROP",
    "-m statistic --mode random --probability 1e-999 -j DROP",
    "-m statistic --mode random --probability 0x1p-1 -j DROP",
    "-m statistic --mode random --probability nan -j DROP",
    '-m statistic --mode random --probability "  0.25" -j DROP',
    "-m statistic --mode nth --every 3 --packet 0 -m statistic --mode random "
    "--probability 0.5 -j DROP",
    "-p tcp -m tcp --dport 80 -m tcp --dport 81 -j ACCEPT",
    "-m conntrack --ctstate NEW --ctstatus NONE -j ACCEPT",
    "-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400 --clamp-mss-to-pmtu",
    "-m limit -j ACCEPT",
    "-j LOG",
    "-j REJECT",
    "-m esp -j ACCEPT",
    "-j CT",
]

# (table, chain, rule, a word of the reason)
NAT_REFUSED = [
    ("nat", "PREROUTING", "-p tcp -j DNAT", '"--to-destination" must be specified'),
    ("nat", "PREROUTING", "-j DNAT --random", '"--to-destination" must be specified'),
    ("nat", "OUTPUT", "-j DNAT", '"--to-destination" must be specified'),
    ("nat", "POSTROUTING", "-j SNAT", '"--to-source" must be specified'),
    ("nat", "POSTROUTING", "-j SNAT --persistent", '"--to-source" must be specified'),
    ("nat", "PREROUTING", "-j NETMAP", '"--to" must be specified'),
    ("nat", "PREROUTING", "-j DNAT --to-destination 10.0.0.1 --to-destination 10.0.0.2",
     "once"),
    ("nat", "POSTROUTING", "-j MASQUERADE --random --random", "once"),
]
NAT_ACCEPTED = [
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 10.0.0.1:80"),
    ("nat", "POSTROUTING", "-j SNAT --to-source 10.0.0.1"),
    ("nat", "POSTROUTING", "-j MASQUERADE"),
    ("nat", "PREROUTING", "-j REDIRECT"),
]


# -- cases made from the constraint tables ------------------------------------------------------

# A valid argument for each option the tables name ("" for an option without argument), and
# what a rule with the module needs before it (the protocol of a protocol match).
SAMPLES: dict[str, dict[str, str]] = {
    "tcp": {"--syn": "", "--tcp-flags": "SYN SYN"},
    "icmp": {"--icmp-type": "8"},
    "multiport": {"--sports": "1", "--dports": "2", "--ports": "3"},
    "addrtype": {"--src-type": "LOCAL", "--dst-type": "LOCAL"},
    "conntrack": {"--ctstate": "NEW", "--ctdir": "ORIGINAL"},
    "state": {"--state": "NEW"},
    "comment": {"--comment": "x"},
    "mark": {"--mark": "1"},
    "connmark": {"--mark": "1"},
    "iprange": {"--src-range": "10.0.0.1-10.0.0.2", "--dst-range": "10.0.0.1-10.0.0.2"},
    "physdev": {"--physdev-in": "eth0", "--physdev-is-in": ""},
    "limit": {"--limit": "5/sec", "--limit-burst": "5"},
    "owner": {"--uid-owner": "0", "--gid-owner": "0", "--suppl-groups": ""},
    "pkttype": {"--pkt-type": "host"},
    "recent": {"--set": "", "--rcheck": "", "--update": "", "--remove": "", "--rttl": "",
               "--reap": "", "--seconds": "5"},
    "mac": {"--mac-source": "00:00:00:00:00:01"},
    "hashlimit": {"--hashlimit-upto": "5", "--hashlimit-above": "5", "--hashlimit-name": "a"},
    "string": {"--string": "a", "--hex-string": "|61|", "--algo": "bm"},
    "ttl": {"--ttl-eq": "1", "--ttl-gt": "1", "--ttl-lt": "9"},
    "hl": {"--hl-eq": "1", "--hl-gt": "1", "--hl-lt": "9"},
    "length": {"--length": "10"},
    "tos": {"--tos": "0x10"},
    "dscp": {"--dscp": "1", "--dscp-class": "CS1"},
    "helper": {"--helper": "ftp"},
    "connlimit": {"--connlimit-upto": "1", "--connlimit-above": "1"},
    "devgroup": {"--src-group": "1", "--dst-group": "2"},
    "statistic": {"--mode": "nth", "--every": "2", "--packet": "0", "--probability": "0.5"},
    "DNAT": {"--to-destination": "10.0.0.1"},
    "SNAT": {"--to-source": "10.0.0.1"},
    "NETMAP": {"--to": "10.0.0.0/24"},
    "MARK": {"--set-xmark": "1", "--set-mark": "1", "--and-mark": "1", "--or-mark": "1",
             "--xor-mark": "1"},
    "CONNMARK": {"--set-xmark": "1", "--set-mark": "1", "--and-mark": "1", "--or-mark": "1",
                 "--xor-mark": "1", "--save-mark": "", "--restore-mark": ""},
    "TCPMSS": {"--set-mss": "1400", "--clamp-mss-to-pmtu": ""},
    "CLASSIFY": {"--set-class": "1:1"},
    "DSCP": {"--set-dscp": "1", "--set-dscp-class": "CS1"},
    "TOS": {"--set-tos": "1", "--and-tos": "1", "--or-tos": "1", "--xor-tos": "1"},
    "TTL": {"--ttl-set": "1", "--ttl-dec": "1", "--ttl-inc": "1"},
    "HL": {"--hl-set": "1", "--hl-dec": "1", "--hl-inc": "1"},
    "AUDIT": {"--type": "accept"},
    "CHECKSUM": {"--checksum-fill": ""},
    "NFQUEUE": {"--queue-num": "1", "--queue-balance": "1:2"},
    "REJECT": {"--reject-with": "icmp-host-prohibited"},
}
BEFORE = {"tcp": "-p tcp", "icmp": "-p icmp", "multiport": "-p tcp"}
WHERE = {"DNAT": ("nat", "PREROUTING"), "SNAT": ("nat", "POSTROUTING"),
         "NETMAP": ("nat", "PREROUTING"), "owner": ("filter", "OUTPUT")}
IPV6_ONLY = frozenset({"hl", "HL"})
NEEDS_IPSET = frozenset({"set", "SET"})
"""Modules iptables checks against the kernel's ipsets even with --test (not here)."""


def _words(module: str, options: list[str]) -> str:
    return " ".join(f"{o} {SAMPLES[module][o]}".rstrip() for o in options)


def _rule(module: str, target: bool, options: list[str]) -> str:
    if target:
        return f"{BEFORE.get(module, '')} -j {module} {_words(module, options)}".strip()
    return f"{BEFORE.get(module, '')} -m {module} {_words(module, options)} -j ACCEPT".strip()


def _base(checks: ModuleChecks) -> list[str]:
    """Options satisfying every need: the first of each group, with what it also needs."""
    chosen: list[str] = []
    for group in checks.need:
        if not set(group) & set(chosen):
            chosen.append(group[0])
    for option, needed in checks.also:
        if option in chosen and needed not in chosen:
            chosen.append(needed)
    return chosen


def _table_cases() -> Iterator[tuple[str, str, bool]]:
    """(module, rule, refused) for every constraint of the tables: a valid base rule, then
    one rule per group missing, per pair excluded, per option repeated."""
    for target, table in ((False, MATCH_CHECKS), (True, TARGET_CHECKS)):
        for module, checks in table.items():
            if module in NEEDS_IPSET:
                continue
            base = _base(checks)
            if module == "statistic":  # its final check wants more than the flags say
                base = ["--mode", "--every", "--packet"]
            if not base:
                base = [next(iter(SAMPLES[module]))]
            yield module, _rule(module, target, base), False
            for group in checks.need:
                rest = [o for o in base if o not in group]
                rest = [o for o in rest if not any(o == a and n in group
                                                   for a, n in checks.also)]
                yield module, _rule(module, target, rest), True
            for group in checks.excl:
                first, second = group[0], group[1]
                kept = [o for o in base if o not in group]
                yield module, _rule(module, target, [*kept, first, second]), True
            yield module, _rule(module, target, [*base, base[0]]), True


TABLE_CASES = list(_table_cases())


def _family_text(module: str, rule: str) -> str:
    table, chain = WHERE.get(module, ("filter", "INPUT"))
    text = dump(rule, table, chain)
    return f"# Generated by ip6tables-save v1.8.9\n{text}" if module in IPV6_ONLY else text


def _natlens_refuses(text: str) -> bool:
    try:
        parse_save(text, source="rules.txt")
    except ParseError:
        return True
    return False


@pytest.mark.parametrize(("rule", "word"), REFUSED, ids=[r for r, _ in REFUSED])
def test_refused_with_a_reason_at_the_line(rule: str, word: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_save(dump(rule), source="rules.txt")
    assert info.value.line_no == 5
    assert word in info.value.reason
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("rule", "word"), REFUSED, ids=[r for r, _ in REFUSED])
def test_fast_path_refuses_as_the_full_parser(rule: str, word: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules in iptables-save's shape take the fast path (natlens.parse.fastrule): it must
    not let through what the full parser refuses, and the error is the same."""
    with pytest.raises(ParseError) as fast:
        parse_save(dump(rule))
    monkeypatch.setattr(save_module, "parse_line_fast", lambda *a, **k: None)
    with pytest.raises(ParseError) as full:
        parse_save(dump(rule))
    assert str(fast.value) == str(full.value)


def test_target_name_is_no_option_word() -> None:
    """iptables-legacy-restore refuses ``-j --foo`` when reading it, iptables-nft-restore when
    committing it (no chain '--foo'): not a case for ``--test``."""
    with pytest.raises(ParseError, match="bad target name '--foo'"):
        parse_save(dump("-j --foo"))


@pytest.mark.parametrize(("table", "chain", "rule", "word"), NAT_REFUSED,
                         ids=[r for _, _, r, _ in NAT_REFUSED])
def test_nat_target_refused(table: str, chain: str, rule: str, word: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_save(dump(rule, table, chain), source="rules.txt")
    assert info.value.line_no == 6
    assert word in info.value.reason


@pytest.mark.parametrize("rule", ACCEPTED)
def test_accepted(rule: str) -> None:
    assert parse_save(dump(rule))["filter"]["INPUT"].rules


@pytest.mark.parametrize(("table", "chain", "rule"), NAT_ACCEPTED,
                         ids=[r for _, _, r in NAT_ACCEPTED])
def test_nat_target_accepted(table: str, chain: str, rule: str) -> None:
    assert parse_save(dump(rule, table, chain))[table][chain].rules


@pytest.mark.parametrize(("module", "rule", "refused"), TABLE_CASES,
                         ids=[f"{m}: {r}" for m, r, _ in TABLE_CASES])
def test_constraint_tables(module: str, rule: str, refused: bool) -> None:
    assert _natlens_refuses(_family_text(module, rule)) is refused


def test_tables_name_only_options_the_modules_have() -> None:
    for checks_table, specs in ((MATCH_CHECKS, MATCHES), (TARGET_CHECKS, TARGETS)):
        for module, checks in checks_table.items():
            names = set(specs[module].by_name)
            named = {o for g in (*checks.need, *checks.excl, *checks.also) for o in g}
            assert named | checks.fixed <= names, module


@pytest.mark.parametrize(("option", "point"), [
    ("-m statistic --mode nth --every 3 --packet 3 -j DROP", "--packet 3"),
    ("-p tcp --dport 80 --dport 81 -j ACCEPT", "--dport 81"),
    ("-m statistic --mode random --probability 0.5 --every 3 -j DROP", "--every 3"),
    ("-m -j ACCEPT", "-j ACCEPT"),
])
def test_error_points_at_the_option(option: str, point: str) -> None:
    text = dump(option)
    with pytest.raises(ParseError) as info:
        parse_save(text)
    line = text.splitlines()[4]
    assert line[info.value.column - 1:].startswith(point)


@pytest.mark.parametrize(("written", "saved"), [
    ("--probability 0x1p-1", "--probability 0.50000000000"),
    ("--probability nan", "--probability 0.00000000000"),
    ('--probability "  0.25"', "--probability 0.25000000000"),
    ("--probability 0.5", "--probability 0.50000000000"),
    ("--probability 0.1", "--probability 0.10000000009"),
])
def test_probability_spellings_read_as_iptables_keeps_them(written: str, saved: str) -> None:
    """Every spelling is given back as iptables-save prints the value the kernel keeps
    (``lround(0x80000000 * p)`` printed ``%.11f``; tests/test_kernel_save_form.py checks it
    against iptables-save)."""
    text = to_save(parse_save(dump(f"-m statistic --mode random {written} -j DROP")))
    assert f"-m statistic --mode random {saved} -j DROP" in text


def test_numbers_read_as_strtoul() -> None:
    text = to_save(parse_save(dump("-m statistic --mode nth --every 010 --packet 0x2 -j DROP")))
    assert "--every 8 --packet 2" in text


# -- the real iptables-restore ------------------------------------------------------------------

@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    needs_root("iptables-legacy-restore", "iptables")
    with namespaces("nlchk-") as names:
        yield names[0]


def _iptables_refuses(ns: str, text: str, ipv6: bool = False) -> bool:
    """Whether both backends' ``restore --test`` refuse ``text`` (they must agree)."""
    tool = "ip6tables" if ipv6 else "iptables"
    codes = [subprocess.run(["ip", "netns", "exec", ns, f"{tool}-{backend}-restore", "--test"],
                            input=text, text=True, capture_output=True, check=False,
                            timeout=30).returncode
             for backend in ("nft", "legacy")]
    assert (codes[0] == 0) == (codes[1] == 0), f"backends disagree: {codes}"
    return codes[0] != 0


KERNEL_CASES = (
    [(dump(rule), True) for rule, _ in REFUSED]
    + [(dump(rule), False) for rule in ACCEPTED]
    + [(dump(rule, table, chain), True) for table, chain, rule, _ in NAT_REFUSED]
    + [(dump(rule, table, chain), False) for table, chain, rule in NAT_ACCEPTED]
    + [(_family_text(module, rule), refused) for module, rule, refused in TABLE_CASES]
)


@pytest.mark.kernel
@pytest.mark.parametrize(("text", "refused"), KERNEL_CASES,
                         ids=[t.splitlines()[-2] for t, _ in KERNEL_CASES])
def test_iptables_draws_the_same_line(text: str, refused: bool, netns: str) -> None:
    assert _natlens_refuses(text) is refused
    assert _iptables_refuses(netns, text, ipv6=text.startswith("# Generated by ip6")) is refused
