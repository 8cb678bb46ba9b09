"""Benchmark the packet simulator on a kube-proxy-shaped dump (benchmarks/gen_kube.py).

Prints the preparation time (compiling the ruleset and indexing its long chains), packets per
second over varied packets (cluster IPs hit and missed, NodePorts, UDP, established packets,
locally generated ones), and the speed-up over a naive rule-by-rule walk of the same packets.

    python benchmarks/bench_trace.py --services 10000 --endpoints 3 --packets 10000
    python benchmarks/bench_trace.py --check   # exit 1 above the goals below

Goals (they were a unit test's wall-clock assertions; tests no longer time anything): with
10,000 services x 3 endpoints, preparing the simulator takes < 2 s and a warm trace < 2 ms.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_kube import generate

from natlens.netfilter import Host, Packet, Simulator
from natlens.parse.save import parse_save

PREPARE_GOAL_S = 2.0
TRACE_GOAL_MS = 2.0
NODE = "192.168.0.2"
HOST_JSON = (
    [{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
     {"ifname": "eth0", "addr_info": [{"family": "inet", "local": NODE, "prefixlen": 24,
                                       "broadcast": "192.168.0.255"}]},
     {"ifname": "cni0", "addr_info": [{"family": "inet", "local": "10.128.0.1",
                                       "prefixlen": 9}]}],
    [{"dst": "default", "gateway": "192.168.0.1", "dev": "eth0"},
     {"dst": "192.168.0.0/24", "dev": "eth0", "prefsrc": NODE},
     {"dst": "10.128.0.0/9", "dev": "cni0", "prefsrc": "10.128.0.1"}],
)


def packets(count: int, services: int, seed: int = 7) -> list[Packet]:
    """Varied packets: mostly service traffic, some misses, NodePorts, UDP, replies, local."""
    rnd = random.Random(seed)
    out: list[Packet] = []
    for n in range(count):
        index = rnd.randrange(services)
        cluster_ip = 0x0A600000 + 10 + index  # gen_kube: 10.96.0.0 + 10 + index
        dst = f"{cluster_ip >> 24}.{(cluster_ip >> 16) & 255}.{(cluster_ip >> 8) & 255}." \
              f"{cluster_ip & 255}"
        udp = index % 7 == 6
        port = 53 if udp else 80 + index % 20
        kind = n % 10
        src = f"10.{128 + rnd.randrange(4)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
        common = {"sport": rnd.randrange(32768, 61000)}
        if kind == 7:  # a miss: right address, wrong port
            out.append(Packet(in_interface="cni0", src=src, dst=dst, dport=port + 1000, **common))
        elif kind == 8:  # NodePort from outside
            out.append(Packet(in_interface="eth0", src="203.0.113.9", dst=NODE,
                              dport=30000 + rnd.randrange(services // 10 + 1), **common))
        elif kind == 9:  # established reply direction / locally generated
            if n % 20 == 9:
                out.append(Packet(local_origin=True, src=NODE, dst=dst,
                                  proto="udp" if udp else "tcp", dport=port, **common))
            else:
                out.append(Packet(in_interface="cni0", src=src, dst=dst, dport=port,
                                  proto="udp" if udp else "tcp", state="established", **common))
        else:
            out.append(Packet(in_interface="cni0", src=src, dst=dst, dport=port,
                              proto="udp" if udp else "tcp", **common))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=3)
    parser.add_argument("--packets", type=int, default=10_000)
    parser.add_argument("--naive-packets", type=int, default=200,
                        help="packets for the naive walk (it is slow; default: 200)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when preparation > {PREPARE_GOAL_S} s or a warm trace > "
                             f"{TRACE_GOAL_MS} ms")
    args = parser.parse_args(argv)

    text = generate(args.services, args.endpoints)
    start = time.perf_counter()
    ruleset = parse_save(text, source="gen_kube")
    parsed = time.perf_counter() - start
    kube_services = len(ruleset["nat"]["KUBE-SERVICES"])
    host = Host.from_json(*HOST_JSON)

    start = time.perf_counter()
    sim = Simulator(host, ruleset)
    prepared = time.perf_counter() - start
    batch = packets(args.packets, args.services)

    start = time.perf_counter()
    traces = [sim.trace(p) for p in batch]
    first = time.perf_counter() - start
    start = time.perf_counter()
    for p in batch:
        sim.trace(p)
    warm = time.perf_counter() - start

    naive = Simulator(host, ruleset, index=False)
    sample = batch[: args.naive_packets]
    for p in sample[:5]:
        naive.trace(p)
    start = time.perf_counter()
    for p in sample:
        naive.trace(p)
    naive_time = (time.perf_counter() - start) / len(sample)
    indexed_time = warm / len(batch)
    agree = all(naive.trace(p).to_dict() == t.to_dict()
                for p, t in zip(sample, traces[: len(sample)], strict=True))

    print(f"ruleset: {ruleset.rule_count} rules, KUBE-SERVICES {kube_services} rules "
          f"(parse {parsed:.2f} s)")
    print(f"preparation: {prepared * 1000:.0f} ms")
    print(f"{len(batch)} packets, first pass (compiles the rules met): {first:.2f} s "
          f"({len(batch) / first:,.0f} packets/s)")
    print(f"{len(batch)} packets, warm: {warm:.2f} s ({len(batch) / warm:,.0f} packets/s, "
          f"{indexed_time * 1e3:.3f} ms per trace)")
    print(f"naive rule-by-rule walk: {naive_time * 1e3:.2f} ms per trace "
          f"({len(sample)} packets); indexed is {naive_time / indexed_time:,.0f}x faster; "
          f"same traces: {agree}")
    branches = sum(1 for t in traces if t.branches)
    print(f"traces with branches (statistic endpoints): {branches}; verdicts: "
          + ", ".join(f"{v}={sum(1 for t in traces if t.verdict.value == v)}"
                      for v in ("ACCEPT", "DROP", "REJECT")))
    if args.check:
        met = prepared < PREPARE_GOAL_S and indexed_time * 1e3 < TRACE_GOAL_MS
        print(f"goals (preparation < {PREPARE_GOAL_S} s, warm trace < {TRACE_GOAL_MS} ms): "
              f"{'met' if met else 'NOT met'}")
        if not met:
            return 1
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
