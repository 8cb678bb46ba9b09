"""Faults a user trial found in the host files, checked through the CLI on fixture copies.

- ``ss.txt`` as ``ss -ltup`` prints it without ``-n`` (``0.0.0.0:ssh``) was read as "nothing
  listens": a local address whose port or address is not a number is an error naming file
  and line, with the hint to capture with ``-n`` (natlens does not guess service names);
- the docker-proxy note of a trace claimed the proxy accepts a connection that ``ss.txt``
  shows nobody listens for (ss.txt is the evidence: ``natlens.explain.proxy_notes``);
- a ``sysctl.txt`` value natlens reads that is not an integer (``ip_forward = banana``) was
  taken as "not in the snapshot" (the kernel prints these ints in decimal: proc_dointvec).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from natlens.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
_HEADER = "Netid State Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
_HINT = "capture with 'ss -ltnup': -n prints numbers, not service or host names"
_SSH = ["--in", "wg0", "--src", "10.8.0.5", "--dst", "192.0.2.2", "--dport", "22"]
_WEB = ["--in", "docker0", "--src", "172.17.0.3", "--dst", "192.0.2.2", "--dport", "8080"]


def _snap(tmp_path: Path, **files: str) -> Path:
    """A copy of fixtures/multi-interface-ufw (userland proxy on, 8080 published by
    natlens-web) with ``files`` (``ss="..."``, ``sysctl="..."``) written over it."""
    folder = tmp_path / "snap"
    shutil.copytree(FIXTURES / "multi-interface-ufw", folder)
    for name, text in files.items():
        (folder / f"{name}.txt").write_text(text)
    return folder


def _trace(folder: Path, argv: list[str], capsys: pytest.CaptureFixture[str],
           ) -> tuple[int, str, str]:
    status = main(["trace", str(folder), *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(("endpoint", "what"), [
    ("0.0.0.0:ssh", "port 'ssh' is not a number"),  # ss -ltup: service names
    ("0.0.0.0:notaport", "port 'notaport' is not a number"),
    ("[::]:https", "port 'https' is not a number"),
    ("127.0.0.53%lo:domain", "port 'domain' is not a number"),
    ("localhost:22", "address 'localhost' is not an IP address"),  # ss -r: host names
    ("[localhost]:22", "address '[localhost]' is not an IP address"),
    (":22", "address '' is not an IP address"),
    ("0.0.0.0", "no ':PORT'"),
])
def test_ss_names_instead_of_numbers_are_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, what: str) -> None:
    line = f'tcp LISTEN 0 4096 {endpoint} 0.0.0.0:* users:(("sshd",pid=1,fd=3))\n'
    folder = _snap(tmp_path, ss=_HEADER + line)
    status, out, err = _trace(folder, _SSH, capsys)
    assert (status, out) == (2, "")
    assert err == (f"natlens: error: {folder}/ss.txt:2: bad local address '{endpoint}': "
                   f"{what}; {_HINT}\n")


@pytest.mark.parametrize("line", [
    "tcp ESTAB 0 0 192.0.2.2:22 10.8.0.5:40000",  # ss -tan: a connection, not a listener
    "tcp LISTEN x 4096 0.0.0.0:22 0.0.0.0:*",
])
def test_ss_other_fields_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     line: str) -> None:
    folder = _snap(tmp_path, ss=_HEADER + line + "\n")
    status, _, err = _trace(folder, _SSH, capsys)
    assert status == 2
    assert err.startswith(f"natlens: error: {folder}/ss.txt:2: not a listening socket line")
    assert err.endswith("capture with 'ss -ltnup'\n")
    assert err.count("\n") == 1


@pytest.mark.parametrize(("endpoint", "established"), [
    ("0.0.0.0:22", True), ("*:22", True), ("192.0.2.2%wg0:22", True),
    ("192.0.2.2%eth0:22", False),  # bound to another device
    ("[::]:22", False),  # IPv6 only
    ("0.0.0.0:*", False),  # port 0: bound to no port
])
def test_ss_numeric_forms_stay_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        endpoint: str, established: bool) -> None:
    folder = _snap(tmp_path, ss=_HEADER + f"tcp LISTEN 0 4096 {endpoint} 0.0.0.0:*\n")
    status, out, err = _trace(folder, _SSH, capsys)
    assert (status, err) == (0, "")
    conn = next(x for x in out.splitlines() if x.startswith("connection: "))
    assert conn.startswith("connection: established" if established else
                           "connection: NOT established: nothing listens on tcp 192.0.2.2:22")


def _note(out: str) -> str:
    notes = [x for x in out.splitlines() if x.startswith("note: ")]
    assert len(notes) == 1, out
    return notes[0]


_PUBLISHED = ("note: 192.0.2.2:8080/tcp is published by natlens-web (0.0.0.0:8080->80/tcp); "
              "no NAT rule rewrote this packet: ")


@pytest.mark.parametrize(("ss", "established", "note"), [
    (None, False, "the userland proxy is on, but no docker-proxy listens on tcp port 8080 per "
     "ss.txt (a stale or failed proxy)"),  # the fixture's own, empty ss.txt
    (_HEADER + "tcp LISTEN 0 4096 127.0.0.1:8080 0.0.0.0:* "
     'users:(("docker-proxy",pid=7,fd=4))\n', False,
     "the userland proxy is on, but no docker-proxy listens on tcp port 8080 per ss.txt (a "
     "stale or failed proxy)"),  # listens, but on another address
    (_HEADER + "tcp LISTEN 0 4096 0.0.0.0:8080 0.0.0.0:* "
     'users:(("docker-proxy",pid=7,fd=4))\n', True,
     "docker-proxy (userland proxy on) accepts it on the host and opens its own connection "
     "to 172.17.0.2:80"),
    (_HEADER + 'tcp LISTEN 0 4096 *:8080 *:* users:(("nginx",pid=8,fd=4))\n', True,
     "the userland proxy is on, but nginx listens on tcp port 8080 per ss.txt, not "
     "docker-proxy: it takes the connection, not natlens-web"),
])
def test_proxy_note_agrees_with_ss(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   ss: str | None, established: bool, note: str) -> None:
    folder = _snap(tmp_path) if ss is None else _snap(tmp_path, ss=ss)
    status, out, err = _trace(folder, _WEB, capsys)
    assert (status, err) == (0, "")
    assert _note(out) == _PUBLISHED + note
    conn = next(x for x in out.splitlines() if x.startswith("connection: "))
    assert conn.startswith("connection: established" if established else
                           "connection: NOT established: nothing listens on tcp 192.0.2.2:8080")


def test_proxy_note_without_ss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No ss.txt: docker inspect's published ports are what natlens knows; the note and the
    connection both say docker-proxy takes it."""
    folder = _snap(tmp_path)
    (folder / "ss.txt").unlink()
    status, out, _ = _trace(folder, _WEB, capsys)
    assert status == 0
    assert _note(out) == _PUBLISHED + ("docker-proxy (userland proxy on) accepts it on the "
                                       "host and opens its own connection to 172.17.0.2:80")
    assert "connection: established" in out


