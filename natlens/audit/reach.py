"""What the exposure map says about one published binding, for checks that probe it from one
interface only: whether another host reaches the container from some other ingress.

``missing`` means "published but unreachable from every ingress it is published to"; a port a
firewall refuses on eth0 and serves on wg0 is filtered there, not missing.
"""

from __future__ import annotations

from natlens.audit._docker_view import DockerView, exposure_map
from natlens.correlate import Binding
from natlens.exposure import Cell

__all__ = ["reached_elsewhere", "remote_cells"]


def remote_cells(view: DockerView, b: Binding) -> list[Cell]:
    """The exposure map's cells of binding ``b`` (same container, family, protocol and host
    port) from another host's ingress (not the host itself, not a Docker network); [] when the
    snapshot has no map."""
    emap = exposure_map(view.ctx)
    if emap is None:
        return []
    out: list[Cell] = []
    for row in emap.rows:
        rb = row.binding
        if rb is None or (rb.container.name, rb.family, rb.proto, rb.host_port) != (
                b.container.name, b.family, b.proto, b.host_port):
            continue
        out.extend(c for c in emap.cells_of(row) if emap.remote(c.ingress))
    return out


def reached_elsewhere(view: DockerView, b: Binding) -> bool:
    """True when a new connection from some remote ingress of the map may reach ``b``'s
    container (``reachable`` true or undecided, landing on the container) without being
    addressed to loopback: "missing" needs every ingress to refuse it for certain."""
    return any(c.reachable is not False and c.target is not None and c.target.kind == "container"
               and not c.dst.is_loopback for c in remote_cells(view, b))
