"""Whole-module checks: what a match or target's option flags and final check refuse.

An xtables extension declares, per option, whether it may repeat (``XTOPT_MULTI``, used by none
of the modules natlens knows in iptables 1.8.9), may be negated (``XTOPT_INVERT``), is mandatory
(``XTOPT_MAND``) and which options it excludes or needs (``excl``/``also``); its final check
(``x6_fcheck``/``final_check``) then looks at the whole. libxtables/xtoptions.c
(``xtables_option_parse``, ``xtables_options_fcheck``) refuses the rest with "option "--x" can
only be used once", "cannot be inverted", "cannot be used together with", "must be specified",
"also requires"; extensions/libxt_statistic.c adds its nth/random rules.

``MATCH_CHECKS``/``TARGET_CHECKS`` hold these constraints for the modules natlens knows, as
iptables 1.8.9 enforces them (tests/test_parse_module_checks.py compares every entry with
``iptables-restore --test`` on both backends). ``refusal(name, options, checks)`` returns why
iptables refuses one match or target, or None; the parser (natlens.parse.rule) turns it into a
``ParseError`` pointing at the option.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from natlens.model import Option
from natlens.parse.ratelimits import hashlimit_refusal
from natlens.parse.reject import reject_families

__all__ = ["MATCH_CHECKS", "TARGET_CHECKS", "ModuleChecks", "Refusal", "refusal"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why iptables refuses a module's options; ``option`` is the one to point at (None: the
    module or target name itself)."""

    reason: str
    option: str | None = None


Final = Callable[[str, Sequence[Option]], Refusal | None]


@dataclass(frozen=True, slots=True)
class ModuleChecks:
    """The constraints of one match or target (option names as natlens.parse.modules spells
    them).

    ``need``: groups of which at least one option must be given (a one-option group is a
    mandatory option); ``excl``: groups of which at most one may be given; ``also``: (option,
    option it needs); ``fixed``: options that cannot be negated with ``!``; ``final``: the
    extension's own final check.
    """

    need: tuple[tuple[str, ...], ...] = ()
    excl: tuple[tuple[str, ...], ...] = ()
    also: tuple[tuple[str, str], ...] = ()
    fixed: frozenset[str] = frozenset()
    final: Final | None = None


def _quote(names: Sequence[str]) -> str:
    return " or ".join(f'"{n}"' for n in names)


def refusal(name: str, options: Sequence[Option], checks: ModuleChecks | None) -> Refusal | None:
    """Why iptables refuses ``options`` (in the order given) of match or target ``name``, or
    None. Every option of a known module can be given once (libxtables: no ``XTOPT_MULTI``);
    ``checks`` adds the module's own constraints. The order of the checks is iptables' own:
    per option while reading, then the final check, then mandatory and ``also`` options.

    >>> refusal("DNAT", (), TARGET_CHECKS["DNAT"]).reason
    'DNAT: option "--to-destination" must be specified'
    >>> twice = (Option("--dport", ("80",)), Option("--dport", ("81",)))
    >>> refusal("tcp", twice, MATCH_CHECKS["tcp"])
    Refusal(reason='tcp: option "--dport" can only be used once', option='--dport')
    """
    given: set[str] = set()
    for opt in options:
        if opt.name in given:
            return Refusal(f'{name}: option "{opt.name}" can only be used once', opt.name)
        if checks is not None:
            if opt.negated and opt.name in checks.fixed:
                return Refusal(f'{name}: option "{opt.name}" cannot be inverted', opt.name)
            for group in checks.excl:
                if opt.name in group:
                    other = next((g for g in group if g in given), None)
                    if other is not None:
                        return Refusal(f'{name}: option "{opt.name}" cannot be used together '
                                       f'with "{other}"', opt.name)
        given.add(opt.name)
    if checks is None:
        return None
    if checks.final is not None:
        found = checks.final(name, options)
        if found is not None:
            return found
    for group in checks.need:
        if not given.intersection(group):
            what = f"option {_quote(group)}" if len(group) == 1 else f"one of {_quote(group)}"
            return Refusal(f"{name}: {what} must be specified")
    for option, needed in checks.also:
        if option in given and needed not in given:
            return Refusal(f'{name}: option "{option}" also requires "{needed}"', option)
    return None


