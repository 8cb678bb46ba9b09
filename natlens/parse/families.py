"""The address family a rule's values name, to refuse a rule of the other family.

iptables refuses an IPv6 value anywhere in an IPv4 rule, and ip6tables the reverse: ``-s``/``-d``
(``xtables_ipparse_multiple``: "host/network not found"), the NAT targets' addresses (DNAT
``--to-destination``, SNAT ``--to-source``: libxt_DNAT.c ``parse_to`` says "Invalid address
format" for a bracketed IPv6 address and "Bad IP address" for a bare one in an IPv4 rule),
NETMAP ``--to``, TPROXY ``--on-ip``, ``iprange --src-range/--dst-range``, ``conntrack
--ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst``, and REJECT ``--reject-with`` takes the ICMP
types of its own family only (libipt_REJECT.c, libip6t_REJECT.c). REDIRECT and MASQUERADE name
ports only. Some extensions exist for one family only: ``-m ttl``, ``-m icmp``, ``-j TTL``,
``-j ECN`` for IPv4; ``-m hl``, ``-m icmp6``, ``-m frag``, ``-j HL`` for IPv6.

Checked against ``iptables-restore --test`` / ``ip6tables-restore --test`` 1.8.9
(tests/test_parse_families.py runs every case against them).
"""

from __future__ import annotations

from collections.abc import Iterator

from natlens.model import Match, Option, Rule, Target
from natlens.parse.modules import MATCHES, TARGETS
from natlens.parse.ratelimits import legacy_limit_refusal
from natlens.parse.reject import reject_families

__all__ = ["CONFLICTS_LEGACY", "CONFLICTS_V4", "CONFLICTS_V6", "extension_family",
           "family_conflicts", "address_conflicts", "family_mismatch", "legacy_mismatch",
           "match_conflicts", "target_conflicts"]

# Extensions registered for one family only (NFPROTO_IPV4 / NFPROTO_IPV6 in their libxt_ /
# libipt_ / libip6t_ file): iptables-restore says "Couldn't load match/target" for the other.
_ONE_FAMILY_MATCHES = {**dict.fromkeys(("ttl", "icmp", "realm"), 4),
                       **dict.fromkeys(("hl", "icmp6", "frag", "ipv6header", "rt", "mh", "eui64",
                                        "hbh", "dst", "srh"), 6)}
_ONE_FAMILY_TARGETS = {**dict.fromkeys(("TTL", "ECN", "CLUSTERIP", "ULOG"), 4), "HL": 6}
_ADDRESS_KINDS = frozenset({"natrange", "cidr", "iprange", "ctaddr"})
_ADDRESS_OPTIONS = frozenset({("TPROXY", "--on-ip")})
# (module or target, option name as the parser stores it) -> value kind, for the options above
_CHECKED: dict[tuple[str, str], str] = {
    **{(spec.name, opt.name): opt.kind for specs in (MATCHES, TARGETS)
       for spec in specs.values() for opt in spec.options if opt.kind in _ADDRESS_KINDS},
    ("TPROXY", "--on-ip"): "address",
    ("REJECT", "--reject-with"): "reject",
}
_CHECKED_MODULES = frozenset(module for module, _ in _CHECKED)
_PLEN_OPTIONS: dict[str, frozenset[str]] = {
    "hashlimit": frozenset({"--hashlimit-srcmask", "--hashlimit-dstmask"})}
"""Options holding a prefix length (0-128, read as ``plen``): above 32 in IPv4 rules the kernel
refuses them (xt_hashlimit.c ``hashlimit_mt_check_common``: ``srcmask > 32`` is EINVAL)."""


def _versions(text: str) -> Iterator[tuple[int, str]]:
    """(IP version, address) of each address in ``text`` (a range ``a-b`` gives two). The
    version is told by the spelling (a colon: IPv6): the option's value check
    (natlens.parse.values) has already refused what is not an address."""
    for part in text.split("-"):
        if part:
            yield (6 if ":" in part else 4), part


def _nat_addresses(text: str) -> Iterator[tuple[int, str]]:
    """Addresses of ``ADDR[-ADDR][:PORTS]``, ``[V6[-V6]][:PORTS]`` or a bare IPv6 range."""
    if text.startswith("["):
        inside = text[1:].partition("]")[0]
        for _, addr in _versions(inside):
            yield 6, f"[{addr}]"  # brackets are IPv6 syntax, whatever they hold
        return
    if text.count(":") > 1:
        yield from _versions(text)
        return
    yield from _versions(text.partition(":")[0])


def _option_addresses(module: str, option: Option, kind: str) -> Iterator[tuple[int, str]]:
    if not option.args:
        return
    value = option.args[0]
    if kind == "natrange":
        yield from _nat_addresses(value)
    elif kind in ("cidr", "ctaddr") or (module, option.name) in _ADDRESS_OPTIONS:
        yield from _versions(value.partition("/")[0])
    elif kind == "iprange":
        yield from _versions(value)


def _reject_family(option: Option) -> int | None:
    """The one family whose REJECT knows ``--reject-with``'s type (natlens.parse.reject), or
    None (both do, or neither: natlens.parse.checks refuses that)."""
    if option.name != "--reject-with" or len(option.args) != 1:
        return None
    v4, v6 = reject_families(option.args[0])
    if (v4 is None) == (v6 is None):
        return None
    return 4 if v6 is None else 6


