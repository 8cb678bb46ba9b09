"""``natlens snapshot DIR`` on this host: the files, their loading, and that nothing changed.

Needs root and iptables (the ``kernel`` marker): skipped otherwise, except in CI (``CI=true``),
where they fail. Docker is optional here; when a daemon answers its files must be there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from netns_helpers import namespaces

import natlens
from natlens import capture as capture_mod
from natlens.capture import has_rules, iptables_backend
from natlens.cli import main
from natlens.docker import connect, inventory_from_snapshot
from natlens.snapshot import SNAPSHOT_FILES

ROOT = Path(__file__).resolve().parent.parent


def _needs_host() -> None:
    __tracebackhide__ = True
    reason = None
    if os.geteuid() != 0:
        reason = "natlens snapshot needs root"
    elif capture_mod._which("iptables-save") is None:
        reason = "iptables-save is not installed"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _sbin(name: str) -> str:
    path = capture_mod._which(name)
    assert path is not None, name
    return path


def _rules(tool: str) -> str:
    """Rule text without counters and comment lines (which carry a time stamp)."""
    out = subprocess.run([_sbin(tool)], capture_output=True, text=True, check=True).stdout
    lines = (re.sub(r"\[\d+:\d+\]", "", ln) for ln in out.splitlines() if not ln.startswith("#"))
    return "\n".join(lines)


def _all_rules() -> dict[str, str]:
    tools = ["iptables-save", "ip6tables-save", "iptables-legacy-save", "iptables-nft-save"]
    return {t: _rules(t) for t in tools if capture_mod._which(t)}


def _docker_up() -> bool:
    try:
        connect().close()
    except natlens.NatlensError:
        return False
    return True


# --- on this host --------------------------------------------------------------------------------


@pytest.mark.kernel
def test_snapshot_writes_the_bundle_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _needs_host()
    before = _all_rules()
    target = tmp_path / "snap"
    assert main(["snapshot", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"natlens: snapshot of {os.uname().nodename} written to {target}")
    assert _all_rules() == before

    names = {p.name for p in target.iterdir()}
    for key in ("iptables", "ip6tables", "addresses", "routes", "meta"):
        assert SNAPSHOT_FILES[key] in names
    meta = json.loads((target / "meta.json").read_text())
    version_line = subprocess.run([_sbin("iptables"), "--version"], capture_output=True,
                                  text=True, check=True).stdout
    assert meta["iptables_backend"] == iptables_backend(version_line)[1]
    assert meta["iptables_backend"] in ("nf_tables", "legacy")
    assert meta["other_backend"] == ("legacy" if meta["iptables_backend"] == "nf_tables"
                                     else "nf_tables")
    assert isinstance(meta["other_backend_has_rules"], bool)
    assert meta["hostname"] == os.uname().nodename
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["time"])
    assert meta["sysctl"]["net.ipv4.ip_forward"] in ("0", "1")

    snap = natlens.load(target)
    assert snap.ruleset.tables or not before["iptables-save"].strip()
    assert isinstance(snap.addresses, list)
    assert any(a.get("ifname") == "lo" for a in snap.addresses)
    assert isinstance(snap.routes, list)

    if _docker_up():
        assert SNAPSHOT_FILES["containers"] in names
        assert meta["docker_version"]
        inv = inventory_from_snapshot(snap)
        assert inv is not None
        assert inv.network("bridge") is not None
        assert inv.daemon.version == meta["docker_version"]
    else:
        assert SNAPSHOT_FILES["containers"] not in names
        assert any("no Docker data" in n for n in meta["notes"])


@pytest.mark.kernel
def test_snapshot_refuses_a_non_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _needs_host()
    (tmp_path / "README.md").write_text("mine\n")
    (tmp_path / "meta.json").write_text("{}\n")
    assert main(["snapshot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"natlens: error: {tmp_path}: not empty (README.md, meta.json)")
    assert main(["snapshot", "--force", "--no-docker", str(tmp_path)]) == 0
    assert (tmp_path / "README.md").read_text() == "mine\n"  # not ours: kept
    assert json.loads((tmp_path / "meta.json").read_text())["notes"] == [
        "no Docker data: skipped (--no-docker)"]
    assert not (tmp_path / SNAPSHOT_FILES["containers"]).exists()


@pytest.mark.kernel
def test_snapshot_without_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    _needs_host()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    assert main(["snapshot", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert f"note: no Docker data: Docker daemon at unix://{tmp_path}/no-such.sock not " \
           "reachable" in out
    snap = natlens.load(tmp_path / "s")
    assert snap.containers is None
    assert inventory_from_snapshot(snap) is None
    assert snap.meta["docker_version"] is None
    assert snap.meta["userland_proxy"] is None


@pytest.mark.kernel
def test_snapshot_needs_root(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    _needs_host()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    tmp_path.chmod(0o777)
    # The unprivileged user may not read the checkout (a clone in a 0700 mktemp folder): it
    # runs a world-readable copy of the package.
    package = Path(tempfile.mkdtemp(prefix="natlens-pkg-"))  # outside pytest's 0700 tree
    request.addfinalizer(lambda: shutil.rmtree(package, ignore_errors=True))
    shutil.copytree(ROOT / "natlens", package / "natlens",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in [package, *package.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    proc = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "natlens.cli", "snapshot", str(tmp_path / "s")],
        capture_output=True, text=True, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(package)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("natlens: error: snapshot needs root (reading the kernel's netfilter "
                           "rules needs CAP_NET_ADMIN)\n")
    assert not (tmp_path / "s").exists()


@pytest.mark.kernel
def test_snapshot_missing_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    _needs_host()
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(capture_mod, "_SBIN", ())
    assert main(["snapshot", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err == ("natlens: error: snapshot needs iptables, which is not "
                                       "installed (install iptables)\n")


# --- offline --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("iptables v1.8.9 (nf_tables)", ("1.8.9", "nf_tables")),
    ("iptables v1.8.7 (legacy)", ("1.8.7", "legacy")),
    ("iptables v1.6.1", ("1.6.1", "legacy")),
    ("", (None, "legacy")),
])
def test_iptables_backend(line: str, expected: tuple[str | None, str]) -> None:
    assert iptables_backend(line) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("", False),
    ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", False),
    ("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n", True),
    ("*nat\n:DOCKER - [0:0]\nCOMMIT\n", True),
    ("*nat\n:PREROUTING ACCEPT [0:0]\n[3:180] -A PREROUTING -j ACCEPT\nCOMMIT\n", True),
    ("# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n", False),
], ids=["empty", "policies-accept", "policy-drop", "user-chain", "counted-rule", "warning"])
def test_has_rules(text: str, expected: bool) -> None:
    assert has_rules(text) is expected


def test_cli_lists_snapshot() -> None:
    from natlens.cli import build_parser

    args = build_parser().parse_args(["snapshot", "out", "--force", "--no-docker"])
    assert (args.dir, args.force, args.no_docker) == ("out", True, True)


@pytest.mark.kernel
def test_split_backend_is_recorded(tmp_path: Path) -> None:
    """Rules in the other backend (in a throwaway netns) land in meta.json and their own file."""
    _needs_host()
    backend = iptables_backend(subprocess.run([_sbin("iptables"), "--version"],
                                              capture_output=True, text=True,
                                              check=True).stdout)[1]
    other = "iptables-legacy" if backend == "nf_tables" else "iptables-nft"
    if capture_mod._which(other) is None:
        pytest.skip(f"{other} is not installed")
    with namespaces("natlens-capture-") as (ns,):
        def in_ns(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                                  text=True, check=False, cwd=ROOT)

        assert in_ns(_sbin(other), "-A", "INPUT", "-p", "tcp", "--dport", "22",
                     "-j", "ACCEPT").returncode == 0
        proc = in_ns(sys.executable, "-m", "natlens.cli", "snapshot", "--no-docker",
                     str(tmp_path / "s"))
        assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["other_backend_has_rules"] is True
    name = f"{other}-save.txt"
    assert meta["other_backend_files"] == [name]
    saved = (tmp_path / "s" / name).read_text()
    assert "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" in saved
    assert any("holds iptables rules too" in n for n in meta["notes"])
    for extra in ("ip-route6.json", "sysctl.txt", "ss.txt", "nft-ruleset.json"):
        assert (tmp_path / "s" / extra).is_file(), extra
    snap = natlens.load(tmp_path / "s")
    assert snap.other_backend is not None
    assert snap.other_backend.rule_count == 1
    assert "net.ipv4.ip_forward" in snap.sysctl
    trace = natlens.simulate(snap, natlens.Packet(in_interface="lo", src="127.0.0.1",
                                                  dst="127.0.0.1", proto="tcp", dport=22))
    assert [(s.source, s.table, s.chain, s.rule) for s in trace.steps
            if s.rule is not None] == [(other, "filter", "INPUT", 1)]
