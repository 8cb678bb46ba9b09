"""Other inputs of the kinds of ``cases/kernel/``: natlens agrees with the kernel on each.

Each case under ``cases/kernel/`` is one instance of a kind of fault (raw-table conntrack, NAT
port choice, DNAT address ranges, broadcast and loopback routing, iptables-nft's merged port
pair, ICMP NAT with a port, conntrack-less namespaces, the nf_tables security priority). Here
each kind gets other instances, differing in what a real host differs in: the other iptables
backend, another ingress interface or the host itself, another protocol, other chains, ports and
addresses. Every variant is loaded into a fresh ``diff_harness.Lab`` (network namespaces made and
deleted by the test), its probes are sent as real packets, and the kernel's answer — per-rule
counters and per-hook observations — is the referee: natlens's trace on the namespace's capture
must agree (``diff_oracle.compare``; a random kernel choice agrees when it lies among natlens's
branches or port range). ``kernel`` states what the kernel must do for the variant to be of the
kind at all (its verdict and path), so a variant that drifted into another kind fails too.

Needs root, iptables (both backends), nft and conntrack (``kernel`` marker).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from diff_gen import Probe
from diff_harness import DEFAULT_TOPOLOGY, Lab, Topology
from diff_oracle import kernel_outcome
from diff_run import check

pytestmark = pytest.mark.kernel

_NAT = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
       ":POSTROUTING ACCEPT [0:0]\n"


def _nat(*rules: str) -> str:
    return _NAT + "".join(f"{r}\n" for r in rules) + "COMMIT\n"


def _table(name: str, policies: dict[str, str], *rules: str) -> str:
    heads = "".join(f":{c} {p} [0:0]\n" for c, p in policies.items())
    return f"*{name}\n{heads}" + "".join(f"{r}\n" for r in rules) + "COMMIT\n"


def _filter(inp: str = "ACCEPT", fwd: str = "ACCEPT", out: str = "ACCEPT", *rules: str) -> str:
    return _table("filter", {"INPUT": inp, "FORWARD": fwd, "OUTPUT": out}, *rules)


def _raw(*rules: str) -> str:
    return _table("raw", {"PREROUTING": "ACCEPT", "OUTPUT": "ACCEPT"}, *rules)


def _mangle(*rules: str) -> str:
    return _table("mangle", dict.fromkeys(("PREROUTING", "INPUT", "FORWARD", "OUTPUT",
                                          "POSTROUTING"), "ACCEPT"), *rules)


def _security(inp: str = "ACCEPT", *rules: str) -> str:
    return _table("security", {"INPUT": inp, "FORWARD": "ACCEPT", "OUTPUT": "ACCEPT"}, *rules)


# the kernel cases' router, its addresses added without ``brd +``: ``ip -j addr`` has no
# ``broadcast`` key, the kernel still installs the subnet broadcast routes
_NO_BRD = replace(DEFAULT_TOPOLOGY, brd=False)


@dataclass(frozen=True)
class Variant:
    """One input of a kernel case's kind: rules, probes, and the kernel's verdict/path that
    make it an instance of the kind (``kernel``: one ``(verdict, path)`` per probe)."""

    case: str
    name: str
    backend: str
    rules: str
    probes: tuple[Probe, ...]
    kernel: tuple[tuple[str, str | None], ...]
    topology: Topology = DEFAULT_TOPOLOGY

    @property
    def id(self) -> str:
        return f"{self.case[:2]}-{self.name}-{self.backend}"


def _p(ingress: str, src: str, dst: str, proto: str = "udp",
       ports: tuple[int, int] = (40000, 53)) -> Probe:
    """A probe; ``ports`` (source, destination), the source an ICMP echo's id."""
    return Probe(ingress, src, dst, proto, *ports)


