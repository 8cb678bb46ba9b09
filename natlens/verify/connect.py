"""Real connections through the topology: does a connection complete in the kernel exactly when
natlens says it is established? (``natlens verify`` after the packet probes; the trace's
``connection`` part, DESIGN.md.)

For each probed packet whose trace delivers the first packet (headline ACCEPT; TCP or UDP), at
most ``limit`` per run:

* a **responder** listens in the *landing* namespace, on the final address and port of every
  delivering outcome of the trace: the router when the trace delivers the packet to the host, the
  leaf holding the final address, or else the outside leaf on the output interface (which takes
  the address on its ``lo``). One responder process per namespace, started as ``ip netns exec NS
  <python> -I -S -c RESPONDER SPEC...``: ``RESPONDER`` is fixed code, each ``SPEC``
  (``tcp|udp,IP,PORT``) is made from a parsed address and an integer, never from input text. It
  echoes what it receives (TCP: one read per connection; UDP: each datagram), and exits when its
  standard input, a pipe from verify, reaches end of file (verify died). Its pid and start time
  are recorded in the run's state file (``runs.Run.record_responder``), so ``verify --cleanup``
  kills what a SIGKILLed run left; the run itself kills and reaps it.
* a **client** in the packet's source namespace (the router for a packet of local origin, the
  container leaf holding the source address, the outside leaf on the input interface, which takes
  the source address on its ``lo``) binds the packet's source address and port, connects to its
  destination and sends a token. The connection is *established* when the token comes back within
  ``timeout`` seconds (a reply that does not find the client's socket, as after a hairpin
  without SNAT, times out or is reset). Conntrack in the router is flushed before each attempt,
  so the first packet is NEW, as traced.

For the attempts, leaves may answer (``Topology.let_leaves_answer``), each outside leaf gets a
default route via the router, and the router's neighbour entries for addresses nobody holds
(``GHOST_MAC``) on an outside link point at that link's leaf, which answers for the addresses it
was given. Kernel and ``Trace.connection.established`` agree when both say the same; natlens's
``null`` is *undecided*: counted apart, never an agreement.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from natlens.netfilter.packet import Packet, endpoint
from natlens.netfilter.trace import Path, Trace, Verdict
from natlens.verify import ns as netns
from natlens.verify.generate import Probe
from natlens.verify.runs import Run
from natlens.verify.signals import shielded
from natlens.verify.topology import GHOST_MAC, Leaf, Topology, TopologyPlan

__all__ = ["RESPONDER", "Attempt", "ConnectionResult", "Listener", "check_connections",
           "plan_attempts"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESPONDER = r"""
import os, select, socket, sys
listening = {}
for spec in sys.argv[1:]:
    proto, addr, port = spec.split(",")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, int(port)))
        if proto == "tcp":
            s.listen(16)
    except OSError as exc:
        print("refused", spec, exc.strerror, flush=True)
        s.close()
        continue
    listening[s.fileno()] = (proto, s)
print("ready", flush=True)
while True:
    ready = select.select([0, *listening], [], [])[0]
    if 0 in ready and not os.read(0, 512):
        sys.exit(0)
    for fd in ready:
        if fd == 0:
            continue
        proto, s = listening[fd]
        try:
            if proto == "udp":
                data, peer = s.recvfrom(4096)
                s.sendto(data, peer)
            else:
                c = s.accept()[0]
                with c:
                    c.settimeout(2)
                    c.sendall(c.recv(4096))
                    c.recv(1)
        except OSError:
            pass
"""
"""The responder's code (fixed; its listeners come as argv, see ``Listener.spec``)."""

_READY_WITHIN = 10.0
"""Seconds a responder may take to bind its sockets and say ``ready``."""


