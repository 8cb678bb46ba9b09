"""Send one packet through the topology and record what the kernel did with it.

Sending: a packet that *arrives* on an interface is written as a whole Ethernet frame by the
leaf on that interface (an AF_PACKET socket in the outside or container namespace), so its
addresses and ports are exactly the simulated packet's; a packet of *local origin* is written by
the router itself through a raw IP socket (``IPPROTO_RAW``, header included), which walks
OUTPUT and POSTROUTING like any local packet.

Watching (one process holds sockets in every namespace, see ``ns.entered``):

* **leaf listeners**: an AF_PACKET socket per leaf logs every IP packet addressed to it (source
  and destination address and port as they arrived: the NAT result);
* **router egress**: an AF_PACKET socket per router interface logs every packet the router sends
  out of it (the output interface and the packet after POSTROUTING);
* **router local delivery**: raw TCP/UDP/ICMP sockets (IPv4 and IPv6) in the router receive every
  packet delivered to its own stack after INPUT;
* **conntrack**: ``conntrack -L`` in the router (original and reply tuple: the NAT mapping);
* **counters**: ``iptables-save -c`` before and after: which rules and policies counted it.

Conntrack is flushed before every probe, and each probe carries a tag (see ``wire``) so only its
own copies are counted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import select
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from natlens.errors import NatlensError
from natlens.netfilter.packet import Packet, endpoint
from natlens.netfilter.trace import Path, Verdict
from natlens.parse.hostfiles import split_fields
from natlens.parse.tokens import split_lines
from natlens.verify import ns as netns
from natlens.verify.nftload import nft_counter_hits
from natlens.verify.topology import Leaf, Topology, tool
from natlens.verify.wire import Frame, build_frame, build_ip, parse_ethernet, parse_transport

__all__ = ["ConntrackEntry", "Hit", "Observation", "ProbeError", "Prober", "Sighting",
           "parse_conntrack", "parse_counters"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ETH_P_ALL = 0x0003
_PACKET_HOST = 0
_PACKET_OUTGOING = 4
_IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
_IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)

CounterKey = tuple[str, str, int | None]
"""(table, chain, rule number from 1, or None for the chain's policy)."""


@dataclass(frozen=True, slots=True)
class Sighting:
    """One copy of a packet seen somewhere.

    ``where``: ``local`` (delivered to the router's own stack), ``out`` (sent out of router
    interface ``iface``) or ``leaf`` (arrived at leaf ``ns`` attached to router interface
    ``iface``).
    """

    where: str
    iface: str | None
    ns: str
    frame: Frame

    def describe(self) -> str:
        """``out docker0: tcp 198.51.100.7:20001 -> 172.17.0.2:80``."""
        f = self.frame
        place = {"local": "delivered to the host", "out": f"sent out {self.iface}",
                 "leaf": f"arrived at {self.ns} ({self.iface})"}[self.where]
        return (f"{place}: {f.kind} {f.proto} {endpoint(f.src, f.sport)} -> "
                f"{endpoint(f.dst, f.dport)}")


@dataclass(frozen=True, slots=True)
class ConntrackEntry:
    """One line of ``conntrack -L``: the original and the reply direction."""

    proto: str
    original: tuple[str, str]
    """(source endpoint, destination endpoint) as sent."""
    reply: tuple[str, str]
    """(source endpoint, destination endpoint) the answer would have: the NAT result."""
    text: str

    @property
    def nat_dst(self) -> str:
        """Where the connection really goes (reply source)."""
        return self.reply[0]

    @property
    def nat_src(self) -> str:
        """The source the far end sees (reply destination)."""
        return self.reply[1]


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule (``rule`` from 1) or policy (``rule`` None) whose packet counter moved."""

    table: str
    chain: str
    rule: int | None
    packets: int

    def label(self) -> str:
        """``nat:DOCKER#3`` or ``filter:FORWARD:policy``."""
        return (f"{self.table}:{self.chain}#{self.rule}" if self.rule is not None
                else f"{self.table}:{self.chain}:policy")


@dataclass(frozen=True, slots=True)
class Observation:
    """What the kernel did with one probe."""

    packet: Packet
    tag: int
    sightings: tuple[Sighting, ...]
    errors: tuple[Sighting, ...]
    conntrack: tuple[ConntrackEntry, ...]
    hits: tuple[Hit, ...]
    verdict: Verdict
    path: Path | None
    final_dst: str | None
    final_src: str | None
    out_interface: str | None
    uncounted: frozenset[str] = frozenset()
    """Rule labels no counter follows exactly (``NftLoad.uncounted``): left out of the rule
    comparison."""
    also: tuple[tuple[Path, str, str, str | None], ...] = ()
    """Further deliveries of the same packet as (path, final_dst, final_src, out_interface): a
    broadcast a local process sends both leaves by its interface and loops back to the host."""

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {
            "verdict": self.verdict.value,
            "path": self.path.value if self.path else None,
            "final_dst": self.final_dst,
            "final_src": self.final_src,
            "out_interface": self.out_interface,
            "seen": [s.describe() for s in self.sightings],
            "errors": [s.describe() for s in self.errors],
            "conntrack": [c.text for c in self.conntrack],
            "rules": [h.label() for h in self.hits],
        }


# -- parsing tool output ------------------------------------------------------------------------

_POLICY = re.compile(r"^:(\S+) (\S+) \[(\d+):(\d+)\]")
_RULE = re.compile(r"^\[(\d+):(\d+)\] -A (\S+)")


def parse_counters(text: str) -> dict[CounterKey, int]:
    """Packet counters of every rule and built-in policy in ``iptables-save -c`` output."""
    out: dict[CounterKey, int] = {}
    table = ""
    index: dict[str, int] = {}
    for line in split_lines(text):  # at "\n" only: comments may hold \x1c, U+2028...
        if line.startswith("*"):
            table = line[1:].strip()
            index = {}
            continue
        m = _POLICY.match(line)
        if m:
            if m.group(2) != "-":
                out[(table, m.group(1), None)] = int(m.group(3))
            continue
        m = _RULE.match(line)
        if m:
            chain = m.group(3)
            index[chain] = index.get(chain, 0) + 1
            out[(table, chain, index[chain])] = int(m.group(1))
    return out


def _endpoint_of(fields: dict[str, str]) -> tuple[str, str]:
    src = ipaddress.ip_address(fields["src"])
    dst = ipaddress.ip_address(fields["dst"])
    sport = int(fields["sport"]) if "sport" in fields else None
    dport = int(fields["dport"]) if "dport" in fields else None
    return endpoint(src, sport), endpoint(dst, dport)


def parse_conntrack(text: str) -> list[ConntrackEntry]:
    """Entries of ``conntrack -L`` output (lines without two tuples are skipped)."""
    out: list[ConntrackEntry] = []
    for line in split_lines(text):  # as conntrack prints: lines at "\n", fields at blanks
        words = split_fields(line)
        if len(words) < 2 or "=" in words[0]:
            continue
        groups: list[dict[str, str]] = []
        current: dict[str, str] = {}
        for w in words:
            if "=" not in w:
                continue
            key, _, value = w.partition("=")
            if key == "src" and "src" in current:
                groups.append(current)
                current = {}
            current[key] = value
        groups.append(current)
        if len(groups) < 2 or "src" not in groups[0] or "src" not in groups[1]:
            continue
        try:
            out.append(ConntrackEntry(words[0], _endpoint_of(groups[0]),
                                      _endpoint_of(groups[1]), line.strip(" \t")))
        except (KeyError, ValueError):
            continue
    return out


# -- the prober ---------------------------------------------------------------------------------


@dataclass
class _Watch:
    sock: socket.socket
    where: str
    iface: str | None
    ns: str
    kind: str
    """``packet`` (AF_PACKET), ``raw4`` or ``raw6`` (raw IP sockets, IPv6 without header)."""
    number: int = 0


class ProbeError(NatlensError):
    """A packet the topology cannot send (no namespace on its input interface)."""


class Prober:
    """Sockets in every namespace of a built topology; ``probe(packet, tag)`` runs one packet."""

    def __init__(self, topology: Topology, *, settle: float = 0.04) -> None:
        self.topology = topology
        self.plan = topology.plan
        self.settle = settle
        self._watches: list[_Watch] = []
        self._senders: dict[str, socket.socket] = {}
        self._macs: dict[str, str] = {}
        self._save4 = tool("iptables-save", self.plan.backend)
        self._save6 = tool("ip6tables-save", self.plan.backend)

    def __enter__(self) -> Prober:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Open the listening and sending sockets."""
        p = self.plan
        links = json.loads(netns.run(["ip", "-j", "link", "show"], ns=p.router))
        self._macs = {e["ifname"]: e.get("address", "") for e in links}
        with netns.entered(p.router):
            for link in p.links:
                if link.kind == "dummy":
                    continue
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
                s.bind((link.name, _ETH_P_ALL))
                self._add(s, "out", link.name, p.router, kind="packet")
            for number in (socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_ICMP):
                self._add(socket.socket(socket.AF_INET, socket.SOCK_RAW, number), "local",
                          None, p.router, kind="raw4")
            for number in (socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_ICMPV6):
                s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, number)
                s.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVPKTINFO, 1)
                self._add(s, "local", None, p.router, kind="raw6", number=number)
            self._senders["raw4"] = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                  socket.IPPROTO_RAW)
            # a local process may send to a broadcast address once it asks to (SO_BROADCAST)
            self._senders["raw4"].setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            self._senders["raw6"] = socket.socket(socket.AF_INET6, socket.SOCK_RAW,
                                                  socket.IPPROTO_RAW)
        for leaf in p.leaves:
            with netns.entered(leaf.ns):
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
                s.bind(("eth0", _ETH_P_ALL))
            self._add(s, "leaf", leaf.link, leaf.ns, kind="packet")
            self._senders[leaf.ns] = s
        if p.nft is not None:
            self._quiet()

    def _quiet(self, *, step: float = 0.4, limit: float = 4.0) -> None:
        """Wait (at most ``limit`` seconds) until the router's nft counters stand still for two
        ``step``-second gaps. Interfaces that just came up send unsolicited MLD reports (RFC
        3810 section 6.1: the first at once, retransmissions at random within the unsolicited
        report interval, 1 s by default), which walk OUTPUT and POSTROUTING; an ``inet`` table
        counts them whatever the probe's family, so they would show as an IPv4 probe's hits."""
        deadline = time.monotonic() + limit
        last, still = self._more_counters(6), 0
        while still < 2 and time.monotonic() < deadline:
            time.sleep(step)
            now = self._more_counters(6)
            still = still + 1 if now == last else 0
            last = now

    def _add(self, s: socket.socket, where: str, iface: str | None, ns: str, *, kind: str,
             number: int = 0) -> None:
        s.setblocking(False)
        self._watches.append(_Watch(s, where, iface, ns, kind, number))

    def close(self) -> None:
        """Close every socket."""
        for w in self._watches:
            w.sock.close()
        for s in self._senders.values():
            s.close()
        self._watches.clear()
        self._senders.clear()

    # -- one probe ------------------------------------------------------------------------------

    def source_of(self, packet: Packet) -> tuple[Leaf | None, str | None]:
        """The leaf that sends ``packet`` and the MAC it sends to (None, None: the router)."""
        if packet.local_origin:
            return None, None
        iface = packet.in_interface
        p = self.plan
        link = p.link(iface or "")
        if link is None or link.kind == "dummy":
            raise ProbeError(f"cannot send {packet!r}: the topology has no interface {iface} "
                             "with addresses")
        on_link = [leaf for leaf in p.leaves if leaf.link == link.name]
        if not on_link:
            raise ProbeError(f"cannot send {packet!r}: no namespace is attached to {iface} "
                             "(a bridge without containers)")
        sender = next((leaf for leaf in on_link if leaf.holds(packet.src)), on_link[0])
        peer = next((leaf for leaf in on_link if leaf.holds(packet.dst) and leaf is not sender),
                    None)
        if peer is not None and link.kind == "bridge":
            return sender, peer.mac
        return sender, self._macs.get(link.name) or link.mac

    def probe(self, packet: Packet, tag: int) -> Observation:
        """Send ``packet`` (tagged ``tag``) and return what the kernel did."""
        p = self.plan
        family = "ipv6" if packet.family == 6 else "ipv4"
        save = self._save6 if packet.family == 6 else self._save4
        leaf, mac = self.source_of(packet)
        netns.run(["conntrack", "-F", "-f", family], ns=p.router, check=False)
        before = netns.run([save, "-c"], ns=p.router)
        before_more = self._more_counters(packet.family)
        self._drain()
        data = build_ip(packet.proto, packet.src, packet.dst, sport=packet.sport,
                        dport=packet.dport, tag=tag)
        if leaf is None:
            sender = self._senders["raw6" if packet.family == 6 else "raw4"]
            address: tuple[str, int] | tuple[str, int, int, int] = (
                (str(packet.dst), 0, 0, 0) if packet.family == 6 else (str(packet.dst), 0))
            with contextlib.suppress(OSError):  # EPERM: dropped in OUTPUT, seen nowhere below
                sender.sendto(data, address)
        else:
            assert mac is not None
            self._senders[leaf.ns].send(build_frame(mac, leaf.mac, data))
        sightings = self._collect(tag)
        counters_text = netns.run([save, "-c"], ns=p.router)
        ct_text = netns.run(["conntrack", "-L", "-f", family], ns=p.router, check=False)
        old = parse_counters(before)
        hits = tuple(Hit(k[0], k[1], k[2], n - old.get(k, 0))
                     for k, n in parse_counters(counters_text).items() if n > old.get(k, 0))
        hits += tuple(Hit(k[0], k[1], k[2], n - before_more.get(k, 0))
                      for k, n in self._more_counters(packet.family).items()
                      if n > before_more.get(k, 0))
        return self._observation(packet, tag, sightings, parse_conntrack(ct_text), hits)

    def _more_counters(self, family: int) -> dict[CounterKey, int]:
        """Counters of the other iptables backend (tables named ``iptables-legacy/filter``)
        and of the nft rules (``nft/inet t``, chain, handle), when the plan loaded them."""
        p = self.plan
        out: dict[CounterKey, int] = {}
        if p.other4 if family == 4 else p.other6:
            save = tool(f"{'ip6tables' if family == 6 else 'iptables'}-save", p.other_backend)
            source = "iptables-nft" if p.other_backend == "nf_tables" else "iptables-legacy"
            for (table, chain, rule), n in parse_counters(
                    netns.run([save, "-c"], ns=p.router)).items():
                out[(f"{source}/{table}", chain, rule)] = n
        if p.nft is not None:
            out.update(nft_counter_hits(netns.run(["nft", "-j", "list", "counters"],
                                                  ns=p.router), p.nft))
        return out

    def _drain(self) -> None:
        for w in self._watches:
            while True:
                try:
                    w.sock.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break

    def _collect(self, tag: int) -> list[Sighting]:
        """Everything seen until ``settle`` seconds after the probe's first trace (a copy of it,
        or an error answering it), or ``2 * settle`` seconds when nothing turns up."""
        seen: list[Sighting] = []
        now = time.monotonic()
        deadline = now + 2 * self.settle
        socks = {w.sock.fileno(): w for w in self._watches}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(list(socks), [], [], left)
            for fd in ready:
                for s in self._read_all(socks[fd]):
                    seen.append(s)
                    if tag in (s.frame.tag, s.frame.error_for):
                        deadline = min(deadline, time.monotonic() + self.settle / 2)
        return seen

    def _read_all(self, w: _Watch) -> list[Sighting]:
        out: list[Sighting] = []
        while True:
            try:
                if w.kind == "raw6":
                    data, anc, _flags, addr = w.sock.recvmsg(65535, 256)
                else:
                    data, addr = w.sock.recvfrom(65535)
                    anc = []
            except (BlockingIOError, InterruptedError):
                return out
            s = self._read(w, data, anc, addr)
            if s is not None:
                out.append(s)

    def _read(self, w: _Watch, data: bytes, anc: list[tuple[int, int, bytes]],
              addr: Any) -> Sighting | None:
        """One datagram of ``w``: a Sighting, or None when it is of no interest."""
        frame: Frame | None
        if w.kind == "packet":
            pkttype = addr[2]
            wanted = _PACKET_OUTGOING if w.where == "out" else _PACKET_HOST
            if pkttype != wanted:
                return None
            frame = parse_ethernet(data)
        elif w.kind == "raw4":
            frame = parse_ethernet(b"\0" * 12 + b"\x08\x00" + data)
        else:
            dst: IPAddress | None = None
            for level, kind, value in anc:
                if level == socket.IPPROTO_IPV6 and kind == _IPV6_PKTINFO and len(value) >= 16:
                    dst = ipaddress.IPv6Address(value[:16])
            if dst is None:
                return None
            src = ipaddress.IPv6Address(str(addr[0]).split("%")[0])
            frame = parse_transport(w.number, src, dst, data)
        if frame is None:
            return None
        return Sighting(w.where, w.iface, w.ns, frame)

    def _observation(self, packet: Packet, tag: int, sightings: list[Sighting],
                     conntrack: list[ConntrackEntry], hits: tuple[Hit, ...]) -> Observation:
        mine = [s for s in sightings if s.frame.kind == "probe" and s.frame.tag == tag]
        errors = [s for s in sightings if s.frame.error_for == tag and s.where != "leaf"]
        local = [s for s in mine if s.where == "local"]
        out = [s for s in mine if s.where == "out"]
        leaf = [s for s in mine if s.where == "leaf"]
        sent = Path.OUTPUT if packet.local_origin else Path.FORWARD
        verdict = Verdict.ACCEPT
        path: Path | None
        final: Sighting | None
        if local:
            path, final = Path.LOCAL, local[0]
            out_iface = "lo" if packet.local_origin else None
        elif out:
            path, final = sent, out[0]
            out_iface = final.iface
        elif leaf:
            path, final = sent, leaf[0]
            out_iface = final.iface
        else:
            verdict = Verdict.REJECT if errors else Verdict.DROP
            path, final, out_iface = None, None, None
        f = final.frame if final else None
        also: list[tuple[Path, str, str, str | None]] = []
        if local and (out or leaf):
            other = (out or leaf)[0]
            also.append((sent, endpoint(other.frame.dst, other.frame.dport),
                         endpoint(other.frame.src, other.frame.sport), other.iface))
        return Observation(
            packet=packet,
            tag=tag,
            sightings=tuple(mine),
            errors=tuple(errors),
            conntrack=tuple(conntrack),
            hits=hits,
            verdict=verdict,
            path=path,
            final_dst=endpoint(f.dst, f.dport) if f else None,
            final_src=endpoint(f.src, f.sport) if f else None,
            out_interface=out_iface,
            also=tuple(also),
            uncounted=self.plan.nft.uncounted if self.plan.nft is not None else frozenset(),
        )
