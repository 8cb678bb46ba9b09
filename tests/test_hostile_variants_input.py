"""Other inputs of the kinds of ../shared/cases/hostile (07, 08, 10, 11, 12, 17, 18, 19, 20,
22, 26), through other files, fields and readers than the cases use: every JSON file of a
snapshot, ss.txt and sysctl.txt, the nft JSON reader, the listing reader and the packet files
of ``trace --packets`` (JSON lines and CSV).

The promise each test checks (DESIGN.md, "Command line contract"): bad input ends in one line
``natlens: error: FILE[:LINE]: ...`` naming the file (and line or JSON path), exit status 2,
never a traceback, an internal error or a quiet verdict; every echoed token is bounded.
Inputs are generated here, small (the big ones a few MB), so the module runs in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT
from hostile_input import assert_no_crash, assert_one_error, run_command, run_in_process

import natlens

FIXTURE = REPO_ROOT / "fixtures" / "default-bridge-8080"
NFT_FIXTURE = REPO_ROOT / "fixtures" / "docker29-nftables"
TRACE = ["--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.2", "--dport", "8080"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in (dst, *dst.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def _edit_json(path: Path, change: Callable[[Any], object]) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def _first(items: list[dict[str, Any]], key: str, value: object) -> dict[str, Any]:
    return next(i for i in items if i.get(key) == value)


# -- 07: JSON fields of the wrong shape or value, in fields the case does not touch -------------

def _nets(v: Any) -> list[dict[str, Any]]:
    return [n for n in v if n.get("Driver") == "bridge"]


def _endpoints(v: Any) -> list[dict[str, Any]]:
    return [e for c in v for e in c["NetworkSettings"]["Networks"].values()]


def _addr_infos(v: Any) -> list[dict[str, Any]]:
    return [a for i in v for a in i["addr_info"]]


def _set_each(items: Iterable[dict[str, Any]], key: str, value: object) -> None:
    for item in items:
        item[key] = value


WRONG_FIELDS: dict[str, tuple[str, Callable[[Any], object], str]] = {
    # name: (file, change, what the error line must hold; "" = accepted is fine)
    "network-subnet-number": ("docker-networks.json", lambda v: _set_each(
        (c for n in _nets(v) for c in n["IPAM"]["Config"]), "Subnet", 17), "$["),
    "network-subnet-prefix-33": ("docker-networks.json", lambda v: _set_each(
        (c for n in _nets(v) for c in n["IPAM"]["Config"]), "Subnet", "172.17.0.0/33"), "$["),
    "network-bridge-name-number": ("docker-networks.json", lambda v: _set_each(
        _nets(v), "Options", {"com.docker.network.bridge.name": 7}), "$["),
    "network-icc-list": ("docker-networks.json", lambda v: _set_each(
        _nets(v), "Options", {"com.docker.network.bridge.enable_icc": []}), "$["),
    "container-hostport-99999": ("docker-containers.json", lambda v: v[0]["NetworkSettings"][
        "Ports"]["80/tcp"][0].__setitem__("HostPort", "99999"), ".HostPort"),
    "container-hostip-bad": ("docker-containers.json", lambda v: v[0]["NetworkSettings"][
        "Ports"]["80/tcp"][0].__setitem__("HostIp", "1.2.3"), "$[0]"),
    "container-port-key-bad": ("docker-containers.json", lambda v: v[0]["NetworkSettings"]
                               .__setitem__("Ports", {"x/tcp": None}), "$[0]"),
    "container-ip-bad": ("docker-containers.json", lambda v: _set_each(
        _endpoints(v), "IPAddress", "172.17.0.999"), "$[0]"),
    "container-networks-list": ("docker-containers.json", lambda v: v[0]["NetworkSettings"]
                                .__setitem__("Networks", []), "$[0]"),
    "container-hostconfig-string": ("docker-containers.json",
                                    lambda v: v[0].__setitem__("HostConfig", "x"), "$[0]"),
    "addr-prefixlen-99": ("ip-addr.json", lambda v: _set_each(_addr_infos(v), "prefixlen", 99),
                          "$["),
    "addr-prefixlen-float": ("ip-addr.json", lambda v: _set_each(_addr_infos(v), "prefixlen",
                                                                 24.5), "$["),
    "addr-ifname-number": ("ip-addr.json", lambda v: v[0].__setitem__("ifname", 1), "$[0]"),
    "route-dst-prefix-40": ("ip-route.json", lambda v: v[1].__setitem__("dst", "172.17.0.0/40"),
                            "$[1]"),
    "route-gateway-word": ("ip-route.json", lambda v: v[0].__setitem__("gateway", "x.y"),
                           "$[0]"),
    "meta-sysctl-list": ("meta.json", lambda v: v.__setitem__("sysctl", []), "meta.json"),
    "meta-sysctl-word": ("meta.json", lambda v: v["sysctl"].__setitem__(
        "net.ipv4.ip_forward", "yes"), "meta.json"),
    "meta-backend-number": ("meta.json", lambda v: v.__setitem__("iptables_backend", 3),
                            "meta.json"),
}


@pytest.mark.parametrize("name", sorted(WRONG_FIELDS))
def test_07_wrong_json_field_in_other_files(name: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    file, change, where = WRONG_FIELDS[name]
    snap = _copy(FIXTURE, tmp_path / "snap")
    _edit_json(snap / file, change)
    for command in (["report", str(snap)], ["trace", str(snap), *TRACE],
                    ["exposure", str(snap), "--format", "json"],
                    ["graph", str(snap), "--format", "json"]):
        run = run_in_process(command, capsys)
        line = assert_one_error(run, f"{snap}/{file}")
        assert where in line, (where, line)


NFT_WRONG: dict[str, tuple[Callable[[Any], object], str]] = {
    "expr-string": (lambda v: _first_rule(v).__setitem__("expr", "x"), ".rule.expr"),
    "expr-item-number": (lambda v: _first_rule(v).__setitem__("expr", [5]), ".rule.expr[0]"),
    "rule-chain-unknown": (lambda v: _first_rule(v).__setitem__("chain", "nonexistent"),
                           ".rule.chain"),
    "handle-string": (lambda v: _first_rule(v).__setitem__("handle", "x"), ".rule.handle"),
    "priority-word": (lambda v: _base_chain(v).__setitem__("prio", "lots"), ".chain.prio"),
    "hook-word": (lambda v: _base_chain(v).__setitem__("hook", "sideways"), ".chain.hook"),
    "policy-number": (lambda v: _base_chain(v).__setitem__("policy", 7), ".chain.policy"),
    "map-elements-string": (lambda v: next(i for i in v["nftables"] if "map" in i)["map"]
                            .__setitem__("elem", "x"), ".map.elem"),
    "items-not-objects": (lambda v: v.__setitem__("nftables", [1]), "$.nftables[0]"),
}


def _first_rule(v: Any) -> dict[str, Any]:
    return next(i["rule"] for i in v["nftables"] if "rule" in i)


def _base_chain(v: Any) -> dict[str, Any]:
    return next(i["chain"] for i in v["nftables"] if "chain" in i and "hook" in i["chain"])


@pytest.mark.parametrize("name", sorted(NFT_WRONG))
def test_07_wrong_nft_json_field(name: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    change, where = NFT_WRONG[name]
    snap = _copy(NFT_FIXTURE, tmp_path / "snap")
    _edit_json(snap / "nft-ruleset.json", change)
    for path in (snap, snap / "nft-ruleset.json"):
        for command in (["report", str(path)], ["trace", str(path), *TRACE],
                        ["graph", str(path), "--format", "svg"]):
            line = assert_one_error(run_in_process(command, capsys),
                                    f"{snap}/nft-ruleset.json: $")
            assert where in line, (where, line)


# -- 08: encodings, nesting, number size of every JSON file and of packet files ----------------

ENCODINGS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "latin1": (lambda b: b.replace(b'"', b'"\xe9', 1), "not UTF-8"),
    "utf16": (lambda b: b.decode().encode("utf-16"), "UTF-16 text, not UTF-8"),
    "utf16be-no-bom": (lambda b: b.decode().encode("utf-16-be"), "UTF-16 text, not UTF-8"),
    "deep": (lambda b: b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "deep-objects": (lambda b: b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
    "bigint": (lambda b: b"[" + b"9" * 5000 + b"]", "number too large"),
    "huge-float": (lambda b: b"[1e999999]", "number too large or not finite"),
    "nan": (lambda b: b"[NaN]", "not finite"),
    "nul-byte": (lambda b: b[:10] + b"\0" + b[10:], "binary file, not text"),
    "cut-in-half": (lambda b: b[:len(b) // 2], "JSON"),
}
JSON_FILES = ("docker-containers.json", "docker-networks.json", "ip-addr.json", "ip-route.json")


@pytest.mark.parametrize("file", [*JSON_FILES, "nft-ruleset.json"])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_08_every_json_file_encoding_and_size(file: str, encoding: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    convert, reason = ENCODINGS[encoding]
    snap = _copy(NFT_FIXTURE if file == "nft-ruleset.json" else FIXTURE, tmp_path / "snap")
    (snap / file).write_bytes(convert((snap / file).read_bytes()))
    assert_one_error(run_in_process(["report", str(snap)], capsys), f"{snap}/{file}", reason)


@pytest.mark.parametrize("file", JSON_FILES)
def test_08_utf8_bom_accepted_in_every_json_file(file: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    snap = _copy(FIXTURE, tmp_path / "snap")
    (snap / file).write_bytes(b"\xef\xbb\xbf" + (snap / file).read_bytes())
    run = run_in_process(["report", str(snap)], capsys)
    assert (run.status, run.err) == (0, "")


PACKET_LINE = '{"in":"eth0","src":"198.51.100.7","dst":"192.0.2.2","dport":8080}\n'
BAD_PACKET_FILES: dict[str, tuple[bytes, str]] = {
    # name: (file content, what the error line holds after FILE)
    "jsonl-bigint": (b'{"in":"eth0","src":"198.51.100.7","dst":"192.0.2.2","dport":'
                     + b"9" * 5000 + b"}\n", ":1: not a JSON object: number too large"),
    "jsonl-deep": (b'{"in":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", ":1: not a JSON object"),
    "jsonl-cut": (PACKET_LINE.encode() + b'{"in":"eth0","src":"198.5', ":2: not a JSON object"),
    "jsonl-latin1": (b'{"in":"eth\xe90","src":"198.51.100.7","dst":"192.0.2.2"}\n',
                     ":1: not UTF-8"),
    "jsonl-utf16": (PACKET_LINE.encode("utf-16"), ": UTF-16 text, not UTF-8"),
    "jsonl-nan-port": (b'{"in":"eth0","src":"198.51.100.7","dst":"192.0.2.2","dport":NaN}\n',
                       ":1: dport"),
    "csv-lone-cr": (b"in,src,dst\reth0,198.51.100.7,192.0.2.2\r", ":1: bad CSV"),
    "csv-unterminated-quote": (b'in,src,dst,dport\neth0,198.51.100.7,192.0.2.2,"8080\n',
                               ":2: bad CSV"),
    "csv-huge-cell": (b"in,src,dst,dport\neth0,198.51.100.7,192.0.2.2," + b"8" * 2_000_000
                      + b"\n", ":2: bad CSV"),
    "csv-nul": (b"in,src,dst\neth0,198.51.100.7,192.0.2.2\x00\n", ": binary file"),
    "bom-only": (b"\xef\xbb\xbf", ": no packets given"),
}


@pytest.mark.parametrize("name", sorted(BAD_PACKET_FILES))
def test_08_bad_packet_files(name: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    content, reason = BAD_PACKET_FILES[name]
    packets = tmp_path / name
    packets.write_bytes(content)
    for fmt in ("table", "json"):
        run = run_in_process(["trace", str(FIXTURE), "--packets", str(packets), "--format", fmt],
                             capsys)
        line = assert_one_error(run, f"{packets}{reason}")
        assert len(line) < 600


# -- 10: empty input of the other readers ---------------------------------------------------------

@pytest.mark.parametrize("content", ['{"nftables": []}',
                                     '{"nftables": [{"metainfo": {"json_schema_version": 1}}]}'])
def test_10_nft_file_without_tables_is_not_a_clean_host(content: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    path = tmp_path / "nft-ruleset.json"
    path.write_text(content)
    for command in (["report", str(path)], ["trace", str(path), *TRACE]):
        assert_one_error(run_in_process(command, capsys), f"{path}: no rules (no table in the "
                         "nftables ruleset; was nft run as root?); --allow-empty accepts it")
    run = run_in_process(["report", str(path), "--allow-empty"], capsys)
    assert run.status == 0, run.err
    assert f"{path}: no rules at all (accepted: --allow-empty)" in run.out
    # in a snapshot folder whose iptables-save.txt is empty too (Docker 29 on nftables)
    snap = _copy(NFT_FIXTURE, tmp_path / "snap")
    (snap / "nft-ruleset.json").write_text(content)
    assert_one_error(run_in_process(["report", str(snap)], capsys), "no rules")


@pytest.mark.parametrize("content", [b"", b"\n\n", b"# only a comment\n", b"\xef\xbb\xbf",
                                     b"in,src,dst\n", b"in,src,dst\n,,\n"])
def test_10_packet_file_without_packets(content: bytes, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    packets = tmp_path / "p.csv"
    packets.write_bytes(content)
    run = run_in_process(["trace", str(FIXTURE), "--packets", str(packets)], capsys)
    assert_one_error(run, f"{packets}", "no packets given")


# -- 11: an address of the other family in a target, in other targets and readers ----------------

@pytest.mark.parametrize(("name", "text", "reason"), [
    ("snat", "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j SNAT --to-source 2001:db8::1\n"
     "COMMIT\n", "IPv6 address 2001:db8::1 in iptables rules (SNAT --to-source)"),
    ("netmap", "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j NETMAP --to 2001:db8::/64\n"
     "COMMIT\n", "in iptables rules (NETMAP --to)"),
    ("tproxy", "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j TPROXY --on-port 1 "
     "--on-ip ::1\nCOMMIT\n", "in iptables rules (TPROXY --on-ip)"),
    ("ip6-dnat-v4", "# Generated by ip6tables-save v1.8.9\n*nat\n:PREROUTING ACCEPT [0:0]\n"
     "-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.0.2.1:80\nCOMMIT\n",
     "IPv4 address 192.0.2.1 in ip6tables rules (DNAT --to-destination)"),
    ("listing-dnat", "Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)\n pkts bytes target  "
     "   prot opt in     out     source               destination\n    0     0 DNAT       tcp  "
     "--  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:80 to:[::1]:80\n",
     "IPv6 address [::1] in iptables rules (DNAT --to-destination)"),
    ("rules-s-dnat", "-P PREROUTING ACCEPT\n-A PREROUTING -p tcp --dport 80 -j DNAT "
     "--to-destination [::1]:80\n", "IPv6 address [::1] in iptables rules"),
])
def test_11_other_family_address_in_a_target(name: str, text: str, reason: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"{name}.txt"
    path.write_text(text)
    for command in (["parse", str(path)], ["trace", str(path), *TRACE]):
        assert_one_error(run_in_process(command, capsys), f"{path}:", reason)


# -- 12: line separators inside a line, in the other line readers ------------------------------

SEPARATORS = ["\u2028", "\x85", "\x1c", "\x0b", "\x0c"]


@pytest.mark.parametrize("char", SEPARATORS)
def test_12_separator_in_an_ss_process_name_stays_in_its_line(
        char: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A process name (``comm``) may hold any character but ``/`` and NUL; ``ss`` prints it
    quoted in the line."""
    snap = _copy(NFT_FIXTURE, tmp_path / "snap")
    (snap / "ss.txt").write_text(
        "Netid State Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
        f'tcp LISTEN 0 4096 0.0.0.0:2222 0.0.0.0:* users:(("sshd{char}x",pid=7,fd=3))\n')
    run = run_in_process(["exposure", str(snap), "--format", "json"], capsys)
    assert (run.status, run.err) == (0, ""), run.err
    ports = {c["port"] for c in json.loads(run.out)["cells"]}
    assert 2222 in ports


