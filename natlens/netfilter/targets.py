"""What a rule's target does to the packet and to the walk. Table-driven, one entry per target.

Semantics from iptables(8) (ACCEPT, DROP, RETURN) and iptables-extensions(8); NAT ranges as
``get_unique_tuple`` in the kernel's net/netfilter/nf_nat_core.c chooses (``_manip``: a port
already in range is kept, an address range is hashed — each address a branch —, a random port is
reported as the range it is drawn from); REDIRECT sends to the
primary address of the incoming interface (127.0.0.1 / ::1 for locally generated packets);
MASQUERADE takes the address the kernel picks for the output interface (``inet_select_addr``,
``Host.masquerade_source``: another device's when it has none, a drop when the host has none);
MARK/CONNMARK ``--set-xmark value/mask``
computes ``(mark & ~mask) ^ value``; NAT targets, ACCEPT, and TPROXY end the table for this hook;
DROP and REJECT end the packet; LOG, NFLOG, TRACE and the other "modify and continue" targets do
not terminate. CT ``--notrack``/NOTRACK makes the packet UNTRACKED (no nat at all). Unknown targets
are kept and reported as uncertain: the walk goes on, and forks a DROP and an ACCEPT branch.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from natlens.model import Rule, Target
from natlens.netfilter.fastcopy import replace
from natlens.netfilter.flow import Flow, MatchContext
from natlens.netfilter.packet import endpoint

__all__ = [
    "TARGETS", "Action", "Effect", "NatRange", "apply_target", "nat_range", "parse_nat_range",
]

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
    alternatives: tuple[tuple[Flow, str], ...] = ()
    """Every flow the target may give when there are several (a NAT address range: the kernel
    picks one by a hash), each with a label naming the choice; ``flow`` is the first."""
    endings: tuple[Action, ...] = ()
    """Other ways the target may end the walk than ``action`` (a target natlens does not know
    may continue, drop or accept: the walk follows ``action`` and forks one branch per ending)."""


Handler = Callable[[Target, Flow, MatchContext], Effect]


@functools.lru_cache(maxsize=65536)
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


@dataclass(frozen=True, slots=True)
class NatRange:
    """A NAT target's range (``struct nf_nat_range2``): addresses, ports, and the base port of
    DNAT's ``PORT-PORT/BASE`` form (``NF_NAT_RANGE_PROTO_OFFSET``); None where not given."""

    addr_lo: IPAddress | None = None
    addr_hi: IPAddress | None = None
    port_lo: int | None = None
    port_hi: int | None = None
    port_base: int | None = None

    @property
    def addresses(self) -> int:
        """How many addresses the range holds (0 without an address)."""
        if self.addr_lo is None or self.addr_hi is None:
            return 0
        return int(self.addr_hi) - int(self.addr_lo) + 1

    def holds_port(self, port: int | None) -> bool:
        """Whether ``port`` is inside the port range (True without a port range)."""
        if self.port_lo is None or self.port_hi is None:
            return True
        return port is not None and self.port_lo <= port <= self.port_hi


@functools.lru_cache(maxsize=65536)
def nat_range(text: str, version: int) -> NatRange:
    """``ADDR[-ADDR][:PORT[-PORT[/BASE]]]`` (``[ADDR]:PORT`` for IPv6) as a ``NatRange``.

    Raises ValueError on a malformed address or port. Results are kept by ``(text, version)``
    (a walk meets the same DNAT targets over and over; a ``NatRange`` is immutable).
    """
    if text.startswith("["):
        addr_text, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif version == 6 or text.count(":") > 1:
        addr_text, port_text = text, ""
    else:
        addr_text, _, port_text = text.partition(":")
    lo = hi = None
    if addr_text:
        first, dash, last = addr_text.partition("-")
        lo = ipaddress.ip_address(first.strip("[]"))
        hi = ipaddress.ip_address(last.strip("[]")) if dash else lo
        if int(hi) < int(lo):
            lo, hi = hi, lo
    port_lo = port_hi = base = None
    if port_text:
        ports, _, base_text = port_text.partition("/")
        first_port, dash, last_port = ports.partition("-")
        port_lo = int(first_port)
        port_hi = int(last_port) if dash else port_lo
        if port_hi < port_lo:
            port_lo, port_hi = port_hi, port_lo
        base = int(base_text) if base_text else None
    return NatRange(lo, hi, port_lo, port_hi, base)


