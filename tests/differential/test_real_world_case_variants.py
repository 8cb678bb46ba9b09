"""Other inputs of the kinds of ``cases/real-world/``: what natlens answers against the kernel.

Each real-world case is one instance of a kind of fault on a Docker host (an orphaned Docker
chain, a stale DNAT ahead of the live one, a dump interrupted by iptables-nft, a leftover
MASQUERADE, an unjumped DOCKER-USER, a single-chain listing, ufw-docker dropping a published
port, loopback traffic DNATed off the host, Tailscale's stateful filter). Here each kind gets
other instances, in what a user's host differs in: other bridge and interface names, subnets,
ports and bindings, Docker 27 or 28 rules, the other iptables backend, and the form the rules
reach natlens in (``iptables-save``, ``iptables -S``, ``iptables -L -n -v --line-numbers``, a
single-chain listing, one file instead of a snapshot folder).

The host is built as a network namespace (``diff_harness.Lab`` with the host's interfaces,
addresses and routes; Docker's rules from ``variant_hosts``); the form given to natlens is what
the real ``iptables`` prints there, stderr included, as a terminal shows it. Probes are real
packets, and the kernel is the referee for traces: its verdict must be the variant's (so the
variant is of the kind), and natlens must agree on verdict, path, addresses and the rules the
counters moved (only the tables the form shows). The report assertions are the right answers
the case READMEs give for the kind.

Needs root, iptables (both backends), nft and conntrack (``kernel`` marker).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from diff_gen import Probe
from diff_harness import NFT_GUARD, Lab
from diff_oracle import compare, kernel_outcome, packet_of
from variant_hosts import Ctr, DockerHost, Net

import natlens
from natlens.cli import main

pytestmark = pytest.mark.kernel

Report = Callable[..., tuple[int, Any]]


@dataclass(frozen=True)
class Outcome:
    """What the variant's probe must do in the kernel (the kind) and in natlens: ``verdict``
    the kernel's; ``headline``: natlens's own verdict must be it (False: a dump that hides
    rules, where the kernel's must be among natlens's branches); ``check`` more on the
    trace."""

    probe: Probe
    verdict: str
    headline: bool = True
    check: Callable[[Any, Probe], None] | None = None


@dataclass(frozen=True)
class RWVariant:
    """A host, its rules, the form natlens reads (``save``, or the arguments of the
    ``iptables`` command that prints it), probes, and the report's right answer."""

    case: str
    name: str
    backend: str
    host: DockerHost
    rules: str
    form: str = "save"
    """``save``: the capture's ``iptables-save -c``; else what follows ``iptables-B`` in the
    command that prints the input (``-S``, ``-t nat -L -n -v``, ``-save 2>/dev/null``)."""
    outcomes: tuple[Outcome, ...] = ()
    report: Callable[[Report, Path, RWVariant], None] | None = None
    more: str = ""
    nft: str = ""
    single_file: bool = False
    docker: bool = True
    lenient: bool = False
    """Read with ``--lenient`` (strict mode must then refuse it with a one-line error)."""
    nft_json: bool = False
    """The snapshot holds ``nft-ruleset.json`` (``nft -j list ruleset``, the test's own guard
    table left out), as ``natlens snapshot`` writes it."""
    paste: Callable[[str, str], str] | None = None
    """How the user pasted the form: ``paste(text, command)`` → the text natlens reads (the
    shell prompt and sudo's lines around ``command``'s output, a terminal's CRLF)."""

    @property
    def id(self) -> str:
        return f"{self.case[:2]}-{self.name}-{self.backend}"

    @property
    def tables(self) -> set[str] | None:
        """The tables the form shows (None: all)."""
        if self.form == "save" or self.form.startswith("-save"):
            return None
        return {"nat"} if "-t nat" in self.form else {"filter"}


