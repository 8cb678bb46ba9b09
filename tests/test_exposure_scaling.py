"""The exposure map's helpers on big inputs (issue 11, item 5): ``source_classes`` splits the
sources as the pairwise definition does, in one sweep (a 10,000-entry block list made minutes of
prefix-by-boundary tests); ``_deciding_chains`` walks up the jumps once (a fixpoint pass per
level was quadratic in the depth of a chain of jumps)."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlens import parse_save
from natlens.exposure import _deciding_chains, source_classes
from natlens.netfilter.host import IPNetwork

Net = ipaddress.IPv4Network


def _reference(universe: list[Net], prefixes: list[Net]) -> set[frozenset[int]]:
    """Classes as sets of addresses (small universes): addresses in the same prefixes."""
    classes: dict[frozenset[Net], set[int]] = {}
    for net in universe:
        for addr in range(int(net.network_address), int(net.broadcast_address) + 1):
            key = frozenset(p for p in prefixes if int(p.network_address) <= addr
                            <= int(p.broadcast_address))
            classes.setdefault(key, set()).add(addr)
    return {frozenset(c) for c in classes.values()}


def _as_sets(classes: list[list[IPNetwork]]) -> set[frozenset[int]]:
    return {frozenset(a for n in c for a in range(int(n.network_address),
                                                  int(n.broadcast_address) + 1))
            for c in classes}


nets = st.builds(lambda a, n: Net((a >> (32 - n) << (32 - n), n)),
                 st.integers(0x0A000000, 0x0A0000FF), st.integers(24, 32))


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(universe=st.lists(nets, min_size=1, max_size=3), prefixes=st.lists(nets, max_size=8))
def test_classes_are_the_addresses_the_same_prefixes_hold(universe: list[Net],
                                                          prefixes: list[Net]) -> None:
    universe = sorted(ipaddress.collapse_addresses(universe))
    got = source_classes(universe, prefixes)
    assert _as_sets(got) == _reference(universe, prefixes)
    sizes = [sum(n.num_addresses for n in c) for c in got]
    assert sizes == sorted(sizes, reverse=True)


def test_block_list_of_five_thousand_networks() -> None:
    blocked = [Net(((11 << 24) + (i << 8), 24)) for i in range(5_000)]
    classes = source_classes([Net("0.0.0.0/0")], blocked)
    assert len(classes) == 5_001
    assert [str(n) for n in classes[-1]] == [str(blocked[-1])]


def test_deciding_chains_of_a_deep_chain_of_jumps() -> None:
    n = 3_000
    lines = ["*filter", ":INPUT ACCEPT [0:0]", *(f":C{i} - [0:0]" for i in range(n + 3)),
             "-A INPUT -j C0", *(f"-A C{i} -j C{i + 1}" for i in range(n)),
             f"-A C{n} -j DROP", f"-A C{n + 1} -j LOG", f"-A C{n + 2} -j C{n + 1}", "COMMIT"]
    chains = parse_save("\n".join(lines) + "\n")["filter"].chains
    assert _deciding_chains(chains) == {"INPUT", *(f"C{i}" for i in range(n + 1))}
