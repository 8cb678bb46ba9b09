"""Time each audit check, and the whole audit, on a big kube-proxy dump (or given snapshots).

    python benchmarks/bench_audit_checks.py                     # the 100k-rule dump (7125 x 4)
    python benchmarks/bench_audit_checks.py --sizes 7125x4,36700x4
    python benchmarks/bench_audit_checks.py --input SNAPSHOT_DIR ...
    python benchmarks/bench_audit_checks.py --profile           # cProfile of one audit, top 25

Per input: the load (``natlens.load``: parse and prepare) once, then each check of
``natlens.audit.CHECKS`` and ``natlens.audit.audit`` whole, each the
best of ``--repeat`` runs, in wall and CPU seconds, with the audit's ratio to the load. The
checks run in ``CHECKS`` order on one context, as ``audit`` runs them: the first one to need
what the context builds once (the table index, the Docker view) pays for it.

Goal (issue 13): the audit of the 100k-rule dump a small part of ``natlens report``'s
"cold report <= 3x parse".
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_kube import generate

import natlens
from natlens.audit import CHECKS, audit
from natlens.audit.findings import AuditContext
from natlens.snapshot import Snapshot


def bench(folder: Path, repeat: int) -> None:
    t0 = time.perf_counter()
    snap = natlens.load(str(folder))
    load = time.perf_counter() - t0
    gc.freeze()  # the snapshot stays: collections need not walk it between runs
    print(f"{folder}: {snap.ruleset.rule_count:,} rules, load {load:.2f} s")
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        ctx = AuditContext(snap)
        gc.disable()  # as audit does
        for check in (*CHECKS, None):
            t0, c0 = time.perf_counter(), time.process_time()
            if check is None:
                audit(snap)
            else:
                list(check(ctx))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            name = "audit (all checks)" if check is None else check.__name__
            old = best.get(name, (wall, cpu))
            best[name] = (min(wall, old[0]), min(cpu, old[1]))
        gc.enable()
    print(f"  {'check':30} {'wall s':>8} {'cpu s':>8}")
    for name, (wall, cpu) in best.items():
        if wall >= 0.0005 or name.startswith("audit"):  # checks with nothing to do: not listed
            print(f"  {name:30} {wall:8.3f} {cpu:8.3f}")
    print(f"  audit / load: {best['audit (all checks)'][0] / load:.2f} (wall seconds)")


def _profile(snap: Snapshot) -> None:
    prof = cProfile.Profile()
    prof.enable()
    audit(snap)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="7125x4",
                    help="kube dumps as SERVICESxENDPOINTS, comma-separated (default: 7125x4)")
    ap.add_argument("--input", nargs="+", metavar="DIR", help="snapshot folders instead")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs (default: 3)")
    ap.add_argument("--profile", action="store_true", help="profile one audit instead")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="natlens-bench-checks-") as tmp:
        folders = [Path(p) for p in args.input or ()]
        for size in ([] if args.input else args.sizes.split(",")):
            services, endpoints = (int(n) for n in size.split("x"))
            folder = Path(tmp) / size
            folder.mkdir()
            (folder / "iptables-save.txt").write_text(generate(services, endpoints))
            folders.append(folder)
        for folder in folders:
            if args.profile:
                _profile(natlens.load(str(folder)))
            else:
                bench(folder, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
