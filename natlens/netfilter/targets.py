"""What a rule's target does to the packet and to the walk. Table-driven, one entry per target.

Semantics from iptables(8) (ACCEPT, DROP, RETURN) and iptables-extensions(8): DNAT/SNAT take the
first address and port of a range and keep the port when none is given; REDIRECT sends to the
primary address of the incoming interface (127.0.0.1 / ::1 for locally generated packets);
MASQUERADE takes the address of the output interface; MARK/CONNMARK ``--set-xmark value/mask``
computes ``(mark & ~mask) ^ value``; NAT targets, ACCEPT, and TPROXY end the table for this hook;
DROP and REJECT end the packet; LOG, NFLOG, TRACE and the other "modify and continue" targets do
not terminate. CT ``--notrack``/NOTRACK makes the packet UNTRACKED (no nat at all). Unknown targets
are kept and reported as uncertain, treated as non-terminating.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from natlens.model import Rule, Target
from natlens.netfilter.flow import Flow, MatchContext
from natlens.netfilter.packet import endpoint

__all__ = ["TARGETS", "Action", "Effect", "apply_target", "parse_nat_range"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Action(str, Enum):
    """What the walk does after a target ran."""

    CONTINUE = "continue"  # next rule
    ACCEPT = "accept"  # this table is done for this hook
    DROP = "drop"
    REJECT = "reject"
    RETURN = "return"


@dataclass(frozen=True, slots=True)
class Effect:
    """A target's result: the action, the (possibly rewritten) flow, a note and any doubt."""

    action: Action
    flow: Flow
    detail: str = ""
    uncertain: str | None = None


Handler = Callable[[Target, Flow, MatchContext], Effect]


def parse_nat_range(text: str, version: int) -> tuple[IPAddress | None, int | None, str]:
    """``ADDR[-ADDR][:PORT[-PORT]]`` (``[ADDR]:PORT`` for IPv6) → first address, first port.

    The third element says what was left out (``"range 10.0.0.1-10.0.0.3"``) or is empty.
    """
    if text.startswith("["):
        addr_text, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif version == 6 or text.count(":") > 1:
        addr_text, port_text = text, ""
    else:
        addr_text, _, port_text = text.partition(":")
    notes: list[str] = []
    addr: IPAddress | None = None
    if addr_text:
        first, dash, _ = addr_text.partition("-")
        addr = ipaddress.ip_address(first.strip("[]"))
        if dash:
            notes.append(f"address range {addr_text}: first address taken")
    port: int | None = None
    if port_text:
        first_port, dash, _ = port_text.split("/")[0].partition("-")
        port = int(first_port)
        if dash:
            notes.append(f"port range {port_text}: first port taken")
    return addr, port, "; ".join(notes)


def _ported(flow: Flow) -> bool:
    return flow.proto in ("tcp", "udp", "sctp")


