"""The hostile-input cases of ../shared/cases/hostile (issue 11, items 4 and 6): broken, huge or
mislabelled input ends in one error line naming the file (and line or JSON path), exit 2, never
a traceback and never a quiet verdict.

Each test reads its case through the ``cases`` fixture; cases with sub-folders run every
sub-folder, so inputs added to a case are covered too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hostile_input import (
    NATLENS,
    Run,
    assert_no_crash,
    assert_one_error,
    run_command,
    run_in_process,
)

HOSTILE = "hostile"


def _case(cases: Path, prefix: str) -> Path:
    (found,) = (cases / HOSTILE).glob(f"{prefix}-*")
    return found


def _copy(src: Path, dst: Path) -> Path:
    """A writable copy of a read-only case folder."""
    shutil.copytree(src, dst)
    for p in (dst, *dst.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


# -- 07: JSON of the wrong shape or value ---------------------------------------------------------

def test_07_every_wrong_json_field_is_one_error_line_with_its_json_path(
        cases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = _case(cases, "07")
    folders = sorted(p for p in case.iterdir() if p.is_dir())
    assert len(folders) >= 16
    for folder in folders:
        run = run_in_process(["report", str(folder)], capsys)
        assert_no_crash(run)
        if folder.name == "network-last-address-subnet":
            # a /32 bridge subnet has no address for Docker's default gateway: noted, not guessed
            from natlens import load

            host = load(folder).host
            assert any("255.255.255.255/32 has no address for a gateway" in a
                       for a in host.assumptions)
            continue
        line = assert_one_error(run, f"{folder}/")
        assert ".json: $" in line, line  # file and JSON path
    for name, path in (("container-state-is-string", "$[0].State: expected an object or null, "
                                                      "got a string 'running'"),
                       ("route-metric-null", "ip-route.json: $[0].metric: expected an integer, "
                                             "got null"),
                       ("container-binding-is-string",
                        '$[0].NetworkSettings.Ports["80/tcp"][0]: expected an object')):
        assert_one_error(run_in_process(["trace", str(case / name), "--in", "eth0", "--src",
                                         "198.51.100.7", "--dst", "192.0.2.2"], capsys), path)


# -- 08: encodings, nesting, number size ----------------------------------------------------------

@pytest.mark.parametrize(("folder", "expected"), [
    ("bigint", "meta.json: number too large"),
    ("deep", "meta.json: nested too deeply"),
    ("latin1", "meta.json:1: not UTF-8: byte 0xe9 at offset 17"),
    ("utf16", "meta.json: UTF-16 text, not UTF-8 (re-save it as UTF-8"),
])
def test_08_undecodable_json_is_one_error_line(cases: Path, capsys: pytest.CaptureFixture[str],
                                               folder: str, expected: str) -> None:
    snap = _case(cases, "08") / folder
    assert_one_error(run_in_process(["report", str(snap)], capsys), f"{snap}/{expected}")


def test_08_utf8_bom_is_accepted(cases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = _case(cases, "08") / "bom"
    run = run_in_process(["report", str(snap), "--format", "json"], capsys)
    assert run.status in (0, 1), run.err
    assert run.err == ""


# -- 10: empty input is not a clean host ----------------------------------------------------------

@pytest.mark.parametrize(("name", "what"), [
    ("empty.txt", "no rules (empty input"),
    ("header-only.txt", "no rules (no table (only comments)"),
    ("with-containers", "with-containers/iptables-save.txt: no rules (empty input"),
])
def test_10_empty_rules_are_an_error_unless_allowed(cases: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    name: str, what: str) -> None:
    path = _case(cases, "10") / name
    for command in (["report", str(path)], ["trace", str(path), "--in", "eth0", "--src",
                                            "198.51.100.7", "--dst", "192.0.2.2"]):
        assert_one_error(run_in_process(command, capsys), what, "--allow-empty")
    allowed = run_in_process(["report", str(path), "--allow-empty"], capsys)
    assert allowed.status in (0, 1)
    assert allowed.err == ""


def test_10_empty_stdin_is_an_error(cases: Path) -> None:
    assert_one_error(run_command(["report", "-"], stdin=b""), "<stdin>: no rules (empty input")
    assert run_command(["report", "-", "--allow-empty"], stdin=b"").status == 0


def test_10_empty_rules_through_the_api(cases: Path) -> None:
    import natlens

    with pytest.raises(natlens.EmptyInputError, match=r"empty\.txt: no rules"):
        natlens.load(_case(cases, "10") / "empty.txt")
    assert not natlens.load(_case(cases, "10") / "empty.txt", allow_empty=True).ruleset.tables


# -- 15: output that cannot be written ------------------------------------------------------------

def test_15_unencodable_output_is_escaped(cases: Path) -> None:
    case = _case(cases, "15")
    surrogate = run_command(["report", str(case / "surrogate-name"), "--format", "json"])
    assert_no_crash(surrogate)
    assert surrogate.status == 1  # planted faults: findings, not a crash
    ascii_out = run_command(["parse", str(case / "unicode-chain.txt")],
                            env={"PYTHONIOENCODING": "ascii"})
    assert ascii_out.status == 0, ascii_out.err
    assert "\\u" in ascii_out.out
    assert ascii_out.out.isascii()


@pytest.mark.parametrize(("redirect", "reason"), [
    (">&-", "cannot write output: standard output is closed"),
    (">/dev/full", "cannot write output: No space left on device"),
])
def test_15_closed_or_full_stdout_is_one_error_line(cases: Path, redirect: str,
                                                    reason: str) -> None:
    chain = _case(cases, "15") / "unicode-chain.txt"
    for args in (["parse", str(chain)], ["report", str(chain)]):
        assert_one_error(run_command(args, shell_redirect=redirect), reason)


def test_15_broken_pipe_is_quiet(tmp_path: Path) -> None:
    """A reader that leaves is no error (docs/cli.md, "Exit status"; more in
    tests/test_cli_broken_pipe.py): parse's status 0 stands, nothing on stderr."""
    rules = tmp_path / "big.txt"
    body = "".join(f"-A INPUT -s 10.{i // 65536}.{i // 256 % 256}.{i % 256} -j DROP\n"
                   for i in range(20000))
    rules.write_text(f"*filter\n:INPUT ACCEPT [0:0]\n{body}COMMIT\n")
    run = run_command(["parse", str(rules)], shell_redirect="| head -c 10 >/dev/null; "
                                                          "exit ${PIPESTATUS[0]}")
    assert (run.status, run.err) == (0, "")


