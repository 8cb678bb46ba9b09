"""The save parser's address readers (natlens.parse.rule ``_host_key``, ``_ipv4_address``,
``_host_address``; natlens.parse.fastrule ``_address_core``, issue 13) decide exactly what the
careful readers decide: the canonical spelling of an IPv4 host by table gives the integer the
``inet_pton``/``inet_ntop`` round trip gives, and the word reader of an IP part gives what the
general IP-part reader gives, or leaves the text to it."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlens.model import Address
from natlens.parse.fastrule import _address_core, _direct_core
from natlens.parse.rule import (
    _IPV4_BUILT,
    RuleSyntaxError,
    _host_address,
    _host_key,
    _ipv4_address,
    _parse_address,
)


def _round_trip_key(text: str) -> int | str:
    """The cache key as the C library reads it: an integer for an IPv4 host written as
    ``inet_ntop`` prints it (optionally with ``/32``), else the text itself."""
    addr, slash, prefix = text.partition("/")
    if slash and prefix != "32":
        return text
    try:
        packed = socket.inet_pton(socket.AF_INET, addr)
    except (OSError, ValueError):
        return text
    return int.from_bytes(packed, "big") if socket.inet_ntop(socket.AF_INET, packed) == addr \
        else text


# Odd spellings iptables reads its own way (or refuses): the table reader must call them "not
# a canonical host" and leave them to the careful readers.
_SPELLINGS = [
    "10.0.0.1", "10.0.0.1/32", "0.0.0.0", "0.0.0.0/32", "255.255.255.255/32", "10.128.38.51/32",
    "010.0.0.1", "1.2.3.04", "10.0.0.1/032", "1.2.3", "1.2.3/32", "0x0a.0.0.1", "1.2.3.4/0",
    "1.2.3.4/31", "1.2.3.4/", "/32", "", ".", "1.2.3.4.5", ".1.2.3", "1..2.3", "1.2.3.",
    "256.1.1.1", "1.2.3.256", "+1.2.3.4", "-1.2.3.4", " 1.2.3.4", "1.2.3.4 ", "1_0.0.0.1",
    "1.2.3.4/32/32", "1.2/32.3.4", "1.2.3.4/+32", "\uff11.2.3.4", "1.2.3.\uff14",
    "1.2.3.4/3\uff12", "4294967295", "::1", "::ffff:1.2.3.4", "1.2.3.4/255.255.255.255",
]


@pytest.mark.parametrize("text", _SPELLINGS)
def test_host_key_is_the_round_trip(text: str) -> None:
    assert _host_key(text) == _round_trip_key(text)


@settings(max_examples=500)
@given(st.one_of(
    st.text(alphabet="0123456789./x", max_size=18),
    st.tuples(*[st.integers(0, 300)] * 4, st.sampled_from(["", "/32", "/032", "/31"]),
              st.integers(0, 2)).map(
        lambda t: ".".join(("0" * t[5]) + str(n) if i == t[5] else str(n)
                           for i, n in enumerate(t[:4])) + t[4]),
))
def test_host_key_is_the_round_trip_on_any_text(text: str) -> None:
    assert _host_key(text) == _round_trip_key(text)


@pytest.mark.parametrize("negated", [False, True])
@pytest.mark.parametrize("packed", [0, 1, 0x0A000001, 0xFFFFFFFF])
def test_host_address_is_the_constructor(packed: int, negated: bool) -> None:
    assert _IPV4_BUILT  # this Python's ipaddress is the one the one-step build copies
    built = _host_address(packed, negated)
    real = Address(ipaddress.IPv4Network((packed, 32)), negated)
    assert type(built) is Address
    assert built == real
    assert repr(built) == repr(real)
    assert hash(built) == hash(real)
    assert vars(built.network).keys() == vars(real.network).keys() - {"hosts"}
    assert list(built.network.hosts()) == list(real.network.hosts())


@pytest.mark.parametrize("text", [*_SPELLINGS, "10.244.0.0/16", "1.2.3.4/255.255.0.0",
                                  "1.2.3.4/33", "host.example", "1.2.3.4,5.6.7.8"])
@pytest.mark.parametrize("negated", [False, True])
def test_ipv4_address_is_parse_address_or_none(text: str, negated: bool) -> None:
    """What the word reader takes is what the general reader gives; it takes every IPv4
    address written with digits, dots and a slash, and nothing else."""
    try:
        expected: Address | None = _parse_address(text, negated, 0, text)
    except RuleSyntaxError:
        expected = None
    got = _ipv4_address(text, negated)  # after the general reader: from the cache
    ipv4_text = bool(text) and not text.strip("0123456789./")
    if expected is None or not ipv4_text:
        assert got is None
    else:
        assert got is expected
        assert expected.network.version == 4


@pytest.mark.parametrize(("text", "fast"), [
    (" -s 10.128.38.51/32", True),
    (" -d 10.96.0.59/32 -p tcp", True),
    (" ! -s 10.244.0.0/16 -d 10.96.0.1/32 -p tcp", True),
    (" ! -s 127.0.0.0/8 -d 127.0.0.0/8", True),
    (" -s 1.2.3.4 ! -d 5.6.7.8 -p icmp", True),
    (" ! -d 1.2.3.4", True),
    (" -s 1.2.3.4/255.255.0.0", True),
    (" -s 0.0.0.0/0 -p udp", True),
    (" -s 010.0.0.1", False),  # refused (leading zero): the full parser says why
    (" -s 1.2.3.4 -p xyz", False),
    (" -s 1.2.3.4  -d 1.2.3.4", False),
    (" -p tcp -s 1.2.3.4", False),
    (" -d 1.2.3.4 -s 5.6.7.8", False),
    (" ! -p tcp", False),
    (" ! -s 1.2.3.4 ! -p tcp", False),
    (" -s ::1", False),
    (" -s host.example", False),
    (" -s 1.2.3.4,5.6.7.8", False),
    (" -s 1.2.3.4/33", False),
    (" -s 0x0a.0.0.1", False),
    (" -s", False),
    (" -s 1.2.3.4 -d", False),
    ("-s 1.2.3.4", False),
    (" -s 1.2.3.4 -i eth0", False),
    ("", False),
])
def test_address_core_is_direct_core(text: str, fast: bool) -> None:
    """The word reader of an IP part gives what the general one gives, or leaves it to it."""
    got = _address_core(text)
    assert (got is not None) == fast
    if got is not None:
        assert got == _direct_core(tuple(text.split()))
        assert all(a is None or a.network.version == 4 for a in got[:2])


_WORDS = st.sampled_from(["!", "-s", "-d", "-p", "tcp", "udp", "xyz", "10.0.0.1", "10.0.0.1/32",
                          "10.0.0.0/8", "010.0.0.1", "1.2.3", "::1", "a.b", "", "-i", "eth0"])


@settings(max_examples=500)
@given(st.lists(_WORDS, max_size=8))
def test_address_core_is_direct_core_on_any_words(words: list[str]) -> None:
    text = " " + " ".join(words)
    got = _address_core(text)
    if got is not None:
        assert got == _direct_core(tuple(text.split()))
        assert all(a is None or a.network.version == 4 for a in got[:2])
