"""Bytes on the wire: build the probe packets and read back what was captured.

Probes are built by hand (Ethernet + IPv4/IPv6 + TCP SYN / UDP / ICMP echo, RFC 791, 8200, 793,
768, 792, 4443) so the packet the kernel sees is exactly the ``Packet`` natlens simulates: any
source address, any destination (even 127.0.0.1 arriving on eth0), chosen ports. Every probe
carries a 32-bit tag (TCP sequence number, or the first bytes of the UDP/ICMP payload) that NAT
does not rewrite, so a captured copy is recognised wherever it turns up.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = ["Frame", "build_frame", "build_ip", "mac_bytes", "parse_ethernet", "parse_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
_MAGIC = b"nlv!"

TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10


def mac_bytes(mac: str) -> bytes:
    """``02:42:ac:11:00:02`` → 6 bytes."""
    return bytes(int(part, 16) for part in mac.split(":"))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _pseudo(src: IPAddress, dst: IPAddress, proto: int, length: int) -> bytes:
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, proto)


def _transport(proto: str, src: IPAddress, dst: IPAddress, *, sport: int | None,
               dport: int | None, tag: int) -> tuple[int, bytes]:
    payload = _MAGIC + struct.pack("!I", tag)
    if proto == "tcp":
        number = 6
        header = struct.pack("!HHIIBBHHH", sport or 0, dport or 0, tag, 0, 5 << 4, TCP_SYN,
                             64240, 0, 0)
        csum = _checksum(_pseudo(src, dst, number, len(header)) + header)
        return number, header[:16] + struct.pack("!H", csum) + header[18:]
    if proto == "udp":
        number = 17
        length = 8 + len(payload)
        header = struct.pack("!HHHH", sport or 0, dport or 0, length, 0)
        csum = _checksum(_pseudo(src, dst, number, length) + header + payload) or 0xFFFF
        return number, header[:6] + struct.pack("!H", csum) + payload
    if proto in ("icmp", "icmpv6"):
        v6 = src.version == 6
        number = 58 if v6 else 1
        kind = 128 if v6 else 8
        body = struct.pack("!BBHHH", kind, 0, 0, tag & 0xFFFF, 1) + payload
        pseudo = _pseudo(src, dst, number, len(body)) if v6 else b""
        csum = _checksum(pseudo + body)
        return number, body[:2] + struct.pack("!H", csum) + body[4:]
    raise ValueError(f"cannot build a {proto} probe")


def build_ip(proto: str, src: IPAddress, dst: IPAddress, *, sport: int | None,
             dport: int | None, tag: int, ttl: int = 64) -> bytes:
    """The IP packet (header included) of a probe."""
    number, body = _transport(proto, src, dst, sport=sport, dport=dport, tag=tag)
    if src.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), tag & 0xFFFF, 0x4000,
                             ttl, number, 0, src.packed, dst.packed)
        csum = _checksum(header)
        return header[:10] + struct.pack("!H", csum) + header[12:] + body
    header = struct.pack("!IHBB16s16s", 6 << 28, len(body), number, ttl, src.packed, dst.packed)
    return header + body


def build_frame(dst_mac: str, src_mac: str, packet: bytes) -> bytes:
    """An Ethernet frame around an IP packet."""
    version = packet[0] >> 4
    ethertype = ETH_P_IP if version == 4 else ETH_P_IPV6
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ethertype) + packet


@dataclass(frozen=True, slots=True)
class Frame:
    """What one captured IP packet says. ``tag`` is the probe tag when the packet is (a copy of)
    a probe; ``error_for`` the tag of the probe an ICMP error or TCP reset answers."""

    proto: str
    src: IPAddress
    dst: IPAddress
    sport: int | None
    dport: int | None
    tag: int | None = None
    error_for: int | None = None
    kind: str = "other"
    """``probe``, ``reset`` (TCP RST), ``icmp-error`` or ``other``."""


def parse_ethernet(frame: bytes) -> Frame | None:
    """Read an Ethernet frame (IPv4/IPv6 only; VLAN tags are not expected here)."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype not in (ETH_P_IP, ETH_P_IPV6):
        return None
    return parse_ip(frame[14:])


def _embedded_tag(proto: int, data: bytes) -> int | None:
    """The probe tag inside the IP packet quoted by an ICMP error."""
    inner = parse_ip(data, quoted=True)
    if inner is None or inner.tag is None:
        return None
    return inner.tag


def parse_ip(packet: bytes, *, quoted: bool = False) -> Frame | None:
    """Read an IP packet (header included); ``quoted``: the truncated copy in an ICMP error."""
    if not packet:
        return None
    version = packet[0] >> 4
    src: IPAddress
    dst: IPAddress
    if version == 4:
        if len(packet) < 20:
            return None
        ihl = (packet[0] & 0x0F) * 4
        number = packet[9]
        src = ipaddress.IPv4Address(packet[12:16])
        dst = ipaddress.IPv4Address(packet[16:20])
        body = packet[ihl:]
    elif version == 6:
        if len(packet) < 40:
            return None
        number = packet[6]
        src = ipaddress.IPv6Address(packet[8:24])
        dst = ipaddress.IPv6Address(packet[24:40])
        body = packet[40:]
    else:
        return None
    return parse_transport(number, src, dst, body, quoted=quoted)


def parse_transport(number: int, src: IPAddress, dst: IPAddress, body: bytes, *,
                    quoted: bool = False) -> Frame | None:
    """Read the transport header of a packet whose addresses are known."""
    if number == 6 and len(body) >= 14:
        sport, dport, seq, ack = struct.unpack("!HHII", body[:12])
        flags = body[13] if len(body) > 13 else 0
        if quoted or (flags & TCP_SYN and not flags & TCP_ACK):
            return Frame("tcp", src, dst, sport, dport, tag=seq, kind="probe")
        if flags & TCP_RST:
            return Frame("tcp", src, dst, sport, dport, error_for=(ack - 1) & 0xFFFFFFFF,
                         kind="reset")
        return Frame("tcp", src, dst, sport, dport)
    if number == 6 and quoted and len(body) >= 8:
        sport, dport, seq = struct.unpack("!HHI", body[:8])
        return Frame("tcp", src, dst, sport, dport, tag=seq, kind="probe")
    if number == 17 and len(body) >= 8:
        sport, dport = struct.unpack("!HH", body[:4])
        payload = body[8:]
        if payload[:4] == _MAGIC and len(payload) >= 8:
            return Frame("udp", src, dst, sport, dport, tag=struct.unpack("!I", payload[4:8])[0],
                         kind="probe")
        return Frame("udp", src, dst, sport, dport)
    if number in (1, 58) and len(body) >= 8:
        proto = "icmp" if number == 1 else "icmpv6"
        kind, _code = body[0], body[1]
        echo = 8 if number == 1 else 128
        errors = (3, 11, 12) if number == 1 else (1, 2, 3, 4)
        if kind == echo:
            payload = body[8:]
            tag = (struct.unpack("!I", payload[4:8])[0]
                   if payload[:4] == _MAGIC and len(payload) >= 8 else None)
            return Frame(proto, src, dst, None, None, tag=tag,
                         kind="probe" if tag is not None else "other")
        if kind in errors and not quoted:
            return Frame(proto, src, dst, None, None, error_for=_embedded_tag(number, body[8:]),
                         kind="icmp-error")
        return Frame(proto, src, dst, None, None)
    return Frame("ip", src, dst, None, None)
