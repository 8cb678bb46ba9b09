"""Whether a traced connection can be established: can the reply come back through the same
conntrack entry? (DESIGN.md, trace ``connection``.)

A trace answers for the first packet; the kernel lets some first packets through whose
connection can never complete. ``connection_of`` checks, in this order, for the headline outcome
of a trace of a NEW packet:

* the first packet is dropped: no connection;
* a locally generated packet with a loopback source (``127.0.0.1`` / ``::1``) that OUTPUT's DNAT
  sent off the host: IPv6 never routes ``::1`` off ``lo``; IPv4 drops it as a martian at the
  re-routing after OUTPUT unless ``route_localnet`` is 1 on the output device
  (``ip_route_output_key_hash_rcu`` / ``__mkroute_output``, ``Documentation/networking/
  ip-sysctl.rst`` route_localnet), and with 1 the reply to 127.0.0.1 stays on the peer unless
  POSTROUTING rewrote the source (Docker's ``-m addrtype --src-type LOCAL -j MASQUERADE``). A
  remote packet addressed to 127.0.0.1 that PREROUTING DNATs is routed after the DNAT, normally;
* hairpin without SNAT: a packet DNATed back out of the interface it came in on, source
  unchanged. The destination answers the source directly: a container reaching itself answers
  inside its own namespace; on another link the reply bypasses the host. On a bridge the reply
  passes the host's conntrack only when ``br_netfilter`` hands bridged frames to iptables
  (``net.bridge.bridge-nf-call-iptables=1``);
* delivered to the host itself: a socket must take it (``natlens.netfilter.listeners``; the
  kernel refuses it otherwise, TCP with a RST, UDP with an ICMP port unreachable); when the
  snapshot does not tell the host's sockets (no ``ss.txt``), the connection is unknown;
* the reply itself, simulated as an ESTABLISHED packet from the final destination to the
  final source, as it arrives (``reply_packet``: addressed to what the source NAT took, an
  address the walk reads as unknown when the snapshot does not tell it, until the NAT step
  restores the source), with the connection's mapping
  (``ReverseNat``) applied where the kernel applies it to every packet of the connection: the
  reply's destination is un-SNATed at the NAT step of PREROUTING (or OUTPUT for a locally
  generated reply), priority -100, after raw and mangle; its source is un-DNATed at the NAT
  step of POSTROUTING (or INPUT), priority +100, after filter (``nf_nat_inet_fn`` →
  ``nf_nat_packet`` in net/netfilter/nf_nat_core.c, which for the reply direction checks the
  hook's manip type against the other NAT status bit; ``nf_nat_manip_pkt`` in
  net/netfilter/nf_nat_proto.c): dropped by the rules, or leaving by another interface than
  the one the packet came in on (asymmetric).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Protocol

from natlens.inputs import is_decimal as _decimal
from natlens.netfilter.flow import ReverseNat
from natlens.netfilter.host import Host
from natlens.netfilter.packet import Packet, endpoint
from natlens.netfilter.trace import Connection, Path, Trace, Verdict

__all__ = ["ReverseNat", "Simulate", "connection_of", "reply_packet"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DONE = {Verdict.ACCEPT: "accepted", Verdict.DROP: "dropped", Verdict.REJECT: "rejected"}

_EPHEMERAL = 49152
"""The reply's destination port when the trace gave no source port (start of the IANA dynamic
range)."""


@functools.lru_cache(maxsize=65536)
def _ip_of(endpoint: str) -> IPAddress | None:
    """The address of ``IP``, ``IP:PORT``, ``IP:LOW-HIGH`` or ``[IP]:PORT``; None if none."""
    text = endpoint
    if text.startswith("["):
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _port_of(text: str) -> int | None:
    """The port of an endpoint; the first of a range a NAT target picks from at random."""
    tail = text.rsplit("]:", 1)[-1] if text.startswith("[") else (
        text.split(":", 1)[1] if text.count(":") == 1 else "")
    tail = tail.split("-", 1)[0]
    return int(tail) if _decimal(tail) else None


def reply_packet(trace: Trace) -> tuple[Packet, ReverseNat | None] | None:
    """The reply of the traced packet's connection as it arrives at this host's hooks (from
    the final destination to the final source, both after NAT), with the connection's mapping
    the NAT steps undo on the way (None when nothing was NATed); None when the trace does not
    say where the reply would arrive."""
    packet = trace.packet
    dst_ip = _ip_of(trace.final_dst)
    if dst_ip is None:
        return None
    back_ip = _ip_of(trace.final_src) or packet.src
    sport = _port_of(trace.final_dst)
    dport = packet.sport if packet.sport is not None else (
        _EPHEMERAL if packet.dport is not None else None)
    back_port = _port_of(trace.final_src) if packet.sport is not None else dport
    if packet.proto in ("icmp", "icmpv6"):
        sport = dport = back_port = None
    icmp = "echo-reply" if packet.proto in ("icmp", "icmpv6") else None
    unsnat = (packet.src, dport) if (back_ip, back_port) != (packet.src, dport) else None
    undnat = (packet.dst, packet.dport) if (dst_ip, sport) != (packet.dst, packet.dport) \
        else None
    unknown = _nat_address(trace)
    if unknown is not None:  # addressed to what the source NAT took, restored to the source
        unsnat = (packet.src, dport)
    mapping = ReverseNat(dst=unsnat, src=undnat, dst_unknown=unknown) \
        if unsnat or undnat else None
    if trace.path is Path.LOCAL:
        return Packet(local_origin=True, src=dst_ip, dst=back_ip, proto=packet.proto,
                      sport=sport, dport=back_port, icmp_type=icmp,
                      state="established"), mapping
    if trace.out_interface is None:
        return None
    return Packet(in_interface=trace.out_interface, src=dst_ip, dst=back_ip,
                  proto=packet.proto, sport=sport, dport=back_port, icmp_type=icmp,
                  state="established"), mapping


class Simulate(Protocol):
    """``Simulator.trace``: a packet's trace; ``dst_local`` tells whether its destination is an
    address of the host where the host's addresses are unknown, ``via`` the interface that
    reaches it where the host's routes do not say."""

    def __call__(self, packet: Packet, *, dst_local: bool | None = None,
                 via: str | None = None, reverse_nat: ReverseNat | None = None) -> Trace: ...


