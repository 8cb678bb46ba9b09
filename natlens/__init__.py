"""natlens: where do your packets really go?

Parse iptables rules, correlate them with Docker, simulate packets and audit the result.
"""

from __future__ import annotations

import importlib as _importlib
import sys as _sys
import types as _types

_TYPE_CHECKING = False  # not typing's: `import natlens` imports nothing slow (cli_errors.entry)
if _TYPE_CHECKING:
    from typing import Any as _Any

    from natlens.api import audit, exposure, simulate
    from natlens.audit.findings import Finding, Severity
    from natlens.batch import simulate_many
    from natlens.correlate import Correlation, correlate
    from natlens.docker import Inventory
    from natlens.errors import (
        DockerError,
        EmptyInputError,
        NatlensError,
        ParseError,
        ParseWarning,
        SnapshotError,
        SnapshotJsonError,
        UsageError,
    )
    from natlens.exposure import ExposureMap
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
    from natlens.netfilter import Host, Packet, Trace
    from natlens.parse.listing import parse_listing
    from natlens.parse.save import parse_save
    from natlens.serialize import ruleset_to_dict, to_save
    from natlens.snapshot import Snapshot, load, load_rules

_EXPORTS: dict[str, tuple[str, str]] = {
    "Address": ("natlens.model", "Address"),
    "Chain": ("natlens.model", "Chain"),
    "ChainGraph": ("natlens.graph", "ChainGraph"),
    "Correlation": ("natlens.correlate", "Correlation"),
    "Counters": ("natlens.model", "Counters"),
    "DockerError": ("natlens.errors", "DockerError"),
    "EmptyInputError": ("natlens.errors", "EmptyInputError"),
    "ExposureMap": ("natlens.exposure", "ExposureMap"),
    "Family": ("natlens.model", "Family"),
    "Finding": ("natlens.audit.findings", "Finding"),
    "Host": ("natlens.netfilter", "Host"),
    "Interface": ("natlens.model", "Interface"),
    "Inventory": ("natlens.docker", "Inventory"),
    "Match": ("natlens.model", "Match"),
    "NatlensError": ("natlens.errors", "NatlensError"),
    "Option": ("natlens.model", "Option"),
    "Origin": ("natlens.model", "Origin"),
    "Packet": ("natlens.netfilter", "Packet"),
    "ParseError": ("natlens.errors", "ParseError"),
    "ParseWarning": ("natlens.errors", "ParseWarning"),
    "Protocol": ("natlens.model", "Protocol"),
    "Rule": ("natlens.model", "Rule"),
    "Ruleset": ("natlens.model", "Ruleset"),
    "Severity": ("natlens.audit.findings", "Severity"),
    "Snapshot": ("natlens.snapshot", "Snapshot"),
    "SnapshotError": ("natlens.errors", "SnapshotError"),
    "SnapshotJsonError": ("natlens.errors", "SnapshotJsonError"),
    "Table": ("natlens.model", "Table"),
    "TableName": ("natlens.model", "TableName"),
    "Target": ("natlens.model", "Target"),
    "TargetKind": ("natlens.model", "TargetKind"),
    "Trace": ("natlens.netfilter", "Trace"),
    "UsageError": ("natlens.errors", "UsageError"),
    "audit": ("natlens.api", "audit"),
    "chain_graph": ("natlens.graph", "build"),
    "correlate": ("natlens.correlate", "correlate"),
    "exposure": ("natlens.api", "exposure"),
    "load": ("natlens.snapshot", "load"),
    "load_rules": ("natlens.snapshot", "load_rules"),
    "parse_listing": ("natlens.parse.listing", "parse_listing"),
    "parse_save": ("natlens.parse.save", "parse_save"),
    "ruleset_to_dict": ("natlens.serialize", "ruleset_to_dict"),
    "simulate": ("natlens.api", "simulate"),
    "simulate_many": ("natlens.batch", "simulate_many"),
    "to_save": ("natlens.serialize", "to_save"),
}
"""Public name → (module, attribute). Loaded on first use, so that ``import natlens`` (and the
``natlens`` command's start, see ``natlens.cli_errors.entry``) costs nothing until a name is
used."""

__all__ = [
    "Address",
    "Chain",
    "ChainGraph",
    "Correlation",
    "Counters",
    "DockerError",
    "EmptyInputError",
    "ExposureMap",
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
    "SnapshotJsonError",
    "Table",
    "TableName",
    "Target",
    "TargetKind",
    "Trace",
    "UsageError",
    "audit",
    "chain_graph",
    "correlate",
    "exposure",
    "load",
    "load_rules",
    "parse_listing",
    "parse_save",
    "ruleset_to_dict",
    "simulate",
    "simulate_many",
    "to_save",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> _Any:
    """Load the public name ``name`` from its module on first use (PEP 562)."""
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'natlens' has no attribute {name!r}") from None
    value = getattr(_importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(_types.ModuleType):
    """The package module: a subpackage named like a public function (``natlens.audit``) is
    not bound over the function when it is imported, as the eager imports behaved."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, _types.ModuleType) and name in _EXPORTS:
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