def _require(backend: str) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but the real-world variants need root", pytrace=False)
        pytest.skip("needs root for network namespaces")
    for tool in (f"iptables-{backend}-restore", f"iptables-{backend}-save", "nft", "conntrack",
                 "nsenter", "ip", "stdbuf"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: the real-world variants need it")


def _findings(report: Report, where: Path, *args: str) -> tuple[int, list[dict[str, Any]],
                                                                 dict[str, Any]]:
    status, data = report("report", where, *args, "--format", "json")
    assert isinstance(data, dict), data
    return status, data["findings"], data["summary"]


# -- the right answers per kind (the case READMEs) ---------------------------------------------


def _orphaned_docker_forward(report: Report, where: Path, v: RWVariant) -> None:
    status, findings, _ = _findings(report, where)
    orphan = [f for f in findings if f["kind"] == "unused-chain" and f["rule"]
              and f["rule"]["chain"] == "DOCKER-FORWARD"]
    assert len(orphan) == 1, findings
    assert orphan[0]["severity"] in ("medium", "high")
    assert "-I FORWARD" in orphan[0]["fix"]
    assert orphan[0]["fix"].endswith("-j DOCKER-FORWARD")
    assert "-X" not in orphan[0]["fix"]
    assert status == 1


def _stale_dnat(stale_ip: str, live: str, port: int) -> Callable[[Report, Path, RWVariant],
                                                                   None]:
    def check(report: Report, where: Path, v: RWVariant) -> None:
        _status, findings, summary = _findings(report, where)
        stale = [f for f in findings if f["kind"] == "stale" and stale_ip in f["message"]]
        assert stale, findings
        assert stale[0]["severity"] == "high"
        shadowed = [(f["container"], f["host_port"]) for f in findings
                    if f["kind"] == "shadowed"]
        assert (live, port) in shadowed, findings
        if v.tables == {"nat"}:
            assert not any(f["kind"] == "exposed" for f in findings), findings
            assert "filter" in summary["judged_from"]["ipv4"]["not_in_input"]
    return check


def _incomplete(chain: str) -> Callable[[Report, Path, RWVariant], None]:
    def check(report: Report, where: Path, v: RWVariant) -> None:
        status, _, summary = _findings(report, where, *(("--lenient",) if v.lenient else ()))
        assert status in (0, 1)
        incomplete = summary["judged_from"]["ipv4"]["incomplete"]
        assert chain in {i["chain"] for i in incomplete}, summary
        if not v.lenient:  # the tool's messages are in the input: say what to read instead
            assert any("nft list ruleset" in n for n in summary["notes"]), summary["notes"]
        else:
            status, out = report("report", where)
            assert status == 2
            assert "not closed by COMMIT" in out, out
            assert "--lenient" in out
    return check


def _leftover_masquerade(fix: str) -> Callable[[Report, Path, RWVariant], None]:
    def check(report: Report, where: Path, v: RWVariant) -> None:
        _status, findings, _ = _findings(report, where)
        masq = [f for f in findings if f["rule"] and f["rule"]["chain"] == "POSTROUTING"]
        assert [(f["kind"], f["severity"]) for f in masq] == [("stale", "high")], findings
        assert masq[0]["fix"] == fix
    return check


def _unjumped_docker_user(report: Report, where: Path, v: RWVariant) -> None:
    _status, findings, _ = _findings(report, where)
    unused = [f for f in findings if f["kind"] == "unused-chain"]
    assert [(f["rule"]["chain"], f["severity"]) for f in unused] == [
        ("DOCKER-USER", "medium")], findings
    assert unused[0]["fix"] == "iptables -t filter -I FORWARD 1 -j DOCKER-USER"


def _single_chain(referenced: bool) -> Callable[[Report, Path, RWVariant], None]:
    def check(report: Report, where: Path, v: RWVariant) -> None:
        status, findings, summary = _findings(report, where)
        if referenced:
            assert findings == [], findings
            assert status == 0
            return
        assert [(f["kind"], f["rule"]["chain"], f["severity"]) for f in findings] == [
            ("unused-chain", "DOCKER-USER", "medium")], findings
        assert findings[0]["fix"].endswith("-I FORWARD 1 -j DOCKER-USER")
        assert summary["judged_from"]["ipv4"]["partial"] == {"filter": ["DOCKER-USER"]}
    return check


def _no_crash(report: Report, where: Path, v: RWVariant) -> None:
    status, _, _ = _findings(report, where)
    assert status in (0, 1)


def _loopback_dnat(report: Report, where: Path, v: RWVariant) -> None:
    status, findings, _ = _findings(report, where)
    flagged = [f for f in findings if f["kind"] == "hairpin-blocked"]
    assert flagged, findings
    assert all("127.0.0.1" in f["message"] for f in flagged)
    assert status == 1


def _established(yes: bool) -> Callable[[Any, Probe], None]:
    def check(trace: Any, probe: Probe) -> None:
        assert trace.connection.established is yes, trace.connection
        if not yes:
            assert "loopback" in (trace.connection.why or ""), trace.connection
    return check


def _uncertain_in(chain: str) -> Callable[[Any, Probe], None]:
    def check(trace: Any, probe: Probe) -> None:
        assert any(chain in u for u in trace.uncertain), trace.uncertain
    return check


def _masqueraded(src: str) -> Callable[[Any, Probe], None]:
    def check(trace: Any, probe: Probe) -> None:
        assert trace.final_src.rpartition(":")[0] == src, trace.final_src
        assert any(s.target == "MASQUERADE" for s in trace.steps)
    return check


def _nat_in(what: str) -> Callable[[str, str], Callable[[Any, Probe], None]]:
    """A check: the trace's source becomes ``src`` by an nft rule of ``chain`` whose text
    holds ``what`` (nft-ruleset.json's: a chain or table the dump does not show)."""
    def nat_in(chain: str, src: str) -> Callable[[Any, Probe], None]:
        def check(trace: Any, probe: Probe) -> None:
            assert trace.final_src.rpartition(":")[0] == src, trace.final_src
            assert any(s.chain == chain and s.source == "nft" and what in s.text
                       for s in trace.steps), [(s.chain, s.text) for s in trace.steps]
        return check
    return nat_in


_snat_in = _nat_in("snat to")
_masquerade_in = _nat_in("MASQUERADE")


_COMPLETED = "completed from nft-ruleset.json"
_ELSEWHERE = "simulated from nft-ruleset.json"


def _completed(said: str, *names: str) -> Callable[[Report, Path, RWVariant], None]:
    """The report says what the dump does not show that nft-ruleset.json gave: ``said``
    (``_COMPLETED``: chains shown in part, ``_ELSEWHERE``: tables not shown) and ``names``
    (for a cut dump it still refuses it without ``--lenient``)."""
    def check(report: Report, where: Path, v: RWVariant) -> None:
        _status, _, summary = _findings(report, where, *(("--lenient",) if v.lenient else ()))
        notes = [n for n in summary["notes"] if said in n]
        assert len(notes) == 1, summary["notes"]
        for name in names:
            assert f" {name}" in notes[0].partition(said)[2], notes
        assert not any("disagrees" in n for n in summary["notes"]), summary["notes"]
        if v.lenient:
            status, out = report("report", where)
            assert status == 2
            assert "not closed by COMMIT" in out, out
    return check


def _drop_in(chain: str) -> Callable[[Any, Probe], None]:
    def check(trace: Any, probe: Probe) -> None:
        # iptables steps say DROP, nft ones (a chain completed from nft-ruleset.json) drop
        assert any(s.chain == chain and s.target.upper() in ("DROP", "REJECT")
                   for s in trace.steps), \
            [(s.chain, s.target) for s in trace.steps]
    return check


# -- hosts ---------------------------------------------------------------------------------------

WEB = DockerHost(
    {"enp3s0": "192.0.2.10/24"}, ("192.0.2.1", "enp3s0"),
    (Net("shop_default", "172.20.0.0/16", "br-5f0c1e2a3b4d"),),
    (Ctr("shop-api-1", "shop_default", "172.20.0.5", (("tcp", 80, "", 8080),)),))
TWO_NETS = DockerHost(
    {"eth0": "198.51.100.20/24"}, ("198.51.100.1", "eth0"),
    (Net("bridge", "172.17.0.0/16", "docker0"),
     Net("media_net", "172.22.0.0/24", "br-0a1b2c3d4e5f")),
    (Ctr("jellyfin", "media_net", "172.22.0.2", (("tcp", 8096, "198.51.100.20", 8096),
                                                  ("udp", 1900, "", 1900))),
     Ctr("portainer", "bridge", "172.17.0.3", (("tcp", 9000, "", 9000),
                                                 ("tcp", 9001, "", 9001)))))
UFW_HOST = DockerHost(
    {"eth0": "203.0.113.50/24"}, ("203.0.113.1", "eth0"),
    (Net("blog_default", "172.24.0.0/16", "br-9e8d7c6b5a40"),),
    (Ctr("ghost", "blog_default", "172.24.0.3", (("tcp", 2368, "", 8080),)),), era=27)
TS_HOST = DockerHost(
    {"ens18": "10.10.0.5/24", "tailscale0": "100.101.7.7/32"}, ("10.10.0.1", "ens18"),
    (Net("apps", "172.30.0.0/16", "br-3c2b1a000001"),),
    (Ctr("grafana", "apps", "172.30.0.4", (("tcp", 3000, "", 3000),)),), era=27,
    routes=(("100.64.0.0/10", "tailscale0", None),))

UFW_DOCKER = ["-A DOCKER-USER -j ufw-user-forward",
              "-A DOCKER-USER -s 10.0.0.0/8 -j RETURN",
              "-A DOCKER-USER -s 172.16.0.0/12 -j RETURN",
              "-A DOCKER-USER -s 192.168.0.0/16 -j RETURN",
              "-A DOCKER-USER -p udp -m udp --sport 53 --dport 1024:65535 -j RETURN",
              "-A DOCKER-USER -d 172.16.0.0/12 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN "
              "-j ufw-docker-logging-deny",
              "-A DOCKER-USER -d 172.16.0.0/12 -p udp -m udp --dport 0:32767 "
              "-j ufw-docker-logging-deny",
              "-A DOCKER-USER -j RETURN",
              "-A ufw-docker-logging-deny -m limit --limit 3/min --limit-burst 10 -j LOG "
              "--log-prefix \"[UFW DOCKER BLOCK] \"",
              "-A ufw-docker-logging-deny -j DROP"]

TS_FORWARD = ["-A ts-forward -i tailscale0 -j MARK --set-xmark 0x40000/0xff0000",
              "-A ts-forward -m mark --mark 0x40000/0xff0000 -j ACCEPT",
              "-A ts-forward -s 100.64.0.0/10 -o tailscale0 -j DROP",
              "-A ts-forward -o tailscale0 -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP",
              "-A ts-forward -o tailscale0 -j ACCEPT"]
TS_WORKAROUND = ["-A ts-forward -i br-3c2b1a000001 -d 100.64.0.0/10 -j MARK "
                 "--set-xmark 0x40000/0xff0000"]


def _p(ingress: str, src: str, dst: str, proto: str = "tcp", dport: int = 443) -> Probe:
    return Probe(ingress, src, dst, proto, 40000, dport)


# firewalld's nftables backend beside Docker's iptables rules: forwarding into a bridge that is
# in no zone with an open port is rejected after iptables' filter table accepted it
FIREWALLD_LIKE = """table inet firewalld {
  chain filter_FORWARD {
    type filter hook forward priority filter + 10; policy accept;
    ct state established,related accept
    iifname "br-9e8d7c6b5a40" accept
    oifname "br-9e8d7c6b5a40" reject with icmpx admin-prohibited
  }
}
"""
# Tailscale's stateful filtering in its own native table (nftables mode)
TS_NATIVE = """table ip tailscale {
  chain ts-forward {
    type filter hook forward priority filter; policy accept;
    iifname "tailscale0" meta mark set meta mark and 0xff00ffff xor 0x40000
    meta mark & 0x00ff0000 == 0x00040000 accept
    oifname "tailscale0" ip saddr 100.64.0.0/10 drop
    oifname "tailscale0" ct state != related,established drop
    oifname "tailscale0" accept
  }
}
"""


def _ts_rules(workaround: bool) -> str:
    return TS_HOST.rules(
        filter_chains=("ts-forward", "ts-input"),
        filter_before=("-A INPUT -j ts-input", "-A FORWARD -j ts-forward"),
        filter_after=(*(TS_WORKAROUND if workaround else ()), *TS_FORWARD),
        nat_chains=("ts-postrouting",), nat_before=("-A POSTROUTING -j ts-postrouting",),
        nat_after=("-A ts-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE",))


def _leftover_host(clients: str, client_gw: str) -> DockerHost:
    return DockerHost({"eth0": "192.168.10.21/24", "eth1": f"{client_gw}/30",
                       "cali7f3a9b2c1d0": "169.254.1.1/32"}, ("192.168.10.1", "eth0"),
                      routes=((clients, "eth1", None), ("10.244.3.7/32", "cali7f3a9b2c1d0",
                                                         None)))


def _leftover_rules(bridge: str, subnet: str) -> str:
    return ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n"
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
            "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER\n"
            f"-A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE\n"
            f"-A DOCKER -i {bridge} -j RETURN\nCOMMIT\n")


