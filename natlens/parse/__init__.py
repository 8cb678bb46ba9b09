"""iptables rule text → ``natlens.model.Ruleset``.

``load_rules`` (``detect``) is the front door: it tells ``iptables-save`` / ``-S`` text from a
``-L`` listing and calls ``parse_save`` (``save``) or ``parse_listing`` (``listing``). Below
them: ``tokens`` (shell-like words), ``rule`` and ``fastrule`` (one rule's options; ``fastrule``
reads lines in iptables-save's own shape by segment, ``construct`` builds the frozen model
objects cheaply, ``families`` refuses values of the other address family),
``modules`` (one entry per ``-m``/``-j``), ``checks`` (what iptables refuses of a module's
options as a whole), ``values`` and ``canonical`` (iptables-save's spelling of values),
``infer`` (table and family of a text that does not name them).
"""

from __future__ import annotations

from natlens.parse.detect import detect_format, load_rules
from natlens.parse.listing import parse_listing
from natlens.parse.save import parse_save

__all__ = ["detect_format", "load_rules", "parse_listing", "parse_save"]