def test_15_unwritable_output_file_is_one_error_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no-such-dir" / "g.dot"
    run = run_in_process(["graph", str(REPO_ROOT / "fixtures" / "default-bridge-8080"),
                          "-o", str(out)], capsys)
    assert_one_error(run, f"{out}: cannot write: No such file or directory")


# -- 16: unreadable folders and files -------------------------------------------------------------

def _without_dac_override(args: list[str]) -> list[str]:
    """Run as root without CAP_DAC_OVERRIDE/READ_SEARCH, so file modes apply (as for a user)."""
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *args]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to drop CAP_DAC_OVERRIDE")
@pytest.mark.parametrize("unreadable", [".", "iptables-save.txt", "a JSON file"])
def test_16_unreadable_folder_or_file_is_one_error_line(cases: Path, tmp_path: Path,
                                                        unreadable: str) -> None:
    snap = _copy(_case(cases, "16") / "snap", tmp_path / "snap")
    if unreadable == "a JSON file":
        (snap / "meta.json").write_text("{}")  # the case holds rules only
        unreadable = "meta.json"
    target = snap / unreadable
    target.chmod(0)
    try:
        proc = subprocess.run(_without_dac_override([str(NATLENS), "report", str(snap)]),
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        target.chmod(0o755)
    where = snap if unreadable == "." else target
    assert_one_error(Run(proc.returncode, proc.stdout, proc.stderr),
                     f"{where}: cannot read: Permission denied")


# -- 17: Unicode digits ---------------------------------------------------------------------------

@pytest.mark.parametrize(("option", "value", "reason"), [
    ("--icmp-type", "²", "unknown icmp type '²'"),
    ("--icmp-type", "٣", "unknown icmp type"),
    ("--dport", "²", "--dport: destination port must be a port number 0..65535, not '²'"),
])
def test_17_unicode_digits_are_refused(cases: Path, capsys: pytest.CaptureFixture[str],
                                       option: str, value: str, reason: str) -> None:
    snap = _case(cases, "17") / "snap"
    run = run_in_process(["trace", str(snap), "--in", "eth0", "--src", "198.51.100.7", "--dst",
                          "192.0.2.2", "--proto", "icmp" if "icmp" in option else "tcp", option,
                          value], capsys)
    assert run.status == 2
    assert len(run.err_lines) == 1, run.err
    assert reason in run.err_lines[0]


def test_17_api_refuses_unicode_digit_ports() -> None:
    import natlens

    for bad in ("²", "9" * 5000):
        with pytest.raises(natlens.UsageError, match="port number"):
            natlens.Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2",
                           dport=bad)


