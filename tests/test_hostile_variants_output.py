"""Other inputs of the kinds of ../shared/cases/hostile (01, 02, 04, 05, 06, 14, 15, 16, 24)
through other fields, commands and outputs than the cases use: snapshot values that reach
``ip`` (verify) or an ``nft -f`` script (nft text conversion), hostile names of Docker networks
and nftables tables reaching fixes and pictures, block lists and jump chains of other shapes,
every output channel on a full disk or a closed stdout, unreadable inputs of other kinds.

Complexity is checked by counting comparisons or by traced memory, never by wall-clock time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT
from hostile_input import Run, assert_no_crash, assert_one_error, run_command, run_in_process
from hostile_output import (
    assert_dot,
    assert_json,
    assert_mermaid,
    assert_svg,
    assert_text_safe,
    run_fix,
)

import natlens
from natlens.audit import audit_text, coverage
from natlens.audit.coverage import check_dead_rules, covers
from natlens.model import Rule

FIXTURE = REPO_ROOT / "fixtures" / "default-bridge-8080"
NFT_FIXTURE = REPO_ROOT / "fixtures" / "docker29-nftables"
TRACE = ["--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.2", "--dport", "8080"]
HOSTILE = "\x1b[2J\x1b]0;t\x07\u202e$(touch pwnV)<b>&\"'`]]>--"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in (dst, *dst.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def _edit_json(path: Path, change: Callable[[Any], object]) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def _root() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


# -- 01: snapshot values that would reach `ip` in verify --------------------------------------

INJECTION = "x\nnetns add nlhvinj\n#"

VERIFY_INJECTIONS: dict[str, tuple[str, Callable[[Any], object], str]] = {
    "route-dev": ("ip-route.json", lambda v: v[1].__setitem__("dev", "docker0 " + INJECTION),
                  "$[1].dev"),
    "address-master": ("ip-addr.json", lambda v: v[3].__setitem__("master", INJECTION),
                       "$[3].master"),
    "bridge-name-option": ("docker-networks.json", lambda v: [
        n.__setitem__("Options", {"com.docker.network.bridge.name": "br0;" + INJECTION})
        for n in v if n["Driver"] == "bridge"], "com.docker.network.bridge.name"),
    "container-mac": ("docker-containers.json", lambda v: [
        e.__setitem__("MacAddress", "02:42:ac:11:00:02 " + INJECTION)
        for c in v for e in c["NetworkSettings"]["Networks"].values()], ".MacAddress"),
    "route-type": ("ip-route.json", lambda v: v[1].__setitem__("type", "blackhole " + INJECTION),
                   "$[1].type"),
    "sysctl-value": ("meta.json", lambda v: v["sysctl"].__setitem__(
        "net.ipv4.ip_forward", "1\nkernel.panic=1"), "net.ipv4.ip_forward"),
}


@pytest.mark.kernel
@pytest.mark.skipif(not _root(), reason="needs root and ip (verify)")
@pytest.mark.parametrize("name", sorted(VERIFY_INJECTIONS))
def test_01_verify_refuses_values_ip_would_run(name: str, tmp_path: Path) -> None:
    file, change, where = VERIFY_INJECTIONS[name]
    snap = _copy(FIXTURE, tmp_path / "snap")
    _edit_json(snap / file, change)
    run = run_command(["verify", str(snap), "--packets", "3"], timeout=300)
    assert_one_error(run, f"{snap}/{file}", where)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    assert "nlhvinj" not in listed.stdout


@pytest.mark.kernel
@pytest.mark.skipif(not _root() or shutil.which("nft") is None, reason="needs root, ip and nft")
@pytest.mark.parametrize("gap", [" \\\n", " # a comment\n", "\t", "\n\n"])
def test_01_nft_text_include_is_refused_however_written(gap: str, tmp_path: Path) -> None:
    """nft's scanner takes ``include`` and its file name with anything it skips between them;
    an included file would be read as root (here one that would add a table)."""
    included = tmp_path / "other.nft"
    included.write_text("table ip nlhvincluded {\n}\n")
    rules = tmp_path / "rules.nft"
    rules.write_text(f'table ip t {{\n}}\ninclude{gap}"{included}"\n')
    run = run_command(["parse", str(rules), "--format", "json"])
    assert_one_error(run, str(rules), "'include' statements")
    assert "nlhvincluded" not in run.out


# -- 02: natlens never changes the host ----------------------------------------------------------

def test_02_cache_clear_does_not_follow_a_linked_cache_folder(tmp_path: Path) -> None:
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    home = tmp_path / "xdg"
    home.mkdir()
    (home / "natlens").symlink_to(victim, target_is_directory=True)
    run = run_command(["cache", "clear"], env={"XDG_CACHE_HOME": str(home)})
    assert_no_crash(run)
    assert (victim / "keep.txt").read_text() == "mine"


@pytest.mark.kernel
@pytest.mark.skipif(not _root(), reason="needs root and ip")
def test_02_verify_cleanup_leaves_other_namespaces(tmp_path: Path) -> None:
    names = [f"nlhv{os.getpid()}", f"nlv-x{os.getpid()}", f"nlv-{os.getpid()}"]
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert_no_crash(run_command(["verify", "--cleanup"]))
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                check=False).stdout
        for name in names:
            assert name in listed.split() or f"{name} " in listed, (name, listed)
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


# -- 04: fixes built from other fields run only their own argv ---------------------------------

def _hostile_ip6(tmp: Path) -> Path:
    text = (REPO_ROOT / "fixtures" / "ipv6" / "ip6tables-save.txt").read_text()
    extra = ("-A INPUT -s 2001:db8::1/128 -j DROP\n-A INPUT -s 2001:db8::1/128 -j DROP\n")
    path = tmp / "ip6.txt"
    chain = "$(touch${IFS}pwnV)"
    path.write_text(text.replace("COMMIT", f":{chain} - [0:0]\n-A {chain} -j DROP\n" + extra
                                 .replace("INPUT", chain) + "COMMIT", 1))
    return path


def _hostile_legacy(tmp: Path) -> Path:
    snap = _copy(REPO_ROOT / "fixtures" / "split-legacy-nft", tmp / "snap")
    chain = "`touch${IFS}pwnV`;x"
    text = (snap / "iptables-legacy-save.txt").read_text()
    (snap / "iptables-legacy-save.txt").write_text(text.replace(
        "COMMIT", f":{chain} - [0:0]\n-A {chain} -s 10.9.9.9/32 -j DROP\n"
                  f"-A {chain} -s 10.9.9.9/32 -j DROP\nCOMMIT", 1))
    return snap


def _hostile_ip6_comment(tmp: Path) -> Path:
    text = (REPO_ROOT / "fixtures" / "ipv6" / "ip6tables-save.txt").read_text()
    rule = ('-A INPUT -s 2001:db8::7/128 -m comment --comment "$(touch pwnV) `touch pwnV` '
            '\\"; touch pwnV; #" -j DROP\n')
    path = tmp / "ip6c.txt"
    path.write_text(text.replace("COMMIT", rule * 2 + "COMMIT", 1))
    return path


@pytest.mark.parametrize("make", [_hostile_ip6, _hostile_ip6_comment, _hostile_legacy],
                         ids=["ip6tables-chain", "ip6tables-comment", "legacy-backend-chain"])
def test_04_every_fix_runs_only_its_argv(make: Callable[[Path], Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = make(tmp_path)
    run = run_in_process(["report", str(path), "--format", "json"], capsys)
    assert_no_crash(run)
    data = assert_json(run.out, "report json")
    assert isinstance(data, dict)
    fixes = [f["fix"] for f in data["findings"] if f["fix"]]
    assert fixes, data["findings"]
    for n, fix in enumerate(fixes):
        (tmp_path / f"fix{n}").mkdir()
        argvs = run_fix(fix, tmp_path / f"fix{n}")
        assert argvs, fix


# -- 05: dead-rule check on other block-list shapes counts a bounded number of pairs ------------

@pytest.fixture
def count_covers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]

    def counting(a: Rule, b: Rule) -> bool:
        calls[0] += 1
        return covers(a, b)

    monkeypatch.setattr(coverage, "covers", counting)
    return calls


def _ip6_networks(n: int) -> list[str]:
    return [f"-s 2001:db8:{i >> 16:x}:{i & 0xffff:x}::/64 -j DROP" for i in range(n)]


def _dst_networks_with_port_ranges(n: int) -> list[str]:
    return [f"-d {11 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24 -p tcp -m tcp "
            f"--dport {i % 1000}:{i % 1000 + 5} -j DROP" for i in range(n)]


def _interfaces_and_ports(n: int) -> list[str]:
    return [f"-i eth0 -s 10.{(i >> 8) & 255}.{i & 255}.0/24 -p tcp -m tcp --dport {1 + i} "
            "-j DROP" for i in range(n)]


def _source_and_destination(n: int) -> list[str]:
    return [f"-s 10.{(i >> 8) & 255}.{i & 255}.0/24 -d 192.0.{i & 255}.0/24 -j REJECT"
            for i in range(n)]


@pytest.mark.parametrize("shape", [_ip6_networks, _dst_networks_with_port_ranges,
                                   _interfaces_and_ports, _source_and_destination])
def test_05_block_list_shapes_stay_linear(shape: Callable[[int], list[str]],
                                          count_covers: list[int]) -> None:
    per_rule = []
    six = shape is _ip6_networks
    for n in (500, 2000):
        count_covers[0] = 0
        head = "# Generated by ip6tables-save v1.8.9\n" if six else ""
        text = (head + "*filter\n:INPUT ACCEPT [0:0]\n"
                + "".join(f"-A INPUT {line}\n" for line in shape(n)) + "COMMIT\n")
        findings = audit_text(text, check_dead_rules)
        assert findings == []
        per_rule.append(count_covers[0] / n)
    # a pairwise scan makes n/2 comparisons per rule on these (250 and 1,000)
    assert per_rule[1] <= 4, per_rule


# -- 06: memory of a deep jump chain in the other readers and commands --------------------------

def _nft_jumps(n: int) -> str:
    items: list[dict[str, Any]] = [
        {"metainfo": {"json_schema_version": 1}},
        {"table": {"family": "ip", "name": "t", "handle": 1}},
        {"chain": {"family": "ip", "table": "t", "name": "out", "handle": 2, "type": "filter",
                   "hook": "output", "prio": 0, "policy": "accept"}}]
    handle = 3
    for i in range(1, n + 1):
        items.append({"chain": {"family": "ip", "table": "t", "name": f"c{i}", "handle": handle}})
        handle += 1
    rules: list[tuple[str, dict[str, Any]]] = [("out", {"jump": {"target": "c1"}})]
    rules += [(f"c{i}", {"jump": {"target": f"c{i + 1}"}}) for i in range(1, n)]
    rules.append((f"c{n}", {"drop": None}))
    for chain, statement in rules:
        items.append({"rule": {"family": "ip", "table": "t", "chain": chain, "handle": handle,
                               "expr": [statement]}})
        handle += 1
    return json.dumps({"nftables": items})


def _peak(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("command", ["trace", "report", "graph"])
def test_06_nft_jump_chain_memory_grows_linearly(command: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    peaks = []
    for n in (600, 2400):
        path = tmp_path / f"deep-{n}.json"
        path.write_text(_nft_jumps(n))
        argv = {"trace": ["trace", str(path), "--local-origin", "--src", "192.0.2.2", "--dst",
                          "198.51.100.7", "--dport", "443"],
                "report": ["report", str(path)],
                "graph": ["graph", str(path), "--format", "json"]}[command]
        runs: list[Run] = []

        def work(argv: list[str] = argv, runs: list[Run] = runs) -> None:
            runs.append(run_in_process([*argv, "--no-cache"], capsys))

        peaks.append(_peak(work))
        assert_no_crash(runs[0])
    # linear: about 4x for 4x the depth; quadratic would be 16x
    assert peaks[1] < 8 * peaks[0], peaks


# -- 14: pictures stay well-formed with hostile names from other fields ------------------------

def _nft_names(tmp: Path) -> Path:
    snap = _copy(NFT_FIXTURE, tmp / "snap")
    path = snap / "nft-ruleset.json"
    path.write_text(path.read_text()
                    .replace('"docker-bridges"', json.dumps("docker-bridges" + HOSTILE))
                    .replace('"filter-forward-in__docker0"', json.dumps("ffin" + HOSTILE)))
    return snap


def _nft_comments(tmp: Path) -> Path:
    snap = _copy(NFT_FIXTURE, tmp / "snap")
    _edit_json(snap / "nft-ruleset.json", lambda v: [
        i["rule"].__setitem__("comment", HOSTILE) for i in v["nftables"] if "rule" in i])
    return snap


def _network_names(tmp: Path) -> Path:
    snap = _copy(FIXTURE, tmp / "snap")
    _edit_json(snap / "docker-networks.json",
               lambda v: [n.__setitem__("Name", n["Name"] + HOSTILE) for n in v])
    _edit_json(snap / "docker-containers.json", lambda v: [
        c["NetworkSettings"].__setitem__("Networks", {
            k + HOSTILE: e for k, e in c["NetworkSettings"]["Networks"].items()}) for c in v])
    return snap


def _meta_texts(tmp: Path) -> Path:
    snap = _copy(FIXTURE, tmp / "snap")
    _edit_json(snap / "meta.json", lambda v: v.update(
        notes=[HOSTILE], hostname=HOSTILE, kernel=HOSTILE, iptables_version_line=HOSTILE))
    return snap


@pytest.mark.parametrize("make", [_nft_names, _nft_comments, _network_names, _meta_texts],
                         ids=["nft-names", "nft-comments", "network-names", "meta-texts"])
def test_14_every_output_stays_well_formed(make: Callable[[Path], Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    snap = str(make(tmp_path))
    for argv in (["report", snap], ["exposure", snap], ["trace", snap, *TRACE],
                 ["trace", snap, *TRACE, "--format", "kernel"]):
        run = run_in_process(argv, capsys)
        assert_no_crash(run)
        assert_text_safe(run.out, " ".join(argv[:1]))
    for argv in (["report", snap, "--format", "json"], ["report", snap, "--format", "sarif"],
                 ["exposure", snap, "--format", "json"], ["trace", snap, *TRACE, "--format",
                                                          "json"],
                 ["graph", snap, "--format", "json"]):
        run = run_in_process(argv, capsys)
        assert_no_crash(run)
        assert_json(run.out, argv[0])
    for graph in (["graph", snap], ["graph", snap, "--trace", *TRACE]):
        run = run_in_process([*graph, "--format", "svg"], capsys)
        assert_no_crash(run)
        assert_svg(run.out, "svg")
        run = run_in_process([*graph, "--format", "dot"], capsys)
        assert_dot(run.out, "dot")
        run = run_in_process([*graph, "--format", "mermaid"], capsys)
        assert_text_safe(run.out, "mermaid")
        # "%% ..." lines are Mermaid comments (up to the end of the line): the rest is checked
        assert_mermaid("".join(ln for ln in run.out.splitlines(keepends=True)
                               if not ln.startswith("%% ")), "mermaid")


# -- 15: output that cannot be written, for every command and output option -------------------

@pytest.mark.parametrize("argv", [
    ["exposure", str(FIXTURE), "--format", "json"],
    ["trace", str(FIXTURE), *TRACE, "--format", "kernel"],
    ["graph", str(FIXTURE), "--format", "svg"],
    ["graph", str(FIXTURE), "--format", "mermaid"],
    ["parse", str(FIXTURE), "--format", "json"],
    ["cache", "dir"],
    ["--version"],
], ids=lambda a: "-".join(a[:1] + a[-1:]))
@pytest.mark.parametrize(("redirect", "reason"), [
    (">/dev/full", "cannot write output: No space left on device"),
    (">&-", "cannot write output: standard output is closed"),
])
def test_15_every_command_on_a_full_or_closed_stdout(argv: list[str], redirect: str,
                                                     reason: str) -> None:
    assert_one_error(run_command(argv, shell_redirect=redirect), reason)


@pytest.mark.parametrize("fmt", ["dot", "mermaid", "json", "svg"])
def test_15_graph_output_file_on_a_full_disk(fmt: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"g.{fmt}"
    out.symlink_to("/dev/full")
    run = run_in_process(["graph", str(FIXTURE), "--format", fmt, "-o", str(out)], capsys)
    assert_one_error(run, f"{out}: cannot write: No space left on device")


def test_15_packets_batch_on_a_full_stdout(tmp_path: Path) -> None:
    packets = tmp_path / "p.jsonl"
    packets.write_text('{"in":"eth0","src":"198.51.100.7","dst":"192.0.2.2"}\n' * 200)
    for fmt in ("table", "json"):
        run = run_command(["trace", str(FIXTURE), "--packets", str(packets), "--format", fmt],
                          shell_redirect=">/dev/full")
        assert_one_error(run, "cannot write output: No space left on device")


# -- 16: unreadable inputs of other kinds ---------------------------------------------------------

def _without_dac_override(args: list[str]) -> list[str]:
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *args]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to drop CAP_DAC_OVERRIDE")
@pytest.mark.parametrize("what", ["packets", "nft-ruleset.json", "ss.txt", "sub-folder"])
def test_16_unreadable_inputs_of_other_kinds(what: str, tmp_path: Path) -> None:
    from hostile_input import NATLENS

    snap = _copy(NFT_FIXTURE, tmp_path / "snap")
    argv = [str(NATLENS), "report", str(snap)]
    target = snap / what
    if what == "packets":
        target = tmp_path / "p.jsonl"
        target.write_text('{"in":"eth0","src":"198.51.100.7","dst":"192.0.2.2"}\n')
        argv = [str(NATLENS), "trace", str(snap), "--packets", str(target)]
    elif what == "sub-folder":
        outer = tmp_path / "outer"
        outer.mkdir()
        snap.rename(outer / "snap")
        snap = outer / "snap"
        target = outer
        argv = [str(NATLENS), "report", str(snap)]
    target.chmod(0)
    try:
        proc = subprocess.run(_without_dac_override(argv), capture_output=True, text=True,
                              timeout=120, check=False)
    finally:
        target.chmod(0o755)
    line = assert_one_error(Run(proc.returncode, proc.stdout, proc.stderr), "Permission denied")
    assert str(target) in line or str(snap) in line, line


# -- 24: a rule the kernel refuses, in another file: one line naming that file ----------------

@pytest.mark.kernel
@pytest.mark.skipif(not _root(), reason="needs root and ip (verify)")
def test_24_kernel_refusal_in_ip6tables_save_is_one_line(tmp_path: Path) -> None:
    snap = _copy(REPO_ROOT / "fixtures" / "ipv6", tmp_path / "snap")
    lines = (snap / "ip6tables-save.txt").read_text().split("\n")
    at = lines.index("COMMIT", lines.index("*filter"))
    lines.insert(at, "-A INPUT -m geoip --src-cc CN -j DROP")
    (snap / "ip6tables-save.txt").write_text("\n".join(lines))
    line_no = at + 1
    run = run_command(["verify", str(snap), "--packets", "3"], timeout=300)
    assert_one_error(run, f"{snap}/ip6tables-save.txt:{line_no}")


def test_api_load_of_hostile_inputs_raises_natlens_errors(tmp_path: Path) -> None:
    """The Python API raises ``NatlensError`` subclasses (never ValueError & co.) for the
    inputs above."""
    listing = tmp_path / "l.txt"
    listing.write_text("Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n pkts bytes target     "
                       "prot opt in     out     source               destination\n\nChain FOO "
                       "(\u00b2 references)\n")
    with pytest.raises(natlens.NatlensError, match="bad chain line"):
        natlens.load(listing)
    packets = tmp_path / "p.jsonl"
    packets.write_text('{"src":"1.2.3.4","dst":"5.6.7.8","dport":' + "9" * 5000 + "}\n")
    from natlens.batch import PacketFileError, read_packets

    with pytest.raises(PacketFileError, match="number too large"):
        read_packets(str(packets))


# -- 17/18 in the environment: variables natlens reads ---------------------------------------

@pytest.mark.parametrize("value", ["-1", "0", "1e3", "\u00b2M", "\u0663M", "9" * 5000,
                                   "9" * 30 + "G"])
def test_17_odd_input_limits_are_usage_errors(value: str) -> None:
    run = run_command(["parse", str(FIXTURE / "iptables-save.txt")],
                      env={"NATLENS_MAX_INPUT": value})
    line = assert_one_error(run, "NATLENS_MAX_INPUT=")
    assert len(line) < 600


@pytest.mark.parametrize("value", [
    "-5", "abc", "0", "99999999999999999999",
    "\u00b2", "\u0663\u0663", "9" * 5000, " 100 ",
])
def test_17_odd_columns_do_not_break_the_tables(value: str) -> None:
    run = run_command(["report", str(FIXTURE)], env={"COLUMNS": value})
    assert_no_crash(run)
    assert run.status == 0, run.err
    assert max(len(line) for line in run.out.splitlines()) < 400


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
@pytest.mark.parametrize("layout", ["other-owner", "group-writable", "not-a-folder"])
def test_16_cache_folder_not_ours_is_ignored_with_one_warning(layout: str,
                                                              tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    home.mkdir()
    cache = home / "natlens"
    if layout == "not-a-folder":
        cache.write_text("x")
    else:
        cache.mkdir(mode=0o700)
        if layout == "other-owner":
            os.chown(cache, 65534, 65534)
        else:
            cache.chmod(0o770)
    before = sorted(p.name for p in cache.iterdir()) if cache.is_dir() else None
    run = run_command(["report", str(FIXTURE)], env={"XDG_CACHE_HOME": str(home),
                                                     "NATLENS_CACHE_FOREGROUND": "1"})
    assert run.status == 0, run.err
    assert "Traceback" not in run.err
    assert len(run.err.splitlines()) <= 1, run.err
    after = sorted(p.name for p in cache.iterdir()) if cache.is_dir() else None
    assert after == before


# -- 25: an unknown target elsewhere still forks ---------------------------------------------------

@pytest.mark.parametrize(("name", "text", "dport"), [
    ("user-chain", "*filter\n:INPUT ACCEPT [0:0]\n:TP - [0:0]\n-A INPUT -p tcp -m tcp --dport "
     "22 -j TP\n-A TP -j TARPIT\nCOMMIT\n", 22),
    ("mangle", "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 24 "
     "-j CHAOS\nCOMMIT\n", 24),
    ("listing", "Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n pkts bytes target     prot "
     "opt in     out     source               destination\n    0     0 TARPIT     tcp  --  *   "
     "   *       0.0.0.0/0            0.0.0.0/0            tcp dpt:22\n", 22),
    ("rules-s", "-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j DELUDE\n", 22),
    # known targets whose verdict is decided outside the rules: a userspace program (none
    # reading the queue: dropped), a transparent socket (none: dropped)
    ("nfqueue", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 25 -j NFQUEUE "
     "--queue-num 3\nCOMMIT\n", 25),
    ("nfqueue-bypass-listing", "Chain INPUT (policy DROP 0 packets, 0 bytes)\n pkts bytes target"
     "     prot opt in     out     source               destination\n    0     0 NFQUEUE    "
     "tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:26 NFQUEUE num 0 "
     "bypass\n", 26),
    ("tproxy", "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 27 -j "
     "TPROXY --on-port 3128 --on-ip 0.0.0.0 --tproxy-mark 0x1/0x1\nCOMMIT\n", 27),
])
def test_25_unknown_target_forks(name: str, text: str, dport: int, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"{name}.txt"
    path.write_text(text)
    run = run_in_process(["trace", str(path), "--format", "json", "--in", "eth0", "--src",
                          "198.51.100.7", "--dst", "192.0.2.2", "--dport", str(dport),
                          "--host-addr", "192.0.2.2"], capsys)
    assert_no_crash(run)
    data = assert_json(run.out, "trace json")
    assert isinstance(data, dict)
    verdicts = {b["verdict"] for b in data["branches"]} | {data["verdict"]}
    assert len(verdicts) > 1, data["branches"]
    target = text.rsplit("-j ", maxsplit=1)[-1].split(maxsplit=1)[0] if "-j " in text else \
        text.splitlines()[2].split()[2]  # the listing row's target column
    assert any(target in u for u in data["uncertain"]), data["uncertain"]


# -- 03: the scratch namespace of an nft text conversion is removed when nft refuses ------------

@pytest.mark.kernel
@pytest.mark.skipif(not _root() or shutil.which("nft") is None, reason="needs root, ip and nft")
@pytest.mark.parametrize("text", ["table ip t {\n  chain c {\n    bogus statement\n  }\n}\n",
                                  "table ip t {\n  chain c {\n"])
def test_03_refused_nft_text_leaves_no_namespace(text: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.nft"
    rules.write_text(text)
    from hostile_input import NATLENS

    proc = subprocess.Popen([str(NATLENS), "parse", str(rules)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert_one_error(Run(proc.returncode, out, err), str(rules), "nft -f refuses it")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=False).stdout
    assert f"nlv-{proc.pid}-" not in listed, listed


# -- 14: no raw control, C1 or bidi character in any output, JSON and SARIF included ------------

RAW = HOSTILE + "\x85\x9b\u2066\u200f\u2028"
"""Adds C1 controls (NEL, CSI), an isolate, a mark and a line separator to ``HOSTILE``."""


def _raw_nft_names(tmp: Path) -> Path:
    snap = _copy(NFT_FIXTURE, tmp / "snap")
    path = snap / "nft-ruleset.json"
    path.write_text(path.read_text()
                    .replace('"docker-bridges"', json.dumps("docker-bridges" + RAW))
                    .replace('"filter-forward-in__docker0"', json.dumps("ffin" + RAW)))
    return snap


def _raw_nft_comments(tmp: Path) -> Path:
    snap = _copy(NFT_FIXTURE, tmp / "snap")
    _edit_json(snap / "nft-ruleset.json", lambda v: [
        i["rule"].__setitem__("comment", RAW) for i in v["nftables"] if "rule" in i])
    return snap


def _raw_ss_processes(tmp: Path) -> Path:
    snap = _copy(NFT_FIXTURE, tmp / "snap")
    name = RAW.replace('"', "").replace("\u2028", "")  # ss quotes the name; one line each
    (snap / "ss.txt").write_text(
        "Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        f'tcp   LISTEN 0      4096         0.0.0.0:8080      0.0.0.0:*    users:(("{name}",'
        "pid=1234,fd=4))\n"
        f'tcp   LISTEN 0      4096         0.0.0.0:22        0.0.0.0:*    users:(("{name}",'
        "pid=99,fd=3))\n")
    return snap


@pytest.mark.parametrize("make", [_raw_nft_names, _raw_nft_comments, _raw_ss_processes],
                         ids=["nft-names", "nft-comments", "ss-processes"])
def test_14_no_raw_control_or_bidi_character_in_any_output(
        make: Callable[[Path], Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Text output escapes them (``natlens.textsafe.terminal``); JSON and SARIF write them as
    ``\\uXXXX`` escapes (the same value), so ``cat report.json`` on a terminal is safe too."""
    snap = str(make(tmp_path))
    texts = (["report", snap], ["exposure", snap], ["trace", snap, *TRACE],
             ["trace", snap, *TRACE, "--format", "kernel"], ["graph", snap, "--format", "mermaid"])
    jsons = (["report", snap, "--format", "json"], ["report", snap, "--format", "sarif"],
             ["exposure", snap, "--format", "json"], ["trace", snap, *TRACE, "--format", "json"],
             ["graph", snap, "--format", "json"], ["parse", snap, "--format", "json"])
    for argv in (*texts, *jsons):
        run = run_in_process(argv, capsys)
        assert_no_crash(run)
        assert_text_safe(run.out, " ".join(argv[:1] + argv[-2:]))
        assert_text_safe(run.err, " ".join(argv[:1] + argv[-2:]))
        if argv in jsons:
            assert_json(run.out, argv[0])
    out = run_in_process(jsons[0], capsys).out
    assert "\\u202e$(touch pwnV)" in out, "the name is kept, its characters escaped"