STALE_HOST = DockerHost(
    {"ens5": "10.0.3.15/24"}, ("10.0.3.1", "ens5"),
    (Net("proxy_default", "172.18.0.0/16", "br-77aa55cc33ee"),),
    (Ctr("proxy-traefik-1", "proxy_default", "172.18.0.3", (("tcp", 443, "", 8443),)),),
    era=27)
STALE_UDP = DockerHost(
    {"eth0": "192.0.2.77/24"}, ("192.0.2.1", "eth0"),
    (Net("bridge", "172.17.0.0/16", "docker0"),),
    (Ctr("pihole", "bridge", "172.17.0.4", (("udp", 53, "192.0.2.77", 5353),)),), era=27)


def _stale_rules(host: DockerHost, stale_ip: str, proto: str, ports: tuple[int, int],
                 bound: str = "") -> str:
    """Docker's rules for ``host`` with a stale DNAT (and filter ACCEPT) for ``ports``
    (container port, host port) to ``stale_ip`` above the live container's."""
    cport, hport = ports
    br = host.nets[0].bridge
    dst = f"-d {bound}/32 " if bound else ""
    stale_nat = (f"-A DOCKER {dst}! -i {br} -p {proto} -m {proto} --dport {hport} -j DNAT "
                 f"--to-destination {stale_ip}:{cport}")
    stale_filter = (f"-A DOCKER -d {stale_ip}/32 ! -i {br} -o {br} -p {proto} -m {proto} "
                    f"--dport {cport} -j ACCEPT")
    text = host.rules(nat_after=())
    # the stale rules sit above the live container's (written before it was recreated)
    text = text.replace(f"-A DOCKER {dst}! -i {br} -p {proto}", f"{stale_nat}\n-A DOCKER "
                        f"{dst}! -i {br} -p {proto}", 1)
    return text.replace(f"-A DOCKER -d {host.ctrs[0].ip}/32", f"{stale_filter}\n-A DOCKER "
                        f"-d {host.ctrs[0].ip}/32", 1)


USER_RULES = ["-A DOCKER-USER -d 10.0.0.0/8 -j REJECT --reject-with icmp-port-unreachable",
              "-A DOCKER-USER -d 192.168.0.0/16 -j REJECT --reject-with icmp-port-unreachable",
              "-A DOCKER-USER -j RETURN"]

LOOP_HOST = DockerHost(
    {"eth0": "192.0.2.30/24"}, ("192.0.2.1", "eth0"),
    (Net("web_default", "172.19.0.0/16", "br-1122334455aa"),),
    (Ctr("nginx", "web_default", "172.19.0.2", (("tcp", 80, "", 8000),)),), era=27)


LOCALNET_HOST = DockerHost(LOOP_HOST.ifaces, LOOP_HOST.default, LOOP_HOST.nets, LOOP_HOST.ctrs,
                           27, sysctls=("net.ipv4.conf.all.route_localnet=1",))


def _loop_rules(*, localnet_masquerade: bool) -> str:
    text = LOOP_HOST.rules()
    # docker-ipv6nat / old Docker: OUTPUT jumps to DOCKER for every local destination,
    # loopback included
    text = text.replace("-A OUTPUT ! -d 127.0.0.0/8 -m addrtype", "-A OUTPUT -m addrtype")
    if localnet_masquerade:  # dockerd --userland-proxy=false
        text = text.replace("-A DOCKER -i br-1122334455aa -j RETURN",
                            "-A POSTROUTING -o br-1122334455aa -m addrtype --src-type LOCAL "
                            "-j MASQUERADE\n-A DOCKER -i br-1122334455aa -j RETURN")
    return text