@dataclass(frozen=True, slots=True)
class Listener:
    """A socket a responder opens: ``proto`` ``tcp``/``udp`` on ``ip``:``port`` in ``ns``."""

    ns: str
    proto: str
    ip: IPAddress
    port: int

    def spec(self) -> str:
        """``tcp,172.17.0.2,80``: one responder argument (made of checked values only)."""
        if self.proto not in ("tcp", "udp") or not 0 < self.port < 65536:
            raise ValueError(f"bad listener {self.proto} port {self.port}")
        return f"{self.proto},{ipaddress.ip_address(self.ip)},{int(self.port)}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One connection to try: from ``source_ns``, the probe's packet, to ``listeners``
    (the first is the headline outcome's); ``extra`` are (namespace, address) pairs an outside
    leaf must hold on ``lo`` for it."""

    probe: Probe
    trace: Trace
    source_ns: str
    listeners: tuple[Listener, ...]
    extra: tuple[tuple[str, IPAddress], ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionResult:
    """One real connection: what natlens expected, what happened, whether they agree."""

    probe: Probe
    trace: Trace
    established: bool
    """Whether the kernel established it (the echo came back)."""
    detail: str
    """How the attempt ended (``echo received``, ``no answer within 1 s``, ``refused``...)."""
    doubt: bool = False
    """natlens was uncertain about the packet (``Trace.uncertain``), or the snapshot is partial
    and natlens assumed things for it."""

    @property
    def expected(self) -> bool | None:
        """``Trace.connection.established`` (None: natlens could not decide)."""
        return self.trace.connection.established if self.trace.connection else None

    @property
    def why(self) -> str:
        """natlens's reason (``Trace.connection.why``)."""
        return self.trace.connection.why if self.trace.connection else "no connection part"

    @property
    def status(self) -> str:
        """``agree``, ``disagree``, ``undecided`` (natlens said null) or ``inconclusive``
        (they differ where natlens was uncertain or assuming)."""
        if self.expected is None:
            return "undecided"
        if self.expected is self.established:
            return "agree"
        return "inconclusive" if self.doubt else "disagree"

    def natlens_says(self) -> str:
        """``established: the reply ... comes back ...``."""
        word = {True: "established", False: "NOT established", None: "undecided"}[
            self.expected]
        return f"{word}: {self.why}"

    def kernel_says(self) -> str:
        """``established (echo received)`` or ``NOT established (no answer within 1 s)``."""
        return f"{'established' if self.established else 'NOT established'} ({self.detail})"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "packet": self.probe.packet.to_dict(),
            "source": self.probe.source,
            "status": self.status,
            "natlens": {"established": self.expected, "why": self.why},
            "kernel": {"established": self.established, "detail": self.detail},
        }


# -- planning -----------------------------------------------------------------------------------


def _endpoint(text: str) -> tuple[IPAddress, int | None] | None:
    """``IP:PORT`` / ``[IP]:PORT`` / ``IP`` → (address, port); None for a port range or junk."""
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if port and not port.isdecimal():
        return None
    return ip, int(port) if port else None


def _outside_leaf(plan: TopologyPlan, link_name: str | None) -> Leaf | None:
    link = plan.link(link_name or "")
    if link is None or link.kind != "veth":
        return None
    return next((leaf for leaf in plan.leaves if leaf.link == link.name
                 and leaf.role == "outside"), None)


def _has_family(leaf: Leaf, version: int, plan: TopologyPlan) -> bool:
    link = plan.link(leaf.link)
    return any(a.version == version for a in leaf.addresses) and link is not None and any(
        a.version == version and not a.ip.is_link_local for a in link.addresses)


def _usable(ip: IPAddress) -> bool:
    return not (ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local
                or ip == ipaddress.ip_address("255.255.255.255"))


def _landing(plan: TopologyPlan, packet: Packet, path: Path, final_dst: str,
             out_interface: str | None) -> tuple[Listener, IPAddress | None] | str:
    """Where the outcome lands: a listener, and the address an outside leaf must take (None:
    it holds it); or why none can be placed."""
    ip, port = _endpoint(final_dst) or (None, None)
    if ip is None or port is None:
        return "the final destination has no single port (NAT picks one of a range)"
    if path is Path.LOCAL:
        return Listener(plan.router, packet.proto, ip, port), None
    holder = plan.leaf_holding(ip)
    if holder is not None:
        return Listener(holder.ns, packet.proto, ip, port), None
    leaf = _outside_leaf(plan, out_interface)
    if leaf is None or not _usable(ip) or plan.router_holds(ip):
        return "no namespace can take the final destination: nobody would answer"
    if not _has_family(leaf, ip.version, plan):
        return f"{leaf.link} has no IPv{ip.version} address to place the destination behind"
    return Listener(leaf.ns, packet.proto, ip, port), ip


