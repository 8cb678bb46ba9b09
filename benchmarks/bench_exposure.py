"""Benchmark the exposure map (``natlens.exposure``) on a big dual-stack Docker host.

The host of ``bench_audit.py`` (N containers on the default bridge, each publishing 3 TCP ports,
merged with a kube-proxy dump of ~100k rules), made dual-stack: every container also holds an
IPv6 address on docker0 (fd00:dead:beef::/64) and ip6tables holds Docker's rules for it, and
the host has a second outside interface (wg0, 10.8.0.1/24 and fd08::1/64). That is 4 ingresses
(eth0, wg0, the host itself, docker0) x 2 families for N x 3 published ports, plus each
container port at the container's own address and one unpublished port per container.

    python benchmarks/bench_exposure.py                 # N = 250, 1000
    python benchmarks/bench_exposure.py --sizes 1000 --check
    python benchmarks/bench_exposure.py --profile 1000
    python benchmarks/bench_exposure.py --sizes 1000 --no-share   # every cell traced

``--no-share`` builds the map without sharing decisions between alike containers
(``natlens.exposure_share``): the same map, cell by cell (the figure before sharing).

Prints, per size: rules, load seconds, map seconds (``natlens.exposure`` on the loaded snapshot:
preparing the simulator and every cell), rows, cells, simulated packets and microseconds per
cell. Goal (issue 9): the map of N = 1000 in <= 10 s (load not included: the parser has its own
benchmark).
"""

from __future__ import annotations

import argparse
import cProfile
import ipaddress
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_audit import (
    CONTAINER_PORTS,
    FOOTER,
    HEADER,
    HOST_PORT_BASE,
    KUBE_ENDPOINTS,
    KUBE_SERVICES,
    META,
    docker_objects,
    docker_rules,
    host_json,
    merge,
)
from gen_kube import expected_size, generate

import natlens

GOAL_SECONDS = 10.0
BRIDGE6 = ipaddress.ip_network("fd00:dead:beef::/64")


def container_ip6(i: int) -> str:
    return str(BRIDGE6.network_address + 2 + i)


def rules6(n: int) -> str:
    """ip6tables-save of Docker's rules for the containers' IPv6 addresses (Docker 20.10 with
    ``ip6tables: true``)."""
    flt = [":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
           ":DOCKER - [0:0]", ":DOCKER-ISOLATION-STAGE-1 - [0:0]",
           ":DOCKER-ISOLATION-STAGE-2 - [0:0]", ":DOCKER-USER - [0:0]",
           "-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
           "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
           "-A FORWARD -o docker0 -j DOCKER", "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
           "-A FORWARD -i docker0 -o docker0 -j ACCEPT"]
    nat = [":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
           ":POSTROUTING ACCEPT [0:0]", ":DOCKER - [0:0]",
           "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
           "-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER",
           f"-A POSTROUTING -s {BRIDGE6} ! -o docker0 -j MASQUERADE"]
    nat_docker = ["-A DOCKER -i docker0 -j RETURN"]
    for i in range(n):
        ip = container_ip6(i)
        for k, port in enumerate(CONTAINER_PORTS):
            h = HOST_PORT_BASE + 3 * i + k
            flt.append(f"-A DOCKER -d {ip}/128 ! -i docker0 -o docker0 -p tcp -m tcp "
                       f"--dport {port} -j ACCEPT")
            nat.append(f"-A POSTROUTING -s {ip}/128 -d {ip}/128 -p tcp -m tcp --dport {port} "
                       "-j MASQUERADE")
            nat_docker.append(f"-A DOCKER ! -i docker0 -p tcp -m tcp --dport {h} -j DNAT "
                              f"--to-destination [{ip}]:{port}")
    flt += ["-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
            "-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
            "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
            "-A DOCKER-ISOLATION-STAGE-2 -j RETURN", "-A DOCKER-USER -j RETURN"]
    lines = [HEADER.replace("iptables", "ip6tables"), "*filter", *flt, "COMMIT", FOOTER,
             HEADER.replace("iptables", "ip6tables"), "*nat", *nat, *nat_docker, "COMMIT",
             FOOTER]
    return "\n".join(lines) + "\n"


