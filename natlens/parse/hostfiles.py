"""Plain-text host files of a snapshot: ``sysctl.txt`` and ``ss.txt``.

``sysctl.txt`` is what ``sysctl NAME ...`` prints (sysctl(8)): ``name = value`` lines; lines the
tool prints for a missing key (``sysctl: cannot stat /proc/sys/...``) are skipped. ``ss.txt`` is
``ss -ltnup`` (ss(8)): a header, then one listening socket per line,
``Netid State Recv-Q Send-Q Local-Address:Port Peer-Address:Port [Process]``. Both are read
strictly: a value natlens uses that is not what the command prints (a service name ``:ssh``
from ``ss`` without ``-n``, ``ip_forward = banana``) is an error, never a guess.

Both are read as the tools write them: lines end at ``\n`` (``split_lines``) and fields are
separated by spaces and tabs (``split_fields``). A U+0085, U+2028, ``\x1c`` or other character
``str.splitlines`` or ``str.split`` would break at stays in its field (an interface or process
name may hold one); so do the other readers of host command output (``natlens.capture``'s
``nft list tables``, ``natlens.services``' ``/etc/protocols``, ``natlens.verify.probe``'s
``conntrack -L``).
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
from natlens.sysctls import READ as READ_SYSCTLS
from natlens.sysctls import kernel_value

__all__ = ["Listener", "parse_ss", "parse_sysctl", "split_fields"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_BLANKS = re.compile(r"[ \t]+")
_SYSCTL_LINE = re.compile(r"^([A-Za-z0-9_.\-/]+)[ \t]*=[ \t]*(.*)$")
_PROCESS = re.compile(r'\("([^"]*)",pid=([0-9]{1,10})\b')
_LISTENING = ("LISTEN", "UNCONN")  # ss(8)'s names of TCP_LISTEN and TCP_CLOSE (unconnected UDP)


def split_fields(line: str) -> list[str]:
    """The fields of one line of a tool's output, split at runs of spaces and tabs as C tools
    print and read them (ss(8), sysctl(8), glibc's ``/etc/protocols`` reader): a character
    ``str.split()`` also takes for a blank (U+0085, U+2028, ``\x1c``...) stays in its field.

    >>> split_fields(" udp  UNCONN 0\t0 0.0.0.0%br\u2028x:53 ")
    ['udp', 'UNCONN', '0', '0', '0.0.0.0%br\u2028x:53']
    """
    return [field for field in _BLANKS.split(line) if field]


def parse_sysctl(text: str, *, source: str = "sysctl.txt") -> Mapping[str, str]:
    """``sysctl`` output → ``{name: value}`` (names with dots, as sysctl prints them).

    Raises ``SnapshotError`` ``source:line: ...`` for a line that is neither ``name = value``
    nor a ``sysctl:`` message, or for a sysctl natlens reads (forwarding, ``route_localnet``,
    ``bridge-nf-call-ip(6)tables``) whose value the kernel would not take
    (``natlens.sysctls.kernel_value``: a decimal ``int``).

    >>> dict(parse_sysctl("net.ipv4.ip_forward = 1\\nsysctl: cannot stat /proc/sys/x"))
    {'net.ipv4.ip_forward': '1'}
    """
    out: dict[str, str] = {}
    for n, raw in enumerate(split_lines(text), 1):  # at "\n" only, as sysctl prints
        line = raw.strip(" \t")
        if not line or line.startswith(("#", ";", "sysctl:")):
            continue
        m = _SYSCTL_LINE.match(line)
        if m is None:
            raise SnapshotError(f"{source}:{n}: not a 'name = value' line: {excerpt(line)}")
        name, value = m.group(1).replace("/", "."), m.group(2)
        if READ_SYSCTLS.fullmatch(name):  # the kernel's rule for the value (natlens.sysctls)
            try:
                kernel_value(name, value)
            except ValueError as exc:
                raise SnapshotError(f"{source}:{n}: {name} = {excerpt(value)}: {exc}") from None
        out[name] = value
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


_NUMERIC = "capture with 'ss -ltnup': -n prints numbers, not service or host names"


def _endpoint(text: str) -> tuple[IPAddress | None, str | None, int | None]:
    """``ADDR[%DEV]:PORT`` as ``ss -n`` prints a local address → (address, device, port).

    ``ADDR`` is ``*`` (None: both families), an IPv4 address or a bracketed IPv6 one; ``PORT``
    is decimal, or ``*`` for port 0 (None). Raises ``ValueError`` naming the part that is not
    (a service name such as ``ssh``, a host name: ``ss`` without ``-n``, or with ``-r``)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError("no ':PORT'")
    iface = None
    if "%" in host:
        host, _, iface = host.partition("%")
        iface = iface.rstrip("]") or None
        if text.startswith("[") and not host.endswith("]"):
            host += "]"
    if port_text == "*":
        port = None
    elif _decimal(port_text):
        port = int(port_text)
    else:
        raise ValueError(f"port {excerpt(port_text)} is not a number")
    if host == "*":
        return None, iface, port
    try:
        return ipaddress.ip_address(host.strip("[]")), iface, port
    except ValueError:
        raise ValueError(f"address {excerpt(host)} is not an IP address") from None


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
        fields = split_fields(raw)
        if not fields or fields[0] in ("Netid", "State"):
            continue
        if len(fields) < 6 or fields[0] not in ("tcp", "udp", "sctp", "raw", "u_str", "u_dgr"):
            raise SnapshotError(f"{source}:{n}: not an 'ss -ltnup' socket line: "
                                f"{excerpt(raw.strip())}")
        if fields[0] not in ("tcp", "udp", "sctp"):
            continue
        if fields[1] not in _LISTENING or not (_decimal(fields[2]) and _decimal(fields[3])):
            raise SnapshotError(f"{source}:{n}: not a listening socket line (State "
                                f"{excerpt(fields[1])}, Recv-Q/Send-Q {excerpt(fields[2])}/"
                                f"{excerpt(fields[3])}): capture with 'ss -ltnup'")
        try:
            address, iface, port = _endpoint(fields[4])
        except ValueError as e:
            raise SnapshotError(f"{source}:{n}: bad local address {excerpt(fields[4])}: {e}; "
                                f"{_NUMERIC}") from None
        if port is None:  # port 0 (ss prints '*'): bound to no port, takes no packet
            continue
        if port > 0xFFFF:
            raise SnapshotError(f"{source}:{n}: bad port {port} in {excerpt(fields[4])} "
                                "(0-65535)")
        m = _PROCESS.search(" ".join(fields[6:]))
        out.append(Listener(fields[0], address, port, iface,
                            m.group(1) if m else None, int(m.group(2)) if m else None))
    return tuple(out)
