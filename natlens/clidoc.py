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

natlens never modifies a host's rules.

## Exit status

- 0 clean (`trace`: the packet is delivered);
- 1 findings at or above `--fail-on` (`report`), disagreements (`verify`), or a packet every
  outcome drops or rejects (`trace`, like grep's "no match");
- 2 bad input or usage, with one line naming the file and line (or the option and its value);
- 130 interrupted (Ctrl-C); `verify` 128+N when signal N interrupted it;
- a reader that stops reading (`natlens trace ... | head -1`) is no error: natlens prints
  nothing more, no message, and exits with the status the command had decided before the
  reader left. Every command decides it before it writes its answer (the trace's verdict, the
  report's findings), so a `set -o pipefail` script sees the same status as without `head`.
  `trace --packets FILE` is the exception: it writes each packet's line as soon as the packet
  is traced, so the packets after the reader left are never traced and there is no status to
  give; it exits 141 (128 + SIGPIPE), what a shell reports for a tool that the closed pipe
  killed (`yes | head -1`); 0 when the reader left after natlens wrote its last line. A closed
  or full standard output (`>&-`, `>/dev/full`) stays an error (exit 2).

## Output width

Text output follows the terminal's width: `COLUMNS` when set, else the width of the terminal
standard output is on. Every table, legend and note of `report`, `exposure` and `cache list`,
every `trace` step and `trace --packets` line fits it (a word longer than a line is cut in
trace output and in the finding column, kept whole in notes, legends and the where column;
below about 56 columns the finding table keeps a 16-character finding column). In a pipe or
file without `COLUMNS`, trace lines are not wrapped (grep sees whole lines) and tables keep a
fixed layout (the exposure map 80 columns, the finding column 72).
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
