"""The top-level functions of ``import natlens``, taking what users have.

``natlens.simulate``, ``natlens.audit`` and ``natlens.exposure`` accept, where the lower-level
functions (``natlens.netfilter.simulate``, ``natlens.audit.audit``,
``natlens.exposure.exposure``) want a ``Snapshot``:

- a ``natlens.Snapshot`` (used as is),
- a path (``str`` or ``os.PathLike``): a snapshot folder or a single rule file, read with
  ``natlens.load`` (strict parsing), or
- a ``natlens.Ruleset`` (from ``parse_save``, ``load_rules``...): wrapped into a snapshot whose
  host is unknown (no addresses, routes or Docker data; IPv6 rules go to ``ruleset6``).

Anything else raises ``natlens.UsageError`` (a ``NatlensError``, never ``TypeError`` or
``AttributeError``). ``natlens.simulate`` also fills ``Trace.notes`` as ``natlens trace``
prints them (the docker-proxy notes of ``natlens.explain``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Union

from natlens.errors import UsageError
from natlens.model import Family, Ruleset
from natlens.snapshot import Snapshot, load

if TYPE_CHECKING:
    from natlens.audit import Check
    from natlens.audit.findings import Finding
    from natlens.exposure import ExposureMap
    from natlens.netfilter import Packet, Trace

__all__ = ["SnapshotLike", "as_snapshot", "audit", "exposure", "simulate"]

SnapshotLike = Union[Snapshot, Ruleset, str, "os.PathLike[str]"]
"""What the top-level functions accept in place of a ``Snapshot``."""


def as_snapshot(value: object, *, caller: str = "natlens") -> Snapshot:
    """``value`` as a ``Snapshot``: a ``Snapshot`` as is, a path loaded with ``natlens.load``,
    a ``Ruleset`` wrapped with an unknown host.

    Raises ``UsageError`` for any other type (naming ``caller`` and the type given), and what
    ``natlens.load`` raises for a path (``SnapshotError``, ``ParseError``).
    """
    if isinstance(value, Snapshot):
        return value
    if isinstance(value, Ruleset):
        name = value.source or "<ruleset>"
        notes = ("a Ruleset given directly: no host or Docker data",)
        if value.family is Family.IPV6:
            return Snapshot(ruleset=Ruleset(Family.IPV4, source=name), ruleset6=value,
                            path=name, notes=notes)
        return Snapshot(ruleset=value, path=name, notes=notes)
    if isinstance(value, (str, os.PathLike)):
        return load(os.fspath(value))
    raise UsageError(f"{caller}: expected a natlens.Snapshot, a path (str or os.PathLike) or a "
                     f"natlens.Ruleset, got {type(value).__name__}")


def simulate(snapshot: SnapshotLike, packet: Packet) -> Trace:
    """Trace ``packet`` through ``snapshot`` (see the module docstring for what it may be);
    the ``Trace`` carries the notes ``natlens trace`` prints (``Trace.notes``).

    Raises ``UsageError`` for a bad ``snapshot`` type or a packet that is not a
    ``natlens.Packet``, and what loading a path raises.
    """
    from natlens.explain import proxy_notes  # noqa: PLC0415  (imports the simulator)
    from natlens.netfilter import Packet  # noqa: PLC0415
    from natlens.netfilter import simulate as walk  # noqa: PLC0415

    snap = as_snapshot(snapshot, caller="natlens.simulate")
    if not isinstance(packet, Packet):
        raise UsageError(f"natlens.simulate: expected a natlens.Packet, got "
                         f"{type(packet).__name__}")
    trace = walk(snap, packet)
    notes = proxy_notes(snap, trace)
    return replace(trace, notes=tuple(notes)) if notes else trace


def audit(snapshot: SnapshotLike, checks: Iterable[Check] | None = None) -> list[Finding]:
    """The findings of ``checks`` (default: every check) on ``snapshot`` (see the module
    docstring), sorted by severity then rule position: ``natlens.audit.audit`` on the
    snapshot. Raises ``UsageError`` for a bad ``snapshot`` type, and what loading a path
    raises."""
    from natlens.audit import CHECKS  # noqa: PLC0415
    from natlens.audit import audit as run  # noqa: PLC0415

    snap = as_snapshot(snapshot, caller="natlens.audit")
    return run(snap, CHECKS if checks is None else checks)


def exposure(snapshot: SnapshotLike) -> ExposureMap:
    """The exposure map of ``snapshot`` (see the module docstring; docs/exposure.md):
    ``natlens.exposure.exposure`` on the snapshot. Raises ``UsageError`` for a bad
    ``snapshot`` type, and what loading a path raises."""
    from natlens.exposure import exposure as build  # noqa: PLC0415

    return build(as_snapshot(snapshot, caller="natlens.exposure"))
