"""Plain-language notes on a trace that the rules alone do not show.

The classic: from the host itself, ``127.0.0.1:8080`` is not DNAT'd (Docker's nat OUTPUT rule
says ``! -d 127.0.0.0/8``); with the userland proxy on, ``docker-proxy`` listens on the published
port and forwards the connection to the container itself.
"""

from __future__ import annotations

import ipaddress

from natlens.inputs import is_decimal
from natlens.netfilter.listeners import Listeners
from natlens.netfilter.trace import Trace
from natlens.snapshot import Snapshot

__all__ = ["proxy_notes"]


def _split(endpoint: str) -> tuple[str, int | None]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not is_decimal(port):
        return endpoint.strip("[]"), None
    return host.strip("[]"), int(port)


def proxy_notes(snapshot: Snapshot, trace: Trace) -> list[str]:
    """Notes for a packet delivered locally to a port Docker publishes (docker-proxy's case).

    With ``ss.txt`` in the snapshot, the note says docker-proxy takes the connection only when
    ss.txt shows a socket there (``Listeners.socket``); else it says none listens (a proxy that
    died or failed to bind), agreeing with the trace's ``connection:`` line."""
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
    sock, doubt = None, None
    if snapshot.sockets is not None:  # ss.txt is the evidence of who listens
        iface = "lo" if trace.packet.local_origin else trace.packet.in_interface
        sock, doubt = Listeners(snapshot.sockets, True).socket(
            proto, ipaddress.ip_address(host), port, iface)
    if proxy is False:
        said = "nothing listens on the host port, the connection is refused"
        if snapshot.sockets is None:  # no ss.txt: whether another process listens is unknown
            said = ("no docker-proxy takes it; whether another process listens on the host port "
                    "is not known (no ss.txt)")
        elif sock is not None:
            said = f"{sock.process or 'a process'} listens on the host port per ss.txt and " \
                f"takes the connection, not {container.name}"
        return [f"{host}:{port}/{proto} is published by {container.name} ({binding}), but the "
                f"userland proxy is off and no NAT rule rewrote this packet: {said}"]
    state = "on" if proxy else "unknown (assumed on, Docker's default)"
    head = f"{host}:{port}/{proto} is published by {container.name} ({binding}); no NAT rule " \
        "rewrote this packet: "
    if snapshot.sockets is not None and sock is None:
        why = f" ({doubt})" if doubt else " (a stale or failed proxy)"
        return [head + f"the userland proxy is {state}, but no docker-proxy listens on "
                f"{proto} port {port} per ss.txt{why}"]
    if sock is not None and sock.process not in (None, "docker-proxy"):
        return [head + f"the userland proxy is {state}, but {sock.process} listens on "
                f"{proto} port {port} per ss.txt, not docker-proxy: it takes the "
                f"connection, not {container.name}"]
    return [head + f"docker-proxy (userland proxy {state}) accepts it on the host and opens "
            f"its own connection to {where}"]