_MAX_ADDRESS_CHOICES = 16


def _random_port_span(rng: NatRange, port: int | None) -> tuple[int, int]:
    """Where ``nf_nat_l4proto_unique_tuple`` draws a random port: the range when given, else
    by the original port's class (1-511, 600-1023, 1024-65535)."""
    if rng.port_lo is not None and rng.port_hi is not None:
        return rng.port_lo, rng.port_hi
    if port is not None and port < 512:
        return 1, 511
    if port is not None and port < 1024:
        return 600, 1023
    return 1024, 65535


def _address_choices(rng: NatRange, current: IPAddress,
                     keep: bool) -> tuple[tuple[IPAddress, ...], str]:
    """The addresses a NAT range may give (``find_best_ips_proto``): the only one, or each of a
    range (the kernel hashes the tuple's addresses to pick one: natlens does not guess which);
    ``keep`` when the current address may stay (source NAT, tuple already in range)."""
    if rng.addr_lo is None or rng.addr_hi is None:
        return (current,), ""
    if keep:
        return (current,), ""
    n = rng.addresses
    if n == 1:
        return (rng.addr_lo,), ""
    base = int(rng.addr_lo)
    if n <= _MAX_ADDRESS_CHOICES:
        picks = tuple(ipaddress.ip_address(base + k) for k in range(n))
        return picks, f"address chosen by a hash of the tuple in {rng.addr_lo}-{rng.addr_hi}"
    picks = (rng.addr_lo, rng.addr_hi)
    return picks, (f"address chosen by a hash of the tuple in {rng.addr_lo}-{rng.addr_hi} "
                   f"({n} addresses: only the first and the last are followed)")


