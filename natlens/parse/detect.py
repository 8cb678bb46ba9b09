"""The front door of ``natlens.parse``: tell the format of rule text and parse it.

Three text formats reach natlens: ``iptables-save`` (and iptables-restore input, ufw's rules
files), ``iptables -S`` (the same commands without ``*table`` headers) and ``iptables -L``
listings. ``detect_format`` tells them apart from the first meaningful line; ``load_rules``
parses any of them into a ``Ruleset`` whose ``coverage`` says what the text shows.
"""

from __future__ import annotations

from natlens.model import Family, Ruleset, TableName
from natlens.parse.listing import parse_listing
from natlens.parse.save import parse_save
from natlens.parse.tokens import split_lines

__all__ = ["detect_format", "load_rules"]

_LISTING_STARTS = ("Chain ", "target ", "pkts ", "num ")


def detect_format(text: str) -> str:
    """``"save"`` (iptables-save, restore input or ``-S``) or ``"listing"`` (``iptables -L``),
    from the first line that is neither blank nor a ``#`` comment."""
    for raw in split_lines(text):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(_LISTING_STARTS):
            return "listing"
        return "save"
    return "save"


def load_rules(
    text: str,
    *,
    source: str = "<string>",
    strict: bool = True,
    family: Family | str | None = None,
    table: TableName | str | None = None,
    restore_flush: bool = False,
    saved: bool = False,
) -> Ruleset:
    """Parse rule text of any supported format (``detect_format``) into a Ruleset.

    ``table`` names the table of a single ``-S`` or ``-L`` text; ``restore_flush`` makes a
    repeated ``*table`` section replace the table instead of merging into it (iptables-restore
    without ``--noflush``); ``saved``: the caller knows restore text is a whole
    ``iptables-save`` dump (see ``parse_save``). Raises ``ParseError`` (file, line, reason) for
    bad text.
    """
    if detect_format(text) == "listing":
        from natlens.snapshot_checks import check_listing_numeric  # noqa: PLC0415

        check_listing_numeric(text, source)  # warns: names are read as far as they tell
        return parse_listing(text, source=source, family=family, table=table, strict=strict)
    return parse_save(text, source=source, strict=strict, family=family, table=table,
                      restore_flush=restore_flush, saved=saved)