# -- 18: bounded messages -------------------------------------------------------------------------

def test_18_error_messages_stay_short(cases: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    gen = _case(cases, "18") / "gen.sh"
    subprocess.run(["bash", str(gen), str(tmp_path)], check=True, timeout=120)
    for name in ("word.txt", "chain.txt"):
        run = run_in_process(["parse", str(tmp_path / name)], capsys)
        line = assert_one_error(run, f"{tmp_path / name}:")
        assert len(line.encode()) < 600, len(line)


# -- 19: endless input ----------------------------------------------------------------------------

def test_19_dev_zero_is_refused_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_error(run_in_process(["parse", "/dev/zero"], capsys),
                     "/dev/zero: binary file, not text")


def test_19_endless_text_stops_at_the_size_limit() -> None:
    """An endless pipe of text (``yes``) is cut at the limit, not read until memory runs out."""
    run = run_command(["parse", "-"], env={"NATLENS_MAX_INPUT": "2M"},
                      shell_redirect="< <(yes -- '-A INPUT -j ACCEPT')")
    assert_one_error(run, "<stdin>: larger than the 2 MiB input limit (set NATLENS_MAX_INPUT")


def test_19_bad_size_limit_is_a_usage_error(tmp_path: Path) -> None:
    rules = tmp_path / "r.txt"
    rules.write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    assert_one_error(run_command(["parse", str(rules)], env={"NATLENS_MAX_INPUT": "lots"}),
                     "NATLENS_MAX_INPUT='lots': not a size")
    assert run_command(["parse", str(rules)], env={"NATLENS_MAX_INPUT": "1K"}).status == 0
    assert_one_error(run_command(["parse", str(rules)], env={"NATLENS_MAX_INPUT": "10"}),
                     "larger than the 10 bytes input limit")


# -- 22: a dump of the other family ---------------------------------------------------------------

def test_22_case_snapshot_is_not_reported_clean(cases: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = run_in_process(["report", str(_case(cases, "22") / "snap")], capsys)
    assert run.status == 2, run.out


@pytest.mark.parametrize(("dump", "saved_as", "message"), [
    ("ip6tables-save.txt", "iptables-save.txt",
     "iptables-save.txt:1: this is ip6tables-save output; save it as ip6tables-save.txt"),
    ("iptables-save.txt", "ip6tables-save.txt",
     "ip6tables-save.txt:1: this is iptables-save output; save it as iptables-save.txt"),
])
def test_22_dump_of_the_other_family_is_refused(cases: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], *,
                                                dump: str, saved_as: str, message: str) -> None:
    snap = _copy(_case(cases, "22") / "snap", tmp_path / "snap")
    fixture = REPO_ROOT / "fixtures" / "ipv6"
    if saved_as == "iptables-save.txt":
        (snap / saved_as).write_text((fixture / dump).read_text())
    else:
        (snap / "iptables-save.txt").write_text((fixture / "iptables-save.txt").read_text())
        (snap / saved_as).write_text((fixture / dump).read_text())
    assert_one_error(run_in_process(["report", str(snap)], capsys), f"{snap}/{message}")


# -- 26: messages name the file; present-but-unusable is not "missing" ----------------------------

def test_26_messages_name_the_file_and_json_path(cases: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    case = _case(cases, "26")
    work = tmp_path / "c"
    work.mkdir()
    for name in ("container-no-id", "dir-as-json", "ipaddr-entry"):
        _copy(case / name, work / name)
    (work / "dir-as-json" / "ip-route.json").symlink_to("docker-containers.json")
    loop = work / "symlink-loop"
    loop.mkdir()
    shutil.copy(case / "dir-as-json" / "iptables-save.txt", loop / "iptables-save.txt")
    (loop / "docker-containers.json").symlink_to("docker-containers.json")
    expected = {
        "container-no-id": "container-no-id/docker-containers.json: $[0]: no 'Id' field",
        "dir-as-json": ".json: is a directory, not a file",
        "ipaddr-entry": "ipaddr-entry/ip-addr.json: $[0]: expected an object, got a number 1",
        "symlink-loop": "symlink-loop/docker-containers.json: cannot read: Too many levels of "
                        "symbolic links",
    }
    for name, message in expected.items():
        assert_one_error(run_in_process(["report", str(work / name)], capsys), message)