def _manip(name: str, flow: Flow, rng: NatRange, *, destination: bool, random: bool,
           what: str) -> Effect:
    """One NAT manip as ``nf_nat_setup_info`` → ``get_unique_tuple`` does it for the first
    packet of a connection that is alone in the table (nf_nat_core.c):

    * source NAT without ``--random``: the tuple is kept when its address and port are
      already in the range; destination NAT: the port is kept when inside the port range;
    * otherwise the address comes from the range (one address, or a hash: each a branch),
      and a port outside the range becomes the range's first port for destination NAT,
      a random one for source NAT; ``--random``/``--random-fully`` draws at random always;
    * ``PORT-PORT/BASE`` maps the port by its offset from BASE.

    ``what`` names the rule for the notes. ICMP's "port" is the echo id (not modelled).
    """
    old_addr, old_port = (flow.dst, flow.dport) if destination else (flow.src, flow.sport)
    ported = _ported(flow)
    # the ICMP echo id is the "port" of an ICMP tuple, which natlens does not model: with a
    # port range, whether the tuple is already in range is unknown (every address stays open)
    id_unknown = not ported and rng.port_lo is not None
    keep_tuple = (not destination and not random and rng.addr_lo is not None
                  and rng.addr_hi is not None
                  and rng.addr_lo.version == old_addr.version
                  and int(rng.addr_lo) <= int(old_addr) <= int(rng.addr_hi)
                  and not id_unknown and (not ported or rng.holds_port(old_port)))
    addrs, addr_doubt = _address_choices(rng, old_addr, keep_tuple)
    span: tuple[int, int] | None = None
    new_port = old_port
    port_note = ""
    if ported and old_port is not None and not keep_tuple:
        has_ports = rng.port_lo is not None and rng.port_hi is not None
        if rng.port_base is not None and rng.port_lo is not None and rng.port_hi is not None:
            size = rng.port_hi - rng.port_lo + 1
            new_port = rng.port_lo + ((old_port - rng.port_base) & 0xFFFF) % size
        elif random and (has_ports or not destination):
            span = _random_port_span(rng, old_port)
            new_port = span[0]
            if span[0] == span[1]:
                span = None
            else:
                port_note = f"port chosen at random in {span[0]}-{span[1]}"
        elif has_ports and not rng.holds_port(old_port):
            assert rng.port_lo is not None
            assert rng.port_hi is not None
            if destination or rng.port_lo == rng.port_hi:
                new_port = rng.port_lo
            else:
                span = (rng.port_lo, rng.port_hi)
                new_port = rng.port_lo
                port_note = (f"port {old_port} outside {rng.port_lo}-{rng.port_hi}: chosen at "
                             "random in the range")
    flows: list[tuple[Flow, str]] = []
    for addr in addrs:
        # nf_nat_setup_info sets IPS_DST_NAT/IPS_SRC_NAT (--ctstate DNAT/SNAT) only when the
        # mapping changes the tuple: a NAT to the packet's own address and port does not
        changed = (addr, new_port) != (old_addr, old_port) or span is not None
        if destination:
            new = replace(flow, dst=addr, dport=new_port, dport_range=span,
                          dnat=flow.dnat or changed)
        else:
            new = replace(flow, src=addr, sport=new_port, sport_range=span,
                          snat=flow.snat or changed)
        flows.append((new, f"{what} chose {endpoint(addr, new_port, span)}"))
    first = flows[0][0]
    before = endpoint(old_addr, old_port)
    after = endpoint(first.dst if destination else first.src, new_port, span)
    detail = f"{name} {before} -> {after}"
    doubts = "; ".join(d for d in (addr_doubt, port_note) if d)
    if len(addrs) > 1:
        detail += f" (or {', '.join(str(a) for a in addrs[1:])}: {addr_doubt})"
    elif port_note:
        detail += f" ({port_note})"
    return Effect(Action.ACCEPT, first, detail, uncertain=f"{name}: {doubts}" if doubts else None,
                  alternatives=tuple(flows) if len(flows) > 1 else ())


def _other_family(name: str, value: str, version: int, flow: Flow) -> Effect:
    """A NAT target naming an address of the other family than the packet's: iptables refuses
    such a rule (the parser does too), so what the kernel holds is unknown: every ending."""
    return Effect(Action.CONTINUE, flow, f"{name} {value}: not an IPv{version} address",
                  uncertain=f"{name} {value}: an address of the other family for an "
                            f"IPv{version} packet (iptables refuses this rule): it may let the "
                            "packet go on, drop it or accept it (a branch each)",
                  endings=_UNKNOWN_ENDINGS)


def _is_random(target: Target) -> bool:
    return target.get("--random") is not None or target.get("--random-fully") is not None


def _nat(target: Target, flow: Flow, option: str, destination: bool) -> Effect:
    """DNAT (``destination``) or SNAT to ``--to-destination``/``--to-source`` (``_manip``)."""
    opt = target.get(option)
    if opt is None:
        return Effect(Action.ACCEPT, flow, f"{target.name} without {option}",
                      uncertain=f"{target.name} without {option}")
    old_addr = flow.dst if destination else flow.src
    rng = nat_range(opt.value, old_addr.version)
    if rng.addr_lo is not None and rng.addr_lo.version != old_addr.version:
        return _other_family(target.name, opt.value, old_addr.version, flow)
    return _manip(target.name, flow, rng, destination=destination,
                  random=_is_random(target), what=target.name)