VARIANTS: list[RWVariant] = [
    # -- 01: Docker's forwarding chain not jumped from FORWARD (policy DROP)
    RWVariant("01-synology-docker-forward-orphaned", "docker28-save", "nft", WEB,
              WEB.rules(forward_jump=False),
              outcomes=(Outcome(_p("br-5f0c1e2a3b4d", "172.20.0.5", "198.51.100.10"), "DROP"),
                        Outcome(_p("enp3s0", "192.0.2.50", "192.0.2.10", dport=8080), "DROP")),
              report=_orphaned_docker_forward),
    RWVariant("01-synology-docker-forward-orphaned", "listing-v-line-numbers", "legacy",
              TWO_NETS, TWO_NETS.rules(forward_jump=False),
              form="-L -n -v --line-numbers",
              outcomes=(Outcome(_p("docker0", "172.17.0.3", "198.51.100.10"), "DROP"),
                        Outcome(_p("br-0a1b2c3d4e5f", "172.22.0.2", "172.17.0.3",
                                   dport=9000), "DROP")),
              report=_orphaned_docker_forward),
    RWVariant("01-synology-docker-forward-orphaned", "iptables-S-single-file", "nft",
              TWO_NETS, TWO_NETS.rules(forward_jump=False, user_jump=False), form="-S",
              single_file=True,
              outcomes=(Outcome(_p("eth0", "203.0.113.9", "172.22.0.2", "udp", 1900), "DROP"),),
              report=_orphaned_docker_forward),
    # -- 03: a stale DNAT ahead of the live one for the same host port
    RWVariant("03-moby15151-stale-dnat-hostnames", "save", "nft", STALE_HOST,
              _stale_rules(STALE_HOST, "172.18.0.9", "tcp", (443, 8443)),
              outcomes=(Outcome(_p("ens5", "10.0.3.99", "10.0.3.15", dport=8443), "ACCEPT"),),
              report=_stale_dnat("172.18.0.9", "proxy-traefik-1", 8443)),
    RWVariant("03-moby15151-stale-dnat-hostnames", "nat-listing-v", "legacy", STALE_HOST,
              _stale_rules(STALE_HOST, "172.18.0.9", "tcp", (443, 8443)),
              form="-t nat -L -n -v",
              outcomes=(Outcome(_p("ens5", "10.0.3.99", "10.0.3.15", dport=8443), "ACCEPT"),),
              report=_stale_dnat("172.18.0.9", "proxy-traefik-1", 8443)),
    RWVariant("03-moby15151-stale-dnat-hostnames", "nat-S-udp-bound", "nft", STALE_UDP,
              _stale_rules(STALE_UDP, "172.17.0.11", "udp", (53, 5353), bound="192.0.2.77"),
              form="-t nat -S",
              outcomes=(Outcome(_p("eth0", "192.0.2.40", "192.0.2.77", "udp", 5353),
                                "ACCEPT"),),
              report=_stale_dnat("172.17.0.11", "pihole", 5353)),
    # -- 06: iptables-nft cannot print a native rule: the dump stops there
    *(RWVariant("06-tailscale14900-iptables-S-parse-error", f"interrupted-{tag}", "nft",
                TS_HOST, _ts_rules(False), form=form,
                # Tailscale's nftables mode: native rules at the head of ts-forward, the first
                # of which iptables-nft 1.8.9 cannot print; the second drops
                nft="insert rule ip filter ts-forward ip saddr 172.16.0.0/12 "
                    "oifname \"tailscale0\" drop\n"
                    "insert rule ip filter ts-forward meta mark set meta mark and 0xff00ffff\n",
                outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"),
                                  "DROP", headline=False, check=_uncertain_in("ts-forward")),),
                report=_incomplete("ts-forward"), lenient=tag == "save-stdout")
      for tag, form in (("save-terminal", "-save"), ("save-stdout", "-save 2>/dev/null"),
                        ("S", "-S"), ("listing", "-L -n -v"))),
    # ... with nft-ruleset.json in the snapshot: the chains the dump shows in part are
    # completed from it (the kernel runs the nft ruleset), on stderr's diagnostics or on a dump
    # cut without COMMIT (--lenient), in the filter table or the nat table
    *(RWVariant("06-tailscale14900-iptables-S-parse-error", f"interrupted-{tag}-with-nft-json",
                "nft", TS_HOST, _ts_rules(False), form=form, nft_json=True,
                nft="insert rule ip filter ts-forward ip saddr 172.16.0.0/12 "
                    "oifname \"tailscale0\" drop\n"
                    "insert rule ip filter ts-forward meta mark set meta mark and 0xff00ffff\n",
                outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"), "DROP",
                                  check=_drop_in("ts-forward")),
                          # falls through the completed chain back to FORWARD
                          Outcome(_p("ens18", "10.10.0.77", "172.30.0.4", dport=3000),
                                  "ACCEPT")),
                report=_completed(_COMPLETED, "ts-forward (0 rules shown, 7 read",
                                  "ts-input (0 rules shown, 0 read"),
                lenient=tag == "cut")
      for tag, form in (("save", "-save"), ("cut", "-save 2>/dev/null"))),
    # the nat chain's native head, a mark iptables-nft cannot print, makes Tailscale's
    # MASQUERADE after it take the packet before Docker's (nft's native NAT statements would
    # make iptables-nft call the whole table incompatible: tables not shown, read from nft)
    RWVariant("06-tailscale14900-iptables-S-parse-error", "nat-interrupted-with-nft-json",
              "nft", TS_HOST, _ts_rules(False), form="-save", nft_json=True,
              nft="insert rule ip nat ts-postrouting meta mark set meta mark or 0x40000\n",
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "10.10.0.77"),
                                "ACCEPT", check=_masquerade_in("ts-postrouting", "10.10.0.5")),),
              report=_completed(_COMPLETED, "ts-postrouting (0 rules shown, 2 read")),
    RWVariant("06-tailscale14900-iptables-S-parse-error", "nat-incompatible-with-nft-json",
              "nft", TS_HOST, _ts_rules(True), form="-save", nft_json=True,
              nft="insert rule ip nat ts-postrouting ip saddr 172.30.0.0/16 "
                  "oifname \"tailscale0\" snat to 100.101.7.8\n",
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"),
                                "ACCEPT", check=_snat_in("ts-postrouting", "100.101.7.8")),),
              report=_completed(_ELSEWHERE, "ip nat")),
    # -- 07: a leftover Docker MASQUERADE for a bridge that does not exist
    RWVariant("07-k8s89869-leftover-docker-masquerade", "user-bridge-save", "nft",
              _leftover_host("172.18.40.0/24", "192.168.20.1"),
              _leftover_rules("br-0123456789ab", "172.18.0.0/16"),
              outcomes=(Outcome(_p("eth1", "172.18.40.10", "10.244.3.7", dport=80),
                                "ACCEPT"),),
              report=_leftover_masquerade("iptables -t nat -D POSTROUTING -s 172.18.0.0/16 ! "
                                          "-o br-0123456789ab -j MASQUERADE")),
    RWVariant("07-k8s89869-leftover-docker-masquerade", "docker0-nat-S", "legacy",
              _leftover_host("172.17.8.0/22", "192.168.20.5"),
              _leftover_rules("docker0", "172.17.0.0/16"), form="-t nat -S",
              outcomes=(Outcome(_p("eth1", "172.17.9.200", "10.244.3.7", "udp", 53),
                                "ACCEPT"),),
              report=_leftover_masquerade("iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! "
                                          "-o docker0 -j MASQUERADE")),
    RWVariant("07-k8s89869-leftover-docker-masquerade", "nat-listing-v", "nft",
              _leftover_host("172.17.252.0/24", "192.168.20.9"),
              _leftover_rules("docker0", "172.17.0.0/16"), form="-t nat -L -n -v",
              outcomes=(Outcome(_p("eth1", "172.17.252.10", "10.244.3.7", dport=80),
                                "ACCEPT"),),
              report=_leftover_masquerade("iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! "
                                          "-o docker0 -j MASQUERADE")),
    # -- 09: DOCKER-USER holds the user's rules but FORWARD does not jump to it
    RWVariant("09-moby48560-docker-user-not-jumped", "docker28-save", "nft", WEB,
              WEB.rules(user_jump=False, filter_after=USER_RULES),
              outcomes=(Outcome(_p("br-5f0c1e2a3b4d", "172.20.0.5", "192.0.2.99", dport=22),
                                "ACCEPT"),),
              report=_unjumped_docker_user),
    RWVariant("09-moby48560-docker-user-not-jumped", "docker27-listing", "legacy",
              UFW_HOST, UFW_HOST.rules(user_jump=False, filter_after=USER_RULES[:2]),
              form="-L -n -v --line-numbers",
              outcomes=(Outcome(_p("br-9e8d7c6b5a40", "172.24.0.3", "10.1.2.3", "udp", 53),
                                "ACCEPT"),),
              report=_unjumped_docker_user),
    RWVariant("09-moby48560-docker-user-not-jumped", "two-nets-S", "nft", TWO_NETS,
              TWO_NETS.rules(user_jump=False, filter_after=USER_RULES), form="-S",
              outcomes=(Outcome(_p("docker0", "172.17.0.3", "192.168.1.1", dport=80),
                                "ACCEPT"),),
              report=_unjumped_docker_user),
    # -- 10: a single-chain listing (its header gives the references)
    RWVariant("10-ufwdocker41-docker-user-0-references", "0-references-v", "nft", UFW_HOST,
              UFW_HOST.rules(user_jump=False, filter_chains=("ufw-user-forward",
                                                             "ufw-docker-logging-deny"),
                             filter_after=UFW_DOCKER).replace(
                                 "-A DOCKER-USER -j RETURN\n-A DOCKER-USER -j ufw", "-A "
                                 "DOCKER-USER -j ufw"),
              form="-L DOCKER-USER -n -v", report=_single_chain(False)),
    RWVariant("10-ufwdocker41-docker-user-0-references", "1-reference-line-numbers", "legacy",
              UFW_HOST,
              UFW_HOST.rules(user_return=False,
                             filter_chains=("ufw-user-forward", "ufw-docker-logging-deny"),
                             filter_after=UFW_DOCKER),
              form="-L DOCKER-USER -n --line-numbers", report=_single_chain(True)),
    RWVariant("10-ufwdocker41-docker-user-0-references", "0-references-plain", "legacy",
              WEB, WEB.rules(user_jump=False, filter_chains=("f2b-docker",),
                             filter_after=("-A DOCKER-USER -j f2b-docker",
                                           "-A f2b-docker -j RETURN")),
              form="-L DOCKER-USER -n", report=_single_chain(False)),
    # -- 11: ufw-docker's DOCKER-USER drops a published port (no `ufw route allow`)
    RWVariant("11-ufwdocker119-ufw-blocks-published-port", "save", "nft", UFW_HOST,
              UFW_HOST.rules(user_return=False,
                             filter_chains=("ufw-user-forward", "ufw-docker-logging-deny"),
                             filter_after=UFW_DOCKER),
              outcomes=(Outcome(_p("eth0", "198.51.100.7", "203.0.113.50", dport=8080),
                                "DROP", check=_drop_in("ufw-docker-logging-deny")),),
              report=_no_crash),
    RWVariant("11-ufwdocker119-ufw-blocks-published-port", "listing-v", "legacy", UFW_HOST,
              UFW_HOST.rules(user_return=False,
                             filter_chains=("ufw-user-forward", "ufw-docker-logging-deny"),
                             filter_after=UFW_DOCKER),
              form="-L -n -v --line-numbers",
              outcomes=(Outcome(_p("eth0", "198.51.100.7", "172.24.0.3", dport=2368),
                                "DROP", check=_drop_in("ufw-docker-logging-deny")),),
              report=_no_crash),
    RWVariant("11-ufwdocker119-ufw-blocks-published-port", "after-rules-section", "nft",
              UFW_HOST, UFW_HOST.rules(user_return=False),
              more="*filter\n:ufw-user-forward - [0:0]\n:ufw-docker-logging-deny - [0:0]\n"
                   ":DOCKER-USER - [0:0]\n" + "\n".join(UFW_DOCKER) + "\nCOMMIT\n",
              outcomes=(Outcome(_p("eth0", "198.51.100.7", "203.0.113.50", dport=8080),
                                "DROP", check=_drop_in("ufw-docker-logging-deny")),),
              report=_no_crash),
    RWVariant("11-ufwdocker119-ufw-blocks-published-port", "route-allow-accepts", "legacy",
              UFW_HOST,
              UFW_HOST.rules(user_return=False,
                             filter_chains=("ufw-user-forward", "ufw-docker-logging-deny"),
                             filter_after=(*UFW_DOCKER, "-A ufw-user-forward -d 172.24.0.3/32 "
                                           "-p tcp -m tcp --dport 2368 -j ACCEPT")),
              outcomes=(Outcome(_p("eth0", "198.51.100.7", "203.0.113.50", dport=8080),
                                "ACCEPT"),),
              report=_no_crash),
    RWVariant("11-ufwdocker119-ufw-blocks-published-port", "firewalld-native-nft", "nft",
              UFW_HOST, UFW_HOST.rules(), nft_json=True, nft=FIREWALLD_LIKE,
              outcomes=(Outcome(_p("eth0", "198.51.100.7", "203.0.113.50", dport=8080),
                                "DROP"),
                        Outcome(_p("br-9e8d7c6b5a40", "172.24.0.3", "198.51.100.7"),
                                "ACCEPT")),
              report=_no_crash),
    # -- 12: loopback traffic DNATed to a container cannot leave (IPv4 form of the case)
    RWVariant("12-ipv6nat34-ip6tables-xtables-save", "output-dnat-no-loopback-exclusion",
              "nft", LOOP_HOST, _loop_rules(localnet_masquerade=False),
              outcomes=(Outcome(_p("local", "127.0.0.1", "127.0.0.1", dport=8000), "DROP"),
                        Outcome(_p("local", "192.0.2.30", "192.0.2.30", dport=8000),
                                "ACCEPT", check=_established(True))),
              report=_loopback_dnat),
    RWVariant("12-ipv6nat34-ip6tables-xtables-save", "output-dnat-route-localnet", "legacy",
              LOCALNET_HOST, _loop_rules(localnet_masquerade=False),
              outcomes=(Outcome(_p("local", "127.0.0.1", "127.0.0.1", dport=8000), "ACCEPT",
                                check=_established(False)),),
              report=_loopback_dnat),
    RWVariant("12-ipv6nat34-ip6tables-xtables-save", "userland-proxy-false-masquerade", "nft",
              LOCALNET_HOST, _loop_rules(localnet_masquerade=True),
              outcomes=(Outcome(_p("local", "127.0.0.1", "127.0.0.1", dport=8000), "ACCEPT",
                                check=_established(True)),)),
    # -- 13: Tailscale's stateful filter drops container -> tailnet
    RWVariant("13-tailscale12070-stateful-filter-drops-docker", "save-tcp-udp", "nft",
              TS_HOST, _ts_rules(False),
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"), "DROP"),
                        Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.100.100.100", "udp",
                                   53), "DROP")),),
    RWVariant("13-tailscale12070-stateful-filter-drops-docker", "native-nft-table", "legacy",
              TS_HOST, TS_HOST.rules(), nft_json=True, nft=TS_NATIVE,
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"), "DROP"),
                        Outcome(_p("br-3c2b1a000001", "172.30.0.4", "10.10.0.77"),
                                "ACCEPT"))),
    RWVariant("13-tailscale12070-stateful-filter-drops-docker", "listing", "legacy",
              TS_HOST, _ts_rules(False), form="-L -n -v --line-numbers",
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"), "DROP",
                                check=_drop_in("ts-forward")),),),
    RWVariant("13-tailscale12070-stateful-filter-drops-docker", "workaround", "legacy",
              TS_HOST, _ts_rules(True),
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"),
                                "ACCEPT", check=_masqueraded("100.101.7.7")),)),
]



