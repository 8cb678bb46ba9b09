"""Every finding's ``fix`` works: applied with the real tool, the finding goes and none comes.

Parametrized over (fixture, finding) for every finding with a fix in the golden reports of
``fixtures/*`` (tests/golden/report/fixtures/) and of tests/golden/report/faults. For each:

1. a fresh network namespace (``nlfix-<pid>-<n>``) gets the fixture's rules: the main iptables
   dumps with the backend meta.json names (``iptables-nft-restore`` / ``iptables-legacy-restore``),
   the other backend's dumps with the other tool, and the native nftables tables of
   ``nft-ruleset.json`` with ``nft -j -f`` (the tables the nf_tables iptables dumps name come from
   those dumps, as ``natlens verify`` loads them);
2. the finding's ``fix`` runs inside the namespace through ``sh -c`` (it is one shell command line;
   iptables, ip6tables, iptables-legacy or nft — firewall-cmd and ufw cannot be confined to a
   namespace here, so natlens writes its fixes as iptables/nft commands);
3. ``natlens.capture`` runs inside the namespace (``docker=False``); its rule files replace the
   fixture's, every other file (Docker, addresses, routes, meta, ss, sysctl) is the fixture's;
4. the audit of that capture no longer has the finding and has no finding the fixture did not
   have (findings are compared by kind, container, port and the blamed rule's chain and text, so
   a rule inserted above does not count as a change of the others' positions).

Step 3 without step 2 must give back the fixture's own findings: the round trip is checked too.
Needs root; about 2 s a case.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from natlens.audit import audit
from natlens.audit.findings import Finding
from natlens.capture import capture
from natlens.netfilter.nftchains import iptables_nft_tables
from natlens.snapshot import SNAPSHOT_FILES, load
from natlens.verify import ns

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "report"
RULE_FILES = {SNAPSHOT_FILES[k] for k in ("iptables", "ip6tables", "other_backend",
                                          "other_backend6", "legacy", "legacy6", "nft_backend",
                                          "nft_backend6", "nft")}
_SEQ = count()


def _sources() -> Iterator[tuple[str, Path, Path]]:
    """(name, snapshot folder, golden report) pairs."""
    for golden in sorted((GOLDEN / "fixtures").glob("*.json")):
        yield golden.stem, ROOT / "fixtures" / golden.stem, golden
    yield "faults", GOLDEN / "faults", GOLDEN / "faults" / "expected.json"


def _cases() -> Iterator[Any]:
    for name, folder, golden in _sources():
        data = json.loads(golden.read_text())
        findings = data["findings"] if isinstance(data, dict) else data
        for i, f in enumerate(findings):
            if f.get("fix"):
                yield pytest.param(folder, f["kind"], f["fix"], id=f"{name}-{i}-{f['kind']}")


CASES = list(_cases())

PLANTS = [
    # a DNAT in Docker's chain to the wrong container port
    pytest.param("default-bridge-8080", "mismatch",
                 "iptables -t nat -R DOCKER 2 ! -i docker0 -p tcp -m tcp --dport 8080 "
                 "-j DNAT --to-destination 172.17.0.2:81", id="mismatch"),
    # two chains that jump to each other, reached from no built-in chain (the kernel refuses a
    # reachable loop): a loop, and chains no rule reaches
    pytest.param("default-bridge-8080", "loop",
                 "iptables -N NLA && iptables -N NLB && iptables -A NLA -j NLB && "
                 "iptables -A NLB -j NLA", id="loop"),
    pytest.param("default-bridge-8080", "unreachable-chain",
                 "iptables -N NLC && iptables -N NLD && iptables -A NLC -j NLD && "
                 "iptables -A NLD -j DROP", id="unreachable-chain"),
    # an nft forward rule written for the published host port (the container port after DNAT)
    pytest.param("nftables-conf-docker", "ineffective",
                 "nft insert rule inet filter forward tcp dport 8080 drop", id="nft-forward-port"),
    # an INPUT allow for a published port whose FORWARD drops it (iptables and nft); from eth0
    # only, so that no docker-proxy connection from a container meets it
    pytest.param("split-legacy-nft", "ineffective",
                 "iptables -I INPUT -i eth0 -p tcp -m tcp --dport 8080 -j ACCEPT",
                 id="input-allow"),
    pytest.param("nftables-conf-docker", "ineffective",
                 "nft add rule inet filter input iifname eth0 tcp dport 8080 accept",
                 id="nft-input-allow"),
    # an allow behind a catch-all drop (dead-rule, not ineffective: one kind for it)
    pytest.param("default-bridge-8080", "dead-rule",
                 "iptables -I DOCKER-USER -i eth0 -j DROP && "
                 "iptables -I DOCKER-USER 2 -i eth0 -s 10.8.0.0/24 -j ACCEPT",
                 id="allow-after-drop"),
]
"""(fixture, kind, plant): faults no fixture shows, planted with the real tool after the
fixture's rules are loaded; the audit of the capture must show ``kind`` with a fix."""


