"""Loose ends a fresh user met in a trial (task D): sysctl values as the kernel reads them, verify's
table at the terminal's width, the source of a locally originated packet inferred as ``ip route
get`` does, did-you-mean for a mistyped option, a packets CSV with ``;`` separators, branches of
doubt without a probability, gen_kube's sizes in its help, a host socket without a process in the
exposure table, and interface names checked by the library as by the CLI.

CLI tests run the ``natlens`` entry point in a subprocess, with an environment without COLUMNS
(pytest sets COLUMNS=80 otherwise)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
NATLENS = Path(sys.executable).parent / "natlens"
KUBE = REPO / "benchmarks" / "gen_kube.py"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(extra)
    return env


def natlens(*args: str, columns: int | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``natlens ARGS`` (the installed entry point), output captured; COLUMNS only if given."""
    env = _env(**({"COLUMNS": str(columns)} if columns is not None else {}))
    return subprocess.run([str(NATLENS), *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=120, check=False)


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


# -- 7. gen_kube --help says what a service makes -------------------------------------------------

def _gen_kube() -> object:
    sys.path.insert(0, str(KUBE.parent))
    try:
        import gen_kube
    finally:
        sys.path.pop(0)
    return gen_kube


def _counts(text: str) -> tuple[int, int]:
    lines = text.splitlines()
    return sum(1 for ln in lines if ln.startswith("-A ")), len(lines)


def test_gen_kube_help_gives_the_sizes_a_service_makes() -> None:
    proc = subprocess.run([sys.executable, str(KUBE), "--help"], capture_output=True, text=True,
                          env=_env(), check=True, timeout=60)
    text = " ".join(proc.stdout.split())
    m = re.search(r"with E endpoints \(E > 0\) adds 3E \+ 2 rules and 4E \+ 3 lines .* every "
                  r"(\d+)th service, the first included, is a NodePort \(\+3 rules, \+4 "
                  r"lines\), every (\d+)th has no endpoints \(1 REJECT rule, 1 line, instead\), "
                  r"every (\d+)th is UDP; (\d+) rules and (\d+) lines come once", text)
    assert m is not None, proc.stdout
    nodeport, empty, _udp, fixed_rules, fixed_lines = map(int, m.groups())
    gen = _gen_kube()
    generate = gen.generate  # type: ignore[attr-defined]
    assert _counts(generate(0, 1)) == (fixed_rules, fixed_lines)
    for endpoints in (1, 2, 5):
        # service 0 is a NodePort; services 1..nodeport-1 plain ones; service empty-1 has none
        one = _counts(generate(1, endpoints))
        assert one == (fixed_rules + 3 * endpoints + 2 + 3, fixed_lines + 4 * endpoints + 3 + 4)
        two = _counts(generate(2, endpoints))
        assert (two[0] - one[0], two[1] - one[1]) == (3 * endpoints + 2, 4 * endpoints + 3)
        full = _counts(generate(empty, endpoints))
        before = _counts(generate(empty - 1, endpoints))
        assert (full[0] - before[0], full[1] - before[1]) == (1, 1)
    assert nodeport == gen.NODEPORT_EVERY  # type: ignore[attr-defined]
    # the worked sizes are benchmarks/README.md's
    readme = (REPO / "benchmarks" / "README.md").read_text()
    worked = re.findall(r"--services (\d+) --endpoints 4: ([\d,]+) rules, ([\d,]+) lines",
                        proc.stdout)
    assert len(worked) == 2
    for services, rules, lines in worked:
        row = re.search(rf"--services {services} --endpoints 4`[^|]*\| ([\d,]+) \| ([\d,]+) \|",
                        readme)
        assert row is not None
        assert row.groups() == (rules, lines)


# -- 4. did you mean --format? ---------------------------------------------------------------------

def _subcommands() -> dict[str, argparse.ArgumentParser]:
    from natlens.cli import build_parser

    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def _typos(option: str) -> list[str]:
    """Misspellings of ``--option``: two letters swapped, one left out, one doubled."""
    if len(option) < 4:
        return []
    body = option[2:]
    out = {f"--{body[:i]}{body[i + 1]}{body[i]}{body[i + 2:]}" for i in range(len(body) - 1)}
    out |= {f"--{body[:i]}{body[i + 1:]}" for i in range(1, len(body))}
    out |= {f"--{body[:i]}{body[i]}{body[i:]}" for i in range(len(body))}
    return sorted(t for t in out if t != option)


SUBCOMMANDS = sorted(_subcommands())


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_suggests_the_option_meant(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from natlens.cli import build_parser

    parser = build_parser()
    sub = _subcommands()[command]
    options = [s for a in sub._actions for s in a.option_strings if s.startswith("--")]
    assert "--help" in options
    assert len(options) > 1
    head = [command, "list" if command == "cache" else "some-path"]
    suggested = 0
    for option in options:
        for typo in _typos(option):
            if any(o.startswith(typo) for o in options):
                continue  # an abbreviation argparse takes (or an ambiguous one)
            with pytest.raises(SystemExit) as exit_:
                parser.parse_args([*head, typo])
            err = capsys.readouterr().err
            assert exit_.value.code == 2
            assert err.count("\n") == 1, err
            assert err.startswith(f"natlens: error: unrecognized option '{typo}'"), err
            m = re.search(r"\(did you mean '([^']+)'\?\)", err)
            if m is not None:
                assert m.group(1) in options
                suggested += m.group(1) == option
            # a swap of two letters is always caught and named
            if sorted(typo) == sorted(option) and len(option) > 6:
                assert m is not None, err
                assert m.group(1) == option, err
    assert suggested > 0


@pytest.mark.parametrize(("args", "meant"), [
    (["trace", "PATH", "--fromat", "json"], "--format"),
    (["report", "PATH", "--fromat=json"], "--format"),
    (["exposure", "PATH", "--colour", "never"], "--color"),
    (["trace", "PATH", "--porto", "udp"], "--proto"),
    (["graph", "PATH", "--tabel", "nat"], "--table"),
    (["--verison"], "--version"),
])
def test_mistyped_option_one_line_did_you_mean(args: list[str], meant: str) -> None:
    proc = natlens(*args)
    err = _one_line_error(proc)
    typo = next(a for a in args if a.startswith("--"))
    assert f"unrecognized option '{typo}'" in err
    assert f"(did you mean '{meant}'?)" in err


def test_abbreviations_still_work(tmp_path: Path) -> None:
    proc = natlens("parse", str(REPO / "fixtures" / "default-bridge-8080"), "--form", "json")
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    proc = natlens("parse", str(REPO / "fixtures" / "default-bridge-8080"), "--zzzz")
    assert "did you mean" not in _one_line_error(proc)


# -- 5. a packets CSV with ; or tab between columns ------------------------------------------------

FIXTURE = REPO / "fixtures" / "default-bridge-8080"
PACKETS = [["in", "local_origin", "src", "dst", "proto", "dport"],
           ["eth0", "", "198.51.100.7", "192.0.2.2", "tcp", "8080"],
           ["", "true", "192.0.2.2", "127.0.0.1", "TCP", "http-alt"],
           ["docker0", "", "172.17.0.2", "1.1.1.1", "udp", "53"]]


def _packets_file(tmp_path: Path, delimiter: str, *, crlf: bool = False) -> Path:
    end = "\r\n" if crlf else "\n"
    path = tmp_path / "packets.csv"
    path.write_bytes("".join(delimiter.join(row) + end for row in PACKETS).encode())
    return path


@pytest.mark.parametrize(("delimiter", "crlf"), [(";", False), (";", True), ("\t", False)])
def test_packets_csv_delimiter_is_told_by_the_header(tmp_path: Path, delimiter: str,
                                                     crlf: bool) -> None:
    from natlens.batch import read_packets

    commas = tmp_path / "commas"
    commas.mkdir()
    expected = natlens("trace", str(FIXTURE), "--packets", str(_packets_file(commas, ",")))
    assert expected.returncode == 0, expected.stderr
    assert len(expected.stdout.splitlines()) == 3
    proc = natlens("trace", str(FIXTURE), "--packets",
                   str(_packets_file(tmp_path, delimiter, crlf=crlf)))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected.stdout, "")
    assert read_packets(str(tmp_path / "packets.csv")) == read_packets(
        str(commas / "packets.csv"))


@pytest.mark.parametrize(("delimiter", "said"), [("|", "'|'"), (" ", "a blank"), (":", "':'")])
def test_packets_csv_other_delimiter_refused_naming_it(tmp_path: Path, delimiter: str,
                                                       said: str) -> None:
    proc = natlens("trace", str(FIXTURE), "--packets", str(_packets_file(tmp_path, delimiter)))
    err = _one_line_error(proc)
    assert f"packets.csv:1: CSV header: columns separated by {said}; natlens reads ',', ';' " \
           "or a tab between columns" in err


def test_packets_csv_one_column_header(tmp_path: Path) -> None:
    from natlens.batch import PacketFileError, read_packets

    path = tmp_path / "one.csv"
    path.write_text("src\n198.51.100.7\n")  # one column: no delimiter to tell (a Packet error)
    with pytest.raises(PacketFileError, match=r"one\.csv:2: ") as err:
        read_packets(str(path))
    assert "separated" not in str(err.value)


# -- 2. verify's table at the terminal's width -----------------------------------------------------

def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")


@pytest.mark.kernel
def test_verify_table_follows_the_terminal_width() -> None:
    _needs_root()
    args = ("verify", str(FIXTURE), "--packets", "8", "--connections", "3")
    wide = natlens(*args)
    assert wide.returncode == 0, wide.stderr
    assert max(len(ln) for ln in wide.stdout.splitlines()) > 70  # not a terminal: no limit
    for columns in (60,):
        narrow = natlens(*args, columns=columns)
        assert narrow.returncode == 0, narrow.stderr
        lines = narrow.stdout.splitlines()
        assert max(len(ln) for ln in lines) <= columns, narrow.stdout
        # nothing lost (a word longer than its column is cut)
        assert sorted("".join(narrow.stdout.split())) == sorted("".join(wide.stdout.split()))
        # a table still: each probe row's outcome column starts at one place
        rows = [ln for ln in lines if re.match(r"  (ok  |DIFF|\?\?  |--  ) ", ln)]
        assert len(rows) >= 8
        starts = {m.start() for ln in rows for m in [re.search(r" (ACCEPT|DROP|REJECT)\b", ln)]
                  if m is not None}
        assert len(starts) == 1, rows


# -- 8. a host socket whose process ss does not show -----------------------------------------------

@pytest.mark.kernel
def test_live_snapshot_names_a_socket_without_process(tmp_path: Path) -> None:
    """A live capture in a namespace: a VXLAN device's UDP socket (a kernel socket: ss shows no
    process for it) and a Python listener (ss shows it). The exposure table names both rows, the
    first as a socket whose process is unknown (was ``4789/udp ?``, read as "cannot tell")."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from netns_helpers import namespaces, needs_root, run
    finally:
        sys.path.pop(0)
    needs_root("ss", "iproute2")
    listener = ("import socket,sys,time; s=socket.socket(); s.bind(('0.0.0.0', 2024)); "
                "s.listen(); print('up', flush=True); time.sleep(60)")
    with namespaces("natlens-d-") as (ns,):
        run("ip", "link", "set", "lo", "up", ns=ns)
        run("ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789",
            "dev", "lo", ns=ns)
        run("ip", "link", "set", "vx0", "up", ns=ns)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", listener],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "up"
            snap = subprocess.run(["ip", "netns", "exec", ns, str(NATLENS), "snapshot",
                                   "--no-docker", str(tmp_path / "s")], capture_output=True,
                                  text=True, env=_env(), check=False, timeout=120)
        finally:
            proc.kill()
            proc.communicate()
    assert snap.returncode == 0, snap.stderr
    ss = (tmp_path / "s" / "ss.txt").read_text()
    assert re.search(r"0\.0\.0\.0:4789 .*\*\s*$", ss, re.MULTILINE), ss  # no users:(...)
    assert re.search(r':2024 .*users:\(\("python', ss), ss
    table = natlens("exposure", str(tmp_path / "s"), "--allow-empty")
    assert table.returncode == 0, table.stderr
    rows = {ln.split()[0]: ln for ln in table.stdout.splitlines()
            if re.match(r"\d+/(tcp|udp) ", ln)}
    assert rows["4789/udp"].startswith("4789/udp (process unknown) "), table.stdout
    assert rows["2024/tcp"].startswith("2024/tcp python"), table.stdout
    assert not any(re.match(r"\d+/(tcp|udp) \?", ln) for ln in table.stdout.splitlines())
    assert "note: ss.txt names no process for 4789/udp: ss shows the process" in table.stdout
    assert "2024/tcp" not in table.stdout.split("note: ss.txt names no process")[1]


# -- 9. interface names: one rule for the CLI and the library -------------------------------------

IFNAMES = ["eth0", "eth+", "x" * 15, "x" * 16, "é" * 7, "é" * 8, "à", "aà", "a b", "a\tb",
           "eth0:1", "eth0/1", ".", "..", "...", "a\x1cb", "a\x01b", "a\u2028b", "a\u00a0b",
           "x;touch${IFS}P#"]


@pytest.mark.parametrize("name", IFNAMES, ids=ascii)
def test_library_checks_interface_names_as_the_cli_does(name: str) -> None:
    import natlens
    from natlens.cli_options import interface_problem as cli_rule
    from natlens.names import interface_problem
    from natlens.snapshot import with_stated_host

    problem = interface_problem(name)
    assert cli_rule is interface_problem  # one rule
    snap = natlens.load(FIXTURE)
    packet: dict[str, Any] = {"src": "198.51.100.7", "dst": "192.0.2.2", "dport": 8080}
    if problem is None:
        assert natlens.Packet(in_interface=name, **packet).in_interface == name
        stated = with_stated_host(snap, interfaces=[f"{name}=192.0.2.10/24"])
        assert any(e.get("ifname") == name for e in stated.addresses or ())
        return
    with pytest.raises(ValueError, match=re.escape(problem)) as err:
        natlens.Packet(in_interface=name, **packet)
    assert str(err.value) == f"packet input interface {name!r}: {problem}"
    assert isinstance(err.value, natlens.UsageError)
    with pytest.raises(ValueError, match=re.escape(problem)):
        with_stated_host(snap, interfaces=[f"{name}=192.0.2.10/24"])
    from natlens.verify.kernel_names import check_ifname

    with pytest.raises(ValueError, match="bad interface name"):  # verify: as strict at least
        check_ifname(name)


@pytest.mark.kernel
def test_interface_rule_is_the_kernels() -> None:
    """Each name of IFNAMES made as a veth device in a namespace: the kernel (or ``ip``, whose
    check is stricter only for blanks) takes exactly the names the rule takes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from netns_helpers import namespaces, needs_root
    finally:
        sys.path.pop(0)
    from natlens.names import interface_problem

    needs_root("ip", "iproute2")
    with namespaces("natlens-d-") as (ns,):
        for n, name in enumerate(IFNAMES):
            done = subprocess.run(["ip", "-n", ns, "link", "add", name, "type", "veth", "peer",
                                   "name", f"peer{n}"], capture_output=True, text=True,
                                  check=False, timeout=30)
            assert (done.returncode == 0) == (interface_problem(name) is None), (
                name, done.stderr, interface_problem(name))


# -- 1. sysctl values as the kernel takes them: one rule for loading, trace and verify ------------

KEPT = ["net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv6.conf.all.forwarding",
        "net.ipv4.conf.all.route_localnet", "net.ipv4.conf.lo.route_localnet",
        "net.ipv6.conf.lo.forwarding"]
CLAMPED = ["net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"]
VALUES = ["0", "1", "2", "-1", "7", "2147483647", "-2147483648", "2147483648", "-2147483649",
          "+3", "1.0", "", "banana"]


@pytest.mark.parametrize("key", KEPT + CLAMPED)
@pytest.mark.parametrize("value", VALUES)
def test_kernel_value_rule(key: str, value: str) -> None:
    from natlens.sysctls import READ, kernel_value, switch

    assert READ.fullmatch(key)
    refused = not re.fullmatch(r"-?[0-9]+", value) or not -2**31 <= int(value) < 2**31
    if refused:
        with pytest.raises(ValueError, match=r"the write fails|not an integer, as the kernel"):
            kernel_value(key, value)
        assert switch(key, value) is None
        return
    held = kernel_value(key, value)
    assert held == (min(1, abs(int(value))) if key in CLAMPED else int(value))
    assert switch(key, value) is (int(value) != 0)


@pytest.mark.kernel
def test_kernel_value_rule_is_the_kernels() -> None:
    """Each value written into /proc/sys in a scratch namespace: the write fails exactly when
    ``kernel_value`` raises, and reading back gives ``kernel_value``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from netns_helpers import namespaces, needs_root
    finally:
        sys.path.pop(0)
    from natlens.sysctls import kernel_value

    needs_root("ip", "iproute2")
    checked = 0
    with namespaces("natlens-d-") as (ns,):
        for key in KEPT + CLAMPED:
            path = "/proc/sys/" + key.replace(".", "/")
            for value in VALUES:
                before = subprocess.run(["ip", "netns", "exec", ns, "cat", path],
                                        capture_output=True, text=True, check=False)
                if before.returncode != 0:
                    break  # no such key here (br_netfilter not loaded)
                wrote = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c",
                                        'printf "%s\\n" "$1" > "$2"', "-", value, path],
                                       capture_output=True, text=True, check=False)
                after = subprocess.run(["ip", "netns", "exec", ns, "cat", path],
                                       capture_output=True, text=True, check=True).stdout
                try:
                    expected = kernel_value(key, value)
                except ValueError:
                    assert wrote.returncode != 0, (key, value)
                    assert after == before.stdout, (key, value)
                else:
                    assert wrote.returncode == 0, (key, value, wrote.stderr)
                    assert int(after) == expected, (key, value, after)
                checked += 1
    assert checked >= len(KEPT) * len(VALUES)


def _snapshot_with(tmp_path: Path, sysctl: dict[str, str], *, txt: str | None = None) -> Path:
    import shutil

    folder = tmp_path / "snap"
    shutil.copytree(FIXTURE, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["sysctl"] = {**meta.get("sysctl", {}), **sysctl}
    (folder / "meta.json").write_text(json.dumps(meta))
    if txt is not None:
        (folder / "sysctl.txt").write_text(txt)
    return folder


FORWARDED = ("--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.2", "--dport", "8080",
             "--format", "json")


@pytest.mark.parametrize("value", ["1", "2", "-1", "0"])
@pytest.mark.parametrize("where", ["meta", "txt"])
def test_trace_reads_any_nonzero_forwarding_as_on(tmp_path: Path, value: str,
                                                  where: str) -> None:
    key = {"net.ipv4.ip_forward": value}
    folder = (_snapshot_with(tmp_path, key) if where == "meta"
              else _snapshot_with(tmp_path, {}, txt=f"net.ipv4.ip_forward = {value}\n"))
    proc = natlens("trace", str(folder), *FORWARDED)
    assert proc.returncode in (0, 1), proc.stderr
    trace = json.loads(proc.stdout)
    if value == "0":
        assert trace["verdict"] == "DROP"
        assert "net.ipv4.ip_forward=0 (forwarding off)" in trace["connection"]["why"], trace
    else:
        assert (trace["verdict"], trace["final_dst"]) == ("ACCEPT", "172.17.0.2:80")


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("net.ipv4.ip_forward", "2147483648", "out of the kernel's int range"),
    ("net.bridge.bridge-nf-call-iptables", "-2147483649", "out of the kernel's int range"),
    ("net.ipv4.conf.all.route_localnet", "9999999999", "out of the kernel's int range"),
])
@pytest.mark.parametrize("command", ["trace", "verify"])
def test_value_the_kernel_refuses_is_one_error_everywhere(tmp_path: Path, key: str, value: str,
                                                         reason: str, command: str) -> None:
    folder = _snapshot_with(tmp_path, {key: value})
    args = (command, str(folder), *(FORWARDED if command == "trace" else ("--packets", "1")))
    err = _one_line_error(natlens(*args))
    assert f"meta.json: $.sysctl[{key!r}]: {value} is {reason}" in err, err
    (folder / "meta.json").write_text(json.dumps({"sysctl": {}}))
    (folder / "sysctl.txt").write_text(f"{key} = {value}\n")
    err = _one_line_error(natlens(*args))
    assert f"sysctl.txt:1: {key} = '{value}': {value} is {reason}" in err, err


def test_verify_mirrors_the_value_the_kernel_holds() -> None:
    import natlens as nl
    from natlens.verify.snapshot_checks import sysctl_settings

    snap = nl.load(FIXTURE)
    meta = {**snap.meta, "sysctl": {"net.ipv4.ip_forward": "2",
                                    "net.bridge.bridge-nf-call-iptables": "5",
                                    "net.ipv4.conf.all.route_localnet": " -3 ",
                                    "net.bridge.bridge-nf-call-ip6tables": None}}
    from dataclasses import replace

    notes: list[str] = []
    assert sysctl_settings(replace(snap, meta=meta), notes) == {
        "net.ipv4.ip_forward": "2", "net.bridge.bridge-nf-call-iptables": "1",
        "net.ipv4.conf.all.route_localnet": "-3", "net.bridge.bridge-nf-call-ip6tables": None}


@pytest.mark.kernel
def test_verify_runs_with_forwarding_2(tmp_path: Path) -> None:
    """meta.json's ip_forward "2" (was refused: "0 or 1"): verify mirrors it and the kernel
    forwards, as trace says."""
    _needs_root()
    folder = _snapshot_with(tmp_path, {"net.ipv4.ip_forward": "2",
                                       "net.bridge.bridge-nf-call-iptables": "3"})
    proc = natlens("verify", str(folder), "--packets", "8", "--connections", "0",
                   "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["disagreements"] == []
    forwarded = [r for r in report["results"] if r["source"] == "outside"
                 and r["packet"]["dst"] == "192.0.2.2" and r["packet"]["dport"] == 8080]
    assert forwarded
    for r in forwarded:
        assert r["status"] == "agree", r
        assert r["kernel"].startswith("ACCEPT"), r
        assert "172.17.0.2:80" in r["kernel"], r


# -- 3. trace --local-origin without --src --------------------------------------------------------

@pytest.mark.parametrize(("dst", "src", "how"), [
    ("198.51.100.7", "192.0.2.2", "route 'default via 192.0.2.1 dev eth0', eth0's address"),
    ("172.17.0.2", "172.17.0.1", "route '172.17.0.0/16 dev docker0' names src 172.17.0.1"),
    ("192.0.2.2", "192.0.2.2", "192.0.2.2 is an address of this host (local route)"),
    ("127.0.0.5", "127.0.0.1", "the local route of 127.0.0.0/8 names 127.0.0.1"),
    ("::1", "::1", "::1 is an address of this host (local route)"),
])
def test_local_origin_source_is_inferred_and_said(dst: str, src: str, how: str) -> None:
    proc = natlens("trace", str(FIXTURE), "--local-origin", "--dst", dst, "--dport", "80",
                   "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    trace = json.loads(proc.stdout)
    assert trace["packet"]["src"] == src
    note = f"source {src} inferred as 'ip route get {dst}' picks it: {how}"
    assert trace["notes"][0] == note
    given = natlens("trace", str(FIXTURE), "--local-origin", "--src", src, "--dst", dst,
                    "--dport", "80", "--format", "json")
    assert {**json.loads(given.stdout), "notes": None} == {**trace, "notes": None}
    table = natlens("trace", str(FIXTURE), "--local-origin", "--dst", dst, "--dport", "80")
    assert f"note: {note}" in table.stdout


@pytest.mark.parametrize(("files", "dst", "why"), [
    ({"ip-route.json": None}, "198.51.100.7",
     "the host's IPv4 routes are not in the snapshot (no ip-route.json)"),
    ({}, "2001:db8::9", "the host's IPv6 routes are not in the snapshot (no ip-route6.json)"),
    ({"ip-addr.json": None}, "198.51.100.7", "the host's addresses are not in the snapshot"),
    ({"ip-route.json": [{"dst": "10.0.0.0/8", "dev": "eth0"}]}, "198.51.100.7",
     "no route to it in the snapshot"),
    ({"ip-route.json": [{"dst": "default", "type": "blackhole"}]}, "198.51.100.7",
     "its route is 'blackhole default'"),
])
def test_local_origin_source_that_cannot_be_inferred(tmp_path: Path, files: dict[str, object],
                                                     dst: str, why: str) -> None:
    import shutil

    folder = tmp_path / "snap"
    shutil.copytree(FIXTURE, folder)
    for name, content in files.items():
        if content is None:
            (folder / name).unlink()
        else:
            (folder / name).write_text(json.dumps(content))
    err = _one_line_error(natlens("trace", str(folder), "--local-origin", "--dst", dst))
    assert f"--local-origin without --src: cannot infer the source address of a packet to " \
           f"{dst}: {why}" in err
    assert err.rstrip().endswith("give --src")


def test_in_interface_still_needs_src() -> None:
    err = _one_line_error(natlens("trace", str(FIXTURE), "--in", "eth0", "--dst", "192.0.2.2"))
    assert "trace needs --in IFACE and --src, or --local-origin, and --dst" in err


@pytest.mark.kernel
def test_local_source_is_ip_route_get(tmp_path: Path) -> None:
    """A namespace with several interfaces, a secondary address, a route naming src, a
    gateway route and IPv6: for each destination, the inferred source is the ``src`` that
    ``ip route get`` prints in that namespace, read from a snapshot natlens captured there."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from netns_helpers import namespaces, needs_root, run
    finally:
        sys.path.pop(0)
    import ipaddress

    import natlens as nl
    from natlens.local_source import local_source

    needs_root("ip", "iproute2")
    with namespaces("natlens-d-", "natlens-e-") as (ns, peer):
        for cmd in (["link", "set", "lo", "up"],
                    ["link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", peer],
                    ["link", "add", "wa", "type", "veth", "peer", "name", "wb", "netns", peer],
                    ["link", "set", "va", "up"], ["link", "set", "wa", "up"],
                    ["addr", "add", "10.1.0.2/24", "dev", "va"],
                    ["addr", "add", "10.1.0.3/24", "dev", "va"],  # secondary
                    ["addr", "add", "10.2.0.2/24", "dev", "va"],
                    ["addr", "add", "192.168.50.2/24", "dev", "wa"],
                    ["-6", "addr", "add", "2001:db8:1::2/64", "dev", "va", "nodad"],
                    ["route", "add", "default", "via", "10.1.0.1", "dev", "va"],
                    ["route", "add", "203.0.113.0/24", "via", "192.168.50.1", "dev", "wa"],
                    ["route", "add", "198.51.100.0/24", "dev", "va", "src", "10.2.0.2"],
                    ["-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "va"]):
            run("ip", *cmd, ns=ns)
        done = subprocess.run(["ip", "netns", "exec", ns, str(NATLENS), "snapshot",
                               "--no-docker", str(tmp_path / "s")], capture_output=True,
                              text=True, env=_env(), check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        host = nl.load(tmp_path / "s", allow_empty=True).host
        dsts = ["8.8.8.8", "10.1.0.77", "10.2.0.77", "203.0.113.5", "198.51.100.9", "10.1.0.3",
                "192.168.50.2", "127.0.0.9", "127.0.0.1", "2001:db8:5::1", "2001:db8:1::2",
                "::1"]
        for dst in dsts:
            got = json.loads(run("ip", "-j", "route", "get", dst, ns=ns))[0]
            src, how = local_source(host, ipaddress.ip_address(dst))
            assert str(src) == got["prefsrc"], (dst, got, how)


def test_graph_trace_local_origin_infers_the_source_too() -> None:
    proc = natlens("graph", str(FIXTURE), "--trace", "--local-origin", "--dst", "172.17.0.2",
                   "--dport", "80", "--format", "mermaid")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "%% packet: Packet(local, tcp 172.17.0.1 -> 172.17.0.2:80, new)" in lines
    assert "%% source 172.17.0.1 inferred as 'ip route get 172.17.0.2' picks it: route " \
           "'172.17.0.0/16 dev docker0' names src 172.17.0.1" in lines
