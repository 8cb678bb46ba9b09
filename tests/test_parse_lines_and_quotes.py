"""Lines end at "\\n" only and arguments split as iptables-restore splits them (issue 11, item 6;
cases/hostile/12 and 20), checked against the real iptables-restore where root allows.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from netns_helpers import namespaces

from natlens import ParseError, ParseWarning, parse_save, to_save
from natlens.cli import main
from natlens.parse.tokens import TokenizeError, split_args, split_lines, tokenize

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ODD_SEPARATORS = ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x1f", "\x0b", "\x0c",
                  "\r", "\u00a0", "\u3000"]


def _dump(comment: str) -> str:
    return ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f'-A INPUT -s 10.0.0.1/32 -m comment --comment "a{comment}b" -j DROP\nCOMMIT\n')


@pytest.mark.parametrize("char", ODD_SEPARATORS, ids=[f"U+{ord(c):04X}" for c in ODD_SEPARATORS])
def test_comment_with_a_line_separator_stays_in_its_line(char: str) -> None:
    text = _dump(char)
    ruleset = parse_save(text)
    (rule,) = ruleset["filter"]["INPUT"].rules
    assert rule.matches[0].options[0].args == (f"a{char}b",)
    assert to_save(ruleset) == text


def test_case_12_kernel_dump_parses_and_round_trips(cases: Path) -> None:
    path = cases / "hostile" / "12-valid-dump-rejected-line-separators" / "kernel-dump.txt"
    text = path.read_bytes().decode()
    ruleset = parse_save(text, source=path.name)
    comments = [r.matches[0].options[0].value for r in ruleset["filter"]["INPUT"].rules]
    assert comments == ["a\u2028b", "a\x85b", "a\x1cb", "a\x0bb", "a\x0cb", "a\rb"]
    body = [ln for ln in text.split("\n") if ln and not ln.startswith("#")]
    assert [ln for ln in to_save(ruleset).split("\n") if ln and not ln.startswith("#")] == body


def test_crlf_file_reads_as_its_lines() -> None:
    text = _dump("").replace("\n", "\r\n")
    assert parse_save(text) == parse_save(_dump(""))


@pytest.mark.parametrize(("text", "lines"), [
    ("a\nb\n", ["a", "b"]),
    ("a\nb", ["a", "b"]),
    ("", []),
    ("a\n\n", ["a", ""]),
    ("a\r\nb\r\n", ["a", "b"]),
    ("a\rb\n", ["a\rb"]),
    ("a\u2028b\x1cc\x0bd\x0ce\x85f\n", ["a\u2028b\x1cc\x0bd\x0ce\x85f"]),
])
def test_split_lines_splits_at_newline_only(text: str, lines: list[str]) -> None:
    assert split_lines(text) == lines


# (line, arguments) as iptables-restore's add_param_to_argv (iptables/xshared.c) makes them:
# blanks are space, tab and newline; a quote glues to the text before it; the closing quote
# ends the argument.
QUOTING = [
    ('-j LOG --log-prefix "a b"', ["-j", "LOG", "--log-prefix", "a b"]),
    ('--comment x"y z"', ["--comment", "xy z"]),
    ('--comment "x"y', ["--comment", "x", "y"]),
    ('--comment "x""y"', ["--comment", "x", "y"]),
    ('--comment ""', ["--comment", ""]),
    ('--comment "a \\" b"', ["--comment", 'a " b']),
    ('--comment "a\\\\b"', ["--comment", "a\\b"]),
    ("--comment a\\b", ["--comment", "a\\b"]),
    ("--comment 'a b'", ["--comment", "'a", "b'"]),
    ("-s 10.0.0.1\x0b-j DROP", ["-s", "10.0.0.1\x0b-j", "DROP"]),
    ("-s\t10.0.0.1  -j\u2028DROP", ["-s", "10.0.0.1", "-j\u2028DROP"]),
]


@pytest.mark.parametrize(("line", "args"), QUOTING)
def test_arguments_split_as_iptables_restore_splits_them(line: str, args: list[str]) -> None:
    assert split_args(line)[0] == args
    assert list(tokenize(line).args) == args


def test_columns_and_quoted_flags() -> None:
    tokens = tokenize('-A X --comment "a b"c  -j DROP')
    assert tokens.args == ("-A", "X", "--comment", "a b", "c", "-j", "DROP")
    assert tokens.columns == (1, 4, 6, 16, 21, 24, 27)
    assert tokens.quoted == frozenset({3})


def test_unterminated_quote_names_its_column() -> None:
    with pytest.raises(TokenizeError) as info:
        tokenize('-A X --comment "abc -j DROP')
    assert info.value.column == 16


def test_case_20_glued_quotes_are_refused_as_iptables_restore_refuses_them(
        cases: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Glued ``"x""x"...`` pieces are separate arguments (the closing quote ends one), so the
    rule has a stray argument: one-line error, exit 2 (the time is in bench_worst.py)."""
    gen = cases / "hostile" / "20-tokenizer-quadratic-glued-quotes" / "gen.sh"
    path = tmp_path / "glued.txt"
    path.write_bytes(subprocess.run(["bash", str(gen), "200000"], check=True,
                                    capture_output=True).stdout)
    assert main(["parse", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"natlens: error: {path}:3:")
    assert "bad argument 'x'" in err
    assert err.count("\n") == 1
    assert len(err) < 400


# -- the real iptables-restore agrees -----------------------------------------------------------


def _restore_and_save(text: str) -> bytes | None:
    """iptables-save's bytes after iptables-restore of ``text`` (None: refused)."""
    with namespaces("natlens-q-") as (ns,):
        loaded = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"],
                                input=text.encode(), capture_output=True, check=False)
        if loaded.returncode != 0:
            return None
        return subprocess.run(["ip", "netns", "exec", ns, "iptables-save"], check=True,
                              capture_output=True).stdout