_OLD_NAMES = {"iptables-save.other-backend.txt": "iptables-legacy-save.txt",
              "ip6tables-save.other-backend.txt": "ip6tables-legacy-save.txt"}
"""natlens 0.1's names of the other backend's dumps (the faults snapshot's main one is
nf_tables, so they are the legacy ones); a capture writes the new names."""


def _key(f: Finding) -> tuple[Any, ...]:
    r = f.rule
    file = None if r is None or r.source is None else Path(r.source).name
    return (f.kind, f.container, f.host_port, f.proto,
            None if r is None else (_OLD_NAMES.get(file or "", file), r.family, r.table,
                                    r.chain, r.text))


def _restore_tool(backend: str, family: int) -> str:
    base = "iptables" if family == 4 else "ip6tables"
    return f"{base}-{'legacy' if backend == 'legacy' else 'nft'}-restore"


def _native_nft(folder: Path) -> str | None:
    """The native tables of the snapshot's nft-ruleset.json as ``nft -j -f`` input (handles
    and the ``owner`` flag dropped), or None when there are none."""
    path = folder / SNAPSHOT_FILES["nft"]
    if not path.exists():
        return None
    snap = load(folder)
    owned = iptables_nft_tables(snap.backend, snap.ruleset, snap.ruleset6)
    rank = {"table": 0, "chain": 1, "set": 2, "map": 2, "flowtable": 3, "rule": 4, "element": 5}
    out: list[tuple[int, dict[str, Any]]] = []
    for obj in json.loads(path.read_text())["nftables"]:
        (kind, body), = obj.items()
        if kind not in rank:
            continue
        table = body.get("name") if kind == "table" else body.get("table")
        if (body.get("family"), table) in owned:
            continue
        body = {k: v for k, v in body.items() if k != "handle"}
        if kind == "table" and "flags" in body:
            flags = [f for f in ([body["flags"]] if isinstance(body["flags"], str)
                                 else body["flags"]) if f != "owner"]
            body = {k: v for k, v in body.items() if k != "flags"} | (
                {"flags": flags} if flags else {})
        out.append((rank[kind], {kind: body}))
    if not out:
        return None
    out.sort(key=lambda x: x[0])
    return json.dumps({"nftables": [{"add": o} for _, o in out]})


def _load_rules(name: str, folder: Path) -> None:
    snap = load(folder)
    backend = snap.backend or "nf_tables"
    other = "nf_tables" if backend == "legacy" else "legacy"
    for key, family, b in (("iptables", 4, backend), ("ip6tables", 6, backend),
                           ("other_backend", 4, other), ("other_backend6", 6, other),
                           ("legacy", 4, "legacy"), ("legacy6", 6, "legacy"),
                           ("nft_backend", 4, "nf_tables"), ("nft_backend6", 6, "nf_tables")):
        path = folder / SNAPSHOT_FILES[key]
        if path.exists() and path.read_text().strip():
            ns.run([_restore_tool(b, family)], ns=name, stdin=path.read_text())
    nft = _native_nft(folder)
    if nft is not None:
        ns.run(["nft", "-j", "-f", "-"], ns=name, stdin=nft)


