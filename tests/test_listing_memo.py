"""The listing parser's memo gives what decoding every rule whole gives.

``_ListingParser`` decodes each distinct match/target text once (a leading ``/* comment */``
decoded apart, listed chains as targets shared, NAT rules that differ only in their ``to:`` word
decoded from a template: natlens/parse/listing/grammar.py ``decode_rest`` / ``decode_nat``).
``memo=False`` decodes every rule's whole text; both must give the same ruleset (compared by
``repr``: every field, origins included) or the same error, on the captured listings, the
corpus and generated rows mixing the shapes the memo treats apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlens import ParseError
from natlens.parse.listing.grammar import _ListingParser

DATA = Path(__file__).parent / "data" / "listings"
CAPTURED = sorted(DATA.glob("*.txt"))


def _outcome(text: str, *, memo: bool, strict: bool = True) -> str:
    parser = _ListingParser("listing.txt", None, strict, memo)
    try:
        parser.feed(text)
        return repr(parser.result(None))
    except ParseError as exc:
        return f"error: {exc}"


def _assert_same(text: str) -> None:
    __tracebackhide__ = True
    for strict in (True, False):
        assert _outcome(text, memo=True, strict=strict) == \
            _outcome(text, memo=False, strict=strict)


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.name)
def test_memo_agrees_on_captured_listings(path: Path) -> None:
    _assert_same(path.read_text())


def test_memo_agrees_on_corpus_listings(corpus: Path) -> None:
    paths = sorted((corpus / "iptables-t" / "listings").glob("*"))
    assert paths
    for path in paths:
        _assert_same(path.read_text(errors="replace"))


_HEADER = "num pkts bytes target prot opt in out source destination"
_TARGETS = ["DNAT", "SNAT", "NETMAP", "CT", "MASQUERADE", "ACCEPT", "KUBE-SEP-A", "KUBE-SVC-B",
            "NOTRACK", "TTL", "FOO", ""]
_WORDS = ["tcp", "udp", "dpt:80", "spt:53", "to:10.0.0.1:80", "to:10.0.0.2", "to:[::1]:80",
          "to:10.0.0.1-10.0.0.9:80-81", "to:bogus", "to:", "to:10.0.0.300", "random",
          "persistent", "mark", "match", "0x1", "!", "statistic", "mode", "random",
          "probability", "0.50000000000", "NOTRACK", "[goto]", "/* c */", "/* NOTRACK */",
          "/* x", "*/", '"q"', "ctstate", "NEW", "masq", "ports:", "8080", "reject-with",
          "icmp6-port-unreachable", "icmp-port-unreachable"]
_SOURCES = ["0.0.0.0/0", "10.128.0.1", "10.0.0.0/8", "::1", "10.1.2.3/255.0.255.0"]


@st.composite
def _rows(draw: st.DrawFn) -> str:
    rows = []
    for num in range(1, draw(st.integers(1, 12)) + 1):
        target = draw(st.sampled_from(_TARGETS))
        prot = draw(st.sampled_from(["0", "tcp", "udp", "!tcp"]))
        source = draw(st.sampled_from(_SOURCES))
        words = draw(st.lists(st.sampled_from(_WORDS), max_size=5))
        comment = draw(st.sampled_from(["", f"/* ns/svc{num} */ ", "/* a b */ "]))
        rest = comment + " ".join(words)
        rows.append(f"{num} 0 0 {target or ' ':<10} {prot} -- * * {source} 0.0.0.0/0 {rest}")
    return "\n".join(rows)


@given(_rows(), _rows())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_memo_agrees_on_generated_rows(first: str, second: str) -> None:
    text = (f"Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)\n{_HEADER}\n{first}\n\n"
            f"Chain KUBE-SEP-A (1 references)\n{_HEADER}\n{second}\n\n"
            f"Chain KUBE-SVC-B (1 references)\n{_HEADER}\n\n"
            f"Chain NOTRACK (0 references)\n{_HEADER}\n")
    _assert_same(text)


def test_memo_agrees_on_kube_shaped_rows() -> None:
    """Thousands of KUBE-SEP DNAT rules differing in their comment and ``to:`` word, with a
    few that the template cannot serve (an IPv6 or malformed address)."""
    rows = []
    for i in range(3000):
        to = f"10.128.{i // 250}.{i % 250 + 1}:8080"
        if i % 997 == 5:
            to = f"10.128.0.{i}:8080"  # octet > 255: kept verbatim
        rows.append(f"{i + 1} 0 0 DNAT tcp -- * * 0.0.0.0/0 0.0.0.0/0 "
                    f"/* ns{i % 7}/svc{i}:p */ tcp to:{to}")
    text = f"Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)\n{_HEADER}\n" + "\n".join(rows)
    _assert_same(text)
    _assert_same(text + "\n3001 0 0 DNAT tcp -- * * 0.0.0.0/0 0.0.0.0/0 /* v6 */ tcp to:[::1]:80")


@pytest.mark.parametrize("target", ["DNAT", "SNAT"])
@pytest.mark.parametrize("address", [
    "10.0.0.1", "10.0.0.1:0", "10.0.0.1:65535", "255.255.255.255:1", "0.0.0.0:80",
    "10.0.0.1:65536", "010.0.0.1:80", "10.0.0.1:080", "10.0.0.256:80", "10.0.0:80",
    "10.0.0.1:http", "10.0.0.1-10.0.0.2:80", "10.0.0.1:80-80", "[::1]:80", "::1", "",
])
def test_memo_reads_nat_addresses_as_the_whole_decoding(target: str, address: str) -> None:
    """A NAT rule after a first one of the same shape (its template): a plain IPv4 address is
    read without the general decoding (``_plain_nat_options``), anything else through it;
    both as decoding the whole text does, in an IPv4 and an IPv6 listing."""
    for anywhere in ("0.0.0.0/0", "::/0"):
        rows = [f"{n} 0 0 {target} tcp -- * * {anywhere} {anywhere} /* svc{n} */ tcp dpt:80 "
                f"to:{to}" for n, to in ((1, "10.9.9.9:8080"), (2, address), (3, "10.9.9.8"))]
        _assert_same(f"Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)\n{_HEADER}\n"
                     + "\n".join(rows))
