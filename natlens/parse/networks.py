"""An ``ipaddress.IPv4Network`` without the per-object ``hosts`` function.

``ipaddress.IPv4Network.__init__`` gives every /31 and /32 network its own ``hosts`` (a bound
``__iter__``, or a new ``lambda`` holding the address: about 270 bytes a network, 46 MB for the
180k endpoint and service addresses of a 700k-line kube-proxy dump; issue 13). The parser builds
its IPv4 networks without ``__init__`` (``natlens.parse.rule``) as ``CompactIPv4Network``, whose
``hosts`` is a method answering as ``ipaddress`` does for every prefix length. It is an
``ipaddress.IPv4Network`` in every other respect (it adds no state): equal to and hashing as the
network ``ipaddress`` builds, printed (``str``, ``repr``) the same, and pickled (``pickle``,
``copy``) as a plain ``ipaddress.IPv4Network``; tests/test_parse_networks.py compares the two
with hypothesis.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

__all__ = ["CompactIPv4Network"]


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
