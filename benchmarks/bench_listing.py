"""Benchmark ``natlens.parse_listing`` on real ``iptables -L`` listings against its peers.

For each generated kube-proxy dump (gen_kube.py) the benchmark makes a network namespace
(unique name, removed at the end; root only), restores the dump into it with
``iptables-restore`` and lists every table there the way a user would, in two shapes:

* ``-L -n -v -x --line-numbers`` (what natlens and jc read);
* ``-L -n -v -x`` (what linuxnet-iptables reads: it cannot read ``--line-numbers``).

It then measures, in the same run, each the best of ``--repeat`` runs, interleaved:

* floor: ``for line in f: line.split()`` over the ``--line-numbers`` listing;
* natlens ``parse_listing`` on both shapes (all tables in one text, ``# table NAME`` lines
  between them), reading the file included;
* natlens ``parse_save`` on the dump the listing was made from (the same rules);
* jc (``jc.parsers.iptables.parse``) on the ``--line-numbers`` listing, one call per table;
* linuxnet-iptables (``IptablesPacketFilterTable(TABLE).init_from_output``) on the ``-L -n -v
  -x`` listing, one call per table.

and prints seconds (wall and CPU), the ratio to the floor and to ``parse_save``, and the rules
each parser returned. A peer that is not installed is named (``pip install -e '.[bench]'``)
and skipped.

    python benchmarks/bench_listing.py                    # 712x4 and 7125x4 (10k, 100k rules)
    python benchmarks/bench_listing.py --sizes 7125x4     # 100k rules only
    python benchmarks/bench_listing.py --iptables iptables-legacy
    python benchmarks/bench_listing.py --check            # exit 1 unless the goals are met

Goals (issue 13): natlens's listing parser within 1.5x of ``parse_save`` on the same rules and
ahead of every listing peer (jc, linuxnet-iptables), each on the shape it reads.
"""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_kube

import natlens

GOAL_SAVE_RATIO = 1.5
DEFAULT_SIZES = ("712x4", "7125x4")
NOT_INSTALLED = "not installed: pip install -e '.[bench]'"
LINE_NUMBERS = "-L -n -v -x --line-numbers"
PLAIN = "-L -n -v -x"


@dataclass
class Figure:
    name: str
    shape: str
    seconds: float | None = None
    cpu: float | None = None
    """CPU seconds of the same runs (best of N): steadier than wall time on a shared machine."""
    rules: int | None = None
    note: str = ""


@dataclass
class Listings:
    """The listing texts of one dump, per table, in both shapes."""

    numbered: dict[str, str] = field(default_factory=dict)
    plain: dict[str, str] = field(default_factory=dict)


def _tables(dump: str) -> list[str]:
    return [line[1:].strip() for line in dump.splitlines() if line.startswith("*")]


