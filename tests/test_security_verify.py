"""``natlens verify`` never runs text from a snapshot: every value that reaches an ``ip`` command
line, ``iptables-restore`` input or ``/proc/sys`` is checked against the kernel's own rules and
passed as one argv word.

Hostile case 01 (a MAC address in ``ip-addr.json`` holding ``ip -batch`` lines) and its kind:
every snapshot field verify hands to ``ip`` (interface names, bridge ports, route devices and
types, Docker bridge names, container MACs), every name in the restore input (chains, match and
target extensions, comments), and the sysctls of ``meta.json`` (a namespace shares
``kernel.core_pattern`` with the host). A bad value is refused with one line naming the file and
the JSON path (or file and line) before any namespace exists; a kernel-valid name full of shell
and batch syntax goes through as one argv word and runs nothing. Hostile case 24: a rule the
kernel refuses is reported as one line naming the snapshot file and line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import natlens
from natlens.errors import NatlensError, SnapshotError
from natlens.model import Chain as ModelChain
from natlens.model import Match, Option, Rule, Ruleset, Table, TableName, Target, TargetKind
from natlens.verify import ns as netns
from natlens.verify.kernel_names import (
    check_chain,
    check_extension,
    check_ifname,
    check_mac,
    sysctl_path,
)
from natlens.verify.restore import RestoreInputError, restore_input
from natlens.verify.topology import TopologyError, plan

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "fixtures" / "default-bridge-8080"
INJECTION = "\nnetns add nlsec-inj\nnetns exec nlsec-inj touch PWNED #"


def _needs_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the kernel tests as root", pytrace=False)
        pytest.skip("needs root for network namespaces")


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run natlens; afterwards no namespace of that process may exist."""
    with subprocess.Popen([sys.executable, "-m", "natlens.cli", *argv], cwd=cwd, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**os.environ, "PYTHONPATH": str(REPO)}) as proc:
        out, err = proc.communicate(timeout=300)
    assert [n for n in netns.listing() if n.startswith(f"{netns.PREFIX}{proc.pid}-")] == []
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# -- the kernel's rules -------------------------------------------------------------------------

GOOD_IFNAMES = ["eth0", "docker0", "br-0123456789ab", "x" * 15, "veth.100", "a#b;c$d`e'f\"g",
                "ü-net"]
BAD_IFNAMES = ["", "x" * 16, "ü" * 8, ".", "..", "a/b", "eth0:1", "a b", "a\tb", "a\nb", "a\x1bb",
               "a\x00b", "a\u2028b", 7, None]


@pytest.mark.parametrize("name", GOOD_IFNAMES)
def test_kernel_valid_interface_names_pass(name: str) -> None:
    assert check_ifname(name) == name


@pytest.mark.parametrize("name", BAD_IFNAMES, ids=repr)
def test_interface_names_the_kernel_refuses(name: object) -> None:
    with pytest.raises(ValueError, match="interface name"):
        check_ifname(name)


@pytest.mark.parametrize("mac", ["02:42:ac:11:00:02", "5E:C9:3E:CC:63:49"])
def test_unicast_macs_pass(mac: str) -> None:
    assert check_mac(mac) == mac.lower()


@pytest.mark.parametrize("mac", ["02:42:ac:11:00", "02:42:ac:11:00:02:03", "02-42-ac-11-00-02",
                                 "02:42:ac:11:00:0g", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01",
                                 "00:00:00:00:00:00", "02:42:ac:11:00:02" + INJECTION, "",
                                 " 02:42:ac:11:00:02", None])
def test_macs_the_kernel_refuses(mac: object) -> None:
    with pytest.raises(ValueError, match="MAC address"):
        check_mac(mac)


@pytest.mark.parametrize("name", ["DOCKER", "KUBE-SEP-ABCDEFGHIJKLMNOP", "x" * 28, "a.b:c/d"])
def test_chain_names_iptables_takes(name: str) -> None:
    assert check_chain(name) == name


@pytest.mark.parametrize("name", ["", "x" * 29, "-X", "!X", "ACCEPT", "RETURN", "a b", "a\nb",
                                  "a\rb", "a\x1b"])
