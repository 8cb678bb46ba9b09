"""``ipaddress`` networks without the per-object ``hosts`` function.

``ipaddress.IPv4Network.__init__`` gives every /31 and /32 network its own ``hosts`` (a bound
``__iter__``, or a new ``lambda`` holding the address: about 270 bytes a network, 46 MB for the
180k endpoint and service addresses of a 700k-line kube-proxy dump; issue 13), and
``IPv6Network.__init__`` every /127 and /128. The parser builds its IPv4 networks without
``__init__`` (``natlens.parse.rule``) as ``CompactIPv4Network`` and gives its IPv6 ones (and
IPv4 ones ``ipaddress`` built) through ``compact_network`` as ``CompactIPv6Network``
(``CompactIPv4Network``), whose ``hosts`` is a method answering as ``ipaddress`` does for every
prefix length. Each is an ``ipaddress`` network in every other respect (it adds no state): equal
to and hashing as the network ``ipaddress`` builds, printed (``str``, ``repr``) the same, and
pickled (``pickle``, ``copy``) as a plain ``ipaddress`` network; tests/test_parse_networks.py
compares them with hypothesis. Code that tells networks apart uses ``isinstance`` or
``.version``, never ``type(net) is ipaddress.IPv4Network``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any, TypeVar, cast

__all__ = ["CompactIPv4Network", "CompactIPv6Network", "compact_network"]

IPNet = TypeVar("IPNet", bound=ipaddress.IPv4Network | ipaddress.IPv6Network)


class CompactIPv4Network(ipaddress.IPv4Network):
    """``ipaddress.IPv4Network`` whose ``hosts`` is computed when called, not stored."""

    def hosts(self) -> Iterator[ipaddress.IPv4Address]:
        """What ``ipaddress.IPv4Network.hosts`` gives for this network (for /31 and /32 the
        network's addresses, as the ``ipaddress`` documentation says; a list for /32)."""
        real = ipaddress.IPv4Network((int(self.network_address), self.prefixlen))
        return real.hosts()

    def __repr__(self) -> str:
        return f"IPv4Network({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return ipaddress.IPv4Network, (str(self),)


class CompactIPv6Network(ipaddress.IPv6Network):
    """``ipaddress.IPv6Network`` whose ``hosts`` is computed when called, not stored."""

    def hosts(self) -> Iterator[ipaddress.IPv6Address]:
        """What ``ipaddress.IPv6Network.hosts`` gives for this network (for /127 and /128 the
        network's addresses; a list for /128)."""
        real = ipaddress.IPv6Network((int(self.network_address), self.prefixlen))
        return real.hosts()

    def __repr__(self) -> str:
        return f"IPv6Network({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return ipaddress.IPv6Network, (str(self),)


def compact_network(net: IPNet) -> IPNet:
    """``net`` (as ``ipaddress`` built it) without its ``hosts`` function: the same network as
    a ``CompactIPv4Network``/``CompactIPv6Network`` when ``ipaddress`` gave it one (the two
    longest prefixes), else ``net`` itself."""
    if "hosts" not in vars(net):
        return net
    cls: type[Any] = CompactIPv4Network if net.version == 4 else CompactIPv6Network
    compact = object.__new__(cls)
    compact.network_address = net.network_address  # the attributes __init__ sets, in order
    compact.netmask = net.netmask
    compact._prefixlen = net.prefixlen
    return cast("IPNet", compact)
