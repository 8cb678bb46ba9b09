"""`natlens parse` and the CLI's error contract (one line, exit 2, never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from natlens.cli import main

SAMPLE = "*filter\n:INPUT ACCEPT [1:2]\n[3:4] -A INPUT -s 10.0.0.1 -j ACCEPT\nCOMMIT\n"


def test_parse_save_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rules.txt"
    path.write_text(SAMPLE)
    assert main(["parse", str(path)]) == 0
    assert capsys.readouterr().out == (
        "*filter\n:INPUT ACCEPT [1:2]\n[3:4] -A INPUT -s 10.0.0.1/32 -j ACCEPT\nCOMMIT\n"
    )
    assert main(["parse", str(path), "--no-counters"]) == 0
    assert "[3:4]" not in capsys.readouterr().out


def test_parse_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rules.txt"
    path.write_text(SAMPLE)
    assert main(["parse", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rule = data["tables"][0]["chains"][0]["rules"][0]
    assert rule["source"] == {"value": "10.0.0.1/32", "negated": False}
    assert rule["target"] == {"name": "ACCEPT", "kind": "verdict", "options": []}
    assert rule["origin"] == {"source": str(path), "line": 3}
    assert rule["index"] == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("*filter\n-A INPUT -p tcp --dport 70000 -j ACCEPT\nCOMMIT\n",
         "rules.txt:2:25: port 70000 out of range"),
        ("*filtre\nCOMMIT\n", "rules.txt:1:2: unknown table 'filtre' (did you mean 'filter'?)"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "rules.txt"
    path.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "natlens.cli", "parse", str(path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("natlens: error: ")
    assert expected in lines[0]
    assert str(path.parent) in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_file_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "/nonexistent/rules.txt"]) == 2
    assert capsys.readouterr().err == (
        "natlens: error: /nonexistent/rules.txt: no such file or directory\n"
    )
    assert main(["parse"]) == 2
    err = capsys.readouterr().err
    assert err == ("natlens: error: parse needs a PATH (a snapshot folder or rule file), or "
                   "--example for the sample snapshot shipped with natlens\n")


def test_stdin_and_lenient_warning(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    import io

    text = "*nat\n:PREROUTING - [0:0]\nCOMMIT\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["parse", "-"]) == 2
    assert "<stdin>:2: built-in chain PREROUTING has policy '-'" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["parse", "-", "--lenient"]) == 0
    out = capsys.readouterr()
    assert out.out == text
    assert out.err == ("natlens: warning: <stdin>:2: built-in chain PREROUTING has policy '-' "
                       "(iptables-save always prints ACCEPT or DROP; iptables-restore would keep "
                       "the old policy)\n")


def test_listing_to_save_comments_out_what_it_cannot_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "nat.txt"
    listing.write_text(
        "Chain PREROUTING (policy ACCEPT)\n"
        "target     prot opt source               destination\n"
        "DOCKER     all  --  0.0.0.0/0            0.0.0.0/0            "
        "ADDRTYPE match dst-type LOCAL\n"
        "\n"
        "Chain DOCKER (1 references)\n"
        "target     prot opt source               destination\n"
        "DNAT       tcp  --  0.0.0.0/0            0.0.0.0/0            "
        "tcp dpt:8080 to:172.17.0.4:80\n"
    )
    assert main(["parse", str(listing)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# natlens: converted from an iptables -L listing")
    assert "2 rules could not be reconstructed" in out[0]
    assert (
        "# natlens: not restorable, unknown in_interface, out_interface: "
        "-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.4:80"
    ) in out


def test_input_table_names_the_table_of_dash_s_output(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = corpus / "docker" / "iptablesdoc-v28.5.2" / "extracted" / "usernet-portmap.raw.S.rules"
    assert main(["parse", str(rules)]) == 0
    assert capsys.readouterr().out.startswith("*raw\n")
    assert main(["parse", str(rules), "--input-table", "mangle"]) == 0
    assert capsys.readouterr().out.startswith("*mangle\n")
    folder = Path(__file__).resolve().parent.parent / "fixtures" / "default-bridge-8080"
    assert main(["parse", str(folder), "--input-table", "nat"]) == 2
    assert "applies to a single -S or -L file" in capsys.readouterr().err