VARIANTS: list[Variant] = [
    # -- 01: raw tables run before conntrack: no ct, ctstate INVALID, connmark never matches
    Variant("01-raw-table-conntrack", "ctstate-new-drop-never-matches", "nft",
            _raw("-A PREROUTING -i int0 -m conntrack --ctstate NEW -j DROP"),
            (_p("int0", "10.200.2.2", "10.200.3.2", "tcp", (40000, 80)),),
            (("ACCEPT", "forward"),)),
    Variant("01-raw-table-conntrack", "state-invalid-drops", "legacy",
            _raw("-A PREROUTING -i dmz0 -m state --state INVALID -j DROP"),
            (_p("dmz0", "10.200.3.2", "198.51.100.7", "udp", (40000, 53)),),
            (("DROP", None),)),
    Variant("01-raw-table-conntrack", "connmark-set-in-raw-is-lost", "nft",
            _raw("-A OUTPUT -j CONNMARK --set-xmark 0x7/0xffffffff",
                 "-A OUTPUT -m connmark --mark 0x0 -j DROP")
            + _mangle("-A POSTROUTING -m connmark --mark 0x7 -j DROP"),
            (_p("local", "10.200.1.1", "10.200.1.2", "tcp", (40000, 443)),),
            (("ACCEPT", "output"),)),
    Variant("01-raw-table-conntrack", "ctstatus-in-raw-goto", "legacy",
            "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:NOCT - [0:0]\n"
            "-A PREROUTING -m conntrack ! --ctstatus CONFIRMED -g NOCT\n"
            "-A PREROUTING -j DROP\n-A NOCT -j RETURN\nCOMMIT\n",
            (_p("ext0", "10.200.1.2", "10.200.2.2", "udp", (40000, 53)),),
            (("DROP", None),)),
    # -- 02: a port already inside the NAT range is kept
    Variant("02-nat-port-in-range-kept", "dnat-range-from-int0", "nft",
            _nat("-A PREROUTING -i int0 -p tcp -j DNAT --to-destination 10.200.3.2:8000-8010"),
            (_p("int0", "10.200.2.2", "10.200.2.1", "tcp", (40000, 8003)),),
            (("ACCEPT", "forward"),)),
    Variant("02-nat-port-in-range-kept", "redirect-range-tcp", "legacy",
            _nat("-A PREROUTING -p tcp -m tcp --dport 8080:8090 -j REDIRECT "
                 "--to-ports 8080-8085"),
            (_p("dmz0", "10.200.3.2", "10.200.9.1", "tcp", (40000, 8082)),),
            (("ACCEPT", "local"),)),
    Variant("02-nat-port-in-range-kept", "masquerade-to-ports-local", "nft",
            _nat("-A POSTROUTING -o dmz0 -p tcp -j MASQUERADE --to-ports 40000-40010"),
            (_p("local", "10.200.3.1", "10.200.3.2", "tcp", (40005, 80)),),
            (("ACCEPT", "output"),)),
    Variant("02-nat-port-in-range-kept", "snat-range-udp", "legacy",
            _nat("-A POSTROUTING -o ext0 -p udp -j SNAT --to-source 10.200.1.1:40000-40010"),
            (_p("int0", "10.200.2.2", "198.51.100.7", "udp", (40003, 53)),),
            (("ACCEPT", "forward"),)),
    # -- 03: SNAT/MASQUERADE port range, source port outside it: random port in the range
    Variant("03-snat-range-random-port", "masquerade-to-ports-tcp", "nft",
            _nat("-A POSTROUTING -o dmz0 -p tcp -j MASQUERADE --to-ports 2000-2100"),
            (_p("ext0", "10.200.1.2", "10.200.3.2", "tcp", (5000, 80)),) * 2,
            (("ACCEPT", "forward"),) * 2),
    Variant("03-snat-range-random-port", "snat-range-default-route", "legacy",
            _nat("-A POSTROUTING -o ext0 -p udp -j SNAT --to-source 10.200.1.1:30000-30010"),
            (_p("int0", "10.200.2.2", "203.0.113.5", "udp", (5000, 53)),) * 2,
            (("ACCEPT", "forward"),) * 2),
    Variant("03-snat-range-random-port", "snat-range-local-origin", "nft",
            _nat("-A POSTROUTING -o int0 -p udp -j SNAT --to-source 10.200.2.1:2000-2100"),
            (_p("local", "10.200.2.1", "10.200.2.2", "udp", (5000, 53)),) * 2,
            (("ACCEPT", "output"),) * 2),
    # -- 04: --random / --random-fully: random source port
    Variant("04-nat-random-port", "snat-random-fully-tcp", "nft",
            _nat("-A POSTROUTING -o dmz0 -p tcp -j SNAT --to-source 10.200.3.1 --random-fully"),
            (_p("ext0", "10.200.1.2", "10.200.3.2", "tcp", (40000, 80)),) * 2,
            (("ACCEPT", "forward"),) * 2),
    Variant("04-nat-random-port", "masquerade-random-default-route", "legacy",
            _nat("-A POSTROUTING -o ext0 -j MASQUERADE --random"),
            (_p("int0", "10.200.2.2", "198.51.100.7", "udp", (40000, 53)),) * 2,
            (("ACCEPT", "forward"),) * 2),
    Variant("04-nat-random-port", "snat-random-privileged-port", "nft",
            _nat("-A POSTROUTING -o ext0 -p udp -j SNAT --to-source 10.200.1.1 --random"),
            (_p("dmz0", "10.200.3.2", "198.51.100.7", "udp", (53, 53)),) * 2,
            (("ACCEPT", "forward"),) * 2),
    # -- 05: DNAT to an address range: the kernel hashes the tuple
    Variant("05-dnat-address-range-hash", "range-both-forwarded", "nft",
            _nat("-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT "
                 "--to-destination 10.200.3.2-10.200.3.3"),
            tuple(_p("ext0", s, "10.200.1.1", "tcp", (5000, 80))
                  for s in ("10.200.1.2", "10.200.1.3", "198.51.100.7")),
            (("ACCEPT", "forward"),) * 3),
    Variant("05-dnat-address-range-hash", "range-local-or-forward-udp", "legacy",
            _nat("-A PREROUTING -i dmz0 -p udp -j DNAT --to-destination 10.200.2.1-10.200.2.2"),
            tuple(_p("dmz0", s, "10.200.3.1", "udp", (5000, 53))
                  for s in ("10.200.3.2", "10.200.3.4", "203.0.113.5")),
            ((("ACCEPT", None),) * 3)),
    Variant("05-dnat-address-range-hash", "range-in-output", "nft",
            _nat("-A OUTPUT -d 10.200.9.1/32 -p tcp -j DNAT "
                 "--to-destination 10.200.2.1-10.200.2.2:8080"),
            tuple(_p("local", "10.200.9.1", "10.200.9.1", "tcp", (sp, 80))
                  for sp in (5000, 5001, 5002)),
            ((("ACCEPT", None),) * 3)),
    # -- 06: a link-layer broadcast DNATed to a unicast host is never forwarded
    Variant("06-broadcast-dnat-not-forwarded", "int0-broadcast", "nft",
            _nat("-A PREROUTING -d 10.200.2.255/32 -j DNAT --to-destination 10.200.3.2"),
            (_p("int0", "10.200.2.3", "10.200.2.255", "udp", (40000, 53)),),
            (("DROP", None),)),
    Variant("06-broadcast-dnat-not-forwarded", "dmz0-broadcast-tcp-port", "legacy",
            _nat("-A PREROUTING -i dmz0 -p tcp -j DNAT --to-destination 10.200.1.2:80"),
            (_p("dmz0", "10.200.3.3", "10.200.3.255", "tcp", (40000, 8080)),),
            (("DROP", None),)),
    Variant("06-broadcast-dnat-not-forwarded", "limited-broadcast", "nft",
            _nat("-A PREROUTING -m addrtype --dst-type BROADCAST -j DNAT "
                 "--to-destination 10.200.2.2"),
            (_p("ext0", "10.200.1.3", "255.255.255.255", "udp", (40000, 67)),),
            (("DROP", None),)),
    # -- 07: subnet broadcast without a `broadcast` key in ip-addr.json: local delivery
    Variant("07-broadcast-without-brd-key", "int0-forward-drop", "nft",
            _filter("ACCEPT", "DROP", "ACCEPT"),
            (_p("int0", "10.200.2.3", "10.200.2.255", "udp", (40000, 53)),),
            (("ACCEPT", "local"),), _NO_BRD),
    Variant("07-broadcast-without-brd-key", "dmz0-addrtype-broadcast-drop", "legacy",
            _filter("ACCEPT", "ACCEPT", "ACCEPT",
                    "-A INPUT -p udp -m addrtype --dst-type BROADCAST -j DROP"),
            (_p("dmz0", "10.200.3.3", "10.200.3.255", "udp", (40000, 137)),),
            (("DROP", "local"),), _NO_BRD),
    Variant("07-broadcast-without-brd-key", "ext0-dnat-not-taken", "nft",
            _nat("-A PREROUTING -d 10.200.1.0/24 -m addrtype --dst-type UNICAST -j DNAT "
                 "--to-destination 10.200.2.2") + _filter("ACCEPT", "DROP", "ACCEPT"),
            (_p("ext0", "10.200.1.3", "10.200.1.255", "udp", (40000, 53)),),
            (("ACCEPT", "local"),), _NO_BRD),
    # -- 08: a loopback-sourced packet DNATed off-host cannot leave
    Variant("08-loopback-source-dnat-dropped", "tcp-to-int0", "nft",
            _nat("-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT "
                 "--to-destination 10.200.3.2:80"),
            (_p("local", "127.0.0.1", "127.0.0.1", "tcp", (40000, 8080)),),
            (("DROP", None),)),
    Variant("08-loopback-source-dnat-dropped", "addrtype-local-to-remote", "legacy",
            _nat("-A OUTPUT -p udp -m addrtype --dst-type LOCAL -j DNAT "
                 "--to-destination 198.51.100.7:8080-8081"),
            (_p("local", "127.0.0.1", "10.200.1.1", "udp", (40000, 5001)),),
            (("DROP", None),)),
    Variant("08-loopback-source-dnat-dropped", "other-loopback-address", "nft",
            _nat("-A OUTPUT -d 127.0.0.0/8 -j DNAT --to-destination 10.200.2.2"),
            (_p("local", "127.0.0.2", "127.0.0.1", "udp", (40000, 53)),),
            (("DROP", None),)),
    Variant("08-loopback-source-dnat-dropped", "host-address-source-leaves", "nft",
            _nat("-A OUTPUT -d 10.200.9.1/32 -p udp -j DNAT --to-destination 10.200.2.2:53"),
            (_p("local", "10.200.9.1", "10.200.9.1", "udp", (40000, 5001)),),
            (("ACCEPT", "output"),)),
    # -- 09: iptables-nft merges `! --sport A ! --dport B` into one compare
    Variant("09-nft-negated-port-pair", "forward-tcp", "nft",
            _filter("ACCEPT", "ACCEPT", "ACCEPT",
                    "-A FORWARD -p tcp -m tcp ! --sport 1000 ! --dport 80 -j DROP"),
            (_p("ext0", "10.200.1.2", "10.200.2.2", "tcp", (1000, 443)),
             _p("ext0", "10.200.1.2", "10.200.2.2", "tcp", (2000, 80)),
             _p("ext0", "10.200.1.2", "10.200.2.2", "tcp", (1000, 80))),
            (("DROP", "forward"), ("DROP", "forward"), ("ACCEPT", "forward"))),
    Variant("09-nft-negated-port-pair", "forward-tcp", "legacy",
            _filter("ACCEPT", "ACCEPT", "ACCEPT",
                    "-A FORWARD -p tcp -m tcp ! --sport 1000 ! --dport 80 -j DROP"),
            (_p("ext0", "10.200.1.2", "10.200.2.2", "tcp", (1000, 443)),
             _p("ext0", "10.200.1.2", "10.200.2.2", "tcp", (2000, 80)),
             _p("ext0", "10.200.1.2", "10.200.2.2", "tcp", (2000, 443))),
            (("ACCEPT", "forward"), ("ACCEPT", "forward"), ("DROP", "forward"))),
    Variant("09-nft-negated-port-pair", "output-udp-dport-first", "nft",
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":out-guard - [0:0]\n-A OUTPUT -o dmz0 -j out-guard\n"
            "-A out-guard -p udp -m udp ! --dport 53 ! --sport 5353 -j REJECT\nCOMMIT\n",
            (_p("local", "10.200.3.1", "10.200.3.2", "udp", (5353, 123)),),
            (("DROP", "output"),)),
    # -- 10: ICMP NAT with a port (the echo id): iptables accepts it, the kernel applies it
    Variant("10-icmp-dnat-with-port", "snat-icmp-port", "nft",
            _nat("-A POSTROUTING -o dmz0 -p icmp -j SNAT --to-source 10.200.3.1:5000"),
            (_p("ext0", "10.200.1.2", "10.200.3.2", "icmp", (77, 0)),),
            (("ACCEPT", "forward"),)),
    Variant("10-icmp-dnat-with-port", "redirect-icmp-port", "legacy",
            _nat("-A PREROUTING -i int0 -p icmp -j REDIRECT --to-ports 9000"),
            (_p("int0", "10.200.2.2", "10.200.3.2", "icmp", (77, 0)),),
            (("ACCEPT", "local"),)),
    Variant("10-icmp-dnat-with-port", "masquerade-icmp-ports-local", "nft",
            _nat("-A POSTROUTING -o ext0 -p icmp -j MASQUERADE --to-ports 7000-7010"),
            (_p("local", "10.200.1.1", "10.200.1.2", "icmp", (77, 0)),),
            (("ACCEPT", "output"),)),
    Variant("10-icmp-dnat-with-port", "dnat-icmp-output", "legacy",
            _nat("-A OUTPUT -d 10.200.1.2/32 -p icmp -j DNAT --to-destination 10.200.3.2:8080"),
            (_p("local", "10.200.1.1", "10.200.1.2", "icmp", (77, 0)),),
            (("ACCEPT", "output"),)),
    # -- 11: nothing needs conntrack: the nat chains are not traversed
    Variant("11-no-conntrack-nat-skipped", "nat-accept-only-tcp", "nft",
            _nat("-A PREROUTING -p tcp -j ACCEPT", "-A POSTROUTING -o dmz0 -j ACCEPT"),
            (_p("int0", "10.200.2.2", "10.200.3.2", "tcp", (40000, 80)),),
            (("ACCEPT", "forward"),)),
    Variant("11-no-conntrack-nat-skipped", "nat-log-local-origin", "legacy",
            _nat("-A OUTPUT -j LOG --log-prefix \"nat-out \"", "-A POSTROUTING -j ACCEPT"),
            (_p("local", "10.200.1.1", "10.200.1.2", "udp", (40000, 53)),),
            (("ACCEPT", "output"),)),
    Variant("11-no-conntrack-nat-skipped", "conntrack-match-elsewhere", "nft",
            _nat("-A PREROUTING -j LOG --log-prefix \"nat-pre \"",
                 "-A POSTROUTING -o int0 -j ACCEPT")
            + _filter("ACCEPT", "ACCEPT", "ACCEPT",
                      "-A FORWARD -m conntrack --ctstate NEW -j ACCEPT"),
            (_p("ext0", "10.200.1.2", "10.200.2.2", "udp", (40000, 53)),),
            (("ACCEPT", "forward"),)),
    # -- 12: iptables-nft registers security at 150, after nat INPUT (100)
    Variant("12-nft-security-priority", "snat-then-security-drop-tcp", "nft",
            _nat("-A INPUT -p tcp -j SNAT --to-source 10.200.9.1")
            + _security("ACCEPT", "-A INPUT -s 10.200.9.1/32 -j DROP"),
            (_p("int0", "10.200.2.2", "10.200.2.1", "tcp", (40000, 22)),),
            (("DROP", "local"),)),
    Variant("12-nft-security-priority", "snat-then-security-drop-tcp", "legacy",
            _nat("-A INPUT -p tcp -j SNAT --to-source 10.200.9.1")
            + _security("ACCEPT", "-A INPUT -s 10.200.9.1/32 -j DROP"),
            (_p("int0", "10.200.2.2", "10.200.2.1", "tcp", (40000, 22)),),
            (("ACCEPT", "local"),)),
    Variant("12-nft-security-priority", "nat-input-policy-counted", "nft",
            _nat() + _security("DROP"),
            (_p("dmz0", "10.200.3.2", "10.200.3.1", "udp", (40000, 53)),),
            (("DROP", "local"),)),
]

