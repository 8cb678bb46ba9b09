"""Service names and protocol numbers as iptables reads them (natlens.services): from
/etc/services and /etc/protocols, with the bundled table where the system has none."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from natlens import services
from natlens.netfilter import Packet


@pytest.mark.parametrize(("text", "name"), [
    ("tcp", "tcp"), ("TCP", "tcp"), ("6", "tcp"), ("17", "udp"), ("Udp", "udp"),
    ("1", "icmp"), ("58", "icmpv6"), ("ipv6-icmp", "icmpv6"), ("IPV6-ICMP", "icmpv6"),
    ("132", "sctp"), ("47", "47"),
])
def test_protocol_name(text: str, name: str) -> None:
    assert services.protocol_name(text) == name


@pytest.mark.parametrize(("text", "proto", "port"), [
    ("http", "tcp", 80), ("HTTPS", "tcp", 443), ("domain", "udp", 53), ("22", "tcp", 22),
    ("no-such-service", "tcp", None),
])
def test_port_number(text: str, proto: str, port: int | None) -> None:
    assert services.port_number(text, proto) == port


def test_bundled_table_without_etc_services(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str, proto: str) -> int:
        raise OSError("service/proto not found")

    monkeypatch.setattr(socket, "getservbyname", missing)
    assert services.port_number("http-alt", "tcp") == 8080
    assert services.port_number("postgresql", "tcp") == 5432
    assert services.port_number("gopher", "tcp") is None


def test_etc_protocols_aliases(tmp_path: Path) -> None:
    table = tmp_path / "protocols"
    table.write_text("# comment\nudp\t17\tUDP\t\t# user datagram protocol\nbogus\n")
    assert services._etc_protocols(table) == {"udp": 17}
    assert services._etc_protocols(tmp_path / "missing") == {}


def test_packet_takes_names_and_numbers() -> None:
    packet = Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", proto="17",
                    dport="domain", sport="ntp")
    assert (packet.proto, packet.dport, packet.sport) == ("udp", 53, 123)
