"""The remaining finding kinds on this host's real daemon, each planted by hand and captured live.

tests/test_audit_live.py covers stale, shadowed, ineffective, bypass and exposed; this file plants
``duplicate``, ``mismatch``, ``missing``, ``unused-chain``, ``unreachable-chain``, ``loop``,
``dead-rule`` and ``split-backend`` next to real containers (names ``nlk-<pid>-*``, host ports
48371-48373), captures the host with ``natlens.capture`` into a temporary folder, audits it and
asserts the exact findings about what the test planted. Every change is undone in ``finally``
(in reverse order), and the host's ``iptables-save``, ``ip6tables-save``,
``iptables-legacy-save`` and ``ip6tables-legacy-save`` output (counters and comments ignored) is
checked to be as before, per test and for the module.

Needs root, iptables and a running dockerd (``scripts/start-dockerd.sh``) with the image
``natlens-busybox:latest`` (``scripts/make-busybox-image.sh``, run here when missing); skipped
without them, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from docker_helpers import docker as _docker
from docker_helpers import require_daemon_and_image
from docker_helpers import run as _run
from docker_helpers import unavailable as _unavailable

from natlens.audit import audit
from natlens.audit.findings import Finding, Severity
from natlens.capture import capture
from natlens.snapshot import load

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "natlens-busybox:latest"
PREFIX = f"nlk-{os.getpid()}"
TAG = f"NLK{os.getpid()}"  # user chains the test creates (iptables allows 28 characters)
# Host ports away from the fixtures', test_audit_live's (47xxx) and test_docker_inventory's.
WEB, API, APP = 48371, 48372, 48373
OURS = (WEB, API, APP)
SAVE_TOOLS = ("iptables-save", "ip6tables-save", "iptables-legacy-save", "ip6tables-legacy-save")


def _state() -> dict[str, str]:
    """Every backend's rules of the host, without counters and time-stamped comments."""
    out: dict[str, str] = {}
    for tool in SAVE_TOOLS:
        if shutil.which(tool) is None:
            continue
        text = _run(tool)
        out[tool] = "\n".join(re.sub(r"\[\d+:\d+\]\s*", "", ln) for ln in text.splitlines()
                              if not ln.startswith("#"))
    out["ip_tables_names"] = _proc_names("ip_tables_names")
    out["ip6_tables_names"] = _proc_names("ip6_tables_names")
    return out


def _proc_names(name: str) -> str:
    path = Path("/proc/net") / name
    return " ".join(sorted(path.read_text().split())) if path.exists() else ""


@dataclass
class Changes:
    """What a test did to the host: commands to run, in reverse order, to undo it."""

    undo: list[list[str]] = field(default_factory=list)

    def do(self, argv: list[str], undo: list[str]) -> None:
        _run(*argv)
        self.undo.append(undo)

    def revert(self) -> None:
        errors = []
        for argv in reversed(self.undo):
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                errors.append(f"{' '.join(argv)}: {proc.stderr.strip()}")
        self.undo.clear()
        assert not errors, errors


def _docker_dnat(port: int) -> tuple[int, list[str]]:
    """Position (1-based) and spec (after ``-A DOCKER``) of Docker's DNAT for host ``port``."""
    rules = [ln for ln in _run("iptables", "-t", "nat", "-S", "DOCKER").splitlines()
             if ln.startswith("-A DOCKER ")]
    for pos, line in enumerate(rules, 1):
        if f"--dport {port} " in line and "-j DNAT" in line:
            return pos, shlex.split(line)[2:]
    raise AssertionError(f"Docker wrote no DNAT for {port}: {rules}")


