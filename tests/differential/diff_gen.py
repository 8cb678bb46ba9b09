"""Random valid iptables rulesets and probe packets for the kernel differential.

Independent of ``natlens.verify.generate``: written from iptables(8), iptables-extensions(8)
and the topology of ``diff_harness`` (router ``ext0`` 10.200.1.1/24, ``int0`` 10.200.2.1/24,
``dmz0`` 10.200.3.1/24, ``lo`` also 10.200.9.1/32; peers .2 on each link; default route via
10.200.1.2). Values are drawn from small pools that the probes also use, so most rules are
reached and many match.

A ``GenRuleset`` keeps its rules as a list per (table, chain) so the minimiser can delete any of
them; every user chain belongs to one built-in chain (its *hook*) and is only jumped to from
that chain or from a user chain of the same hook, so hook-restricted matches and targets
(``-i``/``-o``, DNAT, SNAT, MASQUERADE, REJECT) are always valid (iptables refuses them
otherwise at load time).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["BUILTIN", "GenRuleset", "Probe", "random_probes", "random_ruleset"]

BUILTIN: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

_IN_HOOKS = {"PREROUTING", "INPUT", "FORWARD"}
_OUT_HOOKS = {"FORWARD", "OUTPUT", "POSTROUTING"}

ROUTER = ("10.200.1.1", "10.200.2.1", "10.200.3.1", "10.200.9.1")
PEERS = {"ext0": "10.200.1.2", "int0": "10.200.2.2", "dmz0": "10.200.3.2"}
BROADCAST = {"ext0": "10.200.1.255", "int0": "10.200.2.255", "dmz0": "10.200.3.255"}
REMOTE = ("198.51.100.7", "203.0.113.5")
_NETS = ("10.200.1.0/24", "10.200.2.0/24", "10.200.3.0/24", "10.200.0.0/16", "198.51.100.0/24",
         "10.200.1.2/32", "10.200.2.2/32", "10.200.1.1/32", "10.200.9.1/32", "127.0.0.0/8",
         "10.200.1.3/32", "10.200.2.255/32", "10.200.1.255/32")
_IFACES = ("ext0", "int0", "dmz0", "lo", "int+", "e+", "d+", "ext0+")
PORTS = (22, 53, 80, 443, 1234, 3000, 5000, 8005, 8080, 40000, 40005)
_STATES = ("NEW", "INVALID", "ESTABLISHED", "RELATED", "UNTRACKED", "DNAT", "SNAT")
_ADDRTYPES = ("LOCAL", "UNICAST", "BROADCAST", "MULTICAST")
_DNAT_TO = ("10.200.2.2", "10.200.3.2", "10.200.1.1", "10.200.9.1", "198.51.100.7",
            "10.200.2.1-10.200.2.2", "10.200.2.2-10.200.2.4", "10.200.3.2-10.200.3.3")
_SNAT_TO = ("10.200.2.1", "10.200.1.1", "10.200.3.1", "10.200.9.1", "10.200.1.1-10.200.1.3",
            "10.200.2.1-10.200.2.2")
_PORT_RANGES = ("8000-8010", "2000-2100", "40000-40010", "53", "8080", "1024-65535", "80-90")


@dataclass
class GenRuleset:
    """Policies and rules per table: ``rules[(table, chain)]`` is a list of ``-A`` tails."""

    policies: dict[tuple[str, str], str] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)  # user chains per table
    rules: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def restore_text(self) -> str:
        """The ruleset as iptables-restore input (every table, so a load replaces all)."""
        out: list[str] = []
        for table, builtins in BUILTIN.items():
            out.append(f"*{table}")
            for chain in builtins:
                out.append(f":{chain} {self.policies.get((table, chain), 'ACCEPT')} [0:0]")
            for chain in self.chains.get(table, []):
                out.append(f":{chain} - [0:0]")
            for chain in (*builtins, *self.chains.get(table, [])):
                out.extend(f"-A {chain} {r}" for r in self.rules.get((table, chain), []))
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def rule_ids(self) -> list[tuple[str, str, int]]:
        """Every rule as (table, chain, index)."""
        return [(t, c, i) for (t, c), rs in self.rules.items() for i in range(len(rs))]

    def without(self, gone: set[tuple[str, str, int]]) -> GenRuleset:
        """A copy without the rules in ``gone``."""
        rules = {k: [r for i, r in enumerate(rs) if (k[0], k[1], i) not in gone]
                 for k, rs in self.rules.items()}
        return replace(self, rules=rules)

    def simpler_policies(self) -> list[GenRuleset]:
        """Copies with one DROP policy turned into ACCEPT (for the minimiser)."""
        return [replace(self, policies={**self.policies, key: "ACCEPT"})
                for key, p in self.policies.items() if p != "ACCEPT"]


@dataclass(frozen=True)
class Probe:
    """One packet: ``ingress`` is an interface of the router or ``local``."""

    ingress: str
    src: str
    dst: str
    proto: str
    sport: int
    dport: int

    def to_json(self) -> dict[str, Any]:
        """The ``packets.json`` entry (``l2bcast`` when sent in a broadcast frame)."""
        d: dict[str, Any] = {"ingress": self.ingress, "src": self.src, "dst": self.dst,
                             "proto": self.proto, "sport": self.sport, "dport": self.dport}
        if self.dst in BROADCAST.values() or self.dst == "255.255.255.255":
            d["l2bcast"] = True
        return d


class _Gen:
    def __init__(self, rng: random.Random):
        self.r = rng

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def neg(self, p: float = 0.25) -> str:
        return "! " if self.chance(p) else ""

    def port_spec(self) -> str:
        if self.chance(0.25):
            a, b = sorted(self.r.sample(PORTS, 2))
            return f"{a}:{b}"
        return str(self.r.choice(PORTS))

    def matches(self, table: str, hook: str) -> tuple[str, str | None]:
        """Some match text and the protocol it fixed (or None)."""
        r = self.r
        parts: list[str] = []
        proto: str | None = None
        if self.chance(0.3):
            parts.append(f"{self.neg()}-s {r.choice(_NETS)}")
        if self.chance(0.3):
            parts.append(f"{self.neg()}-d {r.choice(_NETS)}")
        if hook in _IN_HOOKS and self.chance(0.3):
            parts.append(f"{self.neg()}-i {r.choice(_IFACES)}")
        if hook in _OUT_HOOKS and self.chance(0.3):
            parts.append(f"{self.neg()}-o {r.choice(_IFACES)}")
        if self.chance(0.55):
            proto = r.choice(("tcp", "udp", "udp", "tcp", "icmp"))
            parts.append(f"-p {proto}")
            if proto in ("tcp", "udp") and self.chance(0.6):
                if self.chance(0.15):  # the iptables-nft 1.8.x merged pair
                    parts.append(f"-m {proto} ! --sport {r.choice(PORTS)} "
                                 f"! --dport {r.choice(PORTS)}")
                else:
                    opts = []
                    if self.chance(0.5):
                        opts.append(f"{self.neg()}--sport {self.port_spec()}")
                    if self.chance(0.7) or not opts:
                        opts.append(f"{self.neg()}--dport {self.port_spec()}")
                    parts.append(f"-m {proto} " + " ".join(opts))
            elif proto in ("tcp", "udp") and self.chance(0.4):
                kind = r.choice(("--dports", "--sports", "--ports"))
                ports = ",".join(str(p) for p in r.sample(PORTS, r.randint(1, 3)))
                parts.append(f"-m multiport {self.neg(0.2)}{kind} {ports}")
            elif proto == "tcp" and self.chance(0.3):
                parts.append(self.r.choice(("-m tcp --syn", "-m tcp ! --syn",
                                            "-m tcp --tcp-flags SYN,ACK SYN",
                                            "-m tcp --tcp-flags ALL ACK")))
            elif proto == "icmp" and self.chance(0.4):
                parts.append(f"-m icmp {self.neg(0.2)}--icmp-type "
                             f"{r.choice(('echo-request', 'echo-reply', '8'))}")
        for _ in range(r.choice((0, 0, 1, 1, 2))):
            parts.append(self.module(table, hook))
        return " ".join(p for p in parts if p), proto

    def module(self, table: str, hook: str) -> str:
        r = self.r
        kind = r.choice(("addrtype", "conntrack", "state", "mark", "connmark", "iprange",
                         "conntrack", "addrtype", "ctorig", "pkttype"))
        if kind == "pkttype":
            return f"-m pkttype {self.neg()}--pkt-type {r.choice(('unicast', 'broadcast'))}"
        if kind == "addrtype":
            which = r.choice(("--dst-type", "--src-type"))
            limit = ""
            if self.chance(0.2) and hook in ("PREROUTING", "INPUT", "FORWARD"):
                limit = " --limit-iface-in"
            elif self.chance(0.2) and hook in ("OUTPUT", "POSTROUTING", "FORWARD"):
                limit = " --limit-iface-out"
            return f"-m addrtype {self.neg()}{which} {r.choice(_ADDRTYPES)}{limit}"
        if kind in ("conntrack", "state"):
            states = ",".join(r.sample(_STATES, r.randint(1, 2)))
            if kind == "state":
                states = ",".join(s for s in states.split(",") if s not in ("DNAT", "SNAT")) \
                    or "NEW"
                return f"-m state {self.neg()}--state {states}"
            return f"-m conntrack {self.neg()}--ctstate {states}"
        if kind == "ctorig":
            opt = r.choice(("--ctorigdst", "--ctorigsrc", "--ctproto", "--ctreplsrc",
                            "--ctdir"))
            if opt == "--ctproto":
                return f"-m conntrack {self.neg()}--ctproto {r.choice(('tcp', 'udp'))}"
            if opt == "--ctdir":
                return f"-m conntrack --ctdir {r.choice(('ORIGINAL', 'REPLY'))}"
            return f"-m conntrack {self.neg()}{opt} {r.choice(_NETS)}"
        if kind in ("mark", "connmark"):
            value = r.choice(("0x1", "0x5", "0x0", "0x10/0xf0", "0x0/0xf"))
            return f"-m {kind} {self.neg()}--mark {value}"
        which = r.choice(("--src-range", "--dst-range"))
        rng = r.choice(("10.200.1.2-10.200.1.3", "10.200.2.1-10.200.2.3",
                        "198.51.100.0-198.51.100.9", "10.200.1.1-10.200.3.1"))
        return f"-m iprange {self.neg()}{which} {rng}"

    def target(self, table: str, hook: str, proto: str | None, callees: list[str]) -> str:
        r = self.r
        choices: list[str] = ["ACCEPT", "RETURN", "LOG", "MARK", "CONNMARK", "NONE"]
        if table != "nat":
            choices += ["DROP", "DROP"]
        if table == "filter":
            choices.append("REJECT")
        if table == "raw":
            choices.append("NOTRACK")
        if table == "nat":
            if hook in ("PREROUTING", "OUTPUT"):
                choices += ["DNAT", "DNAT", "REDIRECT"]
            if hook in ("POSTROUTING", "INPUT"):
                choices += ["SNAT", "SNAT"]
            if hook == "POSTROUTING":
                choices += ["MASQUERADE"]
            if hook in ("PREROUTING", "POSTROUTING") and self.chance(0.3):
                choices += ["NETMAP"]
        if callees:
            choices += ["JUMP", "JUMP", "GOTO"]
        t = r.choice(choices)
        ported = proto in ("tcp", "udp", "icmp")
        random_flag = " --random" if self.chance(0.15) else ""
        if t == "NONE":
            return ""
        if t in ("JUMP", "GOTO"):
            return f"{'-j' if t == 'JUMP' else '-g'} {r.choice(callees)}"
        if t == "LOG":
            return "-j LOG --log-prefix nl"
        if t == "MARK":
            return f"-j MARK --set-xmark {r.choice(('0x1', '0x5', '0x10/0xf0'))}"
        if t == "CONNMARK":
            how = r.choice(("--set-xmark 0x5/0xffffffff", "--save-mark", "--restore-mark",
                            "--set-xmark 0x1"))
            return f"-j CONNMARK {how}"
        if t == "REJECT":
            how = r.choice(("", " --reject-with tcp-reset", " --reject-with icmp-host-prohibited"))
            if how == " --reject-with tcp-reset" and proto != "tcp":
                how = ""
            return f"-j REJECT{how}"
        if t == "NOTRACK":
            return r.choice(("-j CT --notrack", "-j NOTRACK"))
        if t == "DNAT":
            to = r.choice(_DNAT_TO)
            if ported and self.chance(0.5):
                to += f":{r.choice(_PORT_RANGES)}"
            return f"-j DNAT --to-destination {to}{random_flag}"
        if t == "SNAT":
            to = r.choice(_SNAT_TO)
            if ported and self.chance(0.5):
                to += f":{r.choice(_PORT_RANGES)}"
            persistent = " --persistent" if self.chance(0.1) else ""
            return f"-j SNAT --to-source {to}{random_flag}{persistent}"
        if t == "NETMAP":
            return f"-j NETMAP --to {r.choice(('10.200.2.0/24', '10.200.3.0/24'))}"
        if t == "MASQUERADE":
            ports = f" --to-ports {r.choice(_PORT_RANGES)}" if ported and self.chance(0.5) else ""
            return f"-j MASQUERADE{ports}{random_flag}"
        if t == "REDIRECT":
            ports = f" --to-ports {r.choice(_PORT_RANGES)}" if ported and self.chance(0.5) else ""
            return f"-j REDIRECT{ports}{random_flag}"
        return f"-j {t}"


def random_ruleset(seed: int) -> GenRuleset:
    """A random ruleset over raw, mangle, nat, filter and (sometimes) security."""
    rng = random.Random(seed)
    g = _Gen(rng)
    rs = GenRuleset()
    for table, builtins in BUILTIN.items():
        if table == "security" and not g.chance(0.25):
            continue
        weight = {"raw": 0.5, "mangle": 0.5, "nat": 0.9, "filter": 0.9, "security": 1.0}[table]
        if not g.chance(weight):
            continue
        owners: dict[str, str] = {}
        users: list[str] = []
        for n in range(rng.choice((0, 1, 1, 2, 3))):
            name = f"U{table[0].upper()}{n}"
            users.append(name)
            owners[name] = rng.choice(builtins)
        rs.chains[table] = users
        for chain in builtins:
            if (table != "nat" and g.chance(0.2)) or (table == "nat" and g.chance(0.03)):
                rs.policies[(table, chain)] = "DROP"
        for chain in (*builtins, *users):
            hook = owners.get(chain, chain)
            later = users[users.index(chain) + 1:] if chain in users else list(users)
            callees = [u for u in later if owners[u] == hook]
            rules = []
            for _ in range(rng.choice((0, 1, 2, 2, 3, 4))):
                match, proto = g.matches(table, hook)
                target = g.target(table, hook, proto, callees)
                text = f"{match} {target}".strip()
                if text:
                    rules.append(text)
            if rules:
                rs.rules[(table, chain)] = rules
    return rs


def random_probes(seed: int, n: int) -> list[Probe]:
    """``n`` probe packets (mostly to and through the router, some to its broadcast
    addresses, some sent by the router itself)."""
    rng = random.Random(seed * 7919 + 17)
    out: list[Probe] = []
    for _ in range(n):
        ingress = rng.choice(("ext0", "ext0", "int0", "dmz0", "local"))
        if ingress == "local":
            src = rng.choice((*ROUTER, "127.0.0.1"))
            dst = rng.choice((*ROUTER, *PEERS.values(), *REMOTE, "127.0.0.1"))
            if src == "127.0.0.1" and rng.random() < 0.5:
                dst = "127.0.0.1"
        else:
            peer = PEERS[ingress]
            prefix = peer.rsplit(".", 1)[0]
            src = rng.choice((peer, peer, f"{prefix}.3", *REMOTE))
            dst = rng.choice((*ROUTER, *ROUTER, *PEERS.values(), *REMOTE, "10.200.2.4",
                              BROADCAST[ingress]))
            if dst == src:
                dst = ROUTER[0]
        proto = rng.choice(("tcp", "udp", "udp", "tcp", "icmp"))
        sport = rng.choice((*PORTS, 40000, 40000, 5000))
        dport = rng.choice(PORTS)
        if proto == "icmp":
            dport = 0
        out.append(Probe(ingress, src, dst, proto, sport, dport))
    return out