# -- the same forms as a user pastes them: the prompt line of the command (each shell's default
# prompt shape), sudo's password prompt, the bare prompt after the output, a terminal's CRLF


def _pasted(prompt: str, *, sudo: str = "sudo ", before: str = "", after: str = "",
            crlf: bool = False) -> Callable[[str, str], str]:
    """``prompt`` + the command the user typed (``iptables`` for ``iptables-nft``), then
    ``before`` (sudo's lines), the output, ``after`` (the next prompt)."""
    def paste(text: str, command: str) -> str:
        typed = command.replace("iptables-nft", "iptables").replace("iptables-legacy", "iptables")
        out = f"{prompt} {sudo}{typed}\n{before}{text}{after}"
        return out.replace("\n", "\r\n") if crlf else out
    return paste


RHEL = "[root@nas ~]#"
FIREWALLD_ZONES = """table inet firewalld {
  chain filter_FORWARD {
    type filter hook forward priority filter + 10; policy accept;
    ct state established,related accept
    ct status dnat accept
    iifname "lo" accept
    jump filter_FORWARD_ZONES
    ct state invalid drop
    reject with icmpx admin-prohibited
  }
  chain filter_FORWARD_ZONES {
    iifname "br-9e8d7c6b5a40" goto filter_FWD_docker
    goto filter_FWD_public
  }
  chain filter_FWD_docker {
    accept
  }
  chain filter_FWD_public {
    jump filter_FWD_public_pre
    jump filter_FWD_public_allow
  }
  chain filter_FWD_public_pre {
  }
  chain filter_FWD_public_allow {
    oifname "eth0" accept
  }
}
"""
UFW_AFTER_RULES = ("*filter\n:ufw-user-forward - [0:0]\n:ufw-docker-logging-deny - [0:0]\n"
                   ":DOCKER-USER - [0:0]\n" + "\n".join(UFW_DOCKER) + "\nCOMMIT\n")


