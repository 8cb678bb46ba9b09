"""The ``natlens`` command: a thin layer over the public API.

Exit status (DESIGN.md): 0 clean, 1 findings at or above ``--fail-on``, 2 bad input or usage; bad
input prints one line naming the file and line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence

from natlens.errors import NatlensError, ParseWarning
from natlens.serialize import ruleset_to_dict, to_save
from natlens.snapshot import load

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (no usage dump) on a bad command line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"natlens: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="snapshot folder, iptables-save / -S / -L file, or - for stdin")
    p.add_argument("--lenient", action="store_true",
                   help="accept restore input iptables-save never writes (unquoted comments, "
                        "'-' policies on built-in chains), with a warning per line")


def _cmd_parse(args: argparse.Namespace) -> int:
    snap = load(args.path, strict=not args.lenient)
    rulesets = [rs for rs in (snap.ruleset, snap.ruleset6) if rs.tables]
    if args.format == "json":
        out: object = [ruleset_to_dict(rs) for rs in rulesets]
        if len(rulesets) == 1:
            out = out[0]  # type: ignore[index]
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        for rs in rulesets:
            sys.stdout.write(to_save(rs, counters=not args.no_counters,
                                     comments=not args.no_comments))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``natlens`` command (also used to document the CLI)."""
    parser = _ArgumentParser(prog="natlens", description="Where do your packets really go? "
                             "iptables and Docker NAT analysis.")
    parser.add_argument("--version", action="version", version="natlens 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    sub.required = True

    p = sub.add_parser("parse", help="parse rules and print them as iptables-save text or JSON",
                       description="Parse a rule file or snapshot and print the model.")
    _add_common(p)
    p.add_argument("--format", choices=("save", "json"), default="save",
                   help="save: re-serialised iptables-save text; json: the model (default: save)")
    p.add_argument("--no-counters", action="store_true", help="omit [packets:bytes] counters")
    p.add_argument("--no-comments", action="store_true", help="omit '#' comment lines")
    p.set_defaults(handler=_cmd_parse)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ParseWarning)
            status = handler(args)
        for w in caught:
            sys.stderr.write(f"natlens: warning: {w.message}\n")
        return status
    except NatlensError as exc:
        sys.stderr.write(f"natlens: error: {exc}\n")
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