# other instances of the same kinds: untracked packets, NAT in other hooks and protocols, the
# security table against the original source
VARIANTS += [
    Variant("01-raw-table-conntrack", "notrack-skips-dnat", "nft",
            _raw("-A PREROUTING -p udp -m udp --dport 53 -j CT --notrack")
            + _nat("-A PREROUTING -p udp -m udp --dport 53 -j DNAT "
                   "--to-destination 10.200.3.2"),
            (_p("ext0", "10.200.1.2", "10.200.1.1", "udp", (40000, 53)),),
            (("ACCEPT", "local"),)),
    Variant("01-raw-table-conntrack", "notrack-untracked-forward-drop", "legacy",
            _raw("-A PREROUTING -i int0 -j CT --notrack")
            + _filter("ACCEPT", "ACCEPT", "ACCEPT",
                      "-A FORWARD -m conntrack --ctstate UNTRACKED -j DROP"),
            (_p("int0", "10.200.2.2", "10.200.3.2", "tcp", (40000, 443)),
             _p("dmz0", "10.200.3.2", "10.200.2.2", "tcp", (40000, 443))),
            (("DROP", "forward"), ("ACCEPT", "forward"))),
    Variant("02-nat-port-in-range-kept", "dnat-range-output", "nft",
            _nat("-A OUTPUT -d 10.200.2.2/32 -p tcp -j DNAT "
                 "--to-destination 10.200.3.2:8000-8010"),
            (_p("local", "10.200.2.1", "10.200.2.2", "tcp", (40000, 8005)),),
            (("ACCEPT", "output"),)),
    Variant("02-nat-port-in-range-kept", "snat-range-tcp-forward", "legacy",
            _nat("-A POSTROUTING -o ext0 -p tcp -j SNAT --to-source 10.200.1.1:1024-2000"),
            (_p("dmz0", "10.200.3.2", "198.51.100.7", "tcp", (1500, 443)),),
            (("ACCEPT", "forward"),)),
    Variant("05-dnat-address-range-hash", "snat-address-range", "nft",
            _nat("-A POSTROUTING -o ext0 -p udp -j SNAT --to-source 10.200.1.5-10.200.1.6"),
            tuple(_p("int0", s, "198.51.100.7", "udp", (5000, 53))
                  for s in ("10.200.2.2", "10.200.2.3", "10.200.2.4")),
            (("ACCEPT", "forward"),) * 3),
    Variant("06-broadcast-dnat-not-forwarded", "ext0-broadcast-any-dnat", "legacy",
            _nat("-A PREROUTING -i ext0 -j DNAT --to-destination 10.200.2.2"),
            (_p("ext0", "10.200.1.7", "10.200.1.255", "udp", (40000, 5353)),),
            (("DROP", None),)),
    Variant("08-loopback-source-dnat-dropped", "loopback-to-loopback-stays", "nft",
            _nat("-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT "
                 "--to-destination 127.0.0.2:80"),
            (_p("local", "127.0.0.1", "127.0.0.1", "tcp", (40000, 8080)),),
            (("ACCEPT", "local"),)),
    Variant("09-nft-negated-port-pair", "forward-udp", "nft",
            _filter("ACCEPT", "ACCEPT", "ACCEPT",
                    "-A FORWARD -p udp -m udp ! --sport 53 ! --dport 53 -j DROP"),
            (_p("int0", "10.200.2.2", "10.200.1.2", "udp", (53, 123)),
             _p("int0", "10.200.2.2", "10.200.1.2", "udp", (5000, 53)),
             _p("int0", "10.200.2.2", "10.200.1.2", "udp", (5000, 123))),
            (("DROP", "forward"), ("DROP", "forward"), ("DROP", "forward"))),
    Variant("10-icmp-dnat-with-port", "dnat-icmp-forward", "nft",
            _nat("-A PREROUTING -i int0 -p icmp -j DNAT --to-destination 10.200.3.2:9"),
            (_p("int0", "10.200.2.2", "10.200.1.2", "icmp", (77, 0)),),
            (("ACCEPT", "forward"),)),
    Variant("11-no-conntrack-nat-skipped", "nat-user-chain-return", "legacy",
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":POSTROUTING ACCEPT [0:0]\n:PRE-USER - [0:0]\n-A PREROUTING -j PRE-USER\n"
            "-A PRE-USER -j RETURN\nCOMMIT\n",
            (_p("ext0", "10.200.1.2", "10.200.3.2", "tcp", (40000, 22)),),
            (("ACCEPT", "forward"),)),
    *(Variant("12-nft-security-priority", "security-output-original-source", backend,
              _nat("-A POSTROUTING -o dmz0 -j SNAT --to-source 10.200.9.1")
              + _security("ACCEPT", "-A OUTPUT -s 10.200.3.1/32 -p udp -j DROP"),
              (_p("local", "10.200.3.1", "10.200.3.2", "udp", (40000, 53)),),
              (("DROP", "output"),)) for backend in ("nft", "legacy")),
]


