"""Check every snapshot value ``natlens verify`` hands to ``ip`` or writes to ``/proc/sys``,
before any namespace is made.

A snapshot is untrusted text. ``check_snapshot`` walks the JSON files verify reads and raises a
one-line ``SnapshotError`` naming the file, the JSON path and the value for the first value the
kernel would refuse (see ``kernel_names``): interface names (``ip-addr.json`` ``ifname`` and
``master``, ``ip-route.json`` ``dev``, the bridge name of each Docker bridge network), MAC
addresses (``ip-addr.json`` ``address`` of Ethernet links, each container's ``MacAddress``),
route types. ``sysctl_settings`` keeps the ``meta.json`` sysctls verify knows how to mirror
(forwarding, ``route_localnet``, ``bridge-nf-call-ip(6)tables``), each 0 or 1: verify writes
only per-network-namespace switches, never a host-wide one such as ``kernel.*``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from natlens.errors import SnapshotError
from natlens.netfilter.host import bridge_name
from natlens.snapshot import SNAPSHOT_FILES, Snapshot
from natlens.sysctls import kernel_value
from natlens.verify.kernel_names import (
    check_ifname,
    check_mac,
    check_route_type,
    printable,
    sysctl_path,
)

__all__ = ["check_snapshot", "sysctl_settings"]

_ZERO_MAC = "00:00:00:00:00:00"


def _file(snap: Snapshot, key: str) -> str:
    return str(Path(snap.path) / SNAPSHOT_FILES[key])


def _check(check: Callable[[Any], str], value: object, where: str) -> str:
    try:
        return check(value)
    except ValueError as exc:
        raise SnapshotError(f"{where}: {exc}") from None


def _addresses(snap: Snapshot) -> None:
    name = _file(snap, "addresses")
    for i, entry in enumerate(snap.addresses or ()):
        if not isinstance(entry, Mapping):
            continue
        ifname = _check(check_ifname, entry.get("ifname"), f"{name}: $[{i}].ifname")
        if entry.get("master") is not None:
            _check(check_ifname, entry.get("master"), f"{name}: $[{i}].master ({ifname})")
        mac = entry.get("address")
        if entry.get("link_type", "ether") == "ether" and mac is not None and mac != _ZERO_MAC:
            _check(check_mac, mac, f"{name}: $[{i}].address ({ifname})")


def _routes(snap: Snapshot) -> None:
    name = _file(snap, "routes")
    for i, entry in enumerate(snap.routes or ()):
        if not isinstance(entry, Mapping):
            continue
        if entry.get("dev") is not None:
            _check(check_ifname, entry.get("dev"), f"{name}: $[{i}].dev")
        if entry.get("type") is not None:
            _check(check_route_type, entry.get("type"), f"{name}: $[{i}].type")


def _networks(snap: Snapshot) -> None:
    name = _file(snap, "networks")
    for i, net in enumerate(snap.networks or ()):
        if not isinstance(net, Mapping) or net.get("Driver") != "bridge":
            continue
        options = net.get("Options")
        field = ("Options['com.docker.network.bridge.name']"
                 if isinstance(options, Mapping) and options.get("com.docker.network.bridge.name")
                 else "Id")
        _check(check_ifname, bridge_name(net), f"{name}: $[{i}].{field} (bridge name)")


def _containers(snap: Snapshot) -> None:
    name = _file(snap, "containers")
    for i, c in enumerate(snap.containers or ()):
        if not isinstance(c, Mapping):
            continue
        nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
        if not isinstance(nets, Mapping):
            continue
        for net_name, info in nets.items():
            if isinstance(info, Mapping) and info.get("MacAddress"):
                _check(check_mac, info["MacAddress"],
                       f"{name}: $[{i}].NetworkSettings.Networks[{printable(str(net_name))}]"
                       ".MacAddress")


def check_snapshot(snap: Snapshot) -> None:
    """Raise ``SnapshotError`` (file, JSON path, value) for the first interface name, MAC
    address or route type of ``snap`` that verify would pass to ``ip`` and the kernel refuses."""
    _addresses(snap)
    _routes(snap)
    _networks(snap)
    _containers(snap)


def sysctl_settings(snap: Snapshot, notes: list[str]) -> dict[str, str | None]:
    """The ``meta.json`` sysctls verify mirrors, each the value the kernel holds after writing
    it (``natlens.sysctls.kernel_value``: ``"2"`` stays 2 for ``ip_forward``, is 1 for
    ``bridge-nf-call-iptables``) or None (the host did not have it, e.g. no br_netfilter); other
    keys are noted and left out; a value the kernel would refuse raises ``SnapshotError``, as
    loading the snapshot does for the switches trace reads."""
    given = snap.meta.get("sysctl")
    out: dict[str, str | None] = {}
    if not isinstance(given, Mapping):
        return out
    name = _file(snap, "meta")
    for key, value in given.items():
        try:
            sysctl_path(str(key))
        except ValueError:
            notes.append(f"meta.json: sysctl {printable(str(key))} not mirrored (verify sets "
                         "only forwarding, route_localnet and bridge-nf-call-ip(6)tables)")
            continue
        if value is None:
            out[str(key)] = None
            continue
        try:
            out[str(key)] = str(kernel_value(str(key), value))
        except ValueError as exc:
            raise SnapshotError(f"{name}: $.sysctl[{printable(str(key))}]: {exc}") from None
    return out
