"""``natlens verify``: replay a snapshot in throwaway network namespaces and compare the kernel
with the simulator, packet by packet.

``topology`` mirrors the snapshot's host in namespaces, ``probe`` sends one packet and records
what the kernel did, ``generate`` picks the packets, ``connect`` opens real connections to check
each trace's ``connection`` part, ``compare`` puts it together (its
``compare(trace, observation, hooks)`` judges one packet)::

    report = natlens.verify.verify(natlens.load("fixtures/default-bridge-8080"), packets=60)
    report.disagreements    # [] when natlens and the kernel agree on every packet
    report.connection_disagreements    # [] when real connections complete as natlens says

Needs root; every namespace (``nlv-<pid>-<token>-…``) is removed when the run ends, also on
errors and signals; ``cleanup()`` removes what a killed run (SIGKILL) left (see ``runs``).
Every snapshot value that reaches an ``ip`` command line or ``iptables-restore`` is checked
first (``snapshot_checks``, ``kernel_names``, ``restore``).
"""

from __future__ import annotations

from natlens.verify.compare import Result, VerifyError, VerifyReport, chain_hooks, verify
from natlens.verify.connect import ConnectionResult
from natlens.verify.generate import Probe, generate
from natlens.verify.probe import Observation, Prober
from natlens.verify.runs import Removed, cleanup
from natlens.verify.signals import Interrupted
from natlens.verify.topology import Topology, TopologyPlan, plan

__all__ = [
    "ConnectionResult",
    "Interrupted",
    "Observation",
    "Probe",
    "Prober",
    "Removed",
    "Result",
    "Topology",
    "TopologyPlan",
    "VerifyError",
    "VerifyReport",
    "chain_hooks",
    "cleanup",
    "generate",
    "plan",
    "verify",
]
