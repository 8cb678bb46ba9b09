"""A host address that is also its own broadcast (a /32 with ``brd`` = the address, as DHCP and
VPN interfaces set it) is LOCAL: the local table's ``local`` route wins (``ip route get``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from ipaddress import ip_address

import pytest
from netns_helpers import namespaces, needs_root

from natlens.netfilter.host import Host

ADDR = "10.9.9.9"


def _kernel_route_type(ns: str) -> str:
    out = subprocess.run(["ip", "-n", ns, "-j", "route", "get", ADDR, "from", "10.9.8.1",
                          "iif", "d0"], check=True, capture_output=True, text=True).stdout
    return str(json.loads(out)[0].get("type", "unicast"))


@pytest.fixture
def namespace() -> Iterator[str]:
    needs_root("ip", "iproute2")
    with namespaces("nlt-brd-") as (ns,):
        yield ns


@pytest.mark.kernel
def test_slash32_with_its_own_broadcast_is_local_like_the_kernel(namespace: str) -> None:
    ns = namespace
    for argv in (["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                 ["link", "set", "d1", "up"],
                 ["addr", "add", f"{ADDR}/32", "brd", ADDR, "dev", "d0"],
                 ["link", "set", "d0", "up"],
                 ["route", "add", "10.9.8.0/24", "dev", "d0"]):
        subprocess.run(["ip", "-n", ns, *argv], check=True)
    addrs = json.loads(subprocess.run(["ip", "-n", ns, "-j", "addr", "show"], check=True,
                                      capture_output=True, text=True).stdout)
    routes = json.loads(subprocess.run(["ip", "-n", ns, "-j", "route", "show"], check=True,
                                       capture_output=True, text=True).stdout)
    host = Host.from_json(addrs, routes)
    assert _kernel_route_type(ns) == "local"
    assert host.address_type(ip_address(ADDR)) == "LOCAL"
    assert host.address_type(ip_address(ADDR), "d0") == "LOCAL"