def _dnat(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return _nat(target, flow, "--to-destination", destination=True)


def _snat(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    return _nat(target, flow, "--to-source", destination=False)


def _to_ports(target: Target, addr: IPAddress) -> NatRange:
    opt = target.get("--to-ports")
    if opt is None:
        return NatRange(addr, addr)
    low, _, high = opt.value.partition("-")
    return NatRange(addr, addr, int(low), int(high or low))


def _masquerade(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    """MASQUERADE: SNAT to the address the kernel picks for the output interface
    (``Host.masquerade_source``; ``nf_nat_masquerade_ipv4``/``_ipv6`` in
    net/netfilter/nf_nat_masquerade.c). A packet with source 0.0.0.0 is let through untouched;
    when the host has no address to give, the packet is dropped. Without ip-addr.json the
    output interface's own addresses are unknown: the address is then the link route's ``src``
    (``Host.route_source``), assumed and said so, or unknown; never another interface's."""
    out = flow.out_iface
    if out is None:
        return Effect(Action.ACCEPT, flow, "MASQUERADE to the address of an unknown output "
                      "interface", uncertain="MASQUERADE: the output interface is unknown, so is "
                      "the source address it picks")
    if flow.src.version == 4 and int(flow.orig_src or flow.src) == 0:
        return Effect(Action.ACCEPT, flow, "MASQUERADE: source 0.0.0.0, left as it is "
                      "(nf_nat_masquerade_ipv4)")
    host = ctx.host
    picked = host.masquerade_source(out, flow.dst)
    if (picked is None or picked[1] != out) and (not flow.out_known
                                                  or not host.known_addresses):
        # the addresses of ``out`` are not in the snapshot: the kernel takes one of them when
        # it has any, which no other interface's address tells
        guess = host.route_source(out, flow.dst)
        if guess is None:
            return Effect(Action.ACCEPT, flow, f"MASQUERADE to an address of {out} (unknown)",
                          uncertain=f"MASQUERADE: address of {out} unknown (host addresses "
                                    "unknown, no ip-addr.json): the kernel rewrites the source "
                                    f"to an address of {out} (another interface's if it has "
                                    "none); the source shown is the one before")
        addr, route = guess
        effect = _manip("MASQUERADE", flow, _to_ports(target, addr), destination=False,
                        random=_is_random(target), what="MASQUERADE")
        why = (f"MASQUERADE: {addr} assumed the address of {out}: route {route} names it as "
               "source (host addresses unknown, no ip-addr.json)")
        return replace(effect, detail=f"{effect.detail} (assumed address of {out})",
                       uncertain=f"{effect.uncertain}; {why}" if effect.uncertain else why)
    if picked is None:
        return Effect(Action.DROP, flow, f"MASQUERADE: no address to take ({out} has none, nor "
                      "has any other interface; nf_nat_masquerade drops the packet)")
    addr, holder = picked
    effect = _manip("MASQUERADE", flow, _to_ports(target, addr), destination=False,
                    random=_is_random(target), what="MASQUERADE")
    whose = f"address of {out}" if holder == out else \
        f"address of {holder}: {out} has none of its own, inet_select_addr takes another's"
    return replace(effect, detail=f"{effect.detail} ({whose})")


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
    effect = _manip("REDIRECT", flow, _to_ports(target, addr), destination=True,
                    random=_is_random(target), what="REDIRECT")
    return replace(effect, detail=f"{effect.detail} ({why})")


def _netmap(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    opt = target.get("--to")
    if opt is None:
        return Effect(Action.ACCEPT, flow, uncertain="NETMAP without --to")
    net = ipaddress.ip_network(opt.value, strict=False)
    mask = int(net.netmask)
    dst_side = ctx.hook in ("PREROUTING", "OUTPUT")
    old = flow.dst if dst_side else flow.src
    if old.version != net.version:
        return _other_family("NETMAP", opt.value, old.version, flow)
    new_ip = ipaddress.ip_address((int(old) & ~mask & ((1 << net.max_prefixlen) - 1))
                                  | int(net.network_address))
    if dst_side:
        return Effect(Action.ACCEPT, replace(flow, dst=new_ip, dnat=flow.dnat or new_ip != old),
                      f"NETMAP destination {old} -> {new_ip}")
    return Effect(Action.ACCEPT, replace(flow, src=new_ip, snat=flow.snat or new_ip != old),
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
    if not ctx.has_conntrack(flow):  # xt_connmark.c: no ct, nothing to mark or restore from
        return Effect(Action.CONTINUE, flow, "no conntrack entry here: CONNMARK does nothing")

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


def _already_tracked(flow: Flow, ctx: MatchContext) -> bool:
    """A locally generated packet looped back through ``lo`` arrives in PREROUTING with the
    conntrack entry OUTPUT gave it: xt_CT.c ``xt_ct_target`` leaves such a packet alone."""
    return (ctx.hook == "PREROUTING" and flow.local_origin and flow.in_iface == "lo"
            and flow.ctstate != "UNTRACKED")


def _notrack(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    if _already_tracked(flow, ctx):
        return Effect(Action.CONTINUE, flow, "already tracked (looped back): nothing to do")
    return Effect(Action.CONTINUE, replace(flow, ctstate="UNTRACKED"),
                  "untracked: no conntrack, no nat")


def _ct(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    if target.get("--notrack") is not None:
        return _notrack(target, flow, ctx)
    return Effect(Action.CONTINUE, flow)


def _queue(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    """The program reading the queue gives the verdict; with none reading it the kernel drops
    the packet unless ``--queue-bypass`` (iptables-extensions(8) NFQUEUE): ACCEPT, and DROP as
    an ending."""
    return Effect(Action.ACCEPT, flow, "queued to userspace",
                  uncertain=f"-j {target.name}: verdict decided by a userspace program "
                            "(assumed ACCEPT; a branch where it drops the packet)",
                  endings=(Action.DROP,))


def _tproxy(target: Target, flow: Flow, ctx: MatchContext) -> Effect:
    """Delivered to a local transparent socket, or dropped when there is none
    (net/netfilter/xt_TPROXY.c ``tproxy_tg4``: NF_DROP without a socket)."""
    return Effect(Action.ACCEPT, flow, "TPROXY to a local socket",
                  uncertain="-j TPROXY: depends on a local transparent socket (a branch where "
                            "there is none and the packet is dropped)",
                  endings=(Action.DROP,))


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


_UNKNOWN_ENDINGS = (Action.DROP, Action.ACCEPT)


def apply_target(rule: Rule, flow: Flow, ctx: MatchContext) -> Effect:
    """Run ``rule``'s (non-chain) target on ``flow``. A target natlens does not know (or whose
    options it cannot read) goes on, with DROP and ACCEPT as ``endings``: a target returns
    XT_CONTINUE, NF_DROP or NF_ACCEPT (x_tables.h), and which one is not known offline."""
    target = rule.target
    if target is None:
        return Effect(Action.CONTINUE, flow)
    handler = TARGETS.get(target.name)
    if handler is None:
        return Effect(Action.CONTINUE, flow, "target not understood",
                      uncertain=f"-j {target.name}: target not understood: it may let the "
                                "packet go on, drop it or accept it (a branch each)",
                      endings=_UNKNOWN_ENDINGS)
    if "target_options" in rule.unknown:
        effect = handler(target, flow, ctx)
        return replace(effect, uncertain=f"-j {target.name}: options not shown by the listing")
    try:
        return handler(target, flow, ctx)
    except (ValueError, IndexError):
        return Effect(Action.CONTINUE, flow, "options not understood",
                      uncertain=f"-j {target.name}: options not understood: it may let the "
                                "packet go on, drop it or accept it (a branch each)",
                      endings=_UNKNOWN_ENDINGS)
