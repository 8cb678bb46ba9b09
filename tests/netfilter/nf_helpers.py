"""Helpers for the simulator tests: a standard host, rule text → Simulator, golden cases."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from natlens.model import Family, Ruleset
from natlens.netfilter import Host, Packet, Simulator
from natlens.parse.save import parse_save

GOLDEN = Path(__file__).parent / "golden"

STANDARD_HOST: dict[str, Any] = {
    "interfaces": {
        "lo": ["127.0.0.1/8", "::1/128"],
        "eth0": ["192.0.2.2/24", "2001:db8::2/64"],
        "docker0": ["172.17.0.1/16", "fd00:dead:beef::1/64"],
        "br-1a2b3c4d5e6f": ["192.0.3.1/24"],
    },
    "masters": {"veth1": "docker0"},
    "routes": [
        ["default", "eth0", "192.0.2.1"],
        ["172.17.0.0/16", "docker0"],
        ["192.0.2.0/24", "eth0"],
        ["192.0.3.0/24", "br-1a2b3c4d5e6f"],
        ["10.99.0.0/16", None, None, "blackhole"],
    ],
}
"""eth0 192.0.2.2/24 (default via 192.0.2.1), docker0 172.17.0.1/16, a user bridge 192.0.3.1/24."""


def ip_json(spec: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """A compact host spec → (``ip -j addr`` JSON, ``ip -j route`` JSON)."""
    addrs: list[Any] = []
    for name, nets in spec["interfaces"].items():
        info = []
        for text in nets:
            iface = ipaddress.ip_interface(text)
            entry: dict[str, Any] = {"family": "inet" if iface.version == 4 else "inet6",
                                     "local": str(iface.ip), "prefixlen": iface.network.prefixlen}
            if iface.version == 4 and iface.network.prefixlen < 31 and not iface.ip.is_loopback:
                entry["broadcast"] = str(iface.network.broadcast_address)
            info.append(entry)
        addrs.append({"ifname": name, "addr_info": info})
    for port, master in spec.get("masters", {}).items():
        addrs.append({"ifname": port, "master": master, "addr_info": []})
    routes: list[Any] = []
    for dst, dev, *rest in spec["routes"]:
        route: dict[str, Any] = {"dst": dst}
        if dev is not None:
            route["dev"] = dev
        if rest and rest[0]:
            route["gateway"] = rest[0]
        if len(rest) > 1:
            route["type"] = rest[1]
        routes.append(route)
    return addrs, routes


def standard_host(spec: dict[str, Any] | None = None) -> Host:
    """The host of ``spec`` (default ``STANDARD_HOST``)."""
    addrs, routes = ip_json(spec or STANDARD_HOST)
    return Host.from_json(addrs, routes)


def rules(text: str | list[str], family: Family = Family.IPV4) -> Ruleset:
    """iptables-save text (or its lines) → Ruleset."""
    if isinstance(text, list):
        text = "\n".join(text) + "\n"
    return parse_save(text, source="rules", family=family)


def simulator(text: str | list[str], text6: str | list[str] | None = None,
              host: Host | None = None) -> Simulator:
    """A simulator of the given rules on the standard host."""
    rs6 = rules(text6, Family.IPV6) if text6 is not None else None
    return Simulator(host or standard_host(), rules(text), rs6)


def packet(spec: dict[str, Any]) -> Packet:
    """A packet from its JSON form (``Packet.to_dict`` keys, unset ones omitted)."""
    return Packet(**spec)


def case_host(case: dict[str, Any]) -> Host | None:
    """A golden case's host: its ``host`` spec, ``"unknown"`` for a host whose addresses and
    routes the snapshot lacks, or None (the standard host)."""
    spec = case.get("host")
    if spec is None:
        return None
    if spec == "unknown":
        return Host.from_json(None, None)
    return standard_host(spec)


def golden_cases() -> list[Path]:
    """All golden case files, sorted by name."""
    return sorted(GOLDEN.glob("*.json"))


def load_case(path: Path) -> dict[str, Any]:
    """One golden case: rules, optional rules6/host, packet and expected trace."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data
