"""Packet simulator: a packet's way through a host's netfilter hooks (see ``engine``).

``simulate(snapshot, packet)`` returns a ``Trace``; ``Simulator`` keeps the prepared rules for
many packets; ``Host`` and ``Packet`` are the inputs, ``mismatches`` answers "why not" for one
rule.
"""

from __future__ import annotations

from natlens.netfilter.engine import Simulator, prepare, simulate
from natlens.netfilter.host import Host, Route
from natlens.netfilter.matches import mismatches
from natlens.netfilter.packet import Packet
from natlens.netfilter.trace import Branch, Connection, Path, Step, StepKind, Trace, Verdict

__all__ = [
    "Branch",
    "Connection",
    "Host",
    "Packet",
    "Path",
    "Route",
    "Simulator",
    "Step",
    "StepKind",
    "Trace",
    "Verdict",
    "mismatches",
    "prepare",
    "simulate",
]