@pytest.mark.parametrize(("ss", "said"), [
    (None, "no docker-proxy takes it; whether another process listens on the host port is not "
     "known (no ss.txt)"),
    ("", "nothing listens on the host port, the connection is refused"),
])
def test_proxy_off_note_says_what_is_known(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           ss: str | None, said: str) -> None:
    """Userland proxy off: without ss.txt the note does not claim nothing listens (the
    connection line says it is not known); with an empty ss.txt it does, as the trace does."""
    folder = _snap(tmp_path) if ss is None else _snap(tmp_path, ss=_HEADER + ss)
    meta = json.loads((folder / "meta.json").read_text())
    meta["userland_proxy"] = False
    (folder / "meta.json").write_text(json.dumps(meta))
    if ss is None:
        (folder / "ss.txt").unlink()
    status, out, _ = _trace(folder, _WEB, capsys)
    assert status == 0
    assert _note(out).endswith(f"userland proxy is off and no NAT rule rewrote this packet: {said}")
    conn = next(x for x in out.splitlines() if x.startswith("connection: "))
    assert conn.startswith("connection: unknown" if ss is None else "connection: NOT established")


@pytest.mark.parametrize(("line", "value"), [
    ("net.ipv4.ip_forward = banana", "'banana'"),
    ("net.ipv4.ip_forward = 1.0", "'1.0'"),
    ("net.ipv4.ip_forward =", "''"),
    ("net.ipv6.conf.all.forwarding = on", "'on'"),
    ("net.ipv4.conf.eth0.route_localnet = yes", "'yes'"),
    ("net/ipv4/conf/all/route_localnet = true", "'true'"),
    ("net.bridge.bridge-nf-call-iptables = 0x1", "'0x1'"),
    ("net.bridge.bridge-nf-call-ip6tables = -", "'-'"),
])
def test_sysctl_value_not_an_integer(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     line: str, value: str) -> None:
    folder = _snap(tmp_path, sysctl=f"net.ipv4.conf.all.route_localnet = 0\n{line}\n")
    status, out, err = _trace(folder, _SSH, capsys)
    assert (status, out) == (2, "")
    name = line.split("=", maxsplit=1)[0].strip().replace("/", ".")
    assert err == (f"natlens: error: {folder}/sysctl.txt:2: {name} = {value}: not an integer, "
                   "as the kernel prints it\n")


def test_sysctl_integers_and_unread_names_accepted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Integers pass, and so does any value of a sysctl natlens does not read; forwarding
    off is then what the trace says."""
    folder = _snap(tmp_path, sysctl="net.ipv4.ip_forward = 0\nkernel.hostname = vm\n"
                   "net.core.default_qdisc = fq_codel\n")
    status, out, err = _trace(folder, ["--in", "wg0", "--src", "10.8.0.5", "--dst",
                                       "172.17.0.2", "--dport", "80"], capsys)
    assert (status, err) == (1, "")  # dropped: the trace's exit status says so
    assert "net.ipv4.ip_forward=0 (forwarding off): dropped" in out


@pytest.mark.parametrize(("value", "status", "said"), [
    ("0", 1, "net.ipv4.ip_forward=0 (forwarding off): dropped"),
    ("2", 0, "=> ACCEPT (forward)"),  # non-zero is on (IN_DEV_FORWARD), not "not known"
    ("1", 0, "=> ACCEPT (forward)"),
])
def test_sysctl_integer_values_are_switches(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            value: str, status: int, said: str) -> None:
    folder = _snap(tmp_path, sysctl=f"net.ipv4.ip_forward = {value}\n")
    got, out, err = _trace(folder, ["--in", "wg0", "--src", "10.8.0.5", "--dst",
                                    "172.17.0.2", "--dport", "80"], capsys)
    assert (got, err) == (status, "")
    assert said in out
    assert "not in the snapshot" not in out
