"""Lines a dumping tool prints instead of a rule it cannot render (iptables-nft).

iptables-nft cannot render some native nftables expressions that other programs put into its
tables (Tailscale, firewalld's nftables backend); it then stops listing and writes to stderr,
which a pasted terminal or ``2>&1`` puts among the rules (iptables 1.8.9/1.8.10,
``nft-shared.c`` / ``xshared.c``)::

    Error: meta sreg key not supported
    iptables v1.8.9 (nf_tables): Parsing nftables rule failed
    Perhaps iptables or your kernel needs to be upgraded.

The program's name in the last two lines is the one that ran (``iptables-nft-save``,
``ip6tables``, ...). ``is_tool_diagnostic`` tells such a line from rule text; the readers keep
it as a diagnostic and mark the chain it interrupts as incomplete.
"""

from __future__ import annotations

import re

__all__ = ["PERHAPS", "TOOL_LINE", "is_tool_diagnostic"]

TOOL_LINE = re.compile(r"^(?:ip6?tables|xtables|ebtables|arptables)(?:-nft|-legacy)?(?:-save)?"
                       r" v\d[\w.]*(?: \([\w_]+\))?: (?P<what>.*)$")
"""``iptables v1.8.9 (nf_tables): WHAT``: a message of the tool itself."""
PERHAPS = re.compile(r"Perhaps (?:ip6?tables|xtables|ebtables|arptables)(?:-nft|-legacy)?"
                     r"(?:-save)? or your kernel needs to be upgraded")
"""The hint after a rule iptables-nft could not parse (``Perhaps %s or your kernel ...``)."""
_PREFIXES = ("Error: ", "Warning: ", "Fatal: ")


def is_tool_diagnostic(line: str) -> bool:
    """Whether ``line`` (stripped) is a message of the dumping tool, not rule text.

    >>> is_tool_diagnostic("Error: meta sreg key not supported")
    True
    >>> is_tool_diagnostic("Perhaps iptables-nft-save or your kernel needs to be upgraded.")
    True
    >>> is_tool_diagnostic("iptables v1.8.9 (nf_tables): Parsing nftables rule failed")
    True
    >>> is_tool_diagnostic("0 0 ACCEPT all -- * * 0.0.0.0/0 0.0.0.0/0")
    False
    """
    return (line.startswith(_PREFIXES) or PERHAPS.match(line) is not None
            or TOOL_LINE.match(line) is not None)