def _recapture(name: str, folder: Path, out: Path) -> Path:
    """``natlens.capture`` inside ``name``; the fixture's files except the rule files."""
    raw = out / "raw"
    with ns.entered(name):
        capture(raw, docker=False)
    snap = out / "snap"
    snap.mkdir()
    for f in raw.iterdir():
        if f.name in RULE_FILES:
            shutil.copy(f, snap / f.name)
    for f in folder.iterdir():
        if f.is_file() and f.name not in RULE_FILES:
            shutil.copy(f, snap / f.name)
    return snap


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("applying fixes needs root (network namespaces); CI runs it as root")
    name = f"nlfix-{os.getpid()}-{next(_SEQ)}"
    ns.add(name)
    try:
        yield name
    finally:
        ns.delete(name)


def test_there_are_fixes_to_check() -> None:
    kinds = {p.values[1] for p in CASES}
    assert len(CASES) >= 10
    kinds |= {p.values[1] for p in PLANTS}
    assert {"stale", "shadowed", "ineffective", "duplicate", "bypass", "exposed", "missing",
            "split-backend", "dead-rule", "unused-chain", "hairpin-blocked", "mismatch", "loop",
            "unreachable-chain"} <= kinds


@pytest.mark.parametrize(("folder", "kind", "fix"), CASES)
def test_fix_removes_the_finding(folder: Path, kind: str, fix: str, netns: str,
                                 tmp_path: Path) -> None:
    before = audit(load(folder))
    target = [f for f in before if f.kind == kind and f.fix == fix]
    assert target, f"the golden report's {kind} finding with this fix is gone from the audit"

    _load_rules(netns, folder)
    (tmp_path / "plain").mkdir()
    plain = audit(load(_recapture(netns, folder, tmp_path / "plain")))
    assert sorted(map(_key, plain), key=repr) == sorted(map(_key, before), key=repr), \
        "loading the fixture into a namespace and capturing it again changed the findings"

    done = subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", fix],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{fix!r} failed: {done.stderr.strip()}"

    (tmp_path / "fixed").mkdir()
    after = audit(load(_recapture(netns, folder, tmp_path / "fixed")))
    after_keys = {_key(f) for f in after}
    assert not after_keys & {_key(f) for f in target}, f"{kind} is still reported after {fix!r}"
    new = [f for f in after if _key(f) not in {_key(b) for b in before}]
    assert not new, "the fix brought new findings: " + "; ".join(
        f"{f.kind}: {f.message}" for f in new)


def _sh(netns: str, command: str) -> None:
    done = subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", command],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{command!r} failed: {done.stderr.strip()}"


@pytest.mark.parametrize(("fixture", "kind", "plant"), PLANTS)
def test_fix_of_a_planted_fault(fixture: str, kind: str, plant: str, netns: str,
                                tmp_path: Path) -> None:
    folder = ROOT / "fixtures" / fixture
    before = {_key(f) for f in audit(load(folder))}
    _load_rules(netns, folder)
    _sh(netns, plant)
    (tmp_path / "planted").mkdir()
    planted = audit(load(_recapture(netns, folder, tmp_path / "planted")))
    target = [f for f in planted if f.kind == kind and _key(f) not in before]
    assert target, f"planting {plant!r} gave no {kind}: " + "; ".join(map(str, planted))
    fix = next((f.fix for f in target if f.fix), None)
    assert fix is not None, f"no fix for {target[0]}"
    _sh(netns, fix)
    (tmp_path / "fixed").mkdir()
    after = audit(load(_recapture(netns, folder, tmp_path / "fixed")))
    done = [f for f in target if f.fix == fix]
    assert not {_key(f) for f in after} & {_key(f) for f in done}, f"still there after {fix!r}"
    new = [f for f in after if _key(f) not in {_key(p) for p in planted}]
    assert not new, "the fix brought new findings: " + "; ".join(map(str, new))
