"""The audit finds on native nftables what it finds on the same rules written for iptables.

Each case is a snapshot whose rules are iptables dumps (a fixture, a docs example, a real-world
case of ``cases/real-world/``). Its nft twin
is made with the real tools: ``iptables-restore-translate`` writes the dumps as native nft,
``nft -f`` loads that into a fresh network namespace (the kernel accepts it), ``nft -j list
ruleset`` captures it, and the twin is the same snapshot with that JSON as its only rules (empty
iptables dumps: a host whose firewall is all native nftables). Both are audited; the kinds the
case names must be found on both sides, each nft finding blaming an nft rule (table ``FAMILY
NAME``, index its handle) where its iptables twin blames a rule.

Every nft fix is then checked by the installed nft in the twin's namespace: ``nft -c`` accepts
it, and applied for real it removes the finding (re-captured and audited again) without adding
one. Needs root; about 2 s a case.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_helpers import namespaces, needs_root, run
from test_fixes_apply import _native_nft

from natlens.audit import audit
from natlens.audit.findings import Finding
from natlens.audit.nft_refs import is_nft
from natlens.snapshot import load

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent
_DUMPS = {"iptables-save.txt": "iptables-restore-translate",
          "ip6tables-save.txt": "ip6tables-restore-translate"}

CASES = [
    # a stale DNAT, a REDIRECT shadowing a published port, a DOCKER-USER rule on a host port,
    # a DNAT repeated in PREROUTING
    pytest.param("fixtures/planted-faults", ("stale", "shadowed", "ineffective", "duplicate"),
                 id="stale-shadowed-ineffective-duplicate"),
    pytest.param("docs/examples/mismatch", ("mismatch",), id="mismatch"),
    # a DNAT edited to the wrong port, a loop, unused and unreachable chains, an INPUT allow
    # after a catch-all drop
    pytest.param("fixtures/planted-rules",
                 ("mismatch", "loop", "unreachable-chain", "unused-chain", "dead-rule"),
                 id="mismatch-loop-unreachable-unused-dead"),
    pytest.param("docs/examples/missing", ("missing",), id="missing"),
    pytest.param("fixtures/icc-no-proxy", ("hairpin-blocked",), id="hairpin-blocked"),
    pytest.param("fixtures/loopback-9000", ("exposed",), id="exposed"),
    # ufw's INPUT drop that the DNAT bypasses, and its INPUT allow the port never reaches
    pytest.param("fixtures/multi-interface-ufw", ("bypass", "ineffective"),
                 id="bypass-ineffective"),
    # an IPv4-only block in DOCKER-USER: IPv6 reaches the port
    pytest.param("fixtures/ipv6-docker-user-v4only", ("bypass",), id="bypass-v4-only"),
    # Docker 28's raw drop of direct routing ahead of a DOCKER-USER allow for a VPN
    pytest.param("fixtures/docker28-raw-drop", ("ineffective",), id="raw-dropped-allow"),
    # firewalld's zone refusing the port in INPUT, the DNAT bypassing it; an nftables.conf
    # forward policy drop (both native already, next to Docker's rules made native too)
    pytest.param("fixtures/firewalld-docker", ("bypass",), id="bypass-firewalld"),
    pytest.param("fixtures/nftables-conf-docker", ("missing",), id="missing-nftables-conf"),
    pytest.param("fixtures/default-bridge-8080", (), id="clean"),
]


def _kinds(found: list[Finding]) -> set[str]:
    return {f.kind for f in found}


def _load_nft_twin(folder: Path, ns: str, out: Path) -> Path:
    """``folder`` with its iptables dumps translated to native nft, loaded into ``ns`` next
    to the snapshot's own native tables."""
    native = _native_nft(folder)  # the snapshot's own native tables (an nftables.conf)
    if native is not None:
        run("nft", "-j", "-f", "-", ns=ns, stdin=native)
    text = "".join(run(tool, "-f", str(folder / name)) for name, tool in _DUMPS.items()
                   if (folder / name).is_file())
    run("nft", "-f", "-", ns=ns, stdin=text)
    twin = out / "twin"
    shutil.copytree(folder, twin)
    for name in _DUMPS:
        if (twin / name).exists():
            (twin / name).write_text("")
    _recapture(ns, twin)
    return twin


