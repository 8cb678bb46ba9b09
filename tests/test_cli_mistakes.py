"""Errors that help (issue 14): each frequent mistake is one line on stderr, exit 2, naming the
file and saying what to run instead."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from natlens.cli import main

SAMPLE = REPO_ROOT / "fixtures" / "default-bridge-8080"

DOCKER_PS = ("CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS   PORTS     NAMES\n"
             "abc123   busybox   \"httpd\"   2 min ago   Up 2 min   0.0.0.0:8080->80/tcp   web\n")
DOCKER_PS_JSON_ONE = ('{"Command":"\\"httpd -f\\"","ID":"abc123","Image":"busybox",'
                      '"Names":"web","Ports":"0.0.0.0:8080->80/tcp","State":"running"}')
IP_ADDR_TEXT = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n"
                "    inet 127.0.0.1/8 scope host lo\n")
IP_ROUTE_TEXT = ("default via 192.0.2.1 dev eth0 proto dhcp metric 100\n"
                 "172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1\n")
LISTING_WITHOUT_N = ("Chain INPUT (policy ACCEPT)\n"
                     "target     prot opt source               destination\n"
                     "ACCEPT     tcp  --  anywhere             anywhere             tcp dpt:ssh\n")
IP6TABLES = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A INPUT -s 2001:db8::/32 -j ACCEPT\nCOMMIT\n")


def _snapshot(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "snap"
    shutil.copytree(SAMPLE, folder)
    (folder / name).write_text(text)
    return folder


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    status = main([*argv, "--no-cache"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    return err.splitlines()


@pytest.mark.parametrize(("name", "text", "message"), [
    ("docker-containers.json", DOCKER_PS,
     "docker-containers.json: this is 'docker ps' output (a table), not JSON: save "
     "'docker inspect $(docker ps -aq) > docker-containers.json' instead"),
    ("docker-containers.json",
     '{"Command":"httpd","ID":"abc123","Image":"busybox","Names":"web"}\n'
     '{"Command":"sh","ID":"def456","Image":"busybox","Names":"db"}\n',
     "docker-containers.json: this is 'docker ps --format json' output (one line per "
     "container): save 'docker inspect $(docker ps -aq) > docker-containers.json' instead"),
    ("docker-containers.json", DOCKER_PS_JSON_ONE + "\n",
     "docker-containers.json: this is 'docker ps --format json' output (one line per "
     "container): save 'docker inspect $(docker ps -aq) > docker-containers.json' instead"),
    ("docker-containers.json", f"[{DOCKER_PS_JSON_ONE}]\n",
     "docker-containers.json: this is 'docker ps --format json' output (one line per "
     "container): save 'docker inspect $(docker ps -aq) > docker-containers.json' instead"),
    ("ip-addr.json", IP_ADDR_TEXT,
     "ip-addr.json: this is 'ip addr' output (text), not JSON: save "
     "'ip -j addr show > ip-addr.json' instead"),
    ("ip-route.json", IP_ROUTE_TEXT,
     "ip-route.json: this is 'ip route' output (text), not JSON: save "
     "'ip -j route show > ip-route.json' instead"),
    ("ip-route6.json", "fe80::/64 dev eth0 proto kernel metric 256 pref medium\n",
     "ip-route6.json: this is 'ip -6 route' output (text), not JSON: save "
     "'ip -j -6 route show > ip-route6.json' instead"),
    ("docker-networks.json", "NETWORK ID     NAME      DRIVER    SCOPE\n",
     "docker-networks.json: this is 'docker network ls' output (a table), not JSON: save "
     "'docker network inspect $(docker network ls -q) > docker-networks.json' instead"),
    ("iptables-save.txt", IP6TABLES,
     "iptables-save.txt:5:13: IPv6 address 2001:db8::/32 in iptables rules (is this "
     "ip6tables-save output? save it as ip6tables-save.txt): '-A INPUT -s 2001:db8::/32 -j "
     "ACCEPT'"),
])
def test_wrong_file_in_a_snapshot(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  name: str, text: str, message: str) -> None:
    folder = _snapshot(tmp_path, name, text)
    assert _error(["report", str(folder)], capsys) == [
        f"natlens: error: {folder}/{message}"]


@pytest.mark.parametrize("text", [(SAMPLE / "docker-containers.json").read_text(),
                                  '{"a": 1}\n'])
def test_json_file_given_as_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  text: str) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(text)
    assert _error(["report", str(rules)], capsys) == [
        f"natlens: error: {rules}: this is JSON, not iptables rules: give the snapshot folder "
        "it belongs to, or the rules themselves ('iptables-save > iptables-save.txt'; "
        "nftables: 'nft -j list ruleset')"]


def test_listing_without_n(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # read as far as it tells (real pastes are often without -n), with a warning saying what
    # to run instead
    listing = tmp_path / "input.txt"
    listing.write_text(LISTING_WITHOUT_N)
    status = main(["trace", str(listing), "--in", "eth0", "--src", "198.51.100.7", "--dst",
                   "192.0.2.2"])
    err = capsys.readouterr().err.splitlines()
    assert status in (0, 1)
    assert err[0] == (
        f"natlens: warning: {listing}:3: listing without -n: names instead of addresses "
        "('anywhere'), host names read as unknown; list again with 'iptables -L -n -v' "
        "(add -x for exact counters)")


def test_live_with_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert _error(["report", "--live", "snap"], capsys) == [
        "natlens: error: snap: --live captures this host and reads no PATH: run 'natlens "
        "report snap' for the snapshot, or 'natlens report --live' alone for this host"]


LENIENT_HINT = "(--lenient reads it as far as it tells)"


def test_strict_error_says_lenient_would_read_it(cases: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    paste = cases / "real-world" / "01-synology-docker-forward-orphaned" / "literal-paste.txt"
    assert _error(["report", str(paste)], capsys) == [
        f"natlens: error: {paste}:2:1: expected the column header ('target prot opt source "
        "destination') after the 'Chain' line: '(empty — no rules)' " + LENIENT_HINT]


def test_strict_error_without_hint_when_lenient_fails_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.txt"
    # lenient reads the undeclared chain (and a table cut before COMMIT), not the bad port
    rules.write_text("*filter\n-A FOO -j BAR\n-A FOO -p tcp --dport 70000\nCOMMIT\n")
    lines = _error(["report", str(rules)], capsys)
    assert lines == [f"natlens: error: {rules}:2: rule for chain 'FOO', which was not declared "
                     "(use lenient mode to accept it): '-A FOO -j BAR'"]


def test_lenient_hint_stays_within_one_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from natlens.cli_errors import MAX_LINE

    folder = tmp_path / ("x" * 200)
    folder.mkdir()
    paste = folder / ("y" * 200 + ".txt")
    paste.write_text("Chain FORWARD (policy DROP)\n(empty — no rules)\n")
    [line] = _error(["report", str(paste)], capsys)
    assert len(line) <= MAX_LINE
    assert line.endswith("… " + LENIENT_HINT)


def test_restore_file_of_one_table_is_not_called_a_full_dump(
        cases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ufw-style restore text: no iptables-save header or footer, only *filter sections
    rules = (cases / "real-world" / "11-ufwdocker119-ufw-blocks-published-port"
             / "crash-min-lenient-duplicate-table.txt")
    status = main(["report", "--lenient", str(rules), "--no-cache"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"natlens report for {rules}",
        "",
        "no findings",
        "judged from (IPv4): tables filter (restore text, not an iptables-save dump: raw, "
        "mangle, nat, security read as empty)",
        "note: single rule file: no host or Docker data",
        f"note: {rules}:7: table filter appears again: sections merged as iptables-restore "
        "--noflush does (--restore-flush: the last section replaces the table)",
    ]


@pytest.mark.parametrize("text", [
    "# Generated by iptables-save v1.8.7 on Mon Nov 30 10:00:00 2026\n" + IP6TABLES.replace(
        "-A INPUT -s 2001:db8::/32 -j ACCEPT\n", ""),
    IP6TABLES.replace("-A INPUT -s 2001:db8::/32 -j ACCEPT\n", "")
    + "# Completed on Mon Nov 30 10:00:00 2026\n",
])
def test_iptables_save_dump_of_one_table_is_a_full_dump(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    # iptables-save prints only the tables that exist: its header or footer says it wrote this
    rules = tmp_path / "rules.txt"
    rules.write_text(text)
    status = main(["report", str(rules), "--no-cache"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert "judged from (IPv4): every table (a full dump)" in out.splitlines()
