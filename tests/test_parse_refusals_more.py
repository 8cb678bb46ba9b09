"""natlens accepts exactly the rules iptables 1.8.9 and the kernel accept, for values that C
reads differently from Python and for checks the kernel makes only when a rule is committed.

- REJECT ``--reject-with tcp-reset`` needs ``-p tcp`` (not negated): the kernel's
  ``reject_tg_check`` (net/ipv4/netfilter/ipt_REJECT.c, net/ipv6/netfilter/ip6t_REJECT.c)
  refuses the rest at commit; ``iptables-restore --test`` takes them.
- ``-m recent``: ``--seconds`` from 1, ``--rttl`` not with ``--set``/``--remove``, ``--reap``
  needs ``--seconds`` (libxt_recent.c); ``--set``/``--remove`` with ``--seconds``, a non-zero
  ``--hitcount`` or ``--reap``, a hitcount above 65535, list names ``""``, ``.``, ``..`` or
  with ``/`` are refused by xt_recent.c ``recent_mt_check`` at commit.
- Numbers as C reads them: ``atoi`` in the limit/hashlimit rates (``3abc/sec`` is 3,
  ``²/sec`` and ``0x10/sec`` are 0, refused; "Rate too fast"), ``strtoul`` base 0 in ICMP
  types and ``--length``-style ranges (``0x10`` is 16, ``٣`` is nothing).
- Marks as libxtables ``xtopt_parse_markmask`` reads them (``010`` is 8, ``1_0`` nothing).
- Ports as libxtables ``xtables_parse_port`` reads them (``010`` is port 8, ``080`` no port;
  conntrack's ports stay decimal) and ``-c`` counts as ``sscanf("%llu")`` reads them.
- NFQUEUE ``--queue-balance`` wants FIRST:LAST with FIRST below LAST; iptables 1.8.9 has no
  udplite extension (``-m udplite``, ``-p udplite --dport``, a NAT port with ``-p udplite``).

Each case is run through ``iptables-restore --test`` and a real ``iptables-restore`` on both
backends (nf_tables, legacy) in a namespace of its own (``kernel`` marker); the offline tests
check the fast path refuses as the full parser, at the same column.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from netns_helpers import namespaces, needs_root

from natlens import Family, ParseError, parse_save, to_save
from natlens.parse import save as save_module

# (IP version, table, rule in the table's first chain, refused by iptables or the kernel)
CASES: list[tuple[int, str, str, bool]] = [
    # REJECT tcp-reset: kernel reject_tg_check
    *((v, "filter", f"{p}-j REJECT --reject-with {w}", refused)
      for v in (4, 6)
      for p, w, refused in (
          ("-p udp ", "tcp-reset", True), ("", "tcp-reset", True),
          ("! -p tcp ", "tcp-reset", True), ("-p tcp ", "tcp-reset", False),
          ("-p 6 ", "tcp-reset", False), ("-p TCP ", "tcp-reset", False),
          ("-p udp ", "tcp", True), ("-p tcp ", "t", False),
          ("-p udp ", "port-unreach", False), ("-p all ", "tcp-reset", True))),
    (4, "filter", "-p udp -j REJECT --reject-with tcp-rst", True),
    (4, "filter", "-p tcp -j REJECT --reject-with tcp-rst", False),
    # -m recent
    (4, "filter", "-m recent --rcheck --seconds 0", True),
    (4, "filter", "-m recent --rcheck --seconds 00", True),
    (4, "filter", "-m recent --rcheck --seconds 1", False),
    (4, "filter", "-m recent --rcheck --seconds 0x10", False),
    (4, "filter", "-m recent --rcheck --seconds 4294967295", False),
    (4, "filter", "-m recent --seconds 0", True),
    (4, "filter", "-m recent --set --seconds 5", True),
    (4, "filter", "-m recent --remove --seconds 3", True),
    (4, "filter", "-m recent --set --hitcount 2", True),
    (4, "filter", "-m recent --set --hitcount 0", False),
    (4, "filter", "-m recent --set --rttl", True),
    (4, "filter", "-m recent --rttl --set", True),
    (4, "filter", "-m recent --update --rttl", False),
    (4, "filter", "-m recent --rcheck --reap", True),
    (4, "filter", "-m recent --rcheck --reap --seconds 5", False),
    (4, "filter", "-m recent --set --reap --seconds 5", True),
    (4, "filter", "-m recent --rcheck --hitcount 65535", False),
    (4, "filter", "-m recent --rcheck --hitcount 65536", True),
    (4, "filter", '-m recent --rcheck --name ""', True),
    (4, "filter", "-m recent --rcheck --name .", True),
    (4, "filter", "-m recent --rcheck --name ..", True),
    (4, "filter", "-m recent --rcheck --name a/b", True),
    (4, "filter", "-m recent --rcheck --name a.b", False),
    (6, "filter", "-m recent --set --seconds 5", True),
    # -m limit: libxt_limit.c parse_rate (atoi, XT_LIMIT_SCALE 10000)
    *((4, "filter", f"-m limit --limit {rate}", refused) for rate, refused in (
        ("3abc/sec", False), ("+3/SEC", False), ("3/s", False), ("3", False), ("3/M", False),
        ("0x10/sec", True), ("²/sec", True), ("٣/sec", True), ("3/", True), ("0/sec", True),
        ("3/secondx", True), ("-3/sec", True), ("10000/sec", False), ("10001/sec", True),
        ("4294967296/sec", True), ("4294967297/sec", False))),
    # -m hashlimit: libxt_hashlimit.c parse_bytes/parse_rate (atoll, scale 10^6)
    *((4, "filter", f"-m hashlimit --hashlimit-upto {rate} --hashlimit-name x", refused)
      for rate, refused in (
          ("3abc/sec", False), ("²/sec", True), ("²kb/s", True), ("٣/sec", True),
          ("0x10/sec", True), ("100000/sec", False), ("1000000/sec", False),
          ("1000001/sec", True), ("3kb/s", False), ("3mb/s", False), ("b/s", True),
          ("0kb/s", True), ("3/m", False))),
    (4, "filter", "-m hashlimit --hashlimit-above ²/min --hashlimit-name x", True),
    *((4, "filter", f"-m hashlimit --hashlimit-upto 5 --hashlimit-burst {b} --hashlimit-name x",
       refused) for b, refused in (("10", False), ("0x10", False), ("0", True), ("²", True),
                                   ("1000000", False), ("1000001", True), ("-1", True))),
    *((4, "filter", f"-m hashlimit --hashlimit-upto 5 --hashlimit-name x "
       f"--hashlimit-rate-match --hashlimit-rate-interval {i}", refused)
      for i, refused in (("2", False), ("0", True), ("²", True), ("2x", False))),
    # ICMP types: libxt_icmp.h parse_range (xtables_strtoui, base 0)
    *((4, "filter", f"-p icmp -m icmp --icmp-type {t}", refused) for t, refused in (
        ("٣", True), ("0x3", False), ("3/0x1", False), ("+3", False), ("3/", True),
        ("3:4", True), ("3:3/1", False), ("256", True), ("3/1:2", False), ("3x", True))),
    # ranges: libxtables xtopt_parse_mint (XTTYPE_UINT16RC / UINT32RC)
    *((4, "filter", f"-m length --length {r}", refused) for r, refused in (
        ("0x10", False), ("010:0x20", False), ("٣", True), ("1:2:3", True), ("65536", True),
        ("10:", False), (":10", False), ("1x", True))),
    # NFQUEUE --queue-balance
    *((4, "filter", f"-j NFQUEUE --queue-balance {q}", refused) for q, refused in (
        ("2:2", True), ("3:2", True), ("2:3", False), ("2", True), ("0x1:0x2", False),
        (":5", False), ("٣:5", True))),
    # ports: libxtables xtables_parse_port (strtoul base 0, then a service name) for tcp, udp
    # and multiport; conntrack's getaddrinfo reads decimal only
    *((4, "filter", f"-p tcp --dport {port}", refused) for port, refused in (
        ("010", False), ("0x50", False), ("+80", False), ("080", True), ("٣", True),
        ("1-2", True), ("99999", True), ("010:0x50", False), ("0x50:010", True),
        ("http", False), ("-0", True), ("0:-0", True), (" 80", False))),
    (4, "filter", "-p tcp -m multiport --dports 010,0x50:0x51", False),
    (4, "filter", "-p tcp -m multiport --dports 080", True),
    (4, "filter", "-m conntrack --ctorigdstport 010", False),
    (4, "filter", "-m conntrack --ctorigdstport 0x50", True),
    # marks: libxtables xtopt_parse_markmask (strtoul base 0, no trailing text)
    *((4, "filter", f"-m mark --mark {m}", refused) for m, refused in (
        ("010", False), ("010/+7", False), ("1_0", True), ("0o10", True), ("٣", True),
        ("5/", True), ("0x10/0o1", True), ("4294967296", True), ("-0", True), ("0/-0", True))),
    (4, "filter", "-j MARK --set-mark 010", False),
    # -c PACKETS BYTES: xshared.c sscanf("%llu")
    *((4, "filter", f"-c {counts} -j ACCEPT", refused) for counts, refused in (
        ("3 4", False), ("3abc 4", False), ("0x3 4", False), ("٣ 4", True), ("3,4", False),
        ("3, ", True), (",4", True), ("3", True), ("3 -5", True))),
    # no udplite extension in iptables 1.8.9
    (4, "filter", "-p udplite -m udplite --dport 5", True),
    (4, "filter", "-m udplite", True),
    (4, "filter", "-p udplite --dport 5", True),
    (4, "filter", "-p udplite", False),
    (4, "nat", "-p udplite -j DNAT --to-destination 1.2.3.4:5", True),
    (4, "nat", "-p udp -j DNAT --to-destination 1.2.3.4:5", False),
]
IDS = [f"ipv{v}-{table}: {rule}" for v, table, rule, _ in CASES]

_FIRST_CHAIN = {"filter": "INPUT", "nat": "PREROUTING"}


def _text(table: str, rule: str) -> str:
    chain = _FIRST_CHAIN[table]
    return f"*{table}\n:{chain} ACCEPT [0:0]\n-A {chain} {rule}\nCOMMIT\n"


def _family(version: int) -> Family:
    return Family.IPV6 if version == 6 else Family.IPV4


def _natlens_error(version: int, text: str, fast: bool,
                   monkeypatch: pytest.MonkeyPatch) -> str | None:
    """natlens's error for ``text`` (None: accepted), with or without the fast path."""
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(save_module, "parse_line_fast", lambda *a, **k: None)
        try:
            parse_save(text, family=_family(version), source="rules.txt")
        except ParseError as exc:
            return str(exc)
    return None


