"""natlens: where do your packets really go?

Parse iptables rules, correlate them with Docker, simulate packets and audit the result.
"""

from __future__ import annotations

from natlens.audit import audit
from natlens.audit.findings import Finding, Severity
from natlens.docker import Inventory
from natlens.errors import (
    DockerError,
    NatlensError,
    ParseError,
    ParseWarning,
    SnapshotError,
    UsageError,
)
from natlens.graph import ChainGraph
from natlens.graph import build as chain_graph
from natlens.model import (
    Address,
    Chain,
    Counters,
    Family,
    Interface,
    Match,
    Option,
    Origin,
    Protocol,
    Rule,
    Ruleset,
    Table,
    TableName,
    Target,
    TargetKind,
)
from natlens.netfilter import Host, Packet, Trace, simulate
from natlens.parse.listing import parse_listing
from natlens.parse.save import parse_save
from natlens.serialize import ruleset_to_dict, to_save
from natlens.snapshot import Snapshot, load, load_rules

__all__ = [
    "Address",
    "Chain",
    "ChainGraph",
    "Counters",
    "DockerError",
    "Family",
    "Finding",
    "Host",
    "Interface",
    "Inventory",
    "Match",
    "NatlensError",
    "Option",
    "Origin",
    "Packet",
    "ParseError",
    "ParseWarning",
    "Protocol",
    "Rule",
    "Ruleset",
    "Severity",
    "Snapshot",
    "SnapshotError",
    "Table",
    "TableName",
    "Target",
    "TargetKind",
    "Trace",
    "UsageError",
    "audit",
    "chain_graph",
    "load",
    "load_rules",
    "parse_listing",
    "parse_save",
    "ruleset_to_dict",
    "simulate",
    "to_save",
]

__version__ = "0.1.0"
