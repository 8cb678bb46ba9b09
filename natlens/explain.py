"""Plain-language notes on a trace that the rules alone do not show.

The classic: from the host itself, ``127.0.0.1:8080`` is not DNAT'd (Docker's nat OUTPUT rule
says ``! -d 127.0.0.0/8``); with the userland proxy on, ``docker-proxy`` listens on the published
port and forwards the connection to the container itself.
"""

from __future__ import annotations

import ipaddress

from natlens.inputs import is_decimal
from natlens.netfilter.trace import Trace
from natlens.snapshot import Snapshot

__all__ = ["proxy_notes"]


def _split(endpoint: str) -> tuple[str, int | None]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not is_decimal(port):
        return endpoint.strip("[]"), None
    return host.strip("[]"), int(port)


def proxy_notes(snapshot: Snapshot, trace: Trace) -> list[str]:
    """Notes for a packet delivered locally to a port Docker publishes (docker-proxy's case)."""
    inventory = snapshot.inventory
    if inventory is None or trace.verdict.value != "ACCEPT" or trace.path.value != "local":
        return []
    host, port = _split(trace.final_dst)
    proto = trace.packet.proto
    if port is None or proto not in ("tcp", "udp", "sctp"):
        return []
    found = inventory.publisher(ipaddress.ip_address(host), port, proto)
    if found is None:
        return []
    container, binding = found
    proxy = inventory.daemon.userland_proxy
    target = next((str(a) for a in container.addresses if a.version == 4), None)
    where = f"{target}:{binding.container_port}" if target else f"port {binding.container_port}"
    if proxy is False:
        return [f"{host}:{port}/{proto} is published by {container.name} ({binding}), but the "
                "userland proxy is off and no NAT rule rewrote this packet: nothing listens "
                "on the host port, the connection is refused"]
    state = "on" if proxy else "unknown (assumed on, Docker's default)"
    return [f"{host}:{port}/{proto} is published by {container.name} ({binding}); no NAT rule "
            f"rewrote this packet: docker-proxy (userland proxy {state}) accepts it on the "
            f"host and opens its own connection to {where}"]
