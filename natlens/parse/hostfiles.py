"""Plain-text host files of a snapshot: ``sysctl.txt`` and ``ss.txt``.

``sysctl.txt`` is what ``sysctl NAME ...`` prints (sysctl(8)): ``name = value`` lines; lines the
tool prints for a missing key (``sysctl: cannot stat /proc/sys/...``) are skipped. ``ss.txt`` is
``ss -ltnup`` (ss(8)): a header, then one listening socket per line,
``Netid State Recv-Q Send-Q Local-Address:Port Peer-Address:Port [Process]``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from natlens.errors import SnapshotError, excerpt
from natlens.inputs import is_decimal as _decimal
from natlens.parse.tokens import split_lines

__all__ = ["Listener", "parse_ss", "parse_sysctl"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SYSCTL_LINE = re.compile(r"^([A-Za-z0-9_.\-/]+)\s*=\s*(.*)$")
_PROCESS = re.compile(r'\("([^"]*)",pid=([0-9]{1,10})\b')


def parse_sysctl(text: str, *, source: str = "sysctl.txt") -> Mapping[str, str]:
    """``sysctl`` output → ``{name: value}`` (names with dots, as sysctl prints them).

    Raises ``SnapshotError`` ``source:line: ...`` for a line that is neither ``name = value``
    nor a ``sysctl:`` message.

    >>> dict(parse_sysctl("net.ipv4.ip_forward = 1\\nsysctl: cannot stat /proc/sys/x"))
    {'net.ipv4.ip_forward': '1'}
    """
    out: dict[str, str] = {}
    for n, raw in enumerate(split_lines(text), 1):  # at "\n" only, as sysctl prints
        line = raw.strip()
        if not line or line.startswith(("#", ";", "sysctl:")):
            continue
        m = _SYSCTL_LINE.match(line)
        if m is None:
            raise SnapshotError(f"{source}:{n}: not a 'name = value' line: {excerpt(line)}")
        out[m.group(1).replace("/", ".")] = m.group(2).strip()
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening socket. ``address`` None: every address (``*``); ``0.0.0.0`` and ``::``
    stay as they are (every address of one family). ``interface`` is the ``%dev`` binding,
    ``process`` and ``pid`` come from ``users:(("name",pid=N,...))`` when ss showed them."""

    proto: str
    address: IPAddress | None
    port: int
    interface: str | None = None
    process: str | None = None
    pid: int | None = None

    @property
    def family(self) -> int | None:
        """4 or 6; None for ``*`` (both)."""
        return None if self.address is None else self.address.version


def _endpoint(text: str) -> tuple[IPAddress | None, str | None, int | None]:
    host, _, port_text = text.rpartition(":")
    iface = None
    if "%" in host:
        host, _, iface = host.partition("%")
        iface = iface.rstrip("]") or None
        if text.startswith("[") and not host.endswith("]"):
            host += "]"
    host = host.strip("[]")
    port = int(port_text) if _decimal(port_text) else None
    if host in ("*", ""):
        return None, iface, port
    return ipaddress.ip_address(host), iface, port


def parse_ss(text: str, *, source: str = "ss.txt") -> tuple[Listener, ...]:
    """``ss -ltnup`` output → listening sockets (TCP in state LISTEN, UDP in UNCONN).

    Raises ``SnapshotError`` ``source:line: ...`` for a line that is not a socket line.

    >>> s = parse_ss('''Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port
    ... tcp   LISTEN 0  4096  0.0.0.0:8080  0.0.0.0:*  users:(("docker-proxy",pid=7,fd=4))
    ... ''')[0]
    >>> s.proto, str(s.address), s.port, s.process, s.pid
    ('tcp', '0.0.0.0', 8080, 'docker-proxy', 7)
    """
    out: list[Listener] = []
    for n, raw in enumerate(split_lines(text), 1):  # at "\n": a process name may hold U+2028
        fields = raw.split()
        if not fields or fields[0] in ("Netid", "State"):
            continue
        if len(fields) < 6 or fields[0] not in ("tcp", "udp", "sctp", "raw", "u_str", "u_dgr"):
            raise SnapshotError(f"{source}:{n}: not an 'ss -ltnup' socket line: "
                                f"{excerpt(raw.strip())}")
        if fields[0] not in ("tcp", "udp", "sctp"):
            continue
        try:
            address, iface, port = _endpoint(fields[4])
        except ValueError:
            raise SnapshotError(f"{source}:{n}: bad local address {excerpt(fields[4])}") from None
        if port is None:
            continue
        if port > 0xFFFF:
            raise SnapshotError(f"{source}:{n}: bad port {port} in {excerpt(fields[4])} "
                                "(0-65535)")
        m = _PROCESS.search(" ".join(fields[6:]))
        out.append(Listener(fields[0], address, port, iface,
                            m.group(1) if m else None, int(m.group(2)) if m else None))
    return tuple(out)