def _source(plan: TopologyPlan, packet: Packet) -> tuple[str, IPAddress | None] | str:
    """The namespace that opens the connection, and the address an outside leaf must take."""
    if packet.local_origin:
        return plan.router, None
    link = plan.link(packet.in_interface or "")
    if link is not None and link.kind == "bridge":
        holder = next((leaf for leaf in plan.leaves if leaf.link == link.name
                       and leaf.holds(packet.src)), None)
        if holder is None:
            return f"no container on {link.name} holds the source address"
        return holder.ns, None
    leaf = _outside_leaf(plan, packet.in_interface)
    if leaf is None:
        return f"no namespace sends from {packet.in_interface}"
    if leaf.holds(packet.src):
        return leaf.ns, None
    if not _usable(packet.src) or plan.router_holds(packet.src) \
            or plan.leaf_holding(packet.src) is not None:
        return f"the source address cannot be given to the {leaf.link} peer"
    if not _has_family(leaf, packet.src.version, plan):
        return f"{leaf.link} has no IPv{packet.src.version} address"
    return leaf.ns, packet.src


def plan_attempts(plan: TopologyPlan, probed: Sequence[tuple[Probe, Trace]], limit: int,
                  ) -> tuple[list[Attempt], dict[str, int]]:
    """The first ``limit`` probes whose trace delivers the first packet (TCP/UDP) and that the
    topology can carry as a real connection, and for the others why not (reason → count)."""
    attempts: list[Attempt] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        key = reason if len(skipped) < 20 or reason in skipped else "other reasons"
        skipped[key] = skipped.get(key, 0) + 1

    for probe, trace in probed:
        if len(attempts) >= limit:
            break
        packet = probe.packet
        if trace.verdict is not Verdict.ACCEPT:
            continue
        if packet.proto not in ("tcp", "udp") or packet.dport is None:
            skip(f"{packet.proto} has no connection to open")
            continue
        if packet.src.is_multicast or packet.dst.is_multicast or (
                packet.dst == ipaddress.ip_address("255.255.255.255")):
            skip("broadcast or multicast")
            continue
        source = _source(plan, packet)
        if isinstance(source, str):
            skip(source)
            continue
        src_ns, src_extra = source
        outcomes = [(b.path, b.final_dst, b.out_interface) for b in trace.branches
                    if b.verdict is Verdict.ACCEPT] or [
            (trace.path, trace.final_dst, trace.out_interface)]
        headline = _landing(plan, packet, trace.path, trace.final_dst, trace.out_interface)
        if isinstance(headline, str):
            skip(headline)
            continue
        listeners: list[Listener] = []
        extra: list[tuple[str, IPAddress]] = []
        for landing in (headline, *(_landing(plan, packet, *o) for o in outcomes)):
            if isinstance(landing, str) or landing[0] in listeners:
                continue  # a branch nobody can answer for: the headline's attempt decides
            listeners.append(landing[0])
            if landing[1] is not None:
                extra.append((landing[0].ns, landing[1]))
        sender = next((leaf for leaf in plan.leaves if leaf.ns == src_ns), None)
        if sender is not None and (sender.holds(packet.dst) or (src_ns, packet.dst) in extra
                                   or packet.dst.is_loopback):
            skip("the source namespace holds the destination: a real connection would not "
                 "leave it")
            continue
        if src_extra is not None:
            extra.append((src_ns, src_extra))
        attempts.append(Attempt(probe, trace, src_ns, tuple(listeners), tuple(extra)))
    return attempts, skipped


# -- running ------------------------------------------------------------------------------------