@pytest.mark.kernel
@pytest.mark.skipif(not IS_ROOT, reason="needs root for network namespaces")
@pytest.mark.parametrize("char", ODD_SEPARATORS, ids=[f"U+{ord(c):04X}" for c in ODD_SEPARATORS])
def test_kernel_keeps_the_comment_natlens_reads(char: str) -> None:
    saved = _restore_and_save(_dump(char))
    assert saved is not None
    ruleset = parse_save(saved.decode())
    assert ruleset["filter"]["INPUT"].rules[0].matches[0].options[0].value == f"a{char}b"


@pytest.mark.kernel
@pytest.mark.skipif(not IS_ROOT, reason="needs root for network namespaces")
@pytest.mark.parametrize("comment", ['x"y z"', '"x"y', '"x""y"', '""', '"a \\" b"',
                                     "a\\b", "x\x0by"])
def test_kernel_and_natlens_agree_on_quoting(comment: str) -> None:
    """Where iptables-restore loads the rule, natlens reads the same comment; where it refuses,
    natlens refuses too."""
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f"-A INPUT -m comment --comment {comment} -j ACCEPT\nCOMMIT\n")
    saved = _restore_and_save(text)
    if saved is None:
        with pytest.raises(ParseError):
            parse_save(text)
        return
    kernel = parse_save(saved.decode())["filter"]["INPUT"].rules[0]
    assert parse_save(text)["filter"]["INPUT"].rules[0].matches == kernel.matches


def test_lenient_joins_unquoted_comment_words_once_with_one_warning() -> None:
    # iptables-restore refuses the unquoted words; lenient mode joins them to the comment, in
    # order, warning once per comment (joined once at the end of the rule: linear in the words)
    words = [f"w{i}" for i in range(2000)]
    text = ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment first "
            + " ".join(words) + " -j ACCEPT\nCOMMIT\n")
    with pytest.warns(ParseWarning) as caught:
        ruleset = parse_save(text, strict=False)
    assert [str(w.message) for w in caught] == [
        "<string>:3: unquoted word 'w0' joined to the comment (quote multi-word comments)"]
    assert f'--comment "first {" ".join(words)}"' in to_save(ruleset)
