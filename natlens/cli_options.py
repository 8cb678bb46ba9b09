"""Checks of command-line values that argparse cannot make, run before a snapshot is read, so
that a bad value is the usual one-line error naming the option and the value (exit 2), not a
complaint about where the value ended up inside natlens (``<ip-addr JSON>: $[6].ifname``).

Interface names: ``--in IFACE`` (trace, graph) and the NAME of ``--iface NAME=IP/PREFIX``
(trace, report, exposure, graph) must be names the kernel accepts for a network device
(``dev_valid_name``, net/core/dev.c): 1 to 15 bytes (``IFNAMSIZ`` - 1, include/uapi/linux/if.h),
not ``.`` or ``..``, without ``/``, ``:``, blanks or NUL. An iptables pattern such as ``eth+``
is a valid name too (``+`` is an ordinary character to the kernel). The rule is
``natlens.names.interface_problem``, the library's too (``Packet``, ``with_stated_host``).
"""

from __future__ import annotations

import argparse

from natlens.errors import UsageError
from natlens.names import IFNAMSIZ, interface_problem

__all__ = ["IFNAMSIZ", "INTERFACE_OPTIONS", "check_interface_options", "interface_problem"]

INTERFACE_OPTIONS = {"in_interface": "--in", "iface": "--iface"}
"""Destination → spelling of every option that takes an interface name (``--iface`` as the
NAME of ``NAME=IP/PREFIX``)."""


def check_interface_options(args: argparse.Namespace) -> None:
    """Raise ``UsageError`` (``--in 'NAME': reason``) for the first interface name among the
    options of ``INTERFACE_OPTIONS`` that the kernel would refuse. An ``--iface`` value that is
    not ``NAME=...`` at all is left to ``natlens.snapshot.with_stated_host`` (its message)."""
    for dest, flag in INTERFACE_OPTIONS.items():
        given = getattr(args, dest, None)
        values = given if isinstance(given, list) else [given] if given is not None else []
        for value in values:
            name = value.partition("=")[0] if dest == "iface" else value
            if dest == "iface" and ("=" not in value or not name):
                continue
            problem = interface_problem(name)
            if problem is not None:
                shown = f"{value!r}" if dest != "iface" else f"{value!r}: {name!r}"
                raise UsageError(f"{flag} {shown}: {problem}")