def _require(backend: str) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but the kernel case variants need root", pytrace=False)
        pytest.skip("needs root for network namespaces")
    for tool in (f"iptables-{backend}-restore", f"iptables-{backend}-save", "nft", "conntrack",
                 "nsenter", "ip"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: the kernel case variants need it")


# natlens gets these wrong today (variant id -> what it answers); strict: a fix makes them fail
# until removed here
KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("variant", [
    pytest.param(v, id=v.id, marks=[pytest.mark.xfail(strict=True, reason=KNOWN[v.id])]
                 if v.id in KNOWN else []) for v in VARIANTS])
def test_kernel_case_variant_agrees(variant: Variant, tmp_path: Path) -> None:
    _require(variant.backend)
    with Lab(variant.backend, variant.topology) as lab:
        lab.load(variant.rules)
        results = check(lab, tmp_path / "snap", variant.probes)
    assert len(results) == len(variant.kernel)
    drifted = []
    failures = []
    for n, ((probe, observed, agreement), want) in enumerate(
            zip(results, variant.kernel, strict=True), 1):
        seen = kernel_outcome(probe.to_json(), observed)
        if (seen.verdict, seen.path if want[1] is not None else None) != want:
            drifted.append(f"probe {n} {probe}: kernel {seen.summary()}, variant expects {want}")
        if not agreement.agrees:
            failures.append(f"probe {n} {probe}:\n{agreement.explain()}")
    assert not drifted, "the kernel did not do what the variant is about:\n" + "\n".join(drifted)
    assert not failures, f"{variant.id}: natlens disagrees with the kernel\n" + "\n".join(failures)
