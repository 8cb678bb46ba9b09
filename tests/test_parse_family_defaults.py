"""What iptables-save prints per address family (natlens.parse.family_defaults) is added to
rules read on both of the save parser's paths, once per distinct part, and to every rule that
needs it: the parser rewrites only the parts it recorded while reading (issue 13), so the
corpus and fault cases check that no rule is left for a full pass to find."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from natlens import ParseError, ParseWarning, parse_save, to_save
from natlens.model import Chain, Option, Rule, Table, TableName, Target, TargetKind
from natlens.parse.family_defaults import family_parts, with_family_defaults

FILTER = "*filter\n:INPUT ACCEPT [0:0]\n:FOO - [0:0]\n{rules}\nCOMMIT\n"
MANGLE = "*mangle\n:PREROUTING ACCEPT [0:0]\n:FOO - [0:0]\n{rules}\nCOMMIT\n"

# (template, rule as written without the family's default, as iptables-save prints it for
# IPv4, for IPv6): extensions/libxt_recent.c, libxt_connlimit.c, libxt_hashlimit.c,
# libxt_TPROXY.c, libipt_REJECT.c / libip6t_REJECT.c (iptables 1.8.9)
CASES = [
    (FILTER, "-p tcp -j REJECT",
     "-p tcp -j REJECT --reject-with icmp-port-unreachable",
     "-p tcp -j REJECT --reject-with icmp6-port-unreachable"),
    (FILTER, "-j REJECT --reject-with port-unreach",
     "-j REJECT --reject-with icmp-port-unreachable",
     "-j REJECT --reject-with icmp6-port-unreachable"),
    (FILTER, "-m recent --set --name x",
     "-m recent --set --name x --mask 255.255.255.255 --rsource",
     "-m recent --set --name x --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource"),
    (FILTER, "-p tcp -m connlimit --connlimit-above 2",
     "-p tcp -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr",
     "-p tcp -m connlimit --connlimit-above 2 --connlimit-mask 128 --connlimit-saddr"),
    (FILTER, "-m hashlimit --hashlimit-upto 1/sec --hashlimit-srcmask 32 --hashlimit-name x",
     "-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name x",
     "-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name x "
     "--hashlimit-srcmask 32"),
    (MANGLE, "-p tcp -j TPROXY --on-port 1",
     "-p tcp -j TPROXY --on-port 1 --on-ip 0.0.0.0 --tproxy-mark 0x0/0x0",
     "-p tcp -j TPROXY --on-port 1 --on-ip :: --tproxy-mark 0x0/0x0"),
]


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize(("template", "rule", "v4", "v6"), CASES,
                         ids=["REJECT", "REJECT-alias", "recent", "connlimit", "hashlimit",
                              "TPROXY"])
def test_defaults_reach_rules_of_both_paths(template: str, rule: str, v4: str, v6: str,
                                            family: str) -> None:
    # the fast path reads "-A ..." lines, the full parser those with counters, "-I" and
    # lists of addresses: each path alone, then together
    chain = "INPUT" if template is FILTER else "PREROUTING"
    sources = "10.0.0.1,10.0.0.2" if family == "ipv4" else "fd00::1,fd00::2"
    fast = [f"-A {chain} {rule}", f"-A FOO {rule}"]
    full = [f"[1:2] -A FOO {rule}", f"-I FOO 1 {rule}", f"-A {chain} -s {sources} {rule}"]
    want = v4 if family == "ipv4" else v6
    for lines, count in ((fast, 2), (full, 4), (fast + full, 6)):
        ruleset = parse_save(template.format(rules="\n".join(lines)), family=family)
        saved = [line for line in to_save(ruleset).splitlines() if "-A" in line]
        assert len(saved) == count
        assert all(line.endswith(f" {want}") for line in saved), saved
    # a part the fast path shares between rules stays shared, rewritten once
    ruleset = parse_save(template.format(rules="\n".join(fast)), family=family)
    first, second = ruleset.tables[0].rules
    assert first.target is second.target
    assert all(a is b for a, b in zip(first.matches, second.matches, strict=True))


def _filter(rule: Rule) -> Table:
    return Table(TableName.FILTER, (Chain("INPUT", True, "ACCEPT", None, (rule,)),))


def test_parts_left_as_iptables_save_prints_them_keep_the_tables() -> None:
    reject = Target("REJECT", (Option("--reject-with", ("icmp-port-unreachable",)),),
                    TargetKind.EXTENSION)
    bare = Target("REJECT", (), TargetKind.EXTENSION)
    alias = Target("REJECT", (Option("--reject-with", ("port-unreach",)),), TargetKind.EXTENSION)
    tables = [_filter(Rule("INPUT", target=reject))]
    assert with_family_defaults(tables, 4, [reject]) is tables
    for part in (bare, alias):
        tables = [_filter(Rule("INPUT", target=part))]
        assert with_family_defaults(tables, 4, []) is tables  # nothing recorded: not read
        (rewritten,) = with_family_defaults(tables, 4, family_parts(tables[0].chains[0].rules[0]))
        assert rewritten.chains[0].rules[0].target == reject


def _inputs(corpus: Path, cases: Path) -> list[Path]:
    skip = {".md", ".json", ".nft", ".sh", ".payload", ".txlate", ".xml"}
    return sorted(p for root in (corpus, cases) for p in root.rglob("*")
                  if p.is_file() and p.suffix not in skip and p.stat().st_size < 5_000_000)


def test_no_rule_is_left_without_its_family_defaults(corpus: Path, cases: Path) -> None:
    """Every rule of every save text of the corpus and cases, read as each family it parses
    as: a pass over all rules finds nothing more to rewrite."""
    parsed = with_parts = 0
    for path in _inputs(corpus, cases):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if "-A " not in text:
            continue
        for family in (None, "ipv4", "ipv6"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ParseWarning)
                try:
                    ruleset = parse_save(text, source=str(path), strict=False, family=family)
                except ParseError:
                    continue
            parsed += 1
            tables = list(ruleset.tables)
            parts = [p for t in tables for r in t.rules for p in family_parts(r)]
            with_parts += bool(parts)
            version = 6 if ruleset.family.value == "ipv6" else 4
            again = with_family_defaults(tables, version, parts)
            assert all(a is b for a, b in zip(again, tables, strict=True)), path
    assert parsed >= 200
    assert with_parts >= 20