def connection_of(trace: Trace, host: Host, simulate: Simulate) -> Connection:
    """Whether the connection of ``trace`` (a NEW packet's trace) can be established, for its
    headline outcome; ``simulate`` traces the reply (an ESTABLISHED packet, whose destination,
    the original source, is local exactly when the original packet was sent by the host)."""
    result = _decide(trace, host, simulate)
    if result.established is False and trace.verdict is Verdict.ACCEPT \
            and trace.rests_on_unseen:
        return Connection(None, f"{result.why}, unless what the input does not show (above) "
                          "rewrites or drops it")
    if trace.branches and len({b.verdict for b in trace.branches}) > 1:
        return Connection(result.established if result.established is False else None,
                          _for_headline(trace, result.why))
    return result


def _for_headline(trace: Trace, why: str) -> str:
    """``why`` (said of the headline outcome) made conditional on it, naming how the trace's
    other branches end: ``if the headline outcome holds (ACCEPT local), the reply ... comes
    back through the same conntrack entry; other branches end in REJECT forward``."""
    head = f"{trace.verdict.value} {trace.path.value}"
    others = dict.fromkeys(f"{b.verdict.value} {b.path.value}" for b in trace.branches)
    others.pop(head, None)  # the caller saw another verdict among the branches
    return f"if the headline outcome holds ({head}), {why}; other branches end in " \
        f"{' or '.join(others)}"