def test_chain_names_iptables_refuses(name: str) -> None:
    with pytest.raises(ValueError, match="chain name"):
        check_chain(name)


@pytest.mark.parametrize("name", ["../../tmp/evil", "a b", "", "x" * 29, "geo\nip"])
def test_extension_names_that_are_no_library(name: str) -> None:
    with pytest.raises(ValueError, match="extension name"):
        check_extension(name)


@pytest.mark.parametrize("key", ["kernel.core_pattern", "kernel.modprobe", "vm.overcommit_memory",
                                 "net.core.rmem_max", "net.ipv4.conf.a/b.route_localnet",
                                 "net.ipv4.conf.a b.route_localnet", "net.ipv4.ip_forward\n",
                                 "net/ipv4/ip_forward", "net.ipv4.conf...route_localnet"])
def test_only_per_namespace_switches_are_written(key: str) -> None:
    with pytest.raises(ValueError, match=r"sysctl|interface name"):
        sysctl_path(key)


@pytest.mark.parametrize(("key", "path"), [
    ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
    ("net.ipv4.conf.eth0.100.route_localnet", "/proc/sys/net/ipv4/conf/eth0.100/route_localnet"),
    ("net.ipv4.conf.ipv4.route_localnet", "/proc/sys/net/ipv4/conf/ipv4/route_localnet"),
    ("net.bridge.bridge-nf-call-ip6tables", "/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
])
def test_sysctl_paths(key: str, path: str) -> None:
    assert str(sysctl_path(key)) == path


# -- snapshot fields: refused before anything is built ------------------------------------------

Mutation = Callable[[dict[str, Any]], str]
"""Changes the loaded JSON files of a snapshot; returns the file and JSON path the error names."""


def _addr(i: int, key: str, value: object) -> Mutation:
    def change(files: dict[str, Any]) -> str:
        files["ip-addr.json"][i][key] = value
        return f"ip-addr.json: $[{i}].{key}"
    return change


def _route(i: int, key: str, value: object) -> Mutation:
    def change(files: dict[str, Any]) -> str:
        files["ip-route.json"][i][key] = value
        return f"ip-route.json: $[{i}].{key}"
    return change


def _bridge_name(value: str) -> Mutation:
    def change(files: dict[str, Any]) -> str:
        files["docker-networks.json"][2]["Options"]["com.docker.network.bridge.name"] = value
        return "docker-networks.json: $[2].Options['com.docker.network.bridge.name']"
    return change


def _container_mac(value: str) -> Mutation:
    def change(files: dict[str, Any]) -> str:
        nets = files["docker-containers.json"][0]["NetworkSettings"]["Networks"]
        nets["bridge"]["MacAddress"] = value
        return "docker-containers.json: $[0].NetworkSettings.Networks['bridge'].MacAddress"
    return change


def _sysctl(key: str, value: str) -> Mutation:
    def change(files: dict[str, Any]) -> str:
        files["meta.json"].setdefault("sysctl", {})[key] = value
        return f"meta.json: $.sysctl['{key}']"
    return change


HOSTILE: dict[str, Mutation] = {
    "mac-batch-lines (case 01)": _addr(4, "address", "02:42:cf:1d:f0:20 type bridge" + INJECTION),
    "mac-multicast": _addr(4, "address", "03:42:cf:1d:f0:20"),
    "ifname-newline": _addr(3, "ifname", "eth0" + INJECTION),
    "ifname-colon": _addr(3, "ifname", "eth0:0"),
    "ifname-slash": _addr(3, "ifname", "../../x"),
    "ifname-too-long": _addr(3, "ifname", "eth0-but-16-long"),
    "ifname-dotdot": _addr(3, "ifname", ".."),
    "master-space": _addr(5, "master", "docker0 up"),
    "route-dev-newline": _route(0, "dev", "eth0" + INJECTION),
    "route-type-newline": _route(0, "type", "unicast" + INJECTION),
    "route-type-unknown": _route(0, "type", "teleport"),
    "bridge-name-newline": _bridge_name("docker0" + INJECTION),
    "bridge-name-too-long": _bridge_name("docker0-is-too-long"),
    "container-mac-newline": _container_mac("02:42:ac:11:00:02" + INJECTION),
    "container-mac-short": _container_mac("02:42:ac:11:00"),
    "sysctl-value-text": _sysctl("net.ipv4.ip_forward", "1" + INJECTION),
    # "2" is a value the kernel takes (non-zero: on); one out of int range it refuses
    "sysctl-value-out-of-range": _sysctl("net.ipv4.conf.all.route_localnet", "2147483648"),
}


def _hostile_copy(tmp: Path, mutate: Mutation) -> tuple[Path, str]:
    folder = tmp / "snap"
    shutil.copytree(FIXTURE, folder)
    files = {p.name: json.loads(p.read_text()) for p in folder.glob("*.json")}
    where = mutate(files)
    for name, data in files.items():
        (folder / name).write_text(json.dumps(data, indent=2))
    return folder, where


def _snapshot_values(folder: Path) -> natlens.Snapshot:
    """The folder's JSON as verify receives it, without the loader's own schema checks (this
    test is about verify's checks, which must hold for any Snapshot a caller builds)."""
    snap = natlens.load(FIXTURE)
    data = {name: json.loads((folder / f).read_text()) for name, f in (
        ("addresses", "ip-addr.json"), ("routes", "ip-route.json"),
        ("containers", "docker-containers.json"), ("networks", "docker-networks.json"),
        ("meta", "meta.json"))}
    return dataclasses.replace(snap, path=str(folder), **data)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_plan_refuses_hostile_values(tmp_path: Path, case: str) -> None:
    folder, where = _hostile_copy(tmp_path, HOSTILE[case])
    snap = _snapshot_values(folder)
    with pytest.raises(SnapshotError) as info:
        plan(snap, prefix=f"nlv-{os.getpid()}-000000-")
    message = str(info.value)
    assert message.startswith(f"{folder}/{where}"), message
    assert "\n" not in message
    assert len(message) < 400


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_cli_refuses_hostile_values_before_building(tmp_path: Path, case: str) -> None:
    """Through the CLI (whichever check answers first: the loader's or verify's): exit 2, one
    line naming the file, no namespace, nothing executed."""
    folder, where = _hostile_copy(tmp_path, HOSTILE[case])
    done = _cli("verify", str(folder), "--packets", "1", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert where.split(":")[0] in done.stderr
    assert not (tmp_path / "PWNED").exists()
    assert "nlsec-inj" not in netns.listing()


def test_unknown_sysctls_are_noted_not_written(tmp_path: Path) -> None:
    folder, _ = _hostile_copy(tmp_path, _sysctl("kernel.core_pattern", "|/tmp/x"))
    p = plan(_snapshot_values(folder), prefix=f"nlv-{os.getpid()}-000000-")
    assert all(key.startswith("net.") for key, _ in p.sysctl)
    assert any("kernel.core_pattern" in note and "not mirrored" in note for note in p.notes)


# -- restore input ------------------------------------------------------------------------------


def _ruleset(rule: Rule, *chains: str) -> Ruleset:
    table = Table(TableName.FILTER, (ModelChain("INPUT", True, "ACCEPT", rules=(rule,)),
                                     *(ModelChain(c, False) for c in chains)))
    return Ruleset(tables=(table,), source="snap/iptables-save.txt")


@pytest.mark.parametrize(("rule", "chains"), [
    (Rule("INPUT", matches=(Match("comment", (Option("--comment", ("x\nCOMMIT\n*nat",)),)),)),
     ()),
    (Rule("INPUT", matches=(Match("../../tmp/evil"),)), ()),
    (Rule("INPUT", target=Target("../x", kind=TargetKind.UNKNOWN)), ()),
    (Rule("INPUT", target=Target("a\nb", kind=TargetKind.CHAIN)), ("a\nb",)),
    (Rule("INPUT", target=Target("-X", kind=TargetKind.CHAIN)), ("-X",)),
    (Rule("INPUT", target=Target("LOG", (Option("--log-prefix", ("a\0b",)),))), ()),
], ids=["comment-lines", "match-path", "target-path", "chain-newline", "chain-dash",
        "nul-in-option"])
def test_restore_input_refuses(rule: Rule, chains: tuple[str, ...]) -> None:
    with pytest.raises(RestoreInputError) as info:
        restore_input(_ruleset(rule, *chains))
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("snap/iptables-save.txt")


def test_restore_input_maps_lines_to_the_snapshot() -> None:
    snap = natlens.load(FIXTURE)
    rest = restore_input(snap.ruleset)
    lines = rest.text.splitlines()
    assert len(lines) == len(rest.origins)
    for text, origin in zip(lines, rest.origins, strict=True):
        if origin is not None and text.startswith("-A "):
            assert text.split()[:2] == origin.text.split("] ", 1)[-1].split()[:2]


# -- kernel: nothing runs, errors are one line ----------------------------------------------------


@pytest.mark.kernel
def test_case_01_batch_injection(cases: Path, tmp_path: Path) -> None:
    _needs_root()
    done = _cli("verify", str(cases / "hostile" / "01-verify-ip-batch-injection" / "snapshot"),
                "--packets", "5", cwd=tmp_path)
    try:
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert "ip-addr.json" in done.stderr
        assert "address" in done.stderr
        assert not (tmp_path / "natlens-case01-PWNED").exists()
        assert "case01inj" not in netns.listing()
    finally:
        netns.delete("case01inj")


@pytest.mark.kernel
def test_shell_and_batch_syntax_in_a_valid_name_runs_nothing(tmp_path: Path) -> None:
    """``x;touch${IFS}P#`` is a name the kernel takes (15 bytes, no '/', ':' or space); verify
    builds an interface of that name, and no shell or batch parser ever sees it."""
    _needs_root()
    name = "x;touch${IFS}P#"
    assert check_ifname(name) == name

    def rename(files: dict[str, Any]) -> str:
        for entry in files["ip-addr.json"]:
            if entry["ifname"] == "eth0":
                entry["ifname"] = name
        for route in files["ip-route.json"]:
            if route.get("dev") == "eth0":
                route["dev"] = name
        return ""

    folder, _ = _hostile_copy(tmp_path, rename)
    snap = natlens.load(folder)
    p = plan(snap, prefix=f"nlv-{os.getpid()}-000000-")
    assert p.link(name) is not None
    report = natlens.verify.verify(snap, packets=5)
    assert report.tried >= 5
    assert any(r.probe.packet.in_interface == name for r in report.results)
    assert not (tmp_path / "P").exists()
    assert not Path("P").exists()
    assert [n for n in netns.listing() if n.startswith(f"nlv-{os.getpid()}-")] == []


@pytest.mark.kernel
def test_case_24_kernel_refusal_is_one_line(cases: Path, tmp_path: Path) -> None:
    _needs_root()
    case = cases / "hostile" / "24-verify-error-not-one-line"
    done = _cli("verify", "snap", "--packets", "5", cwd=case)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    line = done.stderr.strip()
    number = next(i for i, text in enumerate((case / "snap" / "iptables-save.txt")
                                             .read_text().splitlines(), 1) if "geoip" in text)
    assert line.startswith(f"natlens: error: snap/iptables-save.txt:{number}: the kernel "
                           "refuses this rule (Couldn't load match 'geoip')"), line
    assert line.endswith("'-A DOCKER-USER -m geoip --src-cc CN -j DROP'"), line


def test_verify_errors_are_natlens_errors() -> None:
    assert issubclass(TopologyError, NatlensError)
    assert issubclass(RestoreInputError, ValueError)


def test_report_text_escapes_snapshot_text() -> None:
    from natlens.verify.compare import VerifyReport

    report = VerifyReport("snap", 0, notes=["container \x1b]0;owned\x07web\u202e: not mirrored",
                                            "x\nFAKE LINE"])
    text = report.render()
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\x07" not in text
    assert "\nFAKE LINE" not in text
    assert "\\x1b]0;owned" in text


def test_cleanup_option_usage(monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from natlens.cli import main

    assert main(["verify", "--cleanup", str(FIXTURE)]) == 2
    assert "takes no PATH" in capsys.readouterr().err
    assert main(["verify"]) == 2
    assert "needs a PATH (or --cleanup)" in capsys.readouterr().err
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert main(["verify", "--cleanup"]) == 2
    err = capsys.readouterr().err
    assert "needs root" in err
    assert err.count("\n") == 1
