"""Run the differential: random rulesets into a ``Lab``, probes, natlens on the capture, compare.

``run(backend, seeds, packets)`` loads each seed's ruleset with iptables-restore into one
reused topology, captures it as a natlens snapshot, sends each probe once and compares natlens's
trace with what the kernel did (``diff_oracle.compare``). Each disagreement is minimised
(``minimise``: delta debugging over the rules, then DROP policies turned into ACCEPT, keeping
only changes after which the same probe still disagrees the same way) and written as a
ready-to-run case folder (``write_case``: the layout of ``cases/kernel/``, so
``tests/test_kernel_cases.py`` can read it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diff_gen import GenRuleset, Probe, random_probes, random_ruleset
from diff_harness import Lab, LoadError
from diff_oracle import Agreement, compare, packet_of

import natlens

__all__ = ["Disagreement", "Tally", "check", "minimise", "run", "write_case"]


@dataclass
class Disagreement:
    """One probe natlens got wrong, before and after minimisation."""

    backend: str
    seed: int
    ruleset: GenRuleset
    probe: Probe
    agreement: Agreement
    folder: Path | None = None


@dataclass
class Tally:
    """What a run did: counts for the test to print."""

    backend: str
    rulesets: int = 0
    refused: int = 0
    packets: int = 0
    agreements: int = 0
    branch_agreements: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)

    def line(self) -> str:
        """``nft: 1000 rulesets (3 refused by iptables-restore), 5000 packets, ...``."""
        return (f"{self.backend}: {self.rulesets} rulesets ({self.refused} refused by "
                f"iptables-restore), {self.packets} packets, {self.agreements} agreements "
                f"({self.branch_agreements} among natlens branches), "
                f"{len(self.disagreements)} disagreements")


def check(lab: Lab, snap_dir: Path, probes: Iterable[Probe]
          ) -> list[tuple[Probe, dict[str, Any], Agreement]]:
    """Probe the loaded ruleset (captured in ``snap_dir``) and compare each answer."""
    lab.capture(snap_dir)
    snap = natlens.load(snap_dir)
    out = []
    for p in probes:
        observed = lab.probe(p)
        trace = natlens.simulate(snap, packet_of(p.to_json()))
        out.append((p, observed, compare(trace, p.to_json(), observed)))
    return out


def _still_fails(lab: Lab, rs: GenRuleset, probe: Probe, diffs: tuple[str, ...],
                 work: Path) -> bool:
    try:
        lab.load(rs.restore_text())
    except LoadError:
        return False
    (_, _, agreement), = check(lab, work, [probe])
    return agreement.differences == diffs


def minimise(lab: Lab, rs: GenRuleset, probe: Probe, diffs: tuple[str, ...],
             work: Path) -> GenRuleset:
    """The smallest ruleset found (ddmin over rules, then policies) on which ``probe`` still
    disagrees with the same ``diffs``."""
    ids = rs.rule_ids()
    n = 2
    while len(ids) >= 1:
        chunk = max(1, len(ids) // n)
        parts = [ids[i:i + chunk] for i in range(0, len(ids), chunk)]
        reduced = False
        for part in parts:
            keep = [i for i in ids if i not in part]
            candidate = rs.without(set(rs.rule_ids()) - set(keep))
            if _still_fails(lab, candidate, probe, diffs, work):
                ids, reduced = keep, True
                n = max(n - 1, 2)
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(ids), n * 2)
    best = rs.without(set(rs.rule_ids()) - set(ids))
    changed = True
    while changed:
        changed = False
        for simpler in best.simpler_policies():
            if _still_fails(lab, simpler, probe, diffs, work):
                best, changed = simpler, True
                break
    return best


def write_case(folder: Path, lab: Lab, rs: GenRuleset | str, probe: Probe, seed: int | str
               ) -> Agreement:
    """Load ``rs``, probe once more and write the case folder (README, ruleset.txt,
    packets.json, kernel-observed.json, snap/); returns the comparison recorded there."""
    folder.mkdir(parents=True, exist_ok=True)
    text = rs if isinstance(rs, str) else rs.restore_text()
    (folder / "ruleset.txt").write_text(text)
    lab.load(text)
    (result,) = check(lab, folder / "snap", [probe])
    _, observed, agreement = result
    (folder / "packets.json").write_text(json.dumps([probe.to_json()]) + "\n")
    (folder / "kernel-observed.json").write_text(json.dumps([observed], indent=1) + "\n")
    p = probe
    where = "--local-origin" if p.ingress == "local" else f"--in {p.ingress}"
    ports = f" --sport {p.sport} --dport {p.dport}" if p.proto in ("tcp", "udp") else ""
    (folder / "README.md").write_text(
        f"# Differential case: {seed if isinstance(seed, str) else f'seed {seed}'}, backend "
        f"iptables-{lab.backend}\n\n"
        "Written by tests/differential (ruleset.txt is the iptables-restore input; snap/ the "
        "namespace captured as a natlens snapshot; kernel-observed.json the kernel's counters "
        "and per-hook observations).\n\n```\n"
        f"$ natlens trace snap {where} --src {p.src} --dst {p.dst} --proto {p.proto}{ports} "
        f"--format json\n{agreement.explain()}\n```\n")
    return agreement


def run(backend: str, seeds: Iterable[int], packets: int = 5, *,
        out_dir: Path | None = None, minimise_failures: bool = True,
        lab: Lab | None = None) -> Tally:
    """The differential over ``seeds`` on ``backend`` (``nft`` or ``legacy``); disagreements are
    minimised and written under ``out_dir`` (a temporary folder when None)."""
    tally = Tally(backend)
    work = Path(tempfile.mkdtemp(prefix="natlens-diff-"))
    own = lab is None
    lab = lab or Lab(backend)
    try:
        for seed in seeds:
            rs = random_ruleset(seed)
            try:
                lab.load(rs.restore_text())
            except LoadError:
                tally.refused += 1
                continue
            tally.rulesets += 1
            for probe, _observed, agreement in check(lab, work / "snap",
                                                     random_probes(seed, packets)):
                tally.packets += 1
                if agreement.agrees:
                    tally.agreements += 1
                    tally.branch_agreements += agreement.branched
                else:
                    tally.disagreements.append(
                        Disagreement(backend, seed, rs, probe, agreement))
        if minimise_failures:
            base = out_dir or work / "cases"
            for n, d in enumerate(tally.disagreements):
                small = minimise(lab, d.ruleset, d.probe, d.agreement.differences, work / "m")
                d.folder = base / f"{backend}-seed{d.seed}-{n}"
                d.agreement = write_case(d.folder, lab, small, d.probe, d.seed)
                d.ruleset = small
    finally:
        if own:
            lab.close()
        if out_dir is not None or not tally.disagreements:
            shutil.rmtree(work, ignore_errors=True)
        else:  # keep only the written cases
            shutil.rmtree(work / "snap", ignore_errors=True)
            shutil.rmtree(work / "m", ignore_errors=True)
    return tally
