"""Parser leftovers checked against the kernel: ICMP type name prefixes, hashlimit mask prefix
lengths per family, ASCII-only chain counters (iptables 1.8.9: libxt_icmp.h,
libxt_hashlimit.c / xt_hashlimit.c, xtables-restore.c ``parse_counters``)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from netns_helpers import namespaces

from natlens import ParseError, parse_save
from natlens.model import Family

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FILTER = "*filter\n:INPUT ACCEPT {counters}\n{rule}COMMIT\n"

ICMP = [  # (family, value, canonical as iptables-save prints it, or None: refused)
    (4, "echo-req", "8"), (4, "ECHO-REQ", "8"), (4, "echo-request", "8"), (4, "pi", "8"),
    (4, "an", "any"), (4, "echo", None), (4, "host-un", None), (4, "e", None),
    (4, "network-un", None), (6, "echo-req", "128"), (6, "pon", "129"), (6, "echo", None),
    (6, "neighbou", None), (6, "ttl-zero-during-", None), (6, "neighbor-s", "135"),
]
MASKS = [(4, "0", True), (4, "24", True), (4, "32", True), (4, "33", False),
         (4, "255", False), (6, "64", True), (6, "128", True), (6, "129", False),
         (6, "255", False)]
COUNTERS = [("[3:4]", True), ("[\u0663:4]", False), ("[3:\u0664]", False)]


def _icmp_rule(family: int, value: str) -> str:
    if family == 4:
        return f"-A INPUT -p icmp -m icmp --icmp-type {value} -j ACCEPT\n"
    return f"-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type {value} -j ACCEPT\n"


def _mask_rule(value: str) -> str:
    return (f"-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-name j2 "
            f"--hashlimit-srcmask {value} -j ACCEPT\n")


def _parse(text: str, family: int) -> str | None:
    """The saved rule's text, or None when natlens refuses it."""
    try:
        rs = parse_save(text, family=Family.IPV6 if family == 6 else Family.IPV4)
    except ParseError:
        return None
    rules = rs["filter"]["INPUT"].rules
    if not rules:
        return ""
    return " ".join(a for m in rules[0].matches for o in m.options for a in o.args)


@pytest.mark.parametrize(("family", "value", "canonical"), ICMP)
def test_icmp_type_prefix(family: int, value: str, canonical: str | None) -> None:
    got = _parse(FILTER.format(counters="[0:0]", rule=_icmp_rule(family, value)), family)
    if canonical is None:
        assert got is None
    else:
        assert got is not None
        assert got == canonical


@pytest.mark.parametrize(("family", "value", "accepted"), MASKS)
def test_hashlimit_mask_is_a_prefix_length(family: int, value: str, accepted: bool) -> None:
    got = _parse(FILTER.format(counters="[0:0]", rule=_mask_rule(value)), family)
    assert (got is not None) is accepted


@pytest.mark.parametrize(("counters", "accepted"), COUNTERS)
def test_chain_counters_are_ascii(counters: str, accepted: bool) -> None:
    text = FILTER.format(counters=counters, rule="")
    assert (_parse(text, 4) is not None) is accepted


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    with namespaces("natlens-j2-") as (ns,):
        yield ns


def _restore(ns: str, family: int, text: str, *extra: str) -> bool:
    """Whether the kernel takes ``text`` (applied in ``ns``: hashlimit's mask is checked by the
    kernel, which ``--test`` on the nf_tables backend does not reach)."""
    tool = "ip6tables-restore" if family == 6 else "iptables-restore"
    return subprocess.run(["ip", "netns", "exec", ns, tool, *extra], input=text, text=True,
                          check=False, capture_output=True, timeout=30).returncode == 0


@pytest.mark.kernel
@pytest.mark.skipif(not IS_ROOT, reason="needs root for network namespaces")
def test_kernel_draws_the_same_lines(netns: str) -> None:
    for family, value, canonical in ICMP:
        text = FILTER.format(counters="[0:0]", rule=_icmp_rule(family, value))
        assert _restore(netns, family, text) is (canonical is not None), value
        assert (_parse(text, family) is not None) is (canonical is not None), value
    for family, value, accepted in MASKS:
        text = FILTER.format(counters="[0:0]", rule=_mask_rule(value))
        assert _restore(netns, family, text) is accepted, (family, value)
        assert (_parse(text, family) is not None) is accepted, (family, value)
    for counters, accepted in COUNTERS:
        text = FILTER.format(counters=counters, rule="")
        assert _restore(netns, 4, text, "--counters") is accepted, counters
        assert (_parse(text, 4) is not None) is accepted, counters
