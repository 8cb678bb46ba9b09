#!/usr/bin/env python3
"""Long kernel differential for release checks: natlens against the real kernel.

    sudo .venv/bin/python scripts/fuzz-differential.py [--seeds 0:20000] [--packets 5]
        [--backend nft --backend legacy] [--out DIR]

Runs the harness of tests/differential (random rulesets loaded into network namespaces made
here, one packet per check, counters and per-hook observations) over a wider seed range than
CI. Every disagreement is minimised and written as a ready-to-run case folder under --out
(default ./differential-cases): ruleset.txt, packets.json, kernel-observed.json, snap/,
README.md with the natlens command and the kernel-vs-natlens comparison. Exit status 1 when
natlens disagreed at least once, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "differential"))

from diff_run import run  # noqa: E402


def _seeds(text: str) -> range:
    first, _, last = text.partition(":")
    return range(int(first), int(last))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=_seeds, default=_seeds("0:20000"),
                        help="FIRST:END seed range (default 0:20000)")
    parser.add_argument("--packets", type=int, default=5, help="probes per ruleset")
    parser.add_argument("--backend", action="append", choices=("nft", "legacy"),
                        help="iptables backend (repeatable; default both)")
    parser.add_argument("--out", type=Path, default=Path("differential-cases"),
                        help="where minimised disagreements are written")
    args = parser.parse_args(argv)
    failed = 0
    for backend in args.backend or ("nft", "legacy"):
        start = time.monotonic()
        tally = run(backend, args.seeds, args.packets, out_dir=args.out)
        print(f"{tally.line()} in {time.monotonic() - start:.0f} s")
        for d in tally.disagreements:
            print(f"{d.folder}:\n{d.agreement.explain()}")
        failed += len(tally.disagreements)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
