"""nft ``oifname``/``oif`` matches on an output interface the snapshot cannot tell (no route).

The interface is one interface for the whole path, as for iptables' ``-o``
(``natlens.netfilter.matches.read_out``, ``Flow.out_readings``): each reading a branch takes
(``oifname "docker0"`` matches, ``oifname != "docker0"`` does not...) joins the flow's
``out_readings`` and decides the later ``oifname``/``oif`` matches, set lookups and verdict
maps of that path, so no branch rests on contradicting readings. The walker then marks the
readings ``Host.unlikely_out`` rules unlikely (``Walker.nft_chain``).

Semantics: nft(8) "META EXPRESSIONS" (``oifname`` is a string compared in full; a trailing
unescaped ``*`` is a prefix wildcard, iptables' ``+``). Names natlens cannot write as an
iptables ``-o`` (a literal ``*`` escaped ``\\*``, a name ending in ``+``) and set elements that
are not plain names (prefixes, ranges, ``*``, concatenations) keep the plain doubt of each match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from natlens.model import Interface
from natlens.nft.model import MAPPINGS, Element, Json

if TYPE_CHECKING:  # natlens.netfilter imports natlens.nft: no runtime import back
    from natlens.netfilter.flow import Flow

__all__ = ["condition", "is_out_key", "noted", "read", "conditions"]

Reading = tuple[str, bool]


def is_out_key(left: Json) -> bool:
    """Whether ``left`` is ``meta oifname`` or ``meta oif`` (nft -j: ``{"meta": {"key": …}}``)."""
    if not isinstance(left, MAPPINGS):
        return False
    meta = left.get("meta")
    return isinstance(meta, MAPPINGS) and meta.get("key") in ("oifname", "oif")


def condition(name: Json) -> Interface | None:
    """``name`` (an nft interface name, ``*`` a trailing wildcard) as an iptables ``-o``
    condition (``+`` the wildcard), or None when it cannot be written so."""
    if not isinstance(name, str) or not name or name.endswith(("+", "\\*")) \
            or "*" in name[:-1]:
        return None
    return Interface(name[:-1] + "+" if name.endswith("*") else name)


def conditions(elements: Sequence[Element]) -> tuple[Interface, ...] | None:
    """The keys of ``elements`` as ``-o`` conditions, or None unless all are plain names."""
    found = tuple(condition(e.key) for e in elements)
    return None if any(c is None for c in found) else tuple(c for c in found if c is not None)


def read(cond: Interface, flow: Flow) -> bool | None:
    """Whether the unknown output interface satisfies ``cond`` by the readings the path took
    (``read_out``), None when they do not tell."""
    from natlens.netfilter.matches import read_out  # noqa: PLC0415 (import cycle)

    return read_out(cond, flow.out_readings)


def noted(flow: Flow, reads: Sequence[Reading]) -> Flow:
    """``flow`` with ``reads`` (``(NAME, hit)``, ``Flow.out_readings``) added."""
    return replace(flow, out_readings=(*flow.out_readings, *reads)) if reads else flow
