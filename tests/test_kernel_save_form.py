"""natlens prints each rule exactly as iptables-save prints it, for every module it knows.

For each rule text of ``ROWS`` (covering every match and target of natlens.parse.modules, with
the defaults their save functions add or leave out), the real tools are the reference: the rules
of one (family, table) are restored with ``iptables-restore`` into a chain of a fresh network
namespace, on the nf_tables and the legacy backend, and read back with ``iptables-save``;
``to_save(parse_save(text))`` must print each rule as the tool did. Where the two backends print
differently natlens follows iptables-legacy-save (the kernel keeps the extension's own data;
iptables-nft translates some to native expressions and loses what they cannot hold):
``NFT_PRINTS`` lists those rules with what iptables-nft-save prints instead, and is checked too.

The saved dumps are read back as well: natlens gives iptables-save's own output back unchanged
(the fast path of natlens.parse.fastrule reads it). Needs root (``kernel`` marker).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from netns_helpers import namespaces, needs_root, run

from natlens import Family, ParseWarning, parse_save, to_save
from natlens.parse.modules import MATCHES, TARGETS

# (IP version, table, rule text after "-A X ")
ROWS: list[tuple[int, str, str]] = [
    (4, "filter", "-p tcp -m tcp --dport 80"),
    (4, "filter", "-p tcp --syn"),
    (4, "filter", "-p tcp -m tcp --sport 1:2 --dport 0:65535"),
    (4, "filter", "-p tcp -m tcp --tcp-flags SYN,ACK SYN"),
    (4, "filter", "-p tcp -m tcp --tcp-flags ALL NONE"),
    (4, "filter", "-p tcp -m tcp --tcp-option 2"),
    (4, "filter", "-p tcp -m tcp ! --dport 22"),
    (4, "filter", "-p tcp -m tcp --dport 1024:"),
    (4, "filter", "-p tcp -m tcp --dport :1023"),
    (4, "filter", "-p tcp -m tcp --sport 22:22"),
    (4, "filter", "-p tcp -m tcp --dport ssh"),
    (4, "filter", "-p udp -m udp --dport 53"),
    (4, "filter", "-p udp --sport 0:65535"),
    (4, "filter", "-p sctp -m sctp --dport 80 --chunk-types any INIT"),
    (4, "filter", "-p sctp -m sctp --sport 80"),
    (4, "filter", "-p dccp -m dccp --dport 80 --dccp-types REQUEST --dccp-option 2"),
    (4, "filter", "-p icmp -m icmp --icmp-type 8"),
    (4, "filter", "-p icmp -m icmp --icmp-type echo-request"),
    (4, "filter", "-p icmp -m icmp --icmp-type any"),
    (4, "filter", "-p icmp -m icmp --icmp-type 3/1"),
    (4, "filter", "-p icmp -m icmp --icmp-type host-unreachable"),
    (4, "filter", "-p icmp -m icmp ! --icmp-type 0"),
    (6, "filter", "-p ipv6-icmp -m icmp6 --icmpv6-type 128"),
    (6, "filter", "-p ipv6-icmp -m icmp6 --icmpv6-type echo-request"),
    (6, "filter", "-p ipv6-icmp -m icmp6 --icmpv6-type 1/3"),
    (6, "filter", "-p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation"),
    (4, "filter", "-p tcp -m multiport --dports 80,443"),
    (4, "filter", "-p tcp -m multiport --ports 1:2,5"),
    (4, "filter", "-p tcp -m multiport ! --sports 22,ssh"),
    (4, "filter", "-m addrtype --dst-type LOCAL"),
    (4, "filter", "-m addrtype --src-type LOCAL,BROADCAST --limit-iface-in"),
    (4, "filter", "-m addrtype ! --dst-type LOCAL --limit-iface-out"),
    (4, "filter", "-m conntrack --ctstate RELATED,ESTABLISHED"),
    (4, "filter", "-m conntrack --ctstate NEW --ctproto tcp --ctorigsrc 10.0.0.1 "
                  "--ctorigdst 10.0.0.0/8 --ctstatus ASSURED --ctexpire 10:20 --ctdir REPLY"),
    (4, "filter", "-m conntrack --ctorigsrcport 10 --ctorigdstport 20:30 --ctreplsrcport 5 "
                  "--ctrepldstport 6"),
    (4, "filter", "-m conntrack --ctreplsrc 10.0.0.1/32 --ctrepldst 10.1.0.0/255.255.0.0"),
    (4, "filter", "-m conntrack ! --ctstate INVALID --ctexpire 5"),
    (4, "filter", "-m conntrack --ctstate DNAT,SNAT,UNTRACKED"),
    (4, "filter", "-m conntrack --ctproto udp"),
    (4, "filter", "-m state --state NEW,ESTABLISHED"),
    (4, "filter", "-m state --state INVALID"),
    (4, "filter", "-m comment --comment a"),
    (4, "filter", '-m comment --comment "a b"'),
    (4, "filter", "-m mark --mark 1"),
    (4, "filter", "-m mark --mark 0x1/0xff"),
    (4, "filter", "-m mark ! --mark 5"),
    (4, "filter", "-m connmark --mark 0x10/0xf0"),
    (4, "filter", "-m statistic --mode random --probability 0.5"),
    (4, "filter", "-m statistic --mode random --probability 0.1"),
    (4, "filter", "-m statistic --mode random --probability 1"),
    (4, "filter", "-m statistic --mode nth --every 3 --packet 0"),
    (4, "filter", "-m iprange --src-range 10.0.0.1-10.0.0.5"),
    (4, "filter", "-m iprange ! --dst-range 10.0.0.1-10.0.0.5"),
    (4, "filter", "-m physdev --physdev-in eth0"),
    (4, "filter", "-m physdev --physdev-is-bridged"),
    (4, "filter", "-m physdev ! --physdev-is-in --physdev-out eth1"),
    (4, "filter", "-m physdev --physdev-is-out"),
    (4, "filter", "-m limit"),
    (4, "filter", "-m limit --limit 3/hour"),
    (4, "filter", "-m limit --limit 3/hour --limit-burst 5"),
    (4, "filter", "-m limit --limit 5/sec --limit-burst 10"),
    (4, "filter", "-m limit --limit-burst 10"),
    (4, "filter", "-m limit --limit 10/minute"),
    (4, "filter", "-m limit --limit 60/min"),
    (4, "filter", "-m limit --limit 2/s"),
    (4, "filter", "-m limit --limit 100/day"),
    (4, "filter", "-m limit --limit 7"),
    (4, "filter", "-m owner --uid-owner 0"),
    (4, "filter", "-m owner --gid-owner 0 --suppl-groups"),
    (4, "filter", "-m owner --socket-exists"),
    (4, "filter", "-m owner ! --uid-owner 1000-2000"),
    (4, "filter", "-m pkttype --pkt-type broadcast"),
    (4, "filter", "-m pkttype ! --pkt-type host"),
    (4, "filter", "-m pkttype --pkt-type MULTICAST"),
    (4, "filter", "-m recent --set"),
    (4, "filter", "-m recent --rcheck --seconds 60 --hitcount 3 --name SSH --rdest"),
    (4, "filter", "-m recent --update --seconds 10 --reap --rttl --name x --mask 255.255.255.0"),
    (4, "filter", "-m recent --remove"),
    (4, "filter", "-m recent ! --rcheck --rsource"),
    (6, "filter", "-m recent --set"),
    (6, "filter", "-m recent --set --mask ffff:ffff::"),
    (4, "filter", "-m mac --mac-source 00:11:22:33:44:55"),
    (4, "filter", "-m mac --mac-source AA:BB:CC:DD:EE:FF"),
    (4, "filter", "-m hashlimit --hashlimit-upto 5/sec --hashlimit-name foo"),
    (4, "filter", "-m hashlimit --hashlimit-above 10/min --hashlimit-burst 20 --hashlimit-mode "
                  "srcip,dstport --hashlimit-name bar --hashlimit-htable-size 1024 "
                  "--hashlimit-htable-max 2048 --hashlimit-htable-expire 10000 "
                  "--hashlimit-htable-gcinterval 1000 --hashlimit-srcmask 24"),
    (4, "filter", "-m hashlimit --hashlimit 5 --hashlimit-name old"),
    (4, "filter", "-m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name d "
                  "--hashlimit-htable-expire 1000 --hashlimit-htable-gcinterval 1000 "
                  "--hashlimit-srcmask 32 --hashlimit-dstmask 32"),
    (4, "filter", "-m hashlimit --hashlimit-upto 1000/sec --hashlimit-name r "
                  "--hashlimit-rate-match --hashlimit-rate-interval 5"),
    (4, "filter", "-m hashlimit --hashlimit-upto 60/min --hashlimit-name m"),
    (4, "filter", "-m hashlimit --hashlimit-upto 1/hour --hashlimit-name h "
                  "--hashlimit-mode dstport,srcip"),
    (4, "filter", "-m hashlimit --hashlimit-above 7/s --hashlimit-name s "
                  "--hashlimit-htable-expire 1000"),
    (6, "filter", "-m hashlimit --hashlimit-upto 5/sec --hashlimit-name six "
                  "--hashlimit-mode srcip --hashlimit-srcmask 64"),
    (6, "filter", "-m hashlimit --hashlimit-upto 5/sec --hashlimit-name sixd "
                  "--hashlimit-srcmask 128"),
    (4, "filter", "-m hashlimit --hashlimit-upto 5/sec --hashlimit-rate-match "
                  "--hashlimit-rate-interval 3 --hashlimit-name rm1"),
    (4, "filter", "-m hashlimit --hashlimit-upto 7/min --hashlimit-rate-match "
                  "--hashlimit-name rm2"),
    (4, "filter", "-m hashlimit --hashlimit-upto 1kb/s --hashlimit-rate-match "
                  "--hashlimit-name rm3"),
    (4, "filter", "-m hashlimit --hashlimit-upto 1kb/s --hashlimit-rate-match "
                  "--hashlimit-rate-interval 5 --hashlimit-name rm4"),
    (4, "filter", "-m hashlimit --hashlimit-upto 1kb/s --hashlimit-burst 1500 "
                  "--hashlimit-name b1"),
    (4, "filter", "-m hashlimit --hashlimit-upto 1kb/s --hashlimit-burst 1500 "
                  "--hashlimit-htable-expire 60000 --hashlimit-name b2"),
    (4, "filter", "-m hashlimit --hashlimit-upto 2mb/s --hashlimit-burst 3m --hashlimit-name b3"),
    (4, "filter", "-m hashlimit --hashlimit-upto 1500b/s --hashlimit-name b4"),
    (4, "filter", "-m hashlimit --hashlimit-upto 1000000mb/s --hashlimit-name b5"),
    (4, "filter", "-m hashlimit --hashlimit-upto 5 --hashlimit-burst 2k --hashlimit-name p1"),
    (4, "filter", "-m hashlimit --hashlimit-upto 5 --hashlimit-burst 0x10 --hashlimit-name p2"),
    (4, "filter", "-m hashlimit ! --hashlimit-upto 5 --hashlimit-name p3"),
    (4, "filter", "-m hashlimit ! --hashlimit-above 5 --hashlimit-name p4"),
    (4, "filter", "-m hashlimit --hashlimit-upto 5 --hashlimit-rate-interval 7 "
                  "--hashlimit-name p5"),
    (4, "filter", "-m string --string a --algo bm"),
    (4, "filter", "-m string --hex-string |61| --algo kmp"),
    (4, "filter", '-m string --string "a b" --algo bm --from 10 --to 50 --icase'),
    (4, "filter", "-m string ! --string x --algo bm"),
    (4, "filter", "-m string --string x --algo bm --from 0 --to 65535"),
    (4, "filter", "-m string --hex-string |00ff| --algo bm"),
    (4, "filter", "-m string --hex-string |0061| --algo bm"),
    (4, "filter", "-m string --hex-string a|62|c --algo bm"),
    (4, "filter", "-m string --string a\\ --algo bm"),
    (4, "filter", '-m string --string "it\'s" --algo bm'),
    (4, "filter", '-m string ! --string "a\'\\"b\\\\c" --algo bm'),
    (4, "filter", "-m string --string 'a' --algo bm"),
    (4, "filter", "-m string --string a'b --algo kmp"),
    (4, "filter", '-m string --string "it\\\'s" --algo bm'),
    (4, "filter", '-m comment --comment "it\'s"'),
    (4, "filter", "-m ttl --ttl-eq 64"),
    (4, "filter", "-m ttl --ttl-gt 1"),
    (4, "filter", "-m ttl ! --ttl-eq 1"),
    (4, "filter", "-m ttl --ttl-lt 5"),
    (4, "filter", "-p esp -m esp --espspi 100"),
    (4, "filter", "-p esp -m esp --espspi 1:2"),
    (4, "filter", "-p ah -m ah --ahspi 100"),
    (4, "filter", "-m length --length 10:100"),
    (4, "filter", "-m length --length 50"),
    (4, "filter", "-m length ! --length 50:"),
    (6, "filter", "-m hl --hl-eq 64"),
    (6, "filter", "-m hl ! --hl-eq 64"),
    (6, "filter", "-m hl --hl-lt 2"),
    (6, "filter", "-m hl --hl-gt 3"),
    (4, "filter", "-m tos --tos 0x10"),
    (4, "filter", "-m tos --tos Minimize-Delay"),
    (4, "filter", "-m tos --tos 0x10/0x3f"),
    (4, "filter", "-m tos --tos Normal-Service"),
    (4, "filter", "-m dscp --dscp 10"),
    (4, "filter", "-m dscp --dscp-class AF11"),
    (4, "filter", "-m dscp --dscp 0x0a"),
    (4, "filter", "-m helper --helper ftp"),
    (4, "filter", "-m connlimit --connlimit-above 3"),
    (4, "filter", "-m connlimit --connlimit-upto 5 --connlimit-mask 24 --connlimit-daddr"),
    (4, "filter", "-m connlimit ! --connlimit-upto 3"),
    (4, "filter", "-m connlimit ! --connlimit-above 3 --connlimit-daddr"),
    (6, "filter", "-m connlimit --connlimit-above 3"),
    (6, "filter", "-m connlimit --connlimit-upto 2 --connlimit-mask 64"),
    (4, "filter", "-m connlimit --connlimit-above 2 --connlimit-saddr"),
    (4, "filter", "-m devgroup --src-group 1"),
    (4, "filter", "-m devgroup --dst-group 0x2/0xff"),
    (4, "filter", "-m socket"),
    (4, "filter", "-m socket --transparent --nowildcard --restore-skmark"),
    (4, "mangle", "-m rpfilter"),
    (4, "mangle", "-m rpfilter --loose --validmark --accept-local --invert"),
    (4, "filter", "-j REJECT"),
    (4, "filter", "-j REJECT --reject-with icmp-host-prohibited"),
    (4, "filter", "-p tcp -j REJECT --reject-with tcp-reset"),
    (4, "filter", "-p tcp -j REJECT --reject-with tcp-rst"),
    (4, "filter", "-j REJECT --reject-with net-unreach"),
    (4, "filter", "-j REJECT --reject-with port-unreach"),
    (6, "filter", "-j REJECT"),
    (6, "filter", "-j REJECT --reject-with adm-prohibited"),
    (6, "filter", "-j REJECT --reject-with port-unreach"),
    (6, "filter", "-j REJECT --reject-with icmp"),
    (6, "filter", "-p tcp -j REJECT --reject-with TCP-RESET"),
    (4, "nat", "-p tcp -j DNAT --to-destination 10.0.0.1:80"),
    (4, "nat", "-j DNAT --to-destination 10.0.0.1-10.0.0.5"),
    (4, "nat", "-j DNAT --to 10.0.0.1 --random --persistent"),
    (4, "nat", "-p tcp -j DNAT --to-destination 10.0.0.1:80-90"),
    (6, "nat", "-p tcp -j DNAT --to-destination [fd00::1]:80"),
    (6, "nat", "-j DNAT --to-destination fd00::1"),
    (4, "nat", "-j SNAT --to-source 10.0.0.1"),
    (4, "nat", "-j SNAT --to-source 10.0.0.1 --random-fully"),
    (4, "nat", "-j MASQUERADE"),
    (4, "nat", "-p tcp -j MASQUERADE --to-ports 1024-2048 --random"),
    (4, "nat", "-j MASQUERADE --random-fully"),
    (4, "nat", "-p tcp -j REDIRECT --to-ports 8080"),
    (4, "nat", "-p tcp -j REDIRECT --to-ports 80-80"),
    (4, "nat", "-j REDIRECT"),
    (4, "nat", "-j NETMAP --to 10.0.0.0/24"),
    (4, "mangle", "-j MARK --set-mark 1"),
    (4, "mangle", "-j MARK --set-xmark 0x1/0xff"),
    (4, "mangle", "-j MARK --and-mark 0xf"),
    (4, "mangle", "-j MARK --or-mark 2"),
    (4, "mangle", "-j MARK --xor-mark 3"),
    (4, "mangle", "-j MARK --set-mark 1/0xff"),
    (4, "mangle", "-j CONNMARK --save-mark"),
    (4, "mangle", "-j CONNMARK --restore-mark --mask 0xff"),
    (4, "mangle", "-j CONNMARK --set-mark 1"),
    (4, "mangle", "-j CONNMARK --save-mark --nfmask 0xf --ctmask 0xf0"),
    (4, "mangle", "-j CONNMARK --set-xmark 0x1/0x1"),
    (4, "filter", "-j LOG"),
    (4, "filter", '-j LOG --log-prefix "x "'),
    (4, "filter", "-j LOG --log-level 4"),
    (4, "filter", "-j LOG --log-level warning"),
    (4, "filter", "-j LOG --log-level debug"),
    (4, "filter", '-j LOG --log-level 3 --log-prefix "p: "'),
    (4, "filter", "-j LOG --log-tcp-sequence --log-tcp-options --log-ip-options --log-uid "
                  "--log-macdecode"),
    (4, "filter", "-j NFLOG"),
    (4, "filter", "-j NFLOG --nflog-group 5 --nflog-prefix x --nflog-range 100"),
    (4, "filter", "-j NFLOG --nflog-size 100 --nflog-threshold 5"),
    (4, "filter", "-j NFLOG --nflog-group 0"),
    (4, "filter", '-j NFLOG --nflog-threshold 1 --nflog-prefix "a b" --nflog-group 3'),
    (4, "raw", "-j CT --notrack"),
    (4, "raw", "-p tcp -j CT --helper ftp"),
    (4, "raw", "-j CT --zone 1"),
    (4, "raw", "-j CT --ctevents new,related --expevents new"),
    (4, "raw", "-j CT --zone-orig 2"),
    (4, "raw", "-j CT --zone-reply 3"),
    (4, "raw", "-j NOTRACK"),
    (4, "raw", "-j TRACE"),
    (4, "mangle", "-p tcp -j TPROXY --on-port 8080 --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1"),
    (4, "mangle", "-p tcp -j TPROXY --on-port 1"),
    (4, "mangle", "-p tcp -j TPROXY --on-port 1 --tproxy-mark 5"),
    (6, "mangle", "-p tcp -j TPROXY --on-port 1"),
    (6, "mangle", "-p tcp -j TPROXY --on-port 1 --on-ip fd00::1"),
    (4, "mangle", "-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"),
    (4, "mangle", "-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400"),
    (4, "mangle", "-p udp -j CHECKSUM --checksum-fill"),
    (4, "filter", "-j NFQUEUE"),
    (4, "filter", "-j NFQUEUE --queue-num 1"),
    (4, "filter", "-j NFQUEUE --queue-balance 0:3 --queue-bypass --queue-cpu-fanout"),
    (4, "filter", "-j NFQUEUE --queue-num 0 --queue-bypass"),
    (4, "mangle", "-j CLASSIFY --set-class 1:10"),
    (4, "mangle", "-j CLASSIFY --set-class ffff:a"),
    (4, "mangle", "-j DSCP --set-dscp 10"),
    (4, "mangle", "-j DSCP --set-dscp-class AF11"),
    (4, "mangle", "-j DSCP --set-dscp-class ef"),
    (4, "mangle", "-j TOS --set-tos 0x10"),
    (4, "mangle", "-j TOS --and-tos 0x1"),
    (4, "mangle", "-j TOS --or-tos 0x2"),
    (4, "mangle", "-j TOS --xor-tos 0x4"),
    (4, "mangle", "-j TOS --set-tos Minimize-Delay"),
    (4, "mangle", "-j TOS --set-tos 0x10/0x3f"),
    (4, "mangle", "-j TTL --ttl-set 64"),
    (4, "mangle", "-j TTL --ttl-dec 1"),
    (4, "mangle", "-j TTL --ttl-inc 1"),
    (6, "mangle", "-j HL --hl-set 64"),
    (6, "mangle", "-j HL --hl-dec 1"),
    (6, "mangle", "-j HL --hl-inc 2"),
    (4, "filter", "-j AUDIT --type accept"),
    (4, "filter", "-j AUDIT --type DROP"),
]

NOT_COVERED = {
    "set": ("filter", "-m set --match-set natlens-none src",
            "needs an ipset in the namespace (no ipset tool here)"),
    "SET": ("filter", "-j SET --add-set natlens-none src",
            "needs an ipset in the namespace (no ipset tool here)"),
}
"""Modules and targets of natlens.parse.modules the rows leave out: (table, a rule using it
that both backends refuse in a fresh namespace, why). Tests check that each is a module natlens
knows, that no row names it, and that its rule really fails (so an entry cannot go stale)."""

OPTIONS_NOT_COVERED = {
    "CT --timeout": ("raw", "-j CT --timeout natlens-none",
                     "needs a conntrack timeout policy object (nfct) in the namespace"),
}
"""Options the rows leave out, as ``NOT_COVERED`` (a rule using it that fails, why)."""

NFT_PRINTS = {
    "-j NFLOG --nflog-group 5 --nflog-prefix x --nflog-range 100":
        "-j NFLOG --nflog-prefix x --nflog-group 5",
}
"""Rule -> what iptables-nft-save prints where it differs from iptables-legacy-save (nft's
``log`` expression has no snap length but for ``--nflog-size``)."""

BACKENDS = {"nft": ("iptables-nft", "ip6tables-nft"),
            "legacy": ("iptables-legacy", "ip6tables-legacy")}


def _groups() -> dict[tuple[int, str], list[str]]:
    groups: dict[tuple[int, str], list[str]] = {}
    for version, table, rule in ROWS:
        groups.setdefault((version, table), []).append(rule)
    return groups


def _restore_text(table: str, rules: list[str]) -> str:
    # X is a user chain nothing jumps to: the kernel checks targets' hooks on reachable
    # chains only, so every target can sit in it.
    return "".join([f"*{table}\n:X - [0:0]\n", *(f"-A X {r}\n" for r in rules), "COMMIT\n"])


_SAVED: dict[tuple[str, int, str], list[str]] = {}


def kernel_saves(backend: str, version: int, table: str) -> list[str]:
    """iptables-save's lines (``-A X ...``) for the rows of (version, table), restored on
    ``backend`` in a namespace of their own (cached per test session)."""
    key = (backend, version, table)
    if key not in _SAVED:
        tool = BACKENDS[backend][version == 6]
        rules = _groups()[(version, table)]
        with namespaces("nlsave-") as (ns,):
            run(f"{tool}-restore", ns=ns, stdin=_restore_text(table, rules))
            saved = run(f"{tool}-save", "-t", table, ns=ns)
        lines = [line for line in saved.splitlines() if line.startswith("-A X ")]
        assert len(lines) == len(rules), saved
        _SAVED[key] = lines
    return _SAVED[key]


def natlens_prints(version: int, table: str, rule: str) -> str:
    text = _restore_text(table, [rule])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParseWarning)
        ruleset = parse_save(text, family=Family.IPV6 if version == 6 else Family.IPV4)
    lines = [line for line in to_save(ruleset).splitlines() if line.startswith("-A X ")]
    assert len(lines) == 1
    return lines[0]


def test_rows_cover_every_module_natlens_knows() -> None:
    words = {w for _, _, rule in ROWS for w in rule.split()}
    named = {rule.split()[rule.split().index(flag) + 1] for _, _, rule in ROWS
             for flag in ("-m", "-j") if flag in rule.split()}
    missing = [name for name in (*MATCHES, *TARGETS)
               if name not in named and name not in NOT_COVERED]
    assert not missing, f"rows name no rule with {missing}"
    options = {(spec.name, o.name) for specs in (MATCHES, TARGETS) for spec in specs.values()
               if spec.name not in NOT_COVERED for o in spec.options}
    unused = sorted(f"{m} {o}" for m, o in options if o not in words)
    assert unused == sorted(OPTIONS_NOT_COVERED), "rows use no rule with these options"


def test_not_covered_lists_only_what_the_rows_leave_out() -> None:
    named = {rule.split()[rule.split().index(flag) + 1] for _, _, rule in ROWS
             for flag in ("-m", "-j") if flag in rule.split()}
    for name, (_, rule, _) in NOT_COVERED.items():
        assert name in MATCHES or name in TARGETS, f"{name}: natlens knows no such module"
        assert name not in named, f"{name}: a row covers it now"
        assert f"-m {name} " in f"{rule} " or f"-j {name} " in f"{rule} "
    for key, (_, rule, _) in OPTIONS_NOT_COVERED.items():
        module, option = key.split()
        assert not any(module in r.split() and option in r.split() for _, _, r in ROWS), \
            f"{key}: a row covers it now"
        assert module in rule.split()
        assert option in rule.split()


@pytest.mark.kernel
@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(("table", "rule"),
                         [(t, r) for t, r, _ in (*NOT_COVERED.values(),
                                                 *OPTIONS_NOT_COVERED.values())])
def test_not_covered_rules_fail_the_round_trip(backend: str, table: str, rule: str) -> None:
    """What the rows leave out cannot be restored here (why the entry exists)."""
    needs_root("iptables-legacy-restore", "iptables")
    with namespaces("nlnotc-") as (ns,), pytest.raises(AssertionError, match="failed"):
        run(f"{BACKENDS[backend][0]}-restore", ns=ns, stdin=_restore_text(table, [rule]))


def _params() -> Iterator[object]:
    for backend in BACKENDS:
        for index, (version, table, rule) in enumerate(ROWS):
            yield pytest.param(backend, version, table, rule,
                               id=f"{backend}-ipv{version}-{table}-{index}: {rule}")


@pytest.mark.kernel
@pytest.mark.parametrize(("backend", "version", "table", "rule"), list(_params()))
def test_natlens_prints_what_iptables_save_prints(backend: str, version: int, table: str,
                                                  rule: str) -> None:
    needs_root("iptables-legacy-restore", "iptables")
    rules = _groups()[(version, table)]
    saved = kernel_saves(backend, version, table)[rules.index(rule)]
    printed = natlens_prints(version, table, rule)
    if backend == "nft" and rule in NFT_PRINTS:
        assert saved == f"-A X {NFT_PRINTS[rule]}", "iptables-nft-save changed: update NFT_PRINTS"
        assert printed == kernel_saves("legacy", version, table)[rules.index(rule)]
        return
    assert printed == saved


@pytest.mark.kernel
@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(("version", "table"), list(_groups()),
                         ids=[f"ipv{v}-{t}" for v, t in _groups()])
def test_iptables_save_output_reads_back_unchanged(backend: str, version: int,
                                                   table: str) -> None:
    """iptables-save's own lines are already canonical: natlens gives them back as they are,
    whether its fast path or its full parser reads them."""
    needs_root("iptables-legacy-restore", "iptables")
    lines = kernel_saves(backend, version, table)
    text = "".join([f"*{table}\n:X - [0:0]\n", *(f"{line}\n" for line in lines), "COMMIT\n"])
    ruleset = parse_save(text, family=Family.IPV6 if version == 6 else Family.IPV4)
    printed = [line for line in to_save(ruleset).splitlines() if line.startswith("-A X ")]
    assert printed == lines
