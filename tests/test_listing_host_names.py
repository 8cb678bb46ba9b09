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
