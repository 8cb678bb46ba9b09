"""What the kernel, iproute2 and iptables accept as names: the checks every value from a snapshot
passes before ``natlens verify`` puts it on an ``ip`` command line or into ``iptables-restore``
input.

A snapshot comes from someone else's machine; its text never reaches a command interpreter
unchecked. Each ``check_*`` function returns its argument unchanged when the kernel would accept
it and raises ``ValueError`` (a short reason, no file name: the caller adds where the value came
from) otherwise. Sources:

* interface names: ``dev_valid_name()`` in ``net/core/dev.c`` (1 to ``IFNAMSIZ - 1`` = 15 bytes,
  not ``.`` or ``..``, no ``/``, ``:`` or white space); natlens also refuses control characters,
  which the kernel allows but which no real interface carries and every terminal misreads;
* MAC addresses: six colon-separated hex bytes, a unicast address (``is_valid_ether_addr()``
  in ``include/linux/etherdevice.h``: not multicast, not all zeros);
* route types: ip-route(8) ``TYPE`` (``rtnl_rtntype_a2n()`` in iproute2 ``lib/rt_names.c``);
* chain names: iptables-restore refuses names of ``XT_EXTENSION_MAXNAMELEN`` (29) bytes or more
  and the standard verdicts; ``iptables -N`` refuses names starting with ``-`` or ``!``
  (``iptables/xshared.c``); a name holds no white space (restore splits words at it);
* match and target extension names: at most 28 bytes of ``[A-Za-z0-9_-]`` (libxtables loads
  ``libxt_<name>.so``: a ``/`` would be a path);
* sysctls: only the per-network-namespace switches verify mirrors (ip-sysctl.rst); a namespace
  shares every other sysctl (``kernel.core_pattern`` ...) with the host.
"""

from __future__ import annotations

import re
from pathlib import Path

from natlens.names import interface_problem

__all__ = [
    "ROUTE_TYPES",
    "SYSCTL_KEYS",
    "check_chain",
    "check_extension",
    "check_ifname",
    "check_mac",
    "check_route_type",
    "one_line",
    "printable",
    "sysctl_path",
]

IFNAMSIZ = 16
"""``include/uapi/linux/if.h``: interface names are at most 15 bytes plus the NUL."""

XT_EXTENSION_MAXNAMELEN = 29
"""``include/uapi/linux/netfilter/x_tables.h``: chain, match and target names, NUL included."""

ROUTE_TYPES = frozenset({"unicast", "local", "broadcast", "multicast", "throw", "unreachable",
                         "prohibit", "blackhole", "nat", "anycast"})
"""ip-route(8) route types."""

_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_EXTENSION = re.compile(r"[A-Za-z0-9_-]+")
_VERDICTS = frozenset({"ACCEPT", "DROP", "QUEUE", "RETURN"})
_WHITESPACE = frozenset(" \t\n\v\f\r\x85\xa0\u1680\u2028\u2029\u3000")


def printable(text: str, limit: int = 80) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters: control and bidi characters escaped, for
    error messages about hostile input."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return ascii(shown)


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def check_ifname(name: object) -> str:
    """An interface name the kernel accepts (``dev_valid_name``); raises ``ValueError``.

    >>> check_ifname("docker0")
    'docker0'
    >>> check_ifname("eth0:1")
    Traceback (most recent call last):
    ValueError: bad interface name 'eth0:1' (no '/', ':' or white space: dev_valid_name)
    """
    if not isinstance(name, str):
        raise ValueError(f"interface name is not a string: {printable(repr(name))}")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size == 0 or size >= IFNAMSIZ:
        raise ValueError(f"bad interface name {printable(name)} (1 to {IFNAMSIZ - 1} bytes: "
                         "dev_valid_name)")
    if name in (".", ".."):
        raise ValueError(f"bad interface name {printable(name)} (dev_valid_name)")
    if any(c in "/:" or c in _WHITESPACE for c in name) or _has_control(name):
        raise ValueError(f"bad interface name {printable(name)} (no '/', ':' or white space: "
                         "dev_valid_name)")
    problem = interface_problem(name)  # the CLI's and library's rule (byte 0xa0 of 'à' ...)
    if problem is not None:
        raise ValueError(f"bad interface name {printable(name)} ({problem}: dev_valid_name)")
    return name


