"""Benchmark the worst input shapes found (issue 11, "linear everywhere"): time and peak memory
at 1k, 10k and 100k rules, and the growth per 10x.

    python benchmarks/bench_worst.py                          # every shape, 1k / 10k / 100k
    python benchmarks/bench_worst.py --shapes blocklist-24,deep-trace --sizes 1000,10000
    python benchmarks/bench_worst.py --check                  # exit 1 unless the goals are met

Shapes (N = the size; each is the kind of input that was quadratic before):

- ``blocklist-24``: ``natlens report`` on the default-bridge-8080 fixture with N distinct
  ``-A INPUT -s X.Y.Z.0/24 -j DROP`` rules (a country / abuse block list; cases/hostile/05).
- ``blocklist-docker-user``: the same N rules in DOCKER-USER (the path published ports take).
- ``port-ranges``: ``report`` with N distinct ``-p PROTO -m PROTO --dport A:A+1 -j DROP``.
- ``deep-trace``: ``natlens trace`` through OUTPUT -> C1 -> ... -> CN -j DROP
  (cases/hostile/06; before: memory grew with N², 11 GB at 50,000).
- ``deep-report``: ``report`` on the same N-deep chain of jumps.
- ``glued-quotes``: ``natlens parse`` of one rule whose comment is 10·N glued ``"x"`` pieces
  (cases/hostile/20: 3 MB at N = 100k; iptables-restore refuses it, natlens says so).
- ``many-matches``: ``parse`` of one valid rule with N ``-m comment --comment "cN"`` matches.
- ``listing``: ``parse`` of an ``iptables -L -n -v --line-numbers`` listing of N DNAT rows.

Each measurement runs in a fresh process (``--worker``): the same command runs once on the
shape at size 10 (imports and first-use caches, not timed), the input is written (not timed),
then the command runs in-process through ``natlens.cli.main`` with its output discarded; the
time is that call's wall time, the memory the process's peak RSS (``VmHWM``).
The growth is CPU time(10N) / CPU time(N) (CPU time: the machine may be shared; wall time is
printed too): linear is 10, n log n a little more, quadratic 100.

Goals: growth <= 12 per 10x for every shape, and ``report`` on the 10,000-rule /24 block list
<= 10 s (the whole ``natlens report`` command, interpreter start included; judged on its CPU
time, which a shared machine does not inflate as much as the wall time).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "fixtures" / "default-bridge-8080"
GROWTH_GOAL = 12.0
REPORT_GOAL_S = 10.0
SIZES = (1_000, 10_000, 100_000)
EXPECTED_ERRORS = frozenset({"glued-quotes"})  # iptables-restore refuses it too
TRACE_ARGS = ["--local-origin", "--src", "192.0.2.2", "--dst", "198.51.100.7", "--dport", "443"]


def _net24(i: int) -> str:
    return f"{11 + ((i >> 16) & 255)}.{(i >> 8) & 255}.{i & 255}.0/24"


def _snapshot_with(rules: list[str], where: str, out: Path) -> list[str]:
    """The default-bridge-8080 fixture with ``rules`` inserted before ``where`` (a line of its
    filter table); returns the report command's arguments."""
    folder = out / "snap"
    shutil.copytree(FIXTURE, folder)
    save = folder / "iptables-save.txt"
    text = save.read_text()
    at = text.index(where)
    save.write_text(text[:at] + "".join(f"{r}\n" for r in rules) + text[at:])
    return ["report", str(folder)]


def _blocklist(n: int, out: Path) -> list[str]:
    return _snapshot_with([f"-A INPUT -s {_net24(i)} -j DROP" for i in range(n)],
                          "COMMIT", out)


def _blocklist_docker_user(n: int, out: Path) -> list[str]:
    return _snapshot_with([f"-A DOCKER-USER -s {_net24(i)} -j DROP" for i in range(n)],
                          "[0:0] -A DOCKER-USER -j RETURN", out)


def _port_ranges(n: int, out: Path) -> list[str]:
    protos = ("tcp", "udp", "sctp", "dccp")
    rules = []
    for i in range(n):
        proto, k = protos[i // 32_000 % 4], i % 32_000
        rules.append(f"-A INPUT -p {proto} -m {proto} --dport {1024 + k}:{1025 + k} -j DROP")
    return _snapshot_with(rules, "COMMIT", out)


def _deep_chain(n: int, out: Path) -> Path:
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":C{i} - [0:0]" for i in range(1, n + 1)]
    lines.append("-A OUTPUT -j C1")
    lines += [f"-A C{i} -j C{i + 1}" for i in range(1, n)]
    lines += [f"-A C{n} -j DROP", "COMMIT"]
    path = out / "deep.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _deep_trace(n: int, out: Path) -> list[str]:
    return ["trace", str(_deep_chain(n, out)), *TRACE_ARGS]


def _deep_report(n: int, out: Path) -> list[str]:
    return ["report", str(_deep_chain(n, out))]


