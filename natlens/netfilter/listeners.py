"""Which sockets listen on the host: does a connection delivered to the host find one?

The kernel hands a packet delivered locally (INPUT) to the socket bound to its destination
address and port (``__inet_lookup_listener`` in net/ipv4/inet_hashtables.c for TCP,
``__udp4_lib_lookup`` in net/ipv4/udp.c; the IPv6 twins): a socket bound to that address, to
its family's any-address (``0.0.0.0``; ``::`` with ``IPV6_V6ONLY``) or to both families (``::``
without it, which ``ss`` prints as ``*``), and, for a socket bound to a device (``%dev``), only
for packets that arrive on that device. Without one, TCP answers the first packet with a RST
(``tcp_v4_send_reset``) and UDP with an ICMP port unreachable (``__udp4_lib_rcv``): the
connection is refused.

What natlens knows of the sockets (``Listeners.of``): every listening socket when the snapshot
has ``ss.txt`` (``ss -ltnup``); else, from ``docker inspect``, the ``docker-proxy`` of each port
a running container publishes while the userland proxy is on (``docker-proxy`` binds the host
address and port, moby ``cmd/docker-proxy``), and nothing about other ports. The exposure map
reads the same files the same way (``natlens.exposure``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from natlens.docker import Inventory
from natlens.parse.hostfiles import Listener

__all__ = ["Listeners"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Published:
    """A port range ``docker-proxy`` listens on for container ``name`` (``ip`` None: every
    address of both families)."""

    proto: str
    ip: IPAddress | None
    low: int
    high: int
    name: str


@dataclass(frozen=True, slots=True)
class Listeners:
    """The host's listening sockets as far as the snapshot tells: ``sockets`` (``ss.txt``,
    every one when ``complete``) and ``published`` (the ports ``docker-proxy`` serves);
    ``everywhere``: something listens on every address and port (``natlens verify`` starts a
    responder where each trace lands)."""

    sockets: tuple[Listener, ...] = ()
    complete: bool = False
    published: tuple[Published, ...] = ()
    everywhere: bool = False

    @classmethod
    def of(cls, sockets: tuple[Listener, ...] | None,
           inventory: Inventory | None) -> Listeners | None:
        """The listeners of a snapshot: ``ss.txt``'s ``sockets`` (None when absent; they list
        ``docker-proxy`` too), else the ``docker-proxy`` ports of ``inventory``; None when
        neither tells anything."""
        published: list[Published] = []
        if sockets is None and inventory is not None \
                and inventory.daemon.userland_proxy is not False:
            for c in inventory.running:
                for b in c.ports:
                    published.append(Published(b.proto.value, b.host_ip, b.host_start,
                                               b.host_end, c.name))
        if sockets is None and not published:
            return None
        return cls(sockets or (), sockets is not None, tuple(published))

    def serving(self, proto: str, ip: IPAddress, port: int, in_iface: str | None,
                ) -> tuple[bool | None, str]:
        """Whether a socket takes a ``proto`` packet to ``ip:port`` that arrived on
        ``in_iface`` (``lo`` for one the host sent itself), and who or why: (True, ``sshd
        listens``), (False, ``nothing listens on tcp 192.0.2.2:9999 (ss.txt)``) or (None,
        why not known)."""
        if self.everywhere:
            return True, "something listens (assumed)"
        s, doubt = self.socket(proto, ip, port, in_iface)
        if s is not None:
            return True, f"{s.process or 'a process'} listens (ss.txt)"
        for p in self.published:
            if p.proto == proto and p.low <= port <= p.high and _binds(p.ip, ip):
                return True, f"docker-proxy listens for {p.name} (userland proxy on)"
        where = f"{proto} {ip}:{port}" if ip.version == 4 else f"{proto} [{ip}]:{port}"
        if doubt is not None:
            return None, f"whether a socket takes {where} is not known: {doubt}"
        if self.complete:
            return False, f"nothing listens on {where} (ss.txt)"
        return None, f"whether anything listens on {where} is not known (no ss.txt)"

    def socket(self, proto: str, ip: IPAddress, port: int, in_iface: str | None,
               ) -> tuple[Listener | None, str | None]:
        """The ``ss.txt`` socket that takes a ``proto`` packet to ``ip:port`` arriving on
        ``in_iface`` (None: not known), and, when none does for sure, why it may (a socket
        bound to a device while ``in_iface`` is not known) or None."""
        doubt = None
        for s in self.sockets:
            if s.proto != proto or s.port != port or not _binds(s.address, ip):
                continue
            if s.interface is not None and s.interface != in_iface:
                if in_iface is None:
                    doubt = f"{s.process or 'a socket'} listens on {s.interface} only"
                continue
            return s, None
        return None, doubt


def _binds(bound: IPAddress | None, ip: IPAddress) -> bool:
    """Whether a socket bound to ``bound`` (None: ``*``, both families) takes packets to
    ``ip``: the same address, or the unspecified address of ``ip``'s family (an IPv6 socket
    on ``::`` that takes IPv4 too prints as ``*``)."""
    if bound is None:
        return True
    if bound.version != ip.version:
        return False
    return bound.is_unspecified or bound == ip