@pytest.mark.parametrize(("version", "table", "rule", "refused"), CASES, ids=IDS)
def test_refused_on_one_line_at_a_column(version: int, table: str, rule: str, refused: bool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    text = _text(table, rule)
    fast = _natlens_error(version, text, True, monkeypatch)
    assert (fast is not None) is refused
    assert fast == _natlens_error(version, text, False, monkeypatch)
    if fast is not None:
        assert "\n" not in fast
        where = fast.split(": ", 1)[0].split(":")
        assert where[:2] == ["rules.txt", "3"]
        assert len(where) == 3
        assert where[2].isascii()
        assert where[2].isdecimal()


@pytest.mark.parametrize(("rule", "point"), [
    ("-p udp -j REJECT --reject-with tcp-reset", "tcp-reset"),
    ("-m tcp --dport 5", "tcp --dport"),
    ("-m udplite", "udplite"),
    ("-m recent --set --seconds 5", "--seconds 5"),
    ("-m limit --limit ²/sec", "²/sec"),
    ("-j NFQUEUE --queue-balance 2:2", "2:2"),
    ("-p tcp --dport 080", "080"),
])
def test_error_points_at_the_value(rule: str, point: str) -> None:
    text = _text("filter", rule)
    with pytest.raises(ParseError) as info:
        parse_save(text, family=Family.IPV4)
    assert info.value.column is not None
    assert text.splitlines()[2][info.value.column - 1:].startswith(point)


# -- the real iptables-restore and kernel ---------------------------------------------------

_TOOLS = {4: ("iptables-nft", "iptables-legacy"), 6: ("ip6tables-nft", "ip6tables-legacy")}


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    needs_root("iptables-legacy-restore", "iptables")
    with namespaces("nlref-") as names:
        yield names[0]


def _restore(ns: str, tool: str, text: str, *flags: str) -> bool:
    """Whether ``tool-restore`` takes ``text`` in ``ns``."""
    done = subprocess.run(["ip", "netns", "exec", ns, f"{tool}-restore", *flags], input=text,
                          text=True, capture_output=True, check=False, timeout=30)
    return done.returncode == 0


def _iptables_refuses(ns: str, version: int, table: str, text: str) -> bool:
    """Whether iptables refuses ``text`` when testing it or the kernel when committing it;
    both backends must agree. The table is emptied after a commit."""
    verdicts: list[bool] = []
    chain = _FIRST_CHAIN[table]
    for tool in _TOOLS[version]:
        taken = _restore(ns, tool, text, "--test") and _restore(ns, tool, text)
        verdicts.append(not taken)
        if taken:
            assert _restore(ns, tool, f"*{table}\n:{chain} ACCEPT [0:0]\nCOMMIT\n")
    assert verdicts[0] == verdicts[1], f"backends disagree: {verdicts}"
    return verdicts[0]


@pytest.mark.kernel
@pytest.mark.parametrize(("version", "table", "rule", "refused"), CASES, ids=IDS)
def test_iptables_and_the_kernel_draw_the_same_line(version: int, table: str, rule: str,
                                                    refused: bool, netns: str) -> None:
    text = _text(table, rule)
    assert _iptables_refuses(netns, version, table, text) is refused
    try:
        parse_save(text, family=_family(version), source="rules.txt")
    except ParseError:
        assert refused
    else:
        assert not refused


PRINTED = [
    "-p tcp --dport 010", "-p tcp --sport 010:0x50", "-p tcp -m multiport --dports 010,0x50:0x51",
    "-m limit --limit 3abc/sec", "-m limit --limit +3/SEC", "-m length --length 0x10",
    "-m length --length 010:0x20", "-p icmp -m icmp --icmp-type 0x3",
    "-p icmp -m icmp --icmp-type 3/0x1", "-j NFQUEUE --queue-balance 0x1:0x2",
    "-m recent --rcheck --seconds 0x10", "-p tcp -j REJECT --reject-with tcp",
    "-m mark --mark 010/+7", "-j MARK --set-mark 010", "-m connmark --mark 010",
    "-m hashlimit --hashlimit-upto 3abc/sec --hashlimit-name x",
    "-m hashlimit --hashlimit-above +3/MIN --hashlimit-name x",
    "-m hashlimit --hashlimit-upto 3kb/s --hashlimit-name x",
]


def _rule_line(saved: str) -> str:
    return next(x for x in saved.splitlines() if x.startswith("-A "))


@pytest.mark.kernel
@pytest.mark.parametrize("rule", PRINTED)
def test_values_read_as_iptables_reads_them(rule: str, netns: str) -> None:
    """The value natlens reads is the one iptables keeps: both print the rule alike."""
    text = _text("filter", rule)
    ours = _rule_line(to_save(parse_save(text, family=Family.IPV4)))
    for tool in _TOOLS[4]:
        assert _restore(netns, tool, text)
        saved = subprocess.run(["ip", "netns", "exec", netns, f"{tool}-save", "-t", "filter"],
                               text=True, capture_output=True, check=True, timeout=30).stdout
        assert _restore(netns, tool, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
        assert ours == _rule_line(saved), tool