def _fragment_not_whole(report: Report, where: Path, v: RWVariant) -> None:
    """A restore fragment that declares no built-in chain shows them in part: no finding may
    rest on FORWARD being empty (DOCKER-USER "not jumped to")."""
    _status, findings, summary = _findings(report, where)
    assert not any(f["kind"] in ("unused-chain", "unreachable-chain") for f in findings), \
        findings
    assert "filter" in summary["judged_from"]["ipv4"]["partial"], summary


def _raw_direct(host: DockerHost) -> str:
    """Docker 28's raw table: a container's address is reached only from its bridge."""
    drops = "".join(f"-A PREROUTING -d {c.ip}/32 ! -i {host.net(c.net).bridge} -j DROP\n"
                    for c in host.ctrs)
    return f"*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{drops}COMMIT\n"
SUDO_PW = "[sudo] password for alice: \n"

VARIANTS += [
    RWVariant("01-synology-docker-forward-orphaned", "rhel-prompt-listing", "legacy",
              TWO_NETS, TWO_NETS.rules(forward_jump=False), form="-L -n -v --line-numbers",
              paste=_pasted(RHEL, sudo="", after="[root@nas ~]# \n"),
              outcomes=(Outcome(_p("docker0", "172.17.0.3", "198.51.100.10"), "DROP"),),
              report=_orphaned_docker_forward),
    RWVariant("01-synology-docker-forward-orphaned", "conda-prompt-crlf-listing", "nft",
              WEB, WEB.rules(forward_jump=False), form="-L -n -v",
              paste=_pasted("(base) alice@nas:~$", crlf=True),
              outcomes=(Outcome(_p("br-5f0c1e2a3b4d", "172.20.0.5", "198.51.100.10"), "DROP"),),
              report=_orphaned_docker_forward),
    RWVariant("03-moby15151-stale-dnat-hostnames", "sudo-u-nat-listing", "nft", STALE_HOST,
              _stale_rules(STALE_HOST, "172.18.0.9", "tcp", (443, 8443)),
              form="-t nat -L -n -v", paste=_pasted("alice@web1:~$", sudo="sudo -u root "),
              outcomes=(Outcome(_p("ens5", "10.0.3.99", "10.0.3.15", dport=8443), "ACCEPT"),),
              report=_stale_dnat("172.18.0.9", "proxy-traefik-1", 8443)),
    # the table is named only by the prompt's -t
    RWVariant("03-moby15151-stale-dnat-hostnames", "rhel-prompt-nat-listing", "legacy",
              STALE_UDP, _stale_rules(STALE_UDP, "172.17.0.11", "udp", (53, 5353),
                                      bound="192.0.2.77"),
              form="-t nat -L -n -v --line-numbers", paste=_pasted("[root@dns1 ~]#", sudo=""),
              outcomes=(Outcome(_p("eth0", "192.0.2.40", "192.0.2.77", "udp", 5353),
                                "ACCEPT"),),
              report=_stale_dnat("172.17.0.11", "pihole", 5353)),
    RWVariant("07-k8s89869-leftover-docker-masquerade", "gentoo-prompt-nat-listing", "legacy",
              _leftover_host("172.17.252.0/24", "192.168.20.9"),
              _leftover_rules("docker0", "172.17.0.0/16"), form="-t nat -L -n -v",
              paste=_pasted("alice@node3 ~ $", after="alice@node3 ~ $ \n"),
              outcomes=(Outcome(_p("eth1", "172.17.252.10", "10.244.3.7", dport=80),
                                "ACCEPT"),),
              report=_leftover_masquerade("iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! "
                                          "-o docker0 -j MASQUERADE")),
    RWVariant("09-moby48560-docker-user-not-jumped", "zsh-prompt-sudo-password-listing", "nft",
              WEB, WEB.rules(user_jump=False, filter_after=USER_RULES), form="-L -n -v",
              paste=_pasted("➜  ~", before=SUDO_PW),
              outcomes=(Outcome(_p("br-5f0c1e2a3b4d", "172.20.0.5", "192.0.2.99", dport=22),
                                "ACCEPT"),),
              report=_unjumped_docker_user),
    RWVariant("10-ufwdocker41-docker-user-0-references", "fish-prompt-chain-listing", "nft",
              UFW_HOST,
              UFW_HOST.rules(user_jump=False, filter_chains=("ufw-user-forward",
                                                             "ufw-docker-logging-deny"),
                             filter_after=UFW_DOCKER).replace(
                                 "-A DOCKER-USER -j RETURN\n-A DOCKER-USER -j ufw", "-A "
                                 "DOCKER-USER -j ufw"),
              form="-L DOCKER-USER -n -v", paste=_pasted("alice@blog ~>", sudo="sudo -E "),
              report=_single_chain(False)),
    RWVariant("11-ufwdocker119-ufw-blocks-published-port", "venv-prompt-crlf-listing",
              "legacy", UFW_HOST,
              UFW_HOST.rules(user_return=False,
                             filter_chains=("ufw-user-forward", "ufw-docker-logging-deny"),
                             filter_after=UFW_DOCKER),
              form="-L -n -v --line-numbers",
              paste=_pasted("(venv) root@blog:/srv#", sudo="", crlf=True),
              outcomes=(Outcome(_p("eth0", "198.51.100.7", "172.24.0.3", dport=2368),
                                "DROP", check=_drop_in("ufw-docker-logging-deny")),),
              report=_no_crash),
    RWVariant("13-tailscale12070-stateful-filter-drops-docker", "sudo-password-listing", "nft",
              TS_HOST, _ts_rules(False), form="-L -n -v --line-numbers",
              paste=_pasted("pi@raspberrypi:~ $", before=SUDO_PW, after="pi@raspberrypi:~ $\n"),
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"), "DROP",
                                check=_drop_in("ts-forward")),)),
    # the same kinds in the forms and Docker eras the variants above do not combine
    RWVariant("01-synology-docker-forward-orphaned", "listing-exact-counters", "nft", WEB,
              WEB.rules(forward_jump=False), form="-L -n -v -x --line-numbers",
              outcomes=(Outcome(_p("br-5f0c1e2a3b4d", "172.20.0.5", "198.51.100.10"), "DROP"),),
              report=_orphaned_docker_forward),
    RWVariant("03-moby15151-stale-dnat-hostnames", "docker28-nat-listing-exact", "nft",
              replace(STALE_UDP, era=28),
              _stale_rules(replace(STALE_UDP, era=28), "172.17.0.11", "udp", (53, 5353),
                           bound="192.0.2.77"),
              form="-t nat -L -n -v -x --line-numbers",
              outcomes=(Outcome(_p("eth0", "192.0.2.40", "192.0.2.77", "udp", 5353),
                                "ACCEPT"),),
              report=_stale_dnat("172.17.0.11", "pihole", 5353)),
    RWVariant("06-tailscale14900-iptables-S-parse-error", "interrupted-nat-listing", "nft",
              TS_HOST, _ts_rules(True), form="-t nat -L -n -v",
              nft="insert rule ip nat ts-postrouting meta mark set meta mark or 0x1\n",
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"),
                                "ACCEPT", headline=False),),
              report=_incomplete("ts-postrouting")),
    RWVariant("07-k8s89869-leftover-docker-masquerade", "nat-listing-line-numbers-exact",
              "legacy", _leftover_host("172.18.40.0/24", "192.168.20.1"),
              _leftover_rules("br-0123456789ab", "172.18.0.0/16"),
              form="-t nat -L -n -v -x --line-numbers",
              outcomes=(Outcome(_p("eth1", "172.18.40.10", "10.244.3.7", "udp", 53),
                                "ACCEPT"),),
              report=_leftover_masquerade("iptables -t nat -D POSTROUTING -s 172.18.0.0/16 ! "
                                          "-o br-0123456789ab -j MASQUERADE")),
    RWVariant("09-moby48560-docker-user-not-jumped", "docker28-listing-exact", "legacy", WEB,
              WEB.rules(user_jump=False, filter_after=USER_RULES),
              form="-L -n -v -x",
              outcomes=(Outcome(_p("br-5f0c1e2a3b4d", "172.20.0.5", "10.9.9.9", "udp", 53),
                                "ACCEPT"),),
              report=_unjumped_docker_user),
    RWVariant("11-ufwdocker119-ufw-blocks-published-port", "docker28-S", "nft",
              replace(UFW_HOST, era=28),
              replace(UFW_HOST, era=28).rules(
                  filter_chains=("ufw-user-forward", "ufw-docker-logging-deny"),
                  filter_after=UFW_DOCKER),
              form="-S",
              outcomes=(Outcome(_p("eth0", "198.51.100.7", "172.24.0.3", dport=2368),
                                "DROP", check=_drop_in("ufw-docker-logging-deny")),
                        Outcome(_p("eth0", "10.1.1.1", "172.24.0.3", dport=2368),
                                "ACCEPT")),
              report=_no_crash),
    RWVariant("13-tailscale12070-stateful-filter-drops-docker", "docker28-S", "nft",
              replace(TS_HOST, era=28), replace(TS_HOST, era=28).rules(
                  filter_chains=("ts-forward", "ts-input"),
                  filter_before=("-A INPUT -j ts-input", "-A FORWARD -j ts-forward"),
                  filter_after=TS_FORWARD),
              form="-S",
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"), "DROP",
                                check=_drop_in("ts-forward")),
                        Outcome(_p("br-3c2b1a000001", "172.30.0.4", "10.10.0.77"),
                                "ACCEPT"))),
    RWVariant("12-ipv6nat34-ip6tables-xtables-save", "output-dnat-nat-S", "legacy",
              LOOP_HOST, _loop_rules(localnet_masquerade=False), form="-t nat -S",
              outcomes=(Outcome(_p("local", "127.0.0.1", "127.0.0.1", dport=8000), "DROP"),),
              report=_loopback_dnat),
    RWVariant("06-tailscale14900-iptables-S-parse-error", "pi-prompt-interrupted-listing",
              "nft", TS_HOST, _ts_rules(False), form="-L -n -v --line-numbers",
              paste=_pasted("pi@raspberrypi:~ $", after="pi@raspberrypi:~ $ \n"),
              nft="insert rule ip filter ts-forward ip saddr 172.16.0.0/12 "
                  "oifname \"tailscale0\" drop\n"
                  "insert rule ip filter ts-forward meta mark set meta mark and 0xff00ffff\n",
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"),
                                "DROP", headline=False, check=_uncertain_in("ts-forward")),),
              report=_incomplete("ts-forward")),
    RWVariant("06-tailscale14900-iptables-S-parse-error", "rhel-prompt-interrupted-nat-listing",
              "nft", TS_HOST, _ts_rules(True), form="-t nat -L -n -v --line-numbers",
              paste=_pasted("[root@gw ~]#", sudo=""),
              nft="insert rule ip nat ts-postrouting meta mark set meta mark or 0x1\n",
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.90.1.2"),
                                "ACCEPT", headline=False),),
              report=_incomplete("ts-postrouting")),
    RWVariant("07-k8s89869-leftover-docker-masquerade", "zsh-prompt-crlf-nat-listing", "nft",
              _leftover_host("172.17.8.0/22", "192.168.20.5"),
              _leftover_rules("docker0", "172.17.0.0/16"), form="-t nat -L -n -v",
              paste=_pasted("➜  ~ git:(main) ✗", before=SUDO_PW, crlf=True),
              outcomes=(Outcome(_p("eth1", "172.17.9.200", "10.244.3.7", "udp", 53),
                                "ACCEPT"),),
              report=_leftover_masquerade("iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! "
                                          "-o docker0 -j MASQUERADE")),
    RWVariant("09-moby48560-docker-user-not-jumped", "venv-prompt-listing", "legacy",
              UFW_HOST, UFW_HOST.rules(user_jump=False, filter_after=USER_RULES[:2]),
              form="-L -n -v --line-numbers", paste=_pasted("(venv) alice@blog:~/app$"),
              outcomes=(Outcome(_p("br-9e8d7c6b5a40", "172.24.0.3", "10.1.2.3", "udp", 53),
                                "ACCEPT"),),
              report=_unjumped_docker_user),
    RWVariant("10-ufwdocker41-docker-user-0-references", "rhel-prompt-chain-listing", "legacy",
              UFW_HOST,
              UFW_HOST.rules(user_return=False,
                             filter_chains=("ufw-user-forward", "ufw-docker-logging-deny"),
                             filter_after=UFW_DOCKER),
              form="-L DOCKER-USER -n --line-numbers",
              paste=_pasted("[root@blog ~]#", sudo="", after="[root@blog ~]#\n"),
              report=_single_chain(True)),
    RWVariant("11-ufwdocker119-ufw-blocks-published-port", "docker28-fish-prompt-listing",
              "nft", replace(UFW_HOST, era=28),
              replace(UFW_HOST, era=28).rules(
                  filter_chains=("ufw-user-forward", "ufw-docker-logging-deny"),
                  filter_after=UFW_DOCKER),
              form="-L -n -v", paste=_pasted("alice@blog ~>", before=SUDO_PW),
              outcomes=(Outcome(_p("eth0", "198.51.100.7", "172.24.0.3", dport=2368),
                                "DROP", check=_drop_in("ufw-docker-logging-deny")),),
              report=_no_crash),
    RWVariant("13-tailscale12070-stateful-filter-drops-docker", "sudo-u-listing", "legacy",
              TS_HOST, _ts_rules(False), form="-L -n -v",
              paste=_pasted("alice@gw:~$", sudo="sudo -u root ", after="alice@gw:~$ \n"),
              outcomes=(Outcome(_p("br-3c2b1a000001", "172.30.0.4", "100.100.100.100", "udp",
                                   53), "DROP", check=_drop_in("ts-forward")),)),
    # Docker 28's raw PREROUTING rule against direct access to a container's address (its
    # iptables rules doc, filterDirectAccess): before conntrack and NAT
    RWVariant("09-moby48560-docker-user-not-jumped", "docker28-raw-direct-access", "nft", WEB,
              WEB.rules(user_jump=False, filter_after=USER_RULES) + _raw_direct(WEB),
              outcomes=(Outcome(_p("enp3s0", "192.0.2.50", "172.20.0.5", dport=80), "DROP"),
                        Outcome(_p("enp3s0", "192.0.2.50", "192.0.2.10", dport=8080),
                                "ACCEPT"),
                        Outcome(_p("br-5f0c1e2a3b4d", "172.20.0.5", "192.168.7.7", dport=22),
                                "ACCEPT")),
              report=_unjumped_docker_user),
    RWVariant("01-synology-docker-forward-orphaned", "docker28-raw-direct-access", "legacy",
              TWO_NETS, TWO_NETS.rules(forward_jump=False) + _raw_direct(TWO_NETS),
              outcomes=(Outcome(_p("eth0", "198.51.100.9", "172.22.0.2", dport=8096), "DROP"),
                        Outcome(_p("eth0", "198.51.100.9", "198.51.100.20", dport=8096),
                                "DROP")),
              report=_orphaned_docker_forward),
    # the file the user loaded with iptables-restore --noflush (ufw's after.rules), given alone:
    # it declares none of filter's built-in chains, so FORWARD and its jump are not shown
    RWVariant("10-ufwdocker41-docker-user-0-references", "noflush-fragment-alone", "nft",
              UFW_HOST, UFW_HOST.rules(user_return=False),
              more=UFW_AFTER_RULES, form="-S", single_file=True,
              paste=lambda text, command: UFW_AFTER_RULES, report=_fragment_not_whole),
    # firewalld's zones (nftables backend) beside Docker's iptables rules: DNATed forwards are
    # accepted by `ct status dnat`, the docker zone accepts what leaves the bridge, the public
    # zone rejects the rest
    RWVariant("11-ufwdocker119-ufw-blocks-published-port", "firewalld-zones-ct-status-dnat",
              "nft", UFW_HOST, UFW_HOST.rules(), nft_json=True, nft=FIREWALLD_ZONES,
              outcomes=(Outcome(_p("eth0", "198.51.100.7", "203.0.113.50", dport=8080),
                                "ACCEPT"),
                        Outcome(_p("eth0", "198.51.100.7", "172.24.0.3", dport=2368), "DROP"),
                        Outcome(_p("br-9e8d7c6b5a40", "172.24.0.3", "198.51.100.7"),
                                "ACCEPT")),
              report=_no_crash),
    # iptables-save and -S pasted after a RHEL prompt or sudo's password prompt: lines that open
    # with "[" as counters do
    RWVariant("09-moby48560-docker-user-not-jumped", "rhel-prompt-S", "legacy", TWO_NETS,
              TWO_NETS.rules(user_jump=False, filter_after=USER_RULES), form="-S",
              paste=_pasted("[alice@media ~]$"),
              outcomes=(Outcome(_p("docker0", "172.17.0.3", "192.168.1.1", dport=80),
                                "ACCEPT"),),
              report=_unjumped_docker_user),
    RWVariant("03-moby15151-stale-dnat-hostnames", "sudo-password-save", "nft", STALE_HOST,
              _stale_rules(STALE_HOST, "172.18.0.9", "tcp", (443, 8443)), form="-save",
              paste=_pasted("alice@web1:~$", before=SUDO_PW),
              outcomes=(Outcome(_p("ens5", "10.0.3.99", "10.0.3.15", dport=8443), "ACCEPT"),),
              report=_stale_dnat("172.18.0.9", "proxy-traefik-1", 8443)),
]

