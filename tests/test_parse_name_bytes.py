"""Name lengths are counted in bytes, as iptables counts them (``strlen``): a chain name at most
28 bytes (iptables-restore: "Invalid chain name ... (28 chars max)"), an interface name at most
15 (libxtables ``xtables_parse_interface``: "must be shorter than IFNAMSIZ"), whatever the
characters; a name with non-ASCII letters is refused by iptables when its UTF-8 bytes exceed
the limit though its characters do not. Each case is loaded with ``iptables-restore --test`` of
both backends in a namespace the test makes: natlens takes exactly what they take.

Also: a ``\\xNN`` escape written by the capture for a byte that is not UTF-8
(natlens.names) counts as its one byte.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from netns_helpers import namespaces, needs_root

from natlens import ParseError, parse_listing, parse_save
from natlens.names import name_bytes

U = "\u00fc"  # two bytes in UTF-8
E = "\u20ac"  # three bytes


def _chain(name: str) -> str:
    return f"*filter\n:INPUT ACCEPT [0:0]\n:{name} - [0:0]\n-A INPUT -j {name}\nCOMMIT\n"


def _iface(name: str, option: str = "-i") -> str:
    return f"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n" \
           f"-A FORWARD {option} {name} -j ACCEPT\nCOMMIT\n"


# (ruleset text, bytes of the name, the limit)
CASES = [
    *((f"chain {c} x{n}", _chain(c * n), len((c * n).encode()), 28)
      for c, n in ((U, 14), (U, 15), (E, 9), (E, 10), ("a", 28), ("a", 29), ("a" + U * 13, 1))),
    *((f"{o} {c} x{n}", _iface(c * n, o), len((c * n).encode()), 15)
      for o in ("-i", "-o")
      for c, n in ((U, 7), (U, 8), (E, 5), (E, 6), ("e", 15), ("e", 16))),
]


def _natlens_takes(text: str) -> bool:
    try:
        parse_save(text)
    except ParseError:
        return False
    return True


@pytest.mark.parametrize(("text", "size", "limit"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_natlens_counts_bytes(text: str, size: int, limit: int) -> None:
    assert _natlens_takes(text) == (size <= limit)


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    needs_root("iptables-legacy-restore", "iptables")
    with namespaces("nlbytes-") as names:
        yield names[0]


@pytest.mark.kernel
@pytest.mark.parametrize("backend", ["nft", "legacy"])
@pytest.mark.parametrize("text", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_iptables_takes_what_natlens_takes(text: str, backend: str, netns: str) -> None:
    taken = subprocess.run(["ip", "netns", "exec", netns, f"iptables-{backend}-restore",
                            "--test"], input=text, text=True, capture_output=True,
                           check=False, timeout=30).returncode == 0
    assert taken == _natlens_takes(text)


def test_listing_interface_counts_bytes() -> None:
    """A listing's in/out column names an interface by the same rule (16 bytes: refused)."""
    head = ("Chain FORWARD (policy ACCEPT)\n"
            "target     prot opt in     out     source               destination\n")
    fits = head + f"ACCEPT     all  --  {U * 7}  *       0.0.0.0/0            0.0.0.0/0\n"
    rule = parse_listing(fits)["filter"]["FORWARD"].rules[0]
    assert rule.in_interface is not None
    assert rule.in_interface.name == U * 7
    with pytest.raises(ParseError):
        parse_listing(head + f"ACCEPT     all  --  {U * 8}  *       0.0.0.0/0            "
                             "0.0.0.0/0\n")


@pytest.mark.parametrize(("name", "size"), [("eth0", 4), (U * 8, 16), (r"et\xe9", 3),
                                            (r"\xe9" * 28, 28), (r"a\x4", 4)])
def test_name_bytes(name: str, size: int) -> None:
    assert name_bytes(name) == size