def make_listings(dump: Path, iptables: str) -> Listings:
    """Restore ``dump`` into a network namespace made for it and list each of its tables
    there, in both shapes; the namespace is removed whatever happens. Needs root."""
    restore = f"{iptables}-restore"
    for tool in ("ip", iptables, restore):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench_listing.py: {tool} not found")
    ns = f"natlens-bench-listing-{os.getpid()}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    out = Listings()
    try:
        with dump.open("rb") as fin:
            subprocess.run(["ip", "netns", "exec", ns, restore], stdin=fin, check=True)
        for table in _tables(dump.read_text()):
            base = ["ip", "netns", "exec", ns, iptables, "-t", table]
            for flags, into in ((LINE_NUMBERS, out.numbered), (PLAIN, out.plain)):
                into[table] = subprocess.run([*base, *flags.split()], check=True,
                                             capture_output=True, text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    return out


def joined(per_table: dict[str, str]) -> str:
    """Several tables' listings as natlens reads them: ``# table NAME`` before each."""
    return "".join(f"# table {table}\n{text}" for table, text in per_table.items())


def _rules(ruleset: natlens.Ruleset) -> int:
    return sum(len(c.rules) for t in ruleset.tables for c in t.chains)


def _timed(run: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, rules read) of one run."""
    gc.collect()
    start, start_cpu = time.perf_counter(), time.process_time()
    rules = run()
    return time.perf_counter() - start, time.process_time() - start_cpu, rules


def _peers() -> dict[str, Callable[[dict[str, str]], int] | str]:
    """jc and linuxnet-iptables as callables (listing texts per table -> rules read), or the
    reason one cannot run."""
    peers: dict[str, Callable[[dict[str, str]], int] | str] = {}
    try:
        import jc.parsers.iptables as jc_iptables

        def run_jc(per_table: dict[str, str]) -> int:
            rules = 0
            for text in per_table.values():
                chains = jc_iptables.parse(text, quiet=True)
                rules += sum(len(chain.get("rules", ())) for chain in chains)
            return rules

        peers["jc"] = run_jc
    except ImportError:
        peers["jc"] = NOT_INSTALLED
    try:
        from linuxnet.iptables import IptablesPacketFilterTable

        def run_linuxnet(per_table: dict[str, str]) -> int:
            rules = 0
            for table, text in per_table.items():
                parsed = IptablesPacketFilterTable(table)
                parsed.init_from_output(text, log_parsing_failures=False)
                chains = parsed.get_builtin_chains() + parsed.get_user_chains()
                rules += sum(len(chain.get_rules()) for chain in chains)
            return rules

        peers["linuxnet-iptables"] = run_linuxnet
    except ImportError:
        peers["linuxnet-iptables"] = NOT_INSTALLED
    return peers


def measure(dump: Path, listings: Listings, repeat: int, tmp: Path) -> list[Figure]:
    numbered_path = tmp / "listing-numbered.txt"
    plain_path = tmp / "listing-plain.txt"
    numbered_path.write_text(joined(listings.numbered))
    plain_path.write_text(joined(listings.plain))

    def floor() -> int:
        with numbered_path.open() as f:
            for line in f:
                line.split()
        return 0

    def listing(path: Path) -> Callable[[], int]:
        return lambda: _rules(natlens.parse_listing(path.read_text(), source=str(path)))

    def save() -> int:
        return _rules(natlens.parse_save(dump.read_text(), source=str(dump)))

    peers = _peers()
    figures = [
        Figure("floor (line.split())", LINE_NUMBERS),
        Figure("natlens parse_listing", LINE_NUMBERS),
        Figure("natlens parse_listing", PLAIN),
        Figure("natlens parse_save", "iptables-save"),
        Figure("jc", LINE_NUMBERS),
        Figure("linuxnet-iptables", PLAIN),
    ]
    runs: list[Callable[[], int] | str] = [
        floor, listing(numbered_path), listing(plain_path), save,
        _peer_run(peers["jc"], listings.numbered),
        _peer_run(peers["linuxnet-iptables"], listings.plain),
    ]
    for _ in range(repeat):  # interleaved: every parser once per round
        for figure, run in zip(figures, runs, strict=True):
            if isinstance(run, str):
                figure.note = run
                continue
            seconds, cpu, rules = _timed(run)
            figure.seconds = seconds if figure.seconds is None else min(figure.seconds, seconds)
            figure.cpu = cpu if figure.cpu is None else min(figure.cpu, cpu)
            figure.rules = rules
    figures[0].rules = None
    return figures


def _peer_run(peer: Callable[[dict[str, str]], int] | str,
              per_table: dict[str, str]) -> Callable[[], int] | str:
    if isinstance(peer, str):
        return peer
    return lambda: peer(per_table)


def report(name: str, lines: int, figures: list[Figure]) -> list[tuple[str, bool]]:
    """Print the table of one dump; return the goals with whether each is met."""
    by = {(f.name, f.shape): f for f in figures}
    floor = by[("floor (line.split())", LINE_NUMBERS)].seconds or float("nan")
    save_figure = by[("natlens parse_save", "iptables-save")]
    save = save_figure.seconds or float("nan")
    save_cpu = save_figure.cpu or float("nan")
    print(f"\n{name}: listing of {lines} lines ({LINE_NUMBERS})")
    head = (f"{'parser':<24} {'input':<28} {'seconds':>8} {'/ floor':>8} {'/ save':>7} "
            f"{'cpu s':>7} {'/ save':>7} {'rules':>8}")
    print(head)
    print("-" * len(head))
    for f in figures:
        if f.seconds is None:
            print(f"{f.name:<24} {f.shape:<28} {f.note}")
            continue
        rules = "" if f.rules is None else str(f.rules)
        cpu = f.cpu or float("nan")
        print(f"{f.name:<24} {f.shape:<28} {f.seconds:>8.3f} {f.seconds / floor:>7.1f}x "
              f"{f.seconds / save:>6.2f}x {cpu:>7.3f} {cpu / save_cpu:>6.2f}x {rules:>8}")
    goals: list[tuple[str, bool]] = []
    numbered = by[("natlens parse_listing", LINE_NUMBERS)]
    assert numbered.seconds is not None
    assert numbered.cpu is not None
    ratio = numbered.seconds / save
    goals.append((f"{name}: natlens listing {numbered.seconds:.3f} s = {ratio:.2f}x parse_save "
                  f"(CPU: {numbered.cpu / save_cpu:.2f}x; goal <= {GOAL_SAVE_RATIO}x)",
                  ratio <= GOAL_SAVE_RATIO))
    for peer, shape in (("jc", LINE_NUMBERS), ("linuxnet-iptables", PLAIN)):
        theirs = by[(peer, shape)].seconds
        if theirs is None:
            continue
        ours = by[("natlens parse_listing", shape)].seconds
        assert ours is not None
        goals.append((f"{name}: natlens {ours:.3f} s vs {peer} {theirs:.3f} s on `{shape}` "
                      f"({theirs / ours:.1f}x faster)", ours < theirs))
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="*", default=list(DEFAULT_SIZES),
                        help="SERVICESxENDPOINTS per generated dump (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--iptables", default="iptables",
                        help="the iptables command restoring and listing in the namespace "
                             "(iptables, iptables-nft, iptables-legacy; default %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless every goal is met")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_listing.py: needs root: it restores the generated rules into a network "
              "namespace it makes and lists them there with iptables -L (the host's rules "
              "are never touched); nothing measured", file=sys.stderr)
        return 2
    version = subprocess.run([args.iptables, "-V"], capture_output=True, text=True,
                             check=False).stdout.strip()
    print(f"listings made by {version or args.iptables} in a network namespace; "
          f"best of {args.repeat}, interleaved")
    goals: list[tuple[str, bool]] = []
    with tempfile.TemporaryDirectory(prefix="natlens-bench-listing-") as tmp_name:
        tmp = Path(tmp_name)
        for size in args.sizes:
            services, endpoints = gen_kube.parse_size(size)
            dump = tmp / f"kube-{services}x{endpoints}.rules"
            dump.write_text(gen_kube.generate(services, endpoints))
            start = time.perf_counter()
            listings = make_listings(dump, args.iptables)
            made = time.perf_counter() - start
            lines = joined(listings.numbered).count("\n")
            name = f"kube {services}x{endpoints}"
            print(f"{name}: restored and listed in {made:.1f} s")
            goals += report(name, lines, measure(dump, listings, args.repeat, tmp))
    print()
    for text, met in goals:
        print(f"{'met' if met else 'NOT met'}: {text}")
    print(f"python {sys.version.split()[0]}")
    return 1 if args.check and not all(met for _, met in goals) else 0


if __name__ == "__main__":
    sys.exit(main())