def _accept(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return Effect(Action.ACCEPT, flow)


def _drop(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return Effect(Action.DROP, flow)


def _return(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return Effect(Action.RETURN, flow)


def _reject(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    how = target.get("--reject-with")
    return Effect(Action.REJECT, flow, f"reject with {how.value}" if how else "")


def _continue(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return Effect(Action.CONTINUE, flow)


def _log(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    prefix = target.get("--log-prefix") or target.get("--nflog-prefix")
    return Effect(Action.CONTINUE, flow, f"logged {prefix.value!r}" if prefix else "logged")


def _nat(target: Target, flow: Flow, option: str, destination: bool) -> Effect:
    """DNAT (``destination``) or SNAT: rewrite one side of the flow to the range's first
    address and port (``nf_nat_setup_info`` picks within the range; natlens shows the first)."""
    opt = target.get(option)
    if opt is None:
        return Effect(Action.ACCEPT, flow, f"{target.name} without {option}",
                      uncertain=f"{target.name} without {option}")
    old_addr, old_port = (flow.dst, flow.dport) if destination else (flow.src, flow.sport)
    addr, port, note = parse_nat_range(opt.value, old_addr.version)
    new_addr = addr if addr is not None else old_addr
    new_port = port if port is not None and _ported(flow) else old_port
    if destination:
        new = replace(flow, dst=new_addr, dport=new_port, dnat=True)
    else:
        new = replace(flow, src=new_addr, sport=new_port, snat=True)
    detail = (f"{target.name} {endpoint(old_addr, old_port)} -> "
              f"{endpoint(new_addr, new_port)}")
    return Effect(Action.ACCEPT, new, f"{detail} ({note})" if note else detail)


def _dnat(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return _nat(target, flow, "--to-destination", destination=True)


def _snat(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return _nat(target, flow, "--to-source", destination=False)


def _to_ports(target: Target, flow: Flow, current: int | None) -> int | None:
    opt = target.get("--to-ports")
    if opt is None or not _ported(flow):
        return current
    return int(opt.value.split("-")[0])


def _masquerade(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    addr = ctx.host.source_address(flow.out_iface, flow.dst)
    if addr is None:
        if not flow.out_known or not ctx.host.known_addresses:
            iface = flow.out_iface or "the output interface"
            return Effect(Action.ACCEPT, flow, "MASQUERADE to an unknown address",
                          uncertain=f"MASQUERADE: address of {iface} unknown")
        return Effect(Action.DROP, flow, f"MASQUERADE: {flow.out_iface} has no address")
    port = _to_ports(target, flow, flow.sport)
    before = endpoint(flow.src, flow.sport)
    new = replace(flow, src=addr, sport=port, snat=True)
    return Effect(Action.ACCEPT, new, f"MASQUERADE {before} -> {endpoint(addr, port)} "
                                      f"(address of {flow.out_iface})")


def _redirect(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    version = flow.dst.version
    if flow.local_origin and flow.in_iface is None:
        addr: IPAddress | None = ipaddress.ip_address("127.0.0.1" if version == 4 else "::1")
        why = "locally generated"
    else:
        addr = ctx.host.primary_address(flow.in_iface, version)
        why = f"primary address of {flow.in_iface}"
    if addr is None:
        if not ctx.host.known_addresses:
            return Effect(Action.ACCEPT, flow, "REDIRECT to an unknown address",
                          uncertain=f"REDIRECT: address of {flow.in_iface} unknown")
        return Effect(Action.DROP, flow, f"REDIRECT: {flow.in_iface} has no address")
    port = _to_ports(target, flow, flow.dport)
    before = endpoint(flow.dst, flow.dport)
    new = replace(flow, dst=addr, dport=port, dnat=True)
    return Effect(Action.ACCEPT, new, f"REDIRECT {before} -> {endpoint(addr, port)} ({why})")


def _netmap(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    opt = target.get("--to")
    if opt is None:
        return Effect(Action.ACCEPT, flow, uncertain="NETMAP without --to")
    net = ipaddress.ip_network(opt.value, strict=False)
    mask = int(net.netmask)
    dst_side = ctx.hook in ("PREROUTING", "OUTPUT")
    old = flow.dst if dst_side else flow.src
    if old.version != net.version:
        return Effect(Action.ACCEPT, flow)
    new_ip = ipaddress.ip_address((int(old) & ~mask & ((1 << net.max_prefixlen) - 1))
                                  | int(net.network_address))
    if dst_side:
        return Effect(Action.ACCEPT, replace(flow, dst=new_ip, dnat=True),
                      f"NETMAP destination {old} -> {new_ip}")
    return Effect(Action.ACCEPT, replace(flow, src=new_ip, snat=True),
                  f"NETMAP source {old} -> {new_ip}")


def _mark_value(target: Target, current: int) -> tuple[int, str] | None:
    """Apply MARK-style ``--set-xmark/--set-mark/--and/--or/--xor-mark`` to ``current``."""
    for name in ("--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark"):
        opt = target.get(name)
        if opt is None:
            continue
        value_text, _, mask_text = opt.value.partition("/")
        value = int(value_text, 0)
        mask = int(mask_text, 0) if mask_text else 0xFFFFFFFF
        if name == "--set-xmark":
            new = (current & ~mask & 0xFFFFFFFF) ^ value
        elif name == "--set-mark":
            new = (current & ~mask & 0xFFFFFFFF) | value
        elif name == "--and-mark":
            new = current & value
        elif name == "--or-mark":
            new = current | value
        else:
            new = current ^ value
        return new & 0xFFFFFFFF, f"{name} {opt.value}"
    return None


def _mark(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    result = _mark_value(target, flow.mark)
    if result is None:
        return Effect(Action.CONTINUE, flow, uncertain="MARK options not understood")
    new, _ = result
    return Effect(Action.CONTINUE, replace(flow, mark=new), f"mark {flow.mark:#x} -> {new:#x}")


def _connmark(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    def mask(name: str) -> int:
        opt = target.get(name) or target.get("--mask")
        return int(opt.value, 0) if opt is not None else 0xFFFFFFFF

    if target.get("--save-mark") is not None:
        nf, ct = mask("--nfmask"), mask("--ctmask")
        new = ((flow.ctmark & ~ct) ^ (flow.mark & nf)) & 0xFFFFFFFF
        if not flow.ctmark_known and ct != 0xFFFFFFFF:
            return Effect(Action.CONTINUE, flow, uncertain="CONNMARK --save-mark: connmark of "
                          "the existing connection unknown")
        return Effect(Action.CONTINUE, replace(flow, ctmark=new, ctmark_known=True),
                      f"connmark {flow.ctmark:#x} -> {new:#x} (saved from mark)")
    if target.get("--restore-mark") is not None:
        if not flow.ctmark_known:
            return Effect(Action.CONTINUE, flow, uncertain="CONNMARK --restore-mark: connmark "
                          "of the existing connection unknown")
        nf, ct = mask("--nfmask"), mask("--ctmask")
        new = ((flow.mark & ~nf) ^ (flow.ctmark & ct)) & 0xFFFFFFFF
        return Effect(Action.CONTINUE, replace(flow, mark=new),
                      f"mark {flow.mark:#x} -> {new:#x} (restored from connmark)")
    result = _mark_value(target, flow.ctmark)
    if result is None:
        return Effect(Action.CONTINUE, flow, uncertain="CONNMARK options not understood")
    new, _ = result
    set_all = target.get("--set-xmark") is not None and \
        target.get("--set-xmark").value.endswith("/0xffffffff")  # type: ignore[union-attr]
    known = flow.ctmark_known or set_all
    return Effect(Action.CONTINUE, replace(flow, ctmark=new, ctmark_known=known),
                  f"connmark {flow.ctmark:#x} -> {new:#x}")


def _notrack(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return Effect(Action.CONTINUE, replace(flow, ctstate="UNTRACKED"),
                  "untracked: no conntrack, no nat")


def _ct(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    if target.get("--notrack") is not None:
        return _notrack(target, flow, ctx)
    return Effect(Action.CONTINUE, flow)


def _queue(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return Effect(Action.ACCEPT, flow, "queued to userspace",
                  uncertain=f"-j {target.name}: verdict decided by a userspace program "
                            "(assumed ACCEPT)")


def _tproxy(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return Effect(Action.ACCEPT, flow, "TPROXY to a local socket",
                  uncertain="-j TPROXY: depends on a local transparent socket")


TARGETS: dict[str, Handler] = {
    "ACCEPT": _accept,
    "DROP": _drop,
    "RETURN": _return,
    "REJECT": _reject,
    "DNAT": _dnat,
    "SNAT": _snat,
    "MASQUERADE": _masquerade,
    "REDIRECT": _redirect,
    "NETMAP": _netmap,
    "MARK": _mark,
    "CONNMARK": _connmark,
    "CT": _ct,
    "NOTRACK": _notrack,
    "LOG": _log,
    "NFLOG": _log,
    "ULOG": _log,
    "TRACE": _continue,
    "TCPMSS": _continue,
    "CHECKSUM": _continue,
    "CLASSIFY": _continue,
    "DSCP": _continue,
    "TOS": _continue,
    "TTL": _continue,
    "HL": _continue,
    "SET": _continue,
    "AUDIT": _continue,
    "SECMARK": _continue,
    "CONNSECMARK": _continue,
    "IDLETIMER": _continue,
    "LED": _continue,
    "QUEUE": _queue,
    "NFQUEUE": _queue,
    "TPROXY": _tproxy,
}
"""Supporting a target is one entry here (plus its golden cases)."""


def apply_target(rule: Rule, flow: Flow, ctx: MatchContext) -> Effect:
    """Run ``rule``'s (non-chain) target on ``flow``."""
    target = rule.target
    if target is None:
        return Effect(Action.CONTINUE, flow)
    handler = TARGETS.get(target.name)
    if handler is None:
        return Effect(Action.CONTINUE, flow,
                      uncertain=f"-j {target.name}: target not understood (assumed to continue)")
    if "target_options" in rule.unknown:
        effect = handler(target, flow, ctx)
        return replace(effect, uncertain=f"-j {target.name}: options not shown by the listing")
    try:
        return handler(target, flow, ctx)
    except (ValueError, IndexError):
        return Effect(Action.CONTINUE, flow,
                      uncertain=f"-j {target.name}: options not understood")
