"""An ip-route.json that lacks connected routes (a partial capture, a paste of `ip route`'s
default line): the kernel adds the prefix route of every primary address with the address
(``fib_add_ifaddr``, net/ipv4/fib_frontend.c; not with ``noprefixroute``), so natlens derives
the missing ones from ip-addr.json and says so; without ip-addr.json Docker's masquerade rule
names the bridge network (``Simulator._with_inferred_routes``), as when ip-route.json is missing.

Each fixture with both files is loaded again with its connected routes removed: the traces to
every address of those networks must route as with the full file.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import natlens
from natlens.netfilter import Host, Packet

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
_WITH_ROUTES = sorted(p.name for p in FIXTURES.iterdir()
                      if (p / "ip-addr.json").is_file() and (p / "ip-route.json").is_file())


def _connected(route: dict[str, Any]) -> bool:
    return route.get("protocol") == "kernel" and route.get("scope") == "link" \
        and "gateway" not in route and route.get("dst") != "default"


def _copy(name: str, tmp_path: Path, *, drop: tuple[str, ...] = ()) -> tuple[Path, list[Any]]:
    """The fixture copied without its connected IPv4 routes and without the files ``drop``;
    the routes removed."""
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    for f in drop:
        (folder / f).unlink(missing_ok=True)
    routes = json.loads((folder / "ip-route.json").read_text())
    gone = [r for r in routes if _connected(r) and ":" not in r["dst"]]
    (folder / "ip-route.json").write_text(json.dumps([r for r in routes if r not in gone]))
    return folder, gone


@pytest.mark.parametrize("name", _WITH_ROUTES)
def test_missing_connected_routes_are_derived(name: str, tmp_path: Path) -> None:
    full = natlens.load(FIXTURES / name)
    folder, gone = _copy(name, tmp_path)
    if not gone:
        pytest.skip("no connected IPv4 route to remove")
    partial = natlens.load(folder)
    assumptions = partial.simulator.host_for(4).assumptions
    for r in gone:
        said = [a for a in assumptions if a.startswith(f"route {r['dst']} dev {r['dev']}")
                and "not in ip-route.json" in a]
        assert said, assumptions
        # a host of the network, other than the host's own address
        net = ipaddress.ip_network(r["dst"])
        if net.num_addresses < 4:
            continue
        dst = str(next(ip for ip in net.hosts() if str(ip) != r.get("prefsrc")))
        ingress = next(i for i in full.host.interfaces if i not in ("lo", r["dev"]))
        packet = Packet(in_interface=ingress, src="198.51.100.7", dst=dst, proto="tcp",
                        sport=40000, dport=80)
        want, got = full.simulator.trace(packet), partial.simulator.trace(packet)
        assert (got.verdict, got.path, got.out_interface, got.final_dst) == (
            want.verdict, want.path, want.out_interface, want.final_dst), (str(want), str(got))
        assert any(a.startswith(f"route {r['dst']} dev {r['dev']}") for a in got.assumptions)


def test_masquerade_rule_names_the_bridge_route(tmp_path: Path) -> None:
    """No ip-addr.json, no docker-networks.json, ip-route.json with the default route only:
    Docker's ``-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`` gives the route to docker0."""
    folder, gone = _copy("default-bridge-8080", tmp_path,
                         drop=("ip-addr.json", "docker-networks.json"))
    assert [r["dst"] for r in gone] == ["172.17.0.0/16", "192.0.2.0/24"]
    snap = natlens.load(folder)
    trace = snap.simulator.trace(Packet(in_interface="eth0", src="198.51.100.7",
                                        dst="192.0.2.2", proto="tcp", dport=8080))
    assert (trace.verdict.value, trace.path.value, trace.out_interface, trace.final_dst) == (
        "ACCEPT", "forward", "docker0", "172.17.0.2:80"), str(trace)
    assert any(a.startswith("route 172.17.0.0/16 dev docker0 inferred from nat:POSTROUTING")
               and a.endswith("(not in ip-route.json)") for a in trace.assumptions), trace
    assert snap.simulator.host_for(4).segments["docker0"] == (
        ipaddress.ip_network("172.17.0.0/16"),)


def _addr(local: str, prefix: int, **flags: Any) -> dict[str, Any]:
    return {"family": "inet", "local": local, "prefixlen": prefix, **flags}


@pytest.mark.parametrize(("info", "derived"), [
    (_addr("10.5.0.2", 24), ["10.5.0.0/24 dev d0"]),
    (_addr("10.5.0.2", 24, scope="link"), ["10.5.0.0/24 dev d0"]),  # still a prefix route
    (_addr("10.5.0.2", 24, noprefixroute=True), []),  # `ip addr add ... noprefixroute`
    (_addr("10.5.0.2", 32), []),  # a /32 has its local route only
])
def test_which_addresses_have_a_prefix_route(info: dict[str, Any], derived: list[str]) -> None:
    host = Host.from_json([{"ifname": "d0", "addr_info": [info]}],
                          [{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"}])
    assert [str(r) for r in host.routes if r.network.prefixlen] == derived
    assert bool([a for a in host.assumptions if "not in ip-route.json" in a]) is bool(derived)
