"""An ``iptables -L`` listing without ``-n``: host names natlens cannot resolve make the address
unknown, and the ruleset's note counts them in good grammar."""
from __future__ import annotations

import pytest

from natlens.parse.listing import parse_listing

HEAD = "Chain INPUT (policy ACCEPT)\ntarget     prot opt source               destination\n"
ROW = "DROP       tcp  --  {src}  anywhere             tcp dpt:postgresql\n"


@pytest.mark.parametrize(("hosts", "note"), [
    (["some-host.example.com"], "1 address is a host or network name that cannot be resolved "
                                "with certainty (list with -n)"),
    (["a.example.com", "b.example.com"], "2 addresses are host or network names that cannot be "
                                         "resolved with certainty (list with -n)"),
], ids=["one", "two"])
def test_unresolved_host_names_are_unknown_and_counted(hosts: list[str], note: str) -> None:
    ruleset = parse_listing(HEAD + "".join(ROW.format(src=h) for h in hosts), source="l.txt")
    rules = ruleset["filter"].chains[0].rules
    assert [("source" in r.unknown, r.source) for r in rules] == [(True, None)] * len(hosts)
    assert f"l.txt: {note}" in ruleset.notes


def test_trace_says_the_listing_showed_a_host_name() -> None:
    from natlens.netfilter import Packet
    from natlens.netfilter.flow import MatchContext
    from natlens.netfilter.host import Host
    from natlens.netfilter.matches import evaluate

    ruleset = parse_listing(HEAD + ROW.format(src="some-host.example.com"), source="l.txt")
    rule = ruleset["filter"].chains[0].rules[0]
    packet = Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", proto="tcp",
                    sport=40000, dport=5432)
    host = Host.from_json([], [])
    ev = evaluate(rule, packet, MatchContext(host, "INPUT", "filter"))
    # a listing without -v hides interfaces too; the source it showed, as a name
    assert ev.uncertain == ("in-interface not shown by the listing",
                            "source shown as a host name natlens cannot resolve (list with -n)")
