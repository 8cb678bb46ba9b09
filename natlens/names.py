"""The length of a name as the kernel and iptables count it: bytes, not characters.

iptables measures chain, interface and extension names with ``strlen`` (chain names at most 28
bytes, iptables-restore's chain check; interface names at most 15, libxtables
``xtables_parse_interface``; extension names at most 28, ``XT_EXTENSION_MAXNAMELEN - 1``): UTF-8
bytes. A name that ``natlens snapshot`` captured holds ``\\xNN`` for each byte that was not
UTF-8 (natlens.capture_encoding), which counts as the one byte it stands for.

Interface names follow the kernel's ``dev_valid_name`` (net/core/dev.c), for the CLI's options
(``--in``, ``--iface``) and the library (``Packet(in_interface=...)``,
``Snapshot.with_stated_host``) alike: ``interface_problem`` / ``check_interface_name``.

A module of its own so that the parsers, the CLI's option checks and the snapshot schemas share
one rule without importing the capture's code (the parser's start-up, issue 13).
"""

from __future__ import annotations

import re

from natlens.errors import InterfaceNameError

__all__ = ["IFNAMSIZ", "check_interface_name", "escaped_bytes", "interface_problem",
           "kernel_bytes", "name_bytes"]

_ESCAPED = re.compile(r"\\x[0-9a-f]{2}")

IFNAMSIZ = 16
"""The kernel's buffer for an interface name, its terminating NUL included
(include/uapi/linux/if.h)."""

_KERNEL_SPACE = b"\t\n\v\f\r \xa0"
"""The bytes the kernel's ``isspace`` takes (lib/ctype.c: 9-13, 32 and 160, Latin-1's no-break
space): a UTF-8 name holding byte 0xa0 (``à`` is ``c3 a0``) is refused, ``\\x1c`` is not."""


def escaped_bytes(name: str) -> int:
    """How many ``\\xNN`` escapes ``name`` holds: each stands for one byte of the kernel's name
    in 4 characters, so length limits (28 for a chain, 15 for an interface) subtract 3 for each.

    >>> escaped_bytes(r"GR\\xdcNE"), escaped_bytes("eth0"), escaped_bytes(r"a\\x4")
    (1, 0, 0)
    """
    return len(_ESCAPED.findall(name)) if "\\x" in name else 0


def name_bytes(name: str) -> int:
    """The length in bytes of the kernel's name that ``name`` spells, as iptables measures it
    (``strlen``): UTF-8 bytes (a lone surrogate, from API text, counted as UTF-8 would encode
    it), each ``\\xNN`` escape written by the capture counting as the one byte it stands for.

    >>> name_bytes("eth0"), name_bytes("ü" * 8), name_bytes("et" + chr(92) + "xe9")
    (4, 16, 3)
    """
    return len(name.encode("utf-8", "surrogatepass")) - 3 * escaped_bytes(name)


def kernel_bytes(name: str) -> bytes:
    """The bytes of the kernel's name that ``name`` spells: UTF-8 (a lone surrogate as UTF-8
    would encode it), each ``\\xNN`` escape of the capture the one byte it stands for.

    >>> kernel_bytes("et" + chr(92) + "xa0"), kernel_bytes("à")
    (b'et\\xa0', b'\\xc3\\xa0')
    """
    if "\\x" not in name:
        return name.encode("utf-8", "surrogatepass")
    out, pos = bytearray(), 0
    for m in _ESCAPED.finditer(name):
        out += name[pos:m.start()].encode("utf-8", "surrogatepass")
        out.append(int(m.group()[2:], 16))
        pos = m.end()
    return bytes(out + name[pos:].encode("utf-8", "surrogatepass"))


def interface_problem(name: str) -> str | None:
    """Why the kernel would refuse ``name`` as an interface name, or None: ``dev_valid_name``
    (net/core/dev.c) takes 1 to 15 bytes (``IFNAMSIZ`` - 1), not ``.`` or ``..``, without
    ``/``, ``:`` or a byte ``isspace`` takes (``_KERNEL_SPACE``); a NUL would end the name
    early. An iptables pattern such as ``eth+`` is a valid name (``+`` is an ordinary byte).

    >>> interface_problem("docker0") is None, interface_problem("eth+") is None
    (True, True)
    >>> interface_problem("veth1234567890abc")
    'interface name is 17 bytes long: the kernel allows at most 15 (IFNAMSIZ - 1)'
    """
    data = kernel_bytes(name)
    if not data:
        return "empty interface name"
    if len(data) > IFNAMSIZ - 1:
        return (f"interface name is {len(data)} bytes long: the kernel allows at most "
                f"{IFNAMSIZ - 1} (IFNAMSIZ - 1)")
    if data in (b".", b".."):
        return f"{name!r} is not an interface name"
    for byte, what in ((b"/", "'/'"), (b":", "':'"), (b"\0", "a NUL byte")):
        if byte in data:
            return f"interface names have no {what}"
    if any(b in _KERNEL_SPACE for b in data):
        hidden = "" if any(c in name for c in " \t\n\v\f\r") else (
            " (the kernel's isspace() takes byte 0xa0, which the name holds in UTF-8)")
        return f"interface names have no blanks{hidden}"
    return None


def check_interface_name(name: object, what: str = "interface") -> str:
    """``name`` when the kernel takes it as an interface name (``interface_problem``); raises
    ``InterfaceNameError`` (a ``ValueError``) ``{what} 'NAME': reason`` otherwise, and for a
    value that is not a string.

    >>> check_interface_name("eth0")
    'eth0'
    >>> check_interface_name("eth0:1")
    Traceback (most recent call last):
    natlens.errors.InterfaceNameError: interface 'eth0:1': interface names have no ':'
    """
    if not isinstance(name, str):
        reason = f"an interface name is a string, not {type(name).__name__}"
        raise InterfaceNameError(f"{what} {name!r}: {reason}", name=repr(name), reason=reason)
    problem = interface_problem(name)
    if problem is not None:
        raise InterfaceNameError(f"{what} {name!r}: {problem}", name=name, reason=problem)
    return name
