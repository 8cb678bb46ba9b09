"""Case 06's kind in IPv6: ip6tables-nft cannot print a chain that nft-ruleset.json holds whole.

A host namespace (``eth0`` 2001:db8:6::1/64, a LAN peer 2001:db8:6::2) loads ip6tables rules
with the nf_tables backend, then native rules inside the iptables-nft chain ``guard-in`` (after
its first rule): a mark ip6tables-nft cannot print (``meta mark set meta mark and ...``, as
Tailscale writes) and a drop. ``ip6tables-nft-save`` stops there (its messages in the text as a
terminal shows them, or only stdout: the table cut without COMMIT, read with ``--lenient``);
the snapshot also holds ``nft -j list ruleset``.

The kernel is the referee: the peer sends UDP datagrams, and the nft counters of guard-in's
rules (iptables-nft gives every rule one; the native drop has its own) say which rule took
each. natlens, on the capture, must give the kernel's verdict with the same rules of guard-in
(rules the dump shows by position, the others by their nft handle), say which chain it
completed from nft-ruleset.json, and, when the two files disagree on a rule both show (the
rule changed between the two captures), say so and leave the chain unknown instead.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from netns_helpers import namespaces, needs_root, run, veth

import natlens

pytestmark = pytest.mark.kernel

HOST, PEER = "2001:db8:6::1", "2001:db8:6::2"
RULES = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:guard-in - [0:0]
-A INPUT -j guard-in
-A guard-in -p udp -m udp --dport 7000 -j DROP
-A guard-in -p udp -m udp --dport 9999 -j ACCEPT
-A guard-in -p udp -m udp --dport 5000 -j ACCEPT
-A guard-in -p ipv6-icmp -j ACCEPT
COMMIT
"""
NATIVE = (  # inserted before guard-in's second rule, in this order
    "meta mark set meta mark and 0xff00ffff",
    f"ip6 saddr {PEER} udp dport 9999 counter drop",
)
SEND = ("import socket,sys\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
        "s.bind((sys.argv[1],40000))\ns.sendto(b'natlens',(sys.argv[2],int(sys.argv[3])))\n")
PROBES = {7000: "DROP", 9999: "DROP", 5000: "ACCEPT"}
"""Destination port -> the kernel's verdict (7000: the rule the dump shows; 9999: the native
drop it cannot print; 5000: an iptables rule after it, also not printed)."""


def _guard_in(ns: str) -> list[dict[str, Any]]:
    """guard-in's rules as ``nft -j`` lists them, in order."""
    listing = json.loads(run("nft", "-j", "list", "chain", "ip6", "filter", "guard-in", ns=ns))
    return [item["rule"] for item in listing["nftables"] if "rule" in item]


def _udp_counters(ns: str) -> dict[int, int]:
    """handle -> packets, for guard-in's rules that count and are about UDP."""
    out = {}
    for rule in _guard_in(ns):
        counter = next((e["counter"] for e in rule["expr"] if "counter" in e), None)
        if counter is not None and "udp" in json.dumps(rule["expr"]):
            out[rule["handle"]] = counter["packets"]
    return out


def _kernel(ns: str, peer: str, port: int) -> set[int]:
    """Send one datagram from the peer to ``port``: the handles of guard-in's UDP rules whose
    counter moved (waiting until one has)."""
    before = _udp_counters(ns)
    run(sys.executable, "-c", SEND, PEER, HOST, str(port), ns=peer)
    for _ in range(100):
        after = _udp_counters(ns)
        moved = {h for h, n in after.items() if n != before.get(h, 0)}
        if moved:
            return moved
        time.sleep(0.02)
    return set()


def _natlens(snap: natlens.Snapshot, handles: list[int], counted: set[int],
             port: int) -> tuple[str, set[int]]:
    """natlens's verdict for the datagram and the handles of guard-in's rules its trace takes
    (a dump rule's handle is the nft rule at its position), of those in ``counted``."""
    trace = natlens.simulate(snap, natlens.Packet(in_interface="eth0", src=PEER, dst=HOST,
                                                  proto="udp", sport=40000, dport=port))
    taken = set()
    for step in trace.steps:
        if step.chain != "guard-in" or step.kind.value != "rule":
            continue
        assert step.rule is not None
        taken.add(step.rule if step.source == "nft" else handles[step.rule - 1])
    return trace.verdict.value, taken & counted


