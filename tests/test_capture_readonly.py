"""``natlens snapshot`` and ``natlens report --live`` change nothing in the kernel they read.

Each test makes a fresh network namespace whose ``iptables`` is either backend (nf_tables, or
legacy through a PATH shim as on a legacy host), loads the rules of hostile case 02 (a legacy
host with only a ``filter`` table) with that backend, then runs the capture *inside* the
namespace and compares, before and after: both backends' saves for IPv4 and IPv6, ``nft list
ruleset``, ``/proc/net/ip_tables_names`` and ``ip6_tables_names``, every ``net.*`` sysctl, and the
namespace's links, addresses and routes. On the legacy backend python-iptables (``natlens[iptc]``)
runs its cross-check, which once created the missing tables (case 02). Docker: the namespace
shares the host's files, so ``report --live`` reads the host's daemon (read-only API calls);
``snapshot --no-docker`` leaves it out. Needs root (``kernel``); ~2 s per case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_helpers import backend_env, namespaces, needs_root

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save",
         "ip6tables-legacy-save")


@pytest.fixture
def netns() -> Iterator[str]:
    needs_root((*TOOLS, "nft"), "iptables (both backends) and nftables")
    with namespaces("nlro-") as (name,):
        yield name


def _in(ns: str, *argv: str, env: dict[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          input=stdin, env=env, check=False)


def _kernel_state(ns: str) -> dict[str, str]:
    """Everything the capture could change, as text (counters and time stamps removed)."""
    state: dict[str, str] = {}
    for tool in TOOLS:
        out = _in(ns, tool).stdout
        state[tool] = "\n".join(re.sub(r"\[\d+:\d+\]", "", ln) for ln in out.splitlines()
                                if not ln.startswith("#"))
    state["nft list ruleset"] = _in(ns, "nft", "list", "ruleset").stdout
    for name in ("ip_tables_names", "ip6_tables_names", "arp_tables_names"):
        state[name] = _in(ns, "cat", f"/proc/net/{name}").stdout
    state["sysctl net.*"] = _in(ns, "sysctl", "-a", "-r", r"^net\.").stdout
    for what in (("link",), ("addr",), ("route",), ("-6", "route")):
        state[f"ip {' '.join(what)}"] = _in(ns, "ip", "-d", *what).stdout
    return state


COMMANDS = {
    "snapshot": ["snapshot", "--no-docker", "{out}"],
    "report --live": ["report", "--live", "--format", "json"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("backend", ["nf_tables", "legacy"])
def test_capture_changes_nothing(cases: Path, netns: str, tmp_path: Path, backend: str,
                                 command: str) -> None:
    env = backend_env(tmp_path, backend)
    rules = (cases / "hostile" / "02-snapshot-iptc-creates-tables" / "legacy-rules.txt")
    loaded = _in(netns, "iptables-restore", stdin=rules.read_text(), env=env)
    assert loaded.returncode == 0, loaded.stderr
    before = _kernel_state(netns)
    assert before["ip_tables_names"].split() == (["filter"] if backend == "legacy" else [])
    out = tmp_path / "out"
    argv = [a.format(out=out) for a in COMMANDS[command]]
    done = _in(netns, sys.executable, "-m", "natlens.cli", *argv, env=env)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    after = _kernel_state(netns)
    for key in before:
        assert after[key] == before[key], f"{command} ({backend}) changed {key}"
    if command == "snapshot":
        meta = json.loads((out / "meta.json").read_text())
        assert meta["iptables_backend"] == backend
        # on the legacy backend the python-iptables cross-check ran (and agreed) on the
        # tables that exist, without creating the others
        used = meta["python_iptables"]["used"]
        assert used == (backend == "legacy"), meta["python_iptables"]
        if used:
            assert meta["python_iptables"]["agrees"] is True


def test_cross_check_opens_only_listed_tables(cases: Path, netns: str) -> None:
    """Case 02 as its run.sh does it: only the ``filter`` table before and after, and
    ``iptables-legacy-save`` prints the same."""
    rules = (cases / "hostile" / "02-snapshot-iptc-creates-tables" / "legacy-rules.txt")
    assert _in(netns, "iptables-legacy-restore", stdin=rules.read_text()).returncode == 0
    code = ("import json; from natlens.legacy_check import existing_tables, iptc_rule_counts; "
            "print(json.dumps([existing_tables(), iptc_rule_counts()]))")
    before = _in(netns, "iptables-legacy-save").stdout
    done = _in(netns, sys.executable, "-c", code, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    tables, counts = json.loads(done.stdout)
    assert tables == ["filter"]
    assert sorted(counts) == ["filter"]
    assert _in(netns, "cat", "/proc/net/ip_tables_names").stdout.split() == ["filter"]
    strip = re.compile(r"^#.*$", re.M)
    assert strip.sub("", _in(netns, "iptables-legacy-save").stdout) == strip.sub("", before)