def _prepare(topo: Topology, attempts: Sequence[Attempt]) -> list[str]:
    """Let leaves answer, route outside leaves via the router, hand ghost addresses of outside
    links to their leaf, and give outside leaves the addresses the attempts need; an address the
    router has no route to is routed to its leaf, as natlens assumes where the snapshot's routes
    do not say (``Simulator.trace(via=)``). Returns notes on those routes."""
    plan = topo.plan
    notes: list[str] = []
    topo.let_leaves_answer()
    macs = {e["ifname"]: e.get("address", "") for e in json.loads(
        netns.run(["ip", "-j", "link", "show"], ns=plan.router)) if isinstance(e, dict)}
    for leaf in plan.leaves:  # leaves reach the router without neighbour discovery too
        link = plan.link(leaf.link)
        mac = macs.get(leaf.link)
        for a in (link.addresses if link is not None and mac else ()):
            if any(mine.version == a.version for mine in leaf.addresses):
                netns.run(["ip", "neigh", "replace", str(a.ip), "lladdr", str(mac), "dev",
                           "eth0", "nud", "permanent"], ns=leaf.ns)
    for ip, dev, _mac in (n for n in plan.neighbours if n[2] == GHOST_MAC):
        peer = _outside_leaf(plan, dev)
        if peer is not None:
            netns.run(["ip", "neigh", "replace", str(ip), "lladdr", peer.mac, "dev", dev, "nud",
                       "permanent"], ns=plan.router)
    added: set[tuple[str, IPAddress]] = set()
    routed: set[tuple[str, int]] = set()
    for attempt in attempts:
        for ns, ip in attempt.extra:
            if (ns, ip) in added:
                continue
            added.add((ns, ip))
            netns.run(["ip", "addr", "add", f"{ip}/{ip.max_prefixlen}", "dev", "lo",
                       *(["nodad"] if ip.version == 6 else [])], ns=ns)
            leaf = next(leaf for leaf in plan.leaves if leaf.ns == ns)
            gateway = next((a.ip for a in leaf.addresses if a.version == ip.version), None)
            known = netns.run(["ip", f"-{ip.version}", "route", "get", str(ip)],
                              ns=plan.router, check=False)
            if gateway is not None and not known.strip():
                netns.run(["ip", f"-{ip.version}", "route", "add", f"{ip}/{ip.max_prefixlen}",
                           "via", str(gateway), "dev", leaf.link], ns=plan.router)
                notes.append(f"connection check: the snapshot has no route to {ip}: routed "
                             f"via {leaf.link}, as natlens assumes")
    for leaf in plan.leaves:
        if leaf.role != "outside":
            continue
        link = plan.link(leaf.link)
        for version in (4, 6):
            via = next((a.ip for a in (link.addresses if link else ())
                        if a.version == version and not a.ip.is_link_local), None)
            if via is None or (leaf.ns, version) in routed or not any(
                    a.version == version for a in leaf.addresses):
                continue
            routed.add((leaf.ns, version))
            netns.run(["ip", f"-{version}", "route", "replace", "default", "via", str(via),
                       "dev", "eth0"], ns=leaf.ns)
    return notes


@dataclass
class _Responders:
    """The run's responder processes: started, recorded, killed and reaped."""

    run: Run
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    refused: dict[Listener, str] = field(default_factory=dict)

    def start(self, ns: str, listeners: Sequence[Listener]) -> None:
        """One responder in ``ns`` for ``listeners``; returns when it has bound them."""
        argv = ["ip", "netns", "exec", ns, sys.executable, "-I", "-S", "-c", RESPONDER,
                *(li.spec() for li in listeners)]
        with shielded():  # started and recorded, or not started
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            self.procs.append(proc)
            self.run.record_responder(proc.pid)
        assert proc.stdout is not None
        by_spec = {li.spec(): li for li in listeners}
        deadline = time.monotonic() + _READY_WITHIN
        while True:
            left = deadline - time.monotonic()
            line = proc.stdout.readline() if left > 0 and select.select(
                [proc.stdout], [], [], left)[0] else ""
            words = line.split(maxsplit=2)
            if words[:1] == ["ready"]:
                return
            if words[:1] == ["refused"] and len(words) > 1 and words[1] in by_spec:
                self.refused[by_spec[words[1]]] = words[2].strip() if len(words) > 2 else ""
                continue
            for li in listeners:
                self.refused.setdefault(li, "the responder did not start")
            return

    def stop(self) -> None:
        """Close each responder's input, kill it and reap it."""
        with shielded():
            for proc in self.procs:
                with contextlib.suppress(OSError):
                    if proc.stdin is not None:
                        proc.stdin.close()
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
                if proc.stdout is not None:
                    proc.stdout.close()
            self.procs.clear()


