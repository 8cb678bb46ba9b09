"""nftables data types of the expressions natlens reads: which type a left-hand side has, and
how its values print and compare.

Types and key names follow nft(8) "PAYLOAD EXPRESSION", "META EXPRESSIONS", "CONNTRACK
EXPRESSIONS" and the data type tables of nft(8) "DATA TYPES" (``ipv4_addr``, ``inet_service``,
``mark``, ``ct_state``...). Only what rendering and evaluation need is here: unknown fields have
type ``None`` (values then print as given and compare as given).
"""

from __future__ import annotations

from natlens.inputs import is_decimal as _decimal
from natlens.nft.jsonvalue import MAPPINGS, Json

__all__ = [
    "CT_STATE_BITS", "CT_STATUS_BITS", "PROTOCOL_NUMBERS", "TCP_FLAG_BITS", "PKTTYPES",
    "NFPROTO", "expr_type", "format_value",
]

PROTOCOL_NUMBERS = {
    "icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "icmpv6": 58, "gre": 47,
    "esp": 50, "ah": 51, "sctp": 132, "udplite": 136, "dccp": 33, "comp": 108,
}
"""inet_proto names (``/etc/protocols``, as nft prints them)."""

CT_STATE_BITS = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
"""``ct state`` bits (kernel ``nf_conntrack_common.h``: NF_CT_STATE_BIT, invalid = 1)."""

CT_STATUS_BITS = {
    "expected": 1, "seen-reply": 2, "assured": 4, "confirmed": 8, "snat": 16, "dnat": 32,
    "dying": 512,
}
TCP_FLAG_BITS = {
    "fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ecn": 0x40,
    "cwr": 0x80,
}
PKTTYPES = {"host": 0, "broadcast": 1, "multicast": 2, "other": 3}
NFPROTO = {"ipv4": 2, "ipv6": 10}

_PAYLOAD_TYPES: dict[tuple[str, str], str] = {
    ("ip", "saddr"): "ipv4_addr", ("ip", "daddr"): "ipv4_addr",
    ("ip", "protocol"): "inet_proto",
    ("ip6", "saddr"): "ipv6_addr", ("ip6", "daddr"): "ipv6_addr",
    ("ip6", "nexthdr"): "inet_proto",
    ("icmp", "type"): "icmp_type", ("icmpv6", "type"): "icmpv6_type",
    ("icmp", "code"): "icmp_code", ("icmpv6", "code"): "icmpv6_code",
    ("tcp", "flags"): "tcp_flag",
    ("ether", "saddr"): "ether_addr", ("ether", "daddr"): "ether_addr",
    ("ether", "type"): "ether_type", ("vlan", "type"): "ether_type",
    ("ip", "dscp"): "dscp", ("ip6", "dscp"): "dscp", ("ip", "ecn"): "ecn", ("ip6", "ecn"): "ecn",
}
for _proto in ("tcp", "udp", "udplite", "sctp", "dccp", "th"):
    _PAYLOAD_TYPES[(_proto, "sport")] = "inet_service"
    _PAYLOAD_TYPES[(_proto, "dport")] = "inet_service"

_META_TYPES = {
    "iifname": "ifname", "oifname": "ifname", "ibrname": "ifname", "obrname": "ifname",
    "ibriport": "ifname", "obriport": "ifname", "bri_iifname": "ifname", "bri_oifname": "ifname",
    "iif": "iface_index", "oif": "iface_index", "l4proto": "inet_proto",
    "nfproto": "nfproto", "protocol": "ether_type", "mark": "mark", "pkttype": "pkt_type",
    "skuid": "uid", "skgid": "gid", "iiftype": "iface_type", "oiftype": "iface_type",
    "secpath": "boolean", "priority": "tc_handle", "nftrace": "integer", "length": "integer",
    "cpu": "integer", "iifgroup": "devgroup", "oifgroup": "devgroup", "cgroup": "integer",
    "day": "day", "hour": "hour", "time": "time", "ipsec": "boolean", "random": "integer",
}
_CT_TYPES = {
    "state": "ct_state", "status": "ct_status", "direction": "ct_dir", "mark": "mark",
    "proto-src": "inet_service", "proto-dst": "inet_service", "l3proto": "nfproto",
    "protocol": "inet_proto", "label": "ct_label", "expiration": "time", "zone": "integer",
    "helper": "string", "event": "ct_event", "id": "integer", "count": "integer",
}


def expr_type(expr: Json, family: str = "ip") -> str | None:
    """The nft data type of a left-hand side (``{"payload": …}``, ``{"meta": …}``, ``{"ct": …}``,
    ``{"fib": …}``, a binary operation over one of them); None when unknown."""
    if not isinstance(expr, MAPPINGS) or len(expr) != 1:
        return None
    ((kind, body),) = expr.items()
    if kind == "payload" and isinstance(body, MAPPINGS):
        return _PAYLOAD_TYPES.get((str(body.get("protocol")), str(body.get("field"))))
    if kind == "meta" and isinstance(body, MAPPINGS):
        return _META_TYPES.get(str(body.get("key")))
    if kind == "ct" and isinstance(body, MAPPINGS):
        key = str(body.get("key"))
        if key in ("saddr", "daddr", "ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr"):
            fam = body.get("family") or (key.split(maxsplit=1)[0] if " " in key else family)
            return "ipv6_addr" if fam == "ip6" else "ipv4_addr" if fam == "ip" else "inet_addr"
        return _CT_TYPES.get(key)
    if kind == "fib" and isinstance(body, MAPPINGS):
        return {"type": "fib_addrtype", "oif": "iface_index", "oifname": "ifname"}.get(
            str(body.get("result")))
    if kind in ("&", "|", "^", "<<", ">>") and isinstance(body, tuple) and body:
        return expr_type(body[0], family)
    if kind == "numgen" or kind in ("jhash", "symhash"):
        return "integer"
    return None


_QUOTED = frozenset({"ifname", "string", "devgroup_name", "iface_index"})


def format_value(dtype: str | None, value: Json) -> str:
    """A constant as ``nft list`` prints it for ``dtype``: ``0x00004000`` for marks, ``"eth0"``
    for interface names, numbers and symbols as they are."""
    if isinstance(value, bool):
        return "exists" if value else "missing"
    if isinstance(value, int):
        if dtype == "mark":
            return f"0x{value & 0xFFFFFFFF:08x}"
        if dtype in ("ct_status", "ct_state", "tcp_flag") and value == 0:
            return "0x0"
        if dtype in ("hex", "raw"):
            return f"0x{value:x}"
        return str(value)
    if isinstance(value, str):
        if dtype in _QUOTED:
            if value.startswith('"') and value.endswith('"') and len(value) > 1:
                return value
            return f'"{value}"'
        if dtype == "mark" and _decimal(value):
            return f"0x{int(value):08x}"
        return value
    return str(value)