def _decide(trace: Trace, host: Host, simulate: Simulate) -> Connection:
    packet = trace.packet
    if trace.verdict is not Verdict.ACCEPT:
        last = trace.steps[-1] if trace.steps else None
        at = f" ({last.text})" if last is not None and not last.table else ""
        return Connection(False, f"the first packet is {_DONE[trace.verdict]}{at}")
    final_src = _ip_of(trace.final_src)
    final_dst = _ip_of(trace.final_dst)
    out = trace.out_interface
    if packet.local_origin and packet.src.is_loopback and trace.path is Path.OUTPUT \
            and out not in (None, "lo"):
        loopback = _loopback(trace, host, out or "", final_src)
        if loopback is not None:
            return loopback
    if not packet.local_origin and trace.path is Path.FORWARD and out is not None \
            and out == packet.in_interface and final_dst is not None \
            and final_dst != packet.dst:
        hairpin = _hairpin(packet, host, out, final_dst) if final_src == packet.src else (
            _hairpin_port(packet, host, out, final_dst))
        if hairpin is not None:
            return hairpin
    listening = _listening(trace, host)
    if listening is not None and listening[0] is False:
        return Connection(False, f"{listening[1]}: the host answers the first packet with "
                          f"{_REFUSAL[trace.packet.proto]} (connection refused)")
    found = reply_packet(trace)
    if found is None:
        return Connection(None, "where the reply would arrive is not known (no output "
                          "interface)")
    reply, mapping = found
    answer = simulate(reply, dst_local=packet.local_origin, via=packet.in_interface,
                      reverse_nat=mapping)
    verdicts = {b.verdict for b in answer.branches} or {answer.verdict}
    back = endpoint(reply.dst, reply.dport if packet.sport is not None else None)
    said = f"reply {endpoint(reply.src, reply.sport)} -> {back}"
    masked = mapping.dst_unknown if mapping is not None else None
    if masked is not None:  # the reply is addressed to the NAT's address, not to ``back``
        said = f"reply {endpoint(reply.src, reply.sport)} -> {masked} (unknown; de-NATed to " \
            f"{back})"
    if Verdict.ACCEPT not in verdicts:
        last = next((s for s in reversed(answer.steps) if s.table), None)
        by = f" by {last.table}:{last.chain}" + (f"#{last.rule}" if last.rule else " policy") \
            if last is not None else ""
        return Connection(False, f"the {said} is {_DONE[answer.verdict]}{by}")
    if len(verdicts) > 1:
        return Connection(None, f"the {said} may be dropped: {'; '.join(answer.uncertain[:3])}")
    if not packet.local_origin and answer.out_interface not in (None, packet.in_interface) \
            and answer.path is not Path.LOCAL:
        return Connection(None, f"asymmetric route: the {said} leaves via "
                          f"{answer.out_interface}, the packet came in on {packet.in_interface} "
                          "(reverse-path filtering or the peer may drop it)")
    if masked is not None:
        done = Connection(True, f"the reply {endpoint(reply.src, reply.sport)} comes back to "
                          f"{masked} (unknown) through the same conntrack entry, which "
                          f"reverses the source NAT to {back}")
    else:
        done = Connection(True, f"the {said} comes back through the same conntrack entry")
    if listening is not None and listening[0] is None:
        return Connection(None, f"{listening[1]}; if something does, {done.why}")
    return done


_REFUSAL = {"tcp": "a TCP RST", "udp": "an ICMP port unreachable"}
"""What the host sends back for a packet no socket takes (``tcp_v4_send_reset``;
``__udp4_lib_rcv`` → ``icmp_send(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH)``; IPv6 the same)."""


def _listening(trace: Trace, host: Host) -> tuple[bool | None, str] | None:
    """For a TCP or UDP connection delivered to the host: whether a socket takes it
    (``natlens.netfilter.listeners``), and who or why; None for any other trace."""
    packet = trace.packet
    if trace.path is not Path.LOCAL or packet.proto not in _REFUSAL:
        return None
    ip = _ip_of(trace.final_dst)
    tail = trace.final_dst.rsplit(":", 1)[-1]
    if packet.dport is None:
        return None, "no destination port given: whether anything listens is not known"
    if ip is None or not _decimal(tail):  # a port NAT draws at random in a range
        return None, f"the port the connection lands on ({trace.final_dst}) is drawn at " \
            "random: whether anything listens there is not known"
    iface = "lo" if packet.local_origin else packet.in_interface
    if host.listeners is None:
        where = f"{packet.proto} {trace.final_dst}"
        return None, f"whether anything listens on {where} is not known (no ss.txt)"
    return host.listeners.serving(packet.proto, ip, int(tail), iface)


def _nat_address(trace: Trace) -> str | None:
    """The address the connection's source NAT took, as words, when the snapshot does not
    tell it (``_source_nat_unresolved``): ``the address MASQUERADE took on eth0``; None
    otherwise. The reply is addressed to it, the chains before the NAT step of PREROUTING
    see it (``ReverseNat.dst_unknown``), and conntrack rewrites its destination back to the
    source before NAT there (``nf_nat_inet_fn``)."""
    if not _source_nat_unresolved(trace):
        return None
    target = next(s.target for s in reversed(trace.steps)
                  if s.target.upper() in ("MASQUERADE", "SNAT"))
    on = f" on {trace.out_interface}" if trace.out_interface else ""
    return f"the address {target} took{on}"


