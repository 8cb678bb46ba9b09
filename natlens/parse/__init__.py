"""iptables rule text → ``natlens.model.Ruleset``.

``load_rules`` (``detect``) is the front door: it tells ``iptables-save`` / ``-S`` text from a
``-L`` listing and calls ``parse_save`` (``save``) or ``parse_listing`` (``listing``). Below
them: ``tokens`` (shell-like words), ``rule`` and ``fastrule`` (one rule's options; ``fastrule``
reads lines in iptables-save's own shape by segment, ``construct`` builds the frozen model
objects cheaply, ``families`` refuses values of the other address family),
``modules`` (one entry per ``-m``/``-j``), ``checks`` (what iptables refuses of a module's
options as a whole), ``values`` and ``canonical`` (iptables-save's spelling of values),
``infer`` (table and family of a text that does not name them).

Importing this package first asks ``natlens.native`` whether a fresh compiled core of the save
parser's hot path is built (``python -m natlens.native build``); if so, those modules load from
it, with identical results (docs/native.md).
"""

from __future__ import annotations

from natlens import native as _native

_native.install()  # the compiled core when one is built and fresh (natlens.native)

from importlib import import_module  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

if TYPE_CHECKING:
    from natlens.parse.detect import detect_format, load_rules
    from natlens.parse.listing import parse_listing
    from natlens.parse.save import parse_save

__all__ = ["detect_format", "load_rules", "parse_listing", "parse_save"]

_LAZY = {
    "detect_format": "natlens.parse.detect",
    "load_rules": "natlens.parse.detect",
    "parse_listing": "natlens.parse.listing",
    "parse_save": "natlens.parse.save",
}
"""Where each public function lives: imported when first asked for (PEP 562), so that
``natlens.parse_save`` does not load the listing parser (a fifth of its start-up, issue 13)."""


def __getattr__(name: str) -> Any:
    """The public parse functions (and the submodules), each imported on first use."""
    module = _LAZY.get(name)
    if module is None:  # a submodule (``natlens.parse.save``), as an eager import would set
        try:
            return import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