@dataclass(frozen=True)
class Scene:
    """The containers the ``scene`` fixture started: name and address per host port."""

    names: dict[int, str]
    addresses: dict[int, str]
    userland_proxy: bool


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    """Three containers publishing one port each (removed afterwards)."""
    require_daemon_and_image(IMAGE)
    before = _state()
    names = {WEB: f"{PREFIX}-web", API: f"{PREFIX}-api", APP: f"{PREFIX}-app"}
    try:
        for port, name in names.items():
            _docker("run", "-d", "--name", name, "-p", f"{port}:80", IMAGE)
        addresses = {port: _docker("inspect", "-f",
                                   "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                   name).strip() for port, name in names.items()}
        # docker-proxy runs for a published port unless the daemon has --userland-proxy=false
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
        proxy = f"-host-port {WEB}" in ps.stdout
        yield Scene(names, addresses, proxy)
    finally:
        ids = _docker("ps", "-aq", "--filter", f"name=^/{PREFIX}-").split()
        if ids:
            _docker("rm", "-f", *ids)
    assert _state() == before, "the host's rules differ from before the module"


@pytest.fixture
def changes() -> Iterator[Changes]:
    """Undo what the test changed, and check every backend's rules are as before."""
    before = _state()
    done = Changes()
    try:
        yield done
    finally:
        done.revert()
        assert _state() == before, "the test's rules were not all removed"


def _audit(folder: Path) -> list[Finding]:
    capture(folder)
    return audit(load(folder))


def _where(f: Finding) -> str | None:
    return f.rule.where if f.rule is not None else None


def _ours(found: list[Finding], scene: Scene) -> set[tuple[str, str, str | None, int | None]]:
    """(kind, severity, rule, host port) of the findings about what the test made."""
    return {(f.kind, f.severity.value, _where(f), f.host_port) for f in found
            if f.host_port in OURS or f.container in scene.names.values()
            or (f.rule is not None and TAG in f.rule.text)}


def _text(found: list[Finding]) -> str:
    return "\n".join(map(str, found))


def test_clean(scene: Scene, tmp_path: Path) -> None:
    """Nothing planted: nothing to say about the three containers."""
    found = _audit(tmp_path / "clean")
    assert _ours(found, scene) == set(), _text(found)


def test_duplicate(scene: Scene, changes: Changes, tmp_path: Path) -> None:
    """A copy of Docker's DNAT for WEB inserted ahead of it in nat DOCKER: Docker's own rule,
    the later copy, is the duplicate; traffic still reaches the container (no other finding)."""
    pos, spec = _docker_dnat(WEB)
    changes.do(["iptables", "-t", "nat", "-I", "DOCKER", "1", *spec],
               ["iptables", "-t", "nat", "-D", "DOCKER", "1"])
    found = _audit(tmp_path / "duplicate")
    assert _ours(found, scene) == {
        ("duplicate", "low", f"nat DOCKER #{pos + 1}", WEB)}, _text(found)
    (dup,) = [f for f in found if f.kind == "duplicate" and f.host_port == WEB]
    assert [r.where for r in dup.related] == ["nat DOCKER #1"]
    assert dup.message == "repeats nat DOCKER #1"


def test_shadowed_by_a_wrong_port_dnat(scene: Scene, changes: Changes, tmp_path: Path) -> None:
    """A DNAT for API to the right container but the wrong port, inserted *before* Docker's:
    natlens calls it ``shadowed`` (an earlier rule catches the port before Docker's correct DNAT,
    which is still there), not ``mismatch`` (see ``test_mismatch``)."""
    pos, _ = _docker_dnat(API)
    ip = scene.addresses[API]
    changes.do(["iptables", "-t", "nat", "-I", "DOCKER", "1", "!", "-i", "docker0", "-p", "tcp",
                "-m", "tcp", "--dport", str(API), "-j", "DNAT", "--to-destination", f"{ip}:81"],
               ["iptables", "-t", "nat", "-D", "DOCKER", "1"])
    found = _audit(tmp_path / "shadowed")
    assert _ours(found, scene) == {("shadowed", "high", "nat DOCKER #1", API)}, _text(found)
    (f,) = [f for f in found if f.kind == "shadowed"]
    assert f.container == scene.names[API]
    assert [r.where for r in f.related] == [f"nat DOCKER #{pos + 1}"]
    assert f"to {ip}:81" in f.message


def test_mismatch(scene: Scene, changes: Changes, tmp_path: Path) -> None:
    """Docker's DNAT for API replaced in place by one to the wrong container port (what a
    daemon that lost track of a recreated container leaves): ``mismatch`` on that rule."""
    pos, spec = _docker_dnat(API)
    ip = scene.addresses[API]
    wrong = [f"{ip}:81" if a == f"{ip}:80" else a for a in spec]
    assert wrong != spec
    changes.do(["iptables", "-t", "nat", "-R", "DOCKER", str(pos), *wrong],
               ["iptables", "-t", "nat", "-R", "DOCKER", str(pos), *spec])
    found = _audit(tmp_path / "mismatch")
    assert _ours(found, scene) == {("mismatch", "high", f"nat DOCKER #{pos}", API)}, _text(found)
    (f,) = [f for f in found if f.kind == "mismatch"]
    assert f.container == scene.names[API]
    assert f.message == (f"{scene.names[API]}'s {API}/tcp is DNATed by nat DOCKER #{pos} to "
                         f"{ip}:81, but {scene.names[API]} is at {ip}:80")


def test_missing(scene: Scene, changes: Changes, tmp_path: Path) -> None:
    """Docker's DNAT for APP deleted while the container runs: with the userland proxy on,
    docker-proxy alone serves the port (medium); without it nothing does (high)."""
    pos, spec = _docker_dnat(APP)
    changes.do(["iptables", "-t", "nat", "-D", "DOCKER", str(pos)],
               ["iptables", "-t", "nat", "-I", "DOCKER", str(pos), *spec])
    found = _audit(tmp_path / "missing")
    meta = json.loads((tmp_path / "missing" / "meta.json").read_text())
    assert meta["userland_proxy"] is scene.userland_proxy
    severity = "medium" if scene.userland_proxy else "high"
    assert _ours(found, scene) == {("missing", severity, None, APP)}, _text(found)
    (f,) = [f for f in found if f.kind == "missing"]
    assert f.container == scene.names[APP]
    if scene.userland_proxy:
        assert "has no DNAT rule: docker-proxy alone serves it" in f.message
        assert f.cis is not None


def test_unused_and_unreachable_chains(scene: Scene, changes: Changes, tmp_path: Path) -> None:
    """A user chain no rule jumps to (unused), which jumps to a second one (unreachable)."""
    unused, unreachable = f"{TAG}-U", f"{TAG}-R"
    for chain in (unused, unreachable):
        changes.do(["iptables", "-N", chain], ["iptables", "-X", chain])
    changes.do(["iptables", "-A", unreachable, "-p", "tcp", "--dport", "1", "-j", "DROP"],
               ["iptables", "-F", unreachable])
    changes.do(["iptables", "-A", unused, "-s", "192.0.2.99/32", "-j", unreachable],
               ["iptables", "-F", unused])
    found = _audit(tmp_path / "chains")
    mine = {(f.kind, f.severity.value, _where(f)) for f in found
            if f.rule is not None and f.rule.chain.startswith(TAG)}
    assert mine == {
        ("unused-chain", "low", f"filter {unused} #0"),
        ("unreachable-chain", "low", f"filter {unreachable} #0"),
    }, _text(found)
    (f,) = [f for f in found if f.kind == "unreachable-chain" and f.rule is not None
            and f.rule.chain == unreachable]
    assert f.message == (f"chain {unreachable} is only jumped to from chains no packet reaches "
                         f"({unused})")
    assert [r.where for r in f.related] == [f"filter {unused} #1"]


def test_loop(scene: Scene, changes: Changes, tmp_path: Path) -> None:
    """Two chains jumping to each other. The kernel (nf_tables and legacy alike) accepts such a
    loop as long as no built-in chain reaches it, so it is planted live; a jump from INPUT into
    it is refused (ELOOP: "Too many links"), so a reachable loop natlens can only meet in a
    saved dump: that case is checked on the captured snapshot with the jump added by hand."""
    a, b = f"{TAG}-A", f"{TAG}-B"
    for chain in (a, b):
        changes.do(["iptables", "-N", chain], ["iptables", "-X", chain])
    changes.do(["iptables", "-A", a, "-j", b], ["iptables", "-F", a])
    changes.do(["iptables", "-A", b, "-j", a], ["iptables", "-F", b])
    refused = subprocess.run(["iptables", "-A", "INPUT", "-j", a], capture_output=True,
                             text=True, check=False)
    if refused.returncode == 0:  # never expected; undo it before failing
        changes.undo.append(["iptables", "-D", "INPUT", "-j", a])
    assert refused.returncode != 0, "the kernel accepted a jump into a chain loop"
    found = _audit(tmp_path / "loop")
    mine = {(f.kind, f.severity.value, _where(f)) for f in found
            if f.rule is not None and f.rule.chain.startswith(TAG)}
    assert mine == {
        ("loop", "high", f"filter {b} #1"),
        ("unreachable-chain", "low", f"filter {a} #0"),
        ("unreachable-chain", "low", f"filter {b} #0"),
    }, _text(found)
    (loop,) = [f for f in found if f.kind == "loop"]
    assert loop.message.startswith(f"chains jump in a loop: {a} -> {b} -> {a}")
    assert [r.where for r in loop.related] == [f"filter {a} #1"]

    # The same loop reached from INPUT, as only a saved dump can have it.
    saved = tmp_path / "loop" / "iptables-save.txt"
    text = saved.read_text()
    head, sep, tail = text.partition(f":{a} - [0:0]\n")
    assert sep, "the captured dump declares the chain"
    lines = tail.split("\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith(("-A ", "[")))
    lines.insert(at, f"-A INPUT -j {a}")
    saved.write_text(head + sep + "\n".join(lines))
    found = audit(load(tmp_path / "loop"))
    mine = {(f.kind, f.severity.value, _where(f)) for f in found
            if f.rule is not None and f.rule.chain.startswith(TAG)}
    assert mine == {("loop", "high", f"filter {b} #1")}, _text(found)


def test_dead_rule(scene: Scene, changes: Changes, tmp_path: Path) -> None:
    """An ACCEPT for tcp from 0.0.0.0/0 in DOCKER-USER (to WEB's container only, so as not to
    open the host's other containers while the test runs) followed by a narrower DROP: the DROP
    never matches (medium: the targets differ)."""
    ip = scene.addresses[WEB]
    changes.do(["iptables", "-I", "DOCKER-USER", "1", "-s", "0.0.0.0/0", "-d", f"{ip}/32",
                "-p", "tcp", "-j", "ACCEPT"],
               ["iptables", "-D", "DOCKER-USER", "-s", "0.0.0.0/0", "-d", f"{ip}/32",
                "-p", "tcp", "-j", "ACCEPT"])
    changes.do(["iptables", "-I", "DOCKER-USER", "2", "-s", "203.0.113.0/24", "-d", f"{ip}/32",
                "-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "DROP"],
               ["iptables", "-D", "DOCKER-USER", "-s", "203.0.113.0/24", "-d", f"{ip}/32",
                "-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "DROP"])
    found = _audit(tmp_path / "dead")
    dead = [f for f in found if f.kind == "dead-rule"]
    assert [(f.severity, _where(f), [r.where for r in f.related]) for f in dead] == [
        (Severity.MEDIUM, "filter DOCKER-USER #2", ["filter DOCKER-USER #1"])], _text(found)
    assert dead[0].message == ("never matches: filter DOCKER-USER #1 (-j ACCEPT) catches all "
                               "its packets first")
    # The broad ACCEPT opens WEB's container to every tcp port, published or not.
    assert {(f.kind, f.container) for f in found if f.kind == "exposed"
            and f.container in scene.names.values()} == {("exposed", scene.names[WEB])}


def _backend() -> str:
    out = _run("iptables", "--version")
    return "legacy" if "(legacy)" in out or "nf_tables" not in out else "nf_tables"


@pytest.mark.kernel
def test_split_backend(scene: Scene, changes: Changes, tmp_path: Path) -> None:
    """One rule in the backend iptables does not use. It is planted in a throwaway network
    namespace and the capture runs there (``natlens snapshot`` reads the backends of the
    namespace it runs in): a rule in the host's other backend would stay visible to iptables-nft
    as "legacy tables present" until the legacy table module is unloaded, which the test cannot
    undo. The host's legacy tables are checked untouched (``changes`` compares
    iptables-legacy-save and /proc/net/ip_tables_names before and after)."""
    other = "iptables-legacy" if _backend() == "nf_tables" else "iptables-nft"
    if shutil.which(other) is None:
        _unavailable(f"{other} is not installed")
    ns = f"{PREFIX}-split"
    _run("ip", "netns", "add", ns)
    try:
        def in_ns(*argv: str) -> str:
            return _run("ip", "netns", "exec", ns, *argv)

        in_ns("iptables", "-A", "INPUT", "-p", "tcp", "-m", "tcp", "--dport", "22", "-j",
              "ACCEPT")
        in_ns(other, "-N", f"{TAG}-L")
        in_ns(other, "-A", f"{TAG}-L", "-s", "192.0.2.99/32", "-j", "RETURN")
        folder = tmp_path / "split"
        proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "natlens.cli",
                               "snapshot", "--no-docker", str(folder)],
                              capture_output=True, text=True, check=False, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
    finally:
        _run("ip", "netns", "del", ns)
    found = audit(load(folder))
    split = [f for f in found if f.kind == "split-backend"]
    backend = "legacy" if other == "iptables-legacy" else "nf_tables"
    assert [(f.severity, _where(f)) for f in split] == [
        (Severity.HIGH, f"filter {TAG}-L #1")], _text(found)
    other_file = ("iptables-legacy-save.txt" if other == "iptables-legacy"
                  else "iptables-nft-save.txt")
    assert split[0].message == (
        f"the {backend} backend holds iptables rules too (1 rule in {other_file}): the kernel "
        "applies both rule sets, iptables shows only one; natlens found no packet whose fate "
        "they change (they may still mark, count or log)")
    # the host itself has no split backend (nothing was left in its other backend)
    host = _audit(tmp_path / "host")
    assert [f for f in host if f.kind == "split-backend"] == [], _text(host)