@pytest.mark.parametrize("char", SEPARATORS)
def test_12_separator_in_a_sysctl_value_stays_in_its_line(
        char: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = _copy(NFT_FIXTURE, tmp_path / "snap")
    with (snap / "sysctl.txt").open("a") as fh:
        fh.write(f"kernel.hostname = a{char}b\n")
    run = run_in_process(["report", str(snap)], capsys)
    assert run.status in (0, 1), run.err
    assert run.err == ""


@pytest.mark.parametrize("char", SEPARATORS)
def test_12_separator_in_a_listing_comment_and_a_packet_cell(
        char: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "l.txt"
    listing.write_text(
        "Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n pkts bytes target     prot opt in     "
        "out     source               destination\n    0     0 DROP       all  --  *      *    "
        f"   10.0.0.1             0.0.0.0/0            /* a{char}b */\n")
    run = run_in_process(["parse", str(listing), "--format", "json"], capsys)
    assert (run.status, run.err) == (0, ""), run.err
    packets = tmp_path / "p.csv"
    packets.write_text(f"in,src,dst\neth0,198.51.100.7,192.0.2.2\n#{char}x\n")
    run = run_in_process(["trace", str(listing), "--packets", str(packets)], capsys)
    assert_no_crash(run)
    assert run.out.count("\n") == 1, run.out  # one packet, one line


# -- 17: Unicode digits where a number is read -----------------------------------------------------

_HEAD = ("Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n"
         "{num} pkts bytes target     prot opt in     out     source               destination\n")
_ROW = "    0     0 {target}     all  --  *      *       0.0.0.0/0            0.0.0.0/0\n"


@pytest.mark.parametrize(("name", "text", "reason"), [
    ("listing-references", _HEAD.format(num="") + _ROW.format(target="FOO   ")
     + "\nChain FOO (\u00b2 references)\n", "bad chain line"),
    ("listing-references-5000-digits", _HEAD.format(num="") + _ROW.format(target="FOO   ")
     + "\nChain FOO (" + "9" * 5000 + " references)\n", "bad chain line"),
    ("listing-rule-number", _HEAD.format(num="num  ") + "\u00b2    "
     + _ROW.format(target="ACCEPT"), "bad rule number"),
    ("listing-rule-number-5000-digits", _HEAD.format(num="num  ") + "9" * 5000 + "    "
     + _ROW.format(target="ACCEPT"), "bad rule number"),
    ("connlimit", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m connlimit "
     "--connlimit-above \u00b2 -j REJECT\nCOMMIT\n", "invalid number"),
    ("connlimit-upto-arabic-indic", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m connlimit "
     "--connlimit-upto \u0663 -j ACCEPT\nCOMMIT\n", "invalid number"),
    ("multiport", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m multiport --dports 1,\u00b2 "
     "-j ACCEPT\nCOMMIT\n", "invalid port/service"),
    ("port-dash-range", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport \u00b2-3 "
     "-j ACCEPT\nCOMMIT\n", "invalid port/service"),
    ("rule-counter", "*filter\n:INPUT ACCEPT [0:0]\n[\u00b2:0] -A INPUT -j ACCEPT\nCOMMIT\n",
     "bad counters"),
    ("dnat-port", "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DNAT "
     "--to-destination 10.0.0.1:\u00b2\nCOMMIT\n", "bad port range"),
])
def test_17_unicode_digits_in_rules(name: str, text: str, reason: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"{name}.txt"
    path.write_text(text)
    line = assert_one_error(run_in_process(["parse", str(path)], capsys), f"{path}:", reason)
    assert len(line) < 600


LISTING_HEAD = ("Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n pkts bytes target     prot opt "
                "in     out     source               destination\n")


@pytest.mark.parametrize(("target", "words"), [
    ("ACCEPT", "tcp dpt:\u00b2"), ("ACCEPT", "tcp dpt:\u0663"), ("LOG", "LOG flags 0 level \u00b2"),
    ("ACCEPT", "length \u00b2"), ("ACCEPT", "owner UID match \u00b2"),
    ("ACCEPT", "#conn src/\u00b2 > 2"), ("ACCEPT", "length 1:\u00b2"),
])
def test_17_unicode_digits_in_listing_words(target: str, words: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Words of an ``iptables -L`` listing read with ``str.isdigit()`` then ``int()`` took
    ``'\u00b2'`` for a number: now an unknown match (kept, flagged) or an error line."""
    path = tmp_path / "listing.txt"
    path.write_text(LISTING_HEAD + f"    0     0 {target:<10} tcp  --  *      *       0.0.0.0/0"
                    f"            0.0.0.0/0            {words}\n")
    for command in (["parse", str(path)], ["report", str(path)]):
        assert_no_crash(run_in_process(command, capsys))


def test_17_unicode_digit_in_an_nft_priority_offset(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nft-ruleset.json"
    path.write_text((NFT_FIXTURE / "nft-ruleset.json").read_text())
    _edit_json(path, lambda v: _base_chain(v).__setitem__("prio", "filter + \u00b2"))
    assert_one_error(run_in_process(["report", str(path)], capsys), ".chain.prio",
                     "bad priority offset")


@pytest.mark.parametrize("value", ["0x\u00b2", "0x1ff"])
def test_17_tos_value_iptables_refuses(value: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tos.txt"
    path.write_text(f"*mangle\n:INPUT ACCEPT [0:0]\n-A INPUT -j TOS --set-tos {value}\nCOMMIT\n")
    assert_one_error(run_in_process(["parse", str(path)], capsys), f"{path}:3:", "invalid TOS")


# (option words, value) of the tos match and TOS target: libxtables xtopt_parse_tosmask reads
# --tos/--set-tos (numbers 0..255 as xtables_strtoui reads them, /mask, names in any case);
# --and/--or/--xor-tos are XTTYPE_UINT8. Whether iptables refuses each is asked of the tool.
TOS_CASES = [(option, value) for option in ("-m tos --tos", "-j TOS --set-tos")
             for value in ("0x10", "16", "020", "0X10", "+5", "0xff", "0x10/0x3f", "0x10/+3",
                           "Minimize-Delay", "normal-service", "0x1ff", "0x100", "256", "0x\u00b2",
                           "\u00b9", "08", "-1", "-0", "0x", "5x", "0x10/", "0x10/x", "0x10/0x1ff",
                           "0x10/-0", "Minimize-Delay/0x3f", "lowdelay")] + [
    (f"-j TOS {option}", value) for option in ("--and-tos", "--or-tos", "--xor-tos")
    for value in ("0x10", "010", "0xff", "0x100", "0x\u00b2", "-0", "0x10/0x3f", "Minimize-Cost")]


def _tos_dump(option: str, value: str) -> str:
    return f'*mangle\n:INPUT ACCEPT [0:0]\n-A INPUT {option} "{value}" -j ACCEPT\nCOMMIT\n' \
        if option.startswith("-m") else \
        f'*mangle\n:INPUT ACCEPT [0:0]\n-A INPUT {option} "{value}"\nCOMMIT\n'


@pytest.fixture(scope="module")
def iptables_netns() -> Iterator[str]:
    from netns_helpers import namespaces, needs_root

    needs_root("iptables-legacy-restore", "iptables")
    with namespaces("nlxt-") as names:
        yield names[0]


@pytest.mark.kernel
@pytest.mark.parametrize(("option", "value"), TOS_CASES, ids=[f"{o.split()[-1]}={v!r}"
                                                              for o, v in TOS_CASES])
def test_17_tos_values_read_as_iptables_reads_them(option: str, value: str,
                                                   iptables_netns: str) -> None:
    """natlens refuses a TOS value exactly when both backends' ``iptables-restore --test``
    do; what it accepts it saves as ``iptables-save`` prints it after a real restore."""
    from netns_helpers import run

    text = _tos_dump(option, value)
    codes = {backend: subprocess.run(
        ["ip", "netns", "exec", iptables_netns, f"iptables-{backend}-restore", "--test"],
        input=text, text=True, capture_output=True, check=False, timeout=30).returncode
        for backend in ("nft", "legacy")}
    refused = codes["nft"] != 0
    assert refused is (codes["legacy"] != 0), codes
    if refused:
        with pytest.raises(natlens.ParseError, match="invalid TOS"):
            natlens.parse_save(text)
        return
    saved = natlens.to_save(natlens.parse_save(text))
    run("iptables-nft-restore", ns=iptables_netns, stdin=text)
    kernel = run("iptables-nft-save", "-t", "mangle", ns=iptables_netns)
    rule = next(ln for ln in kernel.splitlines() if ln.startswith("-A INPUT"))
    assert rule in saved.splitlines(), (rule, saved)


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("icmp_type", "\u00b2", "unknown icmp type"),
    ("dport", "\u00b2", "port number"),
    ("sport", "\u0663", "port number"),
    ("proto", "\u00b2", "unknown protocol"),
    ("mark", "0x\u00b2", "invalid mark"),
])
def test_17_unicode_digits_in_packet_files(field: str, value: str, reason: str,
                                           tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    packet = {"in": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", field: value}
    if field == "icmp_type":
        packet["proto"] = "icmp"
    packets = tmp_path / "p.jsonl"
    packets.write_text(json.dumps(packet) + "\n")
    run = run_in_process(["trace", str(FIXTURE), "--packets", str(packets)], capsys)
    assert_one_error(run, f"{packets}:1:", reason)


def test_17_ss_port_out_of_range_names_file_and_line(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    snap = _copy(NFT_FIXTURE, tmp_path / "snap")
    (snap / "ss.txt").write_text("Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port"
                                 "Process\ntcp LISTEN 0 4096 0.0.0.0:99999 0.0.0.0:* "
                                 'users:(("x",pid=' + "9" * 5000 + ",fd=3))\n")
    for command in ("report", "exposure"):
        assert_one_error(run_in_process([command, str(snap)], capsys),
                         f"{snap}/ss.txt:2: bad port 99999")


# -- 18: every echoed token bounded ---------------------------------------------------------------

BIG = 1_000_000


@pytest.mark.parametrize(("name", "where", "content"), [
    ("ss-line", "ss.txt", "x" * BIG + "\n"),
    ("ss-address", "ss.txt", "Netid State\ntcp LISTEN 0 1 " + "1" * BIG + ":80 *:*\n"),
    ("sysctl-name", "sysctl.txt", "n" * BIG + "\n"),
    ("nft-chain-name", "nft-ruleset.json", None),
    ("container-name", "docker-containers.json", None),
    ("packet-interface", "packets", '{"in":"' + "e" * BIG + '","src":"1.2.3.4","dst":"5.6.7.8"}\n'),
    ("packet-source", "packets", '{"in":"eth0","src":"' + "1" * BIG + '","dst":"5.6.7.8"}\n'),
    ("packet-field-name", "packets", '{"' + "k" * BIG + '":1}\n'),
    ("csv-column", "packets", "in,src,dst," + "c" * 100_000 + "\n"),
    ("listing-chain", "rules", "Chain " + "C" * BIG + " (policy ACCEPT 0 packets, 0 bytes)\n"),
    ("save-target-option", "rules", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j REJECT "
     "--reject-with " + "r" * BIG + "\nCOMMIT\n"),
    ("save-interface", "rules", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i " + "e" * BIG
     + " -j ACCEPT\nCOMMIT\n"),
])
def test_18_error_lines_stay_short(name: str, where: str, content: str | None, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    if where == "rules":
        path = tmp_path / "rules.txt"
        path.write_text(content or "")
        run = run_in_process(["parse", str(path)], capsys)
    elif where == "packets":
        path = tmp_path / "p.txt"
        path.write_text(content or "")
        run = run_in_process(["trace", str(FIXTURE), "--packets", str(path)], capsys)
    else:
        snap = _copy(NFT_FIXTURE, tmp_path / "snap")
        path = snap / where
        if name == "nft-chain-name":
            _edit_json(path, lambda v: _first_rule(v).__setitem__("chain", "c" * BIG))
        elif name == "container-name":
            _edit_json(path, lambda v: v[0].__setitem__("Name", ["/" + "n" * BIG]))
        else:
            path.write_text(content or "")
        run = run_in_process(["report", str(snap)], capsys)
    line = assert_one_error(run, str(path))
    assert len(line.encode()) < 600, len(line)


@pytest.mark.parametrize("where", ["save", "listing"])
def test_18_huge_unknown_target_name_gives_a_short_error(where: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """iptables takes match and target names of at most 28 bytes: a 5 MB one is refused with
    one short line (it was kept, and every trace line and note quoted it whole)."""
    name = "T" * 5_000_000
    path = tmp_path / "rules.txt"
    path.write_text(f"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j {name}\nCOMMIT\n" if where == "save"
                    else LISTING_HEAD + f"    0     0 {name}  all  --  *      *       0.0.0.0/0"
                    "            0.0.0.0/0\n")
    for command in (["parse", str(path)], ["trace", str(path), *TRACE]):
        line = assert_one_error(run_in_process(command, capsys), f"{path}:3:",
                                "invalid target name")
        assert len(line.encode()) < 600, len(line)


NAME_CASES = [(f"{option} {name}", len(name.encode()) > 28)
              for option, names in (("-j", ("T" * 28, "T" * 29, "\u00e9" * 14, "\u00e9" * 15)),
                                    ("-g", ("C" * 29,)),
                                    ("-m", ("m" * 28, "m" * 29, "\u00e9" * 15)))
              for name in names]


def _name_dump(words: str) -> str:
    jump = " -j ACCEPT" if words.startswith("-m") else ""
    return f"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT {words}{jump}\nCOMMIT\n"


@pytest.mark.parametrize(("words", "too_long"), NAME_CASES,
                         ids=[f"{w[:2]}-{len(w) - 3}" for w, _ in NAME_CASES])
def test_18_extension_name_bound_on_both_parser_paths(words: str, too_long: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path (natlens.parse.fastrule) and the full parser refuse the same names with
    the same line; a name within the bound is kept whole in the saved form."""
    from natlens.parse import save as save_module

    text = _name_dump(words)
    if not too_long:
        assert words in natlens.to_save(natlens.parse_save(text))
        return
    with pytest.raises(natlens.ParseError, match="bytes max") as fast:
        natlens.parse_save(text)
    monkeypatch.setattr(save_module, "parse_line_fast", lambda *a, **k: None)
    with pytest.raises(natlens.ParseError) as full:
        natlens.parse_save(text)
    assert str(fast.value) == str(full.value)


@pytest.mark.kernel
@pytest.mark.parametrize(("words", "too_long"), NAME_CASES,
                         ids=[f"{w[:2]}-{len(w) - 3}" for w, _ in NAME_CASES])
def test_18_extension_name_bound_is_iptables_bound(words: str, too_long: bool,
                                                   iptables_netns: str) -> None:
    """Both backends' ``iptables-restore --test`` refuse a name of more than 28 bytes with
    "Invalid match/target name ... (28 chars max)" (a shorter unknown one fails later, as
    "Couldn't load"): the bound natlens applies."""
    for backend in ("nft", "legacy"):
        done = subprocess.run(["ip", "netns", "exec", iptables_netns, f"iptables-{backend}-restore",
                               "--test"], input=_name_dump(words), text=True,
                              capture_output=True, check=False, timeout=30)
        assert ("chars max" in done.stderr) is too_long, (backend, done.stderr)


@pytest.mark.parametrize("option", [["--iface", "e" * BIG + "=10.0.0.1/24"],
                                    ["--host-addr", "1" * BIG], ["--src", "1" * BIG],
                                    ["--in", "e" * BIG], ["--mark", "9" * BIG],
                                    ["--proto", "p" * BIG], ["--icmp-type", "t" * BIG]])
def test_18_long_command_line_values_give_short_errors(option: list[str],
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    argv = ["trace", str(FIXTURE), "--in", "eth0", "--src", "198.51.100.7", "--dst",
            "192.0.2.2", "--proto", "icmp" if option[0] == "--icmp-type" else "tcp", *option]
    line = assert_one_error(run_in_process(argv, capsys))
    assert len(line.encode()) < 600, len(line)


# -- 19: endless or special files where a file is read ---------------------------------------------

@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_19_devices_as_packet_file_or_nft_file(device: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = run_in_process(["trace", str(FIXTURE), "--packets", device], capsys)
    assert_one_error(run, f"{device}: binary file, not text")


def test_19_endless_packet_stream_stops_at_the_limit() -> None:
    run = run_command(["trace", str(FIXTURE), "--packets", "-"],
                      env={"NATLENS_MAX_INPUT": "1M"},
                      shell_redirect="< <(yes -- '{\"src\":\"1.2.3.4\",\"dst\":\"5.6.7.8\"}')")
    assert_one_error(run, "<stdin>: larger than the 1 MiB input limit")


SPECIAL_MEMBERS = {
    # name: (member file, how to make it, what the error says it is)
    "fifo-containers": ("docker-containers.json", "fifo", "a FIFO"),
    "fifo-main-dump": ("iptables-save.txt", "fifo", "a FIFO"),
    "fifo-nft": ("nft-ruleset.json", "fifo", "a FIFO"),
    "zero-main-dump": ("iptables-save.txt", "/dev/zero", "a character device"),
    "urandom-addresses": ("ip-addr.json", "/dev/urandom", "a character device"),
    "urandom-ss": ("ss.txt", "/dev/urandom", "a character device"),
    "null-other-backend": ("iptables-legacy-save.txt", "/dev/null", "a character device"),
}


def _special_member(tmp_path: Path, name: str) -> tuple[Path, Path, str]:
    member, make, what = SPECIAL_MEMBERS[name]
    snap = _copy(FIXTURE, tmp_path / "snap")
    target = snap / member
    target.unlink(missing_ok=True)
    if make == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(make)
    return snap, target, what


@pytest.mark.parametrize("name", sorted(SPECIAL_MEMBERS))
def test_19_special_file_in_a_snapshot_folder_is_refused_at_once(name: str,
                                                                  tmp_path: Path) -> None:
    """A FIFO would block ``open`` for ever, a device be read up to the input limit (by the
    cache key first): both are refused before anything reads them, cache on or off."""
    snap, target, what = _special_member(tmp_path, name)
    for extra in ([], ["--no-cache"]):
        try:
            run = run_command(["report", str(snap), *extra], env={"NATLENS_MAX_INPUT": "64M"},
                              timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("natlens did not answer: it opened the FIFO")
        assert_one_error(run, f"{target}: not a regular file ({what})")


@pytest.mark.parametrize("name", ["urandom-addresses", "zero-main-dump"])
def test_19_cache_key_reads_no_device(name: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``key_for`` gives no key to a folder holding a device (``load`` then reports it),
    without reading the device; the same folder with a regular file in its place has one."""
    from natlens.snapshot_cache import key_for

    snap, _, _ = _special_member(tmp_path, name)
    assert key_for(snap, ()) is None
    (snap / SPECIAL_MEMBERS[name][0]).unlink()
    (snap / SPECIAL_MEMBERS[name][0]).write_text("[]" if name.startswith("urandom") else "")
    assert key_for(snap, ()) is not None


def test_19_pipe_named_on_the_command_line_is_read(tmp_path: Path) -> None:
    """A rule file named on the command line may be a stream on purpose, like ``-``:
    ``natlens report <(iptables-save)``."""
    import shlex

    rules = shlex.quote(str(FIXTURE / "iptables-save.txt"))
    run = run_command(["report"], shell_redirect=f"<(cat {rules})")
    assert_no_crash(run)
    assert run.status in (0, 1), run.err
    assert "natlens report for /dev/fd/" in run.out, run.out[:500]


# -- 20: other tokenizers on long glued or repeated pieces ---------------------------------------

@pytest.mark.parametrize(("name", "args", "text"), [
    ("lenient-unquoted-comment", ["--lenient"], "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m "
     "comment --comment " + "w " * 300_000 + "-j ACCEPT\nCOMMIT\n"),
    ("listing-glued-comments", [], _HEAD.format(num="") + "    0     0 ACCEPT     all  --  *      "
     "*       0.0.0.0/0            0.0.0.0/0            /* " + "a*/ /*" * 100_000 + " */\n"),
    ("listing-many-words", [], _HEAD.format(num="") + "    0     0 ACCEPT     tcp  --  *      *  "
     "     0.0.0.0/0            0.0.0.0/0            " + "tcp dpt:80 " * 100_000 + "\n"),
    ("backslashes", [], "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \""
     + "\\\\" * 500_000 + "\" -j ACCEPT\nCOMMIT\n"),
    ("many-arguments", [], "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT"
     + " -m comment --comment x" * 100_000 + " -j ACCEPT\nCOMMIT\n"),
    # what may be a pasted shell prompt line (natlens.parse.prompt) ahead of the text
    ("prompt-glued-sigils", [], "a>" * 300_000 + "x\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"),
    ("prompt-glued-sigils-listing", [], _HEAD.format(num="") + _ROW.format(target="ACCEPT")
     + "a>" * 300_000 + "x\n"),
    ("zsh-prompt-glued", [], "➜  " + "git:(" * 200_000 + " sudo iptables -L -n\n"
     + _HEAD.format(num="")),
    ("sudo-many-options", [], "$ sudo " + "-E " * 200_000 + "iptables -S\n-P INPUT ACCEPT\n"),
])
def test_20_long_lines_of_other_shapes_parse_in_bounded_time(name: str, args: list[str],
                                                             text: str, tmp_path: Path) -> None:
    """A hang guard (the subprocess timeout), not a timing: each of these parses in about a
    second at this size when linear, minutes when quadratic."""
    path = tmp_path / f"{name}.txt"
    path.write_text(text)
    assert_no_crash(run_command(["parse", str(path), "--no-cache", *args], timeout=60))


def test_20_csv_packet_file_of_glued_quotes(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    packets = tmp_path / "p.csv"
    packets.write_text('in,src,dst\n"' + '""' * 300_000 + '",198.51.100.7,192.0.2.2\n')
    run = run_in_process(["trace", str(FIXTURE), "--packets", str(packets)], capsys)
    assert_one_error(run, f"{packets}:2: bad CSV")


# -- 22: a dump of the other family under another file name ------------------------------------

@pytest.mark.parametrize(("dump", "saved_as"), [
    ("ip6tables-save.txt", "iptables-legacy-save.txt"),
    ("iptables-save.txt", "ip6tables-legacy-save.txt"),
])
def test_22_other_family_in_the_other_backend_file(dump: str, saved_as: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    snap = _copy(REPO_ROOT / "fixtures" / "split-legacy-nft", tmp_path / "snap")
    (snap / saved_as).write_text((REPO_ROOT / "fixtures" / "ipv6" / dump).read_text())
    assert_one_error(run_in_process(["report", str(snap)], capsys), f"{snap}/{saved_as}:")


# ip6tables -L -n -v of rules without addresses: only the "any" column, ::/0, says IPv6
_V6_ANY_LISTING = (
    "Chain FORWARD (policy DROP 0 packets, 0 bytes)\n"
    " pkts bytes target     prot opt in     out     source               destination\n"
    "    0     0 DOCKER-USER  0    --  *      *       ::/0                 ::/0\n"
    "    0     0 ACCEPT     0    --  docker0 *       ::/0                 ::/0\n\n"
    "Chain DOCKER-USER (1 references)\n"
    " pkts bytes target     prot opt in     out     source               destination\n"
    "    0     0 DROP       6    --  eth0   *       ::/0                 ::/0"
    "                 tcp dpt:22\n")


@pytest.mark.parametrize("saved_as", ["iptables-save.txt", "iptables-legacy-save.txt"])
def test_22_ip6tables_listing_of_any_addresses_saved_as_ipv4(
        saved_as: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = _copy(REPO_ROOT / "fixtures" / "split-legacy-nft", tmp_path / "snap")
    (snap / saved_as).write_text(_V6_ANY_LISTING)
    assert_one_error(run_in_process(["report", str(snap)], capsys),
                     f"{snap}/{saved_as}:3:50: IPv6 address '::/0' in an IPv4 listing")


def test_22_nft_json_saved_as_iptables_save(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    snap = _copy(FIXTURE, tmp_path / "snap")
    shutil.copy(NFT_FIXTURE / "nft-ruleset.json", snap / "iptables-save.txt")
    assert_one_error(run_in_process(["report", str(snap)], capsys),
                     f"{snap}/iptables-save.txt")


# -- 26: present but unusable files are errors naming them --------------------------------------

@pytest.mark.parametrize(("file", "make", "reason"), [
    ("ss.txt", "dir", "is a directory, not a file"),
    ("sysctl.txt", "loop", "cannot read: Too many levels of symbolic links"),
    ("nft-ruleset.json", "dir", "is a directory, not a file"),
    ("ip-route6.json", "dangling", "broken symbolic link"),
    ("nft-ruleset.json", "loop", "cannot read: Too many levels of symbolic links"),
])
def test_26_unusable_files_of_a_snapshot_folder(file: str, make: str, reason: str,
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    snap = _copy(NFT_FIXTURE, tmp_path / "snap")
    path = snap / file
    if path.exists():
        path.unlink()
    if make == "dir":
        path.mkdir()
    elif make == "loop":
        path.symlink_to(file)
    else:
        path.symlink_to("nowhere")
    assert_one_error(run_in_process(["report", str(snap)], capsys), f"{path}: {reason}")


@pytest.mark.parametrize("make", ["dir", "loop", "dangling"])
def test_26_unusable_packet_file(make: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.jsonl"
    if make == "dir":
        path.mkdir()
    elif make == "loop":
        path.symlink_to("p.jsonl")
    else:
        path.symlink_to("nowhere")
    run = run_in_process(["trace", str(FIXTURE), "--packets", str(path)], capsys)
    line = assert_one_error(run, str(path))
    assert stat.S_ISLNK(path.lstat().st_mode) or "directory" in line