def _source_nat_unresolved(trace: Trace) -> bool:
    """Whether a source NAT target ran (``MASQUERADE``/``SNAT``, nft ``masquerade``/``snat``)
    but left the source as it was: its address is unknown (no ip-addr.json), so the reply's
    destination as it arrives is too."""
    return _ip_of(trace.final_src) == trace.packet.src and any(
        s.target.upper() in ("MASQUERADE", "SNAT") for s in trace.steps)


def _loopback(trace: Trace, host: Host, out: str, final_src: IPAddress | None,
              ) -> Connection | None:
    packet = trace.packet
    src = packet.src
    if src.version == 6:
        return Connection(False, f"source {src} cannot leave the host via {out}: the kernel "
                          "never routes a loopback address off lo (IPv6 has no route_localnet), "
                          "so the DNATed packet is dropped")
    flags = (host.sysctl_flag(f"net.ipv4.conf.{out}.route_localnet"),
             host.sysctl_flag("net.ipv4.conf.all.route_localnet"))  # IN_DEV_ORCONF
    localnet = True if True in flags else (None if None in flags else False)
    if localnet is not True:
        state = "0" if localnet is False else "not in the snapshot; the kernel default is 0"
        return Connection(False, f"source {src} stays after OUTPUT's DNAT and cannot leave via "
                          f"{out}: the re-routing drops it as a martian unless route_localnet "
                          f"is 1 (it is {state}), before POSTROUTING could rewrite the source")
    if final_src is not None and final_src.is_loopback:
        if any(s.target in ("MASQUERADE", "SNAT") for s in trace.steps):
            return Connection(None, f"route_localnet lets source {src} leave via {out}; "
                              "POSTROUTING rewrites it to an address the snapshot does not tell")
        return Connection(False, f"route_localnet lets source {src} leave via {out}, but no "
                          "SNAT rewrites it: the reply to it stays on the peer's own loopback")
    return None


def _hairpin_port(packet: Packet, host: Host, iface: str, final_dst: IPAddress,
                  ) -> Connection | None:
    """A container reaching itself through the host's DNAT, its source rewritten: with
    br_netfilter the DNATed frame is bridged back out of the port it came in by
    (``br_nf_pre_routing_finish_bridge``), which needs the port's hairpin mode."""
    if final_dst != packet.src or not host.is_bridge(iface):
        return None
    key = "net.bridge.bridge-nf-call-iptables" if packet.src.version == 4 else \
        "net.bridge.bridge-nf-call-ip6tables"
    if host.sysctl_flag(key) is False or host.hairpin_ports is True:
        return None
    said = f"{key}=1" if host.sysctl_flag(key) else f"{key} not in the snapshot"
    if host.hairpin_ports is False:
        return Connection(False, f"{packet.src} reaches itself through the host's DNAT: with "
                          f"br_netfilter ({said}) the frame goes back out of the bridge port it "
                          f"came in by, and the port's hairpin mode is off (dockerd sets it only "
                          "without the userland proxy)")
    return Connection(None, f"{packet.src} reaches itself through the host's DNAT: with "
                      f"br_netfilter ({said}) that needs the bridge port's hairpin mode, which "
                      "the snapshot does not tell")


def _hairpin(packet: Packet, host: Host, iface: str, final_dst: IPAddress,
             ) -> Connection | None:
    if final_dst == packet.src:
        return Connection(False, f"hairpin without SNAT: {packet.src} reaches itself through "
                          "the host's DNAT and answers itself inside its own namespace, never "
                          "through the host's conntrack entry (Docker adds MASQUERADE -s IP -d IP "
                          "for this)")
    if not host.is_bridge(iface):
        return Connection(False, f"hairpin without SNAT: {final_dst} answers {packet.src} "
                          f"directly on {iface}, bypassing the host's conntrack entry")
    key = "net.bridge.bridge-nf-call-iptables" if packet.src.version == 4 else \
        "net.bridge.bridge-nf-call-ip6tables"
    flag = host.sysctl_flag(key)
    if flag is False:
        return Connection(False, f"hairpin without SNAT: {final_dst} answers {packet.src} "
                          f"across bridge {iface}, and {key}=0 keeps the reply away from the "
                          "host's conntrack entry")
    if flag is None:
        return Connection(None, f"hairpin without SNAT: the reply from {final_dst} is bridged "
                          f"straight to {packet.src} on {iface}; it is un-NATed only if "
                          f"br_netfilter passes bridged frames to iptables ({key}=1, which "
                          "dockerd sets; not in the snapshot)")
    return None
