"""End-to-end figures of the ``natlens`` command on large hosts (issue 13), in one run.

For each generated kube-proxy dump (gen_kube.py; default about 10k, 100k and 700k lines, each
written as the ``iptables-save.txt`` of a snapshot folder) it times, as a user would, the wall
time of a fresh ``natlens`` process (the console script, output to /dev/null):

* ``report``, ``trace`` (one packet to a ClusterIP service), ``exposure`` and ``graph``
  (``--format dot`` and ``--format svg``), each *cold* (empty snapshot cache: parse, prepare,
  answer; the command exits while a background process stores the cache entry, whose end is
  also timed for ``report``) and *warm* (same command again once the entry is stored: read
  from the cache; best of ``WARM``);
* a batch of 10,000 traces (``trace --packets FILE``, cold: the parse included);
* the in-process ``parse_save`` of the dump (reading the file included) and the floor
  ``for line in f: line.split()``, both best of ``--repeat``;

and once: ``python -c pass``, ``python -c "import natlens"`` and ``natlens --help`` (best of 5).
Each figure is printed with its ratio to the floor of the same dump. The snapshot cache lives in
a temporary ``XDG_CACHE_HOME``. The commands run a copy of the ``natlens`` package taken when the
benchmark starts (``PYTHONPATH``, and run from its folder: from the repository, ``python -m``
would import the working tree first): the cache key covers natlens's modules, so edits to the
working tree during the run would otherwise turn warm runs into cold ones. The copy leaves out
the optional compiled core (natlens/_native: the figures are pure Python's, as an installed
package runs until ``python -m natlens.native build``; bench_parse.py measures the core) and is
byte-compiled first, as an installed package is. Each command's CPU time (user + system) and
peak RSS are its own process's (``wait4``), and the size of the cache entry is printed after
the cold run (and its growth when the warm run stored something new).

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
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_kube

ROOT = Path(__file__).resolve().parent.parent
NATLENS = [sys.executable, "-m", "natlens"]
DEFAULT_SIZES = ("525x4", "7125x4", "36700x4")
BATCH = 10_000
WARM = 3
"""Warm runs of each command (the best is printed)."""
TRACE = ["--in", "eth0", "--src", "198.51.100.7", "--dst", "10.96.0.10", "--dport", "80"]


def _cwd(env: Mapping[str, str]) -> str:
    """Where the commands run: the folder holding the package copy (``PYTHONPATH``). Not the
    repository: ``python -m natlens`` and ``python -c`` put the current folder first on
    ``sys.path``, so from the repository they would import the working tree, not the copy."""
    return env.get("PYTHONPATH") or str(ROOT)


def _measure(argv: list[str], env: dict[str, str], *,
             stdin: Path | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS in MB of one process running
    ``argv`` (``wait4``'s rusage of that child: not the background cache writer it forks. Linux
    starts a child's peak at the RSS of the benchmark when it forks: ~20 MB, kept small)."""
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as fin, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdin=fin, stdout=subprocess.DEVNULL,
                                stderr=err, cwd=_cwd(env))
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        message = err.read().decode(errors="replace").strip()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {message}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _wall(argv: list[str], env: dict[str, str], *, stdin: Path | None = None) -> float:
    return _measure(argv, env, stdin=stdin)[0]


def _entries(env: dict[str, str]) -> int:
    """Bytes of the cache entries in ``env``'s cache folder."""
    folder = Path(env["XDG_CACHE_HOME"]) / "natlens"
    return sum(p.stat().st_size for p in folder.glob("*.snapshot")) if folder.is_dir() else 0


def _settle(env: dict[str, str]) -> None:
    """Wait until the cache entries commands left to background writers are stored (a warm
    run then reads them: snapshot_cache.wait_for_writes)."""
    subprocess.run([sys.executable, "-c", "from natlens import snapshot_cache; "
                    "snapshot_cache.wait_for_writes()"], env=env, cwd=_cwd(env), check=True)


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
                                    text=True, check=True, cwd=_cwd(os.environ)).stdout)
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