def _glued_quotes(n: int, out: Path) -> list[str]:
    path = out / "glued.txt"
    path.write_text("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment "
                    + '"x"' * (10 * n) + " -j ACCEPT\nCOMMIT\n")
    return ["parse", str(path)]


def _many_matches(n: int, out: Path) -> list[str]:
    path = out / "matches.txt"
    comments = " ".join(f'-m comment --comment "c{i}"' for i in range(n))
    path.write_text(f"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT {comments} -j ACCEPT\nCOMMIT\n")
    return ["parse", str(path)]


def _listing(n: int, out: Path) -> list[str]:
    row = ("{n:<8} {b:>6} {b:>7} DNAT       6    --  !docker0 *       0.0.0.0/0            "
           "10.{x}.{y}.1          tcp dpt:{p} to:172.17.{x}.{y}:80\n")
    rows = "".join(row.format(n=i + 1, b=i * 60, x=i // 250 % 250, y=i % 250,
                              p=1024 + i % 60000) for i in range(n))
    path = out / "listing.txt"
    path.write_text("Chain DOCKER (1 references)\nnum      pkts      bytes target     prot opt "
                    "in     out     source               destination\n" + rows)
    return ["parse", "--input-table", "nat", str(path)]


SHAPES: dict[str, Callable[[int, Path], list[str]]] = {
    "blocklist-24": _blocklist,
    "blocklist-docker-user": _blocklist_docker_user,
    "port-ranges": _port_ranges,
    "deep-trace": _deep_trace,
    "deep-report": _deep_report,
    "glued-quotes": _glued_quotes,
    "many-matches": _many_matches,
    "listing": _listing,
}


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().split("\n"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(shape: str, n: int) -> dict[str, object]:
    """Write the input of ``shape`` at size ``n``, run its command in-process, measure."""
    from natlens.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm-up"
        warm.mkdir()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main(SHAPES[shape](10, warm))  # imports and first-use caches: not the shape's cost
        argv = SHAPES[shape](n, Path(tmp))
        sink = io.StringIO()
        start, cpu_start = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(io.StringIO()) as err:
            status = main(argv)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"shape": shape, "n": n, "seconds": seconds, "cpu": cpu, "peak_mb": _peak_mb(),
            "status": status, "error": err.getvalue().strip()[:120]}


@dataclass(frozen=True)
class Result:
    shape: str
    n: int
    seconds: float
    cpu: float
    peak_mb: float
    status: int
    error: str


def run_worker(shape: str, n: int) -> Result:
    proc = subprocess.run([sys.executable, __file__, "--worker", shape, str(n)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker {shape} {n} failed:\n{proc.stderr}")
    return Result(**json.loads(proc.stdout))


def cli_report_seconds(n: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the whole ``natlens report`` command (interpreter start and
    imports included) on the ``n``-rule /24 block list; CPU is the child's user + system time."""
    natlens = Path(sys.executable).parent / "natlens"
    with tempfile.TemporaryDirectory() as tmp:
        argv = _blocklist(n, Path(tmp))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([str(natlens), *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help=f"comma-separated, from: {', '.join(SHAPES)}")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 unless growth <= {GROWTH_GOAL} per 10x and report on "
                             f"10k /24 rules <= {REPORT_GOAL_S} s")
    parser.add_argument("--worker", nargs=2, metavar=("SHAPE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return 0
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown shape(s): {', '.join(unknown)}")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    ok = True
    print(f"{'shape':<22} {'N':>8} {'seconds':>8} {'CPU s':>8} {'peak MB':>8} {'exit':>4}  "
          "growth (CPU)")
    for shape in shapes:
        previous: Result | None = None
        for n in sizes:
            r = run_worker(shape, n)
            growth = ""
            if previous is not None:
                ratio = r.cpu / max(previous.cpu, 1e-9)
                per10 = ratio ** (1 / math.log10(n / previous.n))
                growth = f"x{ratio:.1f} for x{n / previous.n:g} (x{per10:.1f} per 10x)"
                if per10 > GROWTH_GOAL:
                    ok = False
                    growth += "  <- above goal"
            print(f"{shape:<22} {n:>8} {r.seconds:>8.2f} {r.cpu:>8.2f} {r.peak_mb:>8.0f} "
                  f"{r.status:>4}  {growth}", flush=True)
            if r.status == 2 and shape not in EXPECTED_ERRORS:
                ok = False
                print(f"  unexpected error: {r.error}", flush=True)
            previous = r
    if args.check or "blocklist-24" in shapes:
        wall, cpu = cli_report_seconds(10_000)
        met = cpu <= REPORT_GOAL_S
        ok = ok and met
        print(f"natlens report on a 10,000-rule /24 block list (whole command): {wall:.2f} s "
              f"wall, {cpu:.2f} s CPU (goal: CPU <= {REPORT_GOAL_S} s: "
              f"{'met' if met else 'NOT met'})")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