# natlens gets these wrong today (variant id -> what it answers); strict: a fix makes them fail
# until removed here
KNOWN: dict[str, str] = {
    "10-noflush-fragment-alone-nft": (
        "natlens.parse.save's coverage() reads restore text that is not a dump (no '# "
        "Generated by' header) as whole for each table it holds; a --noflush fragment such as "
        "ufw's after.rules declares none of the table's built-in chains (no ':FORWARD ACCEPT' "
        "line), yet FORWARD is read as empty with policy ACCEPT: a trace of eth0 -> "
        "172.24.0.3:2368 answers ACCEPT with no DROP branch (the kernel drops it in "
        "ufw-docker-logging-deny) and the report says DOCKER-USER is not jumped to "
        "(unused-chain, medium, fix: a second jump). Such a table should be partial "
        "(undeclared built-ins not shown), as -S output without a -P line is"),
    **dict.fromkeys(("09-rhel-prompt-S-legacy", "03-sudo-password-save-nft"), (
        "natlens.parse.save reads every line that opens with '[' as counters ('[0:0] -A ...'): "
        "a RHEL/Fedora prompt line ('[alice@media ~]$ sudo iptables -S') or sudo's "
        "'[sudo] password for alice:' above iptables-save / -S text is refused ('bad "
        "counters') where the listing reader skips it with a note (natlens.parse.prompt)")),
}


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Report:
    """``report(*argv)`` → (exit status, parsed JSON output or the text)."""

    def _run(*argv: str | Path) -> tuple[int, Any]:
        status = main([str(a) for a in argv])
        captured = capsys.readouterr()
        out = captured.err if status == 2 else captured.out
        try:
            return status, json.loads(out)
        except json.JSONDecodeError:
            return status, out

    return _run


