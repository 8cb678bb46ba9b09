"""``natlens verify``'s connection check: real TCP/UDP connections against ``Trace.connection``.

Layouts built from the ``no-userland-proxy`` fixture (Docker without the userland proxy: hairpin
mode on, ``route_localnet=1`` on docker0, the published port DNATed from every interface):

* as captured: every connection completes (hairpin through Docker's MASQUERADE, 127.0.0.1
  through ``--src-type LOCAL`` MASQUERADE);
* **faulty**: without the hairpin MASQUERADE and without the ``--src-type LOCAL`` MASQUERADE: the
  container reaching its own published port and a host process reaching 127.0.0.1:8080 get their
  first packet through, but the reply never comes back: both connections fail in the kernel, as
  natlens says; from outside and from the host's own address they complete;
* ``route_localnet=0``: the first packet of the loopback connection is already dropped (kernel
  and natlens), so there is no connection to try.

A trace whose ``connection`` is flipped must show up as a connection disagreement (exit 1), so
the check can fail. The whole-fixture runs are in ``test_verify.py``. Needs root (``kernel``);
about 20 s.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import natlens
from natlens.cli import main
from natlens.netfilter import Packet
from natlens.netfilter.engine import Simulator
from natlens.netfilter.trace import Connection, Trace
from natlens.verify import ns as netns
from natlens.verify.compare import verify
from natlens.verify.connect import RESPONDER, ConnectionResult, Listener, plan_attempts
from natlens.verify.generate import Probe
from natlens.verify.runs import RUN_DIR, Run, cleanup, start_time
from natlens.verify.topology import plan

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "fixtures" / "no-userland-proxy"
HAIRPIN_MASQ = "-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 " \
    "-j MASQUERADE\n"
LOCAL_MASQ = "-A POSTROUTING -o docker0 -m addrtype --src-type LOCAL -j MASQUERADE\n"

PROBES = [
    Probe(Packet(in_interface="docker0", src="172.17.0.2", dst="192.0.2.2", sport=21001,
                 dport=8080), "container", "own published port (hairpin)"),
    Probe(Packet(local_origin=True, src="127.0.0.1", dst="127.0.0.1", sport=21002, dport=8080),
          "host", "published port via 127.0.0.1"),
    Probe(Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", sport=21003,
                 dport=8080), "outside", "published port"),
    Probe(Packet(local_origin=True, src="192.0.2.2", dst="192.0.2.2", sport=21004, dport=8080),
          "host", "published port via the host's address"),
]


def _needs_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the kernel tests as root", pytrace=False)
        pytest.skip("needs root for network namespaces")


def _layout(tmp_path: Path, *, drop: tuple[str, ...] = (), route_localnet: str = "1") -> Path:
    folder = tmp_path / "snap"
    shutil.copytree(FIXTURE, folder)
    rules = folder / "iptables-save.txt"
    text = rules.read_text()
    for rule in drop:
        assert rule in text, rule
    rules.write_text("".join(line for line in text.splitlines(keepends=True)
                             if not any(line.endswith(rule) for rule in drop)))
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["userland_proxy"] is False
    meta["sysctl"]["net.ipv4.conf.docker0.route_localnet"] = route_localnet
    meta_path.write_text(json.dumps(meta))
    return folder


def _outcome(report: natlens.verify.VerifyReport) -> list[tuple[str, bool]]:
    return [(c.probe.why, c.established) for c in report.connections]


@pytest.mark.kernel
@pytest.mark.parametrize(("drop", "expected"), [
    ((), [True, True, True, True]),
    ((HAIRPIN_MASQ, LOCAL_MASQ), [False, False, True, True]),
], ids=["as-captured", "without-hairpin-and-local-masquerade"])
def test_connections_agree_with_the_kernel(tmp_path: Path, drop: tuple[str, ...],
                                           expected: list[bool]) -> None:
    _needs_root()
    report = verify(natlens.load(_layout(tmp_path, drop=drop)), probes=PROBES)
    # the first packet of each gets through: the connection check is what tells them apart
    assert [r.observation.verdict.value for r in report.results] == ["ACCEPT"] * 4
    assert _outcome(report) == [(p.why, e) for p, e in zip(PROBES, expected, strict=True)], \
        report.render()
    assert [c.expected for c in report.connections] == expected
    assert [c.status for c in report.connections] == ["agree"] * 4, report.render()
    assert report.connection_disagreements == []
    assert report.failed is bool(report.disagreements)  # only packets can fail it here
    summary = report.to_dict()["summary"]["connections"]
    assert summary == {"tried": 4, "agreements": 4, "disagreements": 0, "undecided": 0,
                       "inconclusive": 0}


@pytest.mark.kernel
def test_loopback_dnat_without_route_localnet_drops_the_first_packet(tmp_path: Path) -> None:
    _needs_root()
    report = verify(natlens.load(_layout(tmp_path, route_localnet="0")), probes=PROBES[1:2])
    (result,) = report.results
    assert result.observation.verdict.value == "DROP"
    assert result.agrees, report.render()
    assert result.trace.connection is not None
    assert result.trace.connection.established is False
    assert report.connections == []  # no first packet, no connection to open


def _flip(monkeypatch: pytest.MonkeyPatch) -> None:
    """natlens says the opposite about every connection it decided."""
    real = Simulator.trace

    def flipped(self: Simulator, packet: Packet, **kw: object) -> Trace:
        trace = real(self, packet, **kw)  # type: ignore[arg-type]
        c = trace.connection
        if c is None or c.established is None:
            return trace
        return dataclasses.replace(trace, connection=Connection(not c.established,
                                                                f"flipped: {c.why}"))

    monkeypatch.setattr(Simulator, "trace", flipped)


@pytest.mark.kernel
def test_a_wrong_connection_part_is_a_disagreement(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_root()
    _flip(monkeypatch)
    report = verify(natlens.load(_layout(tmp_path, drop=(HAIRPIN_MASQ, LOCAL_MASQ))),
                    probes=PROBES)
    assert report.disagreements == []  # the packets themselves still agree
    assert [c.status for c in report.connections] == ["disagree"] * 4
    assert report.failed
    text = report.render()
    assert "connection disagreement 1: Packet(in docker0, tcp 172.17.0.2:21001" in text
    assert "natlens says: established: flipped:" in text
    assert "kernel says:  NOT established (" in text
    data = report.to_dict()
    assert data["summary"]["connections"]["disagreements"] == 4
    first = data["connection_disagreements"][0]
    assert first["natlens"]["established"] is True
    assert first["kernel"]["established"] is False


@pytest.mark.kernel
def test_cli_exit_status_counts_connection_disagreements(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _needs_root()
    folder = str(_layout(tmp_path))
    _flip(monkeypatch)
    status = main(["verify", folder, "--packets", "1", "--connections", "3", "--format",
                   "json"])
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["disagreements"] == 0
    assert out["summary"]["connections"]["tried"] == 3
    assert out["summary"]["connections"]["disagreements"] == 3
    assert status == 1
    # without the connection check the same run passes
    monkeypatch.undo()
    assert main(["verify", folder, "--packets", "1", "--connections", "0"]) == 0
    assert "connections:" not in capsys.readouterr().out


@pytest.mark.kernel
def test_responders_are_killed_and_reaped(monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_root()
    started: list[int] = []
    real = Run.record_responder

    def record(self: Run, pid: int) -> None:
        started.append(pid)
        real(self, pid)
        assert json.loads(self.state.read_text())["responders"][-1]["pid"] == pid

    monkeypatch.setattr(Run, "record_responder", record)
    report = verify(natlens.load(FIXTURE), probes=PROBES)
    assert len(report.connections) == 4
    assert started  # one responder: every probe lands in the container
    assert all(start_time(pid) is None for pid in started)  # gone, and no zombie left
    assert not [n for n in netns.listing() if n.startswith(f"{netns.PREFIX}{os.getpid()}-")]


@pytest.mark.kernel
def test_cleanup_kills_the_responders_of_a_dead_run() -> None:
    """A SIGKILLed run's responders (pid and start time recorded) are killed by ``cleanup``;
    a process whose start time differs from the record (a reused pid) is left alone."""
    _needs_root()
    dead = subprocess.Popen(["true"])
    dead.wait()
    token = secrets.token_hex(3)
    responder = subprocess.Popen(["sleep", "30"])
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        run = Run(dead.pid, token, None)
        run.responders = [(responder.pid, start_time(responder.pid)),
                          (bystander.pid, (start_time(bystander.pid) or 0) + 1)]
        run.record([])
        assert run.state.is_file()
        cleanup()
        assert responder.wait(timeout=5) == -9
        assert bystander.poll() is None
        assert not run.state.exists()
    finally:
        for proc in (responder, bystander):
            proc.kill()
            proc.wait()
        (RUN_DIR / f"verify-{dead.pid}-{token}.json").unlink(missing_ok=True)


# -- without root -------------------------------------------------------------------------------


def test_plan_attempts_says_what_it_skips() -> None:
    snap = natlens.load(FIXTURE)
    draft = plan(snap, prefix=f"nlv-{os.getpid()}-abcdef-")
    sim = snap.simulator
    probes = [*PROBES,
              Probe(Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2",
                           proto="icmp"), "outside", "ping"),
              Probe(Packet(in_interface="docker0", src="172.17.0.2", dst="172.17.0.2",
                           sport=21005, dport=80), "container", "itself")]
    attempts, skipped = plan_attempts(draft, [(p, sim.trace(p.packet)) for p in probes], 10)
    assert [a.probe.why for a in attempts] == [p.why for p in PROBES]
    assert skipped == {"icmp has no connection to open": 1,
                       "the source namespace holds the destination: a real connection would "
                       "not leave it": 1}
    hairpin, loopback, outside, own = attempts
    container = next(leaf.ns for leaf in draft.leaves if leaf.role == "container")
    assert hairpin.source_ns == container
    assert hairpin.listeners[0].ns == container
    assert str(hairpin.listeners[0].ip) == "172.17.0.2"
    assert hairpin.listeners[0].port == 80
    assert loopback.source_ns == own.source_ns == draft.router
    # the outside peer takes the outside source address on its lo
    (extra,) = outside.extra
    assert str(extra[1]) == "198.51.100.7"
    assert plan_attempts(draft, [(p, sim.trace(p.packet)) for p in probes], 2)[0] == \
        attempts[:2]


def test_listener_spec_takes_only_checked_values() -> None:
    ip = ipaddress.ip_address("fd00::2")
    assert Listener("ns", "udp", ip, 53).spec() == "udp,fd00::2,53"
    for proto, port in (("tcp; rm -rf /", 80), ("tcp", 0), ("udp", 70000)):
        with pytest.raises(ValueError, match="bad listener"):
            Listener("ns", proto, ip, port).spec()


@pytest.mark.kernel
def test_a_responder_exits_when_its_run_goes_away() -> None:
    """The responder echoes, refuses a port it cannot bind, and exits when its input closes
    (what happens when the verify run that started it is killed)."""
    _needs_root()
    name = f"nlc-resp-{os.getpid()}-{secrets.token_hex(3)}"
    netns.add(name)
    try:
        netns.run(["ip", "link", "set", "dev", "lo", "up"], ns=name)
        argv = ["ip", "netns", "exec", name, sys.executable, "-I", "-S", "-c", RESPONDER,
                "udp,127.0.0.1,5353", "tcp,192.0.2.99,80"]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("refused tcp,192.0.2.99,80 ")
        assert proc.stdout.readline() == "ready\n"
        with netns.entered(name):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            sock.settimeout(2)
            sock.sendto(b"ping", ("127.0.0.1", 5353))
            assert sock.recv(16) == b"ping"
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=5) == 0
        proc.stdout.close()
    finally:
        netns.delete(name)


@pytest.mark.parametrize(("said", "doubt", "happened", "status"), [
    (True, False, True, "agree"),
    (False, False, False, "agree"),
    (True, False, False, "disagree"),
    (False, False, True, "disagree"),
    (None, False, True, "undecided"),
    (None, False, False, "undecided"),
    (True, True, False, "inconclusive"),
])
def test_connection_status(said: bool | None, doubt: bool, happened: bool, status: str) -> None:
    """natlens's null is never an agreement; a difference where natlens doubted the packet is
    inconclusive, as for packets."""
    probe = PROBES[2]
    trace = natlens.load(FIXTURE).simulator.trace(probe.packet)
    trace = dataclasses.replace(trace, connection=Connection(said, "because"))
    result = ConnectionResult(probe, trace, happened, "how", doubt)
    assert result.status == status
    assert result.to_dict()["natlens"] == {"established": said, "why": "because"}
    assert result.to_dict()["kernel"]["established"] is happened
