"""REJECT ``--reject-with``: natlens takes the types iptables takes, per family, and prints them
as iptables-save does (natlens.parse.reject, from libipt_REJECT.c / libip6t_REJECT.c 1.8.9).

iptables reads a type as the first (name, alias) of its family's table that starts with the
argument, without case; it prints the name. So aliases (``net-unreach``), prefixes (``icmp-h``),
upper case and even the empty string are accepted, and mean different types in IPv4 and IPv6
rules (``port-unreach``, ``icmp``); ``foo``, ``tcp-rst`` in IPv6 or ``icmp6-no-route`` in IPv4
are refused. Each value is checked against ``iptables-restore --test`` on both backends, and
the printed form against ``iptables-save`` (``kernel`` marker).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from netns_helpers import namespaces, needs_root, run

from natlens import Family, ParseError, parse_save, to_save
from natlens.parse import save as save_module
from natlens.parse.reject import REJECT_TYPES, reject_type

_NAMES = sorted({word for table in REJECT_TYPES.values() for pair in table for word in pair})
VALUES = [*_NAMES, "", "icmp", "icmp-", "icmp6", "icmp6-", "ICMP-HOST-PROHIBITED", "icmp-h",
          "Net-Unreach", "adm", "a", "n", "p", "t", "tcp", "host", "reject", "policy",
          "icmp-admin", "icmp6-adm", "foo", "echo-reply", "echoreply", "icmp-port-unreachablex",
          "port-unreachable", "tcp-reset ", " tcp-reset"]
CASES = [(version, value) for version in (4, 6) for value in VALUES]
IDS = [f"ipv{v}-{value!r}" for v, value in CASES]


def _text(value: str) -> str:
    escaped = value.replace('"', '\\"')
    return ("*filter\n:INPUT ACCEPT [0:0]\n"
            f'-A INPUT -p tcp -j REJECT --reject-with "{escaped}"\nCOMMIT\n')


def _family(version: int) -> Family:
    return Family.IPV6 if version == 6 else Family.IPV4


def _natlens_prints(version: int, value: str) -> str | None:
    """The REJECT part natlens prints, or None when it refuses the rule."""
    try:
        ruleset = parse_save(_text(value), family=_family(version), source="rules.txt")
    except ParseError:
        return None
    line = next(x for x in to_save(ruleset).splitlines() if x.startswith("-A INPUT"))
    return line.partition(" -j ")[2]


def test_the_tables_are_libipt_reject_c() -> None:
    assert reject_type("icmp-h", 4) == "icmp-host-unreachable"  # first of the table that fits
    assert reject_type("", 4) == "icmp-net-unreachable"
    assert reject_type("", 6) == "icmp6-no-route"
    assert reject_type("port-unreach", 4) == "icmp-port-unreachable"
    assert reject_type("port-unreach", 6) == "icmp6-port-unreachable"
    assert reject_type("tcp-rst", 4) == "tcp-reset"
    assert reject_type("tcp-rst", 6) is None
    assert reject_type("icmp", 6) == "icmp6-no-route"
    assert reject_type("icmp-port-unreachable", 6) is None


@pytest.mark.parametrize(("rule", "word"), [
    ("-j REJECT --reject-with foo", 'unknown reject type "foo"'),
    ("-j REJECT --reject-with echo-reply", "unknown reject type"),
    ("-j REJECT --reject-with icmp-port-unreachablex", "unknown reject type"),
])
def test_unknown_type_refused_at_its_line(rule: str, word: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    text = f"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT {rule}\nCOMMIT\n"
    with pytest.raises(ParseError) as fast:
        parse_save(text, source="rules.txt")
    assert fast.value.line_no == 3
    assert word in fast.value.reason
    monkeypatch.setattr(save_module, "parse_line_fast", lambda *a, **k: None)
    with pytest.raises(ParseError) as full:
        parse_save(text, source="rules.txt")
    assert str(fast.value) == str(full.value)


@pytest.mark.parametrize(("version", "value", "printed"), [
    (4, None, "REJECT --reject-with icmp-port-unreachable"),
    (6, None, "REJECT --reject-with icmp6-port-unreachable"),
    (4, "net-unreach", "REJECT --reject-with icmp-net-unreachable"),
    (6, "adm", "REJECT --reject-with icmp6-adm-prohibited"),
    (4, "port-unreach", "REJECT --reject-with icmp-port-unreachable"),
    (6, "port-unreach", "REJECT --reject-with icmp6-port-unreachable"),
])
def test_printed_as_iptables_save_names_it(version: int, value: str | None,
                                           printed: str) -> None:
    rule = "-j REJECT" if value is None else f"-j REJECT --reject-with {value}"
    text = f"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT {rule}\nCOMMIT\n"
    assert f"-A INPUT -j {printed}\n" in to_save(parse_save(text, family=_family(version)))


def test_family_told_by_the_type() -> None:
    """A type of one family only decides the family of a dump that says nothing else."""
    text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j REJECT --reject-with no-route\nCOMMIT\n"
    with pytest.raises(ParseError, match="IPv6 reject type"):
        parse_save(text, family=Family.IPV4)
    assert "--reject-with icmp6-no-route" in to_save(parse_save(text, family=Family.IPV6))


# -- the real iptables ------------------------------------------------------------------------

_TOOLS = {"nft": ("iptables-nft", "ip6tables-nft"), "legacy": ("iptables-legacy",
                                                                 "ip6tables-legacy")}


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    needs_root("iptables-legacy-restore", "iptables")
    with namespaces("nlrej-") as names:
        yield names[0]


def _iptables_prints(ns: str, version: int, value: str) -> str | None:
    """The REJECT part iptables-save prints after restoring the rule (both backends must
    agree), or None when ``restore --test`` refuses it."""
    outputs: list[str | None] = []
    for backend in _TOOLS:
        tool = _TOOLS[backend][version == 6]
        tested = subprocess.run(["ip", "netns", "exec", ns, f"{tool}-restore", "--test"],
                                input=_text(value), text=True, capture_output=True,
                                check=False, timeout=30)
        if tested.returncode != 0:
            outputs.append(None)
            continue
        run(f"{tool}-restore", ns=ns, stdin=_text(value))
        saved = run(f"{tool}-save", "-t", "filter", ns=ns)
        line = next(x for x in saved.splitlines() if x.startswith("-A INPUT"))
        outputs.append(line.partition(" -j ")[2])
        run(f"{tool}-restore", ns=ns, stdin="*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    assert outputs[0] == outputs[1], f"backends differ: {outputs}"
    return outputs[0]


@pytest.mark.kernel
@pytest.mark.parametrize(("version", "value"), CASES, ids=IDS)
def test_iptables_takes_and_prints_the_same(version: int, value: str, netns: str) -> None:
    assert _natlens_prints(version, value) == _iptables_prints(netns, version, value)


@pytest.mark.kernel
@pytest.mark.parametrize("version", [4, 6])
def test_tcp_reset_needs_tcp(version: int, netns: str) -> None:
    text = ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -j REJECT --reject-with tcp-reset\n"
            "COMMIT\n")
    for tool in (_TOOLS["nft"][version == 6], _TOOLS["legacy"][version == 6]):
        loaded = subprocess.run(["ip", "netns", "exec", netns, f"{tool}-restore"], input=text,
                                text=True, capture_output=True, check=False, timeout=30)
        assert loaded.returncode != 0, f"{tool} takes tcp-reset with -p udp after all"
    with pytest.raises(ParseError):
        parse_save(text, family=_family(version))
