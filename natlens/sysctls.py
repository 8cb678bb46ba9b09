"""The kernel switches natlens reads (``sysctl.txt``, ``meta.json``'s ``sysctl``) and the rule by
which the kernel takes a value for each: one rule for snapshot loading, ``trace`` (the
simulator's ``Host``) and ``verify`` (which writes the values into its namespaces).

Every one of them is an ``int`` that ``proc_dointvec`` (kernel/sysctl.c) parses: a decimal
integer in C ``int`` range, -2147483648..2147483647; anything else makes the write fail with
EINVAL, and the old value stays. Then each handler:

- forwarding (``net.ipv4.ip_forward``, ``net.ipv4.conf.*.forwarding``: ``devinet_sysctl_forward``,
  net/ipv4/devinet.c; ``net.ipv6.conf.*.forwarding``: ``addrconf_sysctl_forward``,
  net/ipv6/addrconf.c) and ``net.ipv4.conf.*.route_localnet`` (``ipv4_doint_and_flush``,
  devinet.c) keep the value written (2, -1 ...) and read it as a switch: any non-zero value is
  on (``IN_DEV_FORWARD``, ``IN_DEV_ROUTE_LOCALNET``, include/linux/inetdevice.h);
- ``net.bridge.bridge-nf-call-ip(6)tables`` (``brnf_sysctl_call_tables``,
  net/bridge/br_netfilter_hooks.c) stores 1 for any non-zero value: clamped to 0..1;
- verify's own keys: ``send_redirects`` (devinet.c), ``accept_dad`` and ``accept_ra``
  (addrconf.c) keep any ``int``; ``addr_gen_mode`` refuses a value outside 0..3
  (``addrconf_sysctl_addr_gen_mode``, ``IN6_ADDR_GEN_MODE_*``).

Checked on Linux 6.18 by writing each value into /proc/sys in a scratch network namespace.
"""

from __future__ import annotations

import re

__all__ = ["READ", "kernel_value", "switch"]

READ = re.compile(r"net\.ipv4\.ip_forward|net\.ipv[46]\.conf\..+\.(?:forwarding|route_localnet)"
                  r"|net\.bridge\.bridge-nf-call-ip6?tables")
"""The sysctls natlens reads (natlens.netfilter.host, .routing, .connection, verify)."""

_CLAMPED = re.compile(r"net\.bridge\.bridge-nf-call-ip6?tables")
_RANGED = {re.compile(r"net\.ipv6\.conf\..+\.addr_gen_mode"): (0, 3)}
_DECIMAL = re.compile(r"-?[0-9]+")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def kernel_value(name: str, value: object) -> int:
    """The value the kernel holds after ``sysctl -w name=value`` (and prints on reading it):
    ``value`` (text or int, blanks around it ignored) for a kept switch, 1 for any non-zero
    value of a clamped one. Raises ``ValueError`` saying the rule when the value is not a
    decimal integer as the kernel prints it (``proc_dointvec`` prints decimal; it would also take
    ``0x1`` on a write, which no capture holds), or the kernel refuses the write (out of ``int``
    range, out of a key's range).

    >>> kernel_value("net.ipv4.ip_forward", "2")
    2
    >>> kernel_value("net.bridge.bridge-nf-call-iptables", -7)
    1
    >>> kernel_value("net.ipv4.ip_forward", "2147483648")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: 2147483648 is out of the kernel's int range -2147483648..2147483647 ...
    """
    text = str(value).strip() if not isinstance(value, bool) else ""
    if _DECIMAL.fullmatch(text) is None:
        raise ValueError("not an integer, as the kernel prints it")
    number = int(text) if len(text) <= 12 else _INT_MAX + 1  # no 5,000-digit int()
    if not _INT_MIN <= number <= _INT_MAX:
        raise ValueError(f"{text[:40]} is out of the kernel's int range {_INT_MIN}..{_INT_MAX} "
                         "(proc_dointvec: the write fails)")
    for pattern, (low, high) in _RANGED.items():
        if pattern.fullmatch(name) and not low <= number <= high:
            raise ValueError(f"{number} is out of {low}..{high} (the write fails)")
    if _CLAMPED.fullmatch(name):
        return 1 if number else 0
    return number


def switch(name: str, value: object) -> bool | None:
    """``name``'s value as the kernel tests it (``kernel_value`` non-zero: on), or None when
    there is no value or the kernel would not take it (unknown, never guessed)."""
    if value is None:
        return None
    try:
        return kernel_value(name, value) != 0
    except ValueError:
        return None
