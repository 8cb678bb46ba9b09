"""Out-of-range option values are parse errors naming the value, as iptables-restore refuses
them (issue 11, item 6), checked against the real iptables-restore where root allows.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from netns_helpers import namespaces

from natlens import ParseError, parse_save

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FILTER = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
          "-A INPUT {rule}\nCOMMIT\n")

# (rule, the value the error names)
OUT_OF_RANGE = [
    ("-p tcp -m tcp --dport 70000 -j DROP", "70000"),
    ("-p tcp -m multiport --dports 1,70000 -j DROP", "70000"),
    ("-m mark --mark 0x100000000 -j DROP", "0x100000000"),
    ("-m ttl --ttl-eq 300 -j DROP", "300"),
    ("-m length --length 70000 -j DROP", "70000"),
    ("-m length --length 10:70000 -j DROP", "10:70000"),
    ("-m conntrack --ctexpire 5:99999999999 -j DROP", "5:99999999999"),
    ("-p tcp -m tcp --tcp-option 300 -j DROP", "300"),
    ("-p tcp -m tcp --tcp-flags SYN SYN -j TCPMSS --set-mss 70000", "70000"),
    ("-m limit --limit 0/sec -j DROP", "0/sec"),
    ("-m limit --limit-burst 10001 -j DROP", "10001"),
    ("-m hashlimit --hashlimit-upto 5 --hashlimit-name x --hashlimit-htable-size 99999999999 "
     "-j DROP", "99999999999"),
    ("-m dscp --dscp 99 -j DROP", "99"),
    ("-j LOG --log-level 99", "99"),
    ("-m string --string x --algo bm --to 99999 -j DROP", "99999"),
    ("-j NFQUEUE --queue-num 70000", "70000"),
    ("-m statistic --mode random --probability 2 -j DROP", "2"),
    ("-p icmp -m icmp --icmp-type 300 -j DROP", "300"),
]
IN_RANGE = [
    "-m ttl --ttl-eq 255 -j DROP",
    "-m length --length 0:65535 -j DROP",
    "-m dscp --dscp 0x3f -j DROP",
    "-j LOG --log-level 7",
    "-j LOG --log-level warning",
    "-j NFQUEUE --queue-num 65535",
    "-p tcp -m tcp --tcp-flags SYN SYN -j TCPMSS --set-mss 1400",
    "-m limit --limit 1/sec --limit-burst 10000 -j DROP",
    "-m conntrack --ctexpire 5:4294967295 -j DROP",
]


@pytest.mark.parametrize(("rule", "value"), OUT_OF_RANGE)
def test_out_of_range_value_is_a_parse_error(rule: str, value: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_save(FILTER.format(rule=rule), source="rules.txt")
    assert info.value.line_no == 5
    assert value in info.value.reason
    assert info.value.column > 0


@pytest.mark.parametrize("rule", IN_RANGE)
def test_values_in_range_parse(rule: str) -> None:
    assert len(parse_save(FILTER.format(rule=rule))["filter"]["INPUT"].rules) == 1


def _restore_test(text: str) -> int:
    with namespaces("natlens-range-") as (ns,):
        return subprocess.run(["ip", "netns", "exec", ns, "iptables-restore", "--test"],
                              input=text, text=True, capture_output=True,
                              check=False).returncode


@pytest.mark.kernel
@pytest.mark.skipif(not IS_ROOT, reason="needs root for network namespaces")
@pytest.mark.parametrize("rule", [r for r, _ in OUT_OF_RANGE] + IN_RANGE)
def test_kernel_draws_the_same_line(rule: str) -> None:
    refused = rule in dict(OUT_OF_RANGE)
    assert (_restore_test(FILTER.format(rule=rule)) != 0) is refused
