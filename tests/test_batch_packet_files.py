"""``trace --packets FILE`` says clearly what is wrong with a packet file as a whole: a JSON
array instead of JSON lines, a file without any packet; a CSV file a spreadsheet saved with a
UTF-8 byte-order mark reads as any other (natlens.batch ``read_packets``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from natlens.batch import PacketFileError, read_packets

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "default-bridge-8080"
OBJECT = '{"in": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "dport": 8080}'
CSV = "src,dst,in,dport\n198.51.100.7,192.0.2.2,eth0,8080\n"
ACCEPTED_LINE = ("2: Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new) => ACCEPT "
                 "(forward) 198.51.100.7 -> 172.17.0.2:80 via docker0")

# (file content, line named or None, a word of the message)
BAD_FILES = [
    (f"[{OBJECT}, {OBJECT}]\n", 1, "got a JSON array"),
    (f"[\n  {OBJECT},\n  {OBJECT}\n]\n", 1, "got a JSON array"),
    (f"# packets\n\n  [{OBJECT}]\n", 3, "got a JSON array"),
    ("[]", 1, "got a JSON array"),
    ("", None, "no packets given"),
    ("\n\n  \n", None, "no packets given"),
    ("# nothing but a comment\n", None, "no packets given"),
    ("\ufeff", None, "no packets given"),
    ("src,dst\n", None, "only the CSV header"),
]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # the environment as os.environ holds it, without COLUMNS: output as a pipe gets it (one
    # line per packet), whatever the C environment of the test process holds
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "natlens", *args], capture_output=True,
                          text=True, check=False, cwd=ROOT, timeout=120, env=env)


@pytest.mark.parametrize(("content", "line_no", "word"), BAD_FILES,
                         ids=[repr(c[:20]) for c, _, _ in BAD_FILES])
def test_bad_packet_file_is_named_in_one_line(tmp_path: Path, content: str,
                                              line_no: int | None, word: str | None) -> None:
    path = tmp_path / "packets.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PacketFileError) as caught:
        read_packets(str(path))
    assert caught.value.line_no == line_no
    assert word is None or word in caught.value.reason
    where = str(path) if line_no is None else f"{path}:{line_no}"
    assert str(caught.value).startswith(f"{where}: ")


@pytest.mark.parametrize("content", [f"[{OBJECT}]\n", "", "# x\n", "src,dst\n"])
def test_cli_exits_2_with_one_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "packets.txt"
    path.write_text(content, encoding="utf-8")
    done = _run("trace", str(FIXTURE), "--packets", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"natlens: error: {path}")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_with_or_without_byte_order_mark(tmp_path: Path, encoding: str,
                                             newline: str) -> None:
    path = tmp_path / "packets.csv"
    path.write_bytes(CSV.replace("\n", newline).encode(encoding))
    packets = read_packets(str(path))
    assert [(n, p.dport, p.in_interface) for n, p in packets] == [(2, 8080, "eth0")]
    done = _run("trace", str(FIXTURE), "--packets", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(ACCEPTED_LINE)


def test_json_lines_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "packets.jsonl"
    path.write_bytes((OBJECT + "\n").encode("utf-8-sig"))
    assert [n for n, _ in read_packets(str(path))] == [1]


def test_byte_order_mark_only_at_the_start(tmp_path: Path) -> None:
    """A mark inside the file is text like any other: the cell is not a packet value."""
    path = tmp_path / "packets.csv"
    path.write_text(CSV + "\ufeff198.51.100.7,192.0.2.2,eth0,8080\n", encoding="utf-8")
    with pytest.raises(PacketFileError) as caught:
        read_packets(str(path))
    assert caught.value.line_no == 3
