"""The kernel side of the differential: a router namespace with three peers, probes, observation.

``Lab(backend)`` makes (and on ``close`` deletes) four network namespaces with unique names:
the router under test (``ext0`` 10.200.1.1/24, ``int0`` 10.200.2.1/24, ``dmz0`` 10.200.3.1/24,
``lo`` also 10.200.9.1/32, default route via 10.200.1.2, ip_forward=1, rp_filter=0) and one
peer per link; ``Lab(backend, Topology(...))`` makes another router (other interface names,
addresses and routes) the same way. The router holds the test's own nft table ``nlguard`` (no
``ct`` expression, so it never turns conntrack on) whose chains, before (priority -1000) and
after (+1000) every iptables table of each hook, record the probe (marked by its IP id) in
dynamic sets: tuple and interface. At the end of INPUT and of POSTROUTING (any device but
``lo``) the guard drops the probe, so nothing ever answers it, and at the start of OUTPUT it
drops what the router itself would send back (ICMP errors, TCP resets from REJECT), so only the
probe moves a counter.

A peer sends its probe as one Ethernet frame on a packet socket (unicast to the router's MAC, or
broadcast for a broadcast address); the router's own probes go out of a raw IP socket, with the
probe's source as IP_PKTINFO so that the route lookup is a bound socket's. After each
probe one command reads ``iptables-save -c`` and the guard, then flushes the guard's sets and
the conntrack table: the probe's observation is the counter difference and what the guard saw.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diff_gen import PEERS, Probe

__all__ = ["DEFAULT_TOPOLOGY", "GUARD_POINTS", "Lab", "LoadError", "Topology",
           "parse_counters"]

PROBE_ID = 0x4E20
SENTINEL_ID = 0x4E21
"""A frame sent on the same CPU right after each probe and dropped by the guard before any
iptables table: once the guard has seen it, the probe (queued before it on that CPU's backlog,
``enqueue_to_backlog``) has been processed to its end, also when softirqs run late."""
NFT_GUARD = "nlguard"

# name, hook, priority, interface key (iifname/oifname)
GUARD_POINTS = (
    ("pre_start", "prerouting", -1000, "iifname"),
    ("pre_end", "prerouting", 1000, "iifname"),
    ("in_start", "input", -1000, "iifname"),
    ("in_mid", "input", 125, "iifname"),
    ("in_end", "input", 1000, "iifname"),
    ("fwd_start", "forward", -1000, "oifname"),
    ("fwd_end", "forward", 1000, "oifname"),
    ("out_start", "output", -1000, "oifname"),
    ("out_mid", "output", -50, "oifname"),
    ("out_end", "output", 1000, "oifname"),
    ("post_start", "postrouting", -1000, "oifname"),
    ("post_end", "postrouting", 1000, "oifname"),
)


@dataclass(frozen=True)
class Topology:
    """The router's links (interface -> its address, one peer namespace each), its default
    route ``(gateway, interface)``, other routes ``(prefix, interface, gateway or None)`` and
    the extra addresses on ``lo``. ``brd``: addresses added with ``brd +`` (``ip -j addr``
    then has a ``broadcast`` key). The first link carries the sentinel frame."""

    links: Mapping[str, str]
    default_via: tuple[str, str] | None = None
    routes: tuple[tuple[str, str, str | None], ...] = ()
    loopback: tuple[str, ...] = ()
    brd: bool = True
    sysctls: tuple[str, ...] = field(default=())


DEFAULT_TOPOLOGY = Topology(
    {"ext0": "10.200.1.1/24", "int0": "10.200.2.1/24", "dmz0": "10.200.3.1/24"},
    ("10.200.1.2", "ext0"), (), ("10.200.9.1/32",))
assert tuple(DEFAULT_TOPOLOGY.links) == tuple(PEERS)
_CLONE_NEWNET = 0x40000000
_IP_PKTINFO = 8  # <linux/in.h>
_libc = ctypes.CDLL(None, use_errno=True)


class LoadError(Exception):
    """iptables-restore refused a ruleset (its message)."""


def _guard_nft() -> str:
    lines = [f"table ip {NFT_GUARD} {{",
             "  set sentinel { type ipv4_addr; flags dynamic; }",
             f"  chain sentinel {{ type filter hook prerouting priority -1100; ip id "
             f"{SENTINEL_ID} add @sentinel {{ ip saddr }} drop; }}"]
    for name, _hook, _prio, _key in GUARD_POINTS:
        lines.append(f"  set {name} {{ type ipv4_addr . ipv4_addr . inet_service . "
                     "inet_service; flags dynamic; }")
        lines.append(f"  set {name}_if {{ type ifname; flags dynamic; }}")
    for name, hook, prio, key in GUARD_POINTS:
        body = [f"ip id {PROBE_ID} add @{name} {{ ip saddr . ip daddr . th sport . th dport }} "
                f"add @{name}_if {{ {key} }}"]
        if name == "out_start":
            body.insert(0, f"ip id != {PROBE_ID} meta l4proto icmp icmp type != echo-request "
                           "drop")
            body.insert(1, f"ip id != {PROBE_ID} tcp flags & rst == rst drop")
        if name == "in_end":
            body.append(f"ip id {PROBE_ID} drop")
        if name == "post_end":
            body.append(f'ip id {PROBE_ID} oifname != "lo" drop')
        lines.append(f"  chain {name} {{ type filter hook {hook} priority {prio}; "
                     + "; ".join(body) + "; }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _flush_nft() -> str:
    names = ["sentinel", *(n for name, *_ in GUARD_POINTS for n in (name, f"{name}_if"))]
    return "".join(f"flush set ip {NFT_GUARD} {n}\n" for n in names)


def parse_counters(save: str) -> dict[str, int]:
    """``iptables-save -c`` → ``{"table|chain|N" / "table|chain|policy": packets}``."""
    out: dict[str, int] = {}
    table = ""
    index: dict[str, int] = {}
    for line in save.splitlines():
        if line.startswith("*"):
            table, index = line[1:].strip(), {}
        elif line.startswith(":"):
            name, policy, counts = ([*line[1:].split(), "", ""])[:3]
            if policy != "-" and counts.startswith("["):
                out[f"{table}|{name}|policy"] = int(counts[1:].split(":")[0])
        elif line.startswith("["):
            counts, _, rule = line.partition(" ")
            chain = rule.split()[1]
            index[chain] = index.get(chain, 0) + 1
            out[f"{table}|{chain}|{index[chain]}"] = int(counts[1:].split(":")[0])
    return out


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_packet(p: Probe, ident: int = PROBE_ID) -> bytes:
    """The probe as an IPv4 packet (TCP SYN, UDP datagram, or ICMP echo with id = sport)."""
    src, dst = socket.inet_aton(p.src), socket.inet_aton(p.dst)
    payload = b"natlens"
    if p.proto == "tcp":
        number = 6
        hdr = struct.pack("!HHIIBBHHH", p.sport, p.dport, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, number, len(hdr) + len(payload))
        csum = _checksum(pseudo + hdr + payload)
        l4 = hdr[:16] + struct.pack("!H", csum) + hdr[18:] + payload
    elif p.proto == "udp":
        number = 17
        length = 8 + len(payload)
        hdr = struct.pack("!HHHH", p.sport, p.dport, length, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, number, length)
        csum = _checksum(pseudo + hdr + payload) or 0xFFFF
        l4 = hdr[:6] + struct.pack("!H", csum) + payload
    else:
        number = 1
        hdr = struct.pack("!BBHHH", 8, 0, 0, p.sport, 1)
        csum = _checksum(hdr + payload)
        l4 = hdr[:2] + struct.pack("!H", csum) + hdr[4:] + payload
    total = 20 + len(l4)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0, 64, number, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return ip + l4


def _run(cmd: list[str], *, input_text: str | None = None, check: bool = True
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, input=input_text, capture_output=True, text=True, check=check)


class _Shell:
    """A long-lived ``sh`` inside a namespace: one command line in, its output back (saves a
    process start per command, which is most of a probe's cost)."""

    _END = "__natlens_shell_end__"

    def __init__(self, ns: str) -> None:
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "sh"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)

    def __call__(self, command: str) -> tuple[int, str]:
        """Run ``command``; its exit status and output (stdout and stderr)."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"{command}\necho; echo {self._END} $?\n")
        self.proc.stdin.flush()
        lines: list[str] = []
        for line in self.proc.stdout:
            if line.startswith(self._END):
                return int(line.split()[1]), "".join(lines)
            lines.append(line)
        raise RuntimeError(f"shell in namespace ended: {''.join(lines)[-500:]}")

    def close(self) -> None:
        """End the shell."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Lab:
    """The namespaces of one differential run with one iptables backend (``nft``/``legacy``)."""

    def __init__(self, backend: str, topology: Topology = DEFAULT_TOPOLOGY) -> None:
        self.backend = backend
        self.topology = topology
        suffix = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.router = f"nlr-{backend[:3]}-{suffix}"
        self.peers = {iface: f"nlp-{n}-{suffix}" for n, iface in enumerate(topology.links)}
        self._first = next(iter(topology.links))
        self._sockets: dict[str, socket.socket] = {}
        self._macs: dict[str, bytes] = {}
        self._peer_macs: dict[str, bytes] = {}
        self.version_line = ""
        self._made: list[str] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="natlens-lab-"))
        self._rules_file = self._tmp / "rules.txt"
        self._guard_file = self._tmp / "guard.nft"
        self._guard_file.write_text(_flush_nft())
        self._ip_json: dict[str, str] = {}
        self._baseline: dict[str, int] = {}
        self._save = ""
        self._awaiting = False
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # -- tools ----------------------------------------------------------------------------------

    def tool(self, name: str) -> str:
        """``iptables-nft-save`` / ``iptables-legacy-restore`` ..."""
        return f"iptables-{self.backend}-{name}"

    def in_router(self, *cmd: str, input_text: str | None = None, check: bool = True
                  ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the router namespace."""
        return _run(["nsenter", f"--net=/run/netns/{self.router}", *cmd],
                    input_text=input_text, check=check)

    # -- setup ----------------------------------------------------------------------------------

    def _setup(self) -> None:
        for ns in (self.router, *self.peers.values()):
            _run(["ip", "netns", "add", ns])
            self._made.append(ns)
        r = self.router
        top = self.topology
        brd = ["brd", "+"] if top.brd else []
        for iface, peer in self.peers.items():
            _run(["ip", "link", "add", iface, "netns", r, "type", "veth", "peer", "name", "p",
                  "netns", peer])
            _run(["ip", "-n", r, "addr", "add", top.links[iface], *brd, "dev", iface])
            _run(["ip", "-n", r, "link", "set", iface, "up"])
            _run(["ip", "-n", peer, "link", "set", "p", "up"])
            _run(["ip", "-n", peer, "link", "set", "lo", "up"])
        _run(["ip", "-n", r, "link", "set", "lo", "up"])
        for addr in top.loopback:
            _run(["ip", "-n", r, "addr", "add", addr, "dev", "lo"])
        if top.default_via is not None:
            _run(["ip", "-n", r, "route", "add", "default", "via", top.default_via[0], "dev",
                  top.default_via[1]])
        for prefix, dev, via in top.routes:
            _run(["ip", "-n", r, "route", "add", prefix, *(["via", via] if via else []),
                  "dev", dev])
        sysctls = ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                   "net.ipv4.conf.default.rp_filter=0",
                   *(f"net.ipv4.conf.{i}.rp_filter=0" for i in top.links), *top.sysctls]
        self.in_router("sysctl", "-q", "-w", *sysctls)
        self.in_router("nft", "-f", "-", input_text=_guard_nft())
        links = json.loads(_run(["ip", "-n", r, "-j", "link", "show"]).stdout)
        self._macs = {link["ifname"]: bytes.fromhex(link["address"].replace(":", ""))
                      for link in links if link["ifname"] in top.links}
        for iface, peer in self.peers.items():
            info = json.loads(_run(["ip", "-n", peer, "-j", "link", "show", "p"]).stdout)
            self._peer_macs[iface] = bytes.fromhex(info[0]["address"].replace(":", ""))
            self._sockets[iface] = self._socket_in(peer, socket.AF_PACKET, socket.SOCK_RAW, 0)
            self._sockets[iface].bind(("p", 0))
        raw = self._socket_in(r, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._sockets["local"] = raw
        self._shell = _Shell(r)
        self.version_line = self.in_router(self.tool("save"), "--version", check=False
                                           ).stdout.strip() or \
            _run(["iptables-" + self.backend, "--version"]).stdout.strip()

    @staticmethod
    def _socket_in(ns: str, family: int, kind: int, proto: int) -> socket.socket:
        """A socket made inside namespace ``ns`` (the thread returns to its own afterwards)."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(target, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {ns}")
            try:
                return socket.socket(family, kind, proto)
            finally:
                if _libc.setns(own, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(own)
            os.close(target)

    def close(self) -> None:
        """Close the sockets and delete every namespace this lab made."""
        for s in self._sockets.values():
            s.close()
        self._sockets.clear()
        shell = getattr(self, "_shell", None)
        if shell is not None:
            shell.close()
            del self._shell
        shutil.rmtree(self._tmp, ignore_errors=True)
        for ns in self._made:
            _run(["ip", "netns", "delete", ns], check=False)
        self._made.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- a ruleset ------------------------------------------------------------------------------

    def load(self, text: str, *, more: str = "", nft: str = "") -> None:
        """Replace the router's iptables rules with ``text``; reset counters and conntrack.
        ``more`` is then added with ``iptables-restore -n`` (a file such as ufw's after.rules,
        loaded without flushing), and ``nft`` with ``nft -f`` (native rules beside them).

        Raises ``LoadError`` with iptables-restore's (or nft's) message when it refuses them.
        """
        steps = [(text, f"{self.tool('restore')} <")]
        if more:
            steps.append((more, f"{self.tool('restore')} -n <"))
        if nft:
            steps.append((nft, "nft -f"))
        for content, command in steps:
            self._rules_file.write_text(content)
            status, out = self._shell(f"{command} {self._rules_file}")
            if status != 0:
                raise LoadError(out.strip() or f"exit {status}")
        self._baseline, _, self._save = self._read()

    def shell(self, command: str) -> str:
        """Run ``command`` (a shell line) in the router; its output, stdout and stderr
        interleaved as a terminal shows them."""
        return self._shell(command)[1]

    def capture(self, folder: Path) -> None:
        """Write the router as a natlens snapshot folder (iptables-save, ip -j addr/route,
        meta.json with the backend), what an operator's capture holds."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "iptables-save.txt").write_text(self._save)
        if not self._ip_json:
            self._ip_json = {
                "ip-addr.json": self.in_router("ip", "-j", "addr", "show").stdout,
                "ip-route.json": self.in_router("ip", "-j", "route", "show").stdout}
        for name, text in self._ip_json.items():
            (folder / name).write_text(text)
        version = self.version_line.split()[1].lstrip("v") if self.version_line else ""
        meta = {"format": 1, "tool": "natlens differential (tests/differential)",
                "iptables_backend": "nf_tables" if self.backend == "nft" else "legacy",
                "iptables_version": version, "iptables_version_line": self.version_line,
                "kernel": os.uname().release,
                "sysctl": {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "0",
                           "net.ipv4.conf.all.route_localnet": "0",
                           "net.ipv4.conf.all.rp_filter": "0",
                           **dict(kv.split("=", 1) for kv in self.topology.sysctls)}}
        (folder / "meta.json").write_text(json.dumps(meta, indent=1))

    # -- a probe --------------------------------------------------------------------------------

    def _read(self) -> tuple[dict[str, int], dict[str, Any], str]:
        """Counters, the guard's listing and the save text, once the sentinel has been seen;
        then the guard's sets and the conntrack table are emptied for the next probe."""
        for attempt in range(200):
            _, out = self._shell(f"{self.tool('save')} -c; echo @@@; nft -j list table ip "
                                 f"{NFT_GUARD}")
            save, _, guard_text = out.partition("@@@")
            guard = json.loads(guard_text.strip().splitlines()[0])
            if not self._awaiting or _set_elements(guard, "sentinel"):
                break
            time.sleep(0.005 * (attempt + 1))
        else:
            raise RuntimeError("the sentinel frame never reached the router")
        self._shell(f"nft -f {self._guard_file}; conntrack -F >/dev/null 2>&1")
        self._awaiting = False
        return parse_counters(save), guard, save

    def probe(self, p: Probe) -> dict[str, Any]:
        """Send ``p`` once and return its observation (``diff_oracle`` format)."""
        packet = ip_packet(p)
        error: str | None = None
        sentinel = Probe(self._first, "192.0.2.99", "192.0.2.98", "udp", 9, 9)
        frame_of = {iface: dst + self._peer_macs[iface] + b"\x08\x00"
                    for iface, dst in self._macs.items()}
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus)})  # one CPU: one backlog, probe then sentinel
        try:
            try:
                if p.ingress == "local":
                    # IP_PKTINFO's source makes the first route lookup use it, as for a
                    # socket bound to it (a 127.0.0.1 source cannot leave by another device)
                    info = struct.pack("=I4s4s", 0, socket.inet_aton(p.src), b"\0" * 4)
                    self._sockets["local"].sendmsg(
                        [packet], [(socket.IPPROTO_IP, _IP_PKTINFO, info)], 0, (p.dst, 0))
                else:
                    frame = frame_of[p.ingress] + packet
                    if p.to_json().get("l2bcast", False):
                        frame = b"\xff" * 6 + frame[6:]
                    self._sockets[p.ingress].send(frame)
            except OSError as exc:
                error = f"send: {exc}"
            self._sockets[self._first].send(frame_of[self._first]
                                            + ip_packet(sentinel, SENTINEL_ID))
            self._awaiting = True
        finally:
            os.sched_setaffinity(0, cpus)
        counters, guard, _ = self._read()
        diff = {k: v - self._baseline.get(k, 0) for k, v in counters.items()
                if v - self._baseline.get(k, 0)}
        self._baseline = counters
        return {"ipid": PROBE_ID, "send_error": error, "counters": diff,
                "guard": _guard_view(guard)}


def _set_elements(listing: Mapping[str, Any], name: str) -> list[Any]:
    for item in listing.get("nftables", []):
        s = item.get("set")
        if s is not None and s["name"] == name:
            return list(s.get("elem", []))
    return []


def _guard_view(listing: Mapping[str, Any]) -> dict[str, Any]:
    sets: dict[str, list[Any]] = {}
    for item in listing.get("nftables", []):
        s = item.get("set")
        if s is not None:
            sets[s["name"]] = s.get("elem", [])
    view: dict[str, Any] = {}
    for name, *_ in GUARD_POINTS:
        tuples = []
        for e in sets.get(name, []):
            e = e.get("elem", {}).get("val", e) if isinstance(e, dict) else e
            if isinstance(e, dict) and "concat" in e:
                tuples.append(list(e["concat"]))
        if tuples:
            ifs = {str(i): 1 for i in sets.get(f"{name}_if", [])}
            view[name] = {"tuples": tuples, "if": ifs, "marks": []}
    return view
