"""An nft set of output interface names, on a path whose output interface is unknown (no route):
each "in the set" branch reads the interface as one of the set's names, as iptables' ``-o``
records its reading (one interface for the whole path, ``Flow.out_readings``), so a later
``oifname`` or ``-o`` on the branch never contradicts it.

The rules end the inner chain with a drop that only a contradicting reading can reach ("in the
set, but neither of its names"): no branch may reach it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "nft"))
from nft_build import ACCEPT, DROP, aset, jump, match, meta, ruleset

from natlens.model import Family
from natlens.netfilter import Host, Packet, Simulator
from natlens.nft import loads as nft_loads
from natlens.parse import parse_save

_BASE = {"forward": {"type": "filter", "hook": "forward", "prio": -10, "policy": "accept"}}


def _doc(op: str) -> dict[str, Any]:
    """forward: ``oifname [!=] { "dk0", "br-1" }`` jumps to ``inner`` (``==``) or accepts
    (``!=``); ``inner`` drops dk0, accepts br-1 and then drops what no reading allows."""
    names = aset("dk0", "br-1")
    first = [match(meta("oifname"), names, op), jump("inner") if op == "==" else ACCEPT]
    rest = [[jump("inner")]] if op == "!=" else []
    return ruleset("ip", {
        "forward": [first, *rest],
        "inner": [[match(meta("oifname"), "dk0"), DROP],
                  [match(meta("oifname"), "br-1"), ACCEPT],
                  [{"counter": None}, DROP]],
    }, base=_BASE)


# iptables filter FORWARD (priority 0) runs after the nft chain (-10): it reads the same
# interface as the nft branch did
_IPTABLES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -o br-1 -j DROP
COMMIT
"""


def _trace(op: str) -> Any:
    host = Host.from_json(None, None)
    sim = Simulator(host, parse_save(_IPTABLES, source="iptables-save"),
                    parse_save("", source="ip6tables-save", family=Family.IPV6),
                    nft=nft_loads(json.dumps(_doc(op)), "nft.json"))
    return sim.trace(Packet(in_interface="docker0", src="172.17.0.2", dst="1.1.1.1",
                            proto="tcp", sport=40000, dport=443), dst_local=False)


def _ends(branch: Any) -> tuple[str, str | None]:
    """(verdict, the last rule's text) of a branch."""
    rules = [s for s in branch.steps if s.table is not None]
    return branch.verdict.value, rules[-1].text if rules else None


@pytest.mark.parametrize("op", ["==", "!="])
def test_in_the_set_reads_one_name(op: str) -> None:
    """dk0: dropped by ``inner``; br-1: accepted there, then dropped by iptables ``-o br-1``
    (the same interface); neither: accepted, iptables' ``-o br-1`` read as not matching without
    a fork of its own. Nothing else: before, the "in the set" branch read no name and forked
    again at each ``oifname`` of ``inner``, down to the drop no interface can reach."""
    trace = _trace(op)
    ends = {}
    for b in trace.branches:
        name = next((n for a in b.assumed for n in ("dk0", "br-1")
                     if a.endswith(f"output interface {n})")), None)
        assert name not in ends, [x.assumed for x in trace.branches]
        ends[name] = _ends(b)
    assert ends == {"dk0": ("DROP", 'oifname "dk0" drop'),
                    "br-1": ("DROP", "-A FORWARD -o br-1 -j DROP"),
                    None: ("ACCEPT", "policy ACCEPT")}, ends
