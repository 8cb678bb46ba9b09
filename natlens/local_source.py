"""The source address of a locally originated packet when the caller gives none: the address the
kernel picks for a socket that is not bound, as ``ip route get DST`` shows it (``trace
--local-origin`` without ``--src``).

The kernel looks the destination up (``fib_lookup``; ``ip_route_output_key_hash``,
net/ipv4/route.c): a destination that is one of the host's addresses is reached through the
``local`` table, whose route names the address itself as ``src`` (its subnet's primary address
for a secondary one, ``127.0.0.1`` for the rest of 127.0.0.0/8: ``fib_add_ifaddr``,
net/ipv4/fib_frontend.c); any other takes the main table's
route, and its preferred source (``src`` in ip-route.json, ``prefsrc``) when it has one, else
an address of the route's output device (``inet_select_addr``, net/ipv4/devinet.c: a primary
address in the next hop's subnet first, else the first primary one; IPv6: the RFC 6724 rules of
``ipv6_dev_get_saddr``, net/ipv6/addrconf.c). Only what the snapshot shows is used: without
the routes (ip-route.json) or, when the route names no ``src``, the addresses (ip-addr.json), or
with a route that sends nothing (``unreachable``, ``blackhole``...), no address is inferred.
"""

from __future__ import annotations

import ipaddress

from natlens.errors import UsageError
from natlens.netfilter.host import Host, IPAddress

__all__ = ["local_source"]

_LOOPBACK4 = ipaddress.ip_network("127.0.0.0/8")


def local_source(host: Host, dst: IPAddress) -> tuple[IPAddress, str]:
    """``(source address, how it was chosen)`` of a packet the host sends to ``dst``, as
    ``ip route get dst`` gives it (see the module). ``how`` is one sentence for the trace's
    notes. Raises ``UsageError`` saying why when the snapshot cannot tell (give ``--src``)."""

    def cannot(why: str) -> UsageError:
        return UsageError(f"--local-origin without --src: cannot infer the source address of a "
                          f"packet to {dst}: {why}; give --src")

    said = f"source {{}} inferred as 'ip route get {dst}' picks it: {{}}"
    if host.is_local(dst):
        own = {a.ip for addresses in host.addresses.values() for a in addresses}
        if dst.version == 4 and dst in _LOOPBACK4 and dst not in own:
            src = ipaddress.ip_address("127.0.0.1")
            return src, said.format(src, "the local route of 127.0.0.0/8 names 127.0.0.1")
        iface = host.local_interface(dst) or ""
        # fib_add_ifaddr: a secondary address's local route names its subnet's primary as src
        # (ip addr lists the primary first); IPv6 has no secondaries (rule 1: dst itself)
        primary = next((a.ip for a in host.addresses.get(iface, ()) if dst.version == 4
                        and a.ip.version == 4 and dst in a.network), dst)
        if primary != dst:
            return primary, said.format(primary, f"{dst} is a secondary address of {iface}: "
                                        f"its local route names the primary {primary}")
        return dst, said.format(dst, f"{dst} is an address of this host (local route)")
    if host.may_be_local(dst):
        raise cannot("the host's addresses are not in the snapshot (no ip-addr.json), so "
                     f"whether {dst} is one of them is unknown")
    if not (host.known_routes if dst.version == 4 else host.known_routes6):
        raise cannot(f"the host's IPv{dst.version} routes are not in the snapshot (no "
                     f"{'ip-route.json' if dst.version == 4 else 'ip-route6.json'})")
    route = host.route(dst)
    if route is None:
        raise cannot("no route to it in the snapshot (ip route get: Network is unreachable)")
    if route.kind != "unicast" or route.dev is None:
        raise cannot(f"its route is '{route}' (ip route get fails: no packet leaves by it)")
    if route.prefsrc is not None:
        return route.prefsrc, said.format(route.prefsrc, f"route '{route}' names src "
                                          f"{route.prefsrc}")
    if not host.known_addresses:
        raise cannot(f"route '{route}' names no src and the addresses of {route.dev} are not "
                     "in the snapshot (no ip-addr.json)")
    chosen = host.masquerade_source(route.dev, dst)  # inet_select_addr / ipv6_dev_get_saddr
    if chosen is None:
        raise cannot(f"route '{route}' names no src and the host has no IPv{dst.version} "
                     "address to send from")
    src, iface = chosen
    holder = f"{route.dev}'s address" if iface == route.dev else (
        f"{route.dev} has no usable IPv{dst.version} address: {iface}'s address")
    return src, said.format(src, f"route '{route}', {holder}")
