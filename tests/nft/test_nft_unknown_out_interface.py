"""nft ``oifname``/``oif`` on an output interface the snapshot cannot tell: one interface for
the whole path, as iptables' ``-o`` (tests/netfilter/test_nf_unknown_out_interface.py).

Each reading a branch takes joins ``Flow.out_readings`` and decides the later comparisons, set
lookups and verdict maps keyed on the output interface (``natlens.nft.outiface``); a reading
that sends a packet out of a Docker network's bridge to a destination outside the network is
unlikely (``Host.unlikely_out``) and its branches come after the others.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nft_build import ACCEPT, DROP, aset, flow, jump, match, meta, one_rule, payload, ruleset

from natlens.model import Family, Ruleset
from natlens.netfilter import Host, Simulator
from natlens.netfilter.packet import Packet
from natlens.netfilter.trace import Trace
from natlens.nft import loads as nft_loads

_CONTAINER = {"in_interface": "docker0", "src": "172.17.0.2", "dst": "1.1.1.1",
              "sport": 40000, "dport": 443}


def _unrouted(readings: tuple[tuple[str, bool], ...]) -> Any:
    return replace(flow(**_CONTAINER), out_known=False, out_iface=None, out_readings=readings)


@pytest.mark.parametrize(("right", "op", "readings", "matched", "noted"), [
    # no reading yet: a doubt, each branch noting its reading
    ("docker0", "==", (), None, [(("docker0", True),), (("docker0", False),)]),
    ("docker0", "!=", (), None, [(("docker0", False),), (("docker0", True),)]),
    ("br-*", "==", (), None, [(("br-+", True),), (("br-+", False),)]),
    # an earlier reading decides
    ("docker0", "==", (("docker0", False),), False, None),
    ("docker0", "!=", (("docker0", False),), True, None),
    ("docker0", "==", (("eth0", True),), False, None),
    ("br-1234", "==", (("br-+", False),), False, None),
    ("eth0", "!=", (("br-+", True),), True, None),
    # a set: in it when the path read one of its names, out when it read none
    (aset("docker0", "br-1"), "==", (("br-1", True),), True, None),
    (aset("docker0", "br-1"), "!=", (("docker0", False), ("br-1", False)), True, None),
    (aset("docker0", "br-1"), "==", (("docker0", False),), None,
     [(("br-1", True),), (("br-1", False),)]),
    # two names open: "in the set" is one branch per name, each reading it (as -o does)
    (aset("docker0", "br-1"), "==", (), None,
     [(("docker0", True),), (("br-1", True),), (("docker0", False), ("br-1", False))]),
    (aset("docker0", "br-*"), "!=", (), None,
     [(("docker0", False), ("br-+", False)), (("docker0", True),), (("br-+", True),)]),
    # not the interface of an earlier exact reading, and not decided by a wildcard reading
    ("eth0", "==", (("docker0", False),), None,
     [(("eth0", True),), (("eth0", False),)]),
])
@pytest.mark.parametrize("key", ["oifname", "oif"])
def test_readings_decide_and_are_noted(key: str, right: Any, op: str, *,
                                       readings: tuple[tuple[str, bool], ...],
                                       matched: bool | None,
                                       noted: list[tuple[tuple[str, bool], ...]] | None) -> None:
    out = one_rule([match(meta(key), right, op), ACCEPT], _unrouted(readings), hook="forward",
                   family="ip")
    assert out.matched is matched
    if noted is None:
        assert out.flow.out_readings == readings
        return
    inside = len(noted) - 1 if op == "==" else 1  # the branches that match come first
    assert [b.matched for b in out.branches] == [True] * inside + [False] * (len(noted) - inside)
    assert [b.flow.out_readings for b in out.branches] == [readings + n for n in noted]


def test_vmap_follows_and_notes_readings() -> None:
    """``oifname vmap``: one branch per name still open (each reading it), one for none
    (reading none of them); a name read earlier chooses its element with no doubt."""
    vmap = {"vmap": {"key": meta("oifname"), "data": aset(
        ["docker0", jump("a")], ["br-1", jump("b")])}}
    out = one_rule([vmap], _unrouted(()), hook="forward", family="ip")
    assert [(b.target, b.flow.out_readings) for b in out.branches] == [
        ("a", (("docker0", True),)), ("b", (("br-1", True),)),
        (None, (("docker0", False), ("br-1", False)))]
    sure = one_rule([vmap], _unrouted((("br-1", True),)), hook="forward", family="ip")
    assert (sure.matched, sure.target) == (True, "b")
    none = one_rule([vmap], _unrouted((("docker0", False), ("br-1", False))), hook="forward",
                    family="ip")
    assert (none.matched, none.verdict) == (False, None)


# -- whole traces -------------------------------------------------------------------------------

_BASE = {"forward": {"type": "filter", "hook": "forward", "prio": 0, "policy": "drop"},
         "postrouting": {"type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}


def _rules(form: str, bridge: str, subnet: str) -> dict[str, Any]:
    """iptables' ``-o BRIDGE --dport 443 -j DROP``, ``-i BRIDGE ! -o BRIDGE -j ACCEPT``,
    ``-i BRIDGE -o BRIDGE -j ACCEPT`` and Docker's MASQUERADE rule, in nft, the output
    interface matched by comparison, by set or by verdict map."""
    addr, length = subnet.split("/")
    iif = match(meta("iifname"), bridge)
    dport = match(payload("tcp", "dport"), 443)
    if form == "vmap":
        first = [{"vmap": {"key": meta("oifname"), "data": aset([bridge, jump("isolate")])}}]
    else:
        first = [match(meta("oifname"), aset(bridge) if form == "set" else bridge), dport, DROP]
    right = aset(bridge) if form == "set" else bridge
    chains = {
        "forward": [first, [iif, match(meta("oifname"), right, "!="), ACCEPT],
                    [iif, match(meta("oifname"), right), ACCEPT]],
        "isolate": [[dport, DROP]],
        "postrouting": [[match(payload("ip", "saddr"),
                               {"prefix": {"addr": addr, "len": int(length)}}),
                         match(meta("oifname"), right, "!="), {"masquerade": None}]],
    }
    return ruleset("ip", chains, base=_BASE)


def _network(bridge: str, subnet: str) -> list[dict[str, Any]]:
    return [{"Name": "backend", "Id": "ab" * 32, "Driver": "bridge",
             "Options": {"com.docker.network.bridge.name": bridge},
             "IPAM": {"Config": [{"Subnet": subnet}]}}]


def _trace(doc: dict[str, Any] | str, host: Host, **packet: Any) -> Trace:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    sim = Simulator(host, Ruleset(Family.IPV4), Ruleset(Family.IPV6),
                    nft=nft_loads(text, "nft.json"))
    return sim.trace(Packet(proto="tcp", **packet))


def _oif_readings(assumed: tuple[str, ...]) -> dict[str, set[bool]]:
    """What a branch assumed of each ``oifname NAME``: the interface is (True) or is not it."""
    said: dict[str, set[bool]] = {}
    for a in assumed:
        if "oifname " not in a or "output interface unknown" not in a:
            continue
        cond = a.split("oifname ", 1)[1].split(":", 1)[0]
        negated = cond.startswith(("!= ", "!="))
        name = cond.removeprefix("!=").strip().strip('{ }"')
        if " chose " in a:
            said.setdefault(a.rsplit(" chose ", 1)[1].rstrip(")"), set()).add(True)
            continue
        if "no element" in a or "," in name:
            continue
        hit = "(assumed to match)" in a
        said.setdefault(name, set()).add(hit != negated)
    return said


@pytest.mark.parametrize(("bridge", "subnet", "src"), [
    ("docker0", "172.17.0.0/16", "172.17.0.2"),
    ("br-5f1c0a", "10.44.0.0/24", "10.44.0.7"),  # any name: the data tell
])
@pytest.mark.parametrize("form", ["compare", "set", "vmap"])
def test_headline_is_the_likely_interface(form: str, bridge: str, subnet: str,
                                          src: str) -> None:
    """The first rule's "matches" reading drops, but a packet from the bridge to a public
    address most likely leaves by another interface: the headline is the ACCEPT, the DROP one
    later branch naming why it is unlikely, and no branch reads the interface both ways."""
    host = Host.from_json(None, None, _network(bridge, subnet))
    trace = _trace(_rules(form, bridge, subnet), host, in_interface=bridge, src=src,
                   dst="1.1.1.1", sport=40000, dport=443)
    assert (trace.verdict.value, trace.path.value) == ("ACCEPT", "forward")
    drops = [b for b in trace.branches if b.verdict.value == "DROP"]
    assert len(drops) == 1
    assert any(a.startswith(f"unlikely: output interface {bridge}: 1.1.1.1 is outside "
                            f"{bridge}'s {subnet}") for a in drops[0].assumed)
    assert not any(a.startswith("unlikely") for a in trace.branches[0].assumed)
    assert any(_oif_readings(b.assumed) for b in trace.branches)
    for b in trace.branches:
        assert all(len(v) == 1 for v in _oif_readings(b.assumed).values()), b.assumed
        # the masquerade follows the branch's reading: only out of another interface
        out_of_bridge = _oif_readings(b.assumed).get(bridge) == {True}
        masqueraded = any("masquerade" in s.text for s in b.steps)
        forwarded = b.verdict.value == "ACCEPT" and b.path.value == "forward"
        assert masqueraded is (forwarded and not out_of_bridge), b


def test_docker29_ruleset_reads_one_interface(corpus: Path) -> None:
    """Docker 29's own nftables table (corpus: moby's docs, ``new-daemon``): the forward
    chain's ``oifname vmap`` reading decides the postrouting ``oifname != "docker0" ...
    masquerade`` (no doubt there), and the reading "out of docker0" to a public address comes
    last, marked unlikely."""
    doc = corpus / "nftables" / "docker-v29-nftables" / "new-daemon.loaded-by-nft-1.0.6.json"
    host = Host.from_json(None, None, _network("docker0", "172.17.0.0/16"))
    trace = _trace(doc.read_text(), host, **_CONTAINER)
    assert (trace.verdict.value, trace.path.value) == ("ACCEPT", "forward")
    assert not [u for u in trace.uncertain if 'oifname != "docker0"' in u]
    forward = [b for b in trace.branches if b.path.value == "forward"]
    chose = [b for b in forward if any("chose docker0" in a for a in b.assumed)]
    assert chose
    assert len(chose) < len(forward)
    assert all(any(a.startswith("unlikely: output interface docker0") for a in b.assumed)
               for b in chose)
    assert forward[0] not in chose
    for b in forward:
        masqueraded = any("masquerade" in s.text for s in b.steps)
        assert masqueraded is (b not in chose), b