@contextlib.contextmanager
def _responders(run: Run) -> Iterator[_Responders]:
    r = _Responders(run)
    try:
        yield r
    finally:
        r.stop()


def connect(ns: str, packet: Packet, token: bytes, timeout: float,
            ) -> tuple[bool | None, str]:
    """Open ``packet``'s connection from namespace ``ns`` and send ``token``: (True, ...) when it
    comes back within ``timeout`` seconds, (False, how it failed), (None, why it could not be
    tried: the source address or port cannot be bound)."""
    family = socket.AF_INET6 if packet.family == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if packet.proto == "tcp" else socket.SOCK_DGRAM
    with netns.entered(ns):  # the socket stays in ns (ns.entered)
        sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if kind == socket.SOCK_STREAM:  # close with a reset: no TIME_WAIT for the next attempt
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            sock.bind((str(packet.src), packet.sport or 0))
        except OSError as exc:
            return None, f"cannot bind {endpoint(packet.src, packet.sport)}: {exc.strerror}"
        deadline = time.monotonic() + timeout
        try:
            sock.settimeout(timeout)
            sock.connect((str(packet.dst), packet.dport or 0))
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.sendall(token)
            data = sock.recv(len(token) + 16)
        except TimeoutError:
            return False, f"no answer within {timeout:g} s"
        except ConnectionRefusedError:
            return False, "refused (reset or ICMP port unreachable)"
        except OSError as exc:
            return False, exc.strerror or type(exc).__name__
        if data != token:
            return False, f"answered {data[:32]!r} instead of the echo"
        return True, "echo received"
    finally:
        sock.close()


def check_connections(topo: Topology, run: Run, probed: Sequence[tuple[Probe, Trace, bool]],
                      *, limit: int = 50, timeout: float = 1.0,
                      ) -> tuple[list[ConnectionResult], list[str]]:
    """Try up to ``limit`` real connections for ``probed`` (probe, trace, doubt) in the built
    topology ``topo`` (after the packet probes: leaves answer from here on). Returns the
    results and notes (what was skipped and why). At most about ``limit * timeout`` seconds
    plus the responders' start."""
    attempts, skipped = plan_attempts(topo.plan, [(p, t) for p, t, _ in probed], limit)
    doubt = {id(t): d for _, t, d in probed}
    notes = [f"connection check skipped {n} probe{'s' if n > 1 else ''}: {reason}"
             for reason, n in sorted(skipped.items())]
    if not attempts:
        return [], notes
    notes += _prepare(topo, attempts)
    results: list[ConnectionResult] = []
    by_ns: dict[str, list[Listener]] = {}
    for a in attempts:
        for li in a.listeners:
            if li not in by_ns.setdefault(li.ns, []):
                by_ns[li.ns].append(li)
    with _responders(run) as responders:
        for ns, listeners in sorted(by_ns.items()):
            responders.start(ns, listeners)
        for n, a in enumerate(attempts):
            head = a.listeners[0]
            if head in responders.refused:
                notes.append(f"connection check skipped {a.probe.packet!r}: no responder on "
                             f"{endpoint(head.ip, head.port)} ({responders.refused[head]})")
                continue
            family = "ipv6" if a.probe.packet.family == 6 else "ipv4"
            netns.run(["conntrack", "-F", "-f", family], ns=topo.plan.router, check=False)
            established, detail = connect(a.source_ns, a.probe.packet,
                                          f"natlens-verify {n}".encode(), timeout)
            if established is None:
                notes.append(f"connection check skipped {a.probe.packet!r}: {detail}")
                continue
            results.append(ConnectionResult(a.probe, a.trace, established, detail,
                                            doubt.get(id(a.trace), False)))
    return results, notes