def _row(name: str, seconds: float, floor: float, target: str = "",
         usage: tuple[float, float, float] | None = None) -> str:
    cpu, rss = (f"{usage[1]:.2f}", f"{usage[2]:.0f}") if usage is not None else ("", "")
    return f"| {name} | {seconds:.2f} | {seconds / floor:.0f}x | {cpu} | {rss} | {target} |"


def bench(services: int, endpoints: int, work: Path, repeat: int,
          commands: list[str]) -> list[str]:
    rules, lines = gen_kube.expected_size(services, endpoints)
    snap = work / f"kube-{services}x{endpoints}"
    snap.mkdir()
    dump = snap / "iptables-save.txt"
    # generated by another process: this one stays small, and the peak RSS a command reports
    # (wait4) starts from what it inherits at fork
    subprocess.run([sys.executable, str(Path(gen_kube.__file__)), "--services", str(services),
                    "--endpoints", str(endpoints), "-o", str(dump)], check=True,
                   stderr=subprocess.DEVNULL)
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    floor = _floor(dump, repeat)
    parse = _parse(dump, max(1, repeat if rules < 200_000 else 1))
    out = [f"### {services}x{endpoints}: {rules:,} rules, {lines:,} lines", "",
           "| figure | seconds | / floor | CPU s | peak MB | target |",
           "| --- | --- | --- | --- | --- | --- |",
           _row("floor (line.split())", floor, floor),
           _row("parse_save (in process)", parse, floor)]
    big = 90_000 <= rules <= 110_000
    entries: list[str] = []
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
        cold_usage = _measure(argv, env)
        cold = cold_usage[0]
        _settle(env)  # the entry is written in the background once the answer is out
        stored = time.perf_counter() - start
        size = _entries(env)
        warm_usage = _measure(argv, env)
        _settle(env)  # a warm command that derived something new stores it again
        grown = _entries(env) - size
        for _ in range(WARM - 1):  # best of WARM: one process each, the machine may be shared
            warm_usage = min(warm_usage, _measure(argv, env))
        warm = warm_usage[0]
        target_cold = ""
        if big and name == "report":
            target_cold = (f"<= 3x parse ({3 * parse:.1f} s): "
                           f"{'met' if cold <= 3 * parse else 'NOT met'}")
        if big and name == "graph svg":
            target_cold = f"<= 10 s: {'met' if cold <= 10 else 'NOT met'}"
        target_warm = f"<= 0.5 s: {'met' if warm <= 0.5 else 'NOT met'}" \
            if big and name == "trace" else ""
        if big and name in ("report", "graph dot", "graph svg"):
            target_warm = f"<= 0.6 s: {'met' if warm <= 0.6 else 'NOT met'}"
        out.append(_row(f"{name}, cold", cold, floor, target_cold, cold_usage))
        if name == "report":
            out.append(_row(f"{name}, cold, until its entry is stored", stored, floor))
        out.append(_row(f"{name}, warm", warm, floor, target_warm, warm_usage))
        entries.append(f"{name}: {size:,} B" + (f" (+{grown:,} B after the warm run)"
                                                 if grown else ""))
    if "batch" in commands:
        packets = work / f"packets-{services}.csv"
        _packets(packets, services, BATCH)
        _wall([*NATLENS, "cache", "clear"], env)
        batch = _wall([*NATLENS, "trace", str(snap), "--packets", str(packets)], env)
        target = f"<= 20 s: {'met' if batch <= 20 else 'NOT met'}" if big else ""
        out.append(_row(f"{BATCH:,} traces (--packets, cold)", batch, floor, target))
    shutil.rmtree(snap)
    if entries:
        out += ["", "Cache entry after the cold run: " + "; ".join(entries) + "."]
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
        # the sources as an installed package holds them: no compiled core (a build in
        # natlens/_native, or one $NATLENS_NATIVE_DIR names, is not used)
        shutil.copytree(ROOT / "natlens", work / "src" / "natlens",
                        ignore=shutil.ignore_patterns("__pycache__", "_native", "*.so"))
        os.environ.pop("NATLENS_NATIVE_DIR", None)
        # compiled as pip compiles an installed package: a command then reads bytecode, even
        # under PYTHONDONTWRITEBYTECODE (else every run compiles ~80 modules, ~0.5 s)
        compileall.compile_dir(work / "src" / "natlens", quiet=1, workers=1)
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
