"""The fast path for save-shaped lines must give exactly what the full parser gives."""

from __future__ import annotations

import ipaddress
import re
import sys
import warnings
from pathlib import Path

import pytest

import natlens.parse.save as save_module
from natlens import ParseError, ParseWarning, parse_save, to_save
from natlens.model import Ruleset, TargetKind
from natlens.parse.rule import _fast_ipv4_network

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from gen_kube import generate


def _both(text: str, monkeypatch: pytest.MonkeyPatch, strict: bool) -> tuple[Ruleset, Ruleset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParseWarning)
        fast = parse_save(text, strict=strict)
        with monkeypatch.context() as m:
            m.setattr(save_module, "parse_line_fast", lambda *a: None)
            m.setattr(save_module, "_CHAIN_NAME", re.compile(r"(?!)"))  # declarations too
            slow = parse_save(text, strict=strict)
    # repr shows what == leaves out: Option.quoted, Match.implicit, origins, notes, coverage
    assert repr(fast) == repr(slow)
    return fast, slow


def _dumps(corpus: Path) -> list[Path]:
    return sorted(
        [*(corpus / "real-world" / "permissive").glob("*save*"),
         *(corpus / "real-world" / "permissive").glob("configs_serverfault__*"),
         *(corpus / "iptables-t" / "shell-dumps").glob("ipt-*"),
         *(corpus / "kube-proxy").glob("*.rules")]
    )


