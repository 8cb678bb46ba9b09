"""Host command output is read as the tools write it: lines end at "\\n" and fields are
separated by spaces and tabs. A NEL (U+0085), U+2028 or ``\\x1c`` inside a field (a process or
interface name, a value) stays in it, where ``str.splitlines``/``str.split`` would cut there
(natlens.parse.hostfiles.split_fields, natlens.parse.tokens.split_lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from natlens.parse.hostfiles import parse_ss, parse_sysctl, split_fields
from natlens.services import _etc_protocols
from natlens.verify.probe import parse_conntrack

ODD = ["\x85", "\u2028", "\u2029", "\x1c", "\x1e", "\x0b", "\x0c", "\u00a0", "\u3000"]
"""Characters ``str.splitlines`` ends a line at, or ``str.split`` takes for a blank; no tool
whose output natlens reads does either."""

HEADER = "Netid State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess\n"


@pytest.mark.parametrize("odd", ODD, ids=[f"U+{ord(c):04X}" for c in ODD])
def test_ss_process_name_keeps_the_character(odd: str) -> None:
    text = (HEADER + "tcp   LISTEN 0      4096    0.0.0.0:8080   0.0.0.0:*    "
            f'users:(("doc{odd}ker",pid=812,fd=4))\n')
    (s,) = parse_ss(text)
    assert (s.port, s.process, s.pid) == (8080, f"doc{odd}ker", 812)


@pytest.mark.parametrize("odd", ODD, ids=[f"U+{ord(c):04X}" for c in ODD])
def test_ss_interface_name_keeps_the_character(odd: str) -> None:
    # the kernel refuses only "/", ":" and ASCII white space in a name (dev_valid_name)
    (s,) = parse_ss(HEADER + f"udp   UNCONN 0      0      10.0.0.1%br{odd}x:53   0.0.0.0:*\n")
    assert (str(s.address), s.interface, s.port) == ("10.0.0.1", f"br{odd}x", 53)


@pytest.mark.parametrize("odd", ODD, ids=[f"U+{ord(c):04X}" for c in ODD])
def test_sysctl_value_keeps_the_character(odd: str) -> None:
    values = parse_sysctl(f"kernel.domainname = a{odd}b{odd}\nnet.ipv4.ip_forward = 1\n")
    assert dict(values) == {"kernel.domainname": f"a{odd}b{odd}", "net.ipv4.ip_forward": "1"}


@pytest.mark.parametrize("odd", ODD, ids=[f"U+{ord(c):04X}" for c in ODD])
def test_etc_protocols_names_keep_the_character(odd: str, tmp_path: Path) -> None:
    path = tmp_path / "protocols"
    path.write_text(f"proto{odd}x 200 alias # comment\nother\t201\tOTHER\n", encoding="utf-8")
    assert _etc_protocols(path) == {f"proto{odd}x": 200, "alias": 200, "other": 201}


@pytest.mark.parametrize("odd", ODD, ids=[f"U+{ord(c):04X}" for c in ODD])
def test_conntrack_line_stays_whole(odd: str) -> None:
    line = ("udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=53 [UNREPLIED] "
            f"src=10.0.0.2 dst=10.0.0.1 sport=53 dport=40000 mark=0 helper=a{odd}b use=1")
    (entry,) = parse_conntrack(line + "\n")
    assert (entry.proto, entry.original, entry.text) == (
        "udp", ("10.0.0.1:40000", "10.0.0.2:53"), line)


def test_split_fields_splits_at_spaces_and_tabs_only() -> None:
    assert split_fields("") == []
    assert split_fields(" \t ") == []
    assert split_fields("a \tb\x85c  d\u2028 ") == ["a", "b\x85c", "d\u2028"]
