"""Cross-check legacy-backend rules with python-iptables, which reads only iptables-legacy.

python-iptables (``iptc``) talks to the kernel through libiptc, i.e. the legacy
``ip_tables`` interface: on an nf_tables host it sees empty tables. So natlens captures with
``iptables-save`` (whatever backend it points at) and, where the backend *is* legacy and the
optional ``natlens[iptc]`` extra is installed, counts the rules per chain through libiptc too and
records any difference in meta.json.
"""

from __future__ import annotations

from typing import Any

from natlens.model import Ruleset

__all__ = ["compare_counts", "iptc_rule_counts"]

Counts = dict[str, dict[str, int]]


def iptc_rule_counts(ipv6: bool = False) -> Counts | None:
    """Rules per table and chain as libiptc sees them; None without python-iptables."""
    try:
        import iptc  # noqa: PLC0415  (optional extra; importing it loads libxtables)
    except (ImportError, OSError):
        return None
    table_class: Any = iptc.Table6 if ipv6 else iptc.Table
    counts: Counts = {}
    for name in ("raw", "mangle", "nat", "filter", "security"):
        try:
            table = table_class(name)
            table.refresh()
            counts[name] = {chain.name: len(chain.rules) for chain in table.chains}
        except iptc.IPTCError:  # a table this kernel does not have
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
