"""The parser's networks (natlens.parse.networks: CompactIPv4Network, built without
``__init__`` by natlens.parse.rule, issue 13; CompactIPv6Network for IPv6 /127 and /128) behave
as ``ipaddress.IPv4Network``/``IPv6Network``."""

from __future__ import annotations

import ast
import copy
import io
import ipaddress
import pickle
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import natlens
from natlens import cache_pickle, parse_save
from natlens.parse import rule as rule_module
from natlens.parse.networks import CompactIPv4Network, CompactIPv6Network, compact_network
from natlens.parse.rule import _IPV4_NETWORK, _build_ipv4_network

_PACKED = st.integers(min_value=0, max_value=2**32 - 1)
# Long prefixes most (the /31 and /32 special cases), short ones too.
_PREFIX = st.one_of(st.integers(min_value=24, max_value=32), st.integers(min_value=0,
                                                                         max_value=32))


def _real(packed: int, prefix: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((packed, prefix), strict=False)


def test_the_parser_builds_compact_networks() -> None:
    assert _IPV4_NETWORK is _build_ipv4_network  # _check_ipv4_build passed on this Python
    ruleset = parse_save("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.1/32 -j DROP\n"
                         "COMMIT\n")
    network = ruleset.tables[0].chains[0].rules[0].source.network  # type: ignore[union-attr]
    assert type(network) is CompactIPv4Network
    assert "hosts" not in vars(network)


@settings(max_examples=400)
@given(packed=_PACKED, prefix=_PREFIX, other=_PACKED, other_prefix=_PREFIX)
def test_compact_network_behaves_as_ipaddress(packed: int, prefix: int, other: int,
                                              other_prefix: int) -> None:
    built, real = _build_ipv4_network(packed, prefix), _real(packed, prefix)
    peer = _real(other, other_prefix)
    address = ipaddress.IPv4Address(other)
    assert isinstance(built, ipaddress.IPv4Network)
    assert built == real
    assert real == built
    assert not built != real  # noqa: SIM202
    assert hash(built) == hash(real)
    assert (str(built), repr(built), format(built, "")) == (str(real), repr(real),
                                                             format(real, ""))
    for name in ("network_address", "broadcast_address", "netmask", "hostmask", "prefixlen",
                 "num_addresses", "with_prefixlen", "with_netmask", "with_hostmask",
                 "is_private", "is_global", "is_multicast", "is_loopback", "is_link_local",
                 "is_reserved", "is_unspecified", "max_prefixlen", "version"):
        assert getattr(built, name) == getattr(real, name), name
    assert (address in built) == (address in real)
    assert built.overlaps(peer) == real.overlaps(peer)
    assert peer.overlaps(built) == peer.overlaps(real)
    assert built.subnet_of(peer) == real.subnet_of(peer)
    assert built.supernet_of(peer) == real.supernet_of(peer)
    assert peer.subnet_of(built) == peer.subnet_of(real)
    assert (built < peer, built <= peer, built > peer) == (real < peer, real <= peer,
                                                           real > peer)
    assert built.compare_networks(peer) == real.compare_networks(peer)
    assert {built: 1}[real] == 1
    if prefix >= 24:  # small enough to list
        assert list(built.hosts()) == list(real.hosts())
        assert type(built.hosts()) is type(real.hosts())  # /32: a list, as ipaddress gives
        assert list(built) == list(real)
        assert built[-1] == real[-1]
    if prefix > 0:
        assert built.supernet() == real.supernet()
    if prefix < 32 and prefix >= 26:
        assert list(built.subnets()) == list(real.subnets())
    if peer.subnet_of(real) and prefix >= 24:
        assert list(built.address_exclude(peer)) == list(real.address_exclude(peer))


@given(packed=_PACKED, prefix=_PREFIX)
def test_compact_network_pickles_as_ipaddress(packed: int, prefix: int) -> None:
    built, real = _build_ipv4_network(packed, prefix), _real(packed, prefix)
    for twin in (pickle.loads(pickle.dumps(built)), copy.copy(built), copy.deepcopy(built)):
        assert type(twin) is ipaddress.IPv4Network  # no natlens class in a user's pickle
        assert twin == real
        assert list(islice(twin.hosts(), 3)) == list(islice(real.hosts(), 3))
    out = io.BytesIO()  # the snapshot cache keeps the compact class (no hosts function)
    pickler = pickle.Pickler(out, protocol=5)
    pickler.dispatch_table = cache_pickle._dispatch()  # the cache's reducers
    pickler.dump(built)
    loaded = cache_pickle.Unpickler(io.BytesIO(out.getvalue())).load()
    assert type(loaded) is CompactIPv4Network
    assert loaded == real
    assert list(islice(loaded.hosts(), 3)) == list(islice(real.hosts(), 3))


def test_a_parse_shares_equal_addresses_and_forgets_them_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules naming one address share one Address (however spelt: ``10.0.0.1``,
    ``10.0.0.1/32``); the cache is emptied after a parse naming many."""
    monkeypatch.setattr(rule_module, "_ADDRESSES_KEPT", 50)
    many = "".join(f"-A INPUT -s 10.1.{i // 256}.{i % 256} -j DROP\n"
                   for i in range(rule_module._ADDRESSES_KEPT + 1))
    text = ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.1/32 -j DROP\n"
            "-A INPUT ! -s 10.0.0.1 -j DROP\n-A INPUT -d 10.0.0.1 -j DROP\n" + many + "COMMIT\n")
    rules = parse_save(text).tables[0].chains[0].rules
    first, negated, other = rules[0].source, rules[1].source, rules[2].destination
    assert first is other
    assert first is not None
    assert negated is not None
    assert negated.negated
    assert not first.negated
    assert negated.network == first.network == ipaddress.IPv4Network("10.0.0.1/32")
    assert all(len(cache) <= rule_module._ADDRESSES_KEPT for cache in rule_module._ADDRESS_CACHE)


# -- IPv6 (and IPv4 networks ipaddress built): natlens.parse.networks.compact_network --------

_PACKED6 = st.integers(min_value=0, max_value=2**128 - 1)
_PREFIX6 = st.one_of(st.integers(min_value=120, max_value=128),
                     st.integers(min_value=0, max_value=128))


def _real6(packed: int, prefix: int) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network((packed, prefix), strict=False)


def test_the_parser_builds_compact_ipv6_networks() -> None:
    ruleset = parse_save("# Generated by ip6tables-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n"
                         "-A INPUT -s fd00::1/128 -d fd00::/127 -j DROP\n"
                         "-A INPUT -s fd00::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff -j DROP\n"
                         "COMMIT\n")
    rules = ruleset.tables[0].chains[0].rules
    for address in (rules[0].source, rules[0].destination, rules[1].source):
        assert address is not None
        assert type(address.network) is CompactIPv6Network
        assert "hosts" not in vars(address.network)


@settings(max_examples=400)
@given(packed=_PACKED6, prefix=_PREFIX6, other=_PACKED6, other_prefix=_PREFIX6)
def test_compact_ipv6_network_behaves_as_ipaddress(packed: int, prefix: int, other: int,
                                                   other_prefix: int) -> None:
    real = _real6(packed, prefix)
    built = compact_network(_real6(packed, prefix))
    peer = _real6(other, other_prefix)
    address = ipaddress.IPv6Address(other)
    assert isinstance(built, ipaddress.IPv6Network)
    assert ("hosts" in vars(built)) is False
    assert (type(built) is CompactIPv6Network) is (prefix >= 127)
    assert built == real
    assert real == built
    assert hash(built) == hash(real)
    assert (str(built), repr(built), format(built, "")) == (str(real), repr(real),
                                                             format(real, ""))
    for name in ("network_address", "broadcast_address", "netmask", "hostmask", "prefixlen",
                 "num_addresses", "with_prefixlen", "with_netmask", "with_hostmask",
                 "is_private", "is_global", "is_multicast", "is_loopback", "is_link_local",
                 "is_site_local", "is_reserved", "is_unspecified", "max_prefixlen", "version"):
        assert getattr(built, name) == getattr(real, name), name
    assert (address in built) == (address in real)
    assert built.overlaps(peer) == real.overlaps(peer)
    assert built.subnet_of(peer) == real.subnet_of(peer)
    assert peer.supernet_of(built) == peer.supernet_of(real)
    assert (built < peer, built <= peer, built > peer) == (real < peer, real <= peer,
                                                           real > peer)
    assert {built: 1}[real] == 1
    if prefix >= 120:  # small enough to list
        assert list(built.hosts()) == list(real.hosts())
        assert type(built.hosts()) is type(real.hosts())  # /128: a list, as ipaddress gives
        assert list(built) == list(real)
    if prefix > 0:
        assert built.supernet() == real.supernet()


@given(packed=_PACKED6, prefix=st.integers(min_value=126, max_value=128))
def test_compact_ipv6_network_pickles_as_ipaddress(packed: int, prefix: int) -> None:
    built, real = compact_network(_real6(packed, prefix)), _real6(packed, prefix)
    for twin in (pickle.loads(pickle.dumps(built)), copy.copy(built), copy.deepcopy(built)):
        assert type(twin) is ipaddress.IPv6Network  # no natlens class in a user's pickle
        assert twin == real
        assert list(islice(twin.hosts(), 3)) == list(islice(real.hosts(), 3))
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.dispatch_table = cache_pickle._dispatch()
    pickler.dump(built)
    loaded = cache_pickle.Unpickler(io.BytesIO(out.getvalue())).load()
    assert type(loaded) is type(built)
    assert loaded == real
    assert list(islice(loaded.hosts(), 3)) == list(islice(real.hosts(), 3))


@given(packed=_PACKED, prefix=_PREFIX)
def test_compact_network_of_an_ipaddress_ipv4_network(packed: int, prefix: int) -> None:
    built, real = compact_network(_real(packed, prefix)), _real(packed, prefix)
    assert built == real
    assert "hosts" not in vars(built)
    assert (str(built), repr(built)) == (str(real), repr(real))
    if prefix >= 24:
        assert list(built.hosts()) == list(real.hosts())


def _type_compared_to_ipaddress(tree: ast.AST) -> Iterator[int]:
    """Lines comparing ``type(x)`` (or ``x.__class__``) with an ``ipaddress`` class by ``is``,
    ``==``, ``in`` or their negations: what a compact network (a subclass) would defeat."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        typed = any((isinstance(s, ast.Call) and isinstance(s.func, ast.Name)
                     and s.func.id == "type") or (isinstance(s, ast.Attribute)
                                                   and s.attr == "__class__") for s in sides)
        named = any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                    and n.value.id == "ipaddress" for s in sides for n in ast.walk(s))
        if typed and named:
            yield node.lineno


def test_natlens_tells_networks_apart_by_isinstance() -> None:
    """``type(net) is ipaddress.IPv4Network`` is False for the parser's networks: natlens
    never asks it (isinstance or ``.version`` instead)."""
    package = Path(natlens.__file__).parent
    found = [f"{path.relative_to(package)}:{line}" for path in sorted(package.rglob("*.py"))
             for line in _type_compared_to_ipaddress(ast.parse(path.read_text()))]
    assert found == []
    sample = ast.parse("ok = type(net) is ipaddress.IPv4Network\n")
    assert list(_type_compared_to_ipaddress(sample)) == [1]  # the check finds one