def _recapture(ns: str, twin: Path) -> None:
    (twin / "nft-ruleset.json").write_text(run("nft", "-j", "list", "ruleset", ns=ns))


def _key(f: Finding) -> tuple[object, ...]:
    return (f.kind, f.container, f.host_port, f.rule.table if f.rule else None,
            f.rule.chain if f.rule else None)


def _nft_fixes(found: list[Finding]) -> Iterator[tuple[Finding, list[list[str]]]]:
    """The findings whose fix is nft commands, with the argv of each (``a && b``)."""
    for f in found:
        if f.fix is None:
            continue
        argvs: list[list[str]] = [[]]
        for word in shlex.split(f.fix):
            if word == "&&":
                argvs.append([])
            else:
                argvs[-1].append(word)
        if all(argv and argv[0] == "nft" for argv in argvs):
            yield f, argvs


REAL_WORLD = [
    # Docker's DOCKER-USER with rules but no jump to it
    pytest.param("09-moby48560-docker-user-not-jumped", ("unused-chain",), id="09"),
    # ufw's INPUT policy drop: bypassed from outside, refusing the bridge's hairpin and the
    # host's own connection's reply
    pytest.param("11-ufwdocker119-ufw-blocks-published-port", ("bypass", "hairpin-blocked"),
                 id="11"),
    # docker-ipv6nat's loopback DNAT in nat OUTPUT
    pytest.param("12-ipv6nat34-ip6tables-xtables-save", ("hairpin-blocked",), id="12"),
    # Tailscale's ts-forward accepting ahead of DOCKER-USER, and its exposure of a container
    pytest.param("13-tailscale12070-stateful-filter-drops-docker", ("exposed", "ineffective"),
                 id="13"),
]


@pytest.mark.parametrize(("case", "kinds"), CASES)
def test_nft_twin_finds_what_iptables_finds(case: str, kinds: tuple[str, ...],
                                            tmp_path: Path) -> None:
    _check_twin(ROOT / case, kinds, tmp_path)


@pytest.mark.parametrize(("case", "kinds"), REAL_WORLD)
def test_nft_twin_of_a_real_world_case(case: str, kinds: tuple[str, ...], cases: Path,
                                       tmp_path: Path) -> None:
    _check_twin(cases / "real-world" / case, kinds, tmp_path)


def _check_twin(folder: Path, kinds: tuple[str, ...], tmp_path: Path) -> None:
    """The audit of ``folder`` and of its nft twin find ``kinds`` alike (module docstring)."""
    needs_root("nft", "nftables")
    ipt = audit(load(folder))
    assert set(kinds) <= _kinds(ipt), [str(f) for f in ipt]
    with namespaces("nlpar") as (ns,):
        twin = _load_nft_twin(folder, ns, tmp_path)
        found = audit(load(twin))
        assert set(kinds) <= _kinds(found), [str(f) for f in found]
        if not kinds:
            assert not found, [str(f) for f in found]
        # each iptables finding of those kinds has its nft twin (same kind, container, port
        # and chain), blaming an nft rule where it blames a rule, with a fix where it has one
        for f in ipt:
            if f.kind not in kinds:
                continue
            chain = f.rule.chain if f.rule else None
            twins = [g for g in found if (g.kind, g.container, g.host_port) ==
                     (f.kind, f.container, f.host_port)
                     and (g.rule.chain if g.rule else None) == chain]
            assert twins, (str(f), [str(g) for g in found])
            if f.rule is not None:
                assert any(g.rule is not None and is_nft(g.rule) for g in twins), str(f)
            if f.fix is not None:
                assert any(g.fix is not None for g in twins), str(f)
        # every nft fix: the installed nft accepts it, and applied it removes its finding
        before = {_key(f) for f in found}
        fixes = list(_nft_fixes(found))
        for _, argvs in fixes:
            # each command alone against the loaded ruleset (a later one may need an earlier
            # one applied: deleting a chain once it is flushed)
            run("nft", "-c", *argvs[0][1:], ns=ns)
        for f, argvs in fixes:
            if _key(f) not in before:
                continue  # an earlier fix removed it too (the chains of a loop)
            for argv in argvs:
                run(*argv, ns=ns)
            _recapture(ns, twin)
            after = {_key(g) for g in audit(load(twin))}
            assert _key(f) not in after, f.fix
            assert after <= before, (f.fix, after - before)
            before = after