def _input(lab: Lab, v: RWVariant, folder: Path) -> Path:
    """Capture the namespace as a snapshot folder whose rules are in the variant's form."""
    lab.capture(folder)
    if v.form != "save":
        # "-save ..." runs iptables-B-save, "-S" runs iptables-B -S; stderr as a terminal
        # shows it unless the form redirects it
        command = f"iptables-{lab.backend}" + (v.form if v.form.startswith("-save")
                                               else f" {v.form}")
        redirect = "" if "2>" in v.form else " 2>&1"
        text = lab.shell(f"stdbuf -oL {command}{redirect}").rstrip("\n") + "\n"
        if v.paste is not None:
            text = v.paste(text, command)
        (folder / "iptables-save.txt").write_text(text, newline="")
    if v.nft_json:
        listing = json.loads(lab.shell("nft -j list ruleset"))
        listing["nftables"] = [i for i in listing["nftables"]
                               if next(iter(i.values())).get("table") != NFT_GUARD
                               and next(iter(i.values())).get("name") != NFT_GUARD]
        (folder / "nft-ruleset.json").write_text(json.dumps(listing))
    if v.docker:
        containers, networks = v.host.docker_json()
        (folder / "docker-containers.json").write_text(json.dumps(containers, indent=1))
        (folder / "docker-networks.json").write_text(json.dumps(networks, indent=1))
    return folder / "iptables-save.txt" if v.single_file else folder


def _iptables_steps(trace: Any) -> Any:
    """``trace`` with only the steps of iptables rules: the kernel's counters are those of
    ``iptables-save -c``; native nftables rules have none."""
    def keep(steps: Any) -> tuple[Any, ...]:
        return tuple(s for s in steps if s.source != "nft")
    return replace(trace, steps=keep(trace.steps),
                   branches=tuple(replace(b, steps=keep(b.steps)) for b in trace.branches))


def _only(observed: dict[str, Any], tables: set[str] | None) -> dict[str, Any]:
    if tables is None:
        return observed
    return {**observed, "counters": {k: n for k, n in observed["counters"].items()
                                     if k.split("|", 1)[0] in tables}}


@pytest.mark.parametrize("variant", [
    pytest.param(v, id=v.id, marks=[pytest.mark.xfail(strict=True, reason=KNOWN[v.id])]
                 if v.id in KNOWN else []) for v in VARIANTS])
def test_real_world_case_variant(variant: RWVariant, tmp_path: Path, report: Report) -> None:
    _require(variant.backend)
    with Lab(variant.backend, variant.host.topology()) as lab:
        lab.load(variant.rules, more=variant.more, nft=variant.nft)
        where = _input(lab, variant, tmp_path / "snap")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snap = natlens.load(where, strict=not variant.lenient)
        problems = []
        for n, want in enumerate(variant.outcomes, 1):
            observed = _only(lab.probe(want.probe), variant.tables)
            kernel = kernel_outcome(want.probe.to_json(), observed)
            assert kernel.verdict == want.verdict, (
                f"probe {n}: the kernel did not do what the variant is about: "
                f"{kernel.summary()}")
            trace = natlens.simulate(snap, packet_of(want.probe.to_json()))
            ignored = frozenset() if variant.tables is None else frozenset(
                ("final_src", "final_dst", "out_interface"))
            agreement = compare(_iptables_steps(trace), want.probe.to_json(), observed,
                                ignored)
            if agreement.differences:
                problems.append(f"probe {n} {want.probe}:\n{agreement.explain()}")
            elif want.headline and trace.verdict.value.replace("REJECT", "DROP") != \
                    kernel.verdict:
                problems.append(f"probe {n} {want.probe}: natlens's headline is "
                                f"{trace.verdict.value}, the kernel's {kernel.verdict} "
                                f"(branches: {agreement.natlens})")
            elif want.check is not None:
                want.check(trace, want.probe)
    assert not problems, f"{variant.id}: natlens disagrees with the kernel\n" + \
        "\n".join(problems)
    if variant.report is not None:
        variant.report(report, where, variant)

