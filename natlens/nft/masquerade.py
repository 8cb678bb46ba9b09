"""A plain nft ``masquerade`` rule read as iptables' ``[-s NET] [-o IFACE] -j MASQUERADE``.

Docker 29's nftables firewall writes one rule per NAT-mode bridge network (moby
``libnetwork/drivers/bridge``, docs ``integration/network/bridge/nftablesdoc``)::

    oifname != "docker0" ip saddr 172.17.0.0/16 counter masquerade comment "MASQUERADE"

which is its iptables rule ``-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE``. This module only
translates the rule's conditions; what they say of the host (the bridge's network) is decided by
the engine (``natlens.netfilter.engine._docker_segment``), for both rule forms.

Semantics: nft(8) "PAYLOAD EXPRESSION" (``ip saddr``/``ip6 saddr``, a prefix or one address),
"META EXPRESSIONS" (``oifname``: ``natlens.nft.outiface.condition``), "NAT STATEMENTS".
"""

from __future__ import annotations

import ipaddress

from natlens.model import Address, Interface
from natlens.nft.model import MAPPINGS, Json, Rule
from natlens.nft.outiface import condition

__all__ = ["masquerade_conditions"]

_NEGATED = {"==": False, "!=": True}


def masquerade_conditions(rule: Rule) -> tuple[Address | None, Interface | None] | None:
    """``(-s condition, -o condition)`` of ``rule`` when it is a plain masquerade: its
    statements are at most one ``ip saddr``/``ip6 saddr`` match (a prefix or an address,
    ``==`` or ``!=``), at most one ``oifname`` match (one name, ``*`` its wildcard), counters,
    and a last ``masquerade``. Any other statement or operand (sets, ranges, ``fib``,
    ``ip daddr``, ports...) gives None: such a rule is not the iptables form."""
    if not rule.statements or rule.statements[-1].kind != "masquerade":
        return None
    source: Address | None = None
    out: Interface | None = None
    for st in rule.statements[:-1]:
        if st.kind == "counter":
            continue
        if st.kind != "match" or not isinstance(st.body, MAPPINGS):
            return None
        negated = _NEGATED.get(str(st.body.get("op")))
        left, right = st.body.get("left"), st.body.get("right")
        if negated is None:
            return None
        if _is_saddr(left) and source is None:
            network = _network(right)
            if network is None:
                return None
            source = Address(network, negated)
        elif _is_oifname(left) and out is None:
            iface = condition(right)
            if iface is None:
                return None
            out = Interface(iface.name, negated)
        else:
            return None
    return source, out


def _is_saddr(left: Json) -> bool:
    """``{"payload": {"protocol": "ip"|"ip6", "field": "saddr"}}``."""
    body = left.get("payload") if isinstance(left, MAPPINGS) else None
    return isinstance(body, MAPPINGS) and body.get("protocol") in ("ip", "ip6") \
        and body.get("field") == "saddr"


def _is_oifname(left: Json) -> bool:
    """``{"meta": {"key": "oifname"}}``."""
    body = left.get("meta") if isinstance(left, MAPPINGS) else None
    return isinstance(body, MAPPINGS) and body.get("key") == "oifname"


def _network(right: Json) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``{"prefix": {"addr": A, "len": N}}`` or ``"A"`` as a network, None for anything else
    (a set, a range, a symbol)."""
    if isinstance(right, MAPPINGS):
        body = right.get("prefix")
        if not isinstance(body, MAPPINGS):
            return None
        text = f"{body.get('addr')}/{body.get('len')}"
    elif isinstance(right, str):
        text = right
    else:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
