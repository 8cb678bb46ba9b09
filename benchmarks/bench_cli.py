"""End-to-end figures of the ``natlens`` command on large hosts (issue 13), in one run.

For each generated kube-proxy dump (gen_kube.py; default about 10k, 100k and 700k lines, each
written as the ``iptables-save.txt`` of a snapshot folder) it times, as a user would, the wall
time of a fresh ``natlens`` process (the console script, output to /dev/null):

* ``report``, ``trace`` (one packet to a ClusterIP service), ``exposure`` and ``graph``
  (``--format dot`` and ``--format svg``), each *cold* (empty snapshot cache: parse, prepare,
  answer; the command exits while a background process stores the cache entry, whose end is
  also timed for ``report``) and *warm* (same command again once the entry is stored: read
  from the cache);
* a batch of 10,000 traces (``trace --packets FILE``, cold: the parse included);
* the in-process ``parse_save`` of the dump (reading the file included) and the floor
  ``for line in f: line.split()``, both best of ``--repeat``;

and once: ``python -c pass``, ``python -c "import natlens"`` and ``natlens --help`` (best of 5).
Each figure is printed with its ratio to the floor of the same dump. The snapshot cache lives in
a temporary ``XDG_CACHE_HOME``. The commands run a copy of the ``natlens`` package taken when the
benchmark starts (``PYTHONPATH``): the cache key covers natlens's modules, so edits to the
working tree during the run would otherwise turn every warm run into a cold one. The copy is
byte-compiled first, as an installed package is.

Targets of the issue (100k rules): warm ``trace`` <= 0.5 s, 10,000 traces <= 20 s, cold
``report`` <= 3x the parse, ``graph --format svg`` <= 10 s; start-up <= 0.15 s.

    python benchmarks/bench_cli.py                        # 525x4, 7125x4, 36700x4
    python benchmarks/bench_cli.py --sizes 7125x4         # the 100k-rule dump only
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_kube

ROOT = Path(__file__).resolve().parent.parent
NATLENS = [sys.executable, "-m", "natlens"]
DEFAULT_SIZES = ("525x4", "7125x4", "36700x4")
BATCH = 10_000
TRACE = ["--in", "eth0", "--src", "198.51.100.7", "--dst", "10.96.0.10", "--dport", "80"]


def _wall(argv: list[str], env: dict[str, str], *, stdin: Path | None = None) -> float:
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as fin:
        done = subprocess.run(argv, env=env, stdin=fin, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return elapsed


def _settle(env: dict[str, str]) -> None:
    """Wait until the cache entries commands left to background writers are stored (a warm
    run then reads them: snapshot_cache.wait_for_writes)."""
    subprocess.run([sys.executable, "-c", "from natlens import snapshot_cache; "
                    "snapshot_cache.wait_for_writes()"], env=env, cwd=ROOT, check=True)


def _best(argv: list[str], env: dict[str, str], n: int = 5) -> float:
    return min(_wall(argv, env) for _ in range(n))


def _floor(path: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line.split()
        best = min(best, time.perf_counter() - start)
    return best


def _parse(path: Path, repeat: int) -> float:
    code = ("import time, natlens; t = time.perf_counter(); "
            f"natlens.parse_save(open({str(path)!r}, encoding='utf-8').read()); "
            "print(time.perf_counter() - t)")
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    text=True, check=True, cwd=ROOT).stdout)
               for _ in range(repeat))


def _packets(path: Path, services: int, count: int) -> None:
    rng = random.Random(13)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("in,src,dst,proto,dport\n")
        for _ in range(count):
            n = rng.randrange(max(services, 1))
            ip = 0x0A600000 + 10 + n  # the generator's service addresses, plus misses
            dst = f"{ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}"
            fh.write(f"eth0,198.51.100.{rng.randrange(1, 255)},{dst},"
                     f"{rng.choice(('tcp', 'udp'))},{rng.choice((53, 80, 443, 8080))}\n")


def _row(name: str, seconds: float, floor: float, target: str = "") -> str:
    return f"| {name} | {seconds:.2f} | {seconds / floor:.0f}x | {target} |"


def bench(services: int, endpoints: int, work: Path, repeat: int,
          commands: list[str]) -> list[str]:
    rules, lines = gen_kube.expected_size(services, endpoints)
    snap = work / f"kube-{services}x{endpoints}"
    snap.mkdir()
    dump = snap / "iptables-save.txt"
    dump.write_text(gen_kube.generate(services, endpoints), encoding="utf-8")
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    floor = _floor(dump, repeat)
    parse = _parse(dump, max(1, repeat if rules < 200_000 else 1))
    out = [f"### {services}x{endpoints}: {rules:,} rules, {lines:,} lines", "",
           "| figure | seconds | / floor | target |", "| --- | --- | --- | --- |",
           _row("floor (line.split())", floor, floor),
           _row("parse_save (in process)", parse, floor)]
    big = 90_000 <= rules <= 110_000
    jobs = {
        "report": [*NATLENS, "report", str(snap)],
        "trace": [*NATLENS, "trace", str(snap), *TRACE],
        "exposure": [*NATLENS, "exposure", str(snap)],
        "graph dot": [*NATLENS, "graph", str(snap), "--format", "dot"],
        "graph svg": [*NATLENS, "graph", str(snap), "--format", "svg"],
    }
    for name, argv in jobs.items():
        if name.split()[0] not in commands:
            continue
        _wall([*NATLENS, "cache", "clear"], env)
        start = time.perf_counter()
        cold = _wall(argv, env)
        _settle(env)  # the entry is written in the background once the answer is out
        stored = time.perf_counter() - start
        warm = _wall(argv, env)
        target_cold = ""
        if big and name == "report":
            target_cold = (f"<= 3x parse ({3 * parse:.1f} s): "
                           f"{'met' if cold <= 3 * parse else 'NOT met'}")
        if big and name == "graph svg":
            target_cold = f"<= 10 s: {'met' if cold <= 10 else 'NOT met'}"
        target_warm = f"<= 0.5 s: {'met' if warm <= 0.5 else 'NOT met'}" \
            if big and name == "trace" else ""
        out.append(_row(f"{name}, cold", cold, floor, target_cold))
        if name == "report":
            out.append(_row(f"{name}, cold, until its entry is stored", stored, floor))
        out.append(_row(f"{name}, warm", warm, floor, target_warm))
    if "batch" in commands:
        packets = work / f"packets-{services}.csv"
        _packets(packets, services, BATCH)
        _wall([*NATLENS, "cache", "clear"], env)
        batch = _wall([*NATLENS, "trace", str(snap), "--packets", str(packets)], env)
        target = f"<= 20 s: {'met' if batch <= 20 else 'NOT met'}" if big else ""
        out.append(_row(f"{BATCH:,} traces (--packets, cold)", batch, floor, target))
    shutil.rmtree(snap)
    return [*out, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="*", default=list(DEFAULT_SIZES),
                        help="SERVICESxENDPOINTS dumps (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for floor and parse")
    parser.add_argument("--commands", nargs="*",
                        default=["report", "trace", "exposure", "graph", "batch"],
                        help="commands to time (default: all)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="natlens-bench-cli-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "natlens", work / "src" / "natlens",
                        ignore=shutil.ignore_patterns("__pycache__"))
        # compiled as pip compiles an installed package: a command then reads bytecode, even
        # under PYTHONDONTWRITEBYTECODE (else every run compiles ~80 modules, ~0.5 s)
        compileall.compile_dir(work / "src" / "natlens", quiet=1)
        os.environ["PYTHONPATH"] = str(work / "src")  # every command below runs this copy
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        startup = {
            "python -c pass": _best([sys.executable, "-c", "pass"], env),
            "import natlens": _best([sys.executable, "-c", "import natlens"], env),
            "natlens --help": _best([*NATLENS, "--help"], env),
        }
        print("## start-up (best of 5)\n\n| figure | seconds | target |\n| --- | --- | --- |")
        for name, seconds in startup.items():
            target = "" if name == "python -c pass" else \
                f"<= 0.15 s: {'met' if seconds <= 0.15 else 'NOT met'}"
            print(f"| {name} | {seconds:.3f} | {target} |")
        print()
        for size in args.sizes:
            services, _, endpoints = size.partition("x")
            for line in bench(int(services), int(endpoints or 4), work, args.repeat,
                              args.commands):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
