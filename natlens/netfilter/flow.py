"""The packet as the hooks see it while it moves: addresses after NAT, interfaces, marks, conntrack.

``Flow`` is what matches read and targets rewrite. Conntrack fields follow nf_conntrack: the
*original* tuple is the packet as it was first seen (before any NAT), the connection's status
records whether a destination or source manipulation happened (``--ctstate DNAT``/``SNAT`` in
iptables-extensions(8), conntrack), (the engine sets each NAT manip up once per connection,
``nf_nat_initialized``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from natlens.netfilter.fastcopy import fast_init
from natlens.netfilter.host import Host
from natlens.netfilter.packet import Packet

__all__ = ["Flow", "MatchContext", "ReverseNat"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ReverseNat:
    """The NAT mapping of an existing connection as it applies to a packet of its reply
    direction: ``dst`` is the (address, port) the reply's destination is rewritten to at the
    destination-NAT position (PREROUTING / OUTPUT, priority -100: undoing the original's source
    NAT), ``src`` the (address, port) its source is rewritten to at the source-NAT position
    (INPUT / POSTROUTING, priority +100: undoing the original's destination NAT); None: that
    side was not NATed. The kernel applies it to every packet of the connection from the
    conntrack entry (``nf_nat_inet_fn`` → ``nf_nat_packet`` in ``net/netfilter/nf_nat_core.c``:
    for the reply direction the manip type of the hook is checked against the *other* NAT
    status bit; ``nf_nat_manip_pkt`` in ``net/netfilter/nf_nat_proto.c`` rewrites the
    header), never before raw (-300), conntrack (-200) or mangle (-150)."""

    dst: tuple[IPAddress, int | None] | None = None
    src: tuple[IPAddress, int | None] | None = None
    dst_unknown: str | None = None
    """Set when the original's source NAT took an address the snapshot does not tell (a
    MASQUERADE on an interface whose addresses are unknown): that address in words (``the
    address MASQUERADE took on eth0``). The reply arrives addressed to it, and the chains
    before the NAT step see it (``Flow.dst_unknown``); ``dst`` is what the NAT step restores."""


_TCP_FLAGS = {"new": frozenset({"SYN"}), "established": frozenset({"ACK"})}


@fast_init
@dataclass(frozen=True, slots=True)
class Flow:
    """Mutable-by-copy packet state during a walk (``dataclasses.replace`` makes the next one).

    ``out_known`` is False when the routing decision could not be made from the snapshot (no
    routes): ``-o`` matches are then uncertain. ``ctmark_known`` is False for a packet of an
    existing connection whose connmark the snapshot cannot tell.
    """

    src: IPAddress
    dst: IPAddress
    proto: str
    sport: int | None
    dport: int | None
    icmp_type: int | None
    in_iface: str | None
    out_iface: str | None
    local_origin: bool
    ctstate: str
    mark: int = 0
    ctmark: int = 0
    ctmark_known: bool = True
    out_known: bool = True
    dnat: bool = False
    snat: bool = False
    orig_src: IPAddress | None = None
    orig_dst: IPAddress | None = None
    orig_sport: int | None = None
    orig_dport: int | None = None
    tcp_flags: frozenset[str] | None = None
    """The TCP flags of the packet (SYN for a new connection's first packet, ACK for an
    established one), kept when a NOTRACK makes the conntrack state UNTRACKED; None: unknown."""
    sport_range: tuple[int, int] | None = None
    """Set when a NAT target chose the source port at random: the port lies in this range
    (``sport`` then holds the range's first port and says nothing certain)."""
    dport_range: tuple[int, int] | None = None
    """The same for a destination port chosen at random (DNAT/REDIRECT ``--random``)."""
    out_readings: tuple[tuple[str, bool], ...] = ()
    """While ``out_known`` is False: what the path has assumed of the output interface, each
    ``(NAME, hit)`` (``NAME`` as ``-o`` writes it, ``+`` a prefix wildcard; ``hit``: whether the
    interface matches it), so a later ``-o`` reads the same interface (``Walker._fork``)."""
    reverse_nat: ReverseNat | None = None
    """For a reply of a traced connection: the connection's NAT mapping still to apply (each
    side is cleared once the NAT step of its hook has rewritten the packet)."""
    dst_unknown: str | None = None
    """Set while the destination is an address the snapshot does not tell, in words
    (``ReverseNat.dst_unknown``: ``the address MASQUERADE took on eth0``); ``dst`` then holds
    the address the NAT step will give the packet, and matches on the destination are doubt
    (an address of this host: ``-m addrtype --dst-type LOCAL`` matches)."""

    @classmethod
    def from_packet(cls, packet: Packet) -> Flow:
        """The flow of ``packet`` before the first hook."""
        return cls(
            src=packet.src, dst=packet.dst, proto=packet.proto, sport=packet.sport,
            dport=packet.dport, icmp_type=packet.icmp_type, in_iface=packet.in_interface,
            out_iface=None, local_origin=packet.local_origin, ctstate=packet.state.upper(),
            mark=packet.mark, ctmark_known=packet.state == "new",
            orig_src=packet.src, orig_dst=packet.dst, orig_sport=packet.sport,
            orig_dport=packet.dport,
            tcp_flags=_TCP_FLAGS.get(packet.state) if packet.proto == "tcp" else None,
        )


@dataclass(frozen=True, slots=True)
class MatchContext:
    """Where a rule is evaluated: the host (addresses, bridges), hook and table."""

    host: Host
    hook: str = "PREROUTING"
    table: str = "filter"
    merged_negated_ports: bool | None = False
    """How ``-m tcp/udp ! --sport A ! --dport B`` (single ports) matches: False is iptables(8)'s
    AND of both negations (legacy); True is NOT(sport == A AND dport == B), what iptables-nft
    1.8.x loads (one merged payload compare); None when the backend's behaviour is unknown."""

    before_conntrack: bool | None = None
    """True in a base chain that runs before conntrack (priority < -200 in PREROUTING and
    OUTPUT, ``NF_IP_PRI_CONNTRACK``; a looped-back packet keeps its entry); None: decided by
    the table (raw runs at -300)."""

    def has_conntrack(self, flow: Flow) -> bool:
        """Whether the packet carries a conntrack entry here: not before conntrack's hook
        (``nf_conntrack_in``; the raw table, priority -300) and not once untracked."""
        before = self.table == "raw" if self.before_conntrack is None else self.before_conntrack
        return not before and flow.ctstate != "UNTRACKED"