def write_snapshot(folder: Path, n: int, kube_text: str) -> None:
    """The snapshot folder of the dual-stack host with ``n`` containers."""
    folder.mkdir(parents=True, exist_ok=True)
    containers, networks = docker_objects(n)
    for i, c in enumerate(containers):
        ep = c["NetworkSettings"]["Networks"]["bridge"]
        ep.update({"GlobalIPv6Address": container_ip6(i), "GlobalIPv6PrefixLen": 64,
                   "IPv6Gateway": str(BRIDGE6.network_address + 1)})
        networks[0]["Containers"][c["Id"]]["IPv6Address"] = f"{container_ip6(i)}/64"
    networks[0]["EnableIPv6"] = True
    networks[0]["IPAM"]["Config"].append({"Subnet": str(BRIDGE6),
                                          "Gateway": str(BRIDGE6.network_address + 1)})
    addrs, routes = host_json(n)
    six = {"eth0": ("fd00::2", 64), "docker0": (str(BRIDGE6.network_address + 1), 64)}
    for a in addrs:
        if a["ifname"] in six:
            ip, plen = six[a["ifname"]]
            a["addr_info"].append({"family": "inet6", "local": ip, "prefixlen": plen,
                                   "scope": "global"})
    addrs.append({"ifindex": 5, "ifname": "wg0", "flags": ["POINTOPOINT", "UP", "LOWER_UP"],
                  "mtu": 1420, "operstate": "UNKNOWN",
                  "addr_info": [{"family": "inet", "local": "10.8.0.1", "prefixlen": 24,
                                 "scope": "global"},
                                {"family": "inet6", "local": "fd08::1", "prefixlen": 64,
                                 "scope": "global"}]})
    routes.append({"dst": "10.8.0.0/24", "dev": "wg0", "protocol": "kernel", "scope": "link",
                   "prefsrc": "10.8.0.1", "flags": []})
    routes6 = [{"dst": "fd00::/64", "dev": "eth0", "protocol": "kernel", "metric": 256,
                "flags": []},
               {"dst": str(BRIDGE6), "dev": "docker0", "protocol": "kernel", "metric": 256,
                "flags": []},
               {"dst": "fd08::/64", "dev": "wg0", "protocol": "kernel", "metric": 256,
                "flags": []},
               {"dst": "default", "gateway": "fd00::1", "dev": "eth0", "metric": 1024,
                "flags": []}]
    meta: dict[str, Any] = json.loads(json.dumps(META))
    meta["docker_ip6tables"] = True
    meta["sysctl"]["net.ipv6.conf.all.forwarding"] = "1"
    (folder / "iptables-save.txt").write_text(merge(docker_rules(n), kube_text))
    (folder / "ip6tables-save.txt").write_text(rules6(n))
    for name, obj in (("docker-containers.json", containers),
                      ("docker-networks.json", networks), ("ip-addr.json", addrs),
                      ("ip-route.json", routes), ("ip-route6.json", routes6),
                      ("meta.json", meta)):
        (folder / name).write_text(json.dumps(obj, indent=1))


def exposure(snap: natlens.Snapshot, share: bool = True) -> natlens.ExposureMap:
    """``natlens.exposure(snap)``, or the same map without sharing."""
    if share:
        return natlens.exposure(snap)
    from natlens.docker import inventory_from_snapshot
    from natlens.exposure import build
    return build(snap, inventory_from_snapshot(snap), snap.simulator, share=False)


def run_one(folder: Path, share: bool = True) -> tuple[int, float, float, natlens.ExposureMap]:
    """(rules, load seconds, map seconds, map)."""
    t0 = time.perf_counter()
    snap = natlens.load(str(folder))
    t1 = time.perf_counter()
    emap = exposure(snap, share)
    t2 = time.perf_counter()
    return snap.ruleset.rule_count + snap.ruleset6.rule_count, t1 - t0, t2 - t1, emap


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="250,1000")
    ap.add_argument("--services", type=int, default=KUBE_SERVICES)
    ap.add_argument("--endpoints", type=int, default=KUBE_ENDPOINTS)
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 unless the largest size's map takes <= {GOAL_SECONDS:g} s")
    ap.add_argument("--profile", type=int, metavar="N")
    ap.add_argument("--no-share", action="store_true",
                    help="trace every cell (no decisions shared between alike containers)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kube_text = generate(args.services, args.endpoints)
    with tempfile.TemporaryDirectory(prefix="natlens-bench-exposure-") as tmp:
        if args.profile:
            folder = Path(tmp) / f"n{args.profile}"
            write_snapshot(folder, args.profile, kube_text)
            snap = natlens.load(str(folder))
            prof = cProfile.Profile()
            prof.enable()
            exposure(snap, not args.no_share)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)
            return 0
        print(f"kube-proxy dump: {args.services} services x {args.endpoints} endpoints = "
              f"{expected_size(args.services, args.endpoints)[0]:,} rules; each container "
              "publishes 3 tcp ports on IPv4 and IPv6; ingresses eth0, wg0, local, docker0")
        print(f"{'N':>6} {'rules':>9} {'load s':>8} {'map s':>8} {'rows':>7} {'cells':>8} "
              f"{'us/cell':>8} {'ingresses':>10}")
        took = 0.0
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            write_snapshot(folder, n, kube_text)
            rules, t_load, took, emap = run_one(folder, not args.no_share)
            print(f"{n:>6} {rules:>9,} {t_load:>8.2f} {took:>8.2f} {len(emap.rows):>7} "
                  f"{len(emap.cells):>8} {took / max(1, len(emap.cells)) * 1e6:>8.0f} "
                  f"{len(emap.ingresses):>10}", flush=True)
    if args.check and took > GOAL_SECONDS:
        print(f"FAIL: {took:.2f} s > {GOAL_SECONDS:g} s at N={sizes[-1]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
