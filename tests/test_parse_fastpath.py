"""The fast path for save-shaped lines must give exactly what the full parser gives."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

import natlens.parse.save as save_module
from natlens import ParseWarning, parse_save, to_save
from natlens.model import Ruleset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from gen_kube import generate


def _both(text: str, monkeypatch: pytest.MonkeyPatch, strict: bool) -> tuple[Ruleset, Ruleset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParseWarning)
        fast = parse_save(text, strict=strict)
        with monkeypatch.context() as m:
            m.setattr(save_module, "parse_line_fast", lambda *a: None)
            slow = parse_save(text, strict=strict)
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
    ],
)
def test_fast_path_equals_full_parser_on_odd_lines(line: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    text = f"*nat\n:INPUT ACCEPT [0:0]\n:FOO - [0:0]\n{line}\nCOMMIT\n"
    fast, slow = _both(text, monkeypatch, strict=True)
    assert fast == slow
    assert to_save(fast) == to_save(slow)
