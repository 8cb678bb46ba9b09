"""The parser refuses the option values the kernel's iptables refuses (issue 9: a fix such as
``! --ctstatus DNAT`` must never be printed, and never read as if it meant something).

Each case is one rule; ``ok`` says whether iptables 1.8 accepts it (libxt_conntrack.c,
libxt_state.c, libxt_addrtype.c). The kernel test checks that table against the real iptables
in a namespace of its own, so the expectations cannot drift from the tool.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator

import pytest

from natlens.errors import NatlensError
from natlens.snapshot import load_rules
from natlens.verify import ns

CASES = [
    ("-m conntrack --ctstatus DNAT", False),
    ("-m conntrack --ctstatus SNAT", False),
    ("-m conntrack --ctstatus ASSURED,FOO", False),
    ("-m conntrack --ctstatus NONE", True),
    ("-m conntrack --ctstatus assured", True),
    ("-m conntrack --ctstatus EXPECTED,SEEN_REPLY,ASSURED,CONFIRMED", True),
    ("-m conntrack --ctdir ORIGINAL", True),
    ("-m conntrack --ctdir reply", True),
    ("-m conntrack --ctdir BOTH", False),
    ("-m conntrack --ctstate DNAT,SNAT,UNTRACKED,INVALID", True),
    ("-m conntrack --ctstate new", True),
    ("-m conntrack --ctstate FOO", False),
    ("-m state --state NEW,ESTABLISHED", True),
    ("-m state --state DNAT", False),
    ("-m state --state SNAT", False),
    ("-m addrtype --dst-type LOCAL", True),
    ("-m addrtype --dst-type local", True),
    ("-m addrtype --src-type FOO", False),
    ("-m conntrack --ctstate NEW -m conntrack ! --ctstate DNAT", True),
]


def _save(spec: str) -> str:
    return f"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT {spec} -j ACCEPT\nCOMMIT\n"


@pytest.mark.parametrize(("spec", "ok"), CASES, ids=[c[0] for c in CASES])
def test_parser_accepts_what_iptables_accepts(spec: str, ok: bool) -> None:
    if ok:
        load_rules(_save(spec))
    else:
        with pytest.raises(NatlensError):
            load_rules(_save(spec))


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    name = f"nlopt-{os.getpid()}"
    ns.add(name)
    try:
        yield name
    finally:
        ns.delete(name)


@pytest.mark.kernel
@pytest.mark.parametrize(("spec", "ok"), CASES, ids=[c[0] for c in CASES])
def test_table_agrees_with_iptables(spec: str, ok: bool, netns: str) -> None:
    done = subprocess.run(["ip", "netns", "exec", netns, "iptables", "-A", "INPUT",
                           *shlex.split(spec), "-j", "ACCEPT"],
                          capture_output=True, text=True, check=False)
    assert (done.returncode == 0) == ok, done.stderr