def _capture(host: str, folder: Path, form: str) -> None:
    folder.mkdir()
    command = "stdbuf -oL ip6tables-nft-save 2>&1; true" if form == "terminal" else \
        "ip6tables-nft-save 2>/dev/null; true"
    (folder / "ip6tables-save.txt").write_text(run("sh", "-c", command, ns=host))
    (folder / "iptables-save.txt").write_text(run("iptables-nft-save", ns=host))
    (folder / "nft-ruleset.json").write_text(run("nft", "-j", "list", "ruleset", ns=host))
    (folder / "ip-addr.json").write_text(run("ip", "-j", "addr", "show", ns=host))
    (folder / "ip-route.json").write_text(run("ip", "-j", "route", "show", ns=host))
    (folder / "ip-route6.json").write_text(run("ip", "-j", "-6", "route", "show", ns=host))
    (folder / "meta.json").write_text(json.dumps({"iptables_backend": "nf_tables"}))


def _host(host: str, peer: str) -> None:
    veth(host, "eth0", peer, "eth0")
    for ns, addr in ((host, HOST), (peer, PEER)):
        run("ip", "link", "set", "lo", "up", ns=ns)
        run("ip", "-6", "addr", "add", f"{addr}/64", "dev", "eth0", "nodad", ns=ns)
    run("ip6tables-nft-restore", ns=host, stdin=RULES)
    for n, rule in enumerate(NATIVE, 1):
        run("nft", "insert", "rule", "ip6", "filter", "guard-in", "index", str(n), rule,
            ns=host)


def _load(folder: Path, form: str) -> natlens.Snapshot:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return natlens.load(folder, strict=form == "terminal")


@pytest.mark.parametrize("form", ["terminal", "cut"])
def test_ipv6_chain_completed_from_nft_json(form: str, tmp_path: Path) -> None:
    needs_root("ip6tables-nft-restore", "iptables")
    needs_root("nft", "nftables")
    with namespaces("nl6ch", "nl6cp") as (host, peer):
        _host(host, peer)
        _capture(host, tmp_path / "snap", form)
        handles = [r["handle"] for r in _guard_in(host)]
        counted = set(_udp_counters(host))
        kernel = {port: _kernel(host, peer, port) for port in PROBES}
    dump = (tmp_path / "snap" / "ip6tables-save.txt").read_text()
    assert "-A guard-in -p udp -m udp --dport 7000 -j DROP" in dump
    assert "--dport 5000" not in dump  # the dump stops in guard-in
    snap = _load(tmp_path / "snap", form)
    for port, verdict in PROBES.items():
        assert kernel[port], f"port {port}: no counter of guard-in moved"
        assert _natlens(snap, handles, counted, port) == (verdict, kernel[port]), port
    said = [n for n in snap.notes if "completed from nft-ruleset.json" in n]
    assert len(said) == 1, snap.notes
    assert "filter guard-in (1 rules shown, 5 read from nft-ruleset.json)" in said[0]


def test_ipv6_disagreeing_files_leave_the_chain_unknown(tmp_path: Path) -> None:
    needs_root("ip6tables-nft-restore", "iptables")
    needs_root("nft", "nftables")
    with namespaces("nl6dh", "nl6dp") as (host, peer):
        _host(host, peer)
        _capture(host, tmp_path / "snap", "terminal")
        # the first rule changes after nft-ruleset.json was written: the dump (written again)
        # shows the new one
        first = _guard_in(host)[0]["handle"]
        run("nft", "replace", "rule", "ip6", "filter", "guard-in", "handle", str(first),
            "udp", "dport", "7000", "counter", "accept", ns=host)
        (tmp_path / "snap" / "ip6tables-save.txt").write_text(
            run("sh", "-c", "stdbuf -oL ip6tables-nft-save 2>&1; true", ns=host))
        kernel = _kernel(host, peer, 9999)
    assert "--dport 7000 -j ACCEPT" in (tmp_path / "snap" / "ip6tables-save.txt").read_text()
    snap = _load(tmp_path / "snap", "terminal")
    said = [n for n in snap.notes if "disagrees" in n]
    assert len(said) == 1, snap.notes
    assert "rule 1: the dump has -j ACCEPT, nft-ruleset.json -j DROP" in said[0], said
    assert not any("completed from nft-ruleset.json" in n for n in snap.notes)
    # natlens does not choose: the kernel's DROP is one of the ways it gives, not certain
    assert kernel, "no counter of guard-in moved"
    trace = natlens.simulate(snap, natlens.Packet(in_interface="eth0", src=PEER, dst=HOST,
                                                  proto="udp", sport=40000, dport=9999))
    assert trace.rests_on_unseen
    assert "DROP" in {b.verdict.value for b in trace.branches}, trace.branches
