"""Rules Docker left behind: for a network that no longer exists (kind ``stale``), or for a
container that was recreated (kind ``shadowed``).

Docker masquerades each bridge network's traffic leaving by another interface with
``-A POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE``. Once the bridge is gone (dockerd with
``--bridge=none`` or ``--iptables=false`` later, a removed network whose rules stayed), ``! -o
BRIDGE`` matches every interface: the rule rewrites the source of any traffic from SUBNET, which
may now be a real, routed client network (kubernetes/kubernetes#89869).

When a container is recreated and the old DNAT stays (a daemon crash, moby#15151), the old rule
sits above the new one with the same conditions: every packet for the published port takes the
dead address and the live container's port is lost. That is decided on the rule text alone, so
it holds for a listing whose interfaces or host names are unknown.
"""

from __future__ import annotations

from collections.abc import Iterator

from natlens.audit._docker_view import docker_view
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, delete_spec
from natlens.inputs import is_decimal
from natlens.model import Family, Rule, TableName
from natlens.netfilter.packet import endpoint
from natlens.serialize import rule_to_save

__all__ = ["check_dead_dnat_first", "check_leftover_masquerade"]


def _conditions(rule: Rule) -> str:
    """The rule's text without its target (what it matches)."""
    text = rule_to_save(rule, counters=False)
    return text.split(" -j ", 1)[0].split(" -g ", 1)[0]


def check_dead_dnat_first(ctx: AuditContext) -> Iterator[Finding]:
    """A DNAT to an address no container holds, above a DNAT with the same conditions to a
    running container's published port (kind ``shadowed``, high: that port never reaches its
    container).
    """
    view = docker_view(ctx)
    if view is None:
        return
    for family in (4, 6):
        fam = Family.IPV4 if family == 4 else Family.IPV6
        nat = view.ruleset(family).get(TableName.NAT)
        if nat is None:
            continue
        for chain in nat.chains:
            dead: dict[str, tuple[int, Rule]] = {}
            # dead DNATs whose conditions are not in ``dead`` yet: written out (rule_to_save)
            # only when a DNAT to a container follows them in the chain
            pending: list[tuple[int, Rule]] = []
            for index, rule in enumerate(chain.rules, 1):
                dest = view.dnat(rule, family) if rule.target_name == "DNAT" else None
                if dest is None:
                    continue
                ip, port = dest
                holder = view.holder(ip)
                if holder is None and not view.host.is_local(ip):
                    pending.append((index, rule))
                    continue
                if holder is None:
                    continue
                for earlier in pending:
                    dead.setdefault(_conditions(earlier[1]), earlier)
                pending.clear()
                first = dead.get(_conditions(rule))
                if first is None:
                    continue
                old_index, old = first
                old_ip, old_port = view.dnat(old, family) or (ip, port)
                dport = rule.option("--dport")
                proto = rule.protocol.name if rule.protocol is not None else None
                yield Finding(
                    kind="shadowed", severity=Severity.HIGH,
                    message=(f"{holder}'s published port ({proto or 'all'}/"
                             f"{dport.value if dport else '*'} to {endpoint(ip, port)}) is "
                             f"caught first by nat {chain.name} #{old_index}, a DNAT with the "
                             f"same conditions to {endpoint(old_ip, old_port)}, which no "
                             f"container holds: its own DNAT #{index} never applies"),
                    proto=proto, container=holder,
                    host_port=int(dport.value) if dport and is_decimal(dport.value) else None,
                    rule=RuleRef.of(old, TableName.NAT, old_index, fam),
                    related=(RuleRef.of(rule, TableName.NAT, index, fam),),
                    fix=command(delete_spec(RuleRef.of(old, TableName.NAT, old_index, fam))),
                )


def check_leftover_masquerade(ctx: AuditContext) -> Iterator[Finding]:
    """A ``-s NET ! -o IFACE -j MASQUERADE`` (or SNAT) in nat POSTROUTING whose interface the
    host does not have (``ip-addr.json`` known) and whose network no Docker network holds:
    high when a route sends NET's traffic through a non-bridge interface (real clients are
    rewritten), medium otherwise.
    """
    snap = ctx.snapshot
    if snap.addresses is None or snap.networks is None:
        return  # without the host's interfaces and Docker's networks nothing is left over
    host = snap.host
    inventory = snap.inventory
    docker_subnets = [s for n in (inventory.networks if inventory is not None else ())
                      for s in n.subnets]
    for rs in ctx.rulesets():
        nat = rs.get(TableName.NAT)
        post = nat.get("POSTROUTING") if nat is not None else None
        if post is None:
            continue
        for index, rule in enumerate(post.rules, 1):
            src, out = rule.source, rule.out_interface
            if rule.target_name not in ("MASQUERADE", "SNAT") or src is None or src.negated \
                    or out is None or not out.negated or out.name.endswith("+") \
                    or host.knows(out.name):
                continue
            if any(s.version == src.network.version and s.overlaps(src.network)
                   for s in docker_subnets):
                continue
            routes = host.routes if src.network.version == 4 else host.routes6
            clients = [r for r in routes if r.network.prefixlen > 0 and r.dev is not None
                       and r.network.overlaps(src.network) and not host.is_bridge(r.dev)]
            ref = RuleRef.of(rule, TableName.NAT, index, rs.family)
            real = (f"; {', '.join(str(r.network) for r in clients)} is routed via "
                    f"{', '.join(sorted({r.dev or '' for r in clients}))}, so real clients' "
                    "connections are rewritten") if clients else ""
            yield Finding(
                kind="stale", severity=Severity.HIGH if clients else Severity.MEDIUM,
                message=(f"{rule.target_name} for {src.text} ! -o {out.name}: the host has no "
                         f"interface {out.name} and no Docker network holds {src.text} (a "
                         f"leftover of a removed Docker bridge), so '! -o {out.name}' matches "
                         f"every interface and the rule rewrites the source of all traffic "
                         f"from {src.text}{real}"),
                rule=ref,
                fix=command(delete_spec(ref)),
            )