def test_fast_path_equals_full_parser_on_corpus(corpus: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    files = [p for p in _dumps(corpus) if not p.name.endswith(".xml")]
    assert len(files) >= 15
    for path in files:
        fast, slow = _both(path.read_text(), monkeypatch, strict=False)
        assert fast == slow, path.name
        assert to_save(fast) == to_save(slow), path.name
        for t_fast, t_slow in zip(fast.tables, slow.tables, strict=True):
            for r_fast, r_slow in zip(t_fast.rules, t_slow.rules, strict=True):
                assert r_fast.origin == r_slow.origin


def test_fast_path_equals_full_parser_on_kube_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = _both(generate(60, 3), monkeypatch, strict=True)
    assert fast.rule_count > 300
    assert fast == slow
    assert to_save(fast) == to_save(slow)


@pytest.mark.parametrize(
    "line",
    [
        "-A INPUT -p tcp -m comment --comment \"x -m y\" -m tcp --dport 22 -j ACCEPT",
        "-A INPUT -m comment --comment \"-j DROP\" -j ACCEPT",
        "-A INPUT -p tcp -m tcp --dport 22 -m comment --comment foo -m tcp --sport 1",
        "-A INPUT -m tcp -p tcp --dport 22",
        "-A INPUT -s 10.0.0.1 -j ACCEPT",
        "-A INPUT ! -s 10.0.0.0/8 ! -i eth0 -p udp -m udp ! --dport 53 -g FOO",
        "-A INPUT -j LOG --log-prefix \"a \\\"b\\\"\"",
        "-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1:80-90",
        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A INPUT -m mark --mark 1 -j MARK --set-mark 2",
        "-A INPUT -p tcp -m multiport --dports 80,443 -m comment --comment \"web\" -j FOO",
        # An option of an unknown module, chain or unknown target that a known match of the
        # rule takes (the implicit -p match, an earlier -m): the full parser gives it to that
        # match, the piece read alone to its own owner (found by test_parse_property).
        "-A INPUT -i ppp0 -p tcp -m t6\u00fc\u00c0cp --dport 22 -j FOO",
        "-A INPUT -p tcp -m foo --dp 22 -j FOO",
        "-A INPUT -p tcp -m tcp --dport 22 -m foo --sport 1 -j FOO",
        "-A INPUT -m conntrack --ctstate NEW -m foo --ctdir ORIGINAL -j FOO",
        "-A INPUT -p tcp -j FOO --dport 22",
        "-A INPUT -p udp -j NOSUCH --sport 53",
        "-A INPUT -p tcp -m foo --bar 1 -j FOO",
        # the direct readers of the per-service and per-endpoint pieces (addresses, quoted
        # comments, DNAT/SNAT targets, first jumps to a chain) next to their edge cases
        "-A INPUT ! -s 10.0.0.0/8 ! -d 10.1.0.0/16 -p udp -j FOO",
        "-A INPUT -s 10.0.0.1/255.0.255.0 -d 10.0.0.7 -p sctp -j FOO",
        "-A INPUT -d 10.0.0.0/8 -s 10.1.0.0/16 -p tcp -j FOO",
        "-A INPUT -s 10.0.0.1/32 -p gre -j ACCEPT",
        "-A INPUT -s 10.0.0.1/32 -p 6 -j ACCEPT",
        "-A INPUT -s 10.0.0.1/32 ! -p tcp -j ACCEPT",
        "-A INPUT -m comment --comment \"\" -j FOO",
        "-A INPUT -m comment --comment \"!\" -j FOO",
        "-A INPUT -m comment --comment \"-x\" -j FOO",
        "-A INPUT -m comment --comment \"-1 a\" -j FOO",
        "-A INPUT -m comment --comment \"a b\" -m comment --comment \"a b\" -g FOO",
        "-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1",
        "-A INPUT -p udp -j DNAT --to-destination 10.0.0.1:0",
        "-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1:65535",
        "-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1:080",
        "-A INPUT -p icmp -j DNAT --to-destination 10.0.0.1:80",
        "-A INPUT -p tcp -j SNAT --to-source 10.0.0.1:1024",
        "-A INPUT -j SNAT --to-source 10.0.0.1",
        "-A INPUT -j DNAT --to-destination 10.0.0.1 --random",
        "-A INPUT -p tcp -j FOO",
    ],
)
def test_fast_path_equals_full_parser_on_odd_lines(line: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    text = f"*nat\n:INPUT ACCEPT [0:0]\n:FOO - [0:0]\n{line}\nCOMMIT\n"
    fast, slow = _both(text, monkeypatch, strict=True)
    assert fast == slow
    assert to_save(fast) == to_save(slow)


def _error(text: str, monkeypatch: pytest.MonkeyPatch, fast: bool) -> ParseError:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(save_module, "parse_line_fast", lambda *a: None)
        with pytest.raises(ParseError) as info:
            parse_save(text)
    return info.value


@pytest.mark.parametrize(
    ("header", "line"),
    [
        ("iptables", "-A KUBE-SEP-A -s 2001:db8::5/128 -m comment --comment \"x\" -j ACCEPT"),
        ("ip6tables", "-A KUBE-SEP-A -s 10.0.0.5/32 -m comment --comment \"x\" -j ACCEPT"),
        ("ip6tables", "-A KUBE-SEP-A -p tcp -m comment --comment \"x\" -m tcp -j DNAT "
                      "--to-destination 10.0.0.5:8080"),
        ("ip6tables", "-A KUBE-SEP-A -p tcp -j REJECT --reject-with icmp-port-unreachable"),
        ("iptables", "-A KUBE-SEP-A -p tcp -m hl --hl-eq 5 -j ACCEPT"),
    ],
)
def test_family_checks_hold_on_the_fast_path(header: str, line: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path checks each segment's family once (natlens.parse.families conflict
    bits); a value of the other family is still refused at its line, as the full parser does."""
    ok = "-A KUBE-SEP-A -s 10.0.0.1/32 -j ACCEPT" if header == "iptables" else \
        "-A KUBE-SEP-A -s 2001:db8::1/128 -j ACCEPT"
    text = (f"# Generated by {header}-save v1.8.9 (nf_tables)\n*filter\n:INPUT ACCEPT [0:0]\n"
            f":KUBE-SEP-A - [0:0]\n{ok}\n{line}\nCOMMIT\n")
    fast, slow = _error(text, monkeypatch, True), _error(text, monkeypatch, False)
    assert fast.line_no == slow.line_no == 6
    assert str(fast) == str(slow)


@pytest.mark.parametrize(
    "text",
    ["10.96.24.169/32", "10.0.0.1", "10.0.0.0/8", "10.1.2.3/24", "1.2.3.4/31", "1.2.3.4/30",
     "0.0.0.0/0", "255.255.255.255/0", "10.1.2.3/032", "01.2.3.4/8", "1.2.3.04", "10.1.2.3/33",
     "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4/", "1.2.3.4/255.0.0.0", "::1/128", "\uff11.2.3.4"],
)
def test_fast_ipv4_network_is_ipaddress(text: str) -> None:
    """The parser's IPv4 network fast path gives ipaddress's own object, or leaves the text
    to the careful path (None): never a different network."""
    built = _fast_ipv4_network(text)
    if built is None:
        return
    real = ipaddress.IPv4Network(text, strict=False)
    assert built == real
    assert str(built) == str(real)
    assert repr(built) == repr(real)
    # no hosts function per /31 and /32 network (natlens.parse.networks): a method gives it
    assert vars(built).keys() - {"hosts"} == vars(real).keys() - {"hosts"}
    if real.prefixlen >= 30:
        assert list(built.hosts()) == list(real.hosts())


@pytest.mark.parametrize(
    "line",
    ["-A INPUT -i eth/0 -j ACCEPT", "-A INPUT -m comment --comment \"a -j b -j ACCEPT",
     "-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1:99999",
     "-A INPUT -j DNAT --to-destination 10.0.0.1:80",
     # interface names with a quote (found by test_parse_property)
     "-A INPUT -o 'enp3s0 -g FOO", "-A INPUT -o '", "-A INPUT -i a'b -j ACCEPT",
     "-A INPUT -o ! -j ACCEPT", "-A INPUT -o !! -j ACCEPT",
     "-A INPUT -s 10.0.0.1/33 -j ACCEPT", "-A INPUT ! -s 10.0.0.0/8 -d 1.2.3 -p tcp -j ACCEPT",
     "-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1:65536",
     "-A INPUT ! -p tcp -j DNAT --to-destination 10.0.0.1:80",
     "-A INPUT -p esp -j SNAT --to-source 10.0.0.1:80",
     "-A INPUT -s 10.0.0.1/32 -s 10.0.0.2/32 -j ACCEPT",
     "-A INPUT -m comment --comment \"a\"\"b\" -j ACCEPT",
     "-A INPUT -j DNAT --to-destination 010.0.0.1"],
)
def test_fast_path_refuses_what_the_full_parser_refuses(line: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    text = f"*nat\n:INPUT ACCEPT [0:0]\n{line}\nCOMMIT\n"
    fast, slow = _error(text, monkeypatch, True), _error(text, monkeypatch, False)
    assert (str(fast), fast.line_no, fast.column) == (str(slow), slow.line_no, slow.column)


@pytest.mark.parametrize("strict", [True, False])
def test_chain_declared_after_a_rule_that_names_it(strict: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A jump read before its chain is declared becomes a jump when the table ends
    (``_TableState.late_chains``), on both paths."""
    text = ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j LATE\n"
            ":LATE - [0:0]\n-A LATE -j ACCEPT\nCOMMIT\n")
    fast, slow = _both(text, monkeypatch, strict=strict)
    target = fast["filter"]["INPUT"].rules[0].target
    assert target is not None
    assert target.kind is TargetKind.CHAIN
    assert fast == slow
