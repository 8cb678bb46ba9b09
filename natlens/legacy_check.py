"""Cross-check legacy-backend rules with python-iptables, which reads only iptables-legacy.

python-iptables (``iptc``) talks to the kernel through libiptc, i.e. the legacy
``ip_tables`` interface: on an nf_tables host it sees empty tables. So natlens captures with
``iptables-save`` (whatever backend it points at) and, where the backend *is* legacy and the
optional ``natlens[iptc]`` extra is installed, counts the rules per chain through libiptc too and
records any difference in meta.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from natlens.model import Ruleset
from natlens.parse.tokens import split_lines

__all__ = ["compare_counts", "existing_tables", "iptc_rule_counts"]

Counts = dict[str, dict[str, int]]
_TABLES = ("raw", "mangle", "nat", "filter", "security")


def existing_tables(ipv6: bool = False) -> tuple[str, ...]:
    """The legacy tables of this network namespace: ``/proc/net/ip_tables_names`` (or
    ``ip6_tables_names``), which lists only tables already registered; empty when the file is
    missing (``ip_tables`` not loaded: no legacy table exists).

    Reading the file changes nothing; opening a table does (below).
    """
    path = Path("/proc/net/ip6_tables_names" if ipv6 else "/proc/net/ip_tables_names")
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return ()
    return tuple(name for name in (ln.strip(" \t") for ln in split_lines(text)) if name)


def iptc_rule_counts(ipv6: bool = False) -> Counts | None:
    """Rules per table and chain as libiptc sees them; None without python-iptables.

    Read-only: only tables that ``existing_tables`` lists are opened. Opening any other one
    would create it: libiptc's ``IPT_SO_GET_INFO`` makes the kernel register a missing table
    (per-netns lazy table init, ``xt_find_table_lock`` → ``xt_request_find_table_lock``;
    older kernels autoload ``iptable_<name>``), and a registered ``nat`` table hooks NAT and
    conntrack into every packet. Tables are opened without autocommit, so closing them never
    writes (python-iptables commits on close when autocommit is on).
    """
    present = existing_tables(ipv6)
    if not present:
        return {}
    try:
        import iptc  # noqa: PLC0415  (optional extra; importing it loads libxtables)
    except (ImportError, OSError):
        return None
    table_class: Any = iptc.Table6 if ipv6 else iptc.Table
    counts: Counts = {}
    for name in _TABLES:
        if name not in present:
            continue
        try:
            table = table_class(name, autocommit=False)
            counts[name] = {chain.name: len(chain.rules) for chain in table.chains}
        except iptc.IPTCError:  # removed since the list was read
            continue
    return counts


def compare_counts(ruleset: Ruleset, counts: Counts) -> list[str]:
    """Differences between a parsed iptables-save and libiptc's counts (empty: they agree)."""
    differences: list[str] = []
    for table in ruleset.tables:
        seen = counts.get(table.name.value, {})
        for chain in table.chains:
            if seen.get(chain.name, 0) != len(chain.rules):
                differences.append(f"{table.name.value} {chain.name}: iptables-save "
                                   f"{len(chain.rules)} rules, python-iptables "
                                   f"{seen.get(chain.name, 0)}")
    return differences