def _statistic(name: str, options: Sequence[Option]) -> Refusal | None:
    """libxt_statistic.c ``statistic_parse``/``statistic_check``: the mode is ``random``
    (the default) or ``nth``; random needs ``--probability``, nth ``--every`` or ``--packet``;
    ``--packet P`` needs ``P < --every N`` (an absent ``--every`` counts as 1)."""
    values = {o.name: o.args[0] for o in options if o.args}
    mode = values.get("--mode", "random")
    if mode not in ("random", "nth"):
        return Refusal(f'statistic: bad mode "{mode}" (random or nth)', "--mode")
    if mode == "random" and "--probability" not in values:
        return Refusal("statistic: --probability must be specified when using random mode",
                       "--mode" if "--mode" in values else None)
    if mode == "nth":
        if "--every" not in values and "--packet" not in values:
            return Refusal("statistic: --every and --packet must be specified when using nth "
                           "mode", "--mode")
        every = int(values.get("--every", "1"))  # u32 values, in decimal by now
        packet = int(values.get("--packet", "0"))
        if every == 0:
            return Refusal("statistic: --every 0 out of range (1-4294967295)", "--every")
        if packet >= every:
            return Refusal(f"statistic: --packet {packet} must be below --every {every} "
                           "(0 <= p <= n-1)", "--packet")
    return None


def _reject(name: str, options: Sequence[Option]) -> Refusal | None:
    """libipt_REJECT.c / libip6t_REJECT.c ``REJECT_parse``: a type neither family's table
    names (natlens.parse.reject; one family's type in the other's rules is refused by
    natlens.parse.families once the family is known)."""
    for opt in options:
        if opt.name == "--reject-with" and len(opt.args) == 1 \
                and reject_families(opt.args[0]) == (None, None):
            return Refusal(f'REJECT: unknown reject type "{opt.args[0]}"', opt.name)
    return None


_RECENT_HITCOUNT_MAX = 65535  # net/netfilter/xt_recent.c: XT_RECENT_MAX_NSTAMPS - 1


def _recent(name: str, options: Sequence[Option]) -> Refusal | None:
    """net/netfilter/xt_recent.c ``recent_mt_check``, which the kernel runs when the rule is
    committed (``iptables-restore --test`` takes these): ``--set``/``--remove`` take no
    ``--seconds``, non-zero ``--hitcount`` or ``--reap`` (``--rttl``: refused by the
    extension's ``excl``); ``--hitcount`` at most 65535; the list name (``xt_check_proc_name``)
    not empty, ``.``, ``..`` or with a ``/``. Values are decimal by now (natlens.parse.values)."""
    values = {o.name: (o.args[0] if o.args else "") for o in options}
    command = next((c for c in ("--set", "--remove") if c in values), None)
    if command is not None:
        for option in ("--seconds", "--hitcount", "--reap"):
            if option in values and values[option] != "0":
                return Refusal(f"recent: {command} takes no {option} (the kernel refuses it)",
                               option)
    if int(values.get("--hitcount", "0")) > _RECENT_HITCOUNT_MAX:
        return Refusal(f"recent: --hitcount above {_RECENT_HITCOUNT_MAX} (the kernel refuses "
                       "it)", "--hitcount")
    list_name = values.get("--name")
    if list_name is not None and (list_name in ("", ".", "..") or "/" in list_name):
        return Refusal(f"recent: bad list name {list_name!r} (the kernel refuses it)", "--name")
    return None


def _hashlimit(name: str, options: Sequence[Option]) -> Refusal | None:
    """libxt_hashlimit.c ``hashlimit_mt_check`` and the kernel's ``hashlimit_mt_check_common``
    (which both backends run at commit): natlens.parse.ratelimits."""
    found = hashlimit_refusal(options)
    return None if found is None else Refusal(*found)


_MARKS = ("--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark")


def _one_of(*names: str) -> ModuleChecks:
    """At least one and at most one of ``names``."""
    return ModuleChecks(need=(names,), excl=(names,))


