"""Each match module on small cases: match, why not, uncertain or chance (one table per module).

Semantics: iptables(8) and iptables-extensions(8); the expected reason texts are what traces and
assertion messages show.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

import pytest
from nf_helpers import standard_host

from natlens.model import Rule
from natlens.netfilter import Packet, mismatches
from natlens.netfilter.flow import Flow, MatchContext
from natlens.netfilter.matches import COMPILERS, evaluate
from natlens.parse.save import parse_save

HOST = standard_host()
IN: dict[str, Any] = {"in_interface": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2",
                     "sport": 40000, "dport": 8080}


def rule(args: str) -> Rule:
    rs = parse_save(f"*filter\n:X - [0:0]\n-A X {args}\nCOMMIT\n", source="t")
    return rs["filter"]["X"].rules[0]


def flow(hook: str = "PREROUTING", **changes: Any) -> Flow:
    spec = {**IN, **{k: v for k, v in changes.items() if k in
                     ("src", "dst", "proto", "sport", "dport", "state", "mark", "icmp_type",
                      "in_interface", "local_origin")}}
    if spec.get("local_origin"):
        spec.pop("in_interface", None)
    f = Flow.from_packet(Packet(**spec))
    extra = {k: v for k, v in changes.items() if k in Flow.__dataclass_fields__ and k not in spec}
    if "dnat_to" in changes:  # the packet after DNAT: the original tuple stays
        addr, port = changes["dnat_to"]
        extra.update(dst=ipaddress.ip_address(addr), dport=port, dnat=True)
    return replace(f, **extra)


# (rule arguments, flow changes, hook, expected): expected is "match", "uncertain: TEXT",
# "chance: P" or a substring of the first mismatch reason.
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("-p tcp -m tcp --dport 8080", {}, "PREROUTING", "match"),
    ("-p tcp -m tcp --dport 8000:8100", {}, "PREROUTING", "match"),
    ("-p tcp -m tcp ! --dport 8080", {}, "PREROUTING", "destination port 8080 is 8080"),
    ("-p udp -m udp --dport 8080", {}, "PREROUTING", "protocol tcp is not udp"),
    ("! -p udp", {}, "PREROUTING", "match"),
    ("-p 6", {}, "PREROUTING", "match"),
    ("-p tcp -m tcp --sport 1024:65535", {}, "PREROUTING", "match"),
    ("-p tcp -m tcp --sport 1:1023", {}, "PREROUTING", "source port 40000 is not 1:1023"),
    ("-p tcp -m tcp --sport 1:1023", {"sport": None}, "PREROUTING",
     "uncertain: -m tcp --sport 1:1023: packet has no source port given"),
    ("-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN", {}, "PREROUTING", "match"),
    ("-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN", {"state": "established"}, "PREROUTING",
     "TCP flags ACK of a established packet fail"),
    ("-p sctp -m sctp --dport 80", {}, "PREROUTING", "protocol tcp is not sctp"),
    ("-p tcp -m multiport --dports 22,80,8000:8100", {}, "PREROUTING", "match"),
    ("-p tcp -m multiport ! --dports 22,80", {}, "PREROUTING", "match"),
    ("-p tcp -m multiport --sports 22,80", {}, "PREROUTING", "port 40000 is not in 22,80"),
    ("-p tcp -m multiport --ports 40000", {}, "PREROUTING", "match"),
    ("-p icmp -m icmp --icmp-type 8", {"proto": "icmp", "sport": None, "dport": None},
     "PREROUTING", "match"),
    ("-p icmp -m icmp --icmp-type 0", {"proto": "icmp", "sport": None, "dport": None},
     "PREROUTING", "ICMP type 8 is not 0"),
    ("-p icmp -m icmp --icmp-type any", {"proto": "icmp", "sport": None, "dport": None},
     "PREROUTING", "match"),
    ("-s 198.51.100.0/24 -d 192.0.2.2/32", {}, "PREROUTING", "match"),
    ("! -s 198.51.100.0/24", {}, "PREROUTING", "source 198.51.100.7 is not in !198.51.100.0/24"),
    ("-i docker0", {}, "PREROUTING", "in-interface eth0 is not docker0"),
    ("-i eth+", {}, "PREROUTING", "match"),
    ("! -i eth0", {"local_origin": True}, "OUTPUT", "match"),  # OUTPUT has no input interface
    ("-o docker0", {"out_iface": "docker0"}, "FORWARD", "match"),
    ("-o docker0", {"out_iface": None, "out_known": False}, "FORWARD",
     "uncertain: -o docker0: output interface unknown"),
    ("-f", {}, "PREROUTING", "-f matches only non-first fragments"),
    ("! -f", {}, "PREROUTING", "match"),
    ("-m addrtype --dst-type LOCAL", {}, "PREROUTING", "match"),
    ("-m addrtype --dst-type LOCAL", {"dst": "203.0.113.9"}, "PREROUTING",
     "destination 203.0.113.9 is UNICAST"),
    ("-m addrtype ! --dst-type LOCAL", {"dst": "203.0.113.9"}, "PREROUTING", "match"),
    ("-m addrtype --src-type LOCAL", {}, "PREROUTING", "source 198.51.100.7 is UNICAST"),
    ("-m addrtype --dst-type BROADCAST,MULTICAST", {"dst": "192.0.2.255"}, "PREROUTING",
     "match"),
    ("-m addrtype --dst-type LOCAL --limit-iface-in", {"in_interface": "docker0"},
     "PREROUTING", "destination 192.0.2.2 is UNICAST on docker0"),
    ("-m conntrack --ctstate NEW", {}, "PREROUTING", "match"),
    ("-m conntrack --ctstate RELATED,ESTABLISHED", {}, "PREROUTING",
     "state NEW is not RELATED,ESTABLISHED"),
    ("-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT", {}, "PREROUTING", "match"),
    ("-m conntrack --ctstate DNAT", {"dnat_to": ("172.17.0.2", 80)}, "FORWARD", "match"),
    ("-m conntrack --ctstate DNAT", {"state": "established"}, "FORWARD",
     "uncertain: -m conntrack --ctstate DNAT: NAT status of the existing connection unknown"),
    ("-m conntrack --ctstate UNTRACKED", {"ctstate": "UNTRACKED"}, "PREROUTING", "match"),
    ("-m conntrack --ctorigdst 192.0.2.2 --ctorigdstport 8080",
     {"dnat_to": ("172.17.0.2", 80)}, "FORWARD", "match"),
    ("-m conntrack --ctorigsrc 10.0.0.0/8", {}, "FORWARD",
     "conntrack origsrc 198.51.100.7 is not in 10.0.0.0/8"),
    ("-m conntrack --ctproto udp", {}, "FORWARD", "conntrack protocol tcp fails"),
    ("-m conntrack --ctdir ORIGINAL", {}, "FORWARD", "match"),
    ("-m conntrack --ctdir REPLY", {"state": "established"}, "FORWARD",
     "uncertain: -m conntrack --ctdir REPLY: direction of a established packet unknown"),
    ("-m conntrack --ctstatus ASSURED", {}, "FORWARD", "new connection has no status ASSURED"),
    ("-m conntrack --ctexpire 10:100", {}, "FORWARD", "uncertain: -m conntrack --ctexpire"),
    ("-m state --state NEW,ESTABLISHED", {"state": "established"}, "INPUT", "match"),
    ("-m state --state INVALID", {}, "INPUT", "state NEW is not INVALID"),
    ("-m comment --comment \"anything at all\"", {}, "INPUT", "match"),
    ("-m mark --mark 0x4000/0x4000", {"mark": 0x4001}, "POSTROUTING", "match"),
    ("-m mark ! --mark 0x4000/0x4000", {"mark": 0x4001}, "POSTROUTING", "mark 0x4001 fails"),
    ("-m mark --mark 0x1", {"mark": 0x3}, "POSTROUTING", "mark 0x3 fails"),
    ("-m connmark --mark 0x7", {"ctmark": 7}, "FORWARD", "match"),
    ("-m connmark --mark 0x7", {"state": "established"}, "FORWARD",
     "uncertain: -m connmark --mark 0x7: connmark of the existing connection unknown"),
    ("-m iprange --src-range 198.51.100.1-198.51.100.9", {}, "INPUT", "match"),
    ("-m iprange ! --dst-range 192.0.2.1-192.0.2.3", {}, "INPUT",
     "destination 192.0.2.2 is in 192.0.2.1-192.0.2.3"),
    ("-m physdev --physdev-is-bridged", {}, "FORWARD", "packet is routed, not bridged"),
    ("-m physdev --physdev-in veth1", {}, "FORWARD", "eth0 is not a bridge port"),
    ("-m physdev --physdev-in veth1", {"in_interface": "docker0"}, "FORWARD",
     "uncertain: -m physdev --physdev-in veth1: bridge port of docker0 unknown"),
    ("-m pkttype --pkt-type unicast", {}, "INPUT", "match"),
    ("-m pkttype --pkt-type broadcast", {"dst": "255.255.255.255"}, "INPUT", "match"),
    ("-m pkttype --pkt-type multicast", {}, "INPUT", "packet type unicast is not multicast"),
    ("-m mac --mac-source 00:11:22:33:44:55", {}, "INPUT",
     "uncertain: -m mac --mac-source 00:11:22:33:44:55 (depends on state outside the snapshot)"),
    ("-m set --match-set blocklist src", {}, "INPUT", "uncertain: -m set --match-set"),
    ("-m limit --limit 3/min", {}, "INPUT", "uncertain: -m limit --limit 3/min"),
    ("-m recent --rcheck --seconds 60 --name x", {}, "INPUT", "uncertain: -m recent"),
    ("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name h", {}, "INPUT",
     "uncertain: -m hashlimit"),
    ("-m string --string foo --algo bm", {}, "INPUT", "uncertain: -m string"),
    ("-m owner --uid-owner 0", {}, "INPUT", "-m owner --uid-owner 0: packet has no local socket"),
    ("-m owner ! --uid-owner 0", {}, "INPUT", "match"),
    ("-m owner --uid-owner 0", {"local_origin": True}, "OUTPUT", "uncertain: -m owner"),
    ("-m statistic --mode random --probability 0.25", {}, "INPUT", "chance: 0.25"),
    ("-m statistic --mode random ! --probability 0.25", {}, "INPUT", "chance: 0.75"),
    ("-m statistic --mode nth --every 4 --packet 0", {}, "INPUT", "chance: 0.25"),
    ("-m statistic --mode random --probability 1.0", {}, "INPUT", "match"),
    ("-m foo --bar 1", {}, "INPUT", "uncertain: -m foo --bar 1 (module not understood)"),
]


@pytest.mark.parametrize(("args", "changes", "hook", "expected"), CASES,
                         ids=[f"{c[0]}|{c[2]}|{c[3][:20]}" for c in CASES])
def test_match(args: str, changes: dict[str, Any], hook: str, expected: str) -> None:
    r = rule(args)
    ctx = MatchContext(HOST, hook, "filter")
    ev = evaluate(r, flow(hook, **changes), ctx)
    if expected == "match":
        assert ev.matched, ev
    elif expected.startswith("uncertain: "):
        assert not ev.mismatches, ev
        assert any(expected[11:] in u for u in ev.uncertain), ev
    elif expected.startswith("chance: "):
        assert not ev.mismatches
        assert not ev.uncertain
        assert ev.probability == pytest.approx(float(expected[8:])), ev
    else:
        assert ev.mismatches, ev
        assert expected in ev.mismatches[0], ev


def test_mismatches_lists_every_reason() -> None:
    r = rule("-s 10.0.0.0/8 -i docker0 -p udp -m udp --dport 53")
    found = mismatches(r, Packet(**IN), MatchContext(HOST, "PREROUTING", "filter"))
    assert found == (
        "protocol tcp is not udp",
        "source 198.51.100.7 is not in 10.0.0.0/8",
        "in-interface eth0 is not docker0",
        "-m udp: protocol is tcp",
        "destination port 8080 is not 53",
    )


def test_mismatches_empty_when_matching() -> None:
    assert mismatches(rule("-p tcp -m tcp --dport 8080"), Packet(**IN),
                      MatchContext(HOST, "PREROUTING", "filter")) == ()


def test_every_understood_module_has_a_case() -> None:
    covered = {word for args, *_ in CASES for word in args.split()}
    assert set(COMPILERS) - covered - {"udplite", "dccp", "icmp6"} == set()


def test_fields_a_listing_does_not_show_are_uncertain_where_they_matter() -> None:
    from natlens.parse.listing import parse_listing

    listing = (
        "Chain FORWARD (policy DROP)\n"
        "target     prot opt source               destination\n"
        "ACCEPT     tcp  --  0.0.0.0/0            172.17.0.2           tcp dpt:80\n"
    )
    r = parse_listing(listing, source="t", table="filter")["filter"]["FORWARD"].rules[0]
    assert {"in_interface", "out_interface"} <= r.unknown
    ev = evaluate(r, flow("FORWARD", dnat_to=("172.17.0.2", 80), out_iface="docker0"),
                  MatchContext(HOST, "FORWARD", "filter"))
    assert ev.uncertain == ("in-interface not shown by the listing",
                            "out-interface not shown by the listing")
    ev = evaluate(r, flow("INPUT", dnat_to=("172.17.0.2", 80)), MatchContext(HOST, "INPUT",
                                                                          "filter"))
    assert ev.uncertain == ("in-interface not shown by the listing",)  # INPUT has no -o


@pytest.mark.parametrize(("args", "header"), [
    ("-m rt --rt-type 0", "routing header"),
    ("-m rt ! --rt-type 0", "routing header"),
    ("-m frag --fragid 5 --fraglast", "fragment header"),
    ("-m hbh --hbh-len 8", "hop-by-hop options header"),
    ("-m dst --dst-len 8", "destination options header"),
])
def test_extension_header_matches_never_match_a_packet_without_the_header(
        args: str, header: str) -> None:
    # ip6tables' rt/frag/hbh/dst look the header up (ipv6_find_hdr) and return false when it
    # is absent, whatever `!` says; natlens's packets carry no extension header. The kernel
    # agrees on fixtures/multi-interface-ufw (ufw6's `-m rt --rt-type 0 -j DROP`,
    # tests/test_verify.py).
    rs = parse_save(f"*filter\n:X - [0:0]\n-A X {args} -j DROP\nCOMMIT\n", source="t",
                    family="ipv6")
    packet = Packet(in_interface="eth0", src="2001:db8::7", dst="2001:db8::2", proto="tcp",
                    sport=40000, dport=22)
    ev = evaluate(rs["filter"]["X"].rules[0], packet, MatchContext(HOST, "INPUT", "filter"))
    assert not ev.matched, ev
    assert not ev.uncertain, ev
    assert ev.mismatches == (f"{args}: the packet has no IPv6 {header}",), ev