def check_mac(mac: object) -> str:
    """A unicast Ethernet address ``xx:xx:xx:xx:xx:xx``; raises ``ValueError``.

    >>> check_mac("02:42:AC:11:00:02")
    '02:42:ac:11:00:02'
    """
    if not isinstance(mac, str) or not _MAC.fullmatch(mac):
        raise ValueError(f"bad MAC address {printable(str(mac))}")
    if int(mac[:2], 16) & 1 or mac.strip("0:") == "":
        raise ValueError(f"bad MAC address {printable(mac)} (multicast or zero: "
                         "is_valid_ether_addr)")
    return mac.lower()


def check_route_type(kind: object) -> str:
    """A route type of ip-route(8); raises ``ValueError``."""
    if not isinstance(kind, str) or kind not in ROUTE_TYPES:
        raise ValueError(f"bad route type {printable(str(kind))} (one of "
                         f"{', '.join(sorted(ROUTE_TYPES))})")
    return kind


def check_chain(name: str) -> str:
    """A chain name iptables-restore accepts; raises ``ValueError``."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if size == 0 or size >= XT_EXTENSION_MAXNAMELEN:
        raise ValueError(f"bad chain name {printable(name)} (1 to "
                         f"{XT_EXTENSION_MAXNAMELEN - 1} bytes)")
    if name[0] in "-!" or name in _VERDICTS:
        raise ValueError(f"bad chain name {printable(name)} (iptables refuses names starting "
                         "with '-' or '!' and the standard verdicts)")
    if any(c in _WHITESPACE for c in name) or _has_control(name):
        raise ValueError(f"bad chain name {printable(name)} (white space or control character)")
    return name


def check_extension(name: str) -> str:
    """A match (``-m``) or extension target (``-j``) name libxtables can load."""
    if (not _EXTENSION.fullmatch(name)
            or len(name) >= XT_EXTENSION_MAXNAMELEN):
        raise ValueError(f"bad extension name {printable(name)} (1 to "
                         f"{XT_EXTENSION_MAXNAMELEN - 1} of A-Z a-z 0-9 _ -)")
    return name


def one_line(text: str) -> str:
    """``text`` if it is a single line iptables-restore reads as one (no line feed or NUL)."""
    if "\n" in text or "\0" in text:
        raise ValueError("text with a line feed or NUL would be read as more than one line")
    return text


SYSCTL_KEYS = re.compile(
    r"net\.ipv4\.ip_forward"
    r"|net\.ipv6\.conf\.(?P<if6>[^/]+?)\.(?:forwarding|addr_gen_mode|accept_dad|accept_ra)"
    r"|net\.ipv4\.conf\.(?P<if4>[^/]+?)\.(?:route_localnet|send_redirects)"
    r"|net\.bridge\.bridge-nf-call-ip6?tables")
"""The sysctls verify may set in its namespaces (all per network namespace, ip-sysctl.rst)."""


def sysctl_path(key: str) -> Path:
    """``/proc/sys/...`` of a sysctl verify may set; ``ValueError`` for any other key.

    A dotted interface name stays one path component (``net.ipv4.conf.eth0.100.route_localnet``
    is ``/proc/sys/net/ipv4/conf/eth0.100/route_localnet``, as sysctl(8) writes it with '/').
    """
    m = SYSCTL_KEYS.fullmatch(key)
    if m is None:
        raise ValueError(f"sysctl {printable(key)} is not one verify sets")
    group = "if4" if m.group("if4") is not None else "if6"
    iface = m.group(group)
    if iface is None:
        return Path("/proc/sys", *key.split("."))
    if iface not in ("all", "default"):
        check_ifname(iface)
    head, rest = key[:m.start(group) - 1], key[m.end(group) + 1:]
    return Path("/proc/sys", *head.split("."), iface, rest)
