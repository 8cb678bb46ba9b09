"""The packet a trace follows: where it enters, its addresses, protocol, ports and conntrack state.

A packet either arrives on an interface (``in_interface``: it meets PREROUTING first) or is sent
by a local process (``local_origin``: it meets OUTPUT first), as in the netfilter hook diagram
(netfilter.org "Netfilter hacking HOWTO", section 3). ``state`` is the conntrack state the first
packet of the trace has (iptables-extensions(8), ``conntrack --ctstate``): ``new`` for the first
packet of a connection (the only one the nat table sees), ``established`` or ``related`` later.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from natlens.errors import UsageError, did_you_mean
from natlens.names import check_interface_name
from natlens.services import port_number, protocol_name

__all__ = ["ICMPV6_TYPES", "ICMP_TYPES", "PROTOCOLS", "STATES", "IPAddress", "Packet", "endpoint"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "sctp")
"""Protocols a packet may have (``icmpv6`` only with IPv6 addresses, ``icmp`` only with IPv4)."""

STATES = ("new", "established", "related")

_PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})

ICMP_TYPES = {
    "echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5,
    "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10,
    "time-exceeded": 11, "parameter-problem": 12, "timestamp-request": 13,
    "timestamp-reply": 14, "address-mask-request": 17, "address-mask-reply": 18,
}
"""ICMP type names as ``iptables -p icmp -h`` lists them (iptables-extensions(8), icmp)."""

ICMPV6_TYPES = {
    "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
    "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
    "router-solicitation": 133, "router-advertisement": 134, "neighbour-solicitation": 135,
    "neighbour-advertisement": 136, "redirect": 137,
}


def _address(value: object, what: str) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if not isinstance(value, str):
        raise UsageError(f"packet {what} must be an IP address, not {value!r}")
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        raise UsageError(f"packet {what} {value!r} is not an IP address") from None


def _port(value: object, what: str, proto: str = "tcp") -> int | None:
    """A port given as a number, digits or a service name (``http``: ``/etc/services``, as
    iptables' ``--dport http``; ``natlens.services``)."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
        value = int(value)  # isascii: '²'.isdigit() holds but int() refuses it
    elif isinstance(value, str) and value.strip() and not value.strip().isdigit():
        number = port_number(value, proto)
        if number is None:
            raise UsageError(f"packet {what}: unknown service name {value!r} (not in "
                             f"/etc/services for {proto}; give a port number 0..65535)")
        value = number
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise UsageError(f"packet {what} must be a port number 0..65535, not {value!r}")
    return value


@dataclass(frozen=True, slots=True, init=False)
class Packet:
    """One packet to trace. Addresses accept ``str`` or ``ipaddress`` objects; ports a number,
    digits or a service name (``_port``), kept as numbers. A bad value raises ``UsageError``;
    an ``in_interface`` the kernel would refuse as a device name (``dev_valid_name``, the CLI's
    rule: ``natlens.names.interface_problem``) raises ``InterfaceNameError``, which is a
    ``ValueError`` too.

    >>> Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", dport=8080)
    Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new)
    """

    src: IPAddress
    dst: IPAddress
    proto: str
    in_interface: str | None
    local_origin: bool
    sport: int | None
    dport: int | None
    icmp_type: int | None
    state: str
    mark: int

    def __init__(
        self,
        *,
        src: IPAddress | str,
        dst: IPAddress | str,
        proto: str = "tcp",
        in_interface: str | None = None,
        local_origin: bool = False,
        sport: int | str | None = None,
        dport: int | str | None = None,
        icmp_type: int | str | None = None,
        state: str = "new",
        mark: int | str = 0,
    ) -> None:
        src_ip = _address(src, "source")
        dst_ip = _address(dst, "destination")
        if src_ip.version != dst_ip.version:
            raise UsageError(f"packet mixes address families: {src_ip} -> {dst_ip}")
        proto = protocol_name(proto)  # "TCP", "17", "ipv6-icmp" as iptables -p reads them
        if proto not in PROTOCOLS:
            raise UsageError(f"unknown protocol {proto!r}{did_you_mean(proto, PROTOCOLS)} "
                             f"(one of {', '.join(PROTOCOLS)})")
        if proto == "icmp" and dst_ip.version == 6:
            proto = "icmpv6"
        if proto == "icmpv6" and dst_ip.version == 4:
            raise UsageError("icmpv6 needs IPv6 addresses")
        if local_origin and in_interface is not None:
            raise UsageError("a packet either arrives on an interface or has local origin, "
                             "not both")
        if not local_origin and not in_interface:
            raise UsageError("say where the packet comes from: an input interface or local "
                             "origin")
        if in_interface is not None:  # InterfaceNameError: a UsageError and a ValueError
            check_interface_name(in_interface, "packet input interface")
        sport_n = _port(sport, "source port", proto)
        dport_n = _port(dport, "destination port", proto)
        if proto not in _PORT_PROTOCOLS and (sport_n is not None or dport_n is not None):
            raise UsageError(f"{proto} packets have no ports")
        icmp_n = self._icmp(proto, icmp_type)
        state = state.lower()
        if state not in STATES:
            raise UsageError(f"unknown state {state!r}{did_you_mean(state, STATES)} "
                             f"(one of {', '.join(STATES)})")
        mark_n = self._mark(mark)
        for name, value in (("src", src_ip), ("dst", dst_ip), ("proto", proto),
                            ("in_interface", in_interface), ("local_origin", bool(local_origin)),
                            ("sport", sport_n), ("dport", dport_n), ("icmp_type", icmp_n),
                            ("state", state), ("mark", mark_n)):
            object.__setattr__(self, name, value)

    @staticmethod
    def _icmp(proto: str, icmp_type: int | str | None) -> int | None:
        if proto not in ("icmp", "icmpv6"):
            if icmp_type is not None:
                raise UsageError(f"an ICMP type needs an icmp packet, not {proto}")
            return None
        names = ICMP_TYPES if proto == "icmp" else ICMPV6_TYPES
        if icmp_type is None:
            return names["echo-request"]
        if isinstance(icmp_type, str):
            if icmp_type.isascii() and icmp_type.isdigit() and len(icmp_type) <= 3:
                icmp_type = int(icmp_type)
            elif icmp_type in names:
                return names[icmp_type]
            else:
                raise UsageError(f"unknown {proto} type {icmp_type!r}"
                                 f"{did_you_mean(icmp_type, names)}")
        if not 0 <= icmp_type <= 255:
            raise UsageError(f"ICMP type {icmp_type} out of range 0..255")
        return icmp_type

    @staticmethod
    def _mark(mark: int | str) -> int:
        if isinstance(mark, str):
            try:
                mark = int(mark, 0)
            except ValueError:
                raise UsageError(f"invalid mark {mark!r}") from None
        if not 0 <= mark <= 0xFFFFFFFF:
            raise UsageError(f"mark {mark:#x} out of range (32 bits)")
        return mark

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.dst.version

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``packet`` object of ``trace --format json``)."""
        return {
            "in_interface": self.in_interface,
            "local_origin": self.local_origin,
            "src": str(self.src),
            "dst": str(self.dst),
            "proto": self.proto,
            "sport": self.sport,
            "dport": self.dport,
            "icmp_type": self.icmp_type,
            "state": self.state,
            "mark": self.mark,
        }

    def __repr__(self) -> str:
        where = "local" if self.local_origin else f"in {self.in_interface}"
        return (f"Packet({where}, {self.proto} {endpoint(self.src, self.sport)} -> "
                f"{endpoint(self.dst, self.dport)}, {self.state})")


@functools.lru_cache(maxsize=65536)
def endpoint(ip: IPAddress, port: int | None, span: tuple[int, int] | None = None) -> str:
    """``IP:PORT`` for IPv4, ``[IP]:PORT`` for IPv6 (DNAT's ``--to-destination`` form).

    ``span`` is a port chosen at random by a NAT target: ``IP:LOW-HIGH`` says the port is one
    of that range, never one of them as if certain. Results are kept by value (formatting
    an address costs more than the lookup; every trace formats its endpoints).
    """
    if span is not None and span[0] != span[1]:
        port_text: str | None = f"{span[0]}-{span[1]}"
    elif span is not None:
        port_text = str(span[0])
    else:
        port_text = None if port is None else str(port)
    if port_text is None:
        return str(ip)
    if ip.version == 6:
        return f"[{ip}]:{port_text}"
    return f"{ip}:{port_text}"
