"""The reply of a connection whose source NAT took an address the snapshot does not tell.

A container's connection leaves by eth0 through MASQUERADE; the host's addresses are unknown (no
ip-addr.json, no route naming a source), so is the address MASQUERADE took. The reply arrives
addressed to it, and the chains before the NAT step of PREROUTING (raw, mangle, nft chains
below -100) see that address, not the container's: a destination match there is read both
ways, ``-m addrtype --dst-type LOCAL`` / ``fib daddr type local`` match (it is the host's), and
the rewritten destination after the NAT step is the container's again
(tests/test_kernel_trace_reply_masquerade.py checks the same against the kernel).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from natlens.model import Family
from natlens.netfilter import Host, Packet, Simulator
from natlens.netfilter.connection import reply_packet
from natlens.nft import loads as nft_loads
from natlens.parse import parse_save

_MASQUERADE = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
"""

EGRESS = Packet(in_interface="docker0", src="172.17.0.2", dst="203.0.113.9", proto="tcp",
                sport=40000, dport=443)


def _raw(rule: str) -> str:
    return f"*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{rule}\nCOMMIT\n"


def _host() -> Host:
    return Host.from_json(None, [{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
                                 {"dst": "172.17.0.0/16", "dev": "docker0"}])


def _sim(extra: str = "", nft: dict[str, Any] | None = None) -> Simulator:
    return Simulator(_host(), parse_save(_MASQUERADE + extra, source="iptables-save"),
                     parse_save("", source="ip6tables-save", family=Family.IPV6),
                     nft=nft_loads(json.dumps(nft), "nft.json") if nft else None)


def _nft_raw(expr: list[dict[str, Any]]) -> dict[str, Any]:
    return {"nftables": [
        {"table": {"family": "ip", "name": "t", "handle": 1}},
        {"chain": {"family": "ip", "table": "t", "name": "pre", "handle": 2, "type": "filter",
                   "hook": "prerouting", "prio": -300, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "t", "chain": "pre", "handle": 3, "expr": expr}}]}


def _daddr(addr: str) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                      "right": addr}}


_FIB_LOCAL = {"match": {"op": "==", "left": {"fib": {"flags": ["daddr"], "result": "type"}},
                        "right": "local"}}
_DROP = {"drop": None}
_FROM_ETH0 = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}


def test_reply_is_addressed_to_the_unknown_address() -> None:
    trace = _sim().trace(EGRESS)
    assert (trace.verdict.value, trace.final_src) == ("ACCEPT", "172.17.0.2:40000"), str(trace)
    found = reply_packet(trace)
    assert found is not None
    _reply, mapping = found
    assert mapping is not None
    assert mapping.dst_unknown == "the address MASQUERADE took on eth0"
    assert mapping.dst == (EGRESS.src, EGRESS.sport)
    assert trace.connection is not None
    assert trace.connection.established is True
    assert "the address MASQUERADE took on eth0 (unknown)" in trace.connection.why


@pytest.mark.parametrize(("extra", "nft", "established", "said"), [
    # the container's address is not what raw sees: before, this reply was walked addressed
    # to it and dropped; now the rule is doubt, as one on the host's address is
    (_raw("-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP"), None, None, "-d 172.17.0.2"),
    (_raw("-A PREROUTING -d 192.0.2.2/32 -i eth0 -j DROP"), None, None, "-d 192.0.2.2"),
    (_raw("-A PREROUTING -m iprange --dst-range 192.0.2.1-192.0.2.9 -j DROP"), None, None,
     "iprange --dst-range"),
    # the address is the host's: LOCAL for certain
    (_raw("-A PREROUTING -i eth0 -m addrtype --dst-type LOCAL -j DROP"), None, False,
     "is dropped by raw:PREROUTING#1"),
    (_raw("-A PREROUTING -i eth0 -m addrtype ! --dst-type LOCAL -j DROP"), None, True, ""),
    ("", _nft_raw([_FROM_ETH0, _daddr("192.0.2.2"), _DROP]), None, "ip daddr"),
    ("", _nft_raw([_FROM_ETH0, _FIB_LOCAL, _DROP]), False, "is dropped by t:pre"),
])
def test_rules_before_the_nat_step_read_the_unknown_address(
        extra: str, nft: dict[str, Any] | None, established: bool | None, said: str) -> None:
    conn = _sim(extra, nft).trace(EGRESS).connection
    assert conn is not None
    assert conn.established is established, conn.why
    assert said in conn.why
    assert "the address MASQUERADE took on eth0" in conn.why


def test_after_the_nat_step_the_reply_is_the_containers() -> None:
    """A FORWARD rule on the container's address sees the reply after the NAT step restored
    it: no doubt there."""
    extra = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A FORWARD -d 172.17.0.2/32 -i eth0 -j DROP\nCOMMIT\n")
    conn = _sim(extra).trace(EGRESS).connection
    assert conn is not None
    assert conn.established is False, conn.why
    assert "dropped by filter:FORWARD#1" in conn.why
