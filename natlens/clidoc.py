"""Render the CLI reference (docs/cli.md) from the argument parser, so the two cannot drift.

``python -m natlens.clidoc > docs/cli.md`` regenerates it; a test compares the file with this
output.
"""

from __future__ import annotations

import argparse
import os

from natlens.cli import build_parser

__all__ = ["render"]

_INTRO = """# CLI reference

Generated from the argument parser (`python -m natlens.clidoc > docs/cli.md`); a test keeps it
current. `PATH` is a snapshot folder, an iptables-save / `iptables -S` / `iptables -L` file, or
`-` for standard input.

Exit status: 0 clean; 1 findings at or above `--fail-on` (`report`) or disagreements (`verify`);
2 bad input or usage, with one line naming the file and line. natlens never modifies a host's
rules.
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def render() -> str:
    """The whole reference as Markdown."""
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # stable wrapping of argparse's help
    try:
        parser = build_parser()
        parts = [_INTRO]
        for name, sub in _subparsers(parser).items():
            parts.append(f"## natlens {name}\n\n```\n{sub.format_help().rstrip()}\n```\n")
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