MATCH_CHECKS: Mapping[str, ModuleChecks] = MappingProxyType({
    "statistic": ModuleChecks(
        need=(("--mode",),), excl=(("--probability", "--every"), ("--probability", "--packet")),
        also=(("--every", "--packet"), ("--packet", "--every")),
        fixed=frozenset({"--mode", "--packet"}), final=_statistic),
    "tcp": ModuleChecks(excl=(("--syn", "--tcp-flags"),)),
    "icmp": ModuleChecks(need=(("--icmp-type",),)),
    "multiport": _one_of("--sports", "--dports", "--ports"),
    "addrtype": ModuleChecks(need=(("--src-type", "--dst-type"),)),
    "conntrack": ModuleChecks(need=((
        "--ctstate", "--ctproto", "--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst",
        "--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport",
        "--ctstatus", "--ctexpire", "--ctdir"),)),
    "state": ModuleChecks(need=(("--state",),)),
    "comment": ModuleChecks(need=(("--comment",),), fixed=frozenset({"--comment"})),
    "mark": ModuleChecks(need=(("--mark",),)),
    "connmark": ModuleChecks(need=(("--mark",),)),
    "iprange": ModuleChecks(need=(("--src-range", "--dst-range"),)),
    "set": ModuleChecks(need=(("--match-set",),)),
    "physdev": ModuleChecks(need=(("--physdev-is-in", "--physdev-in", "--physdev-is-out",
                                   "--physdev-out", "--physdev-is-bridged"),)),
    "limit": ModuleChecks(fixed=frozenset({"--limit", "--limit-burst"})),
    "owner": ModuleChecks(need=(("--uid-owner", "--gid-owner", "--socket-exists"),),
                          also=(("--suppl-groups", "--gid-owner"),)),
    "pkttype": ModuleChecks(need=(("--pkt-type",),)),
    "recent": ModuleChecks(need=(("--set", "--rcheck", "--update", "--remove"),),
                           excl=(("--set", "--rcheck", "--update", "--remove"),
                                 ("--rttl", "--set"), ("--rttl", "--remove")),
                           also=(("--reap", "--seconds"),), final=_recent),
    "mac": ModuleChecks(need=(("--mac-source",),)),
    "hashlimit": ModuleChecks(need=(("--hashlimit-upto", "--hashlimit-above"),
                                    ("--hashlimit-name",)),
                              excl=(("--hashlimit-upto", "--hashlimit-above"),),
                              final=_hashlimit),
    "string": ModuleChecks(need=(("--string", "--hex-string"), ("--algo",)),
                           excl=(("--string", "--hex-string"),)),
    "ttl": _one_of("--ttl-eq", "--ttl-gt", "--ttl-lt"),
    "hl": _one_of("--hl-eq", "--hl-gt", "--hl-lt"),
    "length": ModuleChecks(need=(("--length",),)),
    "tos": ModuleChecks(need=(("--tos",),)),
    "dscp": _one_of("--dscp", "--dscp-class"),
    "helper": ModuleChecks(need=(("--helper",),)),
    "connlimit": _one_of("--connlimit-upto", "--connlimit-above"),
    "devgroup": ModuleChecks(need=(("--src-group", "--dst-group"),)),
})

TARGET_CHECKS: Mapping[str, ModuleChecks] = MappingProxyType({
    "DNAT": ModuleChecks(need=(("--to-destination",),)),
    "SNAT": ModuleChecks(need=(("--to-source",),)),
    "NETMAP": ModuleChecks(need=(("--to",),)),
    "MARK": _one_of(*_MARKS),
    "CONNMARK": _one_of(*_MARKS, "--save-mark", "--restore-mark"),
    "TCPMSS": ModuleChecks(need=(("--set-mss", "--clamp-mss-to-pmtu"),)),
    "CLASSIFY": ModuleChecks(need=(("--set-class",),)),
    "DSCP": _one_of("--set-dscp", "--set-dscp-class"),
    "TOS": _one_of("--set-tos", "--and-tos", "--or-tos", "--xor-tos"),
    "TTL": _one_of("--ttl-set", "--ttl-dec", "--ttl-inc"),
    "HL": _one_of("--hl-set", "--hl-dec", "--hl-inc"),
    "SET": _one_of("--add-set", "--del-set", "--map-set"),
    "AUDIT": ModuleChecks(need=(("--type",),)),
    "CHECKSUM": ModuleChecks(need=(("--checksum-fill",),)),
    "NFQUEUE": ModuleChecks(excl=(("--queue-num", "--queue-balance"),)),
    "REJECT": ModuleChecks(final=_reject),
})