def extension_family(rule: Rule) -> tuple[int, str] | None:
    """(IP version, name) of the first match or target of ``rule`` that exists for one family
    only (``-m hl`` is IPv6's, ``-j TTL`` IPv4's), or None."""
    for match in rule.matches:
        version = _ONE_FAMILY_MATCHES.get(match.module)
        if version is not None:
            return version, f"-m {match.module}"
    target = rule.target
    if target is not None:
        version = _ONE_FAMILY_TARGETS.get(target.name)
        if version is not None:
            return version, f"-j {target.name}"
    return None


def family_mismatch(rule: Rule, version: int) -> tuple[str, str] | None:
    """(reason, offending text) when ``rule`` names an address (or ICMP reject type) of the
    other family than ``version`` (4 or 6); None when it fits.

    >>> from natlens import parse_save
    >>> rs = parse_save('''*nat
    ... :PREROUTING ACCEPT [0:0]
    ... -A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:80
    ... COMMIT
    ... ''')
    >>> rule = rs["nat"]["PREROUTING"].rules[0]
    >>> family_mismatch(rule, 4) is None
    True
    >>> family_mismatch(rule, 6)
    ('IPv4 address 10.0.0.2 in ip6tables rules (DNAT --to-destination)', '10.0.0.2')
    """
    tool = "ip6tables" if version == 6 else "iptables"
    for addr in (rule.source, rule.destination):
        if addr is not None and addr.network.version != version:
            other = "iptables" if version == 6 else "ip6tables"
            return (f"IPv{addr.network.version} address {addr.text} in {tool} rules (is this "
                    f"{other}-save output? save it as {other}-save.txt)",
                    str(addr.network.network_address))
    extension = extension_family(rule)
    if extension is not None and extension[0] != version:
        return (f"{extension[1]} exists for IPv{extension[0]} only, not in {tool} rules",
                extension[1].split()[1])
    for m in rule.matches:
        if m.module in _PLEN_OPTIONS and version == 4:
            for o in m.options:
                if o.name in _PLEN_OPTIONS[m.module] and o.args and o.args[0].isdecimal() \
                        and int(o.args[0]) > 32:
                    return (f"prefix length {o.args[0]} in {tool} rules ({m.module} {o.name}: "
                            "0-32 for IPv4)", o.args[0])
    parts = [(m.module, o) for m in rule.matches if m.module in _CHECKED_MODULES
             for o in m.options if (m.module, o.name) in _CHECKED]
    target = rule.target
    if target is not None and target.name in _CHECKED_MODULES:
        parts.extend((target.name, o) for o in target.options if (target.name, o.name) in _CHECKED)
    for module, opt in parts:
        kind = _CHECKED[(module, opt.name)]
        if kind != "reject":
            for found_version, text in _option_addresses(module, opt, kind):
                if found_version != version:
                    return (f"IPv{found_version} address {text} in {tool} rules "
                            f"({module} {opt.name})", text)
        else:
            reject = _reject_family(opt)
            if reject is not None and reject != version:
                return (f"IPv{reject} reject type {opt.value} in {tool} rules "
                        "(REJECT --reject-with)", opt.value)
    return None


CONFLICTS_V4 = 1
"""Bit of ``family_conflicts``: the rule names something iptables (IPv4) refuses."""
CONFLICTS_V6 = 2
"""Bit of ``family_conflicts``: the rule names something ip6tables (IPv6) refuses."""
CONFLICTS_LEGACY = 4
"""Bit of ``family_conflicts``: the legacy backend's kernel refuses the rule at commit where
nf_tables takes it (``legacy_mismatch``)."""


def legacy_mismatch(rule: Rule) -> tuple[str, str] | None:
    """(reason, the option to point at) when the legacy backend refuses ``rule`` and
    nf_tables takes it: a ``-m limit`` whose credits overflow (natlens.parse.ratelimits);
    None when both take it."""
    for m in rule.matches:
        if m.module == "limit":
            found = legacy_limit_refusal(m.options)
            if found is not None:
                return found[0], found[1] or "limit"
    return None


def family_conflicts(rule: Rule) -> int:
    """``CONFLICTS_V4`` and/or ``CONFLICTS_V6``: the families whose rules ``family_mismatch``
    refuses ``rule`` in (0: it fits both), with ``CONFLICTS_LEGACY`` when the legacy backend
    refuses it (``legacy_mismatch``)."""
    return ((CONFLICTS_V4 if family_mismatch(rule, 4) is not None else 0)
            | (CONFLICTS_V6 if family_mismatch(rule, 6) is not None else 0)
            | (CONFLICTS_LEGACY if legacy_mismatch(rule) is not None else 0))


def match_conflicts(match: Match) -> int:
    """``family_conflicts`` of a rule holding only ``match``.

    A rule whose parts each fit a family fits it too (``family_mismatch`` looks at each
    address, extension and option on its own), so the parser checks parts once and the whole
    ruleset only when some part conflicts with its family."""
    if match.module == "limit":
        return CONFLICTS_LEGACY if legacy_limit_refusal(match.options) is not None else 0
    if match.module not in _CHECKED_MODULES and match.module not in _ONE_FAMILY_MATCHES \
            and match.module not in _PLEN_OPTIONS:
        return 0
    return family_conflicts(Rule("X", matches=(match,)))


def target_conflicts(target: Target) -> int:
    """``family_conflicts`` of a rule holding only ``target`` (see ``match_conflicts``)."""
    if target.name not in _CHECKED_MODULES and target.name not in _ONE_FAMILY_TARGETS:
        return 0
    return family_conflicts(Rule("X", target=target))


def address_conflicts(version: int) -> int:
    """``family_conflicts`` of a rule whose only address (``-s``/``-d``) is of IP ``version``."""
    return CONFLICTS_V6 if version == 4 else CONFLICTS_V4
