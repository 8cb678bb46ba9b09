"""natlens.testing on the fixture snapshots: each check's verdict and the text that explains it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import natlens
import natlens.testing
from natlens import Packet, UsageError
from natlens.testing import (
    Explanation,
    assert_dropped,
    assert_no_findings,
    assert_published,
    assert_reaches,
    check_dropped,
    check_no_findings,
    check_published,
    check_reaches,
    diff_traces,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

OUTSIDE: dict[str, Any] = {"in_interface": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2",
                           "dport": 8080}
FROM_HOST_LOOPBACK: dict[str, Any] = {"local_origin": True, "src": "127.0.0.1",
                                      "dst": "127.0.0.1", "dport": 8080}


@pytest.fixture(scope="module")
def web() -> natlens.Snapshot:
    return natlens.load(FIXTURES / "default-bridge-8080")


def test_public_names() -> None:
    assert natlens.testing.__all__ == sorted(natlens.testing.__all__)
    for name in natlens.testing.__all__:
        assert getattr(natlens.testing, name) is not None


# -- reaches ------------------------------------------------------------------------------------


def test_reaches_the_container_from_outside(web: natlens.Snapshot) -> None:
    assert_reaches(web, OUTSIDE, "172.17.0.2:80")
    assert_reaches(web, Packet(**OUTSIDE), "172.17.0.2:80")
    assert_reaches(web, OUTSIDE, "172.17.0.2")  # a bare address: any port
    result = check_reaches(web, OUTSIDE, "172.17.0.2:80")
    assert result
    assert result.trace is not None
    assert result.trace.final_dst == "172.17.0.2:80"
    assert str(result).startswith(
        "Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new) reaches 172.17.0.2:80\n"
        "  it went to 172.17.0.2:80 (ACCEPT, path forward via docker0)\n")


def test_from_the_host_loopback_is_not_dnatted(web: natlens.Snapshot) -> None:
    assert_reaches(web, FROM_HOST_LOOPBACK, "127.0.0.1:8080")
    result = check_reaches(web, FROM_HOST_LOOPBACK, "172.17.0.2:80")
    assert not result
    assert result.trace is not None
    assert result.trace.final_dst == "127.0.0.1:8080"
    text = result.text
    assert "it went to 127.0.0.1:8080 (ACCEPT, path local via lo) instead" in text
    assert "destination set by: no rule (no DNAT/REDIRECT matched" in text
    # Docker's nat OUTPUT jump says ! -d 127.0.0.0/8: the why-not of its DNAT rule, and the
    # docker-proxy note
    assert "nat:DOCKER#2 (" in text
    assert "docker-proxy (userland proxy on) accepts it on the host" in text


def test_reaches_failure_names_where_it_went(web: natlens.Snapshot) -> None:
    with pytest.raises(AssertionError) as info:
        assert_reaches(web, OUTSIDE, "172.17.0.3:80")
    text = str(info.value)
    lines = text.splitlines()
    assert lines[0] == ("Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new) does not "
                        "reach 172.17.0.3:80")
    assert lines[1] == "  it went to 172.17.0.2:80 (ACCEPT, path forward via docker0) instead"
    assert lines[2].startswith("  accepted by: filter:DOCKER#1 (")
    assert lines[2].endswith("default-bridge-8080/iptables-save.txt:16)  -A DOCKER -d "
                             "172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 "
                             "-j ACCEPT")
    assert "  no DNAT rule sends traffic to 172.17.0.3:80" in lines
    assert "trace:" in lines
    assert "  packet: Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new)" in lines
    assert any(line.startswith("   9. FORWARD     filter:DOCKER#1 (") for line in lines)


def test_reaches_but_dropped_on_the_way(web: natlens.Snapshot) -> None:
    # Straight to the container's address from outside: routed to docker0, but FORWARD's
    # DOCKER chain only accepts traffic to port 80; port 22 meets the DROP policy.
    packet = {"in_interface": "eth0", "src": "198.51.100.7", "dst": "172.17.0.2", "dport": 22}
    result = check_reaches(web, packet, "172.17.0.2:22")
    assert not result
    assert "it was headed there but not accepted: 172.17.0.2:22 (DROP, path forward" \
        in result.text
    assert "dropped by: filter:FORWARD policy DROP (no rule of the chain decided)" in result.text
    assert "rules that DNAT" not in result.text


def test_ipv6_destination() -> None:
    snap = natlens.load(FIXTURES / "ipv6")
    packet = {"in_interface": "eth0", "src": "2001:db8::7", "dst": "fd00::2", "dport": 8080}
    assert_reaches(snap, packet, "[fd00:dead:beef::242:ac11:2]:80")
    result = check_reaches(snap, {**packet, "dport": 8081}, "[fd00:dead:beef::242:ac11:2]:80")
    assert not result
    assert "rules that DNAT to [fd00:dead:beef::242:ac11:2]:80:" in result.text
    assert "why not: destination port 8081 is not 8080" in result.text


STATISTIC = """\
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 80 -m statistic --mode random --probability 0.5 \
-j DNAT --to-destination 10.0.0.2:80
-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.3:80
COMMIT
"""


def test_branches_all_or_any() -> None:
    snap = natlens.Snapshot(ruleset=natlens.parse_save(STATISTIC))
    packet = {"in_interface": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "dport": 80}
    result = check_reaches(snap, packet, "10.0.0.2:80")
    assert not result
    assert "  2 branches, every branch must reach 10.0.0.2:80:" in result.text
    assert "  1. p=0.5 to 10.0.0.2:80 (ACCEPT, path forward): reaches" in result.text
    assert "  2. p=0.5 to 10.0.0.3:80 (ACCEPT, path forward): MISSES" in result.text
    assert_reaches(snap, packet, "10.0.0.2:80", all_branches=False)
    assert_reaches(snap, packet, "10.0.0.3:80", all_branches=False)
    with pytest.raises(AssertionError, match=r"at least one branch must reach 10\.0\.0\.9:80"):
        assert_reaches(snap, packet, "10.0.0.9:80", all_branches=False)


# -- dropped ------------------------------------------------------------------------------------


def test_dropped(web: natlens.Snapshot) -> None:
    packet = {"in_interface": "eth0", "src": "198.51.100.7", "dst": "172.17.0.2", "dport": 22}
    assert_dropped(web, packet)
    assert "dropped by: filter:FORWARD policy DROP" in check_dropped(web, packet).text


def test_dropped_by_a_rule() -> None:
    snap = natlens.load(FIXTURES / "planted-faults")
    # planted-faults README: DOCKER-USER rule 1 drops forwarded traffic to port 8080
    packet = {"in_interface": "docker0", "src": "172.17.0.2", "dst": "198.51.100.7",
              "dport": 8080}
    result = check_dropped(snap, packet)
    assert result
    assert "dropped by: filter:DOCKER-USER#1 (" in result.text
    assert "-A DOCKER-USER -p tcp -m tcp --dport 8080 -j DROP" in result.text


def test_dropped_fails_on_an_accepted_packet(web: natlens.Snapshot) -> None:
    with pytest.raises(AssertionError) as info:
        assert_dropped(web, OUTSIDE)
    lines = str(info.value).splitlines()
    assert lines[0] == "Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new) is not dropped"
    assert lines[1] == "  ACCEPT: it goes to 172.17.0.2:80 (ACCEPT, path forward via docker0)"
    assert lines[2].startswith("  accepted by: filter:DOCKER#1 (")


# -- published ----------------------------------------------------------------------------------


def test_published(web: natlens.Snapshot) -> None:
    assert_published(web, "natlens-web", 8080)
    assert_published(web, "natlens-web", "8080/tcp")
    assert_published(web, "4933e433df97", 8080)  # an id prefix
    result = check_published(web, "natlens-web", 8080)
    assert result.text.startswith(
        "natlens-web publishes 8080/tcp (0.0.0.0:8080->80/tcp) and a packet from outside "
        "reaches it\n"
        "Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new) reaches natlens-web "
        "(172.17.0.2:80)\n")


def test_published_ipv6() -> None:
    snap = natlens.load(FIXTURES / "ipv6")
    assert_published(snap, "natlens-web", 8080, family=6)
    assert "Packet(in eth0, tcp 2001:db8::7 -> [fd00::2]:8080, new) reaches" in \
        check_published(snap, "natlens-web", 8080, family=6).text


def test_not_published(web: natlens.Snapshot) -> None:
    with pytest.raises(AssertionError) as info:
        assert_published(web, "natlens-web", 8081)
    text = str(info.value)
    assert text.startswith("natlens-web does not publish 8081/tcp\n  Docker lists no binding of "
                           "host port 8081/tcp (it publishes 0.0.0.0:8080->80/tcp, "
                           "[::]:8080->80/tcp)\n")
    assert "why not: destination port 8081 is not 8080" in text
    assert "  4. ROUTING     192.0.2.2 is a local address: deliver locally (INPUT)" in text


def test_published_container_port_hint(web: natlens.Snapshot) -> None:
    result = check_published(web, "natlens-web", 80)
    assert not result
    assert "80/tcp is its container port; the host port is 8080" in result.text


def test_published_udp_is_another_port(web: natlens.Snapshot) -> None:
    result = check_published(web, "natlens-web", "8080/udp")
    assert not result
    assert "Docker lists no binding of host port 8080/udp" in result.text


def test_published_on_loopback_only() -> None:
    snap = natlens.load(FIXTURES / "loopback-9000")
    result = check_published(snap, "natlens-web", 9000)
    assert not result
    assert ("natlens-web publishes 9000/tcp only as 127.0.0.1:9000->80/tcp: not on an IPv4 "
            "address reachable from outside") in result.text
    assert "Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:9000, new) does not reach" \
        in result.text
    assert "why not: destination 192.0.2.2 is" in result.text


def test_published_unknown_container(web: natlens.Snapshot) -> None:
    result = check_published(web, "natlens-wbe", 8080)
    assert not result
    assert result.text == ("natlens-wbe does not publish 8080/tcp: no container 'natlens-wbe' in "
                           f"{web.path} (did you mean 'natlens-web'?) (containers: natlens-web)")
    assert result.trace is None


def test_published_without_docker_data() -> None:
    snap = natlens.load(FIXTURES / "default-bridge-8080" / "iptables-save.txt")
    result = check_published(snap, "natlens-web", 8080)
    assert not result
    assert "has no Docker data" in result.text


def test_published_on_an_address_given_explicitly(web: natlens.Snapshot) -> None:
    assert_published(web, "natlens-web", 8080, in_interface="eth0", dst="192.0.2.2",
                     src="203.0.113.9")


# -- findings -----------------------------------------------------------------------------------


def test_no_findings(web: natlens.Snapshot) -> None:
    assert_no_findings(web)
    assert_no_findings(web, "low")
    assert check_no_findings(web).text == (f"{web.path}: no findings at or above medium")


def test_findings_table() -> None:
    snap = natlens.load(FIXTURES / "planted-faults")
    with pytest.raises(AssertionError) as info:
        assert_no_findings(snap, "low")
    text = str(info.value)
    assert text.startswith(f"{snap.path}: ")
    assert "[low] duplicate: nat PREROUTING #1: " in text
    assert (f"    rule nat:PREROUTING#1 ({FIXTURES}/planted-faults/iptables-save.txt:34)  -A "
            "PREROUTING ! -i docker0 -p tcp -m tcp --dport 8082 -j DNAT --to-destination "
            "172.17.0.4:80") in text
    assert re.search(r"^kind +where +finding$", text, re.MULTILINE)  # report.to_table


def test_findings_ignored_by_kind() -> None:
    from natlens.audit import audit

    snap = natlens.load(FIXTURES / "planted-faults")
    assert_no_findings(snap, "low", ignore={f.kind for f in audit(snap)})


# -- comparing traces ---------------------------------------------------------------------------


def test_diff_traces(web: natlens.Snapshot) -> None:
    a = natlens.simulate(web, Packet(**OUTSIDE))
    b = natlens.simulate(web, Packet(**{**OUTSIDE, "dport": 8081}))
    assert diff_traces(a, a) == []
    lines = diff_traces(a, b)
    assert lines[0] == ("packets differ: Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, "
                        "new) != Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8081, new)")
    assert lines[1] == "first difference at step 2:"
    assert lines[2].startswith("  left:  nat:DOCKER#2 (")
    assert lines[3] == "  right: nat:DOCKER end of chain, return"
    assert "final_dst: '172.17.0.2:80' != '192.0.2.2:8081'" in lines


def test_diff_traces_one_longer(web: natlens.Snapshot) -> None:
    a = natlens.simulate(web, Packet(**OUTSIDE))
    shorter = type(a)(a.packet, a.verdict, a.path, a.final_dst, a.final_src, a.out_interface,
                      a.steps[:3])
    lines = diff_traces(a, shorter)
    assert lines[0].startswith("the first 3 steps agree; left goes on with step 4: "
                               "filter:FORWARD#1 (")


# -- usage errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: check_reaches(s, OUTSIDE, "172.17.0.2:http"), "port 'http' is not 0..65535"),
    (lambda s: check_reaches(s, OUTSIDE, "web:80"), "'web' is not an IP address"),
    (lambda s: check_reaches(s, OUTSIDE, "[fd00::2:80"), "expected [IPv6]:PORT"),
    (lambda s: check_reaches(s, {**OUTSIDE, "in_interfce": "eth0"}, "172.17.0.2"),
     "unknown packet field 'in_interfce' (did you mean 'in_interface'?)"),
    (lambda s: check_reaches(s, [("dst", "1.2.3.4")], "172.17.0.2"),  # type: ignore[arg-type]
     "a packet is a natlens.Packet or a mapping"),
    (lambda s: check_published(s, "natlens-web", "8080/tpc"), "protocol 'tpc' is not tcp"),
    (lambda s: check_published(s, "natlens-web", 0), "expected a port number 1..65535"),
    (lambda s: check_published(s, "natlens-web", 8080, family=5), "family must be 4 or 6"),
    (lambda s: check_no_findings(s, "hihg"), "unknown severity 'hihg' (did you mean 'high'?)"),
    (lambda s: check_no_findings(s, ignore=["stael"]), "did you mean 'stale'?"),
], ids=["port", "host", "bracket", "field", "not-a-mapping", "proto", "zero", "family",
        "severity", "kind"])
def test_usage_errors(web: natlens.Snapshot, call: Callable[[natlens.Snapshot], object],
                      message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        call(web)


def test_explanation_is_truthy_when_ok() -> None:
    assert Explanation(True, "fine")
    assert not Explanation(False, "why not")
    assert str(Explanation(False, "why not")) == "why not"


def test_a_path_works_as_snapshot() -> None:
    assert_reaches(FIXTURES / "default-bridge-8080", OUTSIDE, "172.17.0.2:80")
    assert_reaches(str(FIXTURES / "default-bridge-8080"), OUTSIDE, "172.17.0.2:80")


DOUBT = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\nCOMMIT\n"
"""Host addresses unknown: a packet to 192.0.2.10 is delivered or forwarded (and dropped), a
fork of doubt with no probability (docs/api.md)."""


@pytest.mark.parametrize("check", [check_reaches, check_dropped])
def test_branches_of_doubt_have_no_probability(check: Callable[..., Explanation]) -> None:
    rules = natlens.Snapshot(ruleset=natlens.parse_save(DOUBT))
    packet = {"in_interface": "eth0", "src": "198.51.100.7", "dst": "192.0.2.10", "dport": 22}
    args = (rules, packet, "192.0.2.10:22") if check is check_reaches else (rules, packet)
    result = check(*args)
    assert not result
    lines = result.text.splitlines()
    after = lines[next(i for i, ln in enumerate(lines) if " branches, " in ln) + 1:]
    numbered = [next(ln for ln in after if ln.startswith(f"  {n}. ")) for n in (1, 2)]
    assert all(ln.startswith(("  1. doubt: ", "  2. doubt: ")) for ln in numbered), numbered
    assert not any("p=" in ln for ln in numbered)
    with pytest.raises(AssertionError, match=r"  1\. doubt: "):
        (assert_reaches if check is check_reaches else assert_dropped)(*args)
